"""Plan search: valid best plans, counts, and the not-fit report (not a timed test)."""
import pytest

from recoque.planner.search import divisors, search
from recoque.planner.train import best_plans
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

SEL = validation_system("selene")
PROF = shipped_profile("a100_sxm_80gb")


def test_pruned_search_gpt3_1024():
    wl = load_training_workload("gpt3-175b")
    res = best_plans(wl, SEL, PROF, top=5, gpus=1024)
    assert len(res.best) == 5 and res.gpus == 1024
    times = [r.iteration_time.value for r in res.best]
    assert times == sorted(times)
    for r in res.best:
        p = r.plan
        assert r.fits and p.gpus == 1024 and not p.problems(wl.model, wl.global_batch_seqs)
        assert p.tp <= SEL.gpus_per_node
        assert r.memory_per_gpu.value <= r.memory_capacity_bytes
    assert res.evaluated > 1000 and res.infeasible_memory > 0 and res.invalid > 0
    assert res.plans_per_second > 0 and res.reasons


def test_full_space_contains_pruned_best():
    wl = load_training_workload("megatron-22b")
    pr = search(wl, SEL, PROF, top=1, gpus=64)
    fu = search(wl, SEL, PROF, top=1, gpus=64, full=True)
    assert fu.evaluated > pr.evaluated
    assert fu.best[0].iteration_time.value <= pr.best[0].iteration_time.value * (1 + 1e-9)


def test_nothing_fits_reports_leanest_plan():
    wl = load_training_workload("llama3-405b")
    res = search(wl, SEL, PROF, top=3, gpus=8)
    assert res.best == [] and res.smallest_memory is not None
    assert not res.smallest_memory.fits and res.infeasible_memory == res.evaluated


def test_moe_search_uses_expert_parallelism():
    wl = load_training_workload("mixtral-8x22b")
    res = search(wl, SEL, PROF, top=3, gpus=64)
    assert res.best and all(r.fits for r in res.best)


def test_divisors():
    assert divisors(12) == [1, 2, 3, 4, 6, 12]
    assert divisors(1) == [1]


def test_more_gpus_than_system():
    from recoque.errors import BadInput

    with pytest.raises(BadInput):
        search(load_training_workload("megatron-22b"), SEL, PROF, gpus=10**6)
