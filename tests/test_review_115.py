"""Stop 115: the claims review's remaining checks that could not fail, and seeded ranges read as stated."""

import pytest

from recoque.errors import BadInput
from recoque.planner import claimkit, claims, energy


def _claim(key: str, **changes):
    c = dict(claims._seed()["claims"][key])
    c.update(changes)
    return claims.run_claim(key, claim=c)


def test_a_phase_claim_must_state_the_phase_size():
    c = dict(claims._seed()["claims"]["sesterce-400m-600mw"])
    del c["phase_gpus"]
    with pytest.raises(BadInput, match="phase_gpus"):
        claims.run_claim("sesterce-400m-600mw", claim=c)


def test_the_phase_is_held_against_its_own_buildings():
    r = claims.run_claim("sesterce-400m-600mw")
    b = claimkit.building_eur_per_gpu(700).scale(40000)
    assert r.implied["phase_buildings_eur"].value == pytest.approx(b.value)
    assert b.low <= 0.4e9 < b.value   # the EUR 400 M pays for 40,000 GPUs' buildings at the cheap end only
    assert _claim("sesterce-400m-600mw", value_beur=b.low / 1e9 * 0.99).verdict == claims.NOT


def test_the_inference_fleet_is_held_against_the_spaces_its_investment_builds():
    r = claims.run_claim("telehouse-25000-inference")
    need = r.implied["buildings_eur"]
    assert need.value == pytest.approx(claimkit.building_eur_per_gpu(700).value * 25000)
    assert need.value <= 400e6
    # the boundary: the count whose buildings at the cheap end cost the stated 400 MEUR
    edge = 400e6 / claimkit.building_eur_per_gpu(700).low
    assert _claim("telehouse-25000-inference", value_gpus=int(edge * 0.99)).verdict == claims.ONLY_IF
    assert _claim("telehouse-25000-inference", value_gpus=int(edge * 1.01)).verdict == claims.NOT


def test_the_electricity_price_is_held_against_the_cost_of_existing_nuclear():
    s = energy.load_grid().supply_price
    assert (s.low, s.high) == (60.3, 75.9)
    assert _claim("electricity-70eur", value_eur_per_mwh=s.low - 0.1).verdict == claims.NOT
    assert _claim("electricity-70eur", value_eur_per_mwh=s.high).verdict == claims.CONSISTENT


@pytest.mark.parametrize("lo,v,hi", [(1.3, 1.2, 1.1), (1.1, 1.5, 1.3), (float("nan"), 1.2, 1.3)])
def test_seeded_assumption_bounds_are_checked_not_reordered(monkeypatch, lo, v, hi):
    seed = claimkit.seed()
    a = {**seed["assumptions"], "site_pue": v, "site_pue_low": lo, "site_pue_high": hi}
    monkeypatch.setattr(claimkit, "seed", lambda: {**seed, "assumptions": a})
    with pytest.raises(BadInput, match="site_pue"):
        claimkit.assumption("site_pue")


def test_seeded_grid_bounds_are_checked(monkeypatch):
    real = energy.read_seed_toml

    def fake(name):
        d = real(name)
        if name == "systems.toml":
            fr = {**d["grid"]["france"], "price_eur_per_mwh_low": 80.0}
            d = {**d, "grid": {**d["grid"], "france": fr}}
        return d
    monkeypatch.setattr(energy, "read_seed_toml", fake)
    with pytest.raises(BadInput, match="price_eur_per_mwh"):
        energy.load_grid()


def test_part_of_a_site_bound_system_draws_its_share_of_the_site():
    from recoque.estimate import Estimate
    from recoque.planner.system import load_system

    s = load_system("campus-1gw")
    n = s.estimate("gpus", "gpu")
    whole = energy.facility_power(s)
    assert (whole.low, whole.value, whole.high) == pytest.approx((1e9, 1e9, 1e9))
    # 8 GPUs fewer, with the count's range: about the whole site at every end (before: 0.5..2 GW)
    part = energy.facility_power(s, Estimate(n.value - 8, n.low - 8, n.high - 8, "gpu"))
    assert 0.9999e9 < part.low <= part.value <= part.high <= 1e9
    # an exact count never draws more than the site, whatever end of the count is true
    exact = energy.facility_power(s, Estimate.exact(n.value, "gpu"))
    assert exact.high == pytest.approx(1e9) and exact.low == pytest.approx(1e9 * n.value / n.high)


