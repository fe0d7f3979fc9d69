"""LLM inference serving: the entry point the capacity planner, the claim checks and the
H100-equivalents use. The model itself is planner.serving (continuous batching with chunked
prefill, a step-level decode/prefill model in planner.serving_step, rates and engine constants in
planner.serving_rates); this module keeps the workload-level interface (`Serving`, a workload's
dtypes, lengths and latency target) and the small closed-form helpers other modules quote.

Bytes and FLOPs per token (the usual serving arithmetic, e.g. Pope et al. 2022, section 2):
    KV per token = 2 (K and V) x layers x kv_heads x head_dim x bytes (MLA: layers x (latent + RoPE key))
    decode FLOPs = 2 x active params + layers x heads x (per-pair FLOPs) x context   per token
    prefill FLOPs = 2 x active params x P + layers x heads x (qk + v widths) x P^2  (causal)
The model is any object with the planner.workload.TransformerSpec fields.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recoque.errors import BadInput
from recoque.estimate import Estimate
from recoque.planner.serving import DTYPE_BYTES, ServingEstimate, ServingRequest, estimate_serving
from recoque.planner.serving_request import stored_bytes
from recoque.planner.serving_step import attention_split, experts_touched
from recoque.planner.system import SystemSpec
from recoque.planner.workloads import WorkloadEntry

DEFAULT_ENGINE = "vllm"  # the open engine AMD and most clouds publish with (seeds/serving.toml [engines.vllm])


def load_model_spec(name: str) -> Any:
    from recoque.planner.workload import load_model

    return load_model(name)


def dtype_bytes(dtype: str, fp4_format: str | None = None) -> float:
    """Bytes a stored value of `dtype` takes, an fp4 block format's scales included."""
    if dtype not in DTYPE_BYTES:
        raise BadInput(f"unknown dtype {dtype!r}", f"use one of {', '.join(DTYPE_BYTES)}")
    return stored_bytes(dtype, fp4_format)


def kv_bytes_per_token(model: Any, kv_dtype: str, fp4_format: str | None = None) -> float:
    """Whole model, one token: 2 x layers x kv_heads x head_dim x bytes (GQA: kv_heads, not heads;
    MLA: layers x (kv_lora_rank + rope_head_dim) x bytes)."""
    return model.layers * model.kv_cache_elems_per_token_layer(1.0) * dtype_bytes(kv_dtype, fp4_format)


def weight_bytes(model: Any, dtype: str, attention: tuple[str, str] | None = None, fp4_format: str | None = None) -> float:
    """The whole model's weights in `dtype`; `attention`: the (input, output) projections' dtypes
    where the checkpoint keeps them apart (planner.serving ServingRequest.attention_dtypes)."""
    total = float(model.params_total()) * dtype_bytes(dtype, fp4_format)
    if attention is None:
        return total
    return total + model.layers * sum(p * (dtype_bytes(d, fp4_format) - dtype_bytes(dtype, fp4_format))
                                      for p, d in zip(attention_split(model), attention))


def attention_dtypes(knobs: Any) -> tuple[str, str] | None:
    """The (input, output) attention projection dtypes a served request (its knobs) held apart, else None."""
    req = ServingRequest(**knobs)
    return req.attention_dtypes if req.attention_apart else None


def weight_bytes_read(model: Any, dtype: str, batch: float) -> float:
    """Weights one decode step of `batch` tokens reads: all dense weights; for MoE the experts the
    batch touches, E(1 - (1 - k/E)^B) per layer in expectation (uniform routing)."""
    experts = int(getattr(model, "experts", 1) or 1)
    active = int(getattr(model, "active_experts", 1) or 1)
    total, act = float(model.params_total()), float(model.params_active())
    if experts <= 1 or experts == active or total <= act:
        return total * dtype_bytes(dtype)
    per_expert = (total - act) / (experts - active)
    dense = total - experts * per_expert
    return (dense + experts_touched(experts, active, batch) * per_expert) * dtype_bytes(dtype)


def decode_flops(model: Any, batch: float, context: float) -> float:
    attn = model.layers * model.heads * model.decode_attention_flops_per_pair() * context * model.kv_layer_fraction(context)
    return batch * (2.0 * float(model.params_active()) + attn)


def prefill_flops(model: Any, prompt: float) -> float:
    return (2.0 * float(model.params_active()) * prompt
            + model.layers * model.heads * model.attention_flops_per_pair() / 2.0 * prompt ** 2
            * model.attention_pair_fraction(prompt, causal=True))


