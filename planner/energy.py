"""Energy, electricity cost and CO2 at the system's power and PUE, on the grid of the system's site.

    IT power        = nodes x node power            (or the stated site power / PUE)
    facility power  = IT power x PUE                 (or the stated site power)
    energy          = facility power x time
    cost            = energy x price. France (the default grid): the full price is supply (about 70
                      EUR/MWh, taxes and network fees excluded) + the network fee (TURPE) + the
                      electricity excise; an eligible large site then gets 10.5 EUR/MWh off the excise
                      and 5.7 EUR/MWh off the network fee (central and low: an eligible site; high: a
                      site that is not). Other grids state an all-in price for a large industrial
                      consumer (VAT excluded), with its range.
    CO2             = energy x the grid's average intensity (location-based; France 2024: 21.3 g/kWh),
                      shown against the average of the grid's region (EU 292 g/kWh; a US grid: the
                      US average, EIA 2022, 390 g/kWh)
Grid figures live in seeds/systems.toml [grid.<name>], each with its source; a system names its grid
with `grid = "<name>"` (France where it names none: the documents' country).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from recoque.errors import BadInput
from recoque.estimate import Estimate, check_bounds, combine
from recoque.fileio import read_seed_toml
from recoque.planner import power
from recoque.planner.system import DEFAULT_GRID, SystemSpec

HOURS_PER_YEAR = 8760.0
J_PER_MWH = 3.6e9
J_PER_KWH = 3.6e6


@dataclass(frozen=True)
class Grid:
    price_eur_per_mwh: float             # supply price (France: taxes and network fees excluded; else all-in)
    tax_rebate_eur_per_mwh: float        # off the excise, eligible large data centres
    turpe_discount_eur_per_mwh: float    # off the network fee, high-voltage baseload sites
    gco2e_per_kwh: float
    eu_average_gco2e_per_kwh: float
    network_fee: Estimate                # EUR/MWh
    excise: Estimate                     # EUR/MWh
    sources: Mapping[str, str]
    extra: Mapping[str, float] = field(default_factory=dict)
    key: str = DEFAULT_GRID
    place: str = "France"
    supply: Estimate | None = None       # price_eur_per_mwh with its range (EUR/MWh)
    gco2e: Estimate | None = None        # gco2e_per_kwh with its range (g/kWh)
    intensity_year: str = "2024"
    notes: tuple[str, ...] = ()          # what a site states of its own supply (market-based), beside the average (grid_for)
    region: str = "EU"                   # the region whose average intensity the grid is shown against
    region_average_gco2e_per_kwh: float | None = None  # None: the EU average (eu_average_gco2e_per_kwh)

    @property
    def region_average(self) -> float:
        """The average intensity of the grid's region (g/kWh): the EU's for a European grid."""
        r = self.region_average_gco2e_per_kwh
        return self.eu_average_gco2e_per_kwh if r is None else r

    def to_json(self) -> dict[str, Any]:
        """What a plan's JSON says of the grid it priced and counted on (the table's grid rows)."""
        return {"key": self.key, "place": self.place, "region": self.region,
                "electricity_price_eur_per_mwh": self.price, "gco2e_per_kwh": self.intensity.scale(1.0, "gCO2e/kWh"),
                "intensity_year": self.intensity_year, "region_average_gco2e_per_kwh": self.region_average}

    @property
    def supply_price(self) -> Estimate:
        return self.supply or Estimate.exact(self.price_eur_per_mwh, "EUR/MWh")

    @property
    def full_price(self) -> Estimate:
        """Supply + network fee + excise, before any incentive (EUR/MWh)."""
        return combine(lambda p, n, x: p + n + x, self.supply_price, self.network_fee, self.excise, unit="EUR/MWh")

    @property
    def intensity(self) -> Estimate:
        return self.gco2e or Estimate.exact(self.gco2e_per_kwh, "g/kWh")

    @property
    def all_in(self) -> bool:
        """The grid states one all-in price (no separate network fee or excise to take rebates off)."""
        return not (self.network_fee.high or self.excise.high)

    def reduced_excise(self, tax_rebate: float) -> float:
        """The excise an eligible site pays (EUR/MWh): a reduced rate of its own (12 = the normal 22.5
        less the 10.5 rebate, in the excise source), taken off the normal rate's central value."""
        return self.excise.value - tax_rebate

    def eligible_price(self, tax_rebate: float, fee_discount: float) -> Estimate:
        """What an eligible large site pays (EUR/MWh) with these two rebates. Its excise is the reduced
        rate (reduced_excise), which does not follow the normal rate's range down; the network fee
        keeps its range."""
        s, fee = self.supply_price, self.network_fee
        reduced = self.reduced_excise(tax_rebate)
        return Estimate(s.value + fee.value - fee_discount + reduced, s.low + fee.low - fee_discount + reduced,
                        s.high + fee.high - fee_discount + reduced, "EUR/MWh")

    @property
    def rebates_eur_per_mwh(self) -> float:
        return self.tax_rebate_eur_per_mwh + self.turpe_discount_eur_per_mwh

    @property
    def price(self) -> Estimate:
        full = self.full_price
        r = self.rebates_eur_per_mwh
        if self.all_in:
            return Estimate(full.value, full.low, full.high, "EUR/MWh", (
                f"electricity {full.value:.1f} EUR/MWh ({full.low:.1f}..{full.high:.1f}), {self.place}, all-in for a large "
                f"industrial consumer, VAT or sales tax excluded: {self.sources.get('price_eur_per_mwh', '')}",))
        reduced = self.reduced_excise(self.tax_rebate_eur_per_mwh)
        low = self.eligible_price(self.tax_rebate_eur_per_mwh, self.turpe_discount_eur_per_mwh).low
        note = (f"electricity {full.value - r:.1f} EUR/MWh = {self.price_eur_per_mwh:g} supply + {self.network_fee.value:g} network fee "
                f"+ {self.excise.value:g} excise - {self.tax_rebate_eur_per_mwh:g} excise rebate - {self.turpe_discount_eur_per_mwh:g} "
                f"network-fee discount (eligible large site, paying the reduced excise of {reduced:g}; {low:.1f}..{full.high:.1f}, "
                f"high = not eligible). Supply: {self.sources.get('price_eur_per_mwh', 'no source given')}; network fee: "
                f"{self.sources.get('network_fee_eur_per_mwh', 'no source given')}; excise: {self.sources.get('excise_eur_per_mwh', '')}")
        return Estimate(full.value - r, min(low, full.value - r), full.high, "EUR/MWh", (note,))


