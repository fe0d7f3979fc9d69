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
by goodput), goodput (fraction), model_flop_s_per_gpu, hardware_flop_s_per_gpu, mfu, hfu,
memory_per_gpu (bytes), comm_share (fraction of the iteration spent in exposed communication);
plus plan, gpus, fits (bool), memory_capacity_bytes, breakdown (central seconds per part), why
(reason when it does not fit), assumptions; `to_json()`.
SearchResult: best (list of PlanResult), evaluated, infeasible_memory, invalid, seconds, reasons.

The model (one iteration, per GPU, seconds). Per layer and micro-batch: the forward GEMMs
(QKV, projection, FFN in/out, `flops.layer_gemm_shapes_fwd`) each at the profile's shape-aware
rate (`DeviceProfile.gemm_time_s`: plateau efficiency x wave quantisation over the SMs x a
short-k factor, a roofline floor on the bytes, a per-kernel overhead), the backward as its two
GEMMs of their own shapes (data gradient m x k x n, weight gradient k x n x m), the attention
core (fused: the profile's attention rate; unfused: per-head batched GEMMs at the GEMM model plus
softmax/dropout bytes), memory-bound elementwise work (LayerNorm, bias-dropout-residual,
activation: bytes over the memory-bound bandwidth, twice in the backward), recomputation (full:
the whole forward again; selective: the attention core), tensor-parallel collectives (2
all-reduces forward and 2 backward, or the same volume as all-gather + reduce-scatter with
sequence parallelism) and expert all-to-alls. A pipeline stage runs L/p layers (+ the logits on
the last stage); 1F1B time = m * T_slowest + (p - 1)/v * T_mean (bubble (p-1)/(m v), Narayanan
et al. 2021), plus activation sends between stages. Then the data-parallel gradient reduction
(hierarchical, in the stack's reduction dtype; ZeRO-1: reduce-scatter + all-gather of the weights,
or DeepSpeed's bf16 pipeline path: an fp32 all-reduce + the weight all-gather; ZeRO-2: a
reduce-scatter per micro-batch), hidden with overlap behind at most OVERLAP_EFFICIENCY
(0.7) of the backward it runs beside, which it slows by OVERLAP_COMPUTE_SLOWDOWN (10%). ZeRO-3
(FSDP full sharding): per micro-batch and layer, the weights all-gathered in the forward, again in
the backward (unless reshard_after_forward is off) and again in a recomputed forward when the
stack re-fetches there (DeepSpeed), the gradients reduce-scattered; each collective a ring over the DP ranks, either node-aware
(the stack's zero3_node_rings: a node's NICs share the inter-node part) or bound by each rank's
per-GPU share of the node's NICs for its whole (n-1)/n share (comm.sharded_allgather_time);
one layer of prefetch puts a layer's traffic beside the previous layer's compute
(ZERO3_PREFETCH_EFFICIENCY, 0.5 at the pessimistic corner), and compute runs slower by the stack's
zero3_compute_slowdown while it streams: a pass takes max(traffic, compute + slowdown x traffic);
never less exposed time than ZeRO-1 on the same plan. Then the AdamW step (memory-bound, 42 bytes per local parameter) and the
tied-embedding all-reduce between the first and last stages. One accounting: the breakdown keys
(BREAKDOWN_KEYS) sum to the iteration time. fp8: the linear-layer GEMMs at the fp8 peak times
the profile's fp8 relative efficiency, plus cast/scale traffic (fp4, NVFP4: the same at the fp4 peak x its
relative efficiency, planner/profile.py); attention, logits and LoRA
adapters in bf16; MFU against the bf16 peak (mfu_fp8_peak beside it). LoRA: no weight-gradient
GEMMs, gradients and optimizer state for the adapters only. The software stack (planner/stacks.py)
scales compute by its sustained efficiency and sets the reduction dtype. Memory: `memory.py`
(Korthikanti et al. 2022 activations for none / selective / full / block-partial recompute, full
with checkpoints distributed over TP, divided by CP, plus one layer whole while it is recomputed;
AdamW states by ZeRO stage, gradients in the accumulation dtype, plus the 16-bit gradients a
DeepSpeed pipeline keeps beside them) against 94% of the device memory. The stack's pipeline code
also sets whether the DP reduction may overlap when pp > 1 (not under DeepSpeed's pipeline engine).

Calibration (what was fitted, on what): nothing in this file is fitted; device efficiencies live
in the profile (seeds/validation.toml [profiles.*], provenance beside each number). A100: the
GEMM plateau is anchored on the public MAMF best (271.2 TFLOP/s at 1024x10240x5120), links on
public nccl-tests bus bandwidths (NVLink3 0.75, HDR InfiniBand 0.90), the GEMM shape factors
(tiles, SM count, 16-element k, 4 us) stated. TWO quantities are fitted, on the 8 Korthikanti
et al. 2022 Table 5 runs only: the fraction of the MAMF figure a training run sustains (0.86)
and the memory-bound kernel efficiency (0.70 of HBM). Held out, never fitted: Narayanan et al.
2021 Table 1 (10 runs), BLOOM (1) and Llama 3 405B on 16K H100 (1; the H100 profile takes its
own public MAMF figure and the A100 fractions unchanged). `recoque validate` prints training and
held-out errors apart, and the errors of the public-figures-only profiles (about 13% mean: the
runs sustain less than the MAMF burst figures). The overlap constants are stated, not fitted.
The stack quantities fitted are DeepSpeed's sustained efficiency (0.96) and its ZeRO-3 compute
slowdown beside streaming collectives (0.40), on Narayanan et al. 2021 Table 2's ZeRO-3 rows and
BLOOM only (stack deepspeed-2022 in seeds/stacks.toml, validation.fit_stack). AMD parts take
their own public MAMF GEMM figures (seeds/validation.toml [profiles.mi*]); MI250X and MI430X
an explicit range (a whole MI250X package takes its per-GCD profile's fractions). Held-out checks
on AMD, nothing fitted: MLPerf Training v5.0 Llama-2-70B LoRA on 8 x MI300X / MI325X (in the
verdict, published plans from the submission configs) +0.0% / +2.7% (MI300X attention scaled from the
MI325X kernel measurement by the two parts' GEMM rates at their power limits); v5.1 on MI355X / MI350X
+8.5% / +6.1% and v5.1 Llama 3.1 8B pretraining on MI355X +4.1% (not in the seeds). No
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
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from recoque.catalog import get_device_spec
from recoque.errors import BadInput
from recoque.estimate import Estimate
from recoque.planner import comm, flops, memory, power
from recoque.planner.execution import RECOMPUTE, RECOMPUTE_CODE, ExecutionPlan
from recoque.planner.profile import LOW_PRECISION_DTYPES, DeviceProfile
from recoque.planner.stacks import NEUTRAL, Stack
from recoque.planner.workload import TrainingWorkload

USABLE_MEMORY_FRACTION = 0.94  # allocator fragmentation, CUDA/ROCm context, communication buffers
GRAD_REDUCE_BYTES = 4.0  # gradients reduced in fp32 (Megatron/DeepSpeed default for bf16)
# AdamW step: read fp32 master, m, v, gradient (16), write master, m, v and the 16-bit copy (14);
# plus the gradient passes around it: norm for clipping, inf/nan check, zeroing (4 each).
OPTIMIZER_STEP_BYTES = 42.0
# Communication overlapped with compute (DP gradient reduction, ZeRO-3 prefetch): at most this
# fraction of the compute beside it can hide communication, and that compute runs this much
# slower. Stated: NCCL kernels occupy SMs (one channel per SM, 8-32 channels on 108-132 SMs)
# and HBM bandwidth; FSDP/ZeRO-3 step-time studies see 10-30% of communication left exposed.
OVERLAP_EFFICIENCY = 0.7
OVERLAP_COMPUTE_SLOWDOWN = 0.10
# ZeRO-3/FSDP prefetch gathers the next layer's weights on a side stream during the whole of the
# current layer's compute (not only the tail of the backward, as bucketed DP reduction does), so
# a layer's traffic can hide behind all of the previous layer's compute (still slowed by
# OVERLAP_COMPUTE_SLOWDOWN); only the first gather and last reduce-scatter of a pass stay exposed.
ZERO3_PREFETCH_EFFICIENCY = 1.0
# Its pessimistic corner: prefetch limited by buffer sizes (DeepSpeed stage3_prefetch_bucket_size,
# FSDP limit_all_gathers) hides only half; a stated bound, not fitted.
ZERO3_PREFETCH_RANGE = (0.5, ZERO3_PREFETCH_EFFICIENCY, ZERO3_PREFETCH_EFFICIENCY)
ELEMENTWISE_BYTES_PER_H = 22.0  # 2 LayerNorms (4h each), 2 bias-dropout-residual (7h each), per token
# Non-GEMM kernels of one layer's forward, each at least the profile's kernel_overhead_s: 2 norms,
# 2 bias-dropout-residual adds, the activation and the rotary embedding (Megatron-Core's layer with
# Transformer Engine's fused kernels); the backward runs one per forward kernel and its gradient
# counterpart, i.e. twice as many (counted by `2.0 * t_elem`). fp8/fp4 casts: one kernel per
# linear-layer input forward, two backward (t_cast_*).
ELEMENTWISE_KERNELS_FWD = 6.0


def cp_merge_bytes_fwd(cp: Any) -> Any:
    """Forward bytes per (token x query width) of the context-parallel ring's partial outputs: cp - 1
    extra 2-byte writes and cp merges of 6 bytes, each over 3/4 of the queries (see core())."""
    return 0.75 * (2.0 * (cp - 1.0) + 6.0 * cp)


def cp_merge_bytes_bwd(cp: Any) -> Any:
    """Backward bytes per (token x gradient width): cp accumulations of 6 bytes over 3/4 of the rows."""
    return 0.75 * 6.0 * cp


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
               "distribute_checkpoints", "tp_overlap", "cp_a2a", "ep_overlap")
BREAKDOWN_KEYS = ("compute_s", "tp_comm_s", "ep_comm_s", "cp_comm_s", "p2p_s", "bubble_s", "dp_exposed_s",
                  "zero3_exposed_s", "optimizer_s", "emb_sync_s")


# --------------------------------------------------------------------------------------------
# The vectorised core: every plan in numpy arrays, one evaluation per corner.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Hardware:
    """The per-corner numbers the core needs (base units)."""

    gpus_per_node: int
    bw_intra: float  # achieved bus bandwidth per GPU, bytes/s
    bw_inter: float
    alpha_intra: float
    alpha_inter: float
    hbm_bw: float
    capacity_bytes: float
    zero3_prefetch: float = 1.0  # ZeRO-3 prefetch efficiency at this corner (ZERO3_PREFETCH_RANGE)
    clock_factor: float = 1.0  # compute clock under the system's GPU power limit (planner/power.py)
    # What one NCCL CTA moves point to point over the scale-up links, bytes/s one direction (None:
    # links unknown). NCCL launches 2 CTAs per NVLink link to saturate it (NVIDIA/nccl issue #1703,
    # maintainer, 2025-05-07), so one CTA moves half a link: the stated per-GPU bandwidth / links / 2.
    # Only a run that caps a communicator's CTAs (Stack.comm_max_ctas) meets this bound.
    cta_bytes_s: float | None = None


def hardware_for(system: Any, profile: DeviceProfile, which: str = "value") -> Hardware:
    def pick(attr: str, best_is_high: bool = True) -> float:
        v = float(system.known(attr) if hasattr(system, "known") else getattr(system, attr))  # unknown: says what to add
        lo, hi = system.ranges.get(attr, (v, v))
        if which == "value":
            return v
        return (hi if best_is_high else lo) if which == "high" else (lo if best_is_high else hi)

    cap = profile.spec.hbm_bytes
    if not cap:
        raise BadInput(f"device {profile.spec.key}: memory capacity unknown", "add hbm_capacity_gb to the catalog")
    return Hardware(
        gpus_per_node=int(system.gpus_per_node),
        bw_intra=pick("intra_node_bandwidth_bytes_s") * profile.intra_link_efficiency.get(which),
        bw_inter=_inter_per_gpu(system, pick("inter_node_bandwidth_bytes_s")) * profile.inter_link_efficiency.get(which),
        alpha_intra=pick("intra_node_latency_s", False), alpha_inter=pick("inter_node_latency_s", False),
        hbm_bw=profile.memory_bandwidth_bytes_s(which), capacity_bytes=cap * USABLE_MEMORY_FRACTION,
        zero3_prefetch=ZERO3_PREFETCH_RANGE[{"low": 0, "value": 1, "high": 2}[which]],
        clock_factor=power.clock_factor(system, profile),
        cta_bytes_s=_cta_bytes_s(pick("intra_node_bandwidth_bytes_s"), profile, which),
    )


def _cta_bytes_s(intra_bytes_s: float, profile: DeviceProfile, which: str) -> float | None:
    """Half of one scale-up link's stated rate (Hardware.cta_bytes_s). The corners bracket what a
    CTA really moves: a whole link (fast), half a link at the profile's achieved link efficiency (slow)."""
    links = profile.spec.scaleup_links
    if not links:
        return None
    half_link = intra_bytes_s / links / 2.0
    return half_link * {"value": 1.0, "high": 2.0, "low": profile.intra_link_efficiency.get("value")}[which]


def capped_bw(bw_intra: float, hw: Hardware, stack: Stack, group: str) -> float:
    """The scale-up bandwidth of a point-to-point transfer (context-parallel ring, pipeline send) when
    the run caps its communicator's NCCL CTAs: at most CTAs x Hardware.cta_bytes_s (a 1-CTA ring on
    NVLink5 moves 25 GB/s, not 675). Ring collectives (TP, DP) keep the bus bandwidth: NVIDIA's
    MLPerf v5.1 Llama 3.1 405B NVFP4 run on 512 GB200 runs its TP collectives through NCCL (no
    userbuffers) at 8 CTAs in 17.3 s per step, which a half-link-per-CTA bound (200 GB/s) would put
    above 24 s (seeds/train_checks.toml), so the figure is not carried over to them."""
    ctas = stack.comm_max_ctas.get(group)
    if ctas is None:
        return bw_intra
    if hw.cta_bytes_s is None:
        raise BadInput(f"the run caps the NCCL CTAs of its {group} communicator, but the device's scale-up links "
                       "are not in the catalog", "add scaleup_links to the device, or drop nccl_max_ctas")
    return min(bw_intra, ctas * hw.cta_bytes_s)


def _inter_per_gpu(system: Any, stated: float) -> float:
    """The inter-node bandwidth one GPU gets: the stated per-GPU figure, capped by its share of the
    node's NICs when the system lists them (GPUs of a node share its NICs)."""
    share = nic_share_bytes_s(system)
    return stated if share is None else min(stated, share)


def _params_per_gpu(model: Any, tp: Any, pp: Any, ep: Any, lps: Any) -> tuple[Any, Any]:
    """(parameters on the most loaded stage of `lps` layers, of which expert parameters), per GPU."""
    dense_layer = model.nonexpert_params_per_layer() - (0.0 if model.moe else model.expert_params())
    expert = model.routed_expert_params_per_layer() if model.moe else model.expert_params()
    emb = np.where(pp == 1, float(model.embedding_params()),
                   float(model.vocab * model.hidden + (model.seq_len * model.hidden if model.learned_positions else 0)))
    exp_pg = lps * expert / (tp * (ep if model.moe else 1))
    dense_pg = lps * dense_layer / tp + emb / tp
    return dense_pg + exp_pg, (exp_pg if model.moe else 0.0 * exp_pg)


def nic_share_bytes_s(system: Any) -> float | None:
    """Per-GPU share of the node's NICs (NICs per node x rate / GPUs per node), when the system
    states them (`nics_per_node`, `nic_bandwidth_gb_s` one direction); GPUs of a node share them."""
    ex = getattr(system, "extra", {}) or {}
    n, r = ex.get("nics_per_node"), ex.get("nic_bandwidth_gb_s")
    if isinstance(n, (int, float)) and isinstance(r, (int, float)) and n > 0 and r > 0:
        return float(n) * float(r) * 1e9 / float(system.gpus_per_node)
    return None


def _lora_shapes(workload: TrainingWorkload, tokens: Any, tp: Any, ep: Any) -> list[tuple[Any, Any, Any, Any]]:
    """The forward GEMMs that carry adapters: all four, or QKV and the projection (the first two
    of `flops.layer_gemm_shapes_fwd`) when lora_targets is "attention"."""
    if workload.lora_targets == "attention":
        return flops.attention_gemm_shapes_fwd(workload.model, tokens, tp)
    return flops.layer_gemm_shapes_fwd(workload.model, tokens, tp, ep)


def _lora_adapter_params(workload: TrainingWorkload, r: float, tp: Any, lps: Any) -> Any:
    """Adapter parameters per GPU: rank r matrices A (k x r) and B (r x n) on each adapted linear layer."""
    tot = 0.0
    for _m, n, k, count in _lora_shapes(workload, 1.0, tp, 1.0):
        tot = tot + count * r * (k + n)
    return lps * tot


def _per_shape(fn: Callable[[np.ndarray], dict[str, Any]], *cols: np.ndarray) -> dict[str, np.ndarray]:
    """fn evaluated once per distinct row of the integer columns `cols`, spread back to every row.
    fn takes the indices of one representative row per distinct row (or `...`, every row)."""
    cols = tuple(np.asarray(c, dtype=float) for c in cols)
    n = cols[0].shape
    spans = [float(np.max(c)) + 1.0 if c.size else 1.0 for c in cols]
    exact = (len(n) == 1 and float(np.prod(spans)) < 2.0 ** 52
             and all(np.array_equal(c, np.floor(c)) and (not c.size or c.min() >= 0) for c in cols))
    if not exact:  # not integer rows of one dimension: evaluate every row
        out = fn(...)  # type: ignore[arg-type]
        return {k: np.broadcast_to(v, n) if np.ndim(v) == 0 else v for k, v in out.items()}
    key = np.zeros(n)
    for c, span in zip(cols, spans):
        key = key * span + c  # mixed radix: exact below 2**52
    _, first, inv = np.unique(key, return_index=True, return_inverse=True)
    out = fn(first)
    return {k: (np.full(n, v) if np.ndim(v) == 0 else np.asarray(v)[inv]) for k, v in out.items()}


def _kernel_times(workload: TrainingWorkload, hw: Hardware, profile: DeviceProfile, dtype: str, which: str,
                  eff: float, b: Any, tp: Any, cp: Any, ep: Any) -> dict[str, Any]:
    """Seconds per layer and micro-batch of each kernel group (forward and backward GEMMs, casts,
    adapters, attention fused and unfused) and of the logits, for micro-batches of b sequences."""
    m_ = workload.model
    s, h = float(m_.seq_len), float(m_.hidden)
    tokens = b * s / cp
    # fp8 / NVFP4: only the linear layers' GEMMs run in low precision (see core)
    low_precision = dtype in LOW_PRECISION_DTYPES
    lin_dt, att_dt = dtype, ("bf16" if low_precision else dtype)
    lora = workload.lora_rank > 0

    def gt(dt: str, mm: Any, nn: Any, kk: Any, batch: Any = 1.0) -> Any:
        return profile.gemm_time_s(dt, mm, nn, kk, which, batch) / eff

    # GEMMs at the profile's shape-aware rate: forward (m, n, k), backward data gradient
    # (m, k, n) and weight gradient (k, n, m). LoRA: no weight gradient of the frozen base.
    t_gemm_f = t_gemm_b = t_cast_f = t_cast_b = t_ad = 0.0
    ovh = profile.kernel_overhead_s()
    for mm, nn, kk, count in flops.layer_gemm_shapes_fwd(m_, tokens, tp, ep):
        t_gemm_f = t_gemm_f + count * gt(lin_dt, mm, nn, kk)
        t_gemm_b = t_gemm_b + count * (gt(lin_dt, mm, kk, nn) + (0.0 if lora else gt(lin_dt, kk, nn, mm)))
        if low_precision:
            # Cast/scale: quantise the input (read 2, write 1 byte) in the forward; in the backward
            # the output gradient (3 bytes) and a transposed fp8 copy of the input (2 bytes). NVFP4
            # writes half a byte plus block scales but adds its own transforms (random Hadamard on
            # the weight-gradient inputs): the same traffic is counted (stated, not measured).
            t_cast_f = t_cast_f + count * (3.0 * mm * kk / hw.hbm_bw + ovh)
            t_cast_b = t_cast_b + count * ((3.0 * mm * nn + 2.0 * mm * kk) / hw.hbm_bw + 2.0 * ovh)
    if lora:
        r = float(workload.lora_rank)
        for mm, nn, kk, count in _lora_shapes(workload, tokens, tp, ep):
            t_ad = t_ad + count * (gt(att_dt, mm, r, kk) + gt(att_dt, mm, nn, r))
    att = flops.attention_core_flops_fwd(m_, b, tp) / cp
    # Fused (flash) attention: the measured attention curve. Unfused (Megatron before flash):
    # batched GEMMs per head (Q K^T: s x s x d, P V: s x d x s; backward dQ, dK, dV: s x d x s and
    # dP: s x s x d) at the GEMM model, plus the softmax and dropout over the a x s x s scores at
    # memory bandwidth: forward reads/writes 9 bytes per score (softmax 2+2, dropout 2+2 and a
    # 1-byte mask), backward 11.
    d_h = float(m_.head_dim)
    nbat = b * m_.heads / tp
    sq = s / cp
    scores = b * sq * s * m_.heads / tp
    vt = m_.vocab / tp
    return {
        "gemm_f": t_gemm_f, "gemm_b": t_gemm_b, "cast_f": t_cast_f, "cast_b": t_cast_b, "ad": t_ad,
        "att_flash_f": att / profile.attention_curve(att_dt, "fwd").at(att, which) / eff,
        "att_flash_b": 2.0 * att / profile.attention_curve(att_dt, "bwd").at(att, which) / eff,
        "att_unfused_f": (gt(att_dt, sq, s, d_h, nbat) + gt(att_dt, sq, d_h, s, nbat) + 9.0 * scores / hw.hbm_bw),
        "att_unfused_b": (3.0 * gt(att_dt, sq, d_h, s, nbat) + gt(att_dt, sq, s, d_h, nbat)
                          + 11.0 * scores / hw.hbm_bw),
        "logits": (gt(att_dt, tokens, vt, h) + gt(att_dt, tokens, h, vt) + gt(att_dt, vt, h, tokens)
                   + 16.0 * tokens * vt / hw.hbm_bw),
    }


def core(workload: TrainingWorkload, hw: Hardware, profile: DeviceProfile, dtype: str,
         a: Mapping[str, np.ndarray], which: str = "value", memory_only: bool = False,
         stack: Stack = NEUTRAL) -> dict[str, np.ndarray]:
    """Evaluate plans given as arrays (keys PLAN_FIELDS; recompute as codes 0/1/2).

    One accounting of time: iteration = m * T_stage + bubble + DP exposed + ZeRO-3 exposed +
    optimizer + embedding sync, and T_stage = the busiest stage's compute + TP + EP + CP
    communication + pipeline sends for one micro-batch; the breakdown keys below are exactly
    these parts (they sum to `iteration_time_s`)."""
    m_ = workload.model
    B = float(workload.global_batch_seqs)
    s, h = float(m_.seq_len), float(m_.hidden)
    tp, pp, dp = (np.asarray(a[k], dtype=float) for k in ("tp", "pp", "dp"))
    b, v, ep = (np.asarray(a[k], dtype=float) for k in ("micro_batch", "interleave", "ep"))
    cp = np.asarray(a.get("cp", np.ones_like(tp)), dtype=float)
    cp_a2a = np.asarray(a.get("cp_a2a", np.zeros(tp.shape, dtype=bool)), dtype=bool) & (cp > 1)
    reshard = np.asarray(a.get("reshard_after_forward", np.ones(tp.shape, dtype=bool)), dtype=bool)
    rc = np.asarray(a["recompute"])
    sp = np.asarray(a["sequence_parallel"], dtype=bool) & (tp > 1)
    tp_overlap = np.asarray(a.get("tp_overlap", np.zeros(tp.shape, dtype=bool)), dtype=bool) & sp
    zero = np.asarray(a["zero_stage"])
    overlap = np.asarray(a["dp_overlap"], dtype=bool)
    if not stack.dp_overlap_with_pp:  # DeepSpeed's pipeline engine reduces after the schedule (stacks.toml)
        overlap = overlap & (pp == 1)
    flash = np.asarray(a["flash_attention"], dtype=bool)
    lora = workload.lora_rank > 0
    n_mb = B / (dp * b)
    lps = np.ceil(m_.layers / (pp * v)) * v  # layers on the busiest stage (uneven splits allowed)
    lps_mean = m_.layers / pp
    tokens = b * s / cp  # tokens of one micro-batch on one GPU (context parallelism splits them)
    dpc = dp * cp  # gradients and ZeRO shards span data- and context-parallel ranks
    grb = stack.grad_reduce_bytes
    # fp8 training (Transformer Engine and its ROCm port), and NVFP4 the same way: low-precision
    # GEMMs for the linear layers only; attention, logits and the adapters stay 16-bit.
    low_precision = dtype in LOW_PRECISION_DTYPES

    # ---- memory ----
    p_gpu, p_exp = _params_per_gpu(m_, tp, pp, ep, lps)
    if lora:
        # Frozen base weights (sharded only under ZeRO-3), adapters with full AdamW state. Nothing
        # updates the base, so under fp8 training it is kept only as fp8 (1 byte: Transformer
        # Engine fp8_model_init, NeMo fp8_params, as the MLPerf v5.0 LoRA configs set); 16-bit else.
        p_ad = _lora_adapter_params(workload, float(workload.lora_rank), tp, lps)
        wb = 1.0 if low_precision else memory.WEIGHT_BYTES
        w = p_gpu * wb / np.where((zero >= 3) & reshard, dpc, 1.0)
        g_, o_ = p_ad * memory.GRAD_BYTES, p_ad * memory.OPTIMIZER_BYTES / np.where(zero >= 1, dpc, 1.0)
        w = w + p_ad * memory.WEIGHT_BYTES
    else:
        p_ad = 0.0 * tp
        w, g_, o_ = memory.state_bytes(p_gpu, dpc, zero, stack.grad_buffer_bytes)
        if stack.pipeline_16bit_grads and dtype == "bf16":
            # DeepSpeed's bf16 optimizer under the pipeline engine keeps the 16-bit .grad tensors
            # beside its fp32 gradient buffers (pipe/engine.py update_hp_grads(clear_lp_grads=False)).
            g_ = g_ + np.where((pp > 1) & (zero < 2), p_gpu * memory.GRAD_BYTES, 0.0)
        # FSDP without resharding keeps the whole stage's weights between forward and backward.
        w = np.where((zero >= 3) & ~reshard, p_gpu * memory.WEIGHT_BYTES, w)
    # Partial recomputation (Megatron --recompute-method block --recompute-num-layers N): with
    # recompute "full" and recompute_layers N > 0, N layers of each stage recompute and the rest
    # store everything; frac = the recomputed share of the stage's layers.
    rl = np.asarray(a.get("recompute_layers", np.zeros(tp.shape)), dtype=float)
    n_rc = np.where(rc == 2, np.where(rl > 0, np.minimum(rl, lps), lps), 0.0)
    frac = n_rc / lps
    act_rc, act_whole = memory.activation_bytes_and_whole(m_, b, tp, sp, rc, flash)
    act_rc, act_whole = act_rc / cp, act_whole / cp
    # Full recompute with the checkpointed layer inputs split over the TP ranks (Megatron
    # --distribute-saved-activations, OPT-175B's setting): 2sbh/t stored without SP too; the
    # recompute all-gathers the input back (counted below).
    dist = np.asarray(a.get("distribute_checkpoints", np.zeros(tp.shape, dtype=bool)), dtype=bool) & (rc == 2) & ~sp
    if np.any(dist):
        act_rc = np.where(dist, act_rc / tp, act_rc)
    # LoRA on the attention only: the frozen FFN stores no GEMM inputs (no weight gradient).
    frozen_ffn = (memory.frozen_ffn_input_bytes(m_, b, tp, sp) / cp
                  if lora and workload.lora_targets == "attention" else 0.0 * tp)
    act_rc = np.where(rc == 2, act_rc, act_rc - frozen_ffn)
    full_rc = rc == 2
    if np.any(full_rc):
        act_keep = act_whole - frozen_ffn
        act_layer = np.where(full_rc, frac * act_rc + (1.0 - frac) * act_keep, act_rc)
        # Checkpointing holds the stored inputs plus the whole of the one segment being recomputed
        # (Chen et al. 2016, arXiv 1604.06174, sec. 3): a layer's full activations, less its
        # already stored input, exist during its recomputed forward and backward. With block-partial
        # recompute the backward reaches the recomputed layers (the first N) after freeing the
        # stored layers' activations, so only whole-stage recompute adds it; the loss's logits are
        # freed before the layers' backward, so the two never coincide.
        rc_working = np.where(full_rc & (n_rc >= lps), act_keep - act_rc, 0.0)
    else:
        act_layer, rc_working = act_rc, 0.0 * tp
    logits_mem = memory.logits_bytes(m_, b, tp) / cp
    act_first = (lps * act_layer * memory.pipeline_activation_factor(pp, v, n_mb)
                 + np.maximum(np.where(pp == 1, logits_mem, 0.0), rc_working))
    act_last = lps * act_layer + np.maximum(logits_mem, rc_working)
    mem = w + g_ + o_ + np.maximum(act_first, act_last)
    out: dict[str, np.ndarray] = {"memory_bytes": mem, "fits": mem <= hw.capacity_bytes}
    if memory_only:
        return out

    # ---- compute per layer per micro-batch ----
    # The stack's sustained efficiency scales every compute kernel (GEMM, attention), and so does
    # the clock a GPU power limit leaves (planner/power.py); memory-bound kernels keep the HBM rate.
    eff = float(stack.efficiency) * hw.clock_factor

    # Kernel times depend only on the micro-batch's shape (b, tp, cp, ep): a search's thousands of
    # plans share a few dozen shapes, so each shape is timed once.
    kt = _per_shape(lambda i: _kernel_times(workload, hw, profile, dtype, which, eff, b[i], tp[i], cp[i], ep[i]),
                    b, tp, cp, ep)
    t_gemm_f, t_gemm_b, t_cast_f, t_cast_b, t_ad = (kt[k] for k in ("gemm_f", "gemm_b", "cast_f", "cast_b", "ad"))
    t_att_f = np.where(flash, kt["att_flash_f"], kt["att_unfused_f"])
    t_att_b = np.where(flash, kt["att_flash_b"], kt["att_unfused_b"])
    t_logits = kt["logits"]
    ovh = profile.kernel_overhead_s()
    d_h = float(m_.head_dim)
    act_mult = (3.0 if m_.gated_ffn else 2.0) * 2.0  # bytes/token/f: read+write
    elem_bytes = ELEMENTWISE_BYTES_PER_H * tokens * h / np.where(sp, tp, 1.0) + act_mult * tokens * m_.active_ffn_width() / tp
    # Each of these kernels (ELEMENTWISE_KERNELS_FWD in the forward, twice as many backward) also pays
    # the launch-and-tail time every GEMM pays in gemm_time_s: it sets the floor when a GPU's share
    # of a micro-batch is small (a few thousand tokens on a Blackwell GPU).
    t_elem = elem_bytes / hw.hbm_bw + ELEMENTWISE_KERNELS_FWD * ovh
    # Context parallelism's own memory work in the ring ("p2p", Transformer Engine context_parallel.py
    # AttnFuncWithCPAndKVP2P): each of the cp steps writes a partial output and merges it into the
    # running one by its softmax statistics (read the partial, read and write the output: 6 bytes per
    # 16-bit element), and the backward accumulates each step's dQ and dK/dV the same way; with the
    # causal load balancing a step covers 3/4 of the rank's queries on average. Two merge kernels per
    # step each way, at the kernel floor. The all-to-all form ("a2a") runs one attention over the
    # whole sequence for its share of the heads: no partials to merge.
    q_w = m_.heads * d_h / tp
    kv_w = 2.0 * m_.kv_heads * d_h / np.minimum(tp, float(m_.kv_heads))
    ring_cp = (cp > 1) & ~cp_a2a
    t_cpx_f = np.where(ring_cp, tokens * q_w * cp_merge_bytes_fwd(cp) / hw.hbm_bw + 2.0 * cp * ovh, 0.0)
    t_cpx_b = np.where(ring_cp, tokens * (q_w + kv_w) * cp_merge_bytes_bwd(cp) / hw.hbm_bw + 2.0 * cp * ovh, 0.0)
    fwd = t_gemm_f + t_att_f + t_elem + t_cast_f + t_ad + t_cpx_f
    bwd = t_gemm_b + t_att_b + 2.0 * t_elem + t_cast_b + 2.0 * t_ad + t_cpx_b
    recomp = np.where(rc == 2, frac * fwd, np.where(rc == 1, t_att_f, 0.0))

    # ---- tensor-, context- and expert-parallel communication per layer per micro-batch ----
    gpn = hw.gpus_per_node
    loc, nod = comm.group_layout(tp, 1.0, gpn)
    act_bytes = tokens * h * 2.0
    ar = comm.hierarchical_allreduce_time(act_bytes, loc, nod, hw.bw_intra, hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    ag = comm.hierarchical_allgather_time(act_bytes, loc, nod, hw.bw_intra, hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    n_ar = 4.0 + 2.0 * frac  # forward 2, backward 2, recomputed forward 2
    tp_comm = np.where(sp, n_ar * 2.0 * ag, n_ar * ar) + np.where(dist, frac * ag, 0.0)
    # TP overlap (Transformer Engine userbuffers, split-pipelined): each all-gather/reduce-scatter
    # is cut into tp chunks, chunk i's transfer runs beside chunk i-1's GEMM, so the first chunk
    # shows and the rest only where the layer's GEMMs (forward, recomputed forward, backward)
    # are shorter than it.
    gemm_all = t_gemm_f * (1.0 + frac) + t_gemm_b
    tp_comm = np.where(tp_overlap, tp_comm / tp + np.maximum(tp_comm * (tp - 1.0) / tp - gemm_all, 0.0), tp_comm)
    # Context parallelism: K and V chunks pass round a ring of cp ranks (cp - 1 steps forward,
    # twice that backward for dK, dV), overlapped with the attention blocks; only the excess shows.
    cp_intra = tp * cp <= gpn
    bw_cp = capped_bw(hw.bw_intra, hw, stack, "cp")
    kv_bytes = 2.0 * tokens * m_.kv_heads * d_h / np.minimum(tp, float(m_.kv_heads)) * 2.0
    ring = (cp - 1.0) * comm.p2p_time(kv_bytes, np.where(cp_intra, bw_cp, hw.bw_inter),
                                      np.where(cp_intra, hw.alpha_intra, hw.alpha_inter))
    cp_f = np.maximum(ring - t_att_f, 0.0)
    cp_comm = np.where(cp > 1, cp_f * (1.0 + frac) + np.maximum(2.0 * ring - t_att_b, 0.0), 0.0)
    # All-to-all (Ulysses): Q, K, V to head-split layout before attention and the output back, the
    # same volumes again for their gradients; each rank keeps 1/cp and sends the rest, on the critical path.
    if np.any(cp_a2a):  # (the search leaves it off unless pinned: skip the arrays then)
        a2a_bytes = tokens * (2.0 * q_w + kv_w) * 2.0 * (cp - 1.0) / cp
        a2a_one = comm.p2p_time(a2a_bytes, np.where(cp_intra, bw_cp, hw.bw_inter),
                                (cp - 1.0) * np.where(cp_intra, hw.alpha_intra, hw.alpha_inter))
        cp_comm = np.where(cp_a2a, a2a_one * (2.0 + frac), cp_comm)
    if m_.moe:
        eloc, enod = comm.group_layout(ep, tp, gpn)
        a2a_bytes = tokens * m_.routed_per_layer * h * 2.0 / np.where(sp, tp, 1.0)
        # a deduplicating dispatcher (DeepEP, HybridEP) sends a token once to each other node its
        # experts sit on and forwards it there over the scale-up links; built for group-limited
        # gating (DeepSeek-V3), so taken only for a model that routes that way
        dedup = None
        if stack.ep_node_dedup and m_.group_topk:
            per_node = np.vectorize(m_.offnode_destinations)(enod)
            dedup = tokens * m_.moe_layer_fraction * per_node * h * 2.0 / np.where(sp, tp, 1.0)
        a2a = comm.alltoall_time(a2a_bytes, eloc, enod, hw.bw_intra, hw.bw_inter, hw.alpha_intra, hw.alpha_inter, dedup)
        ep_comm = (4.0 + 2.0 * frac) * a2a
        # Combined 1F1B (Megatron-Core combined_1f1b.py) / DualPipe: the forward of one micro-batch
        # and the backward of another run as one unit, each one's all-to-alls beside the other's
        # compute; there must be a second micro-batch in flight, and what the compute cannot cover shows.
        ep_ov = np.asarray(a.get("ep_overlap", np.zeros(tp.shape, dtype=bool)), dtype=bool) & (n_mb >= 2)
        ep_comm = np.where(ep_ov, np.maximum(ep_comm - (fwd + bwd + recomp), 0.0), ep_comm)
    else:
        ep_comm = 0.0 * tp
    layer_compute = fwd + bwd + recomp
    layer_t = layer_compute + tp_comm + ep_comm + cp_comm

    # ---- pipeline: 1F1B, m micro-batches at the busiest stage's pace plus the bubble ----
    pp_intra = tp * cp * dp * pp <= gpn
    p2p_bw = np.where(pp_intra, capped_bw(hw.bw_intra, hw, stack, "pp"), hw.bw_inter)
    p2p_alpha = np.where(pp_intra, hw.alpha_intra, hw.alpha_inter)
    p2p = np.where(pp > 1, 2.0 * v * comm.p2p_time(act_bytes / tp, p2p_bw, p2p_alpha), 0.0)
    t_max = lps * layer_t + t_logits + p2p
    t_mean = lps_mean * layer_t + t_logits / pp + p2p
    bubble = (pp - 1.0) / v * t_mean

    # ---- data parallel (ZeRO 0-2), ZeRO-3, optimizer, embedding sync ----
    dloc, dnod = comm.group_layout(dpc, tp, gpn)
    dense = np.where(lora, p_ad, p_gpu - p_exp)
    grad_b = dense * grb
    args = (dloc, dnod, hw.bw_intra, hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    t_ar = comm.hierarchical_allreduce_time(grad_b, *args)
    t_rs = comm.hierarchical_allgather_time(grad_b, *args)
    # Weight all-gather bytes: the fp8 copy (1 byte) when the run gathers fp8 parameters under
    # fp8/fp4 training (stack.fp8_param_gather); adapters and 16-bit training move 16-bit weights.
    # (Memory still counts 16-bit weights: the fp8 copy's saving is not modelled.)
    gather_bytes = 1.0 if (stack.fp8_param_gather and low_precision and not lora) else memory.WEIGHT_BYTES
    t_ag_w = comm.hierarchical_allgather_time(dense * gather_bytes, *args)
    t_z1 = t_rs + t_ag_w
    # ZeRO-2 cannot accumulate whole gradients: it reduce-scatters after every micro-batch.
    t_dp = np.where(zero == 2, n_mb * t_rs + t_ag_w, np.where(zero >= 1, t_z1, t_ar))
    if stack.pipeline_16bit_grads and dtype == "bf16" and not lora:
        # DeepSpeed's bf16 optimizer under the pipeline engine all-reduces its fp32 gradient
        # buffers (pipe/engine.py _bf16_reduce_grads) and all-gathers the updated 16-bit weights.
        t_bf16opt = comm.hierarchical_allreduce_time(dense * 4.0, *args) + t_ag_w
        t_dp = np.where((pp > 1) & (zero == 1), t_bf16opt, t_dp)
    if m_.moe and not lora:
        edp = dpc / ep
        xloc, xnod = comm.group_layout(edp, tp * ep, gpn)
        t_dp = t_dp + comm.hierarchical_allreduce_time(p_exp * grb, xloc, xnod, hw.bw_intra,
                                                       hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    # Overlap hides communication behind at most OVERLAP_EFFICIENCY of the backward compute it
    # runs beside (NCCL kernels take SMs and memory bandwidth; TP collectives, not overlapped,
    # hold the links meanwhile), and slows that compute by OVERLAP_COMPUTE_SLOWDOWN.
    window = OVERLAP_EFFICIENCY * np.where(zero == 2, n_mb, 1.0) * lps * bwd

    def exposed(t: Any, win: Any) -> Any:
        hid = np.minimum(t, win)
        return np.where(overlap, t - hid + OVERLAP_COMPUTE_SLOWDOWN * hid, t)

    dp_z012 = exposed(t_dp, window)
    # ZeRO-3 (FSDP full sharding), per micro-batch and layer: all-gather the layer's 16-bit
    # weights in the forward, again in the backward (unless the weights were not resharded after
    # the forward) and again in a recomputed forward when the stack re-fetches there (DeepSpeed),
    # reduce-scatter its gradients in the backward; each over the DP ranks' NICs. One layer of
    # prefetch: a layer's traffic hides behind OVERLAP_EFFICIENCY of the previous layer's compute;
    # the first gather and the last reduce-scatter of each pass are never hidden.
    w_l = dense / lps
    gather = comm.hierarchical_allgather_time if stack.zero3_node_rings else comm.sharded_allgather_time
    ag_l = gather(w_l * gather_bytes, *args)
    rs_l = gather(w_l * grb, *args)
    regather = (rc == 2) & bool(stack.zero3_regather_on_recompute)
    comm_f = ag_l
    comm_b = ag_l * (np.where(reshard, 1.0, 0.0) + np.where(regather, frac, 0.0)) + rs_l
    # Contention: while a layer's collectives stream (at the NIC-bound rate), the compute beside
    # them runs `sigma` slower. A pass of traffic G beside a compute window W then takes
    # max(G, W + sigma G): exposed max(G - W, sigma G). Comm-bound (G >= W / (1 - sigma)): the
    # traffic sets the pace and all compute hides; balanced: sigma G shows.
    sigma = OVERLAP_COMPUTE_SLOWDOWN if stack.zero3_compute_slowdown is None else float(stack.zero3_compute_slowdown)
    win_f, win_b = hw.zero3_prefetch * fwd, hw.zero3_prefetch * (bwd + recomp)
    hid_f, hid_b = np.minimum(comm_f, win_f), np.minimum(comm_b, win_b)
    z3_overlap = (lps * (np.maximum(comm_f - win_f, sigma * comm_f) + np.maximum(comm_b - win_b, sigma * comm_b))
                  + np.minimum(ag_l, hid_f) + np.minimum(rs_l, hid_b))
    z3 = n_mb * np.where(overlap, z3_overlap, lps * (comm_f + comm_b))
    # ZeRO-3 moves every byte ZeRO-1 moves (the gradient reduce-scatter, the weight gather) and
    # more, with no larger overlap window per byte: never less exposed time than ZeRO-1.
    z1_same = exposed(t_z1, OVERLAP_EFFICIENCY * lps * bwd)
    zero3 = np.where(zero >= 3, np.maximum(z3, z1_same), 0.0)
    dp_exposed = np.where(zero >= 3, 0.0, dp_z012)
    opt_params = np.where(lora, p_ad, p_gpu)
    opt = opt_params / np.where(zero >= 1, dpc, 1.0) * OPTIMIZER_STEP_BYTES / hw.hbm_bw
    if m_.tied_embeddings and not lora:
        emb_b = m_.vocab * h / tp * grb
        emb_sync = np.where(pp > 1, comm.allreduce_time(emb_b, 2.0, hw.bw_inter, hw.alpha_inter), 0.0)
    else:
        emb_sync = 0.0 * tp
    parts = {
        "compute_s": n_mb * (lps * layer_compute + t_logits),
        "tp_comm_s": n_mb * lps * tp_comm,
        "ep_comm_s": n_mb * lps * ep_comm,
        "cp_comm_s": n_mb * lps * cp_comm,
        "p2p_s": n_mb * p2p,
        "bubble_s": bubble,
        "dp_exposed_s": dp_exposed,
        "zero3_exposed_s": zero3,
        "optimizer_s": opt,
        "emb_sync_s": emb_sync,
    }
    it = n_mb * t_max + bubble + dp_exposed + zero3 + opt + emb_sync
    comm_exposed = (parts["tp_comm_s"] + parts["ep_comm_s"] + parts["cp_comm_s"] + parts["p2p_s"]
                    + dp_exposed + zero3 + emb_sync)
    out.update(parts)
    out.update(iteration_time_s=it, pipeline_s=n_mb * t_max + bubble, comm_exposed_s=comm_exposed)
    return out


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
                         ep_overlap=bool(a["ep_overlap"][i]) if "ep_overlap" in a else False)


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------
def goodput_estimate(gpus: int, iteration_s: float | None = None) -> Estimate:
    """Fraction of wall time doing useful training: failures (Llama 3 rate) and checkpoints."""
    vals = []
    for lost, ck in zip(HOURS_LOST_PER_FAILURE, CHECKPOINT_OVERHEAD):
        vals.append(1.0 / (1.0 + gpus * FAILURES_PER_GPU_HOUR * lost + ck))
    return Estimate(vals[1], min(vals), max(vals), "1", (
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
            "hfu": est(self.hfu), "mfu_fp8_peak": est(self.mfu_fp8_peak), "stack": self.stack,
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
    cap = hardware_for(system, profile).capacity_bytes
    lora = workload.lora_rank > 0
    base_notes = profile.describe(dtype) + (
        (f"{dtype} training: {dtype} GEMMs for the linear layers only (cast/scale traffic counted), attention and "
         "logits in bf16, fp32 master weights" if low_precision else f"{dtype} training") + (
            f", LoRA rank {workload.lora_rank} on {workload.lora_targets} linear layers: base weights frozen "
            f"(no weight gradients or optimizer state{', kept in fp8' if low_precision else ''}"
            f"{'; frozen FFN stores no GEMM inputs' if workload.lora_targets == 'attention' else ''})"
            if lora else ", mixed-precision AdamW 16 bytes/param"),
        stack.describe(),
        "model FLOPs count attention over the full s x s matrix (Megatron convention); MFU/HFU against the "
        f"dense {'bf16' if low_precision else dtype} {_peak_basis(profile, 'bf16' if low_precision else dtype)} "
        f"peak {peak / 1e12:.0f} TFLOP/s"
        + (f" ({dtype} peak {peak_fp8 / 1e12:.0f} TFLOP/s: mfu_fp8_peak)" if peak_fp8 else ""),
        f"memory budget {USABLE_MEMORY_FRACTION:.0%} of {profile.spec.hbm_bytes / 1e9:.0f} GB",
    )
    sys_notes = tuple(f"{system.key}.{k} range {lo:.3g}-{hi:.3g}" for k, (lo, hi) in system.ranges.items())
    sys_notes += tuple(n for n in (power.note(system, profile),) if n)
    results = []
    for i in range(n):
        plan = plan_from_arrays(arrays, i)
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
                                                      recompute_share=plan.recompute_share(model.layers)))
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
            hardware_flop_s_per_gpu=hfs, mfu=mfs.scale(1.0 / peak, "1"), hfu=hfs.scale(1.0 / peak, "1"),
            comm_share=Estimate(comm_v[0], min(comm_v), max(comm_v), "1"), breakdown=bd,
            assumptions=tuple(dict.fromkeys(notes + gp.assumptions)), stack=stack.key,
            mfu_fp8_peak=mfs.scale(1.0 / peak_fp8, "1") if peak_fp8 else None,
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
