"""LLM training performance model: time, throughput, memory and efficiency of one plan, with bounds.

Public API (stable; the capacity planner and the CLI use it):

    from recoque.planner.workload import TransformerSpec, TrainingWorkload, load_model,
        load_training_workload, list_models
    from recoque.planner.execution import ExecutionPlan
    from recoque.planner.profile import DeviceProfile   # from_datasheet / from_results / from_parameters
    from recoque.planner.train import evaluate, best_plans, PlanResult, SearchResult

    evaluate(workload: TrainingWorkload, system: SystemSpec, plan: ExecutionPlan,
             profile: DeviceProfile, dtype: str = "bf16", goodput: Estimate | None = None) -> PlanResult
    best_plans(workload: TrainingWorkload, system: SystemSpec, profile: DeviceProfile, top: int = 5,
               gpus: int | None = None, dtype: str = "bf16", full: bool = False) -> SearchResult

PlanResult fields (each an Estimate with value/low/high/unit/assumptions unless noted):
iteration_time (s), tokens_per_s, time_to_train (s, steady state), time_to_train_wall (s, divided
by goodput), goodput, model_flop_s_per_gpu, hardware_flop_s_per_gpu, mfu, hfu, memory_per_gpu
(bytes), comm_share (the share of the iteration spent in exposed communication); the shares (mfu,
hfu, mfu_fp8_peak, goodput, comm_share) in unit "fraction", as `plan` and `compare` write them;
plus plan, gpus, fits (bool), memory_capacity_bytes, breakdown (central seconds per part), why
(reason when it does not fit), assumptions; `to_json()`.
SearchResult: best (list of PlanResult), evaluated, infeasible_memory, invalid, seconds, reasons.

The model itself (the phases of one iteration, what each counts and from which source) is in
planner/train_core.py.

Calibration (what was fitted, on what): nothing in this file is fitted; device efficiencies live
in the profile (seeds/validation.toml [profiles.*], provenance beside each number). A100: the
GEMM plateau is anchored on the public MAMF best (271.2 TFLOP/s at 1024x10240x5120), links on
public nccl-tests bus bandwidths (NVLink3 0.75, HDR InfiniBand 0.90), the GEMM shape factors
(tiles, SM count, 16-element k, 4 us) stated. TWO quantities are fitted, on the 8 Korthikanti
et al. 2022 Table 5 runs only: the fraction of the MAMF figure a training run sustains (0.91,
on the median GPU; the job runs at its slowest GPU's pace, planner/pace.py) and the memory-bound
kernel efficiency (0.70 of HBM). Held out, never fitted: Narayanan et al.
2021 Table 1 (10 runs), BLOOM (1) and Llama 3 405B on 16K H100 (1; the H100 profile takes its
own public MAMF figure and the A100 fractions unchanged). `recoque validate` prints training and
held-out errors apart, and the errors of the public-figures-only profiles (about 13% mean: the
runs sustain less than the MAMF burst figures). The overlap constants are stated, not fitted.
The stack quantities fitted are DeepSpeed's sustained efficiency (0.98) and its ZeRO-3 compute
slowdown beside streaming collectives (0.45), on Narayanan et al. 2021 Table 2's ZeRO-3 rows and
BLOOM only (stack deepspeed-2022 in seeds/stacks.toml, validation.fit_stack). AMD parts take
their own public MAMF GEMM figures (seeds/validation.toml [profiles.mi*]); MI250X and MI430X
an explicit range (a whole MI250X package takes its per-GCD profile's fractions). Held-out checks
on AMD, nothing fitted: MLPerf Training v5.0 Llama-2-70B LoRA on 8 x MI300X / MI325X (in the
verdict, published plans from the submission configs) -3.2% / -1.3% (MI300X attention scaled from the
MI325X kernel measurement by the two parts' GEMM rates at their power limits); v5.1 on MI355X / MI350X
+2.0% / +0.3% and v5.1 Llama 3.1 8B pretraining on MI355X +2.1% (seeds/train_checks.toml). No
per-case constant exists anywhere. Other devices use a measured results file
(`DeviceProfile.from_results`) or the datasheet x stated defaults.
Limits: zero-bubble schedules, offloading and uneven expert routing are not modelled; TP
collectives are taken as not overlapped with compute; the memory model lacks Llama 3's
deallocation tricks (its 8K plan without recomputation shows as over memory); the ZeRO-3 rows
of Narayanan et al. 2021 Table 2 sustain 84% (175B) and 94% (530B) of the NIC line rate, one
central link efficiency (0.90) sits between them (errors -7% to +6%).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from recoque.catalog import GEMM_DTYPE_TO_RATE, get_device_spec
from recoque.errors import BadInput
from recoque.estimate import Estimate
from recoque.planner import flops, memory, power
from recoque.planner.execution import RECOMPUTE, RECOMPUTE_CODE, ExecutionPlan
from recoque.planner.profile import LOW_PRECISION_DTYPES, DeviceProfile
from recoque.planner.serving_rates import hbm_capacity_bytes
from recoque.planner.stacks import NEUTRAL, Stack
from recoque.planner.train_core import ZERO3_PREFETCH_RANGE, core, gemm_input_bytes, normalise_plans
from recoque.planner.train_kernels import Hardware
from recoque.planner.workload import TrainingWorkload

# The unit of a share of a whole (MFU, HFU, goodput, comm share), as `plan` and `compare` write it
# (capacity.as_fraction): render.human prints it in percent, --json keeps the fraction.
FRACTION = "fraction"
USABLE_MEMORY_FRACTION = 0.94  # allocator fragmentation, CUDA/ROCm context, communication buffers
# Failures: Llama 3 (arXiv 2407.21783 sec. 3.3.4) saw 419 unexpected interruptions in 54 days on
# 16,384 GPUs = 1.97e-5 per GPU-hour; each costs the restart plus work since the last checkpoint.
FAILURES_PER_GPU_HOUR = 419 / (54 * 24 * 16384)
HOURS_LOST_PER_FAILURE = (0.1, 0.25, 0.5)  # low, central, high
CHECKPOINT_OVERHEAD = (0.005, 0.01, 0.03)
# Run to run: the same plan on the same hardware runs slower with one software release or host than
# with another, and nothing in a plan says which a run will get. Published repeats bound it: on one
# node, eight MLPerf Training v5.0/v5.1 Llama-2-70B LoRA submissions on 8 x MI300X with one plan
# (AMD, Dell, Oracle, MangoBoost, Krai) span 3.781-4.010 s per step (+6%); across nodes, NVIDIA's
# v4.0 and v4.1 submissions of one LoRA plan on 8 and 128 DGX H100 took 0.638 vs 0.541 s (+18%) and
# 0.675 vs 0.545 s (+24%) (mlcommons training_results_v4.0/v4.1, seeds/train_checks.toml). Model
# time is the better case, so this widens only the slow side of the iteration time's range.
RUN_TO_RUN_SLOWER = {"one_node": 0.06, "multi_node": 0.24}

PLAN_FIELDS = ("tp", "pp", "dp", "micro_batch", "interleave", "recompute", "sequence_parallel",
               "zero_stage", "dp_overlap", "flash_attention", "ep", "cp", "reshard_after_forward", "recompute_layers",
               "distribute_checkpoints", "tp_overlap", "cp_a2a", "ep_overlap", "etp")
BREAKDOWN_KEYS = ("compute_s", "tp_comm_s", "ep_comm_s", "cp_comm_s", "p2p_s", "bubble_s", "dp_exposed_s",
                  "zero3_exposed_s", "optimizer_s", "param_passes_s", "emb_sync_s", "straggler_s")


def hardware_for(system: Any, profile: DeviceProfile, which: str = "value") -> Hardware:
    def pick(attr: str, best_is_high: bool = True) -> float:
        v = float(system.known(attr) if hasattr(system, "known") else getattr(system, attr))  # unknown: says what to add
        lo, hi = system.ranges.get(attr, (v, v))
        if which == "value":
            return v
        return (hi if best_is_high else lo) if which == "high" else (lo if best_is_high else hi)

    cap = hbm_capacity_bytes(profile.spec) if profile.spec.hbm_bytes else 0.0
    if not cap:
        raise BadInput(f"device {profile.spec.key}: memory capacity unknown", profile.spec.complete("hbm_capacity_gb"))
    # The catalog's "80 GB" read as GiB, as the serving model reads it (HBM stacks come in binary
    # sizes: seeds/serving.toml hbm_gb_per_datasheet_gb), of which USABLE_MEMORY_FRACTION. Checked on
    # AMD's MLPerf Llama-2-70B LoRA on MI300X (tests/test_train_lora_amd.py: the model lets 18 recomputed
    # layers fit where AMD's config recomputes 21) and on the published runs that ran
    # (benchmarks/train_memory_fit.py; those it overstates are answered by MEMORY_MODEL_HIGH_SIDE).
    return Hardware(
        gpus_per_node=int(system.gpus_per_node),
        bw_intra=pick("intra_node_bandwidth_bytes_s") * profile.intra_link_efficiency.get(which),
        bw_inter=_inter_per_gpu(system, pick("inter_node_bandwidth_bytes_s")) * profile.inter_link_efficiency.get(which),
        alpha_intra=pick("intra_node_latency_s", False), alpha_inter=pick("inter_node_latency_s", False),
        hbm_bw=profile.memory_bandwidth_bytes_s(which), capacity_bytes=cap * USABLE_MEMORY_FRACTION,
        zero3_prefetch=ZERO3_PREFETCH_RANGE[{"low": 0, "value": 1, "high": 2}[which]],
        clock_factor=power.clock_factor(system, profile, which),
        cta_bytes_s=_cta_bytes_s(pick("intra_node_bandwidth_bytes_s"), profile, which),
        bw_p2p_intra=_mesh_p2p_bytes_s(pick("intra_node_bandwidth_bytes_s"), profile, which),
    )


def _mesh_p2p_bytes_s(intra_bytes_s: float, profile: DeviceProfile, which: str) -> float | None:
    """One peer's link on a mesh scale-up (catalog scaleup_topology = "mesh"): the per-GPU bandwidth
    over its links at the profile's link efficiency (MI300X: 448 / 7 = 64 GB/s a link, 45-48 GB/s
    measured point to point, AMD's xGMI blog). None through switches."""
    links = profile.spec.scaleup_links
    if profile.spec.scaleup_topology != "mesh" or not links:
        return None
    return intra_bytes_s / links * profile.intra_link_efficiency.get(which)


