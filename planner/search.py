"""Plan search: enumerate every valid plan for a workload on N GPUs, evaluate them as numpy arrays.

Space (full=True): tp and pp over the divisors of N (dp = N / (tp pp)); micro-batch over the
divisors of the per-replica batch; interleave 1, 2, 3, 4, 6 or 8 (needs pp > 1, micro-batches a
multiple of pp, and pp * interleave <= layers; layers may split unevenly over stages); recompute none/selective/full; sequence parallelism
on/off (tp > 1); ZeRO 0..3 and overlap on/off (dp > 1); expert parallelism over the divisors of
the expert count that divide dp (MoE). Combinations that break a divisibility rule are counted
as `invalid`. The default (pruned) search drops choices the model shows to be dominated — tensor
parallelism across nodes, sequence parallelism off, overlap off, ZeRO 0 (ZeRO-1 moves fewer
bytes and stores less) — and evaluates memory first, timing only the plans that fit.
"""
from __future__ import annotations

import time
from typing import Any, Iterator

import numpy as np

from recoque.errors import BadInput
from recoque.planner.profile import DeviceProfile
from recoque.planner.train import (PLAN_FIELDS, SearchResult, core, hardware_for, results_from_arrays)
from recoque.planner.workload import TrainingWorkload

CHUNK = 1 << 19


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def _flag_grid(tp: int, dp: int, model: Any, full: bool) -> dict[str, np.ndarray]:
    """Every combination of the per-plan switches for one (tp, dp), as parallel arrays."""
    rc = [0, 1, 2]
    sp = [False, True] if (tp > 1 and full) else [tp > 1]
    zero = ([0, 1, 2, 3] if full else [1, 2, 3]) if dp > 1 else [0]
    ov = ([False, True] if full else [True]) if dp > 1 else [False]
    ep = [e for e in divisors(model.experts) if dp % e == 0] if model.moe else [1]
    grids = np.meshgrid(rc, sp, zero, ov, ep, indexing="ij")
    return {k: g.ravel() for k, g in zip(("recompute", "sequence_parallel", "zero_stage", "dp_overlap", "ep"), grids)}


