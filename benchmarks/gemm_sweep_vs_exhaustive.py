"""The GEMM sweep's search (coarse grid, then local refinement: bench/sweep.py) against a
MAMF-finder-style exhaustive grid (every M x N x K of `--m_range lo hi step` and alike), in one run on
this machine, the two interleaved shape by shape so that load from other jobs falls on both.

    python benchmarks/gemm_sweep_vs_exhaustive.py [--dtype fp32] [--lo 256] [--hi 1792] [--step 256]
        [--threads 1] [--clock auto] [--radius 2] [--top 3] [--max-shapes 40] [--patience 2] [--stride 1]
        [--confirm-top 5] [--rounds 4] [--lock-rounds 10]

The search's coarse grid covers the fine grid: every fine shape lies within --radius steps of a coarse
shape per dimension (sweep.covering_axis), plus the largest shape (hi, hi, hi); refinement starts at
--radius steps and halves to the fine step around the --top fastest shapes, at most --max-shapes more,
without growing the step after a gain (--stride 1: the coarse grid already made the long moves).

Every shape is measured the same way (recoque's runner: verified first, then timed with one short
policy). With --threads 1 the clock is the thread's CPU time (--clock auto): on a machine shared with
other jobs, wall time also counts the slices of time the scheduler gives them, and those fall on a
50 ms call more surely than on a 1 ms one, which favours small shapes; CPU time leaves them out.
A short median picks its shape out of hundreds on a busy machine by its luck as much as by its speed
(on this 2-core machine shared with other jobs, repeated sweeps of the same grid scatter by ~4.5% per
shape, more than the best shapes differ), so neither method's sweep figure is its answer:
1. select: the union of both methods' --confirm-top fastest shapes is re-measured with a longer policy
   in --rounds alternating rounds (MAMF-finder re-measures its best scouts over longer windows before it
   publishes one); each method's pick is its own candidate with the fastest round (load from other
   jobs only slows a round down; MAMF-finder also picks a shape's fastest result);
2. lock in: the two picks are measured again, back to back, in --lock-rounds alternating rounds; their
   figures come from these rounds only, so the picking's winner's curse is not in them. The ratio is
   the median of the rounds' paired ratios (each pair measured seconds apart, so a change in the load
   between rounds cancels out of it).
Prints, for each method: shapes, seconds spent measuring them, best shape and GFLOP/s in the sweep,
its pick and the pick's locked-in median GFLOP/s; then the ratio with its quartiles, the ratio of the
medians, and the fractions of shapes and time. Exit 1 if the ratio is more than --bar below 1.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace

from recoque.bench import sweep
from recoque.bench.devices import detect
from recoque.bench.gemm import GemmCase
from recoque.bench.runner import run_cases
from recoque.bench.timing import TimingPolicy

SHAPE_POLICY = TimingPolicy(warmup_s=0.05, budget_s=0.15, min_samples=5, max_samples=30)
CONFIRM_POLICY = TimingPolicy(warmup_s=0.1, budget_s=0.6, min_samples=10, max_samples=120)


class Meter:
    """Measures shapes with recoque's runner; keeps the rate per shape and the seconds spent."""

    def __init__(self, device, dtype: str, policy: TimingPolicy):
        self.device, self.dtype, self.policy = device, dtype, policy
        self.rates: dict[sweep.Shape, float] = {}
        self.seconds = 0.0
        self.seconds_by_shape: dict[sweep.Shape, float] = {}  # confirmation seconds per shape
        self.cases = 0

    def measure(self, batch: list[sweep.Shape]) -> dict[sweep.Shape, float]:
        t0 = time.perf_counter()
        out = run_cases([GemmCase(*s, self.dtype) for s in batch], self.device, self.policy, telemetry=False)
        self.seconds += time.perf_counter() - t0
        self.cases += len(batch)
        for r in out.records:
            self.rates[(r.params["m"], r.params["n"], r.params["k"])] = r.achieved * 1e3  # GFLOP/s
        return dict(self.rates)

    def measure_one(self, shape: sweep.Shape) -> float | None:
        """One confirmation measurement of `shape`, GFLOP/s (None if it was skipped)."""
        t0 = time.perf_counter()
        out = run_cases([GemmCase(*shape, self.dtype)], self.device, self.policy, telemetry=False)
        spent = time.perf_counter() - t0
        self.seconds += spent
        self.seconds_by_shape[shape] = self.seconds_by_shape.get(shape, 0.0) + spent
        self.cases += 1
        return out.records[0].achieved * 1e3 if out.records else None


