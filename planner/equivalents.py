"""H100-equivalents, two ways, always both.

Peak ratio: the system's dense datasheet throughput at one precision (FP64 vector, FP64 matrix,
BF16, FP8), its HBM bandwidth and capacity, each divided by one H100 SXM's. An unknown peak stays
unknown (no H100e is invented for it).
Delivered ratio: the planner's prediction for the system on a workload divided by the prediction
for one H100 on the same workload (H100 measured profile from seeds/measured/ when there is one).
The delivered ratio is the honest one; `explain` says why the two differ.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources
from typing import Any, Callable, Mapping

from recoque.catalog import DeviceSpec, get_device_spec, match_device
from recoque.errors import RecoqueError
from recoque.estimate import Estimate, combine
from recoque.planner.power import clock_factor
from recoque.planner.serving_bounds import combine_shifts
from recoque.planner.system import SystemSpec, load_system
from recoque.planner.workloads import WorkloadEntry, assumed_peak, peak_estimate

H100 = "h100_sxm"
H100_SYSTEM = "h100-reference"
PEAK_METRICS = ("fp64_vector", "fp64_matrix", "bf16", "fp8", "hbm_bandwidth", "hbm_capacity")
# Which peak metric a delivered workload is naturally compared with.
PEAK_FOR_KIND = {"hpl": "fp64_matrix", "stencil": "hbm_bandwidth", "infer": "hbm_bandwidth", "train": "bf16"}


def device_metric(spec: DeviceSpec, metric: str) -> Estimate | None:
    if metric == "hbm_bandwidth":
        v = spec.hbm_bandwidth_bytes_s
        return None if v is None else Estimate.exact(v, "bytes/s")
    if metric == "hbm_capacity":
        return None if spec.hbm_bytes is None else Estimate.exact(spec.hbm_bytes, "bytes")
    return peak_estimate(spec, metric)


@dataclass(frozen=True)
class Equivalent:
    metric: str                 # a peak metric, or "delivered:<workload>"
    per_gpu_ratio: Estimate | None
    h100e: Estimate | None      # the whole system in H100s
    basis: str                  # "peak" or "delivered"
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "basis": self.basis, "per_gpu_ratio": self.per_gpu_ratio,
                "h100e": self.h100e, "note": self.note}


def peak_ratio(spec: DeviceSpec, metric: str, ref: DeviceSpec | None = None) -> Estimate | None:
    ref = ref or get_device_spec(H100)
    a, b = device_metric(spec, metric), device_metric(ref, metric)
    if a is None or b is None:
        return None
    return combine(lambda x, y: x / y, a, b, unit="1",
                   assumptions=(f"{spec.key} / {ref.key} {metric}, datasheet",))


def peak_equivalents(system: SystemSpec) -> list[Equivalent]:
    spec = get_device_spec(system.device)
    gpus = system.estimate("gpus", "gpu")
    out = []
    target = system.extra.get("hpl_target_eflops")
    for m in PEAK_METRICS:
        r = peak_ratio(spec, m)
        if target and m.startswith("fp64") and r is not None and "gpus" in system.ranges:
            out.append(_fp64_from_target(system, spec, m, float(target)))
        elif r is None:
            out.append(Equivalent(m, None, None, "peak", _no_peak_note(spec, m)))
        else:
            out.append(Equivalent(m, r, combine(lambda n, x: n * x, gpus, r, unit="H100e"), "peak"))
    return out


def _no_peak_note(spec: DeviceSpec, metric: str) -> str:
    """Why a peak ratio is missing; where the planner assumes a bracket for that peak (its MFU and
    serving rates use it), say so: no H100-equivalent is derived from an assumption."""
    assumed = assumed_peak(spec, metric) if metric in ("bf16", "fp8") else None
    if assumed is not None:
        return (f"{spec.key} {metric}: not published (training and serving estimates centre on "
                f"{assumed.value / 1e12:,.0f} TFLOP/s of an ASSUMED {assumed.low / 1e12:,.0f}..{assumed.high / 1e12:,.0f} "
                "bracket, and their ranges span it; no peak H100e is derived from an assumption)")
    return f"{spec.key} {metric}: no figure (the part has no such unit, or its rate is not published)"


def _fp64_from_target(system: SystemSpec, spec: DeviceSpec, metric: str, target_eflops: float) -> Equivalent:
    """When the GPU count was derived from an HPL target, the FP64 peak follows from the target alone:
    count x rate = target / efficiency (count and rate are not independent)."""
    from recoque.planner.hpl import hpl_efficiency, hpl_rate

    eff = hpl_efficiency(spec.key)  # the family's own, as the count was derived (hpl.gpus_for_rmax) and plan hpl takes it
    ref = device_metric(get_device_spec(H100), metric)
    ratio = device_metric(spec, metric).value / hpl_rate(spec).value  # this metric vs the rate HPL counts
    h100e = eff.map(lambda e: target_eflops * 1e18 / e * ratio / ref.value, "H100e",
                    f"{system.key}: FP64 peak = {target_eflops:g} EFLOP/s HPL target / efficiency (GPU count derived from it)")
    return Equivalent(metric, peak_ratio(spec, metric), h100e, "peak", "from the HPL target")


# --- delivered ------------------------------------------------------------------------------------

def measured_profile_for(device_key: str) -> Any:
    """A DeviceProfile from a results file in seeds/measured/ for this device, or None."""
    from recoque.bench.schema import document_from_json
    from recoque.planner.profile import DeviceProfile

    import json

    folder = resources.files("recoque.seeds").joinpath("measured")
    if not folder.is_dir():
        return None
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        try:
            doc = document_from_json(json.loads(entry.read_text(encoding="utf-8")), origin=entry.name)
        except (RecoqueError, ValueError):
            continue
        dev = dict(doc.device)
        spec = match_device(str(dev.get("name", "")), dev.get("gfx_arch"))
        if spec is not None and spec.key == device_key:
            return DeviceProfile.from_results(doc, spec)
    return None


def h100_reference(gpus: int | None = None) -> SystemSpec:
    ref = load_system(H100_SYSTEM)
    return ref.with_gpus(gpus) if gpus else ref


@dataclass(frozen=True)
class Delivered:
    workload: str
    kind: str
    system_rate: Estimate       # the system's predicted throughput (unit of the workload)
    h100_rate_per_gpu: Estimate
    equivalent: Equivalent
    gpus: int | None = None     # the GPUs the figure counts when fewer than the system's (training's fastest count)
    dtype: str = ""             # the precision the system side ran in (training), "" where the kind fixes it


def delivered(system: SystemSpec, w: WorkloadEntry, system_rate: Callable[[SystemSpec, Any], Estimate],
              h100_per_gpu: Callable[[SystemSpec, Any], Estimate], profile: Any = None,
              ratio_per_gpu: Callable[[Estimate, Estimate], Estimate] | None = None) -> Delivered:
    """Generic: a function giving the system's rate, one giving an H100's rate per GPU. Without
    `ratio_per_gpu` (system rate, H100 rate -> ratio per GPU) the ratio's range takes every corner
    of the two ranges, as if their errors were unrelated; a model that knows which of its constants
    the two predictions share gives the ratio its own range (serving: serving_bounds.ratio_span)."""
    h100_profile = profile if (profile is not None and getattr(getattr(profile, "spec", None), "key", None) == H100) \
        else measured_profile_for(H100)
    sys_rate = system_rate(system, profile)
    ref_rate = h100_per_gpu(h100_reference(), h100_profile)
    gpus = system.estimate("gpus", "gpu")
    if ratio_per_gpu is None:
        eq = combine(lambda s, r: s / r, sys_rate, ref_rate, unit="H100e")
        # sys_rate already spans the GPU count's range: divided by its centre, not corner by corner
        # again (that took the count's range twice: 0.12-1.83 around 0.52 on alice-recoque)
        per_gpu = eq.scale(1.0 / gpus.value, "1")
    else:
        per_gpu = ratio_per_gpu(sys_rate, ref_rate)
        eq = combine(lambda r, n: r * n, per_gpu, gpus, unit="H100e")
    src = "measured H100 profile" if h100_profile is not None else "H100 datasheet x achieved fraction"
    note = f"{w.key}: system prediction / one H100's prediction ({src})"
    return Delivered(w.key, w.kind, sys_rate, ref_rate, Equivalent(f"delivered:{w.key}", per_gpu, eq, "delivered", note))


def peak_metric_for(d: Delivered) -> str:
    """The peak a delivered figure is held against: the kind's (PEAK_FOR_KIND), except training in a
    precision that has a peak ratio of its own (fp8: its linear layers run on the fp8 units); fp4 has
    none (the H100 side runs fp8, _h100_training_dtype), so fp4 and the wide types keep bf16."""
    if d.kind == "train" and d.dtype in PEAK_METRICS and d.dtype != "bf16":
        return d.dtype
    return PEAK_FOR_KIND.get(d.kind, "bf16")


def explain(system: SystemSpec, peaks: list[Equivalent], d: Delivered) -> str:
    """Where the delivered ratio departs from the matching peak ratio, and the reason the model has."""
    metric = peak_metric_for(d)
    peak = next((p for p in peaks if p.metric == metric), None)
    if peak is None or peak.h100e is None or d.equivalent.h100e is None:
        return f"{metric} peak unknown: only the delivered ratio can be given"
    # per GPU on both sides where both are known: a job that leaves GPUs free (training on its
    # fastest count) is not less efficient for it
    per_gpu = peak.per_gpu_ratio is not None and d.equivalent.per_gpu_ratio is not None
    ratio = (d.equivalent.per_gpu_ratio.value / peak.per_gpu_ratio.value if per_gpu
             else d.equivalent.h100e.value / peak.h100e.value)
    spec = get_device_spec(system.device)
    if abs(ratio - 1.0) < 0.1:
        return f"delivered within 10% of the {metric} peak ratio (x{ratio:.2f})"
    clock = clock_factor(system)
    # the cap slows the compute clock, not HBM: the bandwidth-bound stencil owes none of its gap to it
    capped = (f"the {system.gpu_power_limit_w:g} W power cap runs the compute clock at x{clock:.2f}; "
              if clock < 0.995 and d.kind != "stencil" else "")
    if capped and spec.key == H100:  # the same part on both sides: the cap is the whole difference
        return f"delivered = x{ratio:.2f} the {metric} peak ratio: {capped.rstrip('; ')}"
    vec, mat = device_metric(spec, "fp64_vector"), device_metric(spec, "fp64_matrix")
    vector_counted = spec.vendor == "amd" and vec is not None and mat is not None and vec.value < mat.value
    why = {
        "hpl": (f"TOP500 counts {spec.key} at its FP64 vector rate and H100 at its tensor rate; HPL efficiency is calibrated on that basis"
                if vector_counted else
                f"both counted at their FP64 matrix (tensor) rate; the HPL efficiency of {spec.key}'s family and memory per GPU differs "
                "from H100's, and the slowest of more GPUs sets the pace (planner/hpl.py)"),
        "stencil": "halo exchange over the inter-node links and the achieved fraction of HBM bandwidth",
        "infer": ("HBM capacity sets the batch (more streams per GPU amortise the weight reads), the achieved GEMM fraction "
                  "differs by vendor, and prefill is compute-bound"),
        "train": "achieved GEMM fraction, memory for the parallel layout, and communication over the links",
    }.get(d.kind, "the workload's bottleneck is not the peak metric")
    return f"delivered = x{ratio:.2f} the {metric} peak ratio: {capped}{why}"



# --- delivered, training (issue 12) ---------------------------------------------------------------

def training_delivered(system: SystemSpec, workload_key: str, gpus: int, system_result: Any,
                       stack_key: str | None = None, dtype: str = "bf16", profile: Any = None,
                       workload: Any = None, stack: Any = None, pins: Mapping[str, Any] | None = None) -> Delivered:
    """Delivered H100-equivalents for training a named workload: the system's searched time per
    iteration on `gpus` GPUs against the H100 reference's on as many GPUs, with the same stack
    and the same plan search (planner.search). Equivalents = gpus x t_H100 / t_system, so a system
    whose GPU trains like 1.5 H100s counts 1.5 per GPU. `system_result` is the system's PlanResult,
    `profile` the one it was planned with (default: the shipped profile of its device); `workload`
    a TrainingWorkload as `plan train` shaped it (--tokens, --global-batch, LoRA; default: the
    preset), `stack` the Stack the plan ran on (default: `stack_key`, else the vendor's). The H100
    side runs the same stack, or a ROCm build's CUDA counterpart (stacks.cuda_counterpart).
    The ratio's range (time_ratio_span): on H100s both times move with the same profile corner
    and the ratio is taken corner by corner; on another device the two profiles err independently,
    so their spreads add in quadrature, each side's run-to-run spread a term of its own."""
    from recoque.errors import DoesNotFit
    from recoque.planner.search import search
    from recoque.planner.stacks import cuda_counterpart, default_stack_for, load_stack
    from recoque.planner.train import corner_iteration_times, run_to_run_spread
    from recoque.planner.validation import training_profile
    from recoque.planner.workload import load_training_workload

    wl = workload or load_training_workload(workload_key)
    stack = stack or load_stack(stack_key or default_stack_for(get_device_spec(system.device).vendor))
    ref = h100_reference(gpus)
    ref_stack = cuda_counterpart(stack)  # same stack features on both; a ROCm build maps to its CUDA counterpart
    h100_prof = training_profile(get_device_spec(H100))
    ref_dtype = _h100_training_dtype(dtype)
    # the user's pins bind both sides (a pinned plan against a freely searched H100 read as a hardware ratio);
    # pins no H100 plan satisfies leave the H100 side searched freely, said in the note
    ref_res = search(wl, ref, h100_prof, top=1, gpus=gpus, dtype=ref_dtype, stack=ref_stack, pins=pins or None)
    pinned = bool(pins) and bool(ref_res.best)
    if pins and not ref_res.best:
        ref_res = search(wl, ref, h100_prof, top=1, gpus=gpus, dtype=ref_dtype, stack=ref_stack)
    tok = float(wl.tokens_per_iteration)
    sys_rate = system_result.tokens_per_s
    if not ref_res.best:
        raise DoesNotFit(f"{workload_key} does not fit on {gpus} H100s: no delivered training ratio",
                         "compare at a GPU count where both fit")
    h = ref_res.best[0].iteration_time
    h_rate = Estimate(tok / h.value / gpus, tok / h.high / gpus, tok / h.low / gpus, "tokens/s per GPU",
                      (f"H100 reference ({H100_SYSTEM}) on {gpus} GPUs, best searched plan "
                       f"{ref_res.best[0].plan.label()}, stack {ref_res.best[0].stack}",))
    sys_prof = profile or training_profile(get_device_spec(system.device))
    t_sys = corner_iteration_times(wl, system.with_gpus(gpus), sys_prof, dtype, system_result.plan, stack)
    t_ref = corner_iteration_times(wl, ref, h100_prof, ref_dtype, ref_res.best[0].plan, ref_stack)
    same = get_device_spec(system.device).key == H100
    lo, hi = time_ratio_span(t_ref, t_sys, run_to_run_spread(gpus, ref.gpus_per_node),
                             run_to_run_spread(gpus, system.gpus_per_node), same)
    v = t_ref["value"] / t_sys["value"]
    per_gpu = Estimate(v, lo, hi, "1")
    eq = per_gpu.scale(float(gpus), "H100e")
    note = (f"{workload_key}: tokens/s on {gpus} GPUs of {system.key} ({system_result.plan.label()}, stack "
            f"{stack.key}) / tokens/s per H100 on {gpus} H100s, same search"
            + (" with the same pins" if pinned else ", the H100s searched freely (no H100 plan satisfies the pins)"
               if pins else "")
            + (f" on {ref_stack.key}, the CUDA counterpart of {stack.key}" if ref_stack.key != stack.key else "")
            + (f", the H100s in {ref_dtype} (no {dtype} units: its narrowest)" if ref_dtype != dtype else "")
            + "; range: "
            + ("one profile on both, ratio corner by corner" if same else
               "the two profiles' spreads and each side's run-to-run spread in quadrature"))
    return Delivered(workload_key, "train", sys_rate, h_rate, Equivalent(f"delivered:{workload_key}", per_gpu, eq,
                                                                         "delivered", note), gpus=int(gpus), dtype=dtype)


def _h100_training_dtype(dtype: str) -> str:
    """The precision the H100 side trains in: the system's own, or, where the H100 has no units for
    it (fp4: Hopper's tensor cores stop at fp8, NVIDIA H100 datasheet), its narrowest, fp8, as a
    user moving the job to H100s would run it."""
    return dtype if get_device_spec(H100).peak(dtype) else "fp8"


def time_ratio_span(t_ref: dict[str, float], t_sys: dict[str, float], spread_ref: float, spread_sys: float,
                    same_device: bool) -> tuple[float, float]:
    """(low, high) of t_ref / t_sys from each side's corner times (value/low/high, s).
    Same device: one profile moves both times, so the ratio is taken at each corner; the run-to-run
    spread is one and the same software on one part, and cancels. Different devices: independent
    errors, so the log shifts add in quadrature (serving_bounds.combine_shifts), the system's slow
    side and run-to-run spread lowering the ratio, the reference's raising it."""
    v = t_ref["value"] / t_sys["value"]
    if same_device:
        rs = [t_ref[c] / t_sys[c] for c in t_ref] + [v]
        return min(rs), max(rs)

    def spans(t: dict[str, float]) -> tuple[float, float]:  # (slower, faster) log half-widths
        return math.log(max(t.values()) / t["value"]), math.log(t["value"] / min(t.values()))

    slow_s, fast_s = spans(t_sys)
    slow_r, fast_r = spans(t_ref)
    # each source's two log shifts of the ratio (down, up)
    return combine_shifts(v, [(-slow_s, fast_s), (-fast_r, slow_r),
                              (-math.log1p(spread_sys), 0.0), (0.0, math.log1p(spread_ref))])
