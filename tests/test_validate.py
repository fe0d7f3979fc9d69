"""`recoque validate`: published runs through the model, thresholds from the issue."""
import json

import pytest

from typer.testing import CliRunner

from recoque.cli import app
from recoque.planner.validation import fit_profile, load_cases, public_profile, shipped_profile, validate_all

runner = CliRunner()


def test_cases_cover_the_issue():
    groups = {}
    for c in load_cases():
        groups.setdefault(c.group, []).append(c)
    assert len(groups["korthikanti2022"]) == 8 and len(groups["narayanan2021"]) == 10 and len(groups["bloom2022"]) == 1
    assert len(groups["llama3-2024"]) == 1 and groups["llama3-2024"][0].plan.gpus == 16384
    k = {c.name: c.published_time_s for c in groups["korthikanti2022"]}
    assert k["korthikanti-1t-full"] == 94.42 and k["korthikanti-22b-selective"] == 1.10
    bloom = groups["bloom2022"][0]
    assert bloom.plan.gpus == 384 and 100 < bloom.published_time_s < 106


def test_thresholds_met():
    rep = validate_all()
    assert rep.mean_abs_error <= 0.05, rep.to_json()
    # the issue's 10% per case, except where the seed states a looser limit (ZeRO-3 rows, Llama 3)
    strict = [abs(r.error) for r in rep.verdict_results if r.case.threshold_max is None]
    assert max(strict) <= 0.10, rep.to_json()
    assert rep.passed
    for r in rep.results:
        if r.case.system.device == "a100_sxm_80gb":
            assert r.fits, r.case.name
        assert r.predicted_low_s <= r.predicted_s <= r.predicted_high_s


def test_training_subset_declared_and_rest_held_out():
    rep = validate_all()
    held = {r.case.group for r in rep.results if r.case.held_out}
    train = {r.case.group for r in rep.results if not r.case.held_out}
    # the A100 profile fitted on Korthikanti et al.; the deepspeed stack efficiency on ZeRO-3 + BLOOM;
    # the MI250X GCD's sustained GEMM fraction set from the Dash et al. 175B Frontier log
    assert train == {"korthikanti2022", "narayanan2021-zero3", "bloom2022", "dash2023-frontier"}
    assert {"narayanan2021", "llama3-2024"} <= held
    tr, ho = rep.split()["training"], rep.split()["held_out"]
    assert tr[2] == 18 and ho[2] == 13
    # the public-figures-only profile is reported, and is worse: the fit is doing something
    assert rep.public_stats()[0] > rep.mean_abs_error


def test_fit_reproduces_shipped_values_on_training_subset_only():
    got = fit_profile("a100_sxm_80gb")
    prof = shipped_profile("a100_sxm_80gb")
    assert got["gemm_sustained_fraction"] == pytest.approx(prof.fallback["gemm_sustained_fraction"], abs=1e-9)
    assert got["memory_efficiency"] == pytest.approx(prof.fallback["memory_efficiency"], abs=1e-9)
    pub = public_profile("a100_sxm_80gb")
    assert pub.fallback["gemm_sustained_fraction"] == 1.0


def test_cli_validate_table_and_exit_codes():
    res = runner.invoke(app, ["validate"])
    assert res.exit_code == 0, res.output
    assert "korthikanti" in res.output and "bloom" in res.output and "PASS" in res.output
    assert "held out" in res.output and "training" in res.output
    res = runner.invoke(app, ["validate", "--threshold-max", "0.001"])
    assert res.exit_code == 1 and "FAIL" in res.output


def test_cli_validate_json():
    res = runner.invoke(app, ["validate", "--json"])
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert data["passed"] and len(data["cases"]) == 31 and data["held_out"]["cases"] == 13  # 28 + 3 Dash et al. (Frontier)
    assert {"case", "published_time_s", "predicted_time_s", "error"} <= set(data["cases"][0])


def test_cli_validate_checks_reports_the_check_sets_without_changing_the_verdict(monkeypatch):
    from functools import cache

    from recoque.planner import checksets

    # both runs below read the same check sets: computed once (16 s a run on two cores)
    monkeypatch.setattr(checksets, "training_rows", cache(checksets.training_rows))
    monkeypatch.setattr(checksets, "serving_rows", cache(checksets.serving_rows))
    res = runner.invoke(app, ["validate", "--checks", "--json"])
    assert res.exit_code == 0, res.output
    checks = json.loads(res.output)["checks"]
    assert set(checks) == {"training", "serving"}
    assert {"nvidia", "amd"} <= set(checks["training"]["by_vendor"]) and len(checks["serving"]["rows"]) >= 30
    s = checks["training"]["by_vendor"]["nvidia"]
    assert s["runs"] >= 90 and 0 < s["mean_abs_error"] < 0.10
    # the table run under an impossible threshold: the check sets print, and the verdict alone sets the exit
    text = runner.invoke(app, ["validate", "--checks", "--threshold-max", "0.001"])
    assert text.exit_code == 1 and "check set, training, amd" in text.output and "worst:" in text.output
