"""The row tile of aiter's fused-MoE expert GEMMs (seeds/serving.toml [moe_tile]).

An expert GEMM with m routed rows pays whole tiles: the generic decode tile (64 rows, [kernel]
gemm_m_half_rows 32) is replaced for the expert GEMMs by aiter's, where ATOM or SGLang run aiter's
fused MoE on gfx942/gfx950: 16 rows for the CK-Tile a16w4 kernels (MXFP4 weights, 16-bit
activations: gpt-oss), 32 for the others. Dense GEMMs and every other engine or device keep the
generic tile."""
import dataclasses

import pytest

from recoque.catalog import get_device_spec
from recoque.planner.serving_rates import load_engine, moe_tile_m_half, rate_set
from recoque.planner.serving_step import Layout, Precision, dense_gemm_s, layer_gemm_s
from recoque.planner.system import load_system
from recoque.planner.workload import load_model

GPT_OSS = load_model("gpt-oss-120b")
MI355X = get_device_spec("mi355x")


def _rates(device: str, system: str, engine: str, compute: str = "bf16", weights: str = "fp4"):
    return rate_set(get_device_spec(device), load_system(system), compute, 1, load_engine(engine),
                    weights=weights)


@pytest.mark.parametrize("engine, a16w4, half", [
    ("atom", True, (8.0, 8.0, 16.0)),     # CK-Tile a16w4: block_m 16 below 2,048 tokens
    ("atom", False, (16.0, 8.0, 32.0)),   # block-scaled FP8 / MXFP4 activations: 32 (16-64)
    ("sglang", False, (16.0, 8.0, 32.0)),
    ("vllm", True, (0.0, 0.0, 0.0)),      # vLLM's ROCm MoE path is not read: the generic tile
])
def test_the_tile_follows_the_engine_and_the_path(engine, a16w4, half):
    assert moe_tile_m_half(MI355X, load_engine(engine), a16w4) == half


def test_nvidia_devices_keep_the_generic_tile():
    assert moe_tile_m_half(get_device_spec("h200"), load_engine("sglang"), False) == (0.0, 0.0, 0.0)
    assert moe_tile_m_half(get_device_spec("mi300x"), load_engine("sglang"), False)[0] == 16.0


def test_rate_set_reads_the_path_from_the_weights():
    a16w4 = _rates("mi355x", "node-8x-mi355x", "atom").rates
    fp8 = _rates("mi355x", "node-8x-mi355x", "atom", compute="fp8", weights="fp8").rates
    # the low (slow) estimate takes the wider tile, the high one the narrower
    assert (a16w4["value"].moe_m_half, a16w4["low"].moe_m_half, a16w4["high"].moe_m_half) == (8.0, 16.0, 8.0)
    assert fp8["value"].moe_m_half == 16.0
    assert a16w4["value"].m_half == 32.0   # dense GEMMs keep the generic tile
    assert any("[moe_tile]" in n for n in _rates("mi355x", "node-8x-mi355x", "atom").notes)
    assert not any("[moe_tile]" in n for n in _rates("h200", "node-8x-h200", "vllm").notes)


def test_a_smaller_tile_charges_the_experts_less_math_and_leaves_dense_and_reads_alone():
    r = _rates("mi355x", "node-8x-mi355x", "atom").rates["value"]
    generic = dataclasses.replace(r, moe_m_half=0.0)
    prec, lay = Precision(weight_bytes=0.5, kv_bytes=1.0), Layout(1)
    c_tile, m_tile = layer_gemm_s(GPT_OSS, lay, prec, 64.0, r)
    c_gen, m_gen = layer_gemm_s(GPT_OSS, lay, prec, 64.0, generic)
    c_dense = dense_gemm_s(GPT_OSS, lay, prec, 64.0, r)[0]
    assert m_tile == m_gen                       # the weight read does not depend on the tile
    assert c_dense < c_tile < c_gen
    # 64 tokens x top-4 over ~112 touched experts: ~2.3 rows an expert; the expert math falls by
    # (m + 32) / (m + 8) with the 16-row tile
    m = 64.0 * 4 / (128 * (1 - (1 - 4 / 128) ** 64))
    assert (c_gen - c_dense) / (c_tile - c_dense) == pytest.approx((m + 32.0) / (m + 8.0), rel=1e-9)
