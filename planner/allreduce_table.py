"""A measured all-reduce time table of one node (rccl-tests / nccl-tests `all_reduce_perf`): seconds by
message size, for the serving model's tensor-parallel all-reduce where a system file carries one.

Why a table: a collective library switches protocol with the message size (LL, LL128, Simple), so
one latency and one bandwidth fit either the small or the large messages, not both. On 8x MI300X
(RCCL 2.22.3) a 16 MB all-reduce takes 149 us where the large-message 318 GB/s busbw and a few
microseconds of latency would say ~105 us, while 1 MB takes 19 us as that line says.
Between two measured sizes: linear in log(time) against log(bytes); below the smallest, its time;
above the largest, the largest's time x (bytes / its bytes) (bandwidth-bound there).

System TOML:
    [systems.<key>.allreduce_measured]
    gpus = 8                          # the group the table was measured on (used only for that size)
    bytes = [1048576, ...]            # message sizes, increasing
    time_us = [19.4, ...]             # the central time (value and optimistic end of the range)
    time_us_slow = [27.4, ...]        # the pessimistic end (e.g. the run without graph replay)
    source = "..."
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from typing import Any, Mapping

from recoque.errors import BadInput
from recoque.planner.commfit import fit_document

KEYS = ("gpus", "bytes", "time_us", "time_us_slow", "source")


@dataclass(frozen=True)
class AllReduceTable:
    gpus: int
    bytes: tuple[float, ...]
    seconds: tuple[float, ...]
    seconds_slow: tuple[float, ...]
    source: str

    def at(self, nbytes: float, slow: bool = False) -> float:
        """Seconds of one all-reduce of `nbytes` over `gpus` GPUs."""
        ts = self.seconds_slow if slow else self.seconds
        xs = self.bytes
        if nbytes <= xs[0]:
            return ts[0]
        if nbytes >= xs[-1]:
            return ts[-1] * nbytes / xs[-1]
        i = bisect.bisect_right(xs, nbytes)
        f = math.log(nbytes / xs[i - 1]) / math.log(xs[i] / xs[i - 1])
        return math.exp(math.log(ts[i - 1]) + f * (math.log(ts[i]) - math.log(ts[i - 1])))


def _numbers(raw: Mapping[str, Any], key: str, where: str) -> tuple[float, ...]:
    v = raw.get(key)
    if not isinstance(v, list) or not v or any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in v):
        raise BadInput(f"{where}: `{key}` must be a list of numbers", "give one number per message size")
    if any(not math.isfinite(x) or x <= 0 for x in v):
        raise BadInput(f"{where}: `{key}` must hold finite numbers above 0", "fix the measured table")
    return tuple(float(x) for x in v)


def parse(raw: Any, where: str) -> AllReduceTable:
    """The `allreduce_measured` table of a system file, checked where it enters."""
    where = f"{where}.allreduce_measured"
    if not isinstance(raw, Mapping):
        raise BadInput(f"{where}: must be a table", f"give {', '.join(KEYS)}")
    unknown = [k for k in raw if k not in KEYS]
    if unknown:
        raise BadInput(f"{where}: unknown key `{unknown[0]}`", f"use only {', '.join(KEYS)}")
    gpus = raw.get("gpus")
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 2:
        raise BadInput(f"{where}: `gpus` must be a whole number of at least 2", "the GPU count the table was measured on")
    xs, ts, slow = (_numbers(raw, k, where) for k in ("bytes", "time_us", "time_us_slow"))
    if not len(xs) == len(ts) == len(slow) or len(xs) < 2:
        raise BadInput(f"{where}: `bytes`, `time_us` and `time_us_slow` must be lists of the same length (2 or more)",
                       "one time per message size")
    if any(b <= a for a, b in zip(xs, xs[1:])):
        raise BadInput(f"{where}: `bytes` must increase", "list the message sizes in increasing order")
    if any(s < t for s, t in zip(slow, ts)):
        raise BadInput(f"{where}: `time_us_slow` is below `time_us` somewhere", "the slow end is the larger time")
    return AllReduceTable(int(gpus), xs, tuple(t * 1e-6 for t in ts), tuple(t * 1e-6 for t in slow),
                          str(raw.get("source", "")))


def from_results(doc: Any, source: str = "") -> AllReduceTable | None:
    """The all-reduce table of a `recoque bench` results document (planner.commfit's series): the
    intra-node all_reduce series of the largest group measured (bf16 before fp16 before any other
    dtype, a decode step's activations being bf16); the median time per size, the slow end the
    largest sample. None when the file has no such series."""
    fits = [f for f in fit_document(doc) if f.op == "all_reduce" and f.tier == "intra"]
    if not fits:
        return None
    rank = {"bf16": 0, "fp16": 1}
    f = min(fits, key=lambda x: (-x.group_size, rank.get(x.dtype, 2), x.dtype))
    return AllReduceTable(f.group_size, tuple(float(s) for s in f.sizes_bytes), f.times_s, f.slowest_s,
                          f"measured {f.dtype} all_reduce, {f.group_size} GPUs, {len(f.sizes_bytes)} sizes"
                          f"{', ' + source if source else ''}")
