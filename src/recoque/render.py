"""Rendering: the same data as a rich table or as JSON (style rule 8). Human units only here."""
from __future__ import annotations

import json
import math
import re
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from recoque.estimate import Estimate



@dataclass
class Options:
    """Set once by the root command (--width, --all-columns); RECOQUE_WIDTH stands in for the flag."""

    width: int | None = None
    all_columns: bool = False


OPTIONS = Options()  # the root command fills it from --width or RECOQUE_WIDTH (validated there)
TOKEN_CAP = 40  # a token longer than this (a path) may still fold; numbers and shapes never do


def configure(width: int | None = None, all_columns: bool = False) -> None:
    OPTIONS.width = width if width and width > 0 else None
    OPTIONS.all_columns = all_columns
    console.width = OPTIONS.width  # plain lines fold at --width too; None: the terminal's, or 80 into a pipe


class FitConsole(Console):
    """A console that gives each table the width it needs instead of folding numbers mid-token.

    In a terminal: the terminal width (or --width), hiding the table's secondary columns when it
    does not fit unless --all-columns; never narrower than the longest number or shape. Into a
    file or a pipe (a Slurm log): the table's natural width, however wide, or --width.
    """

    def print(self, *objects: Any, **kw: Any) -> None:  # type: ignore[override]
        if len(objects) == 1 and isinstance(objects[0], Table) and "width" not in kw:
            t = _without_secondary(objects[0], self)
            saved = self._width
            self._width = fit_width(self, t)  # print(width=) alone is capped at the console width
            try:
                super().print(t, **kw)
            finally:
                self._width = saved
            return
        if not self.is_terminal and not OPTIONS.width:
            kw.setdefault("soft_wrap", True)  # a log line stays one line, however long
        super().print(*objects, **kw)


def _measure(con: Console, t: Table) -> tuple[int, int]:
    """(narrowest width that splits no token, natural width). Rich's own minimum ignores padding."""
    m = Measurement.get(con, con.options.update(width=100_000), t)
    pad = t.padding[1] + t.padding[3] if t.padding else 2
    tokens = sum((c.min_width or 1) + pad for c in t.columns) + len(t.columns) + 1
    return max(m.minimum, tokens), m.maximum


def fit_width(con: Console, t: Table) -> int:
    minimum, natural = _measure(con, t)
    if OPTIONS.width:
        target = OPTIONS.width
    elif con.is_terminal:
        target = con.width
    else:
        target = natural
    width = max(minimum, min(target, natural) if not con.is_terminal and not OPTIONS.width else target)
    return _settle(con, t, width)


def _settle(con: Console, t: Table, width: int) -> int:
    """Rich may lay a squeezed table out wider than asked (then crops it): widen until it fits."""
    for _ in range(8):
        try:
            inner = t._calculate_column_widths(con, con.options.update(width=width - t._extra_width))
            laid_out = sum(inner) + t._extra_width
        except Exception:  # private rich API: if it changes, keep the width we had
            return width
        if laid_out <= width:
            return width
        width = laid_out
    return width


def _without_secondary(t: Table, con: Console) -> Table:
    data = getattr(t, "_recoque_data", None)
    if not data or not data[3] or OPTIONS.all_columns or not con.is_terminal:
        return t
    width = OPTIONS.width or con.width
    if _measure(con, t)[1] <= width:
        return t
    title, columns, rows, secondary = data
    keep = [i for i, c in enumerate(columns) if c not in secondary]
    hidden = [c for c in columns if c in secondary]
    slim = table(title, [columns[i] for i in keep], [[r[i] for i in keep] for r in rows])
    slim.caption = Text(f"hidden: {', '.join(hidden)} (--all-columns shows them)")
    slim.caption_justify = "left"
    return slim


# markup=False: names and notes come from user files; "[" in them must print as text, never as markup.
console = FitConsole(markup=False)
err_console = Console(stderr=True, soft_wrap=True, markup=False)


def emit_json(data: Any) -> None:
    """Strict JSON: an unbounded figure (a queue that never drains) or a NaN is null, as in every
    results file (fileio.finite_or_null); the assumptions say why."""
    sys.stdout.write(json.dumps(_plain(data), indent=1, allow_nan=False) + "\n")


