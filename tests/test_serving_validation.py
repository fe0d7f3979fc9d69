"""The serving calibration set (seeds/validation.toml [[serving]]) against the model: thresholds of
issue 9, honest ranges, and that the seeds carry units and sources."""
from dataclasses import replace

import pytest

from recoque.fileio import read_seed_toml
from recoque.planner import serving_validation as sv


@pytest.fixture(scope="module")
def checks():
    return sv.run_all()


def test_calibration_set_meets_the_thresholds(checks):
    cal = [c for c in checks if c.case.role == "calibration"]
    assert len(cal) == 4
    s = sv.summarize(checks, "calibration")
    assert s.mean_abs_error <= 0.10 and s.max_abs_error <= 0.15
    assert s.inside == 4 and s.passed


def test_every_case_runs_and_its_range_holds_the_published_figure(checks):
    for c in checks:
        assert c.estimate is not None, f"{c.case.key}: {c.note}"
        t = c.estimate.tokens_per_s_system
        assert t.low <= t.value <= t.high
    sanity = [c for c in checks if c.case.role == "sanity"]
    assert len(sanity) >= 3
    assert sum(c.inside for c in sanity) >= 0.8 * len(sanity)


def test_amd_case_is_in_the_calibration_set(checks):
    amd = [c for c in checks if c.case.role == "calibration" and "mi300x" in c.case.system]
    assert amd and abs(amd[0].error) <= 0.15 and amd[0].case.request.engine == "vllm-v0"  # vLLM 0.4.3: the V0 engine


def test_cases_carry_sources_and_units_in_keys():
    for raw in read_seed_toml("validation.toml")["serving"]:
        assert raw["sources"].get("published"), raw["key"]
        assert "published_output_tokens_per_s" in raw and "prompt_tokens_mean" in raw


def test_engine_and_rate_constants_have_sources_and_ranges():
    seed = read_seed_toml("serving.toml")
    for key, eng in seed["engines"].items():
        assert eng["engine_efficiency_low"] <= eng["engine_efficiency"] <= eng["engine_efficiency_high"] <= 1.0
        assert eng["sources"]["engine_efficiency"] and eng["sources"]["step_overhead_ms"], key
    for dev, rates in seed["rates"].items():
        # a device may seed only some rates (A100, GH200, L40S, H100 PCIe, MI300A: measured HBM only); the rest fall
        # back to the datasheet x achieved fraction, so each rate present needs its range and source
        present = [k for k in ("fp4_gemm_tflops", "fp8_gemm_tflops", "bf16_gemm_tflops", "fp16_gemm_tflops", "hbm_read_tb_s") if k in rates]
        assert present and set(rates) - {"sources"} == {f"{k}{s}" for k in present for s in ("", "_low", "_high")}, dev
        for k in present:
            assert rates[f"{k}_low"] <= rates[k] <= rates[f"{k}_high"], (dev, k)
            assert rates["sources"][k], (dev, k)


def test_a_seeded_hbm_rate_replaces_the_pooled_fraction():
    # MI300A at AMD's BabelStream Triad floor (3.25 TB/s), well under the pooled 0.80 x 5.3 TB/s;
    # H100 PCIe at its measured triad (1.83), above 0.80 x 2.0; a part without an entry keeps the fallback
    from recoque.catalog import get_device_spec
    from recoque.planner.workloads import memory_rate
    from recoque.planner.serving_rates import hbm_rates
    for key, tb_s in (("mi300a", 3.25), ("h100_pcie", 1.83)):
        spec = get_device_spec(key)
        (value, low, high), note = hbm_rates(spec)
        assert value == pytest.approx(tb_s * 1e12) and low < value < high and "seeds/serving.toml" in note
        assert (value < memory_rate(spec).value) == (key == "mi300a")
    spec = get_device_spec("h100_nvl")
    (value, _, _), note = hbm_rates(spec)
    assert value == pytest.approx(memory_rate(spec).value) and "achieved fraction" in note


