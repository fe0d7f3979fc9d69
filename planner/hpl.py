"""HPL (TOP500 Linpack): Rmax = GPUs x FP64 rate HPL is counted at x HPL efficiency of the device family.

The rate: TOP500 Rpeak counts AMD CDNA2/CDNA3 parts at their FP64 *vector* rate (El Capitan's
Rpeak per APU, 62.7 TF, is the MI300A's 61.3 TF vector rate plus its 24 CPU cores, not 122.6 TF
matrix), and NVIDIA parts at their FP64 *tensor* rate (submitted at the HPL clock, so the listed
Rpeak per GPU varies by site). On MI430X and Blackwell the two rates are equal.

The efficiency: Rmax / (GPUs of the run x that rate) of the TOP500 reference runs in
seeds/top500.toml (role "reference"), per device family (seeds/top500.toml [families]; Hopper =
H100/H200/GH200, one die). A family's centre is its pooled efficiency (total Rmax / total counted
peak: each run weighs by its GPUs); its range is +/- a stated half-width that covers the references'
leave-one-out errors and the within-family spread the lists show, never narrower than the family's
own runs. Each reference run is carried to the estimated device's memory per GPU by
(M / M_run)^0.2 (seeds/top500.toml [memory]: HPL runs the largest matrix that fits, and a larger one
spends less of its time in O(N^2) work; H200 141 GB vs H100 80 GB: +12%). HPL's iterations wait
for the slowest GPU of the run (planner/pace.py: identical GPUs spread about 1.7%): a machine of N
GPUs is estimated from the references carried to the median GPU's pace, x 1 / (1 + spread x E[max
of N normals]), so a 100-GPU machine runs about 2-3% nearer its peak than a 40,000-GPU one; the
efficiency asked for without a GPU count is the references' own, at their scale. A machine is never
estimated from its own runs (leave-one-out by machine). A scale term
(ln efficiency linear in ln GPUs, within families) was tried on the references: it comes out
positive, +0.07 per e-fold (Frontier above LUMI-G, JUPITER above Eos and Jean Zay), the opposite of
the loss at scale it stands for, from five runs in three families; not adopted.
Families none of the issue's machines covers have their own reference (Aurora for PVC, CHIE-4 for
Blackwell, Selene for A100, Sierra for V100; seeds/top500.toml says why each).
Outside every calibrated family: a device with a published single-node HPL figure
(seeds/top500.toml [single_node]; A100: NVIDIA DeepOps, DGX A100, used when Selene is left out) gets that figure x the pooled
multi-node retention of the reference runs (their Rmax / their GPUs x their device's single-node
figure); a device with a measured DGEMM only ([measured_dgemm]; Max 1550: ALCF) gets DGEMM x the
HPL-to-DGEMM fraction of seeds/workloads.toml; any other device takes its vendor's references with a
wider range, stated. Checked machines never calibrate anything. CPU cores are ignored (about 1% of
Rpeak). With a measured profile for the device: Rmax = GPUs x measured DGEMM x the HPL-to-DGEMM fraction.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, replace
from typing import Any

from recoque.catalog import DeviceSpec, get_device_spec, same_part
from recoque.errors import BadInput
from recoque.estimate import Estimate, combine
from recoque.planner import energy, pace
from recoque.planner.power import clock_factor, note as cap_note
from recoque.planner.system import SystemSpec
from recoque.planner.top500 import (Top500Entry, family_of, load_entries, matching_entry, measured_dgemm_flop_s,
                                    memory_exponent, range_setting, single_node_flop_s)
from recoque.planner.workloads import efficiency, peak_estimate, profile_applies, profile_estimate


def hpl_rate_key(spec: DeviceSpec) -> str:
    """The FP64 rate TOP500 Rpeak counts this vendor's GPUs at (see module docstring)."""
    return "fp64_vector" if spec.vendor == "amd" else "fp64_matrix"