def _ranged(raw: Mapping[str, Any], key: str, unit: str) -> Estimate:
    v = float(raw.get(key, 0.0))
    lo, hi = float(raw.get(f"{key}_low", v)), float(raw.get(f"{key}_high", v))
    check_bounds(f"systems.toml [grid] {key}", v, lo, hi)
    return Estimate(v, lo, hi, unit)


def grid_names() -> list[str]:
    return sorted(read_seed_toml("systems.toml").get("grid", {}))


def load_grid(name: str = DEFAULT_GRID) -> Grid:
    grids = read_seed_toml("systems.toml").get("grid", {})
    raw = grids.get(name)
    if not isinstance(raw, Mapping):
        raise BadInput(f"systems.toml: no [grid.{name}] table", f"known grids: {', '.join(sorted(grids))}")
    eu = raw.get("eu_average_gco2e_per_kwh", grids.get(DEFAULT_GRID, {}).get("eu_average_gco2e_per_kwh"))
    try:
        g = Grid(**{k: float(raw.get(k, 0.0)) for k in ("tax_rebate_eur_per_mwh", "turpe_discount_eur_per_mwh")},
                 price_eur_per_mwh=float(raw["price_eur_per_mwh"]), gco2e_per_kwh=float(raw["gco2e_per_kwh"]),
                 eu_average_gco2e_per_kwh=float(eu if eu is not None else raw["eu_average_gco2e_per_kwh"]),
                 network_fee=_ranged(raw, "network_fee_eur_per_mwh", "EUR/MWh"),
                 excise=_ranged(raw, "excise_eur_per_mwh", "EUR/MWh"), sources=_sources(raw, grids),
                 extra={k: float(v) for k, v in raw.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
                 key=name, place=str(raw.get("place", name.title())),
                 supply=_ranged(raw, "price_eur_per_mwh", "EUR/MWh"), gco2e=_ranged(raw, "gco2e_per_kwh", "g/kWh"),
                 intensity_year=str(raw.get("intensity_year", "2024")), region=str(raw.get("region", "EU")),
                 region_average_gco2e_per_kwh=_region_average(raw, name))
    except KeyError as exc:
        raise BadInput(f"systems.toml [grid.{name}]: missing {exc}", "add it with its source") from None
    if g.tax_rebate_eur_per_mwh > g.excise.low or g.turpe_discount_eur_per_mwh > g.network_fee.low:
        raise BadInput(f"systems.toml [grid.{name}]: a rebate exceeds the charge it comes off",
                       "the excise rebate must not exceed the excise, the TURPE discount not the network fee")
    return g


def _sources(raw: Mapping[str, Any], grids: Mapping[str, Any]) -> dict[str, str]:
    """The grid's sources; a European grid's region average is the EU figure of 002 (France's table)."""
    out = dict(raw.get("sources", {}))
    if str(raw.get("region", "EU")) == "EU" and "region_average_gco2e_per_kwh" not in out:
        eu = grids.get(DEFAULT_GRID, {}).get("sources", {}).get("eu_average_gco2e_per_kwh")
        if eu:
            out["region_average_gco2e_per_kwh"] = str(eu)
    return out


def _region_average(raw: Mapping[str, Any], name: str) -> float | None:
    """A grid outside the EU states its region's average intensity (the EU one is France's table's)."""
    if str(raw.get("region", "EU")) == "EU":
        return None
    if "region_average_gco2e_per_kwh" not in raw:
        raise BadInput(f"systems.toml [grid.{name}]: region {raw['region']!r} without region_average_gco2e_per_kwh",
                       "state the region's average intensity with its source")
    return float(raw["region_average_gco2e_per_kwh"])


def grid_for(system: SystemSpec) -> Grid:
    """The grid of the system's site: its `grid` key (checked when the system file was read), else
    France; with what the site states of its own supply (`supply_note`), said beside the CO2."""
    g = load_grid(str(system.extra.get("grid", DEFAULT_GRID)))
    note = system.extra.get("supply_note")
    return replace(g, notes=(f"{system.key}: {note}",)) if note else g


def capped_watts_per_node(system: SystemSpec) -> float:
    """Watts a GPU power limit takes off one node at full load: GPUs per node x (board power - limit)."""
    cap = system.gpu_power_limit_w
    tdp = power.board_power_w(system) if cap is not None else None
    return float(system.gpus_per_node * max(tdp - cap, 0.0)) if tdp else 0.0


def node_power(system: SystemSpec) -> Estimate:
    """The stated node power (W) at full load, less what a GPU power limit sheds: the central and
    high figures are full load (GPUs at board power), so they lose it; a lower bound already below
    that stays where it is."""
    node = system.estimate("node_power_w", "W")
    shed = capped_watts_per_node(system)
    if not shed:
        return node
    v = max(node.value - shed, 0.0)
    return Estimate(v, min(node.low, v), max(node.high - shed, 0.0), "W", node.assumptions + (
        f"{system.key}: the {system.gpu_power_limit_w:g} W limit takes {shed:g} W off a node at full load "
        f"({system.gpus_per_node} GPUs x (board power - limit)); a lower node power stays",))


def it_power(system: SystemSpec, gpus: Estimate | None = None) -> Estimate:
    """IT power (W) of `gpus` GPUs of this system (all of them by default)."""
    if gpus is None and site_bound(system) and system.pue is not None:  # see facility_power
        site = float(system.extra["site_power_mw"])
        return combine(lambda pue, f: site * 1e6 / pue * f, system.estimate("pue", "1"), site_share(system), unit="W",
                       assumptions=(f"{system.key}: the stated {site:g} MW the GPU count was derived from / PUE",))
    n = gpus or system.estimate("gpus", "gpu")
    if system.node_power_w is not None:
        part = any(g % system.gpus_per_node for g in (n.value, n.low, n.high))
        return combine(lambda g, p: g / system.gpus_per_node * p, n, node_power(system), unit="W",
                       assumptions=(f"{system.key}: node power x nodes used" + (
                           f" (a node only partly used, of {system.gpus_per_node} GPUs, counted pro rata: its "
                           "other GPUs left to other jobs)" if part else ""),))
    site = system.extra.get("site_power_mw")
    if site is not None and system.pue is not None:
        return combine(lambda g, pue: site * 1e6 * g / system.gpus / pue, n, system.estimate("pue", "1"), unit="W",
                       assumptions=(f"{system.key}: stated site power {site:g} MW / PUE, pro rata of GPUs",))
    raise BadInput(f"system {system.key}: node power unknown", "add node_power_kw (with _low/_high) to the system file")


def site_bound(system: SystemSpec) -> bool:
    """The GPU count was derived from the stated site power (campus-1gw: 1 GW / (node power x PUE)):
    the whole system then draws that power, whatever node power and PUE the count took."""
    return system.extra.get("site_power_mw") is not None and "gpus" in system.ranges


def site_share(system: SystemSpec) -> Estimate:
    """The share of its stated site power a site-bound system draws: 1 at full board power; under a
    GPU power limit, node power with the limit over node power without it, each end of the count
    paired with the node power it was derived from (the count's high end took the low node power,
    which node_power leaves where it is: a share of 1 there)."""
    if system.gpu_power_limit_w is None:
        return Estimate.exact(1.0, "1")
    full, capped = system.estimate("node_power_w", "W"), node_power(system)
    ends = (capped.low / full.low, capped.high / full.high)
    return Estimate(capped.value / full.value, min(ends), max(ends), "1", capped.assumptions[-1:])


def facility_power(system: SystemSpec, gpus: Estimate | None = None) -> Estimate:
    if gpus is None and site_bound(system):
        # count x node power x PUE is the site power at every corner (each end of the count took the
        # other end of node power and PUE): taking the three ranges apart would span 0.5-2 GW for 1 GW;
        # a power limit takes the same share off every node (site_share)
        site = float(system.extra["site_power_mw"])
        return site_share(system).scale(site * 1e6, "W", f"{system.key}: the stated {site:g} MW the GPU count was "
                                        "derived from (count, node power and PUE are not independent)")
    if gpus is not None and site_bound(system):
        return _site_part(system, gpus)
    it = it_power(system, gpus)
    if system.pue is None:
        raise BadInput(f"system {system.key}: PUE unknown", "add pue (with _low/_high) to the system file")
    return combine(lambda p, u: p * u, it, system.estimate("pue", "1"), unit="W",
                   assumptions=(f"{system.key}: PUE {system.pue:g}",))


def _site_part(system: SystemSpec, gpus: Estimate) -> Estimate:
    """Part of a site-bound system: its share of the stated site power, each end of the share taken at
    the end of the count it was derived with (a high count went with a low node power), and never more
    than the whole site (an exact count above the count's low end is the whole site at that corner).
    Taking node power and PUE apart instead would put 8 GPUs fewer than 1 GW's count at 0.5-2 GW."""
    site = float(system.extra["site_power_mw"]) * 1e6
    n, share = system.estimate("gpus", "gpu"), site_share(system)
    ends = [site * share.value * min(1.0, gpus.value / n.value),
            site * share.low * min(1.0, gpus.low / n.low), site * share.high * min(1.0, gpus.high / n.high)]
    return Estimate(ends[0], min(ends), max(ends), "W", (f"{system.key}: its GPUs' share of the stated "
                    f"{site / 1e6:g} MW the GPU count was derived from",))


@dataclass(frozen=True)
class EnergyReport:
    facility_power: Estimate   # W
    energy: Estimate           # J
    cost: Estimate             # EUR
    co2: Estimate              # kg CO2e on the grid of the site
    co2_region_average: Estimate   # kg CO2e at the average intensity of the grid's region
    label: str
    region: str = "EU"

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "facility_power_w": self.facility_power, "energy_j": self.energy,
                "energy_mwh": self.energy.scale(1 / J_PER_MWH, "MWh"), "cost_eur": self.cost,
                "co2_kg": self.co2, "region": self.region, "co2_region_average_kg": self.co2_region_average}


