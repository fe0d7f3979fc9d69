"""Search plausibility (issue 12): with the stack pinned to what a published run had, the searched
best plan must not beat the published plan by more than the model's own error."""
from functools import lru_cache

import pytest

from recoque.planner.search import search
from recoque.planner.validation import load_cases, run_case, shipped_profile, validate_all

# Runs whose published plan was the authors' best (not an ablation baseline such as Korthikanti's
# full-recompute rows or Narayanan's ZeRO-3 comparison rows).
BEST_PLAN_RUNS = ("korthikanti-22b-selective", "korthikanti-175b-selective", "korthikanti-530b-selective",
                  "korthikanti-1t-selective", "narayanan-1.7b", "narayanan-3.6b", "narayanan-145.6b",
                  "narayanan-310.1b", "narayanan-529.6b", "narayanan-1008b")
# Known gap: on these the model ranks other plans 9-23% ahead of the published one (lower TP with
# deeper interleaved pipelines for Narayanan's TP-8 plans; half BLOOM's pipeline depth); nothing
# published measures those alternative plans on the runs' code.
RANKING_GAP = ("narayanan-7.5b", "narayanan-18.4b", "narayanan-39.1b", "narayanan-76.1b", "bloom-176b-jean-zay")


@lru_cache(maxsize=1)
def _model_error():
    return validate_all(with_public=False).max_abs_error


def _gain(name):
    c = [x for x in load_cases() if x.name == name][0]
    res = search(c.workload, c.system, shipped_profile(c.system.device), top=1, gpus=c.plan.gpus,
                 dtype=c.dtype, stack=c.stack)
    best = res.best[0]
    return c, best, run_case(c).predicted_s / best.iteration_time.value - 1.0


@pytest.mark.parametrize("name", BEST_PLAN_RUNS)
def test_search_does_not_beat_the_published_plan_beyond_model_error(name):
    c, best, gain = _gain(name)
    assert gain <= _model_error(), (name, best.plan.label(), gain)
    # the stack limits the search: no switch the run's software lacked
    assert not best.plan.flash_attention and best.plan.zero_stage < 2
    if c.stack.key == "megatron-lm-2021":
        assert best.plan.recompute == "full" and not best.plan.sequence_parallel


@pytest.mark.parametrize("name", RANKING_GAP)
@pytest.mark.xfail(strict=True, reason="known gap: alternative plans ranked 9-23% ahead of the published one (issue 12)")
def test_ranking_gap_rows(name):
    _c, _best, gain = _gain(name)
    assert gain <= _model_error()


def test_pinned_recompute_overrides_the_stack_practice():
    c = [x for x in load_cases() if x.name == "narayanan-1.7b"][0]
    res = search(c.workload, c.system, shipped_profile(c.system.device), top=1, gpus=c.plan.gpus,
                 stack=c.stack, pins={"recompute": "none"})
    assert res.best and res.best[0].plan.recompute == "none"
