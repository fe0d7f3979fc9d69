"""Preset names (models, systems, workloads, devices) as people type them: any case and
punctuation, published aliases, and a suggestion for a near miss."""
from __future__ import annotations

import difflib
import re
from typing import Any, Mapping


def spelling(name: str) -> str:
    """'Llama-3.1-70B', 'llama3.1-70b' and 'LLAMA_3.1_70B' are one name."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _names(table: Mapping[str, Any]) -> dict[str, str]:
    """Every spelled name (key or `aliases` entry) -> its preset key."""
    return {spelling(n): key for key, raw in table.items()
            for n in (key, *(raw.get("aliases", []) if isinstance(raw, Mapping) else []))}


def resolve_key(name: str, table: Mapping[str, Any]) -> str | None:
    """The preset key `name` means (exact, respelled, or a listed alias); None when none does."""
    return name if name in table else _names(table).get(spelling(name))


def unknown_hint(name: str, table: Mapping[str, Any], what: str) -> str:
    """'did you mean a or b? known <what>: ...' for an unknown name."""
    names = _names(table)
    typed = spelling(name)
    close = [n for n in names if typed and n.startswith(typed)] + difflib.get_close_matches(typed, list(names), n=3, cutoff=0.6)
    keys = list(dict.fromkeys(names[n] for n in close))[:3]
    known = f"known {what}: {', '.join(sorted(table))}"
    return f"did you mean {' or '.join(keys)}? {known}" if keys else known
