"""Write a report of benchmark results (and planner output) to share: one self-contained HTML file with
the plots embedded, or Markdown; CSV exports as BabelStream and nccl-tests print them; plots as PNG/SVG."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from recoque.cli._edge import refuse_repeats
from recoque.errors import BadInput
from recoque.render import emit_json, err_console

if TYPE_CHECKING:
    from recoque.report.model import Report
    from recoque.report.outputs import Output

REPORT_SUFFIXES = (".html", ".htm", ".md", ".markdown")


@dataclass(frozen=True)
class ReportRequest:
    """One `recoque report` run's options, as given."""
    files: tuple[Path, ...]
    plans: tuple[Path, ...]
    out: Optional[Path]
    plots: Optional[Path]
    csv_out: Optional[Path]
    no_plots: bool
    as_json: bool


def report(files: List[Path] = typer.Argument(..., help="results files from `recoque bench --out` (first = baseline)"),
           plan: Optional[List[Path]] = typer.Option(None, "--plan", help="output of `recoque plan|check ... --json` "
                                                     "(repeatable; several GPU counts give the scaling plot)"),
           out: Optional[Path] = typer.Option(None, "--out", "-o", help="report.html (self-contained) or report.md"),
           plots: Optional[Path] = typer.Option(None, "--plots", help="also write every plot as PNG and SVG here"),
           csv_out: Optional[Path] = typer.Option(None, "--csv", help="results.csv (+ -babelstream.csv, -nccl-tests.csv)"),
           no_plots: bool = typer.Option(False, "--no-plots", help="skip the plots (no matplotlib needed)"),
           as_json: bool = typer.Option(False, "--json", help="emit the report's tables as JSON")) -> None:
    """Report results as HTML/Markdown with plots, and export CSV."""
    from recoque.report.outputs import check_outputs

    req = ReportRequest(tuple(files), tuple(plan or ()), out, plots, csv_out, no_plots, as_json)
    _refuse_bad_options(req)
    # every output checked, by the file it lands in, before any is written: a failed run writes nothing
    outputs = check_outputs(out, csv_out, plots, inputs=[*req.files, *req.plans])
    rep, with_plots = _build_checked_report(req, outputs)
    written, removed = _write_outputs(req, rep, outputs, with_plots)
    if as_json:
        emit_json(rep.to_json())  # the tables' cells as data: numbers in base units, each with its unit
    _say_written(written, removed)


def _refuse_bad_options(req: ReportRequest) -> None:
    """Options that cannot make a report, refused before anything is read or written."""
    if req.out is None and req.plots is None and req.csv_out is None and not req.as_json:
        raise BadInput("nothing to write", "name an output: --out report.html, --out report.md, --csv results.csv "
                                           "or --plots DIR")
    refuse_repeats(list(req.files), "results file", lambda f: Path(f).resolve())
    refuse_repeats(list(req.plans), "--plan", lambda f: Path(f).resolve())
    if req.no_plots and req.plots is not None:  # before, --plots was dropped silently and nothing was written
        raise BadInput("--plots and --no-plots contradict each other", "drop one of them")
    _refuse_unknown_formats(req.out, req.csv_out)


def _refuse_unknown_formats(out: Optional[Path], csv_out: Optional[Path]) -> None:
    """The names are checked before anything is built or written: no half-written set of outputs."""
    if out is not None and out.suffix.lower() not in REPORT_SUFFIXES:
        raise BadInput(f"--out {out}: unknown report format {out.suffix or '(no extension)'}",
                       "end the file name in .html or .md")
    if csv_out is not None and csv_out.suffix.lower() != ".csv":
        raise BadInput(f"--csv {csv_out}: a CSV export must end in .csv", "e.g. --csv results.csv")


def _build_checked_report(req: ReportRequest, outputs: list[Output]) -> tuple[Report, bool]:
    """The report, and whether it has plots; its plot files checked against the other outputs (their
    names are known only once it is built)."""
    from recoque.report import build_report
    from recoque.report.outputs import check_plot_files

    with_plots = not req.no_plots and (req.out is not None or req.plots is not None) and _have_matplotlib()
    rep = build_report([str(f) for f in req.files], [str(p) for p in req.plans], with_plots=with_plots,
                       svg=req.plots is not None)
    if req.plots is not None and with_plots:
        check_plot_files(outputs, req.plots, [p.name for s in rep.sections for p in s.plots], svg=True)
    return rep, with_plots


def _write_outputs(req: ReportRequest, rep: Report, outputs: list[Output],
                   with_plots: bool) -> tuple[list[str], list[str]]:
    """Plots, then the report, then the CSV files: (paths written, stale side files removed)."""
    from recoque.report import write_plots, write_report
    from recoque.report.outputs import make_plots_folder

    make_plots_folder(outputs)  # an --out or --csv inside a --plots folder this run creates
    written: list[str] = []
    if req.plots is not None and with_plots:
        written += write_plots(rep, str(req.plots))
    if req.out is not None:
        write_report(rep, str(req.out), str(req.plots) if req.plots is not None else None)
        written.append(str(req.out))
    removed: list[str] = []
    if req.csv_out is not None:
        more, removed = _export_csv(req.files, req.csv_out)
        written += more
    return written, removed


def _export_csv(files: tuple[Path, ...], csv_out: Path) -> tuple[list[str], list[str]]:
    from recoque.report.csv import export_files
    from recoque.report.model import load_input

    return export_files([(i.label, i.doc) for i in map(load_input, map(str, files))], str(csv_out))


def _say_written(written: list[str], removed: list[str]) -> None:
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
