"""Compare results files case by case: B/A with a bootstrap interval from the raw samples, and whether the
difference exceeds the noise. The first file is the baseline; files from other machines are welcome (the
fields that differ are listed). Different benchmark definitions for one case are refused."""
from __future__ import annotations

from pathlib import Path
from typing import List

import typer

from recoque.render import console, emit_json, err_console, table


def compare(files: List[Path] = typer.Argument(..., help="baseline A.json, then B.json ... (from `recoque bench --out`)"),
            min_effect: float = typer.Option(0.01, "--min-effect", help="smallest change called real (0.01 = 1%)"),
            all_rows: bool = typer.Option(False, "--all-rows", help="show every case, not only those that differ"),
            fail_on_slower: bool = typer.Option(False, "--fail-on-slower",
                                                help="exit 1 when any case of B is slower beyond the noise (CI)"),
            as_json: bool = typer.Option(False, "--json", help="emit the same data as JSON")) -> None:
    """Compare benchmark runs: ratio B/A per case with its uncertainty (bootstrap of medians)."""
    from recoque.bench.compare import compare_many, method_text, ratio_text
    from recoque.bench.schema import load_results
    from recoque.inputs import check_rates_below_peak

    names = [f.name for f in files]
    labels = names if len(set(names)) == len(names) else [str(f) for f in files]
    docs = [load_results(str(f)) for f in files]
    resolved = [f.resolve() for f in files]
    twice = next((f for f, r in zip(files, resolved) if resolved.count(r) > 1), None)
    if twice is not None:  # a file against itself would read as a run that did not change
        from recoque.errors import BadInput

        raise BadInput(f"{twice} is given more than once", "compare two different results files")
    for f, d in zip(files, docs):
        check_rates_below_peak(d, str(f))
    comps = compare_many(list(zip(labels, docs)), min_effect)
    if as_json:
        emit_json({"comparisons": [c.to_json() for c in comps]})
    else:
        for c in comps:
            _show(c, all_rows)
        err_console.print(f"method: {method_text(min_effect)}", highlight=False)
    slower = [(c, cc) for c in comps for cc in c.cases if cc.verdict == "slower"]
    if fail_on_slower and slower:  # a CI log says which case, not only the exit code
        c, cc = slower[0]
        err_console.print(f"recoque: {len(slower)} case(s) slower beyond the noise, first: {cc.benchmark} {cc.op} "
                          f"{cc.dtype} in {c.label_b}: x{ratio_text(cc.ratio, c.min_effect)} of {c.label_a}", highlight=False, markup=False)
        raise typer.Exit(1)


def _show(c, all_rows: bool) -> None:  # noqa: ANN001 - bench.compare.Comparison
    from recoque.bench.compare import ratio_text

    shown = [cc for cc in c.cases if all_rows or cc.significant or cc.verdict == "too few samples"]
    rows = [(f"{cc.benchmark} {cc.op}" + (" (LLM)" if cc.kind == "llm" else ""), cc.dtype,
             " ".join(f"{k}={v}" for k, v in cc.params.items()) + _backend(cc, c.cases), cc.run,
             f"{cc.achieved_a:.4g}", f"{cc.achieved_b:.4g}",
             cc.unit, ratio_text(cc.ratio, c.min_effect),
             cc.interval_text, cc.verdict)
            for cc in shown]
    title = f"{c.label_b} against {c.label_a}: {c.n_significant} of {len(c.cases)} cases differ beyond the noise"
    if rows:
        console.print(table(title, ("benchmark", "dtype", "case", "run", "A", "B", "unit", "B/A", "95% interval", "verdict"),
                            rows))
    else:
        console.print(title + " (--all-rows lists every case)", highlight=False)
    if c.environment_differences:
        console.print(table(f"What differs between {c.label_a} and {c.label_b}", ("field", "A", "B"),
                            [(k, _short(a), _short(b)) for k, a, b in c.environment_differences]))
    for note in c.notes:
        console.print(f"note: {note}", highlight=False)
    for label, only in ((c.label_a, c.only_in_a), (c.label_b, c.only_in_b)):
        if only:
            console.print(f"{len(only)} case(s) only in {label}: {', '.join(only[:5])}"
                          + (" ..." if len(only) > 5 else ""), highlight=False)


def _backend(cc, cases) -> str:  # noqa: ANN001 - bench.compare.CaseComparison
    """The backend, where one case was measured on several (torch and numpy GEMMs) or A and B differ."""
    same_case = {(x.backend_a, x.backend_b) for x in cases if (x.benchmark, x.op, x.dtype, x.params, x.run) ==
                 (cc.benchmark, cc.op, cc.dtype, cc.params, cc.run)}
    if len(same_case) < 2 and cc.backend_a == cc.backend_b:
        return ""
    return f" [{cc.backend_a}]" if cc.backend_a == cc.backend_b else f" [{cc.backend_a} vs {cc.backend_b}]"


def _short(v: object) -> str:
    # a float prints to 6 significant figures (a peak of 66900000000000.01 FLOP/s as 6.69e+13)
    s = "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)
    return s if len(s) <= 60 else s[:57] + "..."
