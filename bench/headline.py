"""The headline of every benchmark group, MAMF-finder style, and the tf32 sanity check on it.

A group is one row of the results table: (benchmark, op, dtype, kind), kind "llm" for the LLM layer
GEMMs and "sweep" for the rest. Its best case is only a candidate: the candidate is measured again
with a longer budget, in CONFIRM_ROUNDS rounds that alternate with the other groups' candidates, and
the headline is the median of the rounds' medians (mamf-finder re-runs its best shape; alternating
rounds keep a burst of load from another job out of the figure, since it lands in one round only).
A case whose samples spread more than MAX_HEADLINE_COV cannot be the headline.

Spread is the quartile spread, (Q3 - Q1) / 1.349 / median: the CoV a normal sample with that
interquartile range would have. The plain CoV (stdev / mean) of five samples doubles when one call
loses a 4 ms time slice to another process, although the median -- the figure -- has not moved; on
a shared machine that made the fastest case "unsteady" and handed the headline to a case half as
fast (attention bwd bf16: causal instead of full). Pure functions over records: the suite runs cases.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Sequence

from recoque.bench.noise import spread
from recoque.bench.schema import Record

# STREAM's figure is the best rate over the repeats, not the median: McCalpin's stream.c prints "Best
# Rate MB/s" from the minimum time of its NTIMES runs, and BabelStream (UoB-HPC/BabelStream
# src/main.cpp) prints bytes / the minimum time over its num_times runs, the first dropped (its CSV
# column max_mbytes_per_sec). AMD's BabelStream floors (seeds/acceptance.toml: hip-stream -n 50) are
# read off that output, and the datasheet fraction is set below them, so every STREAM threshold is
# held against the same statistic; the median stays beside it (Check.median).
BEST_RATE_BENCHMARKS = ("stream",)

MAX_HEADLINE_COV = 0.10  # quartile spread (as a CoV) above which a case cannot be the headline
CONFIRM_BUDGET_FACTOR = 6  # the confirmation samples this many times the sweep's budget, over all rounds
CONFIRM_ROUNDS = 3  # odd: the median round is one measured round, not an average of two
TF32_MIN_GAIN = 1.05  # tf32 must beat fp32 by more than this factor to count as tf32
HEADLINE_TAG, CONFIRM_TAG = "headline", "confirmation"
ROUND_PREFIX = "confirm_round:"  # confirm_round:k/n on every round record of a confirmation
OTHER_CPU_PREFIX = "other_cpu_cores:"  # cores other processes kept busy during a round (noise.cpu_busy)
CONTENDED_CORES = 0.25  # a round measured while others used more than this is set aside when others were not
TF32_UNCONFIRMED_TAG = "tf32_not_confirmed"
NOT_CANDIDATES = {"acceptance", "fast_accum", CONFIRM_TAG}  # figures of their own, never a sweep's headline
UNSTEADY, STEADY, CONFIRMED = "unsteady", "steady", "confirmed"


def is_stable(rec: Record) -> bool:
    return spread(rec.times_s) <= MAX_HEADLINE_COV


def kind(rec: Record) -> str:
    return "llm" if "llm" in rec.tags else "sweep"


def group_key(rec: Record) -> tuple[str, str, str, str]:
    """The table row a record belongs to (bench/summary.py groups the same way)."""
    return rec.benchmark, rec.op, rec.dtype, kind(rec)


def _is_candidate(rec: Record) -> bool:
    if not rec.verified or NOT_CANDIDATES & set(rec.tags):
        return False
    return rec.benchmark != "gemm" or "sweep" in rec.tags or "llm" in rec.tags


def candidate(records: Iterable[Record], dtype: str, benchmark: str = "gemm", top: int = 3,
              op: str | None = None, of_kind: str = "sweep") -> Record | None:
    """The record to confirm: the fastest steady one, else, among the `top` fastest, the steadiest
    (its confirmation then has to pass the spread test itself)."""
    mine = [r for r in records if r.benchmark == benchmark and r.dtype == dtype and (op is None or r.op == op)
            and kind(r) == of_kind and _is_candidate(r)]
    if not mine:
        return None
    steady = [r for r in mine if is_stable(r)]
    if steady:
        return max(steady, key=lambda r: r.achieved)
    fastest = sorted(mine, key=lambda r: r.achieved, reverse=True)[:top]
    return min(fastest, key=lambda r: spread(r.times_s))


def identity(rec: Record) -> tuple:
    """What makes two records the same case (its backend and parameters: a CPU grid runs numpy and
    torch at the same shapes), whatever run measured them."""
    return (rec.backend or "",) + tuple(sorted((k, repr(v)) for k, v in dict(rec.params).items()))


def _group_candidates(records: Sequence[Record], key: tuple[str, str, str, str]) -> list[Record]:
    """The group's candidate and, when another case was faster in the sweep (its short run judged
    unsteady), that one too: both are confirmed and the faster steady confirmation is the headline.
    With one candidate, a single noisy short run of the fastest case (attention full vs causal)
    decided which case the headline measured, and the figure jumped 2x between runs."""
    b, op, dt, k = key
    first = candidate(records, dt, b, op=op, of_kind=k)
    if first is None:
        return []
    mine = [r for r in records if group_key(r) == key and _is_candidate(r)]
    fastest = max(mine, key=lambda r: r.achieved)
    return [first] if identity(fastest) == identity(first) else [first, fastest]


def candidates(records: Sequence[Record], benchmark: str) -> list[Record]:
    """The candidates of every group of `benchmark` (one or two each), in the order measured."""
    keys = dict.fromkeys(group_key(r) for r in records if r.benchmark == benchmark and _is_candidate(r))
    return [c for key in keys for c in _group_candidates(records, key)]


def round_tag(k: int, n: int) -> str:
    return f"{ROUND_PREFIX}{k}/{n}"


def round_of(rec: Record) -> int | None:
    """Which round of its confirmation a record is (1-based); None for a single-run confirmation."""
    for tag in rec.tags:
        if tag.startswith(ROUND_PREFIX):
            return int(tag[len(ROUND_PREFIX):].partition("/")[0])
    return None


def other_cores(rec: Record) -> float | None:
    """Cores other processes used while the record was measured (None when not known)."""
    for tag in rec.tags:
        if tag.startswith(OTHER_CPU_PREFIX):
            return float(tag[len(OTHER_CPU_PREFIX):])
    return None


def _case_rounds(records: Sequence[Record], ident: tuple) -> list[Record]:
    """The round records of one case's last confirmation (several after --append: the last one)."""
    conf = [r for r in records if HEADLINE_TAG in r.tags and identity(r) == ident]
    starts = [i for i, r in enumerate(conf) if round_of(r) in (None, 1)]
    return conf[starts[-1]:] if starts else conf


