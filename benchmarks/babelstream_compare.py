"""recoque's CPU stream kernels against BabelStream's OpenMP build, alternating, on this machine.

Builds BabelStream (OpenMP model) from a source checkout when a C++ compiler is present -- the
source is not part of recoque: pass its folder with --src or BABELSTREAM_SRC (for example a clone
of https://github.com/UoB-HPC/BabelStream) -- then runs, for each dtype, rounds of: BabelStream
(`-s N -n NUMTIMES --csv`, its own best/avg rates) and recoque's numba kernels on the same array
size through bench.timing.measure, in alternating order so that load from other jobs hits both.
Bytes are counted alike (BabelStream's: copy/mul 2, add/triad 3, dot 2 arrays; decimal GB/s).

    python benchmarks/babelstream_compare.py --src ~/BabelStream [--rounds 3] [--dtype fp32]

Prints per kernel and dtype both tools' best and median-of-rounds rates and the ratio recoque /
BabelStream (best against best: BabelStream's headline is its fastest iteration). Exit 0 when every
ratio of the best rates is >= 1.0 - --slack (default 0.05), 1 otherwise, 2 when it cannot build.
"""
from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

from recoque.bench.timing import TimingPolicy, measure
from recoque.kernels import stream as K

NAMES = {"Copy": "copy", "Mul": "mul", "Add": "add", "Triad": "triad", "Dot": "dot"}
POLICY = TimingPolicy(warmup_s=0.05, budget_s=0.3, min_samples=10, max_samples=60)
CACHE = Path(os.path.expanduser("~")) / ".cache" / "recoque" / "babelstream"


def build(src: Path, out_dir: Path) -> Path:
    """Compile BabelStream's OpenMP model once (-O3 -march=native -fopenmp), cached by source path."""
    exe = out_dir / "omp-stream"
    if exe.exists() and exe.stat().st_mtime >= (src / "src" / "main.cpp").stat().st_mtime:
        return exe
    cxx = os.environ.get("CXX") or shutil.which("g++") or shutil.which("clang++")
    if not cxx:
        raise SystemExit("no C++ compiler (g++ or clang++) on PATH: cannot build BabelStream")
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [cxx, "-std=c++17", "-O3", "-march=native", "-fopenmp", "-DOMP", f"-I{src / 'src'}",
           f"-I{src / 'src' / 'omp'}", str(src / "src" / "main.cpp"), str(src / "src" / "omp" / "OMPStream.cpp"),
           "-o", str(exe)]
    print("building:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return exe


def run_babelstream(exe: Path, n: int, dtype: str, numtimes: int, threads: int) -> dict[str, tuple[float, float]]:
    """{kernel: (best GB/s, GB/s at the average time)} from BabelStream's CSV output."""
    cmd = [str(exe), "-s", str(n), "-n", str(numtimes), "--csv"] + (["--float"] if dtype == "fp32" else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    text = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    out = {}
    for row in csv.DictReader(io.StringIO(text)):
        op = NAMES.get(row["function"])
        if op:
            moved = K.bytes_moved(op, n, K.ELEM_BYTES[dtype])
            out[op] = (moved / float(row["min_runtime"]) / 1e9, moved / float(row["avg_runtime"]) / 1e9)
    return out


def run_recoque(n: int, dtype: str) -> dict[str, tuple[float, float]]:
    """{kernel: (best GB/s, GB/s at the median)} of the numba kernels, verified once first."""
    from types import SimpleNamespace

    from recoque.kernels import stream_numba as NB

    dt = K.NUMPY_DTYPE[dtype]
    rng = np.random.default_rng(0)
    arrays = {k: rng.standard_normal(n).astype(dt) for k in ("a", "b", "c")}
    cpu = SimpleNamespace(kind="cpu", torch_device="cpu")
    out = {}
    for op in K.OPS:
        ins = {k: arrays[k].copy() for k in K.READS[op]}
        got = NB.run(op, arrays.get("a"), arrays.get("b"), arrays.get("c"), K.SCALAR)
        ref = K.reference(op, {k: arrays[k] for k in K.READS[op]})
        res = got if K.WRITES[op] is None else arrays[K.WRITES[op]]
        scale = K.error_scale(op, ins)
        if not np.all(np.abs(np.asarray(res, dtype=np.float64) - ref) <= 1e-5 * np.asarray(scale) + 1e-30):
            raise SystemExit(f"recoque {op} {dtype} does not match the float64 reference")
        t = measure(lambda i, op=op: NB.run(op, arrays.get("a"), arrays.get("b"), arrays.get("c"), K.SCALAR),
                    cpu, POLICY).times_s
        moved = K.bytes_moved(op, n, K.ELEM_BYTES[dtype])
        out[op] = (moved / min(t) / 1e9, moved / statistics.median(t) / 1e9)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", default=os.environ.get("BABELSTREAM_SRC"), help="BabelStream source checkout")
    ap.add_argument("--dtype", action="append", choices=("fp32", "fp64"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--numtimes", type=int, default=20, help="BabelStream -n")
    ap.add_argument("--llc-multiple", type=int, default=4, help="array size in multiples of the LLC")
    ap.add_argument("--slack", type=float, default=0.05)
    args = ap.parse_args(argv)
    if not args.src or not (Path(args.src) / "src" / "omp" / "OMPStream.cpp").exists():
        print("no BabelStream source: pass --src DIR (a clone of UoB-HPC/BabelStream) or set BABELSTREAM_SRC")
        return 2
    exe = build(Path(args.src), CACHE)
    from recoque.bench.devices import detect
    from recoque.kernels import stream_numba as NB

    llc = detect("cpu").llc_bytes or 32 * 2**20
    threads = NB.threads()
    print(f"threads {threads} (numba {NB.threading_layer()}, OMP_NUM_THREADS={threads}); LLC {llc / 2**20:.0f} MiB; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    ok = True
    for dtype in args.dtype or ["fp32", "fp64"]:
        n = (args.llc_multiple * llc // K.ELEM_BYTES[dtype]) // 4096 * 4096
        ours: dict[str, list] = {op: [] for op in K.OPS}
        theirs: dict[str, list] = {op: [] for op in K.OPS}
        for r in range(args.rounds):
            steps = [("recoque", lambda: run_recoque(n, dtype)), ("babelstream", lambda: run_babelstream(exe, n, dtype, args.numtimes, threads))]
            for who, fn in (steps if r % 2 == 0 else steps[::-1]):  # alternate who goes first
                for op, v in fn().items():
                    (ours if who == "recoque" else theirs)[op].append(v)
        print(f"\n{dtype}: {n} elements per array ({n * K.ELEM_BYTES[dtype] / 2**20:.0f} MiB), {args.rounds} rounds")
        print(f"{'kernel':6s} {'recoque best':>13s} {'median':>8s} {'Babel best':>11s} {'avg':>8s} {'best ratio':>11s}")
        for op in K.OPS:
            ob, om = max(x[0] for x in ours[op]), statistics.median(x[1] for x in ours[op])
            tb, ta = max(x[0] for x in theirs[op]), statistics.median(x[1] for x in theirs[op])
            ratio = ob / tb
            ok &= ratio >= 1.0 - args.slack
            print(f"{op:6s} {ob:13.2f} {om:8.2f} {tb:11.2f} {ta:8.2f} {ratio:10.2f}x")
    print("\nall kernels within the slack of BabelStream" if ok else "\nsome kernels are below BabelStream")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
