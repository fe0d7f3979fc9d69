"""--json carries what the tables show (sweep 11): validate's published figure as numbers, check's stated
figures as numbers and its closing count, devices' sources."""
import json

from typer.testing import CliRunner

from recoque.cli import app

runner = CliRunner()


def _json(*args):
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)


def test_validate_gives_the_published_figure_as_numbers():
    cases = _json("validate")["cases"]
    ranged = next(c for c in cases if "(" in c["published"] and "TFLOP/s/GPU" in c["published"])
    f = ranged["published_figure"]
    assert f["unit"] == "TFLOP/s/GPU" and f["low"] <= f["value"] <= f["high"] and f["low"] < f["high"]
    assert ranged["published"].startswith(f"{f['value']:g} TFLOP/s/GPU")
    timed = next(c for c in cases if c["published"].endswith("s/iteration"))
    assert timed["published_figure"]["value"] == timed["published_time_s"]


def test_check_gives_stated_figures_as_numbers_and_the_count():
    d = _json("check")
    jz = next(c for c in d["claims"] if c["stated_values"].get("h100_min"))
    assert jz["stated_values"]["h100_min"] == 1400 and "h100_min=1,400" in jz["stated"]
    assert sum(d["verdict_counts"].values()) == len(d["claims"])
    text = runner.invoke(app, ["check"]).output
    assert f"{len(d['claims'])} claims: " in text


def test_devices_json_names_each_rows_source():
    d = _json("devices")["devices"][0]
    assert d["sources"]["memory"] in ("/proc/meminfo", "torch")
    assert "peak fp32" in d["sources"]
