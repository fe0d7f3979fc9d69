"""The low-high range of a serving estimate: each group of constants at either end of its stated
range in turn, the shifts of each output combined in quadrature.

Every rate and engine constant of the serving model carries a stated range (seeds/serving.toml,
the device profile). Putting all of them at their pessimistic ends at once (the "corner") gives a
bound only a machine on which a dozen independent sources all erred the same way would reach;
under a latency target it collapses to one stream (MLPerf interactive: 183 to 30,061 tokens/s on
8 MI300X). The constants come in groups that share a source: the GEMM and attention rates one
measurement or datasheet, the links one collective figure, the engine's step time and efficiency
one calibration. Errors of different groups are independent, so their effects on an output add in
quadrature, as uncertainties from independent sources do (JCGM 100:2008, GUM, section 5.1.2):
    ln(high / value) = sqrt(sum over groups of (the larger rise of ln output at the group's two ends)^2)
    ln(value / low)  = the same with the falls.
Each group's range is its stated plausible span, so the combination is a plausible span too, not a
one-sigma band. The all-pessimistic and all-optimistic corners are still run and stated."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, Mapping

# (group, Rates fields it moves, whether it moves the engine efficiency too)
GROUPS: tuple[tuple[str, tuple[str, ...], bool], ...] = (
    ("GEMM and attention rates", ("gemm_flop_s", "attention_flop_s", "gemm_at", "head_flop_s", "attention_proj_flop_s"),
     False),
    ("HBM bandwidth", ("hbm_bytes_s",), False),
    ("links", ("link_bytes_s", "hop_latency_s", "allreduce_at", "allreduce_gpus", "pp_link_bytes_s", "pp_hop_latency_s"),
     False),
    ("kernel launches", ("kernel_gap_s", "eager_kernel_s"), False),
    ("engine (step overhead, efficiency)", ("step_overhead_s", "host_per_request_s"), True),
    ("skinny-GEMM shape", ("m_half", "moe_m_half", "overlap_p"), False),
    ("MoE grouped GEMMs and EP balance", ("moe_gemm_efficiency", "moe_at", "moe_rank_imbalance_ep32", "moe_expert_load_cv"), False),
    ("request-length spread", ("service_cv2", "prompt_cv2"), False),
    ("speculative-decoding acceptance", ("spec_acceptance",), False),
    ("untuned block-scaled GEMMs", ("blockscale_kblock_s",), False),
)
SIDES = ("low", "high")


def group_corner(rates: Mapping[str, Any], eff: Mapping[str, float], group: tuple[str, tuple[str, ...], bool],
                 side: str) -> tuple[Any, float]:
    """The central rates with one group's constants at the `side` corner's values."""
    _, names, moves_eff = group
    moved = replace(rates["value"], **{n: getattr(rates[side], n) for n in names})
    return moved, eff[side] if moves_eff else eff["value"]


def _log_shift(x: float, v: float) -> float:
    if x == v:
        return 0.0
    if v <= 0 or not math.isfinite(v) or x <= 0:
        return -math.inf if x < v else math.inf
    return math.inf if not math.isfinite(x) else math.log(x / v)


def combine_shifts(v: float, shifts: list[tuple[float, float]]) -> tuple[float, float]:
    """(low, high) of an output from each group's two log shifts, combined in quadrature."""
    down = [min(0.0, *s) for s in shifts]
    up = [max(0.0, *s) for s in shifts]
    lo = 0.0 if any(math.isinf(d) for d in down) else v * math.exp(-math.sqrt(sum(d * d for d in down)))
    hi = math.inf if any(math.isinf(u) for u in up) else v * math.exp(math.sqrt(sum(u * u for u in up)))
    return min(lo, v), max(hi, v)


def bounds(solve_at: Callable[[Any, float], Any], rates: Mapping[str, Any], eff: Mapping[str, float], value: Any,
           attrs: tuple[str, ...]) -> tuple[dict[str, tuple[float, float]], dict[str, Any], dict[tuple[str, str], Any]]:
    """Per output attribute (low, high), the points of the two all-at-once corners, and each
    (group, side) run.
    `solve_at(rates, efficiency)` runs the model (saturating, never failing) at one set of constants."""
    runs = {(g[0], s): solve_at(*group_corner(rates, eff, g, s)) for g in GROUPS for s in SIDES}
    out = {}
    for a in attrs:
        v = getattr(value, a)
        if not math.isfinite(v):  # an unbounded centre (a queue that never drains): the groups' least, and unbounded
            out[a] = (min(v, *(getattr(p, a) for p in runs.values())), v)
            continue
        shifts = [tuple(_log_shift(getattr(runs[(g[0], s)], a), v) for s in SIDES) for g in GROUPS]
        out[a] = combine_shifts(v, shifts)
    corners = {s: solve_at(rates[s], eff[s]) for s in SIDES}
    return out, corners, runs


# Groups whose constants belong to the device or the system (their sources differ between two
# machines); the others are the serving method's own constants, the same for every machine.
DEVICE_GROUPS = ("GEMM and attention rates", "HBM bandwidth", "links")


def ratio_span(a: float, a_groups: Mapping[str, tuple[float, float]], b: float,
               b_groups: Mapping[str, tuple[float, float]], same_device: bool = False) -> tuple[float, float]:
    """(low, high) of a / b for two serving estimates (per-GPU tokens/s, their per-group runs).
    A method group is one set of constants for both: it moves both at once and much of it cancels.
    A device group moves each machine alone (independent sources): two terms; on the same device
    (same rates, same sources) it is shared too. In quadrature, as above."""
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        return (0.0, math.inf)  # no finite ratio to put a range on
    shifts = []
    for name, _, _ in GROUPS:
        la = tuple(_log_shift(x, a) for x in a_groups[name])
        lb = tuple(_log_shift(x, b) for x in b_groups[name])
        if name in DEVICE_GROUPS and not same_device:
            shifts += [la, tuple(-x for x in lb)]
        else:
            d = tuple(x - y for x, y in zip(la, lb))
            # both machines collapse at the same end (inf - inf): the ratio is unknown there
            shifts.append((-math.inf, math.inf) if any(math.isnan(v) for v in d) else d)
    return combine_shifts(a / b, shifts)


NOTE = ("low/high: each group of constants (GEMM and attention rates, HBM, links, launches, engine, GEMM shape, "
        "MoE, request spread, speculative acceptance, untuned block-scaled GEMMs) at either end of its stated range "
        "in turn, the shifts combined in quadrature (independent sources; planner/serving_bounds.py); not fitted")
