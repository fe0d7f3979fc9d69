"""The fixed set of noise warnings, each with its hint (style rule 7). Printed on stderr."""
from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Sequence

# The thresholds: 5% spread or drift is where a figure's own noise reaches the 5% that tells one
# library or clock setting from another (hyperfine and pyperf warn at about that level); 20 us on a
# host timer is where a CPU launch, Python's call overhead (~1 us) and scheduler wake-ups stop being
# small; device events resolve about 0.5 us (cudaEventElapsedTime, CUDA runtime API) and a launch
# costs 2-5 us, so 10 us is where those become a tenth of the sample.
HOST_TIMER_MIN_S, EVENT_TIMER_MIN_S = 20e-6, 10e-6
MAX_SPREAD = MAX_DRIFT = 0.05

HINTS = {
    "high_cov": ("the samples' quartile spread is over 5% of their median: close other jobs, pin clocks, "
                 "or use a longer run (drop --quick)"),
    "drift": "the last quarter of samples is over 5% slower than the first: thermal or power throttling; warm up longer",
    "warming": ("the last quarter of samples is over 5% faster than the first: the case was still warming up "
                "(clocks ramping, caches, autotuning); the median mixes both; warm up longer (drop --quick)"),
    "few_samples": "fewer than 5 samples: the statistics are weak; raise the time budget",
    "timer_resolution": ("median under 20 us on a host timer or 10 us on device events: the timer and launch "
                         "cost dominate; use a bigger size"),
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


def spread(times_s: Sequence[float]) -> float:
    """Quartile spread as a CoV: (Q3 - Q1) / 1.349 / median (1.349 sigma = one normal IQR). Unlike
    stdev / mean, one call that lost a time slice to another process does not move it, nor the
    median the figure is."""
    if len(times_s) < 2:
        return 0.0
    q1, _, q3 = statistics.quantiles(times_s, n=4, method="inclusive")
    med = statistics.median(times_s)
    return (q3 - q1) / 1.349 / med if med > 0 else 0.0


def check_samples(case: str, times_s: Sequence[float], timer: str) -> list[NoiseWarning]:
    out: list[NoiseWarning] = []
    n = len(times_s)
    if n < 5:
        out.append(_w("few_samples", case, n))
    cov = spread(times_s)
    if cov > MAX_SPREAD:
        out.append(_w("high_cov", case, cov))
    if n >= 8:
        q = n // 4
        first, last = statistics.median(times_s[:q]), statistics.median(times_s[-q:])
        if first > 0 and last / first > 1 + MAX_DRIFT:
            out.append(_w("drift", case, last / first))
        elif first > 0 and last / first < 1 / (1 + MAX_DRIFT):
            out.append(_w("warming", case, last / first))
    floor = {"perf_counter_ns": HOST_TIMER_MIN_S, "thread_time_ns": HOST_TIMER_MIN_S,
             "device_event": EVENT_TIMER_MIN_S}.get(timer)
    if floor is not None and n and statistics.median(times_s) < floor:
        out.append(_w("timer_resolution", case, statistics.median(times_s)))
    return out


ABOVE_PEAK = 1.02  # 2% over the datasheet: boost clocks above the rated one, not a wrong count


def check_peak(case: str, fraction_of_peak: float | None) -> list[NoiseWarning]:
    if fraction_of_peak is not None and fraction_of_peak > ABOVE_PEAK:
        return [_w("above_peak", case, fraction_of_peak)]
    return []


def check_rotation(case: str, rotated_bytes: int, llc_bytes: int | None) -> list[NoiseWarning]:
    if llc_bytes and rotated_bytes < 2 * llc_bytes:
        return [_w("small_rotation", case, rotated_bytes / llc_bytes)]
    return []


# Checks on a whole sweep (bench/headline.py), beside the per-case ones above.
HINTS.update({
    "tf32_unconfirmed": ("tf32 GEMM is within 5% of fp32: tf32 was probably not used (on ROCm set "
                         "HIPBLASLT_ALLOW_TF32=1 before torch starts); the tf32 figure is really fp32"),
    "unstable_headline": ("the confirmation of the best case spread by more than 10% (quartiles): the row "
                          "shows its median marked unsteady, not a headline; close other jobs and run "
                          "without --quick"),
    "contended": ("other processes kept part of a core busy in every round of the headline's confirmation "
                  "(value: their cores); on a machine this small that can halve a multi-threaded figure: "
                  "close other jobs and measure again"),
})


def check_tf32(ratio: float | None) -> list[NoiseWarning]:
    from recoque.bench.headline import tf32_confirmed

    if ratio is not None and not tf32_confirmed(ratio, 1.0):
        return [_w("tf32_unconfirmed", "gemm/matmul/tf32", ratio)]
    return []


# Which end of a kind's values is its worst: few_samples and small_rotation are worst when smallest.
_WORST_IS_LOW = {"few_samples", "small_rotation", "warming"}


def group_lines(warnings: Sequence[NoiseWarning], verbose: bool = False) -> list[str]:
    """One summary line per kind: how many cases, the worst one and the hint (in HINTS order).

    With verbose, every warning's own line follows its summary. The full list stays in the
    results file; this is what a person reads on stderr.
    """
    lines: list[str] = []
    for code in HINTS:
        mine = [w for w in warnings if w.code == code]
        if not mine:
            continue
        pick = min if code in _WORST_IS_LOW else max
        worst = pick(mine, key=lambda w: w.value)
        n = len(mine)
        lines.append(f"[{code}] {n} case{'s' if n != 1 else ''}, worst {worst.case}: {worst.value:.3g} — {HINTS[code]}")
        if verbose:
            lines += [f"    {w.case}: {w.value:.3g}" for w in mine]
    return lines


# -- other processes' load while a case runs ---------------------------------------------------------
# On a 2-core machine a numba or torch kernel splits its work over both cores; when another process
# holds one of them, the kernel waits for its slower half and takes up to twice as long (the STREAM
# figures flipped between 17 and 34 GB/s from case to case here). The suite measures how many cores
# the rest of the machine used around each confirmation round, from /proc/stat (all CPUs: busy and
# steal time, i.e. also time the hypervisor gave to other guests) minus this process's own CPU time.


@dataclass(frozen=True)
class CpuSnapshot:
    wall_s: float
    machine_busy_s: float | None  # busy + steal seconds over all CPUs since boot, None off Linux
    own_cpu_s: float  # user + system seconds of this process, all threads


def _machine_busy_s(path: str = "/proc/stat") -> float | None:
    try:
        with open(path, encoding="ascii") as fh:
            fields = fh.readline().split()
        ticks = [int(x) for x in fields[1:9]]  # user nice system idle iowait irq softirq steal
    except (OSError, ValueError, IndexError):
        return None
    busy = sum(ticks) - ticks[3] - ticks[4]  # everything but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def cpu_snapshot() -> CpuSnapshot:
    t = os.times()
    return CpuSnapshot(time.perf_counter(), _machine_busy_s(), t.user + t.system)


def other_cores(before: CpuSnapshot, after: CpuSnapshot) -> float | None:
    """Average number of cores kept busy by other processes (or other guests) between two snapshots."""
    wall = after.wall_s - before.wall_s
    if before.machine_busy_s is None or after.machine_busy_s is None or wall <= 0:
        return None
    others = (after.machine_busy_s - before.machine_busy_s) - (after.own_cpu_s - before.own_cpu_s)
    return max(0.0, others / wall)
