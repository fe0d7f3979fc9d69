"""Alpha-beta fits of measured collectives, and their use as the planner's link figures.

A `recoque bench collective` results file holds, per collective, group size and tier (intra- or
inter-node), the time of one call at many message sizes S. Each such series is fitted with
    t(S) = a + b S        (Hockney's latency-bandwidth model)
by least squares on the relative residuals (t_fit - t) / t, so that 8-byte and 8-GiB points weigh
alike. Then algbw = 1/b and busbw = factor/b (nccl-tests' factors, kernels/collectives.py).
In planner/comm.py's terms (all-reduce t = 2(n-1) alpha + 2(n-1)/n S / busbw; all-gather and
reduce-scatter t = (n-1) alpha + (n-1)/n S / busbw; all-to-all and point-to-point one alpha) the
per-hop latency is alpha = a / hops, hops = 2(n-1), n-1 and 1.

A group that spans nodes is not one link: NCCL's ring runs each channel through one NIC of each
node, so the busbw of an l-GPUs-per-node all-reduce is about l times one GPU's NIC share (the node's
NICs together), not the share itself. The planner's inter-node figure is the share, so an inter-node
series is read back through the planner's own hierarchical model (comm.hierarchical_allreduce_time,
hierarchical_allgather_time) with the intra-node bandwidth it uses, and a point-to-point pair
between two nodes (one GPU on each: its own path) comes first. The inter-node latency comes from
that pair only: the planner charges a spanning collective tree hops across nodes plus ring steps
inside them, which one fitted constant cannot be split into.
A series whose largest message still costs less than half its latency (b S_max < a / 2) says
nothing about bandwidth: its slope is noise, and it is not used as one.

`apply_links` puts the fitted figures in place of a system's datasheet link bandwidth and latency
for a training plan and says, for each of the four figures, where it came from.
No torch import: results are read through recoque.bench.schema.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterable

import numpy as np

from recoque.errors import BadInput

TIERS = ("intra", "inter")
# Which fit sets a tier's bandwidth. Inside a node: the all-reduce first (what data parallelism
# runs), then its halves, then a point-to-point exchange. Across nodes: the pair first (one GPU's own
# path, no model in between), then the collectives read back through the hierarchical model
# (nic_share_bytes_s). The latency prefers a pair (one hop); across nodes only a pair gives it.
BANDWIDTH_FROM = {"intra": ("all_reduce", "reduce_scatter", "all_gather", "send_recv"),
                  "inter": ("send_recv", "all_reduce", "reduce_scatter", "all_gather")}
LATENCY_FROM = {"intra": ("send_recv", "all_reduce", "reduce_scatter", "all_gather"), "inter": ("send_recv",)}
BANDWIDTH_SEEN = 0.5  # b S_max / a at which the largest message shows the bandwidth
_FACTOR_K = {"all_reduce": (2, True), "all_gather": (1, True), "reduce_scatter": (1, True),
             "all_to_all": (1, True), "broadcast": (1, False), "send_recv": (1, False)}
MIN_POINTS = 3
SYSTEM_ATTRS = {"intra": ("intra_node_bandwidth_bytes_s", "intra_node_latency_s"),
                "inter": ("inter_node_bandwidth_bytes_s", "inter_node_latency_s")}


def busbw_factor(op: str, n: int) -> float:
    """nccl-tests' bus-bandwidth factor (doc/PERFORMANCE.md), as kernels/collectives.py has it."""
    if op not in _FACTOR_K:
        raise BadInput(f"unknown collective {op!r} in the results", f"expected one of {sorted(_FACTOR_K)}")
    k, scaled = _FACTOR_K[op]
    return k * (n - 1) / n if scaled else float(k)


def hops(op: str, n: int) -> float:
    """Latency terms per call in planner/comm.py's model (ring steps)."""
    return {"all_reduce": 2.0 * (n - 1), "all_gather": n - 1.0, "reduce_scatter": n - 1.0}.get(op, 1.0)


