"""TP all-reduce fused with the residual add and RMSNorm (planner.serving_step kernel counts): the
two add+norm kernels of a layer run inside its two TP all-reduces. TensorRT-LLM does it by default,
vLLM and SGLang when asked (seeds/serving.toml [engines.*] allreduce_norm_fusion); --allreduce-fusion
sets it for one run."""
import json

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner import serving as sv
from recoque.planner.serving_rates import load_engine
from recoque.planner.serving_step import Layout, Precision, Rates, kernels_per_layer, step_time
from recoque.planner.workload import load_model

L70 = load_model("llama3.1-70b")
DS = load_model("deepseek-r1")
RATES = Rates(gemm_flop_s=2e15, attention_flop_s=1e15, hbm_bytes_s=7e12, link_bytes_s=6e11, hop_latency_s=2e-6,
              kernel_gap_s=3e-6, step_overhead_s=5e-4)
FUSED = Precision(1.0, 1.0, fused_allreduce_norm=True)


def test_fusion_takes_the_two_norm_kernels_out_of_a_layer():
    assert kernels_per_layer(L70, fused_norms=True) == kernels_per_layer(L70) - 2.0 == 10.0
    plain = step_time(L70, Layout(tp=8), Precision(1.0, 1.0), 4.0, 0.0, 1024.0, 1024.0, RATES)
    fused = step_time(L70, Layout(tp=8), FUSED, 4.0, 0.0, 1024.0, 1024.0, RATES)
    assert plain.launch_s - fused.launch_s == pytest.approx(L70.layers * 2.0 * RATES.kernel_gap_s)
    assert (fused.gemm_s, fused.comm_s, fused.attention_s) == (plain.gemm_s, plain.comm_s, plain.attention_s)


@pytest.mark.parametrize("lay", [Layout(tp=1), Layout(tp=8, ep=8, attn_dp=True)])
def test_no_tp_all_reduce_nothing_to_fuse(lay):
    """One GPU has no all-reduce, and with attention data-parallel the attention has none either:
    the flag changes nothing there (TensorRT-LLM enables it under the same condition)."""
    model = L70 if lay.tp == 1 else DS
    plain = step_time(model, lay, Precision(1.0, 1.0), 4.0, 0.0, 1024.0, 1024.0, RATES)
    assert step_time(model, lay, FUSED, 4.0, 0.0, 1024.0, 1024.0, RATES).launch_s == plain.launch_s


def test_engine_defaults_and_the_request_override():
    assert load_engine("trtllm").allreduce_norm_fusion is True
    assert not load_engine("vllm").allreduce_norm_fusion and not load_engine("sglang").allreduce_norm_fusion
    assert sv.allreduce_fusion_on(sv.ServingRequest(engine="trtllm"), load_engine("trtllm"))
    assert not sv.allreduce_fusion_on(sv.ServingRequest(engine="trtllm", allreduce_fusion=False), load_engine("trtllm"))
    assert sv.allreduce_fusion_on(sv.ServingRequest(engine="vllm", allreduce_fusion=True), load_engine("vllm"))


@pytest.mark.parametrize("bad", ["yes", 1, 0.0])
def test_a_non_boolean_setting_is_refused(bad):
    with pytest.raises(BadInput, match="all-reduce fusion must be true or false"):
        sv.ServingRequest(allreduce_fusion=bad)


def test_flag_reaches_the_request_speeds_a_low_batch_step_and_says_so():
    base = ["plan", "infer", "-s", "node-8x-h200", "--model", "llama3.1-70b", "--tp", "8", "--engine", "vllm",
            "--dtype", "fp8", "--batch", "4", "--prompt-tokens", "1000", "--output-tokens", "1000", "--json"]
    runs = {}
    for flag in ("--allreduce-fusion", "--no-allreduce-fusion"):
        out = CliRunner().invoke(app, base + [flag])
        assert out.exit_code == 0, out.output
        runs[flag] = json.loads(out.output)
    on, off = runs["--allreduce-fusion"], runs["--no-allreduce-fusion"]
    assert on["serving_request"]["allreduce_fusion"] is True and off["serving_request"]["allreduce_fusion"] is False
    assert on["inference"]["tpot"]["value"] < off["inference"]["tpot"]["value"]
    assert any("fused with the residual add and RMSNorm (as set)" in a for a in on["assumptions"])