@dataclass(frozen=True)
class Serving:
    """A workload's serving scenario: dtypes, lengths and a time-per-output-token target (server
    mode); `batch` fixes the running streams instead; `gpus_per_replica` fixes the tensor parallelism."""

    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    prompt_tokens: int = 2000
    output_tokens: int = 500
    target_tpot_s: float = 0.05
    target_ttft_s: float | None = None  # without one, a load at the TPOT-bound batch cap queues without end
    batch: int | None = None
    gpus_per_replica: int | None = None
    engine: str = DEFAULT_ENGINE

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "output_tokens"):
            if getattr(self, name) <= 0:
                raise BadInput(f"{name} must be positive, got {getattr(self, name)}", "pass a positive count")
        if not self.target_tpot_s > 0:
            raise BadInput(f"target time per output token must be positive, got {self.target_tpot_s}", "pass --tpot-ms > 0")
        if self.target_ttft_s is not None and not self.target_ttft_s > 0:
            raise BadInput(f"target time to first token must be positive, got {self.target_ttft_s}",
                           "set target_ttft_ms > 0 in the workload")
        for name in ("batch", "gpus_per_replica"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise BadInput(f"{name} must be positive, got {v}", "pass a positive count")
        for name in ("weight_dtype", "kv_dtype"):
            dtype_bytes(getattr(self, name))

    @classmethod
    def from_workload(cls, w: WorkloadEntry, **overrides: Any) -> "Serving":
        base = dict(weight_dtype=w.text("weight_dtype", "bf16"), kv_dtype=w.text("kv_dtype", "bf16"),
                    prompt_tokens=int(w.number("prompt_tokens", 2000)), output_tokens=int(w.number("output_tokens", 500)),
                    target_tpot_s=w.number("target_tpot_ms", 50) / 1e3, engine=w.text("engine", DEFAULT_ENGINE))
        if "target_ttft_ms" in w.values:
            base["target_ttft_s"] = w.number("target_ttft_ms") / 1e3
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    @property
    def context(self) -> int:
        return self.prompt_tokens + self.output_tokens

    def request(self) -> ServingRequest:
        """fp8 (fp4) weights are served W8A8 (W4A4) as the engines do; else activations bf16."""
        acts = self.weight_dtype if self.weight_dtype in ("fp8", "fp4") else "bf16"
        return ServingRequest(prompt_tokens=self.prompt_tokens, output_tokens=self.output_tokens,
                              mode="server", batch=self.batch,
                              tpot_target_s=None if self.batch else self.target_tpot_s,
                              ttft_target_s=None if self.batch else self.target_ttft_s, tp=self.gpus_per_replica,
                              weights=self.weight_dtype, activations=acts, kv_cache=self.kv_dtype, engine=self.engine)


@dataclass(frozen=True)
class InferenceEstimate:
    system: str
    model: str
    gpus_per_replica: int
    replicas: Estimate
    batch: Estimate                 # streams per replica
    tpot: Estimate                  # s per output token at that batch
    ttft: Estimate                  # s to the first token (queueing included in server mode)
    tokens_per_s_per_gpu: Estimate  # output tokens, prefill time included
    tokens_per_s_system: Estimate
    concurrent_users: Estimate
    weight_bytes: float
    kv_bytes_per_token: float
    decode_bound: str               # the part that bounds a step at the chosen batch
    assumptions: tuple[str, ...]
    serving: ServingEstimate | None = None

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "serving"}
        d["assumptions"] = list(self.assumptions)
        if self.serving is not None:
            d["serving"] = self.serving.to_json()
        return d


def from_serving(model: Any, kv_dtype: str, weight_dtype: str, e: ServingEstimate) -> InferenceEstimate:
    return InferenceEstimate(
        system=e.system, model=e.model, gpus_per_replica=e.gpus_per_replica,
        replicas=Estimate.exact(float(e.replicas), "replica"), batch=e.batch, tpot=e.tpot, ttft=e.ttft,
        tokens_per_s_per_gpu=e.tokens_per_s_per_gpu, tokens_per_s_system=e.tokens_per_s_system,
        concurrent_users=e.concurrent_users,
        weight_bytes=weight_bytes(model, weight_dtype, attention_dtypes(e.knobs), e.knobs.get("fp4_format")),
        kv_bytes_per_token=kv_bytes_per_token(model, kv_dtype, e.knobs.get("fp4_format")), decode_bound=e.bound, assumptions=e.assumptions,
        serving=e)


def estimate_inference(model: Any, model_name: str, system: SystemSpec, s: Serving, profile: Any = None) -> InferenceEstimate:
    """The workload-level estimate: server mode at the workload's TPOT (and TTFT, when set) target (p50), or a fixed batch."""
    e = estimate_serving(model, model_name, system, s.request(), profile)
    return from_serving(model, s.kv_dtype, s.weight_dtype, e)
