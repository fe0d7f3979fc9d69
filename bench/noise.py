"""The fixed set of noise warnings, each with its hint (style rule 7). Printed on stderr."""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Sequence

HINTS = {
    "high_cov": "samples vary by more than 5%: close other jobs, pin clocks, or use a longer run (drop --quick)",
    "drift": "the last quarter of samples is over 5% slower than the first: thermal or power throttling; warm up longer",
    "few_samples": "fewer than 5 samples: the statistics are weak; raise the time budget",
    "timer_resolution": "median under 20 us on a host timer: the timer and launch cost dominate; use a bigger size",
    "above_peak": "faster than the datasheet peak: the peak entry is wrong or the work count is; check seeds/hardware.toml",
    "small_rotation": "input sets total less than twice the last-level cache: part of the data may stay cached",
}


@dataclass(frozen=True)
class NoiseWarning:
    code: str
    case: str
    value: float
    hint: str

    def line(self) -> str:
        return f"[{self.code}] {self.case}: {self.value:.3g} — {self.hint}"

    def to_json(self) -> dict:
        return asdict(self)


def _w(code: str, case: str, value: float) -> NoiseWarning:
    return NoiseWarning(code, case, float(value), HINTS[code])


def check_samples(case: str, times_s: Sequence[float], timer: str) -> list[NoiseWarning]:
    out: list[NoiseWarning] = []
    n = len(times_s)
    if n < 5:
        out.append(_w("few_samples", case, n))
    if n >= 2:
        mean = statistics.fmean(times_s)
        cov = statistics.pstdev(times_s) / mean if mean else 0.0
        if cov > 0.05:
            out.append(_w("high_cov", case, cov))
    if n >= 8:
        q = n // 4
        first, last = statistics.median(times_s[:q]), statistics.median(times_s[-q:])
        if first > 0 and last / first > 1.05:
            out.append(_w("drift", case, last / first))
    if timer == "perf_counter_ns" and n and statistics.median(times_s) < 20e-6:
        out.append(_w("timer_resolution", case, statistics.median(times_s)))
    return out


def check_peak(case: str, fraction_of_peak: float | None) -> list[NoiseWarning]:
    if fraction_of_peak is not None and fraction_of_peak > 1.02:
        return [_w("above_peak", case, fraction_of_peak)]
    return []


def check_rotation(case: str, rotated_bytes: int, llc_bytes: int | None) -> list[NoiseWarning]:
    if llc_bytes and rotated_bytes < 2 * llc_bytes:
        return [_w("small_rotation", case, rotated_bytes / llc_bytes)]
    return []
