"""The summary of a results document: best per benchmark/op/dtype against datasheet and public bests
(data only; recoque.render draws the tables)."""
from __future__ import annotations

from collections import defaultdict
from typing import Any

from recoque.bench.anchors import find_anchor
from recoque.bench.headline import (BEST_RATE_BENCHMARKS, CONFIRM_TAG, HEADLINE_TAG, ROUND_PREFIX,
                                   TF32_UNCONFIRMED_TAG, figure, held_rate, rounds)
from recoque.bench.noise import spread
from recoque.bench.schema import Record, ResultsDocument


def shape(rec: Record) -> str:
    p = rec.params
    if rec.benchmark == "gemm":
        return f"{p['m']}x{p['n']}x{p['k']}"
    if rec.benchmark == "attention":
        c = " causal" if p.get("causal") else ""
        return f"b{p['batch']} h{p['heads_q']}/{p['heads_kv']} s{p['seq_q']} d{p['head_dim']}{c}"
    if rec.benchmark == "moe":
        rpe = p["tokens"] * p["top_k"] / p["experts"]
        return f"{p['model']} {p['experts']}x{p['n']}x{p['k']} top{p['top_k']}, {rpe:g} rows/expert"
    if rec.benchmark == "launch":  # the chain, and its median per kernel (the figure the planner reads)
        return f"{p['kernels']} kernels, {rec.median_s / rec.work * 1e6:.2f} us each"
    if "n_elements" in p:
        return f"{size_label(p['n_elements'] * p.get('elem_bytes', 8))}/array"
    if "bytes" in p:
        return size_label(p["bytes"]) + (f", {collective_case(rec)}" if rec.benchmark == "collective" else "")
    return ",".join(f"{k}={v}" for k, v in p.items())


def collective_variant(rec: Record) -> str:
    """Which collective it is beyond op and dtype: placement, tier (intra/inter-node) and, for a
    point-to-point pair, its ranks; rows of different ones are different figures."""
    p = rec.params
    pair = f", ranks {p['ranks'][0]}-{p['ranks'][1]}" if p.get("ranks") else ""
    return f"{p.get('placement', '?')}, {p.get('tier', '?')}{pair}"


def collective_case(rec: Record) -> str:
    """The variant and the world size: a 2-rank and an 8-rank all-reduce are different figures (the
    bus bandwidth is algbw times a factor of n, 2(n-1)/n for all-reduce, and the ring's steps grow
    with n: nccl-tests doc/PERFORMANCE.md; each -g is its own run), so one summary row must not hold
    both. Records without a world size (older files) keep the variant alone."""
    n = rec.params.get("world_size")
    return (f"{n} ranks, " if n is not None else "") + collective_variant(rec)


def _largest_message(recs: list[Record]) -> list[Record]:
    """A collective group's records at its largest message: the bus bandwidth nccl-tests reports
    (its small sizes measure latency; their steadier runs had made an 8-byte case the headline)."""
    most = max(r.params.get("bytes", 0) for r in recs)
    return [r for r in recs if r.params.get("bytes", 0) == most]


