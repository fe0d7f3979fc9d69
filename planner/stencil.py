"""Bandwidth-bound stencil / HPCG-class kernels: time = bytes moved / achieved HBM bandwidth + halo.

Per sweep and GPU (domain split in cubes, one per GPU):
    bytes   = points/GPU x fields x bytes per point-field         (the roofline floor)
    flops   = points/GPU x fields x FLOP per point-field          (bounded by the FP64 vector peak)
    halo    = 6 faces x side^2 x halo width x fields x 8 B, over the inter-node link, + 6 latencies
    time    = max(bytes / HBM rate, flops / FP64 rate) x the slowest GPU's lag (planner/pace.py)
              + halo time (no overlap: conservative)
The arithmetic intensity (FLOP/byte) is well below every GPU's machine balance, so the HBM rate
decides; measured STREAM bandwidth replaces the datasheet x fraction when a profile is given.
The `hpcg` workload runs as HPCG does (weak scaling): a fixed number of points per GPU
(seeds/hpcg.toml [kernel] local_grid_points), so the grid grows with the GPUs; --grid-points
overrides that with a fixed grid (strong scaling).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recoque.catalog import get_device_spec
from recoque.errors import BadInput, DoesNotFit
from recoque.estimate import Estimate, combine
from recoque.planner import pace
from recoque.planner.system import SystemSpec
from recoque.planner.workloads import WorkloadEntry, memory_rate, peak_estimate, profile_applies

FP64_BYTES = 8.0


MAX_GRID_POINTS = 1e24


@dataclass(frozen=True)
class StencilKernel:
    grid_points: float
    fields: float
    flops_per_point_field: float
    bytes_per_point_field: float
    halo_width: float = 1.0
    sweeps: float = 1.0
    points_per_gpu: float | None = None  # weak scaling: the grid is this x the GPUs (grid_points unused)

    def __post_init__(self) -> None:
        for k in ("grid_points", "fields", "flops_per_point_field", "bytes_per_point_field", "sweeps"):
            if getattr(self, k) <= 0:
                raise BadInput(f"stencil `{k}` must be positive, got {getattr(self, k)}", "fix the workload")
        if self.grid_points > MAX_GRID_POINTS:  # beyond it the byte counts overflow to inf
            raise BadInput(f"stencil `grid_points` {self.grid_points:g} is above {MAX_GRID_POINTS:g} (10^6 points in each of "
                           "four dimensions)", "give the grid's point count")
        if self.grid_points != int(self.grid_points):
            raise BadInput(f"stencil `grid_points` must be a whole number, got {self.grid_points!r}", "give a point count")
        if self.points_per_gpu is not None and self.points_per_gpu <= 0:
            raise BadInput(f"stencil `points_per_gpu` must be positive, got {self.points_per_gpu}", "fix the workload")

    def points(self, gpus: float) -> float:
        """Grid points of the whole run on `gpus` GPUs (weak scaling when points_per_gpu is set)."""
        return self.points_per_gpu * gpus if self.points_per_gpu is not None else self.grid_points

    @classmethod
    def from_workload(cls, w: WorkloadEntry, **overrides: Any) -> "StencilKernel":
        kw = {k: w.number(k) for k in ("grid_points", "fields", "flops_per_point_field", "bytes_per_point_field")}
        kw["halo_width"] = w.number("halo_width", 1)
        kw["sweeps"] = w.number("sweeps", 1)
        if w.key == "hpcg" and overrides.get("grid_points") is None:
            from recoque.planner.hpcg import kernel  # HPCG's fixed work per GPU

            kw["points_per_gpu"] = kernel("local_grid_points")
        kw.update({k: float(v) for k, v in overrides.items() if v is not None})
        return cls(**kw)

    @property
    def intensity_flop_per_byte(self) -> float:
        return self.flops_per_point_field / self.bytes_per_point_field


@dataclass(frozen=True)
class StencilEstimate:
    system: str
    gpus: Estimate
    intensity_flop_per_byte: float
    sweep_time: Estimate         # s
    total_time: Estimate         # s
    achieved_flop_s: Estimate    # system
    fraction_of_fp64_peak: Estimate
    halo_share: float            # of the sweep time, central
    assumptions: tuple[str, ...]
    gpu_seconds: Estimate        # GPUs x time to solution, each corner at one GPU count

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["assumptions"] = list(self.assumptions)
        return d


def _sweep_time(n: float, k: StencilKernel, bw: float, fl: float, link: float, lat: float) -> tuple[float, float]:
    pts = k.points(n) / n
    local = max(pts * k.fields * k.bytes_per_point_field / bw, pts * k.fields * k.flops_per_point_field / fl)
    local *= pace.slowdown(n)  # the neighbours' halos wait for the slowest GPU's sweep (planner/pace.py)
    side = pts ** (1.0 / 3.0)
    halo = 6.0 * side ** 2 * k.halo_width * k.fields * FP64_BYTES / link + 6.0 * lat if n > 1 else 0.0
    return local + halo, halo


def resident_bytes_per_point(k: StencilKernel) -> float:
    """What a point holds in HBM: two FP64 time levels of each field, or what a sweep streams per point
    if more (HPCG's 340 B per row is the matrix and vectors, all resident)."""
    return k.fields * max(2.0 * FP64_BYTES, k.bytes_per_point_field)


def _fits(system: SystemSpec, k: StencilKernel, spec: Any) -> str:
    """Refuse a grid whose resident data per GPU passes the HBM; the note saying what was checked."""
    per_point = resident_bytes_per_point(k)
    resident = k.points(system.gpus) / system.gpus * per_point
    if spec.hbm_bytes is None:
        return (f"{resident / 1e9:,.3g} GB per GPU ({per_point:g} B per point) not checked against the HBM: "
                f"{spec.key}'s capacity is unknown (hbm_capacity_gb)")
    if resident > spec.hbm_bytes:
        gb = resident / 1e9
        shown = f"{gb:,.0f}" if gb < 1e6 else f"{gb:.3g}"  # a 1e300-point grid must not print 300 digits
        raise DoesNotFit(f"{shown} GB per GPU exceeds {spec.hbm_bytes / 1e9:.0f} GB HBM on {spec.key} ({per_point:g} B "
                         "per point resident)", "use a smaller grid or a larger system")
    return f"{resident / 1e9:,.3g} GB per GPU resident ({per_point:g} B per point) of {spec.hbm_bytes / 1e9:.0f} GB HBM"


def sustained_rate(spec: Any, profile: Any = None) -> Estimate:
    """One GPU's sustained HBM bandwidth: measured (a profile), else the STREAM figure of the part or
    its memory family (planner/hpcg.py, as the HPCG rows use), else the datasheet x the pooled fraction."""
    from recoque.planner import hpcg

    if profile_applies(spec, profile) and profile.states_memory:
        return memory_rate(spec, profile)
    try:
        return hpcg.sustained_bandwidth(spec.key)
    except BadInput:  # no STREAM figure for the part or its family
        return memory_rate(spec, profile)


def estimate_stencil(system: SystemSpec, k: StencilKernel, profile: Any = None) -> StencilEstimate:
    spec = get_device_spec(system.device)
    block = (2.0 * k.halo_width + 1.0) ** 3  # the smallest block with an interior beyond its halo on every side
    if k.points(system.gpus) / system.gpus < block:
        raise DoesNotFit(f"{k.points(system.gpus):,.0f} grid points over {system.gpus:,.0f} GPUs leave each GPU less than "
                         f"a {block:.0f}-point block (halo width {k.halo_width:g} on every side)",
                         "use a larger grid (--grid-points) or fewer GPUs (--gpus)")
    fit = _fits(system, k, spec)
    bw = sustained_rate(spec, profile)
    fl = peak_estimate(spec, "fp64_vector") or peak_estimate(spec, "fp64_matrix")
    if fl is None:
        raise BadInput(f"device {spec.key}: FP64 peak unknown", spec.complete("fp64_vector_tflops or fp64_matrix_tflops"))
    gpus = system.estimate("gpus", "gpu")
    # the halo crosses the inter-node link once the run spans nodes; inside one node it stays on the scale-up links
    one_node = system.in_one_node
    link = system.estimate("intra_node_bandwidth_bytes_s" if one_node else "inter_node_bandwidth_bytes_s", "bytes/s")
    lat = system.intra_node_latency_s if one_node else system.inter_node_latency_s

    def sweep(n: float, b: float, f: float, li: float) -> float:
        return _sweep_time(n, k, b, f, li, lat)[0]

    def achieved_at(n: float, b: float, f: float, li: float) -> float:
        return k.points(n) * k.fields * k.flops_per_point_field / sweep(n, b, f, li)

    # Everything that depends on the GPU count is taken at one count per corner: the count and the
    # time it gives are not two independent ranges.
    inputs = (gpus, bw, fl, link)
    t = combine(sweep, *inputs, unit="s")
    halo_share = _sweep_time(gpus.value, k, bw.value, fl.value, link.value, lat)[1] / t.value
    total = t.scale(k.sweeps, "s")
    achieved = combine(achieved_at, *inputs, unit="flop/s")
    frac = combine(lambda n, b, f, li: achieved_at(n, b, f, li) / (n * f), *inputs, unit="1")
    gpu_s = combine(lambda n, b, f, li: n * k.sweeps * sweep(n, b, f, li), *inputs, unit="gpu s")
    notes = tuple(dict.fromkeys(bw.assumptions + fl.assumptions + link.assumptions + (
        f"{k.flops_per_point_field:g} FLOP and {k.bytes_per_point_field:g} B per point and field "
        f"({k.intensity_flop_per_byte:.3f} FLOP/B): bandwidth-bound",
        "one cubic subdomain per GPU; halo over the " + ("scale-up links inside the node" if one_node else "inter-node link")
        + f", {lat * 1e6:g} us a message (the system file's {'intra' if one_node else 'inter'}_node_latency_us; "
        f"{'0.43' if one_node else '5'} where it states none), not overlapped with compute (conservative)",
        f"each sweep at the pace of the slowest of {gpus.value:,.0f} GPUs: x{pace.slowdown(gpus.value):.3f} "
        f"(spread {pace.GPU_SPEED_SPREAD:.1%}, planner/pace.py)",
        fit,
    ) + ((f"weak scaling as HPCG runs it: {k.points_per_gpu:.3g} points per GPU, {k.points(gpus.value):.3g} in all",)
         if k.points_per_gpu is not None else ())))
    return StencilEstimate(system.key, gpus, k.intensity_flop_per_byte, t, total, achieved, frac, halo_share, notes, gpu_s)
