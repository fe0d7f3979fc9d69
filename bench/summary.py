"""The summary of a results document: best per benchmark/op/dtype against datasheet and public bests
(data only; recoque.render draws the tables)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from recoque.bench.anchors import find_anchor
from recoque.bench.headline import headline
from recoque.bench.schema import Record, ResultsDocument


def shape(rec: Record) -> str:
    p = rec.params
    if rec.benchmark == "gemm":
        return f"{p['m']}x{p['n']}x{p['k']}"
    if rec.benchmark == "attention":
        c = " causal" if p.get("causal") else ""
        return f"b{p['batch']} h{p['heads_q']}/{p['heads_kv']} s{p['seq_q']} d{p['head_dim']}{c}"
    if "n_elements" in p:
        return f"{p['n_elements'] * p.get('elem_bytes', 8) / 2**20:.0f} MiB/array"
    if "bytes" in p:
        return f"{p['bytes'] / 2**20:.0f} MiB"
    return ",".join(f"{k}={v}" for k, v in p.items())


def best_rows(doc: ResultsDocument) -> list[dict[str, Any]]:
    groups: dict[tuple, list[Record]] = defaultdict(list)
    for r in doc.results:
        kind = "llm" if "llm" in r.tags else "sweep"
        groups[(r.benchmark, r.op, r.dtype, kind)].append(r)
    device_key = doc.device.get("catalog_key")
    rows = []
    for (bench, op, dtype, kind), recs in groups.items():
        # The confirmed headline (bench/headline.py) when there is one, else the fastest steady case.
        best = headline(recs) or max(recs, key=lambda r: r.achieved)
        anchor = find_anchor(device_key, bench, op, dtype) if kind == "sweep" else None
        st = best.stats()
        rows.append({
            "benchmark": bench, "op": op, "dtype": dtype, "kind": kind, "cases": len(recs), "best_shape": shape(best),
            "achieved": best.achieved, "unit": best.unit, "peak": best.peak, "fraction_of_peak": best.fraction_of_peak,
            "public_best": anchor.achieved if anchor else None, "public_source": anchor.source if anchor else None,
            "fraction_of_public_best": best.achieved / anchor.achieved if anchor else None,
            "cov": st["cov"], "samples": len(best.times_s), "backend": best.backend,
        })
    return rows
