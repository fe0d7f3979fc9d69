"""The training model's vectorised core: every plan in numpy arrays, one evaluation per corner.

The model (one iteration, per GPU, seconds). Per layer and micro-batch: the forward GEMMs
(QKV, projection, FFN in/out, `flops.layer_gemm_shapes_fwd`) each at the profile's shape-aware
rate (`DeviceProfile.gemm_time_s`: plateau efficiency x wave quantisation over the SMs x a
short-k factor, a roofline floor on the bytes, a per-kernel overhead), the backward as its two
GEMMs of their own shapes (data gradient m x k x n, weight gradient k x n x m), the attention
core (fused: the profile's attention rate; unfused: per-head batched GEMMs at the GEMM model plus
softmax/dropout bytes), memory-bound elementwise work (LayerNorm, bias-dropout-residual,
activation: bytes over the memory-bound bandwidth, twice in the backward), the MoE token
permutation around the experts (MOE_PERMUTE_PASSES, once each way), recomputation (full:
the whole forward again; selective: the attention core), tensor-parallel collectives (2
all-reduces forward and 2 backward, or the same volume as all-gather + reduce-scatter with
sequence parallelism, the all-gathers in fp8 under fp8/fp4 training) and expert all-to-alls. A pipeline stage runs L/p layers (+ the logits on
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

core() runs the phases in order: the plan arrays normalised (normalise_plans), parameters and
memory per GPU, per-layer compute (layer_times), the TP, CP and expert communication of a layer,
the pipeline, then the data-parallel and ZeRO-3 traffic, the optimizer step, the once-per-iteration
passes over every parameter a GPU holds (gradient-buffer zeroing, fp8/fp4 weight quantisation:
param_passes_s), the embedding sync; every kernel runs at the pace of the job's slowest GPU (straggler_s).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from recoque.planner import comm, memory, pace
from recoque.planner.execution import expert_tp_size
from recoque.planner.profile import FP4_DTYPES, LOW_PRECISION_DTYPES, DeviceProfile
from recoque.planner.stacks import NEUTRAL, Stack
from recoque.planner.train_kernels import (Hardware, capped_bw, embedding_params_on_stage, group_bw, kernel_times,
                                           lora_adapter_params, params_on_stage, per_shape)
from recoque.planner.workload import TrainingWorkload

# Once per iteration, over every parameter a GPU holds (not its optimizer shard), on the compute
# stream (param_passes_s):
# - the gradient buffer zeroed where the stack's DDP keeps one contiguous buffer (Stack.
#   grad_buffer_zeroed, Megatron: seeds/stacks.toml cites the code): one write in its dtype;
# - under fp8/fp4 training each linear layer's weight quantised on the first micro-batch and cached
#   for the rest (Transformer Engine Linear.forward, is_first_microbatch: 'allows caching of the FP8
#   versions of the weights', NVIDIA/TransformerEngine @3ec8787 transformer_engine/pytorch/module/
#   linear.py): a row-wise copy for the forward GEMM and a column-wise (transposed) one for the data
#   gradient. Bytes per weight: from a 16-bit weight, read 2 and write 1 + 1 (fp8); from an fp8
#   weight the distributed optimizer gathered (fp8_param_gather), the transpose alone, read 1 and write 1
#   (Megatron-Core finish_param_sync -> post_all_gather_processing); fp4 (NVFP4, MXFP4), read 2 and
#   write 0.5 + 0.5 plus one scale byte per 16 elements of each copy (NVFP4's block; MXFP4's 32 is less).
#   A LoRA run's frozen base is left out: AMD's MLPerf LoRA recipes hold it in fp8 (FP8 params,
#   seeds/train_checks.toml), as NVIDIA's v5.0 GB200 one does, and a frozen fp8 weight's copies need no
#   refresh; a recipe that re-quantises a 16-bit frozen base each iteration is faster in the model.
WEIGHT_QUANT_BYTES = {"from_16bit": 4.0, "fp8_gathered": 2.0, "fp4": 3.125}

# AdamW step: read fp32 master, m, v, gradient (16), write master, m, v and the 16-bit copy (14);
# plus the gradient passes around it on the optimizer's shard: norm for clipping, inf/nan check,
# zeroing (4 each). The data-parallel wrapper's own whole-buffer zeroing is param_passes_s's.
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
# ...of which the two dropout masks (1 byte each): not written by a model trained without dropout
# (TransformerSpec.dropout; PyTorch's dropout at p = 0 returns its input).
DROPOUT_MASK_BYTES_PER_H = 2.0
# LoRA input dropout (memory.lora_dropout_bytes) per element and direction: the forward reads the
# 16-bit input and writes the dropped copy and the 1-byte mask; the backward reads the gradient and
# the mask and writes the input's gradient. One kernel per adapter each way.
LORA_DROPOUT_BYTES = 5.0
# Non-GEMM kernels of one layer's forward, each at least the profile's kernel_overhead_s: 2 norms,
# 2 bias-dropout-residual adds, the activation and the rotary embedding (Megatron-Core's layer with
# Transformer Engine's fused kernels); the backward runs one per forward kernel and its gradient
# counterpart, i.e. twice as many (counted by `2.0 * t_elem`). fp8/fp4 casts: one kernel per
# linear-layer input forward, two backward (t_cast_*).
ELEMENTWISE_KERNELS_FWD = 6.0
# MoE token permutation (Megatron-Core transformer/moe/moe_utils.py permute / unpermute, the fused
# forms Transformer Engine's moe_permute / moe_unpermute): before the experts each token is copied
# to its top-k experts' contiguous rows (read and write k x h elements), after them the k rows are
# weighted and summed back into one (read k x h, write h): 3k + 1 elements of h per token, two
# kernels, 16-bit, in the forward and again (the gradients' scatter and gather) in the backward.
# The flex dispatcher (DeepEP / HybridEP, what the Megatron-Bridge MoE recipes run) does no more
# locally; the alltoall dispatcher's two chunk sorts when an EP rank holds several experts
# (sort_chunks_by_idxs) would add 4k and are not counted. The router (a tokens x h x experts GEMM,
# softmax and top-k) is under 1% of the experts' work for every preset and is left out.
MOE_PERMUTE_PASSES = 3.0
MOE_PERMUTE_KERNELS = 2.0
# Expert ops outside a fused grouped MLP (Stack.fused_expert_mlp off), counted from Megatron-Core's
# code, 16-bit elements, not measured (moe_unfused_ops_s):
# - a clamped gated activation (TransformerSpec.glu_clamp, gpt-oss): the two halves of the first
#   projection's output clamped and concatenated again before the fused bias-GLU kernel
#   (megatron/core/fusions/fused_bias_geglu.py: x_glu.clamp(max), x_linear.clamp(-c, c), torch.cat):
#   forward, each of 2 x ffn elements read and written twice (8 bytes, 3 kernels); backward, the
#   clamps' masked gradients (read gradient and input, write: 6) and the concatenation of the two
#   halves' gradients (4): 10 bytes, 3 kernels;
# - expert biases (linear_bias on a MoE model, gpt-oss): the second projection's bias added per
#   local expert, weighted by the routing probability, then concatenated (megatron/core/transformer/
#   moe/experts.py _apply_bias: torch.cat([t + b * p ...])): forward b x p written (2), the sum read
#   and written (6), the cat read and written (4): 12 bytes per hidden element and 2 kernels per
#   local expert plus the cat; backward the bias and probability gradients read the output's
#   gradient twice: 4 bytes, 2 kernels per local expert.
GLU_CLAMP_BYTES = (8.0, 10.0)
GLU_CLAMP_KERNELS = (3.0, 3.0)
EXPERT_BIAS_BYTES = (12.0, 4.0)


def cp_merge_bytes_fwd(cp: Any) -> Any:
    """Forward bytes per (token x query width) of the context-parallel ring's partial outputs: cp - 1
    extra 2-byte writes and cp merges of 6 bytes, each over 3/4 of the queries (see layer_times())."""
    return 0.75 * (2.0 * (cp - 1.0) + 6.0 * cp)


def cp_merge_bytes_bwd(cp: Any) -> Any:
    """Backward bytes per (token x gradient width): cp accumulations of 6 bytes over 3/4 of the rows."""
    return 0.75 * 6.0 * cp


@dataclass(frozen=True)
class Plans:
    """The plan arrays of core() normalised once (keys PLAN_FIELDS; recompute as codes 0/1/2): switches
    that cannot apply are off (sequence parallelism without TP, DP overlap under a pipeline engine
    that reduces after the schedule), and the counts every phase uses are derived here."""

    tp: Any
    pp: Any
    dp: Any
    b: Any          # sequences per micro-batch
    v: Any          # virtual stages per GPU
    ep: Any
    etp: Any        # expert tensor-parallel size (resolved: never 0)
    edp: Any        # expert data-parallel replicas: tp x cp x dp / (etp x ep)
    cp: Any
    cp_a2a: Any
    reshard: Any
    rc: Any         # recompute code: 0 none, 1 selective, 2 full
    sp: Any
    tp_overlap: Any
    zero: Any
    overlap: Any    # DP reduction overlapped with the backward
    flash: Any
    dist: Any       # full-recompute checkpoints distributed over the TP ranks
    ep_overlap: Any
    n_mb: Any       # micro-batches per iteration
    lps: Any        # layers on the busiest stage (uneven splits allowed)
    lps_mean: Any
    tokens: Any     # tokens of one micro-batch on one GPU (context parallelism splits them)
    dpc: Any        # gradients and ZeRO shards span data- and context-parallel ranks
    n_rc: Any       # recomputed layers per stage
    frac: Any       # their share of the stage's layers


def normalise_plans(workload: TrainingWorkload, a: Mapping[str, np.ndarray], stack: Stack) -> Plans:
    m_ = workload.model
    B, s = float(workload.global_batch_seqs), float(m_.seq_len)
    tp, pp, dp = (np.asarray(a[k], dtype=float) for k in ("tp", "pp", "dp"))
    b, v, ep = (np.asarray(a[k], dtype=float) for k in ("micro_batch", "interleave", "ep"))

    def flag(key: str, default: bool) -> np.ndarray:
        return np.asarray(a.get(key, np.full(tp.shape, default, dtype=bool)), dtype=bool)

    cp = np.asarray(a.get("cp", np.ones_like(tp)), dtype=float)
    rc = np.asarray(a["recompute"])
    sp = np.asarray(a["sequence_parallel"], dtype=bool) & (tp > 1)
    overlap = np.asarray(a["dp_overlap"], dtype=bool)
    zero = np.asarray(a["zero_stage"])
    if not stack.dp_overlap_with_pp:  # DeepSpeed's pipeline engine reduces after the schedule (stacks.toml)
        overlap = overlap & (pp == 1)
    if not stack.zero1_overlap:  # DeepSpeed before 0.13 drops overlap_comm at ZeRO stage 1 (stacks.toml)
        overlap = overlap & (zero != 1)
    n_mb = B / (dp * b)
    lps = np.ceil(m_.layers / (pp * v)) * v
    # Partial recomputation (Megatron --recompute-method block --recompute-num-layers N): with
    # recompute "full" and recompute_layers N > 0, N layers of each stage recompute and the rest
    # store everything.
    rl = np.asarray(a.get("recompute_layers", np.zeros(tp.shape)), dtype=float)
    # Each virtual stage is its own TransformerBlock in Megatron-Core, and the block method recomputes
    # the first N layers of each (transformer_block.py _checkpointed_forward over that chunk's layers):
    # N per chunk, v chunks a GPU.
    n_rc = np.where(rc == 2, np.where(rl > 0, np.minimum(rl, lps / v) * v, lps), 0.0)
    etp = np.asarray(expert_tp_size(np.asarray(a.get("etp", np.zeros(tp.shape))), tp, tp * cp * dp, ep), dtype=float)
    return Plans(tp=tp, pp=pp, dp=dp, b=b, v=v, ep=ep, etp=etp, edp=tp * cp * dp / (etp * ep), cp=cp, cp_a2a=flag("cp_a2a", False) & (cp > 1),
                 reshard=flag("reshard_after_forward", True), rc=rc, sp=sp, tp_overlap=flag("tp_overlap", False) & sp,
                 zero=zero, overlap=overlap, flash=np.asarray(a["flash_attention"], dtype=bool),
                 dist=flag("distribute_checkpoints", False) & (rc == 2) & ~sp,
                 ep_overlap=flag("ep_overlap", False) & (n_mb >= 2), n_mb=n_mb, lps=lps, lps_mean=m_.layers / pp,
                 tokens=b * s / cp, dpc=dp * cp, n_rc=n_rc, frac=n_rc / lps)


@dataclass(frozen=True)
class Params:
    """Parameters per GPU on the busiest stage: all, the routed experts' share, LoRA adapters."""

    per_gpu: Any
    experts: Any
    adapters: Any
    linear: Any  # of per_gpu, the weights of the linear layers (all but the embeddings, norms aside)


