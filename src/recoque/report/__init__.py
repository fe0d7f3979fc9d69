"""Reports people read and share: self-contained HTML, Markdown, CSV exports and plots.

`build_report(paths, plan_paths)` reads results files (and planner `--json` output) into a
format-neutral `model.Report`; `html.render`, `markdown.render` and `csv` write it out.
matplotlib is needed only for the plots and is imported lazily.
"""
from __future__ import annotations

import os
from typing import Sequence

from recoque.report.model import Report, build, load_input, load_plan


def build_report(paths: Sequence[str], plan_paths: Sequence[str] = (), with_plots: bool = True,
                 svg: bool = False) -> Report:
    inputs = [load_input(p) for p in paths]
    plans = [(str(p), load_plan(p)) for p in plan_paths]
    return build(inputs, plans, with_plots=with_plots, svg=svg)


__all__ = ["Report", "build_report", "load_input", "load_plan"]


def write_plots(report: Report, plots_dir: str) -> list[str]:
    """Each plot as PNG and SVG under plots_dir; the paths written."""
    from recoque.fileio import _failed, make_folder, write_atomic

    d = make_folder(plots_dir)
    written = []
    for s in report.sections:
        for p in s.plots:
            png = d / f"{p.name}.png"
            tmp = png.with_suffix(".png.tmp")
            try:
                tmp.write_bytes(p.png)
                tmp.replace(png)
            except OSError as exc:
                raise _failed(png, exc) from None
            written.append(str(png))
            if p.svg is not None:
                write_atomic(d / f"{p.name}.svg", p.svg)
                written.append(str(d / f"{p.name}.svg"))
    return written


def write_report(report: Report, out: str, plots_dir: str | None = None) -> None:
    """HTML for .html/.htm, Markdown for .md/.markdown (chosen by the suffix)."""
    from recoque.errors import BadInput
    from recoque.fileio import write_atomic
    from recoque.report import html, markdown

    suffix = out.rsplit(".", 1)[-1].lower() if "." in out else ""
    if suffix in ("html", "htm"):
        write_atomic(out, html.render(report))
    elif suffix in ("md", "markdown"):
        # image links are read from the Markdown file's folder, not from where the command ran
        rel = os.path.relpath(plots_dir, os.path.dirname(os.path.abspath(out))) if plots_dir else None
        write_atomic(out, markdown.render(report, rel))
    else:
        raise BadInput(f"--out {out}: unknown report format", "end the file name in .html or .md")
