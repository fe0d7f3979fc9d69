"""The hardware catalog: every number sourced, internally consistent, and matched to torch names."""
from __future__ import annotations

import math

import pytest

from recoque.catalog import (NUMERIC_KEYS, RATE_KEYS, DeviceSpec, get_device_spec, load_catalog, match_device,
                             spec_from_toml)
from recoque.errors import BadInput
from recoque.fileio import read_seed_toml

EXPECTED = {"mi250x", "mi250x_gcd", "mi300a", "mi300x", "mi325x", "mi350x", "mi355x", "mi430x",
            "a100_sxm_80gb", "h100_sxm", "h100_pcie", "h200", "b200"}


@pytest.fixture(scope="module")
def raw() -> dict:
    return read_seed_toml("hardware.toml")["devices"]


@pytest.fixture(scope="module")
def cat() -> dict[str, DeviceSpec]:
    return load_catalog()


def test_catalog_holds_every_device(cat):
    assert EXPECTED <= set(cat)


def test_every_numeric_field_has_a_source(raw, cat):
    missing = [f"{k}.{f}" for k, d in raw.items() for f in NUMERIC_KEYS if f in d and not cat[k].source_for(f)]
    assert missing == []


def test_every_device_has_status_and_sources(cat):
    for spec in cat.values():
        assert spec.status, spec.key
        assert spec.sources, spec.key
        assert spec.vendor in ("amd", "nvidia", "intel")   # intel: Max 1550, held for the TOP500 HPL model


def _tf(spec: DeviceSpec, rate: str) -> float | None:
    v = spec.peak(rate)
    return None if v is None else v / 1e12


@pytest.mark.parametrize("lower,higher", [("fp64_vector", "fp64_matrix"), ("fp64_vector", "fp32"),
                                          ("fp32", "tf32"), ("fp32", "bf16"), ("fp32", "fp16"),
                                          ("bf16", "fp8"), ("fp8", "fp6"), ("fp8", "fp4"), ("fp6", "fp4")])
def test_rates_are_ordered_where_both_known(cat, lower, higher):
    for spec in cat.values():
        lo, hi = _tf(spec, lower), _tf(spec, higher)
        if lo is not None and hi is not None:
            assert hi >= lo, f"{spec.key}: {higher} {hi} < {lower} {lo}"


# CDNA (MI100) runs BF16 matrix ops at half its FP16 rate (92.3 vs 184.6 TF, AMD's table); every later part
# runs them at the same rate.
BF16_HALF_RATE = {"mi100"}


def test_bf16_equals_fp16_everywhere_known(cat):
    for spec in cat.values():
        if spec.peak("bf16") is not None and spec.peak("fp16") is not None:
            want = spec.peak("fp16") / (2 if spec.key in BF16_HALF_RATE else 1)
            assert spec.peak("bf16") == pytest.approx(want, rel=1e-3), spec.key


def test_ranges_bracket_the_central_value(raw, cat):
    for key, d in raw.items():
        for rk in RATE_KEYS:
            has_lo, has_hi = f"{rk}_tflops_low" in d, f"{rk}_tflops_high" in d
            assert has_lo == has_hi, f"{key}.{rk}: low and high go together"
            if has_lo:
                lo, hi = cat[key].peak_range(rk)
                assert lo <= cat[key].peak(rk) <= hi
    assert cat["mi430x"].peak_range("fp64") == (200e12, 288e12)
    assert cat["b200"].peak_range("fp64_vector") == (37e12, 40e12)


@pytest.mark.parametrize("key,cus,clock_ghz,per_cu", [
    # CDNA3 / CDNA4 FLOPs per clock per CU (ROCm mi300.md; CDNA4 whitepaper figures in hardware_facts.md)
    ("mi300x", 304, 2.1, {"fp64_vector": 128, "fp64_matrix": 256, "fp32": 256, "tf32": 1024, "bf16": 2048, "fp8": 4096}),
    ("mi300a", 228, 2.1, {"fp64_vector": 128, "fp64_matrix": 256, "bf16": 2048, "fp8": 4096}),
    ("mi325x", 304, 2.1, {"bf16": 2048, "fp8": 4096}),
    ("mi350x", 256, 2.2, {"fp64_vector": 128, "fp32": 256, "bf16": 4096, "fp8": 8192, "fp4": 16384}),
    ("mi355x", 256, 2.4, {"fp64_matrix": 128, "fp32": 256, "bf16": 4096, "fp8": 8192, "fp6": 16384}),
    ("mi250x", 220, 1.7, {"fp64_vector": 128, "fp64_matrix": 256, "bf16": 1024}),
])
def test_amd_peaks_reproduce_cu_x_clock_x_rate(cat, key, cus, clock_ghz, per_cu):
    spec = cat[key]
    assert spec.compute_units == cus
    for rate, flops in per_cu.items():
        assert math.isclose(spec.peak(rate), cus * clock_ghz * 1e9 * flops, abs_tol=0.06e12), (key, rate)


def test_mi250x_gcd_is_half_the_package(cat):
    pkg, gcd = cat["mi250x"], cat["mi250x_gcd"]
    for rate, v in pkg.peak_flop_s.items():
        assert math.isclose(gcd.peak(rate), v / 2, rel_tol=1e-3), rate
    assert gcd.hbm_bytes == pkg.hbm_bytes / 2
    assert gcd.hbm_bandwidth_bytes_s == pkg.hbm_bandwidth_bytes_s / 2
    assert gcd.llc_bytes == pkg.llc_bytes / 2 == 8 * 2**20
    assert gcd.compute_units * 2 == pkg.compute_units
    assert not pkg.detectable and gcd.detectable