def rounds(records: Sequence[Record]) -> list[Record]:
    """The round records of the confirmation the group's figure comes from (see confirmed)."""
    conf = confirmed(records)
    return _case_rounds(records, identity(conf)) if conf is not None else []


def quiet_rounds(recs: Sequence[Record]) -> list[Record]:
    """The rounds measured while no other process kept a core busy, when there are any; else all."""
    quiet = [r for r in recs if (other_cores(r) or 0.0) <= CONTENDED_CORES]
    return quiet or list(recs)


def median_round(recs: Sequence[Record]) -> Record | None:
    """The round whose median is the median of the rounds' medians (of two, the slower)."""
    if not recs:
        return None
    return sorted(recs, key=lambda r: r.median_s)[len(recs) // 2]


def confirmed(records: Sequence[Record]) -> Record | None:
    """Per confirmed case, its median round (among its uncontended rounds); of those, the fastest
    steady one, else the fastest (then unsteady); None if the group was not confirmed."""
    idents = dict.fromkeys(identity(r) for r in records if HEADLINE_TAG in r.tags)
    meds = [m for m in (median_round(quiet_rounds(_case_rounds(records, i))) for i in idents) if m is not None]
    if not meds:
        return None
    steady = [m for m in meds if is_stable(m)]
    return max(steady or meds, key=lambda r: r.achieved)


def headline(records: Sequence[Record]) -> Record | None:
    """The record a group's headline figure comes from: the confirmation's median round when it is
    steady; None when it is not (an unsteady case is never the headline, and another shape's short
    run is no stand-in for it: that swapped 2x figures from run to run); without a confirmation
    (older files, unconfirmed benchmarks) the fastest steady record, else None."""
    conf = confirmed(records)
    if conf is not None:
        return conf if is_stable(conf) else None
    steady = [r for r in _candidates_or_all(records) if is_stable(r) and CONFIRM_TAG not in r.tags]
    return max(steady, key=lambda r: r.achieved) if steady else None


def _candidates_or_all(records: Sequence[Record]) -> list[Record]:
    """The group's sweep candidates (not its acceptance or fast-accumulation shapes, figures of their
    own); a group of nothing else (a file of acceptance shapes only) stands as it is."""
    mine = [r for r in records if _is_candidate(r) or CONFIRM_TAG in r.tags]
    return mine or list(records)


def figure(records: Sequence[Record]) -> tuple[Record, str]:
    """The record a table row shows and how it was chosen: 'confirmed', 'steady' (the fastest
    steady case, unconfirmed) or 'unsteady' (no headline: the confirmation's median round, else the
    steadiest of the fastest cases, never simply the fastest -- a lucky short median)."""
    best = headline(records)
    if best is not None:
        return best, CONFIRMED if HEADLINE_TAG in best.tags else STEADY
    conf = confirmed(records)
    if conf is not None:
        return conf, UNSTEADY
    fastest = sorted(_candidates_or_all(records), key=lambda r: r.achieved, reverse=True)[:3]
    return min(fastest, key=lambda r: spread(r.times_s)), UNSTEADY


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
        best[dtype] = figure(group)[0].achieved if group else None
    if best["tf32"] is None or best["fp32"] is None:
        return records, None
    ratio = best["tf32"] / best["fp32"]
    if tf32_confirmed(best["tf32"], best["fp32"]):
        return records, ratio
    out = [replace(r, tags=tuple(r.tags) + (TF32_UNCONFIRMED_TAG,))
           if r.benchmark == "gemm" and r.dtype == "tf32" and TF32_UNCONFIRMED_TAG not in r.tags else r
           for r in records]
    return out, ratio


def held_rate(rec: Record) -> float:
    """The rate a threshold is held against: STREAM's best over the repeats of the record the table
    shows (its round chosen as for the median, bench/headline.figure, never the fastest round), else
    the rate at the median time."""
    return rec.best if rec.benchmark in BEST_RATE_BENCHMARKS else rec.achieved
