"""The environment a run was measured in (style rule 4), and a fingerprint to compare machines.

Only what can be read without privileges and without the network. Anything that fails to read
is left out (an absent key), never a crash: a benchmark must not die because a sysfs file is
missing in a container.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from typing import Any, Callable

ENV_VARS = ("PYTORCH_TUNABLEOP_ENABLED", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES",
            "OMP_NUM_THREADS", "NUMBA_NUM_THREADS", "HSA_OVERRIDE_GFX_VERSION")
# What makes two runs comparable: the same host and device under the same software stack.
FINGERPRINT_KEYS = ("hostname", "machine", "cpu_model", "cpu_cores", "gpu_name", "gpu_arch", "gpu_count",
                    "device_kind", "device_name", "driver_version", "rocm_version", "cuda_version",
                    "torch_version")


def _try(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception:
        return None


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:
        return None


def _os_name() -> str | None:
    text = _read("/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', text, re.MULTILINE)
    return m.group(1) if m else platform.platform()


def _torch_facts() -> dict[str, Any]:
    import torch

    out: dict[str, Any] = {"torch_version": torch.__version__,
                           "rocm_version": getattr(torch.version, "hip", None),
                           "cuda_version": getattr(torch.version, "cuda", None)}
    if out["rocm_version"] or out["cuda_version"]:
        out["gpu_count"] = _try(lambda: torch.cuda.device_count() if torch.cuda.is_available() else 0)
    out["torch_threads"] = _try(torch.get_num_threads)
    return out


def _driver_version(kind: str) -> str | None:
    if kind == "rocm":
        return _read("/sys/module/amdgpu/version") or _smi_line(["amd-smi", "version"])
    if kind == "cuda":
        return _read_nvidia_proc() or _smi_line(["nvidia-smi", "--query-gpu=driver_version",
                                                 "--format=csv,noheader", "--id=0"])
    return None


def _read_nvidia_proc() -> str | None:
    m = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d[\d.]+)", _read("/proc/driver/nvidia/version") or "")
    return m.group(1) if m else None


def _smi_line(cmd: list[str]) -> str | None:
    if shutil.which(cmd[0]) is None:
        return None
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=3)
    except (OSError, subprocess.SubprocessError):
        return None
    line = res.stdout.strip().splitlines()[0] if res.returncode == 0 and res.stdout.strip() else ""
    return line or None


def _cpu_facts() -> dict[str, Any]:
    from recoque.bench.devices import CPU_ISA_FLAGS, read_cpu_facts

    f = read_cpu_facts()
    return {"cpu_model": f.model_name, "cpu_cores": f.cores, "cpu_logical": os.cpu_count(),
            "cpu_isa": [x for x in CPU_ISA_FLAGS if x in f.flags],
            "cpu_clock_hz": f.clock_hz, "cpu_clock_source": f.clock_source}


def _device_facts(device: Any) -> dict[str, Any]:
    out = {"device_kind": device.kind, "device_name": device.name, "torch_device": device.torch_device}
    if device.kind != "cpu":
        out.update(gpu_name=device.name, gpu_arch=device.arch, gpu_memory_bytes=device.memory_bytes,
                   gpu_compute_units=device.compute_units,
                   gpu_catalog_key=device.spec.key if device.spec else None)
    return out


def _gpu_clocks(device: Any) -> dict[str, Any]:
    from recoque.bench.telemetry import read_once

    got = read_once(device)
    return {f"gpu_{k}": v for k, v in got.items()}


def capture(device: Any) -> dict[str, Any]:
    """Everything readable about host, device and software; unreadable keys are absent."""
    env: dict[str, Any] = {}
    parts: list[Callable[[], dict[str, Any]]] = [
        lambda: {"hostname": socket.gethostname()},
        lambda: {"os": _os_name(), "kernel": platform.release(), "machine": platform.machine()},
        lambda: {"python": sys.version.split()[0]},
        lambda: {"numpy_version": _version("numpy"), "numba_version": _version("numba"),
                 "recoque_version": _version("recoque")},
        _cpu_facts,
        _torch_facts,
        lambda: _device_facts(device),
        lambda: {"driver_version": _driver_version(device.kind)},
        lambda: {"env": {k: os.environ[k] for k in ENV_VARS if k in os.environ}},
        lambda: {"numa_balancing": _read("/proc/sys/kernel/numa_balancing")},
        lambda: {"cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")},
        lambda: _gpu_clocks(device) if device.kind != "cpu" else {},
    ]
    for part in parts:
        got = _try(part) or {}
        env.update({k: v for k, v in got.items() if v is not None})
    return env


def fingerprint(env: dict[str, Any]) -> str:
    """Stable short hash of host + device + software versions (order and clocks do not matter)."""
    key = {k: env.get(k) for k in FINGERPRINT_KEYS}
    blob = json.dumps(key, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def same_machine(env_a: dict[str, Any], env_b: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether two captured environments fingerprint alike, and the keys that differ."""
    diff = [k for k in FINGERPRINT_KEYS if env_a.get(k) != env_b.get(k)]
    return not diff, diff
