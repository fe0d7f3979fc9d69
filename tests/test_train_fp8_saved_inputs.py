"""Under fp8 training with Transformer Engine the linear layers keep their fp8 input for the weight
gradient (planner/memory.py, seeds/stacks.toml fp8_saves_inputs): the activation memory that saves,
exactly, and where it does not apply."""
from dataclasses import replace

import pytest

from recoque.planner import train_core as tc
from recoque.planner.execution import ExecutionPlan
from recoque.planner.stacks import load_stack
from recoque.planner.train import evaluate
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

PLAN = ExecutionPlan(tp=4, pp=1, dp=2, micro_batch=1, recompute="none", sequence_parallel=True, zero_stage=1,
                     dp_overlap=True, flash_attention=True)


def _mem(dtype, stack="megatron-core", lora_rank=0, plan=PLAN):
    wl = replace(load_training_workload("llama3.1-70b", 1e9, 8), lora_rank=lora_rank)
    r = evaluate(wl, validation_system("meta-llama3-h100"), plan, shipped_profile("h100_sxm"), dtype,
                 stack=load_stack(stack))
    return r.memory_per_gpu.value, wl.model


def test_fp8_keeps_one_byte_gemm_inputs_and_a_second_copy_of_the_attention_output():
    (bf16, m), (fp8, _) = _mem("bf16"), _mem("fp8")
    s, t = float(m.seq_len), 4.0
    o_w, fk = m.heads * float(m.value_head_dim), float(m.active_ffn_width())
    # per layer: QKV-in and FFN-in 2 -> 1 byte (outside the TP region, split by t with SP); the
    # FFN-out input 2 -> 1 byte; the projection keeps an fp8 copy beside flash attention's 16-bit output
    per_layer = s * float(m.hidden) * 2.0 / t + s * (fk - o_w) / t
    held = m.layers * 1.0      # pp = 1, one micro-batch in flight (the states are the same in both)
    assert bf16 - fp8 == pytest.approx(per_layer * held, rel=1e-9)
    assert fp8 < bf16


def test_the_fsdp_stack_keeps_16_bit_inputs_under_fp8():
    """torchao float8 (the fsdp/torchtitan stacks) keeps the 16-bit input: fp8 changes no memory."""
    plan = replace(PLAN, tp=1, dp=8, zero_stage=3, sequence_parallel=False)
    assert _mem("fp8", "fsdp", plan=plan)[0] == _mem("bf16", "fsdp", plan=plan)[0]


def test_which_runs_keep_fp8_inputs():
    wl = load_training_workload("llama3.1-70b", 1e9, 8)
    te = load_stack("megatron-core")
    assert tc.gemm_input_bytes(wl, "fp8", te) == 1.0 and tc.gemm_input_bytes(wl, "fp4", te) == 1.0
    assert tc.gemm_input_bytes(wl, "bf16", te) == 2.0
    assert tc.gemm_input_bytes(wl, "fp8", load_stack("megatron-lm-rocm")) == 1.0   # TE's ROCm port
    assert tc.gemm_input_bytes(wl, "fp8", load_stack("fsdp")) == 2.0
    # LoRA: the frozen base layers keep nothing, the 16-bit adapters keep 16-bit inputs
    assert tc.gemm_input_bytes(replace(wl, lora_rank=16), "fp8", te) == 2.0
