"""`--grid` (a system priced and counted on another grid), `recoque list grids`, and the regional
average each grid's CO2 is shown against (EU for a European site, the US average for a US one)."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner import energy
from recoque.planner.system import load_system
from recoque.estimate import Estimate
from recoque.render import human

runner = CliRunner()


def _per_year(args: list[str]) -> dict:
    r = runner.invoke(app, ["plan", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)["energy"]["per_year"]


def test_grid_flag_prices_a_system_on_that_grid():
    own = _per_year(["--system", "jupiter", "--workload", "hpl"])
    moved = _per_year(["--system", "jupiter", "--workload", "hpl", "--grid", "france"])
    assert moved["energy_j"]["value"] == pytest.approx(own["energy_j"]["value"])  # same machine, same energy
    fr, de = energy.load_grid("france"), energy.load_grid("germany")
    assert moved["cost_eur"]["value"] / own["cost_eur"]["value"] == pytest.approx(fr.price.value / de.price.value)
    assert moved["co2_kg"]["value"] / own["co2_kg"]["value"] == pytest.approx(fr.gco2e_per_kwh / de.gco2e_per_kwh)


def test_the_sites_own_supply_note_stays_on_its_own_grid_only():
    lumi = load_system("lumi-g")
    assert energy.grid_for(lumi).notes                      # LUMI's stated hydropower, beside Finland's average
    assert energy.grid_for(lumi.with_grid("finland")).notes  # naming its own grid keeps it
    assert not energy.grid_for(lumi.with_grid("france")).notes
    assert lumi.with_grid(None) is lumi


@pytest.mark.parametrize("args", [["plan", "--system", "jupiter", "--workload", "hpl", "--grid", "mars"],
                                  ["plan", "train", "-s", "jupiter", "-w", "llama3.1-8b", "--grid", "mars"],
                                  ["compare", "-s", "jupiter,lumi-g", "--grid", "mars"]])
def test_an_unknown_grid_is_one_line_and_exit_2(args):
    r = runner.invoke(app, args)
    assert r.exit_code == 2
    assert "--grid 'mars' is not a known grid" in r.output and "recoque list grids" in r.output
    with pytest.raises(BadInput):
        load_system("jupiter").with_grid("mars")


def test_plan_train_and_compare_take_the_grid():
    t = runner.invoke(app, ["plan", "train", "-s", "jupiter", "-w", "llama3.1-8b", "--gpus", "64", "--grid", "finland"])
    assert t.exit_code == 0, t.output
    assert "Finland (finland)" in t.output and "Germany" not in t.output
    c = runner.invoke(app, ["compare", "-s", "jupiter,el-capitan", "--grid", "france", "--json"])
    assert c.exit_code == 0, c.output
    assert c.stdout.count('"France (france), in the EU"') == 2 and "California" not in c.stdout


def test_grid_before_a_subcommand_is_refused():
    r = runner.invoke(app, ["plan", "--grid", "france", "hpl", "--system", "jupiter"])
    assert r.exit_code == 2 and "--grid is given before `hpl`" in r.output


def test_a_us_site_is_shown_against_the_us_average():
    us = energy.load_grid("us-california")
    assert us.region == "US" and us.region_average == 390.0
    assert energy.load_grid("germany").region_average == energy.load_grid("france").eu_average_gco2e_per_kwh
    year = _per_year(["--system", "el-capitan", "--workload", "hpl"])
    assert year["region"] == "US"
    mwh = year["energy_mwh"]["value"]
    assert year["co2_region_average_kg"]["value"] == pytest.approx(mwh * 390.0)  # 390 g/kWh = 390 kg/MWh
    r = runner.invoke(app, ["plan", "--system", "el-capitan", "--workload", "hpl"])
    assert "California (us-california), in the US" in r.output and "EU average" not in r.output
    j = json.loads(runner.invoke(app, ["plan", "--system", "el-capitan", "--workload", "hpl", "--json"]).stdout)
    assert j["energy"]["grid"]["region_average_gco2e_per_kwh"] == 390.0


def test_a_region_outside_the_eu_must_state_its_average(monkeypatch):
    from recoque.planner import energy as e

    real = e.read_seed_toml

    def patched(name):
        doc = real(name)
        if name == "systems.toml":
            doc = {**doc, "grid": {**doc["grid"], "x": {"region": "US", "price_eur_per_mwh": 50.0, "gco2e_per_kwh": 100.0}}}
        return doc
    monkeypatch.setattr(e, "read_seed_toml", patched)
    with pytest.raises(BadInput, match="region_average_gco2e_per_kwh"):
        e.load_grid("x")


def test_list_grids_shows_every_grid_with_its_sources():
    r = runner.invoke(app, ["list", "grids", "--json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)["grids"]
    assert [g["key"] for g in rows] == energy.grid_names()
    for g in rows:
        assert g["electricity_price_eur_per_mwh_low"] <= g["electricity_price_eur_per_mwh"] <= g["electricity_price_eur_per_mwh_high"]
        assert g["region_average_gco2e_per_kwh"] == energy.load_grid(g["key"]).region_average
        assert g["gco2e_per_kwh_low"] <= g["gco2e_per_kwh"] <= g["gco2e_per_kwh_high"]
        assert g["sources"].get("gco2e_per_kwh") or g["key"] == "france"
    t = runner.invoke(app, ["list", "grids"])
    assert t.exit_code == 0 and "us-tennessee" in t.output and "US average" in t.output


def test_list_devices_names_the_fp64_rate_it_shows():
    r = runner.invoke(app, ["list", "devices", "--json"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout)["devices"][0]
    assert "fp64_gemm_flop_s" in row and "fp64_flop_s" not in row


def test_table_cells_round_ties_as_fmt_does():
    assert human(Estimate(166.5, 140.0, 202.5, "EUR/MWh"))[:3] == ("167", "140", "203")


@pytest.mark.parametrize("typed, key", [("France", "france"), ("us_california", "us-california"),
                                        ("California", "us-california"), ("GERMANY", "germany")])
def test_a_grid_is_named_by_its_key_or_its_place_in_any_case(typed, key):
    assert energy.grid_for(load_system("jupiter").with_grid(typed)).key == key


@pytest.mark.parametrize("sub", [["hpl"], ["stencil"], ["infer", "-w", "llama3.1-70b"]])
def test_every_plan_subcommand_that_prices_energy_takes_the_grid(sub):
    r = runner.invoke(app, ["plan", *sub, "-s", "jupiter", "--grid", "sweden"])
    assert r.exit_code == 0, r.output
    assert "Sweden (sweden)" in r.output and "Germany" not in r.output


def test_own_grid_keeps_the_supply_note_when_the_file_names_none(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[systems.mine]\ndevice = "h100_sxm"\ngpus = 8\ngpus_per_node = 8\nnode_power_kw = 10.2\n'
                 'pue = 1.2\nsupply_note = "a nuclear PPA"\n')
    s = load_system(str(f))
    assert energy.grid_for(s.with_grid("france")).notes  # France is its grid: the note stays
    assert not energy.grid_for(s.with_grid("italy")).notes


def test_grid_rows_stay_when_the_energy_is_unknown():
    r = runner.invoke(app, ["plan", "hpl", "-s", "node-8x-h100", "--grid", "italy", "--json"])
    assert r.exit_code == 0, r.output
    e = json.loads(r.stdout)["energy"]
    assert e["per_year"] is None and "PUE unknown" in e["unknown"] and e["grid"]["key"] == "italy"
    t = runner.invoke(app, ["plan", "hpl", "-s", "node-8x-h100", "--grid", "italy"])
    assert "Italy (italy), in the EU" in t.output and "unknown" in t.output


def test_compare_keeps_the_region_rows_together_across_regions():
    r = runner.invoke(app, ["compare", "-s", "frontier,jupiter", "-w", "hpl"])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if "region's average" in ln]
    assert len(lines) == 2  # one intensity row and one CO2 row, each with both systems, not one per region
    assert "390" in lines[0] and "292" in lines[0]
