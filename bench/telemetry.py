"""The one background sampler: clocks, power, energy and temperature while a benchmark runs.

Nothing here may break a benchmark: every source is guarded, and an unreadable metric is simply
absent. GPU order of preference: the vendor library in process (nvidia-ml-py's `pynvml` on NVIDIA,
`amdsmi` on ROCm; both optional extras, and the only ones with an energy counter), then
torch.cuda.clock_rate / power_draw / temperature (which wrap the same libraries), then the vendor
CLI (`nvidia-smi`, `amd-smi`, `rocm-smi`) with a short timeout, only when the binary is on PATH;
the cheapest source that reads power wins, else the first that reads anything. The vendor tools
count GPUs physically while torch counts only the visible ones, so torch's index is mapped through
CUDA_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES + HIP_VISIBLE_DEVICES (indices or UUIDs) first. CPU:
current MHz from /proc/cpuinfo plus the RAPL energy counter where readable (bench/power.py, which
also derives energy, average power, throttling and efficiency). When no source reads power, the
summary says why in a note, printed once per process. Units: clock_mhz, power_w, temp_c, energy_j.

    with Sampler(device) as s:
        run()
    s.summary()  # {"source", "clock_mhz": {"min", "median", "mean", "max", "n"}, "power_w", "temp_c",
                 #  "duration_s", "energy_j", "avg_power_w", "energy_from", "throttled", ["note"]}
"""
from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import threading
import time
from typing import Any, Callable

from recoque.bench import power

METRICS = ("clock_mhz", "power_w", "temp_c")
CLI_TIMEOUT_S = 2.0
Reader = Callable[[], "dict[str, float]"]


def _device_index(device: Any) -> int:
    tail = str(getattr(device, "torch_device", "cuda:0")).partition(":")[2]
    return int(tail) if tail.isdigit() else 0


def _visible_list(value: str | None) -> list[str] | None:
    if value is None or not value.strip():
        return None
    return [x.strip() for x in value.split(",") if x.strip()]


def physical_id(index: int, hip: bool, environ: Any = None) -> str:
    """The vendor tools' id of torch's visible device `index`: a physical index ("5") or a UUID.

    CUDA: CUDA_VISIBLE_DEVICES lists physical ids in torch's order. ROCm: ROCR_VISIBLE_DEVICES
    selects from the physical GPUs first, then HIP_VISIBLE_DEVICES (or CUDA_VISIBLE_DEVICES,
    which HIP also honours) selects from what ROCR left, by position.
    """
    import os

    env = os.environ if environ is None else environ
    ids: list[str] | None = None
    if hip:
        rocr = _visible_list(env.get("ROCR_VISIBLE_DEVICES"))
        hipv = _visible_list(env.get("HIP_VISIBLE_DEVICES")) or _visible_list(env.get("CUDA_VISIBLE_DEVICES"))
        ids = rocr
        if hipv is not None:
            base = rocr if rocr is not None else None
            ids = [base[int(h)] if base is not None and h.isdigit() and int(h) < len(base) else h for h in hipv]
    else:
        ids = _visible_list(env.get("CUDA_VISIBLE_DEVICES"))
    if ids is None:
        return str(index)
    return ids[index] if index < len(ids) else str(index)


# --------------------------------------------------------------------------- vendor libraries


def _guarded(calls: Any, conv: Callable[[Any], float | None]) -> dict[str, float]:
    """Each (metric, fn) read on its own: an unsupported sensor or a driver error drops only that metric."""
    out: dict[str, float] = {}
    for metric, fn in calls:
        try:
            v = conv(fn())
        except Exception:  # NVMLError, AmdSmiException, AttributeError on an older binding
            v = None
        if v is not None:
            out[metric] = v
    return out


def nvml_reader(phys: str) -> Reader:
    """A reader through nvidia-ml-py (import pynvml); raises when it is absent or fails."""
    import pynvml  # type: ignore[import-not-found]

    pynvml.nvmlInit()
    handle = (pynvml.nvmlDeviceGetHandleByIndex(int(phys)) if phys.isdigit()
              else pynvml.nvmlDeviceGetHandleByUUID(phys))
    calls = (("clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
             ("power_w", lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0),  # mW
             ("temp_c", lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU)),
             # mJ since the driver loaded (Volta and later): a counter, differenced over the run
             ("energy_j", lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0))
    return lambda: _guarded(calls, _positive)


