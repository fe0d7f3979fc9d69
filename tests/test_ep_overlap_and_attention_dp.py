"""MoE switches of the two models: the expert all-to-all overlap in training (plan `ep_overlap`,
stack `ep_comm_overlap`) and attention data parallelism in serving (`attention_dp`)."""
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner.execution import ExecutionPlan, plan_from_mapping
from recoque.planner.serving import ServingRequest, estimate_serving, weights_bytes_per_gpu
from recoque.planner.serving_step import (Layout, Rates, _busiest_rank_prefill_s, kv_bytes_per_token_per_gpu,
                                          mla_replicated_params, rank_imbalance)
from recoque.planner.search import search
from recoque.planner.stacks import load_stack
from recoque.planner.system import load_system
from recoque.planner.train import BREAKDOWN_KEYS, evaluate, plan_arrays, plan_from_arrays
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_model, load_training_workload

MIX = load_training_workload("mixtral-8x22b")
SEL = validation_system("selene").with_gpus(512)
PROF = shipped_profile("a100_sxm_80gb")
CORE = load_stack("megatron-core")
MOE_PLAN = ExecutionPlan(tp=4, pp=4, dp=32, ep=8, micro_batch=1, recompute="full")
R1 = load_model("deepseek-r1")


def _run(plan, wl=MIX):
    return evaluate(wl, SEL, plan, PROF, stack=CORE)


def test_overlap_hides_the_expert_alltoall_up_to_the_compute():
    off, on = _run(MOE_PLAN), _run(replace(MOE_PLAN, ep_overlap=True))
    assert off.breakdown["ep_comm_s"] > 0
    assert on.breakdown["ep_comm_s"] < off.breakdown["ep_comm_s"]
    assert on.breakdown["compute_s"] == pytest.approx(off.breakdown["compute_s"], rel=1e-12)
    assert sum(on.breakdown[k] for k in BREAKDOWN_KEYS) == pytest.approx(on.breakdown["iteration_time_s"], rel=1e-9)


def test_overlap_needs_a_second_micro_batch():
    one = replace(MOE_PLAN, dp=32, micro_batch=MIX.global_batch_seqs // 32)  # one micro-batch per replica
    assert _run(replace(one, ep_overlap=True)).iteration_time.value == pytest.approx(_run(one).iteration_time.value, rel=1e-12)


def test_search_turns_it_on_where_the_stack_has_it_and_pins_round_trip():
    on = search(MIX, SEL, PROF, top=3, gpus=512, stack=CORE)
    assert all(r.plan.ep_overlap == (r.plan.ep > 1) for r in on.best)
    off = search(MIX, SEL, PROF, top=3, gpus=512, stack=load_stack("megatron-lm"))
    assert not any(r.plan.ep_overlap for r in off.best)
    with pytest.raises(BadInput, match="no expert all-to-all overlap"):
        search(MIX, SEL, PROF, top=1, gpus=512, stack=load_stack("megatron-lm"), pins={"ep_overlap": True})
    p = replace(MOE_PLAN, ep_overlap=True)
    assert plan_from_arrays(plan_arrays([p]), 0) == p and plan_from_mapping(p.to_json()) == p
    assert "a2a-overlap" in p.label()


def test_cli_pin_round_trips_through_json():
    res = CliRunner().invoke(app, ["plan", "train", "-s", "selene", "-w", "mixtral-8x22b", "--gpus", "512", "--tp", "4",
                                   "--pp", "4", "--no-ep-overlap", "--top", "1", "--json"])
    assert res.exit_code == 0, res.output
    assert '"ep_overlap": false' in res.output


def test_mla_kv_cache_under_tp_and_attention_dp():
    # TP: every rank keeps the whole latent of every stream; attention DP: each keeps 1/8 of the streams
    tp, dp = Layout(8, 1, 8, False), Layout(8, 1, 8, True)
    assert kv_bytes_per_token_per_gpu(R1, tp, 1.0) == 61 * 576
    assert kv_bytes_per_token_per_gpu(R1, dp, 1.0) == pytest.approx(61 * 576 / 8)
    req = ServingRequest(weights="fp8", activations="fp8", kv_cache="fp8", tp=8, ep=8)
    # attention DP holds the whole attention weights on every GPU; TP already held MLA's down-projections whole
    extra = weights_bytes_per_gpu(R1, replace(req, attention_dp=True), dp) - weights_bytes_per_gpu(R1, req, tp)
    assert extra == pytest.approx(61 * 7 / 8 * (R1.attention_params_per_layer() - mla_replicated_params(R1)), rel=1e-9)


def test_attention_dp_holds_more_streams_and_is_refused_without_experts():
    h200 = load_system("node-8x-h200")
    base = ServingRequest(prompt_tokens=1024, output_tokens=2048, weights="fp8", activations="fp8", kv_cache="fp8",
                          tp=8, engine="trtllm", max_batch=4096)
    tp = estimate_serving(R1, "deepseek-r1", h200, base)
    dp = estimate_serving(R1, "deepseek-r1", h200, replace(base, attention_dp=True))
    assert dp.ep == 8 and dp.batch.value > 4 * tp.batch.value
    with pytest.raises(BadInput, match="attention-dp"):
        estimate_serving(load_model("llama3.1-70b"), "llama3.1-70b", h200, replace(base, attention_dp=True))


def test_busiest_rank_prefill():
    r = Rates(gemm_flop_s=1e15, attention_flop_s=7e14, hbm_bytes_s=4e12, link_bytes_s=4e11, hop_latency_s=1e-6,
              kernel_gap_s=0.0, step_overhead_s=0.0)
    lay = Layout(8, 1, 8, True)
    math_s, attn_s = _busiest_rank_prefill_s(R1, lay, 512.0, 1024.0, r)   # half a prompt per step: one rank does it
    assert math_s > 0 and attn_s > 0
    assert _busiest_rank_prefill_s(R1, lay, 8 * 1024.0, 1024.0, r) == (0.0, 0.0)  # eight prompts: one per rank, even


def test_cli_attention_dp():
    res = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h200", "--model", "deepseek-r1", "--tp", "8",
                                   "--attention-dp", "--dtype", "fp8", "--prompt-tokens", "1024", "--output-tokens", "2048",
                                   "--mode", "offline", "--json"])
    assert res.exit_code == 0, res.output
    assert '"attention_dp": true' in res.output


