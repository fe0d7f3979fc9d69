"""Expert parallelism smaller than tensor parallelism (TensorRT-LLM --tp 8 --ep 2): the experts go to
ep groups and each expert's matrices are split over the tp / ep GPUs of its group, so every GPU
holds 1/tp of the expert weights whatever ep is, and reads 1/tp of the experts a step touches."""
import dataclasses

import pytest

from recoque.planner import serving as sv
from recoque.planner.serving_step import Layout, Precision, Rates, layer_gemm_s, moe_tp, overlap, step_time
from recoque.planner.workload import load_model

DS = load_model("deepseek-r1")
RATES = Rates(gemm_flop_s=2e15, attention_flop_s=1e15, hbm_bytes_s=7e12, link_bytes_s=6e11, hop_latency_s=2e-6,
              kernel_gap_s=3e-6, step_overhead_s=5e-4)


@pytest.mark.parametrize("tp,ep,split", [(8, 1, 8), (8, 2, 4), (8, 4, 2), (8, 8, 1), (4, 8, 1)])
def test_each_expert_is_split_over_tp_over_ep(tp, ep, split):
    assert moe_tp(Layout(tp, 1, ep)) == split


def test_weights_per_gpu_do_not_depend_on_ep_up_to_tp():
    req = sv.ServingRequest(weights="fp4", activations="fp4", kv_cache="fp8")
    sizes = [sv.weights_bytes_per_gpu(DS, req, Layout(8, 1, ep)) for ep in (1, 2, 4, 8)]
    assert sizes == pytest.approx([sizes[0]] * 4, rel=1e-12)
    # 671B parameters at 4 bits over 8 GPUs: about 42 GB each
    assert 35e9 < sizes[0] < 50e9


def test_expert_weight_read_at_one_token_is_shared_over_the_tp_gpus():
    prec = Precision(0.5, 1.0)
    reads = [layer_gemm_s(DS, Layout(8, 1, ep), prec, 4.0, RATES)[1] for ep in (1, 2, 8)]
    # 4 tokens touch ~32 experts: whoever holds them, each GPU reads 1/8 of them (ep 8 adds the
    # busiest rank's excess only to the math, not the read)
    assert reads[1] == pytest.approx(reads[0], rel=1e-9)
    assert reads[2] == pytest.approx(reads[0], rel=1e-9)


def test_expert_math_at_one_token_charges_the_touched_experts_only():
    """One token runs k experts; a grouped GEMM launches no tile for an expert nobody routed to, so
    the expert math at one token is k experts at one row each, whatever the number of experts E
    (it used to average the rows over all E, charging every idle expert a padded tile)."""
    from dataclasses import replace

    prec = Precision(1.0, 1.0)
    one = replace(RATES, hbm_bytes_s=1e30)   # math only: the weight read is free
    rate = one.gemm_flop_s / (1.0 + one.m_half)   # a 1-row GEMM at 1 / (1 + m_half) of the large-shape rate
    for e in (64, 256, 1024):
        m = replace(DS, experts=e)
        # the dense part (its router grows with E) and k experts of one row each
        expert = 2.0 * m.active_experts * m.moe_layer_fraction * m.expert_params() / rate / one.moe_gemm_efficiency
        expect = 2.0 * m.nonexpert_params_per_layer() / rate + expert
        assert layer_gemm_s(m, Layout(1, 1, 1), prec, 1.0, one)[0] == pytest.approx(expect, rel=1e-9), e


def test_prompt_arrives_whole_so_decode_steps_read_only_their_own_experts():
    """4 streams with 1,024-token prompts and outputs: one step in 256 carries a prompt (q = 4/1024
    prompt tokens per step over a 1,024-token chunk), the rest decode 4 tokens. The expert read is
    the q-weighted mix of the two kinds of step, not the read of an average 8-token step, which
    touches about twice the experts (E(1 - (1 - k/E)^T) is concave in T)."""
    from recoque.planner.serving_step import experts_touched, mixed_step_gemm_s

    prec, lay = Precision(1.0, 1.0), Layout(8, 1, 1)
    prefill, chunk = 4.0, 1024.0
    q = prefill / chunk
    read = mixed_step_gemm_s(DS, lay, prec, 4.0, prefill, chunk, RATES)[1]
    dec, pre = (layer_gemm_s(DS, lay, prec, t, RATES)[1] for t in (4.0, 4.0 + chunk))
    assert read == pytest.approx((1.0 - q) * dec + q * pre, rel=1e-12)
    averaged = layer_gemm_s(DS, lay, prec, 4.0 + prefill, RATES)[1]
    assert read < 0.75 * averaged
    assert experts_touched(256, 8, 8.0) > 1.8 * experts_touched(256, 8, 4.0)