def amdsmi_reader(phys: str) -> Reader:
    """A reader through the amdsmi Python package (ROCm); raises when it is absent or fails."""
    import amdsmi  # type: ignore[import-not-found]

    amdsmi.amdsmi_init()
    handles = amdsmi.amdsmi_get_processor_handles()
    if phys.isdigit():
        handle = handles[int(phys)]
    else:
        handle = next(h for h in handles if str(amdsmi.amdsmi_get_gpu_device_uuid(h)).lower() in phys.lower())

    def socket_power() -> Any:
        info = amdsmi.amdsmi_get_power_info(handle)
        return next((info[k] for k in ("current_socket_power", "average_socket_power", "socket_power")
                     if _number(info.get(k)) is not None), None)  # watts

    def energy() -> Any:
        e = amdsmi.amdsmi_get_energy_count(handle)  # counts x counter_resolution microjoules
        # amdsmi of ROCm 6.2 and older names the accumulator `power` (renamed in amdsmi 95ca2b8, 2024-08)
        count = e.get("energy_accumulator", e.get("power"))
        return _positive(count) * _positive(e["counter_resolution"]) * 1e-6  # type: ignore[operator]

    calls = (("clock_mhz", lambda: amdsmi.amdsmi_get_clock_info(handle, amdsmi.AmdSmiClkType.GFX)["clk"]),
             ("power_w", socket_power),
             ("temp_c", lambda: amdsmi.amdsmi_get_temp_metric(
                 handle, amdsmi.AmdSmiTemperatureType.HOTSPOT, amdsmi.AmdSmiTemperatureMetric.CURRENT)),
             ("energy_j", energy))
    return lambda: _guarded(calls, _number)


