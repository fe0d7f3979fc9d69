"""The engine's per-step token budget (planner.serving): TensorRT-LLM max_num_tokens, vLLM
--max-num-batched-tokens, SGLang --chunked-prefill-size. It bounds the streams a replica sustains
(every prompt token passes through it), the prefill queue a server sees and a prompt's own chunks."""
import dataclasses
import math

import pytest

from recoque.catalog import get_device_spec
from recoque.errors import BadInput
from recoque.planner import serving as sv
from recoque.planner.serving_queue import prefill_wait
from recoque.planner.serving_step import Layout
from recoque.planner.system import load_system
from recoque.planner.workload import load_model

from infer_flags import round_trip

L70 = load_model("llama2-70b")
FP8 = dict(weights="fp8", activations="fp8", kv_cache="fp8")


def _replica(req, budget, counts_decode=True, lay=Layout(1)):
    system, spec, engine = load_system("node-8x-mi300x").with_gpus(1), get_device_spec("mi300x"), sv.sr.load_engine(req.engine)
    rs = sv.sr.rate_set(spec, system, "fp8", lay.tp, engine)
    return sv._Replica(L70, req, lay, rs.rates["value"], rs.efficiency["value"], budget, budget_counts_decode=counts_decode)


def test_a_prompt_longer_than_the_room_holds_the_budget_for_several_steps():
    # 0.5 prompts/s of 8,000 tokens through 1,000 tokens a 0.1 s step: rho = 0.5 x 0.8 s = 0.4
    w = prefill_wait(lam=0.5, step_s=0.1, prompt=8000, room=1000, q=0.99)
    s, rho = 0.8, 0.4
    assert w == pytest.approx(s / (2 * (1 - rho)) * math.log(rho / 0.01))
    # the same tokens as one-step prompts at 8x the rate: the same load, each waits for 1/8 the work
    assert prefill_wait(4.0, 0.1, 1000, 1000, 0.99) == pytest.approx(w / 8)
    # a prompt twice as long at half the rate: same rho, each waits for twice the work
    assert prefill_wait(0.25, 0.1, 16000, 1000, 0.99) == pytest.approx(2 * w)
    # prompt lengths that vary lengthen the wait (Pollaczek-Khinchine), and no room means no prefill
    assert prefill_wait(0.5, 0.1, 8000, 1000, 0.99, prompt_cv2=0.6) == pytest.approx(1.6 * w)
    assert prefill_wait(0.5, 0.1, 8000, 0.0, 0.99) == math.inf


def test_streams_a_budget_sustains_and_the_room_it_leaves():
    req = sv.ServingRequest(prompt_tokens=900, output_tokens=100, engine="trtllm", **FP8)
    rep = _replica(req, 2048.0)
    # each stream brings 9 prompt tokens per decode token: B (1 + 9) <= 2048
    assert rep.budget_streams() == pytest.approx(204.8)
    assert rep.prefill_room(100.0) == pytest.approx(1948.0)
    # SGLang's chunked-prefill size counts prompt tokens only
    sg = _replica(dataclasses.replace(req, engine="sglang"), 2048.0, counts_decode=False)
    assert sg.budget_streams() == pytest.approx(2048 / 9) and sg.prefill_room(100.0) == 2048.0
    # a pipeline of 2 stages runs B/2 streams per stage step
    assert _replica(req, 2048.0, lay=Layout(1, 2)).budget_streams() == pytest.approx(409.6)


def _est(**kw):
    req = sv.ServingRequest(prompt_tokens=3800, output_tokens=250, tp=1, engine="trtllm", **FP8, **kw)
    return sv.estimate_serving(L70, "llama2-70b", load_system("node-8x-b200").with_gpus(8), req)


def test_a_small_budget_caps_the_offline_batch_and_slows_a_latency_bound_server():
    wide, tight = _est(max_num_tokens=65536), _est(max_num_tokens=1024)
    assert tight.batch.value == pytest.approx(1024 * 250 / 4050, rel=1e-6)  # within the 4,096-token window
    assert wide.batch.value > 2 * tight.batch.value
    srv = dict(mode="server", ttft_target_s=3.0, tpot_target_s=0.1, percentile="p99")
    wide_s, tight_s = _est(max_num_tokens=8192, **srv), _est(max_num_tokens=1024, **srv)
    assert tight_s.tokens_per_s_system.value < wide_s.tokens_per_s_system.value
    assert tight_s.ttft.value <= 3.0 * (1 + 1e-6)


def test_the_engine_default_budget_is_stated_and_used():
    e = _est()
    assert e.knobs["max_num_tokens"] is None
    assert any("default step budget 8192 tokens" in a for a in e.assumptions)
    note = next(a for a in e.assumptions if a.startswith("step token budget"))
    assert "8192 tokens per replica (prefill and decode tokens; TensorRT-LLM default)" in note
    assert "(the KV memory binds)" in note
    tight = next(a for a in _est(max_num_tokens=1024).assumptions if a.startswith("step token budget"))
    assert "--max-num-tokens" in tight and "(the step budget binds)" in tight
    assert e.tokens_per_s_system.value == pytest.approx(_est(max_num_tokens=8192).tokens_per_s_system.value)


@pytest.mark.parametrize("bad", [0, -5, float("nan")])
def test_bad_budget_is_a_one_line_error(bad):
    with pytest.raises(BadInput, match="max_num_tokens"):
        sv.ServingRequest(max_num_tokens=bad)


def test_cli_round_trips_the_budget_and_refuses_zero():
    base = ["plan", "infer", "-s", "node-8x-h100", "--model", "llama3.1-8b", "--engine", "trtllm"]
    assert round_trip(base, "--max-num-tokens", ["--max-num-tokens", "2048"], "0")["max_num_tokens"] == 2048


def test_a_fixed_batch_the_budget_cannot_carry_says_what_binds():
    from recoque.errors import DoesNotFit

    req = sv.ServingRequest(prompt_tokens=4, output_tokens=1, tp=1, batch=64, max_num_tokens=4, **FP8)
    with pytest.raises(DoesNotFit) as exc:
        sv.estimate_serving(L70, "llama2-70b", load_system("node-8x-mi300x").with_gpus(8), req)
    # 4 tokens a step, 5 per request (4 prompt + 1 decode) for each output token: 0.8 streams
    assert "step budget 0.8" in str(exc.value) and "--max-num-tokens" in exc.value.fix
