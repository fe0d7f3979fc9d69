"""Serving model physics (planner.serving_step / planner.serving): what bounds a step, KV bytes with
GQA, TP all-reduce hops, fp8 bytes, memory, server vs offline, latency targets."""
import math
from dataclasses import replace

import pytest

from recoque.errors import BadInput, DoesNotFit
from recoque.planner import serving as sv
from recoque.planner.serving_step import (Layout, Precision, Rates, kv_bytes_per_token_per_gpu, kv_heads_per_gpu,
                                          step_time)
from recoque.planner.system import load_system
from recoque.planner.workload import load_model

L70 = load_model("llama2-70b")
RATES = Rates(gemm_flop_s=1400e12, attention_flop_s=700e12, hbm_bytes_s=4.0e12, link_bytes_s=360e9,
              hop_latency_s=1e-6, kernel_gap_s=3e-6, step_overhead_s=1e-3)
FP8 = dict(weights="fp8", activations="fp8", kv_cache="fp8")


def _step(batch, lay=Layout(), prec=Precision(1.0, 1.0), r=RATES):
    return step_time(L70, lay, prec, decode=batch, prefill=0, context=500, prompt=300, r=r)


def test_decode_is_memory_bound_at_batch_one_and_compute_bound_at_large_batch():
    one, big = _step(1), _step(4096)
    # a one-row GEMM runs at 1/33 of the large-shape rate (m/(m + 32)) and is still 5x under the weight read
    assert one.gemm_memory_s > 4 * one.gemm_compute_s and one.bound == "weight read (memory)"
    assert big.gemm_compute_s > 2 * big.gemm_memory_s and big.bound == "GEMM math (compute)"
    # the weights are read once per step whatever the batch: the memory part does not grow with it
    assert big.gemm_memory_s == pytest.approx(one.gemm_memory_s, rel=1e-12)


def test_batch_one_step_time_is_the_weight_read_plus_the_stated_overheads():
    st = _step(1)
    weights = L70.layers * L70.layer_params() * 1.0  # fp8: one byte per weight
    assert st.gemm_memory_s == pytest.approx(weights / 4.0e12, rel=1e-12)
    assert st.launch_s == pytest.approx(L70.layers * 10 * 3e-6)  # 12 a layer less the two TP all-reduces at tp 1
    assert st.overhead_s == 1e-3


def test_kv_bytes_with_gqa_split_over_tp_and_replicated_beyond_kv_heads():
    # Llama 2 70B: 8 KV heads of 128 over 80 layers, K and V, one byte (fp8)
    full = 2 * 80 * 8 * 128 * 1
    assert kv_bytes_per_token_per_gpu(L70, Layout(tp=1), 1.0) == full
    assert kv_bytes_per_token_per_gpu(L70, Layout(tp=4), 1.0) == full / 4
    assert kv_heads_per_gpu(L70, 8) == 1.0
    assert kv_heads_per_gpu(L70, 16) == 1.0  # TP 16 > 8 KV heads: each GPU keeps a replicated head
    assert kv_bytes_per_token_per_gpu(L70, Layout(tp=16), 1.0) == full / 8
    assert kv_bytes_per_token_per_gpu(L70, Layout(tp=2, pp=4), 2.0) == 2 * 20 * 4 * 128 * 2


def test_tp_allreduce_costs_two_per_layer_with_2_g_minus_1_latency_hops():
    slow_links = Rates(gemm_flop_s=1e30, attention_flop_s=1e30, hbm_bytes_s=1e30, link_bytes_s=1e30,
                       hop_latency_s=1e-6, kernel_gap_s=0.0, step_overhead_s=0.0)
    for g in (2, 4, 8):
        st = step_time(L70, Layout(tp=g), Precision(), decode=1, prefill=0, context=1, prompt=1, r=slow_links)
        assert st.comm_s == pytest.approx(80 * 2 * 2 * (g - 1) * 1e-6, rel=1e-9)
    assert step_time(L70, Layout(tp=1), Precision(), 1, 0, 1, 1, slow_links).comm_s == 0.0


def test_fp8_weights_read_one_byte_and_use_the_fp8_rate():
    bf16 = _step(1, prec=Precision(2.0, 2.0))
    fp8 = _step(1, prec=Precision(1.0, 1.0))
    assert fp8.gemm_memory_s == pytest.approx(bf16.gemm_memory_s / 2, rel=1e-12)
    assert sv.ServingRequest(**FP8).compute_dtype == "fp8"
    assert sv.ServingRequest(weights="fp8", activations="bf16").compute_dtype == "bf16"  # W8A16 runs bf16 GEMMs
    assert sv.ServingRequest(weights="fp4", activations="bf16").compute_dtype == "bf16"  # W4A16 (Marlin)
    assert sv.ServingRequest(weights="fp4", activations="fp4").compute_dtype == "fp4"
    m = sv.memory(L70, _spec("h200"), sv.ServingRequest(**FP8), Layout(), _engine("trtllm"))
    assert m.weights_bytes == pytest.approx(L70.params_total() * 1.0)


