"""`recoque report` keeps what it is given: every value of a `plan`/`compare --json` file reaches the
report and its --json, --json carries numbers (base units, with the unit) and not display text, MFU
reads one way, the outputs are checked as one set before any is written, and a CSV export leaves no
side file of an earlier export beside it."""
import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.bench.schema import load_results
from recoque.cli import app
from recoque.report.csv import export_files
from recoque.report.plan_tables import generic_tables
from recoque.report.table import PERCENT, Quantity, Table

FIX = Path(__file__).parent / "fixtures"
A = str(FIX / "compare_a.json")
NO_COLLECTIVES = str(FIX / "planner_results_v2.json")  # gemm, attention and stream only
runner = CliRunner()
# a number written for people: "1,234", "25.8%", "2.66 (0.999-12.7) s" (a case's shape, "2 GiB/array",
# is its name, and strings of the results file, an environment variable "1", stay as they are)
DISPLAYED_NUMBER = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?( |$)|^-?\d+(\.\d+)?%|^\S+ \(\S+-\S+\)")


def _planner_json(tmp_path_factory, name, *args):
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    path = tmp_path_factory.mktemp("plans") / name
    path.write_text(res.stdout)
    return path


@pytest.fixture(scope="module")
def train_json(tmp_path_factory):
    return _planner_json(tmp_path_factory, "train.json", "plan", "train", "-s", "alice-recoque",
                         "-w", "mistral-large-2-pretrain")


@pytest.fixture(scope="module")
def compare_json(tmp_path_factory):
    return _planner_json(tmp_path_factory, "compare.json", "compare", "-s", "h100-reference,alice-recoque",
                         "-w", "llama3.1-8b")


