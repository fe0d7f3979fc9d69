"""Investment claims: a stated amount per MW or per GPU held against what it has to buy.

    buildings per MW      = construction cost per MW of critical load (Cushman & Wakefield 2025) / USD per EUR / PUE
                            (the MW stated are site power or grid connections, the cost guide prices IT load)
    GPUs per MW           = 1e6 W / (GPU TDP x node overhead x PUE)          (H100 SXM stands in: not stated)
    all-in per MW         = buildings per MW + GPUs per MW x (GPU + server + network) per GPU
The verdict uses the central values; the ranges are printed. An amount at or above the all-in cost buys
buildings and GPUs; one between the two buys the buildings and power only (GPUs bought by tenants);
one below the buildings covers a first phase only when the claim says so and the amount pays at least for the
buildings of that phase, whose size (`phase_gpus`) is sourced in the claim (`phase_source`); else it does not add up.
"""
from __future__ import annotations

from typing import Any, Mapping

from recoque.catalog import get_device_spec
from recoque.errors import BadInput
from recoque.estimate import Estimate
from recoque.planner.claimkit import (CONSISTENT, NOT, ONLY_IF, all_in_eur_per_gpu, all_in_eur_per_mw, assumption,
                                      building_eur_per_gpu, building_eur_per_mw, gpu_it_eur, per_gpu_site_power_w,
                                      result, rng, source_of)

STAND_IN = "h100_sxm"


def _amount_eur(c: Mapping[str, Any]) -> float:
    return float(c["value_beur"]) * 1e9


def _classify(amount: float, build: float, all_in: float, tol: float, phase: str | None,
              build_low: float | None = None) -> tuple[str, str]:
    if amount >= all_in / (1 + tol):
        return CONSISTENT, ""
    if amount >= build / (1 + tol):
        return ONLY_IF, "it pays for the buildings and power, and the GPUs are bought separately (tenants or a later phase)"
    # inside the construction-cost range, below its centre: a cheap build, not a wrong figure
    if build_low is not None and amount >= build_low:
        return ONLY_IF, ("the buildings cost near the low end of the construction range (the cheapest US markets of the "
                         "cost guide) and the GPUs are bought separately")
    if phase:  # stated, and its own buildings paid for (_phase_covered)
        return ONLY_IF, f"it is the {phase} only: the stated capacity needs more money"
    return NOT, ""


def _worst(a: str, b: str) -> str:
    order = {CONSISTENT: 0, ONLY_IF: 1, NOT: 2}
    return a if order[a] >= order[b] else b


def _judged(label: str, per: float, build: Estimate, all_in: Estimate, tol: float, phase: Any,
            verdicts: list, conds: list, lines: list) -> str:
    """Classify one per-unit amount against the buildings and the all-in cost; record and say it."""
    v, cond = _classify(per, build.value, all_in.value, tol, phase, build.low)
    verdicts.append(v)
    conds.append(cond)
    lines.append(f"{label}: {per / build.value:.2f}x the buildings, {per / all_in.value:.2f}x buildings + GPUs -> {v}"
                 + (f" {cond}" if cond else ""))
    return v


def _phase_covered(c: Mapping[str, Any], amount: float, tdp: float, lines: list, implied: dict) -> bool:
    """A first phase of stated size: the amount must pay at least for its buildings (the cheap end of the range).
    Without a sourced size any amount would pass as "a first phase", so a phase claim must state one."""
    if not c.get("phase"):
        return False
    if not c.get("phase_gpus") or not c.get("phase_source"):
        raise BadInput("claims.toml: a claim with `phase` must state the phase's size as phase_gpus and its phase_source",
                       "add phase_gpus (GPUs of the first phase) with the announcement that gives it")
    n = float(c["phase_gpus"])
    b_g = building_eur_per_gpu(tdp)
    implied["phase_buildings_eur"] = b_g.scale(n, "EUR")
    ok = amount >= b_g.low * n
    lines.append(f"{c['phase']}: {n:,.0f} GPUs ({c['phase_source']}); their buildings {rng(b_g.scale(n), 1e6, 'EUR')}: "
                 f"{amount / 1e6:,.0f} MEUR is {amount / (b_g.value * n):.2f}x the centre, "
                 + ("at or above the cheap end" if ok else "below even the cheap end"))
    return ok


