"""An ASSUMED peak (MI430X BF16/FP8: not published) is a bracket, and the training range spans it:
the slow corner runs on the bracket's low end, the fast corner on its high end; MFU is each end against
its own peak. A datasheet peak is untouched."""
from dataclasses import replace

import pytest

from recoque.catalog import get_device_spec
from recoque.planner.execution import ExecutionPlan
from recoque.planner.profile import DeviceProfile
from recoque.planner.system import load_system
from recoque.planner.train import evaluate
from recoque.planner.workload import load_training_workload
from recoque.planner.workloads import assumed_peak, peak_estimate, spec_with_assumed_peaks

WL = load_training_workload("mistral-large-2")
PLAN = ExecutionPlan(tp=4, pp=4, dp=8, micro_batch=1, recompute="selective")
SYS = load_system("alice-recoque")
SPEC, _ = spec_with_assumed_peaks(get_device_spec("mi430x"))
LO, HI = SPEC.peak_range("bf16")


def _fixed(peak: float) -> DeviceProfile:
    """The same datasheet profile with the bf16 peak a known figure (no bracket)."""
    spec = replace(SPEC, peak_flop_s={**SPEC.peak_flop_s, "bf16": peak}, assumed_rates=())
    return DeviceProfile.from_datasheet(spec)


def test_spec_keeps_the_bracket_as_the_range():
    assert set(SPEC.assumed_rates) == {"bf16", "fp8"}
    assert (LO, HI) == pytest.approx((2516.6e12, 10000e12))
    est = peak_estimate(SPEC, "bf16")
    assert est.assumptions == assumed_peak(SPEC, "bf16").assumptions  # said ASSUMED, not "sources disagree"


def test_training_range_spans_the_bracket():
    both = evaluate(WL, SYS, PLAN, DeviceProfile.from_datasheet(SPEC))
    slow = evaluate(WL, SYS, PLAN, _fixed(LO))
    fast = evaluate(WL, SYS, PLAN, _fixed(HI))
    centre = evaluate(WL, SYS, PLAN, _fixed(SPEC.peak("bf16")))
    assert both.iteration_time.value == pytest.approx(centre.iteration_time.value)
    # the corner scales the built curve, the fixed profile rebuilds it around a per-kernel overhead: within 1%
    assert both.iteration_time.high == pytest.approx(slow.iteration_time.high, rel=0.01)
    assert both.iteration_time.low == pytest.approx(fast.iteration_time.low, rel=0.01)
    assert both.iteration_time.high > centre.iteration_time.high * 1.3  # before: the centre's range only
    # MFU: each end against its own peak, so its range stays the efficiency's
    assert both.mfu.low == pytest.approx(slow.mfu.low, rel=0.01)
    assert both.mfu.high == pytest.approx(fast.mfu.high, rel=0.01)
    assert any("ASSUMED peak bracket" in a for a in both.assumptions)


def test_datasheet_peak_untouched():
    prof = DeviceProfile.from_datasheet(get_device_spec("mi355x"))
    assert prof.bound("low").spec is prof.spec
    assert prof.bound("low").gemm["bf16"].rate[0] == pytest.approx(prof.gemm["bf16"].low[0])


def test_measured_gemm_keeps_its_rate():
    prof = DeviceProfile.from_datasheet(SPEC)
    measured = replace(prof, origin="measured")  # its bf16 curve now stands for a measurement
    low = measured.bound("low")
    assert low.gemm["bf16"].rate[0] == pytest.approx(prof.gemm["bf16"].low[0])
    assert low.spec.peak("bf16") == pytest.approx(LO)  # the peak's floor still follows the bracket
