"""MoE token permutation in the training model (planner/train_core.moe_dispatch_s): the copy of each
token to its top-k experts' rows and the weighted sum back, at HBM bandwidth, forward and backward."""
from dataclasses import replace
from types import SimpleNamespace

import pytest

from recoque.planner import train_core
from recoque.planner.execution import ExecutionPlan
from recoque.planner.stacks import load_stack
from recoque.planner.train import BREAKDOWN_KEYS, evaluate
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_model, load_training_workload

HW = SimpleNamespace(hbm_bw=2.0e12)
MIX = load_model("mixtral-8x22b")


def test_a_dense_model_moves_nothing():
    assert train_core.moe_dispatch_s(load_model("llama2-70b"), HW, 8192.0, 5e-6) == 0.0


def test_bytes_are_3k_plus_1_hidden_rows_per_token():
    """Without the kernel floor: 2 bytes x h x (3k + 1) per token; Mixtral routes k = 2 of 8."""
    t = train_core.moe_dispatch_s(MIX, HW, 4096.0, 0.0)
    assert t == pytest.approx(2.0 * 4096 * MIX.hidden * (3 * 2 + 1) / HW.hbm_bw, rel=1e-12)
    k4 = replace(MIX, active_experts=4)
    assert train_core.moe_dispatch_s(k4, HW, 4096.0, 0.0) / t == pytest.approx(13 / 7, rel=1e-12)


def test_it_slows_a_moe_plan_and_the_breakdown_still_sums(monkeypatch):
    wl, sysm = load_training_workload("mixtral-8x22b"), validation_system("selene").with_gpus(512)
    plan = ExecutionPlan(tp=4, pp=4, dp=32, ep=8, micro_batch=1, recompute="full")
    prof, core = shipped_profile("a100_sxm_80gb"), load_stack("megatron-core")
    with_perm = evaluate(wl, sysm, plan, prof, stack=core)
    monkeypatch.setattr(train_core, "MOE_PERMUTE_PASSES", 0.0)
    monkeypatch.setattr(train_core, "MOE_PERMUTE_KERNELS", 0.0)
    without = evaluate(wl, sysm, plan, prof, stack=core)
    assert with_perm.breakdown["compute_s"] > without.breakdown["compute_s"]
    assert sum(with_perm.breakdown[k] for k in BREAKDOWN_KEYS) == pytest.approx(
        with_perm.breakdown["iteration_time_s"], rel=1e-9)
