"""Delivered H100-equivalents for training (planner.equivalents.training_delivered): the ratio of
two searched iteration times and its own range, not every corner of the two ranges crosswise."""
import math

import pytest

from recoque.planner import capacity
from recoque.planner.equivalents import time_ratio_span
from recoque.planner.system import load_system

T_REF = {"value": 10.0, "low": 9.0, "high": 12.0}   # s per iteration at the value / fast / slow corner
T_SYS = {"value": 5.0, "low": 4.0, "high": 6.0}


def test_same_device_takes_the_ratio_corner_by_corner():
    lo, hi = time_ratio_span(T_REF, T_SYS, 0.24, 0.24, same_device=True)
    assert (lo, hi) == (2.0, 2.25)  # 12/6 and 9/4 with 10/5 between: one profile moves both times


def test_different_devices_add_the_spreads_in_quadrature():
    lo, hi = time_ratio_span(T_REF, T_SYS, 0.06, 0.24, same_device=False)
    down = math.sqrt(math.log(6 / 5) ** 2 + math.log(10 / 9) ** 2 + math.log(1.24) ** 2)
    up = math.sqrt(math.log(5 / 4) ** 2 + math.log(12 / 10) ** 2 + math.log(1.06) ** 2)
    assert lo == pytest.approx(2.0 * math.exp(-down)) and hi == pytest.approx(2.0 * math.exp(up))
    # narrower than every corner crosswise with both spreads (what the ratio of the two ranges gave)
    assert lo > 9 / (6 * 1.24) and hi < 12 * 1.06 / 4


def _delivered(system):
    rows, data, notes, d, _ = capacity.plan_train(load_system(system), "mistral-large-2")
    return d


def test_an_h100_system_is_worth_about_its_own_count_with_a_tight_range():
    d = _delivered("jean-zay-h100")
    r = d.equivalent.per_gpu_ratio
    assert 0.85 < r.value <= 1.05 and r.low <= r.value <= r.high and r.high / r.low < 1.15
    crosswise = (d.system_rate.high / d.h100_rate_per_gpu.low) / (d.system_rate.low / d.h100_rate_per_gpu.high)
    assert crosswise > 2 * r.high / r.low


def test_mfu_says_when_its_peak_is_assumed():
    rows, data, notes, d, _ = capacity.plan_train(load_system("alice-recoque"), "mistral-large-2")
    line = next(n for n in notes if n.startswith("model FLOPs count attention"))
    assert "ASSUMED" in line and "datasheet" not in line  # the MI430X bf16 peak is not published
    rows, data, notes, d, _ = capacity.plan_train(load_system("jean-zay-h100"), "mistral-large-2")
    assert "datasheet peak 989" in next(n for n in notes if n.startswith("model FLOPs count attention"))


def test_fp4_training_is_held_against_h100s_in_fp8_their_narrowest():
    """Hopper has no fp4 units: the H100 side runs the job in fp8, said in the note, where it had
    printed 'not computed'; in fp8 the two sides run the same dtype and the note says nothing."""
    from recoque.planner.equivalents import training_delivered
    from recoque.planner.search import search
    from recoque.planner.validation import training_profile
    from recoque.planner.workload import load_training_workload
    from recoque.catalog import get_device_spec
    system = load_system("node-8x-b200")
    wl = load_training_workload("llama3.1-8b")
    prof = training_profile(get_device_spec(system.device))
    ratios = {}
    for dtype in ("fp8", "fp4"):
        res = search(wl, system, prof, top=1, gpus=8, dtype=dtype)
        d = training_delivered(system, "llama3.1-8b", 8, res.best[0], dtype=dtype, profile=prof, workload=wl)
        ratios[dtype] = d.equivalent.per_gpu_ratio.value
        assert ("the H100s in fp8" in d.equivalent.note) == (dtype == "fp4")
    assert ratios["fp4"] > ratios["fp8"] > 1  # fp4 on B200 against the same fp8 H100s: worth more
