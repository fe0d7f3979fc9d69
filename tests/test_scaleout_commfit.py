"""Scale-out planner: alpha-beta fits recover known latency and bandwidth, and measured links
move a training plan's communication share the way they should."""
from __future__ import annotations

import numpy as np
import pytest

from recoque.bench.schema import Record, ResultsDocument, save_results
from recoque.catalog import get_device_spec
from recoque.errors import BadInput
from recoque.planner import commfit
from recoque.planner.profile import DeviceProfile
from recoque.planner.search import search
from recoque.planner.system import load_system
from recoque.planner.workload import load_training_workload

SIZES = [8 * 4**k for k in range(14)]  # 8 B .. 512 MiB


def _record(op, n, tier, size, t, ranks=None, nodes=None):
    group = 2 if ranks else n
    if nodes is None:  # as bench/collective.py writes it: an inter pair spans 2 nodes, an intra group 1
        nodes = 2 if ranks and tier == "inter" else (1 if ranks or tier == "intra" else 2)
    params = {"bytes": size, "world_size": n, "group_size": group, "placement": "in_place" if op == "all_reduce"
              else "out_of_place", "tier": tier, "nodes": nodes, "busbw_factor": commfit.busbw_factor(op, group)}
    if ranks:
        params["ranks"] = list(ranks)
    moved = max(1, int(size * commfit.busbw_factor(op, group)))
    return Record("collective", op, "fp32", params, (t * 0.99, t, t * 1.01), "GB/s", bytes_moved=moved)


def _series(op, n, tier, alpha_s, busbw, noise=0.0, ranks=None, seed=0, sizes=SIZES, nodes=None):
    """Times from planner/comm.py's own model: hops x alpha + factor x S / busbw, times (1 + noise)."""
    rng = np.random.default_rng(seed)
    group = 2 if ranks else n
    out = []
    for s in sizes:
        t = commfit.hops(op, group) * alpha_s + commfit.busbw_factor(op, group) * s / busbw
        out.append(_record(op, n, tier, s, t * (1 + noise * rng.uniform(-1, 1)), ranks, nodes))
    return out


def _doc(*series, device="synthetic"):
    return ResultsDocument(environment={}, device={"name": device}, results=tuple(r for s in series for r in s))


def test_fit_recovers_known_parameters():
    fits = commfit.fit_document(_doc(_series("all_reduce", 8, "intra", 3e-6, 150e9),
                                     _series("send_recv", 16, "inter", 8e-6, 40e9, noise=0.03, ranks=(0, 8))))
    ar = next(f for f in fits if f.op == "all_reduce")
    assert ar.group_size == 8 and ar.tier == "intra" and len(ar.sizes_bytes) == len(SIZES)
    assert ar.alpha_s == pytest.approx(3e-6, rel=1e-6) and ar.busbw_bytes_s == pytest.approx(150e9, rel=1e-6)
    assert ar.latency_s == pytest.approx(14 * 3e-6, rel=1e-6) and ar.r2 == pytest.approx(1.0)
    assert ar.max_rel_residual < 1e-9
    p2p = next(f for f in fits if f.op == "send_recv")  # 3% noise: the fit stays within a few percent
    assert p2p.tier == "inter" and p2p.group_size == 2
    assert p2p.alpha_s == pytest.approx(8e-6, rel=0.1) and p2p.busbw_bytes_s == pytest.approx(40e9, rel=0.05)
    assert 0.02 < p2p.max_rel_residual < 0.1 and p2p.r2 > 0.99


def test_fit_edges():
    a, b, r2, worst = commfit.fit_alpha_beta([1e3, 1e6, 1e9], [1e-2, 1e-2, 1e-2])  # flat: latency only
    assert b == 0.0 and a == pytest.approx(1e-2) and worst == pytest.approx(0.0, abs=1e-12)
    a, b, _, _ = commfit.fit_alpha_beta([1e3, 1e6, 1e9], [0.5e-6, 1e-3, 1.0])  # a < 0: through the origin
    assert a == 0.0 and 1 / b == pytest.approx(6e18 / 4e9)  # b = sum(x) / sum(x^2), x = S/t = 2e9, 1e9, 1e9
    with pytest.raises(BadInput, match="two message sizes"):
        commfit.fit_alpha_beta([64, 64], [1.0, 2.0])
    few = commfit.fit_document(_doc(_series("all_reduce", 8, "intra", 3e-6, 150e9)[:2]))
    assert few == []  # two points always fit: not a test of the model, not used


