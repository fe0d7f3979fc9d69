"""Shape search for the GEMM sweep: a coarse grid, then local refinement around the best shapes.

MAMF-finder (stas00/ml-engineering, compute/accelerator/benchmarks/mamf-finder.py and its README)
measures every shape of an M x N x K grid given as `--m_range start stop step` (numpy.arange
semantics, a start of 0 read as one step) and reports the best. Most of those shapes are far from
the best, so this search measures a coarse grid first, then a compass search (Torczon's pattern
search; Kolda, Lewis & Torczon, SIAM Review 45(3), 2003): the untried shapes one step away along
each dimension from the `top` fastest measured shapes that still have untried neighbours. A round
that raises the best doubles the step (up to `stride` times the first: long strides cross a sparse
GPU grid; after a covering grid, `stride` 1 stays local), one that does not halves it, down to
`min_step` (MAMF's usual fine step, 256); at `min_step`, `patience` rounds without a gain end the
search (the next-best shapes' neighbourhoods get their turn meanwhile).

`covering_axis` places a coarse axis so that every shape of the fine grid lies within `radius`
steps of a coarse one per dimension, so refinement at that radius can reach any fine shape.

Sweep rates are short medians, and on a busy machine they scatter by several percent while the
best shapes differ by less. The search therefore only proposes candidates; which one is best is
decided by the suite's confirmation (bench/headline.py: the candidate and any faster unsteady case
re-measured in alternating longer rounds, the median of the rounds' medians), as MAMF-finder's
confirm stage (its `--search auto` mode) re-measures its best scouts over longer windows before it
publishes one. `alternate` and `confirmed_best` are the same idea for the benchmarks/ scripts.
Pure functions: the caller measures.
"""
from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from typing import Callable, Generator, Iterable, Mapping, Sequence

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
    patience: int = 1  # rounds without a gain at min_step before the search stops (noise can hide a gain)
    stride: int = 4  # after gains the step grows up to this many times the first (1: it never grows)


def mamf_range(start: int, stop: int, step: int) -> list[int]:
    """MAMF-finder's `--m_range start stop step`: arange(start, stop, step), a 0 start read as `step`."""
    first = step if start == 0 else start
    return list(range(first, stop, step))


def mamf_grid(m: Sequence[int], n: Sequence[int], k: Sequence[int]) -> list[Shape]:
    """Every (M, N, K), in MAMF-finder's loop order (M outermost, K innermost)."""
    return [(a, b, c) for a, b, c in itertools.product(m, n, k)]


def covering_axis(lo: int, hi: int, step: int, radius: int) -> list[int]:
    """The fewest values of lo, lo+step, ..., hi, evenly spread, such that every one of those lies
    within `radius` steps of a chosen value: a covering of the fine axis that refinement at step
    `radius * step` (then halving) can close. The ends are left to refinement, not sampled."""
    count = (hi - lo) // step + 1  # fine values on the axis
    cell = 2 * radius + 1
    points = max(1, -(-count // cell))
    if points == 1:
        return [lo + step * min(count // 2, radius)]
    first, last = radius, count - 1 - radius
    idx = sorted({round(first + j * (last - first) / (points - 1)) for j in range(points)})
    return [lo + step * i for i in idx]


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


def _open_neighbours(shape: Shape, step: int, plan: SweepPlan, tried: set[Shape]) -> list[Shape]:
    return [s for s in neighbours(shape, step, plan.lo, plan.hi) if s not in tried]


def _round(rates: Mapping[Shape, float], step: int, plan: SweepPlan, tried: set[Shape], room: int) -> list[Shape]:
    """The untried neighbours of the `top` fastest shapes that still have any (best first): a shape
    whose neighbourhood is measured already gives way to the next, so no round is wasted."""
    batch: list[Shape] = []
    starts = 0
    for s in sorted(rates, key=lambda x: rates[x], reverse=True):
        if starts == plan.top or len(batch) >= room:
            break
        fresh = [x for x in _open_neighbours(s, step, plan, tried) if x not in batch]
        if fresh:
            batch += fresh
            starts += 1
    return batch[:room]


def search(plan: SweepPlan) -> Generator[list[Shape], Mapping[Shape, float], None]:
    """Batches of shapes to measure. The caller sends back the rates measured so far (shape -> rate,
    any unit, higher is better; a shape that failed is simply absent) after each batch."""
    tried: set[Shape] = set(plan.coarse)
    rates = yield list(plan.coarse)
    step, spent, misses = plan.step, 0, 0
    while step >= plan.min_step and spent < plan.max_shapes and rates:
        before = max(rates.values())
        batch = _round(rates, step, plan, tried, plan.max_shapes - spent)
        if batch:
            tried.update(batch)
            spent += len(batch)
            rates = yield batch
        if batch and rates and max(rates.values()) > before:
            if plan.stride > 1:  # a gain: stride on, longer each time (expanding search)
                step = min(2 * step, plan.stride * plan.step)
            misses = 0
        elif not batch or step > plan.min_step or misses + 1 >= plan.patience:
            step, misses = step // 2, 0  # no better shape at this distance: look closer
        else:
            misses += 1  # at the finest step, the next-best shapes' neighbours get their turn


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


def top_shapes(rates: Mapping[Shape, float], n: int) -> list[Shape]:
    """The n fastest shapes, fastest first: the candidates a confirmation re-measures."""
    return sorted(rates, key=lambda s: rates[s], reverse=True)[:n]


def alternate(shapes: Iterable[Shape], measure_one: Callable[[Shape], float | None],
              rounds: int) -> dict[Shape, list[float]]:
    """Each shape measured `rounds` times, round by round, the order reversed every other round so
    that a slow drift in the machine's load (other jobs) falls on every shape alike. A measurement
    that failed (None) is left out."""
    order = list(dict.fromkeys(shapes))
    got: dict[Shape, list[float]] = {s: [] for s in order}
    for r in range(rounds):
        for s in (order if r % 2 == 0 else order[::-1]):
            rate = measure_one(s)
            if rate is not None:
                got[s].append(rate)
    return got


def confirmed_best(figures: Mapping[Shape, Sequence[float]], candidates: Iterable[Shape],
                   stat: Callable[[Sequence[float]], float] = statistics.median) -> Shape | None:
    """The candidate whose confirmation rounds score highest by `stat` (None if none has any). The
    median suits symmetric scatter; `max` suits load from other jobs, which only ever slows a round
    (MAMF-finder's README: the fastest result of a shape is picked, not the average)."""
    have = [s for s in candidates if figures.get(s)]
    return max(have, key=lambda s: stat(figures[s])) if have else None
