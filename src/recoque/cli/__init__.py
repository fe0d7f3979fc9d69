"""The one console script: the CLI edge. Each command lives in its own module of this package; this
file only wires them. Everything a user types enters here, and only here is output rendered."""
from __future__ import annotations

import typer
from typer.core import TyperGroup

from recoque.errors import RecoqueError


class _OneLineErrors(TyperGroup):
    """Turn the two error kinds into one line on stderr and a non-zero exit, for every command."""

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except RecoqueError as exc:
            typer.echo(f"recoque: error: {exc.one_line()}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="recoque",
    cls=_OneLineErrors,
    help="Measure what a GPU node delivers (bench), plan capacity on it (plan), check stated figures (check).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from recoque.cli import bench, check, compare, devices, plan, validate

    app.command("devices", help=devices.__doc__)(devices.devices)
    app.add_typer(bench.app, name="bench")
    app.add_typer(plan.app, name="plan")
    app.command("validate", help=validate.__doc__)(validate.validate)
    app.command("check", help=check.__doc__)(check.check)
    app.command("compare", help=compare.__doc__)(compare.compare)


_register()


def main() -> None:
    app()
