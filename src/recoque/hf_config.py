"""A Hugging Face `config.json` read as a model table.

Most open checkpoints ship their architecture as a config.json. This maps the fields recoque needs
onto the keys of seeds/models.toml, once, so a model without a preset can be planned from the file
its checkpoint carries (read from disk; nothing is downloaded). The table then passes the same
validation as a user's TOML (recoque.inputs.check_model).

Only decoder families whose shape these fields describe are taken; any other `model_type` is refused
with the way out (write the TOML table by hand). What each family contributes, from its
transformers configuration class:
- dense GQA decoders (llama, mistral, qwen2, qwen3): layers, widths, heads, vocabulary;
- mixtures of experts: Mixtral and gpt-oss (num_local_experts), Qwen2/3-MoE (num_experts,
  moe_intermediate_size, a shared expert of its own width), DeepSeek-V2/V3 and Kimi K2
  (n_routed_experts, n_shared_experts, first_k_dense_replace, group-limited routing, MLA widths),
  Llama 4 (interleave_moe_layer_step, intermediate_size_mlp, one shared expert);
- windowed attention: `layer_types` ('sliding_attention'), Mistral's sliding_window on every layer,
  Llama 4's attention_chunk_size on its RoPE layers (no_rope_layers), held as a window;
- released precision: quantization_config fp8 (with its weight block), mxfp4, AMD Quark, NVIDIA
  ModelOpt (in config.json or its hf_quant_config.json) and compressed-tensors, with the attention
  projections a quantization leaves out held at their own width, and the KV-cache dtype the
  quantization records (ModelOpt kv_cache_quant_algo, compressed-tensors kv_cache_scheme).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from recoque.errors import BadInput
from recoque.fileio import read_json

FIX = "pass a checkpoint's config.json, or write the model as a TOML table (seeds/models.toml shows the layout)"
DENSE = ("llama", "mistral", "qwen2", "qwen3")
MOE = ("mixtral", "qwen2_moe", "qwen3_moe", "gpt_oss", "deepseek_v2", "deepseek_v3", "kimi_k2", "llama4_text")
MLA = ("deepseek_v2", "deepseek_v3", "kimi_k2")


def model_table_from_hf(path: str) -> tuple[str, dict[str, Any]]:
    """(key, models.toml-style table) of the config.json at `path`."""
    cfg = read_json(path, fix=FIX)
    if not isinstance(cfg, Mapping):
        raise BadInput(f"{path}: a config.json holds one JSON object, found {type(cfg).__name__}", FIX)
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), Mapping) else cfg  # Llama 4 wraps its decoder
    kind = str(text.get("model_type", cfg.get("model_type", "")))
    if kind == "llama4":
        kind = "llama4_text"
    if kind not in DENSE + MOE:
        raise BadInput(f"{path}: model_type {kind!r} is not a decoder family recoque reads from config.json "
                       f"(it reads {', '.join(DENSE + MOE)})", FIX)
    c = _Fields(text, path)
    layers, heads, window = c.count("num_hidden_layers"), c.count("num_attention_heads"), c.count("max_position_embeddings")
    raw: dict[str, Any] = {
        "name": str(cfg.get("_name_or_path") or Path(path).parent.name or kind),
        "layers": layers, "hidden": c.count("hidden_size"), "heads": heads,
        "kv_heads": c.count("num_key_value_heads", heads),
        "ffn_hidden": c.count("intermediate_size"), "gated_ffn": True, "vocab": c.count("vocab_size"),
        "seq_len_tokens": window, "context_window_tokens": window,
        "tied_embeddings": bool(text.get("tie_word_embeddings", cfg.get("tie_word_embeddings", False))),
        "learned_positions": False, "norm": "rmsnorm", "linear_bias": kind == "gpt_oss",
        # these families' modelling code has no residual dropout; attention_dropout is the only one
        "dropout": c.fraction("attention_dropout") > 0.0,
        # gpt-oss clamps its SwiGLU inputs (config.json swiglu_limit 7.0)
        "glu_clamp": kind == "gpt_oss",
    }
    if text.get("head_dim") is not None:
        raw["head_dim"] = c.count("head_dim")
    if kind in MOE:
        raw.update(_experts(kind, c, layers))
    if kind in MLA:
        raw.update(_mla(c, heads))
    raw.update(_windows(kind, text, c, layers))
    quant = cfg.get("quantization_config", text.get("quantization_config"))
    q = quant if quant is not None else _modelopt_file(path)
    method = str(q.get("quant_method", "")).lower() if isinstance(q, Mapping) else ""
    if q is not None and method not in KNOWN_QUANT:  # read as 16 bits, its weights would be silently overstated
        got = f"quant_method {method!r}" if method else f"{q!r}"[:60]
        raise BadInput(f"{path}: quantization_config {got} is not a quantization recoque reads ({', '.join(KNOWN_QUANT)})",
                       "drop quantization_config from a copy of config.json to plan the model in 16 bits")
    raw.update(_released(q, layers))
    raw.update(_released_kv(q))
    raw["sources"] = {"architecture": f"{path}: Hugging Face config.json (model_type {kind}), read by recoque.hf_config"}
    where = "quantization_config" if quant is not None else "hf_quant_config.json beside it"
    for k in ("released_weights", "released_kv_cache", "released_fp4_format"):
        if k in raw:
            raw["sources"][k] = f"{path}: {where}, read by recoque.hf_config"
    return _key(raw["name"]), raw


class _Fields:
    """Typed reads of one config's fields, each failure one BadInput line naming the field."""

    def __init__(self, cfg: Mapping[str, Any], path: str) -> None:
        self.cfg, self.path = cfg, path

    def count(self, name: str, default: int | None = None) -> int:
        v = self.cfg.get(name, default)
        if v is None:
            raise BadInput(f"{self.path}: `{name}` is missing", FIX)
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise BadInput(f"{self.path}: `{name}` must be a positive integer, got {v!r}", FIX)
        return v

    def fraction(self, name: str) -> float:
        """A probability field, 0 when absent."""
        v = self.cfg.get(name, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= 1.0:
            raise BadInput(f"{self.path}: `{name}` must be a number from 0 to 1, got {v!r}", FIX)
        return float(v)

    def first(self, *names: str) -> int:
        for n in names:
            if self.cfg.get(n) is not None:
                return self.count(n)
        raise BadInput(f"{self.path}: none of {', '.join(names)} is given", FIX)


def _experts(kind: str, c: _Fields, layers: int) -> dict[str, Any]:
    out: dict[str, Any] = {"experts": c.first("num_local_experts", "num_experts", "n_routed_experts"),
                           "active_experts": c.first("num_experts_per_tok", "experts_per_token")}
    if kind in ("qwen2_moe", "qwen3_moe") + MLA:
        out["ffn_hidden"] = c.count("moe_intermediate_size")
    if kind in MLA:
        if c.cfg.get("n_shared_experts"):
            out["shared_experts"] = c.count("n_shared_experts")
        if c.cfg.get("first_k_dense_replace"):
            out["dense_layers"], out["dense_ffn_hidden"] = c.count("first_k_dense_replace"), c.count("intermediate_size")
        if c.cfg.get("n_group"):
            out["expert_groups"], out["group_topk"] = c.count("n_group"), c.count("topk_group")
    elif kind == "qwen2_moe" and c.cfg.get("shared_expert_intermediate_size"):
        shared, width = c.count("shared_expert_intermediate_size"), out["ffn_hidden"]
        if shared % width:
            raise BadInput(f"{c.path}: shared_expert_intermediate_size {shared} is not a whole number of experts "
                           f"of {width}", "write the model as a TOML table with shared_experts rounded")
        out["shared_experts"] = shared // width
    elif kind == "llama4_text":  # every MoE layer has one shared expert of the routed width (Llama4TextMoe)
        step = c.count("interleave_moe_layer_step", 1)
        out["shared_experts"] = 1
        if step > 1:
            out["dense_layers"], out["dense_ffn_hidden"] = layers - layers // step, c.count("intermediate_size_mlp")
    return {k: v for k, v in out.items() if v}


def _mla(c: _Fields, heads: int) -> dict[str, Any]:
    out = {"kv_heads": heads, "head_dim": c.count("qk_nope_head_dim"), "rope_head_dim": c.count("qk_rope_head_dim"),
           "v_head_dim": c.count("v_head_dim"), "kv_lora_rank": c.count("kv_lora_rank")}
    if c.cfg.get("q_lora_rank"):  # DeepSeek-V2-Lite projects queries directly (q_lora_rank null)
        out["q_lora_rank"] = c.count("q_lora_rank")
    return out


def _windows(kind: str, cfg: Mapping[str, Any], c: _Fields, layers: int) -> dict[str, Any]:
    """Layers that attend to a bounded span, and the span."""
    types_ = cfg.get("layer_types")
    if isinstance(types_, list) and cfg.get("sliding_window"):
        n = sum(1 for t in types_ if t == "sliding_attention")
        return {"sliding_window": c.count("sliding_window"), "sliding_layers": n} if n else {}
    if kind in ("mistral", "mixtral") and cfg.get("sliding_window"):  # Mistral 7B v0.1: every layer
        return {"sliding_window": c.count("sliding_window"), "sliding_layers": layers}
    if kind == "llama4_text" and cfg.get("attention_chunk_size"):
        flags = cfg.get("no_rope_layers")  # 1 = a RoPE layer with chunked attention, 0 = a global NoPE layer
        interval = c.count("no_rope_layer_interval", 4)
        chunked = sum(1 for f in flags if f) if isinstance(flags, list) and flags else layers - layers // interval
        return {"sliding_window": c.count("attention_chunk_size"), "sliding_layers": chunked} if chunked else {}
    return {}


KNOWN_QUANT = ("mxfp4", "quark", "modelopt", "compressed-tensors", "fp8")


def _released(q: Any, layers: int) -> dict[str, Any]:
    if not isinstance(q, Mapping):
        return {}
    method = str(q.get("quant_method", "")).lower()
    if method == "mxfp4":
        # modules the quantization leaves in 16 bits (gpt-oss: 'model.layers.*.self_attn', the router,
        # the embedding and the head)
        return {"released_weights": "fp4", "released_fp4_format": "mxfp4",
                **_attention_kept(q.get("modules_to_not_convert"), layers)}
    if method == "quark":
        # AMD Quark: the global weight spec (a list records a multi-stage pipeline, the last stage
        # is what is stored) and the layers it excludes (amd/DeepSeek-R1-0528-MXFP4: every
        # self_attn projection, the router, the head)
        spec = q.get("global_quant_config")
        w = spec.get("weight") if isinstance(spec, Mapping) else None
        w = w[-1] if isinstance(w, list) and w else w
        dtype = str(w.get("dtype", "")) if isinstance(w, Mapping) else ""
        narrow = "fp4" if dtype.startswith("fp4") else "fp8" if dtype.startswith("fp8") else ""
        # Quark's fp4 weights are the OCP MX format (dtype fp4 with 32-value groups: amd/*-MXFP4)
        fmt = {"released_fp4_format": "mxfp4"} if narrow == "fp4" else {}
        return {"released_weights": narrow, **fmt, **_attention_kept(q.get("exclude"), layers)} if narrow else {}
    if method == "modelopt":
        return _modelopt(q, layers)
    if method == "compressed-tensors":
        return _compressed_tensors(q, layers)
    if method == "fp8":
        block = q.get("weight_block_size")
        ok = isinstance(block, list) and block and all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in block)
        return {"released_weights": "fp8", **({"fp8_weight_block": block[0]} if ok else {})}
    return {}


