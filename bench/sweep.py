"""Shape search for the GEMM sweep: a coarse grid, then local refinement around the best shapes.

MAMF-finder (stas00/ml-engineering, compute/accelerator/benchmarks/mamf-finder.py) measures every
shape of an M x N x K grid given as `--m_range start stop step` (numpy.arange semantics, a start of
0 read as one step). The maximum achievable rate is the best median of that grid. Most of those
shapes are far from the best, so this search measures a coarse grid first, then a compass search
(Torczon's pattern search): the shapes one step away along each dimension from the `top` fastest
measured shapes; a round that improves the best doubles the step (up to 4x the first), one that
does not halves it, down to `min_step` (MAMF's usual fine step, 256). Pure functions: the caller
measures.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Generator, Mapping, Sequence

Shape = tuple[int, int, int]


@dataclass(frozen=True)
class SweepPlan:
    coarse: tuple[Shape, ...]
    step: int  # the refinement's first step along each dimension
    min_step: int  # the finest step; below it the search stops
    lo: int  # no dimension below this
    hi: int  # nor above this
    top: int = 2  # refine around this many of the fastest shapes
    max_shapes: int = 36  # refinement shapes at most (bounds the time it can add)


def mamf_range(start: int, stop: int, step: int) -> list[int]:
    """MAMF-finder's `--m_range start stop step`: arange(start, stop, step), a 0 start read as `step`."""
    first = step if start == 0 else start
    return list(range(first, stop, step))


def mamf_grid(m: Sequence[int], n: Sequence[int], k: Sequence[int]) -> list[Shape]:
    """Every (M, N, K), in MAMF-finder's loop order (M outermost, K innermost)."""
    return [(a, b, c) for a, b, c in itertools.product(m, n, k)]


def coarse_axis(lo: int, hi: int, step: int) -> list[int]:
    """Every `step` from lo, and hi itself (the largest shapes are often the fastest)."""
    return sorted(set(range(lo, hi + 1, step)) | {hi})


def neighbours(shape: Shape, step: int, lo: int = 1, hi: int | None = None) -> list[Shape]:
    """The shapes one step away from `shape` along one dimension, within [lo, hi]."""
    out = []
    for axis in range(3):
        for sign in (1, -1):
            s = list(shape)
            s[axis] += sign * step
            if s[axis] >= lo and (hi is None or s[axis] <= hi):
                out.append((s[0], s[1], s[2]))
    return out


def search(plan: SweepPlan) -> Generator[list[Shape], Mapping[Shape, float], None]:
    """Batches of shapes to measure. The caller sends back the rates measured so far (shape -> rate,
    any unit, higher is better; a shape that failed is simply absent) after each batch."""
    tried: set[Shape] = set(plan.coarse)
    rates = yield list(plan.coarse)
    step, spent = plan.step, 0
    while step >= plan.min_step and spent < plan.max_shapes and rates:
        before = max(rates.values())
        best = sorted(rates, key=lambda s: rates[s], reverse=True)[: plan.top]
        batch = [s for b in best for s in neighbours(b, step, plan.lo, plan.hi) if s not in tried]
        batch = list(dict.fromkeys(batch))[: plan.max_shapes - spent]
        if batch:
            tried.update(batch)
            spent += len(batch)
            rates = yield batch
        if not batch or not rates or max(rates.values()) <= before:
            step //= 2  # no better shape at this distance: look closer
        else:
            step = min(2 * step, 4 * plan.step)  # a gain: stride on, longer each time (expanding search)


@dataclass(frozen=True)
class SearchLog:
    rates: Mapping[Shape, float]
    coarse_shapes: int
    refine_shapes: int
    refine_rounds: int
    stopped: bool  # the measurement asked to stop (an interrupt): the search is incomplete


def drive(plan: SweepPlan, measure: Callable[[list[Shape]], Mapping[Shape, float] | None]) -> SearchLog:
    """Run the search with `measure(batch)` returning every rate measured so far, or None to stop."""
    gen = search(plan)
    batch = next(gen)
    coarse = len(batch)
    refined = rounds = 0
    last: Mapping[Shape, float] = {}
    while True:
        got = measure(batch)
        if got is None:
            return SearchLog(last, coarse, refined, rounds, stopped=True)
        last = got
        try:
            batch = gen.send(got)
        except StopIteration:
            return SearchLog(got, coarse, refined, rounds, stopped=False)
        refined += len(batch)
        rounds += 1


def best_of(rates: Mapping[Shape, float]) -> tuple[Shape, float] | None:
    if not rates:
        return None
    s = max(rates, key=lambda x: rates[x])
    return s, rates[s]
