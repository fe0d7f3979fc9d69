"""Planner output (`recoque plan|check|compare|bench accept ... --json`) laid out as report tables.

Nothing the file carries is dropped: estimates become value/low/high rows, lists of records become
tables (a field that does not fit in a cell, such as a plan's time breakdown, becomes a table of its
own under its record), a training plan is written in words, and every list of assumptions, wherever
it sits, becomes the section's bullet list. A `compare --json` file is laid out as `compare` prints
it, one column per system, before the details of each system.
"""
from __future__ import annotations

import json
import re
from typing import Any, Mapping, Sequence

from recoque.report.table import BLANK, PERCENT, Formatted, Quantity, Section, Table, num

# base units JSON keys end in; a figure's row prints its unit in human form beside it (render.human:
# "energy_per_year_j" is shown in GWh), so its label drops the key's unit, unless it ends a rate
# ("tokens_per_s" keeps its "per s")
_BASE_UNIT_SUFFIX = re.compile(r"(?<!_per)_(j|mwh|w|s|flop_s|bytes|bytes_s|eur|kg|kg_co2e)$")
# a bare number under such a key is a figure in that unit (memory_capacity_bytes, breakdown_s.compute_s);
# "kg" is left out: alone it does not say of what
_SUFFIX_UNITS = {"j": "J", "mwh": "MWh", "w": "W", "s": "s", "flop_s": "flop/s", "bytes": "bytes",
                 "bytes_s": "bytes/s", "eur": "EUR", "kg_co2e": "kg_co2e"}
_WORDS = {"it": "IT", "gpu": "GPU", "gpus": "GPUs", "mfu": "MFU", "hfu": "HFU", "gflops": "GFLOP/s", "w": "W",
          "eur": "EUR", "hbm": "HBM", "ttft": "TTFT", "tpot": "TPOT", "co2": "CO2", "co2e": "CO2e", "pue": "PUE",
          "hpl": "HPL", "h100e": "H100e", "tp": "TP", "pp": "PP", "dp": "DP", "ep": "EP", "cp": "CP",
          "kv": "KV"}
# a fraction people read as a percent (as `plan train` prints MFU, HFU, goodput and comm share), by
# its key (mfu_fp8_peak) or by the quantity's name in a `sections` row ("model FLOP utilisation (MFU)")
_FRACTION = re.compile(r"(^|[\s_(])(mfu|hfu|goodput|share|fraction|utili[sz]ation|efficiency)([\s_),]|$)", re.I)
# of those, a share of a whole (never above 1): unit "fraction", as the planner marks its estimates
# (planner/train.FRACTION), so a bare MFU (the GPU-count curve's) reads as the best plans' MFU does;
# the others (an efficiency, a fraction of peak) are ratios that may exceed 1: unit "1"
_SHARE = re.compile(r"(^|[\s_(])(mfu|hfu|goodput|share)([\s_),]|$)", re.I)
_PLAN_KEYS = ("tp", "pp", "dp")  # a training plan's fields (render.plan_words writes it in words)


def _label(key: str, estimate: bool = False) -> str:
    if estimate:  # a key that is a unit alone ("flop_s") keeps it: it is all the name there is
        key = _BASE_UNIT_SUFFIX.sub("", "_" + key)[1:] or key
    key = key.replace("flop_s", "FLOP/s")
    return " ".join(_WORDS.get(w, w) for w in key.split("_"))


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _is_estimate(d: Any) -> bool:
    return isinstance(d, Mapping) and all(k in d for k in ("value", "low", "high", "unit"))


def _is_plan(d: Any) -> bool:
    return isinstance(d, Mapping) and all(k in d for k in _PLAN_KEYS) and all(_scalar(v) for v in d.values())


def _is_assumptions(key: str, v: Any) -> bool:
    return (key == "assumptions" or key.endswith("_assumptions")) and isinstance(v, list) \
        and all(isinstance(a, str) for a in v)


def _fits_a_cell(v: Any) -> bool:
    return _scalar(v) or _is_estimate(v) or _is_plan(v) or (isinstance(v, list) and all(_scalar(x) for x in v))


def _plan_text(plan: Any) -> str:
    from recoque.render import plan_words

    try:
        return plan_words(dict(plan))
    except (TypeError, ValueError):  # fields of the wrong type: shown as they are
        return ", ".join(f"{k} {num(v)}" for k, v in plan.items())


