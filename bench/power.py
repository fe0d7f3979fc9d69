"""Power, energy, clocks and temperature sampled in the background while a benchmark runs.

Sources, first that reads wins: NVML (`pynvml`, from the nvidia-ml-py package) on NVIDIA GPUs,
`amdsmi` (ROCm's Python bindings) on AMD GPUs, and on CPUs the Linux powercap/RAPL energy counters
(/sys/class/powercap/intel-rapl:N/energy_uj; AMD Zen exposes the same interface since Linux 5.8)
with the clock from /proc/cpuinfo. Energy comes from the hardware energy counter where there is one
(NVML total energy, amdsmi energy accumulator, RAPL), otherwise from the power samples integrated
over time (trapezoids). When nothing is readable the summary carries one note saying why, and that
note is printed once per process, never once per case.

    with PowerSampler(device) as p:
        run()
    p.summary()  # {"avg_power_w", "energy_j", "duration_s", "clock_mhz", "throttled", "samples", ...}

Nothing here may break a benchmark: every read is guarded. Units: W, J, MHz, degrees C, seconds.
"""
from __future__ import annotations

import glob
import os
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping

THROTTLE_DROP = 0.05  # clocks 5% under their early-run level while loaded: power or thermal capping
MAX_STORED_SAMPLES = 30  # downsampled: a sweep of hundreds of cases must keep the results file small
_NOTED: set[str] = set()


@dataclass(frozen=True)
class Reading:
    """One sample; absent metrics are None. energy_j is a monotonic counter (any origin) or None."""

    t_s: float
    power_w: float | None = None
    clock_mhz: float | None = None
    temp_c: float | None = None
    energy_j: float | None = None


Source = Callable[[], Reading]


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


# --------------------------------------------------------------------------- NVIDIA (NVML)


def nvml_source(index: int) -> Source:
    import pynvml  # nvidia-ml-py

    pynvml.nvmlInit()
    h = pynvml.nvmlDeviceGetHandleByIndex(index)

    def guarded(fn: Callable[[], Any], scale: float = 1.0) -> float | None:
        try:
            v = _num(fn())
        except Exception:  # pynvml.NVMLError for unsupported sensors
            return None
        return None if v is None else v * scale

    def read() -> Reading:
        return Reading(time.monotonic(),
                       power_w=guarded(lambda: pynvml.nvmlDeviceGetPowerUsage(h), 1e-3),  # mW
                       clock_mhz=guarded(lambda: pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM)),
                       temp_c=guarded(lambda: pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU)),
                       energy_j=guarded(lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(h), 1e-3))  # mJ
    return read


# --------------------------------------------------------------------------- AMD (amdsmi)


def amdsmi_source(index: int) -> Source:
    import amdsmi

    amdsmi.amdsmi_init()
    h = amdsmi.amdsmi_get_processor_handles()[index]

    def power() -> float | None:
        info = amdsmi.amdsmi_get_power_info(h)
        for key in ("current_socket_power", "average_socket_power", "socket_power"):
            v = _num(info.get(key)) if isinstance(info, Mapping) else None
            if v is not None:
                return v  # watts
        return None

    def clock() -> float | None:
        return _num(amdsmi.amdsmi_get_clock_info(h, amdsmi.AmdSmiClkType.GFX).get("clk"))

    def temp() -> float | None:
        return _num(amdsmi.amdsmi_get_temp_metric(h, amdsmi.AmdSmiTemperatureType.HOTSPOT,
                                                  amdsmi.AmdSmiTemperatureMetric.CURRENT))

    def energy() -> float | None:
        e = amdsmi.amdsmi_get_energy_count(h)
        acc = _num(e.get("energy_accumulator"))
        res = _num(e.get("counter_resolution"))  # microjoules per count
        return acc * res * 1e-6 if acc and res else None

    def guarded(fn: Callable[[], float | None]) -> float | None:
        try:
            return fn()
        except Exception:
            return None

    def read() -> Reading:
        return Reading(time.monotonic(), guarded(power), guarded(clock), guarded(temp), guarded(energy))
    return read


# --------------------------------------------------------------------------- CPU (powercap RAPL)


def rapl_packages(root: str = "/sys/class/powercap") -> list[str]:
    """Top-level RAPL package domains (intel-rapl:0, intel-rapl:1; not the :0:0 sub-domains)."""
    return sorted(d for d in glob.glob(os.path.join(root, "intel-rapl:*")) if d.count(":") == 1)


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


def cpu_mhz() -> float | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            vals = [float(line.split(":")[1]) for line in fh if line.startswith("cpu MHz")]
    except (OSError, ValueError, IndexError):
        return None
    return sum(vals) / len(vals) if vals else None


def rapl_source(root: str = "/sys/class/powercap") -> Source:
    domains = rapl_packages(root)
    if not domains:
        raise OSError(f"no RAPL package domain under {root}")
    last: dict[str, tuple[int, int]] = {}
    if rapl_energy_j(domains, last) is None:
        raise PermissionError(f"{domains[0]}/energy_uj is not readable (root only since Linux 5.10)")

    def read() -> Reading:
        return Reading(time.monotonic(), clock_mhz=cpu_mhz(), energy_j=rapl_energy_j(domains, last))
    return read


