"""The command line the check-set scripts share (train_holdout.py, serving_holdout.py): the shipped
check file or --file PATH, a table or --json with the rows and their summary; and the recalibration
floor the HPL and HPCG scripts print under their check rows."""
from __future__ import annotations

import argparse
import tomllib
from typing import Any, Callable

from recoque.planner.checksets import by_vendor
from recoque.render import emit_json


def verdict_mark(r: dict) -> str:
    """What a row's line ends with when the row is shown but not in the verdict."""
    return "" if r["in_verdict"] else "  (not in the verdict)"


def left_out_lines(rs: list[dict], name: str) -> list[str]:
    """One line per row left out of the verdict, with why; `name` is the rows' key field."""
    return [f"  not in the verdict: {r[name]}: {r['why_not_in_verdict']}" for r in rs if not r["in_verdict"]]


def vendor_lines(rs: list[dict]) -> list[str]:
    """One summary line per vendor: runs, mean and max |error|, share inside the printed range."""
    return [f"  {vendor:<8} n={s['runs']:>3}  mean |error| {s['mean_abs_error']:.1%}  "
            f"max {s['max_abs_error']:.1%}  inside {s['inside_fraction']:.0%}" for vendor, s in by_vendor(rs).items()]


def run(description: str, argv: list[str] | None, shipped: Callable[[], list[Any]],
        from_file: Callable[[dict[str, Any], str], list[Any]], rows: Callable[[list[Any]], list[dict]],
        summary: Callable[[list[dict]], dict], report: Callable[[list[dict]], str]) -> int:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--file", help="a check file of the same layout (default: the shipped one)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.file:
        with open(a.file, "rb") as fh:
            cases = from_file(tomllib.load(fh), a.file)
    else:
        cases = shipped()
    rs = rows(cases)
    if a.json:
        emit_json({"rows": rs, "summary": summary(rs)})  # estimates as value / low / high, not their repr
    else:
        print(report(rs))
    return 0


def ratios_by(rows: list[dict], family: Callable[[dict], str]) -> dict[str, list[float]]:
    """predicted / published (1 + error) of each row, grouped by `family(row)`."""
    out: dict[str, list[float]] = {}
    for r in rows:
        out.setdefault(family(r), []).append(1.0 + r["error"])
    return out


def best_constant(ratios: list[float]) -> float:
    """The c that minimises mean |c r - 1| over ratios r = predicted / published: sum r |c - 1/r| is
    least at the median of 1/r weighted by r (a weighted L1 fit)."""
    pts = sorted((1.0 / r, r) for r in ratios)
    half, run_w = sum(r for r in ratios) / 2.0, 0.0
    for inv, w in pts:
        run_w += w
        if run_w >= half:
            return inv
    raise ValueError("no ratios")


def recalibration_floor(groups: dict[str, list[float]]) -> tuple[float, dict[str, float]]:
    """Mean |error| left if each group's constant were re-fitted on these very rows (one constant per
    device family, the best one for the rows), and each group's best constant. No model may fit its
    check set; this is the spread inside the families, which no estimate built from the device and
    the GPU count alone can go below."""
    errs, best = [], {}
    for g, rs in groups.items():
        best[g] = best_constant(rs)
        errs += [abs(best[g] * r - 1.0) for r in rs]
    return sum(errs) / len(errs), best


def floor_line(groups: dict[str, list[float]]) -> str:
    floor, _ = recalibration_floor(groups)
    n = sum(len(v) for v in groups.values())
    return (f"  floor: one constant per family re-fitted on these {n} rows themselves would still leave mean "
            f"|error| {floor:.1%} (the spread inside the families: out of reach of any estimate from device and GPU count)")
