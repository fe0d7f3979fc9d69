"""Dash et al. 2023 (Frontier, MI250X GCDs) calibration runs, the MI250X profile and the
deepspeed-rocm stack efficiency (issue 12).

The published figures are the paper's GPU-throughput percentages read as TFLOP/s per GCD (a share
of the 191.5 TF GCD peak, as press reports of the paper quote them); the plans are the authors'
launch scripts and run log (seeds/validation.toml says which and why). These tests hold the seed
to those sources and the model to the published figures' ranges."""
import numpy as np
import pytest
from dataclasses import replace

from recoque.planner import flops
from recoque.planner.train import nic_share_bytes_s, plan_arrays, results_from_arrays
from recoque.planner.validation import (fit_stack, fitted_groups, load_cases, public_profile, run_case,
                                        shipped_profile)

GCD_PEAK_TFLOPS = 191.5      # 110 CUs x 1024 FLOP/clk x 1.7 GHz (seeds/hardware.toml mi250x_gcd)
# Dash et al. 2023 abstract: GPU throughput of 38.38 / 36.14 / 31.96 % for 22B / 175B / 1T
PAPER_PERCENT = {"dash-22b-frontier-16gcd": 38.38, "dash-175b-frontier-1024gcd": 36.14,
                 "dash-1t-frontier-3072gcd": 31.96}
# one GCD: the mean of the MAMF table's MI250X row (147.0) and the 127 of ml-engineering issue #76
MAMF_MI250X_TFLOPS, MAMF_SHAPE = (147.0 + 127.0) / 2, (1024, 19968, 14080)
AMD_SUSTAINED_FRACTION = 0.91  # carried over from the A100 fit to every AMD profile (stated)


def _cases():
    return {c.name: c for c in load_cases() if c.group == "dash2023-frontier"}


def _tflop_s_per_gcd(c) -> float:
    """The published iteration time turned back into TFLOP/s per GCD with Megatron eq. 3 and the
    recompute factor 4 (Megatron-DeepSpeed's throughput_calculator under --checkpoint-activations)."""
    m = c.workload.model
    f = flops.megatron_flops_per_iteration(c.workload.global_batch_seqs, m.seq_len, m.layers, m.hidden, m.vocab, True)
    return f / (c.plan.gpus * c.published_time_s * 1e12)


def test_the_three_dash_cases_load_on_frontier_gcds_in_the_verdict():
    cs = _cases()
    assert set(cs) == set(PAPER_PERCENT)
    for c in cs.values():
        assert c.system.device == "mi250x_gcd" and c.system.gpus_per_node == 8
        assert c.stack.key == "deepspeed-rocm" and c.dtype == "fp16"
        # all three in the verdict: the 1T, once kept out when a kept head size made it 18-22% slow,
        # lands within 5% on its launch-script plan with the head size derived (the seed says so)
        assert c.in_verdict
        assert c.plan.recompute == "full" and c.plan.flash_attention and not c.plan.sequence_parallel
        assert not c.plan.dp_overlap  # the DeepSpeed pipeline engine reduces after the schedule
    # 4 Slingshot-11 NICs of 25 GB/s per node shared by 8 GCDs (OLCF user guide)
    assert cs["dash-175b-frontier-1024gcd"].system.inter_node_bandwidth_bytes_s == pytest.approx(4 * 25e9 / 8)
    assert nic_share_bytes_s(cs["dash-175b-frontier-1024gcd"].system) is None  # no second, conflicting figure


def test_published_figures_are_the_papers_tflop_s_per_gcd():
    cs = _cases()
    for name, pct in PAPER_PERCENT.items():
        # the paper's percentage of the GCD peak: 73.5 / 69.2 / 61.2 TFLOP/s per GCD
        assert _tflop_s_per_gcd(cs[name]) == pytest.approx(pct / 100 * GCD_PEAK_TFLOPS, rel=2e-3), name
    # the press quotes of the paper: "38.38% (73.5 TFLOPS), 36.14% (69.2 TFLOPS)"
    assert round(_tflop_s_per_gcd(cs["dash-22b-frontier-16gcd"]), 1) == 73.5
    assert round(_tflop_s_per_gcd(cs["dash-175b-frontier-1024gcd"]), 1) == 69.2
    # at the paper's GCD counts for the two large models (100% weak scaling on 1024 and 3072)
    assert cs["dash-175b-frontier-1024gcd"].plan.gpus == 1024
    assert cs["dash-1t-frontier-3072gcd"].plan.gpus == 3072


def test_the_run_log_is_only_a_noted_discrepancy():
    # The authors' 175B log prints 149.46 TFLOP/s per GCD; the case keeps the paper's figure and
    # names the log's in its source as a discrepancy (2.2x), not as the published value.
    c = _cases()["dash-175b-frontier-1024gcd"]
    assert "149.46" in c.source and "discrepancy" in c.source
    assert 149.46 / _tflop_s_per_gcd(c) > 2.0
    assert c.published_low_s == c.published_high_s == c.published_time_s  # no range borrowed from the log


