"""Review 117: `plan train --json` writes its shares (MFU, HFU, goodput, comm share) in unit "fraction"
as `plan` and `compare` do; `report --json` carries a schema_version; `report --plots new --out
new/r.html` makes the folder instead of refusing it; the comparison's unit column in --json names the
unit its values are held in."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.render import human
from recoque.report.table import REPORT_SCHEMA_VERSION

FIX = Path(__file__).parent / "fixtures"
A, B = str(FIX / "compare_a.json"), str(FIX / "compare_b.json")
TRAIN = ["plan", "train", "-s", "alice-recoque", "-w", "mistral-large-2-pretrain"]
SHARES = ("mfu", "hfu", "goodput", "comm_share")
runner = CliRunner()


@pytest.fixture(scope="module")
def train_doc():
    res = runner.invoke(app, [*TRAIN, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _estimates(obj, key=""):
    """(key, estimate) for every {value, low, high, unit} in a document, wherever it sits."""
    if isinstance(obj, dict):
        if {"value", "low", "high", "unit"} <= set(obj):
            yield key, obj
        for k, v in obj.items():
            yield from _estimates(v, k)
    elif isinstance(obj, list):
        for v in obj:
            yield from _estimates(v, key)


# --- 1. shares in unit "fraction" -----------------------------------------------------------------

def test_plan_train_json_writes_every_share_as_a_fraction(train_doc):
    for plan in train_doc["best"]:
        for key in SHARES:
            e = plan[key]
            assert e["unit"] == "fraction", key
            assert 0 < e["low"] <= e["value"] <= e["high"] <= 1, key
    # no share is left in the old unit "1" anywhere in the document (a ratio such as H100e per GPU may be)
    old = [k for k, e in _estimates(train_doc) if e["unit"] == "1" and (k in SHARES or k.startswith("mfu"))]
    assert old == []


def test_plan_train_fp8_peak_mfu_is_a_fraction_too():
    from recoque.planner.execution import ExecutionPlan
    from recoque.planner.system import load_system
    from recoque.planner.train import evaluate
    from recoque.planner.validation import training_profile
    from recoque.planner.workload import load_training_workload
    from recoque.catalog import get_device_spec

    system = load_system("jean-zay-h100")
    wl = load_training_workload("llama3.1-8b")
    r = evaluate(wl, system.with_gpus(8), ExecutionPlan(tp=8, pp=1, dp=1, micro_batch=1),
                 training_profile(get_device_spec(system.device)), dtype="fp8")
    assert r.mfu_fp8_peak is not None and r.to_json()["mfu_fp8_peak"]["unit"] == "fraction"
    # the one renderer of estimates prints a fraction in percent
    value, _, _, unit = human(r.mfu)
    assert unit == "%" and float(value) == pytest.approx(r.mfu.value * 100, rel=1e-2)


def test_plan_train_table_prints_the_shares_in_percent(train_doc):
    res = runner.invoke(app, [*TRAIN, "--width", "400"])
    assert res.exit_code == 0, res.output
    mfu = train_doc["best"][0]["mfu"]
    assert f"{mfu['value']:.1%} [{mfu['low']:.1%}-{mfu['high']:.1%}]" in res.stdout
    assert f"goodput {train_doc['best'][0]['goodput']['value']:.1%}" in res.stdout


def test_a_report_of_plan_train_json_shows_its_mfu_in_percent(train_doc, tmp_path):
    plan = tmp_path / "train.json"
    plan.write_text(json.dumps(train_doc))
    out = tmp_path / "r.md"
    res = runner.invoke(app, ["report", A, "--plan", str(plan), "--out", str(out), "--no-plots"])
    assert res.exit_code == 0, res.output
    mfu = train_doc["best"][0]["mfu"]
    assert f"{mfu['value']:.1%} ({mfu['low']:.1%}-{mfu['high']:.1%})" in out.read_text()


def test_a_bare_share_in_a_plan_file_is_a_fraction_and_a_ratio_stays_a_ratio():
    """The GPU-count curve's MFU is a bare number: the report gives it the unit the best plans' MFU
    carries; a fraction of peak or an efficiency (ratios that may exceed 1) keep unit "1"."""
    from recoque.report.plan_tables import cell

    assert [cell(k, 0.3).unit for k in ("mfu", "comm_share", "goodput")] == ["fraction"] * 3
    assert [cell(k, 0.3).unit for k in ("fraction_of_peak", "hbm_efficiency")] == ["1", "1"]
    assert cell("mfu", 0.3).text() == "30.0%"


# --- 2. schema_version ----------------------------------------------------------------------------

def test_report_json_has_an_integer_schema_version():
    res = runner.invoke(app, ["report", A, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["schema_version"] == REPORT_SCHEMA_VERSION == 1
    assert type(doc["schema_version"]) is int and list(doc)[0] == "schema_version"


# --- 3. an output inside a --plots folder that this run creates -----------------------------------

def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_out_inside_a_new_plots_folder_is_written(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["report", A, "--plots", "newdir", "--out", "newdir/r.html"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "newdir" / "r.html").read_text().startswith("<!DOCTYPE html>")
    assert (tmp_path / "newdir" / "roofline.png").exists() and (tmp_path / "newdir" / "roofline.svg").exists()


def test_the_new_folder_is_made_without_matplotlib_too(tmp_path, monkeypatch):
    """No plots to write (matplotlib missing): the folder an --out and a --csv land in is made all the same."""
    import recoque.cli.report as cli_report

    monkeypatch.setattr(cli_report, "_have_matplotlib", lambda: False)
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["report", A, "--plots", "newdir", "--out", "newdir/r.md", "--csv", "newdir/r.csv"])
    assert res.exit_code == 0, res.output
    assert {"r.md", "r.csv", "r-babelstream.csv", "r-nccl-tests.csv"} <= set(_names(tmp_path / "newdir"))


@pytest.mark.parametrize("out", ["newdir/sub/r.html", "elsewhere/r.html"])
def test_an_out_in_a_missing_folder_that_is_not_the_plots_folder_is_refused(tmp_path, monkeypatch, out):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["report", A, "--plots", "newdir", "--out", out])
    assert res.exit_code == 4 and "Traceback" not in res.output
    line, = res.stderr.strip().splitlines()
    assert f"cannot write {out}" in line and "does not exist" in line
    assert _names(tmp_path) == []  # nothing written, not even the plots folder


def test_a_csv_in_a_missing_folder_beside_a_new_plots_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["report", A, "--plots", "newdir", "--out", "newdir/r.md", "--csv", "other/r.csv"])
    assert res.exit_code == 4 and len(res.stderr.strip().splitlines()) == 1
    assert _names(tmp_path) == []


# --- 5. a unit named beside a value in --json is the value's -------------------------------------

def test_the_comparison_unit_column_is_the_base_unit_in_json_and_the_shown_one_for_people(tmp_path):
    res = runner.invoke(app, ["report", A, B, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    table = next(t for s in doc["sections"] for t in s["tables"] if " against " in t["title"])
    a, b, unit = (table["columns"].index(c) for c in ("A", "B", "unit"))
    tflops = [r for r in table["rows"] if r[a]["unit"] == "flop/s"]
    assert tflops and all(r[unit] == r[a]["unit"] == r[b]["unit"] for r in table["rows"])
    out = tmp_path / "c.md"
    assert runner.invoke(app, ["report", A, B, "--out", str(out), "--no-plots"]).exit_code == 0
    assert "| TFLOP/s |" in out.read_text() and "| flop/s |" not in out.read_text()


def test_every_figure_in_report_json_carries_its_unit():
    res = runner.invoke(app, ["report", A, B, "--json"])
    doc = json.loads(res.stdout)
    cells = [c for s in doc["sections"] for t in s["tables"] for r in t["rows"] for c in r
             if isinstance(c, dict) and "value" in c]
    assert cells and all(isinstance(c.get("unit"), str) and c["unit"] for c in cells)
