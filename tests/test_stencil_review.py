"""Stencil and HPCG rows (review of stop 102): the family's sustained bandwidth, one node's links,
the resident bytes, the published run matched by part, the cap's comparison in --json too."""
import json

import pytest
from cli_json import cli_json, runner

from recoque.cli import app
from recoque.planner import hpcg, stencil
from recoque.planner.system import load_system


def _rows(d, section):
    return {r["quantity"]: r["value"] for r in d["sections"][section]}


def test_the_stencil_takes_the_parts_sustained_bandwidth_not_a_pooled_fraction():
    # El Capitan's MI300A sustains 3.03 TB/s of its 5.3 (0.57): the pooled 0.61-0.95 put the
    # published 17.4 PF below the generic row's low end (19.8-29.9 PF)
    d = cli_json("plan", "stencil", "-s", "el-capitan", "-w", "hpcg")
    row = _rows(d, "stencil")["achieved FP64, generic stencil model (the HPCG-calibrated rate is below)"]
    assert row["low"] <= 1.741e16 <= row["high"]
    from recoque.catalog import get_device_spec

    assert stencil.sustained_rate(get_device_spec("mi300a")).value == pytest.approx(3.034e12)


def test_one_node_keeps_the_hpcg_halo_on_its_scale_up_links(tmp_path):
    f = tmp_path / "intra.toml"
    f.write_text('[systems.intra]\ndevice = "mi300x"\ngpus = 8\ngpus_per_node = 8\nintra_node_bandwidth_gb_s = 64\n'
                 'node_power_kw = 10\npue = 1.2\n')
    r = runner.invoke(app, ["plan", "stencil", "-s", str(f), "-w", "hpcg", "--json"])
    assert r.exit_code == 0, r.output  # before: inter_node_bandwidth_gb_s demanded of a one-node system
    nvl = load_system("nvl72-gb200")
    inter = nvl.with_gpus(nvl.gpus_per_node * 2)  # two nodes: the NIC again
    assert hpcg.parallel_efficiency(nvl) > hpcg.parallel_efficiency(inter)


def test_a_grid_whose_matrix_passes_the_hbm_is_refused():
    r = runner.invoke(app, ["plan", "stencil", "-s", "node-8x-h100", "-w", "hpcg", "--grid-points", "1e10"])
    assert r.exit_code != 0 and "340 B per point resident" in r.output and "exceeds 80 GB" in r.output


def test_a_namesake_of_a_list_machine_on_another_part_is_not_held_against_its_run(tmp_path):
    f = tmp_path / "frontier.toml"
    f.write_text('[systems.frontier]\ndevice = "h100_sxm"\ngpus = 36992\ngpus_per_node = 8\n'
                 'intra_node_bandwidth_gb_s = 450\ninter_node_bandwidth_gb_s = 50\nnode_power_kw = 10.2\npue = 1.2\n')
    d = cli_json("plan", "stencil", "-s", str(f), "-w", "hpcg")
    assert d["hpcg"]["published_hpcg_flop_s"] is None and "HPCG published" not in _rows(d, "stencil")
    assert not any("left out: frontier" in a for a in json.dumps(d["assumptions"]).split("\\n"))


def test_under_a_cap_the_json_carries_no_comparison_either():
    d = cli_json("plan", "stencil", "-s", "el-capitan", "-w", "hpcg", "--power-limit-w", "400")
    h = d["hpcg"]
    assert h["published_hpcg_flop_s"] is None and h["error_vs_published"] is None
    assert "board power" in h["not_compared"]
    assert _rows(d, "stencil")["model vs published HPCG"].startswith("not compared")


def test_a_fixed_grid_on_an_uncertain_count_keeps_h100e_inside_its_own_rate_range():
    d = cli_json("plan", "stencil", "-s", "alice-recoque")
    fp64 = _rows(d, "stencil")["achieved FP64"]
    e = _rows(d, "H100-equivalents")["H100e delivered (climate-km)"]
    # the H100 side is an H100 machine of the system's central count on the same grid (stop 115; before: one
    # lone H100's STREAM rate, which made 1,456 H100s worth 674 H100e)
    from recoque.planner import equivalents
    from recoque.planner.system import load_system
    from recoque.planner.workloads import get_workload

    n0 = round(load_system("alice-recoque").gpus)
    k = stencil.StencilKernel.from_workload(get_workload("climate-km"))
    per_h100 = stencil.estimate_stencil(equivalents.h100_reference(n0), k).achieved_flop_s.scale(1 / n0)
    assert e["high"] <= fp64["high"] / per_h100.low * (1 + 1e-9)
    assert e["low"] >= fp64["low"] / per_h100.high * (1 - 1e-9)


def test_the_cap_is_not_blamed_for_a_bandwidth_bound_gap():
    capped = cli_json("plan", "stencil", "-s", "el-capitan", "-w", "hpcg", "--power-limit-w", "400")
    assert "power cap" not in _rows(capped, "H100-equivalents")["delivered vs peak"]


def test_blackwell_ultra_is_in_the_blackwell_memory_family_and_no_family_reads_plainly():
    assert hpcg.memory_family("b300") == hpcg.memory_family("gb300") == "blackwell"
    note = hpcg.sustained_bandwidth("mi430x").assumptions[0] if hpcg.memory_family("mi430x") is None else ""
    assert "family None" not in note


def test_a_machine_of_h100s_is_worth_its_own_count_on_a_stencil():
    d = cli_json("plan", "stencil", "-s", "jean-zay-h100", "-w", "climate-km")
    e = _rows(d, "H100-equivalents")["H100e delivered (climate-km)"]
    assert e["value"] == pytest.approx(1456, rel=0.02)
