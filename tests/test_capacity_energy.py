"""Energy, cost and CO2 arithmetic and unit conversions."""
import pytest

from recoque.errors import BadInput
from recoque.estimate import Estimate
from recoque.planner import energy, stencil
from recoque.planner.system import load_system, system_from_toml
from recoque.planner.workloads import get_workload


def test_grid_figures_and_price_range():
    g = energy.load_grid()
    assert (g.price_eur_per_mwh, g.gco2e_per_kwh, g.eu_average_gco2e_per_kwh) == (70.0, 21.3, 292.0)
    # full price = supply + network fee + excise; rebates come off the fee and the excise
    assert g.full_price.value == pytest.approx(70 + 10 + 22.5)
    assert g.price.value == pytest.approx(70 + 10 + 22.5 - 10.5 - 5.7)
    # the supply's own range (cost of existing nuclear 60.3..75.9) enters both ends
    assert g.price.low == pytest.approx(60.3 + 5.7 - 5.7 + (22.5 - 10.5)) and g.price.high == pytest.approx(75.9 + 15 + 22.5)


def test_one_mw_for_one_hour():
    r = energy.energy_report(Estimate.exact(1e6, "W"), Estimate.exact(3600, "s"), "1 MWh")
    assert r.energy.value == pytest.approx(3.6e9)                    # J
    assert r.cost.value == pytest.approx(86.3) and r.cost.low == pytest.approx(72.3)  # 60.3 + 0 + the reduced 12
    assert r.co2.value == pytest.approx(21.3)                        # 1000 kWh x 21.3 g = 21.3 kg
    assert r.co2_region_average.value == pytest.approx(292.0)


def test_facility_power_is_nodes_times_node_power_times_pue():
    s = load_system("el-capitan")
    p = energy.facility_power(s)
    assert p.value == pytest.approx(43808 / 4 * 2701 * 1.1)
    assert p.low == pytest.approx(43808 / 4 * 2701 * 1.05)


def test_per_year_and_bad_load_factor():
    s = load_system("jean-zay-h100")
    y = energy.per_year(s)
    assert y.energy.value == pytest.approx(364 * 3800 * 1.2 * 8760 * 3600)
    with pytest.raises(BadInput):
        energy.per_year(s, load_factor=0)


def test_unknown_power_is_a_clear_error():
    s = system_from_toml("x", {"device": "h100_sxm", "gpus": 8, "gpus_per_node": 8,
                               "intra_node_bandwidth_gb_s": 450, "inter_node_bandwidth_gb_s": 50})
    with pytest.raises(BadInput, match="node power"):
        energy.facility_power(s)


def test_stencil_is_bandwidth_bound_and_scales_with_bytes():
    s = load_system("lumi-g")
    k = stencil.StencilKernel.from_workload(get_workload("hpcg"))
    r = stencil.estimate_stencil(s, k)
    assert r.intensity_flop_per_byte == pytest.approx(54 / 340)
    assert r.fraction_of_fp64_peak.value < 0.05
    k2 = stencil.StencilKernel.from_workload(get_workload("hpcg"), sweeps=2 * k.sweeps)
    assert stencil.estimate_stencil(s, k2).total_time.value == pytest.approx(2 * r.total_time.value)