def hpl_rate(spec: DeviceSpec) -> Estimate:
    key = hpl_rate_key(spec)
    est = peak_estimate(spec, key)
    if est is None:
        other = "fp64_matrix" if key == "fp64_vector" else "fp64_vector"
        est = peak_estimate(spec, other)
        if est is None:
            raise BadInput(f"device {spec.key}: FP64 rate unknown", spec.complete("fp64_matrix_tflops or fp64_vector_tflops"))
        key = other
    return Estimate(est.value, est.low, est.high, "flop/s",
                    est.assumptions + (f"HPL counted at {spec.key} {key} {est.value / 1e12:g} TFLOP/s per GPU",))


def entry_efficiency(e: Top500Entry) -> float:
    """Rmax / (GPUs of the run x the rate TOP500 counts the device at), central rate."""
    return e.rmax_flop_s / (e.gpus_in_run * hpl_rate(get_device_spec(e.device)).value)


def memory_factor(device: str, other: str) -> float:
    """HPL efficiency of `device` relative to `other` from memory per GPU alone: (M / M_other)^exponent
    (seeds/top500.toml [memory]: a larger matrix per GPU, a smaller share of O(N^2) work)."""
    m, m_other = memory_per_rank(get_device_spec(device)), memory_per_rank(get_device_spec(other))
    if not m or not m_other:
        return 1.0
    return (m / m_other) ** memory_exponent()


def memory_per_rank(spec: Any) -> float | None:
    """Memory one HPL rank holds its share of the matrix in: a GPU's, or one die's of a package the
    runtime shows as several GPUs (an MI250X's 128 GB is two 64 GB GCDs, one rank each, as on an MI210)."""
    return spec.hbm_bytes / spec.shown_per_package if spec.hbm_bytes else None


def pooled_efficiency(entries: list[Top500Entry], device: str | None = None) -> float:
    """Ratio estimator: total Rmax / total counted peak (GPUs x rate) of the runs, each run's Rmax
    carried to `device`'s memory per GPU (memory_factor) when one is given.
    Each run weighs by its GPUs, so a family's centre is the efficiency of its GPUs taken together."""
    peak = sum(e.gpus_in_run * hpl_rate(get_device_spec(e.device)).value for e in entries)
    rmax = sum(e.rmax_flop_s * (memory_factor(device, e.device) if device else 1.0) for e in entries)
    return rmax / peak


def at_median_pace(e: Top500Entry) -> Top500Entry:
    """The run with its Rmax carried to the median GPU's pace: HPL's iterations wait for the slowest
    of the run's GPUs (planner/pace.py), so Rmax x (1 + spread x E[max of N normals])."""
    return replace(e, rmax_flop_s=e.rmax_flop_s * pace.slowdown(e.gpus_in_run))


def reference_entries(exclude_machines: tuple[str, ...] = (), paced: bool = False) -> list[Top500Entry]:
    """The reference runs, at their own pace, or each carried to the median GPU's (`paced`)."""
    refs = [e for e in load_entries().values() if e.role == "reference" and e.machine not in exclude_machines]
    return [at_median_pace(e) for e in refs] if paced else refs


def reference_efficiencies(exclude_machines: tuple[str, ...] = ()) -> dict[str, float]:
    """Efficiency per reference run (entry key -> Rmax / (GPUs x counted rate))."""
    return {e.key: entry_efficiency(e) for e in reference_entries(exclude_machines)}


def _listing(refs: list[Top500Entry]) -> str:
    return ", ".join(f"{e.label} {entry_efficiency(e):.3f}" for e in refs)


def single_node_hpl(device: str) -> tuple[float, str] | None:
    """Published single-node HPL per GPU for this device (flop/s), else a same-family device's figure
    scaled by the ratio of the FP64 rates HPL is counted at (same silicon family, more or fewer SMs)."""
    table = single_node_flop_s()
    if device in table:
        return table[device], f"{device} single-node HPL {table[device] / 1e12:.2f} TFLOP/s per GPU (published)"
    fam = family_of(device)
    for other, v in sorted(table.items()):
        if fam is not None and family_of(other) == fam:
            ratio = hpl_rate(get_device_spec(device)).value / hpl_rate(get_device_spec(other)).value
            mem = memory_factor(device, other)
            return v * ratio * mem, (f"{device} single-node HPL = {other}'s published {v / 1e12:.2f} TFLOP/s per GPU "
                                     f"x FP64 rate ratio {ratio:.3f} x memory factor {mem:.3f} = {v * ratio * mem / 1e12:.2f}")
    return None


