"""HPL model: TOP500 reference machines without using their own Rmax; GPU-count derivation."""
import pytest

from recoque.catalog import get_device_spec
from recoque.planner import hpl
from recoque.planner.system import load_system


@pytest.mark.parametrize("key", ["el-capitan", "frontier", "jupiter", "lumi-g"])
def test_hpl_within_15_percent_of_top500_leave_one_out(key):
    system = load_system(key)
    est = hpl.estimate_hpl(system)
    # The efficiency must not come from this machine's own runs.
    assert f"{key} (TOP500" not in est.efficiency.assumptions[0]
    assert f"left out: {key}" in est.efficiency.assumptions[0]
    assert est.top500 is not None and est.top500.machine == key
    assert abs(est.error_vs_top500) < 0.15


def test_reference_efficiency_is_rmax_over_gpus_of_the_run_times_counted_rate():
    eff = hpl.reference_efficiencies()
    # El Capitan June 2025: 1742 PF / (11,039,616 cores / 252 = 43,808 APUs x 61.3 TF vector rate)
    assert eff["el-capitan-2025-06"] == pytest.approx(1742e15 / (43808 * 61.3e12), rel=1e-9)
    # JUPITER June 2025 (GH200 = H100 compute) at the tensor rate, 4,650 nodes x 4
    assert eff["jupiter-2025-06"] == pytest.approx(793.4e15 / (18600 * 66.9e12), rel=1e-9)


def test_leave_one_out_changes_the_efficiency_set():
    full = hpl.hpl_efficiency("mi250x")
    loo = hpl.hpl_efficiency("mi250x", exclude_machines=("frontier",))
    assert loo.value < full.value  # Frontier has the family's highest efficiency
    assert "left out: frontier" in loo.assumptions[0]


def test_counted_rate_is_vector_on_amd_and_tensor_on_nvidia():
    assert hpl.hpl_rate_key(get_device_spec("mi300a")) == "fp64_vector"
    assert hpl.hpl_rate_key(get_device_spec("h100_sxm")) == "fp64_matrix"


def test_alice_recoque_gpu_range_matches_the_derivation_in_systems_toml():
    system = load_system("alice-recoque")
    need = hpl.gpus_for_rmax(float(system.extra["hpl_target_eflops"]) * 1e18, get_device_spec("mi430x"))
    lo, hi = system.ranges["gpus"]
    assert need.low == pytest.approx(lo, abs=1)
    assert need.high == pytest.approx(hi, abs=1)
    assert need.value == pytest.approx(system.gpus, abs=1)


def test_fixed_efficiency_gives_exact_arithmetic():
    from recoque.estimate import Estimate

    system = load_system("jean-zay-h100")
    est = hpl.estimate_hpl(system, efficiency_override=Estimate.exact(0.7, "1"))
    assert est.rmax.value == pytest.approx(1456 * 66.9e12 * 0.7)


def test_gflops_per_w_from_node_power():
    est = hpl.estimate_hpl(load_system("el-capitan"))
    # per-GPU Rmax over per-GPU IT power (node power / 4)
    assert est.gflops_per_w.value == pytest.approx(est.rmax_per_gpu.value / (2701 / 4) / 1e9, rel=1e-6)
