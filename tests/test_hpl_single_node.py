"""Devices without a TOP500 reference run of their own family: a published single-node HPL figure x the
multi-node retention of the reference runs, never a figure of a checked machine. The A100 family has
its own reference (Selene) and takes this path only with Selene left out (its own leave-one-out)."""
import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner import hpl, top500
from recoque.planner.system import load_system

A100_NODE = 109.7e12 / 8            # NVIDIA DeepOps README: best DGX A100 80GB single-node run, 8 GPUs
H100_NODE = 365.4e12 / 8            # vpbenchmarking README: 8x H100 SXM single node
EOS_PER_GPU = 121.4e15 / 3328       # Eos June 2025: Rmax / GPUs of the run


def test_the_published_single_node_figures_are_per_gpu():
    sn = top500.single_node_flop_s()
    assert sn["a100_sxm_80gb"] == pytest.approx(A100_NODE, rel=1e-3)
    assert sn["h100_sxm"] == pytest.approx(H100_NODE, rel=1e-3)


HOPPER_RUNS = {"eos-2025-06": (121.4e15, 3328), "jupiter-2025-06": (793.4e15, 18600),
               "jean-zay-h100-2025-06": (52.18e15, 1456)}   # Rmax, GPUs of the run (June 2025)


NO_SELENE = ("selene",)


def test_retention_is_rmax_per_gpu_over_the_single_node_figure_of_reference_runs_only():
    assert set(hpl.retention_ratios()) == set(HOPPER_RUNS) | {"selene-2025-06"}
    assert hpl.retention_ratios()["selene-2025-06"] == pytest.approx(63.46e15 / 4480 / A100_NODE, rel=1e-3)
    ret = hpl.retention_ratios(NO_SELENE)
    # the Hopper reference runs: GH200 takes the H100 SXM figure (same die, same counted rate)
    assert set(ret) == set(HOPPER_RUNS)
    assert ret["eos-2025-06"] == pytest.approx(EOS_PER_GPU / H100_NODE, rel=1e-3)
    checked = {e.key for e in top500.load_entries().values() if e.role == "check"}
    assert not checked & set(ret)
    # the GH200's single-node figure is the H100's x its memory factor (96 / 80 GB)^0.2
    node = {"eos-2025-06": H100_NODE, "jean-zay-h100-2025-06": H100_NODE,
            "jupiter-2025-06": H100_NODE * (96 / 80) ** top500.memory_exponent()}
    pooled = sum(r for r, _ in HOPPER_RUNS.values()) / sum(g * node[k] for k, (_, g) in HOPPER_RUNS.items())
    assert hpl.pooled_retention(NO_SELENE) == pytest.approx(pooled, rel=1e-3)


def test_a100_efficiency_is_single_node_times_retention_on_the_counted_rate():
    e = hpl.hpl_efficiency("a100_sxm_80gb", exclude_machines=NO_SELENE)
    retention = hpl.pooled_retention(NO_SELENE)
    w = top500.range_setting("in_family_halfwidth")
    assert e.value * 19.5e12 == pytest.approx(A100_NODE * retention, rel=1e-3)
    assert e.high * 19.5e12 == pytest.approx(max(A100_NODE * 1.15, A100_NODE * retention * (1 + w)), rel=1e-3)
    assert e.low == pytest.approx(e.value * (1 - w), rel=1e-6)
    assert "single-node HPL" in e.assumptions[0] and "eos-2025-06" in e.assumptions[0]


def test_a_same_family_device_scales_the_figure_by_its_counted_rate_and_memory():
    val, note = hpl.single_node_hpl("a100_sxm_64gb")
    mem = (64 / 80) ** top500.memory_exponent()
    assert val == pytest.approx(A100_NODE * (21.49 / 19.5) * mem, rel=2e-3) and "ratio" in note and "memory" in note
    e64, e80 = (hpl.hpl_efficiency(d, exclude_machines=NO_SELENE) for d in ("a100_sxm_64gb", "a100_sxm_80gb"))
    assert e64.value == pytest.approx(e80.value * mem, rel=1e-3)   # smaller memory, on a larger counted rate