def test_a_stated_site_power_is_shown_beside_the_modelled_one():
    from recoque.planner import capacity
    from recoque.planner.system import load_system

    rows, data, _ = capacity._energy_rows(load_system("evroc-mougins"), "hpl", None)
    assert data["stated_site_power_w"].value == 96e6
    names = [r[0] for r in rows]
    assert names.index("site power as stated") == names.index("facility power (IT x PUE)") + 1


def test_acceptance_of_a_node_file_judges_every_rank():
    # a torchrun node file keeps each rank's GEMM/STREAM records under rank 0's device; acceptance took the fastest
    # rank's figure for all (review 115: a slow rank 1 alone FAILED, the merged file PASSED)
    from pathlib import Path

    from recoque.bench import accept as A, distributed as D
    from recoque.bench.schema import load_results

    fx = Path(__file__).parent / "fixtures"
    good, slow = load_results(fx / "accept_mi300x_gpu0.json"), load_results(fx / "accept_mi300x_gpu3_fail.json")
    assert A.evaluate([good]).passed and not A.evaluate([slow]).passed
    topo = {"world_size": 2, "nodes": 1, "hosts": ["n1"], "backend": "nccl", "launcher": "torchrun",
            "ranks": [{"rank": 0, "host": "n1", "local_rank": 0, "node_rank": 0},
                      {"rank": 1, "host": "n1", "local_rank": 1, "node_rank": 0}]}
    node = D.merge([good, slow], topo)
    split = A.per_rank_documents(node)
    assert len(split) == 2 and len({A.gpu_label(d) for d in split}) == 2
    assert not A.evaluate([node]).passed


def test_min_effect_is_symmetric():
    # review 115: |ratio - 1| made a 2x slowdown a 50% change, so --min-effect 1 hid every slowdown
    from recoque.bench.compare import is_effect

    assert is_effect(0.5, 1.0) and is_effect(2.0, 1.0)
    assert not is_effect(0.6, 1.0) and not is_effect(1.6, 1.0)
    assert is_effect(1 / 1.3, 0.3) and not is_effect(0.8, 0.3)


def _results_json():
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "fixtures" / "compare_a.json").read_text())


@pytest.mark.parametrize("tag", ["confirm_round:x/3", "other_cpu_cores:abc", "sdpa_backend_median_s:flash"])
def test_a_malformed_value_tag_is_refused_where_the_file_enters(tmp_path, tag):
    # before: accepted on load, then `bench accept` and `report` stopped with a ValueError traceback
    import json

    from recoque.bench.schema import load_results

    d = _results_json()
    d["results"][0]["tags"] = [*d["results"][0].get("tags", []), tag]
    p = tmp_path / "r.json"
    p.write_text(json.dumps(d))
    with pytest.raises(BadInput, match="tag"):
        load_results(str(p))


def test_an_integer_beyond_any_float_is_refused_in_one_line(tmp_path):
    # before: OverflowError traceback in compare, accept and report
    import json

    from recoque.bench.schema import load_results

    d = _results_json()
    d["results"][0]["params"]["repeat"] = 10**400
    p = tmp_path / "r.json"
    p.write_text(json.dumps(d))
    with pytest.raises(BadInput):
        load_results(str(p))


def test_another_gpu_of_the_same_machine_is_not_appended():
    # review 115: GPU 0's file took GPU 1's run under --append and relabelled every record as cuda:1
    from pathlib import Path

    from recoque.bench.schema import check_same_machine, load_results

    old = load_results(str(Path(__file__).parent / "fixtures" / "accept_mi300x_gpu0.json"))
    fp = old.environment.get("fingerprint")
    check_same_machine(old, fp, "gpu0.json", None, dict(old.device))   # the same GPU: fine
    with pytest.raises(BadInput, match="cuda:1"):
        check_same_machine(old, fp, "gpu0.json", None, {**old.device, "torch_device": "cuda:1"})


def test_pins_bind_the_h100_side_of_the_training_ratio():
    # review 115: --tp 8 --pp 1 moved H100e 2,973 -> 1,224 while the H100 side was still searched freely
    import json

    from typer.testing import CliRunner

    from recoque.cli import app

    args = ["plan", "train", "-s", "alice-recoque", "-w", "mistral-large-2", "--gpus", "1024", "--json"]
    pinned = CliRunner().invoke(app, [*args, "--tp", "8", "--pp", "4"])
    assert pinned.exit_code == 0, pinned.output
    assert "same search with the same pins" in json.dumps(json.loads(pinned.output))
    free = CliRunner().invoke(app, args)
    assert "same pins" not in json.dumps(json.loads(free.output))
