"""Training reads the grouped expert GEMMs `recoque bench moe` measured (`plan train --profile`):
the rates by shape (planner/shape_rates.py), the profile that carries them, and the plan's time."""
import types
from dataclasses import replace

import numpy as np
import pytest

from recoque.bench.schema import Record
from recoque.kernels import moe as K
from recoque.planner import shape_rates
from recoque.planner.execution import ExecutionPlan
from recoque.planner.profile import DeviceProfile
from recoque.planner.stacks import load_stack
from recoque.planner.train import evaluate
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

MIX = load_training_workload("mixtral-8x22b")
LLAMA = load_training_workload("llama3.1-8b")
SEL = validation_system("selene").with_gpus(512)
PROF = shipped_profile("a100_sxm_80gb")
CORE = load_stack("megatron-core")
PLAN = ExecutionPlan(tp=2, pp=4, dp=64, ep=8, micro_batch=1, recompute="full")
DENSE_PLAN = ExecutionPlan(tp=1, pp=1, dp=512, micro_batch=1)
# (rows per expert, n, k, value, low, high) FLOP/s: two measured shapes, two row counts each
POINTS = ((32.0, 4096.0, 7168.0, 1e14, 0.8e14, 1.1e14), (512.0, 4096.0, 7168.0, 4e14, 3e14, 4.4e14),
          (32.0, 1536.0, 2048.0, 5e13, 4e13, 6e13), (512.0, 1536.0, 2048.0, 2e14, 1.5e14, 2.2e14))


def _time(workload, plan, profile):
    return evaluate(workload, SEL, plan, profile, stack=CORE).iteration_time.value


def test_rates_by_shape_broadcast_as_one_call_per_point():
    m = np.array([8.0, 32.0, 128.0, 512.0, 4096.0])
    n, k = np.array([4096.0, 4000.0, 1600.0, 1536.0, 5000.0]), np.array([7168.0, 7000.0, 2000.0, 2048.0, 8000.0])
    together = shape_rates.rate_at(POINTS, m, n, k)
    one_by_one = [shape_rates.rate_at(POINTS, *x) for x in zip(m, n, k)]
    assert together == pytest.approx(one_by_one) and isinstance(one_by_one[0], float)
    assert one_by_one[1] == pytest.approx(1e14) and one_by_one[3] == pytest.approx(2e14)  # the measured points
    assert one_by_one[2] == pytest.approx(1e14)  # log-log halfway between 5e13 at 32 and 2e14 at 512
    assert one_by_one[4] == pytest.approx(4e14)  # flat above the largest measured
    assert one_by_one[0] == pytest.approx(1e14 * (8 / 40) / (32 / 64))  # the tile fall below the smallest
    assert shape_rates.rate_at(POINTS, 512.0, 4096.0, 7168.0, "low") == pytest.approx(3e14)


def test_without_grouped_measurements_nothing_changes():
    assert not PROF.has_expert_rates("bf16")
    assert _time(MIX, PLAN, replace(PROF, moe={})) == _time(MIX, PLAN, PROF)
    assert _time(MIX, PLAN, replace(PROF, moe={"fp8": POINTS})) == _time(MIX, PLAN, PROF)  # another dtype


def test_a_slower_measured_grouped_kernel_gives_a_slower_moe_plan_and_leaves_dense_ones():
    def flat(rate):
        return {"bf16": tuple(p[:3] + (rate, rate, rate) for p in POINTS)}

    slow, fast = replace(PROF, moe=flat(1e13)), replace(PROF, moe=flat(1e17))
    assert _time(MIX, PLAN, slow) > _time(MIX, PLAN, PROF) > _time(MIX, PLAN, fast)
    assert _time(LLAMA, DENSE_PLAN, slow) == _time(LLAMA, DENSE_PLAN, PROF)  # no experts, nothing read


def test_the_profile_from_results_carries_the_grouped_rates_and_their_corners():
    recs = []
    for rpe, t in ((32, 1e-3), (512, 4e-3)):
        tokens = rpe * 128 // 4
        recs.append(Record("moe", "grouped_mm", "bf16", {"model": "m", "experts": 128, "top_k": 4, "tokens": tokens,
                                                         "n": 5760, "k": 2880},
                           (t, t, t * 1.5), "TFLOP/s", flop_count=K.flop_count(tokens, 4, 5760, 2880)))
    doc = types.SimpleNamespace(select=lambda b, **_: recs if b == "moe" else [])
    prof = DeviceProfile.from_results(doc, PROF.spec)
    assert prof.has_expert_rates("bf16") and not prof.has_expert_rates("fp8")
    assert any("MoE expert GEMMs (bf16)" in a for a in prof.assumptions)
    work = K.flop_count(32 * 128 // 4, 4, 5760, 2880)
    per_expert = 2.0 * 32 * 5760 * 2880
    assert prof.expert_gemm_time_s("bf16", 32, 5760, 2880) == pytest.approx(per_expert / (work / 1e-3))
    # the low corner is the slow sample, at least the measured-composition band below the median
    slow = prof.bound("low").expert_gemm_time_s("bf16", 32, 5760, 2880)
    assert slow == pytest.approx(per_expert / (work / 1.5e-3))
    fast = prof.bound("high").expert_gemm_time_s("bf16", 32, 5760, 2880)
    assert fast < prof.expert_gemm_time_s("bf16", 32, 5760, 2880) < slow