@dataclass(frozen=True)
class LinkFit:
    op: str
    dtype: str
    placement: str
    group_size: int
    tier: str
    sizes_bytes: tuple[int, ...]
    times_s: tuple[float, ...]
    latency_s: float  # a: the time of an empty call
    seconds_per_byte: float  # b; 0 when the times did not grow with size
    r2: float
    max_rel_residual: float
    slowest_s: tuple[float, ...] = ()  # the largest sample at each size (the median is times_s)
    nodes: int = 1  # nodes the group spans (an inter-node pair: 2); 0 where the file does not say

    @property
    def bandwidth_known(self) -> bool:
        """The times grow with size, and the largest size is far enough past the latency for the
        slope to be the bandwidth rather than noise."""
        return self.seconds_per_byte > 0 and (
            self.seconds_per_byte * max(self.sizes_bytes) >= BANDWIDTH_SEEN * self.latency_s)

    @property
    def algbw_bytes_s(self) -> float:
        return 1.0 / self.seconds_per_byte if self.bandwidth_known else float("nan")

    @property
    def busbw_bytes_s(self) -> float:
        return busbw_factor(self.op, self.group_size) * self.algbw_bytes_s

    @property
    def alpha_s(self) -> float:
        """Per-hop latency in planner/comm.py's convention."""
        return self.latency_s / hops(self.op, self.group_size)

    def label(self) -> str:
        where = f" over {self.nodes} nodes" if self.tier == "inter" and self.nodes > 1 else f" {self.tier}-node"
        return f"{self.op} {self.dtype} {self.placement}, {self.group_size} ranks{where}"

    def quality(self) -> str:
        return (f"{len(self.sizes_bytes)} sizes {_b(min(self.sizes_bytes))}..{_b(max(self.sizes_bytes))}, "
                f"R^2 {self.r2:.4f}, max residual {self.max_rel_residual:.0%}")

    def predict(self, size_bytes: Any) -> Any:
        return self.latency_s + self.seconds_per_byte * np.asarray(size_bytes, dtype=float)

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "dtype": self.dtype, "placement": self.placement, "group_size": self.group_size,
                "tier": self.tier, "points": len(self.sizes_bytes), "latency_s": self.latency_s,
                "alpha_s": self.alpha_s, "algbw_bytes_s": self.algbw_bytes_s if self.bandwidth_known else None,
                "busbw_bytes_s": self.busbw_bytes_s if self.bandwidth_known else None, "r2": self.r2,
                "max_rel_residual": self.max_rel_residual}


def _b(n: float) -> str:
    for unit, k in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= k:
            return f"{n / k:g} {unit}"
    return f"{n:g} B"


