"""Feed published training runs (seeds/validation.toml) through the model: predicted vs published.

The error of a case is predicted / published - 1 on iteration time. A case published as TFLOP/s
per GPU is turned into an iteration time with the FLOP formula the authors used (Megatron's
eq. 3 with the recompute factor; for Llama 3 the planner's model FLOPs, the causal-half count
giving the short end of the published range), so both sides use the same FLOP count.
Plan fields a publication leaves out (`tuned`) are chosen by the planner's own search among the
values that fit in memory, the way the authors tuned them; the output says which.

Training vs held out: a shipped profile names the quantities it fitted (`fitted`) and the case
groups it fitted them on (`fitted_on`, Korthikanti et al. 2022 Table 5 for A100). Every other case
is held out and reported apart. `fit_profile` reproduces that fit. `public_profile` is the same
profile with the fitted values replaced by public figures only; its errors are printed beside.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Iterable, Mapping

import numpy as np

from recoque.catalog import DeviceSpec, load_catalog, spec_from_toml
from recoque.errors import BadInput
from recoque.fileio import read_seed_toml
from recoque.planner import flops
from recoque.planner.execution import ExecutionPlan, plan_from_mapping
from recoque.planner.profile import DeviceProfile
from recoque.planner.stacks import NEUTRAL, Stack, load_stack
from recoque.planner.system import SystemSpec, system_from_toml
from recoque.planner.train import hardware_for, plan_arrays, results_from_arrays
from recoque.planner.train_core import core
from recoque.planner.workload import TrainingWorkload, TransformerSpec, _model_from_raw, load_model

DEFAULT_THRESHOLD_MEAN = 0.05
DEFAULT_THRESHOLD_MAX = 0.10


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


def _names_device(raw: Mapping[str, Any], device_key: str) -> bool:
    """The profile is this device's own: its `device`, or one of its `also_devices`."""
    return raw.get("device") == device_key or device_key in raw.get("also_devices", ())


def _profile_entry(device_key: str) -> tuple[str, Mapping[str, Any]] | None:
    for key, raw in _seed().get("profiles", {}).items():
        if _names_device(raw, device_key):
            return key, raw
    # A multi-die package (MI250X: two GCDs) without its own profile takes its die's: the profile's
    # efficiencies are fractions of the peak, the same for the package and each of its dies.
    for key, raw in _seed().get("profiles", {}).items():
        if raw.get("device") == f"{device_key}_gcd":
            return key, raw
    return None


_NOT_PARAMS = ("device", "also_devices", "dtypes", "sources", "public", "fitted", "fitted_on")


def training_profile(spec: DeviceSpec) -> DeviceProfile:
    """The profile `plan train` and `plan` use for a device without a results file: the shipped
    profile (seeds/validation.toml), else the datasheet; peaks the catalog lacks (MI430X) filled
    from [assumed_peaks] with the note saying so."""
    from recoque.planner.workloads import spec_with_assumed_peaks

    spec2, notes = spec_with_assumed_peaks(spec)
    prof = shipped_profile(spec.key, spec=spec2) or DeviceProfile.from_datasheet(spec2)
    return replace(prof, assumptions=tuple(prof.assumptions) + tuple(notes)) if notes else prof


def shipped_profile(device_key: str, overrides: Mapping[str, float] | None = None,
                    spec: DeviceSpec | None = None) -> DeviceProfile | None:
    """The device-efficiency profile shipped for this device, if any (seeds/validation.toml)."""
    entry = _profile_entry(device_key)
    if entry is None:
        return None
    key, raw = entry
    params = {**{k: v for k, v in raw.items() if k not in _NOT_PARAMS}, **(overrides or {})}
    die = "" if _names_device(raw, device_key) else (
        f"; the per-die profile applied to the whole {device_key} package (fractions of its peak; the link "
        f"between its dies is not modelled: use the per-die device where the system exposes dies as GPUs)")
    fitted = [k for k in raw.get("fitted", ()) if k in params]
    if fitted:
        what = ", ".join(f"{k}={params[k]:.3g}" for k in fitted)
        note = (f"{device_key} profile [profiles.{key}] (seeds/validation.toml): {what} fitted on "
                f"{', '.join(raw.get('fitted_on', ()))} only; links, GEMM shape model and the rest from public "
                f"measurements or stated")
    else:
        note = (f"{device_key} profile [profiles.{key}] (seeds/validation.toml): nothing fitted; GEMM plateau "
                f"anchored on the public MAMF figure or a stated range, other efficiencies from public measurements "
                f"or stated")
    return DeviceProfile.from_parameters(spec or validation_device(device_key), params, origin="calibrated",
                                         note=note + die, dtypes=tuple(raw.get("dtypes", ("bf16", "fp16"))))


