"""What a report contains, independent of its format: sections of paragraphs, tables and plots.

The HTML and Markdown writers only lay this out; every figure is formatted here, once.
"""
from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from recoque.bench.compare import flatten
from recoque.bench.headline import CONFIRMED, STEADY
from recoque.bench.schema import ResultsDocument, document_from_json
from recoque.errors import BadInput
from recoque.fileio import read_json
from recoque.inputs import check_rates_below_peak

MAX_PLAN_ROWS = 40
ACCEPT_KEYS = ("acceptance",)  # where bench/accept.py writes its verdicts into a results file


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


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
    problem = _plan_problem(raw)
    if problem:
        raise BadInput(f"{path}: {problem}", "pass a file written by `recoque plan|check|compare|bench accept ... --json`")
    return raw


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


# --------------------------------------------------------------------------- formatting


def num(x: Any, digits: int = 4) -> str:
    if x is None:
        return "unknown"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    if isinstance(x, float):
        if x == 0:
            return "0"
        return f"{x:,.0f}" if abs(x) >= 1e5 else f"{x:.{digits}g}"
    return str(x)


def pct(x: float | None) -> str:
    return "unknown" if x is None else f"{x * 100:.1f}%"


def rate_scale(doc: ResultsDocument, unit: str) -> tuple[float, str]:
    """CPU compute rates read better in GFLOP/s."""
    if unit == "TFLOP/s" and doc.device.get("kind") == "cpu":
        return 1e3, "GFLOP/s"
    return 1.0, unit


# --------------------------------------------------------------------------- sections


def overview(inputs: Sequence[Input]) -> Section:
    rows = []
    for inp in inputs:
        d = inp.doc
        rows.append((inp.label, str(d.device.get("name", "?")), str(d.device.get("kind", "?")), d.created_utc or "?",
                     d.tool_version or "?", str(len(d.results)), str(len(d.skipped)), "yes" if d.complete else "NO (interrupted)",
                     d.command))
    return Section("Runs", tables=(Table("Results files", ("file", "device", "kind", "measured (UTC)", "recoque",
                                                             "results", "skipped", "complete", "command"), tuple(rows)),))


def _flat(obj: Any) -> dict[str, Any]:
    """bench.compare's flattening, with a list of plain values shown as one comma-separated cell."""
    return {k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in flatten(obj).items()}


def environment(inputs: Sequence[Input]) -> Section:
    flats = [_flat({"environment": i.doc.environment, "device": i.doc.device}) for i in inputs]
    keys = list(dict.fromkeys(k for f in flats for k in f))
    rows = []
    for k in keys:
        # integers here are versions, ids and counts as the tools report them (cudnn 91900): no separators
        vals = [(str(f[k]) if isinstance(f[k], int) and not isinstance(f[k], bool) else num(f[k])) if k in f else ""
                for f in flats]
        mark = " (differs)" if len(inputs) > 1 and len(set(vals)) > 1 else ""
        rows.append((k + mark, *vals))
    return Section("Environment", tables=(Table("Environment and device", ("field", *[i.label for i in inputs]),
                                                tuple(rows)),))


