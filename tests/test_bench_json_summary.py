"""`bench --json` carries everything the table shows: the best-per-op summary with the public anchor
columns and how the headline was chosen, in base units, plus the GEMM sweep's shapes and seconds.
The suite is replaced by a fixed outcome so the checks are about the output, not the machine."""
import json

import pytest
from typer.testing import CliRunner

from recoque.bench import anchors, suite, summary
from recoque.bench.runner import RunOutcome
from recoque.bench.schema import Record, document_from_json, load_results
from recoque.cli import app
from recoque.errors import BadInput
from recoque.render import fmt, pct as _pct

runner = CliRunner()
SWEEP = {"benchmark": "gemm", "dtype": "bf16", "backend": "torch", "refined": True, "coarse_cases": 3,
         "refine_shapes": 6, "refine_rounds": 2, "cases_measured": 9, "sweep_s": 12.5, "complete": True,
         "best_shape": [4096, 4096, 4096], "confirm_s": 4.25}


def gemm(rate_tflops, m=4096, tags=("sweep",), spread=0.0):
    flops = 2 * m * 4096 * 4096  # the kernel's count for the shape: a results file must agree with it
    t = flops / (rate_tflops * 1e12)
    times = tuple(t * (1 + spread * ((i % 3) - 1)) for i in range(9))
    return Record("gemm", "matmul", "bf16", {"m": m, "n": 4096, "k": 4096}, times, "TFLOP/s", flop_count=flops,
                  peak=989.4, peak_source="datasheet: test", backend="torch", tags=tags)


def outcome():
    stream_bytes = 3 * 8 * 2**25
    recs = [gemm(0.50, m=2048), gemm(0.60), gemm(0.58, tags=("sweep", "headline", "confirmation")),
            Record("stream", "triad", "fp64", {"n_elements": 2**25, "elem_bytes": 8}, (stream_bytes / 20e9,) * 7,
                   "GB/s", bytes_moved=stream_bytes, peak=50.0, peak_source="datasheet: test", backend="numba")]
    return RunOutcome(records=recs, sweeps=[dict(SWEEP)])


@pytest.fixture
def fake_run(monkeypatch):
    monkeypatch.setattr(suite, "run_suite", lambda *a, **k: (outcome(), []))
    h100_bf16 = next(a for a in anchors.load_anchors() if (a.device, a.benchmark, a.dtype) == ("h100_sxm", "gemm", "bf16"))
    # The CPU has no public anchor; hold the GEMM row against a real one from seeds/anchors.toml.
    monkeypatch.setattr(summary, "find_anchor", lambda dev, b, op, dt: h100_bf16 if (b, dt) == ("gemm", "bf16") else None)
    return h100_bf16


def table_rows(text):
    """(headers, body rows) of the first rich table in `text`: header cells joined across lines."""
    lines = text.splitlines()
    top = next(i for i, ln in enumerate(lines) if ln.startswith("┏"))
    sep = next(i for i, ln in enumerate(lines) if ln.startswith("┡"))
    parts = [[c.strip() for c in ln.strip("┃").split("┃")] for ln in lines[top + 1:sep]]
    headers = [" ".join(p[i] for p in parts if p[i]) for i in range(len(parts[0]))]
    end = next(i for i, ln in enumerate(lines) if ln.startswith("└"))
    body = [[c.strip() for c in ln.strip("│").split("│")] for ln in lines[sep + 1:end]]
    return headers, body


def expected_cells(row):
    """Each column of bench_tables (CPU: GFLOP/s) computed from the JSON summary row alone."""
    per_s = "achieved_flop_per_s" if "achieved_flop_per_s" in row else "achieved_bytes_per_s"
    q, k = (per_s[len("achieved_"):], 1e9)
    return {
        "benchmark": f"{row['benchmark']} {row['op']}", "dtype": row["dtype"], "best shape": row["best_shape"],
        "cases": str(row["cases"]), "achieved": fmt(row[f"achieved_{q}"] / k), "CoV": f"{row['cov'] * 100:.1f}%",
        "peak": fmt(row[f"peak_{q}"] / k) if row[f"peak_{q}"] else "unknown",
        "% of peak": _pct(row["fraction_of_peak"]),
        "public best": fmt(row[f"public_best_{q}"] / k) if row[f"public_best_{q}"] else "none",
        "% of public best": _pct(row["fraction_of_public_best"]) if row[f"public_best_{q}"] else "",
        "backend": row["backend"] or "",
    }


def test_every_table_column_has_a_json_counterpart(fake_run):
    shown = runner.invoke(app, ["bench", "all", "--device", "cpu"])
    printed = runner.invoke(app, ["bench", "all", "--device", "cpu", "--json"])
    assert shown.exit_code == 0 and printed.exit_code == 0, shown.output + printed.output
    rows = json.loads(printed.stdout)["summary"]
    headers, body = table_rows(shown.stdout)
    names = [h.split(" (")[0] for h in headers]  # "achieved (GFLOP/s)" -> "achieved"
    gemm_row = next(r for r in rows if r["benchmark"] == "gemm")
    assert set(names) == set(expected_cells(gemm_row))  # no column without a JSON key
    cells = dict(zip(names, body[0]))
    assert cells == expected_cells(gemm_row)
    # the public anchor: figure, source and fraction, in base units
    assert gemm_row["public_best_flop_per_s"] == pytest.approx(fake_run.achieved * 1e12)
    assert gemm_row["public_source"] == fake_run.source
    assert gemm_row["fraction_of_public_best"] == pytest.approx(gemm_row["achieved_flop_per_s"] / (fake_run.achieved * 1e12))


