"""Plan-search speed: GPT-3 175B on 1,024 GPUs, global batch 1,536 (the issue's bar).

Prints the number of candidate plans, the full-space time (every switch, every plan timed) and
the default pruned-search time, and plans evaluated per second, measured in one run.
Run: python benchmarks/bench_search.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from recoque.planner.search import enumerate_plans, search
from recoque.planner.train import hardware_for
from recoque.planner.train_core import core
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gpus", type=int, default=1024)
    ap.add_argument("--calculon-count", type=int, default=11_700_000,
                    help="also time the model on this many plans (the full space tiled), Calculon's count")
    args = ap.parse_args()
    wl = load_training_workload("gpt3-175b")  # global batch 1536 sequences of 2048 tokens
    system = validation_system("selene")
    profile = shipped_profile(system.device)
    search(wl, system, profile, gpus=args.gpus)  # warm-up (imports, caches)
    for label, full in (("full space", True), ("pruned (default)", False)):
        times, res = [], None
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = search(wl, system, profile, gpus=args.gpus, full=full)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        print(f"{label:18s}: {res.evaluated:>10,} plans evaluated ({res.infeasible_memory:,} do not fit, "
              f"{res.invalid:,} invalid combinations), median {med:.3f} s over {args.repeat} runs "
              f"-> {res.evaluated / med:,.0f} plans/s")
        b = res.best[0]
        print(f"{'':18s}  best: {b.plan.label()}  {b.iteration_time.value:.2f} s/iteration, "
              f"MFU {b.mfu.value:.1%}, {b.memory_per_gpu.value / 1e9:.1f} GB/GPU")
    if args.calculon_count:
        # Calculon's space has switches this model does not have (offloads, network choices); to
        # compare like for like at its size, evaluate our full space tiled to the same count.
        chunks, _ = enumerate_plans(wl, args.gpus, system.gpus_per_node, full=True)
        parts = list(chunks)
        space = {k: np.concatenate([c[k] for c in parts]) for k in parts[0]}
        n_space = len(space["tp"])
        reps = -(-(1 << 19) // n_space)
        tile = {k: np.tile(v, reps) for k, v in space.items()}
        hw = hardware_for(system, profile)
        done, t0 = 0, time.perf_counter()
        while done < args.calculon_count:
            out = core(wl, hw, profile, "bf16", tile)
            done += len(out["iteration_time_s"])
        dt = time.perf_counter() - t0
        print(f"{'model at scale':18s}: {done:>10,} plan evaluations (full space x {done // n_space}) in {dt:.2f} s "
              f"-> {done / dt:,.0f} plans/s (Calculon: ~100 per second per core)")


if __name__ == "__main__":
    main()