def test_fp4_weights_with_fp8_activations_run_at_the_fp8_rate():
    """MXFP4 x MXFP8 (vLLM's FlashInfer MoE on B200): the wider operand's tensor rate, not 16 bits."""
    w4a8 = sv.ServingRequest(weights="fp4", activations="fp8", kv_cache="bf16")
    assert w4a8.compute_dtype == "fp8"
    gpt_oss, node = load_model("gpt-oss-120b"), load_system("node-8x-b200").with_gpus(1)
    req = sv.ServingRequest(weights="fp4", activations="fp8", kv_cache="bf16", concurrency=64, tp=1,
                            prompt_tokens=1024, output_tokens=1024, engine="vllm")
    as_w4a16 = sv.estimate_serving(gpt_oss, "gpt-oss-120b", node, replace(req, activations="bf16"))
    as_w4a8 = sv.estimate_serving(gpt_oss, "gpt-oss-120b", node, req)
    assert as_w4a8.tokens_per_s_per_gpu.value > 1.05 * as_w4a16.tokens_per_s_per_gpu.value


def _spec(key):
    from recoque.catalog import get_device_spec
    return get_device_spec(key)


def _engine(key):
    from recoque.planner.serving_rates import load_engine
    return load_engine(key)


def test_kv_reservation_sets_the_offline_batch():
    req = sv.ServingRequest(prompt_tokens=1000, output_tokens=1000, length_cv2=0.0, **FP8)
    full = sv.memory(L70, _spec("h200"), req, Layout(), _engine("trtllm"))   # prompt + output reserved
    live = sv.memory(L70, _spec("h200"), req, Layout(), _engine("vllm"))     # prompt + output/2 on average
    assert full.kv_tokens_per_stream == 2000 and live.kv_tokens_per_stream == 1500
    assert live.max_streams > full.max_streams
    # outputs that spread (squared CV c): a running stream is length-biased, P + (O/2)(1 + c) on average
    spread = sv.memory(L70, _spec("h200"), replace(req, output_cv2=1.0), Layout(), _engine("vllm"))
    assert spread.kv_tokens_per_stream == 2000


def test_server_throughput_never_exceeds_offline():
    system = load_system("node-8x-h200").with_gpus(1)
    off = sv.estimate_serving(L70, "l", system, sv.ServingRequest(prompt_tokens=294, output_tokens=291, tp=1, **FP8))
    cap = off.requests_per_s_system.value
    for rate in (0.2 * cap, 0.6 * cap, 0.95 * cap):
        srv = sv.estimate_serving(L70, "l", system, sv.ServingRequest(prompt_tokens=294, output_tokens=291, tp=1,
                                                                      mode="server", request_rate_per_s=rate, **FP8))
        assert srv.tokens_per_s_system.value <= off.tokens_per_s_system.value * (1 + 1e-9)
        assert srv.tokens_per_s_system.value == pytest.approx(rate * 291, rel=1e-6)
    tgt = sv.estimate_serving(L70, "l", system, sv.ServingRequest(prompt_tokens=294, output_tokens=291, tp=1, mode="server",
                                                                  tpot_target_s=0.05, ttft_target_s=1.0, **FP8))
    assert tgt.tokens_per_s_system.value < off.tokens_per_s_system.value
    assert tgt.tpot.value <= 0.05 * (1 + 1e-6) and tgt.ttft.value <= 1.0 * (1 + 1e-6)


def test_ttft_grows_with_load_and_p99_is_above_p50():
    system = load_system("node-8x-h200").with_gpus(1)
    base = dict(prompt_tokens=1000, output_tokens=200, tp=1, mode="server", **FP8)
    off = sv.estimate_serving(L70, "l", system, sv.ServingRequest(prompt_tokens=1000, output_tokens=200, tp=1, **FP8))
    cap = off.requests_per_s_system.value
    light = sv.estimate_serving(L70, "l", system, sv.ServingRequest(request_rate_per_s=0.3 * cap, **base))
    heavy = sv.estimate_serving(L70, "l", system, sv.ServingRequest(request_rate_per_s=0.95 * cap, **base))
    heavy99 = sv.estimate_serving(L70, "l", system, sv.ServingRequest(request_rate_per_s=0.95 * cap, percentile="p99", **base))
    assert heavy.ttft.value > light.ttft.value
    assert heavy99.ttft.value > heavy.ttft.value and heavy99.tpot.value >= heavy.tpot.value
    with pytest.raises(DoesNotFit):
        sv.estimate_serving(L70, "l", system, sv.ServingRequest(request_rate_per_s=1.5 * cap, **base))


