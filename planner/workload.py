"""Workload: a decoder transformer (optionally mixture-of-experts) and what it is trained on.

Presets live in seeds/models.toml (units and meaning in the keys, a source per model); a user
passes a path to a TOML file with one `[models.<key>]` table in the same layout.
Parameter counts are derived from the architecture, never copied: the tests hold them against
the published sizes.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

from recoque.errors import BadInput
from recoque.names import resolve_key, unknown_hint

_INT_KEYS = ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "vocab", "seq_len_tokens",
             "experts", "active_experts", "head_dim", "shared_experts", "dense_layers", "dense_ffn_hidden",
             "q_lora_rank", "kv_lora_rank", "rope_head_dim", "v_head_dim", "expert_groups", "group_topk",
             "sliding_window", "sliding_layers", "context_window_tokens", "fp8_weight_block")
_BOOL_KEYS = ("gated_ffn", "tied_embeddings", "learned_positions", "linear_bias", "dropout", "glu_clamp")


def memo(fn: Any) -> Any:
    """Cache a pure derived count of a frozen spec on the instance, by its arguments: the serving
    model asks for the same counts ~10^6 times in a check-set run. Kept in the instance __dict__,
    not a field: equality, repr and fields() ignore it, replace() starts a new spec with none (keys
    are names, not functions, so a pickled spec stays picklable)."""
    name = fn.__name__

    @functools.wraps(fn)
    def cached(self: Any, *args: Any, **kw: Any) -> Any:
        key = (name, args, tuple(kw.items())) if args or kw else name
        d = self.__dict__
        try:
            return d["_memo"][key]
        except KeyError:
            d.setdefault("_memo", {})[key] = value = fn(self, *args, **kw)
            return value
    return cached


def spec_memo(fn: Any) -> Any:
    """`memo` for a module function of one model (planner.serving_step's pure per-model counts):
    cached on a TransformerSpec, computed every time for anything else (a test's stand-in object
    may change between calls)."""
    name = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def cached(model: Any) -> Any:
        if type(model) is not TransformerSpec:
            return fn(model)
        d = model.__dict__
        try:
            return d["_memo"][name]
        except KeyError:
            d.setdefault("_memo", {})[name] = value = fn(model)
            return value
    return cached


@dataclass(frozen=True)
class TransformerSpec:
    """Decoder-only transformer. `ffn_hidden` is per expert; `seq_len` in tokens."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    ffn_hidden: int
    gated_ffn: bool
    vocab: int
    seq_len: int
    experts: int = 1
    active_experts: int = 1
    tied_embeddings: bool = False
    learned_positions: bool = False
    head_dim: int = 0  # 0: hidden // heads
    norm: str = "layernorm"  # "layernorm" (weight + bias) or "rmsnorm" (weight)
    linear_bias: bool = False
    # The model trains with dropout (after attention and FFN, and on the attention probabilities when
    # attention is unfused): Megatron-LM's default (hidden and attention dropout 0.1), which is what
    # Korthikanti et al. 2022 count. false where the published config sets none (Llama, Mistral,
    # Qwen, DeepSeek: attention_dropout 0.0 and no residual dropout): PyTorch's dropout with p = 0
    # returns its input and keeps no mask (ATen native/Dropout.cpp), so no mask is stored.
    dropout: bool = True
    # The gated activation clamps both halves of its input before the product (gpt-oss: SwiGLU with
    # limit 7.0, x_glu.clamp(max=limit), x_linear.clamp(-limit, limit): github.com/openai/gpt-oss
    # @0568dfc gpt_oss/torch/model.py swiglu; Hugging Face config.json swiglu_limit). Training
    # stacks that run it outside a fused expert MLP pay the clamps as kernels of their own.
    glu_clamp: bool = False
    # DeepSeek-V2/V3 shape (DeepSeek-V3 technical report, arXiv 2412.19437, sec. 2.1 and 4.2):
    # shared experts every token passes through beside its routed ones (width ffn_hidden each); the
    # first `dense_layers` layers with one dense FFN of `dense_ffn_hidden` instead of experts.
    shared_experts: int = 0
    dense_layers: int = 0
    dense_ffn_hidden: int = 0  # 0: ffn_hidden
    # Multi-head latent attention (MLA; arXiv 2405.04434 sec. 2.1): K and V are up-projected from a
    # cached latent of kv_lora_rank plus one shared RoPE key of rope_head_dim; queries through a
    # q_lora_rank latent (0: a direct projection). head_dim is then the non-RoPE part of a query/key
    # head, v_head_dim the value head (0: head_dim). 0 = ordinary (GQA) attention.
    # Group-limited routing (DeepSeek-V3 sec. 2.1.2 / 4.2: experts in `expert_groups` groups, a
    # token's experts from at most `group_topk` of them; with experts spread over nodes by group, at
    # most that many nodes). 0 = unlimited.
    expert_groups: int = 0
    group_topk: int = 0
    # Sliding-window attention (gpt-oss: every other layer attends to the last `sliding_window`
    # tokens only): `sliding_layers` of the layers do, the rest attend to the whole context.
    sliding_window: int = 0
    sliding_layers: int = 0
    # The longest prompt + output the released model serves (its config's max_position_embeddings,
    # what vLLM takes as max_model_len); 0 = not stated, nothing checked.
    context_window_tokens: int = 0
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    rope_head_dim: int = 0
    v_head_dim: int = 0
    # The released FP8 checkpoint scales its weights per square block of this many rows and columns
    # (DeepSeek-V3/R1: quantization_config weight_block_size [128, 128]); 0: per-tensor or
    # per-channel scales, or no FP8 checkpoint. Engines run such weights through block-scaled GEMMs.
    fp8_weight_block: int = 0
    # The precision of the released weights (DeepSeek-V3/R1: an FP8 checkpoint; gpt-oss: MXFP4
    # experts): what serving takes when no dtype is asked for (bf16 | fp8 | fp4, checked where the
    # model file is read: recoque.inputs).
    released_weights: str = "bf16"
    # The released checkpoint's attention projections where they are not in released_weights (its
    # quantization leaves them out: gpt-oss's stay BF16 beside MXFP4 experts); "": the same.
    released_attention_weights: str = ""
    # The block format of a released fp4 checkpoint (mxfp4: gpt-oss, AMD Quark; nvfp4: NVIDIA
    # ModelOpt, llm-compressor): its scales' bytes (planner.serving_request.FP4_SCALE_BYTES); "":
    # not released in fp4, or not recorded.
    released_fp4_format: str = ""
    # The KV-cache dtype the checkpoint's quantization records (ModelOpt kv_cache_quant_algo FP8,
    # compressed-tensors kv_cache_scheme): an engine whose default KV dtype follows the checkpoint
    # (TensorRT-LLM) serves it so; "": none recorded, the engine's default.
    released_kv_cache: str = ""
    key: str = ""
    sources: Mapping[str, str] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        for k in ("layers", "hidden", "heads", "kv_heads", "ffn_hidden", "vocab", "seq_len", "experts",
                  "active_experts"):
            v = getattr(self, k)
            if not isinstance(v, int) or v <= 0:
                raise BadInput(f"model {self.name}: `{k}` must be a positive integer, got {v!r}", "fix the model file")
        if self.heads % self.kv_heads:
            raise BadInput(f"model {self.name}: heads {self.heads} not a multiple of kv_heads {self.kv_heads}",
                           "kv_heads must divide heads (GQA)")
        if self.active_experts > self.experts:
            raise BadInput(f"model {self.name}: active_experts above experts", "fix the model file")
        for k in ("shared_experts", "dense_layers", "dense_ffn_hidden", "q_lora_rank", "kv_lora_rank",
                  "rope_head_dim", "v_head_dim", "expert_groups", "group_topk", "sliding_window", "sliding_layers",
                  "context_window_tokens", "fp8_weight_block"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BadInput(f"model {self.name}: `{k}` must be a non-negative integer, got {v!r}", "fix the model file")
        if (self.shared_experts or self.dense_layers) and self.experts <= 1:
            raise BadInput(f"model {self.name}: shared_experts and dense_layers need a mixture of experts",
                           "set experts and active_experts, or drop them")
        if self.dense_layers >= self.layers:
            raise BadInput(f"model {self.name}: dense_layers {self.dense_layers} leaves no MoE layer of {self.layers}",
                           "dense_layers counts the first layers with a dense FFN; it must be below layers")
        if (self.expert_groups or self.group_topk) and not (
                self.experts > 1 and self.expert_groups and 0 < self.group_topk <= self.expert_groups
                and self.experts % self.expert_groups == 0):
            raise BadInput(f"model {self.name}: group-limited routing needs expert_groups dividing the experts "
                           "and 0 < group_topk <= expert_groups", "fix expert_groups / group_topk, or drop both")
        if bool(self.sliding_window) != bool(self.sliding_layers) or self.sliding_layers > self.layers:
            raise BadInput(f"model {self.name}: sliding_window and sliding_layers go together, at most `layers` layers",
                           "give both (the window in tokens, how many layers use it), or neither")
        if self.kv_lora_rank and self.kv_heads != self.heads:
            raise BadInput(f"model {self.name}: latent attention (kv_lora_rank) up-projects a key and value per head",
                           "set kv_heads equal to heads (or leave kv_heads out)")
        if (self.q_lora_rank or self.rope_head_dim) and not self.kv_lora_rank:
            raise BadInput(f"model {self.name}: q_lora_rank / rope_head_dim are latent-attention (MLA) keys",
                           "give kv_lora_rank too, or drop them")
        if self.head_dim == 0:
            if self.hidden % self.heads:
                raise BadInput(f"model {self.name}: hidden not divisible by heads", "give head_dim explicitly")
            object.__setattr__(self, "head_dim", self.hidden // self.heads)
        if self.sources is None:
            object.__setattr__(self, "sources", {})

    # --- attention shape ---------------------------------------------------------------------
    @functools.cached_property  # pure in the fields; read ~10^6 times a check-set run
    def mla(self) -> bool:
        return self.kv_lora_rank > 0

    @functools.cached_property  # pure in the fields; read ~10^6 times a check-set run
    def qk_head_dim(self) -> int:
        """Width of one query/key head (MLA: the non-RoPE part plus the RoPE part)."""
        return self.head_dim + self.rope_head_dim

    @functools.cached_property  # pure in the fields; read ~10^6 times a check-set run
    def value_head_dim(self) -> int:
        return self.v_head_dim or self.head_dim

    def tp_takes_kv_heads(self, tp: int) -> bool:
        """Megatron shards the KV heads over the TP ranks, or replicates them once TP exceeds them:
        either tp divides the KV heads or they divide tp."""
        return self.kv_heads % tp == 0 or tp % self.kv_heads == 0

    def kv_cache_elems_per_token_layer(self, tp: float = 1.0) -> float:
        """Cached elements of one token in one layer on one of `tp` GPUs: K and V of the GPU's KV
        heads (GQA: split over TP, replicated once TP exceeds them); MLA: the latent and the RoPE
        key, which every head reads, so each TP rank holds all of it (arXiv 2405.04434 sec. 2.1.2)."""
        if self.mla:
            return float(self.kv_lora_rank + self.rope_head_dim)
        return 2.0 * max(self.kv_heads / tp, 1.0) * self.head_dim

    def attention_pair_fraction(self, tokens: float, causal: bool = False) -> float:
        """Average over the layers of the (query, key) pairs one sequence of `tokens` computes, as a
        fraction of a full-attention layer's (tokens^2, or tokens^2 / 2 causal): a sliding-window
        layer sees at most `sliding_window` keys per query."""
        if not self.sliding_layers or tokens <= 0:
            return 1.0
        w = min(float(self.sliding_window), tokens)
        slid = (w * (tokens - w / 2.0)) / (tokens * tokens / 2.0) if causal else w / tokens
        f = self.sliding_layers / self.layers
        return (1.0 - f) + f * slid

    def kv_layer_fraction(self, tokens: float) -> float:
        """Share of the layers' cache one stream of `tokens` holds, against every layer holding all of
        them: a sliding-window layer keeps only the last `sliding_window` tokens (the keys a query of
        the non-causal count sees)."""
        return self.attention_pair_fraction(tokens, causal=False)

    def attention_flops_per_pair(self) -> float:
        """Forward FLOPs per head per (query, key) pair: Q.K over qk_head_dim and P.V over the value width."""
        return 2.0 * (self.qk_head_dim + self.value_head_dim)

    @memo
    def decode_attention_flops_per_pair(self) -> float:
        """Per head per cached token in decode. MLA decodes in the latent space (the up-projections
        absorbed into the query and output, arXiv 2405.04434 sec. 2.1.2): scores over kv_lora_rank +
        rope_head_dim, values over kv_lora_rank."""
        if self.mla:
            return 2.0 * (2 * self.kv_lora_rank + self.rope_head_dim)
        return self.attention_flops_per_pair()

    # --- layer mix (MoE layers, dense-first layers, shared experts) ---------------------------
    @functools.cached_property  # pure in the fields; read ~10^6 times a check-set run
    def moe(self) -> bool:
        return self.experts > 1

    @functools.cached_property  # pure in the fields; read ~10^6 times a check-set run
    def moe_layer_fraction(self) -> float:
        """Share of layers with experts (the rest carry one dense FFN)."""
        return (self.layers - self.dense_layers) / self.layers if self.moe else 0.0

    @functools.cached_property  # pure in the fields; read ~10^6 times a check-set run
    def dense_ffn_width(self) -> int:
        return self.dense_ffn_hidden or self.ffn_hidden

    @memo
    def active_ffn_width(self) -> float:
        """FFN width one token passes through in an average layer: routed + shared experts in MoE
        layers, the dense FFN in the others (= ffn_hidden x active_experts for a plain MoE)."""
        if not self.moe:
            return float(self.ffn_hidden)
        m = self.moe_layer_fraction
        return m * (self.active_experts + self.shared_experts) * self.ffn_hidden + (1.0 - m) * self.dense_ffn_width

    @functools.cached_property  # pure in the fields; read ~10^6 times a check-set run
    def routed_per_layer(self) -> float:
        """Routed expert slots per token in an average layer (what crosses an expert all-to-all)."""
        return self.active_experts * self.moe_layer_fraction if self.moe else 0.0

    def offnode_destinations(self, nodes: float) -> float:
        """Other nodes one token's routed experts land on, in expectation, when the experts are spread
        evenly over `nodes` nodes (uniform routing: each of active_experts picks hits a given node with
        probability 1/nodes); group-limited routing caps the nodes at group_topk when a node holds
        whole groups. What a deduplicating dispatcher (one copy per node) sends across the network."""
        if not self.moe or nodes <= 1:
            return 0.0
        hit = 1.0 - (1.0 - 1.0 / nodes) ** self.active_experts
        d = (nodes - 1.0) * hit
        if self.group_topk and self.expert_groups % nodes == 0:
            d = min(d, self.group_topk * (nodes - 1.0) / nodes)
        return d

    # --- parameter counts -------------------------------------------------------------------
    @memo
    def attention_params_per_layer(self) -> int:
        h, n = self.hidden, self.heads
        if self.mla:
            qk, v = self.qk_head_dim, self.value_head_dim
            q = (h * self.q_lora_rank + self.q_lora_rank * n * qk + self.q_lora_rank) if self.q_lora_rank else h * n * qk
            kv = h * (self.kv_lora_rank + self.rope_head_dim) + self.kv_lora_rank * n * (self.head_dim + v) + self.kv_lora_rank
            return q + kv + n * v * h  # latent RMSNorm weights counted with their latents
        q = self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        bias = (q + 2 * kv + self.hidden) if self.linear_bias else 0
        return self.hidden * (q + 2 * kv) + q * self.hidden + bias

    @memo
    def expert_params(self) -> int:
        """One expert's FFN (one dense FFN when not MoE)."""
        return self._ffn_params(self.ffn_hidden)

    def _ffn_params(self, width: int) -> int:
        mats = 3 if self.gated_ffn else 2
        bias = ((2 if self.gated_ffn else 1) * width + self.hidden) if self.linear_bias else 0
        return mats * self.hidden * width + bias

    def norm_params_per_layer(self) -> int:
        return 2 * self.hidden * (2 if self.norm == "layernorm" else 1)

    def router_params_per_layer(self) -> int:
        return self.hidden * self.experts if self.moe else 0

    @memo
    def nonexpert_params_per_layer(self) -> float:
        """Average layer: attention, norms and everything not split over expert parallelism (router and
        shared experts of the MoE layers, the dense FFN of the dense-first layers)."""
        base = self.attention_params_per_layer() + self.norm_params_per_layer()
        if not self.moe:
            return float(base + self.expert_params())
        m = self.moe_layer_fraction
        return (base + m * (self.router_params_per_layer() + self.shared_experts * self.expert_params())
                + (1.0 - m) * self._ffn_params(self.dense_ffn_width))

    def routed_expert_params_per_layer(self, active_only: bool = False) -> float:
        """Average layer: the routed experts (all of them, or the active ones of one token)."""
        if not self.moe:
            return 0.0
        return self.moe_layer_fraction * (self.active_experts if active_only else self.experts) * self.expert_params()

    @memo
    def layer_params(self, active_only: bool = False) -> float:
        """Parameters of an average layer (exact for a uniform stack)."""
        return self.nonexpert_params_per_layer() + self.routed_expert_params_per_layer(active_only)

    def embedding_params(self) -> int:
        """Input embedding, output projection when untied, position table, final norm."""
        emb = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        pos = self.seq_len * self.hidden if self.learned_positions else 0
        final_norm = self.hidden * (2 if self.norm == "layernorm" else 1)
        return emb + pos + final_norm

    def params_total(self) -> int:
        return round(self.layers * self.layer_params()) + self.embedding_params()

    def params_active(self) -> int:
        """Parameters touched per token (MoE: the active experts only)."""
        return round(self.layers * self.layer_params(active_only=True)) + self.embedding_params()

    def with_overrides(self, **kw: Any) -> "TransformerSpec":
        if "seq_len_tokens" in kw:
            kw["seq_len"] = kw.pop("seq_len_tokens")
        derived = self.heads and self.head_dim == self.hidden // self.heads
        if ("hidden" in kw or "heads" in kw) and "head_dim" not in kw and derived:
            # a head size that was hidden / heads follows the new shape (re-derived in __post_init__);
            # kept, it would give 64 heads of BLOOM's 128 on a 12,288-wide model 8,192-wide projections
            kw["head_dim"] = 0
        return replace(self, **kw)


LORA_TARGETS = ("all", "attention")


@dataclass(frozen=True)
class TrainingWorkload:
    """A model, how many tokens to train it on, and the global batch (in sequences)."""

    model: TransformerSpec
    tokens_to_train: float
    global_batch_seqs: int
    seq_len: int = 0  # 0: the model's seq_len
    tokens_published: bool = True
    sources: Mapping[str, str] = None  # type: ignore[assignment]
    # LoRA fine-tuning (Hu et al. 2021): the base weights are frozen (no weight gradients, no
    # optimizer state for them) and adapters of this rank; 0 = full training.
    lora_rank: int = 0
    # Which linear layers carry adapters: "all" (QKV, projection, FFN) or "attention" (QKV and
    # projection only; the MLPerf Llama-2-70B LoRA reference, NeMo target_modules ['attention']).
    lora_targets: str = "all"
    # Dropout probability on each adapter's input (NeMo adapter_dropout with dropout_position 'pre',
    # Hugging Face PEFT lora_dropout): 0, the default of NeMo's ParallelLinearAdapterConfig, keeps
    # no mask; MLPerf's Llama-2-70B LoRA reference and recipes set 0.1 (memory.lora_dropout_bytes).
    lora_dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.seq_len == 0:
            object.__setattr__(self, "seq_len", self.model.seq_len)
        if self.model.seq_len != self.seq_len:
            object.__setattr__(self, "model", replace(self.model, seq_len=self.seq_len))
        if not isinstance(self.global_batch_seqs, int) or self.global_batch_seqs <= 0:
            raise BadInput(f"workload {self.model.name}: global_batch_seqs must be a positive integer",
                           "fix the workload file")
        if self.tokens_to_train <= 0:
            raise BadInput(f"workload {self.model.name}: tokens_to_train must be positive", "fix the workload file")
        if self.sources is None:
            object.__setattr__(self, "sources", {})
        if isinstance(self.lora_rank, bool) or not isinstance(self.lora_rank, int) or self.lora_rank < 0:
            raise BadInput(f"workload {self.model.name}: lora_rank must be a non-negative integer", "fix the workload")
        if self.lora_rank >= self.model.hidden:  # not low-rank: the adapters would outweigh the frozen layers
            raise BadInput(f"workload {self.model.name}: LoRA rank {self.lora_rank} is not below the hidden size "
                           f"{self.model.hidden}", "give a rank well below it; MLPerf's Llama-2-70B LoRA uses 16")
        p = self.lora_dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p < 1.0:
            raise BadInput(f"workload {self.model.name}: lora_dropout must be a probability in [0, 1), got {p!r}",
                           "give the adapters' dropout, e.g. 0.1, or 0 for none")
        if p > 0.0 and self.lora_rank == 0:
            raise BadInput(f"workload {self.model.name}: lora_dropout needs LoRA (lora_rank > 0)",
                           "give the adapter rank, or leave lora_dropout out")
        if self.lora_targets not in LORA_TARGETS:
            raise BadInput(f"workload {self.model.name}: lora_targets must be one of {LORA_TARGETS}, "
                           f"got {self.lora_targets!r}", "fix the workload")

    @property
    def tokens_per_iteration(self) -> int:
        return self.global_batch_seqs * self.seq_len

    @property
    def iterations(self) -> float:
        return self.tokens_to_train / self.tokens_per_iteration


# --- loading ----------------------------------------------------------------------------------
def _model_from_raw(key: str, raw: Mapping[str, Any], where: str) -> TransformerSpec:
    if not isinstance(raw, Mapping):
        raise BadInput(f"{where}: must be a table", "see seeds/models.toml for the layout")
    missing = [k for k in ("layers", "hidden", "heads", "ffn_hidden", "vocab", "seq_len_tokens") if k not in raw]
    if missing:
        raise BadInput(f"{where}: missing {', '.join(missing)}", "see seeds/models.toml for the layout")
    kw: dict[str, Any] = {}
    for k in _INT_KEYS:
        if k in raw:
            v = raw[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
                raise BadInput(f"{where}: `{k}` must be an integer, got {v!r}", "fix the model file")
            kw["seq_len" if k == "seq_len_tokens" else k] = int(v)
    for k in _BOOL_KEYS:
        if k in raw:
            if not isinstance(raw[k], bool):
                raise BadInput(f"{where}: `{k}` must be true or false", "fix the model file")
            kw[k] = raw[k]
    kw.setdefault("kv_heads", kw["heads"])
    kw.setdefault("gated_ffn", False)
    norm = str(raw.get("norm", "layernorm"))
    if norm not in ("layernorm", "rmsnorm"):
        raise BadInput(f"{where}: norm must be layernorm or rmsnorm, got {norm!r}", "fix the model file")
    if kw.get("experts", 1) > 1 and "active_experts" not in kw:
        raise BadInput(f"{where}: `experts` without `active_experts` (the experts each token is routed to)",
                       "add active_experts, e.g. 2 for Mixtral, 8 for DeepSeek-V3")
    spec = TransformerSpec(name=str(raw.get("name", key)), norm=norm, key=key,
                           released_weights=str(raw.get("released_weights", "bf16")),
                           released_attention_weights=str(raw.get("released_attention_weights", "")),
                           released_kv_cache=str(raw.get("released_kv_cache", "")),
                           released_fp4_format=str(raw.get("released_fp4_format", "")),
                           sources=dict(raw.get("sources", {})), **kw)
    _check_published_size(spec, raw, where)
    return spec


# The architecture's count against the size the file states: the presets agree within 1.5%
# (tests/test_planner_workload.py); beyond 10% a key is wrong (a per-expert width given as the total...).
PUBLISHED_SIZE_TOLERANCE = 0.10


def _check_published_size(spec: TransformerSpec, raw: Mapping[str, Any], where: str) -> None:
    for key, count in (("published_params_b", spec.params_total), ("published_active_params_b", spec.params_active)):
        stated = raw.get(key)
        if stated is None:
            continue
        derived_b = count() / 1e9
        if abs(derived_b / stated - 1.0) > PUBLISHED_SIZE_TOLERANCE:
            raise BadInput(f"{where}: the architecture gives {derived_b:.3g} B parameters, `{key}` says {stated:g} B",
                           "check layers, hidden, ffn_hidden, heads, experts and vocab against the model's config, "
                           "or correct the stated size")


def is_model_path(name: str) -> bool:
    """Whether `-w NAME` names a model input on disk rather than a preset: a checkpoint folder holding
    config.json, a config.json, a model TOML file, or any path (a slash, or an existing file)."""
    p = Path(name)
    return (p.is_dir() and (p / "config.json").is_file()) or name.endswith((".json", ".toml")) \
        or "/" in name or p.is_file()


def _models_table(name_or_path: str) -> tuple[dict[str, Any], str, str]:
    """(models table, key, origin) for a preset name or a user file."""
    from recoque.fileio import read_seed_toml, read_toml

    from recoque.hf_config import model_table_from_hf
    from recoque.inputs import check_model, check_single_table

    if Path(name_or_path).is_dir() and (Path(name_or_path) / "config.json").is_file():  # a checkpoint folder
        name_or_path = str(Path(name_or_path) / "config.json")
    if name_or_path.endswith(".json"):  # a checkpoint's Hugging Face config.json
        key, raw = model_table_from_hf(name_or_path)
        check_model(raw, f"{name_or_path} (as [models.{key}])")
        return {key: raw}, key, name_or_path
    if name_or_path.endswith(".toml") or Path(name_or_path).is_file() or "/" in name_or_path:  # a path, not a preset
        data = read_toml(name_or_path)
        key, _ = check_single_table(data, "models", name_or_path)  # the validation layer (recoque.inputs)
        models = data["models"]
        check_model(models[key], f"{name_or_path} [models.{key}]")
        return models, key, name_or_path
    models = read_seed_toml("models.toml").get("models", {})
    key = resolve_key(name_or_path, models)  # any case and punctuation, or a published alias
    if key is None:
        raise BadInput(f"unknown model {name_or_path!r}", unknown_hint(name_or_path, models, "models"))
    check_model(models[key], f"models.toml [models.{key}]")
    return models, key, "models.toml"


def preset_key(name: str) -> str:
    """The preset key `name` spells (any case, punctuation or alias); `name` itself otherwise (a file)."""
    from recoque.fileio import read_seed_toml

    return resolve_key(name, read_seed_toml("models.toml").get("models", {})) or name


def load_model(name_or_path: str) -> TransformerSpec:
    """A preset key from seeds/models.toml, a path to a TOML file with one [models.X] table, or a
    checkpoint's Hugging Face config.json (recoque.hf_config)."""
    models, key, origin = _models_table(name_or_path)
    return _model_from_raw(key, models[key], f"{origin} [models.{key}]")


def load_training_workload(name_or_path: str, tokens_to_train: float | None = None,
                           global_batch_seqs: int | None = None) -> TrainingWorkload:
    """The model and its `[models.X.training]` table (tokens_to_train, global_batch_seqs, seq_len_tokens).
    A model without that table (an architecture preset such as Llama 3.3 70B) trains on the given
    tokens and batch (`plan train --tokens --global-batch`), marked as given, not published."""
    models, key, origin = _models_table(name_or_path)
    raw = models[key]
    where = f"{origin} [models.{key}.training]"
    model = _model_from_raw(key, raw, f"{origin} [models.{key}]")
    tr = raw.get("training")
    if not isinstance(tr, Mapping):
        if tokens_to_train is None or global_batch_seqs is None:
            raise BadInput(f"{where}: missing (the preset has no training run)",
                           "give --tokens and --global-batch, or add tokens_to_train and global_batch_seqs")
        tr = {"global_batch_seqs": global_batch_seqs}
    if tokens_to_train is not None:  # given on the command line: replaces the run's, and is not published
        tr = {**tr, "tokens_to_train": tokens_to_train, "tokens_published": False}
    if "seq_len_tokens" in tr and (isinstance(tr["seq_len_tokens"], bool) or not isinstance(tr["seq_len_tokens"], int)
                                   or tr["seq_len_tokens"] <= 0):
        raise BadInput(f"{where}: `seq_len_tokens` must be a positive integer, got {tr['seq_len_tokens']!r}",
                       "give the training sequence length in tokens, or leave it out for the model's")
    for k in ("tokens_to_train", "global_batch_seqs"):
        v = tr.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise BadInput(f"{where}: `{k}` must be a positive number, got {v!r}", "fix the workload file")
    return TrainingWorkload(model=model, tokens_to_train=float(tr["tokens_to_train"]),
                            global_batch_seqs=int(tr["global_batch_seqs"]),
                            seq_len=int(tr.get("seq_len_tokens", model.seq_len)),
                            tokens_published=bool(tr.get("tokens_published", True)),
                            sources=dict(raw.get("sources", {})),
                            lora_rank=tr.get("lora_rank", 0), lora_targets=tr.get("lora_targets", "all"),
                            lora_dropout=tr.get("lora_dropout", 0.0))


def list_models() -> list[str]:
    from recoque.fileio import read_seed_toml

    return sorted(read_seed_toml("models.toml").get("models", {}))


def spec_fields() -> tuple[str, ...]:
    return tuple(f.name for f in fields(TransformerSpec))
