"""Energy and power figures derived from telemetry samples (the one sampler is bench/telemetry.py).

Energy comes from a hardware energy counter where the source has one (NVML total energy, the amdsmi
energy accumulator, Linux powercap/RAPL on CPUs: /sys/class/powercap/intel-rapl:N/energy_uj, which
AMD Zen also exposes since Linux 5.8), otherwise from the power samples integrated over time
(trapezoids). Throttling is a clock drop under load. Efficiency is the record's rate over the
average power. Units: W, J, MHz, seconds.
"""
from __future__ import annotations

import glob
import os
import statistics
import sys
from typing import Any, Callable, Mapping, Sequence

THROTTLE_DROP = 0.05  # clocks 5% under their early-run level while loaded: power or thermal capping
# GPU power readings are averages: NVML's power usage "on Ampere (except GA100) or newer GPUs ...
# averaged over 1 sec interval" (nvmlDeviceGetPowerUsage, NVML API reference), torch.cuda.power_draw
# over a sample period "between 1 second and 1/6 second". A case shorter than that is mostly the
# load before it: no energy or per-watt figure from its power samples. Seen on an H200 (quick
# suite, 64 ms bf16 GEMM case): 361 W read during 740 TFLOP/s, and an NVML energy counter that did
# not advance (0 J).
GPU_POWER_WINDOW_S = 1.0
CPU_SOURCES = ("RAPL + /proc/cpuinfo", "/proc/cpuinfo")  # bench/telemetry's CPU readers; every other source is a GPU's
RAPL_ROOT = "/sys/class/powercap"
_NOTED: set[str] = set()


def note_once(text: str) -> None:
    """Print an availability note on stderr once per process (not once per benchmark case)."""
    if text not in _NOTED:
        _NOTED.add(text)
        print(f"note: {text}", file=sys.stderr)


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None


# --------------------------------------------------------------------------- CPU (powercap RAPL)


def rapl_packages(root: str = RAPL_ROOT) -> list[str]:
    """Top-level RAPL package domains (intel-rapl:0, intel-rapl:1; not the :0:0 sub-domains). Only
    those named package-N: Intel client parts add a top-level `psys` domain, the whole platform,
    which already holds the package, so summing it would count the package twice."""
    tops = sorted(d for d in glob.glob(os.path.join(root, "intel-rapl:*")) if os.path.basename(d).count(":") == 1)
    return [d for d in tops if _read_name(d).startswith("package")]


def _read_name(domain: str) -> str:
    try:
        with open(os.path.join(domain, "name"), encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return "package"  # a kernel that does not name its domains has only packages at the top


def _read_int(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):
        return None


def rapl_energy_j(domains: list[str], last: dict[str, tuple[int, int]]) -> float | None:
    """Sum of package energy counters in joules, unwrapped across counter overflow (max_energy_range_uj)."""
    total = 0.0
    for d in domains:
        raw = _read_int(os.path.join(d, "energy_uj"))
        if raw is None:
            return None
        span = _read_int(os.path.join(d, "max_energy_range_uj")) or 0
        prev_raw, wraps = last.get(d, (raw, 0))
        if raw < prev_raw and span:
            wraps += 1
        last[d] = (raw, wraps)
        total += (raw + wraps * span) * 1e-6
    return total


def rapl_reader(root: str | None = None) -> Callable[[], dict[str, float]]:
    """A reader of {"energy_j": counter}; raises OSError when RAPL is absent or unreadable."""
    root = RAPL_ROOT if root is None else root
    domains = rapl_packages(root)
    if not domains:
        raise OSError(f"no RAPL package domain under {root}")
    last: dict[str, tuple[int, int]] = {}
    if rapl_energy_j(domains, last) is None:
        raise PermissionError(f"{domains[0]}/energy_uj is not readable (root only since Linux 5.10)")

    def read() -> dict[str, float]:
        e = rapl_energy_j(domains, last)
        return {} if e is None else {"energy_j": e}
    return read


# --------------------------------------------------------------------------- derived figures


def energy_from_power(samples: Sequence[Mapping[str, float]]) -> float | None:
    """Trapezoid integral of power_w over t_s."""
    pts = [(s["t_s"], s["power_w"]) for s in samples if "power_w" in s]
    if len(pts) < 2:
        return None
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(pts, pts[1:]))


