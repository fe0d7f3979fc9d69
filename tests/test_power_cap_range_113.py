"""The power-cap clock law carries the span of its same-die pairs: the fast corner at the smallest
exponent (0.559, MI325X / MI300X), the slow one at the largest (0.622, MI355X / MI350X)."""
import pytest

from recoque.planner import power
from recoque.planner.system import load_system


def test_the_exponent_spans_the_same_die_pairs():
    assert power.clock_exponent("high") == pytest.approx(0.559)
    assert power.clock_exponent("value") == power.clock_exponent("low") == pytest.approx(0.622)


def test_a_capped_gpu_clock_has_a_range_and_an_uncapped_one_none():
    capped = power.limited(load_system("node-8x-mi355x"), 1000.0)
    lo, mid, hi = (power.clock_factor(capped, None, w) for w in ("low", "value", "high"))
    assert lo <= mid < hi < 1.0
    assert hi == pytest.approx((1000 / 1400) ** 0.559)
    free = load_system("node-8x-mi355x")
    assert {power.clock_factor(free, None, w) for w in ("low", "value", "high")} == {1.0}
    assert "0.559-0.622" in power.note(capped)
