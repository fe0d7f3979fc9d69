"""Inputs a second sweep found accepted silently: each is now one line, exit 2, refused where it
enters (and a pinned switch comes back on in the plan, never as a plan with it off)."""
import copy
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recoque.bench.schema import document_from_json
from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner.search import enumerate_plans
from recoque.planner.serving import ServingRequest
from recoque.planner.stacks import load_stack
from recoque.planner.workload import load_model, load_training_workload

FIXTURES = Path(__file__).parent / "fixtures"
SEEDS = Path(__file__).parents[1] / "seeds"


def _refused(args: list[str], *words: str, code: int = 2) -> str:
    r = CliRunner().invoke(app, args)
    assert r.exit_code == code, (args, r.output)
    assert "Traceback" not in r.output
    for w in words:
        assert w in r.output, (args, r.output)
    return r.output


# --- plan infer: precisions and the context window -------------------------------------------------

@pytest.mark.parametrize("flags, words, code", [
    (["--activations", "fp4"], ("narrower than weights bf16",), 2),
    (["--activations", "fp8", "--weights", "bf16"], ("narrower than weights bf16",), 2),
    (["--weights", "fp8", "--dtype", "bf16"], ("--dtype bf16 and --weights fp8 disagree",), 2),
    # longer than the window: no plan serves it (exit 3, as any plan that cannot run)
    (["-w", "mistral-7b", "--prompt-tokens", "100000"], ("context window of 32,768",), 3),
    (["-w", "llama2-70b", "--prompt-tokens", "4000", "--output-tokens", "200"], ("context window of 4,096",), 3),
])
def test_plan_infer_refuses_a_precision_or_length_no_engine_runs(flags, words, code):
    _refused(["plan", "infer", "-s", "node-8x-h100", *flags], *words, code=code)


def test_weight_only_quantisation_and_a_separate_kv_cache_still_run():
    ServingRequest(weights="fp8", activations="bf16")  # W8A16
    ServingRequest(weights="fp4", activations="fp8")  # W4A8
    with pytest.raises(BadInput, match="narrower"):
        ServingRequest(weights="fp8", activations="fp4")
    r = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h100", "-w", "llama3.1-8b", "--dtype", "fp8",
                                 "--kv-cache", "bf16", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["serving_request"]["kv_cache"] == "bf16"


def test_every_preset_states_its_context_window_with_a_source():
    import tomllib

    models = tomllib.loads((SEEDS / "models.toml").read_text())["models"]
    for key, raw in models.items():
        assert raw["context_window_tokens"] >= 2048, key
        assert raw["sources"]["context_window"], key
        assert load_model(key).context_window_tokens == raw["context_window_tokens"]


# --- plan train: switches pinned on need what they run on ------------------------------------------

@pytest.mark.parametrize("flags, words", [
    (["--tp", "1", "--sp"], ("--sp needs tensor parallelism",)),
    (["--tp", "1", "--tp-overlap"], ("--tp-overlap needs tensor parallelism",)),
    (["--tp-overlap", "--no-sp"], ("--no-sp turns it off",)),
    (["--cp-a2a", "--cp", "1"], ("--cp is 1",)),
    (["--ep-overlap"], ("has no experts",)),
    (["--fp8-param-gather"], ("--dtype bf16",)),
    (["--nccl-max-ctas", "cp=1,cp=2"], ("'cp' given twice",)),
    (["--tokens", "1"], ("less than one iteration",)),
])
def test_plan_train_refuses_a_switch_without_its_parallelism(flags, words):
    _refused(["plan", "train", "-s", "node-8x-h100", "-w", "llama3.1-8b", "--gpus", "8", *flags], *words)


def _plans(pins, gpus=16, key="llama3.1-8b"):
    chunks, _ = enumerate_plans(load_training_workload(key), gpus, 8, stack=load_stack("megatron-core"), pins=pins)
    parts = list(chunks)
    assert parts, pins
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_a_pinned_switch_is_on_in_every_plan_the_search_returns():
    sp = _plans({"sp": True})
    assert sp["sequence_parallel"].all() and (sp["tp"] > 1).all()
    ov = _plans({"tp_overlap": True})
    assert ov["sequence_parallel"].all() and ov["tp_overlap"].all()
    a2a = _plans({"cp_a2a": True})
    assert (a2a["cp"] > 1).all() and a2a["cp_a2a"].all()
    free = _plans({})
    assert (free["tp"] == 1).any() and (free["cp"] == 1).any()  # unpinned, the plain plans stay in the space


# --- model files --------------------------------------------------------------------------------------

def _model_file(tmp_path, key, edit):
    text = (SEEDS / "models.toml").read_text()
    block = re.search(rf'\[models\.{re.escape(key)}\].*?(?=\n\[models\.(?!{re.escape(key)}\.))', text, re.S).group(0)
    p = tmp_path / "m.toml"
    p.write_text(edit(block))
    return str(p)


def test_a_model_file_with_experts_but_no_routing_count_is_refused(tmp_path):
    path = _model_file(tmp_path, "mixtral-8x7b", lambda b: re.sub(r"\nactive_experts = \d+", "", b))
    with pytest.raises(BadInput, match="without `active_experts`"):
        load_model(path)


