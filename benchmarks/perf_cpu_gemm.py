"""CPU GEMM bar: the sweep's best per dtype >= 0.97x the better of numpy and torch matmul at the same
shape and dtype, all measured in this one run through bench/timing.measure with the same policy.

    python benchmarks/perf_cpu_gemm.py [--dtypes fp64,fp32,bf16] [--bar 0.97]

Prints GB-free figures in GFLOP/s, the ratio of medians with its spread (root-sum-square of the two
coefficients of variation), and PASS/FAIL per dtype; exits 1 if any dtype fails.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np

from recoque.bench.devices import detect
from recoque.bench.gemm import sweep_cases
from recoque.bench.runner import run_cases
from recoque.bench.timing import TimingPolicy, measure

POLICY = TimingPolicy(warmup_s=0.3, budget_s=1.5, min_samples=7, max_samples=60)


def baseline_gflops(kind: str, m: int, n: int, k: int, dtype: str, device) -> tuple[float, float]:
    """Median GFLOP/s and CoV of plain numpy or torch matmul with preallocated output."""
    import torch

    rng = np.random.default_rng(1)
    if kind == "numpy":
        npd = {"fp64": np.float64, "fp32": np.float32}[dtype]
        a, b = rng.standard_normal((m, k)).astype(npd), rng.standard_normal((k, n)).astype(npd)
        c = np.empty((m, n), npd)
        call = lambda i: np.matmul(a, b, out=c)  # noqa: E731
    else:
        td = {"fp64": torch.float64, "fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
        a, b = torch.randn(m, k).to(td), torch.randn(k, n).to(td)
        c = torch.empty(m, n, dtype=td)
        call = lambda i: torch.matmul(a, b, out=c)  # noqa: E731
    t = measure(call, device, POLICY)
    med = statistics.median(t.times_s)
    return 2 * m * n * k / med / 1e9, statistics.pstdev(t.times_s) / statistics.fmean(t.times_s)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dtypes", default="fp64,fp32,bf16")
    ap.add_argument("--bar", type=float, default=0.97)
    args = ap.parse_args()
    device = detect("cpu")
    failed = False
    for dtype in args.dtypes.split(","):
        out = run_cases(sweep_cases(device, quick=False, dtype=dtype), device, POLICY, telemetry=False)
        best = max(out.records, key=lambda r: r.achieved)
        p = best.params
        ours = best.achieved * 1e3
        ours_cov = best.stats()["cov"]
        base = {kind: baseline_gflops(kind, p["m"], p["n"], p["k"], dtype, device)
                for kind in (("numpy", "torch") if dtype in ("fp64", "fp32") else ("torch",))}
        kind, (ref, ref_cov) = max(base.items(), key=lambda kv: kv[1][0])
        ratio, spread = ours / ref, (ours_cov**2 + ref_cov**2) ** 0.5
        ok = ratio >= args.bar
        failed |= not ok
        others = ", ".join(f"{k} {v[0]:.1f}" for k, v in base.items())
        print(f"{dtype}: sweep best {ours:.1f} GFLOP/s at {p['m']}x{p['n']}x{p['k']} ({best.backend}); "
              f"baselines {others} GFLOP/s; ratio to {kind} {ratio:.3f} ± {ratio * spread:.3f} "
              f"-> {'PASS' if ok else 'FAIL'} (bar {args.bar})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
