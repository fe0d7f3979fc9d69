"""Attention projections a checkpoint keeps apart from its quantization (planner.serving_step
dense_gemm_s, planner.serving weights_bytes_per_gpu and as_released): their bytes and GEMM rate in
their own dtype."""
import dataclasses
import json

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner.serving import ServingRequest, as_released, precision, weights_bytes_per_gpu
from recoque.planner.serving_step import Layout, Rates, attention_split, dense_gemm_s, mla_replicated_params
from recoque.planner.workload import load_model

R1 = load_model("deepseek-r1")
OSS = load_model("gpt-oss-120b")
L8 = load_model("llama3.1-8b")
RATES = Rates(gemm_flop_s=4e15, attention_flop_s=1e15, hbm_bytes_s=8e12, link_bytes_s=3e11, hop_latency_s=2e-6,
              kernel_gap_s=3e-6, step_overhead_s=5e-4)


def test_the_split_is_the_attention_and_the_output_projection_maps_heads_to_hidden():
    for m in (R1, OSS, L8):
        inputs, out = attention_split(m)
        assert inputs + out == pytest.approx(m.attention_params_per_layer())
    assert attention_split(R1)[1] == 128 * 128 * 7168                 # MLA: heads x v_head_dim x hidden
    assert attention_split(L8)[1] == 4096 * 4096                       # GQA: heads x head_dim x hidden
    assert attention_split(OSS)[1] == 64 * 64 * 2880 + 2880            # with its bias


def test_bf16_attention_reads_its_two_bytes_and_runs_at_its_rate():
    fp4 = ServingRequest(weights="fp4", activations="fp4", kv_cache="fp8")
    mixed = dataclasses.replace(fp4, attention_weights="bf16")
    bf16_rate = RATES.gemm_flop_s / 4                                  # a 16-bit GEMM at a quarter of the fp4 rate
    r = dataclasses.replace(RATES, attention_proj_flop_s=(bf16_rate, bf16_rate))
    lay = Layout(tp=8)
    c0, m0 = dense_gemm_s(R1, lay, precision(fp4), 1.0, RATES)
    c1, m1 = dense_gemm_s(R1, lay, precision(mixed), 1.0, r)
    # per GPU: 1/8 of the attention, and MLA's down-projections whole (7/8 more of them)
    attn = R1.attention_params_per_layer() + 7 * mla_replicated_params(R1)
    assert m1 - m0 == pytest.approx(attn * (2.0 - 0.5) / 8 / RATES.hbm_bytes_s)
    big = 8192.0                                                       # prefill rows: the math binds
    c0, _ = dense_gemm_s(R1, lay, precision(fp4), big, RATES)
    c1, _ = dense_gemm_s(R1, lay, precision(mixed), big, r)
    rows = big / (big + RATES.m_half)
    assert c1 - c0 == pytest.approx(2 * big * attn / 8 * (1 / bf16_rate - 1 / RATES.gemm_flop_s) / rows)


def test_only_the_inputs_apart_leaves_the_output_projection_in_the_body():
    v2 = ServingRequest(weights="fp4", activations="fp4", attention_weights="bf16", attention_out_weights="fp4")
    assert v2.attention_dtypes == ("bf16", "fp4") and v2.attention_gemm_dtypes == ("bf16", "")
    p = precision(v2)
    assert p.attention_weight_bytes == (2.0, 0.0)
    lay = Layout(tp=8)
    _, m_all = dense_gemm_s(R1, lay, precision(dataclasses.replace(v2, attention_out_weights=None)), 1.0, RATES)
    _, m_in = dense_gemm_s(R1, lay, p, 1.0, RATES)
    _, m_none = dense_gemm_s(R1, lay, precision(ServingRequest(weights="fp4", activations="fp4")), 1.0, RATES)
    assert m_none < m_in < m_all
    assert m_all - m_in == pytest.approx(attention_split(R1)[1] * 1.5 / 8 / RATES.hbm_bytes_s)


def test_the_weights_in_memory_hold_the_attention_at_its_width():
    fp4 = ServingRequest(weights="fp4", activations="bf16")
    lay = Layout(tp=1)
    extra = weights_bytes_per_gpu(OSS, dataclasses.replace(fp4, attention_weights="bf16"), lay) - weights_bytes_per_gpu(OSS, fp4, lay)
    assert extra == pytest.approx(OSS.layers * OSS.attention_params_per_layer() * 1.5)


def test_gpt_oss_as_released_keeps_bf16_attention_unless_told():
    released = ServingRequest(weights="fp4", activations="bf16")
    assert as_released(OSS, released).attention_weights == "bf16"
    assert as_released(OSS, dataclasses.replace(released, attention_weights="fp4")).attention_weights == "fp4"
    assert as_released(OSS, ServingRequest(weights="bf16")).attention_weights is None  # not the release
    assert as_released(R1, ServingRequest(weights="fp8", activations="fp8")).attention_weights is None


@pytest.mark.parametrize("field", ["attention_weights", "attention_out_weights"])
def test_an_unknown_attention_dtype_is_one_clear_line(field):
    with pytest.raises(BadInput, match=f"unknown {field} dtype 'int3'"):
        ServingRequest(**{field: "int3"})


def test_plan_infer_takes_the_flag_and_says_so():
    args = ["plan", "infer", "-s", "node-8x-mi355x", "--model", "deepseek-r1", "--weights", "fp4", "--activations", "fp4",
            "--tp", "8", "--concurrency", "64", "--json"]
    plain = json.loads(CliRunner().invoke(app, args).stdout)
    res = CliRunner().invoke(app, args + ["--attention-weights", "bf16"])
    assert res.exit_code == 0, res.output
    kept = json.loads(res.stdout)
    assert any("attention projections bf16 weights, as the checkpoint keeps them" in n for n in kept["assumptions"])
    assert kept["serving_request"]["attention_weights"] == "bf16" and plain["serving_request"]["attention_weights"] is None
    assert any("pass --attention-weights bf16" in n for n in plain["assumptions"])   # the hint where it may apply
    assert not any("pass --attention-weights bf16" in n for n in kept["assumptions"])
    assert kept["inference"]["tokens_per_s_per_gpu"]["value"] < plain["inference"]["tokens_per_s_per_gpu"]["value"]
    bad = CliRunner().invoke(app, args + ["--attention-weights", "fp5"])
    assert bad.exit_code != 0 and "unknown attention_weights dtype 'fp5'" in bad.output


def test_the_model_row_weighs_the_attention_at_its_width():
    from recoque.planner.inference import attention_dtypes, weight_bytes

    fp4 = ServingRequest(weights="fp4", activations="fp4")
    assert attention_dtypes(fp4.knobs()) is None
    assert attention_dtypes(dataclasses.replace(fp4, attention_weights="bf16", attention_out_weights="fp4").knobs()) == ("bf16", "fp4")
    inputs, out = attention_split(R1)
    v2 = weight_bytes(R1, "fp4", ("bf16", "fp4")) - weight_bytes(R1, "fp4")
    assert v2 == pytest.approx(R1.layers * inputs * 1.5)
    assert weight_bytes(R1, "fp4", ("bf16", "bf16")) - weight_bytes(R1, "fp4") == pytest.approx(R1.layers * (inputs + out) * 1.5)
    res = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h100", "--model", "gpt-oss-120b", "--tp", "1"])
    assert res.exit_code == 0 and "(fp4 MXFP4, attention bf16)" in res.output
