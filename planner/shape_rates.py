"""GEMM rates measured by `recoque bench` at given shapes, read back by shape.

A table holds, per dtype, one row (m, n, k, value, low, high) in FLOP/s for every verified record
of a benchmark: the median, the 90th-percentile (slow) and the best sample. `gemm` records give
m = rows; `moe` records (grouped expert GEMMs) give m = mean rows per expert. The planner asks
for the rate at its own (m, n, k): the measured (n, k) nearest in log distance, interpolated
log-log in m between that shape's measured row counts. Below the smallest measured m the rate
falls as the tile model's m/(m + m_half) from the smallest measured one (the caller adds the
weight read that bounds a skinny GEMM apart; holding the smallest measured time would charge a
decode GEMM of 8 rows what a sweep's 2,048-row one takes); above the largest it stays flat.
Used by the serving step (planner/serving_rates.py GemmShapes) and by training's expert GEMMs
(planner/profile.py DeviceProfile.expert_gemm_time_s).
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

COLUMN = {"value": 3, "low": 4, "high": 5}


def rate_table(doc: Any, benchmark: str, mnk: Callable[[Mapping[str, Any]], tuple[float, float, float]]) -> dict[str, tuple[tuple[float, ...], ...]]:
    """(m, n, k, value, low, high) FLOP/s of every verified TFLOP/s record of `benchmark`, per dtype."""
    table: dict[str, list[tuple[float, ...]]] = {}
    for r in doc.select(benchmark):
        if r.unit != "TFLOP/s" or not r.verified or not r.flop_count:
            continue
        try:
            m, n, k = mnk(r.params)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        ts = sorted(r.times_s)
        slow = ts[min(len(ts) - 1, int(0.9 * len(ts)))]
        work = float(r.flop_count)
        table.setdefault(r.dtype, []).append((m, n, k, work / r.median_s, work / slow, work / ts[0]))
    return {d: tuple(v) for d, v in table.items()}


def moe_rows_per_expert(p: Mapping[str, Any]) -> tuple[float, float, float]:
    """(mean rows per expert, n, k) of a `moe` record's params."""
    return float(p["tokens"]) * float(p["top_k"]) / float(p["experts"]), float(p["n"]), float(p["k"])


def _by_rows(pts: tuple[tuple[float, ...], ...], nk: tuple[float, float], col: int) -> tuple[np.ndarray, np.ndarray]:
    """Measured row counts of one (n, k) and the best rate at each, as a sweep keeps."""
    best: dict[float, float] = {}
    for p in pts:
        if (p[1], p[2]) == nk:
            best[p[0]] = max(best.get(p[0], 0.0), p[col])
    ms = sorted(best)
    return np.array(ms), np.array([best[x] for x in ms])


def rate_at(pts: tuple[tuple[float, ...], ...], m: Any, n: Any, k: Any, which: str = "value",
            m_half: float = 32.0) -> Any:
    """The rate (FLOP/s) at (m, n, k), numpy arrays broadcast; a float for scalar arguments."""
    col = COLUMN[which]
    shapes = sorted({(p[1], p[2]) for p in pts})
    m, n, k = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (m, n, k)))
    m = np.maximum(m, 1e-9)
    nearest = np.argmin(np.stack([np.log(sn / n) ** 2 + np.log(sk / k) ** 2 for sn, sk in shapes]), axis=0)
    out = np.zeros(m.shape)
    for i, nk in enumerate(shapes):
        ms, rs = _by_rows(pts, nk, col)
        r = np.exp(np.interp(np.log(m), np.log(ms), np.log(rs)))
        r = np.where(m < ms[0], rs[0] * (m / (m + m_half)) / (ms[0] / (ms[0] + m_half)), r)
        out = np.where(nearest == i, r, out)
    return float(out) if out.ndim == 0 else out


def corner(pts: tuple[tuple[float, ...], ...], which: str) -> tuple[tuple[float, ...], ...]:
    """The same points with the low or high column as every column (a profile's bound)."""
    col = COLUMN[which]
    return tuple((p[0], p[1], p[2], p[col], p[col], p[col]) for p in pts)


def widened(pts: tuple[tuple[float, ...], ...], rel: float) -> tuple[tuple[float, ...], ...]:
    """The same points with the low-high band at least +/-rel around the median."""
    return tuple((p[0], p[1], p[2], p[3], min(p[4], p[3] * (1 - rel)), max(p[5], p[3] * (1 + rel))) for p in pts)
