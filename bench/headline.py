"""The headline of a sweep, MAMF-finder style, and the tf32 sanity check on it.

A sweep's best case is only a candidate: its shape is measured again with a longer run, and the
headline is the median of that confirmation (mamf-finder re-runs its best shape; a single lucky
median of a short, noisy case never becomes the figure). A case whose samples spread more than
MAX_HEADLINE_COV cannot be the headline. Pure functions over records: the suite runs the cases.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

from recoque.bench.schema import Record

MAX_HEADLINE_COV = 0.10  # CoV (stdev/mean of the samples) above which a case cannot be the headline
CONFIRM_BUDGET_FACTOR = 4  # the confirmation samples for this many times the sweep's budget
TF32_MIN_GAIN = 1.05  # tf32 must beat fp32 by more than this factor to count as tf32
HEADLINE_TAG, CONFIRM_TAG = "headline", "confirmation"
TF32_UNCONFIRMED_TAG = "tf32_not_confirmed"


def candidate(records: Iterable[Record], dtype: str, benchmark: str = "gemm", top: int = 3) -> Record | None:
    """The sweep record to confirm: the fastest whose CoV is within MAX_HEADLINE_COV, else, among
    the `top` fastest, the steadiest (its confirmation then has to pass the CoV test itself)."""
    mine = [r for r in records if r.benchmark == benchmark and r.dtype == dtype
            and "sweep" in r.tags and CONFIRM_TAG not in r.tags]
    if not mine:
        return None
    steady = [r for r in mine if r.stats()["cov"] <= MAX_HEADLINE_COV]
    if steady:
        return max(steady, key=lambda r: r.achieved)
    fastest = sorted(mine, key=lambda r: r.achieved, reverse=True)[:top]
    return min(fastest, key=lambda r: r.stats()["cov"])


def is_stable(rec: Record) -> bool:
    return rec.stats()["cov"] <= MAX_HEADLINE_COV


def headline(records: Sequence[Record]) -> Record | None:
    """The record a group's headline figure comes from: the confirmation run when there is one
    (its median), else the fastest stable record, else None (nothing steady enough)."""
    confirmed = [r for r in records if HEADLINE_TAG in r.tags]
    if confirmed:
        return confirmed[-1]
    steady = [r for r in records if is_stable(r)]
    return max(steady, key=lambda r: r.achieved) if steady else None


def tf32_confirmed(tf32_rate: float, fp32_rate: float, min_gain: float = TF32_MIN_GAIN) -> bool:
    """tf32 counts as tf32 only when it measurably beats fp32 on the same device.

    On PyTorch-ROCm allow_tf32 is ignored without HIPBLASLT_ALLOW_TF32=1; then the 'tf32' case runs
    fp32 and measures fp32's rate. Within min_gain of fp32 it is reported as not confirmed.
    """
    return fp32_rate <= 0 or tf32_rate > min_gain * fp32_rate


def mark_tf32(records: list[Record]) -> tuple[list[Record], float | None]:
    """Tag every tf32 GEMM record 'tf32_not_confirmed' when tf32's headline is within TF32_MIN_GAIN
    of fp32's; returns the records and the tf32/fp32 ratio (None when either is missing)."""
    best = {}
    for dtype in ("tf32", "fp32"):
        group = [r for r in records if r.benchmark == "gemm" and r.dtype == dtype and "llm" not in r.tags]
        h = headline(group) or (max(group, key=lambda r: r.achieved) if group else None)
        best[dtype] = h.achieved if h else None
    if best["tf32"] is None or best["fp32"] is None:
        return records, None
    ratio = best["tf32"] / best["fp32"]
    if tf32_confirmed(best["tf32"], best["fp32"]):
        return records, ratio
    out = [replace(r, tags=tuple(r.tags) + (TF32_UNCONFIRMED_TAG,))
           if r.benchmark == "gemm" and r.dtype == "tf32" and TF32_UNCONFIRMED_TAG not in r.tags else r
           for r in records]
    return out, ratio