def _positive(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f > 0 else None  # amdsmi answers 0 for "N/A"


# --------------------------------------------------------------------------- torch.cuda


def torch_reading(index: int, hip: bool) -> dict[str, float]:
    """One reading through torch.cuda's pynvml/amdsmi helpers; each metric guarded on its own."""
    try:
        import torch
    except Exception:
        return {}

    def call(name: str, scale: float = 1.0) -> Callable[[], float]:
        return lambda: getattr(torch.cuda, name)(index) * scale  # missing pynvml/amdsmi raises: guarded

    # NVML gives milliwatts; torch's amdsmi path gives watts (socket power).
    out = _guarded((("clock_mhz", call("clock_rate")), ("temp_c", call("temperature")),
                    ("power_w", call("power_draw", 1.0 if hip else 1e-3))), _positive)
    if "temp_c" in out and out["temp_c"] > 1000:  # some stacks report millidegrees
        out["temp_c"] /= 1000
    return out


# --------------------------------------------------------------------------- vendor CLIs


def _run(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout if res.returncode == 0 else None


def parse_nvidia_smi(text: str) -> dict[str, float]:
    """`nvidia-smi --query-gpu=clocks.sm,power.draw,temperature.gpu --format=csv,noheader,nounits`."""
    parts = [p.strip() for p in text.strip().splitlines()[0].split(",")] if text.strip() else []
    out = {}
    for metric, raw in zip(METRICS, parts):
        v = _positive(raw)
        if v is not None:
            out[metric] = v
    return out


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        flat: dict[str, Any] = {}
        for k, v in obj.items():
            flat.update(_flatten(v, f"{prefix}.{k}".lower() if prefix else str(k).lower()))
        return flat
    if isinstance(obj, list):
        flat = {}
        for i, v in enumerate(obj):
            flat.update(_flatten(v, f"{prefix}[{i}]"))
        return flat
    return {prefix: obj}


def _number(v: Any) -> float | None:
    """A positive number, or the first one in a text such as "702 W" or "(1700Mhz)"."""
    if _positive(v) is not None:
        return _positive(v)
    m = re.search(r"-?\d+(?:\.\d+)?", str(v))
    return _positive(m.group(0)) if m else None


_AMD_PATTERNS = {  # first matching key wins; amd-smi and rocm-smi JSON spell these differently
    "power_w": (r"socket_power(\.value)?$", r"average graphics package power", r"current socket graphics package power", r"power.*\(w\)"),
    "temp_c": (r"hotspot(\.value)?$", r"junction", r"edge(\.value)?$", r"temperature.*\(c\)"),
    "clock_mhz": (r"gfx_0\.clk(\.value)?$", r"sclk clock speed", r"gfx.*clk(\.value)?$"),
}


def parse_amd_json(text: str) -> dict[str, float]:
    """Pick power/temperature/clock out of `amd-smi metric --json` or `rocm-smi --json` output."""
    try:
        flat = _flatten(json.loads(text))
    except (ValueError, TypeError):
        return {}
    out = {}
    for metric, patterns in _AMD_PATTERNS.items():
        for pat in patterns:
            hit = next((v for k, v in flat.items() if re.search(pat, k) and _number(v) is not None), None)
            if hit is not None:
                out[metric] = _number(hit)  # type: ignore[assignment]
                break
    return out


def cli_reading(index: int | str, hip: bool) -> dict[str, float]:
    """Through the vendor CLI; `index` is the physical id (see physical_id), not torch's index."""
    if not hip:
        text = _run(["nvidia-smi", f"--id={index}", "--query-gpu=clocks.sm,power.draw,temperature.gpu",
                     "--format=csv,noheader,nounits"])
        return parse_nvidia_smi(text) if text else {}
    text = _run(["amd-smi", "metric", "-g", str(index), "--power", "--clock", "--temperature", "--json"])
    got = parse_amd_json(text) if text else {}
    if got:
        return got
    text = _run(["rocm-smi", "-d", str(index), "--showpower", "--showtemp", "--showclocks", "--json"])
    return parse_amd_json(text) if text else {}


# --------------------------------------------------------------------------- CPU


def cpu_mhz_from_cpuinfo(text: str) -> float | None:
    """Mean current clock over the CPUs listed in /proc/cpuinfo text."""
    vals = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", text, re.MULTILINE)]
    return sum(vals) / len(vals) if vals else None


def cpu_reading() -> dict[str, float]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            mhz = cpu_mhz_from_cpuinfo(fh.read())
    except OSError:
        return {}
    return {"clock_mhz": mhz} if mhz else {}


def cpu_rapl_reader() -> Reader:
    """/proc/cpuinfo clocks plus the RAPL package energy counter; raises when RAPL is unreadable."""
    rapl = power.rapl_reader()
    return lambda: {**cpu_reading(), **rapl()}


# --------------------------------------------------------------------------- choosing a source


def _candidates(device: Any) -> tuple[list[tuple[str, Callable[[], Reader]]], str]:
    """(name, reader factory) in order of preference, and the hint for a missing power reading."""
    if device is None or getattr(device, "kind", "cpu") == "cpu":
        return ([(power.CPU_SOURCES[0], cpu_rapl_reader), (power.CPU_SOURCES[1], lambda: cpu_reading)],
                "RAPL counters need a Linux host that exposes /sys/class/powercap and read access (often root)")
    index, hip = _device_index(device), device.kind == "rocm"
    phys = physical_id(index, hip)
    lib, cli = ("amdsmi", "amd-smi/rocm-smi") if hip else ("pynvml", "nvidia-smi")
    return ([(f"{lib} (physical GPU {phys})", lambda: (amdsmi_reader if hip else nvml_reader)(phys)),
             (f"torch.cuda ({lib})", lambda: lambda: torch_reading(index, hip)),
             (f"{cli} (physical GPU {phys})", lambda: lambda: cli_reading(phys, hip))],
            "install ROCm's amdsmi Python package for GPU power readings" if hip
            else "install nvidia-ml-py for GPU power readings")


def make_reader(device: Any) -> tuple[Reader | None, str, str]:
    """Probe once: (reader, its name, note). The cheapest source that reads power or energy wins,
    else the first that reads anything, with a note saying why power is unavailable."""
    candidates, hint = _candidates(device)
    why: list[str] = []
    fallback: tuple[Reader | None, str] = (None, "none")
    for name, make in candidates:
        try:
            reader = make()
            got = reader()
        except Exception as exc:  # ImportError, NVMLError, PermissionError, missing sysfs
            why.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        if "power_w" in got or "energy_j" in got:
            return reader, name, ""
        why.append(f"{name}: {'no power reading' if got else 'nothing readable'}")
        if got and fallback[0] is None:
            fallback = (reader, name)
    return (*fallback, f"power unavailable ({'; '.join(why)}): {hint}")


def read_once(device: Any) -> dict[str, float]:
    """One reading now (environment capture), without the energy counter; {} when nothing is readable."""
    try:
        reader, _, _ = make_reader(device)
        got = reader() if reader else {}
    except Exception:
        return {}
    return {k: v for k, v in got.items() if k != "energy_j"}


def summarize(samples: list[dict[str, float]], source: str = "none", note: str = "",
              power_window_s: float = 0.0) -> dict[str, Any]:
    """Each metric's min/median/mean/max/n, then duration, energy, average power and throttling
    (bench/power.py) over time-stamped samples (t_s, monotonic seconds); power_window_s is the
    averaging window of the source's power reading (power.GPU_POWER_WINDOW_S on GPUs)."""
    samples = sorted(samples, key=lambda s: s.get("t_s", 0.0))
    out: dict[str, Any] = {"source": source, **({"note": note} if note else {})}
    for metric in METRICS:
        vals = [s[metric] for s in samples if metric in s]
        if vals:
            out[metric] = {"min": min(vals), "median": statistics.median(vals), "mean": statistics.fmean(vals),
                           "max": max(vals), "n": len(vals)}
    return {**out, **power.energy_summary(samples, power_window_s)}


class Sampler:
    """Sample telemetry in a background thread every ~interval_s while a benchmark runs, with one
    reading at the start and one at the end so a short case still has an energy span; mark() moves
    the start to after the warm-up.

        with Sampler(device) as s:
            run()
        s.summary()  # see the module docstring; {"source": "none", "note": ...} if nothing readable
    """

    def __init__(self, device: Any, interval_s: float = 0.2) -> None:
        self.device = device
        self.interval_s = interval_s
        self.samples: list[dict[str, float]] = []
        self.source, self.note = "none", ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: Reader | None = None
        self._lock = threading.Lock()
        self._from_s: float | None = None  # monotonic time of mark(): samples stamped before it are left out

    def __enter__(self) -> "Sampler":
        try:
            self._reader, self.source, self.note = make_reader(self.device)
        except Exception:
            self._reader, self.source, self.note = None, "none", ""
        if self.note:
            power.note_once(self.note)
        if self._reader is not None:
            self._sample()
            self._thread = threading.Thread(target=self._loop, name="recoque-telemetry", daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        t_s = time.monotonic()
        try:
            got = self._reader() if self._reader else {}
        except Exception:
            got = {}
        if got:
            with self._lock:
                self.samples.append({"t_s": t_s, **got})

    def mark(self) -> None:
        """Start the summary here (after the warm-up): a reading now, and none stamped before it counted.
        By time, not by position: a reading the sampler thread began during the warm-up lands in the
        list after this point, and its power is the warm-up's."""
        if self._reader is None:
            return
        self._from_s = time.monotonic()
        self._sample()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=CLI_TIMEOUT_S + 1.0)
            self._sample()

    def summary(self) -> dict[str, Any]:
        gpu = getattr(self.device, "kind", "cpu") != "cpu"
        with self._lock:
            kept = sorted((x for x in self.samples if self._from_s is None or x["t_s"] >= self._from_s),
                          key=lambda x: x["t_s"])  # two threads read: appended in the order reads ended
        return summarize(kept, self.source, self.note, power.GPU_POWER_WINDOW_S if gpu else 0.0)
