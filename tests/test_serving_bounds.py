"""The serving range (planner.serving_bounds): each group of constants at its two ends in turn, the
shifts combined in quadrature; never wider than every constant at its worst at once."""
import math

import pytest

from recoque.planner import serving as sv
from recoque.planner import serving_bounds as sb
from recoque.planner.serving_step import Rates
from recoque.planner.serving_validation import load_cases, run_case
from recoque.planner.system import load_system
from recoque.planner.workload import load_model

L70 = load_model("llama2-70b")
FP8 = dict(weights="fp8", activations="fp8", kv_cache="fp8")
# MLPerf Llama-2-70B interactive: p99 TTFT <= 450 ms, p99 TPOT <= 40 ms
INTERACTIVE = dict(prompt_tokens=222.3, output_tokens=294.0, tp=8, mode="server", ttft_target_s=0.45,
                   tpot_target_s=0.04, percentile="p99", **FP8)


def test_shifts_add_in_quadrature_per_side():
    down1, up1, down2 = math.log(0.9), math.log(1.1), math.log(0.8)
    lo, hi = sb.combine_shifts(100.0, [(down1, up1), (down2, 0.0)])
    assert lo == pytest.approx(100.0 * math.exp(-math.hypot(down1, down2)))
    assert hi == pytest.approx(110.0)  # only one group raises it
    # a group whose two ends both lower the output still counts once (its larger fall)
    lo2, hi2 = sb.combine_shifts(100.0, [(math.log(0.95), math.log(0.9))])
    assert lo2 == pytest.approx(90.0) and hi2 == 100.0


def test_an_unbounded_end_stays_unbounded():
    assert sb.combine_shifts(1.0, [(0.0, math.inf)])[1] == math.inf  # e.g. a TTFT whose queue never drains
    assert sb.combine_shifts(1.0, [(-math.inf, 0.0)])[0] == 0.0
    assert sb._log_shift(math.inf, 2.0) == math.inf and sb._log_shift(0.0, 2.0) == -math.inf


STRUCTURAL = {"mla_heads_per_kv_pass", "mla_native_fp8_heads", "p2p_fabric", "exp2_per_s",
              "adp_whole_ffn", "adp_whole_head"}  # one value, no range


def test_every_rate_that_differs_by_corner_is_in_a_group():
    # before: head_flop_s, attention_proj_flop_s and moe_m_half differed by corner but moved no range
    from dataclasses import fields

    from recoque.catalog import get_device_spec
    from recoque.planner import serving_rates as sr
    grouped = {n for _, names, _ in sb.GROUPS for n in names}
    assert {f.name for f in fields(Rates)} - grouped == STRUCTURAL
    system = load_system("jean-zay-h100")
    rs = sr.rate_set(get_device_spec(system.device), system, "fp8", 4, sr.load_engine("trtllm"),
                     weights="fp4", replica_gpus=8)
    low, high = rs.rates["low"], rs.rates["high"]
    assert all(getattr(low, n) == getattr(high, n) for n in STRUCTURAL)
    # TP4 x PP2 on 4-GPU nodes: the stages talk over the 25-50 GB/s NICs, the TP group over NVLink
    assert 0.0 < low.pp_link_bytes_s < high.pp_link_bytes_s < low.link_bytes_s


def test_a_group_corner_moves_only_its_own_constants():
    base = dict(gemm_flop_s=1.0, attention_flop_s=1.0, hbm_bytes_s=1.0, link_bytes_s=1.0, hop_latency_s=1.0,
                kernel_gap_s=1.0, step_overhead_s=1.0)
    rates = {"value": Rates(**base), "low": Rates(**{k: 0.5 for k in base}), "high": Rates(**{k: 2.0 for k in base})}
    eff = {"value": 0.8, "low": 0.6, "high": 0.9}
    links = next(g for g in sb.GROUPS if g[0] == "links")
    r, e = sb.group_corner(rates, eff, links, "low")
    assert (r.link_bytes_s, r.hop_latency_s, r.gemm_flop_s, r.hbm_bytes_s, e) == (0.5, 0.5, 1.0, 1.0, 0.8)
    engine = next(g for g in sb.GROUPS if g[2])
    r, e = sb.group_corner(rates, eff, engine, "high")
    assert (r.step_overhead_s, r.kernel_gap_s, e) == (2.0, 1.0, 0.9)
    # every field the corners move belongs to exactly one group
    names = [n for g in sb.GROUPS for n in g[1]]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("kw", [dict(tp=1, **FP8), INTERACTIVE])
def test_the_range_holds_the_value_and_is_inside_the_all_at_once_corners(kw):
    e = sv.estimate_serving(L70, "l", load_system("node-8x-mi300x"), sv.ServingRequest(**kw))
    t = e.tokens_per_s_per_gpu
    assert t.low < t.value < t.high
    corner = next(a for a in e.assumptions if a.startswith("every constant at its pessimistic"))
    worst, best = (float(x.replace(",", "")) for x in corner.split(": ")[1].split(" output")[0].split(" / "))
    assert worst <= t.low * (1 + 1e-9) and t.high <= best * (1 + 1e-9)
    assert e.tpot.low <= e.tpot.value <= e.tpot.high and e.ttft.low <= e.ttft.value <= e.ttft.high


