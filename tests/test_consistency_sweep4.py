"""What an output-consistency sweep found: figures of one output that did not follow from each other.
Each case fails on the code before the fix."""
import math

import pytest

from recoque.planner import energy
from recoque.planner.system import load_system
from cli_json import cli_json as _json, section_value as _row


def test_training_job_energy_is_the_used_gpus_over_the_wall_clock():
    # jupiter trains on 20,480 of its 23,536 GPUs; the job's energy was all of them at the steady-state time
    d = _json("plan", "-s", "jupiter", "-w", "mistral-large-2-pretrain")
    best = d["train"]["best"][0]
    used = best["gpus"]
    wall = best["time_to_train_wall"]["value"]
    per_gpu = energy.power_per_gpu(load_system("jupiter")).value
    job = d["energy"]["per_job"]["energy_j"]["value"]
    assert used < load_system("jupiter").gpus
    assert job == pytest.approx(per_gpu * used * wall, rel=1e-9)


def test_plan_time_rows_match_plan_train_and_the_token_range_has_its_own_row():
    d = _json("plan", "-s", "alice-recoque", "-w", "mistral-large-2-pretrain")
    steady = _row(d, "training", "time to train (steady state)")
    assert (steady["low"], steady["high"]) == pytest.approx(
        (d["train"]["best"][0]["time_to_train"]["low"], d["train"]["best"][0]["time_to_train"]["high"]))
    spread = next(r["value"] for r in d["sections"]["training"] if r["quantity"].startswith("time to train over"))
    assert spread["low"] < steady["low"] and spread["high"] > steady["high"]   # 5e12..2e13 around 1e13


def test_stencil_ranges_take_one_gpu_count_per_corner():
    # alice-recoque's count is a range; the energy and the FP64 fraction paired its two ends
    pinned = [_json("plan", "stencil", "-s", "alice-recoque", "-w", "climate-km", "--gpus", str(n))
              for n in (4106, 9068)]
    d = _json("plan", "stencil", "-s", "alice-recoque", "-w", "climate-km")
    frac = d["stencil"]["fraction_of_fp64_peak"]
    assert frac["high"] <= max(p["stencil"]["fraction_of_fp64_peak"]["high"] for p in pinned) * (1 + 1e-9)
    job = d["energy"]["per_job"]["energy_j"]
    assert job["high"] <= max(p["energy"]["per_job"]["energy_j"]["high"] for p in pinned) * (1 + 1e-9)
    assert job["low"] >= min(p["energy"]["per_job"]["energy_j"]["low"] for p in pinned) * (1 - 1e-9)


def test_energy_per_token_does_not_depend_on_an_uncertain_gpu_count():
    # campus-1gw (count 560k..1.12M) and telehouse-inference: the same H100 node, node power and PUE
    a = _row(_json("plan", "-s", "campus-1gw", "-w", "inference-fleet"), "inference", "energy per million output tokens")
    b = _row(_json("plan", "-s", "telehouse-inference", "-w", "inference-fleet"), "inference",
             "energy per million output tokens")
    # since stop 115 a site-bound system's GPU draws its share of the stated site (1 GW / the count, each end
    # paired), which is node power x PUE up to the rounding of the count (653,595 -> 654,000: 0.06%)
    assert (a["value"], a["low"], a["high"]) == pytest.approx((b["value"], b["low"], b["high"]), rel=1e-3)


def test_delivered_vs_peak_compares_per_gpu():
    # campus-1gw is H100s: per GPU its delivered ratio is the peak ratio, whatever GPUs the job leaves free
    d = _json("plan", "-s", "campus-1gw", "-w", "mistral-large-2-pretrain")
    assert "x1.00" in d["h100e"]["delivered_vs_peak"]


def _claim(d: dict, key: str) -> dict:
    return next(c for c in d["claims"] if c["claim"] == key)


def test_investment_line_states_its_condition_and_what_the_money_buys():
    c = _claim(_json("check"), "telehouse-400m-25000gpus")
    line = next(a for a in c["arithmetic"] if a.startswith("per GPU:"))
    assert line.endswith(c["condition"]) and c["condition"]
    assert any(a.startswith("it pays for the buildings of") for a in c["arithmetic"])


def test_green500_check_uses_one_efficiency():
    c = _claim(_json("check"), "adastra2-69gfw")
    per_gpu = c["implied"]["hpl_per_gpu_flop_s"]["value"]
    node_w = load_system("adastra2-mi300a").node_power_w
    model = c["implied"]["model_gflops_per_w"]["value"]
    assert per_gpu * 4 / node_w / 1e9 == pytest.approx(model, rel=1e-3)


def test_fleet_check_shows_the_preset_power_beside_the_generic_one():
    c = _claim(_json("check"), "telehouse-25000-inference")
    preset = c["implied"]["preset_facility_power_mw"]["value"]
    assert preset == pytest.approx(energy.facility_power(load_system("telehouse-inference")).value / 1e6)
    # one provisioned H100 figure for both since stop 114 (before: 31.5 MW generic against 38.25 MW preset)
    assert math.isclose(preset, c["implied"]["site_power_mw"]["value"], rel_tol=0.01)


def test_an_assumed_peak_is_named_where_no_peak_ratio_is_given():
    d = _json("plan", "hpl", "-s", "alice-recoque")
    bf16 = _row(d, "H100-equivalents", "H100e peak bf16")
    assert "ASSUMED" in bf16 and "not published" in bf16
