"""The GEMM sweep's search (coarse grid, then local refinement: bench/sweep.py) against a
MAMF-finder-style exhaustive grid (every M x N x K of `--m_range lo hi step` and alike), in one run on
this machine, the two alternating batch by batch so that load from other jobs falls on both.

    python benchmarks/gemm_sweep_vs_exhaustive.py [--dtype fp32] [--lo 256] [--hi 1792] [--step 256] [--threads 1]
                                                  [--confirm-top 3] [--rounds 2]

Every shape is measured the same way (recoque's runner: verified first, then timed with one short
policy). The best shapes are then re-measured alternately with a longer run (MAMF-finder's
confirmation of its best shape; it also undoes the selection bias of picking the best of hundreds of
noisy medians). Each method's top --confirm-top shapes are re-measured and its answer is the best
confirmed one, so one lucky median in a busy moment does not decide either. Prints, for each method:
shapes, seconds spent measuring them, best shape and GFLOP/s in the sweep and confirmed; then the
ratio of the confirmed figures and the fractions of shapes and time.
Exit 1 if the search's confirmed best is more than --bar below the exhaustive grid's.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time

from recoque.bench import sweep
from recoque.bench.devices import detect
from recoque.bench.gemm import REFINE_CPU, GemmCase
from recoque.bench.runner import run_cases
from recoque.bench.timing import TimingPolicy

SHAPE_POLICY = TimingPolicy(warmup_s=0.05, budget_s=0.15, min_samples=5, max_samples=30)
CONFIRM_POLICY = TimingPolicy(warmup_s=0.1, budget_s=0.6, min_samples=10, max_samples=120)


class Meter:
    """Measures shapes with recoque's runner; keeps the rate per shape and the seconds spent."""

    def __init__(self, device, dtype: str):
        self.device, self.dtype = device, dtype
        self.rates: dict[sweep.Shape, float] = {}
        self.seconds = 0.0
        self.cases = 0

    def measure(self, batch: list[sweep.Shape]) -> dict[sweep.Shape, float]:
        t0 = time.perf_counter()
        out = run_cases([GemmCase(*s, self.dtype) for s in batch], self.device, SHAPE_POLICY, telemetry=False)
        self.seconds += time.perf_counter() - t0
        self.cases += len(batch)
        for r in out.records:
            self.rates[(r.params["m"], r.params["n"], r.params["k"])] = r.achieved * 1e3  # GFLOP/s
        return dict(self.rates)


def confirm(device, dtype: str, shapes: list[sweep.Shape], rounds: int) -> dict[sweep.Shape, float]:
    """Each shape re-measured `rounds` times, alternating; the median of the medians, GFLOP/s."""
    got: dict[sweep.Shape, list[float]] = {s: [] for s in shapes}
    for _ in range(rounds):
        for s in shapes:
            out = run_cases([GemmCase(*s, dtype)], device, CONFIRM_POLICY, telemetry=False)
            got[s] += [r.achieved * 1e3 for r in out.records]
    return {s: statistics.median(v) for s, v in got.items() if v}


def top(rates: dict[sweep.Shape, float], n: int) -> list[sweep.Shape]:
    return sorted(rates, key=lambda s: rates[s], reverse=True)[:n]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--lo", type=int, default=256)
    ap.add_argument("--hi", type=int, default=1792)
    ap.add_argument("--step", type=int, default=256, help="the exhaustive grid's step (MAMF's fine step)")
    ap.add_argument("--rounds", type=int, default=2, help="confirmation rounds per shape")
    ap.add_argument("--confirm-top", type=int, default=3, help="each method's fastest shapes re-measured; "
                                                                "its answer is the best confirmed one")
    ap.add_argument("--bar", type=float, default=0.01, help="largest shortfall allowed, as a fraction")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default); 1 is steadier "
                                                             "on a small machine shared with other jobs")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    device = detect("cpu")
    axis = sweep.mamf_range(args.lo, args.hi + 1, args.step)
    exhaustive = sweep.mamf_grid(axis, axis, axis)
    coarse_axis = sweep.coarse_axis(args.lo, args.hi, 4 * args.step)
    plan = sweep.SweepPlan(tuple(sweep.mamf_grid(coarse_axis, coarse_axis, coarse_axis)), step=REFINE_CPU["step"],
                           min_step=REFINE_CPU["min_step"], lo=args.lo, hi=args.hi, top=REFINE_CPU["top"],
                           max_shapes=REFINE_CPU["max_shapes"])
    print(f"{args.dtype} on {device.name} ({args.threads or 'default'} threads): exhaustive {len(exhaustive)} "
          f"shapes (m, n, k in {axis[0]}..{axis[-1]} step {args.step}); search: coarse {len(plan.coarse)} shapes ({coarse_axis}), refinement step "
          f"{plan.step} -> {plan.min_step}, top {plan.top}, at most {plan.max_shapes} more", flush=True)

    ours, theirs = Meter(device, args.dtype), Meter(device, args.dtype)
    chunk = math.ceil(len(exhaustive) / 8)
    gen = sweep.search(plan)
    batch: list[sweep.Shape] | None = next(gen)
    done = 0
    while batch is not None or done < len(exhaustive):
        if batch is not None:  # one batch of the search, then one chunk of the grid
            rates = ours.measure(batch)
            try:
                batch = gen.send(rates)
            except StopIteration:
                batch = None
        if done < len(exhaustive):
            theirs.measure(exhaustive[done:done + chunk])
            done += chunk
            print(f"  exhaustive {min(done, len(exhaustive))}/{len(exhaustive)}, search {ours.cases} shapes",
                  flush=True)

    top_ours, top_theirs = top(ours.rates, args.confirm_top), top(theirs.rates, args.confirm_top)
    conf = confirm(device, args.dtype, list(dict.fromkeys(top_ours + top_theirs)), args.rounds)
    # Each method's answer: the best confirmed figure among its own top shapes.
    s_ours, s_theirs = (max((s for s in t if s in conf), key=lambda s: conf[s]) for t in (top_ours, top_theirs))
    r_ours, r_theirs = ours.rates[s_ours], theirs.rates[s_theirs]
    c_ours, c_theirs = conf[s_ours], conf[s_theirs]
    for name, m, s, r, c in (("exhaustive", theirs, s_theirs, r_theirs, c_theirs),
                             ("recoque search", ours, s_ours, r_ours, c_ours)):
        print(f"{name:>15}: {m.cases:4d} shapes in {m.seconds:6.1f} s; best {'x'.join(map(str, s))} "
              f"{r:.1f} GFLOP/s in the sweep, {c:.1f} GFLOP/s confirmed")
    ratio = c_ours / c_theirs
    ok = ratio >= 1 - args.bar
    print(f"ratio search/exhaustive: {ratio:.4f} confirmed ({r_ours / r_theirs:.4f} in the sweeps); shapes "
          f"{ours.cases / theirs.cases:.1%}, time {ours.seconds / theirs.seconds:.1%} of the exhaustive grid's "
          f"-> {'PASS' if ok else 'FAIL'} (within {args.bar:.0%})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
