"""Three `recoque bench all --quick --device cpu` runs in a row: are the headlines stable? (issue 8)

Runs the command --runs times (default 3) as subprocesses, one after the other, loads each results
file through recoque.bench.schema and prints, per headline row of the results table (benchmark, op,
dtype, kind), the figure of every run, how it was chosen (confirmed / steady / unsteady) and the
spread max/min - 1; then the CPU clock behind the computed peaks, the peaks and the fingerprint of
every run. Exit 1 when any headline spreads more than --max-spread (default 10%), a row is missing
from a run, or the peaks or fingerprints differ; 0 otherwise.

    .venv/bin/python benchmarks/three_run_stability.py [--runs 3] [--max-spread 0.10] [--keep DIR]

Quote its output with the machine's load: on a shared 2-core machine other jobs halve multi-threaded
figures (the results files' `contended` warnings and other_cpu_cores tags say when that happened).

The machine itself is probed before every run and after the last, with two fixed reference
kernels that recoque does not tune (numpy's dot over two 128 MiB fp64 arrays: memory bandwidth;
a 1024^3 fp64 matmul: compute), timed by the project's timing helper. Their spread across the
probes is the machine's own drift; a headline that spreads more than --max-spread is still a
FAIL, and the report says when the machine's reference moved as much (a virtual machine's memory
bandwidth can halve for tens of seconds when a neighbour on the host streams memory).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from recoque.bench.devices import detect
from recoque.bench.headline import other_cores
from recoque.bench.schema import ResultsDocument, load_results
from recoque.bench.summary import best_rows
from recoque.bench.timing import TimingPolicy, measure

COMMAND = ("bench", "all", "--quick", "--device", "cpu")


PROBE_POLICY = TimingPolicy(warmup_s=0.2, budget_s=2.0, min_samples=10, max_samples=400)
PROBE_ELEMENTS = 16 * 1024 * 1024  # 128 MiB per fp64 array, 4x a 32 MiB last-level cache


def probe() -> dict[str, float]:
    """The machine's memory bandwidth (GB/s, numpy dot) and fp64 matmul rate (GFLOP/s) now: medians."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(PROBE_ELEMENTS), rng.standard_normal(PROBE_ELEMENTS)
    m = rng.standard_normal((1024, 1024))
    cpu = detect("cpu")
    dot = measure(lambda i: np.dot(a, b), cpu, PROBE_POLICY)
    mm = measure(lambda i: m @ m, cpu, PROBE_POLICY)
    return {"memory_gb_s": 2 * 8 * PROBE_ELEMENTS / statistics.median(dot.times_s) / 1e9,
            "fp64_matmul_gflop_s": 2 * 1024 ** 3 / statistics.median(mm.times_s) / 1e9}


def drift_report(probes: list[dict[str, float]]) -> dict[str, float]:
    """Each reference's spread (max/min - 1) across the probes, printed with the probes."""
    print("machine reference (not recoque's kernels), before each run and after the last:")
    for i, p in enumerate(probes):
        when = f"before run {i + 1}" if i < len(probes) - 1 else "after the last run"
        print(f"  {when:<20} memory {p['memory_gb_s']:7.1f} GB/s   fp64 matmul {p['fp64_matmul_gflop_s']:7.1f} GFLOP/s")
    out = {k: spread([p[k] for p in probes]) for k in probes[0]}
    print(f"  machine drift: memory {out['memory_gb_s']:.1%}, fp64 matmul {out['fp64_matmul_gflop_s']:.1%}")
    return out


