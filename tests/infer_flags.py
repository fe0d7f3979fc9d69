"""One round trip of a `plan infer` flag through the CLI: a good value lands in --json's
serving_request, a bad one is a usage error naming the flag (shared by the serving flag tests)."""
import json

from typer.testing import CliRunner

from recoque.cli import app


def round_trip(base: list[str], flag: str, good: list[str], bad: str) -> dict:
    """The serving_request of `base + good --json`; asserts that `flag bad` exits 2 naming it."""
    ok = CliRunner().invoke(app, base + good + ["--json"])
    assert ok.exit_code == 0, ok.output
    refused = CliRunner().invoke(app, base + [flag, bad])
    assert refused.exit_code == 2 and flag.lstrip("-") in refused.output, refused.output
    return json.loads(ok.output)["serving_request"]
