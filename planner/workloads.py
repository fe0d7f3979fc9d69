"""Workloads the documents name (seeds/workloads.toml) and the device rates they run at.

A workload entry is data: a kind (train, infer, hpl, stencil), the model it references by name
(seeds/models.toml) and its sizes, units in the keys. The rates a device delivers come from a
measured profile when one is given for that device, otherwise from the datasheet peak times the
achieved fraction in the [efficiency] table (best public measurements, with a range).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

from recoque.catalog import GEMM_DTYPE_TO_RATE, DeviceSpec
from recoque.errors import BadInput
from recoque.estimate import Estimate, combine
from recoque.fileio import read_seed_toml
from recoque.names import resolve_key, unknown_hint

KINDS = ("train", "infer", "hpl", "stencil")
_TEXT_KEYS = ("name", "kind", "model", "weight_dtype", "kv_dtype")
BYTES_PER_DTYPE = {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "fp4": 0.5}


@dataclass(frozen=True)
class WorkloadEntry:
    key: str
    name: str
    kind: str
    model: str | None
    values: Mapping[str, Any]
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)

    def number(self, key: str, default: float | None = None) -> float:
        v = self.values.get(key, default)
        if v is None:
            raise BadInput(f"workload {self.key}: `{key}` is missing", "add it to seeds/workloads.toml")
        return float(v)

    def estimate(self, key: str, unit: str) -> Estimate:
        v = self.number(key)
        lo, hi = self.ranges.get(key, (v, v))
        note = (f"{self.key}.{key} {lo:g}..{hi:g}: {self.sources.get(key, 'see seeds/workloads.toml')}",) \
            if lo != hi else ()
        return Estimate(v, lo, hi, unit, note)

    def text(self, key: str, default: str) -> str:
        return str(self.values.get(key, default))


def _check_number(where: str, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadInput(f"{where}: `{key}` must be a number, got {v!r}", "fix seeds/workloads.toml")
    if v < 0:
        raise BadInput(f"{where}: `{key}` must not be negative, got {v}", "fix seeds/workloads.toml")
    return float(v)


def workload_from_toml(key: str, raw: Mapping[str, Any]) -> WorkloadEntry:
    where = f"workloads.toml [workloads.{key}]"
    from recoque.inputs import check_workload

    check_workload(raw, where)  # the validation layer (recoque.inputs)
    kind = raw.get("kind")
    if kind not in KINDS:
        raise BadInput(f"{where}: `kind` must be one of {', '.join(KINDS)}, got {kind!r}", "fix the entry")
    values: dict[str, Any] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for k, v in raw.items():
        if k == "sources":
            continue
        if k in _TEXT_KEYS:
            values[k] = str(v)
        elif k.endswith(("_low", "_high")):
            continue
        else:
            values[k] = _check_number(where, k, v)
            if f"{k}_low" in raw and f"{k}_high" in raw:
                lo, hi = _check_number(where, f"{k}_low", raw[f"{k}_low"]), _check_number(where, f"{k}_high", raw[f"{k}_high"])
                ranges[k] = (lo, hi)
    if kind in ("train", "infer") and "model" not in raw:
        raise BadInput(f"{where}: a {kind} workload needs `model`", "name a model from seeds/models.toml")
    return WorkloadEntry(key=key, name=str(raw.get("name", key)), kind=str(kind),
                         model=raw.get("model"), values=values, ranges=ranges,
                         sources=dict(raw.get("sources", {})))


@lru_cache(maxsize=1)
def _seed() -> dict[str, Any]:
    return read_seed_toml("workloads.toml")


def load_workloads() -> dict[str, WorkloadEntry]:
    return {k: workload_from_toml(k, v) for k, v in _seed().get("workloads", {}).items()}


def get_workload(name: str) -> WorkloadEntry:
    """A named workload, in any case and punctuation (recoque/names.py)."""
    table = _seed().get("workloads", {})
    key = resolve_key(name, table)
    if key is None:
        raise BadInput(f"unknown workload {name!r}", unknown_hint(name, table, "workloads"))
    return workload_from_toml(key, table[key])


def efficiency(key: str) -> Estimate:
    """An achieved-fraction default from the [efficiency] table, with its range and source."""
    table = _seed().get("efficiency", {})
    if key not in table:
        raise BadInput(f"workloads.toml [efficiency]: `{key}` is missing", "add it with _low/_high and a source")
    v = float(table[key])
    lo, hi = float(table.get(f"{key}_low", v)), float(table.get(f"{key}_high", v))
    src = table.get("sources", {}).get(key, "")
    # every fraction of the table is of the datasheet peak but the HPL one, which is of a measured DGEMM
    basis = "of the measured DGEMM" if key == "hpl_fraction_of_measured_dgemm" else "of datasheet peak"
    return Estimate(v, lo, hi, "1", (f"{key} {lo:g}..{hi:g} {basis} ({src})",))


# --- device rates: measured when a profile for this device is given, datasheet x fraction otherwise ---

def profile_applies(spec: DeviceSpec, profile: Any) -> bool:
    """A measured profile stands only for the device it was measured on."""
    if profile is None:
        return False
    pspec = getattr(profile, "spec", None)
    key = getattr(pspec, "key", None) or getattr(profile, "device_key", None)
    return key == spec.key


def profile_estimate(query: Any, unit: str, note: str) -> Estimate | None:
    """value/low/high from a DeviceProfile query taking `which` (planner.profile); bare value otherwise."""
    try:
        v, lo, hi = (float(query(w)) for w in ("value", "low", "high"))
    except TypeError:
        return None
    extra = tuple(getattr(query, "assumptions", ()))
    return Estimate(v, lo, hi, unit, (note,) + extra)


def peak_estimate(spec: DeviceSpec, rate_key: str) -> Estimate | None:
    if GEMM_DTYPE_TO_RATE.get(rate_key, rate_key) in spec.assumed_rates:
        return assumed_peak(spec, rate_key)  # a filled-in bracket, said to be one
    rng = spec.peak_range(rate_key)
    p = spec.peak(rate_key)
    if p is None or rng is None:
        return None
    note = (f"{spec.key} {rate_key} peak {rng[0] / 1e12:g}..{rng[1] / 1e12:g} TFLOP/s (sources disagree)",) \
        if rng[0] != rng[1] else ()
    return Estimate(p, rng[0], rng[1], "flop/s", note)


def assumed_peak(spec: DeviceSpec, dtype: str) -> Estimate | None:
    """A bracket from [assumed_peaks.<device>] for a peak the catalog leaves unknown, loudly labelled."""
    table = _seed().get("assumed_peaks", {}).get(spec.key, {})
    key = f"{dtype}_tflops"
    if key not in table:
        return None
    v = float(table[key]) * 1e12
    lo, hi = float(table.get(f"{key}_low", table[key])) * 1e12, float(table.get(f"{key}_high", table[key])) * 1e12
    src = table.get("sources", {}).get(key, "")
    return Estimate(v, lo, hi, "flop/s", (f"ASSUMED {spec.key} {dtype} peak {lo / 1e12:g}..{hi / 1e12:g} TFLOP/s: not published ({src})",))


def gemm_rate(spec: DeviceSpec, dtype: str, profile: Any = None, shape: tuple[int, int, int] = (8192, 8192, 8192)) -> Estimate:
    """Achieved dense GEMM FLOP/s for one GPU."""
    if profile_applies(spec, profile):
        got = profile_estimate(lambda w: profile.gemm_flop_s(dtype, *shape, which=w), "flop/s",
                               f"{spec.key} {dtype} GEMM from the profile ({getattr(profile, 'origin', 'measured')})")
        if got is not None:
            return got
    peak = peak_estimate(spec, dtype) or assumed_peak(spec, dtype)
    if peak is None:
        raise BadInput(f"device {spec.key}: {dtype} peak is unknown",
                       "pass --profile with a measurement, choose another dtype, or " + spec.complete(f"{dtype}_tflops"))
    frac = efficiency("gemm_fraction_amd" if spec.vendor == "amd" else "gemm_fraction_nvidia")
    return combine(lambda p, f: p * f, peak, frac, unit="flop/s",
                   assumptions=(f"{spec.key} {dtype} GEMM = datasheet peak {peak.value / 1e12:g} TFLOP/s x achieved fraction",))


def memory_rate(spec: DeviceSpec, profile: Any = None) -> Estimate:
    """Achieved HBM bandwidth for one GPU, bytes/s."""
    if profile_applies(spec, profile) and profile.states_memory:   # nothing measured or stated: the datasheet path
        got = profile_estimate(lambda w: profile.memory_bandwidth_bytes_s(which=w), "bytes/s",
                               f"{spec.key} HBM bandwidth from the profile ({getattr(profile, 'origin', 'measured')})")
        if got is not None:
            return got
    if spec.hbm_bandwidth_bytes_s is None:
        raise BadInput(f"device {spec.key}: HBM bandwidth is unknown", spec.complete("hbm_bandwidth_tb_s") + ", or pass --profile")
    peak = Estimate.exact(spec.hbm_bandwidth_bytes_s, "bytes/s")
    return combine(lambda p, f: p * f, peak, efficiency("memory_fraction"), unit="bytes/s",
                   assumptions=(f"{spec.key} HBM = datasheet {spec.hbm_bandwidth_bytes_s / 1e12:g} TB/s x achieved fraction",))


def spec_with_assumed_peaks(spec: DeviceSpec) -> tuple[DeviceSpec, tuple[str, ...]]:
    """The spec with unknown peaks filled from [assumed_peaks.<device>] (central values, the bracket kept
    as their range), and the notes saying so. Used only where a planner needs a rate to give any answer (e.g. training on MI430X)."""
    from dataclasses import replace

    table = _seed().get("assumed_peaks", {}).get(spec.key, {})
    peaks, ranges, notes = dict(spec.peak_flop_s), dict(spec.peak_range_flop_s), []
    for key in table:
        if key.endswith("_tflops") and key[: -len("_tflops")] not in peaks:
            rate = key[: -len("_tflops")]
            est = assumed_peak(spec, rate)
            if est is not None:
                peaks[rate], ranges[rate] = est.value, (est.low, est.high)
                notes.extend(est.assumptions)
    if not notes:
        return spec, ()
    # The bracket travels with the spec: a profile's low and high corners take its ends (DeviceProfile.bound).
    assumed = tuple(r for r in ranges if r in peaks and r not in spec.peak_flop_s)
    return replace(spec, peak_flop_s=peaks, peak_range_flop_s=ranges, assumed_rates=assumed), tuple(notes)


def training_token_range(name: str, tokens: float | None) -> Estimate | None:
    """The token range a named training workload states (train_tokens_low..high), when --tokens does
    not replace it; None otherwise."""
    if tokens is not None or resolve_key(name, _seed().get("workloads", {})) is None:
        return None
    w = get_workload(name)
    return w.estimate("train_tokens", "tokens") if w.kind == "train" and "train_tokens" in w.values else None


def training_target(name: str, tokens: float | None) -> tuple[str, float | None]:
    """(model preset or file, tokens) for `plan train -w NAME`: a named training workload gives its
    model and token count (unless --tokens is given); a model preset or file passes through."""
    if resolve_key(name, _seed().get("workloads", {})) is None:
        return name, tokens
    w = get_workload(name)
    if w.kind != "train":
        raise BadInput(f"workload {name!r} is not a training run (its kind is {w.kind})",
                       f"plan it with `recoque plan -s SYSTEM -w {w.key}`")
    if tokens is None and "train_tokens" in w.values:
        tokens = w.number("train_tokens")
    return w.model, tokens
