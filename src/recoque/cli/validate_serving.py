"""The serving section of `recoque validate`: published MLPerf / TensorRT-LLM / vLLM serving results
through planner.serving, output tokens/s predicted vs published, error per case."""
from __future__ import annotations

from typing import Any

from recoque.planner import serving_validation as sv
from recoque.render import console, fmt, table


def _ms(x: float | None) -> str:
    return "" if x is None else fmt(x * 1e3)


def serving_section(as_json: bool) -> tuple[dict[str, Any], bool]:
    """Run every [[serving]] case; print the table unless as_json; return (JSON data, calibration passed)."""
    checks = sv.run_all()
    summaries = {role: sv.summarize(checks, role) for role in sv.ROLES}
    passed = bool(summaries["calibration"].passed)
    data = {"cases": [c.to_json() for c in checks],
            "summary": {r: vars(s) for r, s in summaries.items()},
            "thresholds": {"calibration_mean_abs_error": sv.CALIBRATION_MEAN_ABS_ERROR,
                           "calibration_max_abs_error": sv.CALIBRATION_MAX_ABS_ERROR}, "passed": passed}
    if as_json:
        return data, passed
    rows = []
    for c in checks:
        e = c.estimate
        t = e.tokens_per_s_system if e else None
        rows.append((c.case.key, c.case.role, fmt(c.case.published_tokens_per_s),
                     f"{fmt(t.value)} [{fmt(t.low)}-{fmt(t.high)}]" if t else c.note,
                     "" if c.error is None else f"{c.error:+.1%}", "yes" if c.inside else "NO",
                     f"{_ms(c.case.published_ttft_s)} / {_ms(c.case.published_tpot_s)}" if c.case.published_tpot_s else "",
                     f"{_ms(e.ttft.value)} / {_ms(e.tpot.value)}" if e else "", e.bound if e else ""))
    console.print(table("validation: LLM serving, output tokens/s predicted vs published",
                        ("case", "role", "published", "predicted [low-high]", "error", "inside",
                         "published TTFT / TPOT ms", "predicted TTFT / TPOT ms", "step bound"), rows))
    for role, s in summaries.items():
        verdict = "" if s.passed is None else (": PASS" if s.passed else ": FAIL")
        limits = (f" (thresholds {sv.CALIBRATION_MEAN_ABS_ERROR:.0%} / {sv.CALIBRATION_MAX_ABS_ERROR:.0%}, all inside)"
                  if role == "calibration" else " (no verdict on this set; the TensorRT-LLM rows size the trtllm efficiency range)")
        console.print(f"serving {role}: {s.cases} cases, mean |error| {s.mean_abs_error:.1%}, max {s.max_abs_error:.1%}, "
                      f"published inside low-high {s.inside}/{s.cases}{limits}{verdict}", highlight=False)
    return data, passed