def _cta_bytes_s(intra_bytes_s: float, profile: DeviceProfile, which: str) -> float | None:
    """Half of one scale-up link's stated rate (Hardware.cta_bytes_s). The corners bracket what a
    CTA really moves: a whole link (fast), half a link at the profile's achieved link efficiency (slow)."""
    links = profile.spec.scaleup_links
    if not links or profile.spec.scaleup_topology == "mesh":  # the 2-CTAs-a-link rule is NCCL's on NVLink
        return None
    half_link = intra_bytes_s / links / 2.0
    return half_link * {"value": 1.0, "high": 2.0, "low": profile.intra_link_efficiency.get("value")}[which]


def _inter_per_gpu(system: Any, stated: float) -> float:
    """The inter-node bandwidth one GPU gets: the stated per-GPU figure, capped by its share of the
    node's NICs when the system lists them (GPUs of a node share its NICs)."""
    share = nic_share_bytes_s(system)
    return stated if share is None else min(stated, share)


def nic_share_bytes_s(system: Any) -> float | None:
    """Per-GPU share of the node's NICs (NICs per node x rate / GPUs per node), when the system
    states them (`nics_per_node`, `nic_bandwidth_gb_s` one direction); GPUs of a node share them."""
    ex = getattr(system, "extra", {}) or {}
    n, r = ex.get("nics_per_node"), ex.get("nic_bandwidth_gb_s")
    if isinstance(n, (int, float)) and isinstance(r, (int, float)) and n > 0 and r > 0:
        return float(n) * float(r) * 1e9 / float(system.gpus_per_node)
    return None


