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
