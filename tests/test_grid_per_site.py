"""Energy on the grid of each system's site (seeds/systems.toml [grid.*], planner/energy.py), and
`plan train`'s rows for the best plan's run: energy, cost, CO2 and delivered H100-equivalents."""
from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.fileio import read_seed_toml
from recoque.planner import capacity, energy
from recoque.planner.stacks import cuda_counterpart, list_stacks, load_stack
from recoque.planner.system import load_system, system_from_toml

runner = CliRunner()


def _base(key: str) -> str:
    return key.removesuffix("_low").removesuffix("_high")


@pytest.mark.parametrize("name", energy.grid_names())
def test_every_grid_figure_has_a_source(name):
    raw = read_seed_toml("systems.toml")["grid"][name]
    numbers = [k for k, v in raw.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    assert numbers
    missing = [k for k in numbers if _base(k) not in raw.get("sources", {})]
    assert not missing, f"[grid.{name}] figures without a source: {missing}"
    g = energy.load_grid(name)
    assert g.intensity.low <= g.gco2e_per_kwh <= g.intensity.high
    assert g.price.low <= g.price.value <= g.price.high


@pytest.mark.parametrize("system,grid", [("jupiter", "germany"), ("lumi-g", "finland"),
                                         ("el-capitan", "us-california"), ("frontier", "us-tennessee"),
                                         ("alice-recoque", "france"), ("jean-zay-h100", "france")])
def test_a_system_is_costed_on_its_sites_grid(system, grid):
    s = load_system(system)
    g = energy.load_grid(grid)
    assert energy.grid_for(s).key == grid
    year = energy.per_year(s)
    kwh = year.energy.value / energy.J_PER_KWH
    assert year.co2.value == pytest.approx(kwh * g.gco2e_per_kwh / 1e3)
    assert year.cost.value == pytest.approx(year.energy.value / energy.J_PER_MWH * g.price.value)
    rows = dict(capacity.grid_rows(s))
    assert rows["grid"].startswith(g.place) and rows["electricity price"].value == pytest.approx(g.price.value)


def test_the_co2_range_carries_the_grids_intensity_range():
    s = load_system("jupiter")
    year = energy.per_year(s)
    g = energy.load_grid("germany")
    # the low corner: lowest energy x lowest intensity; the high: highest x highest
    assert year.co2.low == pytest.approx(year.energy.low / energy.J_PER_KWH * g.intensity.low / 1e3)
    assert year.co2.high == pytest.approx(year.energy.high / energy.J_PER_KWH * g.intensity.high / 1e3)
    assert any("Germany 2024" in a for a in year.co2.assumptions)


def test_an_all_in_price_takes_no_rebate_off_it():
    g = energy.load_grid("germany")
    assert g.all_in and g.rebates_eur_per_mwh == 0
    assert (g.price.value, g.price.low, g.price.high) == (166.5, 140.0, 202.0)
    assert "all-in" in g.price.assumptions[0]
    fr = energy.load_grid("france")
    assert not fr.all_in and fr.price.value == pytest.approx(70 + 10 + 22.5 - 10.5 - 5.7)


def _system_file(tmp_path, **extra):
    body = {"device": "h100_sxm", "gpus": 16, "gpus_per_node": 8, "node_power_kw": 10.2, "pue": 1.2, **extra}
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in body.items())
    p = tmp_path / "s.toml"
    p.write_text(f"[systems.mine]\n{lines}\n")
    return p


@pytest.mark.parametrize("bad,said", [("mars", "not a known grid"), (5, "must be text")])
def test_an_unknown_grid_is_refused_where_the_file_is_read(tmp_path, bad, said):
    p = _system_file(tmp_path, grid=bad)
    with pytest.raises(BadInput) as exc:
        load_system(str(p))
    assert said in exc.value.what
    if bad == "mars":
        assert "germany" in exc.value.fix


def test_a_users_system_may_name_a_grid(tmp_path):
    s = load_system(str(_system_file(tmp_path, grid="finland")))
    assert energy.grid_for(s).place == "Finland"
    r = runner.invoke(app, ["plan", "--system", str(_system_file(tmp_path, grid="finland")), "--workload", "hpl"])
    assert r.exit_code == 0, r.output
    assert "Finland (finland)" in r.output and "CO2 per year (grid average)" in r.output


def test_system_from_toml_keeps_france_by_default():
    s = system_from_toml("x", {"device": "h100_sxm", "gpus": 8, "gpus_per_node": 8, "node_power_kw": 10.2, "pue": 1.2})
    assert energy.grid_for(s).key == "france"