def test_step_mix_leaves_a_dense_models_averages_and_a_prefill_every_step_unchanged():
    """A dense layer reads all its weights on every step and its math is linear in the tokens, so
    the mix leaves the average math and read as they were; nor does it change anything when every
    step carries prefill (q >= 1)."""
    from recoque.planner.serving_step import mixed_step_gemm_s

    prec, lay = Precision(1.0, 1.0), Layout(8, 1, 1)
    dense = load_model("llama3.1-70b")
    mixed = mixed_step_gemm_s(dense, lay, prec, 4.0, 4.0, 1024.0, RATES)
    assert mixed[:2] == pytest.approx(layer_gemm_s(dense, lay, prec, 8.0, RATES), rel=1e-9)
    full = mixed_step_gemm_s(DS, lay, prec, 64.0, 2048.0, 1024.0, RATES)
    c, m = layer_gemm_s(DS, lay, prec, 64.0 + 2048.0, RATES)
    assert full == (c, m, overlap(c, m, RATES.overlap_p))


def test_the_average_step_overlaps_each_kind_of_step_not_the_averages():
    """64 streams, 1,024-token prompts, 512 outputs: one step in eight carries a prompt. A decode step
    is read-bound, a prompt step math-bound; overlapping the averaged math and read (convex) understates
    the average step. The GEMM time is the q-weighted overlap of the two kinds of step."""
    from recoque.planner.serving_step import mixed_step_gemm_s

    prec, lay = Precision(1.0, 1.0), Layout(8, 1, 1)
    dense = load_model("llama3.1-70b")
    prefill, chunk = 64 * 1024 / 512, 1024.0
    q = prefill / chunk
    comp, mem, gemm = mixed_step_gemm_s(dense, lay, prec, 64.0, prefill, chunk, RATES)
    ov = [overlap(*layer_gemm_s(dense, lay, prec, t, RATES), RATES.overlap_p) for t in (64.0, 64.0 + chunk)]
    assert gemm == pytest.approx((1 - q) * ov[0] + q * ov[1], rel=1e-12)
    assert gemm > 1.02 * overlap(comp, mem, RATES.overlap_p)


def test_kernels_per_layer_count_the_architecture():
    """A dense GQA layer launches 12 kernels a decode step; MLA adds its norms, q_b GEMM and the two
    absorbed bmms (+5), a MoE layer its router, top-k, sort and combine (+4), a shared expert its
    two GEMMs and activation (+3), weighted by the share of layers that are MoE (DeepSeek: 58 of 61);
    gpt-oss's clamped SwiGLU runs inside its first expert GEMM and the combine inside its second (-2)."""
    from recoque.planner.serving_step import kernels_per_layer

    assert kernels_per_layer(load_model("llama3.1-70b")) == 12.0
    assert kernels_per_layer(load_model("gpt-oss-120b")) == pytest.approx(14.0)
    unclamped = dataclasses.replace(load_model("gpt-oss-120b"), glu_clamp=False)
    assert kernels_per_layer(unclamped) == pytest.approx(16.0)
    assert kernels_per_layer(DS) == pytest.approx(12.0 + 5.0 + 58.0 / 61.0 * 7.0)