def test_a_stated_size_far_from_the_architecture_is_refused(tmp_path):
    path = _model_file(tmp_path, "mixtral-8x7b", lambda b: b.replace("published_params_b = 46.7", "published_params_b = 146.7"))
    with pytest.raises(BadInput, match="gives 46.7 B parameters"):
        load_model(path)
    near = _model_file(tmp_path, "mixtral-8x7b", lambda b: b.replace("published_params_b = 46.7", "published_params_b = 47"))
    assert load_model(near).experts == 8


def test_a_zero_training_sequence_length_is_refused_not_defaulted(tmp_path):
    path = _model_file(tmp_path, "mistral-7b",
                       lambda b: re.sub(r"(\.training\][^\[]*?)seq_len_tokens = 8192", r"\1seq_len_tokens = 0", b))
    with pytest.raises(BadInput, match="`seq_len_tokens` must be a positive integer"):
        load_training_workload(path)


# --- plan stencil, plan's own options, system power ---------------------------------------------------

def test_a_stencil_grid_smaller_than_one_block_per_gpu_or_fractional_is_refused():
    _refused(["plan", "stencil", "-s", "alice-recoque", "--grid-points", "10"], "less than a 125-point block", code=3)
    _refused(["plan", "stencil", "-s", "alice-recoque", "--grid-points", "1000000.5"], "whole number")
    _refused(["plan", "stencil", "-s", "h100-reference", "--grid-points", "1e308"], "is above 1e+24")  # before: "inf GB"


def test_plan_options_before_the_subcommand_are_named():
    _refused(["plan", "-s", "alice-recoque", "hpl"], "--system is given before `hpl`", "recoque plan hpl --system")


def test_a_node_power_below_its_gpus_board_power_is_refused(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[systems.np]\ndevice = "mi300x"\ngpus = 64\ngpus_per_node = 8\nintra_node_bandwidth_gb_s = 448\n'
                 "inter_node_bandwidth_gb_s = 50\nnode_power_kw = 1\n")
    _refused(["plan", "hpl", "-s", str(p)], "below what its 8 GPUs draw at full load (6 kW)")


@pytest.mark.parametrize("key,value", [("intra_node_bandwidth_gb_s", "1e-30"), ("inter_node_bandwidth_gb_s", "0.05"),
                                       ("inter_node_bandwidth_gb_s", "200000"),
                                       ("inter_node_bandwidth_gb_s_high", "1e9")])
def test_a_link_bandwidth_outside_what_any_network_has_is_refused(tmp_path, key, value):
    lines = {"intra_node_bandwidth_gb_s": "448", "inter_node_bandwidth_gb_s": "50", key: value}
    p = tmp_path / "s.toml"
    p.write_text('[systems.bw]\ndevice = "mi300x"\ngpus = 64\ngpus_per_node = 8\n'
                 + "".join(f"{k} = {v}\n" for k, v in lines.items()))
    _refused(["plan", "hpl", "-s", str(p)], f"`{key}` must be a finite number >= 0.1 and at most 100,000")


def test_the_slowest_link_bandwidth_allowed_still_plans(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[systems.bw]\ndevice = "mi300x"\ngpus = 64\ngpus_per_node = 8\nintra_node_bandwidth_gb_s = 448\n'
                 "inter_node_bandwidth_gb_s = 0.1\n")
    result = CliRunner().invoke(app, ["plan", "hpl", "-s", str(p)])
    assert result.exit_code == 0, result.output


# --- results files --------------------------------------------------------------------------------------

def _doc(name="planner_results_v2.json"):
    return copy.deepcopy(json.loads((FIXTURES / name).read_text()))


def _bad(doc, match):
    with pytest.raises(BadInput) as exc:
        document_from_json(doc, "r.json")
    assert re.search(match, exc.value.one_line()) and "\n" not in exc.value.one_line(), exc.value.one_line()


def test_a_schema_2_times_ms_key_says_how_to_convert():
    doc = _doc()
    rec = doc["results"][0]
    rec["times_ms"] = [t * 1e3 for t in rec.pop("times_s")]
    _bad(doc, "divide the values by 1,000")


def test_a_schema_1_record_with_both_sample_keys_is_refused():
    doc = _doc("results_v1.json")
    doc["results"][0]["times_s"] = [1.0]
    _bad(doc, "both `times_ms`")


def test_a_record_without_its_work_count_names_the_file_and_key():
    doc = _doc()
    rec = next(r for r in doc["results"] if r["unit"] == "GB/s")
    rec.pop("bytes_moved")
    _bad(doc, r"r\.json: results\[\d+\]: a record in GB/s needs `bytes_moved`")


@pytest.mark.parametrize("edit, match", [
    (lambda d: d.update(created_utc="not a date"), "not an ISO 8601 time"),
    (lambda d: d["device"].update(kind="quantum"), "device.kind 'quantum'"),
    (lambda d: d.update(tool={"name": "other", "version": "1"}), "tool.name is 'other'"),
])
def test_provenance_only_the_harness_writes_is_checked(edit, match):
    doc = _doc()
    edit(doc)
    _bad(doc, match)


