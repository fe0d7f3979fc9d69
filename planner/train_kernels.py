"""Training-model building blocks that do not depend on the plan's phases: the per-corner hardware
numbers (Hardware), the bandwidth a CTA-capped communicator gets, parameters per GPU, LoRA adapter
shapes, and the per-layer kernel times of one micro-batch shape (GEMMs at the profile's
shape-aware rate, fused or unfused attention, logits), each shape timed once (per_shape).
planner/train_core.py composes them into an iteration.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from recoque.errors import BadInput
from recoque.planner import flops
from recoque.planner.profile import LOW_PRECISION_DTYPES, DeviceProfile
from recoque.planner.stacks import Stack
from recoque.planner.workload import TrainingWorkload


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
    # Point to point to one peer over the scale-up links, bytes/s: on a mesh (AMD Infinity Fabric:
    # every peer behind its own link) one link's share of bw_intra; None where switches let one
    # transfer use every link (bw_intra then).
    bw_p2p_intra: float | None = None


def group_bw(hw: Hardware, local: Any) -> Any:
    """The scale-up bandwidth of a collective over `local` GPUs of one node. Through switches, the
    GPU's whole scale-up rate whatever the group. On a mesh each peer sits behind its own link, so a
    group reaches its local - 1 peers' links only: min(bw_intra, (local - 1) x one link) (MI300X: a TP2
    all-reduce rides one 64 GB/s xGMI link of 7, ~48 GB/s usable; seeds/hardware.toml
    scaleup_topology, AMD's xGMI RCCL blog)."""
    if hw.bw_p2p_intra is None:
        return hw.bw_intra
    return np.minimum(hw.bw_intra, np.maximum(np.asarray(local, dtype=float) - 1.0, 1.0) * hw.bw_p2p_intra)


def capped_bw(bw_intra: float, hw: Hardware, stack: Stack, group: str) -> float:
    """The scale-up bandwidth of a point-to-point transfer (context-parallel ring, pipeline send): on a
    mesh, one peer's link (Hardware.bw_p2p_intra); when the run caps its communicator's NCCL CTAs, at
    most CTAs x Hardware.cta_bytes_s (a 1-CTA ring on NVLink5 moves 25 GB/s, not 675). Ring
    collectives (TP, DP) keep the bus bandwidth: NVIDIA's MLPerf v5.1 Llama 3.1 405B NVFP4 run on 512
    GB200 runs its TP collectives through NCCL (no userbuffers) at 8 CTAs in 17.3 s per step, which a
    half-link-per-CTA bound (200 GB/s) would put above 24 s (seeds/train_checks.toml), so the figure
    is not carried over to them."""
    if hw.bw_p2p_intra is not None:
        bw_intra = min(bw_intra, hw.bw_p2p_intra)
    ctas = stack.comm_max_ctas.get(group)
    if ctas is None:
        return bw_intra
    if hw.cta_bytes_s is None:
        raise BadInput(f"the run caps the NCCL CTAs of its {group} communicator, but what one CTA moves is known "
                       "only for NVLink parts whose scale-up links are in the catalog",
                       "add scaleup_links to an NVLink device, or drop nccl_max_ctas")
    return min(bw_intra, ctas * hw.cta_bytes_s)


def params_on_stage(model: Any, tp: Any, pp: Any, ep: Any, lps: Any, etp: Any = None) -> tuple[Any, Any]:
    """(parameters on the most loaded stage of `lps` layers, of which expert parameters), per GPU.
    Each GPU holds experts/ep experts, each split over etp GPUs (default: tp)."""
    dense_layer = model.nonexpert_params_per_layer() - (0.0 if model.moe else model.expert_params())
    expert = model.routed_expert_params_per_layer() if model.moe else model.expert_params()
    exp_pg = lps * expert / ((tp if etp is None or not model.moe else etp) * (ep if model.moe else 1))
    dense_pg = lps * dense_layer / tp + embedding_params_on_stage(model, tp, pp)
    return dense_pg + exp_pg, (exp_pg if model.moe else 0.0 * exp_pg)


def embedding_params_on_stage(model: Any, tp: Any, pp: Any) -> Any:
    """Embedding (and, unpipelined, output-layer) parameters per GPU on the stage that holds the most."""
    emb = np.where(pp == 1, float(model.embedding_params()),
                   float(model.vocab * model.hidden + (model.seq_len * model.hidden if model.learned_positions else 0)))
    return emb / tp


def lora_shapes(workload: TrainingWorkload, tokens: Any, tp: Any, ep: Any, etp: Any = None) -> list[tuple[Any, Any, Any, Any]]:
    """The forward GEMMs that carry adapters: all four, or QKV and the projection (the first two
    of `flops.layer_gemm_shapes_fwd`) when lora_targets is "attention"."""
    if workload.lora_targets == "attention":
        return flops.attention_gemm_shapes_fwd(workload.model, tokens, tp)
    return flops.layer_gemm_shapes_fwd(workload.model, tokens, tp, ep, etp)


def lora_adapter_params(workload: TrainingWorkload, r: float, tp: Any, lps: Any) -> Any:
    """Adapter parameters per GPU: rank r matrices A (k x r) and B (r x n) on each adapted linear layer."""
    tot = 0.0
    for _m, n, k, count in lora_shapes(workload, 1.0, tp, 1.0):
        tot = tot + count * r * (k + n)
    return lps * tot


def per_shape(fn: Callable[[np.ndarray], dict[str, Any]], *cols: np.ndarray) -> dict[str, np.ndarray]:
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


