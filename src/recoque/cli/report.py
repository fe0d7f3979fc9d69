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
    from recoque.report.outputs import check_outputs, check_plot_files

    # every output checked, by the file it lands in, before any is written: a failed run writes nothing
    outputs = check_outputs(out, csv_out, plots, inputs=[*files, *(plan or ())])
    with_plots = not no_plots and (out is not None or plots is not None) and _have_matplotlib()
    rep = build_report([str(f) for f in files], [str(p) for p in plan or ()], with_plots=with_plots,
                       svg=plots is not None)
    if plots is not None and with_plots:
        check_plot_files(outputs, plots, [p.name for s in rep.sections for p in s.plots], svg=True)
    written: list[str] = []
    removed: list[str] = []
    if plots is not None and with_plots:
        written += write_plots(rep, str(plots))
    if out is not None:
        write_report(rep, str(out), str(plots) if plots is not None else None)
        written.append(str(out))
    if csv_out is not None:
        from recoque.report.csv import export_files
        from recoque.report.model import load_input

        more, removed = export_files([(i.label, i.doc) for i in map(load_input, map(str, files))], str(csv_out))
        written += more
    if as_json:
        emit_json(rep.to_json())  # the tables' cells as data: numbers in base units, each with its unit
    for path in written:
        err_console.print(f"wrote {path}", highlight=False)
    for path in removed:
        err_console.print(f"removed {path}: left by an earlier export to the same name, this one has no such rows",
                          highlight=False)


def _have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        err_console.print("note: plots skipped: matplotlib is not installed (pip install 'recoque[report]')",
                          highlight=False)
        return False
    return True