def test_quantized_activations_add_mlas_standalone_quantisations():
    """With fp8/fp4 GEMMs, MLA's three inputs that no norm or activation kernel produces (q_nope
    before q.W_UK, the attention output before attn.W_UV, the W_UV output before the o-proj) are
    quantised in kernels of their own: +3 per layer, and only for MLA; the decode step's launch time
    grows by exactly those kernels and nothing else moves."""
    from recoque.planner.serving_step import kernels_per_layer

    dense = load_model("llama3.1-70b")
    assert kernels_per_layer(dense, True) == kernels_per_layer(dense, False) == 12.0
    assert kernels_per_layer(DS, True) - kernels_per_layer(DS, False) == pytest.approx(3.0)
    lay = Layout(8, 1, 1)
    plain = step_time(DS, lay, Precision(1.0, 1.0), 4.0, 0.0, 1024.0, 1024.0, RATES)
    quant = step_time(DS, lay, Precision(1.0, 1.0, quantized_activations=True), 4.0, 0.0, 1024.0, 1024.0, RATES)
    assert quant.launch_s - plain.launch_s == pytest.approx(DS.layers * 3.0 * RATES.kernel_gap_s)
    assert quant.gemm_s == plain.gemm_s


def test_vllm_v0_engine_keeps_the_2024_cpu_step():
    """vLLM's V1 engine (>= 0.8) takes the API server and detokenizer off the step's critical path;
    the 2024 V0 engine's CPU time per step is the larger one (seeds/serving.toml)."""
    from recoque.planner.serving_rates import ENGINES, load_engine

    assert {"vllm", "vllm-v0"} <= set(ENGINES)
    v1, v0 = load_engine("vllm"), load_engine("vllm-v0")
    assert v0.step_overhead_s[0] > 2.0 * v1.step_overhead_s[0]
    assert v0.efficiency == v1.efficiency


def test_moe_combine_reads_k_rows_and_writes_one_per_token(monkeypatch):
    """DeepSeek-R1: 8 routed experts in 58 of its 61 layers; attention DP sums only a GPU's own tokens."""
    from recoque.planner.serving_step import moe_combine_bytes
    frac = (DS.layers - DS.dense_layers) / DS.layers
    tp_bytes = moe_combine_bytes(DS, Layout(8, 1, 8), 1000.0)
    assert tp_bytes == pytest.approx(1000.0 * (8 + 1) * frac * DS.hidden * 2.0, rel=1e-12)
    assert moe_combine_bytes(DS, Layout(8, 1, 8, attn_dp=True), 1000.0) == pytest.approx(tp_bytes / 8, rel=1e-12)
    assert moe_combine_bytes(load_model("llama2-70b"), Layout(8), 1000.0) == 0.0
    # the step's elementwise time holds it on every layer (tp_bytes is already the average layer's)
    def step():
        return step_time(DS, Layout(8, 1, 8), Precision(1.0, 1.0), 1000.0, 0.0, 1000.0, 1000.0, RATES)
    with_combine = step().elementwise_s
    monkeypatch.setattr("recoque.planner.serving_step.moe_combine_bytes", lambda *a: 0.0)
    assert with_combine - step().elementwise_s == pytest.approx(DS.layers * tp_bytes / RATES.hbm_bytes_s, rel=1e-9)


def test_experts_touched_uniform_routing_is_the_exact_binomial_miss():
    """load_cv 0: an expert is missed by all T tokens with probability (1 - k/E)^T."""
    from recoque.planner.serving_step import experts_touched

    for e, k, t in ((256, 8, 4.0), (128, 4, 64.0), (8, 2, 3.0)):
        assert experts_touched(e, k, t) == pytest.approx(e * (1.0 - (1.0 - k / e) ** t), rel=1e-12)
    assert experts_touched(8, 8, 1.0) == 8.0
    assert experts_touched(1, 1, 10.0) == 1.0


def test_skewed_routing_touches_fewer_experts_and_tends_to_uniform_as_the_skew_vanishes():
    """Gamma-distributed expert rates: fewer distinct experts the more skewed the router, the uniform
    count as cv -> 0, never more than E, and every expert once the batch is large enough."""
    from recoque.planner.serving_step import experts_touched

    e, k = 128, 4
    for t in (4.0, 64.0, 512.0):
        counts = [experts_touched(e, k, t, cv) for cv in (0.0, 1e-4, 0.5, 1.358, 2.0)]
        assert counts[1] == pytest.approx(counts[0], rel=1e-3)
        assert counts[1] > counts[2] > counts[3] > counts[4] > 0.0
    # gpt-oss-120b at 64 streams: uniform 111 experts, the published DeepSeek-R1 skew about 73
    assert experts_touched(e, k, 64.0) == pytest.approx(111.2, abs=0.5)
    assert 65.0 < experts_touched(e, k, 64.0, 1.358) < 80.0
    assert experts_touched(e, k, 1e9, 1.358) == pytest.approx(e, rel=1e-3)


