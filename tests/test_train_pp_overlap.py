"""Pipeline sends beside compute under the interleaved schedule (stack pp_comm_overlap, Megatron's
overlap_p2p_comm): the steady state's sends hide behind the stage's compute, the warm-up and
cool-down chunks wait on theirs, and a stack or schedule without it pays every send."""
from dataclasses import replace

import numpy as np
import pytest

from recoque.planner import train_core
from recoque.planner.execution import ExecutionPlan
from recoque.planner.stacks import load_stack
from recoque.planner.train import BREAKDOWN_KEYS, evaluate
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

WL = load_training_workload("gpt3-175b")
SYS = validation_system("selene").with_gpus(1024)   # PP stages across nodes: the sends ride the NICs
PROF = shipped_profile("a100_sxm_80gb")
CORE = load_stack("megatron-core")


def _run(stack, interleave: int):
    plan = ExecutionPlan(tp=8, pp=8, dp=16, micro_batch=1, interleave=interleave, recompute="selective",
                         sequence_parallel=True)
    return evaluate(WL, SYS, plan, PROF, stack=stack)


def test_warmup_share_is_megatrons_first_rank_count():
    """(pp - 1) x 2 + (v - 1) x pp warm-up chunks of n_mb x v: pp 8, v 4, 64 micro-batches -> 38 / 256."""
    assert train_core.pp_warmup_fraction(np.array(8.0), np.array(4.0), np.array(64.0)) == pytest.approx(38 / 256)
    assert train_core.pp_warmup_fraction(np.array(8.0), np.array(4.0), np.array(4.0)) == 1.0


def test_the_stacks_that_overlap_are_the_megatron_core_family():
    assert CORE.pp_comm_overlap and load_stack("megatron-lm-rocm").pp_comm_overlap
    assert not load_stack("megatron-lm").pp_comm_overlap and not load_stack("deepspeed").pp_comm_overlap


def test_interleaved_sends_hide_and_the_breakdown_still_sums():
    on, off = _run(CORE, 4), _run(replace(CORE, pp_comm_overlap=False), 4)
    assert 0.0 < on.breakdown["p2p_s"] < 0.5 * off.breakdown["p2p_s"]
    assert on.iteration_time.value < off.iteration_time.value
    assert sum(on.breakdown[k] for k in BREAKDOWN_KEYS) == pytest.approx(on.breakdown["iteration_time_s"], rel=1e-9)


def test_without_virtual_stages_every_send_waits():
    """Megatron turns overlap_p2p_comm off for the plain 1F1B schedule: nothing changes at v = 1."""
    on, off = _run(CORE, 1), _run(replace(CORE, pp_comm_overlap=False), 1)
    assert on.breakdown["p2p_s"] == pytest.approx(off.breakdown["p2p_s"], rel=1e-12)
    assert on.breakdown["p2p_s"] > 0.0