def throttled(clocks_mhz: list[float], drop: float = THROTTLE_DROP) -> bool | None:
    """Clocks in the last quarter of the run under (1 - drop) x the first quarter's: capped under load.
    None (unknown) under 8 readings: two per quarter is the least a quarter's median means anything on."""
    if len(clocks_mhz) < 8:
        return None
    q = len(clocks_mhz) // 4
    first, last = statistics.median(clocks_mhz[:q]), statistics.median(clocks_mhz[-q:])
    return first > 0 and last < (1 - drop) * first


def energy_summary(samples: Sequence[Mapping[str, float]], power_window_s: float = 0.0) -> dict[str, Any]:
    """duration_s, energy_j, avg_power_w, energy_from and throttled over time-stamped samples (t_s).
    Energy comes from a counter that advanced, else from power samples spanning at least
    power_window_s (the averaging window of the power reading); otherwise `short_window` is set and
    no energy is given."""
    if len(samples) < 2:
        return {}
    duration = samples[-1]["t_s"] - samples[0]["t_s"]
    counters = [(s["t_s"], s["energy_j"]) for s in samples if "energy_j" in s]
    counted = counters[-1][1] - counters[0][1] if len(counters) >= 2 else None
    counted_s = counters[-1][0] - counters[0][0] if len(counters) >= 2 else 0.0
    powered = [s["t_s"] for s in samples if "power_w" in s]
    powered_s = powered[-1] - powered[0] if len(powered) >= 2 else 0.0
    out: dict[str, Any] = {"duration_s": duration}
    if duration < power_window_s:
        # power samples here mostly average the load before the case, and an energy counter read
        # over a fraction of its update period is as unreliable (an H200 quick run: 823 W over a
        # 0.32 s fp32 case under a 700 W limit)
        out["short_window"] = True
    elif counted is not None and counted > 0 and counted_s > 0:
        # the average over the span the counter was read across, not the whole list's: a reading
        # without the counter at either end would otherwise dilute it
        out.update(energy_j=counted, avg_power_w=counted / counted_s, energy_from="counter")
    else:
        energy = energy_from_power(samples)
        if energy is not None and powered_s > 0:
            out.update(energy_j=energy, avg_power_w=energy / powered_s, energy_from="power samples")
    out["throttled"] = throttled([s["clock_mhz"] for s in samples if "clock_mhz" in s])
    return out


def _short_gpu_case(power: Mapping[str, Any]) -> bool:
    """A GPU reading (not one of CPU_SOURCES) over less than GPU_POWER_WINDOW_S, or with no duration;
    files written before the window also applied to energy counters carry no short_window flag."""
    source = str(power.get("source") or "")
    duration = _num(power.get("duration_s"))
    gpu = bool(source) and source not in CPU_SOURCES
    # no duration: fewer than two samples, whose one reading is the trailing average before the case
    return gpu and (duration is None or duration < GPU_POWER_WINDOW_S)


def efficiency(achieved: float, unit: str, power: Mapping[str, Any]) -> dict[str, float]:
    """GFLOP/s per W or GB/s per W from a record's rate (TFLOP/s or GB/s) and its average power."""
    if power.get("short_window") or power.get("energy_j") == 0 or _short_gpu_case(power):
        # a counter that did not advance over the case (files of before GPU_POWER_WINDOW_S store 0 J),
        # or a GPU case shorter than the reading's window: no per-watt figure
        return {}
    watts = _num(power.get("avg_power_w")) or _num((power.get("power_w") or {}).get("median"))
    if watts is None:
        return {}
    if unit == "TFLOP/s":
        return {"gflop_s_per_w": achieved * 1e3 / watts, "avg_power_w": watts}
    if unit != "GB/s":  # kernels per second per watt says nothing
        return {}
    return {"gb_s_per_w": achieved / watts, "avg_power_w": watts}