def retention_ratios(exclude_machines: tuple[str, ...] = (), paced: bool = False) -> dict[str, float]:
    """Multi-node retention of each reference run whose device has a single-node figure:
    Rmax per GPU of the run / single-node HPL per GPU of its device."""
    out = {}
    for e in reference_entries(exclude_machines, paced):
        sn = single_node_hpl(e.device)
        if sn is not None:
            out[e.key] = e.rmax_per_gpu_flop_s / sn[0]
    return out


def pooled_retention(exclude_machines: tuple[str, ...] = (), paced: bool = False) -> float | None:
    """Total Rmax / total single-node HPL of the reference runs that have a single-node figure."""
    runs = [e for e in reference_entries(exclude_machines, paced) if single_node_hpl(e.device) is not None]
    if not runs:
        return None
    return sum(e.rmax_flop_s for e in runs) / sum(e.gpus_in_run * single_node_hpl(e.device)[0] for e in runs)


def _single_node_prior(device: str, exclude_machines: tuple[str, ...], left: str,
                       paced: bool = False) -> Estimate | None:
    """Efficiency of a device outside every calibrated family, from its published single-node HPL
    x the pooled multi-node retention of the reference runs, expressed on its counted FP64 rate."""
    sn = single_node_hpl(device)
    ret = retention_ratios(exclude_machines, paced)
    if sn is None or not ret:
        return None
    rate = hpl_rate(get_device_spec(device)).value
    mid_ret = pooled_retention(exclude_machines, paced)
    w, widen = range_setting("in_family_halfwidth"), range_setting("single_node_widen")
    mid = sn[0] * mid_ret / rate
    listing = ", ".join(f"{k} {v:.3f}" for k, v in ret.items())
    note = (f"HPL efficiency: {device} is outside every calibrated family; {sn[1]}; x multi-node retention "
            f"{mid_ret:.3f} (total Rmax / total single-node HPL of the reference runs: {listing}) = "
            f"{sn[0] * mid_ret / 1e12:.2f} TFLOP/s per GPU; range: -{w:.0%}, up to the single-node figure "
            f"+{widen:.0%} (ASSUMED){left}")
    return Estimate(mid, mid * (1 - w), max(sn[0] * (1 + widen) / rate, mid * (1 + w)), "1", (note,))


def _dgemm_prior(device: str, left: str) -> Estimate | None:
    """A device with neither a reference run nor a single-node HPL figure but a measured DGEMM:
    HPL = DGEMM x the HPL-to-DGEMM fraction (the rule of a measured profile), on its counted rate."""
    dgemm = measured_dgemm_flop_s().get(device)
    if dgemm is None:
        return None
    rate = hpl_rate(get_device_spec(device)).value
    frac = efficiency("hpl_fraction_of_measured_dgemm")
    widen = range_setting("single_node_widen")
    note = (f"HPL efficiency: {device} is outside every calibrated family; measured DGEMM {dgemm / 1e12:.1f} TFLOP/s "
            f"per GPU x HPL fraction {frac.value:.2f} ({frac.low:.2f}-{frac.high:.2f}) = {dgemm * frac.value / 1e12:.1f} "
            f"TFLOP/s per GPU; top of the range +{widen:.0%} (ASSUMED: no TOP500 reference of this family){left}")
    return Estimate(dgemm * frac.value / rate, dgemm * frac.low / rate, dgemm * frac.high * (1 + widen) / rate,
                    "1", (note,))


def in_family_halfwidth(machines: int) -> float:
    """Range half-width of a family centre pooled from `machines` reference machines: the stated
    half-width (sized on `in_family_halfwidth_machines` of them) x sqrt(1 + 1/n) / sqrt(1 + 1/n_sized),
    the prediction-interval factor of one more machine about a mean of n (seeds/top500.toml [range])."""
    sized = range_setting("in_family_halfwidth_machines")
    return range_setting("in_family_halfwidth") * math.sqrt((1 + 1 / machines) / (1 + 1 / sized))


