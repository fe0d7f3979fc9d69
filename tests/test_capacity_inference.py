"""Inference serving model: decode reproduces bytes-per-token arithmetic; MoE, memory, latency search."""
from dataclasses import dataclass

import pytest

from recoque.catalog import get_device_spec
from recoque.errors import BadInput, DoesNotFit
from recoque.planner import inference as inf
from recoque.planner.system import load_system


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
    total: float = 7e9
    active: float = 7e9

    def params_total(self):
        return self.total

    def params_active(self):
        return self.active


def test_kv_bytes_per_token():
    # 2 (K and V) x 32 layers x 8 kv heads x 128 head dim x 2 bytes
    assert inf.kv_bytes_per_token(Stub(), "bf16") == 2 * 32 * 8 * 128 * 2


def test_decode_at_batch_one_is_weight_bytes_over_bandwidth():
    system = load_system("h100-reference").with_gpus(1)
    s = inf.Serving(prompt_tokens=1, output_tokens=1, target_tpot_s=1.0)
    bw, fl = 3.35e12, 989.4e12
    t = inf.tpot_s(Stub(), system, s, 1, 1, bw, fl)
    kv = 1.5 * inf.kv_bytes_per_token(Stub(), "bf16")  # average context 1 + 1/2 tokens
    assert t == pytest.approx((7e9 * 2 + kv) / bw, rel=1e-12)
    assert t == pytest.approx(14e9 / 3.35e12, rel=1e-4)  # 4.18 ms per token


def test_fp8_weights_halve_the_decode_time():
    system = load_system("h100-reference").with_gpus(1)
    a = inf.tpot_s(Stub(), system, inf.Serving(weight_dtype="bf16", prompt_tokens=1, output_tokens=1), 1, 1, 1e12, 1e15)
    b = inf.tpot_s(Stub(), system, inf.Serving(weight_dtype="fp8", kv_dtype="fp8", prompt_tokens=1, output_tokens=1), 1, 1, 1e12, 1e15)
    assert b == pytest.approx(a / 2, rel=1e-3)


def test_moe_batch_one_reads_active_experts_and_large_batch_reads_all():
    m = Stub(experts=8, active_experts=2, total=141e9, active=39e9)
    assert inf.weight_bytes_read(m, "bf16", 1) == pytest.approx(39e9 * 2)
    assert inf.weight_bytes_read(m, "bf16", 10_000) == pytest.approx(141e9 * 2, rel=1e-6)


def test_prefill_flops_count():
    m = Stub()
    assert inf.prefill_flops(m, 1000) == pytest.approx(2 * 7e9 * 1000 + 2 * 32 * 32 * 128 * 1000 ** 2)


def test_replica_is_smallest_power_of_two_that_fits():
    h100 = get_device_spec("h100_sxm")
    s = inf.Serving(prompt_tokens=1000, output_tokens=100)
    assert inf.replica_gpus(Stub(), h100, s) == 1
    big = Stub(total=123e9, active=123e9)  # 246 GB of bf16 weights
    assert inf.replica_gpus(big, h100, s) == 4


def test_estimate_meets_target_latency_and_counts_users():
    system = load_system("h100-reference")
    r = inf.estimate_inference(Stub(), "stub-7b", system, inf.Serving(target_tpot_s=0.03))
    assert r.tpot.value <= 0.03
    assert r.concurrent_users.value == pytest.approx(r.batch.value * r.replicas.value)
    assert r.tokens_per_s_system.value == pytest.approx(r.tokens_per_s_per_gpu.value * 8, rel=1e-9)
    assert r.tokens_per_s_per_gpu.low <= r.tokens_per_s_per_gpu.value <= r.tokens_per_s_per_gpu.high


def test_impossible_latency_does_not_fit():
    with pytest.raises(DoesNotFit):
        inf.estimate_inference(Stub(), "stub", load_system("h100-reference"), inf.Serving(target_tpot_s=1e-4))


@pytest.mark.parametrize("kw", [dict(prompt_tokens=0), dict(output_tokens=-1), dict(target_tpot_s=0), dict(batch=-2)])
def test_bad_serving_inputs(kw):
    with pytest.raises(BadInput):
        inf.Serving(**kw)


def test_mi430x_uses_labelled_assumed_bf16_peak():
    r = inf.estimate_inference(Stub(), "stub", load_system("alice-recoque"), inf.Serving())
    assert any(a.startswith("ASSUMED mi430x bf16") for a in r.assumptions)
