"""A finite offline run followed to its end (planner/serving_wave.py): conservation, the no-overflow
case against the closed form, preemption when the lockstep peak exceeds the KV memory, and the
--requests flag through the CLI."""
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.planner import serving_wave as sw
from recoque.planner.serving import ServingRequest
from recoque.errors import BadInput

A_S, B_S, PREFILL_S = 0.02, 1e-4, 2e-6   # synthetic step: a + b x streams; prefill per token


def wave(requests=100, prompt=100, output=400, slots=1000, kv_tokens=1e9, full=False, per_advance=0):
    return sw.Wave(requests=requests, prompt=prompt, output=output, slots=slots, kv_free_bytes=kv_tokens * 10.0,
                   kv_bytes=lambda c: 10.0 * c, reserve_full=full,
                   decode_s=lambda n, c: A_S + B_S * n, prefill_s=lambda tokens, length: PREFILL_S * tokens,
                   steps_per_advance=per_advance)


def test_a_run_that_fits_is_the_closed_form():
    r = sw.run(wave())
    # one admission of 100 x 100 prompt tokens, then 400 steps of 100 streams
    assert r.output_tokens == pytest.approx(100 * 400)
    assert r.seconds == pytest.approx(100 * 100 * PREFILL_S + 400 * (A_S + B_S * 100))
    assert r.preempted_streams == 0 and r.recomputed_tokens == 0 and r.mean_streams == pytest.approx(100)
    assert r.peak_kv_fraction == pytest.approx(100 * 500 / 1e9)


def test_the_lockstep_peak_over_the_kv_memory_preempts_and_costs_time():
    fits = sw.run(wave(kv_tokens=100 * 500))
    over = sw.run(wave(kv_tokens=0.6 * 100 * 500))
    assert fits.preempted_streams == 0
    assert over.peak_kv_fraction == pytest.approx(1 / 0.6)
    assert over.preempted_streams > 0 and over.recomputed_tokens > 0
    assert over.output_tokens == pytest.approx(fits.output_tokens)       # every request still gets its output
    assert over.tokens_per_s < fits.tokens_per_s
    assert over.mean_streams < 100


def test_the_cache_never_holds_more_than_the_kv_memory():
    held = []
    w = wave(kv_tokens=0.5 * 100 * 500)
    # decode_s sees the mean context at mid-advance: half a step past what the cache holds now
    spy = sw.Wave(**{**w.__dict__, "decode_s": lambda n, c: held.append(n * (c - 0.5)) or (A_S + B_S * n),
                     "steps_per_advance": 1})
    sw.run(spy)
    assert max(held) <= 0.5 * 100 * 500 * (1 + 1e-6)


def test_a_reserving_engine_admits_at_full_length_and_never_preempts():
    r = sw.run(wave(kv_tokens=40 * 500, full=True))
    assert r.preempted_streams == 0 and r.recomputed_tokens == 0
    assert r.output_tokens == pytest.approx(100 * 400)
    assert r.mean_streams == pytest.approx(100 / 3, rel=0.02)   # waves of 40, 40, 20 streams, 400 steps each


def test_the_slot_cap_runs_the_requests_in_waves():
    r = sw.run(wave(slots=50))
    assert r.decode_steps == 800 and r.mean_streams == pytest.approx(50)


def test_more_kv_memory_never_slows_the_run():
    rates = [sw.run(wave(kv_tokens=f * 100 * 500)).tokens_per_s for f in (0.3, 0.5, 0.7, 0.9, 1.1)]
    assert rates == sorted(rates)


def test_requests_only_size_an_offline_run():
    with pytest.raises(BadInput, match="--requests"):
        ServingRequest(mode="server", requests=10, tpot_target_s=0.05)
    with pytest.raises(BadInput, match="--requests"):
        ServingRequest(requests=10, batch=4)
    with pytest.raises(BadInput, match="requests must be a positive"):
        ServingRequest(requests=0)


runner = CliRunner()
ARGS = ["plan", "infer", "--system", "node-8x-mi300x", "--model", "llama3-405b", "--tp", "8", "--dtype", "fp8",
        "--engine", "vllm", "--max-batch", "1500", "--prompt-tokens", "128", "--output-tokens", "4096", "--json"]


