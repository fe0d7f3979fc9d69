"""Sweep 10: the bench and report outputs read from a results file, and plan across workloads."""
from pathlib import Path

import pytest
from cli_json import section_value

from recoque.bench.schema import load_results
from recoque.bench.summary import run_label
from recoque.report import model as report_model

H200 = Path(__file__).resolve().parents[1] / "seeds" / "measured" / "h200.json"


def test_every_case_table_names_the_pass_that_measured_each_row():
    doc = load_results(str(H200))
    labels = [run_label(r) for r in doc.results]
    assert {"sweep", "confirmation 1/3", "confirmation 3/3", "acceptance"} <= set(labels)
    section = report_model.results(report_model.load_input(str(H200)))
    every = next(t for t in section.tables if t.title.startswith("Every verified case (TFLOP/s"))
    col = every.columns.index("run")
    rows = [(r[0], r[1], r[2], r[3], r[col]) for r in every.rows]
    assert len(rows) == len(set(rows)), "a case measured twice in one pass"


def test_a_dtype_a_benchmark_cannot_run_is_said_not_dropped_silently():
    from types import SimpleNamespace

    from recoque.bench.suite import _dtypes_for

    r = SimpleNamespace(dtypes=("fp64", "fp8"), dtypes_explicit=True, notes=[])
    assert _dtypes_for(r, "attention", ("bf16", "fp16", "fp32"), ("bf16",)) == ("bf16",)
    assert r.notes == ["attention: fp64, fp8 not measured (attention runs bf16, fp16, fp32; measured bf16)"]
    r = SimpleNamespace(dtypes=("fp64", "fp32"), dtypes_explicit=False, notes=[])
    assert _dtypes_for(r, "stream", ("fp64", "fp32"), ("fp64",)) == ("fp64", "fp32") and r.notes == []


# --- the bench, report and check outputs read from a results file --------------------------------

BF16_ONLY = H200.parent / "h200_gemm_bf16_sweep.json"
H100_FIXTURE = Path(__file__).parent / "fixtures" / "planner_results_v2.json"


def test_check_counts_only_the_dtypes_a_profile_measured():
    from cli_json import cli_json

    d = cli_json("check", "--profile", str(BF16_ONLY), "--profile-anyway", "--claim", "h100e-25000")
    implied = d["claims"][0]["implied"]
    assert "h100e_bf16_measured" in implied and "h100e_fp8_measured" not in implied  # no fp8 was measured


def test_a_measured_dgemm_never_exceeds_the_peak_of_the_part_it_was_measured_on():
    from cli_json import cli_json

    d = cli_json("check", "--profile", str(H200), "--profile-anyway", "--claim", "exaflop")
    line = next(a for a in d["claims"][0]["arithmetic"] if a.startswith("HPL rate per"))
    assert "..66.9) TFLOP/s (measured DGEMM)" in line and "(of the measured DGEMM)" in line  # H200 FP64 peak 66.9


def test_check_says_which_claims_a_matching_profile_entered():
    from cli_json import cli_json

    d = cli_json("check", "--profile", str(H100_FIXTURE))
    assert d["profile_note"].startswith(f"measured profile {H100_FIXTURE} (h100_sxm)")
    tele = next(c for c in d["claims"] if c["claim"] == "telehouse-25000-inference")
    assert tele["arithmetic"][0].startswith("measured profile") and "telehouse-25000-inference" in d["profile_note"]


def test_a_year_prints_without_a_thousands_separator():
    from cli_json import cli_json

    stated = [c["stated"] for c in cli_json("check")["claims"]]
    assert any("year=2028" in s for s in stated) and not any("2,028" in s for s in stated)


def test_the_roofline_ceilings_are_the_best_tables_headlines():
    from recoque.bench.summary import best_rows
    from recoque.report.plots import _ceilings

    doc = load_results(str(H200))
    ceil = _ceilings(doc)["compute_measured"]
    heads = [r for r in best_rows(doc) if r["unit"] == "TFLOP/s" and r["dtype"] == "bf16"]
    assert ceil["bf16"] == max(r["achieved"] for r in heads)
    assert ceil["bf16"] < max(r.achieved for r in doc.results if r.dtype == "bf16")  # not the fastest single round


def test_markdown_image_links_are_relative_to_the_report(tmp_path, monkeypatch):
    from cli_json import runner
    from recoque.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "deep").mkdir()
    res = runner.invoke(app, ["report", str(H200), "--out", "deep/r.md", "--plots", "pl"])
    assert res.exit_code == 0, res.output
    text = (tmp_path / "deep" / "r.md").read_text()
    assert "](<../pl/roofline.png>)" in text and (tmp_path / "pl" / "roofline.png").exists()


def test_csv_rows_say_their_file_and_pass(tmp_path):
    import csv

    from recoque.report.csv import export

    a = Path(__file__).parent / "fixtures" / "compare_a.json"
    paths = export([("h200", load_results(str(H200))), ("a", load_results(str(a)))], str(tmp_path / "r.csv"))
    rows = list(csv.DictReader(open(paths[0], newline="")))
    keyed = [(r["file"], r["benchmark"], r["op"], r["dtype"], r["params"], r["run"]) for r in rows]
    assert len(keyed) == len(set(keyed))
    stream = list(csv.DictReader(open(next(p for p in paths if p.endswith("-babelstream.csv")), newline="")))
    assert {r["file"] for r in stream} == {"h200", "a"} and any(r["run"].startswith("confirmation") for r in stream)