# --- sweep 3: outputs that cannot be written, bounds, repeats, inert flags, kept files --------------

def test_a_full_disk_on_stdout_is_one_line_and_exit_4():
    import subprocess
    import sys

    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "recoque", "list", "systems"], stdout=full, stderr=subprocess.PIPE,
                           text=True, timeout=120)
    assert r.returncode == 4 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [next(x for x in r.stderr.splitlines() if "cannot write the output" in x)]


@pytest.mark.parametrize("args, word", [
    (["plan", "infer", "-s", "node-8x-h100", "-w", "mistral-7b", "--engine-efficiency", "1e-100"], ">= 0.05"),
    (["plan", "infer", "-s", "node-8x-h100", "-w", "mistral-7b", "--request-rate", "1e-9"], ">= 0.0001"),
    (["plan", "infer", "-s", "node-8x-h100", "-w", "mistral-7b", "--ttft-ms", "1e308"], "at most 3,600,000"),
    (["plan", "train", "-s", "node-8x-h100", "-w", "mistral-7b", "--tokens", "1e308"], "at most 1,000,000,000,000,000"),
    (["plan", "stencil", "-s", "jupiter", "--sweeps", "0.5"], "--sweeps"),
    (["plan", "hpl", "-s", "jupiter", "--efficiency", "5e-324"], ">= 0.05"),
    (["plan", "train", "-s", "node-8x-h100", "-w", "mistral-7b", "--lora-rank", "8192"], "not below the hidden size"),
    (["compare", "--systems", "jupiter,jupiter"], "given twice"),
    (["check", "--claim", "exaflop", "--claim", "exaflop"], "given twice"),
    (["check", "--profile-anyway"], "--profile-anyway acts on --profile"),
    (["validate", "--threshold-mean", "0.5", "--threshold-max", "0.1"], "is above --threshold-max"),
    (["check", "--profile", str(FIXTURES / "compare_a.json")], "this profile is for mi300x"),
])
def test_sweep3_inputs_are_refused_in_one_line(args, word):
    _refused(args, word)


def test_bench_accept_rejects_a_file_that_measured_nothing(tmp_path):
    doc = _doc("compare_a.json")
    doc["results"] = []
    p = tmp_path / "empty.json"
    p.write_text(json.dumps(doc))
    r = CliRunner().invoke(app, ["bench", "accept", "--no-write", str(p)])
    assert r.exit_code == 1 and "anything measured" in r.output and "REJECTED" in r.output


def test_an_interrupted_or_foreign_run_does_not_replace_a_complete_results_file(tmp_path):
    import dataclasses

    from recoque.bench.schema import load_results, store_results
    from recoque.errors import WriteFailed

    path = tmp_path / "r.json"
    path.write_text((FIXTURES / "compare_a.json").read_text())
    old = load_results(str(path))
    partial = dataclasses.replace(old, results=old.results[:len(old.results)], complete=False)
    with pytest.raises(WriteFailed, match="interrupted"):
        store_results(str(path), partial)
    other = dataclasses.replace(old, environment={**old.environment, "fingerprint": "another-node"})
    with pytest.raises(WriteFailed, match="another machine"):
        store_results(str(path), other)
    assert load_results(str(path)).complete and path.read_text() == (FIXTURES / "compare_a.json").read_text()
    store_results(str(path), other, force=True)  # --force still replaces it


def test_an_out_symlink_is_written_through(tmp_path):
    from recoque.fileio import write_atomic

    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "t.md"
    target.write_text("old")
    link = tmp_path / "link.md"
    link.symlink_to(target)
    write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"


def test_report_refuses_the_catalog_listing_as_planner_output(tmp_path):
    listing = CliRunner().invoke(app, ["list", "systems", "--json"])
    p = tmp_path / "list.json"
    p.write_text(listing.output)
    _refused(["report", str(FIXTURES / "compare_a.json"), "--plan", str(p), "--out", str(tmp_path / "r.md"),
              "--no-plots"], "is the catalog")


def test_bench_compare_states_the_threshold_it_used_and_why_it_failed():
    r = CliRunner().invoke(app, ["bench", "compare", str(FIXTURES / "compare_a.json"), str(FIXTURES / "compare_b.json"),
                                 "--min-effect", "0", "--fail-on-slower"])
    assert r.exit_code == 1 and ">= 0%" in r.output and "slower beyond the noise, first:" in r.output


def test_launcher_environment_is_checked(monkeypatch):
    from recoque.bench import launcher

    env = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2", "MASTER_PORT": "70000"}
    with pytest.raises(BadInput, match="not a TCP port"):
        launcher.discover(env)
    with pytest.raises(BadInput, match="more than"):
        launcher.discover({**env, "MASTER_PORT": "29500", "WORLD_SIZE": str(10**12)})
    for bad in ("nan", "inf"):
        with pytest.raises(BadInput, match="finite number of seconds"):
            launcher.timeouts({"RECOQUE_JOIN_TIMEOUT_S": bad})
