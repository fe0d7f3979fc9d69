"""The recalibration floor the HPL and HPCG check scripts print: the mean |error| left if one constant
per device family (and, second figure, a shared power of the GPU count) were re-fitted on the check
rows themselves (benchmarks/holdout_cli.py)."""
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
    floor, best = cli.recalibration_floor({"a": [(1.2, 8), (1.2, 64), (1.2, 512)], "b": [(0.8, 8), (0.8, 16)]})
    assert floor == pytest.approx(0.0, abs=1e-12)
    assert best == pytest.approx({"a": 1 / 1.2, "b": 1 / 0.8})
    floor, _ = cli.recalibration_floor({"a": [(0.9, 8), (1.1, 8)]})
    assert floor > 0.0
    with pytest.raises(ValueError):
        cli.best_constant([])


def test_scaled_floor_recovers_a_planted_power_of_the_gpu_count():
    # two families off by their own factor and both by GPUs^0.03 (too fast on big machines): the
    # scale term takes it all, b = -0.03, where one constant per family cannot
    cli = _cli()
    groups = {fam: [(k * n ** 0.03, n) for n in (16, 128, 1024, 8192, 40000)] for fam, k in (("a", 1.1), ("b", 0.85))}
    floor, _ = cli.recalibration_floor(groups)
    scaled, b = cli.scaled_recalibration_floor(groups)
    assert floor > 0.05
    assert scaled == pytest.approx(0.0, abs=1e-9)
    assert b == pytest.approx(-0.03, abs=1e-9)


def test_scaled_floor_is_never_above_the_per_family_floor():
    # b = 0 is on the grid, so the scale term can only help
    cli = _cli()
    rng = random.Random(11)
    for _ in range(10):
        groups = {f: [(rng.lognormvariate(0.0, 0.15), rng.choice([8, 64, 512, 4096])) for _ in range(rng.randint(1, 9))]
                  for f in "abc"}
        assert cli.scaled_recalibration_floor(groups)[0] <= cli.recalibration_floor(groups)[0] + 1e-12


@pytest.mark.parametrize("script", ["hpl_holdout", "hpcg_holdout"])
def test_scripts_report_a_floor_no_higher_than_their_own_error(script, capsys):
    # c = 1 is one of the constants the floor may pick, so it can never exceed the model's own error
    mod = load_script(script)
    mod.main(["--json"])
    out = json.loads(capsys.readouterr().out)
    check = out["check"] if script == "hpl_holdout" else out["summary"]["check"]
    where = out["check"] if script == "hpl_holdout" else out
    floor, scaled = where["recalibration_floor"], where["recalibration_floor_with_scale"]
    assert 0.0 < floor <= check["mean_abs_error"] + 1e-12
    assert 0.0 < scaled["mean_abs_error"] <= floor + 1e-12
    assert -0.15 <= scaled["gpu_exponent"] <= 0.15
    mod.main([])
    printed = capsys.readouterr().out
    assert "floor: one constant per family re-fitted on these" in printed
    assert "with a shared power of the GPU count as well" in printed