def public_profile(device_key: str) -> DeviceProfile | None:
    """The same profile with its fitted values replaced by the public figures of its `public`
    table (no validation case used): the honest 'uncalibrated' reference."""
    entry = _profile_entry(device_key)
    if entry is None or "public" not in entry[1]:
        return None
    key, raw = entry
    params = {k: v for k, v in raw.items() if k not in _NOT_PARAMS and k not in raw.get("fitted", ())}
    params.update(raw["public"])
    params.pop("gemm_efficiency", None) if "gemm_anchor_tflops" in params else None
    return DeviceProfile.from_parameters(validation_device(device_key), params, origin="datasheet",
                                         note=f"{device_key}: public figures only ([profiles.{key}.public])",
                                         dtypes=tuple(raw.get("dtypes", ("bf16", "fp16"))))


def fitted_groups(device_key: str) -> tuple[str, ...]:
    entry = _profile_entry(device_key)
    return tuple(entry[1].get("fitted_on", ())) if entry else ()


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
    threshold_max: float | None = None  # a looser limit for a held-out case, stated in the seed
    stack: Stack = NEUTRAL
    # False: printed with its error but kept out of the verdict, for a stated reason (`why_not_in_verdict`)
    in_verdict: bool = True
    why_not_in_verdict: str = ""
    # the published figure as stated, in its own unit: {"value", "low", "high", "unit"}
    published_figure: Mapping[str, Any] = field(default_factory=dict)

    @property
    def held_out(self) -> bool:
        """True unless the shipped profile of this case's device, or its stack's efficiency, was
        fitted on its group."""
        return self.group not in fitted_groups(self.system.device) and self.group not in self.stack.fitted_on


def _case_model(raw: Mapping[str, Any], where: str) -> TransformerSpec:
    if "model_inline" in raw:
        return _model_from_raw(raw["name"], raw["model_inline"], where + " model_inline")
    model = load_model(str(raw["model"]))
    over = dict(raw.get("model_overrides", {}))
    return model.with_overrides(**over) if over else model


def _system_for(key: str, seed: Mapping[str, Any], seed_file: str) -> SystemSpec:
    """A case's system: from its own seed file first, else from validation.toml."""
    systems = seed.get("systems", {})
    if key in systems:
        return system_from_toml(key, systems[key], origin=seed_file)
    return validation_system(key)


def load_cases(seed_file: str = "validation.toml") -> list[Case]:
    """The cases of seeds/validation.toml, or of another seed file of the same layout (a check set
    such as seeds/train_checks.toml, whose systems may be its own and whose devices use the shipped
    profiles: nothing in a check set is fitted)."""
    return cases_from_seed(_seed() if seed_file == "validation.toml" else read_seed_toml(seed_file), seed_file)