def params_per_gpu(workload: TrainingWorkload, p: Plans) -> Params:
    p_gpu, p_exp = params_on_stage(workload.model, p.tp, p.pp, p.ep, p.lps, p.etp)
    lora = workload.lora_rank > 0
    p_ad = lora_adapter_params(workload, float(workload.lora_rank), p.tp, p.lps) if lora else 0.0 * p.tp
    return Params(p_gpu, p_exp, p_ad, p_gpu - embedding_params_on_stage(workload.model, p.tp, p.pp))


def memory_bytes(workload: TrainingWorkload, p: Plans, q: Params, dtype: str, stack: Stack) -> Any:
    """Bytes per GPU: weights, gradients and optimizer state by ZeRO stage, plus the activations the
    busiest stage holds (Korthikanti et al. 2022, planner/memory.py)."""
    return (_state_bytes(workload, p, q, dtype, stack)
            + _activation_bytes(workload, p, gemm_input_bytes(workload, dtype, stack), stack.selective_op_sac))


def gemm_input_bytes(workload: TrainingWorkload, dtype: str, stack: Stack) -> float:
    """Bytes per element a linear layer keeps of its input for the backward: the fp8 copy under
    fp8/fp4 training on a stack whose linear layers are Transformer Engine's (memory.py), else 16-bit.
    LoRA: a frozen base layer keeps nothing (no weight gradient) and the adapters beside it are
    16-bit layers that keep their 16-bit input."""
    te_fp8 = dtype in LOW_PRECISION_DTYPES and stack.fp8_saves_inputs and workload.lora_rank == 0
    return 1.0 if te_fp8 else memory.WEIGHT_BYTES


