"""Sweep 8: figures that disagreed between commands, labels that did not match their values."""
import dataclasses
import json
from pathlib import Path

from cli_json import runner

from recoque.bench import compare
from recoque.bench.schema import document_from_json
from recoque.catalog import get_device_spec
from recoque.cli import app
from recoque.planner import capacity, claims
from recoque.planner.serving_notes import usable_note
from recoque.planner.serving_rates import load_engine
from recoque.planner.system import load_system
from recoque.report import model as report_model

H200 = Path(__file__).resolve().parents[1] / "seeds" / "measured" / "h200.json"


def _line(result, start: str) -> str:
    return next(a for a in result.arithmetic if a.strip().startswith(start))


def test_check_and_plan_hpl_print_one_delivered_h100e_for_alice():
    _, _, _, d, _ = capacity.plan_hpl(load_system("alice-recoque"))
    line = _line(claims.run_claim("h100e-25000"), "H100e HPL delivered")
    assert line.endswith(f"= {d.equivalent.h100e.value:,.0f} ({d.equivalent.h100e.low:,.0f}..{d.equivalent.h100e.high:,.0f})")


def test_check_and_plan_hpl_print_one_fp64_peak_h100e_for_alice():
    from recoque.planner import equivalents

    peaks = {e.metric: e.h100e for e in equivalents.peak_equivalents(load_system("alice-recoque"))}
    line = _line(claims.run_claim("h100e-25000"), "H100e fp64_vector peak")
    assert line.endswith(f"= {peaks['fp64_vector'].value:,.0f} ({peaks['fp64_vector'].low:,.0f}..{peaks['fp64_vector'].high:,.0f})")


def test_the_exaflop_check_derives_the_preset_count():
    alice = load_system("alice-recoque")
    need = claims.run_claim("exaflop").implied["gpus_for_hpl"]
    assert round(need.value) == alice.gpus
    assert (round(need.low), round(need.high)) == alice.ranges["gpus"]


def test_hbm_capacity_says_gib_and_gb():
    note = usable_note(0.9, get_device_spec("h100_sxm"), load_engine("vllm"))
    assert note == "90% of 80 GiB (85.9 GB) usable"


def test_report_estimate_labels_drop_the_base_unit_of_the_key():
    est = {"value": 6.77e13, "low": 4.25e13, "high": 1.79e14, "unit": "J"}
    rows = report_model.generic_tables("t", {"energy_per_year_j": est, "gpus": 8})[0].rows
    assert rows[0][0] == "energy per year" and rows[0][-1] == "GWh"
    assert rows[1][0] == "gpus"


def test_report_environment_prints_versions_as_the_tools_do():
    rows = {r[0]: r[1] for r in report_model.environment([report_model.load_input(str(H200))]).tables[0].rows}
    assert rows["environment.cudnn_version"] == "91900"


def test_list_devices_names_the_fp64_rate_it_shows():
    out = runner.invoke(app, ["list", "devices", "--json"])
    assert out.exit_code == 0
    text = runner.invoke(app, ["list", "devices"]).output
    assert "FP64 GEMM" in text and "matrix-unit rate" in text


def test_validate_summaries_end_without_a_dangling_colon():
    out = runner.invoke(app, ["validate"])
    summaries = [ln for ln in out.output.splitlines() if ln.startswith("serving ")]
    assert summaries and not any(ln.rstrip().endswith(":") for ln in summaries)


def test_compare_pairs_a_case_round_by_round_and_says_so():
    doc = document_from_json(json.loads(H200.read_text()), origin="h200.json")
    sweep_only = dataclasses.replace(doc, results=tuple(
        r for r in doc.results if not any(t.startswith("confirm_round:") for t in r.tags)))
    c = compare.compare_documents(doc, sweep_only, "A", "B")
    assert all(not any(t.startswith("confirm_round:") for t in c_rec.tags)
               for c_rec in [p[0] for p in compare.pair_records(doc, sweep_only)[0]])
    assert any("records in A, 1 in B; paired round by round" in n for n in c.notes)


def test_a_targeted_tpot_prints_as_solved():
    line = next(a for a in claims.run_claim("telehouse-25000-inference").arithmetic if a.strip().startswith("inference-fleet"))
    assert "29.5 ms/token" in line
