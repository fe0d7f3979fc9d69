"""HPL (TOP500 Linpack): Rmax = GPUs x FP64 rate HPL is counted at x HPL efficiency.

The rate: TOP500 Rpeak counts AMD CDNA2/CDNA3 parts at their FP64 *vector* rate (El Capitan's
Rpeak per APU, 62.7 TF, matches the MI300A's 61.3 TF vector rate plus its CPU cores, not 122.6 TF
matrix), and NVIDIA Hopper at its FP64 *tensor* rate (JUPITER's 52.1 TF per GH200 lies between
34 vector and 67 tensor). On MI430X and Blackwell the two rates are equal. See
../shared/reference/hardware_facts.md section 5a.

The efficiency: Rmax / (GPUs x that rate) of the TOP500 reference machines in seeds/systems.toml
(`hpl_reference = true`). Estimating one of them leaves it out, so no machine is fitted on its own
Rmax. CPU cores are ignored (about 1% of Frontier's Rpeak).
With a measured profile for the device: Rmax = GPUs x measured DGEMM x the HPL-to-DGEMM fraction.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from recoque.catalog import DeviceSpec, get_device_spec
from recoque.errors import BadInput
from recoque.estimate import Estimate, combine
from recoque.fileio import read_seed_toml
from recoque.planner.system import SystemSpec, system_from_toml
from recoque.planner.workloads import efficiency, peak_estimate, profile_applies, profile_estimate

PETA = 1e15


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
            raise BadInput(f"device {spec.key}: FP64 rate unknown", "complete seeds/hardware.toml")
        key = other
    return Estimate(est.value, est.low, est.high, "flop/s",
                    est.assumptions + (f"HPL counted at {spec.key} {key} {est.value / 1e12:g} TFLOP/s per GPU",))


def reference_systems() -> dict[str, SystemSpec]:
    presets = read_seed_toml("systems.toml").get("systems", {})
    return {k: system_from_toml(k, v) for k, v in presets.items() if v.get("hpl_reference") is True}


def reference_efficiencies(exclude: tuple[str, ...] = ()) -> dict[str, float]:
    """Rmax / (GPUs x HPL rate) per reference machine, central values."""
    out = {}
    for key, sysm in reference_systems().items():
        if key in exclude:
            continue
        rate = hpl_rate(get_device_spec(sysm.device)).value
        out[key] = float(sysm.extra["rmax_pflops"]) * PETA / (sysm.gpus * rate)
    return out


def hpl_efficiency(exclude: tuple[str, ...] = ()) -> Estimate:
    eff = reference_efficiencies(exclude)
    if not eff:
        raise BadInput("no TOP500 reference machine left to calibrate the HPL efficiency",
                       "keep hpl_reference = true on at least one system in seeds/systems.toml")
    vals = list(eff.values())
    listing = ", ".join(f"{k} {v:.3f}" for k, v in sorted(eff.items()))
    note = f"HPL efficiency = Rmax / (GPUs x HPL rate): median, min..max of {listing}"
    if exclude:
        note += f" (left out: {', '.join(exclude)})"
    return Estimate(statistics.median(vals), min(vals), max(vals), "1", (note,))


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
    top500_rmax: float | None   # flop/s when the system has one
    measured: bool

    @property
    def error_vs_top500(self) -> float | None:
        return None if not self.top500_rmax else self.rmax.value / self.top500_rmax - 1.0

    def to_json(self) -> dict[str, Any]:
        return {"system": self.system, "gpus": self.gpus, "rate_per_gpu_flop_s": self.rate_per_gpu,
                "efficiency": self.efficiency, "rmax_flop_s": self.rmax, "rmax_per_gpu_flop_s": self.rmax_per_gpu,
                "it_power_w": self.it_power, "gflops_per_w": self.gflops_per_w,
                "top500_rmax_flop_s": self.top500_rmax, "error_vs_top500": self.error_vs_top500,
                "measured_profile": self.measured}


def rate_and_efficiency(spec: DeviceSpec, system_key: str, profile: Any,
                         eff_override: Estimate | None) -> tuple[Estimate, Estimate, bool]:
    if profile_applies(spec, profile):
        dgemm = profile_estimate(lambda w: profile.gemm_flop_s("fp64", 8192, 8192, 8192, which=w), "flop/s",
                                 f"{spec.key} FP64 DGEMM from the profile ({getattr(profile, 'origin', 'measured')})")
        if dgemm is not None:
            return dgemm, eff_override or efficiency("hpl_fraction_of_measured_dgemm"), True
    return hpl_rate(spec), eff_override or hpl_efficiency(exclude=(system_key,) if system_key else ()), False


def estimate_hpl(system: SystemSpec, profile: Any = None, efficiency_override: Estimate | None = None) -> HplEstimate:
    spec = get_device_spec(system.device)
    rate, eff, measured = rate_and_efficiency(spec, system.key, profile, efficiency_override)
    gpus = system.estimate("gpus", "gpu")
    per_gpu = combine(lambda r, e: r * e, rate, eff, unit="flop/s")
    rmax = combine(lambda n, r: n * r, gpus, per_gpu, unit="flop/s",
                   assumptions=("CPU cores not counted",))
    power = gf_w = None
    if system.node_power_w is not None:
        power = combine(lambda n, p: n / system.gpus_per_node * p, gpus, system.estimate("node_power_w", "W"),
                        unit="W", assumptions=("HPL draws the full node power (IT, PUE excluded, as TOP500 reports)",))
        gf_w = combine(lambda r, p: r / p / 1e9, per_gpu,
                       system.estimate("node_power_w", "W").scale(1 / system.gpus_per_node), unit="GFLOP/s/W")
    top = system.extra.get("rmax_pflops")
    return HplEstimate(system.key, gpus, rate, eff, rmax, per_gpu, power, gf_w,
                       float(top) * PETA if top is not None else None, measured)


def gpus_for_rmax(target_flop_s: float, spec: DeviceSpec, eff: Estimate | None = None) -> Estimate:
    """How many GPUs an HPL target needs: target / (HPL rate x efficiency), over both ranges."""
    rate = hpl_rate(spec)
    e = eff or hpl_efficiency()
    return combine(lambda r, x: target_flop_s / (r * x), rate, e, unit="gpu",
                   assumptions=(f"GPUs for {target_flop_s / 1e18:g} EFLOP/s HPL on {spec.key}",))
