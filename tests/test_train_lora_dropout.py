"""LoRA adapters' input dropout (NeMo dropout_position 'pre', MLPerf's 0.1) and the HBM read as GiB."""
import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner import memory
from recoque.planner.train import hardware_for, plan_arrays
from recoque.planner.train_core import LORA_DROPOUT_BYTES, core
from recoque.planner.validation import load_cases, shipped_profile


def _case(name="mlperf-lora-70b-8x-mi325x"):
    return [c for c in load_cases() if c.name == name][0]


def _run(c, wl, plan=None):
    prof = shipped_profile(c.system.device)
    return core(wl, hardware_for(c.system, prof), prof, c.dtype, plan_arrays([plan or c.plan]), stack=c.stack)


def test_the_mlperf_cases_state_the_reference_dropout():
    for c in load_cases() + load_cases("train_checks.toml"):
        if c.workload.lora_rank:
            assert c.workload.lora_dropout == pytest.approx(0.1), c.name


@pytest.mark.parametrize("targets", ["attention", "all"])
def test_dropout_adds_its_masks_and_copies_per_stored_layer(targets):
    c = _case()
    wl = replace(c.workload, lora_targets=targets)
    off, on = _run(c, replace(wl, lora_dropout=0.0)), _run(c, replace(wl, lora_dropout=0.1))
    m, h = wl.model, float(wl.model.hidden)
    sb = float(m.seq_len) * c.plan.micro_batch
    # TP 1, flash attention: 1-byte masks on the QKV and projection inputs, and a 2-byte dropped copy of
    # the attention output (flash attention keeps the original); with every layer adapted, the FFN-in
    # and FFN-out masks as well
    per_layer = sb * h + 3.0 * sb * h + (0.0 if targets == "attention" else sb * h + sb * m.active_ffn_width())
    got = memory.lora_dropout_bytes(m, c.plan.micro_batch, 1, False, targets, True)
    assert float(got) == pytest.approx(per_layer)
    assert on["memory_bytes"][0] - off["memory_bytes"][0] == pytest.approx(m.layers * per_layer, rel=1e-9)
    # and its kernels take time: five bytes per element each way
    assert on["iteration_time_s"][0] > off["iteration_time_s"][0]
    assert LORA_DROPOUT_BYTES == 5.0


def test_full_recompute_stores_no_masks():
    c = _case()
    plan = replace(c.plan, recompute="full", recompute_layers=c.workload.model.layers)
    off = _run(c, replace(c.workload, lora_dropout=0.0), plan)
    on = _run(c, replace(c.workload, lora_dropout=0.1), plan)
    # at most the one layer being recomputed holds them (less where the loss's logits are the peak)
    one_layer = float(memory.lora_dropout_bytes(c.workload.model, 1, 1, False, "attention", True))
    assert 0.0 <= on["memory_bytes"][0] - off["memory_bytes"][0] <= one_layer


@pytest.mark.parametrize("p, words", [(1.0, "probability in [0, 1)"), (-0.1, "probability in [0, 1)"),
                                      (float("nan"), "probability in [0, 1)"), (True, "probability in [0, 1)")])
def test_bad_dropout_refused(p, words):
    with pytest.raises(BadInput, match=words.replace("[", r"\[").replace(")", r"\)")):
        replace(_case().workload, lora_dropout=p)


def test_dropout_needs_lora():
    with pytest.raises(BadInput, match="needs LoRA"):
        replace(_case().workload, lora_rank=0, lora_dropout=0.1)


def test_hbm_read_as_gib():
    c = _case("mlperf-lora-70b-8x-mi300x")
    prof = shipped_profile(c.system.device)
    from recoque.planner.train import USABLE_MEMORY_FRACTION
    assert hardware_for(c.system, prof).capacity_bytes == pytest.approx(192 * 2**30 * USABLE_MEMORY_FRACTION)


BASE = ["plan", "train", "-w", "llama2-70b", "-s", "node-8x-mi300x", "--gpus", "8", "--seq-len", "8192",
        "--global-batch", "8", "--dtype", "fp8", "--top", "1", "--json", "--tp", "1", "--lora-rank", "16",
        "--lora-targets", "attention"]


def test_cli_dropout_round_trips_and_costs_memory():
    runs = {p: CliRunner().invoke(app, BASE + ["--lora-dropout", p]) for p in ("0", "0.1")}
    for r in runs.values():
        assert r.exit_code == 0, r.output
    off, on = (json.loads(runs[p].output) for p in ("0", "0.1"))
    assert off["lora_dropout"] == 0.0 and on["lora_dropout"] == pytest.approx(0.1)
    assert on["best"][0]["memory_per_gpu"]["value"] >= off["best"][0]["memory_per_gpu"]["value"]


@pytest.mark.parametrize("extra", [["--lora-dropout", "1.5"], ["--lora-dropout", "-0.1"], ["--lora-dropout", "nan"]])
def test_cli_bad_dropout_exit_2(extra):
    r = CliRunner().invoke(app, BASE + extra)
    assert r.exit_code == 2 and "--lora-dropout" in r.output


def test_cli_dropout_without_rank_exit_2():
    args = [a for a in BASE if a not in ("--lora-rank", "16", "--lora-targets", "attention")]
    r = CliRunner().invoke(app, args + ["--lora-dropout", "0.1"])
    assert r.exit_code == 2 and "--lora-rank" in r.output
