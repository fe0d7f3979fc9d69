"""The command line the check-set scripts share (train_holdout.py, serving_holdout.py): the shipped
check file or --file PATH, a table or --json with the rows and their summary."""
from __future__ import annotations

import argparse
import json
import sys
import tomllib
from typing import Any, Callable

from recoque.planner.checksets import by_vendor


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
        json.dump({"rows": rs, "summary": summary(rs)}, sys.stdout, indent=2, default=str)
    else:
        print(report(rs))
    return 0
