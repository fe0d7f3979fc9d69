"""Write a report of benchmark results (and planner output) to share: one self-contained HTML file with
the plots embedded, or Markdown; CSV exports as BabelStream and nccl-tests print them; plots as PNG/SVG."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from recoque.cli._edge import refuse_repeats
from recoque.errors import BadInput
from recoque.render import emit_json, err_console


def report(files: List[Path] = typer.Argument(..., help="results files from `recoque bench --out` (first = baseline)"),
           plan: Optional[List[Path]] = typer.Option(None, "--plan", help="output of `recoque plan|check ... --json` "
                                                     "(repeatable; several GPU counts give the scaling plot)"),
           out: Optional[Path] = typer.Option(None, "--out", "-o", help="report.html (self-contained) or report.md"),
           plots: Optional[Path] = typer.Option(None, "--plots", help="also write every plot as PNG and SVG here"),
           csv_out: Optional[Path] = typer.Option(None, "--csv", help="results.csv (+ -babelstream.csv, -nccl-tests.csv)"),
           no_plots: bool = typer.Option(False, "--no-plots", help="skip the plots (no matplotlib needed)"),
           as_json: bool = typer.Option(False, "--json", help="emit the report's tables as JSON")) -> None:
    """Report results as HTML/Markdown with plots, and export CSV."""
    from recoque.report import build_report, write_plots, write_report

    if out is None and plots is None and csv_out is None and not as_json:
        raise BadInput("nothing to write", "name an output: --out report.html, --out report.md, --csv results.csv "
                                           "or --plots DIR")
    refuse_repeats(list(files), "results file", lambda f: Path(f).resolve())
    refuse_repeats(list(plan or []), "--plan", lambda f: Path(f).resolve())
    if no_plots and plots is not None:  # before, --plots was dropped silently and nothing was written
        raise BadInput("--plots and --no-plots contradict each other", "drop one of them")
    # the names are checked before anything is built or written: no half-written set of outputs
    if out is not None and out.suffix.lower() not in (".html", ".htm", ".md", ".markdown"):
        raise BadInput(f"--out {out}: unknown report format {out.suffix or '(no extension)'}",
                       "end the file name in .html or .md")
    if csv_out is not None and csv_out.suffix.lower() != ".csv":
        raise BadInput(f"--csv {csv_out}: a CSV export must end in .csv", "e.g. --csv results.csv")
    from recoque.fileio import check_writable

    from recoque.report.csv import derived_paths

    derived = [Path(p) for p in derived_paths(csv_out)] if csv_out is not None else []
    for path in (p for p in (out, csv_out, *derived) if p is not None):
        check_writable(path)  # every output checked before any is written: a failed run replaces nothing
    if plots is not None:
        check_writable(plots, folder=True)
    with_plots = not no_plots and (out is not None or plots is not None) and _have_matplotlib()
    rep = build_report([str(f) for f in files], [str(p) for p in plan or ()], with_plots=with_plots,
                       svg=plots is not None)
    written: list[str] = []
    if plots is not None and with_plots:
        written += write_plots(rep, str(plots))
    if out is not None:
        write_report(rep, str(out), str(plots) if plots is not None else None)
        written.append(str(out))
    if csv_out is not None:
        from recoque.report.csv import export
        from recoque.report.model import load_input

        written += export([(i.label, i.doc) for i in map(load_input, map(str, files))], str(csv_out))
    if as_json:
        emit_json(_as_json(rep))
    for path in written:
        err_console.print(f"wrote {path}", highlight=False)


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        err_console.print("note: plots skipped: matplotlib is not installed (pip install 'recoque[report]')",
                          highlight=False)
        return False
    return True


def _as_json(rep) -> dict:  # noqa: ANN001 - report.model.Report
    return {"title": rep.title, "sources": list(rep.sources), "sections": [
        {"title": s.title, "paragraphs": list(s.paragraphs), "items": list(s.items),
         "plots": [p.name for p in s.plots],
         "tables": [{"title": t.title, "columns": list(t.columns), "rows": [list(r) for r in t.rows], "note": t.note}
                    for t in s.tables]} for s in rep.sections]}