def search_plan(args) -> sweep.SweepPlan:
    axis = sweep.covering_axis(args.lo, args.hi, args.step, args.radius)
    coarse = sweep.mamf_grid(axis, axis, axis) + [(args.hi, args.hi, args.hi)]
    return sweep.SweepPlan(tuple(dict.fromkeys(coarse)), step=args.radius * args.step, min_step=args.step,
                           lo=args.lo, hi=args.hi, top=args.top, max_shapes=args.max_shapes, patience=args.patience,
                           stride=args.stride)


def sweep_both(plan: sweep.SweepPlan, exhaustive: list[sweep.Shape], ours: Meter, theirs: Meter) -> None:
    """One shape of the search, then as many of the exhaustive grid as the search can have shapes at
    most per grid shape, so that both are spread over the whole run and meet the same load."""
    per = max(1, len(exhaustive) // (len(plan.coarse) + plan.max_shapes))
    gen = sweep.search(plan)
    pending: list[sweep.Shape] = list(next(gen))
    done, shown = 0, 0
    while pending or done < len(exhaustive):
        if pending:
            ours.measure([pending.pop(0)])
            if not pending:  # the batch is measured: the search proposes the next one, if any
                pending = list(next_batch(gen, ours.rates))
        if done < len(exhaustive):
            theirs.measure(exhaustive[done:done + per])
            done = min(done + per, len(exhaustive))
        if done * 8 // len(exhaustive) > shown or (done == len(exhaustive) and not pending):
            shown = done * 8 // len(exhaustive)
            print(f"  exhaustive {done}/{len(exhaustive)}, search {ours.cases} shapes", flush=True)


def next_batch(gen, rates: dict[sweep.Shape, float]) -> list[sweep.Shape]:
    try:
        return gen.send(dict(rates))
    except StopIteration:
        return []


def lock_in(ours: sweep.Shape, theirs: sweep.Shape, measure_one, rounds: int) -> list[tuple[float, float]]:
    """(ours, theirs) GFLOP/s per round, the two measured back to back, which one first alternating; a
    round where either measurement failed is left out. The same shape twice: measured once a round."""
    pairs = []
    for r in range(rounds):
        if ours == theirs:
            x = measure_one(ours)
            pairs += [(x, x)] if x is not None else []
            continue
        first, second = (ours, theirs) if r % 2 == 0 else (theirs, ours)
        a, b = measure_one(first), measure_one(second)
        if a is not None and b is not None:
            pairs.append((a, b) if first == ours else (b, a))
    return pairs


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--lo", type=int, default=256)
    ap.add_argument("--hi", type=int, default=1792)
    ap.add_argument("--step", type=int, default=256, help="the exhaustive grid's step (MAMF's fine step)")
    ap.add_argument("--radius", type=int, default=2, help="every fine shape within this many steps of a coarse one")
    ap.add_argument("--top", type=int, default=3, help="refine around this many of the fastest shapes")
    ap.add_argument("--max-shapes", type=int, default=40, help="refinement shapes at most")
    ap.add_argument("--patience", type=int, default=2, help="rounds without a gain at the fine step before stopping")
    ap.add_argument("--stride", type=int, default=1, help="after gains the step may grow to this many times the "
                                                          "first (1: the covering grid did the long strides)")
    ap.add_argument("--confirm-top", type=int, default=5, help="each method's fastest shapes re-measured to pick one")
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds of the selection")
    ap.add_argument("--lock-rounds", type=int, default=10, help="alternating rounds of the two picks' lock-in")
    ap.add_argument("--bar", type=float, default=0.01, help="largest shortfall allowed, as a fraction")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 is steadier "
                                                             "on a small machine shared with other jobs")
    ap.add_argument("--clock", choices=("auto", "wall", "thread"), default="auto",
                    help="thread: the thread's CPU time, blind to the time other jobs held the core (one thread "
                         "only); auto: thread with --threads 1, else wall")
    args = ap.parse_args()
    if args.clock == "auto":
        args.clock = "thread" if args.threads == 1 else "wall"
    if args.clock == "thread" and args.threads != 1:
        ap.error("--clock thread counts one thread's time: use it with --threads 1")
    return args


def shape(s: sweep.Shape) -> str:
    return "x".join(map(str, s))