def test_concurrency_beyond_the_kv_memory_queues():
    system = load_system("node-8x-h100").with_gpus(2)
    m = load_model("llama3.3-70b")
    r = [sv.estimate_serving(m, "m", system, sv.ServingRequest(prompt_tokens=5000, output_tokens=500, tp=2, mode="server",
                                                               concurrency=c, engine="trtllm", **FP8)) for c in (1, 50, 400)]
    assert r[0].batch.value == 1 and r[0].tpot.value < r[1].tpot.value
    assert r[2].batch.value < 400 and r[2].ttft.value > 10 * r[1].ttft.value
    assert r[2].tokens_per_s_system.value >= r[1].tokens_per_s_system.value


def test_moe_reads_touched_experts():
    mx = load_model("mixtral-8x7b")
    a = step_time(mx, Layout(tp=2), Precision(1.0, 1.0), decode=1, prefill=0, context=100, prompt=100, r=RATES)
    b = step_time(mx, Layout(tp=2), Precision(1.0, 1.0), decode=512, prefill=0, context=100, prompt=100, r=RATES)
    assert b.gemm_memory_s > 3 * a.gemm_memory_s  # 1 token touches 2 of 8 experts, 512 touch all 8


def _moe_comm(model, lay, r=RATES, dispatch=2.0):
    return step_time(model, lay, Precision(1.0, 1.0, dispatch_bytes=dispatch), 512, 0, 100, 100, r).comm_s


def test_expert_parallelism_under_tp_attention_moves_no_tokens():
    """Every TP rank holds every token; the MLP all-reduce sums the experts' outputs (TensorRT-LLM's
    communication factory returns no MoE communication without attention DP)."""
    mx = load_model("mixtral-8x7b")
    assert _moe_comm(mx, Layout(tp=2, ep=2)) == pytest.approx(_moe_comm(mx, Layout(tp=2)))


def test_attention_dp_tokens_travel_once_per_rank_or_all_gathered_without_a_fabric():
    ds = load_model("deepseek-r1")
    lay = Layout(tp=8, ep=8, attn_dp=True)
    own = 512 / 8 * ds.hidden * (1.0 + 2.0) * ds.moe_layer_fraction
    flat = replace(RATES, hop_latency_s=0.0, moe_rank_imbalance_ep32=0.0)
    # one copy to each other rank holding one of the token's 8 experts: 7 x (1 - (7/8)^8) = 4.59
    a2a = _moe_comm(ds, lay, flat, dispatch=1.0) / ds.layers
    assert a2a == pytest.approx(own * 7 * (1 - (7 / 8) ** 8) / flat.link_bytes_s)
    # no shared fabric: every rank gathers every other rank's tokens (7 of them) and reduce-scatters back
    gathered = _moe_comm(ds, lay, replace(flat, p2p_fabric=False), dispatch=1.0) / ds.layers
    assert gathered == pytest.approx(own * 7 / flat.link_bytes_s)
    # quantized tokens travel lighter; the busiest rank receives more
    assert _moe_comm(ds, lay, flat, dispatch=0.5625) < _moe_comm(ds, lay, flat, dispatch=1.0)
    assert _moe_comm(ds, lay, replace(RATES, moe_rank_imbalance_ep32=1.5)) > _moe_comm(ds, lay, RATES)
    # experts tensor-split under attention DP (ep 1): all-gather and reduce-scatter, not nothing
    assert _moe_comm(ds, Layout(tp=8, ep=1, attn_dp=True), flat) > 0.0


@pytest.mark.parametrize("kw", [dict(split_experts=True), dict(split_experts=True, attention_dp=True, ep=2),
                                dict(split_experts="yes", attention_dp=True)])
def test_split_experts_needs_attention_dp_and_no_ep(kw):
    with pytest.raises(BadInput):
        sv.ServingRequest(**kw)


