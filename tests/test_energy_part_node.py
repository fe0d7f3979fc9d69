"""IT power of a GPU count that is not a whole number of nodes: node power x GPUs / GPUs per node
(the part node's other GPUs left to other jobs), and the assumption says so."""
import pytest

from recoque.estimate import Estimate
from recoque.planner import energy
from recoque.planner.system import system_from_toml

NODE = {"device": "h100_sxm", "gpus": 16, "gpus_per_node": 8, "intra_node_bandwidth_gb_s": 450,
        "inter_node_bandwidth_gb_s": 50, "node_power_kw": 10.2, "pue": 1.2}


def _power(gpus):
    return energy.it_power(system_from_toml("s", NODE), Estimate.exact(gpus, "gpu"))


def test_whole_nodes_are_node_power_times_nodes_and_say_nothing_more():
    p = _power(16)
    assert p.value == pytest.approx(2 * 10_200)
    assert not any("pro rata" in a for a in p.assumptions)


def test_a_part_node_is_counted_pro_rata_and_said():
    p = _power(12)
    assert p.value == pytest.approx(1.5 * 10_200)
    assert any("a node only partly used, of 8 GPUs, counted pro rata" in a for a in p.assumptions)