def confirm_both(ours: Meter, theirs: Meter, select: Meter, lock: Meter, args) -> tuple:
    """Select each method's pick among its --confirm-top shapes, then lock the two picks in, paired.
    Returns (our pick, their pick, selection rates per shape, locked-in (ours, theirs) pairs)."""
    top_ours, top_theirs = (sweep.top_shapes(m.rates, args.confirm_top) for m in (ours, theirs))
    picked = sweep.alternate(top_ours + top_theirs, select.measure_one, args.rounds)
    s_ours, s_theirs = (sweep.confirmed_best(picked, t, stat=max) for t in (top_ours, top_theirs))
    if s_ours is None or s_theirs is None:
        return s_ours, s_theirs, picked, []
    return s_ours, s_theirs, picked, lock_in(s_ours, s_theirs, lock.measure_one, args.lock_rounds)


def report(ours: Meter, theirs: Meter, select: Meter, lock: Meter, picks: tuple, args) -> bool:
    s_ours, s_theirs, picked, pairs = picks
    medians = [statistics.median(p[i] for p in pairs) for i in (0, 1)]
    bests = [max(p[i] for p in pairs) for i in (0, 1)]
    for name, m, s, c in (("exhaustive", theirs, s_theirs, medians[1]), ("recoque search", ours, s_ours, medians[0])):
        best, rate = sweep.best_of(m.rates)
        print(f"{name:>15}: {m.cases:4d} shapes in {m.seconds:6.1f} s; sweep best {shape(best)} {rate:.1f} GFLOP/s; "
              f"pick {shape(s)} {c:.1f} GFLOP/s locked in (selection best {max(picked[s]):.1f})")
    ratios = [a / b for a, b in pairs]
    ratio = statistics.median(ratios)
    q1, _, q3 = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratio, ratio, ratio)
    ok = ratio >= 1 - args.bar
    print(f"confirmation: {len(picked)} candidates x {args.rounds} rounds in {select.seconds:.1f} s, then 2 picks x "
          f"{args.lock_rounds} rounds in {lock.seconds:.1f} s (the same for both methods, in neither's time)")
    own = [m.seconds + sum(select.seconds_by_shape.get(s, 0.0) for s in sweep.top_shapes(m.rates, args.confirm_top))
           for m in (ours, theirs)]
    print(f"with the selection rounds of its own candidates: search {own[0]:.1f} s, exhaustive {own[1]:.1f} s: "
          f"{own[0] / own[1]:.1%}")
    print(f"ratio search/exhaustive: {ratio:.4f} (median of {len(ratios)} paired rounds, quartiles {q1:.4f}..{q3:.4f}"
          f"{'; the same shape' if s_ours == s_theirs else ''}; ratio of the medians {medians[0] / medians[1]:.4f}, of "
          f"the fastest rounds {bests[0] / bests[1]:.4f}; "
          f"of the sweep bests {sweep.best_of(ours.rates)[1] / sweep.best_of(theirs.rates)[1]:.4f}); shapes "
          f"{ours.cases / theirs.cases:.1%}, time {ours.seconds / theirs.seconds:.1%} of the exhaustive grid's "
          f"-> {'PASS' if ok else 'FAIL'} (within {args.bar:.0%})")
    return ok


def main() -> int:
    args = parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    device = detect("cpu")
    fine = sweep.mamf_range(args.lo, args.hi + 1, args.step)
    exhaustive = sweep.mamf_grid(fine, fine, fine)
    plan = search_plan(args)
    print(f"{args.dtype} on {device.name} ({args.threads or 'default'} threads, {args.clock} clock): exhaustive "
          f"{len(exhaustive)} shapes (m, n, k in {fine[0]}..{fine[-1]} step {args.step}); search: coarse "
          f"{len(plan.coarse)} shapes ({sweep.covering_axis(args.lo, args.hi, args.step, args.radius)} and "
          f"{args.hi}^3), refinement step {plan.step} -> {plan.min_step} around the top {plan.top}, patience "
          f"{plan.patience}, at most {plan.max_shapes} more", flush=True)
    shape_policy, confirm_policy = (replace(p, host_clock=args.clock) for p in (SHAPE_POLICY, CONFIRM_POLICY))
    ours, theirs = Meter(device, args.dtype, shape_policy), Meter(device, args.dtype, shape_policy)
    sweep_both(plan, exhaustive, ours, theirs)
    select, lock = Meter(device, args.dtype, confirm_policy), Meter(device, args.dtype, confirm_policy)
    picks = confirm_both(ours, theirs, select, lock, args)
    if not picks[3]:
        print("no confirmation measurement succeeded: nothing to compare", file=sys.stderr)
        return 1
    return 0 if report(ours, theirs, select, lock, picks, args) else 1


if __name__ == "__main__":
    sys.exit(main())
