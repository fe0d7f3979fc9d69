"""An unstated per-hop latency takes the presets' stated range with their centre (planner/system.py
_DEFAULT_RANGES), so a system of H100 nodes that states none is exactly as many H100-equivalents as
GPUs against the H100 reference, over the whole range."""
import pytest

from recoque.planner import capacity
from recoque.planner.system import load_system, system_from_toml


def test_an_unstated_intra_node_latency_gets_the_stated_range():
    s = system_from_toml("x", {"device": "h100_sxm", "gpus": 8, "gpus_per_node": 8})
    e = s.estimate("intra_node_latency_s", "s")
    ref = load_system("node-8x-h100").estimate("intra_node_latency_s", "s")
    assert (e.value, e.low, e.high) == pytest.approx((ref.value, ref.low, ref.high))
    stated = system_from_toml("y", {"device": "h100_sxm", "gpus": 8, "gpus_per_node": 8, "intra_node_latency_us": 2.0})
    assert stated.estimate("intra_node_latency_s", "s").low == pytest.approx(2e-6)  # a stated figure keeps its own


def test_h100_nodes_serve_as_their_own_count_of_h100s():
    s = load_system("campus-1gw")
    data = capacity.plan_any(s, "le-chat")
    d = data["h100e"]["delivered"].h100e
    n = s.estimate("gpus", "gpu")
    assert (d.value, d.low, d.high) == pytest.approx((n.value, n.low, n.high), rel=1e-6)
