"""`recoque bench accept`: the pass/fail table, the exit code, --json, and the verdicts in the file."""
import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from recoque.bench import accept as A
from recoque.bench.schema import load_results
from recoque.cli import app

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()


def test_passing_node_exits_zero():
    res = runner.invoke(app, ["bench", "accept", str(FIX / "accept_mi300x_gpu0.json"),
                              str(FIX / "accept_mi300x_gpu1.json"), "--no-write"])
    assert res.exit_code == 0, res.output
    assert "stream triad fp64" in res.output and "ACCEPTED" in res.output


def test_sibling_outlier_fails_the_node_and_is_named():
    files = [str(FIX / f"accept_mi300x_gpu{i}.json") for i in (0, 1, 2)]
    res = runner.invoke(app, ["bench", "accept", *files, "--no-write", "--json"])
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["passed"] is False
    assert data["per_gpu"]["node-a cuda:2 AMD Instinct MI300X"] == "fail"
    assert [c["figure"] for c in data["checks"] if c["verdict"] == "fail"] == ["gemm matmul bf16"]


def test_verdicts_go_into_the_given_file(tmp_path):
    f = tmp_path / "gpu3.json"
    shutil.copy(FIX / "accept_mi300x_gpu3_fail.json", f)
    res = runner.invoke(app, ["bench", "accept", str(f)])
    assert res.exit_code == 1 and "REJECTED" in res.output
    data = json.loads(f.read_text())
    assert data["acceptance"]["passed"] is False
    assert load_results(str(f)).results  # still a results document


def test_without_files_it_measures_then_judges(monkeypatch, tmp_path):
    doc = load_results(str(FIX / "accept_mi300x_gpu0.json"))
    measured = []
    monkeypatch.setattr(A, "measure_quick", lambda device: measured.append(device) or doc)
    out = tmp_path / "node.json"
    res = runner.invoke(app, ["bench", "accept", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(measured) == 1 and measured[0].kind == "cpu"
    written = json.loads(out.read_text())
    assert written["acceptance"]["passed"] is True and written["results"]


def test_a_run_missing_the_gpus_own_floors_exits_one_as_incomplete(tmp_path):
    from recoque.bench.schema import save_results

    d = load_results(str(FIX / "accept_mi300x_gpu0.json"))
    part = tmp_path / "bf16_only.json"
    save_results(part, type(d)(d.environment, d.device, tuple(r for r in d.results if r.benchmark == "gemm"
                                                               and r.dtype == "bf16")))
    res = runner.invoke(app, ["bench", "accept", str(part), "--no-write"])
    assert res.exit_code == 1 and "INCOMPLETE (not accepted)" in res.output, res.output
    assert "NOT MEASURED node-a cuda:0 AMD Instinct MI300X: stream triad fp64" in res.output
    assert "measure it: `recoque bench stream`" in res.output


def test_a_failed_write_keeps_a_rejected_node_at_exit_one(tmp_path, monkeypatch):
    """The verdicts are written after the table: a write failure (exit 4) had replaced REJECTED's
    exit 1, so a script could not tell a rejected node from an accepted one that failed to write."""
    from recoque.errors import WriteFailed

    def refuse(*a, **k):
        raise WriteFailed("disk full", "free space")
    monkeypatch.setattr(A, "write_into", refuse)
    bad = tmp_path / "bad.json"
    shutil.copy(FIX / "accept_mi300x_gpu3_fail.json", bad)
    res = runner.invoke(app, ["bench", "accept", str(bad)])
    assert res.exit_code == 1 and "REJECTED" in res.output and "disk full" in res.output, res.output
    good = tmp_path / "good.json"
    shutil.copy(FIX / "accept_mi300x_gpu0.json", good)
    assert runner.invoke(app, ["bench", "accept", str(good)]).exit_code == 4  # accepted, unwritten: the write's code


def test_measuring_here_never_replaces_an_existing_results_file(monkeypatch, tmp_path):
    """Review 115: `bench accept --out FILE` replaced another run's 33 attention results with its own 62,
    silently; it is refused before anything is measured, and the file is untouched."""
    measured = []
    monkeypatch.setattr(A, "measure_quick", lambda device: measured.append(device))
    out = tmp_path / "other.json"
    shutil.copy(FIX / "accept_mi300x_gpu0.json", out)
    before = out.read_bytes()
    res = runner.invoke(app, ["bench", "accept", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 2 and "exists" in res.output and "recoque bench accept" in res.output
    assert out.read_bytes() == before and not measured