# --------------------------------------------------------------------------- choosing a source


def _index(device: Any) -> int:
    tail = str(getattr(device, "torch_device", "cuda:0")).partition(":")[2]
    return int(tail) if tail.isdigit() else 0


def make_source(device: Any) -> tuple[Source | None, str, str]:
    """(reader, source name, note when none). Probed once per sampler."""
    kind = getattr(device, "kind", "cpu") if device is not None else "cpu"
    tries: list[tuple[str, Callable[[], Source]]]
    if kind == "cuda":
        tries = [("nvml", lambda: nvml_source(_index(device)))]
        hint = "install nvidia-ml-py for GPU power readings"
    elif kind == "rocm":
        tries = [("amdsmi", lambda: amdsmi_source(_index(device)))]
        hint = "install ROCm's amdsmi Python package for GPU power readings"
    else:
        tries = [("rapl", rapl_source)]
        hint = "RAPL counters need a Linux host that exposes /sys/class/powercap and read access (often root)"
    why = []
    for name, make in tries:
        try:
            reader = make()
            reader()
            return reader, name, ""
        except Exception as exc:  # ImportError, NVMLError, PermissionError, missing sysfs
            why.append(f"{name}: {type(exc).__name__}: {exc}".strip())
    return None, "none", f"power unavailable ({'; '.join(why)}): {hint}"


# --------------------------------------------------------------------------- derived figures


def energy_from_power(readings: list[Reading]) -> float | None:
    pts = [(r.t_s, r.power_w) for r in readings if r.power_w is not None]
    if len(pts) < 2:
        return None
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in zip(pts, pts[1:]))


def throttled(clocks_mhz: list[float], drop: float = THROTTLE_DROP) -> bool:
    """Clocks in the last quarter of the run under (1 - drop) x the first quarter's: capped under load."""
    if len(clocks_mhz) < 8:
        return False
    q = len(clocks_mhz) // 4
    first, last = statistics.median(clocks_mhz[:q]), statistics.median(clocks_mhz[-q:])
    return first > 0 and last < (1 - drop) * first


def summarize(readings: list[Reading], source: str, note: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"source": source}
    if note:
        out["note"] = note
    if len(readings) < 2:
        return out
    duration = readings[-1].t_s - readings[0].t_s
    counters = [r.energy_j for r in readings if r.energy_j is not None]
    energy = counters[-1] - counters[0] if len(counters) >= 2 else energy_from_power(readings)
    out["duration_s"] = duration
    if energy is not None and duration > 0:
        out["energy_j"] = energy
        out["avg_power_w"] = energy / duration
        out["energy_from"] = "counter" if len(counters) >= 2 else "power samples"
    for metric in ("power_w", "clock_mhz", "temp_c"):
        vals = [getattr(r, metric) for r in readings if getattr(r, metric) is not None]
        if vals:
            out[metric] = {"min": min(vals), "median": statistics.median(vals), "max": max(vals), "n": len(vals)}
    clocks = [r.clock_mhz for r in readings if r.clock_mhz is not None]
    out["throttled"] = throttled(clocks)
    step = max(1, len(readings) // MAX_STORED_SAMPLES)
    t0 = readings[0].t_s
    out["samples"] = [{"t_s": round(r.t_s - t0, 4), "power_w": r.power_w, "clock_mhz": r.clock_mhz,
                       "temp_c": r.temp_c} for r in readings[::step]]
    return out


def efficiency(achieved: float, unit: str, power: Mapping[str, Any]) -> dict[str, float]:
    """GFLOP/s per W or GB/s per W from a record's rate (TFLOP/s or GB/s) and its average power."""
    watts = _num(power.get("avg_power_w")) or _num((power.get("power_w") or {}).get("median"))
    if watts is None:
        return {}
    if unit == "TFLOP/s":
        return {"gflop_s_per_w": achieved * 1e3 / watts, "avg_power_w": watts}
    return {"gb_s_per_w": achieved / watts, "avg_power_w": watts}


# --------------------------------------------------------------------------- the sampler


class PowerSampler:
    """Background sampling thread: start()/stop()/summary(), or use as a context manager."""

    def __init__(self, device: Any = None, interval_s: float = 0.1, source: Source | None = None,
                 source_name: str = "custom") -> None:
        self.device = device
        self.interval_s = interval_s
        self.readings: list[Reading] = []
        self._source, self.source_name, self.note = source, source_name, ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "PowerSampler":
        if self._source is None:
            self._source, self.source_name, self.note = make_source(self.device)
            if self.note:
                note_once(self.note)
        if self._source is not None:
            self._sample()  # one reading at the start, so a short case still has a span
            self._thread = threading.Thread(target=self._loop, name="recoque-power", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        try:
            self.readings.append(self._source())  # type: ignore[misc]
        except Exception:
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def stop(self) -> "PowerSampler":
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
            self._sample()  # and one at the end
        return self

    def summary(self) -> dict[str, Any]:
        return summarize(list(self.readings), self.source_name, self.note)

    def __enter__(self) -> "PowerSampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