def _plain(obj: Any) -> Any:
    """Objects through their to_json, then only dicts, lists, str, bool, int, finite floats and None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, dict):
        return {k if isinstance(k, str) else str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_plain(v) for v in obj]
    return _plain(_default(obj))


def _default(obj: Any) -> Any:
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


_NUMERIC = re.compile(r"^[-+~<>]?[\d.,]+(e[-+]?\d+)?\s?(%|x|[kMGTPE]?(B|FLOP)?(/s)?)?$")


def _numeric(cells: list[str]) -> bool:
    filled = [c for c in cells if c and c not in ("unknown", "none", "n/a", "-")]
    return bool(filled) and all(_NUMERIC.match(c) for c in filled)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]],
          secondary: Sequence[str] = ()) -> Table:
    """A table whose cells never split inside a number or shape: each column is at least as wide as
    its longest token (up to TOKEN_CAP). `secondary` columns hide in a narrow terminal (--all-columns)."""
    text_rows = [["" if v is None else str(v) for v in r] for r in rows]
    t = Table(title=Text(title), title_justify="left")
    for i, c in enumerate(columns):
        cells = [r[i] for r in text_rows if i < len(r)]
        longest = max((len(tok) for cell in cells + [c] for tok in cell.split()), default=1)
        if _numeric(cells):
            # Exactly as wide as the widest number (or header word): numbers never wrap, headers wrap at spaces.
            w = max([len(x) for x in cells] + [len(tok) for tok in c.split()] + [min(len(c), 14)])
            t.add_column(c, justify="right", overflow="fold", min_width=w, width=w)
        else:
            t.add_column(c, overflow="fold", min_width=min(longest, TOKEN_CAP))
    for r in text_rows:
        t.add_row(*(Text(v) for v in r))
    t._recoque_data = (title, tuple(columns), text_rows, tuple(secondary))  # type: ignore[attr-defined]
    return t


def fmt(x: float | None, digits: int = 3) -> str:
    """Significant-figure formatting; None renders as 'unknown' (never invented)."""
    if x is None:
        return "unknown"
    if x == 0:
        return "0"
    short = f"{x * (1 + 1e-12):.{digits}g}"  # an exact tie rounds away from zero (166.5 -> 167), not to even
    # 1,307 rather than 1.31e+03, and 999.7 (which rounds up to 1e+03) as 1,000; the whole digits of x
    # itself, half away from zero (the nudge above is 10 at 1e13: it printed 10,000,000,000,010)
    return short if abs(float(short)) < 1000 else f"{math.copysign(math.floor(abs(x) + 0.5), x):,.0f}"


def warn(line: str) -> None:
    err_console.print(f"warning: {line}", highlight=False)


# --- planner quantities ---------------------------------------------------------------------------

_SCALES = {"flop/s": [(1e18, "EFLOP/s"), (1e15, "PFLOP/s"), (1e12, "TFLOP/s"), (1e9, "GFLOP/s"), (1, "FLOP/s")],
           "bytes/s": [(1e15, "PB/s"), (1e12, "TB/s"), (1e9, "GB/s"), (1, "B/s")],
           "bytes": [(1e15, "PB"), (1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1, "B")],
           "W": [(1e6, "MW"), (1e3, "kW"), (1, "W")], "J": [(3.6e12, "GWh"), (3.6e9, "MWh"), (3.6e6, "kWh")],
           "MWh": [(1e3, "GWh"), (1, "MWh"), (1e-3, "kWh")],
           "EUR": [(1e6, "MEUR"), (1e3, "kEUR"), (1, "EUR")], "kg_co2e": [(1e6, "kt CO2e"), (1e3, "t CO2e"), (1, "kg CO2e")],
           "s": [(86400, "days"), (3600, "h"), (1, "s"), (1e-3, "ms")],
           "fraction": [(0.01, "%")]}  # a share of a whole (MFU, goodput): always in percent


# --- shared by plan, compare and check ----------------------------------------------------------

def human(e: Estimate) -> tuple[str, str, str, str]:
    """(value, low, high, unit) in human units; the one place that picks them."""
    scale, unit = 1.0, e.unit
    finite = [x for x in (e.value, e.low, e.high) if math.isfinite(x)]
    pick = e.value if math.isfinite(e.value) else max(finite, key=abs, default=0.0)  # scale on what is finite
    for s, u in _SCALES.get(e.unit, []):
        if abs(pick) >= s:
            scale, unit = s, u
            break
    else:
        if e.unit in _SCALES:
            scale, unit = _SCALES[e.unit][-1]

    def f(x: float) -> str:
        if math.isinf(x):
            return "unbounded" if x > 0 else "-unbounded"
        return fmt(x / scale)  # one rounding rule for every number shown (fmt: ties away from zero)
    return f(e.value), f(e.low), f(e.high), "" if unit == "1" else unit


def plain(v: Any) -> str:
    """A table cell for a value without a range: an execution plan in words (`--json` keeps its
    fields), a count grouped (a number in JSON), None as unknown."""
    if hasattr(v, "label") and hasattr(v, "to_json"):
        return plan_words(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return "unknown" if v is None else str(v)


def rows_table(title: str, rows: list[tuple[str, Estimate | str | None]]):
    out = []
    for name, e in rows:
        if isinstance(e, Estimate):
            out.append((name, *human(e)))
        else:
            out.append((name, plain(e), "", "", ""))
    return table(title, ("quantity", "value", "low", "high", "unit"), out)


# --- benchmark results -----------------------------------------------------------------------------

def rate_unit(doc: Any, unit: str) -> tuple[float, str]:
    """(scale, unit shown): CPU compute rates read better in GFLOP/s than in TFLOP/s."""
    if unit == "TFLOP/s" and doc.device.get("kind") == "cpu":
        return 1e3, "GFLOP/s"
    return 1.0, unit


BENCH_SECONDARY = ("CoV", "public best", "% of public best", "backend")


def bench_tables(doc: Any, all_rows: bool) -> None:
    """The results tables: best per benchmark/op/dtype against datasheet and public bests, one table per
    unit so the unit sits in the headers; secondary columns hide in a narrow terminal (--all-columns)."""
    from recoque.bench import summary as report

    dev = doc.device
    console.print(f"{dev.get('name', 'device')} ({dev.get('kind', '?')}, {dev.get('arch') or 'arch unknown'})",
                  markup=False, highlight=False)
    best = report.best_rows(doc)
    for unit in dict.fromkeys(r["unit"] for r in best):
        k, shown = rate_unit(doc, unit)
        rows = [[f"{r['benchmark']} {r['op']}" + (" (LLM layers)" if r["kind"] == "llm" else ""),
                 r["dtype"] + (" (ran as fp32?)" if r.get("tf32_not_confirmed") else ""),
                 r["best_shape"], r["cases"], fmt(r["achieved"] * k) + (" unsteady" if r["headline"] == "unsteady" else ""),
                 f"{r['cov'] * 100:.1f}%",
                 fmt(r["peak"] * k) if r["peak"] else "unknown", pct(r["fraction_of_peak"]),
                 fmt(r["public_best"] * k) if r["public_best"] else "none",
                 pct(r["fraction_of_public_best"]) if r["public_best"] else "", r["backend"] or ""]
                for r in best if r["unit"] == unit]
        cols = ["benchmark", "dtype", "best shape", "cases", f"achieved ({shown})", "CoV", f"peak ({shown})",
                "% of peak", "public best", "% of public best", "backend"]
        console.print(table(f"Best per benchmark, op and dtype, {shown} at the median time", cols, rows,
                            secondary=BENCH_SECONDARY))
        if any(r["public_best_compared_with"] == "best" for r in best if r["unit"] == unit):
            console.print("% of public best on STREAM rows: our best rate over the repeats against the public "
                          "one, which BabelStream and stream.c report as a best", markup=False, highlight=False)
    if all_rows:
        for unit in dict.fromkeys(r.unit for r in doc.results):
            k, shown = rate_unit(doc, unit)
            every = [[r.benchmark, r.op, r.dtype, report.shape(r), report.run_label(r), fmt(r.achieved * k), pct(r.fraction_of_peak),
                      len(r.times_s), r.backend or ""] for r in doc.results if r.unit == unit]
            console.print(table(f"Every verified case ({shown})", ["benchmark", "op", "dtype", "shape", "run",
                                                                   f"achieved ({shown})", "% of peak", "samples",
                                                                   "backend"], every, secondary=("backend",)))
    if doc.skipped:
        reasons: dict[str, int] = defaultdict(int)
        for s in doc.skipped:
            reasons[f"{s.benchmark}/{s.dtype}: {s.reason}"] += 1
        console.print(table("Skipped", ["what", "cases"], sorted(reasons.items())))


def pct(x: float | None) -> str:
    """The one way a fraction is written for people: 0.258 -> 25.8%."""
    return "unknown" if x is None else f"{x * 100:.1f}%"


# --- plain words for plans ------------------------------------------------------------------------

GLOSSARY = ("TP: tensor parallel (each layer split over GPUs); PP: pipeline parallel (layers in stages; "
            "'x N virtual': interleaved stages per GPU); DP: data parallel (model replicas); EP: expert parallel; "
            "CP: context parallel (a sequence split over GPUs); mb: micro-batch (sequences per pipeline step); SP: sequence parallel; ZeRO-1/2/3: optimizer state / "
            "gradients / weights sharded over DP; recompute: activations recomputed in the backward pass "
            "(none, selective, full); overlap: DP gradient communication hidden behind compute; "
            "MFU/HFU: model/hardware FLOP utilisation (useful FLOPs, or all FLOPs incl. recompute, over peak); "
            "H100e: H100-equivalents (the system's figure over one H100's).")


def plan_words(plan: Any) -> str:
    """A training plan in plain words: "tensor parallel 2, pipeline 16 stages x 3 virtual, data parallel
    128, micro-batch 1, no recompute, ZeRO-1, comm overlapped". Takes the plan dict of `--json` or an
    object with the same attribute names (tp, pp, dp, micro_batch, recompute, interleave, ...)."""
    get = plan.get if isinstance(plan, dict) else (lambda k, d=None: getattr(plan, k, d))
    parts = [f"tensor parallel {get('tp', 1)}"]
    if (get("cp", 1) or 1) > 1:
        parts.append(f"context parallel {get('cp')}" + (" (all-to-all)" if get("cp_a2a", False) else ""))
    pp, vpp = get("pp", 1), get("interleave", 1) or 1
    parts.append(f"pipeline {pp} stage{'s' if pp != 1 else ''}" + (f" x {vpp} virtual" if vpp > 1 else ""))
    parts.append(f"data parallel {get('dp', 1)}")
    if (get("ep", 1) or 1) > 1:
        etp = get("etp") or get("tp", 1)
        parts.append(f"expert parallel {get('ep')}" + (f", each expert on {etp} GPU{'s' if etp > 1 else ''}"
                                                         if etp != get("tp", 1) else "")
                     + (" (all-to-all overlapped)" if get("ep_overlap", False) else ""))
    parts.append(f"micro-batch {get('micro_batch', 1)}")
    rc = get("recompute", "none") or "none"
    layers = get("recompute_layers", 0) or 0
    parts.append("no recompute" if rc == "none" else f"{rc} recompute"
                 + (f" of {layers} layers a stage" if rc == "full" and layers else "")
                 + (", checkpoints split over TP" if rc == "full" and get("distribute_checkpoints", False) else ""))
    if get("sequence_parallel", False):
        parts.append("sequence parallel" + (" with TP comm overlapped" if get("tp_overlap", False) else ""))
    z = get("zero_stage", 0) or 0
    parts.append((f"ZeRO-{z}" if z else "no ZeRO")
                 + (" keeping the forward's weights" if z == 3 and not get("reshard_after_forward", True) else ""))
    parts.append("comm overlapped" if get("dp_overlap", False) else "comm not overlapped")
    if not get("flash_attention", True):
        parts.append("no flash attention")
    return ", ".join(parts)


# --- progress in logs -------------------------------------------------------------------------------

def _hms(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class StageLog:
    """Progress for logs (stderr not a terminal, e.g. Slurm): one line per finished stage (benchmark and
    dtype) with the elapsed time and an estimate of what remains, from the mean time per case so far.
    Same interface as the terminal progress bar: add(n), done(case, record, skip), context manager."""

    def __init__(self, enabled: bool = True, stream: Any = None, clock: Any = time.monotonic) -> None:
        self.enabled = enabled
        self.stream = stream
        self.clock = clock
        self.total = self.finished = 0
        self._stage: str | None = None
        self._stage_counts = [0, 0, 0]  # cases, verified, skipped
        self._t0 = clock()

    def __enter__(self) -> "StageLog":
        self._t0 = self.clock()
        return self

    def add(self, n: int) -> None:
        self.total += n

    def done(self, case: Any, rec: Any, skip: Any) -> None:
        stage = f"{getattr(case, 'benchmark', '?')} {getattr(case, 'dtype', '')}".strip()
        if self._stage is not None and stage != self._stage:
            self._emit()
        self._stage = stage
        self.finished += 1
        c = self._stage_counts
        c[0] += 1
        c[1] += rec is not None
        c[2] += skip is not None

    def _emit(self) -> None:
        if not self.enabled or self._stage is None:
            return
        elapsed = self.clock() - self._t0
        left = self.total - self.finished
        eta = f", about {_hms(elapsed / self.finished * left)} left" if self.finished and left > 0 else ""
        n, ok, skipped = self._stage_counts
        line = (f"progress: {self._stage} done ({n} cases, {ok} verified, {skipped} skipped); "
                f"{self.finished}/{self.total or self.finished} cases in {_hms(elapsed)}{eta}")
        print(line, file=self.stream or sys.stderr, flush=True)
        self._stage_counts = [0, 0, 0]

    def __exit__(self, *exc: Any) -> None:
        self._emit()
        self._stage = None
