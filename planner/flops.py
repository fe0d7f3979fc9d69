"""FLOP counts of a decoder transformer: per GEMM, per layer, per iteration; model vs hardware.

Convention (Narayanan et al. 2021 sec. 5.1, Korthikanti et al. 2022 sec. 6, PaLM appendix B):
a GEMM of (m x k) by (k x n) is 2mnk FLOPs; the backward pass is twice the forward; attention's
score and value products are counted over the full s x s matrix (causal masking not discounted).
Model FLOPs exclude recomputation (MFU); hardware FLOPs include it (HFU).
Every function takes numpy arrays or scalars for the plan-dependent arguments.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def megatron_flops_per_iteration(batch: Any, seq: int, layers: int, hidden: int, vocab: int,
                                 full_recompute: bool) -> Any:
    """Narayanan et al. 2021 eq. (3): 96 B s l h^2 (1 + s/6h + V/(16 l h)) with full recompute;
    without it the 4 passes become 3: 72 B s l h^2 (1 + s/6h + V/(12 l h)). GPT with 4h FFN only."""
    s, l, h, v = float(seq), float(layers), float(hidden), float(vocab)
    if full_recompute:
        return 96.0 * batch * s * l * h * h * (1.0 + s / (6.0 * h) + v / (16.0 * l * h))
    return 72.0 * batch * s * l * h * h * (1.0 + s / (6.0 * h) + v / (12.0 * l * h))


def layer_gemms_fwd(model: Any, tokens: Any, tp: Any, ep: Any = 1) -> list[tuple[Any, Any]]:
    """Forward GEMMs of one layer on one GPU as (FLOPs of one GEMM, how many), for `tokens` = b*s.

    QKV (GQA: kv heads projected separately), output projection, FFN in (gate and up fused when
    gated), FFN out. Mixture-of-experts: each GPU holds experts/ep experts, each seeing
    tokens*active*ep/experts tokens (balanced routing).
    """
    return [(2.0 * m * n * k, count) for m, n, k, count in layer_gemm_shapes_fwd(model, tokens, tp, ep)]


def layer_gemm_shapes_fwd(model: Any, tokens: Any, tp: Any, ep: Any = 1, etp: Any = None) -> list[tuple[Any, Any, Any, Any]]:
    """The forward GEMMs of `layer_gemms_fwd` as (m, n, k, how many), for the shape-aware GEMM
    model: m = tokens (per expert for MoE), n = output columns on this GPU, k = inner. The attention
    GEMMs come first (`attention_gemm_shapes_fwd`), then the FFN's; "how many" may be a fraction:
    the average layer of a model whose first layers are dense and the rest MoE."""
    return attention_gemm_shapes_fwd(model, tokens, tp) + ffn_gemm_shapes_fwd(model, tokens, tp, ep, etp)


def attention_gemm_shapes_fwd(model: Any, tokens: Any, tp: Any) -> list[tuple[Any, Any, Any, Any]]:
    """QKV (GQA: kv heads projected separately) and the output projection. MLA (arXiv 2405.04434
    sec. 2.1): the query and KV down-projections to their latents (replicated over TP), the
    up-projections from them (split over TP), the output projection."""
    h, d = float(model.hidden), float(model.head_dim)
    tp = np.asarray(tp, dtype=float)
    if getattr(model, "mla", False):
        n, qk, v = float(model.heads), float(model.qk_head_dim), float(model.value_head_dim)
        ql, kvl = float(model.q_lora_rank), float(model.kv_lora_rank)
        q = [(tokens, ql + 0.0 * tp, h, 1.0), (tokens, n * qk / tp, ql, 1.0)] if ql else [(tokens, n * qk / tp, h, 1.0)]
        return q + [(tokens, kvl + model.rope_head_dim + 0.0 * tp, h, 1.0), (tokens, n * (d + v) / tp, kvl, 1.0),
                    (tokens, h, n * v / tp, 1.0)]
    q, kv = model.heads * d, model.kv_heads * d
    return [(tokens, (q + 2.0 * kv) / tp, h, 1.0), (tokens, h, q / tp, 1.0)]


def ffn_gemm_shapes_fwd(model: Any, tokens: Any, tp: Any, ep: Any = 1, etp: Any = None,
                        routed: bool = True) -> list[tuple[Any, Any, Any, Any]]:
    """FFN in (gate and up fused when gated) and out. Mixture-of-experts: the routed experts'
    GEMMs (`expert_gemm_shapes_fwd`; left out with routed=False) first; shared experts run as one
    dense FFN of their joint width; dense-first layers count by their share of the layers."""
    h = float(model.hidden)
    g = 2.0 if model.gated_ffn else 1.0
    tp = np.asarray(tp, dtype=float)
    f = float(model.ffn_hidden)
    if model.experts <= 1:
        return [(tokens, g * f / tp, h, 1.0), (tokens, h, f / tp, 1.0)]
    m = float(getattr(model, "moe_layer_fraction", 1.0))
    out = expert_gemm_shapes_fwd(model, tokens, tp, ep, etp) if routed else []
    shared = float(getattr(model, "shared_experts", 0)) * f
    if shared:
        out += [(tokens, g * shared / tp, h, m), (tokens, h, shared / tp, m)]
    if m < 1.0:
        fd = float(model.dense_ffn_width)
        out += [(tokens, g * fd / tp, h, 1.0 - m), (tokens, h, fd / tp, 1.0 - m)]
    return out


def expert_gemm_shapes_fwd(model: Any, tokens: Any, tp: Any, ep: Any = 1, etp: Any = None) -> list[tuple[Any, Any, Any, Any]]:
    """The routed experts' in and out GEMMs of a MoE layer (none for a dense model): each GPU holds
    experts/ep experts, each split over etp GPUs (default tp) and seeing tokens*active*ep*etp/
    (experts*tp) rows (balanced routing: a GPU's share of the expert work is 1/tp of its TP
    group's tokens, whatever the split), counted by the share of the layers that are MoE."""
    if model.experts <= 1:
        return []
    h, f = float(model.hidden), float(model.ffn_hidden)
    g = 2.0 if model.gated_ffn else 1.0
    tp = np.asarray(tp, dtype=float)
    etp = tp if etp is None else np.asarray(etp, dtype=float)
    t_exp = tokens * model.active_experts * ep * etp / (model.experts * tp)
    n_exp = float(getattr(model, "moe_layer_fraction", 1.0)) * model.experts / (ep * np.ones_like(tp))
    return [(t_exp, g * f / etp, h, n_exp), (t_exp, h, f / etp, n_exp)]


def attention_core_flops_fwd(model: Any, micro_batch: Any, tp: Any) -> Any:
    """Q K^T and (softmax) V: 2 b s^2 heads (qk width + value width) / tp (= 4 b s^2 heads d when
    both are the head width); sliding-window layers over their window only."""
    s = float(model.seq_len)
    pairs = s * s * model.attention_pair_fraction(s)
    return micro_batch * pairs * model.heads * model.attention_flops_per_pair() / tp


def logits_flops_fwd(model: Any, tokens: Any, tp: Any) -> Any:
    return 2.0 * tokens * model.hidden * model.vocab / tp


def layer_flops_fwd(model: Any, micro_batch: Any, tp: Any = 1) -> Any:
    """All forward FLOPs of one layer on one GPU (GEMMs and attention core)."""
    tokens = micro_batch * model.seq_len
    g = sum(f * n for f, n in layer_gemms_fwd(model, tokens, tp))
    return g + attention_core_flops_fwd(model, micro_batch, tp)


def model_flops_per_iteration(model: Any, global_batch: Any, lora: bool = False) -> Any:
    """Model FLOPs (no recompute): 3 x forward of every layer and the logits, whole batch.
    LoRA (frozen base weights): the linear layers' weight gradients are not computed, so linear
    layers count 2 x forward, attention and logits 3 x (adapters, rank << h, not counted)."""
    fwd = model.layers * layer_flops_fwd(model, 1.0) + logits_flops_fwd(model, float(model.seq_len), 1.0)
    if lora:
        lin = model.layers * sum(f * n for f, n in layer_gemms_fwd(model, float(model.seq_len), 1.0))
        return global_batch * (3.0 * fwd - lin)
    return 3.0 * global_batch * fwd


def recompute_flops_per_iteration(model: Any, global_batch: Any, recompute: str,
                                  op_sac_share: float | None = None) -> Any:
    """Extra forward FLOPs spent recomputing: all layers (full) or, selective, the attention core
    (Megatron) or `op_sac_share` of the linear layers' forward (torchtitan's per-op checkpointing,
    memory.op_sac_recomputed_flop_share; its attention output is kept)."""
    if recompute == "full":
        return global_batch * model.layers * layer_flops_fwd(model, 1.0)
    if recompute == "selective" and op_sac_share is not None:
        linear = sum(f * n for f, n in layer_gemms_fwd(model, float(model.seq_len), 1.0))
        return global_batch * model.layers * op_sac_share * linear
    if recompute == "selective":
        return global_batch * model.layers * attention_core_flops_fwd(model, 1.0, 1.0)
    return 0.0 * global_batch


def hardware_flops_per_iteration(model: Any, global_batch: Any, recompute: str, lora: bool = False,
                                 recompute_share: float = 1.0, op_sac_share: float | None = None) -> Any:
    """`recompute_share`: the share of layers recomputed under partial (block) recomputation."""
    return (model_flops_per_iteration(model, global_batch, lora)
            + recompute_share * recompute_flops_per_iteration(model, global_batch, recompute, op_sac_share))


def six_n_d(model: Any, tokens: float) -> float:
    """The 6 x active parameters x tokens rule (Kaplan et al. 2020), for comparison only."""
    return 6.0 * model.params_active() * tokens
