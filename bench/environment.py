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
# Variables that change which kernels run or how fast (e.g. OPENBLAS_CORETYPE=Haswell halves
# numpy's GEMM on an AVX-512 CPU): every one set is recorded.
ENV_PREFIXES = ("PYTORCH_TUNABLEOP_", "HIPBLASLT_", "CUBLASLT_", "CUBLAS_", "ROCBLAS_", "TORCH_BLAS_",
                "OPENBLAS_", "MKL_", "OMP_", "GOMP_", "KMP_", "NCCL_", "RCCL_", "HSA_", "MIOPEN_",
                "TORCH_CUDNN_", "NUMBA_")
# Set by recoque itself (recoque.numba_cache: where compiled kernels are cached, a per-user path) or
# by threadpoolctl when it loads (KMP_DUPLICATE_LIB_OK, so that two OpenMP runtimes may coexist): they
# change no kernel and no speed, so recording them would only make two runs look different.
ENV_NOT_RECORDED = ("NUMBA_CACHE_DIR", "KMP_DUPLICATE_LIB_OK")
# What makes two runs comparable: the same host and device under the same software stack, and the
# same CPU clock behind the computed CPU peaks (so --append never mixes two peaks).
# What identifies a machine and its software stack. Not the CPU clock: it is measured each run (a
# VM without cpufreq caches the highest probe, which only rises), so it would make the same host
# "another machine" at every run; bench compare lists it apart (bench/compare.py VOLATILE_ENV).
FINGERPRINT_KEYS = ("hostname", "machine", "cpu_model", "cpu_cores", "gpu_name", "gpu_arch", "gpu_count",
                    "device_kind", "device_name", "driver_version", "rocm_version", "cuda_version",
                    "torch_version")


def prepare(device: Any) -> dict[str, str]:
    """Settings made before the first GPU library call; returned (and recorded by `capture`).

    ROCm: HIPBLASLT_ALLOW_TF32=1 (torch reads it once; without it allow_tf32 is ignored and the
    tf32 case runs fp32). TunableOp: its result files go to ~/.cache/recoque/tunableop (a temporary
    folder if that is not writable), not the working directory, unless PYTORCH_TUNABLEOP_FILENAME
    names one.
    """
    made: dict[str, str] = {}
    if device.kind == "rocm":
        from recoque.kernels.gemm import rocm_tf32_env

        made.update(rocm_tf32_env())
    if device.kind != "cpu" and os.environ.get("PYTORCH_TUNABLEOP_ENABLED") == "1" \
            and not os.environ.get("PYTORCH_TUNABLEOP_FILENAME"):
        folder = os.path.join(os.path.expanduser("~"), ".cache", "recoque", "tunableop")
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError:
            import tempfile

            folder = tempfile.mkdtemp(prefix="recoque-tunableop-")
        # TunableOp replaces %d with the device ordinal: one file per GPU.
        os.environ["PYTORCH_TUNABLEOP_FILENAME"] = os.path.join(folder, "tunableop_results%d.csv")
        made["PYTORCH_TUNABLEOP_FILENAME"] = os.environ["PYTORCH_TUNABLEOP_FILENAME"]
    return made


def recorded_env(environ: Any = None) -> dict[str, str]:
    """The named variables and every one with a performance-relevant prefix that is set."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in sorted(environ)
            if (k in ENV_VARS or k.startswith(ENV_PREFIXES)) and k not in ENV_NOT_RECORDED}


def blas_libraries() -> list[dict[str, Any]]:
    """BLAS and OpenMP libraries loaded in this process, with the kernels they chose (threadpoolctl,
    an optional dependency: without it this is empty)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    import numpy  # noqa: F401  (loads OpenBLAS, so it is listed)

    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer", "architecture")
    libs = [{k: lib.get(k) for k in keep if lib.get(k) is not None} for lib in threadpool_info()]
    # in a fixed order: threadpoolctl lists them in load order, which differs from run to run, and a
    # comparison of two runs would report the reordering as a difference
    return sorted(libs, key=lambda lib: tuple(str(lib.get(k, "")) for k in keep))


def stack_versions() -> dict[str, Any]:
    """What torch reports about its GPU stack: HIP/CUDA, RCCL/NCCL, MIOpen/cuDNN, BLAS preference."""
    import torch

    out: dict[str, Any] = {}
    if not (getattr(torch.version, "hip", None) or getattr(torch.version, "cuda", None)):
        return out
    hip = bool(getattr(torch.version, "hip", None))
    nccl = _try(lambda: torch.cuda.nccl.version())
    if nccl is not None:
        out["rccl_version" if hip else "nccl_version"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)
    dnn = _try(torch.backends.cudnn.version)
    if dnn is not None:
        out["miopen_version" if hip else "cudnn_version"] = dnn
    blas = _try(lambda: str(torch.backends.cuda.preferred_blas_library()))
    if blas:
        out["preferred_blas_library"] = blas
    if hip:
        out["rocm_install_version"] = _read("/opt/rocm/.info/version")
        out["hipblaslt_version"] = _hipblaslt_version()
    return {k: v for k, v in out.items() if v is not None}


