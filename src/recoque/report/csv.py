"""CSV exports: every result, plus the column layouts BabelStream and nccl-tests users already parse.

BabelStream (`--csv` output): function,num_times,n_elements,sizeof,max_mbytes_per_sec,min_runtime,
max_runtime,avg_runtime; runtimes in seconds, MB/s decimal at the fastest run (its convention).
nccl-tests (one row per size): size,count,type,redop,time_us,algbw,busbw; time at the median sample
here, algbw = size / time and busbw = algbw x the bus factor, both GB/s (nccl-tests' definitions).
Both end in two columns of recoque's own: the file a row comes from and the pass that measured it.
"""
from __future__ import annotations

import csv
import io
import json
import os
import statistics
from pathlib import Path
from typing import Sequence

from recoque.bench.schema import Record, ResultsDocument
from recoque.bench.summary import run_label
from recoque.fileio import write_atomic

ALL_COLUMNS = ("file", "benchmark", "op", "dtype", "params", "run", "unit", "samples", "median_s", "min_s", "max_s",
               "mean_s", "achieved", "best", "peak", "fraction_of_peak", "flop_count", "bytes_moved", "backend")
# BabelStream's and nccl-tests' own columns first, then which file and which pass of the run (a case is
# measured in several confirmation rounds) so that rows can be told apart
BABELSTREAM_COLUMNS = ("function", "num_times", "n_elements", "sizeof", "max_mbytes_per_sec", "min_runtime",
                       "max_runtime", "avg_runtime", "file", "run")
# nranks: the ranks of the collective itself (a point-to-point pair: 2, of a world of world_size);
# placement (in/out of place) and tier (intra/inter-node) tell apart rows of the same op and size.
NCCL_COLUMNS = ("op", "size", "count", "type", "redop", "time_us", "algbw", "busbw", "nranks", "world_size",
                "placement", "tier", "file", "run")
NCCL_TYPES = {"fp32": "float", "fp16": "half", "bf16": "bfloat16", "fp64": "double"}
NCCL_REDOPS = {"all_reduce": "sum", "reduce_scatter": "sum"}
ELEM_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "fp64": 8}


def _text(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def all_rows(docs: Sequence[tuple[str, ResultsDocument]]) -> list[list[object]]:
    rows = []
    for label, doc in docs:
        for r in doc.results:
            rows.append([label, r.benchmark, r.op, r.dtype, json.dumps(dict(r.params), sort_keys=True), run_label(r), r.unit,
                         len(r.times_s), r.median_s, r.min_s, max(r.times_s), statistics.fmean(r.times_s),
                         r.achieved, r.best, r.peak, r.fraction_of_peak, r.flop_count, r.bytes_moved, r.backend])
    return rows


def babelstream_rows(doc: ResultsDocument, label: str = "") -> list[list[object]]:
    rows = []
    for r in doc.results:
        if r.benchmark != "stream" or "n_elements" not in r.params:
            continue
        rows.append([r.op.capitalize(), len(r.times_s), r.params["n_elements"], r.params.get("elem_bytes", 8),
                     r.bytes_moved / r.min_s / 1e6, r.min_s, max(r.times_s), statistics.fmean(r.times_s),  # type: ignore[operator]
                     label, run_label(r)])
    return rows


def nccl_rows(doc: ResultsDocument, label: str = "") -> list[list[object]]:
    rows = []
    for r in doc.results:
        if r.benchmark != "collective" or "bytes" not in r.params:
            continue
        size = int(r.params["bytes"])
        t = r.median_s
        rows.append([r.op, size, size // ELEM_BYTES.get(r.dtype, 4), NCCL_TYPES.get(r.dtype, r.dtype),
                     NCCL_REDOPS.get(r.op, "none"), t * 1e6, size / t / 1e9, _busbw(r),
                     r.params.get("group_size", r.params.get("world_size")), r.params.get("world_size"),
                     r.params.get("placement", ""), r.params.get("tier", ""), label, run_label(r)])
    return rows


def _busbw(r: Record) -> float:
    return r.bytes_moved / r.median_s / 1e9  # type: ignore[operator]  # bytes_moved = S x bus factor


def derived_paths(out: str | Path) -> tuple[str, str]:
    """The BabelStream- and nccl-tests-style files written beside OUT (when it has such rows)."""
    base = Path(out)
    stem = base.with_suffix("") if base.suffix.lower() == ".csv" else base
    return f"{stem}-babelstream.csv", f"{stem}-nccl-tests.csv"


def export(docs: Sequence[tuple[str, ResultsDocument]], out: str) -> list[str]:
    """Write OUT (every result) and, when present, OUT-babelstream.csv and OUT-nccl-tests.csv; paths back."""
    return export_files(docs, out)[0]


def export_files(docs: Sequence[tuple[str, ResultsDocument]], out: str) -> tuple[list[str], list[str]]:
    """export(), and the side files of an earlier export to OUT that this one has no rows for removed:
    OUT is replaced whole, so a side file left beside it would pass for this export's (an old
    -nccl-tests.csv next to a run without collectives). (paths written, paths removed)"""
    base = Path(out)
    written = [str(base)]
    write_atomic(base, _text(ALL_COLUMNS, all_rows(docs)))
    removed = []
    sides = ((BABELSTREAM_COLUMNS, babelstream_rows), (NCCL_COLUMNS, nccl_rows))
    for path, (columns, rows_of) in zip(derived_paths(base), sides):
        rows = [row for label, d in docs for row in rows_of(d, label)]
        if rows:
            write_atomic(path, _text(columns, rows))
            written.append(path)
        elif _ours(path, columns) and _remove_stale(path):
            removed.append(path)
    return written, removed


def _ours(path: str, columns: Sequence[str]) -> bool:
    """A plain file that starts with the header this module writes (its trailing file and run columns
    are recoque's, not BabelStream's or nccl-tests'): only such a file is an earlier export's. A link,
    or a file of the user's own under that name, is left alone."""
    if os.path.islink(path) or not os.path.isfile(path):
        return False
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            first = fh.readline().rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return False
    return first == ",".join(columns)


def _remove_stale(path: str) -> bool:
    """Remove an earlier export's side file (checked by _ours)."""
    from recoque.fileio import _failed

    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise _failed(Path(path), exc) from None
    return True
