"""HPCG-class rate from HBM bandwidth: calibration arithmetic, families, weak scaling, held-out results."""
import pytest

from recoque.planner import hpcg
from recoque.planner.system import load_system


def test_bytes_per_flop_of_the_27_point_row():
    # 27 x (8 B value + 4 B index) + 2 x 8 B vectors = 340 B for 27 x 2 = 54 FLOP
    assert hpcg.bytes_per_flop() == pytest.approx(340 / 54)


def test_memory_efficiency_is_published_hpcg_times_bytes_over_bandwidth_and_parallel_efficiency():
    e = hpcg.load_entries()["frontier"]
    pe = hpcg.parallel_efficiency(hpcg._system_for(e))
    assert hpcg.entry_memory_efficiency(e) == pytest.approx(14.05e15 * 340 / 54 / (36864 * 3.2768e12 * pe))


def test_parallel_efficiency_falls_with_a_slower_network_and_more_gpus():
    s = load_system("lumi-g")
    base = hpcg.parallel_efficiency(s)
    from dataclasses import replace

    assert 0.5 < base < 1.0
    assert hpcg.parallel_efficiency(replace(s, inter_node_bandwidth_bytes_s=s.inter_node_bandwidth_bytes_s / 4)) < base
    assert hpcg.parallel_efficiency(s.with_gpus(4 * int(s.gpus))) < base
    assert hpcg.parallel_efficiency(s.with_gpus(1)) == 1.0


def test_families_differ_and_the_estimated_machine_is_left_out():
    cdna3 = hpcg.memory_efficiency("mi300a")
    hopper = hpcg.memory_efficiency("h100_sxm")
    assert "el-capitan" in cdna3.assumptions[0] and "alps" in hopper.assumptions[0]
    assert hopper.value > cdna3.value  # Hopper HBM3 sustains more of its datasheet than MI300A on HPCG
    loo = hpcg.memory_efficiency("mi250x", ("frontier",))
    assert "outside every calibrated family" in loo.assumptions[0] and "ASSUMED" in loo.assumptions[0]


def test_held_out_lumi_inside_the_range():
    (row,) = hpcg.check_against_hpcg(("check",))
    assert row["entry"] == "lumi-g" and row["inside_range"] and abs(row["error"]) < 0.10


def test_estimate_is_gpus_times_bandwidth_times_efficiencies_over_bytes_per_flop():
    s = load_system("lumi-g")
    h = hpcg.estimate_hpcg(s)
    expect = 11664 * 3.2768e12 * h.memory_efficiency.value * h.parallel_efficiency / (340 / 54)
    assert h.rate.value == pytest.approx(expect)
    assert h.published is not None and h.error == pytest.approx(h.rate.value / 4.59e15 - 1)


def test_plan_stencil_hpcg_prints_the_calibrated_rate():
    from typer.testing import CliRunner

    from recoque.cli import app

    r = CliRunner().invoke(app, ["plan", "stencil", "--system", "lumi-g", "--workload", "hpcg", "--json"])
    assert r.exit_code == 0, r.output
    import json

    d = json.loads(r.output)
    assert d["hpcg"]["published_hpcg_flop_s"] == pytest.approx(4.59e15)
    assert d["hpcg"]["published_inside_range"] is True