def _list_text(xs: Any) -> str:
    return "; ".join(num(x) for x in xs)


def _estimate_text(d: Any) -> str:
    return f"{num(d.get('value'))} ({num(d.get('low'))}-{num(d.get('high'))}) {d.get('unit', '')}".strip()


def _at_most_one(d: Mapping[str, Any]) -> bool:
    """A share of a whole never exceeds 1; a ratio named an efficiency may (HPCG's HBM efficiency, 1.28,
    is above 1 when fewer bytes move): shown as the ratio it is. The planner marks shares 'fraction'."""
    return all(d[k] is None or abs(d[k]) <= 1 for k in ("value", "low", "high"))


def estimate(name: str, d: Mapping[str, Any]) -> Quantity | Formatted:
    """A planner estimate as a figure; a fraction (MFU, goodput) written as a percent."""
    if not all(d[k] is None or _number(d[k]) for k in ("value", "low", "high")):
        return Formatted(dict(d), _estimate_text)  # not numbers: shown as they are, never guessed at
    unit = str(d["unit"])
    shown = PERCENT if unit == "fraction" or (unit in ("1", "") and _FRACTION.search(name) and _at_most_one(d)) else ""
    return Quantity(d["value"], unit, d["low"], d["high"], shown=shown, ranged=True)


def cell(name: str, v: Any) -> Any:
    """One value of a planner file as a table cell; `name` (its key, or a row's quantity) says
    whether a number is a fraction or has a unit."""
    if _is_estimate(v):
        return estimate(name, v)
    if _is_plan(v):
        return Formatted(dict(v), _plan_text)
    if isinstance(v, list):
        return Formatted(list(v), _list_text)
    suffix = _BASE_UNIT_SUFFIX.search("_" + name)  # "_" first: a key that is a unit alone ("flop_s") is one
    if isinstance(v, float) and _FRACTION.search(name) and not suffix and abs(v) <= 1:
        return Quantity(v, "fraction" if _SHARE.search(name) else "1", shown=PERCENT)
    if _number(v) and suffix and suffix.group(1) in _SUFFIX_UNITS:
        return Quantity(v, _SUFFIX_UNITS[suffix.group(1)])
    return v


def _record_name(item: Mapping[str, Any], i: int) -> str:
    for k in ("plan_label", "system", "claim", "name", "metric", "gpu"):
        if isinstance(item.get(k), (str, int)) and not isinstance(item.get(k), bool):
            return f"{i + 1}: {item[k]}"
    return str(i + 1)


def records_tables(title: str, items: Sequence[Mapping[str, Any]]) -> list[Table]:
    """A list of records as one table; a field that does not fit in a cell gets a table per record."""
    if _quantity_rows(items):
        # the names are already words (`plan` wrote them for people): kept as they are
        return [quantity_table(title, [(it["quantity"], it["value"]) for it in items], labelled=False)]
    keys = [k for k in dict.fromkeys(k for it in items for k in it) if not all(
        _is_assumptions(k, it.get(k, [])) for it in items)]
    cols = [k for k in keys if all(_fits_a_cell(it.get(k)) for it in items)]
    rows = tuple(tuple(cell(k, it.get(k)) for k in cols) for it in items)
    figures = {c for i, c in enumerate(cols) if any(isinstance(r[i], Quantity) for r in rows)}
    out = [Table(title, tuple(_label(c, c in figures) for c in cols), rows)] if cols else []
    for i, it in enumerate(items):
        for k in (k for k in keys if k not in cols and k in it and not _is_assumptions(k, it[k])):
            out += generic_tables(f"{title} [{_record_name(it, i)}] / {_label(k, estimate=True)}", it[k])
    return out


