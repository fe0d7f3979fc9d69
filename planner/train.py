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
(hierarchical, fp32 gradients; ZeRO-1: reduce-scatter + all-gather of the weights; ZeRO-2: a
reduce-scatter per micro-batch), hidden with overlap behind at most OVERLAP_EFFICIENCY (0.7) of
the backward it runs beside, which it slows by OVERLAP_COMPUTE_SLOWDOWN (10%). ZeRO-3 (FSDP full
sharding): per micro-batch and layer, the weights all-gathered in the forward and again in the
backward and the gradients reduce-scattered, each layer's traffic prefetched behind 0.7 of the
previous layer's compute, the first gather and last reduce-scatter of each pass never hidden;
TP collectives are not overlapped and hold the links meanwhile. Then the AdamW step
(memory-bound, 42 bytes per local parameter with clipping and zeroing) and the tied-embedding
all-reduce between the first and last stages. Memory: `memory.py` (Korthikanti et al. 2022
activations, 16 bytes/param AdamW divided by ZeRO stage) against 94% of the device memory.

Bounds: the model is evaluated at the profile's low and high rates and the system's published
bandwidth ranges (every input at its pessimistic, then optimistic, corner); goodput has its own
range (failures from the Llama 3 interruption rate, checkpoint overhead).

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
runs sustain less than the MAMF burst figures). The overlap constants are stated, not fitted:
no listed case uses ZeRO-3, so the ZeRO-3 model is not validated against a published run.
No per-case constant exists anywhere. Other devices use a measured results file
(`DeviceProfile.from_results`) or the datasheet x stated defaults.
Limits: context parallelism, FP8, offloading, zero-bubble schedules and uneven expert routing are
not modelled; TP collectives are taken as not overlapped with compute; the memory model lacks
Llama 3's deallocation tricks (its 8K plan without recomputation shows as over memory).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from recoque.errors import BadInput
from recoque.estimate import Estimate
from recoque.planner import comm, flops, memory
from recoque.planner.execution import RECOMPUTE, RECOMPUTE_CODE, ExecutionPlan
from recoque.planner.profile import DeviceProfile
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
ELEMENTWISE_BYTES_PER_H = 22.0  # 2 LayerNorms (4h each), 2 bias-dropout-residual (7h each), per token
# Failures: Llama 3 (arXiv 2407.21783 sec. 3.3.4) saw 419 unexpected interruptions in 54 days on
# 16,384 GPUs = 1.97e-5 per GPU-hour; each costs the restart plus work since the last checkpoint.
FAILURES_PER_GPU_HOUR = 419 / (54 * 24 * 16384)
HOURS_LOST_PER_FAILURE = (0.1, 0.25, 0.5)  # low, central, high
CHECKPOINT_OVERHEAD = (0.005, 0.01, 0.03)

PLAN_FIELDS = ("tp", "pp", "dp", "micro_batch", "interleave", "recompute", "sequence_parallel",
               "zero_stage", "dp_overlap", "flash_attention", "ep")


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


def hardware_for(system: Any, profile: DeviceProfile, which: str = "value") -> Hardware:
    def pick(attr: str, best_is_high: bool = True) -> float:
        v = float(getattr(system, attr))
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
        bw_inter=pick("inter_node_bandwidth_bytes_s") * profile.inter_link_efficiency.get(which),
        alpha_intra=pick("intra_node_latency_s", False), alpha_inter=pick("inter_node_latency_s", False),
        hbm_bw=profile.memory_bandwidth_bytes_s(which), capacity_bytes=cap * USABLE_MEMORY_FRACTION,
    )


def _params_per_gpu(model: Any, tp: Any, pp: Any, ep: Any, lps: Any) -> tuple[Any, Any]:
    """(parameters on the most loaded stage of `lps` layers, of which expert parameters), per GPU."""
    dense_layer = model.attention_params_per_layer() + model.norm_params_per_layer() + model.router_params_per_layer()
    expert = model.experts * model.expert_params() if model.moe else model.expert_params()
    emb = np.where(pp == 1, float(model.embedding_params()),
                   float(model.vocab * model.hidden + (model.seq_len * model.hidden if model.learned_positions else 0)))
    exp_pg = lps * expert / (tp * (ep if model.moe else 1))
    dense_pg = lps * dense_layer / tp + emb / tp
    return dense_pg + exp_pg, (exp_pg if model.moe else 0.0 * exp_pg)