def _family_estimate(fam: str, in_family: list[Top500Entry], left: str, device: str | None = None,
                     paced: bool = False) -> Estimate:
    """Centre: the family's pooled efficiency, each reference run carried to the device's memory per
    GPU; range: +/- the stated half-width, never narrower than the spread of the family's own runs."""
    factors = [memory_factor(device, e.device) if device else 1.0 for e in in_family]
    effs = [entry_efficiency(e) * f for e, f in zip(in_family, factors)]
    mid, w = pooled_efficiency(in_family, device), in_family_halfwidth(len({e.machine for e in in_family}))
    mem = ""
    if any(abs(f - 1.0) > 1e-9 for f in factors):
        mem = (f", each run x ({device} memory / its device's)^{memory_exponent():g} "
               f"(seeds/top500.toml [memory])")
    basis = " at the median GPU's pace (each Rmax x the slowdown of its run's slowest GPU, planner/pace.py)" if paced else ""
    note = (f"HPL efficiency, family {fam}: total Rmax{basis} / total counted peak of {_listing(in_family)}{mem} = {mid:.3f}; "
            f"range +/-{w:.0%} (leave-one-out errors of the references and the within-family spread of the lists, "
            f"x sqrt(1 + 1/n) for a centre from n reference machines)"
            f"{' (one reference run)' if len(effs) == 1 else ''}{left}")
    return Estimate(mid, min(min(effs), mid * (1 - w)), max(max(effs), mid * (1 + w)), "1", (note,))


def hpl_efficiency(device: str | None = None, exclude_machines: tuple[str, ...] = (),
                   gpus: float | None = None) -> Estimate:
    """HPL efficiency for a device: its family's reference runs; else its single-node HPL or measured DGEMM
    anchor; else its vendor's references with a wider range, stated. With `gpus`: the efficiency of a
    run on that many GPUs, the reference runs first carried to the median GPU's pace (at_median_pace)
    and the result brought to the pace of the slowest of `gpus` (planner/pace.py); without, the
    references as listed, at their own scale."""
    est, from_runs = _efficiency(device, exclude_machines, paced=gpus is not None)
    if gpus is None or not from_runs:  # a measured DGEMM x the HPL fraction carries no run's scale
        return est
    slow = pace.slowdown(gpus)
    return est.scale(1.0 / slow, "1", f"references carried to the median GPU's pace, then x 1/{slow:.3f}: the slowest of "
                                      f"{gpus:,.0f} GPUs sets HPL's pace (spread {pace.GPU_SPEED_SPREAD:.1%}, planner/pace.py)")


def _efficiency(device: str | None, exclude_machines: tuple[str, ...], paced: bool) -> tuple[Estimate, bool]:
    """(efficiency, whether it comes from TOP500 runs) by hpl_efficiency's order of sources."""
    refs = reference_entries(exclude_machines, paced)
    if not refs:
        raise BadInput("no TOP500 reference run left to calibrate the HPL efficiency",
                       "keep role = \"reference\" on at least one entry of seeds/top500.toml")
    left = f" (left out: {', '.join(exclude_machines)})" if exclude_machines else ""
    fam = family_of(device) if device else None
    in_family = [e for e in refs if fam is not None and family_of(e.device) == fam]
    if in_family:
        return _family_estimate(fam, in_family, left, device, paced), True
    single = _single_node_prior(device, exclude_machines, left, paced) if device else None
    if single is not None:
        return single, True
    dgemm = _dgemm_prior(device, left) if device else None
    if dgemm is not None:
        return dgemm, False
    vendor = get_device_spec(device).vendor if device else None
    pool = [e for e in refs if vendor and get_device_spec(e.device).vendor == vendor] or refs
    effs = [entry_efficiency(e) for e in pool]
    widen = range_setting("outside_family_widen")
    who = f"{device} is outside every calibrated family" if device else "no device given"
    note = (f"HPL efficiency: {who}; median of {_listing(pool)}, range widened by +/-{widen:.0%} "
            f"(ASSUMED: a device without its own TOP500 reference run){left}")
    mid = statistics.median(effs)
    return Estimate(mid, min(effs) * (1 - widen), max(effs) * (1 + widen), "1", (note,)), True