@pytest.mark.parametrize("key", [k for k in list_stacks() if load_stack(k).platform == "rocm"])
def test_a_rocm_stack_compares_with_its_cuda_counterpart(key):
    st = load_stack(key).with_reduce_dtype("bf16")
    twin = cuda_counterpart(st)
    assert twin.platform == "" and twin.key == st.cuda_counterpart
    assert twin.grad_reduce_dtype == "bf16"  # the run's reduction dtype travels with it
    assert cuda_counterpart(twin) is twin    # a CUDA stack compares with itself


def test_plan_train_shows_the_runs_energy_and_h100e_as_plan_does():
    r = runner.invoke(app, ["plan", "train", "-s", "alice-recoque", "-w", "mistral-large-2", "--json"])
    assert r.exit_code == 0, r.output
    job = json.loads(r.stdout)["job"]
    p = runner.invoke(app, ["plan", "--system", "alice-recoque", "--workload", "mistral-large-2", "--json"])
    assert p.exit_code == 0, p.output
    whole = json.loads(p.stdout)
    assert job["h100e_delivered"]["h100e"]["value"] == pytest.approx(whole["h100e"]["delivered"]["h100e"]["value"])
    assert job["energy_per_job"]["energy_j"]["value"] == pytest.approx(whole["energy"]["per_job"]["energy_j"]["value"])
    t = runner.invoke(app, ["plan", "train", "-s", "jupiter", "-w", "llama3.1-8b", "--gpus", "64"])
    assert t.exit_code == 0, t.output
    assert "Germany (germany)" in t.output and "CO2 per job (grid average)" in t.output
    assert "H100e delivered (64 GPUs)" in t.output


def test_plan_train_energy_follows_its_own_plan_and_token_count():
    args = ["plan", "train", "-s", "jupiter", "-w", "llama3.1-8b", "--gpus", "64", "--json"]
    a = json.loads(runner.invoke(app, args).stdout)
    b = json.loads(runner.invoke(app, [*args, "--tokens", "3e12"]).stdout)
    ea, eb = a["job"]["energy_per_job"]["energy_j"]["value"], b["job"]["energy_per_job"]["energy_j"]["value"]
    ta, tb = a["tokens_to_train"], b["tokens_to_train"]
    assert eb / ea == pytest.approx(tb / ta, rel=0.02)  # same plan, energy in proportion to the tokens
    assert math.isfinite(a["job"]["h100e_delivered"]["h100e"]["value"])


def test_plan_train_on_a_system_without_node_power_says_why(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text('[systems.bare]\ndevice = "h100_sxm"\ngpus = 16\ngpus_per_node = 8\n'
                 "intra_node_bandwidth_gb_s = 450\ninter_node_bandwidth_gb_s = 50\n")
    r = runner.invoke(app, ["plan", "train", "-s", str(p), "-w", "llama3.1-8b", "--gpus", "16", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["job"]["energy_per_job"] is None
    t = runner.invoke(app, ["plan", "train", "-s", str(p), "-w", "llama3.1-8b", "--gpus", "16"])
    assert "energy per job" in t.output and "node power unknown" in t.output



def test_compare_lines_up_the_grids_of_two_countries():
    r = runner.invoke(app, ["compare", "--systems", "alice-recoque,jupiter", "--workload", "hpl"])
    assert r.exit_code == 0, r.output
    line = next(x for x in r.output.splitlines() if "grid carbon intensity" in x)
    assert "21.3" in line and "363" in line   # one row, both systems: not one row per country


def test_a_sites_own_supply_is_said_for_that_site_only(tmp_path):
    lumi = energy.per_year(load_system("lumi-g"))
    assert any("hydropower" in a for a in lumi.co2.assumptions)
    mine = energy.per_year(load_system(str(_system_file(tmp_path, grid="finland"))))
    assert not any("hydropower" in a for a in mine.co2.assumptions)   # another Finnish site states nothing


def test_plan_train_json_carries_the_grid_and_the_delivered_verdict():
    d = json.loads(runner.invoke(app, ["plan", "train", "-s", "jupiter", "-w", "llama3.1-8b", "--gpus", "64",
                                       "--json"]).stdout)["job"]
    assert d["grid"]["key"] == "germany" and d["grid"]["gco2e_per_kwh"]["value"] == 363.0
    assert d["grid"]["electricity_price_eur_per_mwh"]["value"] == pytest.approx(166.5)
    assert "peak ratio" in d["delivered_vs_peak"]


def test_compare_keeps_one_top500_rmax_row():
    r = runner.invoke(app, ["compare", "--systems", "jupiter,lumi-g", "--workload", "hpl"])
    assert r.exit_code == 0, r.output
    rmax = [x for x in r.output.splitlines() if x.count("│") > 2 and x.split("│")[1].strip() == "TOP500 Rmax"]
    assert len(rmax) == 1 and "EFLOP/s" in rmax[0] and "PFLOP/s" in rmax[0]
