"""Compare two or more results documents case by case: ratio of medians with its uncertainty.

What is compared. Cases are matched on (benchmark, op, dtype, params, LLM-layer or sweep), the
params without what a merge of ranks added about the run (bench/rankmerge.py PER_RUN_PARAMS: each
rank's median, the slowest rank and host), else no collective of one run would pair with the same
collective of another; where one document holds several records with that key (the CPU GEMM runs
torch and numpy on the same shape) they are paired by backend. The ratio is B's rate over A's rate
at the median time, so a ratio above 1 means B is faster; because the work per call must be the
same, that is also median_time_A / median_time_B.

Uncertainty. A percentile bootstrap of the ratio of medians from the raw samples (fixed seed, so
the same files always give the same answer); the difference is called real when the 95% interval
excludes 1 and the change is at least `min_effect` (1% by default: below that, clock and
placement noise on these machines dominates, as pyperf's "not significant" rule of thumb).
Where scipy is importable, a two-sided Mann-Whitney U p-value is added as a second opinion; the
verdict does not depend on it, so the answer is the same with or without scipy.

What is refused (BadInput). The same case counted differently: different unit or a different
flop_count / bytes_moved / kernel_count per call (different benchmark definitions: a changed FLOP formula,
another byte-counting convention). Documents are read through `schema.load_results`, so an old
schema version is migrated first and the tool version is only reported. Different machines are
the point of a comparison: the environment and device fields that differ are listed, never merged.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from recoque.bench.rankmerge import case_params
from recoque.bench.schema import Record, ResultsDocument
from recoque.bench.summary import run_label
from recoque.errors import BadInput

BOOTSTRAP_N = 2000
BOOTSTRAP_SEED = 20240611
CONFIDENCE = 0.95
MIN_EFFECT = 0.01
# The percentile bootstrap of a median ratio is too narrow on tiny samples: with A and B drawn from one
# distribution its 95% interval excluded 1 in 9.8% of trials at 3 samples each, 2.5% at 5 (a review's
# simulation, stop 112); the quick policy's own minimum is 5.
MIN_SAMPLES = 5
# Measured each run, listed apart, not as a difference: the CPU clock, and the GPU's one idle reading
# of clock, power and temperature taken at capture (bench/environment.py _gpu_clocks)
VOLATILE_ENV = ("cpu_clock_hz", "cpu_clock_source", "gpu_clock_mhz", "gpu_power_w", "gpu_temp_c", "gpu_energy_j")


@dataclass(frozen=True)
class CaseComparison:
    """One case in A and B. ratio = rate_B / rate_A at the median times (>1: B faster)."""

    benchmark: str
    op: str
    dtype: str
    params: Mapping[str, Any]
    unit: str
    achieved_a: float
    achieved_b: float
    samples_a: int
    samples_b: int
    ratio: float
    ratio_low: float | None
    ratio_high: float | None
    p_value: float | None
    verdict: str  # "faster", "slower", "same within noise", "below the effect threshold", "too few samples"
    backend_a: str | None = None
    backend_b: str | None = None
    kind: str = "sweep"
    run: str = "sweep"  # the pass of A's record (bench.summary.run_label): sweep, confirmation k/n, acceptance

    @property
    def interval_text(self) -> str:
        """The 95% interval, rounded outward (interval_text)."""
        if self.ratio_low is None or self.ratio_high is None:
            return "n/a"
        return interval_text(self.ratio_low, self.ratio_high)

    @property
    def significant(self) -> bool:
        return self.verdict in ("faster", "slower")

    def to_json(self) -> dict[str, Any]:
        return {"benchmark": self.benchmark, "op": self.op, "dtype": self.dtype, "params": dict(self.params),
                "kind": self.kind, "unit": self.unit, "achieved_a": self.achieved_a, "achieved_b": self.achieved_b,
                "samples_a": self.samples_a, "samples_b": self.samples_b, "ratio": self.ratio,
                "ratio_low": self.ratio_low, "ratio_high": self.ratio_high, "p_value": self.p_value,
                "verdict": self.verdict, "significant": self.significant,
                "backend_a": self.backend_a, "backend_b": self.backend_b, "run": self.run}


@dataclass(frozen=True)
class Comparison:
    """A (the baseline) against B, every matched case, and what differs between the two runs."""

    label_a: str
    label_b: str
    cases: tuple[CaseComparison, ...]
    only_in_a: tuple[str, ...] = ()
    only_in_b: tuple[str, ...] = ()
    environment_differences: tuple[tuple[str, Any, Any], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)
    min_effect: float = MIN_EFFECT

    @property
    def n_significant(self) -> int:
        return sum(c.significant for c in self.cases)

    def to_json(self) -> dict[str, Any]:
        return {"a": self.label_a, "b": self.label_b, "method": method_text(self.min_effect),
                "cases": [c.to_json() for c in self.cases], "only_in_a": list(self.only_in_a),
                "only_in_b": list(self.only_in_b), "n_significant": self.n_significant,
                "environment_differences": [{"field": k, "a": a, "b": b} for k, a, b in self.environment_differences],
                "notes": list(self.notes)}


def is_effect(ratio: float, min_effect: float = MIN_EFFECT) -> bool:
    """A change of at least min_effect either way: x2 faster and x2 slower are both a 100% change
    (|ratio - 1| made a 2x slowdown, 0.5, a 50% one, so --min-effect 1 could never see a slowdown)."""
    return max(ratio, 1.0 / ratio) - 1.0 >= min_effect


def ratio_text(ratio: float, min_effect: float = MIN_EFFECT) -> str:
    """B/A at 3 decimals, or as many more (up to 6) as it takes to print on the side of the effect
    threshold the ratio is on: 1.0096 (below 1%) and 1.0104 (above) both printed 1.010."""
    above = is_effect(ratio, min_effect)
    for digits in range(3, 7):
        text = f"{ratio:.{digits}f}"
        if float(text) > 0 and is_effect(float(text), min_effect) == above:
            return text
    return text


def method_text(min_effect: float = MIN_EFFECT) -> str:
    return (f"ratio = rate B / rate A at the median time; {int(CONFIDENCE * 100)}% percentile bootstrap of the "
            f"ratio of medians ({BOOTSTRAP_N} resamples, seed {BOOTSTRAP_SEED}); real when the interval excludes 1 "
            f"and the change, max(ratio, 1/ratio) - 1, is >= {min_effect:.0%}")


# --------------------------------------------------------------------------- matching


def case_label(rec: Record) -> str:
    p = ",".join(f"{k}={v}" for k, v in sorted(case_params(rec.params).items()))
    return f"{rec.benchmark}/{rec.op}/{rec.dtype}[{p}]" + (" (LLM layer)" if "llm" in rec.tags else "")


def _base_key(rec: Record) -> tuple:
    kind = "llm" if "llm" in rec.tags else "sweep"
    return (rec.benchmark, rec.op, rec.dtype, json.dumps(case_params(rec.params), sort_keys=True, default=str), kind)


def _groups(doc: ResultsDocument) -> dict[tuple, list[Record]]:
    out: dict[tuple, list[Record]] = {}
    for r in doc.results:
        out.setdefault(_base_key(r), []).append(r)
    return out


def repeated_cases(a: ResultsDocument, b: ResultsDocument, label_a: str, label_b: str) -> list[str]:
    """A note per case measured a different number of times in A and B (a sweep record plus headline
    confirmation rounds on one side): which records were paired, so none is dropped unsaid."""
    ga, gb = _groups(a), _groups(b)
    out = []
    for key in ga.keys() & gb.keys():
        na, nb = len(ga[key]), len(gb[key])
        if na != nb and max(na, nb) > 1:
            out.append(f"{case_label(ga[key][0])}: {na} records in {label_a}, {nb} in {label_b}; paired round by round "
                       f"(sweep with sweep, confirmation k with k), the unpaired listed as only in one file")
    return sorted(out)


def pair_records(a: ResultsDocument, b: ResultsDocument) -> tuple[list[tuple[Record, Record]], list[str], list[str]]:
    """Matched (A, B) records, then the labels found only in A and only in B."""
    ga, gb = _groups(a), _groups(b)
    pairs: list[tuple[Record, Record]] = []
    only_a: list[str] = []
    only_b: list[str] = []
    for key, recs_a in ga.items():
        recs_b = list(gb.get(key, []))
        if len(recs_a) == 1 and len(recs_b) == 1:  # one each: pair even if the backends differ
            pairs.append((recs_a[0], recs_b[0]))
            continue
        for ra in recs_a:  # round with round only (sweep with sweep, confirmation k with k): a round B lacks is A's alone
            hit = next((rb for rb in recs_b if rb.backend == ra.backend and run_label(rb) == run_label(ra)), None)
            if hit is None:
                only_a.append(f"{case_label(ra)} ({run_label(ra)})")
            else:
                recs_b.remove(hit)
                pairs.append((ra, hit))
        only_b += [f"{case_label(rb)} ({run_label(rb)})" for rb in recs_b]
    for key, recs_b in gb.items():
        if key not in ga:
            only_b += [case_label(rb) for rb in recs_b]
    return pairs, only_a, only_b


def check_same_definition(ra: Record, rb: Record) -> None:
    """Refuse to compare one case counted two ways (a ratio of rates would then mean nothing)."""
    label = case_label(ra)
    if ra.unit != rb.unit:
        raise BadInput(f"{label}: A reports {ra.unit}, B reports {rb.unit}: different benchmark definitions",
                       "compare results written by the same recoque benchmark definitions (re-run the older one)")
    if ra.work != rb.work:
        what = {"TFLOP/s": "flops", "Mkernel/s": "kernels"}.get(ra.unit, "bytes")
        raise BadInput(f"{label}: A counts {ra.work} {what} per call, B counts {rb.work}: different benchmark "
                       "definitions", "re-run both with the same recoque version so the work is counted the same way")


# --------------------------------------------------------------------------- statistics


def interval_text(low: float, high: float) -> str:
    """low-high at 3 decimals, rounded outward (the low end down, the high end up) so the printed
    interval holds everything the computed one does, the ratio included; with more decimals (up to
    9) where 3 would make an interval that excludes 1 (the verdict's test) print as touching it."""
    excludes_one = not low <= 1.0 <= high
    for digits in range(3, 10):
        scale = 10 ** digits
        lo, hi = math.floor(low * scale) / scale, math.ceil(high * scale) / scale
        if (not lo <= 1.0 <= hi) == excludes_one:
            break
    return f"{lo:.{digits}f}-{hi:.{digits}f}"


def bootstrap_ratio(times_a: Sequence[float], times_b: Sequence[float], n_boot: int = BOOTSTRAP_N,
                    seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Percentile interval of median(times_a) / median(times_b) (the rate ratio B/A)."""
    rng = np.random.default_rng(seed)
    a = np.asarray(times_a, dtype=float)
    b = np.asarray(times_b, dtype=float)
    med_a = np.median(a[rng.integers(0, a.size, size=(n_boot, a.size))], axis=1)
    med_b = np.median(b[rng.integers(0, b.size, size=(n_boot, b.size))], axis=1)
    ratios = med_a / med_b
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return float(low), float(high)


def mann_whitney_p(times_a: Sequence[float], times_b: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value when scipy is installed (optional second opinion)."""
    try:
        from scipy.stats import mannwhitneyu
    except Exception:  # not installed, or a broken install: the verdict does not depend on it
        return None
    try:
        return float(mannwhitneyu(times_a, times_b, alternative="two-sided").pvalue)
    except ValueError:  # all samples identical
        return None


def compare_records(ra: Record, rb: Record, min_effect: float = MIN_EFFECT) -> CaseComparison:
    check_same_definition(ra, rb)
    ratio = ra.median_s / rb.median_s
    low = high = None
    if min(len(ra.times_s), len(rb.times_s)) < MIN_SAMPLES:
        verdict = "too few samples"
    else:
        low, high = bootstrap_ratio(ra.times_s, rb.times_s)
        outside = low > 1.0 or high < 1.0
        if outside and is_effect(ratio, min_effect):
            verdict = "faster" if ratio > 1.0 else "slower"
        elif outside:  # a real difference (the interval excludes 1) smaller than --min-effect
            verdict = "below the effect threshold"
        else:
            verdict = "same within noise"
    return CaseComparison(
        benchmark=ra.benchmark, op=ra.op, dtype=ra.dtype, params=case_params(ra.params), unit=ra.unit,
        achieved_a=ra.achieved, achieved_b=rb.achieved, samples_a=len(ra.times_s), samples_b=len(rb.times_s),
        ratio=ratio, ratio_low=low, ratio_high=high, p_value=mann_whitney_p(ra.times_s, rb.times_s),
        verdict=verdict, backend_a=ra.backend, backend_b=rb.backend, kind="llm" if "llm" in ra.tags else "sweep",
        run=run_label(ra))


# --------------------------------------------------------------------------- environment


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mappings and lists of mappings as one level of dotted keys (`a.b[0].c`)."""
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(obj, list) and any(isinstance(v, (Mapping, list)) for v in obj):
        out = {}
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: obj}


def environment_differences(a: ResultsDocument, b: ResultsDocument) -> list[tuple[str, Any, Any]]:
    """(field, value in A, value in B) for every environment/device/tool field that differs."""
    def flat(doc: ResultsDocument) -> dict[str, Any]:
        env = dict(doc.environment)
        if isinstance(env.get("blas_libraries"), list):  # load order varies from run to run
            env["blas_libraries"] = sorted(env["blas_libraries"], key=lambda lib: json.dumps(lib, sort_keys=True))
        d = flatten({"environment": env, "device": doc.device})
        d["tool.version"] = doc.tool_version or None
        return {k: v for k, v in d.items() if k.rsplit(".", 1)[-1] not in VOLATILE_ENV}

    fa, fb = flat(a), flat(b)
    return [(k, fa.get(k), fb.get(k)) for k in sorted(set(fa) | set(fb)) if fa.get(k) != fb.get(k)]


# --------------------------------------------------------------------------- entry point


def compare_documents(a: ResultsDocument, b: ResultsDocument, label_a: str = "A", label_b: str = "B",
                      min_effect: float = MIN_EFFECT) -> Comparison:
    pairs, only_a, only_b = pair_records(a, b)
    if not pairs:
        raise BadInput(f"{label_a} and {label_b} have no case in common (same benchmark, op, dtype and shape)",
                       "run the same benchmarks with the same --quick/full setting on both machines")
    cases = tuple(compare_records(ra, rb, min_effect) for ra, rb in pairs)
    notes = []
    for label, doc in ((label_a, a), (label_b, b)):
        if not doc.complete:
            notes.append(f"{label} is an interrupted run: only the cases it finished are compared")
    for c in cases:
        if c.backend_a != c.backend_b:
            notes.append(f"{c.benchmark}/{c.op}/{c.dtype} ran on backend {c.backend_a} in {label_a}, "
                         f"{c.backend_b} in {label_b}")
    notes += repeated_cases(a, b, label_a, label_b)
    if a.environment.get("fingerprint") and a.environment.get("fingerprint") == b.environment.get("fingerprint"):
        notes.append("same machine fingerprint: same host and software stack")
    return Comparison(label_a, label_b, cases, tuple(only_a), tuple(only_b),
                      tuple(environment_differences(a, b)), tuple(dict.fromkeys(notes)), min_effect)


def compare_many(docs: Sequence[tuple[str, ResultsDocument]], min_effect: float = MIN_EFFECT) -> list[Comparison]:
    """The first document is the baseline; every other one is compared against it."""
    if len(docs) < 2:
        raise BadInput("compare needs at least two results files", "pass a baseline A.json and B.json ...")
    (label_a, a), rest = docs[0], docs[1:]
    return [compare_documents(a, b, label_a, label_b, min_effect) for label_b, b in rest]