def cases_from_seed(seed: Mapping[str, Any], seed_file: str) -> list[Case]:
    out = []
    for raw in seed.get("cases", []):
        where = f"{seed_file} case {raw.get('name', '?')}"
        model = _case_model(raw, where)
        B = int(raw["global_batch_seqs"])
        wl = TrainingWorkload(model=model, tokens_to_train=1e9, global_batch_seqs=B, seq_len=model.seq_len,
                              lora_rank=int(raw.get("lora_rank", 0)), lora_targets=str(raw.get("lora_targets", "all")),
                              lora_dropout=float(raw.get("lora_dropout", 0.0)))
        plan = plan_from_mapping(raw["plan"], where)
        if "iteration_time_s" in raw:
            t = float(raw["iteration_time_s"])
            lo = hi = t
            text = f"{t:g} s/iteration"
            figure = {"value": t, "low": t, "high": t, "unit": "s/iteration"}
        else:
            formula = raw.get("flops_formula")
            if formula == "megatron_full_recompute":
                f = float(flops.megatron_flops_per_iteration(B, model.seq_len, model.layers, model.hidden, model.vocab,
                                                             True))
                f_short = f
            elif formula == "model_flops_full_attention":
                f = float(flops.model_flops_per_iteration(model, B))
                # the same count with causal attention taken as half (the other common convention)
                f_short = f - 1.5 * B * model.layers * float(flops.attention_core_flops_fwd(model, 1.0, 1.0))
            else:
                raise BadInput(f"{where}: unknown flops_formula {formula!r}",
                               "use megatron_full_recompute or model_flops_full_attention")
            g = plan.gpus

            def to_t(x: float) -> float:
                return f / (g * x * 1e12)

            x = float(raw["tflop_s_per_gpu"])
            t = to_t(x)
            lo, hi = to_t(float(raw.get("tflop_s_per_gpu_high", x))), to_t(float(raw.get("tflop_s_per_gpu_low", x)))
            lo = min(lo, lo * f_short / f)
            text = f"{x:g} TFLOP/s/GPU" + (f" ({raw['tflop_s_per_gpu_low']:g}-{raw['tflop_s_per_gpu_high']:g})"
                                           if "tflop_s_per_gpu_low" in raw else "")
            figure = {"value": x, "low": float(raw.get("tflop_s_per_gpu_low", x)),
                      "high": float(raw.get("tflop_s_per_gpu_high", x)), "unit": "TFLOP/s/GPU"}
        out.append(Case(name=str(raw["name"]), group=str(raw.get("group", "")), workload=wl,
                        system=_system_for(str(raw["system"]), seed, seed_file), plan=plan,
                        dtype=str(raw.get("dtype", "bf16")),
                        published_time_s=t, published_low_s=lo, published_high_s=hi, published_text=text,
                        published_figure=figure,
                        tuned=tuple(raw.get("tuned", ())), source=str(raw.get("source", "")),
                        threshold_max=float(raw["threshold_max"]) if "threshold_max" in raw else None,
                        stack=load_stack(raw.get("stack")).with_reduce_dtype(raw.get("grad_reduce_dtype"))
                        .with_fp8_param_gather(raw.get("fp8_param_gather"), where)
                        .with_fused_expert_mlp(raw.get("fused_expert_mlp"), where)
                        .with_comm_max_ctas(raw.get("nccl_max_ctas"), where),
                        in_verdict=bool(raw.get("in_verdict", True)),
                        why_not_in_verdict=str(raw.get("why_not_in_verdict", ""))))
    return out


_TUNE_VALUES = {"micro_batch": (1, 2, 4, 8, 16), "interleave": (1, 2, 3, 4, 6, 8),
                "recompute": ("none", "selective", "full"), "recompute_layers": tuple(range(0, 129, 4))}


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
                "tuned": list(c.tuned), "stack": c.stack.key, "published": c.published_text, "published_figure": dict(c.published_figure),
                "published_time_s": c.published_time_s,
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
    out = core(case.workload, hw, prof, case.dtype, arrays, stack=case.stack)
    t = np.where(out["fits"], out["iteration_time_s"], np.inf) if len(cands) > 1 else out["iteration_time_s"]
    i = int(np.argmin(t))
    if not np.isfinite(t[i]):
        i = int(np.argmin(out["iteration_time_s"]))
    res = results_from_arrays(case.workload, case.system, prof, case.dtype, {k: v[i:i + 1] for k, v in arrays.items()},
                              stack=case.stack)[0]
    return CaseResult(case=case, plan=res.plan, predicted_s=res.iteration_time.value,
                      predicted_low_s=res.iteration_time.low, predicted_high_s=res.iteration_time.high,
                      memory_bytes=res.memory_per_gpu.value, fits=res.fits)