def plan_arrays(plans: list[ExecutionPlan]) -> dict[str, np.ndarray]:
    return {
        "tp": np.array([p.tp for p in plans]), "pp": np.array([p.pp for p in plans]),
        "dp": np.array([p.dp for p in plans]), "micro_batch": np.array([p.micro_batch for p in plans]),
        "interleave": np.array([p.interleave for p in plans]),
        "recompute": np.array([RECOMPUTE_CODE[p.recompute] for p in plans]),
        "sequence_parallel": np.array([p.sequence_parallel for p in plans]),
        "zero_stage": np.array([p.zero_stage for p in plans]), "dp_overlap": np.array([p.dp_overlap for p in plans]),
        "flash_attention": np.array([p.flash_attention for p in plans]), "ep": np.array([p.ep for p in plans]),
        "cp": np.array([p.cp for p in plans]),
        "reshard_after_forward": np.array([p.reshard_after_forward for p in plans]),
        "recompute_layers": np.array([p.recompute_layers for p in plans]),
        "distribute_checkpoints": np.array([p.distribute_checkpoints for p in plans]),
        "tp_overlap": np.array([p.tp_overlap for p in plans]),
        "cp_a2a": np.array([p.cp_a2a for p in plans]),
        "ep_overlap": np.array([p.ep_overlap for p in plans]),
        "etp": np.array([p.etp for p in plans]),
    }