def test_summary_is_in_base_units_with_the_headline_and_the_sweep(fake_run):
    res = runner.invoke(app, ["bench", "all", "--device", "cpu", "--json"])
    doc = json.loads(res.stdout)
    gemm_row = next(r for r in doc["summary"] if r["benchmark"] == "gemm")
    # the confirmation run is the headline (0.58 TFLOP/s), not the sweep's faster median (0.60)
    assert gemm_row["headline"] == "confirmed"
    assert gemm_row["achieved_flop_per_s"] == pytest.approx(0.58e12)
    assert gemm_row["peak_flop_per_s"] == pytest.approx(989.4e12) and gemm_row["peak_source"] == "datasheet: test"
    # two shapes, the best confirmed again: 2 cases (the every-case table lists its rounds)
    assert gemm_row["best_params"] == {"m": 4096, "n": 4096, "k": 4096} and gemm_row["cases"] == 2
    assert gemm_row["sweep_s"] == 12.5 and gemm_row["sweep_cases"] == 9
    stream_row = next(r for r in doc["summary"] if r["benchmark"] == "stream")
    assert stream_row["achieved_bytes_per_s"] == pytest.approx(3 * 8 * 2**25 / (3 * 8 * 2**25 / 20e9))
    assert stream_row["public_best_bytes_per_s"] is None and stream_row["headline"] == "steady"
    assert stream_row["sweep_s"] is None
    assert doc["sweeps"] == [SWEEP]
    assert "gemm bf16 sweep: 9 cases (3 coarse + 6 refined in 2 rounds) in 12.5 s" in res.stderr


def test_saved_and_printed_documents_load_back(fake_run, tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["bench", "all", "--device", "cpu", "--json", "--out", str(out)])
    assert res.exit_code == 0, res.output
    saved = json.loads(out.read_text())
    assert saved["summary"] == json.loads(res.stdout)["summary"]
    assert load_results(str(out)).sweeps == (SWEEP,)
    assert document_from_json(json.loads(res.stdout)).sweeps == (SWEEP,)  # `--json > file` reads back too


def test_append_adds_sweeps_and_recomputes_the_summary(fake_run, tmp_path):
    out = tmp_path / "r.json"
    for _ in range(2):
        r = runner.invoke(app, ["bench", "all", "--device", "cpu", "--out", str(out), "--append"]); assert r.exit_code == 0, r.output
    doc = load_results(str(out))
    assert len(doc.sweeps) == 2
    gemm_row = next(r for r in json.loads(out.read_text())["summary"] if r["benchmark"] == "gemm")
    assert gemm_row["cases"] == 2 and gemm_row["sweep_s"] == 25.0 and gemm_row["sweep_cases"] == 18  # same 2 shapes


def test_summary_and_sweeps_must_be_lists_of_tables(fake_run, tmp_path):
    out = tmp_path / "r.json"
    runner.invoke(app, ["bench", "all", "--device", "cpu", "--out", str(out)])
    good = json.loads(out.read_text())
    for key, bad in (("summary", "best"), ("sweeps", [1]), ("summary", [["gemm"]])):
        with pytest.raises(BadInput, match=key):
            document_from_json({**good, key: bad})


def test_a_sweep_of_one_case_says_case():
    class Doc:
        sweeps = [{"benchmark": "gemm", "dtype": "fp16", "cases_measured": 1, "coarse_cases": 1, "refined": False,
                   "sweep_s": 0.5, "confirm_s": 2.3, "best_shape": [256, 256, 256]},
                  {"benchmark": "gemm", "dtype": "bf16", "cases_measured": 4, "coarse_cases": 4, "refined": False,
                   "sweep_s": 4.5, "confirm_s": None, "best_shape": None}]
    one, four = summary.sweep_lines(Doc())
    assert one == "gemm fp16 sweep: 1 case (1 coarse, not refined) in 0.5 s, confirmation 2.3 s; best shape 256x256x256"
    assert four == "gemm bf16 sweep: 4 cases (4 coarse, not refined) in 4.5 s; best shape none"


def test_collective_rows_show_the_largest_message_per_placement_and_tier():
    """An 8-byte broadcast, steadier than its 1 MiB run, was the headline at 1/45,000 of the
    bandwidth; intra- and inter-node pairs shared one row, the inter-node one invisible."""
    from recoque.bench.schema import Record, ResultsDocument

    def rec(op, nbytes, gb_s, spread, tier="intra", ranks=None):
        times = tuple(nbytes / (gb_s * 1e9) * (1 + spread * (i % 2)) for i in range(10))
        params = {"bytes": nbytes, "placement": "out_of_place", "tier": tier, **({"ranks": ranks} if ranks else {})}
        return Record("collective", op, "fp32", params, times, "GB/s", bytes_moved=nbytes, tags=("sweep",))
    doc = ResultsDocument({"hostname": "h"}, {"kind": "cpu", "name": "cpu"},
                          (rec("broadcast", 8, 0.0001, 0.0), rec("broadcast", 2**20, 4.8, 0.5),
                           rec("send_recv", 2**20, 0.84, 0.0, "intra", [0, 1]), rec("send_recv", 2**20, 0.44, 0.0, "inter", [0, 2])))
    rows = {(r["op"], r["best_shape"]): r for r in summary.best_rows(doc)}
    assert rows[("broadcast", "1 MiB, out_of_place, intra")]["achieved"] == pytest.approx(4.8 * 2 / 2.5, rel=0.2)
    assert rows[("broadcast", "1 MiB, out_of_place, intra")]["cases"] == 2
    assert {k for k in rows if k[0] == "send_recv"} == {("send_recv", "1 MiB, out_of_place, intra, ranks 0-1"),
                                                        ("send_recv", "1 MiB, out_of_place, inter, ranks 0-2")}
