"""HPCG-class (sparse, bandwidth-bound) rate of a system, calibrated on published HPCG results.

    HPCG FLOP/s = GPUs x HBM bandwidth x memory efficiency (device family) x parallel efficiency
                  / bytes per FLOP of the kernel                     (seeds/hpcg.toml [kernel])
    parallel efficiency (weak scaling, fixed work per GPU as HPCG runs it)
                = t_local / (t_local + t_halo + t_allreduce) per CG iteration, with
      t_local     = rows touched per iteration x local points x bytes per row / datasheet bandwidth
      t_halo      = exchanges x (6 faces x points^(2/3) x 8 B / link bandwidth + 6 x latency)
      t_allreduce = allreduces x 2 log2(GPUs) x latency
The memory efficiency of a family = published HPCG x bytes per FLOP / (GPUs x datasheet bandwidth x
parallel efficiency) of its reference results, the estimated machine left out. With a measured
profile, the measured STREAM bandwidth replaces the datasheet and the efficiency is divided by the
datasheet-to-STREAM fraction (ASSUMED, printed).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

from recoque.catalog import get_device_spec
from recoque.errors import BadInput
from recoque.estimate import Estimate, combine
from recoque.fileio import read_seed_toml
from recoque.planner.system import SystemSpec, system_from_toml
from recoque.planner.workloads import efficiency, memory_rate, profile_applies

PETA = 1e15


@dataclass(frozen=True)
class HpcgEntry:
    key: str
    role: str
    device: str
    machine: str
    gpus: float
    hpcg_flop_s: float
    status: str
    sources: Mapping[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _seed() -> dict[str, Any]:
    return read_seed_toml("hpcg.toml")


def kernel(name: str) -> float:
    k = _seed().get("kernel", {})
    if name not in k:
        raise BadInput(f"hpcg.toml [kernel]: missing `{name}`", "add it with its source")
    return float(k[name])


def family_of(device: str) -> str | None:
    return _seed().get("families", {}).get(device)


def bytes_per_flop() -> float:
    return kernel("bytes_per_row") / kernel("flops_per_row")


def load_entries() -> dict[str, HpcgEntry]:
    out = {}
    for k, v in _seed().get("entries", {}).items():
        if v.get("role") not in ("reference", "check"):
            raise BadInput(f"hpcg.toml [entries.{k}]: role must be reference or check", "fix seeds/hpcg.toml")
        out[k] = HpcgEntry(k, str(v["role"]), str(v["device"]), str(v.get("top500_machine", k)), float(v["gpus"]),
                           float(v["hpcg_pflops"]) * PETA, str(v.get("status", "")), dict(v.get("sources", {})))
    return out


def _system_for(e: HpcgEntry) -> SystemSpec:
    """The preset of this machine resized to the HPCG run, else a generic 4-GPU-node system (stated)."""
    presets = read_seed_toml("systems.toml").get("systems", {})
    for key, raw in presets.items():
        if raw.get("top500_machine") == e.machine:
            return system_from_toml(key, raw).with_gpus(int(e.gpus))
    return system_from_toml(e.machine, {"device": e.device, "gpus": e.gpus, "gpus_per_node": 4,
                                        "intra_node_bandwidth_gb_s": 100, "inter_node_bandwidth_gb_s": 25,
                                        "top500_machine": e.machine, "notes": ["generic 4-GPU nodes, 200 Gb/s per GPU (assumed)"]})


def parallel_efficiency(system: SystemSpec) -> float:
    spec = get_device_spec(system.device)
    if spec.hbm_bandwidth_bytes_s is None:
        raise BadInput(f"device {spec.key}: HBM bandwidth unknown", "complete seeds/hardware.toml")
    pts = kernel("local_grid_points")
    t_local = kernel("rows_touched_per_iteration") * pts * kernel("bytes_per_row") / spec.hbm_bandwidth_bytes_s
    if system.gpus <= 1:
        return 1.0
    lat = system.inter_node_latency_s
    face = pts ** (2.0 / 3.0) * 8.0
    t_halo = kernel("halo_exchanges_per_iteration") * (6 * face / system.known("inter_node_bandwidth_bytes_s") + 6 * lat)
    t_red = kernel("allreduces_per_iteration") * 2 * math.log2(system.gpus) * lat
    return t_local / (t_local + t_halo + t_red)


def entry_memory_efficiency(e: HpcgEntry) -> float:
    spec = get_device_spec(e.device)
    return e.hpcg_flop_s * bytes_per_flop() / (e.gpus * spec.hbm_bandwidth_bytes_s * parallel_efficiency(_system_for(e)))


def memory_efficiency(device: str, exclude_machines: tuple[str, ...] = ()) -> Estimate:
    refs = [e for e in load_entries().values() if e.role == "reference" and e.machine not in exclude_machines]
    if not refs:
        raise BadInput("no HPCG reference result left to calibrate on", "keep role = \"reference\" in seeds/hpcg.toml")
    left = f" (left out: {', '.join(exclude_machines)})" if exclude_machines else ""
    fam = family_of(device)
    same = [e for e in refs if fam is not None and family_of(e.device) == fam]
    listing = ", ".join(f"{e.machine} {entry_memory_efficiency(e):.3f}" for e in (same or refs))
    r = _seed().get("range", {})
    if same:
        effs = [entry_memory_efficiency(e) for e in same]
        mid, floor = statistics.median(effs), float(r["single_reference_floor"])
        note = f"HBM efficiency on HPCG, family {fam}: median of {listing}, at least +/-{floor:.0%}{left}"
        return Estimate(mid, min(min(effs), mid * (1 - floor)), max(max(effs), mid * (1 + floor)), "1", (note,))
    effs = [entry_memory_efficiency(e) for e in refs]
    widen = float(r["outside_family_widen"])
    note = (f"HBM efficiency on HPCG: {device} is outside every calibrated family; median of {listing}, "
            f"their span widened by +/-{widen:.0%} (ASSUMED){left}")
    return Estimate(statistics.median(effs), min(effs) * (1 - widen), max(effs) * (1 + widen), "1", (note,))


@dataclass(frozen=True)
class HpcgEstimate:
    system: str
    gpus: Estimate
    bandwidth_per_gpu: Estimate      # bytes/s (datasheet or measured)
    memory_efficiency: Estimate
    parallel_efficiency: float
    bytes_per_flop: float
    rate: Estimate                   # flop/s, whole system
    published: HpcgEntry | None

    @property
    def error(self) -> float | None:
        return None if self.published is None else self.rate.value / self.published.hpcg_flop_s - 1

    def to_json(self) -> dict[str, Any]:
        p = self.published
        return {"system": self.system, "gpus": self.gpus, "bandwidth_per_gpu_bytes_s": self.bandwidth_per_gpu,
                "memory_efficiency": self.memory_efficiency, "parallel_efficiency": self.parallel_efficiency,
                "bytes_per_flop": self.bytes_per_flop, "hpcg_flop_s": self.rate,
                "published_hpcg_flop_s": p.hpcg_flop_s if p else None, "error_vs_published": self.error,
                "published_inside_range": (self.rate.low <= p.hpcg_flop_s <= self.rate.high) if p else None}


def estimate_hpcg(system: SystemSpec, profile: Any = None) -> HpcgEstimate:
    spec = get_device_spec(system.device)
    machine = str(system.extra.get("top500_machine", system.key))
    eff = memory_efficiency(spec.key, (machine,))
    if profile_applies(spec, profile):
        bw = memory_rate(spec, profile)
        stream = efficiency("memory_fraction")
        eff = combine(lambda e, s: e / s, eff, stream, unit="1",
                      assumptions=("measured STREAM bandwidth: the HPCG efficiency is divided by the datasheet-to-STREAM fraction (ASSUMED)",))
    elif spec.hbm_bandwidth_bytes_s is None:
        raise BadInput(f"device {spec.key}: HBM bandwidth unknown", "complete seeds/hardware.toml or pass --profile")
    else:
        bw = Estimate.exact(spec.hbm_bandwidth_bytes_s, "bytes/s", f"{spec.key} datasheet HBM {spec.hbm_bandwidth_bytes_s / 1e12:g} TB/s")
    pe, bpf = parallel_efficiency(system), bytes_per_flop()
    gpus = system.estimate("gpus", "gpu")
    rate = combine(lambda n, b, e: n * b * e * pe / bpf, gpus, bw, eff, unit="flop/s",
                   assumptions=(f"{bpf:.2f} B/FLOP (340 B per 54-FLOP row), parallel efficiency {pe:.3f} (weak scaling, "
                                f"{kernel('local_grid_points'):.2g} points per GPU)",))
    pub = [e for e in load_entries().values() if e.machine == machine and round(e.gpus) == round(system.gpus)]
    return HpcgEstimate(system.key, gpus, bw, eff, pe, bpf, rate, pub[0] if pub else None)


def check_against_hpcg(roles: tuple[str, ...] = ("check",)) -> list[dict[str, Any]]:
    """Each published HPCG result of the given roles, estimated with its machine left out."""
    rows = []
    for e in load_entries().values():
        if e.role in roles:
            est = estimate_hpcg(_system_for(e))
            rows.append({"entry": e.key, "model": est.rate, "published_flop_s": e.hpcg_flop_s,
                         "error": est.rate.value / e.hpcg_flop_s - 1,
                         "inside_range": est.rate.low <= e.hpcg_flop_s <= est.rate.high})
    return rows
