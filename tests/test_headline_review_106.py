"""Sweep note, table and JSON name the same best shape; a case is its backend and parameters; an
acceptance shape is never a sweep's headline; the coarse count is the sweep's own; an unsteady
row says so in the table. Fake records and a fake runner: the checks are about the choice."""
from __future__ import annotations

from recoque.bench import headline, suite, summary
from recoque.bench.devices import detect
from recoque.bench.runner import RunOutcome
from recoque.bench.schema import Record, ResultsDocument

RATE = {512: 0.80, 1024: 0.70, 2048: 0.72, 4096: 0.75}  # TFLOP/s at the median


def rec(m, rate_tflops, tags, backend="torch", noisy=False, dtype="fp32"):
    f = 2 * m**3
    t = f / (rate_tflops * 1e12)
    times = (t * 0.5, t * 0.8, t, t * 1.3, t * 2.0) if noisy else (t,) * 5
    return Record("gemm", "matmul", dtype, {"m": m, "n": m, "k": m}, times, "TFLOP/s", flop_count=f,
                  backend=backend, tags=tuple(tags))


def _fake_runner(cases, device, policy, seed=0, telemetry=True, on_done=None):
    """512^3 fastest but noisy in the short sweep, steady in its confirmation rounds."""
    out = RunOutcome()
    for c in cases:
        m = c.params["m"]
        f = 2 * m * c.params["n"] * c.params["k"]
        t = f / (RATE.get(m, 0.3) * 1e12)
        noisy = m == 512 and headline.CONFIRM_TAG not in c.tags
        times = (t * 0.5, t * 0.8, t, t * 1.3, t * 2.0) if noisy else (t,) * 5
        out.records.append(Record("gemm", c.op, c.dtype, dict(c.params), times, "TFLOP/s", flop_count=f,
                                  backend=c.backend, tags=tuple(c.tags)))
    return out


def test_the_sweep_note_and_json_name_the_shape_the_table_shows(monkeypatch):
    monkeypatch.setattr(suite, "run_cases", _fake_runner)
    out, _ = suite.run_suite(("gemm",), detect("cpu"), True, ("bf16",), telemetry=False)
    doc = ResultsDocument(environment={}, device={"kind": "cpu"}, results=tuple(out.records), sweeps=tuple(out.sweeps))
    row = next(r for r in summary.best_rows(doc) if r["kind"] == "sweep" and r["dtype"] == "bf16")
    assert row["best_shape"] == "512x512x512" and row["headline"] == "confirmed"
    assert out.sweeps[0]["best_shape"] == [512, 512, 512]  # the pre-confirmation candidate was 4096^3
    assert "best shape 512x512x512" in summary.sweep_lines(doc)[0]
    coarse = [r for r in out.records if "sweep" in r.tags and headline.CONFIRM_TAG not in r.tags]
    assert out.sweeps[0]["coarse_cases"] == len({r.params["m"] for r in coarse})  # no acceptance shapes in it


def test_a_case_is_its_backend_and_parameters():
    torch_fast = rec(2048, 1.0, ("sweep",), "torch", noisy=True)
    numpy_steady = rec(2048, 0.8, ("sweep",), "numpy")
    picks = headline.candidates([torch_fast, numpy_steady, rec(1024, 0.7, ("sweep",))], "gemm")
    assert [(c.backend, c.params["m"]) for c in picks] == [("numpy", 2048), ("torch", 2048)]
    assert headline.identity(torch_fast) != headline.identity(numpy_steady)


def test_an_acceptance_shape_is_never_the_sweeps_headline_even_unconfirmed():
    recs = [rec(8192, 500, ("sweep",)), rec(4000, 600, ("acceptance",))]
    best, status = headline.figure(recs)
    assert best.params["m"] == 8192 and status == headline.STEADY
    assert headline.headline(recs).params["m"] == 8192
    alone = [rec(4000, 600, ("acceptance",))]  # a file of acceptance shapes only still has a row
    assert headline.figure(alone)[0].params["m"] == 4000


def test_an_unverified_record_is_no_candidate():
    bad = Record("gemm", "matmul", "fp32", {"m": 2048, "n": 2048, "k": 2048}, (1e-3,) * 5, "TFLOP/s",
                 flop_count=2 * 2048**3, verified=False, tags=("sweep",))
    assert headline.candidate([rec(1024, 0.7, ("sweep",)), bad], "fp32").verified


def test_the_table_marks_an_unsteady_row(capsys):
    from recoque import render

    doc = ResultsDocument(environment={}, device={"kind": "cpu", "name": "x"},
                          results=(rec(1024, 0.7, ("sweep",), noisy=True), rec(512, 0.5, ("sweep",), noisy=True)))
    assert summary.best_rows(doc)[0]["headline"] == "unsteady"
    render.bench_tables(doc, False)
    assert "unsteady" in capsys.readouterr().out


def test_an_unconfirmed_tf32_is_marked_in_the_table_and_json_llm_rows_too(capsys):
    from dataclasses import replace

    from recoque import render

    fp32 = rec(1024, 0.70, ("sweep",), dtype="fp32")
    tf32 = rec(1024, 0.71, ("sweep",), dtype="tf32")  # within 5% of fp32: the tf32 switch did nothing
    llm = replace(rec(2048, 0.7, ("llm",), dtype="tf32"), params={"m": 2048, "n": 2048, "k": 2048})
    marked, ratio = headline.mark_tf32([fp32, tf32, llm])
    assert ratio is not None and all(headline.TF32_UNCONFIRMED_TAG in r.tags for r in marked if r.dtype == "tf32")
    doc = ResultsDocument(environment={}, device={"kind": "cpu", "name": "x"}, results=tuple(marked))
    rows = summary.json_rows(doc)
    assert [r["tf32_not_confirmed"] for r in rows if r["dtype"] == "tf32"] == [True, True]
    render.bench_tables(doc, False)
    assert "ran as fp32?" in capsys.readouterr().out


def test_the_status_line_counts_cases_beside_records(tmp_path, monkeypatch):
    """86 or 83 'verified results' from run to run were 41 cases each time: the extra records are
    confirmation rounds, and a group confirms a second case when its fastest looked unsteady."""
    from typer.testing import CliRunner

    from recoque.cli import app

    monkeypatch.setattr(suite, "run_cases", _fake_runner)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["bench", "gemm", "--quick", "--dtype", "bf16", "--out", str(out)])
    assert res.exit_code == 0, res.output
    doc_cases = {(r["op"], r["dtype"], r.get("backend"), repr(sorted(r["params"].items())))
                 for r in __import__("json").loads(out.read_text())["results"]}
    assert f"({len(doc_cases)} cases; the rest are confirmation rounds)" in res.output
