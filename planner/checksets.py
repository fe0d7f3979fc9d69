"""Check sets: published runs the models are held against and never calibrated on.

seeds/train_checks.toml (training, the layout of seeds/validation.toml's [[cases]]) and
seeds/serving_checks.toml (serving, its [[serving]] cases). Each row is one published run with the
prediction, its low-high range, the error (predicted / published - 1) and whether the published
figure lies inside the range; `summary` gives mean and max |error| and the inside fraction over the
rows in the verdict (a training run whose hardware or plan the model cannot represent is shown with
`why_not_in_verdict` and left out). `recoque validate --checks` and benchmarks/*_holdout.py print them.
"""
from __future__ import annotations

import statistics
from typing import Any, Iterable

from recoque.catalog import get_device_spec, load_catalog
from recoque.planner import serving_validation, validation
from recoque.planner.system import load_system

TRAINING_FILE, SERVING_FILE = "train_checks.toml", "serving_checks.toml"


def training_rows(cases: Iterable[Any] | None = None) -> list[dict[str, Any]]:
    cat = load_catalog()
    out = []
    for c in validation.load_cases(TRAINING_FILE) if cases is None else cases:
        r = validation.run_case(c)
        dev = cat.get(c.system.device)
        out.append({**r.to_json(), "vendor": dev.vendor if dev else "?", "device": c.system.device,
                    "inside": r.predicted_low_s <= c.published_time_s <= r.predicted_high_s,
                    "in_verdict": c.in_verdict, "why_not_in_verdict": c.why_not_in_verdict})
    return out


def serving_rows(cases: Iterable[Any] | None = None) -> list[dict[str, Any]]:
    out = []
    for c in serving_validation.load_cases(seed_file=SERVING_FILE) if cases is None else cases:
        chk = serving_validation.run_case(c)
        e = chk.estimate
        out.append({**chk.to_json(), "vendor": get_device_spec(load_system(c.system).device).vendor,
                    "predicted_low": e.tokens_per_s_system.low if e else None,
                    "predicted_high": e.tokens_per_s_system.high if e else None, "in_verdict": c.in_verdict,
                    "why_not_in_verdict": c.why_not_in_verdict})
    return out


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Over the rows in the verdict: runs, failed (no estimate), mean and max |error|, inside fraction."""
    rs = [r for r in rows if r.get("in_verdict", True)]
    errs = [abs(r["error"]) for r in rs if r["error"] is not None]
    return {"runs": len(rs), "failed": len(rs) - len(errs),
            "mean_abs_error": statistics.mean(errs) if errs else None, "max_abs_error": max(errs) if errs else None,
            "inside_fraction": sum(bool(r["inside"]) for r in rs) / len(rs) if rs else None}


def by_vendor(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {v: summary([r for r in rows if r["vendor"] == v]) for v in sorted({r["vendor"] for r in rows})}
