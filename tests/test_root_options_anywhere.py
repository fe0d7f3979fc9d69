"""`--width` and `--all-columns` belong to `recoque` itself; given after the subcommand they apply the
same (cli/_edge.hoist_root_options), and words after `--` are left alone."""
from typer.testing import CliRunner

from recoque.cli import app
from recoque.cli._edge import hoist_root_options

runner = CliRunner()


def test_root_options_after_the_command_act_as_before_it():
    before = runner.invoke(app, ["--width", "200", "--all-columns", "list", "systems"])
    after = runner.invoke(app, ["list", "systems", "--width", "200", "--all-columns"])
    assert before.exit_code == after.exit_code == 0, after.output
    assert after.output == before.output
    bad = runner.invoke(app, ["list", "systems", "--width=10"])
    assert bad.exit_code == 2 and "--width" in bad.output   # checked as before the command: at least 40


def test_hoisting_keeps_the_rest_in_order_and_stops_at_double_dash():
    argv = ["plan", "hpl", "-s", "x", "--width=90", "--all-columns", "--", "--width", "5"]
    assert hoist_root_options(argv) == ["--width=90", "--all-columns", "plan", "hpl", "-s", "x", "--", "--width", "5"]
    assert hoist_root_options(["bench", "--width", "80", "all"]) == ["--width", "80", "bench", "all"]
    assert hoist_root_options(["list", "--width"]) == ["list", "--width"]   # no value: click says so
