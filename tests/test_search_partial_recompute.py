"""The plan search tries partial recomputation (Megatron's block method, N layers per virtual stage)
and context parallelism as all-to-all beside the ring, where the stack has them.

search.fewest_recomputed_layers turns each fitting all-layers-recomputed plan into the same plan
recomputing the fewest layers that fit. That is the fastest of the plan's N only if, in the model,
memory never rises and time never falls as N grows: checked here on plans of several shapes.
"""
import numpy as np
import pytest

from recoque.catalog import get_device_spec
from recoque.planner.execution import RECOMPUTE_CODE
from recoque.planner.search import fewest_recomputed_layers, search
from recoque.planner.stacks import load_stack
from recoque.planner.train import PLAN_FIELDS, hardware_for
from recoque.planner.system import load_system
from recoque.planner.train_core import core
from recoque.planner.validation import shipped_profile, training_profile, validation_system
from recoque.planner.workload import load_training_workload
from recoque.planner.workloads import training_target

BASE = {"tp": 8, "pp": 4, "dp": 2, "cp": 1, "micro_batch": 1, "interleave": 1, "recompute": RECOMPUTE_CODE["full"],
        "sequence_parallel": True, "zero_stage": 1, "dp_overlap": True, "flash_attention": True, "ep": 1,
        "reshard_after_forward": True, "recompute_layers": 0, "distribute_checkpoints": False,
        "tp_overlap": False, "cp_a2a": False, "ep_overlap": False, "etp": 0}


def _setup(wl_key="gpt3-175b", sys_key="selene"):
    wl, sy = load_training_workload(wl_key), validation_system(sys_key)
    prof = shipped_profile(sy.device)
    return wl, sy, prof, hardware_for(sy, prof)


def _plans(n_values, **over):
    plan = {**BASE, **over}
    return {k: np.array([plan[k]] * len(n_values) if k != "recompute_layers" else n_values) for k in PLAN_FIELDS}


@pytest.mark.parametrize("over", [{}, {"pp": 8, "interleave": 2}, {"tp": 4, "pp": 8, "micro_batch": 2},
                                  {"sequence_parallel": False, "zero_stage": 0}])
def test_memory_falls_and_time_rises_with_the_recomputed_layers(over):
    wl, sy, prof, hw = _setup()
    per_chunk = -(-wl.model.layers // (over.get("pp", 4) * over.get("interleave", 1)))
    n = np.arange(1, per_chunk + 1)
    out = core(wl, hw, prof, "bf16", _plans(n, **over), stack=load_stack("megatron-core"))
    mem, t = out["memory_bytes"], out["iteration_time_s"]
    assert np.all(np.diff(mem) <= 0) and mem[0] > mem[-1]
    assert np.all(np.diff(t) >= 0) and t[-1] > t[0]


def test_the_fewest_layers_that_fit_are_found():
    wl, sy, prof, hw = _setup()
    st = load_stack("megatron-core")
    a = _plans(np.array([0, 0]), micro_batch=1)
    a["pp"] = np.array([4, 8])
    fits = core(wl, hw, prof, "bf16", a, memory_only=True, stack=st)["fits"]
    assert fits.all()
    fewer, mem, tried = fewest_recomputed_layers(wl, hw, prof, "bf16", a, fits, st)
    assert tried > 0 and len(mem) == len(fewer["recompute_layers"]) > 0
    for i, n in enumerate(fewer["recompute_layers"]):
        one = {k: v[i:i + 1] for k, v in fewer.items()}
        assert core(wl, hw, prof, "bf16", one, memory_only=True, stack=st)["memory_bytes"][0] == pytest.approx(mem[i])
        less = {**one, "recompute_layers": one["recompute_layers"] - 1}
        if n > 1:  # one layer fewer no longer fits
            assert not core(wl, hw, prof, "bf16", less, memory_only=True, stack=st)["fits"][0]


def test_search_finds_a_partial_recompute_plan_faster_than_all_layers():
    # BLOOM on 64 of Jean Zay's H100s: the fastest plan recomputes part of each stage
    wl, sy = load_training_workload(training_target("bloom-pretrain", None)[0]), load_system("jean-zay-h100")
    prof, st = training_profile(get_device_spec(sy.device)), load_stack("megatron-core")
    free = search(wl, sy, prof, top=1, gpus=64, stack=st)
    whole = search(wl, sy, prof, top=1, gpus=64, stack=st, pins={"recompute_layers": 0})
    b = free.best[0].plan
    assert b.recompute == "full" and 0 < b.recompute_layers
    assert free.best[0].iteration_time.value < whole.best[0].iteration_time.value
    assert whole.best[0].plan.recompute_layers == 0  # a pin of 0 (every layer) is kept


def test_a_stack_without_block_recompute_recomputes_every_layer_or_none():
    wl, sy = load_training_workload(training_target("bloom-pretrain", None)[0]), load_system("jean-zay-h100")
    prof, st = training_profile(get_device_spec(sy.device)), load_stack("deepspeed-2022")
    assert not st.block_recompute and load_stack("megatron-core").block_recompute
    res = search(wl, sy, prof, top=5, gpus=64, stack=st)
    assert res.best and all(b.plan.recompute_layers == 0 for b in res.best)


def test_context_parallelism_is_searched_as_ring_and_all_to_all_where_the_stack_has_both():
    from recoque.errors import BadInput
    from recoque.planner.search import enumerate_plans

    wl, sy = load_training_workload("llama3.1-8b"), load_system("node-8x-h100")
    prof = training_profile(get_device_spec(sy.device))
    seen = {}
    for key in ("megatron-core", "fsdp"):
        res = search(wl, sy, prof, top=400, gpus=8, stack=load_stack(key), pins={"cp": 2, "tp": 1})
        seen[key] = {r.plan.cp_a2a for r in res.best}
        by_plan = {}
        for r in res.best:  # a plan and its all-to-all twin store the same
            by_plan.setdefault(r.plan.label().replace("CP2a2a", "CP2"), set()).add(r.memory_per_gpu.value)
        assert all(len(m) == 1 for m in by_plan.values())
    assert seen == {"megatron-core": {False, True}, "fsdp": {False}}
    with pytest.raises(BadInput, match="no all-to-all context parallelism"):
        enumerate_plans(wl, 16, 8, stack=load_stack("fsdp"), pins={"cp": 2, "cp_a2a": True})
