"""A sweep of bad inputs across every command and subcommand (issue 7): every numeric option with NaN,
infinity, a negative, zero, 1e300, a 31-digit integer and a word; every file argument missing, a
folder, empty, binary, of the wrong top-level type, with wrong types, unknown keys and missing keys;
every choice option with an unknown value; impossible plans. Each must give one line on stderr that
names the problem and the fix, the documented exit code (2 bad input, 3 impossible plan), no
traceback and nothing on stdout. Runs in-process (typer's CliRunner) so the whole sweep stays fast."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.cli import app

FIX = Path(__file__).parent / "fixtures"
GOOD = json.loads((FIX / "planner_results_v2.json").read_text())  # an H100 results file
runner = CliRunner()

SYSTEM = (FIX / "user_system.toml").read_text()  # a valid user system file

MODEL = (FIX / "user_model.toml").read_text()  # a valid user model file

# --- how a refusal must look ----------------------------------------------------------------------


def judge(args: list[str], code: int = 2) -> None:
    res = runner.invoke(app, args)
    err = res.stderr
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    where = f"{args}: exit {res.exit_code}; stderr={err[-800:]!r}; stdout={res.stdout[:300]!r}"
    assert "Traceback" not in err and "Traceback" not in res.stdout, where
    assert res.exception is None or isinstance(res.exception, SystemExit), (where, repr(res.exception))
    assert res.exit_code == code, where
    assert res.stdout == "", where
    assert len(lines) == 1 and lines[0].startswith("recoque: error: "), where
    assert lines[0].rstrip().endswith(")") and "(" in lines[0], f"no fix in parentheses: {where}"


def survives(args: list[str]) -> str:
    """An extreme but not meaningless input: a clean refusal, or an answer with no absurd number."""
    res = runner.invoke(app, args)
    where = f"{args}: exit {res.exit_code}; stderr={res.stderr[-800:]!r}"
    assert "Traceback" not in res.stderr and (res.exception is None or isinstance(res.exception, SystemExit)), \
        (where, repr(res.exception))
    if res.exit_code in (2, 3):
        judge(args, res.exit_code)
        return ""
    assert res.exit_code == 0, where
    assert not re.search(r"\d{25,}", res.stdout.replace(",", "")), f"{args}: a {25}+-digit number: {res.stdout[:600]}"
    return res.stdout


def _write(tmp: Path, name: str, data: str | bytes) -> str:
    p = tmp / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return str(p)


# --- numeric options, every command -----------------------------------------------------------------

NUMERIC = [  # (command prefix, option, zero allowed)
    (["--width"], None, False),
    (["validate"], "--threshold-mean", False), (["validate"], "--threshold-max", False),
    (["bench", "gemm"], "--seed", True), (["bench", "stream"], "--seed", True), (["bench", "all"], "--seed", True),
    (["bench", "attention"], "--seed", True), (["bench", "transfer"], "--seed", True),
    (["bench", "collective"], "--seed", True),
    (["bench", "compare", str(FIX / "compare_a.json"), str(FIX / "compare_b.json")], "--min-effect", True),
    (["plan", "-s", "alice-recoque", "-w", "hpl"], "--gpus", False),
    (["plan", "hpl", "-s", "alice-recoque"], "--gpus", False), (["plan", "hpl", "-s", "alice-recoque"], "--efficiency", False),
    (["plan", "stencil", "-s", "alice-recoque"], "--gpus", False),
    (["plan", "stencil", "-s", "alice-recoque"], "--grid-points", False),
    (["plan", "stencil", "-s", "alice-recoque"], "--sweeps", False),
    *((["plan", "infer", "-s", "node-8x-h100"], o, False) for o in (
        "--gpus", "--prompt-tokens", "--output-tokens", "--batch", "--concurrency", "--request-rate", "--ttft-ms",
        "--tpot-ms", "--percentile", "--tp", "--pp", "--ep", "--engine-efficiency", "--hbm-fraction",
        "--max-batch", "--gpus-per-replica", "--requests")),
    (["plan", "infer", "-s", "node-8x-h100"], "--length-cv2", True),
    *((["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100"], o, False) for o in (
        "--gpus", "--top", "--tp", "--pp", "--vpp", "--dp", "--cp", "--micro-batch", "--global-batch", "--seq-len")),
    (["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100"], "--zero", True),
    (["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100"], "--lora-rank", True),
]
BAD_NUMBERS = ["nan", "inf", "-inf", "-1", "1e400", "abc", "", "0x10", "1,5"]


def _numeric_cases():
    for prefix, opt, zero_ok in NUMERIC:
        values = BAD_NUMBERS + ([] if zero_ok else ["0"])
        for v in values:
            if opt is None:  # a root option: before the command
                yield pytest.param(["--width", v, "list", "systems"], id=f"width={v}")
            else:
                yield pytest.param([*prefix, opt, v], id=f"{' '.join(prefix[:2])}{opt}={v}")


@pytest.mark.parametrize("args", list(_numeric_cases()))
def test_bad_numbers(args):
    judge(args)


HUGE = [  # an integer far beyond anything real, and 1e300: refused or answered sanely, never a crash
    *((["plan", "infer", "-s", "node-8x-h100", o, v]) for o in ("--prompt-tokens", "--output-tokens", "--batch",
                                                                  "--concurrency", "--max-batch", "--tp", "--requests")
      for v in ("1" + "0" * 30,)),
    *((["plan", "infer", "-s", "node-8x-h100", o, "1e300"]) for o in ("--request-rate", "--ttft-ms", "--tpot-ms")),
    ["plan", "stencil", "-s", "alice-recoque", "--grid-points", "1e300"],
    ["plan", "stencil", "-s", "alice-recoque", "--sweeps", "1" + "0" * 30],
    ["plan", "hpl", "-s", "alice-recoque", "--gpus", "1" + "0" * 30],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--global-batch", "1" + "0" * 30],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--seq-len", "1" + "0" * 30],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--top", "1" + "0" * 30],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--lora-rank", "1" + "0" * 30],
    ["validate", "--threshold-mean", "1e300"],
    ["--width", "1" + "0" * 30, "list", "systems"],
    ["bench", "gemm", "--seed", "1" + "0" * 30],
]


@pytest.mark.parametrize("args", HUGE, ids=lambda a: " ".join(a)[:60])
def test_huge_numbers(args):
    survives(args)


def test_huge_grid_prints_no_300_digit_number():
    out = survives(["plan", "stencil", "-s", "alice-recoque", "--grid-points", "1e300"])
    assert not re.search(r"\d{20,}", out.replace(",", ""))


# --- choices ---------------------------------------------------------------------------------------

CHOICES = [
    ["bench", "gemm", "--dtype", "fp7"], ["bench", "all", "--device", "gpu:99"], ["bench", "gemm", "--device", "foo"],
    ["bench", "stream", "--device", "cuda:99"], ["devices", "--device", "gpu:99"], ["devices", "--device", "foo"],
    ["plan", "infer", "-s", "node-8x-h100", "--mode", "warp"], ["plan", "infer", "-s", "node-8x-h100", "--engine", "foo"],
    ["plan", "infer", "-s", "node-8x-h100", "--dtype", "fp7"], ["plan", "infer", "-s", "node-8x-h100", "--weights", "int3"],
    ["plan", "infer", "-s", "node-8x-h100", "--kv-cache", "int3"],
    ["plan", "infer", "-s", "node-8x-h100", "--activations", "int3"],
    ["plan", "infer", "-s", "node-8x-h100", "--model", "no-such-model"],
    ["plan", "infer", "-s", "node-8x-h100", "-w", "no-such-workload"],
    ["plan", "infer", "-s", "no-such-system"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--stack", "foo"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--recompute", "some"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--dtype", "fp7"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--grad-reduce-dtype", "fp7"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--lora-targets", "nothing"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--sp", "maybe"],
    ["plan", "train", "-w", "no-such-model", "-s", "node-8x-h100"],
    ["plan", "train", "-w", "mistral-7b", "-s", "no-such-system"],
    ["plan", "train", "-w", "hpl", "-s", "node-8x-h100"],
    ["plan", "hpl", "-s", "no-such-system"], ["plan", "hpl"], ["plan", "stencil", "-s", "alice-recoque", "-w", "nope"],
    ["plan", "stencil", "-s", "alice-recoque", "-w", "hpl"],
    ["plan", "-s", "alice-recoque"], ["plan", "-w", "hpl"], ["plan", "-s", "alice-recoque", "-w", "nope"],
    ["compare", "--systems", ","], ["compare", "--systems", "alice-recoque,nope"],
    ["compare", "--systems", "alice-recoque", "--workload", "nope"], ["compare"],
    ["check", "--claim", "no-such-claim"], ["list", "nothing"], ["list"], ["report"], ["bench", "compare"],
    ["bench", "compare", str(FIX / "compare_a.json")], ["bench", "nope"], ["plan", "nope"], ["nope"],
    ["plan", "hpl", "-s", "alice-recoque", "--bogus"], ["bench", "gemm", "--quick=3"],
    ["bench", "accept", "--device", "gpu:99", "acc.json"],
    ["bench", "accept", "--device", "foo", "acc.json"],
    ["report", str(FIX / "compare_a.json"), "--out", "x.docx"],
    ["report", str(FIX / "compare_a.json"), "--csv", "x.xlsx"],
]


@pytest.fixture(autouse=True)
def _accept_copy(tmp_path):
    """`bench accept` writes its verdicts into the files it judges: give it a copy, never the fixture."""
    (tmp_path / "acc.json").write_bytes((FIX / "accept_mi300x_gpu0.json").read_bytes())


@pytest.mark.parametrize("args", CHOICES, ids=lambda a: " ".join(a)[:70])
def test_unknown_choices_and_names(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    judge(args)


# --- impossible plans (exit 3) ---------------------------------------------------------------------

IMPOSSIBLE = [
    ["plan", "train", "-w", "megatron-1t", "-s", "node-8x-h100", "--gpus", "1"],
    ["plan", "infer", "-s", "node-8x-h100", "--model", "llama3-405b", "--gpus", "1"],
    ["plan", "infer", "-s", "node-8x-h100", "--model", "llama3-405b", "--gpus-per-replica", "1"],
    ["plan", "-s", "node-8x-h100", "-w", "mistral-large-2-pretrain", "--gpus", "1"],
]


@pytest.mark.parametrize("args", IMPOSSIBLE, ids=lambda a: " ".join(a)[:70])
def test_impossible_plans(args):
    res = runner.invoke(app, args)
    judge(args, 3 if res.exit_code == 3 else 2)


BAD_REQUESTS = [  # well-formed numbers that contradict the system or each other: exit 2
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--gpus", "9"],
    ["plan", "infer", "-s", "node-8x-h100", "--gpus", "9"],
    ["plan", "hpl", "-s", "node-8x-h100", "--gpus", "9"],
    ["plan", "stencil", "-s", "node-8x-h100", "--gpus", "9"],
    ["plan", "-s", "node-8x-h100", "-w", "hpl", "--gpus", "9"],
    ["plan", "infer", "-s", "node-8x-h100", "--gpus-per-replica", "16"],
    ["plan", "infer", "-s", "node-8x-h100", "--gpus", "4", "--gpus-per-replica", "8"],
    ["plan", "infer", "-s", "node-8x-h100", "--model", "mistral-7b", "--tp", "3"],
    ["plan", "infer", "-s", "node-8x-h100", "--tp", "16"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--tp", "3"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--tp", "16"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--gpus", "8", "--tp", "2", "--pp", "2", "--dp", "4"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--gpus", "8", "--tp", "8", "--pp", "2"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--gpus", "8", "--tp", "2", "--pp", "2", "--dp", "1",
     "--cp", "1"],  # without --cp, cp 2 would make up the 8 GPUs
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--cp", "3"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--dp", "16"],
    ["plan", "infer", "-s", "node-8x-h100", "--tp", "8", "--pp", "2", "--gpus", "8"],
    ["plan", "stencil", "-s", "alice-recoque", "--grid-points", "0.5"],
    ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--lora-targets", "attn"],
    ["plan", "infer", "-s", "node-8x-h100", "--batch", "4", "--concurrency", "8"],
    ["plan", "infer", "-s", "node-8x-h100", "--percentile", "100"],
]


@pytest.mark.parametrize("args", BAD_REQUESTS, ids=lambda a: " ".join(a)[:70])
def test_requests_that_contradict_the_system(args):
    res = runner.invoke(app, args)
    judge(args, 3 if res.exit_code == 3 else 2)


# --- files -------------------------------------------------------------------------------------------

def _bad_files(tmp: Path) -> dict[str, str]:
    d = tmp / "adir"
    d.mkdir(exist_ok=True)
    return {
        "missing": str(tmp / "nope.toml"),
        "folder": str(d),
        "empty": _write(tmp, "empty.f", ""),
        "binary": _write(tmp, "bin.f", bytes(range(256)) * 4),
        "utf16": _write(tmp, "u16.f", "[systems.x]\n".encode("utf-16")),
        "json-list": _write(tmp, "list.f", "[1, 2, 3]"),
        "json-string": _write(tmp, "str.f", '"hello"'),
        "json-number": _write(tmp, "num.f", "3"),
        "json-null": _write(tmp, "null.f", "null"),
        "toml-garbage": _write(tmp, "garbage.f", "this is = = not toml [[["),
    }


FILE_SLOTS = {  # a command with FILE where a file goes
    "plan hpl -s": ["plan", "hpl", "-s", "FILE"],
    "plan stencil -s": ["plan", "stencil", "-s", "FILE"],
    "plan infer -s": ["plan", "infer", "-s", "FILE"],
    "plan infer --model": ["plan", "infer", "-s", "node-8x-h100", "--model", "FILE"],
    "plan train -s": ["plan", "train", "-w", "mistral-7b", "-s", "FILE"],
    "plan train -w": ["plan", "train", "-w", "FILE", "-s", "node-8x-h100"],
    "plan -s": ["plan", "-s", "FILE", "-w", "hpl"],
    "plan -w": ["plan", "-s", "node-8x-h100", "-w", "FILE"],
    "compare --systems": ["compare", "--systems", "FILE"],
    "compare --profile": ["compare", "--systems", "jean-zay-h100", "--profile", "FILE"],
    "check --profile": ["check", "--profile", "FILE"],
    "plan hpl --profile": ["plan", "hpl", "-s", "jean-zay-h100", "--profile", "FILE"],
    "plan stencil --profile": ["plan", "stencil", "-s", "jean-zay-h100", "--profile", "FILE"],
    "plan infer --profile": ["plan", "infer", "-s", "jean-zay-h100", "--profile", "FILE"],
    "plan train --profile": ["plan", "train", "-w", "mistral-7b", "-s", "jean-zay-h100", "--gpus", "8", "--profile", "FILE"],
    "plan --profile": ["plan", "-s", "jean-zay-h100", "-w", "hpl", "--profile", "FILE"],
    "report": ["report", "FILE", "--json"],
    "report --plan": ["report", str(FIX / "compare_a.json"), "--plan", "FILE", "--json"],
    "bench compare a": ["bench", "compare", "FILE", str(FIX / "compare_b.json")],
    "bench compare b": ["bench", "compare", str(FIX / "compare_a.json"), "FILE"],
    "bench accept": ["bench", "accept", "FILE", "--no-write"],
}
BAD_KINDS = ["missing", "folder", "empty", "binary", "utf16", "json-list", "json-string", "json-number", "json-null",
             "toml-garbage"]


@pytest.mark.parametrize("kind", BAD_KINDS)
@pytest.mark.parametrize("slot", list(FILE_SLOTS))
def test_bad_files_in_every_slot(slot, kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _bad_files(tmp_path)[kind]
    judge([path if a == "FILE" else a for a in FILE_SLOTS[slot]])


# --- user TOML: wrong types, unknown and missing keys, NaN, markup ----------------------------------

def _edit(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new)


SYSTEM_EDITS = {
    "gpus string": ("gpus = 64", 'gpus = "64"'), "gpus nan": ("gpus = 64", "gpus = nan"),
    "gpus inf": ("gpus = 64", "gpus = inf"), "gpus zero": ("gpus = 64", "gpus = 0"), "gpus neg": ("gpus = 64", "gpus = -8"),
    "gpus bool": ("gpus = 64", "gpus = true"), "gpus list": ("gpus = 64", "gpus = [64]"),
    "gpus table": ("gpus = 64", "gpus = {n = 64}"), "per node frac": ("gpus_per_node = 8", "gpus_per_node = 2.5"),
    "per node > gpus": ("gpus_per_node = 8", "gpus_per_node = 128"), "pue < 1": ("pue = 1.2", "pue = 0.5"),
    "power neg": ("node_power_kw = 10.2", "node_power_kw = -1"), "power nan": ("node_power_kw = 10.2", "node_power_kw = nan"),
    "bw string": ("inter_node_bandwidth_gb_s = 50", 'inter_node_bandwidth_gb_s = "fast"'),
    "device unknown": ('device = "h100_sxm"', 'device = "h900"'), "device number": ('device = "h100_sxm"', "device = 7"),
    "typo key": ("gpus_per_node = 8", "gpu_per_node = 8"), "missing device": ('device = "h100_sxm"\n', ""),
    "missing gpus": ("gpus = 64\n", ""), "name number": ('name = "my cluster"', "name = 5"),
    "low above high": ("gpus = 64", "gpus_low = 64\ngpus_high = 32"),
    "two tables": ("pue = 1.2\n", "pue = 1.2\n[systems.other]\ndevice = \"h100_sxm\"\ngpus = 8\ngpus_per_node = 8\n"),
    "top level stray": ("[systems.mine]", "stray = 1\n[systems.mine]"),
    "wrong top": ("[systems.mine]", "[system.mine]"),
}


@pytest.mark.parametrize("edit", list(SYSTEM_EDITS))
def test_bad_system_files(edit, tmp_path):
    path = _write(tmp_path, "s.toml", _edit(SYSTEM, *SYSTEM_EDITS[edit]))
    for args in (["plan", "hpl", "-s", path], ["plan", "infer", "-s", path], ["compare", "--systems", path]):
        judge(args)


MODEL_EDITS = {
    "kv_head typo": ("kv_heads = 8", "kv_head = 8"), "layers frac": ("layers = 32", "layers = 32.5"),
    "layers zero": ("layers = 32", "layers = 0"), "layers neg": ("layers = 32", "layers = -32"),
    "layers string": ("layers = 32", 'layers = "32"'), "hidden nan": ("hidden = 4096", "hidden = nan"),
    "hidden inf": ("hidden = 4096", "hidden = inf"), "missing hidden": ("hidden = 4096\n", ""),
    "gated string": ("gated_ffn = true", 'gated_ffn = "yes"'), "vocab huge float": ("vocab = 32000", "vocab = 1e400"),
    "tokens nan": ("tokens_to_train = 1e12", "tokens_to_train = nan"),
    "tokens neg": ("tokens_to_train = 1e12", "tokens_to_train = -1e12"),
    "batch frac": ("global_batch_seqs = 512", "global_batch_seqs = 0.5"),
    "training typo": ("global_batch_seqs = 512", "global_batch_seq = 512"),
    "training not table": ("[models.mine.training]\ntokens_to_train = 1e12\nglobal_batch_seqs = 512\n", "training = 5\n"),
}


@pytest.mark.parametrize("edit", list(MODEL_EDITS))
def test_bad_model_files(edit, tmp_path):
    path = _write(tmp_path, "m.toml", _edit(MODEL, *MODEL_EDITS[edit]))
    judge(["plan", "train", "-w", path, "-s", "node-8x-h100"])


@pytest.mark.parametrize("name", ["[red]evil", "[link=http://x]evil[/link]", "unbalanced [", "[/]", "[bold"])
def test_markup_in_user_names_prints_as_text(name, tmp_path):
    path = _write(tmp_path, "s.toml", SYSTEM.replace('name = "my cluster"', f'name = {json.dumps(name)}'))
    for args in (["plan", "hpl", "-s", path], ["compare", "--systems", f"{path},jean-zay-h100"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Traceback" not in res.stderr, (args, res.stderr, repr(res.exception))
        assert "\x1b]8;" not in res.stdout  # no hyperlink escape


@pytest.mark.parametrize("name", ["[red]evil", "[link=http://x]evil[/link]", "unbalanced ["])
def test_markup_in_user_model_names_prints_as_text(name, tmp_path):
    path = _write(tmp_path, "m.toml", MODEL.replace("[models.mine]\n", f"[models.mine]\nname = {json.dumps(name)}\n"))
    for args in (["plan", "train", "-w", path, "-s", "node-8x-h100", "--gpus", "8"],
                 ["plan", "infer", "-s", "node-8x-h100", "--model", path]):
        res = runner.invoke(app, args)
        assert res.exit_code == 0 and "Traceback" not in res.stderr, (args, res.stderr, repr(res.exception))
        assert "\x1b]8;" not in res.stdout


# --- results JSON ----------------------------------------------------------------------------------

def _results(tmp: Path, mutate) -> str:
    doc = copy.deepcopy(GOOD)
    mutate(doc)
    return _write(tmp, "r.json", json.dumps(doc))


def _collectives_only(doc):
    doc["results"] = [{**doc["results"][0], "benchmark": "collective", "op": "all_reduce", "unit": "GB/s",
                       "params": {"world_size": 8, "bytes": 1 << 20}, "flop_count": None, "bytes_moved": 1 << 20,
                       "peak": None, "achieved": None, "fraction_of_peak": None}]


RESULT_EDITS = {
    "newer schema": lambda d: d.update(schema_version=99),
    "schema string": lambda d: d.update(schema_version="2"),
    "no schema": lambda d: d.pop("schema_version"),
    "results not list": lambda d: d.update(results={}),
    "record not table": lambda d: d.update(results=[5]),
    "times string": lambda d: d["results"][0].update(times_s="fast"),
    "device not table": lambda d: d.update(device="h100"),
    "unknown top key": lambda d: d.update(resluts=[]),
}


@pytest.mark.parametrize("edit", list(RESULT_EDITS))
@pytest.mark.parametrize("slot", ["plan hpl --profile", "check --profile", "compare --profile", "report",
                                  "bench compare a", "plan train --profile", "bench accept"])
def test_bad_results_files_everywhere(slot, edit, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = _results(tmp_path, RESULT_EDITS[edit])
    judge([path if a == "FILE" else a for a in FILE_SLOTS[slot]])


@pytest.mark.parametrize("mutate", [lambda d: d.update(results=[]), _collectives_only],
                         ids=["zero records", "collectives only"])
@pytest.mark.parametrize("slot", ["plan hpl --profile", "plan stencil --profile", "plan infer --profile",
                                  "plan train --profile", "check --profile", "bench accept"])
def test_results_with_nothing_usable(slot, mutate, tmp_path, monkeypatch):
    """A profile with no rate the command can use: refused (2) or answered from the datasheet with a
    note; never a crash."""
    monkeypatch.chdir(tmp_path)
    args = [_results(tmp_path, mutate) if a == "FILE" else a for a in FILE_SLOTS[slot]]
    res = runner.invoke(app, args)
    if res.exit_code != 0:
        judge(args, res.exit_code if res.exit_code in (2, 3) else 2)
    else:
        assert "Traceback" not in res.stderr and res.exception is None


def _cpu(doc):
    doc["device"] = {"name": "AMD EPYC 9654", "kind": "cpu", "arch": "zen4"}


@pytest.mark.parametrize("slot", ["plan hpl --profile", "plan stencil --profile", "plan infer --profile",
                                  "plan train --profile", "plan --profile", "compare --profile", "check --profile"])
def test_cpu_profile_for_a_gpu_system(slot, tmp_path):
    judge([_results(tmp_path, _cpu) if a == "FILE" else a for a in FILE_SLOTS[slot]])


@pytest.mark.parametrize("cmd", [["check"], ["compare", "--systems", "alice-recoque,frontier"]])
def test_check_and_compare_take_profile_anyway_and_mark_every_output(cmd, tmp_path):
    path = _results(tmp_path, _cpu)
    for extra in ([], ["--json"]):
        res = runner.invoke(app, [*cmd, "--profile", path, "--profile-anyway", *extra])
        assert res.exit_code == 0, (res.stderr, repr(res.exception))
        assert "PROFILE FROM ANOTHER DEVICE" in res.stdout


def test_mi430x_train_with_a_foreign_profile_anyway(tmp_path):
    """MI430X has no bf16 datasheet peak: a clean one-line answer or error, never an unexplained one."""
    args = ["plan", "train", "-w", "mistral-7b", "-s", "alice-recoque", "--gpus", "64",
            "--profile", _results(tmp_path, lambda d: None), "--profile-anyway"]
    res = runner.invoke(app, args)
    if res.exit_code != 0:
        judge(args, res.exit_code)
        assert "bf16" in res.stderr and "--dtype" in res.stderr
    else:
        assert "PROFILE FROM ANOTHER DEVICE" in res.stdout + res.stderr


# --- plan JSON for report --plan ----------------------------------------------------------------

@pytest.mark.parametrize("text", ['{"system": 5}', '{"sections": "x"}', '{"assumptions": [1, 2]}', "{}",
                                  '{"system": "a", "workload": "b", "sections": {"x": 5}}', '{"claims": 5}',
                                  '{"plans": "x"}', '[{"system": "a"}]'])
def test_malformed_plan_json_for_report(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    judge(["report", str(FIX / "compare_a.json"), "--plan", _write(tmp_path, "p.json", text), "--json"])


# --- outputs -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["report", str(FIX / "compare_a.json"), "--out", "OUTDIR"],
    ["report", str(FIX / "compare_a.json"), "--out", "/proc/recoque.md", "--no-plots"],
    ["report", str(FIX / "compare_a.json"), "--csv", "OUTDIR"],
    ["report", str(FIX / "compare_a.json"), "--out", "report.pdf"],
    ["report", str(FIX / "compare_a.json"), "--out", "report"],
    ["report", str(FIX / "compare_a.json"), "--out", "nodir/report.md", "--no-plots"],
    ["bench", "accept", "acc.json", "--out", "OUTDIR"],
    ["bench", "accept", "acc.json", "--out", "/proc/x.json"],
])
def test_bad_outputs(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outdir").mkdir()
    args = [str(tmp_path / "outdir") if a == "OUTDIR" else a for a in args]
    res = runner.invoke(app, args)
    assert res.exit_code in (2, 4), (args, res.exit_code, res.stderr, repr(res.exception))
    assert "Traceback" not in res.stderr and (res.exception is None or isinstance(res.exception, SystemExit))
    assert [ln for ln in res.stderr.splitlines() if ln.startswith("recoque: error: ")], res.stderr


# --- a system file for HPL alone -------------------------------------------------------------------

HPL_ONLY = """[systems.hplonly]
device = "mi300a"
gpus = 64
gpus_per_node = 4
node_power_kw = 3.2
"""


def test_system_file_without_network_fields_works_for_hpl(tmp_path):
    path = _write(tmp_path, "s.toml", HPL_ONLY)
    res = runner.invoke(app, ["plan", "hpl", "-s", path, "--json"])
    assert res.exit_code == 0, (res.stderr, repr(res.exception))


def test_system_file_without_network_fields_says_what_to_add_for_training(tmp_path):
    path = _write(tmp_path, "s.toml", HPL_ONLY)
    args = ["plan", "train", "-w", "mistral-7b", "-s", path, "--gpus", "8"]
    res = runner.invoke(app, args)
    if res.exit_code != 0:
        judge(args, res.exit_code)
        assert "bandwidth" in res.stderr