def enumerate_plans(workload: TrainingWorkload, gpus: int, gpus_per_node: int,
                    full: bool = False) -> tuple[Iterator[dict[str, np.ndarray]], dict[str, int]]:
    """Chunks of valid plans (dicts of arrays) and a live count of invalid combinations."""
    model, B = workload.model, workload.global_batch_seqs
    counts = {"invalid": 0}
    b_all = divisors(B)
    v_all = [1, 2, 3, 4, 6, 8]

    def n_flags(tp: int, dp: int) -> int:
        return len(_flag_grid(tp, dp, model, full)["recompute"])

    def gen() -> Iterator[dict[str, np.ndarray]]:
        buf: list[dict[str, np.ndarray]] = []
        size = 0
        for tp in divisors(gpus):
            if not full and tp > gpus_per_node:
                continue
            for pp in divisors(gpus // tp):
                dp = gpus // (tp * pp)
                nf = n_flags(tp, dp)
                raw = len(b_all) * len(v_all)
                ok_shape = (model.heads % tp == 0 and (model.kv_heads % tp == 0 or tp % model.kv_heads == 0)
                            and pp <= model.layers and B % dp == 0)
                if not ok_shape:
                    counts["invalid"] += raw * nf
                    continue
                pairs = []
                for b in b_all:
                    if (B // dp) % b:
                        continue
                    m = B // (dp * b)
                    for v in v_all:
                        if pp * v <= model.layers and (v == 1 or (pp > 1 and m % pp == 0)):
                            pairs.append((b, v))
                counts["invalid"] += (raw - len(pairs)) * nf
                if not pairs:
                    continue
                flags = _flag_grid(tp, dp, model, full)
                nb = len(pairs)
                pv = np.array(pairs)
                chunk = {k: np.tile(v, nb) for k, v in flags.items()}
                chunk["micro_batch"] = np.repeat(pv[:, 0], nf)
                chunk["interleave"] = np.repeat(pv[:, 1], nf)
                n = nb * nf
                chunk["tp"] = np.full(n, tp)
                chunk["pp"] = np.full(n, pp)
                chunk["dp"] = np.full(n, dp)
                chunk["flash_attention"] = np.ones(n, dtype=bool)
                buf.append(chunk)
                size += n
                if size >= CHUNK:
                    yield _concat(buf)
                    buf, size = [], 0
        if buf:
            yield _concat(buf)

    return gen(), counts


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in PLAN_FIELDS}


def _take(a: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in a.items()}


def search(workload: TrainingWorkload, system: Any, profile: DeviceProfile, top: int = 5, gpus: int | None = None,
           dtype: str = "bf16", full: bool = False) -> SearchResult:
    n = int(gpus if gpus is not None else system.gpus)
    if n <= 0:
        raise BadInput(f"--gpus must be positive, got {n}", "give a GPU count")
    if n > system.gpus:
        raise BadInput(f"{n} GPUs requested, system {system.key} has {system.gpus:.0f}", "lower --gpus")
    hw = hardware_for(system, profile)
    t0 = time.perf_counter()
    chunks, counts = enumerate_plans(workload, n, system.gpus_per_node, full=full)
    evaluated = infeasible = 0
    best_t = np.empty(0)
    best_a: dict[str, np.ndarray] = {k: np.empty(0, dtype=int) for k in PLAN_FIELDS}
    small_mem, small_a = np.inf, None
    for a in chunks:
        if full:
            out = core(workload, hw, profile, dtype, a)
            fits = out["fits"]
            evaluated += len(fits)
            t = out["iteration_time_s"][fits]
            kept = _take(a, np.nonzero(fits)[0])
            mem = out["memory_bytes"]
        else:
            mo = core(workload, hw, profile, dtype, a, memory_only=True)
            fits = mo["fits"]
            mem = mo["memory_bytes"]
            kept = _take(a, np.nonzero(fits)[0])
            evaluated += len(fits)
            t = core(workload, hw, profile, dtype, kept)["iteration_time_s"] if fits.any() else np.empty(0)
        infeasible += int((~fits).sum())
        i = int(np.argmin(mem))
        if mem[i] < small_mem:
            small_mem, small_a = float(mem[i]), _take(a, np.array([i]))
        if len(t):
            best_t = np.concatenate([best_t, t])
            best_a = {k: np.concatenate([best_a[k], kept[k]]) for k in PLAN_FIELDS}
            if len(best_t) > 4 * top:
                keep = np.argpartition(best_t, top)[:top] if len(best_t) > top else np.arange(len(best_t))
                best_t, best_a = best_t[keep], _take(best_a, keep)
    order = np.argsort(best_t)[:top]
    seconds = time.perf_counter() - t0
    best = results_from_arrays(workload, system, profile, dtype, _take(best_a, order)) if len(order) else []
    smallest = None
    if not best and small_a is not None:
        smallest = results_from_arrays(workload, system, profile, dtype, small_a)[0]
    reasons = (f"{evaluated:,} plans evaluated in {seconds:.2f} s ({evaluated / max(seconds, 1e-9):,.0f}/s), "
               f"{infeasible:,} do not fit in memory, {counts['invalid']:,} invalid combinations",
               "search space: " + ("full (every switch)" if full else
                                   "pruned (TP inside a node, SP and overlap on, ZeRO 1-3; memory checked first)"))
    return SearchResult(workload=workload.model.key or workload.model.name, system=system.key, gpus=n, best=best,
                        evaluated=evaluated, infeasible_memory=infeasible, invalid=counts["invalid"],
                        seconds=seconds, reasons=reasons, smallest_memory=smallest)
