"""DeepSeek-V3 shape: latent attention (MLA), shared experts, dense-first layers.

Each piece is held to a count done by hand from the config, and the ordinary (GQA, plain MoE)
shapes must come out as before."""
from dataclasses import replace

import numpy as np
import pytest

from recoque.errors import BadInput
from recoque.planner import flops
from recoque.planner.inference import kv_bytes_per_token, prefill_flops
from recoque.planner.workload import TransformerSpec, load_model


@pytest.fixture(scope="module")
def v3():
    return load_model("deepseek-v3")


def test_mla_cache_is_the_latent_and_rope_key(v3):
    # 61 layers x (512 latent + 64 RoPE key) x 1 byte (fp8): 35,136 B per token, whatever the TP
    assert kv_bytes_per_token(v3, "fp8") == 61 * 576
    assert v3.kv_cache_elems_per_token_layer(8) == v3.kv_cache_elems_per_token_layer(1) == 576
    # the same 128 heads as ordinary multi-head attention would cache 2 x 128 x 128 per layer
    mha = replace(v3, kv_lora_rank=0, q_lora_rank=0, rope_head_dim=0)
    assert mha.kv_cache_elems_per_token_layer(1) == 2 * 128 * 128


def test_gqa_cache_unchanged():
    m = load_model("llama3.1-70b")
    assert m.kv_cache_elems_per_token_layer(1) == 2 * 8 * 128
    assert m.kv_cache_elems_per_token_layer(16) == 2 * 1 * 128  # replicated past 8 KV heads


def test_mla_attention_params_by_hand(v3):
    h, n = 7168, 128
    q = h * 1536 + 1536 * n * 192 + 1536          # down, up (128 nope + 64 rope per head), latent norm
    kv = h * (512 + 64) + 512 * n * (128 + 128) + 512
    o = n * 128 * h
    assert v3.attention_params_per_layer() == q + kv + o


def test_layer_mix_by_hand(v3):
    e = 3 * 7168 * 2048                              # one gated expert
    dense_ffn = 3 * 7168 * 18432
    moe_layer = 256 * e + e + 7168 * 256             # routed, shared, router
    per_layer_common = v3.attention_params_per_layer() + 2 * 7168
    body = 61 * per_layer_common + 58 * moe_layer + 3 * dense_ffn
    assert v3.params_total() == body + 2 * 129280 * 7168 + 7168
    active = 61 * per_layer_common + 58 * (9 * e + 7168 * 256) + 3 * dense_ffn
    assert v3.params_active() == active + 2 * 129280 * 7168 + 7168
    assert v3.active_ffn_width() == pytest.approx((58 * 9 * 2048 + 3 * 18432) / 61)


def test_gemm_flops_match_the_active_linear_weights(v3):
    """Forward GEMM FLOPs per token = 2 x the active linear weights (norms and router apart)."""
    per_token = sum(2.0 * m * n * k * c for m, n, k, c in flops.layer_gemm_shapes_fwd(v3, 1.0, 1.0, 1.0))
    linear = (v3.layer_params(active_only=True) - v3.norm_params_per_layer() - 1536 - 512
              - v3.moe_layer_fraction * v3.router_params_per_layer())
    assert per_token == pytest.approx(2.0 * linear, rel=1e-9)
    # expert parallelism spreads the experts, each GPU then takes its experts' tokens from ep GPUs:
    # with balanced routing the FLOPs per GPU are the same at any ep, over fewer, taller GEMMs
    ep8 = flops.ffn_gemm_shapes_fwd(v3, 1.0, 1.0, 8.0)
    ep1 = flops.ffn_gemm_shapes_fwd(v3, 1.0, 1.0, 1.0)
    assert sum(2.0 * m * n * k * c for m, n, k, c in ep8) == pytest.approx(sum(2.0 * m * n * k * c for m, n, k, c in ep1))
    assert ep8[0][0] == 8 * ep1[0][0] and ep8[0][3] == ep1[0][3] / 8


def test_attention_core_uses_qk_and_value_widths(v3):
    s = float(v3.seq_len)
    assert flops.attention_core_flops_fwd(v3, 1.0, 1.0) == pytest.approx(2.0 * s * s * 128 * (192 + 128))
    m = load_model("llama3.1-8b")
    assert flops.attention_core_flops_fwd(m, 1.0, 1.0) == pytest.approx(4.0 * m.seq_len ** 2 * m.heads * m.head_dim)
    assert prefill_flops(m, 100.0) == pytest.approx(2.0 * m.params_active() * 100 + 2.0 * m.layers * m.heads * 128 * 100 ** 2)


def test_mla_decode_attention_works_in_the_latent(v3):
    # scores over 512 + 64, values over 512: 2 x (2 x 512 + 64) FLOPs per head per cached token
    assert v3.decode_attention_flops_per_pair() == 2 * (2 * 512 + 64)
    m = load_model("llama3.1-70b")
    assert m.decode_attention_flops_per_pair() == 4 * 128


