"""What a report is made of, independent of its format: sections of paragraphs, tables and plots.

A table holds data, not text: numbers in base units with their unit (`Quantity`), counts, names,
and values that print by a rule of their own (`Formatted`). The HTML and Markdown writers take
`Table.rows` (text, written here and only here); `recoque report --json` takes `Table.to_json()`
(the same cells as numbers), so a reader of the JSON never parses "1,234" or "25.8%".

`recoque report --json` writes {"schema_version": 1 (REPORT_SCHEMA_VERSION), "title", "sources" (the
results files), "sections": [{"title", "paragraphs", "items", "plots" (names), "tables": [{"title",
"columns", "rows", "note"}]}]}. A figure's cell is {"value", "unit"} (with "low" and "high" for a
planner range) in a base unit: "flop/s", "bytes/s", "s", "1" for a ratio (% of peak), "fraction" for a
share of a whole (MFU, goodput, comm share); a (quantity, value, low, high, unit) table gives the figure as the row's
last four cells, its unit the base one too. Column labels are the HTML and Markdown ones and may name a
display unit ("achieved (TFLOP/s)"): the unit of a value is the one its cell carries, never the label's.
A reader checks schema_version: it rises when a field changes meaning or goes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from recoque.render import pct  # the one way a fraction is written for people

# A unit a table shows -> (the base unit the data holds, base units in one shown unit). Results
# records keep their rates in TFLOP/s, GB/s or Mkernel/s (bench/schema.UNITS); the data is per second.
SHOWN_UNITS = {"TFLOP/s": ("flop/s", 1e12), "GFLOP/s": ("flop/s", 1e9), "GB/s": ("bytes/s", 1e9),
               "Mkernel/s": ("kernels/s", 1e6), "GFLOP/s/W": ("flop/s/W", 1e9), "GB/s/W": ("bytes/s/W", 1e9),
               "MHz": ("Hz", 1e6), "W": ("W", 1.0), "J": ("J", 1.0)}
# Quantity.shown for a share (unit "fraction": MFU, goodput) or a ratio read in percent (unit "1": % of peak, CoV)
PERCENT = "%"
# The layout of `report --json` (this module's docstring); raised when a field changes meaning or goes,
# so that a reader of an older document can tell rather than misread it.
REPORT_SCHEMA_VERSION = 1


def num(x: Any, digits: int = 4) -> str:
    """A bare value as text: None is unknown (never invented), counts grouped by thousands."""
    if x is None:
        return "unknown"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if math.isinf(x):
            return "unbounded" if x > 0 else "-unbounded"
        if x == 0:
            return "0"
        if abs(x) >= 1000 or x == round(x):
            return f"{x:,.0f}"  # 29,046 GPUs, not 2.905e+04
        short = f"{x:.{digits}g}"
        stated = f"{x:.7g}"  # a stated figure of up to 7 digits as written (availability 0.999995, not 1)
        return stated if float(short) != x and float(stated) == x else short
    return str(x)


@dataclass(frozen=True)
class Quantity:
    """A figure as data: `value` (and `low`/`high` for a range) in the base unit `unit`.

    `shown` is how people read it: "" lets render.human pick the unit and writes it beside the number;
    PERCENT writes a fraction as a percent; a key of SHOWN_UNITS writes the number in that unit, named
    by the column header unless `unit_in_cell` (a column whose rows differ in unit).
    """
    value: float | None
    unit: str
    low: float | None = None
    high: float | None = None
    shown: str = ""
    unit_in_cell: bool = False
    ranged: bool = False  # a planner estimate: its low and high are shown, "unknown" where the file has none

    @classmethod
    def shown_in(cls, value: float | None, unit: str, unit_in_cell: bool = False) -> Quantity:
        """A figure given in a unit people read (a record's TFLOP/s), held in its base unit."""
        base, per = SHOWN_UNITS[unit]
        return cls(None if value is None else value * per, base, shown=unit, unit_in_cell=unit_in_cell)

    def parts(self) -> tuple[str, str, str, str]:
        """(value, low, high, unit) as text; low and high empty without a range."""
        if self.shown == PERCENT:
            v, lo, hi, unit = pct(self.value), pct(self.low), pct(self.high), ""
        elif self.shown in SHOWN_UNITS:
            per = SHOWN_UNITS[self.shown][1]
            v, lo, hi = (num(None if x is None else x / per) for x in (self.value, self.low, self.high))
            unit = self.shown
        else:
            v, lo, hi, unit = _human(self)
        return (v, lo, hi, unit) if self.ranged else (v, "", "", unit)

    def text(self) -> str:
        """One cell: "2.66 (0.999-12.7) s", "25.8%", or the bare number under a header that names the unit."""
        v, lo, hi, unit = self.parts()
        if self.shown in SHOWN_UNITS and not self.unit_in_cell:
            unit = ""
        return f"{v} ({lo}-{hi}) {unit}".strip() if self.ranged else f"{v} {unit}".strip()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"value": self.value}
        if self.ranged:
            out.update(low=self.low, high=self.high)
        out["unit"] = self.unit
        return out


