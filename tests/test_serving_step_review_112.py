"""A review of the serving step model (stop 112): what an attention-DP rank holds and touches, MLA's
replicated down-projections, the busiest rank's prefill over sliding windows."""
import dataclasses

import pytest

from recoque.planner import serving_rates as sr
from recoque.planner.serving_step import (Layout, Precision, Rates, _busiest_rank_prefill_s, _head_s,
                                          _layer_parts, adp_whole_params, dense_ffn_params, dense_gemm_s,
                                          mla_replicated_params, moe_combine_bytes)
from recoque.planner.workload import load_model

R1 = load_model("deepseek-r1")
OSS = load_model("gpt-oss-120b")
RATES = Rates(gemm_flop_s=4e15, attention_flop_s=1e15, hbm_bytes_s=8e12, link_bytes_s=3e11, hop_latency_s=2e-6,
              kernel_gap_s=3e-6, step_overhead_s=5e-4)
FP8 = Precision(1.0, 1.0)
TP8, ADP8 = Layout(8, 1, 8, False), Layout(8, 1, 8, True)


def test_mla_down_projections_are_read_and_run_whole_on_every_tp_rank():
    rep = mla_replicated_params(R1)
    assert rep == R1.hidden * (R1.q_lora_rank + R1.kv_lora_rank + R1.rope_head_dim)  # 7168 x 2112
    assert mla_replicated_params(load_model("llama3.1-8b")) == 0.0
    c1, m1 = dense_gemm_s(R1, Layout(1), FP8, 4.0, RATES)
    c8, m8 = dense_gemm_s(R1, TP8, FP8, 4.0, RATES)
    # at tp 8 a rank reads 1/8 of the split weights and all of the down-projections
    assert m8 == pytest.approx((m1 - rep / RATES.hbm_bytes_s) / 8 + rep / RATES.hbm_bytes_s, rel=1e-9)


def test_an_attention_dp_rank_normalises_only_its_own_tokens():
    elem = _layer_parts(R1, ADP8, FP8, 512.0, 0.0, 2048.0, 1024.0, RATES)[4]
    own = 512.0 / 8 * 10.0 * R1.hidden                       # norms, residuals, rotary: its own tokens
    ffn = 512.0 * 3.0 * R1.active_ffn_width() / 8            # the FFN activation: its slice of every token
    assert elem == pytest.approx(((own + ffn) * 2.0 + moe_combine_bytes(R1, ADP8, 512.0)) / RATES.hbm_bytes_s,
                                 rel=1e-9)


def test_trtllm_reads_the_shared_expert_dense_ffn_and_lm_head_whole_under_attention_dp():
    assert sr.load_engine("trtllm").attention_dp_whole == ("ffn", "lm_head")
    assert sr.load_engine("vllm").attention_dp_whole == ()
    whole = dataclasses.replace(RATES, adp_whole_ffn=True, adp_whole_head=True)
    ffn = dense_ffn_params(R1)
    assert ffn > 0 and adp_whole_params(R1, ADP8, True) == ffn and adp_whole_params(R1, TP8, True) == 0.0
    c0, m0 = dense_gemm_s(R1, ADP8, FP8, 64.0, RATES)
    c1, m1 = dense_gemm_s(R1, ADP8, FP8, 64.0, whole)
    assert c1 == c0  # each rank still runs only its own tokens through them
    assert m1 - m0 == pytest.approx(ffn * 7 / 8 / RATES.hbm_bytes_s, rel=1e-9)
    split, kept = _head_s(R1, ADP8, FP8, 64.0, RATES), _head_s(R1, ADP8, FP8, 64.0, whole)
    read = R1.hidden * R1.vocab * 1.0 / RATES.hbm_bytes_s  # the head whole (at the body's width: no 16-bit rate set)
    assert kept >= read > split


def test_the_busiest_ranks_prefill_attention_counts_only_the_window_a_sliding_layer_sees():
    lay = Layout(4, 1, 4, True)
    _, attn = _busiest_rank_prefill_s(OSS, lay, 1024.0, 1024.0, RATES)
    full = dataclasses.replace(OSS, sliding_layers=0, sliding_window=0)
    _, attn_full = _busiest_rank_prefill_s(full, lay, 1024.0, 1024.0, RATES)
    frac = OSS.attention_pair_fraction(1024.0, causal=True)
    assert 0.5 < frac < 0.7 and attn == pytest.approx(frac * attn_full, rel=1e-2)