@dataclass(frozen=True)
class HplEstimate:
    system: str
    gpus: Estimate
    rate_per_gpu: Estimate      # flop/s, the rate HPL is counted at (or measured DGEMM)
    efficiency: Estimate
    rmax: Estimate              # flop/s
    rmax_per_gpu: Estimate      # flop/s
    it_power: Estimate | None   # W during HPL
    gflops_per_w: Estimate | None
    top500: Top500Entry | None  # the TOP500 run with this machine's GPU count, when there is one
    measured: bool
    note: str = ""
    clock: float = 1.0          # compute clock factor under a power cap (rate x efficiency x clock = per GPU)

    @property
    def top500_rmax(self) -> float | None:
        return self.top500.rmax_flop_s if self.top500 else None

    @property
    def error_vs_top500(self) -> float | None:
        return None if not self.top500 else self.rmax.value / self.top500.rmax_flop_s - 1.0

    @property
    def top500_inside_range(self) -> bool | None:
        return None if not self.top500 else self.rmax.low <= self.top500.rmax_flop_s <= self.rmax.high

    def to_json(self) -> dict[str, Any]:
        t = self.top500
        return {"system": self.system, "gpus": self.gpus, "rate_per_gpu_flop_s": self.rate_per_gpu,
                "efficiency": self.efficiency, "rmax_flop_s": self.rmax, "rmax_per_gpu_flop_s": self.rmax_per_gpu,
                "it_power_w": self.it_power, "gflops_per_w": self.gflops_per_w,
                "top500_entry": t.key if t else None, "top500_rmax_flop_s": self.top500_rmax,
                "top500_rmax_over_rpeak": t.rmax_over_rpeak if t else None,
                "top500_gflops_per_w": t.gflops_per_w if t else None,
                "error_vs_top500": self.error_vs_top500, "top500_inside_range": self.top500_inside_range,
                "measured_profile": self.measured, "note": self.note}


def rate_and_efficiency(spec: DeviceSpec, machine: str | None, profile: Any,
                         eff_override: Estimate | None, gpus: float | None = None) -> tuple[Estimate, Estimate, bool]:
    if profile_applies(spec, profile) and not profile.uses_datasheet_for("fp64"):   # no FP64 GEMM on file: the datasheet path
        dgemm = profile_estimate(lambda w: profile.gemm_flop_s("fp64", 8192, 8192, 8192, which=w), "flop/s",
                                 f"{spec.key} FP64 DGEMM from the profile ({getattr(profile, 'origin', 'measured')})")
        if dgemm is not None:
            # a measured rate above the datasheet peak is the profile's spread, not the part: held at the
            # peak of the part measured (a profile used anyway on another part: the lower of the two)
            tops = [t for t in (fp64_ceiling_flop_s(spec), fp64_ceiling_flop_s(getattr(profile, "measured_on", None) or spec))
                    if t is not None]
            top = min(tops) if tops else None
            if top is not None:
                dgemm = Estimate(min(dgemm.value, top), min(dgemm.low, top), min(dgemm.high, top), dgemm.unit,
                                 dgemm.assumptions)
            return dgemm, eff_override or efficiency("hpl_fraction_of_measured_dgemm"), True
    exclude = (machine,) if machine else ()
    # the efficiencies are Rmax over the central counted rate (entry_efficiency): for a device the lists
    # carry, that rate is the basis its own and its family's runs were divided by, so the band already
    # holds what the datasheet's spread would add and the rate enters at its centre, counted once. A
    # device no list carries (MI430X) keeps its rate's range: what it will be counted at is not known.
    rate = hpl_rate(spec)
    if any(same_part(e.device, spec.key) for e in load_entries().values()):
        rate = Estimate.exact(rate.value, rate.unit, *rate.assumptions)
    return rate, eff_override or hpl_efficiency(spec.key, exclude, gpus), False


