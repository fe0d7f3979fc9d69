"""An estimate is never one bare figure: a value, a low/high range, its unit and its assumptions."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product
from statistics import NormalDist
from typing import Any, Callable

from recoque.errors import BadInput


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float
    unit: str  # base units: "s", "J", "W", "EUR", "kg_co2e", "flop/s", "bytes", "tokens/s"...
    assumptions: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not (self.low <= self.value <= self.high):
            lo, hi = min(self.low, self.value, self.high), max(self.low, self.value, self.high)
            object.__setattr__(self, "low", lo)
            object.__setattr__(self, "high", hi)

    @classmethod
    def exact(cls, value: float, unit: str, *assumptions: str) -> "Estimate":
        return cls(value, value, value, unit, tuple(assumptions))

    @classmethod
    def span(cls, low: float, high: float, unit: str, *assumptions: str, value: float | None = None) -> "Estimate":
        mid = value if value is not None else (low * high) ** 0.5 if low > 0 and high > 0 else (low + high) / 2
        return cls(mid, low, high, unit, tuple(assumptions))

    def map(self, fn: Callable[[float], float], unit: str, *assumptions: str) -> "Estimate":
        """Apply a monotonic function to value, low and high (decreasing functions swap the bounds)."""
        a, b = fn(self.low), fn(self.high)
        return Estimate(fn(self.value), min(a, b), max(a, b), unit, self.assumptions + tuple(assumptions))

    def scale(self, factor: float, unit: str | None = None, *assumptions: str) -> "Estimate":
        return self.map(lambda x: x * factor, unit or self.unit, *assumptions)

    def to_json(self) -> dict[str, Any]:
        return {"value": self.value, "low": self.low, "high": self.high, "unit": self.unit,
                "assumptions": list(self.assumptions)}


def combine(fn: Callable[..., float], *parts: Estimate, unit: str, assumptions: tuple[str, ...] = ()) -> Estimate:
    """Combine estimates through fn, taking bounds over every corner of the input ranges.

    Exact for functions monotonic in each argument (products, quotients, sums), which is all
    the capacity arithmetic needs; 2**len(parts) evaluations.
    """
    value = fn(*(p.value for p in parts))
    corners = [fn(*c) for c in product(*((p.low, p.high) for p in parts))]
    merged: tuple[str, ...] = tuple(dict.fromkeys(a for p in parts for a in p.assumptions + assumptions))
    return Estimate(value, min(corners + [value]), max(corners + [value]), unit, merged)


def expected_max_z(n: int) -> float:
    """Expected largest of n independent standard normal draws (Blom's approximation,
    Phi^-1((n - 3/8) / (n + 1/4)); 0 for one draw: there is no spread to wait on)."""
    return NormalDist().inv_cdf((n - 0.375) / (n + 0.25)) if n > 1 else 0.0


def check_bounds(where: str, value: float, low: float, high: float) -> None:
    """A seeded centre with its range: finite, and low <= value <= high (never reordered silently)."""
    if not all(math.isfinite(x) for x in (value, low, high)) or not low <= value <= high:
        raise BadInput(f"{where}: {value:g} with low {low:g} and high {high:g}", "state finite bounds with low <= value <= high")
