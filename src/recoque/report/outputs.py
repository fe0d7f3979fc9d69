"""Where `recoque report` writes, checked as one set before the first byte is written.

The files are written one after another, so a clash found while writing leaves the first ones
written (a plots folder made, then the report refused). Everything is compared by the file it
lands in: write_atomic writes through a symbolic link, so a link is checked at its target (a link
into a missing folder failed only after the report was written; a CSV linked to the report
replaced it, silently). Inputs are included: an output that lands on a results or plan file would
destroy what the report is made from.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from recoque.errors import BadInput, WriteFailed
from recoque.fileio import check_writable, make_folder


@dataclass(frozen=True)
class Output:
    option: str  # how the user named it: "--out", "--csv", "--csv (nccl-tests side file)"
    path: Path  # as named
    target: Path  # the file it lands in (a link followed)


def landing(option: str, path: Path) -> Path:
    """The file `path` lands in, refused now when a link loops (ELOOP) rather than halfway through."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise WriteFailed(f"cannot write {option} {path}: a symbolic link that loops",
                              "remove the link or name another file") from None
    return Path(os.path.realpath(path))


def file_outputs(out: Path | None, csv_out: Path | None) -> list[Output]:
    """The report and every CSV file an export may write (the side files whether or not rows come)."""
    from recoque.report.csv import derived_paths

    named = [("--out", out), ("--csv", csv_out)]
    if csv_out is not None:
        stream, nccl = derived_paths(csv_out)
        named += [("--csv (BabelStream side file)", Path(stream)), ("--csv (nccl-tests side file)", Path(nccl))]
    return [Output(opt, p, landing(opt, p)) for opt, p in named if p is not None]


def _written(o: Output) -> Path:
    """What write_atomic will write: a link's target, else the path as named (its errors name it so)."""
    return o.target if os.path.islink(o.path) else o.path


def _refuse_clashes(outputs: Iterable[Output], inputs: Sequence[Path]) -> None:
    taken = {Path(os.path.realpath(p)): f"the input {p}" for p in inputs}
    for o in outputs:
        if o.target in taken:
            raise BadInput(f"{o.option} {o.path} and {taken[o.target]} name the same file ({o.target})",
                           "give each output a path of its own")
        taken[o.target] = f"{o.option} {o.path}"


def check_outputs(out: Path | None, csv_out: Path | None, plots: Path | None,
                  inputs: Sequence[Path] = ()) -> list[Output]:
    """Every output writable and each landing in a file of its own; the outputs back (plots: a folder)."""
    files = file_outputs(out, csv_out)
    folder = None if plots is None else Output("--plots", plots, landing("--plots", plots))
    if folder is not None:
        check_writable(_written(folder), folder=True)
    for o in files:
        if not in_new_plots_folder(o, folder):  # else the folder's own check above stands for it
            check_writable(_written(o))
    every = files if folder is None else [*files, folder]
    _refuse_clashes(every, inputs)
    return every


def in_new_plots_folder(o: Output, folder: Output | None) -> bool:
    """`o` lands directly in a --plots folder that does not exist yet: the folder is made before the
    first file is written (make_plots_folder), so `--plots new --out new/r.html` is not refused for
    a folder the same command creates. Deeper (new/sub/r.html) is still refused: nothing makes sub."""
    return folder is not None and not os.path.lexists(folder.target) and o.target.parent == folder.target


def make_plots_folder(outputs: Sequence[Output]) -> None:
    """Create the --plots folder now when another output lands in it and it does not exist yet; called
    once every check has passed and the report is built, so that a refused run leaves no folder."""
    folder = next((o for o in outputs if o.option == "--plots"), None)
    if folder is None or not any(in_new_plots_folder(o, folder) for o in outputs if o is not folder):
        return
    make_folder(_written(folder))


def check_plot_files(outputs: Sequence[Output], plots: Path, names: Iterable[str], svg: bool) -> None:
    """The plot files (known once the report is built) clash with no other output: a report or CSV
    path given inside the plots folder under a plot's name, or linked to one."""
    files = [o for o in outputs if o.option != "--plots"]
    for name in names:
        for ext in ("png", "svg") if svg else ("png",):
            path = plots / f"{name}.{ext}"
            _refuse_clashes([*files, Output("--plots", path, landing("--plots", path))], ())
