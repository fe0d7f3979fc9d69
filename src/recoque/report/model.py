"""What a report contains, independent of its format: sections of paragraphs, tables and plots.

The tables hold data (report/table.py): numbers in base units with their unit. The HTML and Markdown
writers lay out `Table.rows`, the text written once in table.py; `--json` keeps the numbers.
"""
from __future__ import annotations

import math

from collections import defaultdict
from dataclasses import dataclass
from functools import partial
from typing import Any, Mapping, Sequence

from recoque.bench.compare import flatten
from recoque.bench.headline import CONFIRMED, STEADY
from recoque.bench.schema import ResultsDocument, document_from_json
from recoque.errors import BadInput
from recoque.fileio import read_json
from recoque.inputs import check_rates_below_peak
from recoque.report.plan_tables import generic_tables, planner
from recoque.report.table import (BLANK, PERCENT, SHOWN_UNITS, Formatted, Quantity, Report, Section, Table, num,
                                  pct)

__all__ = ["Input", "Report", "Section", "Table", "build", "generic_tables", "load_input", "load_plan", "num", "pct"]

ACCEPT_KEYS = ("acceptance",)  # where bench/accept.py writes its verdicts into a results file


@dataclass(frozen=True)
class Input:
    label: str
    raw: Mapping[str, Any]
    doc: ResultsDocument


def load_input(path: str) -> Input:
    raw = read_json(path)
    # The acceptance verdicts (bench/accept.py) sit beside the results; the results loader checks them too.
    doc = document_from_json(raw, origin=str(path))
    if not doc.results:  # an empty report would read as a successful one
        why = f" ({len(doc.skipped)} case(s) skipped: see its `skipped`)" if doc.skipped else ""
        raise BadInput(f"{path} holds no verified result{why}", "re-run `recoque bench`, or leave this file out")
    check_rates_below_peak(doc, str(path))
    return Input(str(path), raw, doc)


def load_plan(path: str) -> Mapping[str, Any]:
    raw = read_json(path, "pass a file written by `recoque plan|check|compare ... --json`")
    if not isinstance(raw, Mapping):
        raise BadInput(f"{path}: planner output must be a JSON object",
                       "pass a file written by `recoque plan|check|compare ... --json`")
    problem = _plan_problem(raw) or _not_finite(raw)
    if problem:
        raise BadInput(f"{path}: {problem}", "pass a file written by `recoque plan|check|compare|bench accept ... --json`")
    return raw


def _not_finite(x: Any, where: str = "") -> str | None:
    """Where a number is not finite: planner JSON writes an unbounded figure as null (render.emit_json),
    so an inf here (1e400 reads as one) is a hand-edited or foreign value, not the planner's."""
    if isinstance(x, float) and not math.isfinite(x):
        return f"{where or 'the top level'} is {x}, not a finite number (an unbounded figure is written as null)"
    items = x.items() if isinstance(x, Mapping) else enumerate(x) if isinstance(x, list) else ()
    for k, v in items:
        found = _not_finite(v, f"{where}.{k}" if where else str(k))
        if found:
            return found
    return None


def _plan_problem(raw: Mapping[str, Any]) -> str | None:
    """Why a JSON object is not what `plan`, `check`, `compare` or `bench accept` write with --json."""
    def records(k: str) -> bool:
        return isinstance(raw.get(k), list) and all(isinstance(x, Mapping) for x in raw[k])

    if "system" in raw or ("workload" in raw and not records("systems")):  # compare: workload + systems
        for k in ("system", "workload"):
            if not isinstance(raw.get(k), str):
                return f"`{k}` must be text, got {raw.get(k)!r}" if k in raw else f"missing `{k}`"
    elif not any(records(k) for k in ("claims", "systems", "checks")):
        return "not planner output (no `system` and `workload`, nor a list of `claims`, `systems` or `checks`)"
    for k in ("claims", "systems", "checks"):
        if k in raw and not records(k):
            return f"`{k}` must be a list of objects"
    if records("systems") and "workload" not in raw:  # what `recoque list systems --json` writes
        return "a `systems` list without a `workload` is the catalog (`recoque list systems`), not planner output"
    if "assumptions" in raw and not (isinstance(raw["assumptions"], list)
                                     and all(isinstance(a, str) for a in raw["assumptions"])):
        return "`assumptions` must be a list of text"
    if "sections" in raw and not (isinstance(raw["sections"], Mapping)
                                  and all(isinstance(v, list) for v in raw["sections"].values())):
        return "`sections` must map each title to a list of rows"
    return None


