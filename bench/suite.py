"""Which cases make up `bench all` and each named benchmark, in what order, with what refinement."""
from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

from recoque.bench import attention, environment, gemm, headline, noise, sweep
from recoque.bench.base import Case
from recoque.bench.runner import RunOutcome, run_cases
from recoque.bench.timing import FULL, QUICK, TimingPolicy
from recoque.errors import BadInput

BENCHMARKS = ("gemm", "attention", "stream", "transfer", "collective")
ALL_DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8")
# A GPU is warmed up thermally before its first sample (mamf-finder warms for 30 s; AMD's MAF
# method about a quarter of a 1 s run).
GPU_WARMUP_S = {True: 2.0, False: 20.0}


def policy_for(device: Any, quick: bool) -> TimingPolicy:
    return QUICK if quick else FULL


def check_dtypes(dtypes: tuple[str, ...]) -> tuple[str, ...]:
    bad = [d for d in dtypes if d not in ALL_DTYPES]
    if bad:
        raise BadInput(f"unknown dtype {bad[0]!r}", f"use one of {', '.join(ALL_DTYPES)}")
    return dtypes


def run_suite(names: tuple[str, ...], device: Any, quick: bool, dtypes: tuple[str, ...], seed: int = 0,
              telemetry: bool = True, dtypes_explicit: bool = True, on_plan: Callable[[int], None] | None = None,
              on_done: Callable[[Case, Any, Any], None] | None = None) -> tuple[RunOutcome, list[str]]:
    """Run the named benchmarks; returns the outcome and notes (what was not run and why)."""
    policy = policy_for(device, quick)
    notes: list[str] = []
    out = RunOutcome()
    first = [True]

    def run(cases: list[Case], fixed_policy: TimingPolicy | None = None) -> bool:
        if not cases:
            return True
        if on_plan:
            on_plan(len(cases))
        if fixed_policy is not None:  # every rank must make the same number of calls
            return _merge(out, run_cases(cases, device, fixed_policy, seed, telemetry, on_done))
        pol = policy
        if first[0] and device.kind != "cpu":
            pol = replace(policy, warmup_s=GPU_WARMUP_S[quick])
            cases, rest = cases[:1], cases[1:]
            first[0] = False
            if not _merge(out, run_cases(cases, device, pol, seed, telemetry, on_done)):
                return False
            cases = rest
        first[0] = False
        return _merge(out, run_cases(cases, device, policy, seed, telemetry, on_done))

    environment.prepare(device)
    for name in names:
        if name == "gemm":
            for dtype in dtypes:
                if not _sweep(out, device, quick, dtype, run):
                    return out, notes
                t0 = time.perf_counter()
                if not _confirm(out, dtype, policy, run):
                    return out, notes
                if out.sweeps and out.sweeps[-1]["dtype"] == dtype:
                    out.sweeps[-1]["confirm_s"] = time.perf_counter() - t0
            out.records[:], ratio = headline.mark_tf32(out.records)
            out.warnings += noise.check_tf32(ratio)
            if not run(gemm.llm_cases(device, quick, dtypes)):
                return out, notes
        elif name == "attention":
            att = tuple(d for d in dtypes if d in ("bf16", "fp16", "fp32")) or ("bf16",)
            if not run(attention.cases(device, quick, att)):
                return out, notes
        elif name == "stream":
            from recoque.bench import stream

            sd = tuple(d for d in dtypes if d in ("fp64", "fp32")) or ("fp64",)
            if quick and not dtypes_explicit:
                sd = ("fp64",)  # quick mode: BabelStream's default precision only
            if not run(stream.cases(device, quick, sd)):
                return out, notes
        elif name == "transfer":
            from recoque.bench import transfer

            cases = transfer.cases(device, quick)
            if not cases:
                notes.append("transfer: host-device bandwidth needs a GPU")
            if not run(cases):
                return out, notes
        elif name == "collective":
            from recoque.bench import collective

            cases = collective.cases(device, quick, dtypes if dtypes_explicit else None)
            if not cases:
                notes.append(f"collective: {collective.skip_reason(device) or 'nothing to run'}")
            if not run(cases, collective.policy(quick)):
                return out, notes
        else:
            raise BadInput(f"unknown benchmark {name!r}", f"use one of all, {', '.join(BENCHMARKS)}")
    return out, notes


