"""MLA decode on aiter (seeds/serving.toml [mla_decode]) and the ATOM engine preset ([engines.atom]).

aiter's MLA decode kernel serves 16 query heads per walk of the latent cache (128 only with an FP8
q and cache): DeepSeek's 128 heads at TP 4 (32 a GPU) walk the cache twice a step, at TP 8 once.
NVIDIA kernels take all heads in one walk. ATOM runs prompts eagerly in batches of their own."""
import dataclasses

import pytest

from recoque.catalog import get_device_spec
from recoque.planner import serving as sv
from recoque.planner.serving_rates import load_engine, mla_decode_heads, rate_set
from recoque.planner.serving_step import Layout, Precision, mla_kv_walks, step_time
from recoque.planner.system import load_system
from recoque.planner.workload import load_model

DS = load_model("deepseek-r1")
LLAMA = load_model("llama3.1-70b")
FP8_KV, BF16_KV = Precision(weight_bytes=1.0, kv_bytes=1.0, quantized_activations=True), Precision(1.0, 2.0, True)


def _rates(device: str, system: str, tp: int = 8, engine: str = "sglang"):
    return rate_set(get_device_spec(device), load_system(system), "fp8", tp, load_engine(engine)).rates["value"]


AMD, NV = _rates("mi355x", "node-8x-mi355x"), _rates("h200", "node-8x-h200")


def test_aiter_devices_serve_16_heads_a_walk_and_nvidia_all():
    assert mla_decode_heads(get_device_spec("mi355x")) == (16, 128)
    assert mla_decode_heads(get_device_spec("mi300x")) == (16, 128)
    assert mla_decode_heads(get_device_spec("h200")) == (0, 0)
    assert (AMD.mla_heads_per_kv_pass, NV.mla_heads_per_kv_pass) == (16, 0)


@pytest.mark.parametrize("lay, prec, walks", [
    (Layout(8), FP8_KV, 1.0),                    # 16 heads a GPU: native
    (Layout(4), FP8_KV, 2.0),                    # 32: two batches of 16
    (Layout(2), FP8_KV, 4.0),
    (Layout(8, attn_dp=True), FP8_KV, 1.0),      # whole 128 heads with an FP8 cache: the wide native kernel
    (Layout(8, attn_dp=True), BF16_KV, 8.0),     # 128 heads, 16-bit cache: eight walks
])
def test_walks_follow_the_heads_on_a_gpu(lay, prec, walks):
    assert mla_kv_walks(DS, lay, prec, AMD) == walks
    assert mla_kv_walks(DS, lay, prec, NV) == 1.0


def test_only_mla_models_walk_more_than_once():
    assert mla_kv_walks(LLAMA, Layout(2), FP8_KV, AMD) == 1.0


def test_a_second_walk_doubles_the_cache_read_of_a_decode_step():
    """Long contexts, few streams: the step's attention is the cache read, so TP 4 on aiter takes
    twice what the same GPU takes with one walk (the kernel's 16-head limit lifted)."""
    one_walk = dataclasses.replace(AMD, mla_heads_per_kv_pass=0)
    two = step_time(DS, Layout(4), FP8_KV, 64.0, 0.0, 8000.0, 8000.0, AMD).attention_s
    one = step_time(DS, Layout(4), FP8_KV, 64.0, 0.0, 8000.0, 8000.0, one_walk).attention_s
    assert two == pytest.approx(2.0 * one, rel=0.02)
    tp8 = step_time(DS, Layout(8), FP8_KV, 64.0, 0.0, 8000.0, 8000.0, AMD).attention_s
    assert tp8 == pytest.approx(step_time(DS, Layout(8), FP8_KV, 64.0, 0.0, 8000.0, 8000.0, one_walk).attention_s)


def test_tp4_serving_on_mi355x_is_slower_per_token_than_without_the_walk_limit(monkeypatch):
    req = sv.ServingRequest(prompt_tokens=1024, output_tokens=8192, engine="atom", tp=4, concurrency=128,
                            weights="fp4", activations="fp4", kv_cache="fp8")
    system = load_system("node-8x-mi355x").with_gpus(4)
    walked = sv.estimate_serving(DS, "deepseek-r1", system, req).tpot.value
    monkeypatch.setattr(sv.sr, "mla_decode_heads", lambda spec: (0, 0))
    assert walked > sv.estimate_serving(DS, "deepseek-r1", system, req).tpot.value * 1.05


def test_atom_preset_states_what_its_source_does():
    atom = load_engine("atom")
    assert atom.prefill_graphs is False and atom.budget_counts_decode is False
    assert (atom.max_num_tokens, atom.max_batch) == (16384, 512)
    assert "ATOM" in atom.note() and "run eagerly" in atom.note()


def test_plan_infer_takes_the_atom_engine():
    import json

    from typer.testing import CliRunner

    from recoque.cli import app

    res = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-mi355x", "-m", "deepseek-r1", "--engine", "atom",
                                   "--tp", "8", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["serving_request"]["engine"] == "atom" and any("ATOM" in a for a in out["assumptions"])
