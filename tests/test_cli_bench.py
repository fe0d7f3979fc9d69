import json

from typer.testing import CliRunner

from recoque.bench.schema import load_results
from recoque.cli import app

runner = CliRunner()


def test_bench_gemm_quick_writes_verified_results(tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["bench", "gemm", "--quick", "--device", "cpu", "--dtype", "fp16", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc = load_results(str(out))
    assert doc.results and all(r.verified and r.dtype == "fp16" for r in doc.results)
    assert doc.environment["fingerprint"] and doc.device["kind"] == "cpu"


def test_json_output_is_the_document(tmp_path):
    res = runner.invoke(app, ["bench", "gemm", "--quick", "--device", "cpu", "--dtype", "fp16", "--json"])
    assert res.exit_code == 0
    doc = json.loads(res.stdout)
    assert doc["schema_version"] == 2 and doc["results"][0]["unit"] == "TFLOP/s"


def test_bad_inputs_exit_2_with_one_line():
    for args, words in ((["--dtype", "fp7"], "unknown dtype"), (["--device", "tpu"], "tpu")):
        res = runner.invoke(app, ["bench", "gemm", "--quick", *args])
        assert res.exit_code == 2
        assert words in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_append_refuses_another_machine(tmp_path):
    out = tmp_path / "r.json"
    out.write_text(json.dumps({"schema_version": 2, "environment": {"fingerprint": "elsewhere"}, "results": []}))
    res = runner.invoke(app, ["bench", "gemm", "--quick", "--device", "cpu", "--dtype", "fp16", "--out", str(out), "--append"])
    assert res.exit_code == 2 and "another machine" in res.stderr


def test_interrupt_writes_partial_results(tmp_path, monkeypatch):
    from recoque.bench import suite

    def fake_suite(names, device, quick, dtypes, seed=0, telemetry=True, dtypes_explicit=True, on_plan=None, on_done=None,
                   out=None):
        real = suite.run_cases(suite.gemm.sweep_cases(device, True, "fp16")[:1], device, suite.QUICK)
        real.interrupted = True
        return real, []

    monkeypatch.setattr(suite, "run_suite", fake_suite)
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["bench", "gemm", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 130
    doc = load_results(str(out))
    assert not doc.complete and len(doc.results) == 1


def test_replacing_another_machines_file_is_refused_before_measuring(tmp_path, monkeypatch):
    """Without --append or --force, --out naming another machine's results file is refused at the
    start ("nothing was run"), not after the whole run has been measured."""
    import shutil

    from recoque.bench import suite

    def must_not_run(*args, **kwargs):
        raise AssertionError("measured before refusing the file")

    monkeypatch.setattr(suite, "run_suite", must_not_run)
    out = tmp_path / "r.json"
    shutil.copy("tests/fixtures/compare_a.json", out)
    before = out.read_bytes()
    res = runner.invoke(app, ["bench", "stream", "--quick", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert "another machine" in res.stderr and "nothing was run" in res.stderr and "--force" in res.stderr
    assert out.read_bytes() == before


def test_a_signal_between_stages_keeps_the_sweeps_and_warnings(tmp_path, monkeypatch):
    """A signal outside the runner's loop (between two stages) kept only the records and skips fed
    case by case; the stages' sweeps and warnings were lost. The suite now fills the command's
    outcome as it goes."""
    from recoque.bench import suite
    from recoque.bench.noise import HINTS, NoiseWarning

    def stage_then_signal(names, device, quick, dtypes, seed=0, telemetry=True, dtypes_explicit=True, on_plan=None,
                          on_done=None, out=None):
        real = suite.run_cases(suite.gemm.sweep_cases(device, True, "fp16")[:1], device, suite.QUICK)
        for rec in real.records:
            on_done(None, rec, None)
        out.records += real.records
        out.sweeps.append({"benchmark": "gemm", "dtype": "fp16", "cases_measured": 1})
        code = next(iter(HINTS))
        out.warnings.append(NoiseWarning(code, "gemm fp16 1x1x1", 0.2, HINTS[code]))
        raise KeyboardInterrupt  # between stages: not the runner's own interrupted outcome

    monkeypatch.setattr(suite, "run_suite", stage_then_signal)
    path = tmp_path / "r.json"
    res = runner.invoke(app, ["bench", "gemm", "--device", "cpu", "--out", str(path)])
    assert res.exit_code == 130, res.output
    doc = load_results(str(path))
    assert not doc.complete and len(doc.results) == 1
    assert doc.sweeps and doc.sweeps[0]["dtype"] == "fp16"
    assert doc.warnings and doc.warnings[0]["case"] == "gemm fp16 1x1x1"