def _released_kv(q: Any) -> dict[str, str]:
    """The KV-cache dtype a quantization records: ModelOpt kv_cache_quant_algo (FP8, NVFP4),
    compressed-tensors kv_cache_scheme (a float scheme of 8 or 4 bits); {} where none is recorded."""
    if not isinstance(q, Mapping):
        return {}
    algo = str(q.get("kv_cache_quant_algo") or "").upper()
    if algo:
        kv = "fp8" if algo.startswith("FP8") else "fp4" if algo.startswith("NVFP4") else ""
    else:
        kv = _ct_dtype(q.get("kv_cache_scheme"))
    return {"released_kv_cache": kv} if kv else {}


def _modelopt_file(config_path: str) -> Any:
    """The quantization an NVIDIA ModelOpt export records in hf_quant_config.json beside config.json
    ({"quantization": {"quant_algo", "exclude_modules", ...}}), as a quantization_config; None if
    the checkpoint has no such file."""
    path = Path(config_path).with_name("hf_quant_config.json")
    if not path.is_file():
        return None
    data = read_json(path, fix=FIX)
    q = data.get("quantization") if isinstance(data, Mapping) else None
    return {"quant_method": "modelopt", **q} if isinstance(q, Mapping) else None


def _algo_dtype(algo: Any) -> str:
    """The stored weight dtype a ModelOpt quant_algo names ('' for the integer and weight-only
    formats (AWQ int4, W4A16), which recoque does not serve as such)."""
    up = str(algo).upper()
    if up.startswith(("W4A16", "W8A16")) or "INT" in up or up in ("W4A8_AWQ",):
        return ""
    if up.startswith(("FP8", "MXFP8")):
        return "fp8"
    return "fp4" if up.startswith(("NVFP4", "MXFP4", "W4A8_NVFP4", "W4A8_MXFP4")) else ""