def _plan(system, prof, pins=None):
    wl = load_training_workload("mistral-7b")
    return search(wl, system, prof, top=1, gpus=64, pins=pins).best[0]


def _apply(tmp_path, name, *series):
    path = tmp_path / f"{name}.json"
    save_results(str(path), _doc(*series))
    sysspec = load_system("jean-zay-h100")
    prof = DeviceProfile.from_datasheet(get_device_spec(sysspec.device))
    return sysspec, prof, commfit.measured_links(str(path), sysspec, prof)


@pytest.mark.parametrize("pins", [{"tp": 2, "pp": 1, "dp": 32}, None])
def test_measured_links_move_the_communication_share(tmp_path, pins):
    sysspec, prof, (slow_sys, slow_prof, lines) = _apply(
        tmp_path, "slow", _series("all_reduce", 4, "intra", 50e-6, 2e9),  # gloo-on-a-laptop figures
        _series("all_reduce", 16, "inter", 100e-6, 1e9), _series("send_recv", 16, "inter", 80e-6, 1e9, ranks=(0, 4)))
    assert slow_sys.intra_node_bandwidth_bytes_s == pytest.approx(2e9, rel=1e-6)
    assert slow_sys.inter_node_bandwidth_bytes_s == pytest.approx(1e9, rel=1e-6)  # the pair's algbw comes first
    assert slow_sys.inter_node_latency_s == pytest.approx(80e-6, rel=1e-6)  # one hop of the point-to-point pair
    assert slow_prof.intra_link_efficiency.value == 1.0  # a measured busbw is already achieved bandwidth
    assert len(lines) == 4 and all("measured:" in line for line in lines)
    base = _plan(sysspec, prof, pins).comm_share.value
    assert _plan(slow_sys, slow_prof, pins).comm_share.value > base
    _, _, (fast_sys, fast_prof, _) = _apply(tmp_path, "fast", _series("all_reduce", 4, "intra", 1e-6, 2e12),
                                            _series("send_recv", 16, "inter", 1e-6, 1e12, ranks=(0, 4)))
    assert _plan(fast_sys, fast_prof, pins).comm_share.value < base


def test_unmeasured_tiers_name_the_datasheet(tmp_path):
    sysspec, prof, (new_sys, _, lines) = _apply(tmp_path, "intra", _series("all_gather", 4, "intra", 5e-6, 100e9))
    assert new_sys.intra_node_bandwidth_bytes_s == pytest.approx(100e9, rel=1e-6)
    assert new_sys.inter_node_bandwidth_bytes_s == sysspec.inter_node_bandwidth_bytes_s
    inter = [line for line in lines if line.startswith("inter-node")]
    assert len(inter) == 2 and all("datasheet" in line and "not measured" in line for line in inter)
    empty = tmp_path / "none.json"
    save_results(str(empty), ResultsDocument(environment={}, device={}, results=()))
    s2, p2, lines2 = commfit.measured_links(str(empty), sysspec, prof)
    assert s2 is sysspec and p2 is prof and "datasheet" in lines2[0]


def test_plan_train_profile_names_sources_and_raises_the_comm_share(tmp_path):
    import json

    from typer.testing import CliRunner

    from recoque.cli import app

    path = tmp_path / "collectives.json"
    save_results(str(path), _doc(_series("all_reduce", 4, "intra", 50e-6, 2e9),
                                 _series("all_reduce", 16, "inter", 100e-6, 1e9),
                                 _series("send_recv", 16, "inter", 100e-6, 1e9, ranks=(0, 4)),
                                 device="NVIDIA H100 80GB HBM3"))
    args = ["plan", "train", "-w", "mistral-7b", "-s", "jean-zay-h100", "-n", "64", "--top", "1", "--json",
            "--tp", "2", "--pp", "1", "--dp", "32"]
    runner = CliRunner()
    base, slow = runner.invoke(app, args), runner.invoke(app, args + ["--profile", str(path)])
    assert base.exit_code == 0 and slow.exit_code == 0, slow.output
    docs = [json.loads(r.stdout) for r in (base, slow)]
    assert docs[1]["best"][0]["comm_share"]["value"] > docs[0]["best"][0]["comm_share"]["value"]
    lines = docs[1]["link_figures"]
    assert len(lines) == 4 and docs[0]["link_figures"] == []
    assert lines[0].startswith("intra-node bandwidth: 2 GB/s") and "measured: busbw of all_reduce" in lines[0]
    assert lines[3].startswith("inter-node latency: 100 us") and "/ 1 hops" in lines[3]  # the pair: one hop