def test_expert_load_skew_reads_fewer_expert_weights_only_on_the_fast_side():
    """The step's expert-weight read falls with the skew; the central rates keep uniform routing
    (seeds/serving.toml moe_expert_load_cv = 0) and the fast corner takes the published skew."""
    from dataclasses import replace

    from recoque.planner.serving_rates import kernel_constants

    prec, lay = Precision(0.5, 1.0), Layout(8, 1, 1)
    uniform = layer_gemm_s(DS, lay, prec, 64.0, RATES)[1]
    skewed = layer_gemm_s(DS, lay, prec, 64.0, replace(RATES, moe_expert_load_cv=1.358))[1]
    assert skewed < 0.85 * uniform
    k = kernel_constants()
    assert k["moe_expert_load_cv"] == 0.0 and k["moe_expert_load_cv_low"] == 0.0
    assert k["moe_expert_load_cv_high"] > 1.0


def test_expert_load_skew_widens_only_the_fast_end_of_a_moe_estimate(monkeypatch):
    """gpt-oss-120b at 64 streams on one MI355X: the published routing skew lifts the high end of
    the throughput range; the centre and the slow end keep uniform routing."""
    from recoque.planner import serving_rates
    from recoque.planner.system import load_system

    model, system = load_model("gpt-oss-120b"), load_system("node-8x-mi355x").with_gpus(1)
    req = sv.ServingRequest(prompt_tokens=1024, output_tokens=8192, weights="fp4", activations="bf16",
                            kv_cache="bf16", tp=1, engine="atom", concurrency=64)
    skewed = sv.estimate_serving(model, "gpt-oss-120b", system, req)
    k = dict(serving_rates.kernel_constants())
    k["moe_expert_load_cv_high"] = 0.0
    monkeypatch.setattr(serving_rates, "kernel_constants", lambda: k)
    uniform = sv.estimate_serving(model, "gpt-oss-120b", system, req)
    assert skewed.tokens_per_s_system.value == pytest.approx(uniform.tokens_per_s_system.value, rel=1e-9)
    assert skewed.tokens_per_s_system.low == pytest.approx(uniform.tokens_per_s_system.low, rel=1e-9)
    assert skewed.tokens_per_s_system.high > 1.05 * uniform.tokens_per_s_system.high


def test_a_layer_on_one_gpu_launches_no_all_reduce():
    """At tp = 1 the two TP all-reduces of a layer are not launched (the engines' row-parallel
    layers skip the collective for a group of one): 10 kernels for a dense layer, and the decode
    step's launch time drops by exactly 2 kernels a layer. Under attention DP (tp > 1) the tokens'
    dispatch and combine keep their places, and TP with the fused add+norm stays at 10."""
    from recoque.planner.serving_step import kernels_per_layer, layer_kernels

    dense = load_model("llama3.1-70b")
    assert kernels_per_layer(dense, tp_group=False) == kernels_per_layer(dense) - 2.0 == 10.0
    assert kernels_per_layer(dense, fused_norms=True, tp_group=False) == 10.0  # no all-reduce to fuse into
    assert layer_kernels(dense, Layout(1, 1, 1), Precision()) == 10.0
    assert layer_kernels(dense, Layout(2, 1, 1), Precision()) == 12.0
    assert layer_kernels(DS, Layout(8, 1, 8, attn_dp=True), Precision()) == kernels_per_layer(DS)
    assert layer_kernels(dense, Layout(1, 2, 1), Precision(fused_allreduce_norm=True)) == 10.0
    one = step_time(dense, Layout(1, 1, 1), Precision(), 4.0, 0.0, 1024.0, 1024.0, RATES)
    two_stages = step_time(dense, Layout(1, 2, 1), Precision(), 4.0, 0.0, 1024.0, 1024.0, RATES)
    assert one.launch_s == pytest.approx(dense.layers * 10.0 * RATES.kernel_gap_s)
    assert two_stages.launch_s == pytest.approx(dense.layers / 2 * 10.0 * RATES.kernel_gap_s)
