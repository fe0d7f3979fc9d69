"""Rendering: the same data as a rich table or as JSON (style rule 8). Human units only here."""
from __future__ import annotations

import json
import sys
from typing import Any, Iterable, Sequence

from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=1, default=_default) + "\n")


def _default(obj: Any) -> Any:
    if hasattr(obj, "to_json"):
        return obj.to_json()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*("" if v is None else escape(str(v)) for v in r))
    return t


def fmt(x: float | None, digits: int = 3) -> str:
    """Significant-figure formatting; None renders as 'unknown' (never invented)."""
    if x is None:
        return "unknown"
    if x == 0:
        return "0"
    return f"{x:.{digits}g}" if abs(x) < 1e6 else f"{x:,.0f}"


def warn(line: str) -> None:
    err_console.print(f"[yellow]warning:[/] {line}", highlight=False)
