"""Memory per GPU: weights, gradients, optimizer state, activations. Bytes; arrays or scalars.

Activations follow Korthikanti et al. 2022 (arXiv 2205.05198) sec. 4, 16-bit activations, one
transformer layer, one micro-batch of b sequences of s tokens, hidden h, a heads, tensor parallel t:
    no parallelism                      s b h (34 + 5 a s / h)                    (eq. 1)
    tensor parallel, no SP              s b h (10 + 24/t + 5 a s / (h t))         (eq. 2)
    tensor + sequence parallel          s b h / t (34 + 5 a s / h)                (eq. 4)
    selective recompute (+ SP)          s b h / t * 34                            (sec. 5)
    full recompute                      2 s b h (per layer input; / t with SP)    (sec. 4.3)
Generalised here to grouped-query attention, head_dim != h/a, FFN width != 4h, gated FFN and
experts by counting the same stored tensors; with the paper's GPT shapes it reduces to the
formulas above (tested). Flash attention stores no s x s tensors (the 5as/h term goes).
Pipeline: the first stage keeps p micro-batches in flight, L * act in total; interleaving adds a
factor 1 + (p - 1) / (p v) (sec. 4.2.3).
Mixed-precision AdamW: 2 (weights) + 2 (gradients) + 12 (fp32 master, m, v) = 16 bytes/param;
ZeRO stage 1 shards the 12, stage 2 also the gradients, stage 3 also the weights.
"""
from __future__ import annotations

from typing import Any

import numpy as np

WEIGHT_BYTES, GRAD_BYTES, OPTIMIZER_BYTES = 2.0, 2.0, 12.0


def korthikanti_activation_bytes(s: float, b: float, h: float, a: float, t: float = 1.0,
                                 recompute: str = "none", sequence_parallel: bool = False) -> float:
    """The paper's closed forms (GPT shapes: 4h FFN, multi-head attention), one layer."""
    if recompute == "full":
        return 2.0 * s * b * h / (t if sequence_parallel else 1.0)
    if recompute == "selective":
        return s * b * h * 34.0 / t if sequence_parallel else s * b * h * (10.0 + 24.0 / t)
    if sequence_parallel:
        return s * b * h / t * (34.0 + 5.0 * a * s / h)
    return s * b * h * (10.0 + 24.0 / t + 5.0 * a * s / (h * t))


def activation_bytes_per_layer(model: Any, micro_batch: Any, tp: Any, sequence_parallel: Any,
                               recompute_code: Any, flash: Any) -> Any:
    """Stored activation bytes of one layer, one micro-batch, one GPU. recompute_code 0/1/2 =
    none/selective/full. Arrays broadcast."""
    return activation_bytes_and_whole(model, micro_batch, tp, sequence_parallel, recompute_code, flash)[0]


def activation_bytes_and_whole(model: Any, micro_batch: Any, tp: Any, sequence_parallel: Any,
                               recompute_code: Any, flash: Any, gemm_input_bytes: float = 2.0) -> tuple[Any, Any]:
    """(stored bytes under the recompute mode, bytes of the whole layer with nothing recomputed),
    one layer, one micro-batch, one GPU, from one pass (the search evaluates both per plan).

    `gemm_input_bytes`: what a linear layer keeps of its input for the weight gradient, per element:
    2 (16-bit), or 1 under fp8/fp4 training with Transformer Engine, which saves the quantized input
    it already made for the forward GEMM, column-wise only (NVIDIA/TransformerEngine @d0067d0
    pytorch/module/linear.py: "Discard row-wise data since it is not needed in backward pass",
    saved_inputmat = inputmat; module/layernorm_linear.py: ln_out_to_save = ln_out). The attention
    output is then kept twice: 16-bit by flash attention for its own backward, fp8 by the projection."""
    s, h = float(model.seq_len), float(model.hidden)
    sb = s * micro_batch
    kvh = float(model.heads if getattr(model, "mla", False) else model.kv_heads)  # MLA trains with per-head K, V
    q, k_w = model.heads * float(model.qk_head_dim), kvh * float(model.qk_head_dim)
    v_w, o_w = kvh * float(model.value_head_dim), model.heads * float(model.value_head_dim)
    fk = float(model.active_ffn_width())  # routed + shared expert widths (dense FFN in dense layers)
    sp = np.asarray(sequence_parallel, dtype=bool)
    t = np.asarray(tp, dtype=float)
    g = float(gemm_input_bytes)
    # Outside the tensor-parallel region (split by t only with SP): 2 LayerNorm inputs (4sbh),
    # the QKV and FFN-in GEMM inputs (2sbh each at 16 bits), 2 dropout masks (sbh each) = 10 sbh;
    # a model trained without dropout keeps no masks (TransformerSpec.dropout).
    masks = 2.0 if model.dropout else 0.0
    outside = (4.0 + 2.0 * g + masks) * sb * h
    # Inside the region (split by t): Q, K, V (2 bytes each), output-projection input, FFN
    # activation input (gate and up when gated), FFN-out input; for GPT shapes 24 sbh at 16 bits.
    # Under an 8-bit GEMM input the output projection keeps its fp8 cast while flash attention
    # keeps its own 16-bit output for its backward: a second copy, gone when selective recompute
    # rebuilds the core attention (Megatron's 'core_attn' checkpoint holds the flash kernel too).
    flash_out = np.where((g < 2.0) & np.asarray(flash, dtype=bool), 2.0 * o_w, 0.0) * sb
    inside = sb * (2.0 * q + 2.0 * k_w + 2.0 * v_w + g * o_w + 2.0 * fk * (2.0 if model.gated_ffn else 1.0) + g * fk)
    # Softmax output (2 bytes), its dropout mask (1) and dropout output (2): 5 a s^2 b (2 without dropout).
    scores = np.where(np.asarray(flash, dtype=bool), 0.0, (5.0 if model.dropout else 2.0) * model.heads * s * sb)
    out_div = np.where(sp, t, 1.0)
    none = outside / out_div + (inside + flash_out + scores) / t
    selective = outside / out_div + inside / t
    full = 2.0 * sb * h / out_div
    rc = np.asarray(recompute_code)
    return np.where(rc == 2, full, np.where(rc == 1, selective, none)), none


