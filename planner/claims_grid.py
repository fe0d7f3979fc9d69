"""Site and grid claims: data-centre sites, loads, the French grid and its electricity price, held
against RTE's 2024 figures and the grid figures of the same brochure (seeds/systems.toml [grid.france]).
"""
from __future__ import annotations

import math

from typing import Any, Mapping

from recoque.planner import energy
from recoque.planner.claimkit import CONSISTENT, NOT, ONLY_IF, assumption, data, result, rng, source_of

HOURS = energy.HOURS_PER_YEAR


def _grid() -> tuple[energy.Grid, Mapping[str, float], Mapping[str, str]]:
    g = energy.load_grid()
    return g, g.extra, g.sources


def check_site_areas(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    n, total = float(c["value_sites"]), float(c["value_ha"])
    lo, hi = float(c["value_min_site_ha"]), float(c["value_max_site_ha"])
    mean = total / n
    lines = [f"{total:,.0f} ha / {n:.0f} sites = {mean:.1f} ha per site on average",
             f"the stated site range {lo:g}..{hi:g}+ ha allows {n * lo:,.0f} ha at least"]
    ok = n * lo <= total and lo <= mean <= hi
    lines.append(f"average inside the range ({lo:g} <= {mean:.1f} <= {hi:g}) and total >= {n:.0f} x {lo:g} ha: "
                 f"{'yes' if ok else 'no'}")
    return result(CONSISTENT if ok else NOT, "", "site areas", {"mean_ha_per_site": mean, "min_total_ha": n * lo}, lines)


def check_site_counts(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    n = float(c["value_sites"])
    now, later = float(c["value_available_now"]), float(c["value_available_2028"])
    subsets = [float(x) for x in c.get("value_subsets", [])]
    lines = [f"available now + by 2028 = {now:g} + {later:g} = {now + later:g} of {n:g} sites"]
    lines += [f"subset of {s:g} sites <= {n:g}: {'yes' if s <= n else 'no'}" for s in subsets]
    ok = now + later <= n and all(s <= n for s in subsets)
    return result(CONSISTENT if ok else NOT, "", "site counts", {"available_by_2028": now + later}, lines)


def _load_gw(c: Mapping[str, Any]) -> tuple[float, str]:
    if "value_gw" in c:
        return float(c["value_gw"]), f"{c['value_gw']:g} GW"
    gw = float(c["value_sites"]) * float(c["value_mw_per_site"]) / 1e3
    return gw, f"{c['value_sites']:g} sites x {c['value_mw_per_site']:g} MW = {gw:g} GW"


def check_grid_load(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    g, x, src = _grid()
    gw, what = _load_gw(c)
    twh = gw * HOURS / 1e3
    export, cap = x["net_export_twh"], x["installed_capacity_gw"]
    growth = x["production_2024_twh"] * x["production_growth_per_year"]
    lines = [f"{what} at full load = {gw:g} GW x 8,760 h = {twh:.1f} TWh per year",
             f"against the {export:g} TWh net export balance (2024): {twh / export:.0%}",
             f"against the {cap:g} GW installed: {gw / cap:.1%}",
             f"production growth {x['production_growth_per_year']:.0%} a year of {x['production_2024_twh']:g} TWh = "
             f"{growth:.1f} TWh a year: {twh / growth:.1f} years of growth"]
    implied = {"energy_twh_per_year": twh, "share_of_net_export": twh / export, "share_of_installed": gw / cap,
               "years_of_production_growth": twh / growth}
    verdict, cond = export_verdict(twh)
    return result(verdict, cond, "energy at full load against the export balance", implied, lines,
                  [src.get("net_export_twh", ""), src.get("production_2024_twh", "")])


def export_verdict(twh: float) -> tuple[str, str]:
    """A load's energy at full power against the net export balance, the one test of a grid load
    (sites, queue, a 1 GW campus): what France already exports covers it, or it needs growth or less
    than full load."""
    _, x, _ = _grid()
    export = x["net_export_twh"]
    if twh <= export:
        return CONSISTENT, ""
    growth = x["production_2024_twh"] * x["production_growth_per_year"]
    return ONLY_IF, (f"the sites never draw full power together, or production grows {twh - export:.0f} TWh "
                     f"beyond today's export balance ({(twh - export) / growth:.1f} years of the stated growth)")


def check_growth_cover(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    g, x, src = _grid()
    gw, year = float(c["value_gw"]), float(c["value_year"])
    need = gw * HOURS / 1e3
    years = max(year - 2024, 0)
    grown = x["production_2024_twh"] * ((1 + x["production_growth_per_year"]) ** years - 1)
    spare = x["net_export_twh"] + grown
    lines = [f"{gw:g} GW at full load = {need:.2f} TWh per year",
             f"production growth 2024-{year:.0f}: {x['production_2024_twh']:g} TWh x ((1 + {x['production_growth_per_year']:g})^{years:.0f} - 1) = {grown:.1f} TWh",
             f"spare energy by {year:.0f} = {x['net_export_twh']:g} TWh export balance + {grown:.1f} TWh = {spare:.1f} TWh: "
             f"the load takes {need / spare:.0%}"]
    verdict = CONSISTENT if need <= spare else NOT
    return result(verdict, "", "energy of the load against the export balance and growth",
                  {"energy_twh_per_year": need, "growth_twh": grown, "spare_twh": spare}, lines,
                  [src.get("production_2024_twh", ""), src.get("production_growth_per_year", "")])


def check_export_balance(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    g, x, src = _grid()
    stated = float(c["value_twh"])
    net = x["exports_2024_twh"] - x["imports_2024_twh"]
    lines = [f"RTE 2024: exports {x['exports_2024_twh']:g} TWh - imports {x['imports_2024_twh']:g} TWh = {net:.1f} TWh net",
             f"stated {stated:g} TWh: difference {net - stated:+.1f} TWh ({net / stated - 1:+.1%})"]
    ok = abs(net / stated - 1) <= 0.02
    return result(CONSISTENT if ok else NOT, "", "RTE 2024 exchange balance", {"net_export_twh": net}, lines,
                  [src.get("exports_2024_twh", "")])


def check_low_carbon_share(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    g, x, src = _grid()
    stated = float(c["value_share"])
    share = 1 - x["fossil_production_2024_twh"] / x["production_2024_twh"]
    lines = [f"low-carbon share = 1 - fossil {x['fossil_production_2024_twh']:g} TWh / {x['production_2024_twh']:g} TWh = {share:.1%}",
             f"stated 'already {stated:.0%}': {'at least' if share >= stated else 'below'} the stated share"]
    return result(CONSISTENT if share >= stated else NOT, "", "RTE 2024 production mix", {"low_carbon_share": share},
                  lines, [src.get("production_2024_twh", "")])


def check_carbon_intensity(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    g, x, src = _grid()
    stated, eu = float(c["value_gco2_per_kwh"]), float(c["value_eu_gco2_per_kwh"])
    from_rte = x["emissions_2024_mt_co2e"] * 1e12 / (x["production_2024_twh"] * 1e9)   # g / kWh
    fossil = x["emissions_2024_mt_co2e"] * 1e12 / (x["fossil_production_2024_twh"] * 1e9)
    band = assumption("gas_coal_direct_gco2_per_kwh")
    lines = [f"RTE 2024: {x['emissions_2024_mt_co2e']:g} Mt CO2e / {x['production_2024_twh']:g} TWh = {from_rte:.2f} g/kWh (stated {stated:g})",
             f"per fossil kWh: {x['emissions_2024_mt_co2e']:g} Mt / {x['fossil_production_2024_twh']:g} TWh = {fossil:.0f} g/kWh "
             f"(gas-coal direct emissions {rng(band)} g/kWh)",
             f"EU average / France = {eu:g} / {stated:g} = {eu / stated:.1f}x; per GWh at full load: "
             f"{(eu - stated):,.0f} t CO2e saved against the EU average"]
    e = data("eu_grid_intensity")
    eu_2022 = eu / (1 - float(e["eea_fall_2022_to_2023_fraction"]))
    lines.append(f"the EU figure is weighed, not tested: {eu:g} g in 2023 after the EEA's 19% fall means {eu_2022:.0f} g "
                 f"in 2022, against {float(e['sdes_iea_2021_gco2_per_kwh']):g} g in 2021 (SDES from IEA): high for a "
                 "direct-emissions figure, so likely another basis (life cycle, or consumption with imports)")
    ok = abs(from_rte / stated - 1) <= 0.05 and band.low <= fossil <= band.high and stated < eu
    # the ratio compares like with like only if the EU figure is direct emissions too: the 2022 figure it
    # implies must sit near the direct-emissions 2021 one (within the claims' tolerance)
    direct = float(e["sdes_iea_2021_gco2_per_kwh"])
    same_basis = abs(eu_2022 / direct - 1) <= assumption("tolerance").value
    implied = {"intensity_from_rte_g_per_kwh": from_rte, "fossil_intensity_g_per_kwh": fossil, "eu_over_france": eu / stated,
               "eu_2022_implied_g_per_kwh": eu_2022}
    verdict = NOT if not ok else CONSISTENT if same_basis else ONLY_IF
    cond = (f"the EU's {eu:g} g is on another basis than France's direct {stated:g} g (life cycle, or consumption with "
            f"imports): its implied 2022 {eu_2022:.0f} g is {eu_2022 / direct:.2f}x the direct-emissions {direct:g} g of 2021, "
            f"so the {eu / stated:.1f}x ratio mixes bases") if verdict == ONLY_IF else ""
    return result(verdict, cond, "RTE 2024 emissions over production", implied, lines,
                  [src.get("production_2024_twh", ""), str(data("eu_grid_intensity")["source"])] + source_of(band))


def check_installed_capacity(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    g, x, src = _grid()
    gw = float(c["value_gw"])
    mean_gw = x["production_2024_twh"] * 1e3 / HOURS
    lines = [f"average generation 2024 = {x['production_2024_twh']:g} TWh / 8,760 h = {mean_gw:.1f} GW",
             f"capacity factor implied = {mean_gw:.1f} / {gw:g} GW = {mean_gw / gw:.0%} (installed capacity must exceed the average output)",
             f"a 1 GW campus is {1 / gw:.2%} of it; the 5 GW queue {5 / gw:.1%}"]
    verdict = CONSISTENT if gw > mean_gw else NOT
    return result(verdict, "", "installed capacity against the 2024 average output",
                  {"mean_generation_gw": mean_gw, "capacity_factor": mean_gw / gw}, lines, [src.get("production_2024_twh", "")])


def check_availability(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    """The stated availability as minutes of outage a year, held against the outage time RTE measures
    on its own customers (TCE, record year to ten-year mean): a figure far above or below what the
    grid has ever delivered does not describe it. (The rare-long-outage half of the sentence cannot
    contradict any availability on its own: one outage may be of any length.)"""
    _, x, src = _grid()
    a = float(c["value_availability"])
    outage, years = float(c["value_outage_min"]), float(c["value_years_between_outages"])
    lo, hi = x["outage_min_per_year_low"], x["outage_min_per_year_high"]
    per_year = (1 - a) * HOURS * 60
    over = per_year * years
    ok = lo <= per_year <= hi
    lines = [f"unavailability ({1 - a:.4%}) x 8,760 h x 60 = {per_year:.2f} min per year",
             f"RTE's measured outage time (TCE, exceptional events excluded): {lo:g} (record year) .. {hi:g} "
             f"(ten-year mean) min per year -> {'inside' if ok else 'below' if per_year < lo else 'above'}",
             f"over {years:g} years: {over:.1f} min, room for {math.floor(over / outage):,.0f} outage(s) of {outage:g} min "
             f"every {years:g} years" if over >= outage else f"over {years:g} years: {over:.1f} min, less than one {outage:g}-min outage"]
    return result(CONSISTENT if ok else NOT, "", "availability as minutes of outage a year, against RTE's measured TCE",
                  {"outage_min_per_year": per_year}, lines, [src.get("outage_min_per_year", "")])


def check_electricity_price(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    g, x, src = _grid()
    full, paid = g.full_price, g.price
    tax, turpe = float(c["value_tax_rebate_eur_per_mwh"]), float(c["value_turpe_discount_eur_per_mwh"])
    reduced = g.reduced_excise(tax)
    eligible = g.eligible_price(tax, turpe)
    lines = [f"full price = {g.price_eur_per_mwh:g} supply + {rng(g.network_fee)} network fee + {rng(g.excise)} excise = {rng(full)} EUR/MWh",
             f"eligible site: - {tax:g} excise rebate (the reduced excise {g.excise.value:g} - {tax:g} = {reduced:g}) - {turpe:g} "
             f"network-fee discount = {rng(eligible)} EUR/MWh",
             f"the rebates come off the excise ({rng(g.excise)}) and the fee ({rng(g.network_fee)}), not off the {g.price_eur_per_mwh:g} supply price: "
             f"{g.price_eur_per_mwh - tax - turpe:g} EUR/MWh would be below any price a site pays",
             f"planning price (eligible, high = not eligible): {rng(paid)} EUR/MWh"]
    stated = float(c["value_eur_per_mwh"])
    fits = tax <= g.excise.low and turpe <= g.network_fee.low
    supply = g.supply_price   # the document states a supply price: held against the cost of existing nuclear
    as_supply = supply.low <= stated <= supply.high
    all_in = eligible.low <= stated <= full.high   # what a site pays, fees and taxes in: the other reading
    lines.append(f"stated {stated:g} EUR/MWh as the supply price: " + (
        f"within the cost of existing nuclear ({supply.low:g}..{supply.high:g} EUR/MWh)" if as_supply else
        f"outside the cost of existing nuclear ({supply.low:g}..{supply.high:g} EUR/MWh)") + (
        f"; within the all-in range ({eligible.low:.0f}..{full.high:.0f})" if all_in else ""))
    verdict = NOT if not fits else CONSISTENT if as_supply else ONLY_IF if all_in else NOT
    cond = (f"{stated:g} EUR/MWh is read as the all-in price (fees and taxes in), not the supply price the document "
            f"names") if verdict == ONLY_IF else ""
    return result(verdict, cond, "full electricity price (supply + network + taxes)",
                  {"full_price_eur_per_mwh": full, "price_paid_eur_per_mwh": paid}, lines,
                  [src.get("excise_eur_per_mwh", ""), src.get("network_fee_eur_per_mwh", ""), src.get("price_eur_per_mwh", "")])
