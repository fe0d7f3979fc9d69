"""Memory of one serving replica's GPU: weights, the workspace of the largest step, and the KV
cache the rest holds (streams per replica)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recoque.planner import serving_rates as sr
from recoque.planner.serving_request import ServingRequest
from recoque.planner.serving_step import (Layout, adp_whole_params, attention_split, kv_bytes_per_token_per_gpu,
                                          mla_replicated_params, moe_tp)


@dataclass(frozen=True)
class Memory:
    usable_bytes: float
    weights_bytes: float
    workspace_bytes: float
    kv_bytes_per_token: float   # on one GPU (its layers, its KV heads)
    kv_tokens_per_stream: float
    max_streams: int            # by KV memory, per replica


def weights_bytes_per_gpu(model: Any, req: ServingRequest, lay: Layout, adp_whole: tuple[str, ...] = ()) -> float:
    """Layers split over pp stages; attention and dense weights over tp, but for what each rank holds
    whole (MLA's down-projections; under attention DP the attention and, where the engine says so,
    `adp_whole`, the shared and dense-first FFNs and the LM head); experts over ep (else tp).
    Embedding and LM head split over tp (vocab-parallel)."""
    wb = req.stored_bytes(req.weights)
    dense_layer = float(model.nonexpert_params_per_layer()) if model.moe else float(model.layer_params())
    if lay.attn_dp:  # each GPU holds the whole attention weights
        dense_layer += (lay.tp - 1.0) * (model.attention_params_per_layer()
                                         + adp_whole_params(model, lay, "ffn" in adp_whole))
    else:
        dense_layer += (lay.tp - 1.0) * mla_replicated_params(model)
    head = float(model.hidden * model.vocab) * (lay.tp - 1.0) if lay.attn_dp and "lm_head" in adp_whole else 0.0
    expert_share = model.routed_expert_params_per_layer() / (lay.ep * moe_tp(lay))  # ep groups, each expert over tp / ep
    layers = model.layers / lay.pp
    # attention projections a checkpoint keeps in another dtype: their bytes at that width
    apart = 0.0
    for share, dt in zip(attention_split(model), req.attention_dtypes):
        apart += layers * share * (lay.tp if lay.attn_dp else 1.0) / lay.tp * (req.stored_bytes(dt) - wb)
    return (layers * (dense_layer / lay.tp + expert_share) + (float(model.embedding_params()) + head) / lay.tp) * wb + apart


def output_spread(req: ServingRequest) -> float:
    """The squared CV of the output lengths: the request's (output_cv2, else length_cv2), else the
    stated default (seeds/serving.toml [kernel] service_cv2, its central value)."""
    if req.output_cv2 is not None:
        return float(req.output_cv2)
    if req.length_cv2 is not None:
        return float(req.length_cv2)
    return float(sr.kernel_constants().get("service_cv2", 0.0))


def step_budget_tokens(req: ServingRequest, engine: sr.Engine) -> float:
    """Tokens one engine step may carry: the user's setting, else the engine's default."""
    return float(req.max_num_tokens or engine.max_num_tokens)


def workspace_bytes(model: Any, lay: Layout, budget: float, seqs: float) -> float:
    """Activations of the largest step the engine sizes for, its token budget t (vLLM profiles one
    max-size batch at start-up): t x (4 hidden + 2 ffn/tp) x 2 bytes, and fp32 logits for the one
    position each of its s sequences samples, s = min(t, the batch cap): s x vocab x 4 bytes (vLLM
    gpu_model_runner computes logits on hidden_states[logits_indices] and sizes its sampler dummy run
    at max_num_seqs; TensorRT-LLM keeps context logits only with gather_context_logits, off by
    default). Not t x vocab: that is 13 GB for gpt-oss at t = 16,384."""
    return (budget * (4.0 * model.hidden + 2.0 * model.dense_ffn_width / lay.tp) * 2.0
            + min(budget, seqs) * model.vocab * 4.0 / lay.tp)


def held_kv_fraction(model: Any, windowed_kv_memory: bool, tokens: float) -> float:
    """Share of a full-attention KV cache that a stream of `tokens` holds in memory: sliding-window
    layers keep only their window where the engine frees the blocks out of it (seeds/serving.toml
    [engines.*] windowed_kv_memory; TensorRT-LLM sizes them as full attention)."""
    return model.kv_layer_fraction(tokens) if windowed_kv_memory else 1.0


def memory(model: Any, spec: Any, req: ServingRequest, lay: Layout, engine: sr.Engine) -> Memory:
    frac, cap = req.hbm_fraction or engine.usable_hbm_fraction, sr.hbm_capacity_bytes(spec)
    w, ws = weights_bytes_per_gpu(model, req, lay, engine.attention_dp_whole), workspace_bytes(model, lay, step_budget_tokens(req, engine),
                                                                               float(req.max_batch or engine.max_batch))
    # TensorRT-LLM gives the KV cache a fraction of the memory left after weights and activations;
    # vLLM and SGLang cap weights + activations + KV together at a fraction of the whole memory
    usable = w + ws + frac * (cap - w - ws) if engine.kv_fraction_of_free else frac * cap
    # blocks allocated as tokens come: a running stream holds P + its age, length-biased (serving._Replica.ctx)
    per_stream = req.prompt_tokens + (req.output_tokens if engine.kv_reserve == "full"
                                      else req.output_tokens / 2.0 * (1.0 + output_spread(req)))
    kv_tok = kv_bytes_per_token_per_gpu(model, lay, req.stored_bytes(req.kv_cache)) * held_kv_fraction(model, engine.windowed_kv_memory, per_stream)
    free = usable - w - ws
    streams = int(free // (kv_tok * per_stream)) if free > 0 else 0
    return Memory(usable, w, ws, kv_tok, per_stream, streams)