# --------------------------------------------------------------------------- cells


def rate_scale(doc: ResultsDocument, unit: str) -> tuple[float, str]:
    """CPU compute rates read better in GFLOP/s."""
    if unit == "TFLOP/s" and doc.device.get("kind") == "cpu":
        return 1e3, "GFLOP/s"
    return 1.0, unit


def rate(x: float | None, unit: str, shown: str) -> Quantity | None:
    """A record's rate (given in `unit`, bench/schema.UNITS) held per second, written in `shown`;
    None (unknown) stays None."""
    if x is None:
        return None
    base, per = SHOWN_UNITS[unit]
    return Quantity(x * per, base, shown=shown)


def fraction(x: float | None) -> Quantity:
    return Quantity(x, "1", shown=PERCENT)


def _as_is(v: Any) -> str:
    return str(v)


# --------------------------------------------------------------------------- sections


def overview(inputs: Sequence[Input]) -> Section:
    rows = []
    for inp in inputs:
        d = inp.doc
        rows.append((inp.label, str(d.device.get("name", "?")), str(d.device.get("kind", "?")), d.created_utc or "?",
                     d.tool_version or "?", len(d.results), len(d.skipped), "yes" if d.complete else "NO (interrupted)",
                     d.command))
    return Section("Runs", tables=(Table("Results files", ("file", "device", "kind", "measured (UTC)", "recoque",
                                                             "results", "skipped", "complete", "command"), tuple(rows)),))


def _flat(obj: Any) -> dict[str, Any]:
    """bench.compare's flattening, with a list of plain values shown as one comma-separated cell."""
    return {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in flatten(obj).items()}


def _environment_cell(v: Any) -> Any:
    # integers here are versions, ids and counts as the tools report them (cudnn 91900): no separators
    return Formatted(v, _as_is) if isinstance(v, int) and not isinstance(v, bool) else v


