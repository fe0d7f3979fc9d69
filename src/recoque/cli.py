"""The one console script. Each command lives in its own module; this file only wires them."""
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
    from recoque.bench import cli_bench, cli_devices
    from recoque.planner import cli_check, cli_compare, cli_plan, cli_validate

    app.command("devices", help=cli_devices.__doc__)(cli_devices.devices)
    app.add_typer(cli_bench.app, name="bench")
    app.add_typer(cli_plan.app, name="plan")
    app.command("validate", help=cli_validate.__doc__)(cli_validate.validate)
    app.command("check", help=cli_check.__doc__)(cli_check.check)
    app.command("compare", help=cli_compare.__doc__)(cli_compare.compare)


_register()


def main() -> None:
    app()