def _power(system: SystemSpec, gpus: Estimate, per_gpu: Estimate, top: Top500Entry | None):
    """IT power during HPL and GF/W: from node power when given, else from the TOP500 run's power."""
    if system.node_power_w is not None:
        node = energy.node_power(system)  # less what a GPU power limit sheds
        power = (energy.it_power(system) if energy.site_bound(system) else
                 combine(lambda n, p: n / system.gpus_per_node * p, gpus, node, unit="W"))
        power = Estimate(power.value, power.low, power.high, "W", power.assumptions + (
            "HPL draws the node power in the system's stated range (a Green500 run tuned for GFLOP/s per W sits near its low end; IT only, PUE excluded, as TOP500 reports)",))
        return power, combine(lambda r, p: r / p / 1e9, per_gpu, node.scale(1 / system.gpus_per_node), unit="GFLOP/s/W")
    if top is not None and top.power_w:
        w = top.power_w / top.gpus_in_run
        note = f"power per GPU = {top.label} power {top.power_w / 1e3:,.0f} kW / {top.gpus_in_run:,.0f} GPUs = {w:.0f} W"
        power = gpus.map(lambda n: n * w, "W", note)
        return power, per_gpu.map(lambda r: r / w / 1e9, "GFLOP/s/W", note)
    return None, None


def fp64_ceiling_flop_s(spec: DeviceSpec) -> float | None:
    """The fastest FP64 rate the device has, at the top of its datasheet range: its matrix units
    where they beat its vector ones (CDNA2/3 count at the vector rate but run HPL's DGEMM on the
    matrix units, up to 2x it), else its vector rate. No HPL run can exceed it."""
    highs = [e.high for k in ("fp64_vector", "fp64_matrix") if (e := peak_estimate(spec, k)) is not None]
    return max(highs) if highs else None


def under_fp64_ceiling(per_gpu: Estimate, spec: DeviceSpec, clock: float) -> Estimate:
    """Rmax per GPU with its bounds held at or below the device's FP64 peak (x the clock a power cap
    leaves): a family's +/- half-width about a high centre (Blackwell's, 83% of a rate its tensor and
    FMA units share) would otherwise print an upper end above 100% of peak."""
    top = fp64_ceiling_flop_s(spec)
    cap = None if top is None else top * clock
    if cap is None or per_gpu.high <= cap:
        return per_gpu
    return Estimate(min(per_gpu.value, cap), min(per_gpu.low, cap), cap, per_gpu.unit, per_gpu.assumptions + (
        f"upper end capped at {spec.key}'s FP64 peak {cap / 1e12:g} TFLOP/s per GPU: Rmax cannot exceed it",))