def core(workload: TrainingWorkload, hw: Hardware, profile: DeviceProfile, dtype: str,
         a: Mapping[str, np.ndarray], which: str = "value", memory_only: bool = False) -> dict[str, np.ndarray]:
    """Evaluate plans given as arrays (keys PLAN_FIELDS; recompute as codes 0/1/2)."""
    m_ = workload.model
    B = float(workload.global_batch_seqs)
    s, h = float(m_.seq_len), float(m_.hidden)
    tp, pp, dp = (np.asarray(a[k], dtype=float) for k in ("tp", "pp", "dp"))
    b, v, ep = (np.asarray(a[k], dtype=float) for k in ("micro_batch", "interleave", "ep"))
    rc = np.asarray(a["recompute"])
    sp = np.asarray(a["sequence_parallel"], dtype=bool) & (tp > 1)
    zero = np.asarray(a["zero_stage"])
    overlap = np.asarray(a["dp_overlap"], dtype=bool)
    flash = np.asarray(a["flash_attention"], dtype=bool)
    n_mb = B / (dp * b)
    lps = np.ceil(m_.layers / (pp * v)) * v  # layers on the busiest stage (uneven splits allowed)
    lps_mean = m_.layers / pp
    tokens = b * s

    # ---- memory ----
    p_gpu, p_exp = _params_per_gpu(m_, tp, pp, ep, lps)
    w, g, o = memory.state_bytes(p_gpu, dp, zero)
    act_layer = memory.activation_bytes_per_layer(m_, b, tp, sp, rc, flash)
    logits_mem = memory.logits_bytes(m_, b, tp)
    act_first = lps * act_layer * memory.pipeline_activation_factor(pp, v, n_mb) + np.where(pp == 1, logits_mem, 0.0)
    act_last = lps * act_layer + logits_mem
    mem = w + g + o + np.maximum(act_first, act_last)
    out: dict[str, np.ndarray] = {"memory_bytes": mem, "fits": mem <= hw.capacity_bytes}
    if memory_only:
        return out

    # ---- compute per layer per micro-batch ----
    # GEMMs at the profile's shape-aware rate: forward (m, n, k), backward data gradient
    # (m, k, n) and weight gradient (k, n, m), each its own wave quantisation and roofline.
    gt = profile.gemm_time_s
    t_gemm_f = t_gemm_b = 0.0
    for mm, nn, kk, count in flops.layer_gemm_shapes_fwd(m_, tokens, tp, ep):
        t_gemm_f = t_gemm_f + count * gt(dtype, mm, nn, kk, which)
        t_gemm_b = t_gemm_b + count * (gt(dtype, mm, kk, nn, which) + gt(dtype, kk, nn, mm, which))
    att = flops.attention_core_flops_fwd(m_, b, tp)
    # Fused (flash) attention: the measured attention curve. Unfused (Megatron before flash):
    # batched GEMMs per head (Q K^T: s x s x d, P V: s x d x s; backward dQ, dK, dV: s x d x s and
    # dP: s x s x d) at the GEMM model, plus the softmax and dropout over the a x s x s scores at
    # memory bandwidth: forward reads/writes 9 bytes per score (softmax 2+2, dropout 2+2 and a
    # 1-byte mask), backward 11.
    d_h = float(m_.head_dim)
    nbat = b * m_.heads / tp
    bmm_f = gt(dtype, s, s, d_h, which, nbat) + gt(dtype, s, d_h, s, which, nbat)
    bmm_b = 3.0 * gt(dtype, s, d_h, s, which, nbat) + gt(dtype, s, s, d_h, which, nbat)
    scores = b * s * s * m_.heads / tp
    unf_f = bmm_f + 9.0 * scores / hw.hbm_bw
    unf_b = bmm_b + 11.0 * scores / hw.hbm_bw
    t_att_f = np.where(flash, att / profile.attention_curve(dtype, "fwd").at(att, which), unf_f)
    t_att_b = np.where(flash, 2.0 * att / profile.attention_curve(dtype, "bwd").at(att, which), unf_b)
    act_mult = (3.0 if m_.gated_ffn else 2.0) * 2.0 * m_.active_experts  # bytes/token/f: read+write
    elem_bytes = ELEMENTWISE_BYTES_PER_H * tokens * h / np.where(sp, tp, 1.0) + act_mult * tokens * m_.ffn_hidden / tp
    t_elem = elem_bytes / hw.hbm_bw
    fwd = t_gemm_f + t_att_f + t_elem
    bwd = t_gemm_b + t_att_b + 2.0 * t_elem
    recomp = np.where(rc == 2, fwd, np.where(rc == 1, t_att_f, 0.0))

    # ---- tensor-parallel and expert communication per layer per micro-batch ----
    gpn = hw.gpus_per_node
    loc, nod = comm.group_layout(tp, 1.0, gpn)
    act_bytes = tokens * h * 2.0
    ar = comm.hierarchical_allreduce_time(act_bytes, loc, nod, hw.bw_intra, hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    ag = comm.hierarchical_allgather_time(act_bytes, loc, nod, hw.bw_intra, hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    n_ar = np.where(rc == 2, 6.0, 4.0)  # forward 2, backward 2, recomputed forward 2
    tp_comm = np.where(sp, n_ar * 2.0 * ag, n_ar * ar)
    if m_.moe:
        eloc, enod = comm.group_layout(ep, tp, gpn)
        a2a_bytes = tokens * m_.active_experts * h * 2.0 / np.where(sp, tp, 1.0)
        a2a = comm.hierarchical_allgather_time(a2a_bytes, eloc, enod, hw.bw_intra, hw.bw_inter,
                                               hw.alpha_intra, hw.alpha_inter)
        ep_comm = np.where(rc == 2, 6.0, 4.0) * a2a
    else:
        ep_comm = 0.0 * tp
    layer_t = fwd + bwd + recomp + tp_comm + ep_comm

    # ---- pipeline ----
    vt = m_.vocab / tp
    t_logits = (gt(dtype, tokens, vt, h, which) + gt(dtype, tokens, h, vt, which) + gt(dtype, vt, h, tokens, which)
                + 16.0 * tokens * vt / hw.hbm_bw)
    pp_intra = tp * dp * pp <= gpn
    p2p_bw = np.where(pp_intra, hw.bw_intra, hw.bw_inter)
    p2p_alpha = np.where(pp_intra, hw.alpha_intra, hw.alpha_inter)
    p2p = np.where(pp > 1, 2.0 * v * comm.p2p_time(act_bytes / tp, p2p_bw, p2p_alpha), 0.0)
    t_max = lps * layer_t + t_logits + p2p
    t_mean = lps_mean * layer_t + t_logits / pp + p2p
    pipe = n_mb * t_max + (pp - 1.0) / v * t_mean
    bubble = (pp - 1.0) / v * t_mean

    # ---- data parallel, optimizer, embedding sync ----
    dloc, dnod = comm.group_layout(dp, tp, gpn)
    dense = p_gpu - p_exp
    grad_b = dense * GRAD_REDUCE_BYTES
    args = (dloc, dnod, hw.bw_intra, hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    t_ar = comm.hierarchical_allreduce_time(grad_b, *args)
    t_rs_ag = (comm.hierarchical_allgather_time(grad_b, *args)
               + comm.hierarchical_allgather_time(dense * memory.WEIGHT_BYTES, *args))
    # ZeRO-2 cannot accumulate whole gradients: it reduce-scatters after every micro-batch.
    # (ZeRO-3's per-micro-batch traffic is counted layer by layer below.)
    t_rs_mb = comm.hierarchical_allgather_time(grad_b, *args)
    t_dp = np.where(zero == 2, n_mb * t_rs_mb + (t_rs_ag - t_rs_mb),
                    np.where(zero >= 3, 0.0 * t_ar, np.where(zero >= 1, t_rs_ag, t_ar)))
    if m_.moe:
        edp = dp / ep
        xloc, xnod = comm.group_layout(edp, tp * ep, gpn)
        t_dp = t_dp + comm.hierarchical_allreduce_time(p_exp * GRAD_REDUCE_BYTES, xloc, xnod, hw.bw_intra,
                                                       hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    # Overlap hides communication behind at most OVERLAP_EFFICIENCY of the backward compute it
    # runs beside (NCCL kernels take SMs and memory bandwidth; TP collectives, not overlapped,
    # hold the links meanwhile), and slows that compute by OVERLAP_COMPUTE_SLOWDOWN.
    window = OVERLAP_EFFICIENCY * np.where(zero == 2, n_mb, 1.0) * lps * bwd
    hidden = np.minimum(t_dp, window)
    dp_exposed = np.where(overlap, t_dp - hidden + OVERLAP_COMPUTE_SLOWDOWN * hidden, t_dp)
    # ZeRO-3 (FSDP full sharding), per micro-batch and layer: all-gather the layer's weights in
    # the forward, again in the backward, reduce-scatter its gradients in the backward. With
    # overlap each layer's traffic is prefetched behind the previous layer's compute (window
    # OVERLAP_EFFICIENCY of it); the first layer's gather and the last reduce-scatter of each
    # pass are never hidden. Without overlap everything is exposed.
    p_layer = (p_gpu - p_exp) / lps
    ag_l = comm.hierarchical_allgather_time(p_layer * memory.WEIGHT_BYTES, *args)
    rs_l = comm.hierarchical_allgather_time(p_layer * GRAD_REDUCE_BYTES, *args)
    comm_f, comm_b = ag_l, ag_l + rs_l
    win_f, win_b = OVERLAP_EFFICIENCY * fwd, OVERLAP_EFFICIENCY * (bwd + recomp)
    hid_f, hid_b = np.minimum(comm_f, win_f), np.minimum(comm_b, win_b)
    z3_overlap = (lps * (comm_f - hid_f + comm_b - hid_b + OVERLAP_COMPUTE_SLOWDOWN * (hid_f + hid_b))
                  + np.minimum(ag_l, hid_f) + np.minimum(rs_l, hid_b))
    z3 = np.where(overlap, z3_overlap, lps * (comm_f + comm_b))
    zero3 = np.where(zero >= 3, n_mb * z3, 0.0)
    opt = p_gpu / np.where(zero >= 1, dp, 1.0) * OPTIMIZER_STEP_BYTES / hw.hbm_bw
    if m_.tied_embeddings:
        emb_b = m_.vocab * h / tp * GRAD_REDUCE_BYTES
        emb_sync = np.where(pp > 1, comm.allreduce_time(emb_b, 2.0, hw.bw_inter, hw.alpha_inter), 0.0)
    else:
        emb_sync = 0.0 * tp
    it = pipe + dp_exposed + zero3 + opt + emb_sync
    comm_exposed = (n_mb + (pp - 1.0) / v) * (lps * (tp_comm + ep_comm) + p2p) + dp_exposed + zero3 + emb_sync
    out.update(iteration_time_s=it, pipeline_s=pipe, bubble_s=bubble, dp_exposed_s=dp_exposed + zero3,
               optimizer_s=opt, comm_exposed_s=comm_exposed,
               tp_comm_s=(n_mb + (pp - 1.0) / v) * lps * tp_comm, p2p_s=(n_mb + (pp - 1.0) / v) * p2p,
               compute_s=(n_mb + (pp - 1.0) / v) * (lps * (fwd + bwd + recomp)) + n_mb * t_logits)
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
    }


def plan_from_arrays(a: Mapping[str, np.ndarray], i: int) -> ExecutionPlan:
    return ExecutionPlan(tp=int(a["tp"][i]), pp=int(a["pp"][i]), dp=int(a["dp"][i]),
                         micro_batch=int(a["micro_batch"][i]), interleave=int(a["interleave"][i]),
                         recompute=RECOMPUTE[int(a["recompute"][i])],
                         sequence_parallel=bool(a["sequence_parallel"][i]) and int(a["tp"][i]) > 1,
                         zero_stage=int(a["zero_stage"][i]), dp_overlap=bool(a["dp_overlap"][i]),
                         flash_attention=bool(a["flash_attention"][i]), ep=int(a["ep"][i]))


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
            "hfu": est(self.hfu), "comm_share": est(self.comm_share), "breakdown_s": dict(self.breakdown),
            "assumptions": list(self.assumptions),
        }


def _corners(workload: TrainingWorkload, system: Any, profile: DeviceProfile, dtype: str,
             arrays: Mapping[str, np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    out = {}
    for which in ("value", "low", "high"):
        prof = profile.bound(which)
        out[which] = core(workload, hardware_for(system, profile, which), prof, dtype, arrays, which="value")
    return out


def results_from_arrays(workload: TrainingWorkload, system: Any, profile: DeviceProfile, dtype: str,
                        arrays: Mapping[str, np.ndarray], goodput: Estimate | None = None) -> list[PlanResult]:
    """Full PlanResults (with bounds) for every plan in the arrays."""
    corners = _corners(workload, system, profile, dtype, arrays)
    model = workload.model
    n = len(np.asarray(arrays["tp"]))
    peak = profile.peak_flop_s(dtype)
    cap = hardware_for(system, profile).capacity_bytes
    base_notes = profile.describe(dtype) + (
        f"{dtype} training, mixed-precision AdamW 16 bytes/param, gradients reduced in fp32",
        "model FLOPs count attention over the full s x s matrix (Megatron convention); MFU/HFU against the "
        f"dense {dtype} datasheet peak {peak / 1e12:.0f} TFLOP/s",
        f"memory budget {USABLE_MEMORY_FRACTION:.0%} of {profile.spec.hbm_bytes / 1e9:.0f} GB",
    )
    sys_notes = tuple(f"{system.key}.{k} range {lo:.3g}-{hi:.3g}" for k, (lo, hi) in system.ranges.items())
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
        notes = base_notes + sys_notes
        t_it = Estimate(it[0], min(it), max(it), "s", notes)
        tok = workload.tokens_per_iteration
        mf = float(flops.model_flops_per_iteration(model, workload.global_batch_seqs))
        hf = float(flops.hardware_flops_per_iteration(model, workload.global_batch_seqs, plan.recompute))
        tps = t_it.map(lambda x: tok / x, "tokens/s")
        ttt = t_it.map(lambda x: workload.iterations * x, "s")
        wall = Estimate(ttt.value / gp.value, ttt.low / gp.high, ttt.high / gp.low, "s", ttt.assumptions + gp.assumptions)
        mfs = t_it.map(lambda x: mf / x / gpus, "flop/s")
        hfs = t_it.map(lambda x: hf / x / gpus, "flop/s")
        comm_v = [float(corners[c]["comm_exposed_s"][i] / corners[c]["iteration_time_s"][i]) for c in ("value", "low", "high")]
        bd = {k: float(corners["value"][k][i]) for k in ("compute_s", "tp_comm_s", "p2p_s", "bubble_s",
                                                          "dp_exposed_s", "optimizer_s", "iteration_time_s")}
        results.append(PlanResult(
            workload=model.key or model.name, system=system.key, gpus=gpus, plan=plan, fits=fits, why=why,
            memory_per_gpu=mem, memory_capacity_bytes=cap, iteration_time=t_it, tokens_per_s=tps,
            time_to_train=ttt, time_to_train_wall=wall, goodput=gp, model_flop_s_per_gpu=mfs,
            hardware_flop_s_per_gpu=hfs, mfu=mfs.scale(1.0 / peak, "1"), hfu=hfs.scale(1.0 / peak, "1"),
            comm_share=Estimate(comm_v[0], min(comm_v), max(comm_v), "1"), breakdown=bd,
            assumptions=tuple(dict.fromkeys(notes + gp.assumptions)),
        ))
    return results


def evaluate(workload: TrainingWorkload, system: Any, plan: ExecutionPlan, profile: DeviceProfile,
             dtype: str = "bf16", goodput: Estimate | None = None) -> PlanResult:
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
    return results_from_arrays(workload, system, profile, dtype, plan_arrays([plan]), goodput)[0]


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