def _modelopt(q: Mapping[str, Any], layers: int) -> dict[str, Any]:
    """NVIDIA ModelOpt: one quant_algo for every quantised layer, the layers it leaves out under
    `ignore` (config.json) or `exclude_modules` (hf_quant_config.json; nvidia/DeepSeek-R1-FP4 lists
    every self_attn), or MIXED_PRECISION with an algo per layer (quantized_layers)."""
    per_layer = q.get("quantized_layers")
    if str(q.get("quant_algo", "")).upper() == "MIXED_PRECISION" and isinstance(per_layer, Mapping):
        algos = {name: _algo_dtype(v.get("quant_algo")) for name, v in per_layer.items() if isinstance(v, Mapping)}
        body = {d for name, d in algos.items() if "self_attn" not in name}
        attn = {d for name, d in algos.items() if "self_attn" in name}
        if len(body) != 1 or "" in body or len(attn) > 1:
            return {}
        narrow, kept = body.pop(), (attn.pop() if attn else "bf16") or "bf16"
        fmt = _fp4_format([v.get("quant_algo") for n, v in per_layer.items() if isinstance(v, Mapping) and "self_attn" not in n])
        return {"released_weights": narrow, **fmt, **({"released_attention_weights": kept} if kept != narrow else {})}
    narrow = _algo_dtype(q.get("quant_algo"))
    excluded = q.get("ignore", q.get("exclude_modules"))
    fmt = _fp4_format([q.get("quant_algo")]) if narrow == "fp4" else {}
    return {"released_weights": narrow, **fmt, **_attention_kept(excluded, layers)} if narrow else {}


