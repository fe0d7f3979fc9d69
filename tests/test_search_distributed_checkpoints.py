"""The plan search distributes the checkpointed layer inputs over the TP ranks (Megatron's
--distribute-saved-activations, DeepSpeed's partition_activations) where the stack has it, on plans
without sequence parallelism that do not fit otherwise (search.distributed_checkpoint_plans)."""
from dataclasses import replace
from functools import lru_cache

import numpy as np
import pytest

from recoque.errors import BadInput
from recoque.fileio import read_seed_toml
from recoque.planner.search import search
from recoque.planner.stacks import load_stack
from recoque.planner.train import PLAN_FIELDS, hardware_for, plan_arrays
from recoque.planner.train_core import core
from recoque.planner.validation import load_cases, shipped_profile


@lru_cache(maxsize=None)
def _case(name="narayanan-1008b"):
    return [x for x in load_cases() if x.name == name][0]


def _search(pins=None, stack=None, name="narayanan-1008b"):
    c = _case(name)
    return search(c.workload, c.system, shipped_profile(c.system.device), top=3, gpus=c.plan.gpus,
                  dtype=c.dtype, stack=stack or c.stack, pins=pins)


def _memory(plan):
    c = _case()
    prof = shipped_profile(c.system.device)
    out = core(c.workload, hardware_for(c.system, prof), prof, c.dtype, plan_arrays([plan]), memory_only=True,
               stack=c.stack)
    return bool(out["fits"][0]), float(out["memory_bytes"][0])


def test_the_search_finds_a_plan_that_fits_only_with_distributed_checkpoints():
    best = _search().best[0].plan
    assert best.distribute_checkpoints and best.recompute == "full" and best.tp > 1 and not best.sequence_parallel
    fits_dist, mem_dist = _memory(best)
    fits_plain, mem_plain = _memory(replace(best, distribute_checkpoints=False))
    assert fits_dist and not fits_plain
    assert mem_dist < mem_plain


def test_pinning_them_off_gives_the_best_plan_without_them_and_it_is_slower():
    on, off = _search().best[0], _search(pins={"distribute_checkpoints": False}).best[0]
    assert not off.plan.distribute_checkpoints
    assert on.iteration_time.value < off.iteration_time.value


def test_the_split_costs_time_so_a_plan_that_fits_without_it_never_takes_it():
    # every searched plan that distributes its checkpoints would not fit without them
    for r in _search().best:
        if r.plan.distribute_checkpoints:
            assert not _memory(replace(r.plan, distribute_checkpoints=False))[0], r.plan.label()
    c = _case()
    prof = shipped_profile(c.system.device)
    a = plan_arrays([c.plan, replace(c.plan, distribute_checkpoints=True)])
    t = core(c.workload, hardware_for(c.system, prof), prof, c.dtype, a, stack=c.stack)["iteration_time_s"]
    assert t[1] > t[0]


def test_a_stack_without_it_never_searches_it_and_refuses_the_pin():
    fsdp = load_stack("fsdp")
    assert not fsdp.distribute_checkpoints
    res = _search(stack=fsdp)
    assert all(not r.plan.distribute_checkpoints for r in res.best)
    with pytest.raises(BadInput, match="distribute_checkpoints"):
        _search(stack=fsdp, pins={"distribute_checkpoints": True, "recompute": "full"})


@pytest.mark.parametrize("key", ["megatron-lm-2021", "megatron-lm", "megatron-core", "megatron-lm-rocm",
                                 "deepspeed-2022", "deepspeed", "deepspeed-rocm"])
def test_the_stacks_that_have_it_say_so_with_a_source(key):
    st = load_stack(key)
    assert st.distribute_checkpoints
    src = read_seed_toml("stacks.toml")["stacks"][key]["sources"]["distribute_checkpoints"]
    assert "distribute" in src or "partition_activations" in src


def test_plan_fields_carry_the_switch():
    assert "distribute_checkpoints" in PLAN_FIELDS
    assert np.asarray(plan_arrays([_case().plan])["distribute_checkpoints"]).dtype == bool


def _leanest(pins, gpus=128):
    c = _case()
    res = search(c.workload, c.system, shipped_profile(c.system.device), top=1, gpus=gpus, dtype=c.dtype,
                 stack=c.stack, pins=pins)
    assert res.best == []
    return res.smallest_memory


def test_when_nothing_fits_the_leanest_plan_said_may_split_its_checkpoints():
    # Narayanan's 1T on 128 GPUs fits no plan; the split saves memory, so the leanest plan said has it
    split, whole = _leanest(None), _leanest({"distribute_checkpoints": False})
    assert split.plan.distribute_checkpoints and not whole.plan.distribute_checkpoints
    assert not split.fits and split.memory_per_gpu.value < whole.memory_per_gpu.value