def fit_alpha_beta(sizes_bytes: Iterable[float], times_s: Iterable[float]) -> tuple[float, float, float, float]:
    """(a, b, R^2, max relative residual) of t = a + b S, least squares on relative residuals,
    with a >= 0 and b >= 0 (a negative coefficient is refitted at zero)."""
    s = np.asarray(list(sizes_bytes), dtype=float)
    t = np.asarray(list(times_s), dtype=float)
    if s.size != t.size or s.size < 2 or len(np.unique(s)) < 2:
        raise BadInput("an alpha-beta fit needs at least two message sizes", "measure a size sweep (drop --quick)")
    if np.any(t <= 0) or np.any(s <= 0):
        raise BadInput("message sizes and times must be positive", "re-run `recoque bench collective`")
    w = 1.0 / t  # relative residuals: (a + b s - t) / t
    (a, b), *_ = np.linalg.lstsq(np.column_stack([w, s * w]), np.ones_like(t), rcond=None)
    if a < 0:  # no measurable latency: through the origin
        a, b = 0.0, float(np.sum(s * w) / np.sum((s * w) ** 2))
    if b < 0:  # times do not grow with size: latency only
        a, b = float(np.sum(w) / np.sum(w * w)), 0.0
    fit = a + b * s
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    r2 = 1.0 - float(np.sum((t - fit) ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return float(a), float(b), r2, float(np.max(np.abs(fit - t) / t))


def fit_document(doc: Any) -> list[LinkFit]:
    """One fit per (collective, dtype, placement, group size, tier) series of MIN_POINTS sizes or more."""
    series: dict[tuple[str, str, str, int, str], dict[int, tuple[float, float]]] = {}
    for r in doc.select("collective"):
        p = r.params
        if not r.verified or "bytes" not in p:
            continue
        n = int(p.get("group_size", p.get("world_size", 0)) or 0)
        if n < 2:
            continue
        tier = str(p.get("tier", "intra"))
        nodes = int(p.get("nodes", 1 if tier == "intra" else 0) or 0)
        key = (r.op, r.dtype, str(p.get("placement", "in_place" if r.op == "all_reduce" else "out_of_place")),
               n, tier, nodes)
        series.setdefault(key, {})[int(p["bytes"])] = (r.median_s, max(r.times_s))  # a size measured twice: the later one
    out = []
    for (op, dtype, place, n, tier, nodes), pts in sorted(series.items()):
        if len(pts) < MIN_POINTS:  # two points always fit exactly: no test of the model
            continue
        sizes = tuple(sorted(pts))
        times = tuple(pts[s][0] for s in sizes)
        a, b, r2, worst = fit_alpha_beta(sizes, times)
        out.append(LinkFit(op, dtype, place, n, tier, sizes, times, a, b, r2, worst, tuple(pts[s][1] for s in sizes),
                           nodes))
    return out


def fit_file(path: str) -> list[LinkFit]:
    from recoque.bench.schema import load_results

    return fit_document(load_results(path))


def _pick(fits: list[LinkFit], tier: str, order: tuple[str, ...], usable: Any) -> LinkFit | None:
    for op in order:
        mine = [f for f in fits if f.op == op and f.tier == tier and usable(f)]
        if mine:
            # The largest group, then fp32 (nccl-tests' default type), then the most sizes.
            return max(mine, key=lambda f: (f.group_size, f.dtype == "fp32", len(f.sizes_bytes)))
    return None


def nic_share_bytes_s(f: LinkFit, intra_bytes_s: float | None) -> float | None:
    """One GPU's inter-node bandwidth that makes the planner's hierarchical model give the fitted
    slope b of a group spanning f.nodes nodes with l = n / nodes GPUs on each:
        all-reduce:            b = 2(l-1)/(l bw_intra) + 2(N-1)/(N l bw_inter)
        all-gather, reduce-scatter: b = (l-1)/(l bw_intra) + (N-1)/(n bw_inter)
    (planner/comm.py); a point-to-point pair between two nodes: 1/b. None when the slope is not a
    bandwidth, the node count is unknown (files written before `nodes` was recorded), the
    intra-node rate is needed and unknown, or the intra-node part alone is slower than what was
    measured (the two do not fit one model)."""
    if not f.bandwidth_known:
        return None
    if f.op == "send_recv":
        return f.algbw_bytes_s
    n, big_n = f.group_size, f.nodes
    if big_n < 2 or n % big_n or f.op not in ("all_reduce", "all_gather", "reduce_scatter"):
        return None
    local = n // big_n
    k = 2.0 if f.op == "all_reduce" else 1.0
    if local > 1 and not intra_bytes_s:
        return None
    intra = k * (local - 1) / (local * intra_bytes_s) if local > 1 else 0.0
    left = f.seconds_per_byte - intra
    if left <= 0:
        return None
    inter_factor = k * (big_n - 1) / (big_n * local) if f.op == "all_reduce" else (big_n - 1) / n
    return inter_factor / left


@dataclass(frozen=True)
class LinkFigure:
    attr: str  # the SystemSpec attribute it replaces
    value: float
    low: float
    high: float
    source: str


def link_figures(fits: list[LinkFit], origin: str = "", intra_bytes_s: float | None = None,
                 intra_origin: str = "") -> list[LinkFigure]:
    """Bandwidth (bus bandwidth per GPU, bytes/s) and per-hop latency (s) per tier that the fits
    determine; the range is the fit's worst relative residual either way. The inter-node bandwidth
    is one GPU's share (nic_share_bytes_s), read with the intra-node rate measured here or, when
    none is, `intra_bytes_s` (what the planner would use: its datasheet rate x link efficiency)."""
    where = f" in {origin}" if origin else ""
    out = []
    f = _pick(fits, "intra", BANDWIDTH_FROM["intra"], lambda f: f.bandwidth_known)
    if f is not None:
        v, u = f.busbw_bytes_s, min(f.max_rel_residual, 0.9)
        out.append(LinkFigure(SYSTEM_ATTRS["intra"][0], v, v * (1 - u), v * (1 + u),
                              f"measured: busbw of {f.label()}{where} ({f.quality()})"))
        intra_bytes_s, intra_origin = v, "measured above"
    f = _pick(fits, "inter", BANDWIDTH_FROM["inter"], lambda f: nic_share_bytes_s(f, intra_bytes_s) is not None)
    if f is not None:
        v, u = nic_share_bytes_s(f, intra_bytes_s), min(f.max_rel_residual, 0.9)
        intra_said = (f"intra-node {intra_bytes_s / 1e9:.4g} GB/s, {intra_origin}" if f.group_size > f.nodes
                      else "one GPU a node")
        how = (f"algbw of {f.label()}" if f.op == "send_recv" else
               f"one GPU's share from {f.label()} through the planner's hierarchical model ({intra_said})")
        out.append(LinkFigure(SYSTEM_ATTRS["inter"][0], v, v * (1 - u), v * (1 + u),
                              f"measured: {how}{where} ({f.quality()})"))
    for tier in TIERS:
        f = _pick(fits, tier, LATENCY_FROM[tier], lambda f: True)
        if f is not None and f.latency_s > 0:
            v, u = f.alpha_s, min(f.max_rel_residual, 0.9)
            out.append(LinkFigure(SYSTEM_ATTRS[tier][1], v, v * (1 - u), v * (1 + u),
                                  f"measured: latency of {f.label()} / {hops(f.op, f.group_size):g} hops{where} ({f.quality()})"))
    return out


def apply_links(system: Any, profile: Any, figures: list[LinkFigure]) -> tuple[Any, Any, list[str]]:
    """The system with measured link figures in place of its datasheet ones (their ranges from the
    fit), the profile with link efficiency 1 where the bandwidth was measured (a measured busbw is
    already what the collective achieves), and one line per figure naming its source."""
    from recoque.planner.profile import Rate

    by_attr = {f.attr: f for f in figures}
    changes, ranges, sources = {}, dict(system.ranges), dict(system.sources)
    for attr, f in by_attr.items():
        changes[attr] = f.value
        ranges[attr] = (f.low, f.high)
        sources[attr] = f.source
    extra = dict(getattr(system, "extra", {}) or {})
    if SYSTEM_ATTRS["inter"][0] in by_attr:  # a measured busbw already includes the GPUs' share of the NICs
        extra = {k: v for k, v in extra.items() if k not in ("nics_per_node", "nic_bandwidth_gb_s")}
    new_sys = replace(system, **changes, ranges=ranges, sources=sources, extra=extra)
    prof_changes = {}
    for tier, eff_field in (("intra", "intra_link_efficiency"), ("inter", "inter_link_efficiency")):
        if SYSTEM_ATTRS[tier][0] in by_attr:
            prof_changes[eff_field] = Rate(1.0, 1.0, 1.0)
    new_prof = replace(profile, **prof_changes) if prof_changes else profile
    lines = []
    for tier in TIERS:
        for attr, what, unit, scale in ((SYSTEM_ATTRS[tier][0], "bandwidth", "GB/s", 1e-9),
                                        (SYSTEM_ATTRS[tier][1], "latency", "us", 1e6)):
            if attr in by_attr:
                f = by_attr[attr]
                lines.append(f"{tier}-node {what}: {f.value * scale:.4g} {unit} [{f.low * scale:.3g}-{f.high * scale:.3g}] "
                             f"{f.source}")
            else:
                v = float(getattr(system, attr))
                src = system.sources.get(attr, "")
                eff = ""
                if what == "bandwidth":
                    e = getattr(profile, f"{tier}_link_efficiency").value
                    eff = f" x link efficiency {e:.2f}"
                lines.append(f"{tier}-node {what}: {v * scale:.4g} {unit}{eff} datasheet: system {system.key}"
                             + (f" ({src})" if src else "") + " (not measured)")
    return new_sys, new_prof, lines


def measured_links(path: str, system: Any, profile: Any) -> tuple[Any, Any, list[str]]:
    """For `plan ... --profile FILE`: apply the collectives in FILE, if it has any, to a plan's
    system and profile; with none, both come back unchanged and the lines say so."""
    fits = fit_file(path)
    intra = float(system.intra_node_bandwidth_bytes_s or 0) * profile.intra_link_efficiency.value or None
    figures = link_figures(fits, origin=path, intra_bytes_s=intra,
                           intra_origin=f"datasheet x link efficiency {profile.intra_link_efficiency.value:.2f}")
    if not figures:
        return system, profile, [f"datasheet ({path} has no collective size sweep to fit)"]
    return apply_links(system, profile, figures)


def fit_lines(doc: Any) -> list[str]:
    """One line per fitted series: latency, per-hop alpha, bandwidths and how well the line fits."""
    out = []
    for f in fit_document(doc):
        bw = (f"busbw {f.busbw_bytes_s / 1e9:.4g} GB/s (algbw {f.algbw_bytes_s / 1e9:.4g})" if f.bandwidth_known
              else "bandwidth not resolved (the largest size is still latency-bound)")
        out.append(f"alpha-beta {f.label()}: latency {f.latency_s * 1e6:.4g} us ({f.alpha_s * 1e6:.3g} us/hop), "
                   f"{bw}; {f.quality()}")
    return out
