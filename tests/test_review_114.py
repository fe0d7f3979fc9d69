"""Stop 114: DeepSpeed before 0.13 runs ZeRO-1 without overlap whatever overlap_comm says, and
Megatron-Core's block-partial recompute counts N layers in each virtual stage."""
from dataclasses import replace

import numpy as np
import pytest

from recoque.errors import BadInput
from recoque.planner.execution import ExecutionPlan
from recoque.planner.search import check_pins_for_stack
from recoque.planner.stacks import load_stack
from recoque.planner.train import plan_arrays, results_from_arrays
from recoque.planner.train_core import normalise_plans
from recoque.planner.validation import load_cases, shipped_profile


def _breakdown(case):
    r = results_from_arrays(case.workload, case.system, shipped_profile(case.system.device), case.dtype,
                            plan_arrays([case.plan]), stack=case.stack)[0]
    return r.breakdown


@pytest.fixture(scope="module")
def forge_m():
    """FORGE-M as its config asks (overlap_comm True); the check set records the plan as it ran (no overlap)."""
    c = next(c for c in load_cases("train_checks.toml") if c.name == "forge-m-frontier-512gcd")
    assert not c.plan.dp_overlap
    return replace(c, plan=replace(c.plan, dp_overlap=True))


def test_which_deepspeed_stacks_overlap_zero1():
    # 0.4.4-0.12.x: engine.py drops overlap_comm at stage 1; 0.13.0 (PR #4887) lifted it
    assert not load_stack("deepspeed-rocm").zero1_overlap and not load_stack("deepspeed-2022").zero1_overlap
    assert load_stack("deepspeed").zero1_overlap and load_stack("megatron-core").zero1_overlap


def test_overlap_asked_at_zero1_is_not_granted_on_old_deepspeed(forge_m):
    assert forge_m.plan.dp_overlap and forge_m.plan.zero_stage == 1
    asked = _breakdown(forge_m)
    off = _breakdown(replace(forge_m, plan=replace(forge_m.plan, dp_overlap=False)))
    granted = _breakdown(replace(forge_m, stack=replace(forge_m.stack, zero1_overlap=True)))
    assert asked["dp_exposed_s"] == pytest.approx(off["dp_exposed_s"])
    assert granted["dp_exposed_s"] < asked["dp_exposed_s"]


def test_zero2_still_overlaps_on_old_deepspeed(forge_m):
    z2 = replace(forge_m, plan=replace(forge_m.plan, zero_stage=2))
    on, off = _breakdown(z2), _breakdown(replace(z2, plan=replace(z2.plan, dp_overlap=False)))
    assert on["dp_exposed_s"] < off["dp_exposed_s"]


def test_a_zero1_overlap_pin_is_refused_with_a_fix():
    with pytest.raises(BadInput, match="zero1_overlap"):
        check_pins_for_stack({"dp_overlap": True, "zero_stage": 1}, load_stack("deepspeed-rocm"))
    check_pins_for_stack({"dp_overlap": True, "zero_stage": 1}, load_stack("deepspeed"))   # allowed there


def test_block_recompute_counts_n_layers_per_virtual_stage():
    # Llama 3.1 70B on PP4 with 5 virtual stages: 80 / 20 = 4 layers a chunk, N = 1 of each recomputed
    plan = ExecutionPlan(tp=8, pp=4, dp=2, micro_batch=1, interleave=5, recompute="full", recompute_layers=1,
                         sequence_parallel=True, zero_stage=1, dp_overlap=True, flash_attention=True)
    assert plan.recompute_share(80) == pytest.approx(1 / 4)   # 5 of the GPU's 20 layers (before: 1 of 20)
    assert replace(plan, interleave=1).recompute_share(80) == pytest.approx(1 / 20)


def test_the_time_model_recomputes_n_per_chunk():
    case = next(c for c in load_cases("validation.toml") if c.plan.recompute == "full" and c.plan.pp > 1)
    plan = replace(case.plan, interleave=2, recompute_layers=1)
    p = normalise_plans(case.workload, plan_arrays([plan]), case.stack)
    assert float(p.n_rc[0]) == pytest.approx(2.0)   # one layer in each of the two chunks
    assert np.all(p.frac <= 1.0)


def _memory_bytes(case):
    r = results_from_arrays(case.workload, case.system, shipped_profile(case.system.device), case.dtype,
                            plan_arrays([case.plan]), stack=case.stack)[0]
    return r.memory_per_gpu.value


def test_fsdp_under_a_pipeline_keeps_the_stage_whole():
    case = next(c for c in load_cases("train_checks.toml") if c.name == "torchtitan-405b-512gpu-fsdp-tp8-pp8-float8")
    assert case.stack.pp_keeps_unsharded and case.plan.pp > 1 and case.plan.zero_stage == 3
    kept = _memory_bytes(case)
    sharded = _memory_bytes(replace(case, stack=replace(case.stack, pp_keeps_unsharded=False)))
    # the accumulated fp32 gradients of the stage (about 6.6 G parameters a GPU) instead of their 1/8 shard
    assert 20e9 < kept - sharded < 30e9
    # without a pipeline FSDP reduce-scatters after each backward: nothing more is kept
    flat = replace(case, plan=replace(case.plan, pp=1, dp=64))
    assert _memory_bytes(flat) == pytest.approx(_memory_bytes(replace(flat, stack=replace(flat.stack, pp_keeps_unsharded=False))))