@dataclass(frozen=True)
class ValidationReport:
    results: list[CaseResult]
    threshold_mean: float
    threshold_max: float
    public_errors: Mapping[str, float] = field(default_factory=dict)  # case -> error, public-only profile

    @staticmethod
    def _stats(rs: list[CaseResult]) -> tuple[float, float, int]:
        e = [abs(r.error) for r in rs]
        return (float(np.mean(e)), float(np.max(e)), len(e)) if e else (0.0, 0.0, 0)

    @property
    def verdict_results(self) -> list[CaseResult]:
        return [r for r in self.results if r.case.in_verdict]

    @property
    def mean_abs_error(self) -> float:
        return self._stats(self.verdict_results)[0]

    @property
    def max_abs_error(self) -> float:
        return self._stats(self.verdict_results)[1]

    def limit(self, r: CaseResult) -> float:
        """A case's own looser limit (held-out cases on another device may state one), else the global one."""
        return max(self.threshold_max, r.case.threshold_max or 0.0)

    @property
    def passed(self) -> bool:
        return (self.mean_abs_error <= self.threshold_mean
                and all(abs(r.error) <= self.limit(r) for r in self.verdict_results))

    def by_group(self) -> dict[str, tuple[float, float, int]]:
        return {g: self._stats([r for r in self.results if r.case.group == g])
                for g in dict.fromkeys(r.case.group for r in self.results)}

    def split(self) -> dict[str, tuple[float, float, int]]:
        """Statistics of the training subset (cases the shipped profile was fitted on) and the held-out rest."""
        return {"training": self._stats([r for r in self.results if not r.case.held_out]),
                "held_out": self._stats([r for r in self.results if r.case.held_out])}

    def public_stats(self) -> tuple[float, float, int]:
        e = [abs(v) for v in self.public_errors.values()]
        return (float(np.mean(e)), float(np.max(e)), len(e)) if e else (0.0, 0.0, 0)

    def to_json(self) -> dict[str, Any]:
        def st(t: tuple[float, float, int]) -> dict[str, Any]:
            return {"mean_abs_error": t[0], "max_abs_error": t[1], "cases": t[2]}

        cases = []
        for r in self.results:
            d = r.to_json()
            d.update(held_out=r.case.held_out, threshold_max=self.limit(r), in_verdict=r.case.in_verdict,
                     why_not_in_verdict=r.case.why_not_in_verdict, low_high_contains_published=(
                         r.predicted_low_s <= r.case.published_high_s and r.case.published_low_s <= r.predicted_high_s),
                     error_public_profile=self.public_errors.get(r.case.name))
            cases.append(d)
        return {"cases": cases, "mean_abs_error": self.mean_abs_error,
                "max_abs_error": self.max_abs_error, "threshold_mean": self.threshold_mean,
                "threshold_max": self.threshold_max, "passed": self.passed,
                "training": st(self.split()["training"]), "held_out": st(self.split()["held_out"]),
                "public_profile": st(self.public_stats()),
                "groups": {g: st(t) for g, t in self.by_group().items()}}


def validate_all(threshold_mean: float = DEFAULT_THRESHOLD_MEAN, threshold_max: float = DEFAULT_THRESHOLD_MAX,
                 cases: Iterable[Case] | None = None, profile: DeviceProfile | None = None,
                 with_public: bool = True) -> ValidationReport:
    """Every case with the shipped profile (or `profile`), plus, for reference, with the
    public-figures-only profile of its device (nothing fitted)."""
    cs = list(cases if cases is not None else load_cases())
    results = [run_case(c, profile) for c in cs]
    public: dict[str, float] = {}
    if with_public and profile is None:
        for c in cs:
            pp = public_profile(c.system.device)
            if pp is not None:
                public[c.name] = run_case(c, pp).error
    return ValidationReport(results, threshold_mean, threshold_max, public)