def quantity_table(title: str, named: Sequence[tuple[str, Any]], labelled: bool = True) -> Table:
    """(quantity, value, low, high, unit) rows; one quantity given in two units (energy_j and
    energy_mwh) is one row, not two."""
    rows: list[tuple[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    for key, v in named:
        x = cell(key, v)
        name = _label(key, estimate=isinstance(x, Quantity)) if labelled else key
        shown = Table("", ("quantity", "value", "low", "high", "unit"), ((name, x),), spread=True).rows[0]
        if shown not in seen:
            seen.add(shown)
            rows.append((name, x))
    return Table(title, ("quantity", "value", "low", "high", "unit"), tuple(rows), spread=True)


def generic_tables(title: str, obj: Any) -> list[Table]:
    """Lay out any planner / acceptance JSON: estimates as value/low/high rows, lists of records as tables."""
    if isinstance(obj, list) and obj and all(isinstance(x, Mapping) for x in obj):
        return records_tables(title, obj)
    if isinstance(obj, list) and not all(_scalar(x) for x in obj):  # a mixed list: each element in turn
        return [t for i, x in enumerate(obj) for t in generic_tables(f"{title} [{i + 1}]", x)]
    if not isinstance(obj, Mapping) or _is_plan(obj):
        return [Table(title, ("value",), ((cell(title, obj),),))]
    here = [(k, v) for k, v in obj.items() if _fits_a_cell(v) and not _is_assumptions(k, v)]
    out = [quantity_table(title, here)] if here else []
    for k, v in obj.items():
        if not _fits_a_cell(v) and not _is_assumptions(k, v):
            out += generic_tables(f"{title} / {_label(k, estimate=True)}", v)
    return out


def assumptions(obj: Any) -> list[str]:
    """Every assumption a planner file states, wherever it sits (the file's own list first, then each
    plan's and each estimate's), once each: `plan` and `compare` print them under their tables."""
    found: list[str] = list(obj.get("assumptions", [])) if isinstance(obj, Mapping) and \
        _is_assumptions("assumptions", obj.get("assumptions")) else []

    def walk(o: Any) -> None:
        if isinstance(o, Mapping):
            for k, v in o.items():
                if _is_assumptions(k, v):
                    found.extend(v)
                else:
                    walk(v)
        elif isinstance(o, list):
            for x in o:
                walk(x)
    walk(obj)
    return list(dict.fromkeys(found))


def _compared(plan: Mapping[str, Any]) -> list[Mapping[str, Any]] | None:
    """The systems of a `compare --json` file (each with its `sections`), else None."""
    systems = plan.get("systems")
    if "workload" in plan and isinstance(systems, list) and systems and all(
            isinstance(s, Mapping) and isinstance(s.get("sections"), Mapping)
            and all(_quantity_rows(rows) for rows in s["sections"].values()) for s in systems):
        return systems
    return None  # not compare's shape: laid out field by field, so that nothing is left out


def _quantity_rows(rows: Any) -> bool:
    """A `sections` entry as `plan` and `compare` write it: a list of {quantity, value} rows."""
    return isinstance(rows, list) and all(isinstance(r, Mapping) and set(r) == {"quantity", "value"}
                                          and isinstance(r["quantity"], str) for r in rows)


def _row_value(rows: Sequence[Mapping[str, Any]], quantity: str) -> Any:
    return next((r["value"] for r in rows if r["quantity"] == quantity), BLANK)


def comparison_tables(title: str, systems: Sequence[Mapping[str, Any]]) -> list[Table]:
    """compare's own layout: each section's quantities down, one column per system."""
    names = tuple(str(s.get("system", i + 1)) for i, s in enumerate(systems))
    out = []
    for sec in dict.fromkeys(k for s in systems for k in s["sections"]):
        rows_of = [s["sections"].get(sec, []) for s in systems]
        quantities = dict.fromkeys(r["quantity"] for rows in rows_of for r in rows)
        cells = tuple((q, *(_compared_cell(q, _row_value(rows, q)) for rows in rows_of)) for q in quantities)
        out.append(Table(f"{title}: {sec}", ("quantity", *names), cells))
    return out


def _compared_cell(quantity: str, v: Any) -> Any:
    if v is BLANK:
        return BLANK  # the system has no such row (a training row of an inference system)
    return cell(quantity, v) if _fits_a_cell(v) else Formatted(v, _as_json_text)


def _as_json_text(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


def plan_tables(label: str, plan: Mapping[str, Any]) -> list[Table]:
    systems = _compared(plan)
    if systems is None:
        return generic_tables(label, plan)
    details = {**plan, "systems": [{k: v for k, v in s.items() if k != "sections"} for s in systems]}
    return comparison_tables(label, systems) + generic_tables(label, details)


def planner(plans: Sequence[tuple[str, Mapping[str, Any]]]) -> Section | None:
    if not plans:
        return None
    tables: list[Table] = []
    items: list[str] = []
    for label, plan in plans:
        tables += plan_tables(label, plan)
        items += assumptions(plan)
    return Section("Capacity estimates and claim checks", tables=tuple(tables), items=tuple(dict.fromkeys(items)))
