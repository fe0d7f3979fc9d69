"""The default (pruned) plan search finds the same best plan as the full search (issue 12).

The pruned search drops only switches the model itself proves dominated (planner/search.py); this
checks it on a grid of workloads x systems x GPU counts x stacks, dense and MoE, NVIDIA and AMD,
including counts where the best plan puts tensor parallelism across nodes, plus pinned searches.
Not a timed test.
"""
import itertools

import pytest

from recoque.planner.search import enumerate_plans, search
from recoque.planner.stacks import load_stack
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

SYSTEMS = ("selene", "frontier-gcd")
WORKLOADS = ("mistral-7b", "megatron-22b", "mixtral-8x22b", "gpt3-175b")
GPUS = (64, 96, 256)
STACKS = ("megatron-core", "deepspeed-2022", "megatron-lm-2021", "fsdp")


def _best_time(res):
    return res.best[0].iteration_time.value if res.best else None


def _both(wl_key, sys_key, gpus, stack_key, pins=None):
    wl, sy = load_training_workload(wl_key), validation_system(sys_key)
    prof, st = shipped_profile(sy.device), load_stack(stack_key)
    pr = search(wl, sy, prof, top=1, gpus=gpus, stack=st, pins=pins)
    fu = search(wl, sy, prof, top=1, gpus=gpus, stack=st, pins=pins, full=True)
    return pr, fu


@pytest.mark.parametrize("wl_key,sys_key", list(itertools.product(WORKLOADS, SYSTEMS)))
def test_pruned_best_equals_full_best(wl_key, sys_key):
    found = 0
    for gpus, stack_key in itertools.product(GPUS, STACKS):
        pr, fu = _both(wl_key, sys_key, gpus, stack_key)
        assert fu.evaluated >= pr.evaluated
        a, b = _best_time(pr), _best_time(fu)
        assert (a is None) == (b is None), (wl_key, sys_key, gpus, stack_key)
        if a is not None:
            found += 1
            assert a == pytest.approx(b, rel=1e-12), (wl_key, sys_key, gpus, stack_key, pr.best[0].plan.label(),
                                                      fu.best[0].plan.label())
    assert found > 0


def test_grid_reaches_tensor_parallelism_across_nodes():
    # megatron-22b on 64 GPUs of 8 per node: the best plan (pruned and full alike) uses TP 16
    pr, fu = _both("megatron-22b", "selene", 64, "megatron-core")
    assert pr.best[0].plan.tp > validation_system("selene").gpus_per_node
    assert _best_time(pr) == pytest.approx(_best_time(fu), rel=1e-12)


@pytest.mark.parametrize("pins", [{"tp": 2}, {"pp": 4, "vpp": 2}, {"recompute": "full"}, {"zero": 0}, {"sp": False}])
def test_pinned_pruned_equals_full(pins):
    pr, fu = _both("gpt3-175b", "selene", 256, "megatron-core", pins)
    assert _best_time(pr) == pytest.approx(_best_time(fu), rel=1e-12)


def test_stack_pipeline_rules_hold_over_the_whole_space():
    """Every enumerated plan respects the stack's pipeline code: Megatron-LM 2021 splits layers
    evenly and interleaves only with pp >= 3; DeepSpeed's pipeline engine never overlaps the
    gradient reduction and takes ZeRO stage 1 at most when pp > 1."""
    wl = load_training_workload("gpt3-175b")  # 96 layers
    for key in ("megatron-lm-2021", "deepspeed-2022"):
        st = load_stack(key)
        chunks, _ = enumerate_plans(wl, 256, 8, full=True, stack=st)
        n = 0
        for a in chunks:
            for pp, v, ov, z in zip(a["pp"], a["interleave"], a["dp_overlap"], a["zero_stage"]):
                assert st.pipeline_ok(wl.model.layers, int(pp), int(v))
                assert st.dp_overlap_with_pp or pp == 1 or not ov
                assert pp == 1 or z <= st.pipeline_max_zero
                n += 1
        assert n > 0
    meg = load_stack("megatron-lm-2021")
    assert not meg.pipeline_ok(96, 2, 2) and meg.pipeline_ok(96, 4, 2) and not meg.pipeline_ok(60, 8, 1)
    assert load_stack("megatron-core").pipeline_ok(70, 12, 1)  # uneven splits allowed there