def test_leaving_out_every_retention_reference_falls_back_to_the_vendor_pool():
    e = hpl.hpl_efficiency("a100_sxm_80gb", exclude_machines=("eos", "jupiter", "jean-zay-h100", "selene"))
    assert "single-node" not in e.assumptions[0] and "outside every calibrated family" in e.assumptions[0]
    left_one = hpl.hpl_efficiency("a100_sxm_80gb", exclude_machines=("eos", "selene"))
    assert "single-node" in left_one.assumptions[0] and "eos-2025-06" not in left_one.assumptions[0]


def test_a_family_with_its_own_reference_ignores_the_single_node_figure():
    e = hpl.hpl_efficiency("h100_sxm")
    assert "family hopper" in e.assumptions[0] and "single-node" not in e.assumptions[0]
    a100 = hpl.hpl_efficiency("a100_sxm_80gb")
    assert "family a100" in a100.assumptions[0] and "selene" in a100.assumptions[0]
    assert a100.value * 19.5e12 == pytest.approx(63.46e15 / 4480, rel=1e-3)   # Selene's Rmax per GPU


def test_a_device_with_only_a_measured_dgemm_takes_the_hpl_to_dgemm_fraction():
    assert "family pvc" in hpl.hpl_efficiency("max1550").assumptions[0]    # Aurora is its reference
    e = hpl.hpl_efficiency("max1550", exclude_machines=("aurora",))
    frac = (0.70, 0.80, 0.90)                       # seeds/workloads.toml hpl_fraction_of_measured_dgemm
    rate = 52e12
    assert e.value * rate == pytest.approx(17e12 * frac[1]) and e.low * rate == pytest.approx(17e12 * frac[0])
    assert e.high * rate == pytest.approx(17e12 * frac[2] * 1.15)
    assert "measured DGEMM" in e.assumptions[0] and "ASSUMED" in e.assumptions[0]


def test_leonardo_gpus_of_the_run_from_its_core_count():
    e = top500.load_entries()["leonardo-2025-06"]
    assert e.gpus_in_run == 1824768 / (124 + 8) == 13824


def test_a_bad_single_node_value_is_one_clear_line(monkeypatch):
    seed = dict(top500._seed())
    seed["single_node"] = {"a100_sxm_80gb": -1.0}
    monkeypatch.setattr(top500, "_seed", lambda: seed)
    with pytest.raises(BadInput, match="single_node"):
        top500.single_node_flop_s()


USER = """[systems.mine]
device = "a100_sxm_80gb"
gpus = 2240
gpus_per_node = 8
intra_node_bandwidth_gb_s = 300
inter_node_bandwidth_gb_s = 25
node_power_kw = 6.5
"""


def test_plan_hpl_on_a_user_system_file(tmp_path):
    import json

    p = tmp_path / "my.toml"
    p.write_text(USER)
    r = CliRunner().invoke(app, ["plan", "hpl", "--system", str(p), "--json"])
    assert r.exit_code == 0, r.output
    h = json.loads(r.output)["hpl"]
    per_gpu = hpl.estimate_hpl(load_system(str(p))).rmax_per_gpu.value
    assert h["rmax_flop_s"]["value"] == pytest.approx(2240 * per_gpu)
    assert h["top500_entry"] is None
    assert h["gflops_per_w"]["value"] == pytest.approx(per_gpu / (6500 / 8) / 1e9)


@pytest.mark.parametrize("preset", ["el-capitan", "frontier", "lumi-g", "jupiter"])
def test_each_preset_at_its_listed_gpu_count_prints_the_top500_comparison(preset):
    r = CliRunner().invoke(app, ["plan", "hpl", "--system", preset])
    assert r.exit_code == 0, r.output
    assert "model vs TOP500" in r.output and "TOP500 Rmax" in r.output