def plan_from_arrays(a: Mapping[str, np.ndarray], i: int) -> ExecutionPlan:
    return ExecutionPlan(tp=int(a["tp"][i]), pp=int(a["pp"][i]), dp=int(a["dp"][i]),
                         micro_batch=int(a["micro_batch"][i]), interleave=int(a["interleave"][i]),
                         recompute=RECOMPUTE[int(a["recompute"][i])],
                         sequence_parallel=bool(a["sequence_parallel"][i]) and int(a["tp"][i]) > 1,
                         zero_stage=int(a["zero_stage"][i]), dp_overlap=bool(a["dp_overlap"][i]),
                         flash_attention=bool(a["flash_attention"][i]), ep=int(a["ep"][i]),
                         cp=int(a["cp"][i]) if "cp" in a else 1,
                         reshard_after_forward=bool(a["reshard_after_forward"][i]) if "reshard_after_forward" in a else True,
                         recompute_layers=int(a["recompute_layers"][i]) if "recompute_layers" in a else 0,
                         distribute_checkpoints=bool(a["distribute_checkpoints"][i]) if "distribute_checkpoints" in a else False,
                         tp_overlap=bool(a["tp_overlap"][i]) if "tp_overlap" in a else False,
                         cp_a2a=bool(a["cp_a2a"][i]) if "cp_a2a" in a else False,
                         ep_overlap=bool(a["ep_overlap"][i]) if "ep_overlap" in a else False,
                         etp=int(a["etp"][i]) if "etp" in a else 0)


