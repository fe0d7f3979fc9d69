"""Tables for a results document: best per benchmark/op/dtype against datasheet and public bests."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from recoque.bench.anchors import find_anchor
from recoque.bench.schema import Record, ResultsDocument
from recoque.render import console, fmt, table


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
        best = max(recs, key=lambda r: r.achieved)
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


def print_tables(doc: ResultsDocument, all_rows: bool) -> None:
    dev = doc.device
    console.print(f"[bold]{dev.get('name', 'device')}[/] ({dev.get('kind', '?')}, {dev.get('arch') or 'arch unknown'})")
    cols = ["benchmark", "dtype", "best shape (of n)", "achieved ± CoV", "peak", "% peak", "% public best", "backend"]
    rows = [[f"{r['benchmark']} {r['op']}" + (" (LLM layers)" if r["kind"] == "llm" else ""), r["dtype"],
             f"{r['best_shape']} (of {r['cases']})", f"{fmt(r['achieved'])} {r['unit']} ± {r['cov'] * 100:.1f}%",
             fmt(r["peak"]) if r["peak"] else "unknown", _pct(r["fraction_of_peak"]),
             (_pct(r["fraction_of_public_best"]) + f" of {fmt(r['public_best'])}") if r["public_best"] else "no public figure",
             r["backend"] or ""] for r in best_rows(doc)]
    console.print(table("Best per benchmark, op and dtype (median time)", cols, rows))
    if all_rows:
        every = [[r.benchmark, r.op, r.dtype, shape(r), f"{fmt(r.achieved)} {r.unit}", _pct(r.fraction_of_peak),
                  len(r.times_s), r.backend or ""] for r in doc.results]
        console.print(table("Every verified case", ["benchmark", "op", "dtype", "shape", "achieved", "% peak", "samples", "backend"], every))
    if doc.skipped:
        reasons: dict[str, int] = defaultdict(int)
        for s in doc.skipped:
            reasons[f"{s.benchmark}/{s.dtype}: {s.reason}"] += 1
        console.print(table("Skipped", ["what", "cases"], sorted(reasons.items())))


def _pct(x: float | None) -> str:
    return "unknown" if x is None else f"{x * 100:.1f}%"
