"""Device profile: measured curves interpolated by size, datasheet fallback labelled."""
from pathlib import Path

import pytest

from recoque.bench.schema import load_results
from recoque.catalog import get_device_spec
from recoque.planner.profile import DEFAULT_GEMM_EFFICIENCY, DeviceProfile

FIX = Path(__file__).parent / "fixtures" / "planner_results_v2.json"


@pytest.fixture(scope="module")
def measured():
    return DeviceProfile.from_results(load_results(str(FIX)), get_device_spec("h100_sxm"))


def test_measured_points_reproduced(measured):
    assert measured.gemm_flop_s("bf16", 8192, 8192, 8192) == pytest.approx(760e12, rel=1e-6)
    assert measured.gemm_flop_s("bf16", 1024, 1024, 1024) == pytest.approx(400e12, rel=1e-6)


def test_interpolated_between_points_and_monotone(measured):
    mid = measured.gemm_flop_s("bf16", 2048, 2048, 2048)
    assert 400e12 < mid < 700e12
    sizes = [128, 256, 512, 1024, 2048, 4096, 8192, 16384]
    rates = [measured.gemm_flop_s("bf16", n, n, n) for n in sizes]
    assert rates == sorted(rates)
    # beyond the largest size: held, never above the largest measured
    assert rates[-1] == pytest.approx(760e12)


def test_bounds_from_samples(measured):
    lo = measured.gemm_flop_s("bf16", 4096, 4096, 4096, "low")
    hi = measured.gemm_flop_s("bf16", 4096, 4096, 4096, "high")
    assert lo < 700e12 < hi


def test_unmeasured_dtype_falls_back_to_datasheet_labelled(measured):
    fp8 = measured.gemm_flop_s("fp8", 16384, 16384, 16384)
    # fp8 GEMMs reach a lower fraction of their doubled peak than bf16 (profile.py, sourced)
    from recoque.planner.profile import DEFAULT_FP8_RELATIVE_EFFICIENCY

    assert fp8 == pytest.approx(1978.9e12 * DEFAULT_GEMM_EFFICIENCY * DEFAULT_FP8_RELATIVE_EFFICIENCY, rel=0.01)
    assert any("fp8 GEMM not measured" in a for a in measured.describe("fp8"))
    assert not any("bf16 GEMM not measured" in a for a in measured.describe("bf16"))


def test_attention_full_flop_convention(measured):
    # the fixture counted causal FLOPs as half; the profile reports full-convention rates
    assert measured.attention_flop_s("bf16", 4, 32, 4096, 128) == pytest.approx(500e12, rel=1e-6)


def test_stream_bandwidth(measured):
    assert measured.memory_bandwidth_bytes_s() == pytest.approx(3.0e12, rel=0.01)


def test_datasheet_profile_labelled_and_size_dependent():
    p = DeviceProfile.from_datasheet(get_device_spec("mi300x"), default_efficiency=0.6)
    assert p.origin == "datasheet" and "default GEMM efficiency 0.60" in p.assumptions[0]
    big = p.gemm_flop_s("bf16", 16384, 16384, 16384)
    assert big == pytest.approx(0.6 * 1307.4e12, rel=0.01)
    assert p.gemm_flop_s("bf16", 64, 64, 64) < 0.1 * big
    assert p.gemm_flop_s("fp64", 8192, 8192, 8192) == pytest.approx(0.6 * 163.4e12, rel=0.01)
    assert p.memory_bandwidth_bytes_s("low") < p.memory_bandwidth_bytes_s() < p.memory_bandwidth_bytes_s("high")


def test_wave_quantisation_and_anchor():
    from recoque.planner.profile import wave_efficiency
    from recoque.planner.validation import shipped_profile

    # 8 x 36 = 288 tiles of 256x128 on 108 SMs: 3 waves, 288 / 324 busy
    assert wave_efficiency(2048, 4608, 1, 108) == pytest.approx(288 / 324)
    assert wave_efficiency(108 * 256, 128, 1, 108) == pytest.approx(1.0)
    prof = shipped_profile("a100_sxm_80gb")
    raw = prof.fallback
    # the GEMM plateau reproduces the anchor (MAMF best shape) times the sustained fraction
    anchor = prof.gemm_flop_s("bf16", int(raw["gemm_anchor_m"]), int(raw["gemm_anchor_n"]), int(raw["gemm_anchor_k"]))
    assert anchor == pytest.approx(raw["gemm_anchor_tflops"] * 1e12 * raw["gemm_sustained_fraction"], rel=1e-6)
    # thin and memory-bound GEMMs run below the plateau; bounds bracket the value
    assert prof.gemm_flop_s("bf16", 2048, 2048, 64) < 0.6 * anchor
    assert prof.gemm_flop_s("bf16", 4096, 4096, 4096, "low") < prof.gemm_flop_s("bf16", 4096, 4096, 4096) \
        < prof.gemm_flop_s("bf16", 4096, 4096, 4096, "high")
