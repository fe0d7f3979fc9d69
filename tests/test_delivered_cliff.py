"""A delivered serving range whose high end comes from the H100 reference at its latency limit says so."""
import json
from types import SimpleNamespace

from typer.testing import CliRunner

from recoque.cli import app
from recoque.estimate import Estimate
from recoque.planner.capacity import CLIFF_FALL, _h100_cliff_note

runner = CliRunner()


def _h100(value: float, group_low: float) -> SimpleNamespace:
    return SimpleNamespace(tp=8, pp=2, tokens_per_s_per_gpu=Estimate(value, group_low, value, "tokens/s"),
                           group_tokens_per_s_per_gpu={"links": (value * 0.9, value), "engine": (group_low, value * 2)})


def test_note_names_the_group_that_collapses_the_reference():
    asked = SimpleNamespace(tpot_target_s=0.05)
    (line,) = _h100_cliff_note(_h100(18.0, 18.0 / (CLIFF_FALL + 1)), asked)
    assert "engine group" in line and "TPOT <= 50 ms" in line and "tp 8 x pp 2" in line


def test_no_note_when_the_reference_has_room():
    assert _h100_cliff_note(_h100(18.0, 18.0 / (CLIFF_FALL - 1)), SimpleNamespace(tpot_target_s=0.05)) == ()


def test_405b_on_h200_node_explains_its_wide_range():
    # a bare model is served offline by default: the 50 ms target whose cliff this is, asked for
    res = runner.invoke(app, ["plan", "infer", "-s", "node-8x-h200", "-w", "llama3-405b", "--tpot-ms", "50", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    eq = d["h100e"]["delivered"]["h100e"]
    assert eq["high"] / eq["value"] > CLIFF_FALL          # the wide range this note is for
    assert any("barely meets" in a for a in d["assumptions"])


def test_comfortable_reference_gets_no_note():
    res = runner.invoke(app, ["plan", "-s", "node-8x-h100", "-w", "le-chat", "--json"])
    assert res.exit_code == 0, res.output
    assert not any("barely meets" in a for a in json.loads(res.output)["assumptions"])