def _human(q: Quantity) -> tuple[str, str, str, str]:
    """render.human's units and rounding (the terminal tables'), for a value that may be unknown."""
    from recoque.estimate import Estimate
    from recoque.render import human

    v = q.value
    lo, hi = (q.low, q.high) if q.ranged else (v, v)  # a point value: render.human scales on the value
    if v is None:
        return num(v), num(q.low), num(q.high), q.unit
    try:  # a bound the planner wrote as null (unbounded) is said so, the others scaled as the value is
        vs, ls, hs, unit = human(Estimate(float(v), float(v if lo is None else lo), float(v if hi is None else hi), q.unit))
    except (TypeError, ValueError):
        return num(v), num(q.low), num(q.high), q.unit
    return vs, num(None) if lo is None else ls, num(None) if hi is None else hs, unit


@dataclass(frozen=True)
class Formatted:
    """A value people read by a rule of its own (a plan in words, a ratio at the decimals its verdict
    needs, a version number without separators); the JSON output keeps `value` as it is."""
    value: Any
    write: Callable[[Any], str] = field(compare=False)

    def text(self) -> str:
        return self.write(self.value)


BLANK = Formatted(None, lambda _: "")  # a cell with nothing to say (no public figure, no p-value): null in JSON


def cell_text(c: Any) -> str:
    return c.text() if isinstance(c, (Quantity, Formatted)) else num(c)


def cell_json(c: Any) -> Any:
    if isinstance(c, Quantity):
        return c.to_json()
    return c.value if isinstance(c, Formatted) else c


def _spread_text(c: Any) -> tuple[str, str, str, str]:
    return c.parts() if isinstance(c, Quantity) else (cell_text(c), "", "", "")


def _spread_json(c: Any) -> list[Any]:
    return [c.value, c.low, c.high, c.unit] if isinstance(c, Quantity) else [cell_json(c), None, None, None]


@dataclass(frozen=True)
class Table:
    """`cells` is the data; `rows` the same cells as text. A `spread` table is a (quantity, value, low,
    high, unit) table whose rows hold (name, figure): the figure fills the last four columns."""
    title: str
    columns: tuple[str, ...]
    cells: tuple[tuple[Any, ...], ...]
    note: str = ""
    spread: bool = False

    @property
    def rows(self) -> tuple[tuple[str, ...], ...]:
        if self.spread:
            return tuple((cell_text(name), *_spread_text(x)) for name, x in self.cells)
        return tuple(tuple(cell_text(c) for c in row) for row in self.cells)

    def to_json(self) -> dict[str, Any]:
        if self.spread:
            rows = [[cell_json(name), *_spread_json(x)] for name, x in self.cells]
        else:
            rows = [[cell_json(c) for c in row] for row in self.cells]
        return {"title": self.title, "columns": list(self.columns), "rows": rows, "note": self.note}


@dataclass(frozen=True)
class Section:
    title: str
    paragraphs: tuple[str, ...] = ()
    tables: tuple[Table, ...] = ()
    items: tuple[str, ...] = ()  # a bullet list
    plots: tuple[Any, ...] = ()  # plots.Plot


@dataclass(frozen=True)
class Report:
    title: str
    sections: tuple[Section, ...]
    sources: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": REPORT_SCHEMA_VERSION, "title": self.title, "sources": list(self.sources),
                "sections": [_section_json(s) for s in self.sections]}


def _section_json(s: Section) -> dict[str, Any]:
    return {"title": s.title, "paragraphs": list(s.paragraphs), "items": list(s.items),
            "plots": [p.name for p in s.plots], "tables": [t.to_json() for t in s.tables]}
