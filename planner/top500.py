"""TOP500 entries (seeds/top500.toml): the measured HPL runs the HPL model learns from or is checked on.

The GPUs of a run are derived from the TOP500 core count (every CPU core plus every GPU compute unit):
    gpus_in_run = cores / (gpu_compute_units + cpu_cores_per_gpu)
so a machine is calibrated on the GPUs that ran HPL, not on its installed count. Where the list's
"accelerator cores" column is given, gpus_in_run = accelerator_cores / gpu_compute_units (exact).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

from recoque.errors import BadInput
from recoque.fileio import read_seed_toml

PETA = 1e15
ROLES = ("reference", "check", "info")


@dataclass(frozen=True)
class Top500Entry:
    key: str
    machine: str
    list_date: str            # "2025-06"
    role: str                 # reference (calibrates), check (never calibrates), info
    device: str
    gpus_in_run: float
    rmax_flop_s: float
    rpeak_flop_s: float | None
    power_w: float | None
    status: str
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def rmax_per_gpu_flop_s(self) -> float:
        return self.rmax_flop_s / self.gpus_in_run

    @property
    def rmax_over_rpeak(self) -> float | None:
        return self.rmax_flop_s / self.rpeak_flop_s if self.rpeak_flop_s else None

    @property
    def gflops_per_w(self) -> float | None:
        return self.rmax_flop_s / self.power_w / 1e9 if self.power_w else None

    @property
    def label(self) -> str:
        return f"{self.machine} (TOP500 {self.list_date})"


def gpus_from_cores(cores: float, gpu_compute_units: float, cpu_cores_per_gpu: float) -> float:
    """GPUs of a run from the TOP500 core count (CPU cores + GPU CUs/SMs per GPU)."""
    per_gpu = gpu_compute_units + cpu_cores_per_gpu
    if per_gpu <= 0:
        raise BadInput("top500.toml: gpu_compute_units + cpu_cores_per_gpu must be positive", "fix the entry")
    return cores / per_gpu


def _positive(raw: Mapping[str, Any], key: str, where: str, required: bool = True) -> float | None:
    v = raw.get(key)
    if v is None:
        if required:
            raise BadInput(f"{where}: missing `{key}`", "add it with its source")
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
        raise BadInput(f"{where}: `{key}` must be a positive number, got {v!r}", "fix seeds/top500.toml")
    return float(v)


def entry_from_toml(key: str, raw: Mapping[str, Any]) -> Top500Entry:
    where = f"top500.toml [entries.{key}]"
    if raw.get("role") not in ROLES:
        raise BadInput(f"{where}: role must be one of {ROLES}, got {raw.get('role')!r}", "fix seeds/top500.toml")
    gpus = _positive(raw, "gpus_in_run", where, required=False)
    acc = _positive(raw, "accelerator_cores", where, required=False)
    if gpus is None and acc is not None:
        gpus = acc / _positive(raw, "gpu_compute_units", where)
    if gpus is None:
        gpus = gpus_from_cores(_positive(raw, "cores", where), _positive(raw, "gpu_compute_units", where),
                               _positive(raw, "cpu_cores_per_gpu", where))
    rpeak, power = _positive(raw, "rpeak_pflops", where, False), _positive(raw, "power_kw", where, False)
    return Top500Entry(key, str(raw.get("machine", key)), str(raw.get("list", "")), str(raw["role"]),
                       str(raw.get("device", "")), gpus, _positive(raw, "rmax_pflops", where) * PETA,
                       rpeak * PETA if rpeak else None, power * 1e3 if power else None,
                       str(raw.get("status", "")), dict(raw.get("sources", {})))


@lru_cache(maxsize=1)
def _seed() -> dict[str, Any]:
    return read_seed_toml("top500.toml")


def load_entries() -> dict[str, Top500Entry]:
    return {k: entry_from_toml(k, v) for k, v in _seed().get("entries", {}).items()}


def families() -> dict[str, str]:
    return dict(_seed().get("families", {}))


def range_setting(name: str) -> float:
    return float(_seed().get("range", {})[name])


def memory_exponent() -> float:
    """HPL efficiency ~ memory per GPU ^ this (seeds/top500.toml [memory])."""
    return float(_seed().get("memory", {}).get("exponent", 0.0))


def _per_gpu_table(name: str) -> dict[str, float]:
    """A [name] table of TFLOP/s per GPU by device, in flop/s; its `sources` sub-table skipped."""
    out = {}
    for k, v in _seed().get(name, {}).items():
        if k == "sources":
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise BadInput(f"top500.toml [{name}]: `{k}` must be a positive number, got {v!r}", "fix seeds/top500.toml")
        out[k] = float(v) * 1e12
    return out


def single_node_flop_s() -> dict[str, float]:
    """Published single-node HPL per GPU (flop/s) by device ([single_node] of seeds/top500.toml)."""
    return _per_gpu_table("single_node")


def measured_dgemm_flop_s() -> dict[str, float]:
    """Measured single-GPU DGEMM (flop/s) by device ([measured_dgemm] of seeds/top500.toml)."""
    return _per_gpu_table("measured_dgemm")


def family_of(device_key: str) -> str | None:
    return families().get(device_key)


def matching_entry(machine: str | None, gpus: float) -> Top500Entry | None:
    """The entry of this machine whose run used exactly `gpus` GPUs (newest list first), else None."""
    if not machine:
        return None
    hits = [e for e in load_entries().values() if e.machine == machine and round(e.gpus_in_run) == round(gpus)]
    return max(hits, key=lambda e: e.list_date) if hits else None
