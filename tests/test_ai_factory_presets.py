"""Two EuroHPC AI Factory machines of 003 as presets (Leonardo in Bologna, MareNostrum 5 ACC in
Barcelona): each on its country's grid, with its TOP500 run to hold the HPL model against."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.planner import energy
from recoque.planner.system import load_system

runner = CliRunner()


@pytest.mark.parametrize("key, grid, gpus", [("leonardo", "italy", 13824), ("marenostrum5-acc", "spain", 4480)])
def test_preset_sits_on_its_countrys_grid(key, grid, gpus):
    s = load_system(key)
    assert energy.grid_for(s).key == grid and s.gpus == gpus and s.gpus_per_node == 4
    # the per-GPU NIC share follows the stated NICs: 4 x HDR100 (Leonardo), 4 x NDR200 (MN5) per 4 GPUs
    assert s.inter_node_bandwidth_bytes_s == {"leonardo": 12.5e9, "marenostrum5-acc": 25e9}[key]


@pytest.mark.parametrize("key", ["leonardo", "marenostrum5-acc"])
def test_hpl_is_held_against_the_listed_run(key):
    r = runner.invoke(app, ["plan", "hpl", "-s", key, "--json"])
    assert r.exit_code == 0, r.output
    text = json.dumps(json.loads(r.stdout))
    assert "model vs TOP500" in text and "2025-06" in text  # the preset finds its listed run


def test_the_mn5_supply_note_is_said_beside_spains_average():
    g = energy.grid_for(load_system("marenostrum5-acc"))
    assert g.notes and "renewable" in g.notes[0]
    assert not energy.grid_for(load_system("leonardo")).notes
