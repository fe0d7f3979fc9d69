"""`recoque check`: each stated figure (seeds/claims.toml) against what the models imply.

A check returns the metric or assumption under which the figure holds, the numbers it implies,
a verdict ("consistent", "consistent only if ...", "not consistent") and the arithmetic, line by
line. With a measured profile, the device it was measured on uses the measured rates.
The compute checks live here; sites and grid in claims_grid, investments in claims_money, rankings and
programmes in claims_lists, shared pieces (verdicts, assumptions, the cost model) in claimkit.
`run_claim(key, claim=...)` replaces one claim's inputs: every verdict can be flipped that way.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from recoque.catalog import get_device_spec, load_catalog
from recoque.errors import BadInput, RecoqueError
from recoque.estimate import Estimate, combine
from recoque.planner import claims_grid, claims_lists, claims_money, energy, hpl
from recoque.planner.claimkit import (CONSISTENT, NOT, ONLY_IF, E, P, T, assumption, document, matches,  # noqa: F401
                                      building_eur_per_gpu, data, per_gpu_site_power_w, rng, seed, si)
from recoque.planner.equivalents import H100, device_metric, measured_profile_for
from recoque.planner.system import load_system
from recoque.planner.top500 import load_entries
from recoque.planner.workloads import gemm_rate, profile_applies


@dataclass(frozen=True)
class ClaimResult:
    key: str
    summary: str
    stated: str
    file: str
    locator: str
    verdict: str
    condition: str                      # what must hold ("" when plainly consistent)
    holds_under: str                    # the metric or assumption
    implied: Mapping[str, Any]          # name -> Estimate or number
    arithmetic: tuple[str, ...]
    sources: tuple[str, ...] = ()       # where the figures the check uses come from
    document: str = ""                  # the document's title
    document_date: str = ""
    stated_values: Mapping[str, Any] = field(default_factory=dict)  # the figures as numbers, unit in the key

    @property
    def verdict_line(self) -> str:
        return self.verdict + (f" {self.condition}" if self.condition and self.verdict == ONLY_IF else
                               f" ({self.condition})" if self.condition else "")

    def to_json(self) -> dict[str, Any]:
        return {"claim": self.key, "summary": self.summary, "stated": self.stated,
                "stated_values": dict(self.stated_values), "document": self.document,
                "document_date": self.document_date, "locator": self.locator,
                "verdict": self.verdict, "condition": self.condition, "holds_under": self.holds_under,
                "implied": dict(self.implied), "arithmetic": list(self.arithmetic), "sources": list(self.sources)}


def _seed() -> dict[str, Any]:
    return seed()


def claim_keys() -> list[str]:
    return list(_seed().get("claims", {}))


# --- the checks ----------------------------------------------------------------------------------

def _hpl_per_gpu(spec, profile, gpus: float | None) -> tuple[Estimate, Estimate, bool]:
    """HPL rate per GPU and efficiency (all reference machines; measured DGEMM with a profile), at
    the pace of `gpus` GPUs as `plan hpl` takes it (planner/pace.py; None: the family's own)."""
    return hpl.rate_and_efficiency(spec, None, profile, None, gpus)


def check_exaflop(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    target = float(c["value_flop_s"])
    system = load_system(c["system"])
    spec = get_device_spec(system.device)
    # unpaced, as the preset's count was derived (hpl.gpus_for_rmax): the count is what is asked
    rate, eff, measured = _hpl_per_gpu(spec, profile, None)
    need_hpl = combine(lambda r, e: target / (r * e), rate, eff, unit="gpu")
    fp64 = device_metric(spec, "fp64_matrix")
    need_peak = fp64.map(lambda r: target / r, "gpu") if fp64 else None
    lines = [f"a billion billion = 1e9 x 1e9 = {target:.0e} operations/s = {target / E:g} EFLOP/s",
             f"HPL rate per {spec.key}: {rng(rate, T)}FLOP/s{' (measured DGEMM)' if measured else ''} x efficiency "
             f"{rng(eff)}{' (of the measured DGEMM)' if measured else ''}",
             f"{spec.key} needed for {target / E:g} EFLOP/s HPL = 1e18 / (rate x efficiency) = {rng(need_hpl)}"]
    implied: dict[str, Any] = {"gpus_for_hpl": need_hpl}
    if need_peak:
        lines.append(f"{spec.key} needed for {target / E:g} EFLOP/s FP64 peak = 1e18 / {rng(fp64, T)}FLOP/s = {rng(need_peak)}")
        implied["gpus_for_fp64_peak"] = need_peak
    bf16 = device_metric(spec, "bf16")
    lines.append(f"at BF16/FP8 (AI precisions) an exaflop needs far fewer GPUs; {spec.key} BF16 peak "
                 + (f"{rng(bf16, T)}FLOP/s" if bf16 else "is not published"))
    have = system.estimate("gpus", "gpu")
    # a preset whose count was derived from this same HPL target (`gpus_notes`) cannot confirm it
    derived = bool(system.extra.get("gpus_notes"))
    lines.append(f"{system.key} holds {rng(have)} {spec.key}: "
                 + ("fewer than the fewest needed" if have.high < need_hpl.low else
                    "at least the most needed" if have.low >= need_hpl.high else "the two ranges overlap")
                 + ("; that count was derived from a 1 EFLOP/s HPL target (not published), so it is no evidence "
                    "for the claim: the verdict rests on the count the machine gets" if derived else ""))
    # a machine that cannot hold enough GPUs at any corner is not exascale; one that holds enough at
    # every corner is, in the TOP500 sense; between the two it depends on the count
    verdict = NOT if have.high < need_hpl.low else CONSISTENT if have.low >= need_hpl.high else ONLY_IF
    counted = "count published" if "gpus" not in system.ranges else "count not published"
    cond = "" if verdict != ONLY_IF else (
        f"the operations are FP64 (HPL) and the machine holds the {rng(need_hpl)} {spec.key} HPL needs "
        f"({counted}; {system.key} preset: {rng(have)})")
    return dict(verdict=verdict, condition=cond, holds_under="FP64 HPL Rmax (TOP500 sense of exaflop)",
                implied=implied, arithmetic=lines)


def check_h100_equivalent(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    stated = float(c["value_h100"])
    tol = assumption("tolerance").value
    system = load_system(c["system"])
    spec, h100 = get_device_spec(system.device), get_device_spec(H100)
    gpus = system.estimate("gpus", "gpu")
    _, eff, _ = _hpl_per_gpu(spec, None, None if "gpus" in system.ranges else system.gpus)
    target = system.extra.get("hpl_target_eflops")
    lines, implied, holds, fails = [], {}, [], []
    metrics: dict[str, Estimate] = {}
    if target:  # FP64 system peak follows from the HPL target whatever the per-GPU rate: target / efficiency
        sys_fp64 = eff.map(lambda e: float(target) * E / e, "flop/s")
        lines.append(f"system FP64 peak = {target:g} EFLOP/s HPL / efficiency {rng(eff)} = {rng(sys_fp64, E)}FLOP/s")
        for m in ("fp64_matrix", "fp64_vector"):
            ref = device_metric(h100, m)
            e = sys_fp64.map(lambda s: s / ref.value, "H100e")
            implied[f"h100e_{m}_peak"] = e
            if m == "fp64_vector":
                metrics[m] = e
            lines.append(f"H100e {m} peak = {rng(sys_fp64, E)}FLOP/s / H100 {si(ref.value, T)}FLOP/s = {rng(e)}"
                         + (" (FP64 matrix work is what HPL runs: counted once, as HPL delivered below)" if m == "fp64_matrix" else ""))
        ref = hpl.h100_machine(system.extra.get("top500_machine") or system.key, float(target) * E)
        metrics["fp64_hpl"] = ref.rmax_per_gpu.map(lambda r: float(target) * E / r, "H100e")
        lines.append(f"H100e HPL delivered = {target:g}e18 / (H100 {rng(ref.rate_per_gpu, T)}FLOP/s x efficiency "
                     f"{rng(ref.efficiency)}, at the pace of {ref.gpus.value:,.0f} H100) = {rng(metrics['fp64_hpl'])}")
    for m in ("hbm_capacity", "hbm_bandwidth"):
        a, b = device_metric(spec, m), device_metric(h100, m)
        if a and b:
            metrics[m] = combine(lambda n, x: n * x / b.value, gpus, a, unit="H100e")
            sc = 1e9 if m == "hbm_capacity" else T
            unit = "B" if m == "hbm_capacity" else "B/s"
            lines.append(f"H100e {m} = {rng(gpus)} GPUs x {si(a.value, sc)}{unit} / {si(b.value, sc)}{unit} = {rng(metrics[m])}")
    for m, h in (("bf16", 989.4e12), ("fp8", 1978.9e12)):
        h = device_metric(h100, m).value if device_metric(h100, m) else h
        per_gpu_needed = gpus.map(lambda n: stated * h / n, "flop/s")
        implied[f"{m}_per_{spec.key}_needed_flop_s"] = per_gpu_needed
        own = device_metric(spec, m)
        if profile_applies(spec, profile) and not profile.uses_datasheet_for(m):   # only what was measured
            own = gemm_rate(spec, m, profile)
            h_ach = gemm_rate(h100, m, measured_profile_for(H100))
            metrics[f"{m}_measured"] = combine(lambda n, x, y: n * x / y, gpus, own, h_ach, unit="H100e")
            lines.append(f"H100e {m} measured = GPUs x measured {rng(own, T)}FLOP/s / H100 achieved {rng(h_ach, T)}FLOP/s = {rng(metrics[m + '_measured'])}")
        elif own:
            metrics[m] = combine(lambda n, x: n * x / h, gpus, own, unit="H100e")
            lines.append(f"H100e {m} = GPUs x {si(own.value, T)}FLOP/s / {si(h, T)}FLOP/s = {rng(metrics[m])}")
        lines.append(f"{m} per {spec.key} needed for {stated:,.0f} H100e = {stated:,.0f} x {si(h, T)}FLOP/s / {rng(gpus)} GPUs = {rng(per_gpu_needed, P)}FLOP/s")
    for m, e in metrics.items():
        implied[f"h100e_{m}"] = e
        (holds if matches(e, stated, tol) else fails).append(m)
    unknown = [m for m in ("bf16", "fp8") if m not in metrics and f"{m}_measured" not in metrics]
    for m in list(unknown):  # not published, but beyond any part a generation from now, or below its own FP64: fails
        need, reach = implied[f"{m}_per_{spec.key}_needed_flop_s"], _reachable_flop_s(m)
        floor = spec.peak(spec.gemm_rate_key("fp64"))
        if reach is not None and need.low > reach:
            unknown.remove(m)
            fails.append(m)
            lines.append(f"{m}: even the low end needed, {rng(need, P)}FLOP/s, exceeds {si(reach, P)}FLOP/s, the best "
                         f"published part x the B200/H100 step of one generation: no part delivers it")
        elif floor and need.high < floor:
            # every part in the catalog runs dense 16- and 8-bit GEMMs at least as fast as FP64 ones
            unknown.remove(m)
            fails.append(m)
            lines.append(f"{m}: even the high end needed, {rng(need, P)}FLOP/s, is below {spec.key}'s own FP64 peak "
                         f"{si(floor, P)}FLOP/s: the figure counts too few H100s for the part's {m} rate")
    parts = []
    if holds:
        parts.append(f"counted on {', '.join(holds)}")
    for m in unknown:
        need = implied[f"{m}_per_{spec.key}_needed_flop_s"]
        parts.append(f"{spec.key} delivers {rng(need, P)}FLOP/s dense {m} (not published)")
    verdict = NOT if not holds and not unknown else (CONSISTENT if not fails and not unknown else ONLY_IF)
    lines.append(f"match band: {stated / (1 + tol):,.0f}..{stated * (1 + tol):,.0f} H100e (a factor {1 + tol:g} either way); "
                 f"a metric holds when its central value is inside the band; holds: {', '.join(holds) or 'none'}; "
                 f"fails: {', '.join(fails) or 'none'}")
    return dict(verdict=verdict, condition=" or ".join(parts), holds_under=", ".join(holds) or "no metric",
                implied=implied, arithmetic=lines)


def _reachable_flop_s(metric: str) -> float | None:
    """The most a part not yet published could deliver at `metric`: the best dense peak in the catalog
    times one generation's step, B200 over H100 at the same metric (both NVIDIA datasheets, 2.27x at
    bf16). None when the catalog lacks either figure."""
    cat = load_catalog()
    b200, h100 = cat.get("b200"), cat.get(H100)
    step = b200.peak(metric) / h100.peak(metric) if b200 and h100 and b200.peak(metric) and h100.peak(metric) else None
    best = max((d.peak(metric) or 0.0 for d in cat.values()), default=0.0)
    return best * step if step and best else None


def check_cumulative_peak(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    stated = float(c["value_pflops"]) * P
    system = load_system(c["system"])
    spec = get_device_spec(system.device)
    n = system.gpus
    lines, implied = [], {}
    tensor, vector = device_metric(spec, "fp64_matrix").value, device_metric(spec, "fp64_vector").value
    part_t, part_v = n * tensor, n * vector
    rest = stated - part_t
    lines += [f"H100 partition FP64 tensor peak = {n:,.0f} x {si(tensor, T)}FLOP/s = {si(part_t, P)}FLOP/s",
              f"H100 partition FP64 vector peak = {n:,.0f} x {si(vector, T)}FLOP/s = {si(part_v, P)}FLOP/s",
              f"left for the other partitions = {si(stated, P)}FLOP/s - {si(part_t, P)}FLOP/s = {si(rest, P)}FLOP/s",
              f"H100 count if all of it were H100 at tensor rate = {stated / tensor:,.0f}; at vector rate = {stated / vector:,.0f}"]
    implied.update(h100_tensor_peak_flop_s=part_t, h100_vector_peak_flop_s=part_v, other_partitions_flop_s=rest)
    cat = load_catalog()
    if "a100_sxm_80gb" in cat and cat["a100_sxm_80gb"].peak("fp64_matrix"):
        a100 = cat["a100_sxm_80gb"].peak("fp64_matrix")
        implied["a100_equivalents_of_rest"] = rest / a100
        lines.append(f"the remainder as A100 at FP64 tensor {si(a100, T)}FLOP/s = {rest / a100:,.0f} A100-equivalents")
    count_ok = n >= float(c.get("value_h100_min", 0))
    lines.append(f"'over {c.get('value_h100_min', 0):,.0f} H100': partition holds {n:,.0f} -> {'yes' if count_ok else 'no'}")
    # the older partitions are the machine before the extension, which the extension multiplied (claims.toml)
    before = data("jean_zay_before_extension")
    older_max = stated / float(before["growth_factor"]) * (1 + assumption("tolerance").value)
    implied["older_partitions_max_flop_s"] = older_max
    lines.append(f"older partitions at most the machine before the extension: {si(stated, P)}FLOP/s / "
                 f"{float(before['growth_factor']):g} x {1 + assumption('tolerance').value:g} = {si(older_max, P)}FLOP/s "
                 f"({before['source']})")
    if not count_ok or stated < part_v or stated - part_t > older_max:
        # below the partition's own vector peak no reading adds up; above its tensor peak plus the older machine, neither
        return dict(verdict=NOT, condition="", holds_under="FP64 peak", implied=implied, arithmetic=lines)
    # at or above the tensor peak the H100s count at it; between the two peaks only at the vector rate
    basis, part = ("tensor", part_t) if rest >= 0 else ("vector", part_v)
    return dict(verdict=ONLY_IF, condition=(f"the figure adds the H100s at FP64 {basis} rate ({si(part, P)}FLOP/s) and "
                                          f"~{si(stated - part, P)}FLOP/s from the older partitions (whole machine, not HPL)"),
                holds_under="FP64 peak (Rpeak-style), whole machine", implied=implied, arithmetic=lines)


def check_green500(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    stated = float(c["value_gflops_per_w"])
    system = load_system(c["system"])
    spec = get_device_spec(system.device)
    est = hpl.estimate_hpl(system, profile)  # the rate and efficiency of a run on this system's GPU count
    rate, eff = est.rate_per_gpu, est.efficiency
    per_gpu = combine(lambda r, e: r * e, rate, eff, unit="flop/s")
    watts = per_gpu.map(lambda r: r / (stated * 1e9), "W")
    lines = [f"HPL per {spec.key} = {rng(rate, T)}FLOP/s x efficiency {rng(eff)} = {rng(per_gpu, T)}FLOP/s",
             f"system power per {spec.key} implied = HPL per GPU / {stated:g} GFLOP/s/W = {rng(watts)} W"]
    implied: dict[str, Any] = {"hpl_per_gpu_flop_s": per_gpu, "watts_per_gpu_implied": watts}
    ref_key = c.get("compare_with")
    if ref_key:
        runs = [e for e in load_entries().values() if e.machine == ref_key and e.power_w]
        if not runs:
            raise BadInput(f"claims.toml: compare_with {ref_key!r} has no TOP500 run with power", "see seeds/top500.toml")
        ref = max(runs, key=lambda e: e.list_date)
        ref_gfw, ref_w = ref.gflops_per_w, ref.power_w / ref.gpus_in_run
        implied.update(reference_gflops_per_w=ref_gfw, reference_watts_per_gpu=ref_w)
        lines.append(f"{ref.label} (same device): {ref.rmax_flop_s / P:,.1f} PFLOP/s / {ref.power_w / 1e3:,.0f} kW = "
                     f"{ref_gfw:.1f} GFLOP/s/W, {ref_w:.0f} W per GPU; stated / reference = {stated / ref_gfw:.2f}")
    per_node = f"{system.gpus_per_node:g}"
    if est.gflops_per_w is not None:
        implied["model_gflops_per_w"] = est.gflops_per_w
        lines.append(f"model for {system.key} (node power {rng(system.estimate('node_power_w', 'W'))} W per {per_node} GPUs): {rng(est.gflops_per_w)} GFLOP/s/W")
    tdp = spec.tdp_w
    if tdp:
        lines.append(f"{spec.key} TDP {tdp:g} W: the implied system power per GPU must cover at least ~90% of it")
    else:  # no stated board power: that test is not run (a 0 W floor would pass anything)
        lines.append(f"{spec.key} TDP not stated: the implied power per GPU is held against the model only")
    ok = not tdp or watts.value >= 0.9 * tdp  # the central power, not the most favourable corner
    in_model = est.gflops_per_w is None or est.gflops_per_w.low <= stated <= est.gflops_per_w.high
    verdict = CONSISTENT if ok and in_model else (ONLY_IF if ok else NOT)
    node_w = rng(system.estimate('node_power_w', 'W'))
    above = est.gflops_per_w is not None and stated > est.gflops_per_w.high
    cond = "" if verdict == CONSISTENT else (
        (f"the nodes draw less than the model's {node_w} W per {per_node} GPUs (Green500 runs at reduced power)" if above else
         f"the nodes draw more than the model's {node_w} W per {per_node} GPUs, or HPL runs below the model's efficiency")
        if ok else f"each {spec.key} runs below its TDP")
    return dict(verdict=verdict, condition=cond, holds_under="HPL Rmax per W of system power (Green500)",
                implied=implied, arithmetic=lines)


def _per_gpu_site_power(dev_tdp: float) -> Estimate:
    return per_gpu_site_power_w(dev_tdp)


def _devices_with_tdp() -> list:
    return [d for d in load_catalog().values() if d.tdp_w and not getattr(d, "key", "").endswith("_gcd")]


def check_site_power(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    site_w = float(c["value_mw"]) * 1e6
    gpus = float(c["value_gpus"])
    per_gpu = site_w / gpus
    lines = [f"{c['value_mw']:g} MW / {gpus:,.0f} GPUs = {per_gpu / 1e3:.2f} kW per GPU at the meter (IT + cooling)",
             "per-GPU site power of a device = TDP x node overhead (host, NIC, fabric) x PUE"]
    fit, no_fit, implied = [], [], {"kw_per_gpu_at_meter": per_gpu / 1e3}
    for d in sorted(_devices_with_tdp(), key=lambda d: d.tdp_w):
        need = _per_gpu_site_power(d.tdp_w)
        n = need.map(lambda w: site_w / w, "gpu")
        implied[f"gpus_in_site_{d.key}"] = n
        lines.append(f"{d.key}: {d.tdp_w:g} W -> {rng(need.scale(1e-3))} kW/GPU -> {rng(n)} GPUs in {c['value_mw']:g} MW")
        (fit if need.value <= per_gpu else no_fit).append(d.key)   # the central estimate must fit, not its best corner
    implied.update(devices_that_fit=fit, devices_that_do_not=no_fit)
    # The verdict is held on the part the claim's site stands for (its system's device), not on the
    # catalog's spread, which would make almost any MW / GPU ratio fit something and miss something.
    spec = get_device_spec(load_system(c["system"]).device) if c.get("system") else get_device_spec(claims_money.STAND_IN)
    need = _per_gpu_site_power(spec.tdp_w)
    lines.append(f"held on {spec.key}, the part the site stands for: {rng(need.scale(1e-3))} kW/GPU against "
                 f"{per_gpu / 1e3:.2f} kW stated; of the catalog, {', '.join(fit) or 'none'} fit and "
                 f"{', '.join(no_fit) or 'none'} do not (information)")
    verdict = CONSISTENT if need.value <= per_gpu else (ONLY_IF if need.low <= per_gpu else NOT)
    cond = "" if verdict == CONSISTENT else (
        f"each {spec.key} draws at most {per_gpu / 1e3:.2f} kW at the meter, below the model's central "
        f"{need.value / 1e3:.2f} kW (low-power nodes or a low PUE), or the GPUs are of a lower-power class"
        if verdict == ONLY_IF else "")
    return dict(verdict=verdict, condition=cond, holds_under=f"facility power per {spec.key}", implied=implied, arithmetic=lines)


def check_gigawatt(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    power = float(c["value_gw"]) * 1e9
    g = energy.load_grid()
    grid_raw = g.extra
    year = energy.energy_report(Estimate.exact(power, "W"), Estimate.exact(energy.HOURS_PER_YEAR * 3600, "s"), "1 GW, one year", g)
    twh = year.energy.value / 3.6e15
    lines = [f"one year at full load: {c['value_gw']:g} GW x 8,760 h = {twh:.2f} TWh",
             f"cost at {rng(g.price)} EUR/MWh (supply + network + excise - rebates) = {rng(year.cost, 1e6, 'EUR')} per year",
             f"CO2 at {g.gco2e_per_kwh:g} g/kWh = {year.co2.value / 1e6:,.0f} kt per year ({g.region} average {g.region_average:g} g: {year.co2_region_average.value / 1e6:,.0f} kt)"]
    implied: dict[str, Any] = {"energy_twh_per_year": twh, "cost_eur_per_year": year.cost, "co2_kg_per_year": year.co2}
    cap, export = grid_raw.get("installed_capacity_gw"), grid_raw.get("net_export_twh")
    if cap:
        lines.append(f"share of the {cap:g} GW installed capacity = {c['value_gw'] / cap:.2%}")
        implied["share_of_installed_capacity"] = c["value_gw"] / cap
    if export:
        lines.append(f"share of the {export:g} TWh net export balance = {twh / export:.1%}")
        implied["share_of_net_export"] = twh / export
    for d in sorted(_devices_with_tdp(), key=lambda d: d.tdp_w):
        n = _per_gpu_site_power(d.tdp_w).map(lambda w: power / w, "gpu")
        implied[f"gpus_{d.key}"] = n
        lines.append(f"{d.key} GPUs powered: {rng(n)}")
    verdict, cond = claims_grid.export_verdict(twh)  # the same test as every other grid load
    return dict(verdict=verdict, condition=cond,
                holds_under="energy at full load against the export balance stated in the same document",
                implied=implied, arithmetic=lines)


def check_inference_fleet(c: Mapping[str, Any], profile: Any) -> dict[str, Any]:
    from recoque.planner.inference import Serving, estimate_inference, load_model_spec
    from recoque.planner.workloads import get_workload

    system = load_system(c["system"])
    spec = get_device_spec(system.device)
    if not spec.tdp_w:  # the generic site model prices a GPU by its board power: none stated, none guessed
        raise BadInput(f"claims.toml: {c['system']}'s device {spec.key} has no board power (tdp_w) for the site model",
                       "give the claim a system whose device states tdp_w (seeds/hardware.toml)")
    n = float(c["value_gpus"])
    lines, implied = [], {}
    site = _per_gpu_site_power(spec.tdp_w).map(lambda w: w * n / 1e6, "MW")
    implied["site_power_mw"] = site
    lines.append(f"{n:,.0f} x {spec.key} ({spec.tdp_w:g} W TDP) x node overhead x PUE = {rng(site)} MW at the meter "
                 "(the generic site model every investment claim uses)")
    try:  # the preset's own node power, as `recoque plan -s <system>` prints it: said beside, so the two are not read as one
        preset = energy.facility_power(system, Estimate.exact(n, "gpu")).scale(1e-6, "MW")
        implied["preset_facility_power_mw"] = preset
        lines.append(f"the {system.key} preset's node power x nodes x PUE = {rng(preset)} MW (the facility power `recoque plan -s "
                     f"{system.key} -w inference-fleet` prints: {preset.value / site.value:.2f}x the generic centre, from the preset's stated nodes)")
    except BadInput:
        pass
    # the EUR 400 M of the same announcement is held by the investment claim (telehouse-400m-25000gpus):
    # counted there once. This claim holds the count against the serving work it is said to be for.
    for wk in c.get("workloads", []):
        w = get_workload(wk)
        try:
            model = load_model_spec(w.model)
            r = estimate_inference(model, w.model, system.with_gpus(int(n)), Serving.from_workload(w), profile)
        except RecoqueError as exc:
            lines.append(f"{wk}: not estimated ({exc.one_line()})")
            continue
        implied[f"{wk}_tokens_per_s"] = r.tokens_per_s_system
        implied[f"{wk}_concurrent_users"] = r.concurrent_users
        lines.append(f"{wk} ({w.model}, {r.gpus_per_replica} GPU/replica, batch {rng(r.batch)}, "
                     f"{r.tpot.value * 1e3:.3g} ms/token): {rng(r.tokens_per_s_system)} tokens/s, {rng(r.concurrent_users)} concurrent users")
    unserved = [wk for wk in c.get("workloads", []) if f"{wk}_tokens_per_s" not in implied]
    housed = _housed_by_investment(system, spec.tdp_w, n, lines, implied)
    verdict, cond = CONSISTENT, "GPU model not stated; H100 SXM stands in"
    if unserved:
        verdict, cond = NOT, f"{', '.join(unserved)} cannot be served on {n:,.0f} GPUs"
    elif housed == "cheap":
        verdict, cond = ONLY_IF, "the buildings cost near the low end of the construction range"
    elif housed is False:
        verdict, cond = NOT, f"the stated investment cannot build the spaces for {n:,.0f} GPUs"
    return dict(verdict=verdict, condition=cond, holds_under="serving capacity of the stated GPU count, and the spaces its "
                "investment can build", implied=implied, arithmetic=lines)


def _housed_by_investment(system: Any, tdp_w: float, n: float, lines: list, implied: dict) -> bool | str | None:
    """"Spaces capable of hosting up to N GPUs": the buildings for N GPUs must fit in the system's stated investment
    (the GPUs themselves are the tenants'). True at the centre of the construction range, "cheap" at its cheap end
    only, False not even there, None when the system states no investment."""
    meur = system.extra.get("investment_meur")
    if meur is None:
        return None
    b_g = building_eur_per_gpu(tdp_w)
    need = b_g.scale(n, "EUR")
    implied["buildings_eur"] = need
    amount = float(meur) * 1e6
    ok = True if need.value <= amount else "cheap" if need.low <= amount else False
    lines.append(f"spaces for {n:,.0f} GPUs: buildings {rng(need, 1e6, 'EUR')} against the {float(meur):,.0f} MEUR stated "
                 f"({float(meur) * 1e6 / b_g.value:,.0f} GPUs at the centre, {float(meur) * 1e6 / b_g.low:,.0f} at the cheap end)"
                 + ("" if ok is True else ": only at the cheap end" if ok else ": more than it can build"))
    return ok


CHECKS: dict[str, Callable[[Mapping[str, Any], Any], dict[str, Any]]] = {
    "exaflop": check_exaflop, "h100_equivalent": check_h100_equivalent, "cumulative_peak": check_cumulative_peak,
    "green500": check_green500, "site_power": check_site_power, "gigawatt": check_gigawatt,
    "inference_fleet": check_inference_fleet,
    "investment": claims_money.check_investment, "investment_total": claims_money.check_investment_total,
    "gpu_fleet_budget": claims_money.check_gpu_fleet_budget,
    "site_areas": claims_grid.check_site_areas, "site_counts": claims_grid.check_site_counts,
    "grid_load": claims_grid.check_grid_load, "growth_cover": claims_grid.check_growth_cover,
    "export_balance": claims_grid.check_export_balance, "low_carbon_share": claims_grid.check_low_carbon_share,
    "carbon_intensity": claims_grid.check_carbon_intensity, "installed_capacity": claims_grid.check_installed_capacity,
    "availability": claims_grid.check_availability, "electricity_price": claims_grid.check_electricity_price,
    "national_rank": claims_lists.check_national_rank, "green500_rank": claims_lists.check_green500_rank,
    "exascale_order": claims_lists.check_exascale_order, "programme_budget": claims_lists.check_programme_budget,
    "capacity_doubling": claims_lists.check_capacity_doubling, "hosting_power": claims_lists.check_hosting_power,
}


def _stated(c: Mapping[str, Any]) -> str:
    def show(k: str, v: Any) -> str:
        fmt = "g" if k.endswith("year") else ",g"   # a year reads 2028, not 2,028
        return "/".join(format(x, fmt) for x in v) if isinstance(v, list) else format(v, fmt)
    return ", ".join(f"{k[len('value_'):]}={show(k, c[k])}" for k in c if k.startswith("value_"))


def _sources_of(c: Mapping[str, Any], implied: Mapping[str, Any]) -> tuple[str, ...]:
    """Where the figures of a check that names none come from: the datasheet of the system's device
    (compute, memory, power) and every assumption of its estimates that cites a document or a list."""
    out: list[str] = []
    if c.get("system"):
        spec = get_device_spec(load_system(c["system"]).device)
        out += [f"{spec.key} {what}: {src}" for what, src in
                (("compute", spec.source_for("fp64_matrix_tflops")), ("memory", spec.source_for("hbm_bandwidth_tb_s")),
                 ("board power", spec.source_for("tdp_w"))) if src]
    for v in implied.values():
        if isinstance(v, Estimate):
            out += [a for a in v.assumptions if "http" in a or "TOP500" in a]
    return tuple(dict.fromkeys(out))


def run_claim(key: str, profile: Any = None, claim: Mapping[str, Any] | None = None) -> ClaimResult:
    """Check one stated figure; `claim` replaces the seeded entry (what-if: change one input)."""
    claims = _seed().get("claims", {})
    if claim is None and key not in claims:
        raise BadInput(f"unknown claim {key!r}", f"known claims: {', '.join(claims)}")
    c = claim if claim is not None else claims[key]
    fn = CHECKS.get(c.get("check", ""))
    if fn is None:
        raise BadInput(f"claims.toml [claims.{key}]: unknown check {c.get('check')!r}", f"use one of {', '.join(CHECKS)}")
    out = dict(fn(c, profile))
    out["arithmetic"] = tuple(out["arithmetic"])
    out["sources"] = tuple(out.get("sources") or _sources_of(c, out["implied"]))
    doc = document(str(c["file"]))
    return ClaimResult(key=key, summary=str(c.get("summary", "")), stated=_stated(c), file=str(c["file"]),
                       locator=str(c["locator"]), document=doc["title"], document_date=doc["date"],
                       stated_values={k[len("value_"):]: c[k] for k in c if k.startswith("value_")}, **out)


def run_all(profile: Any = None, only: list[str] | None = None) -> list[ClaimResult]:
    return [run_claim(k, profile) for k in (only or claim_keys())]

