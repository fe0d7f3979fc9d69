"""The recalibration floor the HPL and HPCG check scripts print: the mean |error| left if one constant
per device family were re-fitted on the check rows themselves (benchmarks/holdout_cli.py)."""
import json
import random

import pytest

from bench_scripts import load_script


def _cli():
    return load_script("holdout_cli")


def test_best_constant_is_the_least_mean_abs_error_of_a_fine_grid():
    cli = _cli()
    rng = random.Random(7)
    for _ in range(20):
        ratios = [rng.lognormvariate(0.0, 0.2) for _ in range(rng.randint(1, 15))]
        c = cli.best_constant(ratios)
        err = sum(abs(c * r - 1) for r in ratios) / len(ratios)
        grid = min(sum(abs(g / 1000 * r - 1) for r in ratios) / len(ratios) for g in range(300, 3000))
        assert err <= grid + 1e-12


def test_floor_is_zero_when_every_family_is_off_by_one_factor_and_positive_with_spread():
    cli = _cli()
    floor, best = cli.recalibration_floor({"a": [1.2, 1.2, 1.2], "b": [0.8, 0.8]})
    assert floor == pytest.approx(0.0, abs=1e-12)
    assert best == pytest.approx({"a": 1 / 1.2, "b": 1 / 0.8})
    floor, _ = cli.recalibration_floor({"a": [0.9, 1.1]})
    assert floor > 0.0
    with pytest.raises(ValueError):
        cli.best_constant([])


@pytest.mark.parametrize("script", ["hpl_holdout", "hpcg_holdout"])
def test_scripts_report_a_floor_no_higher_than_their_own_error(script, capsys):
    # c = 1 is one of the constants the floor may pick, so it can never exceed the model's own error
    mod = load_script(script)
    mod.main(["--json"])
    out = json.loads(capsys.readouterr().out)
    check = out["check"] if script == "hpl_holdout" else out["summary"]["check"]
    floor = out["check"]["recalibration_floor"] if script == "hpl_holdout" else out["recalibration_floor"]
    assert 0.0 < floor <= check["mean_abs_error"] + 1e-12
    mod.main([])
    assert "floor: one constant per family re-fitted on these" in capsys.readouterr().out
