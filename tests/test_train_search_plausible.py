"""Search plausibility (issue 12): with the stack pinned to what a published run had, the searched
best plan must not beat the published plan by more than the model's own error."""
from functools import lru_cache

import pytest

from recoque.planner.search import search
from recoque.planner.validation import load_cases, run_case, shipped_profile, validate_all

# Runs whose published plan was the authors' best (not an ablation baseline such as Korthikanti's
# full-recompute rows or Narayanan's ZeRO-3 comparison rows). narayanan-76.1b and BLOOM passed
# once the stacks' pipeline rules and memory were modelled (seeds/stacks.toml `pipeline`): Megatron-LM
# 2021 cannot split 60 layers over 8 stages, and DeepSpeed's pipeline engine neither overlaps the
# gradient reduction nor frees the 16-bit gradients, which puts BLOOM's TP4 PP6 DP16 over memory
# (BigScience measured it out of memory at 184B: chronicles-prequel.md).
BEST_PLAN_RUNS = ("korthikanti-175b-selective", "korthikanti-530b-selective",
                  "korthikanti-1t-selective", "narayanan-1.7b", "narayanan-3.6b", "narayanan-76.1b",
                  "narayanan-145.6b")
# Known gap, at the memory limit: with the HBM read as GiB (planner/train.py hardware_for) the
# search finds plans at 95-96% of the usable memory that the authors did not run: Korthikanti's
# 22B on 8 GPUs as TP4 DP2 micro-batch 2 (76.9 of 80.7 GB, 7.9% faster than their TP8), BLOOM as
# TP4 PP6 DP16 (77.8 GB, 6.6% faster), against the model's worst A100 error of 6.3%. Whether they
# fit lies inside the memory model's own error (AMD's MLPerf LoRA config needs 3 recomputed layers,
# about 6 GB, more than the model counts: tests/test_train_lora_amd.py); BigScience measured the
# BLOOM layout out of memory at 184B, 4.5% more weights (chronicles-prequel.md), where the model
# puts it just over the limit. Both passed while the HBM was read as 1e9 bytes per GB, which left 48
# published runs "not fitting" (benchmarks/train_memory_fit.py; 23 now). Narayanan's 529.6B and 1T
# joined them when the search learned to distribute the checkpointed inputs over TP (Megatron-LM
# 2021's --distribute-checkpointed-activations, seeds/stacks.toml): TP4 PP35x3 DP18 (77.1 GB, 9.4%
# faster than their TP8 PP35) and TP8 PP32x4 DP12 (77.0 GB, 9.0% faster than their PP64), both at
# 95% of the usable memory; the next plans, without it, are within the model's error (TP8 PP35x3,
# 6.2%; TP8 PP64x2, 4.8%).
AT_MEMORY_LIMIT = ("korthikanti-22b-selective", "bloom-176b-jean-zay", "narayanan-529.6b", "narayanan-1008b")
# Known gap, measured: the model ranks a lower-TP plan with an interleaved pipeline ahead of
# Narayanan et al.'s TP-first plan (7.5B: TP1 PP4x3 by 10%; 18.4B: TP2 PP4x2 by 20%; 39.1B:
# TP2 PP8x6 by 23%), each legal in the 2021 code and within memory. Every part of the
# difference is a modelled cost (TP all-reduces on NVLink, hierarchical DP all-reduce over more
# NICs per group, bubble and sends of the interleaved schedule), and no measurement of those
# plans on the 2021 code exists to say which one is off; Table 1 follows the paper's rule of
# thumb (TP up to the node size first), a weak-scaling series rather than a per-size search.
# 310.1B: an interleaved TP8 PP12x8 DP20 by 6.5%, against the model's worst A100 error of 6.3%;
# it passed while that error was 7.0%, before the non-GEMM kernels paid the kernel overhead.
RANKING_GAP = ("narayanan-7.5b", "narayanan-18.4b", "narayanan-39.1b", "narayanan-310.1b")


@lru_cache(maxsize=None)
def _model_error(device):
    """The model's own error on runs of this device: the largest |error| over the verdict cases
    on the same device (runs of other devices, still being calibrated, do not widen it)."""
    rep = validate_all(with_public=False)
    return max(abs(r.error) for r in rep.verdict_results if r.case.system.device == device)


@lru_cache(maxsize=None)
def _gain(name):
    c = [x for x in load_cases() if x.name == name][0]
    res = search(c.workload, c.system, shipped_profile(c.system.device), top=1, gpus=c.plan.gpus,
                 dtype=c.dtype, stack=c.stack)
    best = res.best[0]
    return c, best, run_case(c).predicted_s / best.iteration_time.value - 1.0


@pytest.mark.parametrize("name", BEST_PLAN_RUNS)
def test_search_does_not_beat_the_published_plan_beyond_model_error(name):
    c, best, gain = _gain(name)
    assert gain <= _model_error(c.system.device), (name, best.plan.label(), gain)
    # the stack limits the search: no switch the run's software lacked
    assert not best.plan.flash_attention and best.plan.zero_stage < 2
    # ... nor a pipeline layout its code rejects
    assert c.stack.pipeline_ok(c.workload.model.layers, best.plan.pp, best.plan.interleave)
    assert c.stack.dp_overlap_with_pp or best.plan.pp == 1 or not best.plan.dp_overlap
    assert best.plan.pp == 1 or best.plan.zero_stage <= c.stack.pipeline_max_zero
    if c.stack.key == "megatron-lm-2021":
        assert best.plan.recompute == "full" and not best.plan.sequence_parallel


_RANKING_WHY = ("known gap: interleaved plans ranked 6.5-23% ahead of Narayanan's TP-first plans; no "
                "measurement of them on the 2021 code (issue 12)")
_LIMIT_WHY = ("known gap: plans at 95-96% of the usable memory, 6.6-9.4% faster, that the authors did not "
              "run; their fit is inside the memory model's error (issue 12)")


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=why))
                                  for names, why in ((RANKING_GAP, _RANKING_WHY), (AT_MEMORY_LIMIT, _LIMIT_WHY))
                                  for n in names])
def test_known_gap_rows(name):
    c, _best, gain = _gain(name)
    assert gain <= _model_error(c.system.device)


@pytest.mark.parametrize("name", AT_MEMORY_LIMIT)
def test_at_memory_limit_plans_are_at_the_limit(name):
    _c, best, _gain_ = _gain(name)
    assert best.memory_per_gpu.value > 0.94 * best.memory_capacity_bytes


def test_pinned_recompute_overrides_the_stack_practice():
    c = [x for x in load_cases() if x.name == "narayanan-1.7b"][0]
    res = search(c.workload, c.system, shipped_profile(c.system.device), top=1, gpus=c.plan.gpus,
                 stack=c.stack, pins={"recompute": "none"})
    assert res.best and res.best[0].plan.recompute == "none"
