"""The LM head of a quantized checkpoint stays 16-bit (planner.serving_step._head_s)."""
import dataclasses

import pytest

from recoque.planner.serving_step import Layout, Precision, Rates, _head_s
from recoque.planner.workload import load_model

L70 = load_model("llama2-70b")
RATES = Rates(gemm_flop_s=1e15, attention_flop_s=8e14, hbm_bytes_s=4e12, link_bytes_s=3e11, hop_latency_s=2e-6,
              kernel_gap_s=3e-6, step_overhead_s=5e-4)


def test_the_lm_head_stays_16_bit_under_fp8_and_fp4_weights():
    r = dataclasses.replace(RATES, head_flop_s=RATES.gemm_flop_s / 2)   # fp8 body at 2x the 16-bit rate
    fp8, bf16 = Precision(1.0, 1.0), Precision(2.0, 2.0)
    big = 4096.0   # rows: the math binds
    assert _head_s(L70, Layout(1), fp8, big, r) == pytest.approx(_head_s(L70, Layout(1), bf16, big, dataclasses.replace(r, gemm_flop_s=RATES.gemm_flop_s / 2)))
    one = 1.0      # one row: the 2-byte weight read binds
    assert _head_s(L70, Layout(1), fp8, one, r) == pytest.approx(_head_s(L70, Layout(1), bf16, one, r), rel=0.05)
    # without a stated 16-bit rate the head follows the body (the old behaviour, kept for hand-made Rates)
    assert _head_s(L70, Layout(1), fp8, big, RATES) < _head_s(L70, Layout(1), fp8, big, r)