def test_plans_match_the_authors_scripts_and_log():
    cs = _cases()
    # launch_gpt22b_bf16.slurm: 2 nodes, TP 1, PP 8, micro-batch 1, global batch 640, ZeRO 0,
    # 48 layers, hidden 6144, 48 heads, seq 2048
    c = cs["dash-22b-frontier-16gcd"]
    p, m = c.plan, c.workload.model
    assert (p.tp, p.pp, p.dp, p.micro_batch, p.zero_stage, c.workload.global_batch_seqs) == (1, 8, 2, 1, 0, 640)
    assert (m.layers, m.hidden, m.heads, m.seq_len) == (48, 6144, 48, 2048)
    # the 175B log: TP 4, PP 16, micro-batch 1, global batch 1280 on DP 2 (640 per replica), ZeRO 1,
    # 96 layers, hidden 12288, 96 heads, seq 2048, padded vocab 50688; DP 16 on 1,024 GCDs
    c = cs["dash-175b-frontier-1024gcd"]
    p, m = c.plan, c.workload.model
    assert (p.tp, p.pp, p.dp, p.micro_batch, p.zero_stage) == (4, 16, 16, 1, 1)
    assert c.workload.global_batch_seqs // p.dp == 1280 // 2
    assert (m.layers, m.hidden, m.heads, m.seq_len, m.vocab) == (96, 12288, 96, 2048, 50688)
    # launch_gpt1T_bf16.slurm: TP 4, PP 128, micro-batch 1, global batch 1024 on 128 nodes (DP 2),
    # ZeRO 1, 128 layers, hidden 25600, 200 heads; DP 6 on 3,072 GCDs
    c = cs["dash-1t-frontier-3072gcd"]
    p, m = c.plan, c.workload.model
    assert (p.tp, p.pp, p.dp, p.micro_batch, p.zero_stage) == (4, 128, 6, 1, 1)
    assert c.workload.global_batch_seqs // p.dp == 1024 // 2
    assert (m.layers, m.hidden, m.heads, m.seq_len) == (128, 25600, 200, 2048)


def test_the_logged_175b_plan_fits_at_the_logged_peak_memory():
    # rank 0 "max allocated: 33901.5 MB" after iteration 1 of the log (TP 4, PP 16, DP 2, 128 GCDs,
    # global batch 1280): the memory model on that plan, which the 1,024-GCD case scales by DP
    c = _cases()["dash-175b-frontier-1024gcd"]
    logged = replace(c, plan=replace(c.plan, dp=2), workload=replace(c.workload, global_batch_seqs=1280))
    r = run_case(logged)
    assert r.fits and r.memory_bytes == pytest.approx(33.9e9, rel=0.10)


def test_cases_fall_inside_their_ranges_and_limits():
    cs = _cases()
    errs = []
    for c in cs.values():
        r = run_case(c)
        assert r.fits, c.name
        assert r.predicted_low_s <= c.published_high_s and c.published_low_s <= r.predicted_high_s, c.name
        assert abs(r.error) <= 0.10, (c.name, r.error)
        errs.append(abs(r.error))
    assert np.mean(errs) <= 0.05
    assert all(c.threshold_max is None for c in cs.values())  # no looser per-case limit


def test_1t_script_plan_bubble_is_a_quarter_of_its_compute():
    c = _cases()["dash-1t-frontier-3072gcd"]
    res = results_from_arrays(c.workload, c.system, shipped_profile(c.system.device), c.dtype,
                              plan_arrays([c.plan]), stack=c.stack)[0]
    bd = res.breakdown
    micro_batches = c.workload.global_batch_seqs // (c.plan.dp * c.plan.micro_batch)
    assert micro_batches == 512
    # 1F1B bubble (p - 1) / m of the slowest stage's time: about a quarter of the compute
    assert bd["bubble_s"] / bd["compute_s"] == pytest.approx((128 - 1) / 512, rel=0.10)


def test_mi250x_gcd_gemm_plateau_is_the_mamf_figure_and_nothing_is_fitted():
    prof = shipped_profile("mi250x_gcd")
    m, n, k = MAMF_SHAPE
    assert prof.gemm_flop_s("bf16", m, n, k) / 1e12 == pytest.approx(MAMF_MI250X_TFLOPS * AMD_SUSTAINED_FRACTION,
                                                                      rel=0.01)
    # the public-only reference is the MAMF figure as measured
    assert public_profile("mi250x_gcd").gemm_flop_s("bf16", m, n, k) / 1e12 == pytest.approx(MAMF_MI250X_TFLOPS,
                                                                                              rel=0.01)
    assert prof.gemm_flop_s("fp16", 16384, 16384, 16384) / 1e12 < GCD_PEAK_TFLOPS
    # no profile quantity is fitted on a training run; AMD labels kept
    assert fitted_groups("mi250x_gcd") == ()
    assert "mi250x_gcd" in prof.assumptions[0] and "nothing fitted" in prof.assumptions[0]


def test_one_stack_efficiency_for_the_dash_runs_reproduces_its_fit():
    cs = _cases()
    effs = {c.stack.efficiency for c in cs.values()}
    assert len(effs) == 1
    eff = effs.pop()
    assert all(c.stack.fitted_on == ("dash2023-frontier",) for c in cs.values())
    fit = fit_stack("deepspeed-rocm", grid=tuple(np.round(np.arange(0.50, 0.801, 0.01), 3)))
    assert fit["efficiency"] == pytest.approx(eff)