def as_run(plan: ExecutionPlan, workload: TrainingWorkload, stack: Stack) -> ExecutionPlan:
    """The plan with the switches the time model turns off where they cannot act shown off too, read
    from the model's own normalisation (train_core.normalise_plans), so the label and --json say what
    was estimated: the expert all-to-all overlap with a single micro-batch, distributed checkpoints
    under sequence parallelism, DP overlap with pp > 1 on a stack that reduces after the pipeline
    schedule; a count of recomputed layers that covers the whole stage is shown as plain full."""
    p = normalise_plans(workload, plan_arrays([plan]), stack)
    whole_stage = plan.recompute_layers >= float(p.lps[0])
    return replace(plan, recompute_layers=0 if whole_stage else plan.recompute_layers,
                   ep_overlap=bool(p.ep_overlap[0]), dp_overlap=bool(p.overlap[0]),
                   distribute_checkpoints=plan.distribute_checkpoints and bool(p.dist[0] or plan.recompute != "full"))


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
def goodput_estimate(gpus: int, iteration_s: float | None = None) -> Estimate:
    """Fraction of wall time doing useful training: failures (Llama 3 rate) and checkpoints."""
    vals = []
    for lost, ck in zip(HOURS_LOST_PER_FAILURE, CHECKPOINT_OVERHEAD):
        vals.append(1.0 / (1.0 + gpus * FAILURES_PER_GPU_HOUR * lost + ck))
    return Estimate(vals[1], min(vals), max(vals), FRACTION, (
        f"goodput: {FAILURES_PER_GPU_HOUR:.2e} failures per GPU-hour (Llama 3: 419 interruptions, 54 days, "
        f"16,384 GPUs), {HOURS_LOST_PER_FAILURE[1]} h lost each ({HOURS_LOST_PER_FAILURE[0]}-"
        f"{HOURS_LOST_PER_FAILURE[2]}), checkpoints {CHECKPOINT_OVERHEAD[1]:.0%} "
        f"({CHECKPOINT_OVERHEAD[0]:.1%}-{CHECKPOINT_OVERHEAD[2]:.0%})",))


@dataclass(frozen=True)
class PlanResult:
    workload: str
    system: str
    gpus: int
    plan: ExecutionPlan
    fits: bool
    why: str
    memory_per_gpu: Estimate
    memory_capacity_bytes: float
    iteration_time: Estimate | None = None
    tokens_per_s: Estimate | None = None
    time_to_train: Estimate | None = None
    time_to_train_wall: Estimate | None = None
    goodput: Estimate | None = None
    model_flop_s_per_gpu: Estimate | None = None
    hardware_flop_s_per_gpu: Estimate | None = None
    mfu: Estimate | None = None
    hfu: Estimate | None = None
    comm_share: Estimate | None = None
    breakdown: Mapping[str, float] = field(default_factory=dict)
    assumptions: tuple[str, ...] = ()
    stack: str = "neutral"
    mfu_fp8_peak: Estimate | None = None
    narrow_dtype: str | None = None  # the dtype (fp8, fp4) whose peak mfu_fp8_peak is against

    def to_json(self) -> dict[str, Any]:
        def est(e: Estimate | None) -> Any:
            return None if e is None else {k: v for k, v in e.to_json().items() if k != "assumptions"}

        return {
            "workload": self.workload, "system": self.system, "gpus": self.gpus, "plan": self.plan.to_json(),
            "plan_label": self.plan.label(), "fits": self.fits, "why": self.why,
            "memory_per_gpu": est(self.memory_per_gpu), "memory_capacity_bytes": self.memory_capacity_bytes,
            "iteration_time": est(self.iteration_time), "tokens_per_s": est(self.tokens_per_s),
            "time_to_train": est(self.time_to_train), "time_to_train_wall": est(self.time_to_train_wall),
            "goodput": est(self.goodput), "model_flop_s_per_gpu": est(self.model_flop_s_per_gpu),
            "hardware_flop_s_per_gpu": est(self.hardware_flop_s_per_gpu), "mfu": est(self.mfu),
            "hfu": est(self.hfu), "mfu_fp8_peak": est(self.mfu_fp8_peak), "mfu_narrow_dtype": self.narrow_dtype, "stack": self.stack,
            "comm_share": est(self.comm_share), "breakdown_s": dict(self.breakdown),
            "assumptions": list(self.assumptions),
        }