def energy_report(power_w: Estimate, seconds: Estimate, label: str, grid: Grid | None = None) -> EnergyReport:
    return _report(power_w, combine(lambda p, t: p * t, power_w, seconds, unit="J"), label, grid)


def _report(power_w: Estimate, energy: Estimate, label: str, grid: Grid | None = None) -> EnergyReport:
    g = grid or load_grid()
    cost = combine(lambda e, pr: e / J_PER_MWH * pr, energy, g.price, unit="EUR")
    i = g.intensity
    span = f", {i.low:g}..{i.high:g}" if i.low != i.high else ""
    co2 = combine(lambda e, c: e / J_PER_KWH * c / 1e3, energy, i, unit="kg_co2e", assumptions=(
        f"{g.gco2e_per_kwh:g} gCO2e/kWh{span} ({g.place} {g.intensity_year}, location-based grid average"
        + (f": {g.sources['gco2e_per_kwh']}" if g.sources.get("gco2e_per_kwh") else "") + ")",
        *g.notes))
    avg = g.region_average
    source = g.sources.get("region_average_gco2e_per_kwh", "2023")
    region = energy.map(lambda e: e / J_PER_KWH * avg / 1e3, "kg_co2e", f"{avg:g} gCO2e/kWh, the {g.region} average ({source})")
    return EnergyReport(power_w, energy, cost, co2, region, label, g.region)