def _fp4_format(algos: list[Any]) -> dict[str, str]:
    """The block format ModelOpt's fp4 algos name (NVFP4, W4A8_NVFP4_FP8: nvfp4; MXFP4, W4A8_MXFP4_*:
    mxfp4), where they agree."""
    found = {("mxfp4" if "MXFP4" in str(a).upper() else "nvfp4") for a in algos if _algo_dtype(a) == "fp4"}
    return {"released_fp4_format": found.pop()} if len(found) == 1 else {}


def _ct_dtype(scheme: Any) -> str:
    """A compressed-tensors weight scheme's stored dtype: 8-bit float fp8, 4-bit float (NVFP4) fp4;
    integer schemes (W4A16 GPTQ, W8A8 int8) are not served as such."""
    if not isinstance(scheme, Mapping) or str(scheme.get("type", "")) != "float":
        return ""
    return {8: "fp8", 4: "fp4"}.get(scheme.get("num_bits"), "")


def _compressed_tensors(q: Mapping[str, Any], layers: int) -> dict[str, Any]:
    """compressed-tensors (llm-compressor; vLLM's RedHatAI checkpoints): config_groups each give a
    weight scheme for the modules they target ('Linear', or a regex such as 're:.*self_attn.*'),
    `ignore` lists the modules left in 16 bits."""
    groups = q.get("config_groups")
    if not isinstance(groups, Mapping):
        return {}
    body, attn = set(), set()
    for g in groups.values():
        if not isinstance(g, Mapping):
            continue
        targets = g.get("targets") if isinstance(g.get("targets"), list) else []
        aimed_at_attention = any(isinstance(t, str) and "attn" in t for t in targets)
        (attn if aimed_at_attention else body).add(_ct_dtype(g.get("weights")))
    if len(body) != 1 or "" in body or len(attn) > 1:
        return {}
    narrow = body.pop()
    # llm-compressor's 4-bit float scheme is NVFP4 (group_size 16); a 32-value group is the MX format
    sizes = {g.get("weights", {}).get("group_size") for g in groups.values() if isinstance(g, Mapping)
             and isinstance(g.get("weights"), Mapping) and _ct_dtype(g.get("weights")) == "fp4"}
    fmt = {"released_fp4_format": "mxfp4" if sizes == {32} else "nvfp4"} if narrow == "fp4" else {}
    kept = _attention_kept(q.get("ignore"), layers)
    if not kept and attn and (a := attn.pop()) and a != narrow:
        kept = {"released_attention_weights": a}
    return {"released_weights": narrow, **fmt, **kept}


