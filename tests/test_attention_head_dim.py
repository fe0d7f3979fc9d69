"""Fused attention by head dim: the softmax exponentials per FLOP grow as the head shrinks, and where a
part's exponential rate is known (seeds/hardware.toml exp2_tera_per_s) the attention time swaps the
head-128 reference's exponentials for the ones the layer runs (planner/profile.py attention_time_s).

Held against FlashAttention-3's own head-dim sweep, which nothing was fitted on: Shah et al. 2024
(arXiv 2407.08608) Figure 5, H100 SXM5, BF16 forward, sequence 16k, hidden 2048 (the figure's bar
labels): with the causal mask (as training runs it) 473 / 616 / 642 TFLOPS for head dim 64 / 128 / 256;
without it 497 / 648 / 756. Heads wider than 128 are not credited fewer exponentials (the causal
sweep gains 4% there, the exponentials alone would give 18%)."""
import pytest

from recoque.catalog import get_device_spec
from recoque.planner.profile import ATTENTION_REFERENCE_FLOPS_PER_PAIR, DeviceProfile
from recoque.planner.validation import shipped_profile

FA3_CAUSAL_TFLOPS = {64: 473.0, 128: 616.0, 256: 642.0}
FA3_TFLOPS = {64: 497.0, 128: 648.0, 256: 756.0}  # without the causal mask
WORK = 4.0 * 16384 * 16384 * 2048  # b s^2 h d at hidden 2048, whatever the head dim


def rate_tflops(p: DeviceProfile, head_dim: int, direction: str = "fwd") -> float:
    mult = 2.0 if direction == "bwd" else 1.0
    exps = WORK / (2.0 * (head_dim + head_dim))
    return mult * WORK / float(p.attention_time_s("bf16", direction, mult * WORK, exps, work=WORK)) / 1e12


def fa3_h100(head_128_tflops: float) -> DeviceProfile:
    """The H100 SXM5 whose attention curve holds FlashAttention-3's head-128 rate."""
    spec = get_device_spec("h100_sxm")
    return DeviceProfile.from_parameters(spec, {"attention_efficiency": head_128_tflops * 1e12 / spec.peak("bf16"),
                                                "kernel_overhead_s": 0.0, "uncertainty": 0.0})


def test_reference_is_head_128():
    assert ATTENTION_REFERENCE_FLOPS_PER_PAIR == 2.0 * (128 + 128)


@pytest.mark.parametrize("published", [FA3_CAUSAL_TFLOPS, FA3_TFLOPS], ids=["causal", "full"])
def test_flashattention3_head_64_within_2_percent(published):
    p = fa3_h100(published[128])
    assert rate_tflops(p, 128) == pytest.approx(published[128], rel=1e-9)
    model = rate_tflops(p, 64) / rate_tflops(p, 128)
    assert model == pytest.approx(published[64] / published[128], rel=0.02)


def test_wider_heads_keep_the_head_128_rate_as_the_causal_sweep_does():
    p = fa3_h100(FA3_CAUSAL_TFLOPS[128])
    model = rate_tflops(p, 256) / rate_tflops(p, 128)
    assert model == pytest.approx(1.0)
    assert model == pytest.approx(FA3_CAUSAL_TFLOPS[256] / FA3_CAUSAL_TFLOPS[128], rel=0.05)
    assert model < FA3_TFLOPS[256] / FA3_TFLOPS[128]  # the unmasked gain is not credited: conservative there


def test_head_128_keeps_every_shipped_curve():
    for dev in ("h100_sxm", "h200", "b200", "gb200", "mi300x", "mi355x", "a100_sxm_80gb"):
        p = shipped_profile(dev)
        assert rate_tflops(p, 128) * 1e12 == pytest.approx(p.attention_curve("bf16", "fwd").at(WORK)), dev


@pytest.mark.parametrize("dev", ["h100_sxm", "h200", "b200", "gb200", "gb300"])
def test_smaller_heads_are_slower_per_flop_on_parts_with_a_stated_rate(dev):
    p = shipped_profile(dev)
    r64, r128, r192 = (rate_tflops(p, d) for d in (64, 128, 192))
    assert r64 < r128 == pytest.approx(r192)
    # the backward runs twice the GEMM work for the same exponentials: the head dim matters less there
    assert rate_tflops(p, 64, "bwd") / rate_tflops(p, 128, "bwd") > r64 / r128


def test_no_stated_rate_no_head_dim_term():
    for dev in ("mi300x", "mi355x", "a100_sxm_80gb"):
        assert get_device_spec(dev).exp2_per_s is None
        p = shipped_profile(dev)
        assert rate_tflops(p, 64) == pytest.approx(rate_tflops(p, 128)), dev
        assert not any("TeraExponentials" in a for a in p.assumptions), dev


def test_gh100_parts_scale_the_fa3_rate_by_their_peak():
    h100 = get_device_spec("h100_sxm")
    assert h100.exp2_per_s == pytest.approx(3.9e12)
    assert "2407.08608" in h100.source_for("exp2_tera_per_s")
    for dev in ("h800", "h200", "gh200", "h100_pcie", "h100_nvl", "h200_nvl"):
        s = get_device_spec(dev)
        assert s.exp2_per_s == pytest.approx(3.9e12 * s.peak("bf16") / h100.peak("bf16"), rel=0.01), dev


def test_serving_prefill_pays_the_narrow_heads_exponentials_where_the_rate_is_stated():
    from dataclasses import replace

    from recoque.planner.serving_step import Rates, prefill_attention_s
    from recoque.planner.workload import load_model

    r = Rates(gemm_flop_s=2e15, attention_flop_s=1e15, hbm_bytes_s=8e12, link_bytes_s=9e11, hop_latency_s=2e-6,
              kernel_gap_s=2e-6, step_overhead_s=1e-4, exp2_per_s=5e12)
    flops = 1e15
    oss, llama, dsr1 = (load_model(m) for m in ("gpt-oss-120b", "llama3.3-70b", "deepseek-r1"))
    base = flops / r.attention_flop_s
    # head 64: twice the head-128 exponentials per FLOP, the extra half at 5e12 a second
    assert prefill_attention_s(oss, flops, r) == pytest.approx(base + flops / 256.0 / 2.0 / 5e12)
    assert prefill_attention_s(llama, flops, r) == pytest.approx(base)  # head 128: the rate as read
    assert prefill_attention_s(dsr1, flops, r) == pytest.approx(base)   # wider: not credited
    assert prefill_attention_s(oss, flops, replace(r, exp2_per_s=0.0)) == pytest.approx(base)  # no stated rate
