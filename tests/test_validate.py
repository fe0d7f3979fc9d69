"""`recoque validate`: published runs through the model, thresholds from the issue."""
import json

from typer.testing import CliRunner

from recoque.cli import app
from recoque.planner.validation import load_cases, validate_all

runner = CliRunner()


def test_cases_cover_the_issue():
    groups = {}
    for c in load_cases():
        groups.setdefault(c.group, []).append(c)
    assert len(groups["korthikanti2022"]) == 8 and len(groups["narayanan2021"]) == 10 and len(groups["bloom2022"]) == 1
    k = {c.name: c.published_time_s for c in groups["korthikanti2022"]}
    assert k["korthikanti-1t-full"] == 94.42 and k["korthikanti-22b-selective"] == 1.10
    bloom = groups["bloom2022"][0]
    assert bloom.plan.gpus == 384 and 100 < bloom.published_time_s < 106


def test_thresholds_met():
    rep = validate_all()
    assert rep.mean_abs_error <= 0.05, rep.to_json()
    assert rep.max_abs_error <= 0.10, rep.to_json()
    assert rep.passed
    for r in rep.results:
        assert r.fits, r.case.name
        assert r.predicted_low_s <= r.predicted_s <= r.predicted_high_s


def test_cli_validate_table_and_exit_codes():
    res = runner.invoke(app, ["validate"])
    assert res.exit_code == 0, res.output
    assert "korthikanti" in res.output and "bloom" in res.output and "PASS" in res.output
    res = runner.invoke(app, ["validate", "--threshold-max", "0.001"])
    assert res.exit_code == 1 and "FAIL" in res.output


def test_cli_validate_json():
    res = runner.invoke(app, ["validate", "--json"])
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert data["passed"] and len(data["cases"]) == 19
    assert {"case", "published_time_s", "predicted_time_s", "error"} <= set(data["cases"][0])