def _state_bytes(workload: TrainingWorkload, p: Plans, q: Params, dtype: str, stack: Stack) -> Any:
    zero, dpc, p_gpu = p.zero, p.dpc, q.per_gpu
    if workload.lora_rank > 0:
        # Frozen base weights (sharded only under ZeRO-3), adapters with full AdamW state. Nothing
        # updates the base, so under fp8 training it is kept only as fp8 (1 byte: Transformer
        # Engine fp8_model_init, NeMo fp8_params, as the MLPerf v5.0 LoRA configs set); 16-bit else.
        wb = 1.0 if dtype in LOW_PRECISION_DTYPES else memory.WEIGHT_BYTES
        w = p_gpu * wb / np.where((zero >= 3) & p.reshard, dpc, 1.0)
        g_, o_ = q.adapters * memory.GRAD_BYTES, q.adapters * memory.OPTIMIZER_BYTES / np.where(zero >= 1, dpc, 1.0)
        return w + q.adapters * memory.WEIGHT_BYTES + g_ + o_
    # Megatron-Core shards the experts' gradients and optimizer state over the expert data-parallel
    # ranks that hold the same experts (edp), the rest over all dp x cp ranks
    w, g_, o_ = (d + e for d, e in zip(memory.state_bytes(p_gpu - q.experts, dpc, zero, stack.grad_buffer_bytes),
                                       memory.state_bytes(q.experts, p.edp, zero, stack.grad_buffer_bytes)))
    if stack.pipeline_16bit_grads and dtype == "bf16":
        # DeepSpeed's bf16 optimizer under the pipeline engine keeps the 16-bit .grad tensors
        # beside its fp32 gradient buffers (pipe/engine.py update_hp_grads(clear_lp_grads=False)).
        g_ = g_ + np.where((p.pp > 1) & (zero < 2), p_gpu * memory.GRAD_BYTES, 0.0)
    # FSDP without resharding keeps the whole stage's weights between forward and backward.
    w = np.where((zero >= 3) & ~p.reshard, p_gpu * memory.WEIGHT_BYTES, w)
    if stack.pp_keeps_unsharded:
        # ...and under a pipeline schedule, its weights and accumulated reduce-dtype gradients whole
        # through all micro-batches (Stack.pp_keeps_unsharded); the sharded gradients come after
        whole = (zero >= 3) & (p.pp > 1)
        w = np.where(whole, p_gpu * memory.WEIGHT_BYTES, w)
        g_ = np.where(whole, p_gpu * stack.grad_reduce_bytes, g_)
    return w + g_ + o_


def _activation_bytes(workload: TrainingWorkload, p: Plans, g: float = memory.WEIGHT_BYTES,
                      op_sac: bool = False) -> Any:
    m_, tp, cp, rc, frac, lps = workload.model, p.tp, p.cp, p.rc, p.frac, p.lps
    act_rc, act_whole = memory.activation_bytes_and_whole(m_, p.b, tp, p.sp, rc, p.flash, g)
    sac = (rc == 1) & op_sac  # torchtitan's per-op selective checkpointing (memory.op_sac_activation_bytes)
    if np.any(sac):
        act_rc = np.where(sac, np.minimum(memory.op_sac_activation_bytes(m_, p.b, tp, p.sp), act_whole), act_rc)
    act_rc, act_whole = act_rc / cp, act_whole / cp
    # Full recompute with the checkpointed layer inputs split over the TP ranks (Megatron
    # --distribute-saved-activations, OPT-175B's setting): 2sbh/t stored without SP too; the
    # recompute all-gathers the input back (counted in tp_comm).
    if np.any(p.dist):
        act_rc = np.where(p.dist, act_rc / tp, act_rc)
    # LoRA on the attention only: the frozen FFN stores no GEMM inputs (no weight gradient).
    frozen_ffn = (memory.frozen_ffn_input_bytes(m_, p.b, tp, p.sp, g) / cp
                  if workload.lora_rank > 0 and workload.lora_targets == "attention" else 0.0 * tp)
    # LoRA with input dropout: each adapter's mask and dropped copy of its input
    # (selective recompute rebuilds the core attention, flash included: flash's kept output goes with it)
    lora_drop = (memory.lora_dropout_bytes(m_, p.b, tp, p.sp, workload.lora_targets, p.flash & (rc != 1)) / cp
                 if workload.lora_dropout > 0.0 else 0.0 * tp)  # the workload refuses dropout without LoRA
    act_rc = np.where((rc == 2) | sac, act_rc, act_rc - frozen_ffn + lora_drop)
    full_rc = rc == 2
    if np.any(full_rc):
        act_keep = act_whole - frozen_ffn + lora_drop
        act_layer = np.where(full_rc, frac * act_rc + (1.0 - frac) * act_keep, act_rc)
        # Checkpointing holds the stored inputs plus the whole of the one segment being recomputed
        # (Chen et al. 2016, arXiv 1604.06174, sec. 3): a layer's full activations, less its
        # already stored input, exist during its recomputed forward and backward. With block-partial
        # recompute the backward reaches the recomputed layers (the first N) after freeing the
        # stored layers' activations, so only whole-stage recompute adds it; the loss's logits are
        # freed before the layers' backward, so the two never coincide.
        rc_working = np.where(full_rc & (p.n_rc >= lps), act_keep - act_rc, 0.0)
    else:
        act_layer, rc_working = act_rc, 0.0 * tp
    # per-op checkpointing recomputes each block in its backward: that block's tensors exist then
    rc_working = np.where(sac, act_whole - act_rc, rc_working)
    logits_mem = memory.logits_bytes(m_, p.b, tp) / cp
    act_first = (lps * act_layer * memory.pipeline_activation_factor(p.pp, p.v, p.n_mb)
                 + np.maximum(np.where(p.pp == 1, logits_mem, 0.0), rc_working))
    # The last stage of an interleaved schedule holds (v-1) p + 1 chunks of lps / v layers in
    # flight (Megatron's interleaved 1F1B warm-up on the last rank: (v-1) p), one layer-stack
    # without interleaving; never more chunks than the micro-batches give it.
    last_chunks = np.where(p.v > 1, np.minimum((p.v - 1) * p.pp + 1, p.n_mb * p.v) / p.v, 1.0)
    act_last = lps * act_layer * last_chunks + np.maximum(logits_mem, rc_working)
    return np.maximum(act_first, act_last)


