"""Rendering: the same data as a rich table or as JSON (style rule 8). Human units only here."""
from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any, Iterable, Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from recoque.estimate import Estimate

# markup=False: names and notes come from user files; "[" in them must print as text, never as markup.
console = Console(markup=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=1, default=_default) + "\n")


def _default(obj: Any) -> Any:
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=Text(title), title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(Text("" if v is None else str(v)) for v in r))
    return t


def fmt(x: float | None, digits: int = 3) -> str:
    """Significant-figure formatting; None renders as 'unknown' (never invented)."""
    if x is None:
        return "unknown"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}" if abs(x) < 1e6 else f"{x:,.0f}"


def warn(line: str) -> None:
    err_console.print(f"warning: {line}", highlight=False)


# --- planner quantities ---------------------------------------------------------------------------

_SCALES = {"flop/s": [(1e18, "EFLOP/s"), (1e15, "PFLOP/s"), (1e12, "TFLOP/s"), (1, "FLOP/s")],
           "bytes/s": [(1e15, "PB/s"), (1e12, "TB/s"), (1e9, "GB/s"), (1, "B/s")],
           "bytes": [(1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1, "B")],
           "W": [(1e6, "MW"), (1e3, "kW"), (1, "W")], "J": [(3.6e12, "GWh"), (3.6e9, "MWh"), (3.6e6, "kWh")],
           "EUR": [(1e6, "MEUR"), (1e3, "kEUR"), (1, "EUR")], "kg_co2e": [(1e6, "kt CO2e"), (1e3, "t CO2e"), (1, "kg CO2e")],
           "s": [(86400, "days"), (3600, "h"), (1, "s"), (1e-3, "ms")]}


# --- shared by plan, compare and check ----------------------------------------------------------

def human(e: Estimate) -> tuple[str, str, str, str]:
    """(value, low, high, unit) in human units; the one place that picks them."""
    scale, unit = 1.0, e.unit
    for s, u in _SCALES.get(e.unit, []):
        if abs(e.value) >= s:
            scale, unit = s, u
            break
    else:
        if e.unit in _SCALES:
            scale, unit = _SCALES[e.unit][-1]

    def f(x: float) -> str:
        x /= scale
        return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3g}"
    return f(e.value), f(e.low), f(e.high), "" if unit == "1" else unit


def rows_table(title: str, rows: list[tuple[str, Estimate | str | None]]):
    out = []
    for name, e in rows:
        if isinstance(e, Estimate):
            out.append((name, *human(e)))
        else:
            out.append((name, "unknown" if e is None else str(e), "", "", ""))
    return table(title, ("quantity", "value", "low", "high", "unit"), out)


# --- benchmark results -----------------------------------------------------------------------------

def bench_tables(doc: Any, all_rows: bool) -> None:
    """The results tables: best per benchmark/op/dtype against datasheet and public bests."""
    from recoque.bench import summary as report

    dev = doc.device
    console.print(f"{dev.get('name', 'device')} ({dev.get('kind', '?')}, {dev.get('arch') or 'arch unknown'})",
                  markup=False, highlight=False)
    cols = ["benchmark", "dtype", "best shape (of n)", "achieved ± CoV", "peak", "% peak", "% public best", "backend"]
    rows = [[f"{r['benchmark']} {r['op']}" + (" (LLM layers)" if r["kind"] == "llm" else ""), r["dtype"],
             f"{r['best_shape']} (of {r['cases']})", f"{fmt(r['achieved'])} {r['unit']} ± {r['cov'] * 100:.1f}%",
             fmt(r["peak"]) if r["peak"] else "unknown", _pct(r["fraction_of_peak"]),
             (_pct(r["fraction_of_public_best"]) + f" of {fmt(r['public_best'])}") if r["public_best"] else "no public figure",
             r["backend"] or ""] for r in report.best_rows(doc)]
    console.print(table("Best per benchmark, op and dtype (median time)", cols, rows))
    if all_rows:
        every = [[r.benchmark, r.op, r.dtype, report.shape(r), f"{fmt(r.achieved)} {r.unit}", _pct(r.fraction_of_peak),
                  len(r.times_s), r.backend or ""] for r in doc.results]
        console.print(table("Every verified case", ["benchmark", "op", "dtype", "shape", "achieved", "% peak", "samples", "backend"], every))
    if doc.skipped:
        reasons: dict[str, int] = defaultdict(int)
        for s in doc.skipped:
            reasons[f"{s.benchmark}/{s.dtype}: {s.reason}"] += 1
        console.print(table("Skipped", ["what", "cases"], sorted(reasons.items())))


def _pct(x: float | None) -> str:
    return "unknown" if x is None else f"{x * 100:.1f}%"