def _hierarchical_allreduce(local, nodes, bw_intra, bw_inter, alpha_intra, alpha_inter, noise=0.0):
    """An inter-node all-reduce series timed by the planner's own hierarchical model."""
    from recoque.planner import comm

    rng = np.random.default_rng(1)
    n = local * nodes
    return [_record("all_reduce", n, "inter", s, float(comm.hierarchical_allreduce_time(
        s, local, nodes, bw_intra, bw_inter, alpha_intra, alpha_inter)) * (1 + noise * rng.uniform(-1, 1)),
        nodes=nodes) for s in SIZES]


@pytest.mark.parametrize("local, nodes", [(8, 2), (4, 4), (8, 16), (1, 8)])
def test_an_inter_node_all_reduce_gives_one_gpus_nic_share_not_the_whole_nodes(local, nodes):
    # Its busbw is about local x the per-GPU NIC share (NCCL: one channel per NIC); the planner's
    # figure is the share, read back through its own model with the measured intra-node rate.
    series = _hierarchical_allreduce(local, nodes, 450e9, 50e9, 2e-6, 8e-6)
    intra = _series("all_reduce", local, "intra", 2e-6, 450e9) if local > 1 else []
    figs = {f.attr: f for f in commfit.link_figures(commfit.fit_document(_doc(intra, series)))}
    assert figs["inter_node_bandwidth_bytes_s"].value == pytest.approx(50e9, rel=0.02)
    assert "hierarchical model" in figs["inter_node_bandwidth_bytes_s"].source
    assert "inter_node_latency_s" not in figs  # no pair: tree and ring hops cannot be split from one constant
    # without the measured intra-node rate the datasheet's stands in; without either, nothing is claimed
    alone = commfit.link_figures(commfit.fit_document(_doc(series)), intra_bytes_s=450e9)
    assert alone[0].value == pytest.approx(50e9, rel=0.02)
    if local > 1:
        assert commfit.link_figures(commfit.fit_document(_doc(series))) == []


def test_a_file_without_node_counts_gives_no_inter_node_bandwidth_from_a_collective():
    old = [_record(r.op, 16, "inter", r.params["bytes"], r.median_s) for r in _hierarchical_allreduce(8, 2, 450e9, 50e9, 2e-6, 8e-6)]
    for r in old:
        r.params.pop("nodes")
    fits = commfit.fit_document(_doc(old))
    assert fits and fits[0].nodes == 0
    assert commfit.link_figures(fits, intra_bytes_s=450e9) == []


def test_a_latency_bound_series_claims_no_bandwidth():
    small = [8 * 4**k for k in range(8)]  # 8 B .. 128 KiB at 20 us: the slope is noise
    for seed in range(5):
        recs = [_record("all_reduce", 8, "intra", s, 20e-6 * (1 + 0.03 * np.random.default_rng(seed + s).uniform(-1, 1)))
                for s in small]
        fit = commfit.fit_document(_doc(recs))[0]
        assert not fit.bandwidth_known
        assert not any(f.attr == "intra_node_bandwidth_bytes_s" for f in commfit.link_figures([fit]))
        assert any("latency-bound" in line for line in commfit.fit_lines(_doc(recs)))


def test_all_to_all_latency_is_one_hop_as_the_planner_charges_it():
    assert commfit.hops("all_to_all", 16) == 1.0 and commfit.hops("all_reduce", 16) == 30.0
