"""The plan model times each micro-batch shape once (planner/train_kernels.py `per_shape`): a batch of
plans gives, plan for plan, what each plan gives evaluated alone. Not a timed test."""
from dataclasses import replace

import numpy as np
import pytest

from recoque.planner.search import enumerate_plans
from recoque.planner.stacks import load_stack
from recoque.planner.train import hardware_for
from recoque.planner.train_core import core
from recoque.planner.train_kernels import per_shape
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload


@pytest.mark.parametrize("wl_key,sys_key,dtype,stack_key", [
    ("gpt3-175b", "selene", "bf16", "megatron-lm-2021"),   # unfused attention among the plans
    ("mixtral-8x22b", "frontier-gcd", "bf16", "megatron-core"),  # MoE: ep varies
    ("mistral-7b", "meta-llama3-h100", "fp8", "megatron-core"),  # with adapters: casts, context parallelism
])
def test_batched_equals_one_by_one(wl_key, sys_key, dtype, stack_key):
    wl, sy = load_training_workload(wl_key), validation_system(sys_key)
    if dtype == "fp8":
        wl = replace(wl, lora_rank=16)
    prof, st = shipped_profile(sy.device), load_stack(stack_key)
    chunks, _ = enumerate_plans(wl, 256, sy.gpus_per_node, full=True, stack=st)
    a = next(chunks)
    rng = np.random.default_rng(0)
    pick = rng.choice(len(a["tp"]), size=min(40, len(a["tp"])), replace=False)
    a = {k: v[pick] for k, v in a.items()}
    hw = hardware_for(sy, prof)
    batch = core(wl, hw, prof, dtype, a, stack=st)
    assert len({(t, b, c, e) for t, b, c, e in zip(a["tp"], a["micro_batch"], a["cp"], a["ep"])}) > 1
    for i in range(len(pick)):
        one = core(wl, hw, prof, dtype, {k: v[i:i + 1] for k, v in a.items()}, stack=st)
        for k in ("iteration_time_s", "compute_s", "memory_bytes"):
            assert batch[k][i] == pytest.approx(one[k][0], rel=1e-12), (k, i)


def test_per_shape_calls_once_per_distinct_row():
    calls = []

    def fn(i):
        calls.append(np.size(np.arange(6)[i]))
        return {"x": np.array([1.0, 2.0, 4.0, 8.0, 16.0, 32.0])[i] * 0 + np.array([3.0, 5.0, 3.0, 5.0, 7.0, 3.0])[i],
                "zero": 0.0}

    out = per_shape(fn, np.array([3, 5, 3, 5, 7, 3]), np.ones(6))
    assert calls == [3]
    assert out["x"].tolist() == [3.0, 5.0, 3.0, 5.0, 7.0, 3.0]
    assert out["zero"].tolist() == [0.0] * 6


def test_per_shape_falls_back_on_non_integer_columns():
    seen = []

    def fn(i):
        seen.append(i)
        return {"x": np.array([0.5, 1.5, 0.5])[i] * 2.0}

    out = per_shape(fn, np.array([0.5, 1.5, 0.5]))
    assert seen == [Ellipsis]
    assert out["x"].tolist() == [1.0, 3.0, 1.0]
