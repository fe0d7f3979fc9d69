"""`plan train` pins every part of a published plan (issue 12): expert parallelism, fused attention,
DP overlap, ZeRO-3 resharding, partial and distributed full recompute, any interleave depth; a
single pinned plan the memory model overstates is answered with its doubt named; a pin the search
would prune or that cannot apply on one data-parallel rank never empties the space."""
import json

import pytest
from typer.testing import CliRunner

from recoque.cli import app

runner = CliRunner()
LLAMA8 = ["plan", "train", "-w", "llama3.1-8b", "-s", "node-8x-h100", "--tokens", "1e12", "--top", "1", "--json"]


def _best(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    return d, d["best"][0]["plan"]


def test_new_switch_pins_land_in_the_plan_and_in_json_pins():
    d, p = _best([x if x != "node-8x-h100" else "node-8x-h200" for x in LLAMA8]
                 + ["--gpus", "8", "--global-batch", "64", "--tp", "2", "--no-flash-attention", "--no-dp-overlap",
                           "--recompute", "full", "--recompute-layers", "4", "--distribute-checkpoints", "--no-sp"])
    assert (p["flash_attention"], p["dp_overlap"], p["recompute"], p["recompute_layers"], p["distribute_checkpoints"]) \
        == (False, False, "full", 4, True)
    assert d["pins"]["flash_attention"] is False and d["pins"]["recompute_layers"] == 4
    d, p = _best(LLAMA8 + ["--gpus", "8", "--global-batch", "64", "--stack", "fsdp", "--zero", "3",
                           "--no-reshard-after-forward"])
    assert (p["zero_stage"], p["reshard_after_forward"]) == (3, False)


def test_expert_parallelism_can_be_pinned():
    _, p = _best(["plan", "train", "-w", "mixtral-8x7b", "-s", "node-8x-h200", "--gpus", "8", "--tokens", "1e12",
                  "--global-batch", "64", "--ep", "4", "--top", "1", "--json"])
    assert p["ep"] == 4


def test_fused_attention_pinned_off_is_slower_and_on_needs_the_stack():
    args = LLAMA8 + ["--gpus", "8", "--global-batch", "64", "--tp", "1", "--pp", "1", "--micro-batch", "1",
                     "--recompute", "full", "--zero", "1"]
    t = {f: _best(args + [f])[0]["best"][0]["iteration_time"]["value"] for f in ("--flash-attention", "--no-flash-attention")}
    assert t["--no-flash-attention"] > t["--flash-attention"]
    r = runner.invoke(app, LLAMA8 + ["--gpus", "8", "--global-batch", "64", "--flash-attention", "--stack", "megatron-lm-2021"])
    assert r.exit_code == 2 and "--flash-attention" in r.output, r.output


@pytest.mark.parametrize("extra,flag", [
    (["--ep", "2"], "--ep"),
    (["--recompute", "selective", "--recompute-layers", "4"], "--recompute-layers"),
    (["--zero", "1", "--no-reshard-after-forward"], "--no-reshard-after-forward"),
])
def test_a_pin_that_cannot_apply_is_one_line_exit_2(extra, flag):
    r = runner.invoke(app, LLAMA8 + ["--gpus", "8", "--global-batch", "64"] + extra)
    assert r.exit_code == 2 and flag in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_an_expert_parallel_pin_must_divide_the_experts_and_the_stage_ranks():
    base = ["plan", "train", "-w", "mixtral-8x7b", "-s", "node-8x-h200", "--gpus", "8", "--tokens", "1e12",
            "--global-batch", "64"]
    assert runner.invoke(app, base + ["--ep", "3"]).exit_code == 2
    # etp 4 x ep 4 = 16 experts' GPUs on a stage of tp 4 x dp 2 = 8 ranks: cannot be laid out
    r = runner.invoke(app, base + ["--ep", "4", "--dp", "2", "--tp", "4", "--cp", "1", "--etp", "4"])
    assert r.exit_code == 2 and "--etp 4 x --ep 4" in r.output, r.output
    assert runner.invoke(app, base + ["--etp", "0"]).exit_code == 2
    # ep 4 over tp 4 x dp 2 with each expert whole on a GPU (etp 1) is a layout Megatron-Core runs:
    # refused here for memory only (every expert's optimizer state shards over the 2 expert replicas)
    r = runner.invoke(app, base + ["--ep", "4", "--dp", "2", "--tp", "4", "--etp", "1"])
    assert r.exit_code == 3 and "EP4/ETP1" in r.output, r.output


def test_a_pinned_interleave_outside_the_search_grid_and_moot_pins_on_one_dp_rank():
    # NeMo's Llama 2 13B on 16 GPUs: PP 4 x 10 virtual stages (the search grid stops at 8)
    _, p = _best(["plan", "train", "-w", "llama2-13b", "-s", "jean-zay-h100", "--gpus", "16", "--tokens", "1e12",
                  "--global-batch", "128", "--tp", "1", "--pp", "4", "--vpp", "10", "--dp", "4", "--micro-batch", "1",
                  "--top", "1", "--json"])
    assert (p["pp"], p["interleave"]) == (4, 10)
    # ZeRO 1 and overlap on one data-parallel rank: nothing to shard, the plan still comes back
    _, p = _best(["plan", "train", "-w", "llama2-70b", "-s", "node-8x-mi300x", "--gpus", "8", "--tokens", "1e12",
                  "--global-batch", "120", "--seq-len", "4096", "--tp", "8", "--pp", "1", "--dp", "1", "--micro-batch",
                  "5", "--recompute", "full", "--zero", "1", "--dp-overlap", "--top", "1", "--json"])
    assert (p["tp"], p["dp"], p["micro_batch"]) == (8, 1, 5)


def test_a_pinned_overlap_off_survives_the_pruned_search():
    _, p = _best(LLAMA8 + ["--gpus", "8", "--global-batch", "64", "--no-dp-overlap", "--zero", "0"])
    assert p["dp_overlap"] is False and p["zero_stage"] == 0


def test_one_pinned_plan_the_model_overstates_is_answered_with_the_doubt_named():
    # NVIDIA's MLPerf v5.0 Llama-2-70B LoRA on 8 B200 (TP 1, seq 8192, fp8): the model puts it at 1.26x
    # the usable memory, the run ran (seeds/train_checks.toml)
    args = ["plan", "train", "-w", "llama2-70b", "-s", "node-8x-b200", "--gpus", "8", "--tokens", "1e12",
            "--global-batch", "8", "--seq-len", "8192", "--dtype", "fp8", "--lora-rank", "16", "--lora-targets",
            "attention", "--tp", "1", "--pp", "1", "--dp", "8", "--micro-batch", "1", "--recompute", "none",
            "--zero", "1", "--json"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["best"][0]["fits"] is False and any("may not fit" in x for x in d["reasons"])
    # far beyond what the model has been seen to overstate: refused in one line, exit 3
    r = runner.invoke(app, LLAMA8 + ["--gpus", "8", "--global-batch", "16", "--seq-len", "8192", "--stack",
                                     "megatron-core", "--tp", "1", "--pp", "1", "--dp", "8", "--micro-batch", "2",
                                     "--recompute", "none", "--zero", "1"])
    assert r.exit_code == 3 and "does not fit" in r.output, r.output
