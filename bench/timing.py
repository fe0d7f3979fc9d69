"""The one timing helper: sync, warm-up, cache eviction by input rotation, raw samples.

GPU: one pair of device events around every call and a single synchronisation at the end
(the convention of mamf-finder, triton's do_bench, nvbandwidth). CPU: perf_counter_ns around
every call (the kernels there are synchronous). Caches are evicted by rotating through input
sets whose total size is at least twice the last-level cache (hipblaslt-bench --rotating), at
least the policy's `min_rotation_bytes`, and on any GPU at least GPU_MIN_ROTATION_BYTES.
"""
from __future__ import annotations

import contextlib
import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator


@dataclass(frozen=True)
class TimingPolicy:
    warmup_s: float  # per case, wall clock, before the first sample
    budget_s: float  # target time spent sampling one case
    min_samples: int
    max_samples: int
    min_rotation_bytes: int = 0
    # CPU only: "wall" (perf_counter_ns) or "thread" (thread_time_ns, the calling thread's CPU time: it
    # leaves out the time other jobs held the core, which a one-thread run on a shared machine needs;
    # wrong for a multi-threaded kernel, whose other threads it does not count)
    host_clock: str = "wall"


# Twice the largest last-level cache of any GPU (the 256 MiB Infinity Cache of MI300-class parts,
# AMD CDNA 3 white paper): a GPU the catalog does not list reports only its L2 through torch
# (4 MiB on MI300X), and rotating 2x that would time a MALL-resident working set.
GPU_MIN_ROTATION_BYTES = 512 * 2**20


# When discovery found no last-level cache: assume a big one (a 64 MiB server L3, the 256 MiB MI300
# Infinity Cache), so that rotation still evicts rather than silently rotating one set.
FALLBACK_LLC_BYTES = {"cpu": 64 * 2**20, "gpu": 256 * 2**20}


def llc_or_assumed(device: Any) -> int:
    """The device's last-level cache in bytes, or FALLBACK_LLC_BYTES for its kind when unknown."""
    return device.llc_bytes or FALLBACK_LLC_BYTES["cpu" if device.kind == "cpu" else "gpu"]


def rotation_floor_bytes(device_kind: str, policy: TimingPolicy) -> int:
    """The least total the input sets rotate through: the policy's, and GPU_MIN_ROTATION_BYTES on a GPU."""
    return policy.min_rotation_bytes if device_kind == "cpu" else max(policy.min_rotation_bytes, GPU_MIN_ROTATION_BYTES)


QUICK = TimingPolicy(warmup_s=0.05, budget_s=0.25, min_samples=5, max_samples=40)
FULL = TimingPolicy(warmup_s=0.5, budget_s=2.0, min_samples=10, max_samples=400)


@dataclass(frozen=True)
class Timing:
    times_s: tuple[float, ...]
    timer: str  # "device_event", "perf_counter_ns" or "thread_time_ns"
    warmup_calls: int
    n_sets: int


def rotation_sets(bytes_per_set: int, llc_bytes: int | None, min_total_bytes: int = 0,
                  max_total_bytes: int | None = None) -> int:
    """How many input sets to rotate so that their total exceeds 2x the last-level cache."""
    target = max(2 * (llc_bytes or 0), min_total_bytes)
    n = max(1, math.ceil(target / max(1, bytes_per_set)))
    if max_total_bytes is not None:
        n = max(1, min(n, max_total_bytes // max(1, bytes_per_set)))
    return int(n)


def _sample_count(per_call_s: float, policy: TimingPolicy) -> int:
    if per_call_s <= 0:
        return policy.max_samples
    return int(min(policy.max_samples, max(policy.min_samples, policy.budget_s / per_call_s)))


def device_index(device: Any) -> int:
    """torch's (visible-device) index of a GPU Device: "cuda:3" -> 3, "cuda" -> 0."""
    tail = str(getattr(device, "torch_device", "cuda:0")).partition(":")[2]
    return int(tail) if tail.isdigit() else 0


@contextlib.contextmanager
def device_scope(device: Any) -> Iterator[None]:
    """Make the case's GPU the current device, so launches, events and streams all land on it.

    Without this, events are recorded on the current device's stream (GPU 0) while the kernels of
    a `--device gpu:1` case run on GPU 1, and the timing measures an idle stream.
    """
    if device.kind == "cpu":
        yield
        return
    import torch

    with torch.cuda.device(device_index(device)):
        yield


def _sync(device: Any) -> None:
    if device.kind != "cpu":
        import torch

        torch.cuda.synchronize(device_index(device))


def _warm_up(run: Callable[[int], None], device: Any, policy: TimingPolicy, n_sets: int) -> tuple[int, float]:
    """Call until warmup_s has passed after the first call (at least twice); return the calls made and
    the seconds per call of a warm one: the median of the last half's calls. The first call (a cold
    input set, an autotuner's pick, clocks ramping) is left out of both, or one slow first call would
    cut the warm-up to one more call and the sample count to the minimum."""
    calls, times, since = 0, [], None
    while True:
        t0 = time.perf_counter()
        run(calls % n_sets)
        _sync(device)
        t1 = time.perf_counter()
        calls += 1
        times.append(t1 - t0)
        since = t1 if since is None else since
        if calls >= 2 and t1 - since >= policy.warmup_s:
            return calls, statistics.median(times[len(times) // 2:])


def measure(run: Callable[[int], None], device: Any, policy: TimingPolicy, n_sets: int = 1,
            after_warm_up: Callable[[], None] | None = None) -> Timing:
    """Warm up, then time the samples; `after_warm_up` is called between the two (telemetry marks
    where the timed part starts, so that the first call's setup is not in the power average)."""
    with device_scope(device):
        warm_calls, per_call_s = _warm_up(run, device, policy, n_sets)
        if after_warm_up is not None:
            after_warm_up()
        n = _sample_count(per_call_s, policy)
        if device.kind == "cpu":
            thread = policy.host_clock == "thread"
            times = _host_samples(run, n, n_sets, offset=warm_calls,
                                  clock=time.thread_time_ns if thread else time.perf_counter_ns)
            timer = "thread_time_ns" if thread else "perf_counter_ns"
        else:
            times = _event_samples(run, device, n, n_sets, offset=warm_calls)
            timer = "device_event"
    return Timing(tuple(times), timer, warm_calls, n_sets)


def _host_samples(run: Callable[[int], None], n: int, n_sets: int, offset: int,
                  clock: Callable[[], int] = time.perf_counter_ns) -> list[float]:
    out = []
    for i in range(n):
        idx = (offset + i) % n_sets
        t0 = clock()
        run(idx)
        out.append((clock() - t0) * 1e-9)
    return out


def _event_samples(run: Callable[[int], None], device: Any, n: int, n_sets: int, offset: int) -> list[float]:
    import torch

    index = device_index(device)
    stream = torch.cuda.current_stream(index)  # the stream the case's kernels are queued on
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
    for i in range(n):
        idx = (offset + i) % n_sets
        starts[i].record(stream)
        run(idx)
        ends[i].record(stream)
    torch.cuda.synchronize(index)
    return [s.elapsed_time(e) * 1e-3 for s, e in zip(starts, ends)]
