"""LLM inference serving: prefill is compute-bound, decode is bound by reading weights and KV cache.

Per decode step of a replica (G GPUs, tensor parallel) serving a batch of B streams at context C:
    bytes = weight bytes read (all dense weights; for MoE the experts the batch touches)
            + B x C x KV bytes per token,  KV/token = 2 x layers x kv_heads x head_dim x bytes
    flops = 2 x active params x B + 4 x layers x heads x head_dim x C x B   (QK^T and AV)
    time per output token = max(bytes / (G x HBM rate), flops / (G x GEMM rate)) + 2 all-reduces/layer
Prefill of P prompt tokens: 2 x active params x P + 2 x layers x heads x head_dim x P^2 (causal).
Roofline reasoning as in the usual LLM-serving back-of-envelope (weights / bandwidth per token).
The model is any object with the planner.workload.TransformerSpec fields.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from recoque.catalog import DeviceSpec, get_device_spec
from recoque.errors import BadInput, DoesNotFit
from recoque.estimate import Estimate, combine
from recoque.planner.system import SystemSpec
from recoque.planner.workloads import BYTES_PER_DTYPE, WorkloadEntry, gemm_rate, memory_rate

USABLE_HBM_FRACTION = 0.9  # runtime, activations, fragmentation keep ~10% of HBM (assumption)
COMPUTE_DTYPE = {"fp8": "fp8", "bf16": "bf16", "fp16": "fp16", "fp32": "fp32", "fp4": "fp8"}


def load_model_spec(name: str) -> Any:
    from recoque.planner.workload import load_model

    return load_model(name)


def dtype_bytes(dtype: str) -> float:
    if dtype not in BYTES_PER_DTYPE:
        raise BadInput(f"unknown dtype {dtype!r}", f"use one of {', '.join(BYTES_PER_DTYPE)}")
    return float(BYTES_PER_DTYPE[dtype])


def head_dim(model: Any) -> float:
    return float(getattr(model, "head_dim", 0) or model.hidden / model.heads)


def kv_bytes_per_token(model: Any, kv_dtype: str) -> float:
    return 2.0 * model.layers * model.kv_heads * head_dim(model) * dtype_bytes(kv_dtype)


def weight_bytes(model: Any, dtype: str) -> float:
    return float(model.params_total()) * dtype_bytes(dtype)


def weight_bytes_read(model: Any, dtype: str, batch: float) -> float:
    """Bytes of weights one decode step reads. For MoE, B tokens each routed to k of E experts touch
    E x (1 - (1 - k/E)^B) distinct experts per layer in expectation (uniform routing assumed)."""
    experts = int(getattr(model, "experts", 1) or 1)
    active = int(getattr(model, "active_experts", 1) or 1)
    total, act = float(model.params_total()), float(model.params_active())
    if experts <= 1 or experts == active or total <= act:
        return total * dtype_bytes(dtype)
    per_expert = (total - act) / (experts - active)
    dense = total - experts * per_expert
    touched = experts * (1.0 - (1.0 - active / experts) ** max(batch, 1.0))
    return (dense + touched * per_expert) * dtype_bytes(dtype)


def decode_flops(model: Any, batch: float, context: float) -> float:
    attn = 4.0 * model.layers * model.heads * head_dim(model) * context
    return batch * (2.0 * float(model.params_active()) + attn)


def prefill_flops(model: Any, prompt: float) -> float:
    return 2.0 * float(model.params_active()) * prompt + 2.0 * model.layers * model.heads * head_dim(model) * prompt ** 2


@dataclass(frozen=True)
class Serving:
    """Inputs of one serving scenario."""

    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    prompt_tokens: int = 2000
    output_tokens: int = 500
    target_tpot_s: float = 0.05
    batch: int | None = None          # None: largest batch meeting the latency target
    gpus_per_replica: int | None = None

    def __post_init__(self) -> None:
        for name in ("prompt_tokens", "output_tokens"):
            if getattr(self, name) <= 0:
                raise BadInput(f"{name} must be positive, got {getattr(self, name)}", "pass a positive count")
        if self.target_tpot_s <= 0:
            raise BadInput(f"target time per output token must be positive, got {self.target_tpot_s}", "pass --tpot-ms > 0")
        for name in ("batch", "gpus_per_replica"):
            v = getattr(self, name)
            if v is not None and v <= 0:
                raise BadInput(f"{name} must be positive, got {v}", "pass a positive count")

    @classmethod
    def from_workload(cls, w: WorkloadEntry, **overrides: Any) -> "Serving":
        base = dict(weight_dtype=w.text("weight_dtype", "bf16"), kv_dtype=w.text("kv_dtype", "bf16"),
                    prompt_tokens=int(w.number("prompt_tokens", 2000)), output_tokens=int(w.number("output_tokens", 500)),
                    target_tpot_s=w.number("target_tpot_ms", 50) / 1e3)
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    @property
    def context(self) -> int:
        return self.prompt_tokens + self.output_tokens


def replica_gpus(model: Any, spec: DeviceSpec, s: Serving) -> int:
    """Smallest power-of-two GPU count whose usable HBM holds the weights and one full-context stream."""
    if spec.hbm_bytes is None:
        raise BadInput(f"device {spec.key}: HBM capacity unknown", "complete seeds/hardware.toml")
    need = weight_bytes(model, s.weight_dtype) + s.context * kv_bytes_per_token(model, s.kv_dtype)
    if s.gpus_per_replica:
        if s.gpus_per_replica * spec.hbm_bytes * USABLE_HBM_FRACTION < need:
            raise DoesNotFit(f"{need / 1e9:.0f} GB of weights + KV do not fit in {s.gpus_per_replica} x {spec.hbm_bytes / 1e9:.0f} GB",
                             "use more GPUs per replica or a smaller dtype")
        return s.gpus_per_replica
    g = 1
    while g * spec.hbm_bytes * USABLE_HBM_FRACTION < need:
        g *= 2
        if g > 1024:
            raise DoesNotFit(f"model needs {need / 1e12:.1f} TB, more than 1024 GPUs of HBM", "use a smaller model or dtype")
    return g


def max_batch_by_memory(model: Any, spec: DeviceSpec, s: Serving, g: int) -> int:
    free = g * spec.hbm_bytes * USABLE_HBM_FRACTION - weight_bytes(model, s.weight_dtype)
    return max(int(free // (s.context * kv_bytes_per_token(model, s.kv_dtype))), 0)


def _comm_time(model: Any, system: SystemSpec, g: int, batch: float, bytes_act: float = 2.0) -> float:
    """Two ring all-reduces of the activations per layer (tensor parallel), bandwidth + latency terms."""
    if g <= 1:
        return 0.0
    inside = g <= system.gpus_per_node
    bw = system.intra_node_bandwidth_bytes_s if inside else system.inter_node_bandwidth_bytes_s
    lat = system.intra_node_latency_s if inside else system.inter_node_latency_s
    size = batch * model.hidden * bytes_act
    return 2.0 * model.layers * (2.0 * (g - 1) / g * size / bw + lat)


def tpot_s(model: Any, system: SystemSpec, s: Serving, g: int, batch: float, bw: float, flops: float) -> float:
    """Time per output token (one decode step) for one replica, floats in base units."""
    context = s.prompt_tokens + s.output_tokens / 2.0  # average context over the generation
    mem = weight_bytes_read(model, s.weight_dtype, batch) + batch * context * kv_bytes_per_token(model, s.kv_dtype)
    return max(mem / (g * bw), decode_flops(model, batch, context) / (g * flops)) + _comm_time(model, system, g, batch)


def _largest_batch(model, system, s, g, bw, flops, cap) -> int:
    if cap < 1 or tpot_s(model, system, s, g, 1, bw, flops) > s.target_tpot_s:
        return 0
    lo, hi = 1, cap
    while lo < hi:  # tpot grows with the batch: bisect for the last batch under the target
        mid = (lo + hi + 1) // 2
        if tpot_s(model, system, s, g, mid, bw, flops) <= s.target_tpot_s:
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class InferenceEstimate:
    system: str
    model: str
    gpus_per_replica: int
    replicas: Estimate
    batch: Estimate                 # streams per replica
    tpot: Estimate                  # s per output token at that batch
    ttft: Estimate                  # s, prefill of one prompt
    tokens_per_s_per_gpu: Estimate  # output tokens, prefill time included
    tokens_per_s_system: Estimate
    concurrent_users: Estimate
    weight_bytes: float
    kv_bytes_per_token: float
    decode_bound: str               # "memory" or "compute" at the chosen batch
    assumptions: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["assumptions"] = list(self.assumptions)
        return d


def _scenario(model, system, s, g, bw, fl, cap) -> tuple[float, float, float, float]:
    """(batch, tpot, ttft, output tokens/s per replica) at one set of rates."""
    b = s.batch if s.batch else _largest_batch(model, system, s, g, bw, fl, cap)
    if b == 0:
        return 0.0, tpot_s(model, system, s, g, 1, bw, fl), 0.0, 0.0
    t = tpot_s(model, system, s, g, b, bw, fl)
    ttft = max(prefill_flops(model, s.prompt_tokens) / (g * fl), weight_bytes(model, s.weight_dtype) / (g * bw))
    # Continuous batching: each request costs its prefill plus its share of the decode steps.
    per_request = ttft + s.output_tokens * t / b
    return float(b), t, ttft, s.output_tokens / per_request


def _replica_sizes(model: Any, spec: DeviceSpec, system: SystemSpec, s: Serving) -> list[int]:
    """Smallest fitting replica, then doublings up to one node (tensor parallel stays in the node)."""
    g = replica_gpus(model, spec, s)
    if s.gpus_per_replica:
        return [g]
    sizes = [g]
    while sizes[-1] * 2 <= min(system.gpus_per_node, system.gpus):
        sizes.append(sizes[-1] * 2)
    return sizes


def estimate_inference(model: Any, model_name: str, system: SystemSpec, s: Serving, profile: Any = None) -> InferenceEstimate:
    spec = get_device_spec(system.device)
    bw = memory_rate(spec, profile)
    fl = gemm_rate(spec, COMPUTE_DTYPE.get(s.weight_dtype, "bf16"), profile)
    best = None
    for g in _replica_sizes(model, spec, system, s):
        cap = max_batch_by_memory(model, spec, s, g)
        if s.batch and s.batch > cap:
            continue
        runs = {name: _scenario(model, system, s, g, bw_v, fl_v, cap)
                for name, bw_v, fl_v in (("value", bw.value, fl.value), ("low", bw.low, fl.low), ("high", bw.high, fl.high))}
        per_gpu_v = runs["value"][3] / g
        if best is None or per_gpu_v > best[0]:
            best = (per_gpu_v, g, cap, runs)
    if best is None:
        raise DoesNotFit(f"batch {s.batch} needs more KV cache than a replica of {spec.key} holds",
                         "lower --batch or raise --gpus-per-replica")
    _, g, cap, runs = best
    if runs["value"][0] == 0:
        one = runs["value"][1]
        raise DoesNotFit(f"even batch 1 takes {one * 1e3:.1f} ms per token on {g} x {spec.key}, above the {s.target_tpot_s * 1e3:g} ms target",
                         "raise --tpot-ms or --gpus-per-replica")

    def est(i: int, unit: str) -> Estimate:
        return Estimate(runs["value"][i], runs["low"][i], runs["high"][i], unit)

    replicas = system.estimate("gpus", "gpu").map(lambda n: float(int(n // g)), "replica")
    batch, tpot, ttft, per_replica = est(0, "stream"), est(1, "s"), est(2, "s"), est(3, "tokens/s")
    per_gpu = per_replica.scale(1.0 / g, "tokens/s")
    system_tps = combine(lambda r, t: r * t, replicas, per_replica, unit="tokens/s")
    users = combine(lambda r, b: r * b, replicas, batch, unit="user")
    b0 = runs["value"][0]
    ctx = s.prompt_tokens + s.output_tokens / 2.0
    mem_t = (weight_bytes_read(model, s.weight_dtype, b0) + b0 * ctx * kv_bytes_per_token(model, s.kv_dtype)) / (g * bw.value)
    bound = "memory" if mem_t >= decode_flops(model, b0, ctx) / (g * fl.value) else "compute"
    notes = tuple(dict.fromkeys(bw.assumptions + fl.assumptions + (
        f"replica = {g} x {spec.key} (tensor parallel): the power of two, from the smallest whose {USABLE_HBM_FRACTION:.0%} usable HBM holds weights + one {s.context}-token stream up to one node, with the most tokens/s per GPU",
        f"weights {s.weight_dtype}, KV cache {s.kv_dtype}; prompt {s.prompt_tokens}, output {s.output_tokens} tokens",
        f"batch = largest meeting {s.target_tpot_s * 1e3:g} ms per output token and the KV memory (max {cap})" if not s.batch else f"batch fixed at {s.batch}",
        "continuous batching: prefill time counted in the per-GPU throughput; one user = one stream",
        "low/high: all rates at their low/high bounds")))
    return InferenceEstimate(system.key, model_name, g, replicas, batch, tpot, ttft, per_gpu, system_tps, users,
                             weight_bytes(model, s.weight_dtype), kv_bytes_per_token(model, s.kv_dtype), bound, notes)