def test_under_a_latency_target_the_range_no_longer_collapses_to_one_stream():
    """MLPerf v5.1 Llama-2-70B interactive on 8 MI300X (seeds/serving_checks.toml): with every
    constant at its worst the target is met by one stream only (183 tokens/s on the node); the
    combined low is ten times that, and the published 8,455 tokens/s is still inside."""
    case = next(c for c in load_cases(seed_file="serving_checks.toml")
                if c.key == "mlperf51-llama2-70b-interactive-8xmi300x-dell")
    chk = run_case(case)
    t, g = chk.estimate.tokens_per_s_system, chk.estimate.tokens_per_s_per_gpu
    corner = next(a for a in chk.estimate.assumptions if a.startswith("every constant at its pessimistic"))
    worst_per_gpu = float(corner.split(": ")[1].split(" / ")[0].replace(",", ""))
    assert g.low > 10 * worst_per_gpu
    assert t.low <= case.published_tokens_per_s <= t.high


def _groups(**moved):
    """Per-group (low, high) runs of an estimate at 100 tokens/s that only the named groups move."""
    return {name: moved.get(name, (100.0, 100.0)) for name, _, _ in sb.GROUPS}


def test_a_shared_method_group_cancels_in_a_ratio_and_a_device_group_counts_for_each_machine():
    engine = "engine (step overhead, efficiency)"
    lo, hi = sb.ratio_span(100.0, _groups(**{engine: (50.0, 150.0)}), 100.0, _groups(**{engine: (50.0, 150.0)}))
    assert (lo, hi) == (1.0, 1.0)  # the same engine constants on both machines: no spread in the ratio
    gemm = "GEMM and attention rates"
    lo, hi = sb.ratio_span(100.0, _groups(**{gemm: (90.0, 110.0)}), 100.0, _groups(**{gemm: (90.0, 110.0)}))
    # each machine's own rates err independently: two terms of ln 1.1 (up) and ln 0.9 (down)
    assert hi == pytest.approx(math.exp(math.hypot(math.log(1.1), -math.log(0.9))))
    assert lo == pytest.approx(math.exp(-math.hypot(math.log(0.9), -math.log(1.1))))
    # the same device on both sides: its rates are one set of constants too, and cancel
    assert sb.ratio_span(100.0, _groups(**{gemm: (90.0, 110.0)}), 100.0, _groups(**{gemm: (90.0, 110.0)}),
                         same_device=True) == (1.0, 1.0)
    # both collapse at one end of a shared group: the ratio is unknown there
    lo, hi = sb.ratio_span(100.0, _groups(**{engine: (0.0, 100.0)}), 100.0, _groups(**{engine: (0.0, 100.0)}))
    assert lo == 0.0 and hi == math.inf


def test_delivered_h100_equivalents_of_a_serving_run_get_the_ratio_range():
    """8 MI300X against H100s on MLPerf-interactive-like targets: the engine and method constants
    are the same for both predictions, so the ratio's range is narrower than its two ranges taken
    crosswise (which gave 0.03 to 4,000 H100s before the ranges themselves were combined by group)."""
    from recoque.planner.capacity import plan_infer

    rows, data, notes, d, _ = plan_infer(load_system("node-8x-mi300x"), None, "llama2-70b",
                                         request=sv.ServingRequest(**INTERACTIVE))
    eq = d.equivalent.h100e
    assert eq.low < eq.value < eq.high and eq.high / eq.low < 10
    crosswise = d.system_rate.high / d.h100_rate_per_gpu.low / (d.system_rate.low / d.h100_rate_per_gpu.high)
    assert crosswise > 2 * eq.high / eq.low


def test_a_tpot_target_alone_at_the_batch_cap_says_the_first_token_is_unbounded():
    """A 7B model on MI430X meets a 30 ms TPOT even at the 256-stream cap: the load sits at the cap,
    the queue never drains; the table says 'unbounded' (not 'inf days') and how to bound it."""
    from typer.testing import CliRunner

    from recoque.cli import app

    e = sv.estimate_serving(load_model("mistral-7b"), "m", load_system("alice-recoque"),
                            sv.ServingRequest(mode="server", tpot_target_s=0.03))
    assert math.isinf(e.ttft.value) and e.ttft.high == math.inf and e.ttft.low <= e.ttft.value
    assert any(a.startswith("TTFT unbounded") for a in e.assumptions)
    res = CliRunner().invoke(app, ["plan", "infer", "-s", "alice-recoque", "-w", "mistral-7b", "--mode", "server",
                                   "--tpot-ms", "30"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if "time to first token" in x)
    assert "unbounded" in line and "inf" not in line.replace("unbounded", "")


def test_json_output_is_strict_an_unbounded_figure_is_null(capsys):
    import json

    import numpy as np

    from recoque.estimate import Estimate
    from recoque.render import emit_json

    emit_json({"ttft": Estimate(math.inf, 0.06, math.inf, "s"), "x": [float("nan"), np.float64(2.5)], 3: (1, "a")})
    d = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-standard JSON literal {c}"))
    assert d["ttft"]["value"] is None and d["ttft"]["low"] == 0.06 and d["x"] == [None, 2.5] and d["3"] == [1, "a"]
