"""HPL model held against TOP500 runs it did not learn from (seeds/top500.toml).

For every reference run the model is asked with that machine left out of the calibration
(leave-one-out); for every check run (never used to calibrate) it is asked as it stands. Each row
prints the published Rmax, the predicted centre and [low-high] range, the error and whether the
published figure lies inside the range; each role ends with its mean |error| and inside fraction,
per device family and overall.

    python benchmarks/hpl_holdout.py [--role reference --role check] [--json]

Exit 0 always (it measures; tests/test_hpl_holdout.py holds the guards).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys

import holdout_cli
from recoque.planner.hpl import check_against_top500


def summary(rows: list[dict]) -> dict:
    return {"machines": len(rows),
            "mean_abs_error": statistics.mean(abs(r["error"]) for r in rows) if rows else None,
            "inside_fraction": sum(r["inside_range"] for r in rows) / len(rows) if rows else None}


def family_ratios(rows: list[dict]) -> dict[str, list[tuple[float, float]]]:
    """(predicted / published Rmax, GPUs) of each row, by device family."""
    return holdout_cli.ratios_by(rows, lambda r: str(r["family"]))


def _line(r: dict) -> str:
    m = r["model"]
    return (f"{r['machine']:<26} {r['device']:<14} {r['gpus']:>8,.0f} {r['top500_rmax_flop_s'] / 1e15:>9.1f} "
            f"{m.value / 1e15:>9.1f} [{m.low / 1e15:>8.1f}-{m.high / 1e15:>8.1f}] {r['error']:>+7.1%} "
            f"{'yes' if r['inside_range'] else 'NO':>6}")


def report(rows: list[dict], roles: list[str]) -> str:
    out = []
    for role in roles:
        mine = [r for r in rows if r["role"] == role]
        title = "leave-one-out" if role == "reference" else "held out (never calibrate)"
        out.append(f"\n== {role}: {title} ==")
        out.append(f"{'machine':<26} {'device':<14} {'GPUs':>8} {'Rmax PF':>9} {'model PF':>9} "
                   f"{'[low-high] PF':>20} {'error':>7} {'inside':>6}")
        out += [_line(r) for r in sorted(mine, key=lambda r: -r["top500_rmax_flop_s"])]
        for fam in sorted({str(r["family"]) for r in mine}):
            s = summary([r for r in mine if str(r["family"]) == fam])
            out.append(f"  family {fam:<8} n={s['machines']:>3}  mean |error| {s['mean_abs_error']:.1%}  "
                       f"inside {s['inside_fraction']:.0%}")
        s = summary(mine)
        if s["machines"]:
            out.append(f"  {role} overall n={s['machines']}  mean |error| {s['mean_abs_error']:.1%}  "
                       f"inside {s['inside_fraction']:.0%}")
        if role == "check" and mine:
            out.append(holdout_cli.floor_line(family_ratios(mine)))
    return "\n".join(out)


def as_json(rows: list[dict], roles: list[str]) -> dict:
    """What the table prints: per role its summary, per family and every machine (model as an estimate)."""
    out = {}
    for role in roles:
        mine = [r for r in rows if r["role"] == role]
        out[role] = summary(mine)
        out[role]["families"] = {f: summary([r for r in mine if str(r["family"]) == f])
                                 for f in sorted({str(r["family"]) for r in mine})}
        out[role]["rows"] = [{**r, "model": r["model"].to_json()} for r in mine]
        if role == "check" and mine:
            groups = family_ratios(mine)
            out[role]["recalibration_floor"] = holdout_cli.recalibration_floor(groups)[0]
            scaled, b = holdout_cli.scaled_recalibration_floor(groups)
            out[role]["recalibration_floor_with_scale"] = {"mean_abs_error": scaled, "gpu_exponent": b}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--role", action="append", choices=["reference", "check"])
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    roles = a.role or ["reference", "check"]
    rows = check_against_top500(tuple(roles))
    if a.json:
        print(json.dumps(as_json(rows, roles), indent=2))
    else:
        print(report(rows, roles))
    return 0


if __name__ == "__main__":
    sys.exit(main())