@dataclass(frozen=True)
class LayerTimes:
    """Seconds per layer and micro-batch on one GPU (the logits: per micro-batch, last stage)."""

    fwd: Any
    bwd: Any
    recomp: Any
    gemm_f: Any
    gemm_b: Any
    att_f: Any
    att_b: Any
    logits: Any


def layer_times(workload: TrainingWorkload, hw: Hardware, profile: DeviceProfile, dtype: str, which: str,
                stack: Stack, p: Plans) -> LayerTimes:
    m_ = workload.model
    h, tokens, tp, cp = float(m_.hidden), p.tokens, p.tp, p.cp
    # The stack's sustained efficiency scales every compute kernel (GEMM, attention), and so does
    # the clock a GPU power limit leaves (planner/power.py); memory-bound kernels keep the HBM rate.
    eff = float(stack.efficiency) * hw.clock_factor
    # Kernel times depend only on the micro-batch's shape (b, tp, cp, ep, etp): a search's thousands
    # of plans share a few dozen shapes, so each shape is timed once.
    kt = per_shape(lambda i: kernel_times(workload, hw, profile, dtype, which, eff, p.b[i], tp[i], cp[i], p.ep[i],
                                          p.etp[i]), p.b, tp, cp, p.ep, p.etp)
    t_gemm_f, t_gemm_b, t_cast_f, t_cast_b, t_ad = (kt[k] for k in ("gemm_f", "gemm_b", "cast_f", "cast_b", "ad"))
    t_att_f = np.where(p.flash, kt["att_flash_f"], kt["att_unfused_f"])
    t_att_b = np.where(p.flash, kt["att_flash_b"], kt["att_unfused_b"])
    ovh = profile.kernel_overhead_s()
    act_mult = (3.0 if m_.gated_ffn else 2.0) * 2.0  # bytes/token/f: read+write
    per_h = ELEMENTWISE_BYTES_PER_H - (0.0 if m_.dropout else DROPOUT_MASK_BYTES_PER_H)
    elem_bytes = per_h * tokens * h / np.where(p.sp, tp, 1.0) + act_mult * tokens * m_.active_ffn_width() / tp
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
    q_w, kv_w = _attention_widths(m_, tp)
    ring_cp = (cp > 1) & ~p.cp_a2a
    t_cpx_f = np.where(ring_cp, tokens * q_w * cp_merge_bytes_fwd(cp) / hw.hbm_bw + 2.0 * cp * ovh, 0.0)
    t_cpx_b = np.where(ring_cp, tokens * (q_w + kv_w) * cp_merge_bytes_bwd(cp) / hw.hbm_bw + 2.0 * cp * ovh, 0.0)
    t_moe = moe_dispatch_s(m_, hw, tokens / np.where(p.sp, tp, 1.0), ovh)
    t_xf, t_xb = moe_unfused_ops_s(m_, stack, hw, tokens / np.where(p.sp, tp, 1.0), p.etp, p.ep, ovh)
    t_drop = _lora_dropout_s(workload, hw, tokens, tp, p.sp, ovh)
    fwd = t_gemm_f + t_att_f + t_elem + t_cast_f + t_ad + t_cpx_f + t_moe + t_xf + t_drop
    bwd = t_gemm_b + t_att_b + 2.0 * t_elem + t_cast_b + 2.0 * t_ad + t_cpx_b + t_moe + t_xb + t_drop
    recomp = np.where(p.rc == 2, p.frac * fwd, np.where(p.rc == 1, _selective_recompute_s(
        m_, stack, t_att_f, t_gemm_f, t_cast_f, t_elem), 0.0))
    return LayerTimes(fwd, bwd, recomp, t_gemm_f, t_gemm_b, t_att_f, t_att_b, kt["logits"])


def _lora_dropout_s(workload: TrainingWorkload, hw: Hardware, tokens: Any, tp: Any, sp: Any, ovh: float) -> Any:
    """Seconds per layer and micro-batch, one direction, of the LoRA adapters' input dropout."""
    if workload.lora_dropout == 0.0:  # no LoRA has none (TrainingWorkload refuses it)
        return 0.0 * tokens
    kernels = 2.0 if workload.lora_targets == "attention" else 4.0
    elements = memory.lora_dropout_elements(workload.model, tokens, tp, sp, workload.lora_targets)
    return LORA_DROPOUT_BYTES * elements / hw.hbm_bw + kernels * ovh


def _selective_recompute_s(m_: Any, stack: Stack, t_att_f: Any, t_gemm_f: Any, t_cast_f: Any, t_elem: Any) -> Any:
    """Seconds a selective recompute adds to a layer's backward: Megatron's recomputes the core
    attention; torchtitan's per-op checkpointing (stack.selective_op_sac) recomputes every second
    linear layer's forward (their share of the forward GEMM and cast time, by FLOPs) and the
    elementwise forward (norms, RoPE, activation, products), and keeps the attention output."""
    if not stack.selective_op_sac:
        return t_att_f
    share = memory.op_sac_recomputed_flop_share(m_)
    return share * (t_gemm_f + t_cast_f) + t_elem


