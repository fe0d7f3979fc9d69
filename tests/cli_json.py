"""Run a recoque command with --json through typer's CliRunner and read its document (shared by tests)."""
import json

from typer.testing import CliRunner

from recoque.cli import app

runner = CliRunner()


def cli_json(*args: str) -> dict:
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def section_value(d: dict, section: str, name: str):
    """The value of the first row of a section whose quantity starts with `name`."""
    return next(r["value"] for r in d["sections"][section] if r["quantity"].startswith(name))