def _corners(workload: TrainingWorkload, system: Any, profile: DeviceProfile, dtype: str,
             arrays: Mapping[str, np.ndarray], stack: Stack = NEUTRAL) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for which in ("value", "low", "high"):
        prof = profile.bound(which)
        out[which] = core(workload, hardware_for(system, profile, which), prof, dtype, arrays, which="value",
                          stack=stack)
    return out


def corner_iteration_times(workload: TrainingWorkload, system: Any, profile: DeviceProfile, dtype: str,
                           plan: ExecutionPlan, stack: Stack = NEUTRAL) -> dict[str, float]:
    """One plan's iteration time at the profile's and system's value / low / high corners (s), before
    the run-to-run spread a PlanResult's range adds on its slow side."""
    c = _corners(workload, system, profile, dtype, plan_arrays([plan]), stack)
    return {k: float(c[k]["iteration_time_s"][0]) for k in ("value", "low", "high")}


def run_to_run_spread(gpus: int, gpus_per_node: int) -> float:
    """The slow-side spread of one plan's time between repeats (RUN_TO_RUN_SLOWER)."""
    return RUN_TO_RUN_SLOWER["one_node" if gpus <= gpus_per_node else "multi_node"]


def _peak_basis(profile: DeviceProfile, dtype: str) -> str:
    """'datasheet', or 'ASSUMED' where the catalog has no such peak and [assumed_peaks] filled it in."""
    try:
        listed = get_device_spec(profile.spec.key).peak(dtype)
    except BadInput:  # a device defined in the user's system file: its peaks are its datasheet
        return "datasheet"
    return "datasheet" if listed else "ASSUMED (seeds/workloads.toml [assumed_peaks])"


def _of_peak(rate: Estimate, spec: Any, dtype: str) -> Estimate:
    """A FLOP rate as a fraction of the peak. An ASSUMED peak (spec.assumed_rates) is a bracket: each end of
    the rate is taken against its own end of the peak (the slow corner ran on the low peak), so the
    fraction's range is the efficiency's, not the bracket's."""
    peak = spec.peak(dtype)
    lo_peak, hi_peak = spec.peak_range(dtype) if GEMM_DTYPE_TO_RATE.get(dtype, dtype) in spec.assumed_rates \
        else (peak, peak)
    v = rate.value / peak
    return Estimate(v, min(v, rate.low / lo_peak), max(v, rate.high / hi_peak), FRACTION, rate.assumptions)


