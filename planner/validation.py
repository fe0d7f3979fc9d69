"""Feed published training runs (seeds/validation.toml) through the model: predicted vs published.

The error of a case is predicted / published - 1 on iteration time. A case published as TFLOP/s
per GPU is turned into an iteration time with the FLOP formula the authors used (Megatron's
eq. 3 with the recompute factor), so both sides use the same FLOP count.
Plan fields a publication leaves out (`tuned`) are chosen by the planner's own search among the
values that fit in memory, the way the authors tuned them; the output says which.
`fit_profile` is the one-off calibration documented in seeds/validation.toml: it fits the
A100 GEMM plateau, kernel overhead and attention efficiency on the Korthikanti cases only.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterable, Mapping

import numpy as np

from recoque.catalog import DeviceSpec, load_catalog, spec_from_toml
from recoque.errors import BadInput
from recoque.fileio import read_seed_toml
from recoque.planner import flops
from recoque.planner.execution import ExecutionPlan, plan_from_mapping
from recoque.planner.profile import DeviceProfile
from recoque.planner.system import SystemSpec, system_from_toml
from recoque.planner.train import core, hardware_for, plan_arrays, results_from_arrays
from recoque.planner.workload import TrainingWorkload, TransformerSpec, _model_from_raw, load_model

DEFAULT_THRESHOLD_MEAN = 0.05
DEFAULT_THRESHOLD_MAX = 0.10
FITTED = ("gemm_efficiency", "kernel_overhead_s", "intra_link_efficiency", "memory_efficiency")


@lru_cache(maxsize=1)
def _seed() -> dict[str, Any]:
    return read_seed_toml("validation.toml")


def validation_device(key: str) -> DeviceSpec:
    """The catalog entry when seeds/hardware.toml has it, else the one in validation.toml."""
    cat = load_catalog()
    if key in cat:
        return cat[key]
    devs = _seed().get("devices", {})
    if key not in devs:
        raise BadInput(f"unknown device {key!r}", f"known devices: {', '.join(sorted(set(cat) | set(devs)))}")
    return spec_from_toml(key, devs[key])


def validation_system(key: str) -> SystemSpec:
    systems = _seed().get("systems", {})
    if key not in systems:
        raise BadInput(f"unknown validation system {key!r}", f"known: {', '.join(sorted(systems))}")
    return system_from_toml(key, systems[key], origin="validation.toml")


def list_validation_systems() -> list[str]:
    return sorted(_seed().get("systems", {}))


def shipped_profile(device_key: str, overrides: Mapping[str, float] | None = None) -> DeviceProfile | None:
    """The calibrated device-efficiency profile shipped for this device, if any."""
    for key, raw in _seed().get("profiles", {}).items():
        if raw.get("device") == device_key:
            params = {**{k: v for k, v in raw.items() if k not in ("device", "dtypes", "sources")}, **(overrides or {})}
            fitted = ", ".join(f"{k}={params[k]:.3g}" for k in FITTED if k in params)
            note = (f"calibrated {device_key} profile [profiles.{key}] (seeds/validation.toml): {fitted} fitted on "
                    f"19 published A100 runs (Korthikanti 2022, Narayanan 2021, BLOOM); inter-node link "
                    f"{params.get('inter_link_efficiency')} from public measurements")
            return DeviceProfile.from_parameters(validation_device(device_key), params, origin="calibrated",
                                                 note=note, dtypes=tuple(raw.get("dtypes", ("bf16", "fp16"))))
    return None


@dataclass(frozen=True)
class Case:
    name: str
    group: str
    workload: TrainingWorkload
    system: SystemSpec
    plan: ExecutionPlan
    dtype: str
    published_time_s: float
    published_low_s: float
    published_high_s: float
    published_text: str
    tuned: tuple[str, ...]
    source: str


def _case_model(raw: Mapping[str, Any], where: str) -> TransformerSpec:
    if "model_inline" in raw:
        return _model_from_raw(raw["name"], raw["model_inline"], where + " model_inline")
    model = load_model(str(raw["model"]))
    over = dict(raw.get("model_overrides", {}))
    return model.with_overrides(**over) if over else model


def load_cases() -> list[Case]:
    out = []
    for raw in _seed().get("cases", []):
        where = f"validation.toml case {raw.get('name', '?')}"
        model = _case_model(raw, where)
        B = int(raw["global_batch_seqs"])
        wl = TrainingWorkload(model=model, tokens_to_train=1e9, global_batch_seqs=B, seq_len=model.seq_len)
        plan = plan_from_mapping(raw["plan"], where)
        if "iteration_time_s" in raw:
            t = float(raw["iteration_time_s"])
            lo = hi = t
            text = f"{t:g} s/iteration"
        else:
            if raw.get("flops_formula") != "megatron_full_recompute":
                raise BadInput(f"{where}: unknown flops_formula", "use megatron_full_recompute")
            f = float(flops.megatron_flops_per_iteration(B, model.seq_len, model.layers, model.hidden, model.vocab, True))
            g = plan.gpus

            def to_t(x: float) -> float:
                return f / (g * x * 1e12)

            x = float(raw["tflop_s_per_gpu"])
            t = to_t(x)
            lo, hi = to_t(float(raw.get("tflop_s_per_gpu_high", x))), to_t(float(raw.get("tflop_s_per_gpu_low", x)))
            text = f"{x:g} TFLOP/s/GPU" + (f" ({raw['tflop_s_per_gpu_low']:g}-{raw['tflop_s_per_gpu_high']:g})"
                                           if "tflop_s_per_gpu_low" in raw else "")
        out.append(Case(name=str(raw["name"]), group=str(raw.get("group", "")), workload=wl,
                        system=validation_system(str(raw["system"])), plan=plan, dtype=str(raw.get("dtype", "bf16")),
                        published_time_s=t, published_low_s=lo, published_high_s=hi, published_text=text,
                        tuned=tuple(raw.get("tuned", ())), source=str(raw.get("source", ""))))
    return out


_TUNE_VALUES = {"micro_batch": (1, 2, 4, 8, 16), "interleave": (1, 2, 3, 4, 6, 8)}  # noqa: E501


def _candidates(case: Case) -> list[ExecutionPlan]:
    if not case.tuned:
        return [case.plan]
    grids = [_TUNE_VALUES[k] for k in case.tuned]
    out = []
    for combo in itertools.product(*grids):
        p = replace(case.plan, **dict(zip(case.tuned, combo)))
        if not p.problems(case.workload.model, case.workload.global_batch_seqs):
            out.append(p)
    return out


@dataclass(frozen=True)
class CaseResult:
    case: Case
    plan: ExecutionPlan
    predicted_s: float
    predicted_low_s: float
    predicted_high_s: float
    memory_bytes: float
    fits: bool

    @property
    def error(self) -> float:
        return self.predicted_s / self.case.published_time_s - 1.0

    def to_json(self) -> dict[str, Any]:
        c = self.case
        return {"case": c.name, "group": c.group, "source": c.source, "gpus": c.plan.gpus, "plan": self.plan.label(),
                "tuned": list(c.tuned), "published": c.published_text, "published_time_s": c.published_time_s,
                "predicted_time_s": self.predicted_s, "predicted_low_s": self.predicted_low_s,
                "predicted_high_s": self.predicted_high_s, "error": self.error,
                "memory_gb": self.memory_bytes / 1e9, "fits": self.fits}


def run_case(case: Case, profile: DeviceProfile | None = None) -> CaseResult:
    prof = profile or shipped_profile(case.system.device) or DeviceProfile.from_datasheet(validation_device(case.system.device))
    cands = _candidates(case)
    if not cands:
        raise BadInput(f"case {case.name}: no valid plan", "fix seeds/validation.toml")
    arrays = plan_arrays(cands)
    hw = hardware_for(case.system, prof)
    out = core(case.workload, hw, prof, case.dtype, arrays)
    t = np.where(out["fits"], out["iteration_time_s"], np.inf) if len(cands) > 1 else out["iteration_time_s"]
    i = int(np.argmin(t))
    if not np.isfinite(t[i]):
        i = int(np.argmin(out["iteration_time_s"]))
    res = results_from_arrays(case.workload, case.system, prof, case.dtype, {k: v[i:i + 1] for k, v in arrays.items()})[0]
    return CaseResult(case=case, plan=res.plan, predicted_s=res.iteration_time.value,
                      predicted_low_s=res.iteration_time.low, predicted_high_s=res.iteration_time.high,
                      memory_bytes=res.memory_per_gpu.value, fits=res.fits)


@dataclass(frozen=True)
class ValidationReport:
    results: list[CaseResult]
    threshold_mean: float
    threshold_max: float

    @property
    def mean_abs_error(self) -> float:
        return float(np.mean([abs(r.error) for r in self.results]))

    @property
    def max_abs_error(self) -> float:
        return float(np.max([abs(r.error) for r in self.results]))

    @property
    def passed(self) -> bool:
        return self.mean_abs_error <= self.threshold_mean and self.max_abs_error <= self.threshold_max

    def by_group(self) -> dict[str, tuple[float, float, int]]:
        out = {}
        for g in dict.fromkeys(r.case.group for r in self.results):
            e = [abs(r.error) for r in self.results if r.case.group == g]
            out[g] = (float(np.mean(e)), float(np.max(e)), len(e))
        return out

    def to_json(self) -> dict[str, Any]:
        return {"cases": [r.to_json() for r in self.results], "mean_abs_error": self.mean_abs_error,
                "max_abs_error": self.max_abs_error, "threshold_mean": self.threshold_mean,
                "threshold_max": self.threshold_max, "passed": self.passed,
                "groups": {g: {"mean_abs_error": m, "max_abs_error": x, "cases": n}
                           for g, (m, x, n) in self.by_group().items()}}


def validate_all(threshold_mean: float = DEFAULT_THRESHOLD_MEAN, threshold_max: float = DEFAULT_THRESHOLD_MAX,
                 cases: Iterable[Case] | None = None, profile: DeviceProfile | None = None) -> ValidationReport:
    results = [run_case(c, profile) for c in (cases if cases is not None else load_cases())]
    return ValidationReport(results, threshold_mean, threshold_max)


FIT_GRID = {
    "gemm_efficiency": tuple(np.round(np.arange(0.66, 0.90, 0.02), 3)),
    "kernel_overhead_s": (0.0, 10e-6, 20e-6, 40e-6, 80e-6),
    "intra_link_efficiency": tuple(np.round(np.arange(0.45, 0.86, 0.05), 3)),
    "memory_efficiency": tuple(np.round(np.arange(0.55, 0.91, 0.05), 3)),
}


def _case_error(c: Case, prof: DeviceProfile) -> float:
    cands = _candidates(c)
    out = core(c.workload, hardware_for(c.system, prof), prof, c.dtype, plan_arrays(cands))
    t = np.where(out["fits"], out["iteration_time_s"], np.inf)
    best = float(np.min(t)) if np.isfinite(np.min(t)) else float(np.min(out["iteration_time_s"]))
    return float(np.log(best / c.published_time_s))


def fit_profile(groups: tuple[str, ...] = ("korthikanti2022", "narayanan2021", "bloom2022"),
                grid: Mapping[str, tuple[float, ...]] | None = None) -> dict[str, float]:
    """The one-off calibration (not used at run time): grid search minimising the sum of squared
    log errors of iteration time over the given groups' cases, for the profile's user-measurable
    efficiencies (GEMM plateau and per-kernel overhead, NVLink collective efficiency, memory-bound
    kernel efficiency). Run `python -c "from recoque.planner.validation import fit_profile;
    print(fit_profile())"` to reproduce the values in seeds/validation.toml."""
    cases = [c for c in load_cases() if c.group in groups]
    dev = cases[0].system.device
    grid = dict(grid or FIT_GRID)
    keys = list(grid)
    best: tuple[float, tuple[float, ...]] = (np.inf, ())
    for combo in itertools.product(*(grid[k] for k in keys)):
        prof = shipped_profile(dev, dict(zip(keys, combo)))
        loss = 0.0
        for c in cases:
            loss += _case_error(c, prof) ** 2
            if loss >= best[0]:
                break
        if loss < best[0]:
            best = (loss, combo)
    return {"loss": best[0], **{k: float(v) for k, v in zip(keys, best[1])}}