def run_once(out: Path) -> float:
    """One run as a subprocess (a fresh process each time, as a user would run it); seconds taken."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "recoque", *COMMAND, "--out", str(out), "--force"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0 or not out.is_file():
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"recoque {' '.join(COMMAND)} failed (exit {done.returncode}):\n{tail}")
    return time.perf_counter() - t0


def headlines(doc: ResultsDocument) -> dict[str, tuple[float, str, str]]:
    """Row label -> (figure in the row's unit, unit, how it was chosen), as the results table shows."""
    out = {}
    for r in best_rows(doc):
        label = f"{r['benchmark']} {r['op']} {r['dtype']}" + (" (LLM layers)" if r["kind"] == "llm" else "")
        out[label] = (r["achieved"], r["unit"], r["headline"])
    return out


def peaks(doc: ResultsDocument) -> dict[str, float | None]:
    """The datasheet or computed peak per benchmark and dtype (TFLOP/s or GB/s) in this run."""
    return {f"{r.benchmark} {r.dtype} ({r.unit})": r.peak for r in doc.results}


def others_busy(doc: ResultsDocument) -> str:
    """Cores other processes used during the confirmation rounds (median, max), from their tags."""
    busy = sorted(b for b in (other_cores(r) for r in doc.results) if b is not None)
    return f"{statistics.median(busy):.2f} median, {busy[-1]:.2f} max" if busy else "not measured"


def spread(values: list[float]) -> float:
    return max(values) / min(values) - 1 if values and min(values) > 0 else float("inf")


def report(docs: list[ResultsDocument], seconds: list[float], max_spread: float,
           probes: list[dict[str, float]] | None = None) -> int:
    """Print the comparison; return the exit code."""
    per_run = [headlines(d) for d in docs]
    labels = list(dict.fromkeys(k for h in per_run for k in h))
    failed = []
    width = max(len(k) for k in labels) if labels else 10
    print(f"{'headline':<{width}}  " + "  ".join(f"{'run ' + str(i + 1):<18}" for i in range(len(docs)))
          + "   spread")
    for label in labels:
        cells = [h.get(label) for h in per_run]
        if any(c is None for c in cells):
            failed.append(f"{label}: missing from a run")
            print(f"{label:<{width}}  missing from run(s) {[i + 1 for i, c in enumerate(cells) if c is None]}")
            continue
        values = [c[0] for c in cells]  # type: ignore[index]
        unit = cells[0][1]  # type: ignore[index]
        s = spread(values)
        mark = "  FAIL" if s > max_spread else ""
        if mark:
            failed.append(f"{label}: spread {s:.1%}")
        shown = "  ".join(f"{v * 1e3 if unit == 'TFLOP/s' else v:>8.4g} {c[2]:<9}"  # type: ignore[index]
                          for v, c in zip(values, cells))
        print(f"{label:<{width}}  {shown}  {s:7.1%}{mark}   ({'GFLOP/s' if unit == 'TFLOP/s' else unit})")
    print()
    for i, (d, sec) in enumerate(zip(docs, seconds)):
        env = d.environment
        clock = env.get("cpu_clock_hz")
        print(f"run {i + 1}: {sec:.1f} s, fingerprint {env.get('fingerprint')}, cpu clock "
              f"{clock / 1e9 if clock else float('nan'):.2f} GHz, other processes' cores {others_busy(d)}")
        print(f"       peaks {peaks(d)}")
    if len({repr(sorted(peaks(d).items())) for d in docs}) > 1:
        failed.append("the peaks differ between runs")
    if len({d.environment.get("fingerprint") for d in docs}) > 1:
        failed.append("the fingerprints differ between runs")
    print()
    drift = drift_report(probes) if probes else {}
    if failed:
        print(f"UNSTABLE ({len(failed)}): " + "; ".join(failed))
        if drift.get("memory_gb_s", 0.0) > max_spread:
            print(f"note: the machine's own memory bandwidth moved {drift['memory_gb_s']:.0%} across the probes; "
                  f"stream rows cannot be stable to {max_spread:.0%} on it")
        return 1
    print(f"stable: every headline within {max_spread:.0%} over {len(docs)} runs, same peaks and fingerprint")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--max-spread", type=float, default=0.10, help="largest max/min - 1 allowed per headline")
    ap.add_argument("--keep", type=Path, default=None, help="write the results files into this folder")
    args = ap.parse_args(argv)
    if args.runs < 2:
        ap.error("--runs must be at least 2")
    with tempfile.TemporaryDirectory(prefix="recoque-stability-") as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        docs, seconds, probes = [], [], []
        for i in range(args.runs):
            out = folder / f"run{i + 1}.json"
            probes.append(probe())
            seconds.append(run_once(out))
            print(f"run {i + 1}/{args.runs} done in {seconds[-1]:.1f} s: {out}", file=sys.stderr, flush=True)
            docs.append(load_results(str(out)))
        probes.append(probe())
        return report(docs, seconds, args.max_spread, probes)


if __name__ == "__main__":
    sys.exit(main())
