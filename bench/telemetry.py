"""Best-effort clock / power / temperature readings while a benchmark runs.

Nothing here may break a benchmark: every source is guarded, and an unreadable metric is simply
absent. GPU order of preference: the vendor library in process (nvidia-ml-py's `pynvml` on NVIDIA,
`amdsmi` on ROCm; both optional extras), then torch.cuda.clock_rate / power_draw / temperature
(which wrap the same libraries), then the vendor CLI (`nvidia-smi`, `amd-smi`, `rocm-smi`) with a
short timeout, only when the binary is on PATH. The vendor tools count GPUs physically while
torch counts only the visible ones, so torch's index is mapped through CUDA_VISIBLE_DEVICES /
ROCR_VISIBLE_DEVICES + HIP_VISIBLE_DEVICES (indices or UUIDs) first. CPU: current MHz from
/proc/cpuinfo. Units: clock_mhz, power_w, temp_c.
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


def nvml_reader(phys: str) -> Reader | None:
    """A reader through nvidia-ml-py (import pynvml), or None when it is absent or fails."""
    try:
        import pynvml  # type: ignore[import-not-found]

        pynvml.nvmlInit()
        handle = (pynvml.nvmlDeviceGetHandleByIndex(int(phys)) if phys.isdigit()
                  else pynvml.nvmlDeviceGetHandleByUUID(phys))
    except Exception:
        return None

    def read() -> dict[str, float]:
        out: dict[str, float] = {}
        for metric, fn in (("clock_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
                           ("power_w", lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000.0),  # mW
                           ("temp_c", lambda: pynvml.nvmlDeviceGetTemperature(handle, pynvml.NVML_TEMPERATURE_GPU))):
            try:
                v = _positive(fn())
            except Exception:
                v = None
            if v is not None:
                out[metric] = v
        return out

    return read


def amdsmi_reader(phys: str) -> Reader | None:
    """A reader through the amdsmi Python package (ROCm), or None when it is absent or fails."""
    try:
        import amdsmi  # type: ignore[import-not-found]

        amdsmi.amdsmi_init()
        handles = amdsmi.amdsmi_get_processor_handles()
        if phys.isdigit():
            handle = handles[int(phys)]
        else:
            handle = next(h for h in handles
                          if str(amdsmi.amdsmi_get_gpu_device_uuid(h)).lower() in phys.lower())
    except Exception:
        return None

    def power() -> Any:
        info = amdsmi.amdsmi_get_power_info(handle)
        for key in ("current_socket_power", "average_socket_power", "socket_power"):
            if _positive(info.get(key)) is not None:
                return info[key]
        return None

    def read() -> dict[str, float]:
        out: dict[str, float] = {}
        for metric, fn in (("clock_mhz", lambda: amdsmi.amdsmi_get_clock_info(handle, amdsmi.AmdSmiClkType.GFX)["clk"]),
                           ("power_w", power),
                           ("temp_c", lambda: amdsmi.amdsmi_get_temp_metric(
                               handle, amdsmi.AmdSmiTemperatureType.HOTSPOT, amdsmi.AmdSmiTemperatureMetric.CURRENT))):
            try:
                v = _number(fn())
            except Exception:
                v = None
            if v is not None:
                out[metric] = v
        return out

    return read


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
    out: dict[str, float] = {}
    calls = (("clock_mhz", "clock_rate", 1.0), ("temp_c", "temperature", 1.0),
             # NVML gives milliwatts; torch's amdsmi path gives watts (socket power).
             ("power_w", "power_draw", 1.0 if hip else 1e-3))
    for metric, fn_name, scale in calls:
        fn = getattr(torch.cuda, fn_name, None)
        if fn is None:
            continue
        try:
            v = _positive(fn(index))
        except Exception:  # missing pynvml/amdsmi, unsupported sensor, driver error
            v = None
        if v is not None:
            out[metric] = v * scale
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


# --------------------------------------------------------------------------- choosing a source


def make_reader(device: Any) -> tuple[Reader | None, str]:
    """Probe once and return the cheapest source that reads anything, with its name."""
    if device is None or getattr(device, "kind", "cpu") == "cpu":
        return (cpu_reading, "/proc/cpuinfo") if cpu_reading() else (None, "none")
    index, hip = _device_index(device), device.kind == "rocm"
    phys = physical_id(index, hip)
    lib = amdsmi_reader(phys) if hip else nvml_reader(phys)
    if lib is not None and lib():
        return lib, f"{'amdsmi' if hip else 'pynvml'} (physical GPU {phys})"
    if torch_reading(index, hip):
        return (lambda: torch_reading(index, hip)), "torch.cuda (amdsmi)" if hip else "torch.cuda (pynvml)"
    if cli_reading(phys, hip):
        return (lambda: cli_reading(phys, hip)), f"{'amd-smi/rocm-smi' if hip else 'nvidia-smi'} (physical GPU {phys})"
    return None, "none"


def read_once(device: Any) -> dict[str, float]:
    """One reading now (environment capture); {} when nothing is readable."""
    try:
        reader, _ = make_reader(device)
        return reader() if reader else {}
    except Exception:
        return {}


def summarize(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    out = {}
    for metric in METRICS:
        vals = [s[metric] for s in samples if metric in s]
        if vals:
            out[metric] = {"min": min(vals), "median": statistics.median(vals), "max": max(vals), "n": len(vals)}
    return out


class Sampler:
    """Sample telemetry in a background thread every ~interval_s while a benchmark runs.

        with Sampler(device) as s:
            run()
        s.summary()  # {"clock_mhz": {"min", "median", "max", "n"}, ...}; {} if nothing readable
    """

    def __init__(self, device: Any, interval_s: float = 0.2) -> None:
        self.device = device
        self.interval_s = interval_s
        self.samples: list[dict[str, float]] = []
        self.source = "none"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reader: Reader | None = None

    def __enter__(self) -> "Sampler":
        try:
            self._reader, self.source = make_reader(self.device)
        except Exception:
            self._reader, self.source = None, "none"
        if self._reader is not None:
            self._thread = threading.Thread(target=self._loop, name="recoque-telemetry", daemon=True)
            self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                got = self._reader() if self._reader else {}
            except Exception:
                got = {}
            if got:
                self.samples.append(got)
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=CLI_TIMEOUT_S + 1.0)

    def summary(self) -> dict[str, dict[str, float]]:
        return summarize(list(self.samples))
