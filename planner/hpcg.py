"""HPCG-class (sparse, bandwidth-bound) rate of a system, calibrated on published HPCG results.

    HPCG FLOP/s = GPUs x sustained bandwidth per GPU x parallel efficiency x code efficiency
      sustained bandwidth: STREAM triad of one GPU (seeds/hpcg.toml [stream_triad_tb_s], or the measured
                           profile); a device without a figure takes its memory family's fraction
                           of datasheet bandwidth
      parallel efficiency (weak scaling, fixed work per GPU as HPCG runs it)
                = t_local / (t_local x slowdown(GPUs) + t_halo + t_allreduce) per CG iteration, with
          slowdown    = the slowest GPU's local sweep over the median GPU's: the iteration's dot
                        products wait for it (planner/pace.py; the spread is measured on SGEMM and
                        taken for the bandwidth-bound sweep too: Sinha et al. find the variation
                        'regardless of the application'; no per-GPU STREAM spread is published)
          t_local     = rows touched per iteration x local points x bytes per row / sustained bandwidth
          t_halo      = exchanges x (6 faces x points^(2/3) x 8 B / link bandwidth + 6 x latency)
          t_allreduce = allreduces x 2 log2(GPUs) x latency
      code efficiency (FLOP per sustained byte) = published HPCG / (GPUs x sustained bandwidth x
                parallel efficiency) of the reference results, the estimated machine left out:
                one constant for all ([calibration] pooling = "global") or one per vendor code,
                the median (or mean) of the references; leave-one-out on the references chose
                global + median (benchmarks/hpcg_holdout.py prints every variant).
The range multiplies two bands: the code band (the 90% Student-t prediction interval of the
references' own leave-one-out errors, never narrower than the worst of them; the estimated machine
left out of those too; widened for a memory family without any reference) and
the memory band (the spread of the sustained bandwidth: one tool vs another for a measured device,
the family's measured fractions for an unmeasured one). Check entries never enter either.
A list entry of an Ampere-or-later NVIDIA GPU from before the HPCG FAQ's ban on matrix compression may
have run NVIDIA HPCG's L2 data compression (seeds/hpcg.toml [l2_compression]): its range reaches the
compressed rate and its centre sits at the geometric middle of the two cases.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Mapping

from recoque.catalog import get_device_spec, same_part
from recoque.errors import BadInput
from recoque.estimate import Estimate, combine
from recoque.fileio import read_seed_toml
from recoque.planner import pace
from recoque.planner.system import SystemSpec, system_from_toml
from recoque.planner.workloads import memory_rate, profile_applies

PETA = 1e15
# Student t, 0.95 quantile (two-sided 90%), by degrees of freedom 1..10 (standard tables): the
# prediction interval of a new machine from n leave-one-out errors is t(n-1) x s x sqrt(1 + 1/n).
T_95 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812)
TERA = 1e12
POOLINGS = ("global", "vendor")
CENTRALS = ("median", "mean")


@dataclass(frozen=True)
class HpcgEntry:
    key: str
    role: str
    device: str
    machine: str
    gpus: float
    hpcg_flop_s: float
    status: str
    hpcg_list: str = ""
    gpus_per_node: int = 4
    sources: Mapping[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _seed() -> dict[str, Any]:
    return read_seed_toml("hpcg.toml")


def _table(name: str) -> dict[str, Any]:
    return _seed().get(name, {})


def kernel(name: str) -> float:
    k = _table("kernel")
    if name not in k:
        raise BadInput(f"hpcg.toml [kernel]: missing `{name}`", "add it with its source")
    return float(k[name])


def range_knob(name: str) -> float:
    r = _table("range")
    if name not in r:
        raise BadInput(f"hpcg.toml [range]: missing `{name}`", "add it with its source")
    return float(r[name])


def bytes_per_flop() -> float:
    return kernel("bytes_per_row") / kernel("flops_per_row")


def memory_family(device: str) -> str | None:
    return _table("memory_families").get(device)


def central_rule() -> str:
    c = str(_table("calibration").get("central", "median"))
    if c not in CENTRALS:
        raise BadInput(f"hpcg.toml [calibration] central = {c!r}", f"use one of {', '.join(CENTRALS)}")
    return c


def pooling() -> str:
    p = str(_table("calibration").get("pooling", "global"))
    if p not in POOLINGS:
        raise BadInput(f"hpcg.toml [calibration] pooling = {p!r}", f"use one of {', '.join(POOLINGS)}")
    return p


# --- entries -----------------------------------------------------------------------------------------

def _gpus_of(key: str, v: Mapping[str, Any]) -> float:
    """GPUs of the HPCG run: `gpus`, or TOP500 cores / cores per GPU, which must divide exactly."""
    if "gpus" in v:
        return float(v["gpus"])
    cores, per = int(v["cores"]), int(v["cores_per_gpu"])
    if per <= 0 or cores % per:
        raise BadInput(f"hpcg.toml [entries.{key}]: {cores} cores do not divide by {per} per GPU",
                       "fix cores_per_gpu (GPU compute units + host cores per GPU) or give gpus")
    return float(cores // per)


@lru_cache(maxsize=1)
def load_entries() -> Mapping[str, HpcgEntry]:
    out = {}
    for k, v in _table("entries").items():
        if v.get("role") not in ("reference", "check"):
            raise BadInput(f"hpcg.toml [entries.{k}]: role must be reference or check", "fix seeds/hpcg.toml")
        out[k] = HpcgEntry(k, str(v["role"]), str(v["device"]), str(v.get("machine", k)), _gpus_of(k, v),
                           float(v["hpcg_pflops"]) * PETA, str(v.get("status", "")), str(v.get("hpcg_list", "")),
                           int(v.get("gpus_per_node", 4)), dict(v.get("sources", {})))
    return MappingProxyType(out)


def references(exclude_machines: tuple[str, ...] = ()) -> list[HpcgEntry]:
    """The reference results left for calibration: never a check entry, never an excluded machine."""
    return [e for e in load_entries().values() if e.role == "reference" and e.machine not in exclude_machines]


# --- sustained bandwidth ---------------------------------------------------------------------------

def _datasheet(device: str) -> float:
    spec = get_device_spec(device)
    bw = spec.hbm_bandwidth_bytes_s
    if bw is None:
        raise BadInput(f"device {device}: HBM bandwidth unknown", spec.complete("hbm_bandwidth_tb_s") + ", or pass --profile")
    return bw


def _in_catalog(device: str) -> bool:
    try:
        get_device_spec(device)
    except BadInput:
        return False
    return True


def measured_fractions(devices: list[str]) -> list[float]:
    """STREAM triad / datasheet of the catalog devices that have a [stream_triad_tb_s] figure."""
    s = _table("stream_triad_tb_s")
    return [float(s[d]) * TERA / _datasheet(d) for d in devices
            if d in s and isinstance(s[d], (int, float)) and _in_catalog(d)]


def _family_fractions(device: str) -> tuple[list[float], str]:
    fam = memory_family(device)
    members = [d for d, f in _table("memory_families").items() if fam is not None and f == fam]
    fr = measured_fractions(members)
    if fr:
        return fr, f"memory family {fam}"
    vendor = get_device_spec(device).vendor
    same_vendor = [d for d in _table("stream_triad_tb_s")
                   if d != "sources" and _in_catalog(d) and get_device_spec(d).vendor == vendor]
    why = f"no measured member of memory family {fam}" if fam else f"{device} is in no memory family of seeds/hpcg.toml"
    return measured_fractions(same_vendor), f"every measured {vendor} device ({why})"


def sustained_bandwidth(device: str) -> Estimate:
    """STREAM triad of one GPU, bytes/s, with the spread of that figure (no profile given)."""
    s, src = _table("stream_triad_tb_s"), _table("stream_triad_tb_s").get("sources", {})
    if device in s and device != "sources":
        v, spread = float(s[device]) * TERA, range_knob("measured_stream_spread")
        note = f"{device} sustained HBM {v / TERA:.3g} TB/s STREAM triad +/-{spread:.0%} ({src.get(device, 'no source')})"
        return Estimate(v, v * (1 - spread), v * (1 + spread), "bytes/s", (note,))
    fr, where = _family_fractions(device)
    if not fr:
        raise BadInput(f"device {device}: no STREAM figure for it or its vendor",
                       "add it to seeds/hpcg.toml [stream_triad_tb_s] or pass --profile")
    ds, floor = _datasheet(device), range_knob("unmeasured_stream_floor")
    mid = statistics.median(fr)
    lo, hi = min(min(fr), mid * (1 - floor)), max(max(fr), mid * (1 + floor))
    note = (f"{device} sustained HBM: no STREAM figure; datasheet {ds / TERA:g} TB/s x the median fraction "
            f"{mid:.2f} of {where} (span {lo:.2f}-{hi:.2f}, at least +/-{floor:.0%}: ASSUMED)")
    return Estimate(ds * mid, ds * lo, ds * hi, "bytes/s", (note,))


# --- parallel efficiency ---------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _presets() -> dict[str, Any]:
    return read_seed_toml("systems.toml").get("systems", {})


def _system_for(e: HpcgEntry) -> SystemSpec:
    """The preset of this machine resized to the HPCG run, else generic nodes of the listed layout (stated)."""
    for key, raw in _presets().items():
        if e.machine in (key, raw.get("top500_machine")):
            return system_from_toml(key, raw).with_gpus(int(e.gpus))
    return system_from_toml(e.machine, {"device": e.device, "gpus": e.gpus, "gpus_per_node": e.gpus_per_node,
                                        "intra_node_bandwidth_gb_s": 100, "inter_node_bandwidth_gb_s": 25,
                                        "top500_machine": e.machine,
                                        "notes": ["generic nodes, 200 Gb/s NIC per GPU (assumed)"]})


def parallel_efficiency(system: SystemSpec, bandwidth_bytes_s: float | None = None) -> float:
    """Weak-scaling efficiency of one CG iteration at the HPCG work per GPU (halo + allreduce cost)."""
    if system.gpus <= 1:
        return 1.0
    bw = bandwidth_bytes_s if bandwidth_bytes_s is not None else sustained_bandwidth(system.device).value
    pts = kernel("local_grid_points")
    t_local = kernel("rows_touched_per_iteration") * pts * kernel("bytes_per_row") / bw
    # inside one node the halos and reductions stay on the scale-up links (as planner/stencil.py)
    one_node = system.in_one_node
    lat = system.intra_node_latency_s if one_node else system.inter_node_latency_s
    link = system.known("intra_node_bandwidth_bytes_s" if one_node else "inter_node_bandwidth_bytes_s")
    face = pts ** (2.0 / 3.0) * 8.0
    t_halo = kernel("halo_exchanges_per_iteration") * (6 * face / link + 6 * lat)
    t_red = kernel("allreduces_per_iteration") * 2 * math.log2(system.gpus) * lat
    return t_local / (t_local * pace.slowdown(system.gpus) + t_halo + t_red)


# --- code efficiency (the one calibrated constant) -------------------------------------------------

def entry_code_efficiency(e: HpcgEntry) -> float:
    """FLOP per sustained byte this published result implies."""
    return _code_efficiency_of(e.key, e.device, e.machine, e.gpus, e.hpcg_flop_s, e.gpus_per_node)


def _implied(e: HpcgEntry) -> float:
    bw = sustained_bandwidth(e.device).value
    return e.hpcg_flop_s / (e.gpus * bw * parallel_efficiency(_system_for(e), bw))


@lru_cache(maxsize=256)
def _code_efficiency_of(key: str, device: str, machine: str, gpus: float, flop_s: float, per_node: int) -> float:
    return _implied(HpcgEntry(key, "reference", device, machine, gpus, flop_s, "", gpus_per_node=per_node))


def _pool(refs: list[HpcgEntry], device: str, how: str) -> list[HpcgEntry]:
    if how == "vendor":
        vendor = get_device_spec(device).vendor
        same = [e for e in refs if get_device_spec(e.device).vendor == vendor]
        return same or refs
    return refs


def _central(refs: list[HpcgEntry], rule: str) -> float:
    agg = statistics.median if rule == "median" else statistics.mean
    return agg(entry_code_efficiency(e) for e in refs)


def loo_ratios(device: str, exclude_machines: tuple[str, ...] = (), how: str | None = None,
               rule: str | None = None) -> list[float]:
    """published / predicted of each reference of the pool, predicted without it (nor the excluded machines)."""
    how, rule = how or pooling(), rule or central_rule()
    refs = references(exclude_machines)
    out = []
    for e in _pool(refs, device, how):
        rest = _pool([r for r in refs if r.machine != e.machine], e.device, how)
        if rest:
            out.append(entry_code_efficiency(e) / _central(rest, rule))
    return out


def band_half_width(ratios: list[float]) -> float:
    """Half-width (in log ratio) of the 90% prediction interval of the leave-one-out errors.

    Four references show little of the spread between machines: their largest error is a floor, and
    the Student-t prediction interval t(n-1) x s x sqrt(1 + 1/n) of the log errors (centred on 0, the
    constant's own estimate) widens it for the few references there are."""
    logs = [math.log(r) for r in ratios]
    worst = max((abs(x) for x in logs), default=0.0)
    if len(logs) < 2:
        return worst
    s = math.sqrt(sum(x * x for x in logs) / (len(logs) - 1))
    t = T_95[min(len(logs) - 1, len(T_95)) - 1]
    return max(worst, t * s * math.sqrt(1 + 1 / len(logs)))


def code_efficiency(device: str, exclude_machines: tuple[str, ...] = (), how: str | None = None,
                    rule: str | None = None) -> Estimate:
    """FLOP per sustained byte: the references' constant; its band the 90% prediction interval of
    their leave-one-out errors (symmetric in ratio: a machine left out can fall either side)."""
    how, rule = how or pooling(), rule or central_rule()
    refs = references(exclude_machines)
    if not refs:
        raise BadInput("no HPCG reference result left to calibrate on", "keep role = \"reference\" in seeds/hpcg.toml")
    used = _pool(refs, device, how)
    mid = _central(used, rule)
    ratios = loo_ratios(device, exclude_machines, how, rule)
    h = band_half_width(ratios)
    lo, hi = math.exp(-h), math.exp(h)
    dropped = [m for m in dict.fromkeys(exclude_machines) if m in {e.machine for e in references()}]
    left = f"; left out: {', '.join(dropped)}" if dropped else ""
    listing = ", ".join(f"{e.machine} {entry_code_efficiency(e):.3f}" for e in used)
    errs = ", ".join(f"{1 / r - 1:+.0%}" for r in ratios)
    note = (f"HPCG code efficiency {mid:.3f} FLOP per sustained byte ({how}, {rule} of {listing}{left}); "
            f"band {lo:.2f}-{hi:.2f} x: 90% prediction interval of the references' leave-one-out errors ({errs})")
    fam = memory_family(device)
    if fam is None or fam not in {memory_family(e.device) for e in refs}:
        w = range_knob("unreferenced_family_widen")
        lo, hi = lo * (1 - w), hi * (1 + w)
        where = f"memory family {fam}" if fam else f"a memory family of {device}"
        note += f", widened +/-{w:.0%}: no HPCG reference in {where} (ASSUMED)"
    return Estimate(mid, mid * lo, mid * hi, "flop/byte", (note,))


# --- L2 data compression (runs before the FAQ ban) ---------------------------------------------------

def compression_factor() -> float:
    """Rate with the matrix values compressed / rate without: bytes per row with and without
    (seeds/hpcg.toml [l2_compression]; the vector and index bytes stay)."""
    c = _table("l2_compression")
    full, values = kernel("bytes_per_row"), float(c["value_bytes_per_row"])
    return full / (full - values * (1.0 - 1.0 / float(c["max_ratio"])))


def may_compress(device: str, hpcg_list: str) -> bool:
    """An Ampere-or-later NVIDIA device on a list from before the ban: the run may have compressed."""
    c = _table("l2_compression")
    return (bool(hpcg_list) and hpcg_list <= str(c.get("last_list_allowed", ""))
            and memory_family(device) in set(c.get("families", ())))


def _with_compression(rate: Estimate, pub: HpcgEntry) -> Estimate:
    f = compression_factor()
    note = (f"{pub.key} ({pub.hpcg_list} list, {pub.device}) may have run NVIDIA HPCG's L2 data compression "
            f"(--l2cmp; allowed before the HPCG FAQ's ban, seeds/hpcg.toml [l2_compression]): "
            f"the fully compressed rate is x{f:.2f} (matrix values at 1/{_table('l2_compression')['max_ratio']:g} "
            f"of their bytes); centre x{math.sqrt(f):.2f} (geometric middle of the two cases), range up to x{f:.2f}")
    return Estimate(rate.value * math.sqrt(f), rate.low, rate.high * f, rate.unit, rate.assumptions + (note,))


# --- estimate --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HpcgEstimate:
    system: str
    gpus: Estimate
    bandwidth_per_gpu: Estimate      # bytes/s: datasheet, or measured with a profile
    memory_efficiency: Estimate      # HPCG bytes at the reference format / bandwidth_per_gpu
    parallel_efficiency: float
    bytes_per_flop: float
    rate: Estimate                   # flop/s, whole system
    published: HpcgEntry | None
    sustained_bandwidth: Estimate | None = None  # bytes/s per GPU, STREAM triad
    code_efficiency: Estimate | None = None      # flop per sustained byte
    not_compared: str = ""                       # why the published run is not held against this one

    @property
    def compared(self) -> HpcgEntry | None:
        """The published run this estimate is held against (None when there is none or it is not comparable)."""
        return None if self.not_compared else self.published

    @property
    def error(self) -> float | None:
        return None if self.compared is None else self.rate.value / self.compared.hpcg_flop_s - 1

    @property
    def inside(self) -> bool | None:
        p = self.compared
        return None if p is None else self.rate.low <= p.hpcg_flop_s <= self.rate.high

    def to_json(self) -> dict[str, Any]:
        p = self.compared
        return {"system": self.system, "gpus": self.gpus, "bandwidth_per_gpu_bytes_s": self.bandwidth_per_gpu,
                "sustained_bandwidth_per_gpu_bytes_s": self.sustained_bandwidth,
                "code_efficiency_flop_per_byte": self.code_efficiency,
                "memory_efficiency": self.memory_efficiency, "parallel_efficiency": self.parallel_efficiency,
                "bytes_per_flop": self.bytes_per_flop, "hpcg_flop_s": self.rate,
                "published_hpcg_flop_s": p.hpcg_flop_s if p else None, "error_vs_published": self.error,
                "published_inside_range": self.inside, "not_compared": self.not_compared or None}


def _bandwidths(system: SystemSpec, profile: Any) -> tuple[Estimate, Estimate]:
    """(bandwidth shown per GPU, sustained bandwidth the model uses): measured when a profile applies."""
    spec = get_device_spec(system.device)
    if profile_applies(spec, profile) and profile.states_memory:
        bw = memory_rate(spec, profile)
        return bw, bw
    ds = _datasheet(spec.key)
    return Estimate.exact(ds, "bytes/s", f"{spec.key} datasheet HBM {ds / TERA:g} TB/s"), sustained_bandwidth(spec.key)


def _per_package(listed: str, device: str) -> int:
    """GPUs of `device` per GPU of the list entry's `listed` (2 where the list counts MI250X packages
    and the system its GCDs)."""
    a = get_device_spec(listed)
    return a.shown_per_package if a.shown_as == device else 1


def estimate_hpcg(system: SystemSpec, profile: Any = None, how: str | None = None,
                  rule: str | None = None, published: HpcgEntry | None = None) -> HpcgEstimate:
    """The system's HPCG rate; `published`: the list entry it is held against (else the entry of the
    same machine and GPU count, if any)."""
    spec = get_device_spec(system.device)
    machine = str(system.extra.get("top500_machine", system.key))
    shown, sus = _bandwidths(system, profile)
    # left out of the calibration: the list machine this system is (same name and part), not a namesake
    own = tuple(m for m in dict.fromkeys((machine, system.key))
                if any(e.machine == m and same_part(e.device, spec.key) for e in load_entries().values()))
    code = code_efficiency(spec.key, own, how, rule)
    pe, bpf = parallel_efficiency(system, sus.value), bytes_per_flop()
    gpus = system.estimate("gpus", "gpu")
    # the code efficiencies are flop per central STREAM byte of each reference, so their leave-one-out
    # band already holds a measured STREAM figure's spread: such a figure enters at its centre (an
    # unmeasured one, a family fraction of the datasheet, keeps its span: that is not in the band)
    listed = not (profile_applies(spec, profile) and profile.states_memory) and spec.key in _table("stream_triad_tb_s")
    counted = Estimate.exact(sus.value, sus.unit, *sus.assumptions) if listed else sus
    rate = combine(lambda n, b, c: n * b * c * pe, gpus, counted, code, unit="flop/s",
                   assumptions=(f"parallel efficiency {pe:.3f} (weak scaling, {kernel('local_grid_points'):.2g} "
                                f"points per GPU, halo + allreduce per CG iteration, the slowest of {system.gpus:,.0f} GPUs' "
                                f"sweep x{pace.slowdown(system.gpus):.3f})",))
    mem = combine(lambda s, c: s * c * bpf / shown.value, sus, code, unit="1",
                  assumptions=(f"HBM efficiency = sustained bandwidth x code efficiency x {bpf:.2f} B/FLOP "
                               f"(340 B per 54-FLOP row) / the bandwidth shown",))
    if published is None:  # the same machine, GPU count and part (a user's file named like a list machine is not it)
        published = next((e for e in load_entries().values() if e.machine in (machine, system.key)
                          and same_part(e.device, spec.key)
                          and round(e.gpus * _per_package(e.device, spec.key)) == round(system.gpus)), None)
    if published is not None and may_compress(published.device, published.hpcg_list):
        rate = _with_compression(rate, published)
    why = ("the published run was at board power, this system caps its GPUs"
           if published is not None and system.gpu_power_limit_w is not None else "")  # as plan hpl with TOP500
    return HpcgEstimate(system.key, gpus, shown, mem, pe, bpf, rate, published, sus, code, why)


def estimate_entry(e: HpcgEntry, how: str | None = None, rule: str | None = None) -> HpcgEstimate:
    """A published result estimated with its machine left out of the calibration (and of the band)."""
    return estimate_hpcg(_system_for(e), how=how, rule=rule, published=e)


def check_against_hpcg(roles: tuple[str, ...] = ("check",), how: str | None = None,
                       rule: str | None = None) -> list[dict[str, Any]]:
    """Each published HPCG result of the given roles, estimated with its machine left out."""
    rows = []
    for e in load_entries().values():
        if e.role in roles:
            est = estimate_entry(e, how, rule)
            rows.append({"entry": e.key, "role": e.role, "device": e.device, "gpus": e.gpus,
                         "hpcg_list": e.hpcg_list, "model": est.rate, "published_flop_s": e.hpcg_flop_s,
                         "error": est.rate.value / e.hpcg_flop_s - 1,
                         "inside_range": est.rate.low <= e.hpcg_flop_s <= est.rate.high})
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean |error| and the fraction of published figures inside the printed range."""
    if not rows:
        return {"n": 0, "mean_abs_error": float("nan"), "inside_fraction": float("nan")}
    return {"n": len(rows), "mean_abs_error": statistics.mean(abs(r["error"]) for r in rows),
            "inside_fraction": sum(r["inside_range"] for r in rows) / len(rows)}
