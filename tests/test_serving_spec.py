"""Speculative decoding in the serving model (planner.serving, planner.serving_step): k draft tokens
per step, each accepted with probability a, verified in one pass of the target; the draft is k
passes of one layer plus the LM head (an MTP module or EAGLE head)."""
import dataclasses
import math

import pytest

from recoque.errors import BadInput
from recoque.planner import serving as sv
from recoque.planner.serving_step import Layout, Precision, Rates, draft_time, step_time
from recoque.planner.system import load_system
from recoque.planner.workload import load_model

from infer_flags import round_trip

L70 = load_model("llama2-70b")
FP8 = dict(weights="fp8", activations="fp8", kv_cache="fp8")
RATES = Rates(gemm_flop_s=1e15, attention_flop_s=8e14, hbm_bytes_s=4e12, link_bytes_s=3e11, hop_latency_s=2e-6,
              kernel_gap_s=3e-6, step_overhead_s=5e-4)


def _est(**kw):
    req = sv.ServingRequest(prompt_tokens=1000, output_tokens=500, tp=2, engine="trtllm", **FP8, **kw)
    return sv.estimate_serving(L70, "llama2-70b", load_system("node-8x-h200").with_gpus(8), req)


def test_tokens_per_step_follow_the_geometric_acceptance():
    # Leviathan et al. 2023: (1 - a^(k+1)) / (1 - a); 3 drafts at 0.85 -> 3.19 tokens a step
    req = sv.ServingRequest(spec_tokens=3)
    rep = sv._Replica(L70, req, Layout(1), dataclasses.replace(RATES, spec_acceptance=0.85), 1.0, 8192.0)
    assert rep.accepted() == pytest.approx((1 - 0.85 ** 4) / 0.15)
    assert rep.accepted() == pytest.approx(3.1866, abs=1e-4)
    plain = sv._Replica(L70, sv.ServingRequest(), Layout(1), RATES, 1.0, 8192.0)
    assert plain.accepted() == 1.0


def test_a_verify_pass_reads_the_kv_once_and_runs_the_gemms_over_every_query():
    one = step_time(L70, Layout(1), Precision(1.0, 1.0), 256.0, 0.0, 2000.0, 1000.0, RATES)
    four = step_time(L70, Layout(1), Precision(1.0, 1.0), 256.0, 0.0, 2000.0, 1000.0, RATES, queries=4.0)
    assert four.attention_s == pytest.approx(one.attention_s)          # GQA decode: the KV read is shared
    # 4x the GEMM rows: 4 x the math, less the last partial row tile's waste (m / (m + 32) at 256 and 1024 rows)
    assert four.gemm_compute_s == pytest.approx(4 * one.gemm_compute_s * (256 / 288) / (1024 / 1056), rel=1e-6)
    assert four.gemm_memory_s == pytest.approx(one.gemm_memory_s)      # the weights are read once
    d1 = draft_time(L70, Layout(1), Precision(1.0, 1.0), 256.0, 2000.0, RATES, 1)
    d3 = draft_time(L70, Layout(1), Precision(1.0, 1.0), 256.0, 2000.0, RATES, 3)
    assert d3.total_s == pytest.approx(3 * d1.total_s) and draft_time(L70, Layout(1), Precision(), 256.0, 2000.0, RATES, 0).total_s == 0
    # one draft pass is about one layer of the target (plus the head): a small share of a target step
    assert 0 < d1.total_s < 0.1 * one.total_s