def test_the_cli_follows_a_finite_run_and_says_it_was_preempted():
    steady = json.loads(runner.invoke(app, ARGS).output)
    r = runner.invoke(app, ARGS + ["--requests", "1500"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert d["serving_request"]["requests"] == 1500
    text = json.dumps(d)
    assert "preempted" in text and "followed to the end" in text
    # 1,500 x 4,224 tokens of fp8 KV is more than 8 MI300X hold beside the weights: slower than the steady state
    rate, steady_rate = (x["inference"]["tokens_per_s_system"]["value"] for x in (d, steady))
    assert rate < 0.9 * steady_rate


def test_the_cli_rejects_requests_with_a_server_load_in_one_line():
    r = runner.invoke(app, ARGS[:-1] + ["--requests", "100", "--mode", "server", "--tpot-ms", "50"])
    assert r.exit_code == 2 and "--requests" in r.output and "Traceback" not in r.output


def test_a_finite_run_that_fits_gives_the_steady_state_back():
    """Predicted before the change: with no preemption and no waiting, following the run changes only
    where the prefill is paid, so the two agree within a few per cent (seen: 0.999-1.004 on the ROCm
    vLLM rows that fit)."""
    from dataclasses import replace

    from recoque.planner.serving_validation import load_cases, run_case

    case = next(c for c in load_cases(seed_file="serving_checks.toml")
                if c.key == "rocmblog-llama3.1-405b-fp8-8xmi300x-tp8-128-2048")
    assert case.request.requests == 1500
    finite = run_case(case).estimate
    # the run's lengths are fixed (benchmark_throughput, one input and output length): the steady state
    # of the same fixed lengths, no length-biased context (stop 113)
    steady = run_case(replace(case, request=replace(case.request, requests=None, length_cv2=0.0))).estimate
    assert "no preemption" in " ".join(finite.assumptions)
    assert finite.tokens_per_s_system.value == pytest.approx(steady.tokens_per_s_system.value, rel=0.02)


def test_lockstep_waves_are_counted_in_closed_form():
    """50 slots, everything fits: 100,000 requests are 2,000 waves of 50 (closed form, no following)."""
    r = sw.run(wave(requests=100_000, slots=50))
    assert r.followed_requests == 100_000 and r.decode_steps == 2000 * 400
    assert r.seconds == pytest.approx(2000 * (50 * 100 * PREFILL_S + 400 * (A_S + B_S * 50)))
    # a last, partial wave of 25 streams
    r = sw.run(wave(requests=125, slots=50))
    assert r.seconds == pytest.approx(2 * (50 * 100 * PREFILL_S + 400 * (A_S + B_S * 50))
                                      + 25 * 100 * PREFILL_S + 400 * (A_S + B_S * 25))


def test_a_preempting_run_of_many_waves_is_followed_for_a_bounded_number():
    """50 slots but KV for 30 streams at full length: each wave preempts, so the run is followed,
    for 63 waves and its own last one, and its rate is that of any long run."""
    long = sw.run(wave(requests=100_000, slots=50, kv_tokens=30 * 500))
    assert long.preempted_streams > 0 and 0 < long.followed_requests < 100_000
    shorter = sw.run(wave(requests=long.followed_requests, slots=50, kv_tokens=30 * 500))
    assert long.tokens_per_s == pytest.approx(shorter.tokens_per_s, rel=1e-9)


def test_a_request_longer_than_the_kv_memory_is_refused_not_followed(tmp_path):
    with pytest.raises(ValueError, match="more KV cache"):
        sw.run(wave(kv_tokens=400))          # 100 + 400 tokens per request
    # a model file that states no context window: the KV memory is what refuses the request
    text = (Path(__file__).parents[1] / "seeds" / "models.toml").read_text()
    block = re.search(r"\[models\.llama3-405b\].*?(?=\n\[models\.llama2-70b\])", text, re.S).group(0)
    model = tmp_path / "m.toml"
    model.write_text(re.sub(r"\ncontext_window_tokens = \d+", "", block))
    r = runner.invoke(app, ["plan", "infer", "--system", "node-8x-h100", "--model", str(model), "--tp", "8",
                            "--dtype", "fp8", "--prompt-tokens", "100000", "--output-tokens", "900000",
                            "--requests", "4"])
    assert r.exit_code != 0 and "Traceback" not in r.output and "KV" in r.output