def op_sac_linear_shapes(model: Any) -> list[tuple[float, float]]:
    """(input, output) widths of a layer's linear layers in the order a forward runs them: q, k, v, o,
    then gate, up, down (a gated FFN, torchtitan's w1, w3, w2) or fc1, fc2."""
    kvh = float(model.heads if getattr(model, "mla", False) else model.kv_heads)
    f, h = float(model.active_ffn_width()), float(model.hidden)
    o_in = float(model.heads * model.value_head_dim)
    attn = [(h, model.heads * float(model.qk_head_dim)), (h, kvh * float(model.qk_head_dim)),
            (h, kvh * float(model.value_head_dim)), (o_in, h)]
    return attn + ([(h, f), (h, f), (f, h)] if model.gated_ffn else [(h, f), (f, h)])


def op_sac_recomputed_flop_share(model: Any) -> float:
    """Share of a layer's forward linear FLOPs that op-level selective checkpointing recomputes:
    every second linear layer in forward order (op_sac_activation_bytes), by input x output width."""
    work = [i * o for i, o in op_sac_linear_shapes(model)]
    return sum(work[1::2]) / sum(work)


def op_sac_activation_bytes(model: Any, micro_batch: Any, tp: Any, sequence_parallel: Any) -> Any:
    """Stored bytes of one layer, one micro-batch, one GPU under torchtitan's per-op selective
    activation checkpointing (torchtitan/distributed/activation_checkpoint.py SelectiveAC; the same
    policy as torchtitan/parallelisms/parallelize_llama.py _save_list at 9dec370, Dec 2024): the
    block is checkpointed, its input kept, and inside it the outputs of the matmuls are saved
    except every second one ("Saves output of all compute ops, except every second mm"), with the
    attention output (and its log-sum-exp) and the reduce-scatters; everything else (norms, RoPE,
    SiLU, products) is recomputed. 16-bit outputs; a column-parallel output is split by t, the
    row-parallel down projection's partial sums are not, its reduce-scatter (with SP) is."""
    s, h = float(model.seq_len), float(model.hidden)
    sb = s * micro_batch
    t = np.asarray(tp, dtype=float)
    sp = np.asarray(sequence_parallel, dtype=bool)
    out_div = np.where(sp, t, 1.0)
    saved = [o for _, o in op_sac_linear_shapes(model)[0::2]]  # the 1st, 3rd, ... linear outputs
    row_parallel = saved[-1] if model.gated_ffn else 0.0  # down projection (gated: 7th linear, saved)
    column = sum(saved) - row_parallel
    attn_out = model.heads * float(model.value_head_dim) * 2.0 + 4.0 * model.heads  # output + fp32 log-sum-exp
    reduce_scatter = np.where(sp & (t > 1), 2.0 * 2.0 * h / t, 0.0)  # o and down reduce-scatters, saved with SP
    return sb * (2.0 * h / out_div + 2.0 * column / t + attn_out / t + 2.0 * row_parallel + reduce_scatter)