def environment(inputs: Sequence[Input]) -> Section:
    flats = [_flat({"environment": i.doc.environment, "device": i.doc.device}) for i in inputs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    rows = []
    for k in keys:
        vals = [_environment_cell(f[k]) if k in f else BLANK for f in flats]
        shown = Table("", ("v",) * len(vals), (tuple(vals),)).rows[0]
        mark = " (differs)" if len(inputs) > 1 and len(set(shown)) > 1 else ""
        rows.append((k + mark, *vals))
    return Section("Environment", tables=(Table("Environment and device", ("field", *[i.label for i in inputs]),
                                                tuple(rows)),))


def results(inp: Input) -> Section:
    from recoque.bench import summary

    doc = inp.doc
    tables = []
    best = summary.best_rows(doc)
    for unit in dict.fromkeys(r["unit"] for r in best):
        shown = rate_scale(doc, unit)[1]
        rows = tuple((f"{r['benchmark']} {r['op']}" + (" (LLM layers)" if r["kind"] == "llm" else ""), r["dtype"],
                      r["best_shape"], r["cases"], rate(r["achieved"], unit, shown), fraction(r["cov"]),
                      rate(r["peak"] or None, unit, shown), fraction(r["fraction_of_peak"]),
                      rate(r["public_best"], unit, shown) if r["public_best"] else _NO_PUBLIC_FIGURE,
                      fraction(r["fraction_of_public_best"]) if r["public_best"] else BLANK,
                      r["backend"] or "", _chosen(r))
                     for r in best if r["unit"] == unit)
        tables.append(Table(f"Best per benchmark, op and dtype ({shown}, median time)",
                            ("benchmark", "dtype", "best shape", "cases", f"achieved ({shown})", "CoV",
                             f"peak ({shown})", "% of peak", f"public best ({shown})", "% of public best", "backend",
                             "figure"), rows))
    for unit in dict.fromkeys(r.unit for r in doc.results):
        shown = rate_scale(doc, unit)[1]
        rows = tuple((r.benchmark, r.op, r.dtype, summary.shape(r), summary.run_label(r), rate(r.achieved, unit, shown),
                      rate(r.best, unit, shown), fraction(r.fraction_of_peak), len(r.times_s),
                      fraction(r.stats()["cov"]), r.backend or "")
                     for r in doc.results if r.unit == unit)
        tables.append(Table(f"Every verified case ({shown})", ("benchmark", "op", "dtype", "shape", "run",
                                                              f"median ({shown})", f"best ({shown})", "% of peak",
                                                              "samples", "CoV", "backend"), rows))
    power = power_table(doc)
    if power is not None:
        tables.append(power)
    if doc.skipped:
        reasons: dict[str, int] = defaultdict(int)
        for s in doc.skipped:
            reasons[f"{s.benchmark}/{s.op}/{s.dtype}: {s.reason}"] += 1
        tables.append(Table("Skipped", ("what and why", "cases"), tuple((k, v) for k, v in sorted(reasons.items()))))
    return Section(f"Results: {inp.label}", tables=tuple(tables))


_NO_PUBLIC_FIGURE = Formatted(None, lambda _: "no public figure")


def _chosen(row: Mapping[str, Any]) -> str:
    """How the row's figure was chosen (bench/headline.figure): a confirmed headline is the median of
    its rounds, so it may sit below the fastest case of the 'every verified case' table."""
    n = len(row.get("confirm_rounds") or ())
    if row["headline"] == CONFIRMED:
        return f"confirmed: median of {n} rounds" if n else CONFIRMED
    return {STEADY: "fastest steady case (unconfirmed)"}.get(row["headline"], str(row["headline"]))


def power_table(doc: ResultsDocument) -> Table | None:
    """Average power, energy and efficiency where telemetry carried power (bench/power.py)."""
    from recoque.bench import summary
    from recoque.bench.power import GPU_POWER_WINDOW_S, efficiency

    rows = []
    for r in doc.results:
        tel = r.telemetry or {}
        power = tel.get("power") if isinstance(tel.get("power"), Mapping) else tel
        eff = efficiency(r.achieved, r.unit, power) if isinstance(power, Mapping) else {}
        if not eff:
            continue
        per_w = (Quantity.shown_in(eff["gflop_s_per_w"], "GFLOP/s/W", unit_in_cell=True) if "gflop_s_per_w" in eff
                 else Quantity.shown_in(eff["gb_s_per_w"], "GB/s/W", unit_in_cell=True))
        clock = power.get("clock_mhz") if isinstance(power.get("clock_mhz"), Mapping) else {}
        energy = power.get("energy_j")
        rows.append((r.benchmark, r.op, r.dtype, summary.shape(r), summary.run_label(r),
                     Quantity.shown_in(eff["avg_power_w"], "W"),
                     Quantity.shown_in(energy, "J") if energy is not None else BLANK,
                     per_w, Quantity.shown_in(clock.get("median"), "MHz") if clock else BLANK,
                     "THROTTLED" if power.get("throttled") else ""))
    if not rows:
        return None
    return Table("Power and efficiency", ("benchmark", "op", "dtype", "shape", "run", "avg power (W)", "energy (J)",
                                          "efficiency", "clock (MHz)", "clocks"), tuple(rows),
                 note=f"average power = energy over the case (the energy counter's advance, else the power samples' "
                      f"integral) / its duration; efficiency = rate at the median time / average power; GPU cases "
                      f"shorter than the {GPU_POWER_WINDOW_S:g} s a power reading averages over get none")


def noise(inputs: Sequence[Input]) -> Section:
    rows = []
    for inp in inputs:
        for g in group_warnings(inp.doc.warnings):
            rows.append((inp.label, g["code"], g["cases"], g["worst_case"], Formatted(g["worst_value"], _three_digits),
                         g["hint"]))
    if not rows:
        return Section("Noise", paragraphs=("No noise warning was raised.",))
    return Section("Noise", tables=(Table("Noise warnings, grouped", ("file", "warning", "cases", "worst case",
                                                                      "worst value", "hint"), tuple(rows)),))


def _three_digits(x: Any) -> str:
    return num(x, 3)


def group_warnings(warnings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One line per warning code: how many cases, the worst value and where, the hint."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for w in warnings:
        groups[str(w.get("code", "?"))].append(w)
    out = []
    for code, ws in groups.items():
        worst = max(ws, key=lambda w: abs(float(w.get("value", 0) or 0)))
        out.append({"code": code, "cases": len(ws), "worst_case": str(worst.get("case", "?")),
                    "worst_value": worst.get("value"), "hint": str(worst.get("hint", ""))})
    return out


def acceptance(inputs: Sequence[Input]) -> Section:
    tables = []
    for inp in inputs:
        key = next((k for k in ACCEPT_KEYS if k in inp.raw), None)
        if key is not None:
            tables += generic_tables(f"{inp.label}: acceptance", inp.raw[key])
    if not tables:
        return Section("Acceptance", paragraphs=("No acceptance verdicts in these files "
                                                 "(run `recoque bench accept` to add them).",))
    return Section("Acceptance", tables=tuple(tables))


def comparison(inputs: Sequence[Input]) -> Section | None:
    from recoque.bench.compare import compare_many, method_text

    if len(inputs) < 2:
        return None
    try:
        comps = compare_many([(i.label, i.doc) for i in inputs])
    except BadInput as exc:
        return Section("Comparison", paragraphs=(f"Not compared: {exc.one_line()}",))
    tables, items = [], []
    for c in comps:
        tables.append(comparison_table(c))
        if c.environment_differences:
            tables.append(Table(f"What differs between {c.label_a} and {c.label_b}", ("field", c.label_a, c.label_b),
                                tuple((k, a, b) for k, a, b in c.environment_differences)))
        items += list(c.notes) + [f"only in {c.label_a}: {x}" for x in c.only_in_a] + \
            [f"only in {c.label_b}: {x}" for x in c.only_in_b]
    return Section("Comparison", paragraphs=(f"The first file is the baseline. Method: {method_text()}.",),
                   tables=tuple(tables), items=tuple(items))


def _interval(bounds: list[float | None]) -> str:
    from recoque.bench.compare import interval_text

    lo, hi = bounds
    return "n/a" if lo is None or hi is None else interval_text(lo, hi)


def _unit_cell(shown: str) -> Formatted:
    """The "unit" column beside A and B: the unit people read them in (TFLOP/s) in the HTML and Markdown,
    the base unit their JSON values are held in (flop/s) in --json, where "TFLOP/s" beside a value in
    flop/s would misstate it by 1e12."""
    return Formatted(SHOWN_UNITS[shown][0], partial(_said, shown))


def _said(text: str, _value: Any) -> str:
    return text


def comparison_table(c: Any) -> Table:
    from recoque.bench.compare import ratio_text

    rows = []
    for cc in c.cases:
        shape = ",".join(f"{k}={v}" for k, v in cc.params.items())
        rows.append((f"{cc.benchmark} {cc.op}" + (" (LLM)" if cc.kind == "llm" else ""), cc.dtype, shape, cc.run,
                     rate(cc.achieved_a, cc.unit, cc.unit), rate(cc.achieved_b, cc.unit, cc.unit),
                     _unit_cell(cc.unit),
                     Formatted(cc.ratio, partial(ratio_text, min_effect=c.min_effect)),
                     Formatted([cc.ratio_low, cc.ratio_high], _interval),
                     Formatted(cc.p_value, partial(num, digits=2)) if cc.p_value is not None else BLANK, cc.verdict))
    return Table(f"{c.label_b} against {c.label_a} ({c.n_significant} of {len(c.cases)} cases differ beyond noise)",
                 ("benchmark", "dtype", "case", "run", "A", "B", "unit", "B/A", "95% interval", "Mann-Whitney p", "verdict"),
                 tuple(rows))


# --------------------------------------------------------------------------- the whole report


def build(inputs: Sequence[Input], plans: Sequence[tuple[str, Mapping[str, Any]]] = (), with_plots: bool = True,
          title: str = "recoque report", svg: bool = False) -> Report:
    sections: list[Section | None] = [overview(inputs), environment(inputs)]
    sections += [results(i) for i in inputs]
    sections += [noise(inputs), acceptance(inputs), comparison(inputs)]
    if with_plots:
        from recoque.report.plots import render_all

        made = render_all([(i.label, i.doc) for i in inputs], [p for _, p in plans], svg=svg)
        if made:
            sections.append(Section("Plots", plots=tuple(made)))
    sections.append(planner(plans))
    return Report(title, tuple(s for s in sections if s is not None), tuple(i.label for i in inputs))