def test_host_work_per_request_bounds_the_pessimistic_end_only():
    # TensorRT-LLM: 0 us per running request at the centre, 29.4 us at the pessimistic end (PR #10273),
    # overlapped with the GPU step, so one rank serves at most 1 / 29.4 us tokens/s there; vLLM states none
    from recoque.planner.serving_rates import load_engine
    assert load_engine("trtllm").host_per_request_s == pytest.approx((0.0, 0.0, 29.4e-6))
    assert load_engine("vllm").host_per_request_s == (0.0, 0.0, 0.0)
    case = next(c for c in sv.load_cases(seed_file="serving_checks_trtllm_moe.toml")
                if c.key == "trtllm03-qwen3-30b-a3b-fp4-1xb200-tp1-1000-1000")
    e = sv.run_case(case).estimate
    tps = e.tokens_per_s_per_gpu
    assert e.batch.value > 1000 and tps.value > 1.0 / 29.4e-6  # the centre is not host-bound
    assert tps.low <= e.group_tokens_per_s_per_gpu["engine (step overhead, efficiency)"][0] <= 1.0 / 29.4e-6


def test_a_step_lasts_at_least_its_host_work():
    from types import SimpleNamespace
    from recoque.planner.serving import _Replica
    from recoque.planner.serving_step import StepTime
    st = StepTime(gemm_compute_s=1e-3, gemm_memory_s=0.0, gemm_s=1e-3, attention_s=1e-3, elementwise_s=0.0,
                  comm_s=0.0, launch_s=0.0, overhead_s=0.0)
    rep = SimpleNamespace(eff=0.5)  # the GEMMs at 1 ms, the attention's 1 ms at 1/0.5: a 3 ms step
    assert _Replica.seconds(rep, st) == pytest.approx(3e-3)
    assert _Replica.seconds(rep, replace(st, host_s=2e-3)) == pytest.approx(3e-3)  # hidden beside the step
    assert _Replica.seconds(rep, replace(st, host_s=5e-3)) == pytest.approx(5e-3)  # outlasts it
    assert replace(st, host_s=5e-3).total_s == st.total_s  # host work is not a kernel: the shares keep their sum


def test_a_bad_case_is_a_one_line_error():
    from recoque.errors import BadInput
    with pytest.raises(BadInput):
        sv.case_from_toml({"key": "x", "model": "llama2-70b"}, 0)
    with pytest.raises(BadInput):
        sv.case_from_toml({"key": "x", "model": "llama2-70b", "system": "node-8x-h100", "role": "tuned",
                           "published_output_tokens_per_s": 1, "prompt_tokens_mean": 1, "output_tokens_mean": 1}, 0)


def _closed_loop_case(**extra):
    raw = {"key": "x", "model": "llama2-70b", "system": "node-8x-h100", "published_output_tokens_per_s": 400.0,
           "prompt_tokens_mean": 1000, "output_tokens_mean": 1000, "concurrency": 8, **extra}
    return sv.case_from_toml(raw, 0)


def test_closed_loop_ratio_holds_the_run_against_its_own_medians():
    # 8 streams x 1000 tokens / (0.5 s + 1000 x 19.5 ms) = 400 tokens/s: consistent
    ok = _closed_loop_case(published_ttft_ms=500.0, published_tpot_ms=19.5)
    assert ok.closed_loop_ratio() == pytest.approx(1.0) and ok.in_verdict and ok.why_not_in_verdict == ""
    slow = _closed_loop_case(published_ttft_ms=500.0, published_tpot_ms=9.75)  # medians say 2x the throughput
    assert slow.closed_loop_ratio() == pytest.approx(400.0 / (8 * 1000 / 10.25), rel=1e-9)
    assert not slow.in_verdict and "0.51 of what its own median TTFT and TPOT give 8" in slow.why_not_in_verdict
    assert _closed_loop_case().closed_loop_ratio() is None and _closed_loop_case().in_verdict  # no medians: kept


def test_a_case_carries_the_runs_memory_fraction():
    c = _closed_loop_case(hbm_fraction=0.95)
    assert c.request.hbm_fraction == 0.95
    from recoque.errors import BadInput
    with pytest.raises(BadInput, match="HBM fraction"):
        _closed_loop_case(hbm_fraction=1.5)
