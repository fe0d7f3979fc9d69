"""Shared pieces of the claim checks: verdicts, the claims seed, assumptions, number formatting and
the cost model of buildings and GPUs the investment checks hold figures against.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

from recoque.errors import BadInput
from recoque.estimate import Estimate, check_bounds, combine
from recoque.fileio import read_seed_toml

CONSISTENT, ONLY_IF, NOT = "consistent", "consistent only if", "not consistent"
T, P, E = 1e12, 1e15, 1e18
_PREFIX = {1e3: "k", 1e6: "M", 1e9: "G", 1e12: "T", 1e15: "P", 1e18: "E"}


@lru_cache(maxsize=1)
def seed() -> dict[str, Any]:
    return read_seed_toml("claims.toml")


def assumption(key: str) -> Estimate:
    t = seed().get("assumptions", {})
    if key not in t:
        raise BadInput(f"claims.toml [assumptions]: missing `{key}`", "add it with its source")
    v = float(t[key])
    lo, hi = float(t.get(f"{key}_low", v)), float(t.get(f"{key}_high", v))
    check_bounds(f"claims.toml [assumptions] {key}", v, lo, hi)
    return Estimate(v, lo, hi, "1", (f"{key} {_fmt(lo)}..{_fmt(hi)}: {t.get('sources', {}).get(key, '')}",))


def data(key: str) -> Mapping[str, Any]:
    d = seed().get("data", {}).get(key)
    if not isinstance(d, Mapping):
        raise BadInput(f"claims.toml: no [data.{key}] table", "add it with its source")
    return d


def document(file: str) -> Mapping[str, str]:
    """Title and date of a source document (claims.toml [documents]); the file name when unknown."""
    d = seed().get("documents", {}).get(file, {})
    return {"title": str(d.get("title", file)), "date": str(d.get("date", "")), "file": file}


def _fmt(x: float) -> str:
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def rng(e: Estimate, scale: float = 1.0, unit: str = "") -> str:
    """'v (lo..hi)' after dividing by scale, then the SI prefix of the scale glued to the unit, once:
    rng(cost, 1e6, "EUR") -> '613 (597..640) MEUR'; rng(rate, T) + 'FLOP/s' -> '66.9 TFLOP/s'."""
    v, lo, hi = e.value / scale, e.low / scale, e.high / scale
    body = _fmt(v) if lo == hi else f"{_fmt(v)} ({_fmt(lo)}..{_fmt(hi)})"
    prefix = _PREFIX.get(scale, "")
    return body + (f" {prefix}{unit}" if prefix or unit else "")


def si(x: float, scale: float, unit: str = "") -> str:
    return f"{_fmt(x / scale)} {_PREFIX.get(scale, '')}{unit}"


def matches(e: Estimate, target: float, tol: float) -> bool:
    """Is the central estimate inside the stated figure's tolerance band? (Not merely a corner of its
    range: a metric whose most optimistic corner reaches the band does not hold.)"""
    return target / (1 + tol) <= e.value <= target * (1 + tol)


def result(verdict: str, condition: str, holds_under: str, implied: Mapping[str, Any],
           lines: list[str], sources: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
    return dict(verdict=verdict, condition=condition, holds_under=holds_under, implied=dict(implied),
                arithmetic=tuple(lines), sources=tuple(dict.fromkeys(s for s in sources if s)))


def source_of(e: Estimate) -> list[str]:
    return list(e.assumptions)


# --- the cost of what an investment has to buy --------------------------------------------------------

def per_gpu_site_power_w(tdp_w: float) -> Estimate:
    """Facility power per GPU: TDP x node overhead (host, NIC, fabric) x PUE."""
    return combine(lambda o, u: tdp_w * o * u, assumption("node_overhead_factor"), assumption("site_pue"), unit="W")


def building_eur_per_mw() -> Estimate:
    """Construction per MW of site (grid) power: the cost per MW of critical IT load / PUE, since the
    documents state site power and grid connections, and the cost guide prices critical load."""
    return combine(lambda b, r, u: b / r / u, assumption("building_usd_per_mw"), assumption("usd_per_eur"),
                   assumption("site_pue"), unit="EUR/MW")


def gpu_it_eur() -> Estimate:
    return combine(lambda g, r: g / r, assumption("gpu_it_usd_per_gpu"), assumption("usd_per_eur"), unit="EUR")


def building_eur_per_gpu(tdp_w: float) -> Estimate:
    """Buildings for one GPU: its site power (TDP x overhead x PUE) x the cost per MW of site power
    (cost per MW of IT load / PUE). The PUE cancels, so it is left out: taking its corners in both
    factors independently widened the range with a spread that is not there."""
    return combine(lambda o, b, r: tdp_w * o / 1e6 * b / r, assumption("node_overhead_factor"),
                   assumption("building_usd_per_mw"), assumption("usd_per_eur"), unit="EUR")


def all_in_eur_per_gpu(tdp_w: float) -> Estimate:
    """Buildings + the GPU with its server and network, each in USD, at one exchange rate (taken once)."""
    return combine(lambda o, b, g, r: (tdp_w * o / 1e6 * b + g) / r, assumption("node_overhead_factor"),
                   assumption("building_usd_per_mw"), assumption("gpu_it_usd_per_gpu"), assumption("usd_per_eur"),
                   unit="EUR")


def all_in_eur_per_mw(tdp_w: float) -> Estimate:
    """Buildings + the GPUs (with servers and network) one MW of site power holds:
    (cost per MW of IT load + GPUs per MW of IT load x cost per GPU) / PUE / exchange rate, each
    assumption taken once."""
    return combine(lambda o, b, g, r, u: (b + 1e6 / (tdp_w * o) * g) / r / u, assumption("node_overhead_factor"),
                   assumption("building_usd_per_mw"), assumption("gpu_it_usd_per_gpu"), assumption("usd_per_eur"),
                   assumption("site_pue"), unit="EUR/MW")