def test_busiest_expert_rank_from_the_published_ep32_figure():
    r = Rates(gemm_flop_s=1e15, attention_flop_s=7e14, hbm_bytes_s=4e12, link_bytes_s=4e11, hop_latency_s=1e-6,
              kernel_gap_s=0.0, step_overhead_s=0.0, moe_rank_imbalance_ep32=1.564)
    assert rank_imbalance(R1, 32, r) == pytest.approx(1.564)          # the published figure where it was measured
    assert rank_imbalance(R1, 1, r) == 0.0 and rank_imbalance(load_model("llama3.1-8b"), 8, r) == 0.0
    seq = [rank_imbalance(R1, ep, r) for ep in (2, 4, 8, 16, 32, 64)]
    assert seq == sorted(seq) and all(x <= ep - 1 for x, ep in zip(seq, (2, 4, 8, 16, 32, 64)))
    # the share of routed slots, not the expert count: Mixtral at EP 8 as DeepSeek at EP 8
    assert rank_imbalance(load_model("mixtral-8x7b"), 8, r) == pytest.approx(rank_imbalance(R1, 8, r))
    assert rank_imbalance(R1, 8, replace(r, moe_rank_imbalance_ep32=0.0)) == 0.0


def test_node_dedup_only_for_group_limited_routing():
    """Megatron-Core's flex dispatcher (DeepEP/HybridEP) sends a token once per destination node: the
    expert all-to-all of DeepSeek-V3 (group-limited) over nodes costs less than on a stack without
    it; Qwen3 (no group limit) pays the same on both."""
    h100 = validation_system("selene").with_gpus(256)
    plan = ExecutionPlan(tp=1, pp=8, dp=32, ep=32, micro_batch=1, recompute="none", sequence_parallel=False)
    for model, cheaper in (("deepseek-v3", True), ("qwen3-235b-a22b", False)):
        wl = replace(load_training_workload(model, tokens_to_train=1e9, global_batch_seqs=1024), seq_len=4096)
        core = evaluate(wl, h100, plan, PROF, stack=CORE).breakdown["ep_comm_s"]
        plain = evaluate(wl, h100, plan, PROF, stack=load_stack("megatron-lm")).breakdown["ep_comm_s"]
        assert (core < 0.8 * plain) if cheaper else core == pytest.approx(plain, rel=1e-9)


def test_searched_layouts_try_attention_dp_for_moe_only():
    h200 = load_system("node-8x-h200")
    req = ServingRequest(prompt_tokens=1024, output_tokens=2048, weights="fp8", activations="fp8", kv_cache="fp8",
                         engine="trtllm")
    best = estimate_serving(R1, "deepseek-r1", h200, req)
    assert best.attention_dp and best.ep == best.tp == 8   # MLA's replicated latent makes plain TP lose here
    dense = estimate_serving(load_model("llama3.1-70b"), "llama3.1-70b", h200, req)
    assert not dense.attention_dp and dense.ep == 1
    pinned = estimate_serving(R1, "deepseek-r1", h200, replace(req, attention_dp=False))
    assert not pinned.attention_dp and pinned.tokens_per_s_system.value < best.tokens_per_s_system.value
