"""Options of the `recoque` command itself: --version, --width, --all-columns (--width and --all-columns
may also follow the subcommand: cli/_edge.hoist_root_options moves them in front)."""
from __future__ import annotations

from typing import Optional

import typer


def _version(value: bool) -> None:
    if value:
        from recoque import __version__

        typer.echo(f"recoque {__version__}")
        raise typer.Exit()


def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit."),
         width: Optional[int] = typer.Option(None, "--width", min=40, envvar="RECOQUE_WIDTH",
                                             help="Output width in columns (default: the terminal's; into a file or "
                                                  "a pipe, as wide as the widest table). Also RECOQUE_WIDTH."),
         all_columns: bool = typer.Option(False, "--all-columns",
                                          help="Keep every table column even when the terminal is too narrow.")) -> None:
    """Measure what a GPU node delivers (bench), plan capacity on it (plan), check stated figures (check)."""
    from recoque.render import configure

    configure(width=width, all_columns=all_columns)