def frozen_ffn_input_bytes(model: Any, micro_batch: Any, tp: Any, sequence_parallel: Any,
                           gemm_input_bytes: float = 2.0) -> Any:
    """Activation bytes of one layer that a frozen FFN need not store: the FFN-in GEMM input
    (g s b h, split by t with SP) and the FFN-out GEMM input (g s b f k / t), g bytes per element. A linear layer keeps
    its input only for its weight gradient (dX = dY W^T needs W, not X); with LoRA adapters on the
    attention only, the FFN weights are frozen and get no gradient (PyTorch autograd and Transformer
    Engine save a linear input only when the weight requires grad)."""
    sb, g = float(model.seq_len) * micro_batch, float(gemm_input_bytes)
    t = np.asarray(tp, dtype=float)
    out_div = np.where(np.asarray(sequence_parallel, dtype=bool), t, 1.0)
    return g * sb * float(model.hidden) / out_div + g * sb * float(model.active_ffn_width()) / t


def lora_dropout_bytes(model: Any, micro_batch: Any, tp: Any, sequence_parallel: Any, targets: str,
                       flash: Any) -> Any:
    """Activation bytes of one layer that LoRA adapters with input ("pre") dropout add: each adapter
    drops out its input before its A matrix (NeMo ParallelLinearAdapter.forward, dropout_position
    'pre', NVIDIA/NeMo @f85c9e53 nemo/collections/nlp/modules/common/megatron/adapters/
    parallel_adapters.py), so it keeps the 1-byte mask and, as A's saved input, the dropped copy in
    place of the input itself. The copy costs nothing more where nothing else keeps the input (the
    QKV and FFN-in inputs: LayerNorm outputs the frozen base layers do not keep; the FFN-out input,
    which the activation's backward does not need), but the projection's input is the attention
    output that flash attention keeps for its own backward: 2 bytes more there. Widths per GPU: the
    QKV and FFN-in inputs are split by t under SP only, the projection and FFN-out inputs by t."""
    sb = float(model.seq_len) * micro_batch
    masks = lora_dropout_elements(model, sb, tp, sequence_parallel, targets)  # 1 byte each
    proj_copy = 2.0 * sb * float(model.heads * model.value_head_dim) / np.asarray(tp, dtype=float)
    return masks + np.where(np.asarray(flash, dtype=bool), proj_copy, 0.0)


def lora_dropout_elements(model: Any, tokens: Any, tp: Any, sequence_parallel: Any, targets: str) -> Any:
    """Elements per GPU the adapters' input dropout passes over in one direction, per layer (the
    adapted layers' input widths, split as in lora_dropout_bytes)."""
    t = np.asarray(tp, dtype=float)
    out_div = np.where(np.asarray(sequence_parallel, dtype=bool), t, 1.0)
    h, o_w = float(model.hidden), float(model.heads * model.value_head_dim)
    width = h / out_div + o_w / t
    if targets != "attention":
        width = width + h / out_div + float(model.active_ffn_width()) / t
    return tokens * width


def pipeline_activation_factor(pp: Any, interleave: Any, micro_batches: Any) -> Any:
    """Micro-batches the first stage holds, in units of one stage's layers (Korthikanti sec. 4.2.3):
    min(p, m) without interleaving; times 1 + (p-1)/(p v) with it."""
    p = np.asarray(pp, dtype=float)
    inflight = np.minimum(p, micro_batches)
    inter = np.where(np.asarray(interleave) > 1, 1.0 + (p - 1.0) / (p * interleave), 1.0)
    return inflight * inter


def logits_bytes(model: Any, micro_batch: Any, tp: Any) -> Any:
    """fp32 logits and their softmax for the loss on the last stage: 4 s b V / t (x2)."""
    return 8.0 * model.seq_len * micro_batch * model.vocab / np.asarray(tp, dtype=float)


def state_bytes(params_per_gpu: Any, dp: Any, zero_stage: Any, grad_bytes: float = GRAD_BYTES) -> tuple[Any, Any, Any]:
    """(weights, gradients, optimizer) bytes per GPU for mixed-precision AdamW under ZeRO.
    `grad_bytes`: the dtype gradients are accumulated in (Megatron keeps fp32 `main_grad`
    buffers when it reduces in fp32: 4 bytes, 18 bytes/param in all)."""
    z = np.asarray(zero_stage)
    d = np.asarray(dp, dtype=float)
    w = params_per_gpu * WEIGHT_BYTES / np.where(z >= 3, d, 1.0)
    g = params_per_gpu * grad_bytes / np.where(z >= 2, d, 1.0)
    o = params_per_gpu * OPTIMIZER_BYTES / np.where(z >= 1, d, 1.0)
    return w, g, o