FIT_GRID = {
    "gemm_sustained_fraction": tuple(np.round(np.arange(0.80, 0.96, 0.01), 3)),
    "memory_efficiency": tuple(np.round(np.arange(0.50, 0.91, 0.05), 3)),
}


def _case_error(c: Case, prof: DeviceProfile) -> float:
    cands = _candidates(c)
    out = core(c.workload, hardware_for(c.system, prof), prof, c.dtype, plan_arrays(cands), stack=c.stack)
    t = np.where(out["fits"], out["iteration_time_s"], np.inf)
    best = float(np.min(t)) if np.isfinite(np.min(t)) else float(np.min(out["iteration_time_s"]))
    return float(np.log(best / c.published_time_s))


def fit_profile(device_key: str = "a100_sxm_80gb", groups: tuple[str, ...] | None = None,
                grid: Mapping[str, tuple[float, ...]] | None = None) -> dict[str, float]:
    """The one-off calibration (not used at run time): grid search minimising the sum of squared
    log errors of iteration time over the TRAINING groups' cases only (default: the profile's
    declared `fitted_on`, Korthikanti et al. 2022 Table 5), for the profile's two fitted
    quantities (sustained fraction of the MAMF GEMM figure, memory-bound kernel efficiency).
    Every other case stays held out. Run `python -c "from recoque.planner.validation import
    fit_profile; print(fit_profile())"` to reproduce the values in seeds/validation.toml."""
    groups = groups if groups is not None else fitted_groups(device_key)
    cases = [c for c in load_cases() if c.group in groups and c.system.device == device_key]
    if not cases:
        raise BadInput(f"no validation case of {device_key} in groups {groups}", "name a group with cases")
    grid = dict(grid or FIT_GRID)
    keys = list(grid)
    best: tuple[float, tuple[float, ...]] = (np.inf, ())
    for combo in itertools.product(*(grid[k] for k in keys)):
        prof = shipped_profile(device_key, dict(zip(keys, combo)))
        loss = 0.0
        for c in cases:
            loss += _case_error(c, prof) ** 2
            if loss >= best[0]:
                break
        if loss < best[0]:
            best = (loss, combo)
    return {"loss": best[0], **{k: float(v) for k, v in zip(keys, best[1])}}


STACK_FIT_GRIDS = {"efficiency": tuple(np.round(np.arange(0.80, 1.001, 0.02), 3)),
                   "zero3_compute_slowdown": tuple(np.round(np.arange(0.10, 0.601, 0.05), 3))}


def fit_stack(stack_key: str = "deepspeed-2022", grid: tuple[float, ...] | None = None,
              quantity: str = "efficiency") -> dict[str, float]:
    """The one-off calibration of a stack quantity (not used at run time): the value on `grid`
    with the least mean |error| over the verdict cases run on that stack, everything else as
    shipped. Reproduces seeds/stacks.toml `efficiency` and `zero3_compute_slowdown` for deepspeed-2022
    (fit_stack() and fit_stack(quantity="zero3_compute_slowdown"))."""
    if quantity not in STACK_FIT_GRIDS:
        raise BadInput(f"stack quantity {quantity!r} cannot be fitted", f"use one of {sorted(STACK_FIT_GRIDS)}")
    cases = [c for c in load_cases() if c.stack.key == stack_key and c.in_verdict]
    if not cases:
        raise BadInput(f"no validation case runs on stack {stack_key!r}", "name a stack the cases use")
    best = (np.inf, 1.0)
    for e in grid or STACK_FIT_GRIDS[quantity]:
        errs = [abs(run_case(replace(c, stack=replace(c.stack, **{quantity: float(e)}))).error) for c in cases]
        if float(np.mean(errs)) < best[0]:
            best = (float(np.mean(errs)), float(e))
    return {"mean_abs_error": best[0], quantity: best[1]}