def test_cdna4_has_no_tf32_and_says_so(cat):
    for key in ("mi350x", "mi355x"):
        assert cat[key].peak("tf32") is None
        assert any("TF32" in n for n in cat[key].notes)


def test_mi430x_only_public_figures(cat):
    spec = cat["mi430x"]
    assert set(spec.peak_flop_s) == {"fp64_vector", "fp64_matrix"}
    assert spec.hbm_bytes == 432e9 and spec.hbm_bandwidth_bytes_s == 19.6e12
    assert spec.tdp_w is None and spec.llc_bytes is None and spec.gfx_arch == ("gfx1251",)


def test_fp8_format_follows_the_arch(cat):
    for spec in cat.values():
        if "gfx942" in spec.gfx_arch:
            assert spec.fp8_format == "e4m3fnuz", spec.key
        elif "gfx950" in spec.gfx_arch or spec.key in ("h100_sxm", "h100_pcie", "h200", "b200"):
            assert spec.fp8_format == "e4m3fn", spec.key
    assert cat["a100_sxm_80gb"].peak("fp8") is None and cat["a100_sxm_80gb"].fp8_format is None


def test_units_convert_to_base_units(cat):
    h100 = cat["h100_sxm"]
    assert h100.hbm_bandwidth_bytes_s == 3.35e12
    assert h100.hbm_bytes == 80e9
    assert h100.llc_bytes == 50 * 2**20
    assert h100.scaleup_bandwidth_bytes_s == 900e9
    assert h100.peak("fp64") == h100.peak("fp64_matrix")
    assert math.isclose(h100.peak("fp64"), 66.9e12, rel_tol=1e-12)


@pytest.mark.parametrize("name,arch,units,expected", [
    ("NVIDIA H100 80GB HBM3", None, 132, "h100_sxm"),
    ("NVIDIA H100 PCIe", None, 114, "h100_pcie"),
    ("NVIDIA H200", None, 132, "h200"),
    ("NVIDIA A100-SXM4-80GB", None, 108, "a100_sxm_80gb"),
    ("NVIDIA B200", None, 148, "b200"),
    ("AMD Instinct MI300X", "gfx942:sramecc+:xnack-", 304, "mi300x"),
    ("AMD Instinct MI300X VF", "gfx942", 304, "mi300x"),
    ("AMD Instinct MI325X", "gfx942", 304, "mi325x"),
    ("AMD Instinct MI300A", "gfx942", 228, "mi300a"),
    ("AMD Instinct MI355X", "gfx950", 256, "mi355x"),
    ("AMD Instinct MI250X", "gfx90a", 110, "mi250x_gcd"),
    ("AMD Instinct MI250X/MI250", "gfx90a", 110, "mi250x_gcd"),
    ("", "gfx90a", 110, "mi250x_gcd"),  # nameless device: the arch and CU count agree
    ("AMD Instinct MI210", "gfx90a:sramecc+:xnack-", 104, "mi210"),  # same arch and CUs as the MI250 GCD: the name decides
    ("AMD Instinct MI250", "gfx90a", 104, "mi250_gcd"),
    ("", "gfx90a", 104, None),  # nameless: the MI250 GCD and the MI210 both have 104 CUs, so nothing decides
    ("AMD Instinct MI308X", "gfx942", 80, None),
    ("AMD Instinct MI100", "gfx908:sramecc+:xnack-", 120, "mi100"),
    ("", "gfx908", 120, "mi100"),  # nameless: the only gfx908 entry, and its CU count agrees
    ("NVIDIA GH200 480GB", None, 132, "gh200"),  # holds "H200" but is the Grace Hopper part
    ("NVIDIA H200 NVL", None, 132, "h200_nvl"),  # its own entry, not the 700 W SXM part
    ("NVIDIA GB200", None, 152, "gb200"),  # holds "B200" but is the 1200 W Grace Blackwell part
    ("NVIDIA GB300", None, 152, "gb300"),
    ("NVIDIA B300 SXM6 AC", None, 148, "b300"),
    ("NVIDIA A100-SXM4-40GB", None, 108, "a100_sxm_40gb"),
    ("NVIDIA A100-PCIE-40GB", None, 108, "a100_pcie_40gb"),
    ("NVIDIA A100 80GB PCIe", None, 108, "a100_pcie_80gb"),
    ("NVIDIA L40S", None, 142, "l40s"),
    ("NVIDIA L40", None, 142, None),  # the 300 W L40 is another part
    ("Some Unknown Accelerator", None, None, None),
])
def test_match_device(name, arch, units, expected):
    got = match_device(name, arch, units)
    assert (got.key if got else None) == expected


def test_match_device_keeps_its_two_argument_form():
    assert match_device("AMD Instinct MI300X", "gfx942").key == "mi300x"
    assert match_device("NVIDIA H100 PCIe").key == "h100_pcie"


def test_get_device_spec_unknown_key_is_bad_input():
    assert get_device_spec("h100_sxm").name.startswith("NVIDIA H100")
    with pytest.raises(BadInput, match="unknown device"):
        get_device_spec("h999")


@pytest.mark.parametrize("raw_entry,message", [
    ({"vendor": "amd"}, "missing `name`"),
    ({"vendor": "amd", "name": "x", "bf16_tflop": 1.0}, "unknown key"),
    ({"vendor": "amd", "name": "x", "fp32_tflops": -1}, "finite positive"),
    ({"vendor": "amd", "name": "x", "fp32_tflops": "fast"}, "finite positive"),
    ({"vendor": "amd", "name": "x", "fp8_format": "e5m2"}, "fp8_format"),
])
def test_malformed_entries_are_bad_input(raw_entry, message):
    with pytest.raises(BadInput, match=message):
        spec_from_toml("x", raw_entry)