def test_speculation_helps_where_the_step_is_latency_bound_and_little_where_it_is_compute_bound():
    srv = dict(mode="server", ttft_target_s=2.0, tpot_target_s=0.02, percentile="p99")
    base, spec = _est(**srv), _est(spec_tokens=3, **srv)
    assert spec.tokens_per_s_system.value > 1.3 * base.tokens_per_s_system.value
    assert spec.tpot.value <= 0.02 * (1 + 1e-6)
    off_base, off_spec = _est(), _est(spec_tokens=3)
    gain = off_spec.tokens_per_s_system.value / off_base.tokens_per_s_system.value
    assert gain < 1.3   # at the KV-memory batch the verify pass costs ~ (1 + k) x the GEMM math
    # no drafts, no change
    assert _est(spec_tokens=0).tokens_per_s_system.value == pytest.approx(off_base.tokens_per_s_system.value)


def test_the_acceptance_is_stated_and_its_range_widens_the_estimate():
    e = _est(spec_tokens=3, mode="server", ttft_target_s=2.0, tpot_target_s=0.02, percentile="p99")
    note = next(a for a in e.assumptions if a.startswith("speculative decoding"))
    assert "0.85 (0.60-0.90" in note and ": 3.19 (2.18-3.44) tokens per stream per step" in note
    m = _est(spec_tokens=3, spec_acceptance=0.7, mode="server", ttft_target_s=2.0, tpot_target_s=0.02, percentile="p99")
    assert any("probability 0.70 (0.70-0.70, --spec-acceptance)" in a for a in m.assumptions)
    assert m.tokens_per_s_system.value < e.tokens_per_s_system.value
    assert e.tokens_per_s_system.high / e.tokens_per_s_system.low > m.tokens_per_s_system.high / m.tokens_per_s_system.low


@pytest.mark.parametrize("kw", [dict(spec_tokens=-1), dict(spec_tokens=17), dict(spec_tokens=1.5), dict(spec_tokens=True),
                                dict(spec_tokens=2, spec_acceptance=0.0), dict(spec_tokens=2, spec_acceptance=1.0),
                                dict(spec_tokens=2, spec_acceptance=float("nan")), dict(spec_acceptance=0.8),
                                dict(spec_tokens=2, requests=100)])
def test_bad_speculation_settings_are_one_line_errors(kw):
    with pytest.raises(BadInput, match="spec|speculative"):
        sv.ServingRequest(**kw)


def test_cli_round_trips_the_speculation_flags():
    base = ["plan", "infer", "-s", "node-8x-h200", "--model", "llama3.1-8b", "--engine", "trtllm", "--spec-tokens", "2"]
    d = round_trip(base, "--spec-acceptance", ["--spec-acceptance", "0.75"], "1.5")
    assert d["spec_tokens"] == 2 and math.isclose(d["spec_acceptance"], 0.75)
    plain = base[:-2]
    assert round_trip(plain, "--spec-tokens", ["--spec-tokens", "0"], "-1")["spec_tokens"] == 0   # 0 = no speculation


def test_a_step_yields_no_more_tokens_than_the_answer_has():
    # 8 drafts at 0.95 accept ~6.7 tokens a step; a 2-token answer gets 2 (before: TPOT = step / 6.7)
    req = sv.ServingRequest(spec_tokens=8, output_tokens=2)
    rep = sv._Replica(L70, req, Layout(1), dataclasses.replace(RATES, spec_acceptance=0.95), 1.0, 8192.0)
    assert rep.accepted() == 2.0
    assert rep.tpot(4.0) == pytest.approx(rep.step_s(4.0) / 2.0)


def test_the_wait_for_the_next_step_is_half_a_step_not_half_a_token():
    # a fixed batch: TTFT = its prefill + half an engine step (before: half a TPOT, 1/3.2 of that here)
    req = sv.ServingRequest(prompt_tokens=1000, output_tokens=500, spec_tokens=3, batch=32)
    rep = sv._Replica(L70, req, Layout(1), dataclasses.replace(RATES, spec_acceptance=0.85), 1.0, 8192.0)
    p = sv.solve(rep, req, cap=64.0, replicas=1)
    assert p.ttft_s == pytest.approx(rep.prefill_s(32.0) + 0.5 * rep.step_s(32.0), rel=1e-12)