@pytest.mark.parametrize("kw, what", [
    ({"shared_experts": 1}, "mixture of experts"),
    ({"experts": 8, "active_experts": 2, "dense_layers": 4}, "below layers"),
    ({"q_lora_rank": 64}, "kv_lora_rank"),
    ({"experts": 8, "active_experts": 2, "shared_experts": -1}, "non-negative"),
    ({"kv_lora_rank": 32, "kv_heads": 2}, "kv_heads equal to heads"),
])
def test_bad_shapes_refused(kw, what):
    base = dict(name="x", layers=4, hidden=64, heads=4, kv_heads=4, ffn_hidden=128, gated_ffn=True, vocab=100, seq_len=32)
    with pytest.raises(BadInput) as e:
        TransformerSpec(**{**base, **kw})
    assert what in str(e.value) + e.value.fix


def test_plain_moe_unchanged():
    m = load_model("mixtral-8x7b")
    assert m.moe_layer_fraction == 1.0 and m.routed_per_layer == m.active_experts
    assert m.active_ffn_width() == m.active_experts * m.ffn_hidden
    assert m.layer_params() == m.nonexpert_params_per_layer() + m.routed_expert_params_per_layer()


def test_dense_shapes_keep_two_attention_gemms():
    m = load_model("llama3.1-8b")
    shapes = flops.attention_gemm_shapes_fwd(m, 10.0, np.array([1.0, 2.0]))
    assert len(shapes) == 2


def test_group_limited_routing_caps_the_nodes_a_token_reaches(v3):
    # 8 picks over 8 nodes: 7 x (1 - (7/8)^8) = 4.59 other nodes uniform; group-limited to 4 of 8 groups: 3.5
    plain = replace(v3, expert_groups=0, group_topk=0)
    assert plain.offnode_destinations(8) == pytest.approx(7 * (1 - (7 / 8) ** 8))
    assert v3.offnode_destinations(8) == pytest.approx(4 * 7 / 8)
    assert v3.offnode_destinations(1) == 0.0
    assert v3.offnode_destinations(2) == pytest.approx(1 - 0.5 ** 8)  # the limit does not bind on 2 nodes


@pytest.mark.parametrize("kw", [{"expert_groups": 8}, {"expert_groups": 8, "group_topk": 9},
                                {"expert_groups": 3, "group_topk": 1}])
def test_bad_group_limits_refused(kw):
    base = dict(name="x", layers=4, hidden=64, heads=4, kv_heads=4, ffn_hidden=128, gated_ffn=True, vocab=100,
                seq_len=32, experts=16, active_experts=2)
    with pytest.raises(BadInput, match="group-limited routing"):
        TransformerSpec(**{**base, **kw})


def test_alltoall_is_not_an_allgather():
    """An all-to-all shares nothing between destinations: (nodes-1)/nodes of what a GPU sends crosses
    its NIC, where a hierarchical all-gather moves only (nodes-1)/n of its output there."""
    from recoque.planner import comm
    n_bytes, bw_in, bw_out = 1e9, 900e9, 50e9
    a2a = comm.alltoall_time(n_bytes, 8, 4, bw_in, bw_out, 0.0, 0.0)
    assert a2a == pytest.approx(3 / 4 * n_bytes / bw_out)
    ag = comm.hierarchical_allgather_time(n_bytes, 8, 4, bw_in, bw_out, 0.0, 0.0)
    assert a2a > 3 * ag
    # one node: only the scale-up links; deduplicated: what the dispatcher says crosses the NIC
    assert comm.alltoall_time(n_bytes, 8, 1, bw_in, bw_out, 0.0, 0.0) == pytest.approx(7 / 8 * n_bytes / bw_in)
    assert comm.alltoall_time(n_bytes, 8, 4, bw_in, bw_out, 0.0, 0.0, inter_nbytes=0.2 * n_bytes) \
        == pytest.approx(max(7 / 32 * n_bytes / bw_in, 0.2 * n_bytes / bw_out))


def test_sliding_window_layers():
    m = load_model("gpt-oss-120b")
    assert m.params_total() / 1e9 == pytest.approx(116.83, rel=2e-3)
    # half the layers see 128 keys: at 4,096 tokens a layer averages (1 + 128/4096) / 2 of full attention
    assert m.attention_pair_fraction(4096.0) == pytest.approx((1 + 128 / 4096) / 2)
    assert m.kv_layer_fraction(4096.0) == pytest.approx((1 + 128 / 4096) / 2)
    assert m.kv_layer_fraction(100.0) == 1.0 and m.attention_pair_fraction(100.0, causal=True) == pytest.approx(1.0)
    full = replace(m, sliding_window=0, sliding_layers=0)
    assert flops.attention_core_flops_fwd(m, 1.0, 1.0) < 0.6 * flops.attention_core_flops_fwd(full, 1.0, 1.0)
    assert kv_bytes_per_token(m, "bf16") == kv_bytes_per_token(full, "bf16")  # per token held; the window caps tokens
    with pytest.raises(BadInput, match="sliding_window and sliding_layers"):
        replace(m, sliding_layers=0)