def moe_dispatch_s(m_: Any, hw: Hardware, tokens: Any, ovh: float) -> Any:
    """Seconds per layer and micro-batch, one direction, of the MoE token permutation around the
    experts of `tokens` tokens (the backward moves the same bytes the other way)."""
    if not m_.moe:
        return 0.0 * tokens
    elements = tokens * float(m_.hidden) * (MOE_PERMUTE_PASSES * float(m_.active_experts) + 1.0)
    return m_.moe_layer_fraction * (2.0 * elements / hw.hbm_bw + MOE_PERMUTE_KERNELS * ovh)


def moe_unfused_ops_s(m_: Any, stack: Stack, hw: Hardware, tokens: Any, etp: Any, ep: Any, ovh: float) -> tuple[Any, Any]:
    """Seconds per layer and micro-batch (forward, backward) of the expert ops a fused grouped MLP
    would take into its kernels (GLU_CLAMP_BYTES, EXPERT_BIAS_BYTES), for `tokens` tokens on the GPU."""
    zero = 0.0 * tokens
    if not m_.moe or stack.fused_expert_mlp or not (m_.glu_clamp or m_.linear_bias):
        return zero, zero
    rows = tokens * float(m_.active_experts)
    local = float(m_.experts) / ep
    fwd, bwd = zero, zero
    if m_.glu_clamp and m_.gated_ffn:
        fc1 = rows * 2.0 * float(m_.ffn_hidden) / etp
        fwd = fwd + GLU_CLAMP_BYTES[0] * fc1 / hw.hbm_bw + GLU_CLAMP_KERNELS[0] * ovh
        bwd = bwd + GLU_CLAMP_BYTES[1] * fc1 / hw.hbm_bw + GLU_CLAMP_KERNELS[1] * ovh
    if m_.linear_bias:
        fc2 = rows * float(m_.hidden)
        fwd = fwd + EXPERT_BIAS_BYTES[0] * fc2 / hw.hbm_bw + (2.0 * local + 1.0) * ovh
        bwd = bwd + EXPERT_BIAS_BYTES[1] * fc2 / hw.hbm_bw + 2.0 * local * ovh
    return m_.moe_layer_fraction * fwd, m_.moe_layer_fraction * bwd


def _attention_widths(m_: Any, tp: Any) -> tuple[Any, Any]:
    """Per GPU: the query width (heads x head_dim / tp) and the key+value width (KV heads are
    replicated, not split, once tp exceeds their count)."""
    d_h = float(m_.head_dim)
    return m_.heads * d_h / tp, 2.0 * m_.kv_heads * d_h / np.minimum(tp, float(m_.kv_heads))