def test_split_experts_under_attention_dp_is_the_experts_tensor_split():
    """TensorRT-LLM's Mapping with no expert-parallel size: moe_tp_size = tp, so every GPU holds a
    slice of every expert and the step's tokens are all-gathered to it; with whole experts (ep = tp)
    the busiest rank sets the pace."""
    gpt = load_model("gpt-oss-120b")
    req = dict(tp=2, attention_dp=True, weights="fp4", activations="fp8", kv_cache="fp8", engine="trtllm", concurrency=64)
    split = sv.estimate_serving(gpt, "g", load_system("node-8x-b200").with_gpus(2), sv.ServingRequest(split_experts=True, **req))
    whole = sv.estimate_serving(gpt, "g", load_system("node-8x-b200").with_gpus(2), sv.ServingRequest(**req))
    assert split.ep == 1 and whole.ep == 2
    assert any("tensor-split experts" in n for n in split.assumptions)
    assert split.tokens_per_s_system.value != whole.tokens_per_s_system.value


def test_replica_larger_than_the_system_does_not_fit():
    with pytest.raises(DoesNotFit):
        sv.estimate_serving(L70, "l", load_system("node-8x-h100"), sv.ServingRequest(tp=16, **FP8))
    with pytest.raises(DoesNotFit):  # bf16 70B weights do not fit one 80 GB GPU
        sv.estimate_serving(L70, "l", load_system("node-8x-h100"), sv.ServingRequest(tp=1))


@pytest.mark.parametrize("kw", [dict(prompt_tokens=0), dict(output_tokens=math.nan), dict(ttft_target_s=0.0, mode="server"),
                                dict(tpot_target_s=math.nan, mode="server"), dict(request_rate_per_s=-1.0, mode="server"),
                                dict(mode="batch"), dict(percentile="p42"), dict(engine="tgi"), dict(weights="int3"),
                                dict(hbm_fraction=1.5), dict(batch=4, concurrency=8), dict(mode="server"),
                                dict(engine_efficiency=0.0)])
def test_bad_serving_requests(kw):
    with pytest.raises(BadInput):
        sv.ServingRequest(**kw)


def test_estimate_range_holds_the_value_and_says_where_rates_come_from():
    e = sv.estimate_serving(L70, "l", load_system("node-8x-mi300x"), sv.ServingRequest(tp=1, **FP8))
    t = e.tokens_per_s_system
    assert t.low < t.value < t.high
    assert any("mi300x fp8 GEMM 1273" in a for a in e.assumptions)
    assert any(a.startswith("engine vLLM") for a in e.assumptions)
    assert set(e.knobs) >= {"mode", "tp", "pp", "ep", "weights", "activations", "kv_cache", "engine", "hbm_fraction",
                            "ttft_target_s", "tpot_target_s", "percentile", "request_rate_per_s", "batch", "concurrency"}


def test_queue_waits_vanish_at_light_load_and_grow_towards_saturation():
    from recoque.planner.serving_queue import prefill_wait, slot_wait
    assert prefill_wait(lam=1.0, step_s=0.05, prompt=300, room=8192, q=0.5) == 0.0  # rho 0.002: nobody waits
    waits = [prefill_wait(lam, 0.05, 8192, 8192, 0.99) for lam in (5.0, 15.0, 19.0)]
    assert waits[0] < waits[1] < waits[2]
    assert prefill_wait(25.0, 0.05, 8192, 8192, 0.99) == math.inf  # rho >= 1
    # 500 KV slots, 40 s in the engine: no wait at half load, a wait close to the cap
    assert slot_wait(lam=500 * 0.5 / 40, service_s=40, slots=500, q=0.99) == 0.0
    assert 0.0 < slot_wait(500 * 0.995 / 40, 40, 500, 0.99) < math.inf


def test_the_stage_to_stage_hop_latency_counts_once_per_step():
    # before: charged on every layer of the stage (40 x the hop latency at pp 2 on Llama-2-70B)
    def comm_growth(lay):
        base = replace(RATES, hop_latency_s=0.0)
        a = step_time(L70, lay, Precision(), 32, 0, 2000, 2000, base)
        b = step_time(L70, lay, Precision(), 32, 0, 2000, 2000, replace(base, hop_latency_s=10e-6))
        return b.comm_s - a.comm_s
    # the TP all-reduces' hops scale with the stage's layers; the send to the next stage adds one hop
    assert comm_growth(Layout(4, 2)) == pytest.approx(comm_growth(Layout(4, 1)) / 2.0 + 10e-6, rel=1e-9)
    # where the stages span nodes the send runs at the stage link's rate and latency, not the TP group's
    far = replace(RATES, pp_link_bytes_s=25e9, pp_hop_latency_s=5e-6)
    near, across = (step_time(L70, Layout(4, 2), Precision(), 32, 0, 2000, 2000, r).comm_s for r in (RATES, far))
    send = 32 * L70.hidden * 2.0
    assert across - near == pytest.approx(send / 25e9 - send / RATES.link_bytes_s + 5e-6 - RATES.hop_latency_s, rel=1e-6)