def size_label(nbytes: float) -> str:
    """A message or array size in the binary unit that keeps it above 1 (an 8-byte collective read
    "0 MiB"): 8 B, 4 KiB, 256 MiB, 1.5 GiB."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes:.0f} B"


def run_label(rec: Record) -> str:
    """Which pass of the run measured a record, so that a case measured again (its confirmation
    rounds, an acceptance size) reads as that and not as a duplicate row."""
    tags = set(rec.tags)
    if CONFIRM_TAG in tags:
        kth = next((t[len(ROUND_PREFIX):] for t in rec.tags if t.startswith(ROUND_PREFIX)), "")
        extra = " (fast accumulation)" if "fast_accum" in tags else ""
        return f"confirmation {kth}".rstrip() + extra
    for tag, label in (("acceptance", "acceptance"), ("refine", "sweep (refined)"), ("llm", "LLM layer"), ("moe", "MoE experts"),
                       ("sweep", "sweep")):
        if tag in tags:
            return label
    return "once"


def _distinct_cases(recs: list[Record]) -> int:
    """Cases measured, each once however many rounds confirmed it (the every-case table lists the rounds)."""
    return len({repr(sorted(r.params.items())) + (r.backend or "") for r in recs})


def best_rows(doc: ResultsDocument) -> list[dict[str, Any]]:
    groups: dict[tuple, list[Record]] = defaultdict(list)
    for r in doc.results:
        kind = "llm" if "llm" in r.tags else "sweep"
        variant = collective_case(r) if r.benchmark == "collective" else ""
        groups[(r.benchmark, r.op, r.dtype, kind, variant)].append(r)
    device_key = doc.device.get("catalog_key")
    rows = []
    for (bench, op, dtype, kind, _variant), group in groups.items():
        recs = _largest_message(group) if bench == "collective" else group
        # bench/headline.py: a confirmed group shows the median of its rounds' medians, marked
        # unsteady when that round spreads more than 10%; an unconfirmed one its fastest steady case.
        best, status = figure(recs)
        conf_rounds = rounds(recs) if HEADLINE_TAG in best.tags else []
        anchor = find_anchor(device_key, bench, op, dtype) if kind == "sweep" else None
        st = best.stats()
        rows.append({
            "benchmark": bench, "op": op, "dtype": dtype, "kind": kind, "cases": _distinct_cases(group), "best_shape": shape(best),
            "achieved": best.achieved, "unit": best.unit, "peak": best.peak, "fraction_of_peak": best.fraction_of_peak,
            "public_best": anchor.achieved if anchor else None, "public_source": anchor.source if anchor else None,
            # like with like: a public STREAM figure is a best over repeats (BabelStream, stream.c)
            "fraction_of_public_best": held_rate(best) / anchor.achieved if anchor else None,
            "public_best_compared_with": ("best" if bench in BEST_RATE_BENCHMARKS else "median") if anchor else None,
            "cov": st["cov"], "samples": len(best.times_s), "backend": best.backend,
            "peak_source": best.peak_source, "params": dict(best.params), "headline": status,
            "spread": spread(best.times_s), "confirm_rounds": [r.achieved for r in conf_rounds],
            "tf32_not_confirmed": TF32_UNCONFIRMED_TAG in best.tags,
        })
    return rows


# Base units for --json: rates per second, the unit in the key (style rule 1).
BASE = {"TFLOP/s": (1e12, "flop_per_s"), "GB/s": (1e9, "bytes_per_s"), "Mkernel/s": (1e6, "kernels_per_s")}


def json_rows(doc: ResultsDocument) -> list[dict[str, Any]]:
    """best_rows in base units, one key per column of the table (recoque.render.bench_tables), plus
    the peak's and the public figure's sources, how the headline was chosen and the sweep's cost."""
    out = []
    for r in best_rows(doc):
        scale, unit = BASE[r["unit"]]
        sw = sweep_totals(doc, r["benchmark"], r["dtype"]) if r["kind"] == "sweep" else None
        out.append({
            "benchmark": r["benchmark"], "op": r["op"], "dtype": r["dtype"], "kind": r["kind"], "cases": r["cases"],
            "best_shape": r["best_shape"], "best_params": r["params"], "backend": r["backend"],
            f"achieved_{unit}": r["achieved"] * scale, "cov": r["cov"], "samples": r["samples"],
            f"peak_{unit}": r["peak"] * scale if r["peak"] else None, "peak_source": r["peak_source"],
            "fraction_of_peak": r["fraction_of_peak"],
            f"public_best_{unit}": r["public_best"] * scale if r["public_best"] else None,
            "public_source": r["public_source"], "fraction_of_public_best": r["fraction_of_public_best"],
            "public_best_compared_with": r["public_best_compared_with"],
            "headline": r["headline"], "spread": r["spread"], "tf32_not_confirmed": r["tf32_not_confirmed"],
            f"confirm_rounds_{unit}": [x * scale for x in r["confirm_rounds"]],
            "sweep_s": sw["sweep_s"] if sw else None, "sweep_cases": sw["cases_measured"] if sw else None,
        })
    return out


def sweep_totals(doc: ResultsDocument, benchmark: str, dtype: str) -> dict[str, Any] | None:
    """The sweeps of one benchmark and dtype in this document (several after --append), added up."""
    mine = [s for s in doc.sweeps if s.get("benchmark") == benchmark and s.get("dtype") == dtype]
    if not mine:
        return None
    counts = ("cases_measured", "coarse_cases", "refine_shapes", "refine_rounds")
    out: dict[str, Any] = {k: sum(float(s.get(k) or 0) for s in mine) for k in ("sweep_s", "confirm_s")}
    return out | {k: sum(int(s.get(k) or 0) for s in mine) for k in counts} | {"sweeps": len(mine)}


def sweep_lines(doc: ResultsDocument) -> list[str]:
    """One line per GEMM sweep: the shapes it measured and the time it took (issue 8)."""
    out = []
    for s in doc.sweeps:
        how = (f"{s.get('coarse_cases')} coarse + {s.get('refine_shapes')} refined in {s.get('refine_rounds')} rounds"
               if s.get("refined") else f"{s.get('coarse_cases')} coarse, not refined")
        confirm = f", confirmation {s['confirm_s']:.1f} s" if s.get("confirm_s") is not None else ""
        shape = "x".join(str(d) for d in s["best_shape"]) if s.get("best_shape") else "none"
        out.append(f"{s.get('benchmark')} {s.get('dtype')} sweep: {s.get('cases_measured')} "
                   f"{'case' if s.get('cases_measured') == 1 else 'cases'} ({how}) in "
                   f"{float(s.get('sweep_s') or 0):.1f} s{confirm}; best shape {shape}")
    return out