def tp_comm_s(hw: Hardware, p: Plans, lt: LayerTimes, h: float, dtype: str) -> Any:
    """Tensor-parallel collectives per layer and micro-batch: 2 all-reduces forward, 2 backward,
    2 in a recomputed forward (with SP: an all-gather and a reduce-scatter each)."""
    loc, nod = comm.group_layout(p.tp, 1.0, hw.gpus_per_node)
    act_bytes = p.tokens * h * 2.0
    bw = group_bw(hw, loc)
    ar = comm.hierarchical_allreduce_time(act_bytes, loc, nod, bw, hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    ag = comm.hierarchical_allgather_time(act_bytes, loc, nod, bw, hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    # Under fp8/fp4 training with SP, Transformer Engine quantizes a linear layer's input before it
    # all-gathers it (LayerNormLinear: gather_along_first_dim(ln_out, tp_group, quantizer=...),
    # NVIDIA/TransformerEngine @d0067d0 transformer_engine/pytorch/module/layernorm_linear.py), and
    # likewise the output gradient it gathers in the backward: those all-gathers move 1 byte an
    # element (NVFP4 taken the same, not less: stated); the reduce-scatters stay 16-bit.
    ag_q = (comm.hierarchical_allgather_time(act_bytes / 2.0, loc, nod, bw, hw.bw_inter, hw.alpha_intra,
                                             hw.alpha_inter) if dtype in LOW_PRECISION_DTYPES else ag)
    frac = p.frac
    n_ar = 4.0 + 2.0 * frac  # forward 2, backward 2, recomputed forward 2
    tp_comm = np.where(p.sp, n_ar * (ag_q + ag), n_ar * ar) + np.where(p.dist, frac * ag, 0.0)
    # TP overlap (Transformer Engine userbuffers, split-pipelined): each all-gather/reduce-scatter
    # is cut into tp chunks, chunk i's transfer runs beside chunk i-1's GEMM, so the first chunk
    # shows and the rest only where the layer's GEMMs (forward, recomputed forward, backward)
    # are shorter than it.
    gemm_all = lt.gemm_f * (1.0 + frac) + lt.gemm_b
    tp = p.tp
    return np.where(p.tp_overlap, tp_comm / tp + np.maximum(tp_comm * (tp - 1.0) / tp - gemm_all, 0.0), tp_comm)


def cp_comm_s(m_: Any, hw: Hardware, stack: Stack, p: Plans, lt: LayerTimes) -> Any:
    """Context parallelism: K and V chunks pass round a ring of cp ranks (cp - 1 steps forward,
    twice that backward for dK, dV), overlapped with the attention blocks; only the excess shows."""
    tp, cp, frac, tokens = p.tp, p.cp, p.frac, p.tokens
    cp_intra = tp * cp <= hw.gpus_per_node
    bw_cp = capped_bw(hw.bw_intra, hw, stack, "cp")
    d_h = float(m_.head_dim)
    kv_bytes = 2.0 * tokens * m_.kv_heads * d_h / np.minimum(tp, float(m_.kv_heads)) * 2.0
    ring = (cp - 1.0) * comm.p2p_time(kv_bytes, np.where(cp_intra, bw_cp, hw.bw_inter),
                                      np.where(cp_intra, hw.alpha_intra, hw.alpha_inter))
    cp_f = np.maximum(ring - lt.att_f, 0.0)
    cp_comm = np.where(cp > 1, cp_f * (1.0 + frac) + np.maximum(2.0 * ring - lt.att_b, 0.0), 0.0)
    # All-to-all (Ulysses): Q, K, V to head-split layout before attention and the output back, the
    # same volumes again for their gradients; each rank keeps 1/cp and sends the rest, on the critical path.
    if np.any(p.cp_a2a):  # (skip the arrays when no plan of the batch has it)
        q_w, kv_w = _attention_widths(m_, tp)
        a2a_bytes = tokens * (2.0 * q_w + kv_w) * 2.0 * (cp - 1.0) / cp
        # on a mesh the all-to-all reaches its cp - 1 peers over as many links (the ring, one)
        bw_a2a = bw_cp if hw.bw_p2p_intra is None else group_bw(hw, cp)
        a2a_one = comm.p2p_time(a2a_bytes, np.where(cp_intra, bw_a2a, hw.bw_inter),
                                (cp - 1.0) * np.where(cp_intra, hw.alpha_intra, hw.alpha_inter))
        cp_comm = np.where(p.cp_a2a, a2a_one * (2.0 + frac), cp_comm)
    return cp_comm


def ep_comm_s(m_: Any, hw: Hardware, stack: Stack, p: Plans, lt: LayerTimes) -> Any:
    """The expert all-to-alls per layer and micro-batch: dispatch and combine, forward and backward
    (and a recomputed forward)."""
    if not m_.moe:
        return 0.0 * p.tp
    tp, sp, frac, tokens, h = p.tp, p.sp, p.frac, p.tokens, float(m_.hidden)
    # Megatron-Core lays the expert ranks out etp innermost, then ep: an EP group's ranks are etp apart
    eloc, enod = comm.group_layout(p.ep, p.etp, hw.gpus_per_node)
    a2a_bytes = tokens * m_.routed_per_layer * h * 2.0 / np.where(sp, tp, 1.0)
    # a deduplicating dispatcher (DeepEP, HybridEP) sends a token once to each other node its
    # experts sit on and forwards it there over the scale-up links; built for group-limited
    # gating (DeepSeek-V3), so taken only for a model that routes that way
    dedup = None
    if stack.ep_node_dedup and m_.group_topk:
        per_node = np.vectorize(m_.offnode_destinations)(enod)
        dedup = tokens * m_.moe_layer_fraction * per_node * h * 2.0 / np.where(sp, tp, 1.0)
    a2a = comm.alltoall_time(a2a_bytes, eloc, enod, group_bw(hw, eloc), hw.bw_inter, hw.alpha_intra, hw.alpha_inter, dedup)
    ep_comm = (4.0 + 2.0 * frac) * a2a
    # Combined 1F1B (Megatron-Core combined_1f1b.py) / DualPipe: the forward of one micro-batch
    # and the backward of another run as one unit, each one's all-to-alls beside the other's
    # compute; there must be a second micro-batch in flight, and what the compute cannot cover shows.
    return np.where(p.ep_overlap, np.maximum(ep_comm - (lt.fwd + lt.bwd + lt.recomp), 0.0), ep_comm)


def pp_warmup_fraction(pp: Any, v: Any, n_mb: Any) -> Any:
    """Share of the first stage's chunk passes that run in the interleaved schedule's warm-up (and,
    as many, cool-down): (pp - 1) x 2 + (v - 1) x pp forward chunks out of n_mb x v, at most all of
    them (Megatron-Core pipeline_parallel/schedules.py, the interleaved schedule's
    num_warmup_microbatches at rank 0 with the default microbatch_group_size_per_vp_stage = pp)."""
    return np.minimum(1.0, (2.0 * (pp - 1.0) + (v - 1.0) * pp) / (n_mb * v))


def _exposed(t: Any, win: Any, overlap: Any) -> Any:
    """Communication `t` beside a compute window `win`: what the window hides costs only the
    slowdown it causes there (OVERLAP_COMPUTE_SLOWDOWN); without overlap all of it shows."""
    hid = np.minimum(t, win)
    return np.where(overlap, t - hid + OVERLAP_COMPUTE_SLOWDOWN * hid, t)


@dataclass(frozen=True)
class DataParallel:
    """The DP ranks' collectives: their group layout and what each moves."""

    args: tuple          # (ranks per node, nodes, bandwidths and latencies) for planner/comm.py
    dense: Any           # parameters per GPU reduced over all DP ranks (adapters only under LoRA)
    gather_bytes: float  # bytes per weight in the ZeRO weight all-gathers
    t_rs: Any            # gradient reduce-scatter, seconds
    t_ag_w: Any          # weight all-gather, seconds
    t_experts: Any       # the routed experts' gradient all-reduce over their own DP group, seconds

    @property
    def t_z1(self) -> Any:
        """ZeRO-1: gradient reduce-scatter + weight all-gather, seconds."""
        return self.t_rs + self.t_ag_w


def data_parallel(workload: TrainingWorkload, hw: Hardware, stack: Stack, p: Plans, q: Params, dtype: str) -> DataParallel:
    lora = workload.lora_rank > 0
    dloc, dnod = comm.group_layout(p.dpc, p.tp, hw.gpus_per_node)
    dense = np.where(lora, q.adapters, q.per_gpu - q.experts)
    args = (dloc, dnod, group_bw(hw, dloc), hw.bw_inter, hw.alpha_intra, hw.alpha_inter)
    # Weight all-gather bytes: the fp8 copy (1 byte) when the run gathers fp8 parameters under
    # fp8/fp4 training (stack.fp8_param_gather); adapters and 16-bit training move 16-bit weights.
    # (Memory still counts 16-bit weights: the fp8 copy's saving is not modelled.)
    low_precision = dtype in LOW_PRECISION_DTYPES
    gather_bytes = 1.0 if (stack.fp8_param_gather and low_precision and not lora) else memory.WEIGHT_BYTES
    # a reduce-scatter moves what an all-gather does; a stack that reduces by all-reduce, twice that
    reduce = comm.hierarchical_allreduce_time if stack.grad_reduce_allreduce else comm.hierarchical_allgather_time
    t_rs = reduce(dense * stack.grad_reduce_bytes, *args)
    t_ag_w = comm.hierarchical_allgather_time(dense * gather_bytes, *args)
    return DataParallel(args, dense, gather_bytes, t_rs, t_ag_w, expert_grad_s(workload, hw, stack, p, q))


def expert_grad_s(workload: TrainingWorkload, hw: Hardware, stack: Stack, p: Plans, q: Params) -> Any:
    """The routed experts' gradient all-reduce over the expert-data-parallel group (edp ranks,
    each holding etp x ep of the experts), seconds; under every ZeRO stage, as the experts' gradients
    are reduced whatever shards the dense weights. Zero for dense models and under LoRA (frozen experts)."""
    if not workload.model.moe or workload.lora_rank > 0:
        return 0.0 * p.tp
    xloc, xnod = comm.group_layout(p.edp, p.etp * p.ep, hw.gpus_per_node)
    return comm.hierarchical_allreduce_time(q.experts * stack.grad_reduce_bytes, xloc, xnod, group_bw(hw, xloc),
                                            hw.bw_inter, hw.alpha_intra, hw.alpha_inter)


def dp_exposed_s(workload: TrainingWorkload, hw: Hardware, stack: Stack, p: Plans, q: Params, dtype: str,
                 d: DataParallel, lt: LayerTimes) -> Any:
    """The gradient reduction of ZeRO 0-2 (ZeRO-3's is in zero3_exposed_s), beside the backward
    when it overlaps."""
    zero, grb, args = p.zero, stack.grad_reduce_bytes, d.args
    lora = workload.lora_rank > 0
    t_ar = comm.hierarchical_allreduce_time(d.dense * grb, *args)
    t_ag_w = d.t_ag_w
    # ZeRO-2 cannot accumulate whole gradients: it reduce-scatters after every micro-batch.
    t_dp = np.where(zero == 2, p.n_mb * d.t_rs + t_ag_w, np.where(zero >= 1, d.t_z1, t_ar))
    if stack.pipeline_16bit_grads and dtype == "bf16" and not lora:
        # DeepSpeed's bf16 optimizer under the pipeline engine all-reduces its fp32 gradient
        # buffers (pipe/engine.py _bf16_reduce_grads) and all-gathers the updated 16-bit weights.
        t_bf16opt = comm.hierarchical_allreduce_time(d.dense * 4.0, *args) + t_ag_w
        t_dp = np.where((p.pp > 1) & (zero == 1), t_bf16opt, t_dp)
    t_dp = t_dp + d.t_experts
    # Overlap hides communication behind at most OVERLAP_EFFICIENCY of the backward compute it
    # runs beside (NCCL kernels take SMs and memory bandwidth; TP collectives, not overlapped,
    # hold the links meanwhile), and slows that compute by OVERLAP_COMPUTE_SLOWDOWN. The weight
    # all-gather shares that window although Megatron-Core's overlap_param_gather runs it beside the
    # next forward: tried as a window of its own (stop 61), it moved 41 megatron-core check rows the
    # fast way (NVIDIA mean |error| 7.4% -> 7.7%, max 29.7% -> 34.3%; Llama 3.1 8B on 32-256 B200
    # from -7..+5% to -20..-9%), so the shared window stands until the checks say otherwise.
    window = OVERLAP_EFFICIENCY * np.where(zero == 2, p.n_mb, 1.0) * p.lps * lt.bwd
    # a stack whose weight all-gather follows the optimizer step shows it whole (Stack.param_gather_overlap)
    apart = np.where(zero >= 1, 0.0 if stack.param_gather_overlap else t_ag_w, 0.0)
    return np.where(zero >= 3, 0.0, _exposed(t_dp - apart, window, p.overlap) + apart)


def param_passes_s(workload: TrainingWorkload, hw: Hardware, stack: Stack, p: Plans, q: Params, dtype: str) -> Any:
    """Seconds per iteration of the passes over a GPU's whole parameter set (WEIGHT_QUANT_BYTES): the
    gradient buffer zeroed, the linear weights quantised for fp8/fp4 GEMMs. ZeRO-3 plans keep neither
    (gradients reduce-scattered and freed per layer, weights gathered and cast per use)."""
    lora = workload.lora_rank > 0
    trainable = q.adapters if lora else q.per_gpu
    zeroing = trainable * stack.grad_buffer_bytes if stack.grad_buffer_zeroed else 0.0 * trainable
    if dtype in FP4_DTYPES:
        quant = WEIGHT_QUANT_BYTES["fp4"]
    elif dtype in LOW_PRECISION_DTYPES:
        quant = WEIGHT_QUANT_BYTES["fp8_gathered" if stack.fp8_param_gather else "from_16bit"]
    else:
        quant = 0.0
    casting = (0.0 if lora else quant) * q.linear
    return np.where(p.zero >= 3, 0.0, (zeroing + casting) / hw.hbm_bw)


def at_slowest_gpu(lt: LayerTimes, p: Plans) -> tuple[LayerTimes, Any]:
    """The layer times of the job's slowest GPU, which every synchronous step waits for
    (planner/pace.py): each kernel slower by 1 + spread x E[max of N normals] over the median GPU,
    N = tp x cp x pp x dp GPUs (experts live inside the dp x tp ranks). Returns the factor too."""
    f = pace.slowdown(p.tp * p.cp * p.pp * p.dp)
    return LayerTimes(*(getattr(lt, k) * f for k in LayerTimes.__dataclass_fields__)), f


def zero3_exposed_s(hw: Hardware, stack: Stack, p: Plans, d: DataParallel, lt: LayerTimes) -> Any:
    """ZeRO-3 (FSDP full sharding), per micro-batch and layer: all-gather the layer's 16-bit
    weights in the forward, again in the backward (unless the weights were not resharded after
    the forward) and again in a recomputed forward when the stack re-fetches there (DeepSpeed),
    reduce-scatter its gradients in the backward; each over the DP ranks' NICs. One layer of
    prefetch: a layer's traffic hides behind OVERLAP_EFFICIENCY of the previous layer's compute;
    the first gather and the last reduce-scatter of each pass are never hidden."""
    lps, frac, args = p.lps, p.frac, d.args
    w_l = d.dense / lps
    gather = comm.hierarchical_allgather_time if stack.zero3_node_rings else comm.sharded_allgather_time
    ag_l = gather(w_l * d.gather_bytes, *args)
    rs_l = gather(w_l * stack.grad_reduce_bytes, *args)
    regather = (p.rc == 2) & bool(stack.zero3_regather_on_recompute)
    comm_f = ag_l
    comm_b = ag_l * (np.where(p.reshard, 1.0, 0.0) + np.where(regather, frac, 0.0)) + rs_l
    # Contention: while a layer's collectives stream (at the NIC-bound rate), the compute beside
    # them runs `sigma` slower. A pass of traffic G beside a compute window W then takes
    # max(G, W + sigma G): exposed max(G - W, sigma G). Comm-bound (G >= W / (1 - sigma)): the
    # traffic sets the pace and all compute hides; balanced: sigma G shows.
    sigma = OVERLAP_COMPUTE_SLOWDOWN if stack.zero3_compute_slowdown is None else float(stack.zero3_compute_slowdown)
    win_f, win_b = hw.zero3_prefetch * lt.fwd, hw.zero3_prefetch * (lt.bwd + lt.recomp)
    hid_f, hid_b = np.minimum(comm_f, win_f), np.minimum(comm_b, win_b)
    z3_overlap = (lps * (np.maximum(comm_f - win_f, sigma * comm_f) + np.maximum(comm_b - win_b, sigma * comm_b))
                  + np.minimum(ag_l, hid_f) + np.minimum(rs_l, hid_b))
    z3 = p.n_mb * np.where(p.overlap, z3_overlap, lps * (comm_f + comm_b))
    # ZeRO-3 moves every byte ZeRO-1 moves (the gradient reduce-scatter, the weight gather) and
    # more, with no larger overlap window per byte: never less exposed time than ZeRO-1.
    # The routed experts' gradients are reduced over their own group beside the backward, as under
    # ZeRO 0-2 (dp_exposed_s), sharing its window.
    window = OVERLAP_EFFICIENCY * lps * lt.bwd
    z3 = z3 + _exposed(d.t_experts, window, p.overlap)
    apart = 0.0 if stack.param_gather_overlap else d.t_ag_w   # as dp_exposed_s shows ZeRO-1's
    z1_same = _exposed(d.t_z1 - apart + d.t_experts, window, p.overlap) + apart
    return np.where(p.zero >= 3, np.maximum(z3, z1_same), 0.0)


def core(workload: TrainingWorkload, hw: Hardware, profile: DeviceProfile, dtype: str,
         a: Mapping[str, np.ndarray], which: str = "value", memory_only: bool = False,
         stack: Stack = NEUTRAL) -> dict[str, np.ndarray]:
    """Evaluate plans given as arrays (keys PLAN_FIELDS; recompute as codes 0/1/2).

    One accounting of time: iteration = m * T_stage + bubble + DP exposed + ZeRO-3 exposed +
    optimizer + parameter passes + embedding sync, and T_stage = the busiest stage's compute + TP +
    EP + CP communication + pipeline sends for one micro-batch, the compute at the pace of the job's
    slowest GPU; the breakdown keys below are exactly these parts (they sum to `iteration_time_s`),
    the compute split into the median GPU's (compute_s) and the slowest GPU's lag (straggler_s)."""
    m_ = workload.model
    p = normalise_plans(workload, a, stack)
    q = params_per_gpu(workload, p)
    mem = memory_bytes(workload, p, q, dtype, stack)
    out: dict[str, np.ndarray] = {"memory_bytes": mem, "fits": mem <= hw.capacity_bytes}
    if memory_only:
        return out
    lt, slow = at_slowest_gpu(layer_times(workload, hw, profile, dtype, which, stack, p), p)
    tp_comm, cp_comm = tp_comm_s(hw, p, lt, float(m_.hidden), dtype), cp_comm_s(m_, hw, stack, p, lt)
    ep_comm = ep_comm_s(m_, hw, stack, p, lt)
    layer_compute = lt.fwd + lt.bwd + lt.recomp
    layer_t = layer_compute + tp_comm + ep_comm + cp_comm
    n_mb, lps, pp, v = p.n_mb, p.lps, p.pp, p.v

    # ---- pipeline: 1F1B, m micro-batches at the busiest stage's pace plus the bubble ----
    pp_intra = p.tp * p.cp * p.dp * pp <= hw.gpus_per_node
    p2p_bw = np.where(pp_intra, capped_bw(hw.bw_intra, hw, stack, "pp"), hw.bw_inter)
    p2p_alpha = np.where(pp_intra, hw.alpha_intra, hw.alpha_inter)
    p2p = np.where(pp > 1, 2.0 * v * comm.p2p_time(p.tokens * float(m_.hidden) * 2.0 / p.tp, p2p_bw, p2p_alpha), 0.0)
    # With the interleaved schedule the stack may post each chunk's send and receive without
    # waiting and wait only before the chunk that needs them (Megatron overlap_p2p_comm, on with
    # virtual stages: seeds/stacks.toml pp_comm_overlap): in the steady state the sends hide behind
    # the stage's compute as the gradient reduction does (at most OVERLAP_EFFICIENCY of it, slowed
    # meanwhile); the warm-up forwards and the cool-down backwards wait on theirs (Megatron's
    # overlap_p2p_comm_warmup_flush is off by default).
    steady = np.where(stack.pp_comm_overlap & (v > 1), 1.0 - pp_warmup_fraction(pp, v, n_mb), 0.0)
    p2p = p2p * (1.0 - steady) + _exposed(p2p * steady, OVERLAP_EFFICIENCY * steady * lps * layer_compute, True)
    t_max = lps * layer_t + lt.logits + p2p
    t_mean = p.lps_mean * layer_t + lt.logits / pp + p2p
    bubble = (pp - 1.0) / v * t_mean

    # ---- data parallel (ZeRO 0-2), ZeRO-3, optimizer, embedding sync ----
    d = data_parallel(workload, hw, stack, p, q, dtype)
    dp_exposed = dp_exposed_s(workload, hw, stack, p, q, dtype, d, lt)
    zero3 = zero3_exposed_s(hw, stack, p, d, lt)
    lora = workload.lora_rank > 0
    # the optimizer steps its shard only: dense (or adapter) parameters over dp x cp, experts over edp
    dpc_shard, edp_shard = (np.where(p.zero >= 1, n, 1.0) for n in (p.dpc, p.edp))
    opt_params = np.where(lora, q.adapters / dpc_shard, (q.per_gpu - q.experts) / dpc_shard + q.experts / edp_shard)
    opt = opt_params * OPTIMIZER_STEP_BYTES / hw.hbm_bw
    passes = param_passes_s(workload, hw, stack, p, q, dtype)
    if m_.tied_embeddings and not lora:
        emb_b = m_.vocab * float(m_.hidden) / p.tp * stack.grad_reduce_bytes
        # first and last stage: in one node when the whole job is (pipeline stages outermost in the rank order)
        emb_sync = np.where(pp > 1, comm.allreduce_time(emb_b, 2.0, np.where(pp_intra, group_bw(hw, 2.0), hw.bw_inter),
                                                        p2p_alpha), 0.0)
    else:
        emb_sync = 0.0 * p.tp
    compute = n_mb * (lps * layer_compute + lt.logits)  # at the slowest GPU's pace
    parts = {
        "compute_s": compute / slow,
        "tp_comm_s": n_mb * lps * tp_comm,
        "ep_comm_s": n_mb * lps * ep_comm,
        "cp_comm_s": n_mb * lps * cp_comm,
        "p2p_s": n_mb * p2p,
        "bubble_s": bubble,
        "dp_exposed_s": dp_exposed,
        "zero3_exposed_s": zero3,
        "optimizer_s": opt,
        "param_passes_s": passes,
        "emb_sync_s": emb_sync,
        "straggler_s": compute - compute / slow,
    }
    it = n_mb * t_max + bubble + dp_exposed + zero3 + opt + passes + emb_sync
    comm_exposed = (parts["tp_comm_s"] + parts["ep_comm_s"] + parts["cp_comm_s"] + parts["p2p_s"]
                    + dp_exposed + zero3 + emb_sync)
    out.update(parts)
    out.update(iteration_time_s=it, pipeline_s=n_mb * t_max + bubble, comm_exposed_s=comm_exposed)
    return out