def results_from_arrays(workload: TrainingWorkload, system: Any, profile: DeviceProfile, dtype: str,
                        arrays: Mapping[str, np.ndarray], goodput: Estimate | None = None,
                        stack: Stack = NEUTRAL) -> list[PlanResult]:
    """Full PlanResults (with bounds) for every plan in the arrays."""
    corners = _corners(workload, system, profile, dtype, arrays, stack)
    model = workload.model
    n = len(np.asarray(arrays["tp"]))
    low_precision = dtype in LOW_PRECISION_DTYPES
    # MFU as published runs quote it: against the 16-bit peak, also for fp8 and fp4 runs.
    peak = profile.peak_flop_s("bf16" if low_precision else dtype)
    peak_fp8 = profile.peak_flop_s(dtype) if low_precision else None
    mfu_rate = "bf16" if low_precision else dtype
    cap = hardware_for(system, profile).capacity_bytes
    lora = workload.lora_rank > 0
    fp8_inputs = gemm_input_bytes(workload, dtype, stack) < memory.WEIGHT_BYTES
    base_notes = profile.describe(dtype) + (
        (f"{dtype} training: {dtype} GEMMs for the linear layers only (cast/scale traffic counted), attention and "
         "logits in bf16, fp32 master weights" if low_precision else f"{dtype} training") + (
            f", LoRA rank {workload.lora_rank} on {workload.lora_targets} linear layers: base weights frozen "
            f"(no weight gradients or optimizer state{', kept in fp8' if low_precision else ''}"
            f"{'; frozen FFN stores no GEMM inputs' if workload.lora_targets == 'attention' else ''}"
            f"{f'; input dropout {workload.lora_dropout:g}: each adapter keeps a mask and a dropped copy' if workload.lora_dropout else ''})"
            if lora else ", mixed-precision AdamW 16 bytes/param"),
        stack.describe(),
        "model FLOPs count attention over the full s x s matrix (Megatron convention); MFU/HFU against the "
        f"dense {'bf16' if low_precision else dtype} {_peak_basis(profile, 'bf16' if low_precision else dtype)} "
        f"peak {peak / 1e12:.0f} TFLOP/s"
        + (f" ({dtype} peak {peak_fp8 / 1e12:.0f} TFLOP/s: mfu_fp8_peak)" if peak_fp8 else "")
        + ("; the range runs each end on its own end of the ASSUMED peak bracket (time and rates span it, MFU is "
           "taken against that end's peak)" if profile.spec.assumed_rates else ""),
        f"memory budget {USABLE_MEMORY_FRACTION:.0%} of {profile.spec.hbm_bytes / 1e9:.0f} GiB = {cap / 1e9:.1f} GB"
        + ("" if workload.model.dropout else
           "; the base model's layers without dropout: no masks stored for them" + (
               " (the adapters' input dropout above keeps its own)" if workload.lora_dropout else ""))
        + ("; the linear layers keep their fp8 input for the backward (Transformer Engine)" if fp8_inputs else ""),
    )
    sys_notes = tuple(system.range_note(k) for k in system.ranges)
    sys_notes += tuple(n for n in (power.note(system, profile),) if n)
    share = nic_share_bytes_s(system)
    if share is not None and share < (system.inter_node_bandwidth_bytes_s or float("inf")):
        sys_notes += (f"{system.key}: its GPUs share the node's NICs, {system.extra['nics_per_node']:g} x "
                      f"{system.extra['nic_bandwidth_gb_s']:g} GB/s over {system.gpus_per_node} GPUs = "
                      f"{share / 1e9:.3g} GB/s per GPU, below the stated inter-node "
                      f"{system.inter_node_bandwidth_bytes_s / 1e9:.3g}: the share is used",)
    results = []
    op_sac_share = memory.op_sac_recomputed_flop_share(model) if stack.selective_op_sac else None
    for i in range(n):
        plan = as_run(plan_from_arrays(arrays, i), workload, stack)
        gpus = plan.gpus
        gp = goodput or goodput_estimate(gpus)
        mem_v = float(corners["value"]["memory_bytes"][i])
        mem = Estimate(mem_v, mem_v, mem_v, "bytes", ("activations: Korthikanti et al. 2022 sec. 4-5",))
        fits = bool(mem_v <= cap)
        why = "" if fits else (f"needs {mem_v / 1e9:.1f} GB per GPU, {cap / 1e9:.1f} GB usable "
                               f"({plan.label()})")
        it = [float(corners[c]["iteration_time_s"][i]) for c in ("value", "high", "low")]  # high rates: low time
        one_node = gpus <= system.gpus_per_node
        spread = run_to_run_spread(gpus, system.gpus_per_node)
        notes = base_notes + sys_notes + (
            f"range: slow side +{spread:.0%} for run-to-run software and host differences of one plan "
            f"({'one node' if one_node else 'across nodes'}; published MLPerf repeats)",)
        t_it = Estimate(it[0], min(it), max(it) * (1.0 + spread), "s", notes)
        tok = workload.tokens_per_iteration
        mf = float(flops.model_flops_per_iteration(model, workload.global_batch_seqs, lora=lora))
        hf = float(flops.hardware_flops_per_iteration(model, workload.global_batch_seqs, plan.recompute, lora=lora,
                                                      recompute_share=plan.recompute_share(model.layers),
                                                      op_sac_share=op_sac_share))
        tps = t_it.map(lambda x: tok / x, "tokens/s")
        ttt = t_it.map(lambda x: workload.iterations * x, "s")
        wall = Estimate(ttt.value / gp.value, ttt.low / gp.high, ttt.high / gp.low, "s", ttt.assumptions + gp.assumptions)
        mfs = t_it.map(lambda x: mf / x / gpus, "flop/s")
        hfs = t_it.map(lambda x: hf / x / gpus, "flop/s")
        comm_v = [float(corners[c]["comm_exposed_s"][i] / corners[c]["iteration_time_s"][i]) for c in ("value", "low", "high")]
        bd = {k: float(corners["value"][k][i]) for k in BREAKDOWN_KEYS + ("iteration_time_s",)}
        results.append(PlanResult(
            workload=model.key or model.name, system=system.key, gpus=gpus, plan=plan, fits=fits, why=why,
            memory_per_gpu=mem, memory_capacity_bytes=cap, iteration_time=t_it, tokens_per_s=tps,
            time_to_train=ttt, time_to_train_wall=wall, goodput=gp, model_flop_s_per_gpu=mfs,
            hardware_flop_s_per_gpu=hfs, mfu=_of_peak(mfs, profile.spec, mfu_rate),
            hfu=_of_peak(hfs, profile.spec, mfu_rate),
            comm_share=Estimate(comm_v[0], min(comm_v), max(comm_v), FRACTION), breakdown=bd,
            assumptions=tuple(dict.fromkeys(notes + gp.assumptions)), stack=stack.key,
            mfu_fp8_peak=_of_peak(mfs, profile.spec, dtype) if peak_fp8 else None,
            narrow_dtype=dtype if peak_fp8 else None,
        ))
    return results


