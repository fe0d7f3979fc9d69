"""Run cases through the one timing helper: skip what cannot run, verify first, keep every sample.

Out-of-memory at one size is a skip with a note and the sweep goes on; so is any other exception
of one case, with its type and message. Ctrl-C (and SIGTERM/SIGHUP, which recoque.signals turns
into a KeyboardInterrupt) stops the loop and returns what was measured, flagged incomplete, so the
caller can still write it.
"""
from __future__ import annotations

import gc
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from recoque.bench.base import Case, Unsupported
from recoque.errors import is_oom, one_line
from recoque.bench.noise import NoiseWarning, check_peak, check_rotation, check_samples
from recoque.bench.schema import Record, Skip
from recoque.bench.timing import TimingPolicy, llc_or_assumed, measure, rotation_floor_bytes, rotation_sets

# The benchmarks whose rates a cache-resident working set would inflate: they rotate input sets
# past the last-level cache (and are warned about when they cannot). STREAM sizes its arrays past
# it instead; transfers and collectives move data between devices.
CACHE_ROTATED = ("gemm", "attention", "moe")


@dataclass
class RunOutcome:
    records: list[Record] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    warnings: list[NoiseWarning] = field(default_factory=list)
    interrupted: bool = False
    sweeps: list[dict[str, Any]] = field(default_factory=list)  # per GEMM sweep: shapes and seconds (bench/suite.py)

    def extend(self, other: "RunOutcome") -> None:
        self.records += other.records
        self.skipped += other.skipped
        self.warnings += other.warnings
        self.sweeps += other.sweeps
        self.interrupted = self.interrupted or other.interrupted


def _free(device: Any) -> None:
    gc.collect()
    if device.kind != "cpu":
        import torch

        torch.cuda.empty_cache()


def memory_budget_bytes(device: Any) -> int | None:
    """How much the rotation may allocate: half the free GPU memory, a quarter of available RAM."""
    try:
        if device.kind != "cpu":
            import torch

            free, _total = torch.cuda.mem_get_info(device.torch_device)
            return int(free * 0.5)
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 4
    except (OSError, RuntimeError, ValueError):
        return None
    return None


def peak_for(case: Case, device: Any) -> tuple[float | None, str | None]:
    """Datasheet peak in the record's unit: TFLOP/s for compute, GB/s for device-memory traffic."""
    if case.work().flop_count is not None:
        value, src = device.peak(case.dtype)
        return (value / 1e12 if value else None), src
    if case.benchmark == "stream" or (case.benchmark == "transfer" and case.op == "d2d"):
        value, src = device.peak_bandwidth()
        return (value / 1e9 if value else None), src
    if case.benchmark == "transfer":  # h2d, d2h: the host link one direction
        value, src = device.peak_host_link()
        return (value / 1e9 if value else None), src
    return None, None


def run_one(case: Case, device: Any, policy: TimingPolicy, seed: int, telemetry: bool) -> tuple[Record | None, Skip | None, list[NoiseWarning]]:
    """One case; any failure of its own (an API an older torch lacks, a driver error) is a skip with
    its reason, never the end of the run. KeyboardInterrupt, SystemExit and recoque's signal
    exception are BaseExceptions and go up to the caller, which keeps what was measured."""
    try:
        return _run_one(case, device, policy, seed, telemetry)
    except Exception as exc:  # noqa: BLE001 - one case's failure must not discard the others
        reason = f"{type(exc).__name__}: {one_line(exc, limit=300)}"
        print(f"recoque: case failed, skipped: {_label(case)}: {reason}", file=sys.stderr)
        return None, _skip(case, f"error: {reason}"), []


def _label(case: Case) -> str:
    try:
        return case.label()
    except Exception:  # noqa: BLE001 - a broken label must not hide the original error
        return f"{getattr(case, 'benchmark', '?')}/{getattr(case, 'op', '?')}"


def _run_one(case: Case, device: Any, policy: TimingPolicy, seed: int, telemetry: bool) -> tuple[Record | None, Skip | None, list[NoiseWarning]]:
    label = case.label()
    floor = rotation_floor_bytes(device.kind, policy) if case.benchmark in CACHE_ROTATED else policy.min_rotation_bytes
    n_sets = rotation_sets(case.bytes_per_set(), llc_or_assumed(device), floor, memory_budget_bytes(device))
    try:
        case.setup(device, n_sets, seed)
        check = case.verify()
        if not check.ok:
            print(f"recoque: verification failed, no result: {label}: {check.describe()}", file=sys.stderr)
            return None, _skip(case, f"verification failed: {check.describe()}"), []
        case.activate()
        timing, tele = _timed(case, device, policy, n_sets, telemetry)
    except Unsupported as exc:
        return None, _skip(case, f"unsupported: {exc}"), []
    except Exception as exc:  # noqa: BLE001 - OOM is recognised by type or message across backends
        if not is_oom(exc):
            raise
        return None, _skip(case, "out of memory at this size"), []
    finally:
        case.teardown()
        _free(device)
    work = case.work()
    peak, src = peak_for(case, device)
    rec = Record(benchmark=case.benchmark, op=case.op, dtype=case.dtype, params=dict(case.params),
                 times_s=timing.times_s, unit=work.unit, flop_count=work.flop_count, bytes_moved=work.bytes_moved,
                 kernel_count=work.kernel_count,
                 peak=peak, peak_source=src, verified=True, verify=check.to_json(), backend=case.backend,
                 timer=timing.timer, tags=tuple(case.tags) + (f"rotation_sets:{case.sets_used(n_sets)}",),
                 telemetry=tele)
    rec = _per_watt(rec)
    warns = check_samples(label, timing.times_s, timing.timer) + check_peak(label, rec.fraction_of_peak)
    if case.benchmark in CACHE_ROTATED:
        warns += check_rotation(label, n_sets * case.bytes_per_set(), llc_or_assumed(device))
    return rec, None, warns


def _timed(case: Case, device: Any, policy: TimingPolicy, n_sets: int, telemetry: bool):
    if not telemetry:
        return measure(case.run, device, policy, n_sets), {}
    from recoque.bench.telemetry import Sampler

    with Sampler(device) as sampler:  # clocks, power, energy, temperature, throttling: one thread
        timing = measure(case.run, device, policy, n_sets, after_warm_up=sampler.mark)
    return timing, sampler.summary()


def _per_watt(rec: Record) -> Record:
    """The record with GFLOP/s per W or GB/s per W beside the average power it was measured at."""
    from recoque.bench.power import efficiency

    eff = {k: v for k, v in efficiency(rec.achieved, rec.unit, rec.telemetry).items() if k.endswith("_per_w")}
    return replace(rec, telemetry={**rec.telemetry, **eff}) if eff else rec


def _skip(case: Case, reason: str) -> Skip:
    return Skip(str(getattr(case, "benchmark", "?")), str(getattr(case, "op", "?")), str(getattr(case, "dtype", "?")),
                dict(getattr(case, "params", {}) or {}), reason)


def run_cases(cases: Iterable[Case], device: Any, policy: TimingPolicy, seed: int = 0, telemetry: bool = True,
              on_done: Callable[[Case, Record | None, Skip | None], None] | None = None) -> RunOutcome:
    out = RunOutcome()
    try:
        for case in cases:
            rec, skip, warns = run_one(case, device, policy, seed, telemetry)
            if rec is not None:
                out.records.append(rec)
            if skip is not None:
                out.skipped.append(skip)
            out.warnings += warns
            if on_done is not None:
                on_done(case, rec, skip)
    except KeyboardInterrupt:
        out.interrupted = True
    return out
