"""fp8 LoRA: the frozen base layers have no weight gradient, so Transformer Engine casts their
input without the transposed copy the weight gradient would read (planner/train_kernels.py). The
backward cast traffic drops by exactly those 2 bytes per input element and one kernel per GEMM."""
from dataclasses import replace

import pytest

from recoque.planner import flops
from recoque.planner.train import hardware_for
from recoque.planner.train_kernels import kernel_times
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

B, TP, CP, EP = 1, 1, 1, 1


def _casts(lora_rank, dtype="fp8"):
    wl = replace(load_training_workload("llama3.1-70b", 1e9, 8), lora_rank=lora_rank)
    prof = shipped_profile("h100_sxm")
    hw = hardware_for(validation_system("meta-llama3-h100"), prof, "value")
    kt = kernel_times(wl, hw, prof, dtype, "value", 1.0, B, TP, CP, EP)
    return float(kt["cast_f"]), float(kt["cast_b"]), wl, hw, prof


def test_lora_backward_casts_skip_the_transposed_input_exactly():
    f_full, b_full, wl, hw, prof = _casts(0)
    f_lora, b_lora, _, _, _ = _casts(16)
    tokens = B * wl.model.seq_len / CP
    shapes = flops.layer_gemm_shapes_fwd(wl.model, tokens, TP, EP)
    saved = sum(c * (2.0 * mm * kk / hw.hbm_bw + prof.kernel_overhead_s()) for mm, _nn, kk, c in shapes)
    assert f_lora == pytest.approx(f_full, rel=1e-12)  # the forward still quantises every input
    assert b_full - b_lora == pytest.approx(saved, rel=1e-9)
    assert 0.0 < b_lora < b_full


def test_16_bit_training_has_no_casts_with_or_without_lora():
    for rank in (0, 16):
        f, b, *_ = _casts(rank, "bf16")
        assert f == 0.0 and b == 0.0