def _hipblaslt_version() -> str | None:
    """hipBLASLt's version from its package metadata under /opt/rocm, where installed."""
    for path in ("/opt/rocm/lib/cmake/hipblaslt/hipblaslt-config-version.cmake",):
        m = re.search(r'PACKAGE_VERSION\s+"([^"]+)"', _read(path) or "")
        if m:
            return m.group(1)
    return None


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
    out["numba_threads"] = _try(_numba_threads)  # the CPU STREAM kernels split their work by it
    out.update(_try(_torch_cpu_maths) or {})
    return out


def _numba_threads() -> int:
    import numba

    return int(numba.get_num_threads())


def _torch_cpu_maths() -> dict[str, Any]:
    """What does torch's CPU maths: its linked BLAS (MKL is linked statically, so threadpoolctl's
    list of loaded libraries misses it), oneDNN, and the vector ISA its kernels dispatched to."""
    import re

    import torch

    config = torch.__config__.show()
    blas = re.search(r"BLAS_INFO=([^,\s]+)", config)
    onednn = re.search(r"(?:MKL-DNN|oneDNN) v([0-9.]+)", config)
    return {"torch_blas": blas.group(1) if blas else None, "torch_onednn_version": onednn.group(1) if onednn else None,
            "torch_cpu_capability": _try(torch.backends.cpu.get_cpu_capability)}


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


def _power_limit_w(device: Any) -> float | None:
    """The power limit the GPU runs under now (W): NVIDIA through nvidia-smi (power.limit, watts),
    AMD through amdsmi (power_cap, microwatts on bare metal). The planner reads it to tell a profile
    measured under a cap from one at board power (planner/power.py)."""
    from recoque.bench.telemetry import physical_id

    tail = str(getattr(device, "torch_device", "cuda:0")).partition(":")[2]
    phys = physical_id(int(tail) if tail.isdigit() else 0, device.kind == "rocm")
    if device.kind == "cuda":
        line = _smi_line(["nvidia-smi", f"--id={phys}", "--query-gpu=power.limit", "--format=csv,noheader,nounits"])
        return _watts(line, 1.0)
    if device.kind == "rocm" and phys.isdigit():
        import amdsmi  # type: ignore[import-not-found]  # absent: _try drops the key

        amdsmi.amdsmi_init()
        handle = amdsmi.amdsmi_get_processor_handles()[int(phys)]
        return _watts(amdsmi.amdsmi_get_power_cap_info(handle).get("power_cap"), 1e-6)
    return None


def _watts(raw: Any, scale: float) -> float | None:
    """A power reading in watts, or None when it is not a plausible GPU limit (10 W - 5 kW)."""
    try:
        w = float(raw) * scale
    except (TypeError, ValueError):
        return None
    return w if 10.0 <= w <= 5000.0 else None


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
        lambda: {"settings_made": prepare(device)},
        lambda: {"env": recorded_env()},
        lambda: {"blas_libraries": blas_libraries()},
        stack_versions,
        lambda: {"numa_balancing": _read("/proc/sys/kernel/numa_balancing")},
        lambda: {"cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")},
        lambda: _gpu_clocks(device) if device.kind != "cpu" else {},
        lambda: {"gpu_power_limit_w": _power_limit_w(device)} if device.kind != "cpu" else {},
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


# Settings of the same machine that change what it measures (a power cap, a governor, thread
# counts, recorded variables such as OMP_NUM_THREADS): --append never mixes two of them, since a
# results file keeps one environment for all its records.
# The versions of what computes and counts the figures (recoque's work counts, numba's STREAM kernels,
# numpy): one file holds one run's, so a run under others is not merged in (older files lacking a key
# are not held to it).
SETTING_KEYS = ("gpu_power_limit_w", "cpu_governor", "torch_threads", "numba_threads", "numa_balancing",
                "recoque_version", "numba_version", "numpy_version")


def settings_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for each setting both runs recorded and that differs, then each recorded
    variable set in one run and not the other, or set to another value (an older file that did not
    record a setting is not held to it)."""
    out = [f"{k}: {old[k]} -> {new[k]}" for k in SETTING_KEYS if k in old and k in new and old[k] != new[k]]
    a, b = old.get("env") or {}, new.get("env") or {}
    if "env" in old and "env" in new:
        out += [f"{v}: {a.get(v, 'unset')} -> {b.get(v, 'unset')}" for v in sorted(set(a) | set(b)) if a.get(v) != b.get(v)]
    return out


def same_machine(env_a: dict[str, Any], env_b: dict[str, Any]) -> tuple[bool, list[str]]:
    """Whether two captured environments fingerprint alike, and the keys that differ."""
    diff = [k for k in FINGERPRINT_KEYS if env_a.get(k) != env_b.get(k)]
    return not diff, diff
