"""Context parallelism as the K/V ring (p2p, with its partial-output merges) or by all-to-all (a2a)."""
import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.planner.execution import ExecutionPlan
from recoque.planner.search import search
from recoque.planner.train import evaluate
from recoque.planner.train_core import cp_merge_bytes_bwd, cp_merge_bytes_fwd
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

WL = replace(load_training_workload("mistral-7b"), global_batch_seqs=16)
SYS = validation_system("meta-llama3-h100")
PROF = shipped_profile("h100_sxm")
RING = ExecutionPlan(tp=1, pp=1, dp=4, cp=2, micro_batch=1, recompute="none", sequence_parallel=False)


def test_the_ring_merges_cost_more_with_more_ranks():
    assert cp_merge_bytes_fwd(1) == pytest.approx(4.5)          # one merge, no extra partials
    assert cp_merge_bytes_fwd(2) == pytest.approx(0.75 * (2 + 12))
    assert cp_merge_bytes_fwd(8) > cp_merge_bytes_fwd(4) > cp_merge_bytes_fwd(2)
    assert cp_merge_bytes_bwd(2) == pytest.approx(9.0)


def test_all_to_all_has_no_merges_but_exposed_transfers():
    ring, a2a = evaluate(WL, SYS, RING, PROF), evaluate(WL, SYS, replace(RING, cp_a2a=True), PROF)
    assert a2a.breakdown["compute_s"] < ring.breakdown["compute_s"]      # no partial outputs to merge
    assert a2a.breakdown["cp_comm_s"] > 0.0                               # Q, K, V, O and their gradients
    # without context parallelism the switch changes nothing
    one = replace(RING, cp=1, dp=8)
    assert evaluate(WL, SYS, one, PROF).iteration_time.value == pytest.approx(
        evaluate(WL, SYS, replace(one, cp_a2a=True), PROF).iteration_time.value, rel=1e-12)


def test_all_to_all_needs_the_heads_to_split_over_the_ranks():
    model = WL.model                                                      # 32 heads
    assert not replace(RING, cp_a2a=True).problems(model, 16)
    bad = ExecutionPlan(tp=8, pp=1, dp=1, cp=8, micro_batch=1, cp_a2a=True)   # 4 heads per TP rank
    assert any("all-to-all" in p for p in bad.problems(model, 16))
    assert "CP2a2a" in replace(RING, cp_a2a=True).label() and "CP2 " in RING.label()


def test_cli_pins_all_to_all_and_round_trips_it():
    base = ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--gpus", "8", "--global-batch", "16",
            "--cp", "2", "--top", "1", "--json"]
    for flag, want in (("--cp-a2a", True), ("--cp-ring", False)):
        r = CliRunner().invoke(app, base + [flag])
        assert r.exit_code == 0, r.output
        out = json.loads(r.output)
        assert out["best"][0]["plan"]["cp_a2a"] is want and out["pins"]["cp_a2a"] is want


def test_a_pinned_all_to_all_never_falls_back_to_the_ring():
    # 32 heads: with TP 8 each rank has 4, which 8 context-parallel ranks cannot split
    res = search(WL, SYS, PROF, top=3, gpus=64, pins={"tp": 8, "cp": 8, "cp_a2a": True})
    assert not res.best
    ok = search(WL, SYS, PROF, top=3, gpus=64, pins={"tp": 8, "cp": 4, "cp_a2a": True})
    assert ok.best and all(r.plan.cp_a2a and r.plan.cp == 4 for r in ok.best)