_ATTN_INPUTS = ("q_proj", "k_proj", "v_proj", "qkv", "q_a_proj", "q_b_proj", "kv_a_proj", "kv_b_proj")
_LAYER_INDEX = re.compile(r"layers\.(\d+)\.")


def _attention_kept(excluded: Any, layers: int) -> dict[str, str]:
    """released_attention_weights bf16 where a quantization's exclusion list leaves every attention
    projection of every layer unquantised: whole self_attn modules, or both the input and the output
    projections, named by a pattern over all layers or layer by layer for each of them."""
    names = [e for e in excluded if isinstance(e, str) and "self_attn" in e] if isinstance(excluded, list) else []
    whole = [e for e in names if e.rstrip("*.").endswith("self_attn")]
    inputs = whole + [e for e in names if any(p in e for p in _ATTN_INPUTS)]
    out = whole + [e for e in names if "o_proj" in e]
    return {"released_attention_weights": "bf16"} if _every_layer(inputs, layers) and _every_layer(out, layers) else {}


def _every_layer(names: list[str], layers: int) -> bool:
    """Whether `names` reach every decoder layer: one name without a layer index is a pattern over
    all of them ('model.layers.*.self_attn'); otherwise each index 0..layers-1 must be named."""
    if not names:
        return False
    found = [_LAYER_INDEX.search(e) for e in names]
    return any(m is None for m in found) or {int(m.group(1)) for m in found if m} >= set(range(layers))


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.rsplit("/", 1)[-1].lower()).strip("-") or "config"
