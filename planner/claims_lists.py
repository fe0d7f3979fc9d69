"""Ranking and programme claims: TOP500/Green500 places against the lists current at the document's
date, European exascale order, and EU programme budgets against the contracts listed since.
"""
from __future__ import annotations

from typing import Any, Mapping

from recoque.catalog import get_device_spec
from recoque.planner.claimkit import CONSISTENT, NOT, ONLY_IF, assumption, data, result, rng, source_of
from recoque.planner.system import load_system
from recoque.planner.top500 import load_entries

EUROPE = ("jupiter", "lumi-g", "alps", "hpc6", "leonardo", "marenostrum5-acc", "isambard-ai", "alice-recoque")


def check_national_rank(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    stated = float(c["value_pflops"])
    d = data("france_top500_2024_11")
    others = list(zip(d["names"], [float(x) for x in d["rpeak_pflops"]]))
    lines = [f"Jean Zay cumulative FP64 peak {stated:g} PFLOP/s (all partitions; no HPL run of its H100 partition "
             "on the Nov 2024 list, the one current at the document's date)"]
    lines += [f"{n}: Rpeak {r:g} PFLOP/s on the TOP500 list of Nov 2024 -> Jean Zay {stated / r:.1f}x" for n, r in others]
    later = _first_hpl("jean-zay-h100")
    if later is not None:
        rival = next((e for e in load_entries().values() if e.machine == "adastra" and e.list_date == later.list_date), None)
        lines.append(f"later, on HPL: the H100 partition's first TOP500 run ({later.list_date}, {later.gpus_in_run:,.0f} GPUs) "
                     f"Rmax {later.rmax_flop_s / 1e15:g} PFLOP/s" + (
                         f" against Adastra's {rival.rmax_flop_s / 1e15:g} on the same list -> "
                         f"{later.rmax_flop_s / rival.rmax_flop_s:.2f}x" if rival else ""))
    # TOP500's Rpeak counts each part at the rate its HPL uses: H100 at its FP64 tensor rate (as the
    # stated 125.9 PF does), MI250X at its vector rate; shown beside it, one basis for both.
    ada = load_system("adastra-mi250x")
    spec = get_device_spec(ada.device)
    per_gpu_tf = spec.peak("fp64_matrix") / 1e12
    matrix = ada.gpus * per_gpu_tf / 1e3
    lines.append(f"on one basis for both (FP64 matrix rate): Adastra's GPUs alone {ada.gpus:,.0f} x {per_gpu_tf:g} TF "
                 f"= {matrix:.1f} PFLOP/s -> Jean Zay {stated / matrix:.2f}x" + (
                     ": the lead holds on TOP500's per-part basis only" if stated < matrix else ""))
    above = [n for n, r in others if r >= stated]
    if above:
        return result(NOT, "", "FP64 peak against the French machines listed", {"larger": above}, lines, [str(d["source"])])
    return result(ONLY_IF, "'most powerful' means FP64 peak on TOP500's basis (each part at the rate its HPL uses; at "
                  f"MI250X's matrix rate Adastra's GPUs reach {matrix:.0f} PFLOP/s): the list of the document's date has no HPL run of "
                  "the H100 partition to check it on (the later one is above Adastra's)" if later is not None and rival
                  and later.rmax_flop_s > rival.rmax_flop_s else
                  f"'most powerful' means FP64 peak on TOP500's basis (at MI250X's matrix rate Adastra's GPUs reach {matrix:.0f} "
                  "PFLOP/s): on HPL (TOP500 Rmax) the claim cannot be checked",
                  "FP64 peak against the French machines listed", {"ratio_to_next": stated / max(r for _, r in others)},
                  lines, [str(d["source"])])


def _first_hpl(machine: str) -> Any:
    runs = [e for e in load_entries().values() if e.machine == machine]
    return min(runs, key=lambda e: e.list_date) if runs else None


def check_green500_rank(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    rank, gfw = int(c["value_rank"]), float(c["value_gflops_per_w"])
    d = data("green500_2024_11")
    listed = list(zip(d["names"], [float(x) for x in d["gflops_per_w"]]))
    above = [n for n, v in listed if v > gfw]
    implied_rank = len(above) + 1
    lines = ["Green500 of Nov 2024 (current at the brochure's date): " + ", ".join(f"{n} {v:g}" for n, v in listed),
             f"systems above {gfw:g} GFLOP/s/W: {len(above)} -> rank {implied_rank} (stated {rank})"]
    verdict = CONSISTENT if implied_rank == rank else NOT
    return result(verdict, "", "Green500 list of the document's date", {"implied_rank": implied_rank}, lines, [str(d["source"])])


def check_exascale_order(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    rank = int(c["value_rank"])
    exa = sorted({(e.list_date, e.machine) for e in load_entries().values()
                  if e.machine in EUROPE and e.rmax_flop_s >= 1e18})
    first = {}
    for date, m in exa:
        first.setdefault(m, date)
    order = sorted(first.items(), key=lambda kv: kv[1])
    lines = ["European machines with a TOP500 Rmax >= 1 EFLOP/s: " +
             (", ".join(f"{m} ({d})" for m, d in order) or "none"),
             f"Alice Recoque (>= 1 EFLOP/s HPL target, in service 2026-2027) would come after them: number {len(order) + 1}"]
    verdict = CONSISTENT if len(order) + 1 == rank else NOT
    return result(verdict, "", "European exascale machines on the TOP500 lists",
                  {"european_exascale_before": [m for m, _ in order]}, lines,
                  [e.sources.get("rmax_pflops", "") for e in load_entries().values() if e.machine in first])


def check_programme_budget(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    budget, sites = float(c["value_beur"]) * 1e3, int(c["value_sites"])
    d = data("ai_factories_2024_12")
    names, amounts = list(d["names"]), [float(x) for x in d["contract_meur"]]
    known = sum(amounts)
    lines = [f"{budget:,.0f} MEUR / {sites} sites = {budget / sites:,.0f} MEUR per site",
             f"sites listed: {len(names)}; contracts signed since: " +
             ", ".join(f"{n} {a:g}" for n, a in zip(names, amounts) if a) + f" = {known:,.1f} MEUR",
             f"left for the sites without a published amount: {budget - known:,.1f} MEUR"]
    ok = len(names) == sites and known <= budget
    return result(CONSISTENT if ok else NOT, "", "contracts signed for the listed sites",
                  {"meur_per_site": budget / sites, "contracts_meur": known}, lines, [str(d["source"])])


def check_capacity_doubling(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    factor, budget_meur = float(c["value_factor"]), float(c["value_beur"]) * 1e3
    h = data("eurohpc_hpl_2024_11")
    base = sum(float(x) for x in h["rmax_pflops"]) + float(h.get("smaller_systems_pflops", 0))
    x = data("exascale_contracts")
    per_ef = [float(v) for v in x["meur_per_eflops"]]
    buys = [budget_meur / p * 1e3 for p in per_ef]   # PFLOP/s of HPL at exascale-contract prices
    need = base * (factor - 1)
    lines = [f"EuroHPC HPL before: {' + '.join(str(v) for v in h['rmax_pflops'])} + ~{h.get('smaller_systems_pflops', 0)} = {base:,.0f} PFLOP/s",
             f"doubling adds {need:,.0f} PFLOP/s",
             f"{budget_meur:,.0f} MEUR at {min(per_ef):g}-{max(per_ef):g} MEUR per EFLOP/s (Alice Recoque, JUPITER) buys "
             f"{min(buys):,.0f}-{max(buys):,.0f} PFLOP/s of HPL"]
    implied = {"base_pflops": base, "needed_pflops": need, "buys_pflops_low": min(buys), "buys_pflops_high": max(buys)}
    if min(buys) >= need:
        return result(ONLY_IF, "capacity is counted in FP64 HPL and the factories buy at exascale-contract prices",
                      "FP64 HPL bought per EUR", implied, lines, [str(h["source"]), str(x["source"])])
    return result(NOT, "", "FP64 HPL bought per EUR", implied, lines, [str(h["source"]), str(x["source"])])


def check_hosting_power(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    mw = float(c["value_mw"])
    like = str(c.get("host_like", "el-capitan"))
    runs = [e for e in load_entries().values() if e.machine == like and e.power_w]
    big = max(runs, key=lambda e: e.power_w)
    pue = assumption("site_pue")
    # the site's power is at the meter; a TOP500 power is the machine's own: the site also cools it
    n = pue.map(lambda p: mw * 1e6 / (big.power_w * p), "machines")
    lines = [f"{big.label}: {big.rmax_flop_s / 1e18:.3f} EFLOP/s HPL at {big.power_w / 1e6:.1f} MW (its own power, as TOP500 lists it)",
             f"at the meter with PUE {rng(pue)}: {rng(pue.map(lambda p: big.power_w * p / 1e6, 'MW'))} MW",
             f"{mw:g} MW / that = {rng(n)} machines of that class"]
    verdict = CONSISTENT if n.value >= 1 else NOT
    return result(verdict, "", "site power against the largest HPC machine's power at the meter",
                  {"machines_of_that_class": n}, lines,
                  [big.sources.get("power_kw", "") or big.sources.get("rmax_pflops", "")] + source_of(pue))