def test_accept_names_the_command_that_wrote_an_interrupted_file():
    from cli_json import runner
    from recoque.cli import app

    res = runner.invoke(app, ["bench", "accept", "--no-write", str(BF16_ONLY)])
    assert "re-run `recoque bench gemm --dtype bf16" in res.output


def test_a_compare_interval_never_prints_as_touching_1_when_it_excludes_it():
    from recoque.bench.compare import CaseComparison

    cc = CaseComparison("gemm", "matmul", "bf16", {}, "TFLOP/s", 1.0, 0.997, 10, 10, 0.997, 0.9932, 0.9999995,
                        0.01, "below the effect threshold")
    # rounded outward (the printed interval holds the computed one), with the decimals it takes
    assert cc.interval_text == "0.9932000-0.9999995"
    assert CaseComparison(**{**cc.__dict__, "ratio_low": 1.0000004, "ratio_high": 1.02}).interval_text == \
        "1.0000004-1.0200000"


def test_error_lines_do_not_repeat_their_reason(tmp_path):
    from recoque.errors import WriteFailed
    from recoque.fileio import write_atomic

    try:
        write_atomic(tmp_path / "missing" / "r.md", "x")
    except WriteFailed as exc:
        assert exc.one_line().count("does not exist") == 1


# --- plan across workloads -----------------------------------------------------------------------

def test_the_fastest_gpu_count_is_fastest_by_the_clock():
    from recoque.planner.capacity import plan_any
    from recoque.planner.system import load_system

    d = plan_any(load_system("campus-1gw"), "bloom-pretrain")
    curve = [p for p in d["gpu_count_curve"].curve if p.fits]
    best = min(curve, key=lambda p: (p.time_to_train_wall_s, p.gpus))
    assert d["gpu_count_curve"].fastest_gpus == best.gpus
    assert best.gpus < max(p.gpus for p in curve)  # failures grow with the count: not the largest


def test_a_job_on_a_whole_site_bound_system_draws_the_site_power():
    from cli_json import cli_json

    d = cli_json("plan", "-s", "campus-1gw", "-w", "climate-km")
    per_job = d["energy"]["per_job"]
    assert per_job["facility_power_w"]["high"] == per_job["facility_power_w"]["low"] == 1e9
    t = section_value(d, "stencil", "time to solution")
    assert per_job["energy_j"]["high"] == pytest.approx(1e9 * t["high"])


def test_hpcg_h100e_counts_the_gpu_count_range_once():
    from cli_json import cli_json

    d = cli_json("plan", "-s", "campus-1gw", "-w", "hpcg")
    gpus = section_value(d, "stencil", "GPUs")
    h100e = next(r["value"] for rows in d["sections"].values() for r in rows if r["quantity"].startswith("H100e delivered"))
    assert h100e["high"] <= gpus["high"] and h100e["low"] >= 0.8 * gpus["low"]  # H100s: about one H100e each


def test_plan_on_a_bare_model_serves_as_plan_infer_does():
    from cli_json import cli_json

    g = cli_json("plan", "-s", "jean-zay-h100", "-w", "qwen3-30b-a3b")
    i = cli_json("plan", "infer", "-s", "jean-zay-h100", "-w", "qwen3-30b-a3b")
    rows_g = {r["quantity"]: r["value"] for r in g["sections"]["inference (default serving)"]}
    rows_i = {r["quantity"]: r["value"] for rows in i["sections"].values() for r in rows}
    assert rows_g and all(rows_i.get(k) == v for k, v in rows_g.items())
    assert rows_g["mode / engine"].startswith("offline")


def test_a_scenario_that_falls_back_to_offline_compares_with_an_offline_h100():
    from cli_json import cli_json

    d = cli_json("plan", "-s", "node-8x-l40s", "-w", "llmaas")
    change = next(r["value"] for rows in d["sections"].values() for r in rows if r["quantity"] == "latency target")
    assert "the H100 reference of the H100-equivalents serves offline too" in change


def test_compare_keeps_the_systems_that_fit():
    from cli_json import cli_json, runner
    from recoque.cli import app

    d = cli_json("compare", "-s", "node-8x-mi300x,jean-zay-h100", "-w", "climate-km")
    mi, jz = d["systems"]
    assert mi["does_not_fit"] and "GB per GPU exceeds" in mi["does_not_fit"] and "stencil" in jz["sections"]
    assert runner.invoke(app, ["compare", "-s", "node-8x-mi300x", "-w", "climate-km"]).exit_code == 3


def test_compare_holds_a_training_misfit_as_plan_does():
    """A training workload no plan fits on a system is that system's does-not-fit column (not a
    'no plan fits' row beside energy figures), and exit 3 when it fits on none, as `plan` exits."""
    from cli_json import cli_json, runner
    from recoque.cli import app

    d = cli_json("compare", "-s", "node-8x-h100,node-8x-mi355x", "-w", "mistral-large-2-pretrain")
    h100, mi = d["systems"]
    assert "does not fit on 8 GPUs of node-8x-h100" in h100["does_not_fit"] and not mi.get("does_not_fit")
    res = runner.invoke(app, ["compare", "-s", "node-8x-h100,node-8x-l40s", "-w", "mistral-large-2-pretrain"])
    assert res.exit_code == 3 and "error: node-8x-h100:" not in res.output, res.output  # named once