def kernel_times(workload: TrainingWorkload, hw: Hardware, profile: DeviceProfile, dtype: str, which: str,
                 eff: float, b: Any, tp: Any, cp: Any, ep: Any, etp: Any = None) -> dict[str, Any]:
    """Seconds per layer and micro-batch of each kernel group (forward and backward GEMMs, casts,
    adapters, attention fused and unfused) and of the logits, for micro-batches of b sequences."""
    m_ = workload.model
    s, h = float(m_.seq_len), float(m_.hidden)
    tokens = b * s / cp
    # fp8 / NVFP4: only the linear layers' GEMMs run in low precision (planner/train_core.py)
    low_precision = dtype in LOW_PRECISION_DTYPES
    lin_dt, att_dt = dtype, ("bf16" if low_precision else dtype)
    lora = workload.lora_rank > 0

    def gt(dt: str, mm: Any, nn: Any, kk: Any, batch: Any = 1.0) -> Any:
        return profile.gemm_time_s(dt, mm, nn, kk, which, batch) / eff

    # GEMMs at the profile's shape-aware rate: forward (m, n, k), backward data gradient
    # (m, k, n) and weight gradient (k, n, m). LoRA: no weight gradient of the frozen base.
    t_gemm_f = t_gemm_b = t_cast_f = t_cast_b = t_ad = 0.0
    ovh = profile.kernel_overhead_s()
    grouped = profile.has_expert_rates(lin_dt)
    shapes = ([(s, False) for s in flops.attention_gemm_shapes_fwd(m_, tokens, tp)]
              + [(s, True) for s in flops.expert_gemm_shapes_fwd(m_, tokens, tp, ep, etp)]
              + [(s, False) for s in flops.ffn_gemm_shapes_fwd(m_, tokens, tp, ep, etp, routed=False)])
    for (mm, nn, kk, count), routed in shapes:
        fwd, wgrad = gt(lin_dt, mm, nn, kk), 0.0 if lora else gt(lin_dt, kk, nn, mm)
        if grouped and routed:
            # measured grouped expert GEMMs (bench moe): forward and data gradient run the grouped
            # kernel over each expert's rows; the weight gradient, which reduces over those rows,
            # was not measured: the dense model's time x the forward's grouped / dense ratio
            grouped_fwd = profile.expert_gemm_time_s(lin_dt, mm, nn, kk, which) / eff
            dgrad = profile.expert_gemm_time_s(lin_dt, mm, kk, nn, which) / eff
            fwd, wgrad = grouped_fwd, wgrad * grouped_fwd / fwd
        else:
            dgrad = gt(lin_dt, mm, kk, nn)
        t_gemm_f = t_gemm_f + count * fwd
        t_gemm_b = t_gemm_b + count * (dgrad + wgrad)
        if low_precision:
            # Cast/scale: quantise the input (read 2, write 1 byte) in the forward; in the backward
            # the output gradient (3 bytes) and a transposed fp8 copy of the input (2 bytes). NVFP4
            # writes half a byte plus block scales but adds its own transforms (random Hadamard on
            # the weight-gradient inputs): the same traffic is counted (stated, not measured). ROCm
            # TE's MXFP4 Hadamard is no extra pass either: a 16-point transform in registers inside
            # the cast-transpose kernel (ROCm/TransformerEngine @0a91c99, transformer_engine/common/
            # transpose/cast_transpose_mxfp4_shuffled.cu, USE_HADAMARD).
            t_cast_f = t_cast_f + count * (3.0 * mm * kk / hw.hbm_bw + ovh)
            # LoRA: the frozen base has no weight gradient, so neither its input's transposed copy
            # nor that kernel (Transformer Engine casts the input with its transpose only when
            # weight.requires_grad: NVIDIA/TransformerEngine @0004dbd transformer_engine/pytorch/
            # module/linear.py, _Linear.forward fp8_cast_transpose_fused vs cast_to_fp8).
            wgrad = 0.0 if lora else 1.0
            t_cast_b = t_cast_b + count * ((3.0 * mm * nn + wgrad * 2.0 * mm * kk) / hw.hbm_bw + (1.0 + wgrad) * ovh)
    if lora:
        r = float(workload.lora_rank)
        for mm, nn, kk, count in lora_shapes(workload, tokens, tp, ep, etp):
            t_ad = t_ad + count * (gt(att_dt, mm, r, kk) + gt(att_dt, mm, nn, r))
    att = flops.attention_core_flops_fwd(m_, b, tp) / cp
    # one softmax exponential per score, forward and again in the backward (which recomputes P)
    exps = att / m_.attention_flops_per_pair()
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
        "att_flash_f": profile.attention_time_s(att_dt, "fwd", att, exps, which) / eff,
        "att_flash_b": profile.attention_time_s(att_dt, "bwd", 2.0 * att, exps, which, work=att) / eff,
        "att_unfused_f": (gt(att_dt, sq, s, d_h, nbat) + gt(att_dt, sq, d_h, s, nbat) + 9.0 * scores / hw.hbm_bw),
        "att_unfused_b": (3.0 * gt(att_dt, sq, d_h, s, nbat) + gt(att_dt, sq, s, d_h, nbat)
                          + 11.0 * scores / hw.hbm_bw),
        "logits": (gt(att_dt, tokens, vt, h) + gt(att_dt, tokens, h, vt) + gt(att_dt, vt, h, tokens)
                   + 16.0 * tokens * vt / hw.hbm_bw),
    }