def per_year(system: SystemSpec, load_factor: float = 1.0, grid: Grid | None = None) -> EnergyReport:
    if not 0 < load_factor <= 1:
        raise BadInput(f"load factor must be in (0, 1], got {load_factor}", "pass --load-factor between 0 and 1")
    p = facility_power(system)
    year = Estimate.exact(HOURS_PER_YEAR * 3600.0 * load_factor, "s", f"one year at load factor {load_factor:g}")
    return energy_report(p, year, f"{system.key}: one year", grid or grid_for(system))


@dataclass(frozen=True)
class JobRun:
    """What a job holds: `gpus` for a wall-clock time. `gpu_seconds` is their product taken with the
    dependence kept (a faster run on more GPUs is one corner, not a slow run on many), as the model
    that gave the time computes it; energy scales with it, not with the two apart."""
    gpus: Estimate
    gpu_seconds: Estimate
    note: str = ""
    seconds: Estimate | None = None  # the job's wall time, where the model gives it apart


def _whole_site(system: SystemSpec, job: JobRun) -> bool:
    """A job on every GPU of a system whose count was derived from its site power: it draws the
    site's power (count, node power and PUE move together; see facility_power)."""
    n = system.estimate("gpus", "gpu")
    return site_bound(system) and job.seconds is not None and \
        (job.gpus.value, job.gpus.low, job.gpus.high) == (n.value, n.low, n.high)


def power_per_gpu(system: SystemSpec) -> Estimate:
    """Facility power (IT x PUE) of one GPU's share of its node."""
    return facility_power(system, Estimate.exact(1.0, "gpu"))


def per_job(system: SystemSpec, job: JobRun, label: str, grid: Grid | None = None) -> EnergyReport:
    """Energy of a job: the power of one GPU's share of a node x the GPU-seconds the job holds (a job on
    a whole site-bound system: the site's power x its time)."""
    grid = grid or grid_for(system)
    if _whole_site(system, job):
        site = facility_power(system)
        energy = combine(lambda p, t: p * t, site, job.seconds, unit="J", assumptions=(job.note,) if job.note else ())
        return _report(site, energy, label, grid)
    energy = combine(lambda p, gs: p * gs, power_per_gpu(system), job.gpu_seconds, unit="J",
                     assumptions=(job.note,) if job.note else ())
    return _report(facility_power(system, job.gpus), energy, label, grid)