def check_investment(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    amount, tol = _amount_eur(c), assumption("tolerance").value
    tdp = get_device_spec(STAND_IN).tdp_w
    lines, implied, verdicts, conds = [], {}, [], []
    phase = c.get("phase") if _phase_covered(c, amount, tdp, lines, implied) else None
    b_mw, a_mw = building_eur_per_mw(), all_in_eur_per_mw(tdp)
    if "value_mw" in c:
        mw = float(c["value_mw"])
        per_mw = amount / mw
        implied.update(eur_per_mw=per_mw, buildings_eur_per_mw=b_mw, all_in_eur_per_mw=a_mw)
        lines += [f"{amount / 1e9:g} bn EUR / {mw:,.0f} MW = {per_mw / 1e6:.2f} MEUR per MW",
                  f"buildings: {rng(b_mw, 1e6, 'EUR')} per MW of site power = {rng(assumption('building_usd_per_mw'), 1e6, 'USD')} "
                  f"per MW of critical IT load / {rng(assumption('usd_per_eur'))} USD per EUR / PUE {rng(assumption('site_pue'))}; "
                  f"buildings + {STAND_IN} GPUs with servers and network: {rng(a_mw, 1e6, 'EUR')} per MW"]
        v = _judged("per MW", per_mw, b_mw, a_mw, tol, phase, verdicts, conds, lines)
        if v != CONSISTENT:
            implied["mw_of_buildings_it_pays"] = amount / b_mw.value
            implied["mw_all_in_it_pays"] = amount / a_mw.value
            lines.append(f"it pays for {amount / b_mw.value:,.0f} MW of buildings, or {amount / a_mw.value:,.0f} MW "
                         f"with GPUs; {mw:,.0f} MW all-in needs {rng(a_mw.scale(mw), 1e9, 'EUR')}")
    if "value_gpus" in c:
        n = float(c["value_gpus"])
        per_gpu = amount / n
        b_g, a_g = building_eur_per_gpu(tdp), all_in_eur_per_gpu(tdp)
        implied.update(eur_per_gpu=per_gpu, buildings_eur_per_gpu=b_g, all_in_eur_per_gpu=a_g)
        lines += [f"{amount / 1e9:g} bn EUR / {n:,.0f} GPUs = {per_gpu:,.0f} EUR per GPU",
                  f"site power per GPU {rng(per_gpu_site_power_w(tdp).scale(1e-3))} kW; buildings per GPU "
                  f"{rng(b_g, 1e3, 'EUR')}; GPU + server + network {rng(gpu_it_eur(), 1e3, 'EUR')}; all-in {rng(a_g, 1e3, 'EUR')}"]
        v = _judged("per GPU", per_gpu, b_g, a_g, tol, phase, verdicts, conds, lines)
        if v != CONSISTENT:
            implied["gpus_of_buildings_it_pays"] = amount / b_g.value
            implied["gpus_all_in_it_pays"] = amount / a_g.value
            lines.append(f"it pays for the buildings of {amount / b_g.value:,.0f} GPUs, or {amount / a_g.value:,.0f} GPUs "
                         f"all-in; {n:,.0f} GPUs all-in need {rng(a_g.scale(n), 1e9, 'EUR')}")
    verdict = verdicts[0]
    for v in verdicts[1:]:
        verdict = _worst(verdict, v)
    cond = "; ".join(dict.fromkeys(x for x, v in zip(conds, verdicts) if x and v == verdict))
    sources = source_of(assumption("building_usd_per_mw")) + source_of(assumption("gpu_it_usd_per_gpu")) + \
        source_of(assumption("node_overhead_factor")) + source_of(assumption("site_pue"))
    return result(verdict, cond, "cost of buildings and GPUs per MW / per GPU", implied, lines, sources)


def check_investment_total(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    stated = _amount_eur(c)
    names, low, high = list(c["names"]), [float(x) for x in c["amounts_beur"]], [float(x) for x in c["larger_reading_beur"]]
    s_low, s_high = sum(low) * 1e9, sum(high) * 1e9
    lines = [" + ".join(f"{n} {v:g}" for n, v in zip(names, low)) + f" = {s_low / 1e9:.2f} bn EUR (new money as stated)",
             "larger reading: " + ", ".join(f"{n} {a:g} -> {b:g}" for n, a, b in zip(names, low, high) if a != b) +
             f" = {s_high / 1e9:.2f} bn EUR"]
    implied = {"sum_listed_eur": s_low, "sum_larger_reading_eur": s_high}
    if s_low > stated:
        return result(CONSISTENT, "", "sum of the listed announcements", implied, lines)
    if s_high > stated:
        diff = [n for n, a, b in zip(names, low, high) if a != b]
        return result(ONLY_IF, f"{' and '.join(diff)} count at their larger, earlier-announced figures",
                      "sum of the listed announcements", implied, lines)
    return result(NOT, "", "sum of the listed announcements", implied, lines)


def check_gpu_fleet_budget(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    n, budget = float(c["value_gpus"]), _amount_eur(c)
    tdp = get_device_spec(STAND_IN).tdp_w
    cost = all_in_eur_per_gpu(tdp).scale(n, "EUR")
    power = per_gpu_site_power_w(tdp).scale(n / 1e6, "MW")
    lines = [f"{n:,.0f} GPUs x all-in {rng(all_in_eur_per_gpu(tdp), 1e3, 'EUR')} = {rng(cost, 1e6, 'EUR')}",
             f"share of the {budget / 1e9:g} bn EUR plan: {cost.value / budget:.1%} ({100 * cost.low / budget:.1f}..{cost.high / budget:.1%})",
             f"site power for them: {rng(power)} MW"]
    implied = {"fleet_cost_eur": cost, "share_of_budget": cost.value / budget, "site_power_mw": power}
    verdict = CONSISTENT if cost.value <= budget else NOT
    return result(verdict, "", "cost of the fleet against the stated plan", implied, lines,
                  source_of(assumption("gpu_it_usd_per_gpu")) + source_of(assumption("building_usd_per_mw")))
