"""HPCG model held against the HPCG list: each entry predicted with its machine left out.

    python benchmarks/hpcg_holdout.py [--pooling global|vendor] [--central median|mean] [--json]

Per entry: published vs predicted [low-high], error, inside. Per role: mean |error| and the fraction
of published figures inside the printed range: "reference" is leave-one-out on the four calibration
machines (Frontier, El Capitan, Alps, Leonardo), "check" the entries never used to calibrate.
Then the same two summaries for every pooling x central rule, which is how the seed's choice
([calibration] in seeds/hpcg.toml) was made: the lowest reference leave-one-out error.
"""
from __future__ import annotations

import argparse
import json
import sys

import holdout_cli
from recoque.planner import hpcg

PF = 1e15


def rows_for(how: str, rule: str) -> list[dict]:
    return hpcg.check_against_hpcg(("reference", "check"), how, rule)


def print_rows(rows: list[dict]) -> None:
    print(f"{'entry':20s} {'role':9s} {'device':14s} {'list':7s} {'GPUs':>7s} {'published':>9s} "
          f"{'predicted':>9s} {'[low':>8s} {'high]':>8s} {'error':>7s} inside")
    for r in rows:
        m = r["model"]
        print(f"{r['entry']:20s} {r['role']:9s} {r['device']:14s} {r['hpcg_list']:7s} {r['gpus']:7.0f} "
              f"{r['published_flop_s'] / PF:9.3f} {m.value / PF:9.3f} {m.low / PF:8.3f} {m.high / PF:8.3f} "
              f"{r['error']:+7.1%} {'yes' if r['inside_range'] else 'NO'}")


def summaries(rows: list[dict]) -> dict[str, dict]:
    return {role: hpcg.summary([r for r in rows if r["role"] == role]) for role in ("reference", "check")}


def family_ratios(rows: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """(predicted / published HPCG, GPUs) of each check row, by memory family (seeds/hpcg.toml [memory_families])."""
    checks = [r for r in rows if r["role"] == "check"]
    return holdout_cli.ratios_by(checks, lambda r: str(hpcg.memory_family(r["device"])))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pooling", choices=hpcg.POOLINGS, default=None)
    ap.add_argument("--central", choices=hpcg.CENTRALS, default=None)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    how, rule = a.pooling or hpcg.pooling(), a.central or hpcg.central_rule()
    rows = rows_for(how, rule)
    grid = {f"{h}/{c}": summaries(rows_for(h, c)) for h in hpcg.POOLINGS for c in hpcg.CENTRALS}
    if a.json:
        groups = family_ratios(rows)
        scaled, b = holdout_cli.scaled_recalibration_floor(groups)
        out = {"pooling": how, "central": rule, "summary": summaries(rows), "variants": grid,
               "recalibration_floor": holdout_cli.recalibration_floor(groups)[0],
               "recalibration_floor_with_scale": {"mean_abs_error": scaled, "gpu_exponent": b},
               "rows": [{**r, "model": r["model"].to_json()} for r in rows]}
        json.dump(out, sys.stdout, indent=1)
        print()
        return 0
    print(f"HPCG model, pooling={how}, central={rule} (PFLOP/s; each machine left out of its own estimate)")
    print_rows(rows)
    for role, s in summaries(rows).items():
        print(f"{role:9s}: n={s['n']:2d}  mean |error| {s['mean_abs_error']:.1%}  inside {s['inside_fraction']:.0%}")
    print(holdout_cli.floor_line(family_ratios(rows)))
    print("variants (reference leave-one-out | check):")
    for k, s in grid.items():
        r, c = s["reference"], s["check"]
        print(f"  {k:14s} {r['mean_abs_error']:6.1%} inside {r['inside_fraction']:4.0%} | "
              f"{c['mean_abs_error']:6.1%} inside {c['inside_fraction']:4.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
