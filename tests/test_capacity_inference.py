"""Inference serving entry point (planner.inference over planner.serving): bytes-per-token
arithmetic, MoE weight reads, memory, the latency-target search and the workload interface."""
from dataclasses import dataclass

import pytest

from recoque.errors import BadInput, DoesNotFit
from recoque.planner import inference as inf
from recoque.planner.serving_step import Layout, Precision, Rates, step_time
from recoque.planner.system import load_system
from recoque.planner.workload import TransformerSpec, load_model


@dataclass(frozen=True)
class Stub:
    """A TransformerSpec-like model with round numbers (7e9 parameters by construction)."""
    layers: int = 32
    hidden: int = 4096
    heads: int = 32
    kv_heads: int = 8
    ffn_hidden: int = 14336
    gated_ffn: bool = True
    vocab: int = 32000
    seq_len: int = 8192
    experts: int = 1
    active_experts: int = 1
    head_dim: int = 128
    total: float = 7e9
    active: float = 7e9

    def params_total(self):
        return self.total

    def params_active(self):
        return self.active

    def embedding_params(self):
        return 2 * self.vocab * self.hidden

    def layer_params(self, active_only=False):
        return (self.total - self.embedding_params()) / self.layers

    def expert_params(self):
        return 3 * self.hidden * self.ffn_hidden

    # attention shape: the real model's own rules (ordinary GQA here)
    kv_lora_rank: int = 0
    rope_head_dim: int = 0
    v_head_dim: int = 0
    mla = TransformerSpec.mla
    qk_head_dim = TransformerSpec.qk_head_dim
    value_head_dim = TransformerSpec.value_head_dim
    kv_cache_elems_per_token_layer = TransformerSpec.kv_cache_elems_per_token_layer
    attention_flops_per_pair = TransformerSpec.attention_flops_per_pair
    decode_attention_flops_per_pair = TransformerSpec.decode_attention_flops_per_pair
    active_ffn_width = TransformerSpec.active_ffn_width
    moe = TransformerSpec.moe
    sliding_window: int = 0
    sliding_layers: int = 0
    kv_layer_fraction = TransformerSpec.kv_layer_fraction
    attention_pair_fraction = TransformerSpec.attention_pair_fraction


RATES = Rates(gemm_flop_s=989.4e12, attention_flop_s=700e12, hbm_bytes_s=3.35e12, link_bytes_s=360e9,
              hop_latency_s=1e-6, kernel_gap_s=0.0, step_overhead_s=0.0)


def test_kv_bytes_per_token():
    # 2 (K and V) x 32 layers x 8 kv heads x 128 head dim x 2 bytes
    assert inf.kv_bytes_per_token(Stub(), "bf16") == 2 * 32 * 8 * 128 * 2


def test_decode_at_batch_one_is_weight_bytes_over_bandwidth():
    """One stream, no overheads: the GEMM part of a step is the layer weights over the bandwidth
    (the math of a one-row GEMM, even at 1/33 of the large-shape rate, is ~11% of it, and the p=2
    overlap adds 0.6%)."""
    m = Stub()
    st = step_time(m, Layout(), Precision(2.0, 2.0), decode=1, prefill=0, context=1, prompt=1, r=RATES)
    layer_bytes = m.layers * m.layer_params() * 2.0
    assert st.gemm_memory_s == pytest.approx(layer_bytes / 3.35e12, rel=1e-12)
    assert st.gemm_s == pytest.approx((layer_bytes + m.hidden * m.vocab * 2.0) / 3.35e12, rel=1e-2)
    assert st.bound == "weight read (memory)"


def test_fp8_weights_halve_the_weight_read():
    m = Stub()
    a = step_time(m, Layout(), Precision(2.0, 2.0), 1, 0, 1, 1, RATES)
    b = step_time(m, Layout(), Precision(1.0, 1.0), 1, 0, 1, 1, RATES)
    assert b.gemm_memory_s == pytest.approx(a.gemm_memory_s / 2, rel=1e-12)
    assert b.gemm_s == pytest.approx(a.gemm_s / 2, rel=2e-2)


def test_moe_batch_one_reads_active_experts_and_large_batch_reads_all():
    m = Stub(experts=8, active_experts=2, total=141e9, active=39e9)
    assert inf.weight_bytes_read(m, "bf16", 1) == pytest.approx(39e9 * 2)
    assert inf.weight_bytes_read(m, "bf16", 10_000) == pytest.approx(141e9 * 2, rel=1e-6)


def test_prefill_flops_count():
    m = Stub()
    assert inf.prefill_flops(m, 1000) == pytest.approx(2 * 7e9 * 1000 + 2 * 32 * 32 * 128 * 1000 ** 2)


def test_replica_holds_the_weights_and_too_small_a_replica_does_not_fit():
    big = load_model("mistral-large-2")  # 123 B parameters: 246 GB in bf16
    system = load_system("h100-reference")
    r = inf.estimate_inference(big, "mistral-large-2", system, inf.Serving(prompt_tokens=1000, output_tokens=100))
    mem = r.serving.memory
    assert r.gpus_per_replica >= 4 and mem.weights_bytes * r.gpus_per_replica >= inf.weight_bytes(big, "bf16") * 0.99
    with pytest.raises(DoesNotFit):
        inf.estimate_inference(big, "mistral-large-2", system, inf.Serving(prompt_tokens=1000, output_tokens=100, gpus_per_replica=2))


def test_estimate_meets_target_latency_and_counts_users():
    system = load_system("h100-reference")
    r = inf.estimate_inference(load_model("mistral-7b"), "mistral-7b", system, inf.Serving(target_tpot_s=0.03))
    assert r.tpot.value <= 0.03 * (1 + 1e-6)
    assert r.concurrent_users.value == pytest.approx(r.batch.value * r.replicas.value)
    assert r.tokens_per_s_system.value == pytest.approx(r.tokens_per_s_per_gpu.value * 8, rel=1e-9)
    assert r.tokens_per_s_per_gpu.low <= r.tokens_per_s_per_gpu.value <= r.tokens_per_s_per_gpu.high


def test_impossible_latency_does_not_fit():
    with pytest.raises(DoesNotFit):
        inf.estimate_inference(load_model("mistral-7b"), "m", load_system("h100-reference"), inf.Serving(target_tpot_s=1e-4))


@pytest.mark.parametrize("kw", [dict(prompt_tokens=0), dict(output_tokens=-1), dict(target_tpot_s=0), dict(batch=-2),
                                dict(target_tpot_s=float("nan")), dict(weight_dtype="int3")])
def test_bad_serving_inputs(kw):
    with pytest.raises(BadInput):
        inf.Serving(**kw)


def test_mi430x_uses_labelled_fallback_rates():
    """No measurement on file for the MI430X: its rates come from the [assumed_peaks] bracket x fraction, said so."""
    r = inf.estimate_inference(load_model("mistral-7b"), "mistral-7b", load_system("alice-recoque"), inf.Serving())
    assert any("mi430x" in a and "datasheet x achieved fraction" in a for a in r.assumptions)