def results(inp: Input) -> Section:
    from recoque.bench import summary

    doc = inp.doc
    tables = []
    best = summary.best_rows(doc)
    for unit in dict.fromkeys(r["unit"] for r in best):
        scale, shown = rate_scale(doc, unit)
        rows = tuple((f"{r['benchmark']} {r['op']}" + (" (LLM layers)" if r["kind"] == "llm" else ""), r["dtype"],
                      r["best_shape"], str(r["cases"]), num(r["achieved"] * scale), pct(r["cov"]),
                      num(r["peak"] * scale) if r["peak"] else "unknown", pct(r["fraction_of_peak"]),
                      (f"{pct(r['fraction_of_public_best'])} of {num(r['public_best'] * scale)}"
                       if r["public_best"] else "no public figure"), r["backend"] or "", _chosen(r))
                     for r in best if r["unit"] == unit)
        tables.append(Table(f"Best per benchmark, op and dtype ({shown}, median time)",
                            ("benchmark", "dtype", "best shape", "cases", f"achieved ({shown})", "CoV",
                             f"peak ({shown})", "% of peak", "% of public best", "backend", "figure"), rows))
    for unit in dict.fromkeys(r.unit for r in doc.results):
        scale, shown = rate_scale(doc, unit)
        rows = tuple((r.benchmark, r.op, r.dtype, summary.shape(r), summary.run_label(r), num(r.achieved * scale),
                      num(r.best * scale),
                      pct(r.fraction_of_peak), str(len(r.times_s)), pct(r.stats()["cov"]), r.backend or "")
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
        tables.append(Table("Skipped", ("what and why", "cases"), tuple((k, str(v)) for k, v in sorted(reasons.items()))))
    return Section(f"Results: {inp.label}", tables=tuple(tables))


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
        per_w = (f"{num(eff['gflop_s_per_w'])} GFLOP/s/W" if "gflop_s_per_w" in eff
                 else f"{num(eff['gb_s_per_w'])} GB/s/W")
        clock = power.get("clock_mhz") if isinstance(power.get("clock_mhz"), Mapping) else {}
        rows.append((r.benchmark, r.op, r.dtype, _shape(r), summary.run_label(r), num(eff["avg_power_w"]),
                     num(power.get("energy_j")) if power.get("energy_j") is not None else "",
                     per_w, num(clock.get("median")) if clock else "",
                     "THROTTLED" if power.get("throttled") else ""))
    if not rows:
        return None
    return Table("Power and efficiency", ("benchmark", "op", "dtype", "shape", "run", "avg power (W)", "energy (J)",
                                          "efficiency", "clock (MHz)", "clocks"), tuple(rows),
                 note=f"average power = energy over the case (the energy counter's advance, else the power samples' "
                      f"integral) / its duration; efficiency = rate at the median time / average power; GPU cases "
                      f"shorter than the {GPU_POWER_WINDOW_S:g} s a power reading averages over get none")


def _shape(r: Any) -> str:
    from recoque.bench import summary

    return summary.shape(r)


def noise(inputs: Sequence[Input]) -> Section:
    rows = []
    for inp in inputs:
        for g in group_warnings(inp.doc.warnings):
            rows.append((inp.label, g["code"], str(g["cases"]), g["worst"], g["hint"]))
    if not rows:
        return Section("Noise", paragraphs=("No noise warning was raised.",))
    return Section("Noise", tables=(Table("Noise warnings, grouped", ("file", "warning", "cases", "worst case", "hint"),
                                          tuple(rows)),))


def group_warnings(warnings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One line per warning code: how many cases, the worst value and where, the hint."""
    groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for w in warnings:
        groups[str(w.get("code", "?"))].append(w)
    out = []
    for code, ws in groups.items():
        worst = max(ws, key=lambda w: abs(float(w.get("value", 0) or 0)))
        out.append({"code": code, "cases": len(ws), "worst": f"{worst.get('case', '?')}: {num(worst.get('value'), 3)}",
                    "hint": str(worst.get("hint", ""))})
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
                                tuple((k, num(a), num(b)) for k, a, b in c.environment_differences)))
        items += list(c.notes) + [f"only in {c.label_a}: {x}" for x in c.only_in_a] + \
            [f"only in {c.label_b}: {x}" for x in c.only_in_b]
    return Section("Comparison", paragraphs=(f"The first file is the baseline. Method: {method_text()}.",),
                   tables=tuple(tables), items=tuple(items))


def comparison_table(c: Any) -> Table:
    from recoque.bench.compare import ratio_text

    rows = []
    for cc in c.cases:
        shape = ",".join(f"{k}={v}" for k, v in cc.params.items())
        ci = cc.interval_text
        rows.append((f"{cc.benchmark} {cc.op}" + (" (LLM)" if cc.kind == "llm" else ""), cc.dtype, shape, cc.run,
                     num(cc.achieved_a), num(cc.achieved_b), cc.unit, ratio_text(cc.ratio, c.min_effect), ci,
                     num(cc.p_value, 2) if cc.p_value is not None else "", cc.verdict))
    return Table(f"{c.label_b} against {c.label_a} ({c.n_significant} of {len(c.cases)} cases differ beyond noise)",
                 ("benchmark", "dtype", "case", "run", "A", "B", "unit", "B/A", "95% interval", "Mann-Whitney p", "verdict"),
                 tuple(rows))


# --------------------------------------------------------------------------- planner output


def _is_estimate(d: Any) -> bool:
    return isinstance(d, Mapping) and all(k in d for k in ("value", "low", "high", "unit"))


def estimate_text(d: Mapping[str, Any]) -> tuple[str, str, str, str]:
    from recoque.estimate import Estimate
    from recoque.render import human

    try:
        return human(Estimate(float(d["value"]), float(d["low"]), float(d["high"]), str(d["unit"])))
    except (TypeError, ValueError):
        return num(d.get("value")), num(d.get("low")), num(d.get("high")), str(d.get("unit", ""))


# base units JSON keys end in; an estimate's row prints its unit in human form beside it
# (render.human: "energy_per_year_j" is shown in GWh), so the label drops the key's unit
# an estimate's row carries its unit: the key's base-unit suffix goes, unless it ends a rate
# ("tokens_per_s" keeps its "per s")
_BASE_UNIT_SUFFIX = re.compile(r"(?<!_per)_(j|mwh|w|s|flop_s|bytes|bytes_s|eur|kg|kg_co2e)$")
_WORDS = {"it": "IT", "gpu": "GPU", "gpus": "GPUs", "mfu": "MFU", "hfu": "HFU", "gflops": "GFLOP/s", "w": "W",
          "eur": "EUR", "hbm": "HBM", "ttft": "TTFT", "tpot": "TPOT", "co2": "CO2", "co2e": "CO2e", "pue": "PUE",
          "hpl": "HPL", "h100e": "H100e", "tp": "TP", "pp": "PP", "dp": "DP", "kv": "KV"}


def _label(key: str, estimate: bool = False) -> str:
    key = (_BASE_UNIT_SUFFIX.sub("", key) if estimate else key).replace("flop_s", "FLOP/s")
    return " ".join(_WORDS.get(w, w) for w in key.split("_"))


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def generic_tables(title: str, obj: Any) -> list[Table]:
    """Lay out any planner / acceptance JSON: estimates as value/low/high rows, lists of records as tables."""
    if isinstance(obj, list) and obj and all(isinstance(x, Mapping) for x in obj):
        return [records_table(title, obj)]
    if not isinstance(obj, Mapping):
        return [Table(title, ("value",), ((num(obj) if _scalar(obj) else json.dumps(obj)[:200],),))]
    rows: list[tuple[str, ...]] = []
    nested: list[Table] = []
    for k, v in obj.items():
        if k == "assumptions":
            continue
        if _is_estimate(v):
            row = (_label(k, estimate=True), *estimate_text(v))
            if row not in rows:  # energy_j and energy_mwh: one quantity, one row
                rows.append(row)
        elif _scalar(v):
            rows.append((_label(k), num(v), "", "", ""))
        elif isinstance(v, list) and all(_scalar(x) for x in v):
            rows.append((_label(k), "; ".join(num(x) for x in v)[:400], "", "", ""))
        else:
            nested += generic_tables(f"{title} / {_label(k)}", v)
    out = [Table(title, ("quantity", "value", "low", "high", "unit"), tuple(rows))] if rows else []
    return out + nested


def records_table(title: str, items: Sequence[Mapping[str, Any]]) -> Table:
    def shown(v: Any) -> bool:  # scalars, estimates and lists of scalars (a claim's arithmetic lines)
        return _scalar(v) or _is_estimate(v) or (isinstance(v, list) and all(_scalar(x) for x in v))

    cols = [k for k in dict.fromkeys(k for it in items for k in it)
            if k != "assumptions" and all(shown(it.get(k)) for it in items)]
    rows = []
    for it in items[:MAX_PLAN_ROWS]:
        row = []
        for k in cols:
            v = it.get(k)
            if _is_estimate(v):
                val, lo, hi, unit = estimate_text(v)
                row.append(f"{val} ({lo}-{hi}) {unit}".strip())
            elif isinstance(v, list):
                row.append("; ".join(num(x) for x in v))
            else:
                row.append(num(v))
        rows.append(tuple(row))
    note = f"first {MAX_PLAN_ROWS} of {len(items)}" if len(items) > MAX_PLAN_ROWS else ""
    est = {c for c in cols if any(_is_estimate(it.get(c)) for it in items)}
    return Table(title, tuple(_label(c, c in est) for c in cols), tuple(rows), note)


def planner(plans: Sequence[tuple[str, Mapping[str, Any]]]) -> Section | None:
    if not plans:
        return None
    tables: list[Table] = []
    items: list[str] = []
    for label, plan in plans:
        tables += generic_tables(label, plan)
        items += [str(a) for a in plan.get("assumptions", []) if isinstance(a, str)]
    return Section("Capacity estimates and claim checks", tables=tuple(tables), items=tuple(dict.fromkeys(items)))


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
