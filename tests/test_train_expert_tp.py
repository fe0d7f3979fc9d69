"""Expert tensor parallelism (plan `etp`, Megatron-Core --expert-tensor-parallel-size): the experts
laid out over a stage's tp x cp x dp ranks as etp x ep x edp, each expert split over etp GPUs."""
import json
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner import flops
from recoque.planner.execution import ExecutionPlan, plan_from_mapping
from recoque.planner.search import search
from recoque.planner.stacks import load_stack
from recoque.planner.train import evaluate, plan_arrays, plan_from_arrays
from recoque.planner.train_kernels import params_on_stage
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

MIX = load_training_workload("mixtral-8x22b")
SEL = validation_system("selene").with_gpus(512)
PROF = shipped_profile("a100_sxm_80gb")
CORE = load_stack("megatron-core")
# tp 2 x dp 64 = 128 ranks a stage: ep 8 fits both with each expert split like the attention (etp 2)
# and whole on one GPU (etp 1)
TP2 = ExecutionPlan(tp=2, pp=4, dp=64, ep=8, micro_batch=1, recompute="full")


def _run(plan):
    return evaluate(MIX, SEL, plan, PROF, stack=CORE)


def test_the_default_is_the_tp_size_where_it_fits_and_1_where_only_1_fits():
    assert TP2.etp == 2 and TP2.expert_dp == 8
    # Megatron-Bridge's Qwen3-235B on 256 H100: tp 2 x dp 16 = 32 ranks, ep 32 -> etp 1 (2 x 32 > 32)
    forced = ExecutionPlan(tp=2, pp=8, dp=16, ep=32, micro_batch=1)
    assert forced.etp == 1 and forced.expert_dp == 1
    assert replace(TP2, etp=1).etp == 1
    assert ExecutionPlan(tp=4, pp=1, dp=2, micro_batch=1).etp == 4  # dense: nothing to lay out, the default


def test_a_layout_that_does_not_divide_the_stage_is_a_problem_and_bad_sizes_are_refused():
    small = ExecutionPlan(tp=2, pp=4, dp=2, ep=4, etp=2, micro_batch=1)   # 2 x 4 expert GPUs, 2 x 2 ranks
    assert any("etp 2 x ep 4" in p for p in small.problems(MIX.model, MIX.global_batch_seqs))
    assert not [p for p in replace(small, etp=1).problems(MIX.model, MIX.global_batch_seqs) if "etp" in p]
    with pytest.raises(BadInput, match="etp"):
        ExecutionPlan(tp=2, pp=1, dp=2, micro_batch=1, etp=-1)


def test_etp_moves_the_split_not_the_work():
    m = MIX.model
    tokens, tp, ep = 4096.0, 4.0, 8.0
    work = {etp: sum(2.0 * a * b * c * n for a, b, c, n in flops.ffn_gemm_shapes_fwd(m, tokens, tp, ep, etp))
            for etp in (1.0, 2.0, 4.0)}
    assert work[1.0] == pytest.approx(work[4.0], rel=1e-12) and work[2.0] == pytest.approx(work[4.0], rel=1e-12)
    whole, split = (flops.ffn_gemm_shapes_fwd(m, tokens, tp, ep, e)[0] for e in (1.0, 4.0))
    assert whole[1] == pytest.approx(4.0 * split[1]) and whole[0] == pytest.approx(split[0] / 4.0)
    # the default is the attention's split, as before etp existed
    assert flops.ffn_gemm_shapes_fwd(m, tokens, tp, ep) == flops.ffn_gemm_shapes_fwd(m, tokens, tp, ep, tp)
    _, exp1 = params_on_stage(m, np.array(4.0), np.array(1.0), np.array(8.0), np.array(56.0), np.array(1.0))
    _, exp4 = params_on_stage(m, np.array(4.0), np.array(1.0), np.array(8.0), np.array(56.0), np.array(4.0))
    assert float(exp1) == pytest.approx(4.0 * float(exp4))


def test_expert_optimizer_state_shards_over_the_expert_replicas_only():
    # ZeRO-1 (distributed optimizer): the experts' fp32 state of a GPU is its experts' parameters over
    # edp; doubling ep halves the experts a GPU holds and halves edp, so that state stays the same
    # while the weights and gradient buffers halve
    plans = [replace(TP2, ep=e, etp=1, zero_stage=1) for e in (4, 8)]
    mem = [_run(p).memory_per_gpu.value for p in plans]
    per_gpu_experts = [MIX.model.routed_expert_params_per_layer() * 14 / (p.etp * p.ep) for p in plans]
    drop = (per_gpu_experts[0] - per_gpu_experts[1]) * (2.0 + CORE.grad_buffer_bytes)   # 16-bit weights + gradients
    assert mem[0] - mem[1] == pytest.approx(drop, rel=0.02)


def test_whole_experts_keep_an_ep_group_on_fewer_nodes():
    # Megatron-Core orders the expert ranks etp innermost, then ep: ep 8 at etp 1 is one 8-GPU node,
    # at etp 2 its ranks are 2 apart and span two nodes
    split, whole = _run(TP2), _run(replace(TP2, etp=1))
    assert whole.breakdown["ep_comm_s"] < split.breakdown["ep_comm_s"]


def test_search_tries_both_splits_and_a_pin_holds():
    res = search(MIX, SEL, PROF, top=50, gpus=512, stack=CORE)
    tp_many = [r.plan for r in res.best if r.plan.tp > 1 and r.plan.ep > 1]
    assert {p.etp for p in tp_many} <= {1} | {p.tp for p in tp_many}
    pinned = search(MIX, SEL, PROF, top=10, gpus=512, stack=CORE, pins={"etp": 1, "tp": 2})
    assert pinned.best and all(r.plan.etp == 1 for r in pinned.best)
    for r in pinned.best:
        assert plan_from_arrays(plan_arrays([r.plan]), 0) == r.plan == plan_from_mapping(r.plan.to_json())


def test_cli_pin_shows_in_json_and_a_layout_that_cannot_fit_is_exit_2():
    runner = CliRunner()
    base = ["plan", "train", "-w", "mixtral-8x22b", "-s", "selene", "--gpus", "512", "--tokens", "1e12",
            "--stack", "megatron-core", "--top", "1"]
    r = runner.invoke(app, base + ["--tp", "2", "--etp", "1", "--json"])
    assert r.exit_code == 0, r.output
    plan = json.loads(r.output)["best"][0]["plan"]
    assert plan["etp"] == 1 and plan["tp"] == 2
    r = runner.invoke(app, base + ["--tp", "2", "--cp", "1", "--dp", "2", "--ep", "4", "--etp", "2"])
    assert r.exit_code == 2 and "--etp 2 x --ep 4" in r.output, r.output
