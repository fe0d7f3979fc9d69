"""Block-scaled FP8 GEMMs that run an untuned default tile (planner/serving_step.untuned_blockscale_s,
seeds/serving.toml [untuned_blockscale]): where they apply, what a call costs, and what the plan says."""
from __future__ import annotations

import dataclasses
import math

import pytest

from recoque.catalog import get_device_spec
from recoque.fileio import read_seed_toml
from recoque.planner import serving as sv
from recoque.planner import serving_rates as sr
from recoque.planner.serving_step import (Layout, Precision, Rates, blockscale_kblocks_per_layer, step_time,
                                          untuned_blockscale_s)
from recoque.planner.system import load_system
from recoque.planner.workload import load_model

DS = load_model("deepseek-r1")
FP8 = Precision(weight_bytes=1.0, kv_bytes=1.0, quantized_activations=True, fp8_weights=True)
TP8 = Layout(tp=8)


def _rates(device: str, engine: str = "sglang", corner: str = "value") -> Rates:
    spec = get_device_spec(device)
    system = load_system(f"node-8x-{device}")
    return sr.rate_set(spec, system, "fp8", 8, sr.load_engine(engine)).rates[corner]


def test_seed_value_is_the_cited_measurements_arithmetic():
    t = read_seed_toml("serving.toml")["untuned_blockscale"]
    blocks = math.ceil(7168 / 128)   # N 2112, K 7168: DeepSeek's fused q_a/kv_a projection
    per_block_us = [ms * 1e3 / blocks for ms in (0.1288, 0.1273, 0.1175)]   # aiter PR #1232, M 64/128/256
    assert t["kblock_us_high"] == pytest.approx(max(per_block_us), abs=0.01)
    assert min(per_block_us) == pytest.approx(2.10, abs=0.01)
    saved_us = (28.76 - 22.05) * 1e3 / 61   # aiter PR #1930: TPOT at concurrency 4, one shape tuned
    assert t["kblock_us_low"] == pytest.approx(saved_us / blocks, abs=0.01)
    assert t["kblock_us_low"] < t["kblock_us"] < t["kblock_us_high"]


def test_applies_to_gfx942_with_304_cus_under_sglang_only():
    for device in ("mi300x", "mi325x"):
        assert _rates(device).blockscale_kblock_s == pytest.approx(2.2e-6)
        # the slow corner takes the longer block, the fast corner the shorter
        assert _rates(device, corner="low").blockscale_kblock_s > _rates(device, corner="high").blockscale_kblock_s > 0
        assert _rates(device, "vllm").blockscale_kblock_s == 0.0   # vLLM's CK path: latency not measured
    for device in ("mi355x", "h200"):   # tuned DeepSeek tables (gfx950), or another kernel library
        assert _rates(device).blockscale_kblock_s == 0.0


def test_k_blocks_of_a_deepseek_layer():
    # MLA: fused q_a/kv_a (K 7168: 56), q_b (K 1536: 12), o_proj (K 128 x 128 / 8 = 2048: 16);
    # the 3 dense-first layers of 61: gate/up (56) and down (K 18432 / 8 = 2304: 18)
    assert blockscale_kblocks_per_layer(DS, TP8) == pytest.approx(56 + 12 + 16 + 3 / 61 * (56 + 18))
    # under expert parallelism the shared expert runs as dense GEMMs: gate/up (56) and down (K 2048 / 8: 2)
    ep = Layout(tp=8, ep=8)
    assert blockscale_kblocks_per_layer(DS, ep) - blockscale_kblocks_per_layer(DS, TP8) == pytest.approx(58 / 61 * (56 + 2))


def test_only_block_scaled_fp8_weights_on_untuned_rates_pay():
    r = _rates("mi300x")
    assert untuned_blockscale_s(DS, TP8, FP8, 4.0, r) > 0.0
    assert untuned_blockscale_s(DS, TP8, Precision(), 4.0, r) == 0.0        # bf16 weights
    llama = load_model("llama3.1-70b")                                      # per-tensor FP8 checkpoints
    assert untuned_blockscale_s(llama, TP8, FP8, 4.0, r) == 0.0
    assert untuned_blockscale_s(DS, TP8, FP8, 4.0, dataclasses.replace(r, blockscale_kblock_s=0.0)) == 0.0


def test_a_floor_the_batch_grows_into():
    """Flat in the rows while the tuned time is below it; gone once the tuned GEMMs take longer."""
    r = _rates("mi300x")
    floor = blockscale_kblocks_per_layer(DS, TP8) * r.blockscale_kblock_s
    small = [untuned_blockscale_s(DS, TP8, FP8, m, r) for m in (1.0, 4.0, 16.0, 64.0)]
    assert all(0.8 * floor < x < floor for x in small)
    assert small == sorted(small, reverse=True)
    assert untuned_blockscale_s(DS, TP8, FP8, 65536.0, r) == 0.0


def test_decode_step_carries_it_and_names_it():
    r = _rates("mi300x")
    slow = step_time(DS, TP8, FP8, 4.0, 0.0, 1536.0, 1024.0, r)
    fast = step_time(DS, TP8, FP8, 4.0, 0.0, 1536.0, 1024.0, dataclasses.replace(r, blockscale_kblock_s=0.0))
    assert slow.total_s - fast.total_s == pytest.approx(slow.untuned_gemm_s)
    assert slow.untuned_gemm_s == pytest.approx(DS.layers * untuned_blockscale_s(DS, TP8, FP8, 4.0, r))
    assert slow.bound == "untuned block-scaled GEMMs (latency)"
    assert fast.untuned_gemm_s == 0.0 and fast.bound != slow.bound


def _plan(engine: str = "sglang"):
    req = sv.ServingRequest(prompt_tokens=1024, output_tokens=1024, mode="server", concurrency=4, tp=8,
                            weights="fp8", activations="fp8", kv_cache="fp8", engine=engine)
    return sv.estimate_serving(DS, "deepseek-r1", load_system("node-8x-mi300x"), req)


def test_plan_on_mi300x_pays_it_and_says_why(monkeypatch):
    slow = _plan()
    note = [a for a in slow.assumptions if a.startswith("block-scaled FP8 GEMMs untuned")]
    assert len(note) == 1 and "[untuned_blockscale]" in note[0] and "11.8 ms a forward" in note[0]
    assert not any(a.startswith("block-scaled FP8 GEMMs untuned") for a in _plan("vllm").assumptions)
    monkeypatch.setattr(sr, "untuned_blockscale_kblock_s", lambda spec, engine: (0.0, 0.0, 0.0))
    tuned = _plan()
    assert not any(a.startswith("block-scaled FP8 GEMMs untuned") for a in tuned.assumptions)
    # 61 layers x 87.6 blocks x 2.2 us = 11.8 ms more a decode step, on ~12 ms tuned
    assert slow.tpot.value - tuned.tpot.value == pytest.approx(11.8e-3, rel=0.15)
    assert slow.tpot.low < slow.tpot.value < slow.tpot.high
    assert slow.group_tokens_per_s_per_gpu["untuned block-scaled GEMMs"][0] < slow.tokens_per_s_per_gpu.value
