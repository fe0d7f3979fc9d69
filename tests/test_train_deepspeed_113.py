"""DeepSpeed ZeRO-1/2 as its code runs: the updated weights are all-gathered after the optimizer
step (nothing to hide behind), and the current release reduces gradients by a whole all-reduce."""
from dataclasses import replace

import pytest

from recoque.planner.stacks import load_stack
from recoque.planner.train import plan_arrays, results_from_arrays
from recoque.planner.validation import load_cases, shipped_profile


def _dp_exposed_s(case, **stack_fields):
    c = replace(case, stack=replace(case.stack, **stack_fields))
    arrays = plan_arrays([c.plan])
    r = results_from_arrays(c.workload, c.system, shipped_profile(c.system.device), c.dtype, arrays, stack=c.stack)[0]
    return r.breakdown["dp_exposed_s"], r.iteration_time.value


@pytest.fixture(scope="module")
def forge_s():
    return next(c for c in load_cases("train_checks.toml") if c.name == "forge-s-frontier-512gcd")


def test_the_deepspeed_stacks_say_how_they_gather_and_reduce():
    for key in ("deepspeed", "deepspeed-2022", "deepspeed-rocm"):
        assert not load_stack(key).param_gather_overlap, key
    assert load_stack("deepspeed").grad_reduce_allreduce
    assert not load_stack("deepspeed-2022").grad_reduce_allreduce and not load_stack("deepspeed-rocm").grad_reduce_allreduce
    assert load_stack("megatron-core").param_gather_overlap and not load_stack("megatron-core").grad_reduce_allreduce


def test_a_gather_after_the_step_shows_even_with_overlap(forge_s):
    overlapped = replace(forge_s, plan=replace(forge_s.plan, dp_overlap=True))
    # zero1_overlap on: the overlap this test needs (deepspeed-rocm's DeepSpeed drops it at stage 1, test_review_114)
    hidden, _ = _dp_exposed_s(overlapped, param_gather_overlap=True, zero1_overlap=True)
    apart, _ = _dp_exposed_s(overlapped, param_gather_overlap=False, zero1_overlap=True)
    assert apart > hidden


def test_an_all_reduce_moves_twice_a_reduce_scatter(forge_s):
    """FORGE-S, ZeRO-1 without overlap: gradient reduction + weight gather all exposed. A
    reduce-scatter and an all-gather of the same bytes take the same time, so turning the
    reduce-scatter into an all-reduce takes the pair from 2 units to 3."""
    rs, _ = _dp_exposed_s(forge_s, grad_reduce_allreduce=False)
    ar, _ = _dp_exposed_s(forge_s, grad_reduce_allreduce=True)
    assert ar / rs == pytest.approx(1.5, rel=0.05)
