"""The iteration time's range: the profile's and the system's corners, and on the slow side the
run-to-run spread of one plan (planner/train.py RUN_TO_RUN_SLOWER), wider across nodes."""
import pytest

from recoque.planner.train import RUN_TO_RUN_SLOWER, _corners, plan_arrays, results_from_arrays
from recoque.planner.validation import load_cases, shipped_profile


def _case(name):
    return [c for c in load_cases("train_checks.toml") if c.name == name][0]


@pytest.mark.parametrize("name,where", [("mlperf41-lora-70b-1x8-h100", "one_node"),
                                        ("mlperf41-lora-70b-8x8-h100", "multi_node")])
def test_the_slow_side_carries_the_run_to_run_spread(name, where):
    c = _case(name)
    prof = shipped_profile(c.system.device)
    arrays = plan_arrays([c.plan])
    corners = _corners(c.workload, c.system, prof, c.dtype, arrays, c.stack)
    slowest = max(float(corners[k]["iteration_time_s"][0]) for k in ("value", "low", "high"))
    fastest = min(float(corners[k]["iteration_time_s"][0]) for k in ("value", "low", "high"))
    t = results_from_arrays(c.workload, c.system, prof, c.dtype, arrays, stack=c.stack)[0].iteration_time
    assert t.high == pytest.approx(slowest * (1 + RUN_TO_RUN_SLOWER[where]), rel=1e-12)
    assert t.low == pytest.approx(fastest, rel=1e-12)        # the fast side is not widened
    assert any("run-to-run" in a for a in t.assumptions)


def test_across_nodes_the_spread_is_wider_than_on_one_node():
    assert RUN_TO_RUN_SLOWER["multi_node"] > RUN_TO_RUN_SLOWER["one_node"] > 0
