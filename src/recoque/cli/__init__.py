"""The one console script: the CLI edge. Each command lives in its own module of this package; this
file only wires them. Everything a user types enters here, and only here is output rendered."""
from __future__ import annotations

from recoque import signals

# First thing, before typer, rich and the planner load: a SIGTERM/SIGHUP/SIGINT from here on is
# remembered and answered by main() (exit 128 + signal), never a traceback out of an import.
if signals.launched_as_cli():
    signals.install(defer=True)

import typer  # noqa: E402
from typer.core import TyperGroup  # noqa: E402

from recoque.cli import _edge  # noqa: E402
from recoque.errors import RecoqueError  # noqa: E402


class _OneLineErrors(TyperGroup):
    """Every error as one line on stderr, `recoque: error: what (fix)`, and its exit code: the two
    error kinds (2, 3), a write that failed (4), usage errors (2), a signal (128 + signal)."""

    def main(self, *args, **kwargs):  # type: ignore[override]
        _edge.check_numeric_options(self)
        return _edge.one_line_main(super().main, *args, **kwargs)

    def invoke(self, ctx):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except RecoqueError as exc:
            typer.echo(f"recoque: error: {exc.one_line()}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            raise typer.Exit(_edge.interrupted(exc)) from None


app = typer.Typer(
    name="recoque",
    cls=_OneLineErrors,
    help="Measure what a GPU node delivers (bench), plan capacity on it (plan), check stated figures (check).",
    no_args_is_help=True,
    add_completion=True,
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
    from recoque.cli import bench_compare, list as list_cmd, report, root  # H13: reports, compare, list

    app.callback()(root.root)
    bench.app.command("compare", help=bench_compare.__doc__)(bench_compare.compare)
    from recoque.cli import bench_accept  # H8: node acceptance

    bench.app.command("accept", help=bench_accept.__doc__)(bench_accept.accept)
    app.command("report", help=report.__doc__)(report.report)
    app.command("list", help=list_cmd.__doc__)(list_cmd.list_known)


_register()


def main() -> None:
    from recoque import numba_cache

    signals.install()
    numba_cache.ensure()  # before anything imports numba: a read-only HOME must not crash a kernel
    try:
        signals.start_raising()  # a signal that came during the imports ends the run here
    except KeyboardInterrupt as exc:
        raise SystemExit(_edge.interrupted(exc, " before anything ran: nothing written")) from None
    try:
        app()
    except KeyboardInterrupt as exc:  # a signal while typer builds the command tree, before our main() runs
        raise SystemExit(_edge.interrupted(exc, " before anything ran: nothing written")) from None
    finally:
        signals.hold()
