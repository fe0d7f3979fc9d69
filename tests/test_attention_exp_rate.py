"""Fused attention and the softmax exponentials (SFU EX2): a part that runs them faster than the part its
attention efficiency comes from (Blackwell Ultra against Blackwell) gains exactly their time, never more."""
from dataclasses import replace

import pytest

from recoque.catalog import get_device_spec, spec_from_toml
from recoque.errors import BadInput
from recoque.planner.validation import load_cases, shipped_profile
from recoque.planner.train_kernels import kernel_times
from recoque.planner.train import hardware_for

FLOPS = 4.0 * 8192 * 8192 * 128 * 8   # one head-128 layer slice, full count
EXPS = FLOPS / (2.0 * (128 + 128))      # one exponential per score


def test_catalog_states_the_exponential_rates_with_a_source():
    for dev, rate in (("b200", 5.0e12), ("gb200", 5.0e12), ("b300", 10.7e12), ("gb300", 10.7e12)):
        spec = get_device_spec(dev)
        assert spec.exp2_per_s == pytest.approx(rate)
        assert "SFU EX2" in spec.source_for("exp2_tera_per_s")
    assert get_device_spec("mi355x").exp2_per_s is None  # stated nowhere read: unknown, not guessed


def test_negative_or_nan_exponential_rate_is_refused():
    for bad in (-1.0, float("nan")):
        with pytest.raises(BadInput, match="exp2_tera_per_s"):
            spec_from_toml("x", {"vendor": "nvidia", "name": "X", "exp2_tera_per_s": bad})


def test_blackwell_ultra_saves_exactly_the_exponential_time():
    p = shipped_profile("gb300")
    curve_s = FLOPS / p.attention_curve("bf16", "fwd").at(FLOPS)
    saved = EXPS * (1 / 5.0e12 - 1 / 10.7e12)
    assert p.attention_time_s("bf16", "fwd", FLOPS, EXPS) == pytest.approx(curve_s - saved)
    # the forward of a head-128 layer at the B200-derived 0.50 efficiency: about 1.35x (seeds/validation.toml)
    assert 1.30 < curve_s / (curve_s - saved) < 1.40


def test_no_stated_reference_or_rate_leaves_the_curve_alone():
    for dev in ("gb200", "b200", "h100_sxm", "mi355x"):
        p = shipped_profile(dev)
        curve_s = FLOPS / p.attention_curve("bf16", "fwd").at(FLOPS)
        assert p.attention_time_s("bf16", "fwd", FLOPS, EXPS) == pytest.approx(curve_s), dev


def test_never_faster_than_the_tensor_peak_and_monotone_in_the_rate():
    p = shipped_profile("gb300")
    floor = FLOPS / p.peak_flop_s("bf16")
    times = []
    for tera in (10.7, 50.0, 1e6):
        q = replace(p, spec=replace(p.spec, exp2_per_s=tera * 1e12))
        times.append(float(q.attention_time_s("bf16", "fwd", FLOPS, EXPS)))
    assert times == sorted(times, reverse=True)
    assert min(times) >= floor * (1 - 1e-12)
    slower = replace(p, spec=replace(p.spec, exp2_per_s=2.5e12))  # slower SFUs than the reference: costs time
    assert slower.attention_time_s("bf16", "fwd", FLOPS, EXPS) > times[0]


def test_gb300_lora_step_attention_is_faster_than_with_gb200_sfus():
    case = next(c for c in load_cases("train_checks.toml") if c.name == "mlperf60-lora-70b-nv-72-gb300")
    p = shipped_profile("gb300")
    as_gb200 = replace(p, spec=replace(p.spec, exp2_per_s=5.0e12))
    pl = case.plan

    def att(prof):
        kt = kernel_times(case.workload, hardware_for(case.system, prof, "value"), prof, case.dtype, "value", 1.0,
                          pl.micro_batch, pl.tp, pl.cp, getattr(pl, "ep", 1))
        return float(kt["att_flash_f"]), float(kt["att_flash_b"])

    (f_u, b_u), (f_b, b_b) = att(p), att(as_gb200)
    assert f_u < f_b and b_u < b_b
    # the backward does twice the GEMM work for the same exponentials: it gains less
    assert f_b / f_u > b_b / b_u


def test_the_adjustment_is_stated_among_the_assumptions_where_it_applies():
    ultra = [a for a in shipped_profile("gb300").assumptions if "TeraExponentials" in a]
    assert ultra and "part whose SFUs run 5 " in ultra[0] and "this part's 10.7" in ultra[0]
    own = [a for a in shipped_profile("gb200").assumptions if "TeraExponentials" in a]
    assert own and "saved" not in own[0] and "head dim 128" in own[0]  # its own rate: only the head-dim swap
    assert not any("TeraExponentials" in a for a in shipped_profile("mi355x").assumptions)
