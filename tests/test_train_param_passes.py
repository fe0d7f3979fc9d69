"""Once-per-iteration passes over a GPU's whole parameter set: Megatron's gradient-buffer zeroing and
Transformer Engine's weight quantisation for fp8/fp4 GEMMs (train_core.param_passes_s)."""
from dataclasses import replace

import pytest

from recoque.planner.stacks import load_stack
from recoque.planner.train import BREAKDOWN_KEYS, hardware_for, plan_arrays
from recoque.planner.train_core import WEIGHT_QUANT_BYTES, core
from recoque.planner.train_kernels import embedding_params_on_stage, params_on_stage
from recoque.planner.validation import load_cases, shipped_profile

CASE = "mlperf51-llama31-8b-cisco-8x8-h100"  # Megatron-Core, fp8 with fp8 params, bf16 gradients, TP1 PP1 DP64


def _case(name=CASE):
    return [c for c in load_cases("train_checks.toml") if c.name == name][0]


def _run(c, dtype=None, stack=None, plan=None, workload=None):
    prof = shipped_profile(c.system.device)
    return core(workload or c.workload, hardware_for(c.system, prof), prof, dtype or c.dtype,
                plan_arrays([plan or c.plan]), stack=stack or c.stack)


def _params(c, plan=None):
    p = plan or c.plan
    lps = c.workload.model.layers / p.pp
    total, _ = params_on_stage(c.workload.model, p.tp, p.pp, p.ep, lps)
    return float(total), float(total - embedding_params_on_stage(c.workload.model, p.tp, p.pp))


def test_fp8_params_zero_the_bf16_buffer_and_transpose_the_gathered_weights():
    c = _case()
    assert c.stack.grad_buffer_zeroed and c.stack.fp8_param_gather and c.stack.grad_buffer_bytes == 2.0
    hbm = hardware_for(c.system, shipped_profile(c.system.device)).hbm_bw
    total, linear = _params(c)
    want = (total * 2.0 + linear * WEIGHT_QUANT_BYTES["fp8_gathered"]) / hbm
    assert _run(c)["param_passes_s"][0] == pytest.approx(want, rel=1e-9)


def test_16bit_weights_are_quantised_from_two_bytes_and_fp4_writes_half_bytes():
    c = _case()
    hbm = hardware_for(c.system, shipped_profile(c.system.device)).hbm_bw
    total, linear = _params(c)
    no_gather = c.stack.with_fp8_param_gather(False)
    assert _run(c, stack=no_gather)["param_passes_s"][0] == pytest.approx((2.0 * total + 4.0 * linear) / hbm, rel=1e-9)


def test_fp4_writes_two_half_byte_copies_and_their_scales():
    c = _case("mlperf51-llama31-8b-dell-1x8-b200-fp4")  # NVFP4 recipe: 16-bit weights, bf16 gradients
    assert c.dtype == "fp4" and not c.stack.fp8_param_gather
    hbm = hardware_for(c.system, shipped_profile(c.system.device)).hbm_bw
    total, linear = _params(c)
    assert WEIGHT_QUANT_BYTES == {"from_16bit": 4.0, "fp8_gathered": 2.0, "fp4": 3.125}
    assert _run(c)["param_passes_s"][0] == pytest.approx((2.0 * total + 3.125 * linear) / hbm, rel=1e-9)


def test_bf16_training_only_zeroes_and_the_buffer_dtype_sets_the_bytes():
    c = _case()
    hbm = hardware_for(c.system, shipped_profile(c.system.device)).hbm_bw
    total, _ = _params(c)
    bf16 = _run(c, dtype="bf16")["param_passes_s"][0]
    assert bf16 == pytest.approx(2.0 * total / hbm, rel=1e-9)
    fp32 = _run(c, dtype="bf16", stack=c.stack.with_reduce_dtype("fp32"))["param_passes_s"][0]
    assert fp32 == pytest.approx(2.0 * bf16, rel=1e-9)


def test_stacks_that_free_their_gradients_pay_no_zeroing():
    c = _case()
    for key in ("fsdp", "deepspeed", "deepspeed-rocm", "torchtitan-rocm"):
        assert not load_stack(key).grad_buffer_zeroed, key
    for key in ("megatron-core", "megatron-lm", "megatron-lm-2021", "megatron-lm-rocm"):
        assert load_stack(key).grad_buffer_zeroed, key
    fsdp = load_stack("fsdp").with_reduce_dtype("bf16")
    assert _run(c, dtype="bf16", stack=fsdp)["param_passes_s"][0] == 0.0


def test_zero3_plans_keep_neither_pass():
    c = _case()
    z3 = replace(c.plan, zero_stage=3)
    assert _run(c, dtype="bf16", stack=load_stack("fsdp"), plan=z3)["param_passes_s"][0] == 0.0


def test_lora_zeroes_only_the_adapters_and_leaves_the_frozen_fp8_base():
    c = [x for x in load_cases() if x.name == "mlperf-lora-70b-8x-mi325x"][0]
    out = _run(c)
    hbm = hardware_for(c.system, shipped_profile(c.system.device)).hbm_bw
    # adapters on QKV and the projection of 80 layers: tens of millions of parameters, microseconds
    assert 0.0 < out["param_passes_s"][0] < 1e8 * 4.0 / hbm


def test_more_sharding_means_fewer_bytes_and_the_breakdown_still_sums():
    c = _case()
    one = _run(c)
    tp2 = _run(c, plan=replace(c.plan, tp=2, dp=c.plan.dp // 2, sequence_parallel=True))
    assert tp2["param_passes_s"][0] < one["param_passes_s"][0]
    assert "param_passes_s" in BREAKDOWN_KEYS
    for out in (one, tp2):
        assert sum(out[k][0] for k in BREAKDOWN_KEYS) == pytest.approx(out["iteration_time_s"][0], rel=1e-9)


def test_a_quoted_stack_switch_is_refused(monkeypatch):
    from recoque.errors import BadInput
    from recoque.planner import stacks
    raw = {"megatron-core": {**stacks._raw()["megatron-core"], "grad_buffer_zeroed": "false"}}
    monkeypatch.setattr(stacks, "_raw", lambda: raw)
    with pytest.raises(BadInput, match="grad_buffer_zeroed must be true or false, got 'false'"):
        load_stack("megatron-core")