def _report_json(*args):
    res = runner.invoke(app, ["report", A, *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _capacity(rep):
    return next(s for s in rep["sections"] if s["title"].startswith("Capacity"))


def _leaves(obj, path=""):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, f"{path}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, obj


def _key(v):
    return ("number", float(v)) if isinstance(v, (int, float)) and not isinstance(v, bool) else (type(v).__name__, v)


def _missing(plan_path, rep):
    """The values of the planner file that appear nowhere in the report's capacity section (as a
    cell, inside a cell, or as an assumption). energy_mwh is energy_j in other units: one row by
    design (test_report_one_row_per_quantity)."""
    cap = _capacity(rep)
    have = {_key(v) for _, v in _leaves([t["rows"] for t in cap["tables"]])} | {_key(a) for a in cap["items"]}
    plan = json.loads(Path(plan_path).read_text())
    return [(p, v) for p, v in _leaves(plan) if v is not None and "/energy_mwh" not in p and _key(v) not in have]


def _table(rep, suffix):
    return next(t for t in _capacity(rep)["tables"] if t["title"].endswith(suffix))


# --- 1. nothing of a plan or compare file is lost ------------------------------------------------

def test_every_value_of_a_plan_train_json_reaches_the_report_json(train_json):
    rep = _report_json("--plan", str(train_json))
    assert _missing(train_json, rep) == []
    plan = json.loads(train_json.read_text())
    # the whole GPU-count curve (it was cut at 40 rows, the chosen 4,096 GPUs among those cut)
    assert len(_table(rep, "/ curve")["rows"]) == len(plan["gpu_count_curve"]["curve"]) > 40
    # the time breakdown of each best plan, in seconds, and the plan's own fields
    breakdown = _table(rep, "] / breakdown")
    compute = next(r for r in breakdown["rows"] if r[0] == "compute")
    assert compute[1] == plan["best"][0]["breakdown_s"]["compute_s"] and compute[4] == "s"
    best = _table(rep, "/ best")
    assert best["rows"][0][best["columns"].index("plan")] == plan["best"][0]["plan"]
    # every assumption of the plan, as `plan train` prints them under its table
    assert set(plan["best"][0]["assumptions"]) <= set(_capacity(rep)["items"])
    assert set(plan["job_assumptions"]) <= set(_capacity(rep)["items"])


def test_a_plan_train_report_shows_the_training_values(train_json, tmp_path):
    out = tmp_path / "r.md"
    res = runner.invoke(app, ["report", A, "--plan", str(train_json), "--out", str(out), "--no-plots"])
    assert res.exit_code == 0, res.output
    md = out.read_text()
    plan = json.loads(train_json.read_text())
    assert "tensor parallel 1, context parallel 4" in md  # the best plan in words, as `plan train` writes it
    assert f"| {plan['gpu_count_curve']['fastest_gpus']:,} |" in md  # the fastest count's row of the curve
    assert "breakdown**" in md and "- bf16 training, mixed-precision AdamW 16 bytes/param" in md


def test_every_value_of_a_compare_json_reaches_the_report(compare_json, tmp_path):
    rep = _report_json("--plan", str(compare_json))
    assert _missing(compare_json, rep) == []
    cmp = json.loads(compare_json.read_text())
    systems = [s["system"] for s in cmp["systems"]]
    # compare's own layout: each section's quantities down, one column per system
    training = _table(rep, ": training")
    assert training["columns"] == ["quantity", *systems]
    rows = {r[0]: r[1:] for r in training["rows"]}
    want = {r["quantity"]: r["value"] for r in cmp["systems"][0]["sections"]["training"]}
    mfu = next(q for q in want if "MFU" in q)
    assert rows[mfu][0] == {"value": want[mfu]["value"], "low": want[mfu]["low"], "high": want[mfu]["high"],
                            "unit": want[mfu]["unit"]}
    out = tmp_path / "c.html"
    assert runner.invoke(app, ["report", A, "--plan", str(compare_json), "--out", str(out), "--no-plots"]).exit_code == 0
    page = out.read_text()
    assert all(f"{compare_json}: {sec}" in page for sec in cmp["systems"][0]["sections"])


def test_a_plan_sections_row_keeps_its_value():
    """`plan -s S -w W --json` sections hold {quantity, value} rows; a training plan (a dict) in one
    of them dropped the whole value column of that section."""
    plan = {"tp": 2, "pp": 4, "dp": 8, "micro_batch": 1, "recompute": "none", "zero_stage": 1}
    days = {"value": 1.6e6, "low": 1.2e6, "high": 2.4e6, "unit": "s"}
    (t,) = generic_tables("p", {"training": [{"quantity": "training plan", "value": plan},
                                             {"quantity": "time to train", "value": days}]})
    assert t.rows[0][:2] == ("training plan", "tensor parallel 2, pipeline 4 stages, data parallel 8, micro-batch 1, "
                                              "no recompute, ZeRO-1, comm not overlapped")
    assert t.rows[1] == ("time to train", "18.5", "13.9", "27.8", "days")
    assert t.to_json()["rows"] == [["training plan", plan, None, None, None], ["time to train", 1.6e6, 1.2e6, 2.4e6, "s"]]


# --- 2. --json carries numbers ----------------------------------------------------------------------

def test_report_json_carries_numbers_in_base_units_not_display_text():
    rep = _report_json()
    doc = load_results(A)
    best = next(t for s in rep["sections"] for t in s["tables"] if t["title"].startswith("Every verified case (TFLOP/s"))
    first = best["rows"][0]
    rec = doc.results[0]
    assert first[best["columns"].index("median (TFLOP/s)")] == {"value": pytest.approx(rec.achieved * 1e12),
                                                                 "unit": "flop/s"}
    assert first[best["columns"].index("% of peak")] == {"value": pytest.approx(rec.fraction_of_peak), "unit": "1"}
    assert first[best["columns"].index("samples")] == len(rec.times_s)
    texts = [v for s in rep["sections"] for t in s["tables"] for _, v in _leaves(t["rows"]) if isinstance(v, str)]
    assert texts and not [v for v in texts if DISPLAYED_NUMBER.match(v)]


def test_report_json_keeps_a_plans_estimates_as_they_are(train_json):
    rep = _report_json("--plan", str(train_json))
    plan = json.loads(train_json.read_text())
    said = {v for _, v in _leaves(plan) if isinstance(v, str)}  # the planner's own sentences ("196,860 plans ...")
    texts = [v for t in _capacity(rep)["tables"] for _, v in _leaves(t["rows"]) if isinstance(v, str)]
    assert [v for v in texts if DISPLAYED_NUMBER.match(v) and v not in said] == []
    best = _table(rep, "/ best")
    cell = best["rows"][0][best["columns"].index("time to train")]
    want = plan["best"][0]["time_to_train"]
    assert cell == {k: want[k] for k in ("value", "low", "high", "unit")}


# --- 5. MFU: one format for people, the fraction in JSON -------------------------------------------

def test_mfu_reads_as_a_percent_everywhere_and_as_a_fraction_in_json(train_json, tmp_path):
    out = tmp_path / "r.md"
    assert runner.invoke(app, ["report", A, "--plan", str(train_json), "--out", str(out), "--no-plots"]).exit_code == 0
    plan = json.loads(train_json.read_text())
    mfu = plan["best"][0]["mfu"]
    fits = [p for p in plan["gpu_count_curve"]["curve"] if p["fits"]]
    md = out.read_text()
    # the best plans and the GPU-count curve write it alike, as `plan train` does: 25.8%, never 0.258
    assert f"{mfu['value']:.1%} ({mfu['low']:.1%}-{mfu['high']:.1%})" in md
    assert f"| {fits[-1]['mfu']:.1%} |" in md and f"| {fits[-1]['mfu']:.3g} |" not in md
    rep = _report_json("--plan", str(train_json))
    curve = _table(rep, "/ curve")
    got = [r[curve["columns"].index("MFU")] for r in curve["rows"] if r[curve["columns"].index("fits")]]
    # a share of a whole: unit "fraction", as the best plans' MFU estimates carry it (review 117)
    assert [g["value"] for g in got] == [p["mfu"] for p in fits] and {g["unit"] for g in got} == {"fraction"}


def test_a_fraction_is_written_once_per_format():
    q = Quantity(0.258, "1", 0.108, 0.344, shown=PERCENT, ranged=True)
    t = Table("t", ("quantity", "value", "low", "high", "unit"), (("MFU", q),), spread=True)
    assert t.rows == (("MFU", "25.8%", "10.8%", "34.4%", ""),)
    assert t.to_json()["rows"] == [["MFU", 0.258, 0.108, 0.344, "1"]]
    assert q.text() == "25.8% (10.8%-34.4%)"


# --- 3. outputs checked as one set before anything is written ---------------------------------------

def _report_in(folder, *args):
    before = sorted(p.name for p in folder.iterdir())
    res = runner.invoke(app, ["report", A, *args])
    return res, before, sorted(p.name for p in folder.iterdir())


def test_out_and_plots_naming_one_path_write_nothing(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    res, before, after = _report_in(tmp_path, "--out", "same.html", "--plots", "same.html")
    assert res.exit_code == 2 and "name the same file" in res.stderr and "Traceback" not in res.output
    assert len(res.stderr.strip().splitlines()) == 1
    assert after == before == []  # the plots folder used to be made and filled before the report failed
    res, _, after = _report_in(tmp_path, "--csv", "same.csv", "--plots", "same.csv")
    assert res.exit_code == 2 and after == []


def test_a_csv_linked_to_the_report_replaces_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.md").write_text("keep")
    os.symlink("r.md", tmp_path / "link.csv")
    res, before, after = _report_in(tmp_path, "--out", "r.md", "--csv", "link.csv", "--no-plots")
    assert res.exit_code == 2 and "--csv link.csv and --out r.md name the same file" in res.stderr
    assert (tmp_path / "r.md").read_text() == "keep" and after == before  # it used to get the CSV, exit 0


def test_a_csv_link_into_a_missing_folder_fails_before_the_report_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.symlink("nodir/x.csv", tmp_path / "link.csv")
    res, before, after = _report_in(tmp_path, "--out", "r.md", "--csv", "link.csv", "--no-plots")
    assert res.exit_code == 4 and "does not exist" in res.stderr
    assert after == before == ["link.csv"]  # r.md used to be written first


def test_a_csv_link_that_loops_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.symlink("link.csv", tmp_path / "link.csv")
    res, before, after = _report_in(tmp_path, "--out", "r.md", "--csv", "link.csv", "--no-plots")
    assert res.exit_code == 4 and "loops" in res.stderr and after == before


def test_an_output_landing_on_an_input_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "in.json"  # a copy: the report used to be written through the link, over its input
    src.write_text(Path(A).read_text())
    os.symlink("in.json", tmp_path / "r.md")
    before = src.read_text()
    res = runner.invoke(app, ["report", str(src), "--out", "r.md", "--no-plots"])
    assert res.exit_code == 2 and "the input" in res.stderr
    assert src.read_text() == before


def test_a_report_linked_to_a_plot_file_writes_nothing(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p").mkdir()
    os.symlink("p/roofline.svg", tmp_path / "r.md")
    res = runner.invoke(app, ["report", A, "--out", "r.md", "--plots", "p"])
    assert res.exit_code == 2 and "name the same file" in res.stderr
    assert list((tmp_path / "p").iterdir()) == []


def test_a_report_inside_its_plots_folder_is_still_fine(tmp_path):
    pytest.importorskip("matplotlib")
    res = runner.invoke(app, ["report", A, "--out", str(tmp_path / "r.html"), "--plots", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r.html").read_text().startswith("<!DOCTYPE html>") and (tmp_path / "roofline.png").exists()


# --- 4. no stale side file of an earlier export -----------------------------------------------------

def test_a_new_export_removes_the_nccl_file_of_an_earlier_one(tmp_path):
    out = tmp_path / "r.csv"
    assert runner.invoke(app, ["report", A, "--csv", str(out)]).exit_code == 0
    assert (tmp_path / "r-nccl-tests.csv").exists()
    res = runner.invoke(app, ["report", NO_COLLECTIVES, "--csv", str(out)])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "r-nccl-tests.csv").exists() and "removed" in res.stderr
    assert NO_COLLECTIVES in out.read_text() and A not in out.read_text()
    assert A not in (tmp_path / "r-babelstream.csv").read_text()  # rewritten by the new export


def test_a_side_file_recoque_did_not_write_is_left_alone(tmp_path):
    """A link, or the user's own nccl-tests output under that name, is not an earlier export's: kept."""
    target = tmp_path / "elsewhere.csv"
    target.write_text("someone else's\n")
    os.symlink(target, tmp_path / "r-nccl-tests.csv")
    own = tmp_path / "s-nccl-tests.csv"
    own.write_text("#  size  count  type  redop  root  time  algbw  busbw\n")
    written, removed = export_files([("b", load_results(NO_COLLECTIVES))], str(tmp_path / "r.csv"))
    assert removed == [] and os.path.islink(tmp_path / "r-nccl-tests.csv")
    assert target.read_text() == "someone else's\n"
    _, removed = export_files([("b", load_results(NO_COLLECTIVES))], str(tmp_path / "s.csv"))
    assert removed == [] and own.exists()
    assert [Path(p).name for p in written] == ["r.csv", "r-babelstream.csv"]


# --- review 116: units and bounds as the planner wrote them -------------------------------------------

def test_a_null_bound_is_unknown_and_the_others_are_scaled_as_the_value():
    from recoque.report.table import Quantity, _human

    v, lo, hi, unit = _human(Quantity(0.3836, "s", 0.2414, None, ranged=True))
    assert (v, lo, hi, unit) == ("384", "241", "unknown", "ms")


def test_a_share_is_a_percent_by_its_unit_and_a_ratio_above_one_stays_a_ratio():
    from recoque.report.plan_tables import estimate

    share = estimate("anything", {"value": 0.258, "low": 0.1, "high": 0.3, "unit": "fraction"})
    ratio = estimate("HBM efficiency", {"value": 1.28, "low": 1.1, "high": 1.4, "unit": "1"})
    assert share.shown and not ratio.shown


def test_stated_figures_and_counts_print_as_written():
    from recoque.report.table import num

    assert (num(0.999995), num(29046.0), num(80000.0), num(0.1234567891)) == ("0.999995", "29,046", "80,000", "0.1235")