def evaluate(workload: TrainingWorkload, system: Any, plan: ExecutionPlan, profile: DeviceProfile,
             dtype: str = "bf16", goodput: Estimate | None = None, stack: Stack = NEUTRAL) -> PlanResult:
    """One plan on one system. Raises BadInput for a plan that cannot run the model at all (heads
    not divisible, batch not divisible...); a plan that does not fit in memory is returned with
    fits=False and `why`."""
    probs = plan.problems(workload.model, workload.global_batch_seqs)
    if probs:
        raise BadInput(f"plan {plan.label()} is invalid for {workload.model.name}: {'; '.join(probs)}",
                       "choose tp/pp/dp/micro_batch that divide heads, layers and the batch")
    if plan.gpus > system.gpus:
        raise BadInput(f"plan uses {plan.gpus} GPUs, system {system.key} has {system.gpus:.0f}",
                       "lower tp*pp*dp or pick a bigger system")
    return results_from_arrays(workload, system, profile, dtype, plan_arrays([plan]), goodput, stack)[0]


@dataclass(frozen=True)
class SearchResult:
    workload: str
    system: str
    gpus: int
    best: list[PlanResult]
    evaluated: int
    infeasible_memory: int
    invalid: int
    seconds: float
    reasons: tuple[str, ...] = ()
    smallest_memory: PlanResult | None = None

    @property
    def plans_per_second(self) -> float:
        return self.evaluated / self.seconds if self.seconds > 0 else math.inf

    def to_json(self) -> dict[str, Any]:
        return {"workload": self.workload, "system": self.system, "gpus": self.gpus,
                "evaluated": self.evaluated, "infeasible_memory": self.infeasible_memory, "invalid": self.invalid,
                "seconds": self.seconds, "plans_per_second": self.plans_per_second, "reasons": list(self.reasons),
                "best": [r.to_json() for r in self.best],
                "smallest_memory": None if self.smallest_memory is None else self.smallest_memory.to_json()}


def best_plans(workload: TrainingWorkload, system: Any, profile: DeviceProfile, top: int = 5,
               gpus: int | None = None, dtype: str = "bf16", full: bool = False) -> SearchResult:
    """The `top` fastest plans that fit, searching every valid plan shape on `gpus` GPUs."""
    from recoque.planner.search import search

    return search(workload, system, profile, top=top, gpus=gpus, dtype=dtype, full=full)
