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


def ratios_by(rows: list[dict], family: Callable[[dict], str]) -> dict[str, list[tuple[float, float]]]:
    """(predicted / published = 1 + error, GPUs of the run) of each row, grouped by `family(row)`."""
    out: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        out.setdefault(family(r), []).append((1.0 + r["error"], float(r["gpus"])))
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


def recalibration_floor(groups: dict[str, list[tuple[float, float]]]) -> tuple[float, dict[str, float]]:
    """Mean |error| left if each group's constant were re-fitted on these very rows (one constant per
    device family, the best one for the rows), and each group's best constant. No model may fit its
    check set; this is the spread inside the families that a per-family constant cannot remove."""
    errs, best = [], {}
    for g, pairs in groups.items():
        rs = [r for r, _ in pairs]
        best[g] = best_constant(rs)
        errs += [abs(best[g] * r - 1.0) for r in rs]
    return sum(errs) / len(errs), best


# Exponents b tried for the shared scale term GPUs^b: -0.15..+0.15 in steps of 0.001 (a weak-scaling loss
# of 1% per doubling of the GPU count is b = -0.0145).
SCALE_EXPONENTS = tuple(k / 1000.0 for k in range(-150, 151))


def scaled_recalibration_floor(groups: dict[str, list[tuple[float, float]]],
                               exponents: tuple[float, ...] = SCALE_EXPONENTS) -> tuple[float, float]:
    """Mean |error| left if each family's constant and one shared power of the GPU count (prediction x
    c_family x GPUs^b) were re-fitted on these very rows, and that b: how much of what a constant per
    family leaves a scale term (the machine's size, the one other input the check rows give) could take."""
    def floor_at(b: float) -> float:
        return recalibration_floor({g: [(r * n ** b, n) for r, n in pairs] for g, pairs in groups.items()})[0]
    return min(((floor_at(b), b) for b in exponents), key=lambda fb: fb[0])


def floor_line(groups: dict[str, list[tuple[float, float]]]) -> str:
    floor, _ = recalibration_floor(groups)
    scaled, b = scaled_recalibration_floor(groups)
    n = sum(len(v) for v in groups.values())
    return (f"  floor: one constant per family re-fitted on these {n} rows themselves would still leave mean "
            f"|error| {floor:.1%}; with a shared power of the GPU count as well (x GPUs^b, b = {b:+.3f} re-fitted) "
            f"{scaled:.1%} (the spread inside the families that neither a constant per family nor a power of the GPU count removes)")
