"""A GPU held below its board power: the sustained compute clock under the cap.

A power limit (`gpu_power_limit_w` in the system file, `nvidia-smi -pl` / `amd-smi set --power-cap`)
makes the GPU lower its clock until its draw fits. Compute-bound kernels (GEMM, attention) slow by
the clock ratio; memory-bound kernels keep their HBM rate (the cap lowers the core clock, not the
memory clock: stated, not measured here). The clock ratio follows a power law in the cap,

    clock ratio = (limit / board power) ** clock_exponent,

with clock_exponent from seeds/validation.toml [power_cap]: one measured pair of the same silicon at
two board powers (MI355X 1400 W vs MI350X 1000 W, MLPerf Training v5.1), stated there. Dynamic power
goes as f V^2 with V rising with f, so a pure f^3 law would give 1/3; leakage and the memory's
share of the board power make the compute clock fall faster than that, hence the larger measured
exponent. A shipped or datasheet profile is taken as measured at the board power (the catalog's
tdp_w) and is slowed; a profile measured with `recoque bench` on the system (--profile) already holds
whatever limit its GPUs ran at, so it is not slowed again.
"""
from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

from recoque.catalog import get_device_spec
from recoque.errors import BadInput
from recoque.fileio import read_seed_toml


@lru_cache(maxsize=1)
def _seed() -> dict[str, Any]:
    return read_seed_toml("validation.toml").get("power_cap", {})


# A corner of an estimate: "high" the fast one, "low" the slow one (planner.train.hardware_for).
_EXPONENT_KEY = {"value": "clock_exponent", "high": "clock_exponent_low", "low": "clock_exponent_high"}


def clock_exponent(which: str = "value") -> float:
    """The exponent of the clock law at a corner: the central figure, or the span of the same-die
    pairs in [power_cap] (a smaller exponent loses less clock: the fast corner)."""
    key = _EXPONENT_KEY[which]
    e = _seed().get(key, _seed().get("clock_exponent"))
    if not isinstance(e, (int, float)) or isinstance(e, bool) or not 0 < e <= 1:
        raise BadInput(f"validation.toml [power_cap]: {key} must be a number in (0, 1]", "restore it with its source")
    return float(e)


def board_power_w(system: Any) -> float | None:
    """The device's board power (catalog tdp_w); None when the catalog does not give it."""
    return get_device_spec(system.device).tdp_w


def _measured(profile: Any) -> bool:
    return getattr(profile, "origin", None) == "measured"


# The clock law rests on same-die pairs at 0.71-1.0 of board power (seeds/validation.toml [power_cap]);
# a quarter of it is far outside and below where GPUs let the cap be set (1 W caps gave MFLOP/s Rmax
# at full node power): refused rather than extrapolated.
MIN_CAP_FRACTION = 0.25


def clock_factor(system: Any, profile: Any = None, which: str = "value") -> float:
    """Sustained compute clock of the system's GPUs over the clock at board power: 1 without a cap
    or with a measured profile; `which` corner of the exponent's span. A cap above the board power is
    refused (the firmware will not raise the limit past it)."""
    cap = getattr(system, "gpu_power_limit_w", None)
    if cap is None or _measured(profile):
        return 1.0
    tdp = board_power_w(system)
    if not tdp:
        raise BadInput(f"system {system.key}: a GPU power limit is set but {system.device} has no board power "
                       "in the catalog", "define the device with its tdp_w in the system file, or drop the limit")
    if cap > tdp:
        raise BadInput(f"system {system.key}: a GPU power limit of {cap:g} W is above the {system.device} board "
                       f"power {tdp:g} W", f"use at most {tdp:g} W (gpu_power_limit_w or --power-limit-w), or none")
    if cap < MIN_CAP_FRACTION * tdp:
        raise BadInput(f"system {system.key}: a GPU power limit of {cap:g} W is below {MIN_CAP_FRACTION:g} x the "
                       f"{system.device} board power {tdp:g} W, where the clock law says nothing",
                       f"use at least {MIN_CAP_FRACTION * tdp:g} W, or none")
    return (cap / tdp) ** clock_exponent(which)


def limited(system: Any, watts: float | None) -> Any:
    """The system with its GPUs held to `watts` (the --power-limit-w flag, which replaces the system
    file's gpu_power_limit_w); the system unchanged without one. A limit above the board power is
    refused here, where the flag enters."""
    if watts is None:
        return system
    out = replace(system, gpu_power_limit_w=float(watts))
    clock_factor(out)
    return out


def note(system: Any, profile: Any = None) -> str | None:
    """The assumption line a capped system adds to every estimate; None without a cap."""
    cap = getattr(system, "gpu_power_limit_w", None)
    if cap is None:
        return None
    if _measured(profile):
        return (f"{system.key}: GPUs capped at {cap:g} W; the measured profile already holds the limit its GPUs "
                "ran at, so no clock factor is applied")
    tdp, e = board_power_w(system), clock_exponent()
    src = _seed().get("sources", {}).get("clock_exponent", "seeds/validation.toml [power_cap]")
    lo_e, hi_e = clock_exponent("high"), clock_exponent("low")
    return (f"{system.key}: GPUs capped at {cap:g} W of {tdp:g} W board power -> compute clock x "
            f"{clock_factor(system):.3f} = ({cap:g}/{tdp:g})^{e:.3g}, x{clock_factor(system, None, 'low'):.3f}-"
            f"{clock_factor(system, None, 'high'):.3f} over the same-die pairs' exponents {lo_e:.3g}-{hi_e:.3g} "
            f"(GEMM and attention; HBM-bound work unchanged; exponent: {src})")