def _sweep(out: RunOutcome, device: Any, quick: bool, dtype: str, run: Callable[..., bool]) -> bool:
    """The coarse grid (gemm.sweep_cases), then, unless --quick, the search around its best shapes
    (bench/sweep.py); how many shapes it measured and how long it took go into out.sweeps."""
    t0, n0 = time.perf_counter(), len(out.records)
    cases = gemm.sweep_cases(device, quick, dtype)
    plan = gemm.sweep_plan(device, quick, dtype, [(c.m, c.n, c.k) for c in cases if "sweep" in c.tags])
    backend: list[str] = []  # the backend of the coarse grid's best, refined alone (CPU grids run two)

    def measure(batch: list[sweep.Shape]) -> dict[sweep.Shape, float] | None:
        if not backend:
            ok = run(cases)
            best = headline.candidate(out.records[n0:], dtype)
            backend.append((best.backend if best is not None else None) or "torch")
        else:
            ok = run([gemm.GemmCase(*s, dtype, backend=backend[0], tags=("sweep", "refine")) for s in batch])
        return sweep_rates(out.records[n0:], dtype, backend[0]) if ok else None

    if plan is None:
        log = sweep.SearchLog({}, len(cases), 0, 0, stopped=not run(cases))
        backend.append("")
    else:
        log = sweep.drive(plan, measure)
    mine = [r for r in out.records[n0:] if r.dtype == dtype and "sweep" in r.tags]
    if mine:
        best = headline.candidate(mine, dtype)
        out.sweeps.append({
            "benchmark": "gemm", "dtype": dtype, "backend": backend[0] or None, "refined": plan is not None,
            "coarse_cases": len(cases), "refine_shapes": log.refine_shapes, "refine_rounds": log.refine_rounds,
            "cases_measured": len(mine), "sweep_s": time.perf_counter() - t0, "complete": not log.stopped,
            "best_shape": [best.params["m"], best.params["n"], best.params["k"]] if best is not None else None})
    return not log.stopped


def sweep_rates(records: list[Any], dtype: str, backend: str) -> dict[sweep.Shape, float]:
    """Rate per shape of the sweep's records of one backend, steady ones only when any is steady (the
    search then follows real gains, not one lucky median)."""
    mine = [r for r in records if r.benchmark == "gemm" and r.dtype == dtype and (r.backend or "torch") == backend
            and "sweep" in r.tags and headline.CONFIRM_TAG not in r.tags]
    steady = [r for r in mine if headline.is_stable(r)] or mine
    rates: dict[sweep.Shape, float] = {}
    for r in steady:
        s = (r.params["m"], r.params["n"], r.params["k"])
        rates[s] = max(rates.get(s, 0.0), r.achieved)
    return rates


def confirm_policy(policy: TimingPolicy) -> TimingPolicy:
    """A longer run for the headline candidate (the budget x CONFIRM_BUDGET_FACTOR, twice the samples)."""
    f = headline.CONFIRM_BUDGET_FACTOR
    return replace(policy, budget_s=policy.budget_s * f, min_samples=policy.min_samples * 2,
                   max_samples=policy.max_samples * f)


def confirmation_cases(rec: Any) -> list[Case]:
    """The best shape measured again (and fp8 once more with fast accumulation, when it differs)."""
    p = rec.params
    tags = ("sweep", headline.HEADLINE_TAG, headline.CONFIRM_TAG)
    cases: list[Case] = [gemm.GemmCase(p["m"], p["n"], p["k"], rec.dtype, backend=rec.backend or "torch",
                                       tags=tags, fast_accum=bool(p.get("fast_accum", False)))]
    if rec.dtype == "fp8" and not p.get("fast_accum"):
        cases.append(gemm.GemmCase(p["m"], p["n"], p["k"], "fp8", tags=("sweep", headline.CONFIRM_TAG, "fast_accum"),
                                   fast_accum=True))
    return cases


def _confirm(out: RunOutcome, dtype: str, policy: TimingPolicy, run: Callable[..., bool]) -> bool:
    """Re-measure the sweep's candidate with a longer run; its median is the dtype's headline."""
    cand = headline.candidate(out.records, dtype)
    if cand is None:
        return True
    n_before = len(out.records)
    if not run(confirmation_cases(cand), confirm_policy(policy)):
        return False
    confirmed = [r for r in out.records[n_before:] if headline.HEADLINE_TAG in r.tags]
    if confirmed and not headline.is_stable(confirmed[0]):
        label = f"gemm/{dtype} headline {confirmed[0].params}"
        out.warnings.append(noise.NoiseWarning("unstable_headline", label, confirmed[0].stats()["cov"],
                                               noise.HINTS["unstable_headline"]))
    return True


def _merge(out: RunOutcome, part: RunOutcome) -> bool:
    out.extend(part)
    return not part.interrupted