def estimate_hpl(system: SystemSpec, profile: Any = None, efficiency_override: Estimate | None = None) -> HplEstimate:
    spec = get_device_spec(system.device)
    machine = system.extra.get("top500_machine")
    target = system.extra.get("hpl_target_eflops")
    # a count derived from an HPL target (gpus_for_rmax) took the family's own efficiency: the same here,
    # so count x Rmax per GPU gives the target back; a count given is paced at its own size
    derived = bool(target) and "gpus" in system.ranges
    rate, eff, measured = rate_and_efficiency(spec, machine or system.key, profile, efficiency_override,
                                              None if derived else system.gpus)
    if eff.high > 1.0:  # Rmax cannot pass the rate it is a fraction of: a wide family band about a high centre
        eff = Estimate(min(eff.value, 1.0), min(eff.low, 1.0), 1.0, eff.unit, eff.assumptions + (
            f"efficiency high end capped at 1 (the band reached {eff.high:.3g}): Rmax cannot exceed the rate counted",))
    gpus = system.estimate("gpus", "gpu")
    clock = clock_factor(system, profile if measured else None)
    per_gpu = combine(lambda r, e: r * e * clock, rate, eff, unit="flop/s",
                      assumptions=tuple(n for n in (cap_note(system, profile if measured else None),) if n))
    per_gpu = under_fp64_ceiling(per_gpu, spec, clock)
    rmax = combine(lambda n, r: n * r, gpus, per_gpu, unit="flop/s", assumptions=("CPU cores not counted",))
    if derived and not measured and efficiency_override is None:
        # the GPU count was derived from this target with this rate and efficiency (seeds/systems.toml
        # notes; gpus_for_rmax): its low end goes with the high per-GPU rate, so Rmax is the target at
        # every corner, not the product of two ranges taken as unrelated
        rmax = Estimate.exact(float(target) * 1e18, "flop/s", f"Rmax = the {target:g} EFLOP/s HPL target the GPU count "
                              "was derived from (count and per-GPU rate are not independent)", "CPU cores not counted")
    capped = system.gpu_power_limit_w is not None
    top = None if capped or "gpus" in system.ranges else matching_entry(machine, system.gpus)
    note = ""
    if machine and capped:
        note = "no TOP500 comparison: the listed runs were at board power, this system caps its GPUs"
    elif machine and top is None:
        runs = [e for e in load_entries().values() if e.machine == machine]
        note = ("no TOP500 comparison: the listed runs used " +
                ", ".join(f"{e.gpus_in_run:,.0f} GPUs ({e.list_date})" for e in runs) +
                f", not {system.gpus:,.0f}") if runs else ""
    power, gf_w = _power(system, gpus, per_gpu, top)
    return HplEstimate(system.key, gpus, rate, eff, rmax, per_gpu, power, gf_w, top, measured, note, clock)


def gpus_for_rmax(target_flop_s: float, spec: DeviceSpec, eff: Estimate | None = None) -> Estimate:
    """How many GPUs an HPL target needs: target / (HPL rate x efficiency), over both ranges."""
    rate = hpl_rate(spec)
    e = eff or hpl_efficiency(spec.key)
    return combine(lambda r, x: target_flop_s / (r * x), rate, e, unit="gpu",
                   assumptions=(f"GPUs for {target_flop_s / 1e18:g} EFLOP/s HPL on {spec.key}",))


def check_against_top500(roles: tuple[str, ...] = ("check",)) -> list[dict[str, Any]]:
    """Each listed run of the given roles estimated from its device and GPU count, leaving its machine out."""
    rows = []
    for e in load_entries().values():
        if e.role not in roles:
            continue
        spec = get_device_spec(e.device)
        rate, eff, _ = rate_and_efficiency(spec, e.machine, None, None, e.gpus_in_run)
        per_gpu = under_fp64_ceiling(combine(lambda r, x: r * x, rate, eff, unit="flop/s"), spec, 1.0)
        rmax = per_gpu.scale(e.gpus_in_run)
        rows.append({"entry": e.key, "machine": e.machine, "role": e.role, "device": e.device,
                     "family": family_of(e.device), "gpus": e.gpus_in_run, "model": rmax,
                     "top500_rmax_flop_s": e.rmax_flop_s, "error": rmax.value / e.rmax_flop_s - 1,
                     "inside_range": rmax.low <= e.rmax_flop_s <= rmax.high})
    return rows


def h100_machine(left_out: str, rmax_flop_s: float) -> HplEstimate:
    """HPL of the H100 reference machine as large as `rmax_flop_s` needs, calibrated with the TOP500
    machine `left_out` left out (as the system it is compared with): its count from one H100's
    rate, then again at that count until it holds (the slowest GPU's pace moves slowly with it).
    `plan hpl` and `check` take their delivered H100-equivalents from it."""
    from recoque.planner import equivalents

    profile = equivalents.measured_profile_for(equivalents.H100)  # reads seeds/measured once
    gpus, last = 1, 0
    for _ in range(5):
        ref_sys = equivalents.h100_reference(gpus)
        ref = estimate_hpl(replace(ref_sys, extra={**ref_sys.extra, "top500_machine": left_out}), profile)
        gpus, last = max(1, round(rmax_flop_s / ref.rmax_per_gpu.value)), gpus
        if gpus == last:
            break
    return ref
