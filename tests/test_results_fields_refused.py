"""Bad results files and flags found by a bad-input sweep: each is one clear line and a non-zero exit,
never a traceback, a silent wrong answer or an ACCEPTED verdict on figures no device can reach."""
import copy
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.cli import app

FIX = Path(__file__).parent / "fixtures"
BASE = json.loads((FIX / "planner_results_v2.json").read_text())  # one H100: GEMM, attention, STREAM


def _write(tmp_path, doc, name="r.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


def _mutated(fn):
    doc = copy.deepcopy(BASE)
    fn(doc)
    return doc


def _run(args):
    r = CliRunner().invoke(app, args)
    assert "Traceback" not in r.output, r.output
    return r


BAD_FILES = {
    "arch is a number": (lambda d: d["device"].update(arch=90), "device.arch must be text"),
    "gfx_arch is a table": (lambda d: d["device"].update(gfx_arch={"a": 1}), "device.gfx_arch must be text"),
    "acceptance is text": (lambda d: d.update(acceptance="x"), "`acceptance` must be a table"),
    "acceptance without a verdict": (lambda d: d.update(acceptance={"checks": []}), "acceptance.passed"),
    "power_w is text": (lambda d: d["results"][0].update(telemetry={"power_w": "abc"}), "telemetry.power_w"),
    "power_w holds text": (lambda d: d["results"][0].update(telemetry={"power_w": {"mean": "x"}}), "telemetry.power_w"),
    "energy is a list": (lambda d: d["results"][0].update(telemetry={"energy_j": [1, 2]}), "telemetry.energy_j"),
    "GEMM without m": (lambda d: d["results"][0]["params"].pop("m"), "a gemm record needs params m"),
    # before: loaded, and shown by `bench compare` as a case only in this file
    "markup as a params key": (lambda d: d["results"][0]["params"].update({"[bold]k": 1}),
                               "params key '[bold]k' is no parameter name"),
    "STREAM without its size": (lambda d: d["results"][6]["params"].pop("n_elements"), "needs params n_elements"),
    "sample of 1e-300 s": (lambda d: d["results"][0].update(times_s=[1e-300] * 3), "between 1e-09 s and 86400 s"),
    "sample of 1e300 s": (lambda d: d["results"][0].update(times_s=[1e300] * 3), "between 1e-09 s and 86400 s"),
    "unknown unit": (lambda d: d["results"][0].update(unit="furlongs"), "r.json: results[0]: unknown unit"),
    # sweep 2: a record the harness never writes is refused, not shown, accepted or planned with
    "failed verification": (lambda d: d["results"][0].update(verified=False), "failed verification"),
    "verify.ok false": (lambda d: d["results"][0].setdefault("verify", {}).update(ok=False), "failed verification"),
    "bytes_moved 1e30": (lambda d: d["results"][6].update(bytes_moved=10**30), "but the kernel's count"),
    "flop_count x1e5": (lambda d: d["results"][0].update(flop_count=d["results"][0]["flop_count"] * 10**5),
                        "but the kernel's count"),
    "dtype fp128": (lambda d: d["results"][0].update(dtype="fp128"), "unknown dtype 'fp128'"),
    "dtype as markup": (lambda d: d["results"][0].update(dtype="[red]x[/red]"), "unknown dtype '[red]x[/red]'"),
    "benchmark warp": (lambda d: d["results"][0].update(benchmark="warp"), "unknown benchmark 'warp'"),
    "stream op teleport": (lambda d: d["results"][6].update(op="teleport"), "unknown stream op 'teleport'"),
    "elem_bytes 3 on fp32": (lambda d: d["results"][6]["params"].update(elem_bytes=3), "params.elem_bytes 3 is not 4"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_field_is_refused_where_the_file_enters(tmp_path, case):
    fn, words = BAD_FILES[case]
    path = _write(tmp_path, _mutated(fn))
    for args in (["report", path, "--json", "--no-plots"],
                 ["plan", "infer", "-w", "mistral-7b", "-s", "node-8x-h100", "--profile", path],
                 ["bench", "accept", path, "--no-write"]):
        r = _run(args)
        assert r.exit_code == 2, (args, r.output)
        assert words in r.output, (args, r.output)


def _faster(factor):
    def fn(doc):
        for rec in doc["results"]:
            rec["times_s"] = [t / factor for t in rec["times_s"]]
    return fn


def test_figures_above_the_datasheet_peak_fail_acceptance_and_are_no_profile(tmp_path):
    """5x faster than measured: every large GEMM is above the H100's 989 TFLOP/s bf16 peak (timer or
    labelling error). Acceptance names them and rejects; a plan refuses to use them as a profile."""
    path = _write(tmp_path, _mutated(_faster(5.0)))
    r = _run(["bench", "accept", path, "--no-write"])
    assert r.exit_code == 1 and "REJECTED" in r.output
    assert "at most 1.1 x datasheet peak" in r.output and "TFLOP/s > " in r.output
    for args in (["plan", "infer", "-w", "mistral-7b", "-s", "node-8x-h100", "--profile", path],
                 ["plan", "train", "-w", "mistral-7b", "-s", "node-8x-h100", "--profile", path],
                 ["plan", "hpl", "-s", "h100-reference", "--profile", path]):
        r = _run(args)
        assert r.exit_code == 2 and "x the h100_sxm datasheet bf16 peak" in r.output, (args, r.output)
    # the same file at its own speed is a profile and passes the ceiling
    ok = _write(tmp_path, copy.deepcopy(BASE), "ok.json")
    assert _run(["plan", "infer", "-w", "mistral-7b", "-s", "node-8x-h100", "--profile", ok]).exit_code == 0


def test_a_file_without_results_is_not_accepted_and_is_no_profile(tmp_path):
    empty = _mutated(lambda d: d.update(results=[]))
    path = _write(tmp_path, empty)
    before = Path(path).read_text()
    r = _run(["bench", "accept", path])
    assert r.exit_code == 2 and "nothing to judge" in r.output
    assert Path(path).read_text() == before  # no verdict stamped into the file
    r = _run(["plan", "infer", "-w", "mistral-7b", "-s", "node-8x-h100", "--profile", path])
    assert r.exit_code == 2 and "no verified gemm, stream, attention, collective, launch result" in r.output


def test_lora_keys_in_a_model_file_take_effect(tmp_path):
    model = ("[models.mine]\nlayers = 32\nhidden = 4096\nheads = 32\nkv_heads = 8\nffn_hidden = 14336\n"
             "gated_ffn = true\nvocab = 32000\nseq_len_tokens = 4096\n[models.mine.training]\n"
             "tokens_to_train = 1e12\nglobal_batch_seqs = 512\nlora_rank = 16\nlora_targets = \"attention\"\n")
    p = tmp_path / "m.toml"
    p.write_text(model)
    r = _run(["plan", "train", "-w", str(p), "-s", "node-8x-h100", "--json"])
    assert r.exit_code == 0, r.output
    assert '"lora_rank": 16' in r.output and '"lora_targets": "attention"' in r.output
    p.write_text(model.replace('"attention"', '"bogus"'))
    r = _run(["plan", "train", "-w", str(p), "-s", "node-8x-h100"])
    assert r.exit_code == 2 and "`lora_targets` must be one of" in r.output


@pytest.mark.parametrize("args, words", [
    (["plan", "infer", "-w", "mistral-7b", "-s", "node-8x-h100", "--tp", "2", "--gpus-per-replica", "4"], "disagree"),
    (["plan", "hpl", "-s", "/"], "is a folder"),
    (["plan", "train", "-w", "/", "-s", "node-8x-h100"], "is a folder"),
    (["bench", "gemm", "--dtype", ""], "--dtype has an empty value"),
    (["bench", "gemm", "--dtype", "bf16,,fp32"], "--dtype has an empty entry in its list"),
    (["plan", "infer", "-s", "node-8x-h100", "--max-num-tokens", "1"], "step budget 0.2 streams"),
    (["plan", "infer", "-w", "mistral-7b", "-s", "node-8x-h100", "--attention-dp"], "mistral-7b is dense"),
    (["plan", "infer", "-w", "mixtral-8x7b", "-s", "node-8x-h100", "--ep", "16"], "has 8 experts, which 16 does not"),
    (["plan", "train", "-w", "gpt3-175b", "-s", "selene", "--vpp", "2", "--pp", "1"], "--vpp 2 needs --pp 2 or more"),
    (["plan", "train", "-w", "gpt3-175b", "-s", "selene", "--global-batch", "3", "--dp", "2"],
     "--dp 2 does not divide the global batch of 3"),
    (["plan", "train", "-w", "gpt3-175b", "-s", "selene", "--tp", "5"], "--tp 5 does not divide the 96 attention heads"),
    (["plan", "train", "-w", "gpt3-175b", "-s", "selene", "--dp", "8", "--micro-batch", "7"],
     "--micro-batch 7 does not divide the 192 sequences"),
    (["plan", "train", "-w", "llama3.1-8b", "-s", "node-8x-h100", "--lora-rank", "16", "--lora-targets", "bogus"],
     "--lora-targets must be one of all, attention"),
    # sweep 2: empty values fell back to defaults (another model, no profile, the current folder)
    (["plan", "infer", "-s", "node-8x-h100", "-w", ""], "-w has an empty value"),
    (["plan", "hpl", "-s", "h100-reference", "--profile="], "--profile has an empty value"),
    (["plan", "train", "-s", "node-8x-h100", "-w", "mistral-7b", "--stack", " "], "--stack has an empty value"),
    (["bench", "stream", "--quick", "--out", ""], "--out has an empty value"),
    (["compare", "--systems", "h100-reference,,lumi-g", "--workload", "mistral-7b"], "an empty entry in its list"),
    (["plan", "hpl", "-s", "h100-reference", "--power-limit-w", "1"], "below 0.25 x the h100_sxm board power"),
    (["report", str(FIX / "planner_results_v2.json"), "--no-plots", "--plots", "pdir"], "contradict each other"),
])
def test_conflicting_or_empty_flags_are_one_line(args, words):
    r = _run(args)
    assert r.exit_code in (2, 3) and words in r.output, r.output


@pytest.mark.parametrize("gpus", ["1e300", "63.5"])
def test_a_system_file_gpu_count_is_a_whole_number_within_any_count(tmp_path, gpus):
    p = tmp_path / "s.toml"
    p.write_text(f'[systems.mine]\ndevice = "h100_sxm"\ngpus = {gpus}\ngpus_per_node = 8\n'
                 "intra_node_bandwidth_gb_s = 450\ninter_node_bandwidth_gb_s = 50\n")
    r = _run(["plan", "hpl", "-s", str(p)])
    assert r.exit_code == 2 and "a positive integer and at most 1,099,511,627,776" in r.output


@pytest.mark.parametrize("extra", [[], ["--append"]])
def test_bench_refuses_an_out_file_that_is_not_results_before_running(tmp_path, extra):
    """Before, the run went ahead and only then said the file could not be replaced."""
    out = tmp_path / "notes.json"
    out.write_text("my notes\n")
    r = _run(["bench", "stream", "--quick", "--out", str(out), *extra])
    assert r.exit_code == 2 and "nothing was run" in r.output and "--force" in r.output
    assert out.read_text() == "my notes\n" and list(tmp_path.iterdir()) == [out]  # no fallback file: nothing ran


def test_record_ops_cover_every_benchmark_the_suite_runs():
    from recoque.bench.suite import BENCHMARKS
    from recoque.inputs import _record_ops
    from recoque.kernels import transfer

    assert set(_record_ops()) == set(BENCHMARKS) and _record_ops()["transfer"] == transfer.OPS


def test_report_and_bench_compare_refuse_a_figure_above_its_own_peak(tmp_path):
    """Times divided by 10: the large GEMM records are far above their stated peak; accept says FAIL (above),
    and the commands that only show figures refuse the file instead of printing several times the peak."""
    path = _write(tmp_path, _mutated(_faster(10.0)))
    for args in (["report", path, "--no-plots", "--out", str(tmp_path / "r.md")],
                 ["bench", "compare", str(FIX / "planner_results_v2.json"), path]):
        r = _run(args)
        assert r.exit_code == 2 and "x the record's peak" in r.output, (args, r.output)
    assert not (tmp_path / "r.md").exists()


def test_accept_with_no_floor_or_ceiling_is_nothing_to_judge_and_a_file_counts_once(tmp_path):
    stream_only = _mutated(lambda d: d.update(results=[d["results"][6]], device={"name": "cpu", "kind": "cpu"}))
    path = _write(tmp_path, stream_only)
    r = _run(["bench", "accept", path, "--no-write"])
    assert r.exit_code == 2 and "nothing to judge: none of the 1 figures has a floor or ceiling" in r.output
    good = str(FIX / "planner_results_v2.json")
    r = _run(["bench", "accept", good, good, "--no-write"])
    assert r.exit_code == 2 and "is given more than once" in r.output


@pytest.mark.parametrize("lines, words", [
    ("node_power_kw = 50\nnode_power_kw_low = 6.5\nnode_power_kw_high = 10.2\n", "outside its own range 6.5..10.2"),
    ("pue = 1000\n", "at most 3"),
])
def test_system_values_outside_their_range_are_refused(tmp_path, lines, words):
    p = tmp_path / "s.toml"
    p.write_text('[systems.mine]\ndevice = "h100_sxm"\ngpus = 64\ngpus_per_node = 8\n'
                 "intra_node_bandwidth_gb_s = 450\ninter_node_bandwidth_gb_s = 50\n" + lines)
    r = _run(["plan", "hpl", "-s", str(p)])
    assert r.exit_code == 2 and words in r.output, r.output
