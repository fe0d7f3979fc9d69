"""The training model: estimates with bounds, memory verdicts, monotonicity properties."""
from dataclasses import replace

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from recoque.errors import BadInput
from recoque.planner.execution import ExecutionPlan
from recoque.planner.train import evaluate
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

SEL = validation_system("selene")
PROF = shipped_profile("a100_sxm_80gb")
GPT3 = load_training_workload("gpt3-175b")
PLAN = ExecutionPlan(tp=8, pp=8, dp=16, micro_batch=1, recompute="selective", interleave=2, zero_stage=1)


def test_evaluate_fields_and_bounds():
    r = evaluate(GPT3, SEL, PLAN, PROF)
    assert r.fits and r.gpus == 1024
    for e in (r.iteration_time, r.tokens_per_s, r.time_to_train, r.time_to_train_wall, r.mfu, r.hfu,
              r.model_flop_s_per_gpu, r.comm_share, r.goodput):
        assert e.low <= e.value <= e.high
    assert r.iteration_time.low < r.iteration_time.high
    assert 0.2 < r.mfu.value < r.hfu.value < 0.8
    assert r.time_to_train_wall.value > r.time_to_train.value  # goodput shown apart
    assert r.tokens_per_s.value == pytest.approx(1536 * 2048 / r.iteration_time.value)
    assert r.assumptions and r.to_json()["plan"]["tp"] == 8


def test_plan_that_does_not_fit_is_reported_not_raised():
    r = evaluate(GPT3, SEL, ExecutionPlan(tp=1, pp=2, dp=512, micro_batch=1, recompute="none", zero_stage=0), PROF)
    assert not r.fits and "GB per GPU" in r.why


def test_invalid_plan_raises_bad_input():
    with pytest.raises(BadInput):
        evaluate(GPT3, SEL, ExecutionPlan(tp=7, pp=8, dp=16, micro_batch=1), PROF)


def test_recompute_costs_time_saves_memory():
    # unfused attention, where selective recompute drops the s x s scores (Korthikanti sec. 5)
    rs = {rc: evaluate(GPT3, SEL, replace(PLAN, recompute=rc, flash_attention=False), PROF)
          for rc in ("none", "selective", "full")}
    assert rs["none"].iteration_time.value <= rs["selective"].iteration_time.value < rs["full"].iteration_time.value
    assert rs["none"].memory_per_gpu.value > rs["selective"].memory_per_gpu.value > rs["full"].memory_per_gpu.value
    assert rs["full"].mfu.value < rs["full"].hfu.value


plans = st.builds(
    ExecutionPlan, tp=st.sampled_from([1, 2, 4, 8, 16]), pp=st.sampled_from([1, 2, 4, 8]),
    dp=st.sampled_from([1, 2, 4, 8]), micro_batch=st.sampled_from([1, 2]),
    recompute=st.sampled_from(["none", "selective", "full"]), interleave=st.sampled_from([1, 2]),
    sequence_parallel=st.booleans(), zero_stage=st.sampled_from([0, 1, 2, 3]), dp_overlap=st.booleans())


def _valid(p, wl):
    return not p.problems(wl.model, wl.global_batch_seqs)


@settings(max_examples=40, deadline=None)
@given(plan=plans, factor=st.floats(1.01, 10.0), which=st.sampled_from(["intra", "inter"]))
def test_more_bandwidth_never_slows_a_plan(plan, factor, which):
    wl = GPT3
    assume(_valid(plan, wl))
    attr = f"{which}_node_bandwidth_bytes_s"
    faster = replace(SEL, **{attr: getattr(SEL, attr) * factor})
    t0 = evaluate(wl, SEL, plan, PROF).iteration_time.value
    t1 = evaluate(wl, faster, plan, PROF).iteration_time.value
    assert t1 <= t0 * (1 + 1e-12)


@settings(max_examples=40, deadline=None)
@given(plan=plans, grow=st.sampled_from([2, 3, 4]))
def test_more_gpus_at_fixed_shape_never_lowers_throughput(plan, grow):
    # Same tp, pp, micro-batch and micro-batches per replica; dp (and the batch) grows.
    # The base plan's data-parallel group already crosses nodes, so growing dp does not move it
    # from NVLink onto the slower network tier (that move can legitimately cost throughput).
    wl = GPT3
    # dp >= 2: going from no data parallelism to some adds ZeRO/gradient traffic (legitimately).
    assume(_valid(plan, wl) and plan.dp >= 2 and plan.tp * plan.dp >= 2 * SEL.gpus_per_node)
    m = wl.global_batch_seqs // (plan.dp * plan.micro_batch)
    small = replace(wl, global_batch_seqs=plan.dp * plan.micro_batch * m)
    big_plan = replace(plan, dp=plan.dp * grow)
    big = replace(wl, global_batch_seqs=big_plan.dp * plan.micro_batch * m)
    a = evaluate(small, SEL, plan, PROF).tokens_per_s.value
    b = evaluate(big, SEL, big_plan, PROF).tokens_per_s.value
    assert b >= a * (1 - 1e-12)


def test_more_gpus_example_megatron_shape():
    small = replace(GPT3, global_batch_seqs=16 * 8)
    big = replace(GPT3, global_batch_seqs=64 * 8)
    a = evaluate(small, SEL, replace(PLAN, dp=16), PROF).tokens_per_s.value
    b = evaluate(big, SEL, replace(PLAN, dp=64), PROF).tokens_per_s.value
    assert 3.5 * a < b <= 4 * a


def test_zero3_overlap_is_partial_and_costs_time():
    # Same shape, ZeRO-3 vs ZeRO-1: ZeRO-3 moves 1.5x the bytes per micro-batch and overlap hides
    # only part of it, so it is never faster; without overlap it is slower still.
    plan = ExecutionPlan(tp=8, pp=1, dp=128, micro_batch=1, recompute="full", zero_stage=1)
    wl = replace(GPT3, global_batch_seqs=1024)
    z1 = evaluate(wl, SEL, plan, PROF)
    z3 = evaluate(wl, SEL, replace(plan, zero_stage=3), PROF)
    z3_off = evaluate(wl, SEL, replace(plan, zero_stage=3, dp_overlap=False), PROF)
    assert z1.iteration_time.value < z3.iteration_time.value < z3_off.iteration_time.value
    assert z3.breakdown["zero3_exposed_s"] > 0.0
    assert z3.memory_per_gpu.value < z1.memory_per_gpu.value
