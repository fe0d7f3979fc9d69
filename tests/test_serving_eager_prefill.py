"""Prefill forwards without graph replay (planner.serving, seeds/serving.toml [engines.*]
prefill_graphs and [kernel] eager_kernel_us). SGLang replays graphs for decode batches only: each
prompt's prefill runs eagerly, as a forward of its own, and pays every layer's kernels x the eager
cost on top of its GPU work, in its own TTFT and, spread over the steps, in every running stream's
TPOT. vLLM and TensorRT-LLM keep the graph-replay kernel gap."""
import dataclasses
import math

import pytest

from recoque.catalog import get_device_spec
from recoque.planner import serving as sv
from recoque.planner.serving_rates import kernel_constants, load_engine
from recoque.planner.serving_step import Layout, kernels_per_layer
from recoque.planner.system import load_system
from recoque.planner.workload import load_model

DS = load_model("deepseek-r1")
SYSTEM = load_system("node-8x-h200")
FP8 = dict(weights="fp8", activations="fp8", kv_cache="fp8")


def _rates(engine="sglang", corner="value"):
    return sv.sr.rate_set(get_device_spec("h200"), SYSTEM, "fp8", 8, load_engine(engine)).rates[corner]


def _replica(prefill_eager: bool, prompt=1000.0, output=1000.0):
    req = sv.ServingRequest(prompt_tokens=prompt, output_tokens=output, engine="sglang", tp=8, **FP8)
    rates = _rates() if prefill_eager else dataclasses.replace(_rates(), eager_kernel_s=0.0)
    eff = sv.sr.rate_set(get_device_spec("h200"), SYSTEM, "fp8", 8, load_engine("sglang")).efficiency["value"]
    return sv._Replica(DS, req, Layout(8), rates, eff, 16384.0, budget_counts_decode=False)


def test_engines_say_whether_prefill_replays_graphs():
    assert load_engine("sglang").prefill_graphs is False
    assert load_engine("vllm").prefill_graphs and load_engine("trtllm").prefill_graphs
    assert "run eagerly" in load_engine("sglang").note() and "replay graphs" in load_engine("vllm").note()


def test_each_corner_pays_what_the_engine_does():
    """SGLang at every corner (fast: 20 us, slow: 55 us); vLLM and TensorRT-LLM only at the slow one,
    where the run's capture sizes may stop below a prefill step's tokens."""
    k = kernel_constants()
    assert [_rates("sglang", c).eager_kernel_s * 1e6 for c in ("value", "high", "low")] == pytest.approx(
        [k["eager_kernel_us"], k["eager_kernel_us_low"], k["eager_kernel_us_high"]])
    for engine in ("vllm", "trtllm"):
        assert _rates(engine, "value").eager_kernel_s == _rates(engine, "high").eager_kernel_s == 0.0
        assert _rates(engine, "low").eager_kernel_s == pytest.approx(k["eager_kernel_us"] * 1e-6)


def test_the_stated_eager_cost_is_the_cited_measurement_per_counted_kernel():
    """SGLang PR #12160: a DeepSeek-V3 one-token prefill took 82.64 ms eager, 23.10 ms replayed."""
    k = kernel_constants()
    per_kernel_s = (82.64e-3 - 23.10e-3) / (DS.layers * kernels_per_layer(DS, quantized_activations=True))
    assert k["eager_kernel_us"] == pytest.approx(per_kernel_s * 1e6, abs=0.05)
    assert k["eager_kernel_us_low"] < k["eager_kernel_us"] < k["eager_kernel_us_high"]


def test_an_eager_forward_costs_every_layers_kernels():
    eager, graphed = _replica(True), _replica(False)
    expected = DS.layers * kernels_per_layer(DS, quantized_activations=True) * eager.r.eager_kernel_s
    assert eager.eager_forward_s() == pytest.approx(expected) and expected > 0.05
    assert graphed.eager_forward_s() == 0.0


def test_the_prompts_own_forward_lands_in_its_ttft():
    eager, graphed = _replica(True), _replica(False)
    b = 16.0
    own = eager.prefill_s(b) - graphed.prefill_s(b)
    shared = eager.step_s(b, eager.chunk(b)) - graphed.step_s(b, graphed.chunk(b))
    assert own == pytest.approx(eager.eager_forward_s() + shared)


def test_the_running_streams_wait_for_the_prefill_forwards():
    """b streams end every O steps each: b/O prompts a step, a forward after each step that has one."""
    eager, graphed = _replica(True), _replica(False)
    for b in (4.0, 64.0):
        per_step = 1.0 - math.exp(-b / 1000.0)
        assert eager.prefill_forwards(b) == pytest.approx(per_step)
        assert eager.step_s(b) - graphed.step_s(b) == pytest.approx(per_step * eager.eager_forward_s())
        assert eager.throughput(b) < graphed.throughput(b)


def test_prompts_that_wait_together_share_one_forward():
    eager = _replica(True, prompt=100.0, output=100.0)
    assert eager.prefill_forwards(4000.0) == pytest.approx(1.0)   # 40 prompts a step: one forward takes them
    assert eager.prefill_forwards(100.0) == pytest.approx(1.0 - math.exp(-1.0))   # one a step on average
    assert eager.prefill_forwards(1.0) == pytest.approx(0.01, rel=0.01)


def test_a_prompt_in_several_chunks_takes_as_many_forwards():
    eager = _replica(True, prompt=40000.0, output=1000.0)
    assert eager.prefill_forwards(4.0) == pytest.approx(1.0 - math.exp(-4.0 / 1000.0 * 3))   # ceil(40,000 / 16,384) = 3


def test_an_sglang_plan_pays_it_and_says_so(monkeypatch):
    req = sv.ServingRequest(prompt_tokens=1000, output_tokens=1000, engine="sglang", tp=8, concurrency=16, **FP8)
    eager = sv.estimate_serving(DS, "deepseek-r1", SYSTEM, req)
    graphed_engine = dataclasses.replace(load_engine("sglang"), prefill_graphs=True)
    monkeypatch.setattr(sv.sr, "load_engine", lambda key: graphed_engine)
    graphed = sv.estimate_serving(DS, "deepseek-r1", SYSTEM, req)
    assert any("prefill forwards run eagerly" in a for a in eager.assumptions)
    assert eager.ttft.value - graphed.ttft.value > 0.05   # ~58 ms: 61 layers x 26.7 kernels x 36.6 us
    assert eager.tokens_per_s_system.value < graphed.tokens_per_s_system.value
