"""Electricity: the 70 EUR/MWh is a supply price; the rebates come off the excise and the network fee."""

import pytest

from recoque.errors import BadInput
from recoque.estimate import Estimate
from recoque.planner import energy


def test_full_price_is_supply_plus_network_plus_excise():
    g = energy.load_grid()
    assert g.full_price.value == pytest.approx(70 + 10 + 22.5)
    assert g.full_price.low == pytest.approx(70 + 5.7 + 20.9)
    assert g.full_price.high == pytest.approx(70 + 15 + 22.5)


def test_rebates_apply_to_the_full_price_not_the_supply_price():
    g = energy.load_grid()
    assert g.rebates_eur_per_mwh == pytest.approx(10.5 + 5.7)
    assert g.price.value == pytest.approx(102.5 - 16.2)          # eligible site, central
    assert g.price.low == pytest.approx(70 + 5.7 - 5.7 + 12.0)   # eligible site, lowest fee, the reduced excise 12
    assert g.price.high == pytest.approx(107.5)                  # a site that is not eligible
    assert g.price.low > 70 - 16.2                               # never the old 53.8 floor
    # the excise rebate is the data-centre rate: 22.5 - 12 EUR/MWh
    assert g.excise.high - g.tax_rebate_eur_per_mwh == pytest.approx(12.0)


def test_a_rebate_larger_than_its_charge_is_refused(monkeypatch):
    from recoque.planner import energy as en

    real = en.read_seed_toml

    def fake(name):
        d = real(name)
        if name == "systems.toml":
            d = {**d, "grid": {"france": {**d["grid"]["france"], "turpe_discount_eur_per_mwh": 20.0}}}
        return d
    monkeypatch.setattr(en, "read_seed_toml", fake)
    with pytest.raises(BadInput, match="rebate exceeds"):
        en.load_grid()


def test_cost_of_one_mwh_at_the_planning_price():
    r = energy.energy_report(Estimate.exact(1e6, "W"), Estimate.exact(3600, "s"), "1 MWh")
    assert r.cost.value == pytest.approx(86.3) and r.cost.high == pytest.approx(107.5)


def test_electricity_claim_shows_the_arithmetic():
    from recoque.planner import claims

    r = claims.run_claim("electricity-70eur")
    assert r.verdict == claims.ONLY_IF and "supply price alone" in r.condition
    assert any("102.5" in line for line in r.arithmetic)
    assert r.implied["price_paid_eur_per_mwh"].value == pytest.approx(86.3)
