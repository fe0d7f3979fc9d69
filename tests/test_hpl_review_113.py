"""Stop 113 review of the HPL / HPCG models: memory per HPL rank is a die's, a machine counted in
GCDs is still left out of its own HPCG calibration, and the counted rate enters HPL at its centre."""
import pytest

from recoque.catalog import get_device_spec, same_part
from recoque.planner import hpcg, hpl
from recoque.planner.system import load_system

FRONTIER = """[systems.{key}]
name = "Frontier, as a user counts it"
device = "{device}"
gpus = {gpus}
gpus_per_node = {per_node}
intra_node_bandwidth_gb_s = 141
inter_node_bandwidth_gb_s = 12.5
node_power_kw = 2.562
pue = 1.1
top500_machine = "frontier"
"""


def _frontier(tmp_path, gcds: bool):
    # the GPUs of the 2022-11 HPCG run (seeds/hpcg.toml [entries.frontier]: 36,992 MI250X)
    p = tmp_path / ("gcd.toml" if gcds else "pkg.toml")
    p.write_text(FRONTIER.format(key="frontier-" + ("gcd" if gcds else "pkg"), device="mi250x_gcd" if gcds else "mi250x",
                                 gpus=73984 if gcds else 36992, per_node=8 if gcds else 4))
    return load_system(str(p))


def test_an_hpl_rank_holds_one_die_memory():
    assert hpl.memory_per_rank(get_device_spec("mi250x")) == hpl.memory_per_rank(get_device_spec("mi250x_gcd"))
    assert hpl.memory_factor("mi250x_gcd", "mi250x") == pytest.approx(1.0)
    assert hpl.memory_factor("mi210", "mi250x") == pytest.approx(1.0)   # one 64 GB die each
    assert hpl.memory_factor("h200", "h100_sxm") > 1.0


def test_frontier_in_gcds_or_packages_is_one_rmax(tmp_path):
    pkg, gcd = hpl.estimate_hpl(_frontier(tmp_path, False)), hpl.estimate_hpl(_frontier(tmp_path, True))
    assert gcd.rmax.value == pytest.approx(pkg.rmax.value, rel=0.01)


def test_hpcg_leaves_frontier_out_of_its_own_estimate_in_gcds_too(tmp_path):
    for gcds in (False, True):
        e = hpcg.estimate_hpcg(_frontier(tmp_path, gcds))
        assert any("left out: frontier" in a for a in e.code_efficiency.assumptions), gcds
        assert e.compared is not None and e.compared.machine == "frontier"


def test_same_part_pairs_a_package_with_the_gpus_it_is_shown_as():
    assert same_part("mi250x", "mi250x_gcd") and same_part("mi250x_gcd", "mi250x")
    assert same_part("h100_sxm", "h100_sxm") and not same_part("mi250x", "mi300a")


def test_the_counted_rate_enters_at_its_centre():
    """The family efficiencies are Rmax over the central rate; the datasheet's spread is in them already."""
    rate, _, measured = hpl.rate_and_efficiency(get_device_spec("b200"), None, None, None)
    assert not measured and rate.low == rate.value == rate.high


def test_a_listed_stream_figure_enters_hpcg_at_its_centre(tmp_path):
    """The code band is leave-one-out over flop per central STREAM byte: the STREAM spread is in it."""
    e = hpcg.estimate_hpcg(_frontier(tmp_path, False))
    assert e.sustained_bandwidth.low < e.sustained_bandwidth.value   # the figure keeps its spread, shown
    assert e.rate.high / e.rate.value == pytest.approx(e.code_efficiency.high / e.code_efficiency.value)
    assert e.rate.low / e.rate.value == pytest.approx(e.code_efficiency.low / e.code_efficiency.value)


def test_a_device_no_list_carries_keeps_its_rate_range():
    """MI430X: what TOP500 will count it at is not known, so the rate's own range stays."""
    rate, _, _ = hpl.rate_and_efficiency(get_device_spec("mi430x"), None, None, None)
    assert rate.low < rate.high
