"""LLM serving estimate: continuous batching with chunked prefill, offline and server modes.

A replica is tp x pp GPUs (ep spreads MoE experts inside it). Streams running: B per replica.
In steady state every step carries B decode tokens and, because requests finish at B/O per step
and each new one brings P prompt tokens, B x P/O prefill tokens (chunked prefill). The step time
comes from planner.serving_step (per layer: weight GEMMs, KV read, elementwise, all-reduces,
launches; per step: LM head and CPU scheduling) at the engine efficiency e: the compute rates
(GEMM math, prefill attention) run at e x the kernel rates and the other parts (KV read, elementwise,
all-reduces, launches, CPU time) take 1/e longer, but the GEMMs' weight read stays at the achieved
HBM rate, a floor the engine reaches (that rate is already an achieved-bandwidth figure, and e was
calibrated where the math bounds the step: seeds/serving.toml [engines]).
  output tokens/s per replica  X(B) = B / (pp x t_stage(B))       (pp stages pipeline B/pp streams each)
  time per output token        TPOT = pp x t_stage(B)
Offline: B is the largest the KV memory (and the engine's batch cap) allows; with `requests`, a
finite run of that many requests submitted at once is followed to its end instead (planner.serving_wave:
lockstep growth, and the preemptions when the KV at full length is more than the memory). Server: Poisson
arrivals at a rate set B through Little's law (rate = X(B) / O); latency targets set the largest B
that meets them at the chosen percentile. With both a TTFT and a TPOT target the engine holds the
running batch at the largest that meets the TPOT target (admission cap) and queues the rest, so
the TTFT target keeps that many slots below full use (M/G/c: square-root headroom from Poisson
arrivals), which is why MLPerf Server runs below Offline. TPOT at a percentile: the step at that
quantile of the running streams (Poisson around B, at most the cap) plus the spread of the
per-request TPOT from prefill work arriving in lumps (tpot_tail_s). TTFT = half a step (admission
at step boundaries) + the wait for the per-step token budget (M/G/1: a prompt of P tokens holds the
room the budget leaves beside the decode tokens for P / room steps) + the wait for a
slot (M/G/c, Sakasegawa 1977, Allen-Cunneen) + the prefill of a prompt at that quantile of the
prompt lengths (lognormal, stated spread); waits at a percentile from the heavy-traffic
exponential tail (Kingman 1962). Memory: weights per GPU, workspace, the engine's
usable fraction of HBM; KV per stream is prompt + output (reserved up front) or prompt + output/2
(paged, allocated as produced).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from recoque.catalog import get_device_spec
from recoque.errors import BadInput, DoesNotFit
from recoque.estimate import Estimate
from recoque.planner import serving_bounds as sb
from recoque.planner import serving_rates as sr
from recoque.planner import serving_wave as sw
from recoque.planner.serving_queue import Z, mean_tail, prefill_wait, prompt_quantile, slot_wait
from recoque.planner.serving_step import (ACT_BYTES, Layout, Precision, StepTime, blockscale_kblocks_per_layer, draft_time,
                                          attention_split, has_tp_allreduce, kv_bytes_per_token_per_gpu, layer_kernels, moe_tp,
                                          pays_untuned_blockscale, step_time, tokens_by_alltoall)
from recoque.planner.serving_wave import WaveRun
from recoque.planner.system import SystemSpec
from recoque.planner.workloads import assumed_peak

DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5}
# Bytes per element of a token sent to the experts: quantized to the GEMMs' format before it
# travels, NVFP4 with one 8-bit scale per 16 values (TensorRT-LLM fp4_quantize, scaling_vector_size
# 16), FP8 with one scale per tensor; 16-bit GEMMs send 16-bit tokens.
DISPATCH_BYTES = {"fp4": 0.5 + 1.0 / 16.0, "fp8": 1.0}
MODES = ("offline", "server")
PERCENTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}


def _positive(name: str, v: float | None, flag: str) -> None:
    if v is None:
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise BadInput(f"{name} must be a positive finite number, got {v!r}", f"pass {flag} > 0")


def _gemm_dtype(weights: str, activations: str) -> str:
    """See ServingRequest.compute_dtype."""
    narrow = ("fp8", "fp4")
    if weights in narrow and activations in narrow:
        return "fp8" if "fp8" in (weights, activations) else "fp4"
    return "bf16" if activations in narrow else activations


@dataclass(frozen=True)
class ServingRequest:
    """Everything a user can set; units in the names. None = derived (stated in the assumptions)."""

    prompt_tokens: float = 2000
    output_tokens: float = 500
    mode: str = "offline"
    batch: int | None = None               # running streams per replica (fixed)
    concurrency: int | None = None         # concurrent requests over the whole system (closed loop)
    request_rate_per_s: float | None = None  # over the whole system
    ttft_target_s: float | None = None
    tpot_target_s: float | None = None
    percentile: str = "p50"
    tp: int | None = None
    pp: int = 1
    ep: int = 1
    attention_dp: bool | None = None       # attention data-parallel over the tp GPUs (TensorRT-LLM, SGLang);
                                           # None: tried beside plain TP for a MoE model when tp is searched
    split_experts: bool = False            # under attention DP, every expert split over the tp GPUs instead of
                                           # whole experts spread over them (TensorRT-LLM without an expert-parallel
                                           # size: its Mapping sets moe_tp_size = tp, moe_ep_size = 1)
    weights: str = "bf16"
    activations: str = "bf16"
    kv_cache: str = "bf16"
    attention_weights: str | None = None   # the attention projections' weight dtype where the checkpoint keeps
                                           # them apart from the rest (its quantization excludes self_attn);
                                           # None: as `weights`
    attention_out_weights: str | None = None  # the output projection's (o_proj) where it differs from the other
                                              # attention projections; None: as attention_weights
    engine: str = "vllm"
    hbm_fraction: float | None = None
    max_batch: int | None = None           # engine batch cap (max_num_seqs / max_batch_size)
    max_num_tokens: int | None = None      # tokens one step may carry (TensorRT-LLM max_num_tokens,
                                           # vLLM --max-num-batched-tokens, SGLang --chunked-prefill-size)
    engine_efficiency: float | None = None  # measured on your engine: replaces the engine class default
    length_cv2: float | None = None        # squared coefficient of variation of prompt and output lengths (0: fixed)
    requests: int | None = None            # offline: this many requests submitted at once, over the system
                                           # (vLLM benchmark_throughput --num-prompts); the run is followed to its end
    spec_tokens: int = 0                   # speculative decoding: draft tokens verified per step (MTP / EAGLE)
    spec_acceptance: float | None = None   # probability a draft token is accepted (None: seeds/serving.toml)
    allreduce_fusion: bool | None = None   # TP all-reduce fused with the residual add + RMSNorm (vLLM
                                           # fuse_allreduce_rms, SGLang --enable-flashinfer-allreduce-fusion);
                                           # None: the engine's default (seeds/serving.toml)

    def __post_init__(self) -> None:
        _positive("prompt tokens", self.prompt_tokens, "--prompt-tokens")
        _positive("output tokens", self.output_tokens, "--output-tokens")
        if self.prompt_tokens < 1 or self.output_tokens < 1:   # a mean length may be fractional, not below one token
            raise BadInput(f"a request needs at least one prompt and one output token, got {self.prompt_tokens:g} and "
                           f"{self.output_tokens:g}", "pass --prompt-tokens and --output-tokens of 1 or more")
        for name, flag in (("batch", "--batch"), ("concurrency", "--concurrency"), ("request_rate_per_s", "--request-rate"),
                           ("ttft_target_s", "--ttft-ms"), ("tpot_target_s", "--tpot-ms"), ("tp", "--tp"),
                           ("pp", "--pp"), ("ep", "--ep"), ("max_batch", "--max-batch"), ("requests", "--requests"),
                           ("max_num_tokens", "--max-num-tokens")):
            _positive(name, getattr(self, name), flag)
        if self.mode not in MODES:
            raise BadInput(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}", "pass --mode offline or --mode server")
        if self.attention_dp is not None and not isinstance(self.attention_dp, bool):
            raise BadInput(f"attention DP must be true or false, got {self.attention_dp!r}", "pass --attention-dp or leave it out")
        if not isinstance(self.split_experts, bool):
            raise BadInput(f"split experts must be true or false, got {self.split_experts!r}", "pass --split-experts or leave it out")
        if self.split_experts and (self.attention_dp is not True or self.ep > 1):
            raise BadInput("--split-experts splits each expert over the attention-DP GPUs; it needs --attention-dp and no --ep",
                           "add --attention-dp and drop --ep, or drop --split-experts")
        if self.allreduce_fusion is not None and not isinstance(self.allreduce_fusion, bool):
            raise BadInput(f"all-reduce fusion must be true or false, got {self.allreduce_fusion!r}",
                           "pass --allreduce-fusion or --no-allreduce-fusion, or leave it out for the engine's default")
        if self.percentile not in PERCENTILES:
            raise BadInput(f"percentile must be one of {', '.join(PERCENTILES)}, got {self.percentile!r}", "pass --percentile p50 or p99")
        for name in ("weights", "activations", "kv_cache"):
            if getattr(self, name) not in DTYPE_BYTES:
                raise BadInput(f"unknown {name} dtype {getattr(self, name)!r}", f"use one of {', '.join(DTYPE_BYTES)}")
        for name in ("attention_weights", "attention_out_weights"):
            v = getattr(self, name)
            if v is not None and v not in DTYPE_BYTES:
                raise BadInput(f"unknown {name} dtype {v!r}", f"use one of {', '.join(DTYPE_BYTES)}")
        if DTYPE_BYTES[self.activations] < DTYPE_BYTES[self.weights]:
            # Weight-only quantisation (W8A16, W4A8) exists; activations narrower than the weights do not.
            raise BadInput(f"activations {self.activations} are narrower than weights {self.weights}: no engine runs that",
                           f"pass --weights {self.activations} too, or --activations {self.weights}")
        if self.engine not in sr.ENGINES:
            raise BadInput(f"unknown engine {self.engine!r}", f"use one of {', '.join(sr.ENGINES)}")
        if self.engine_efficiency is not None and not (isinstance(self.engine_efficiency, (int, float))
                                                       and math.isfinite(self.engine_efficiency) and 0 < self.engine_efficiency <= 1):
            raise BadInput(f"engine efficiency must be in (0, 1], got {self.engine_efficiency!r}", "pass --engine-efficiency 0.85")
        if self.length_cv2 is not None and (isinstance(self.length_cv2, bool) or not isinstance(self.length_cv2, (int, float))
                                            or not math.isfinite(self.length_cv2) or not 0 <= self.length_cv2 <= 4):
            raise BadInput(f"length cv2 must be a number in [0, 4], got {self.length_cv2!r}",
                           "pass --length-cv2 0 for fixed lengths, ~0.6 for chat datasets")
        if isinstance(self.spec_tokens, bool) or not isinstance(self.spec_tokens, int) or not 0 <= self.spec_tokens <= 16:
            raise BadInput(f"spec tokens must be a whole number from 0 to 16, got {self.spec_tokens!r}",
                           "pass --spec-tokens 3 (draft tokens per step) or 0 for none")
        if self.spec_acceptance is not None and (isinstance(self.spec_acceptance, bool)
                                                 or not isinstance(self.spec_acceptance, (int, float))
                                                 or not 0 < self.spec_acceptance < 1):
            raise BadInput(f"spec acceptance must be a probability in (0, 1), got {self.spec_acceptance!r}",
                           "pass --spec-acceptance 0.8 (the chance one draft token is accepted)")
        if self.spec_acceptance is not None and not self.spec_tokens:
            raise BadInput("--spec-acceptance without --spec-tokens", "pass --spec-tokens k (draft tokens per step) too")
        if self.spec_tokens and self.requests is not None:
            raise BadInput("speculative decoding is modelled in steady state, not for a finite --requests run",
                           "drop --requests or --spec-tokens")
        if self.hbm_fraction is not None and not (isinstance(self.hbm_fraction, (int, float))
                                                  and math.isfinite(self.hbm_fraction) and 0 < self.hbm_fraction <= 1):
            raise BadInput(f"HBM fraction must be in (0, 1], got {self.hbm_fraction!r}", "pass --hbm-fraction 0.9")
        if self.batch is not None and self.concurrency is not None:
            raise BadInput("--batch and --concurrency both given", "pass one: --batch per replica or --concurrency for the system")
        fixed = self.batch is not None or self.concurrency is not None
        if fixed and self.request_rate_per_s is not None:
            raise BadInput("a fixed batch/concurrency and a request rate both given", "pass one of them")
        if self.mode == "server" and not fixed and self.request_rate_per_s is None \
                and self.ttft_target_s is None and self.tpot_target_s is None:
            raise BadInput("server mode needs a load or a latency target",
                           "pass --request-rate, --ttft-ms/--tpot-ms, or --concurrency")
        if self.requests is not None and (self.mode != "offline" or fixed):
            raise BadInput("--requests sizes an offline run (all requests submitted at once)",
                           "drop --requests, or use --mode offline without --batch/--concurrency")
        if self.request_rate_per_s is not None and (self.ttft_target_s or self.tpot_target_s):
            raise BadInput("a request rate and latency targets both given", "pass --request-rate or --ttft-ms/--tpot-ms")

    @property
    def compute_dtype(self) -> str:
        """GEMMs run in fp8 (fp4) only when weights and activations both are 8-bit (4-bit) or
        narrower; else in the activation dtype (W8A16 / W4A16 dequantise to 16 bits, as Marlin does).
        A mixed fp4 x fp8 GEMM runs at the fp8 rate, the wider operand's: Blackwell's tcgen05.mma
        kind::f8f6f4 takes any pairing of e4m3/e5m2/e3m2/e2m3/e2m1 operands at the FP8 rate, only
        kind::mxf4 / mxf4nvf4 (both operands fp4) at the doubled one (NVIDIA PTX ISA 8.7, section
        "tcgen05.mma"); CDNA4's V_MFMA_SCALE_F32_*_F8F6F4 likewise takes mixed A / B formats (AMD
        Instinct CDNA4 ISA reference, MFMA section). So MXFP4 weights with MXFP8 activations (vLLM's
        FlashInfer MXFP4 x MXFP8 MoE on B200) are not the 16-bit GEMMs of a W4A16 kernel."""
        return _gemm_dtype(self.weights, self.activations)

    @property
    def attention_dtypes(self) -> tuple[str, str]:
        """Weight dtypes of the attention's input projections (Q, K, V; MLA's down- and
        up-projections) and of its output projection."""
        inputs = self.attention_weights or self.weights
        return inputs, self.attention_out_weights or inputs

    @property
    def attention_apart(self) -> bool:
        """Some attention projection holds another weight dtype than the rest of the model."""
        return any(d != self.weights for d in self.attention_dtypes)

    @property
    def attention_gemm_dtypes(self) -> tuple[str, str]:
        """The GEMM dtypes of the two (inputs, output), by the rule of compute_dtype: a layer a
        checkpoint leaves unquantised (16-bit weights) runs 16-bit GEMMs whatever the other layers'
        activations; "" where it is the body's."""
        return tuple(_gemm_dtype(d, self.activations) if d != self.weights else "" for d in self.attention_dtypes)

    def knobs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Memory:
    usable_bytes: float
    weights_bytes: float
    workspace_bytes: float
    kv_bytes_per_token: float   # on one GPU (its layers, its KV heads)
    kv_tokens_per_stream: float
    max_streams: int            # by KV memory, per replica


@dataclass(frozen=True)
class ServingEstimate:
    system: str
    model: str
    mode: str
    engine: str
    tp: int
    pp: int
    ep: int
    gpus_per_replica: int
    replicas: int
    batch: Estimate                 # running streams per replica
    tpot: Estimate                  # s, at the chosen percentile
    ttft: Estimate                  # s, at the chosen percentile (queueing included in server mode)
    tokens_per_s_per_gpu: Estimate
    tokens_per_s_replica: Estimate
    tokens_per_s_system: Estimate
    requests_per_s_system: Estimate
    concurrent_users: Estimate
    memory: Memory
    step_shares: Mapping[str, float]
    bound: str
    knobs: Mapping[str, Any]
    assumptions: tuple[str, ...] = field(default_factory=tuple)
    # output tokens/s per GPU with one group of constants at its low / high corner (serving_bounds):
    # what the range is made of, and what a ratio to another estimate needs (serving_bounds.ratio_span)
    group_tokens_per_s_per_gpu: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    attention_dp: bool = False       # the chosen layout runs the attention data-parallel over its tp GPUs

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["memory"] = dict(vars(self.memory))
        d["assumptions"] = list(self.assumptions)
        return d


# --- memory -------------------------------------------------------------------------------------

def weights_bytes_per_gpu(model: Any, req: ServingRequest, lay: Layout) -> float:
    """Layers split over pp stages; attention and dense weights over tp; experts over ep (else tp).
    Embedding and LM head split over tp (vocab-parallel)."""
    wb = DTYPE_BYTES[req.weights]
    dense_layer = float(model.nonexpert_params_per_layer()) if model.moe else float(model.layer_params())
    if lay.attn_dp:  # each GPU holds the whole attention weights
        dense_layer += (lay.tp - 1.0) * model.attention_params_per_layer()
    expert_share = model.routed_expert_params_per_layer() / (lay.ep * moe_tp(lay))  # ep groups, each expert over tp / ep
    layers = model.layers / lay.pp
    # attention projections a checkpoint keeps in another dtype: their bytes at that width
    apart = 0.0
    for share, dt in zip(attention_split(model), req.attention_dtypes):
        apart += layers * share * (lay.tp if lay.attn_dp else 1.0) / lay.tp * (DTYPE_BYTES[dt] - wb)
    return (layers * (dense_layer / lay.tp + expert_share) + float(model.embedding_params()) / lay.tp) * wb + apart


def step_budget_tokens(req: ServingRequest, engine: sr.Engine) -> float:
    """Tokens one engine step may carry: the user's setting, else the engine's default."""
    return float(req.max_num_tokens or engine.max_num_tokens)


def workspace_bytes(model: Any, lay: Layout, budget: float) -> float:
    """Activations of the largest step the engine sizes for, its token budget t (vLLM profiles one
    max-size batch at start-up): t x (4 hidden + 2 ffn/tp) x 2 bytes + t x vocab x 4 bytes of logits."""
    return budget * (4.0 * model.hidden + 2.0 * model.dense_ffn_width / lay.tp) * 2.0 + budget * model.vocab * 4.0 / lay.tp


def held_kv_fraction(model: Any, windowed_kv_memory: bool, tokens: float) -> float:
    """Share of a full-attention KV cache that a stream of `tokens` holds in memory: sliding-window
    layers keep only their window where the engine frees the blocks out of it (seeds/serving.toml
    [engines.*] windowed_kv_memory; TensorRT-LLM sizes them as full attention)."""
    return model.kv_layer_fraction(tokens) if windowed_kv_memory else 1.0


def memory(model: Any, spec: Any, req: ServingRequest, lay: Layout, engine: sr.Engine) -> Memory:
    frac, cap = req.hbm_fraction or engine.usable_hbm_fraction, sr.hbm_capacity_bytes(spec)
    w, ws = weights_bytes_per_gpu(model, req, lay), workspace_bytes(model, lay, step_budget_tokens(req, engine))
    # TensorRT-LLM gives the KV cache a fraction of the memory left after weights and activations;
    # vLLM and SGLang cap weights + activations + KV together at a fraction of the whole memory
    usable = w + ws + frac * (cap - w - ws) if engine.kv_fraction_of_free else frac * cap
    per_stream = req.prompt_tokens + (req.output_tokens if engine.kv_reserve == "full" else req.output_tokens / 2.0)
    kv_tok = kv_bytes_per_token_per_gpu(model, lay, DTYPE_BYTES[req.kv_cache]) * held_kv_fraction(model, engine.windowed_kv_memory, per_stream)
    free = usable - w - ws
    streams = int(free // (kv_tok * per_stream)) if free > 0 else 0
    return Memory(usable, w, ws, kv_tok, per_stream, streams)


def _check_layout(model: Any, system: SystemSpec, lay: Layout) -> None:
    if model.heads % lay.tp:
        raise BadInput(f"--tp {lay.tp} does not divide the model's {model.heads} attention heads", "pass a tp that divides it")
    if not model.tp_takes_kv_heads(lay.tp):   # the engines shard KV heads, or replicate them over tp/kv ranks
        raise BadInput(f"--tp {lay.tp} neither divides nor is a multiple of the model's {model.kv_heads} KV heads",
                       f"pass a tp that divides {model.kv_heads} or is a multiple of it")
    if lay.pp > model.layers:
        raise BadInput(f"--pp {lay.pp} is more than the model's {model.layers} layers", "pass a smaller --pp")
    # The model-level conditions (a MoE model, an expert count --ep divides) are _check_expert_flags'.
    if lay.attn_dp and lay.ep not in (1, lay.tp):
        raise BadInput("--attention-dp spreads the attention over the tp GPUs and the experts over the same GPUs",
                       "use it with --ep equal to --tp, or --split-experts to split every expert over them")
    if lay.ep > lay.tp * lay.pp:
        raise BadInput(f"--ep {lay.ep} is more than tp x pp = {lay.tp * lay.pp} GPUs per replica",
                       "pass an --ep of at most tp x pp")
    if lay.tp * lay.pp > system.gpus:
        raise DoesNotFit(f"one replica needs tp x pp = {lay.tp * lay.pp} GPUs, the system {system.key} has {system.gpus:g}",
                         "lower --tp/--pp or use a larger system")


# --- one corner ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    batch: float
    tpot_s: float
    ttft_s: float
    tokens_per_s: float   # per replica
    step: StepTime
    wave: WaveRun | None = None   # a finite offline run followed to its end (serving_wave)


def accepted_tokens(k: int, a: float) -> float:
    """Output tokens a stream gains per step: 1; with k draft tokens each accepted with probability
    a (independently), (1 - a^(k+1)) / (1 - a) (Leviathan et al. 2023, eq. 1)."""
    if k <= 0:
        return 1.0
    return k + 1.0 if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)


def precision(req: ServingRequest, fused_allreduce_norm: bool = False) -> Precision:
    """The byte widths and GEMM formats of a request, as the step model takes them."""
    return Precision(DTYPE_BYTES[req.weights], DTYPE_BYTES[req.kv_cache],
                     quantized_activations=req.compute_dtype in ("fp8", "fp4"),
                     fused_allreduce_norm=fused_allreduce_norm, fp8_weights=req.weights == "fp8",
                     attention_weight_bytes=tuple(DTYPE_BYTES[d] if d != req.weights else 0.0 for d in req.attention_dtypes),
                     dispatch_bytes=DISPATCH_BYTES.get(req.compute_dtype, ACT_BYTES))


class _Replica:
    """The step model of one replica at one corner of the rates."""

    def __init__(self, model: Any, req: ServingRequest, lay: Layout, rates: Any, eff: float, budget: float,
                 room: tuple[float, bool, float] = (0.0, False, 0.0), budget_counts_decode: bool = True,
                 allreduce_norm_fusion: bool = False, windowed_kv_memory: bool = True):
        measured = rates.gemm_at
        # the GEMMs take e inside their rate (their time overlaps math with the weight read); the
        # attention rate stays the kernel's: its time is in the parts seconds() takes at 1/e
        rates = replace(rates, gemm_flop_s=rates.gemm_flop_s * eff, head_flop_s=rates.head_flop_s * eff,
                        attention_proj_flop_s=tuple(x * eff for x in rates.attention_proj_flop_s),
                        gemm_at=None if measured is None else (lambda m, n, k: measured(m, n, k) * eff))
        self.m, self.req, self.lay, self.r, self.eff, self.budget = model, req, lay, rates, eff, budget
        self.budget_counts_decode, self.windowed_kv_memory = budget_counts_decode, windowed_kv_memory
        self.prec = precision(req, allreduce_norm_fusion)
        self.ctx = req.prompt_tokens + req.output_tokens / 2.0
        self.kv_free_bytes, self.reserve_full, self.slots = room   # per GPU after weights and workspace; engine cap
        # stage() is a pure function of its arguments here; the server-mode searches ask for the same
        # step many times over (4x on the check sets), so each is computed once
        self._stages: dict[tuple[float, float], StepTime] = {}

    def seconds(self, st: StepTime) -> float:
        """Engine time of a kernel-level step: the GEMMs (math already at e x the rate, weight read
        at the achieved HBM rate) plus everything else at 1/e."""
        return st.gemm_s + (st.total_s - st.gemm_s) / self.eff

    def accepted(self) -> float:
        """Output tokens a stream gains per step (accepted_tokens at this corner's acceptance)."""
        return accepted_tokens(self.req.spec_tokens, self.r.spec_acceptance)

    def stage(self, batch: float, extra_prefill: float = 0.0) -> StepTime:
        """One stage step: B/pp streams each verifying 1 + k tokens (and its k draft passes), plus
        the prompt tokens that keep B streams running: requests end every O / L steps."""
        key = (batch, extra_prefill)
        st = self._stages.get(key)
        if st is None:
            st = self._stages[key] = self._stage(batch, extra_prefill)
        return st

    def _stage(self, batch: float, extra_prefill: float) -> StepTime:
        dec, k = batch / self.lay.pp, self.req.spec_tokens
        pre = dec * self.req.prompt_tokens * self.accepted() / self.req.output_tokens + extra_prefill
        st = step_time(self.m, self.lay, self.prec, dec, pre, self.ctx, self.req.prompt_tokens, self.r, 1.0 + k,
                       chunk=self.chunk(batch))
        if self.r.eager_kernel_s:  # the eager prefill forwards, spread over the steps (x eff: seconds() divides by it,
            # and eager_kernel_s is a wall-time measurement already)
            st = replace(st, launch_s=st.launch_s + self.eff * self.prefill_forwards(batch) * self.eager_forward_s() / self.lay.pp)
        return st.plus(draft_time(self.m, self.lay, self.prec, dec, self.ctx, self.r, k)) if k else st

    def eager_forward_s(self) -> float:
        """Wall time a prefill forward adds when the engine runs it without graph replay: every
        layer's kernels x eager_kernel_s (seeds/serving.toml [kernel]; 0 where prefill replays graphs,
        serving_rates._eager_kernel_s)."""
        return self.m.layers * layer_kernels(self.m, self.lay, self.prec) * self.r.eager_kernel_s

    def prefill_forwards(self, batch: float) -> float:
        """Prefill forwards per stage step: B/pp streams end every O/L steps, x = (B/pp) L / O new
        prompts a step, each in ceil(P / chunk) chunks. The prompts ready at one step boundary share
        one forward, so a step is followed by one when at least one is ready: 1 - exp(-x chunks)
        (Poisson), ~x chunks when few arrive, at most one."""
        chunks = prompt_chunks(self.req.prompt_tokens, self.prefill_room(batch))
        return -math.expm1(-batch / self.lay.pp * self.accepted() / self.req.output_tokens * chunks)

    def step_s(self, batch: float, extra_prefill: float = 0.0) -> float:
        """One engine step (every stage once) at `batch` running streams."""
        return self.lay.pp * self.seconds(self.stage(batch, extra_prefill))

    def tpot(self, batch: float) -> float:
        """Mean time per output token at `batch` running streams (prefill share included)."""
        return self.step_s(batch) / self.accepted()

    def throughput(self, batch: float) -> float:
        return batch / self.tpot(batch)

    def prefill_room(self, batch: float) -> float:
        """Prompt tokens a stage step can take: the budget less the step's decode tokens where the
        engine counts them against it (TensorRT-LLM max_num_tokens, vLLM max_num_batched_tokens)."""
        return self.budget - (batch / self.lay.pp * (1.0 + self.req.spec_tokens) if self.budget_counts_decode else 0.0)

    def budget_streams(self) -> float:
        """Most streams the budget sustains: every request brings P prompt tokens through it for
        its O decode steps, so a stage step carries (B/pp)(P/O) prompt tokens on average, plus its
        B/pp decode tokens where they count: B <= pp x budget x O / (P + O) (or O / P). With k draft
        tokens a stream verifies 1 + k tokens a step and ends after O / L steps."""
        p, o, k = self.req.prompt_tokens, self.req.output_tokens, self.req.spec_tokens
        per_stream = p * self.accepted() / o + ((1.0 + k) if self.budget_counts_decode else 0.0)
        return self.lay.pp * self.budget / per_stream

    def chunk(self, batch: float) -> float:
        """Prompt tokens a step that carries prefill holds: the prompt, or what the budget leaves."""
        return min(self.req.prompt_tokens, max(1.0, self.prefill_room(batch)))

    def prefill_s(self, batch: float, prompt: float | None = None) -> float:
        """The prompt's own prefill: ceil(P / chunk) steps that carry its chunk on top of the load;
        a chunk is what the budget leaves beside the running streams' decode tokens."""
        prompt = self.req.prompt_tokens if prompt is None else prompt
        room = max(1.0, self.prefill_room(batch))
        steps = prompt_chunks(prompt, room)
        chunk = min(prompt, room)
        return steps * (self.step_s(batch, chunk) + self.eager_forward_s())


def prompt_chunks(tokens: float, room: float) -> float:
    """Forwards a prefill of `tokens` takes when a forward holds `room` prompt tokens (at least one)."""
    return max(1.0, math.ceil(tokens / max(1.0, room)))


def _bisect(fn, lo: float, hi: float, iters: int = 60) -> float:
    """Largest x in [lo, hi] with fn(x) True, fn monotone (True then False)."""
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if fn(mid) else (lo, mid)
    return lo


def tpot_tail_s(rep: _Replica, req: ServingRequest, b: float, q: float) -> float:
    """How far the q-quantile of the per-request TPOT sits above the mean step. New prompts arrive
    at random (b / O per step, Poisson) and bring lumps of prefill work (P tokens each, spread
    cv2): a step carries X prefill tokens with variance (b / O) E[P^2], so its time varies by
    sigma = c sqrt((b / O) P^2 (1 + cv2)), c = the marginal step time per prefill token. A request's
    TPOT (MLPerf: (latency - TTFT) / (tokens - 1)) averages its n - 1 steps (serving_queue.mean_tail)."""
    if q <= 0.5 or b <= 0:
        return 0.0
    c = max(0.0, (rep.step_s(b, 1000.0) - rep.step_s(b)) / 1000.0)
    p, n = req.prompt_tokens, rep.accepted()   # a speculative step yields n tokens: per token, 1/n of its spread
    sigma = c * math.sqrt(b * n / req.output_tokens * p * p * (1.0 + rep.r.prompt_cv2)) / n
    return mean_tail(sigma, req.output_tokens / n, rep.r.service_cv2, q)


def server_point(rep: _Replica, req: ServingRequest, b: float, cap: float, q: float) -> Point:
    """Poisson arrivals that keep b streams running on average (Little: rate = X(b) / O).
    TPOT at quantile q: the step at the q-quantile of the running streams, which are Poisson around
    b (M/G/infinity occupancy), b + z_q sqrt(b), at most the cap. TTFT: half a step to the next
    step boundary + the prefill-budget queue + the KV-slot queue + the prefill itself."""
    lam = rep.throughput(b) / req.output_tokens
    step = rep.step_s(b)
    b_q = min(cap, b + Z[q] * math.sqrt(b))
    tpot_q = rep.tpot(b_q) + tpot_tail_s(rep, req, b, q)
    service = req.output_tokens * rep.tpot(b) + rep.prefill_s(b)
    ttft = (0.5 * step + prefill_wait(lam, step / rep.lay.pp, req.prompt_tokens, rep.prefill_room(b), q, rep.r.prompt_cv2)
            + slot_wait(lam, service, cap, q, rep.r.service_cv2) + rep.prefill_s(b, prompt_quantile(req.prompt_tokens, q, rep.r.prompt_cv2)))
    return Point(b, tpot_q, ttft, rep.throughput(b), rep.stage(b))


def solve(rep: _Replica, req: ServingRequest, cap: float, replicas: int, strict: bool = True, why: str = "") -> Point:
    """Batch, latency and throughput of one replica at one corner, for the mode the user chose.
    strict=False (the low/high corners): a load the corner cannot carry saturates instead of failing."""
    q = PERCENTILES[req.percentile]
    x_max = rep.throughput(cap)

    def fixed(b: float, ttft: float) -> Point:
        return Point(b, rep.tpot(b), ttft, rep.throughput(b), rep.stage(b))

    if req.batch is not None:
        if req.batch > cap:
            raise DoesNotFit(f"batch {req.batch} per replica is more than the replica sustains ({cap:.3g} max{': ' + why if why else ''})",
                             "lower --batch, or raise what binds: fp8 KV cache or more GPUs per replica (KV), "
                             "--max-batch (batch cap), --max-num-tokens (step budget)")
        return fixed(req.batch, rep.prefill_s(req.batch) + 0.5 * rep.tpot(req.batch))
    if req.concurrency is not None:
        # Closed loop: each user sends the next request when the last one ends. Users beyond what the
        # KV memory admits wait; Little's law then gives TTFT = users / request rate - decode time.
        users = req.concurrency / replicas
        b = min(users, cap)
        x = rep.throughput(b)
        return fixed(b, max(rep.prefill_s(b) + 0.5 * rep.tpot(b),
                            users * req.output_tokens / x - (req.output_tokens - 1) * rep.tpot(b)))
    if req.requests is not None:
        return wave_point(rep, req, replicas)
    if req.mode == "offline":
        return fixed(cap, rep.prefill_s(cap) + 0.5 * rep.tpot(cap))
    if req.request_rate_per_s:
        lam = req.request_rate_per_s / replicas
        if lam * req.output_tokens >= x_max:
            if not strict:
                return Point(cap, rep.tpot(cap), math.inf, x_max, rep.stage(cap))
            raise DoesNotFit(f"{req.request_rate_per_s:g} requests/s is above what {replicas} replica(s) sustain "
                             f"({x_max / req.output_tokens * replicas:.3g}/s)", "lower --request-rate or add GPUs")
        b = _bisect(lambda x: rep.throughput(x) < lam * req.output_tokens, 1e-6, cap)
        return server_point(rep, req, max(b, 1e-6), cap, q)

    lo = min(1.0, cap)
    slots = admission_cap(rep, req, cap, lo)

    def meets(b: float) -> bool:
        p = server_point(rep, req, b, slots, q)
        return (not req.tpot_target_s or p.tpot_s <= req.tpot_target_s) and (not req.ttft_target_s or p.ttft_s <= req.ttft_target_s)

    if not meets(lo):
        p = server_point(rep, req, lo, slots, q)
        if not strict:
            return p
        if not math.isfinite(p.ttft_s):
            raise _no_prompt_gets_through(rep, req, lo, slots, why)
        raise DoesNotFit(f"even one stream gives TPOT {p.tpot_s * 1e3:.1f} ms / TTFT {p.ttft_s * 1e3:.0f} ms ({req.percentile}), "
                         "above the target", "relax --tpot-ms/--ttft-ms, use more GPUs per replica or fp8")
    return server_point(rep, req, _bisect(meets, lo, slots * (1 - 1e-9)), slots, q)


def _no_prompt_gets_through(rep: _Replica, req: ServingRequest, b: float, slots: float, why: str) -> DoesNotFit:
    """Which queue of server_point never empties at the smallest load: the slots (the replica's
    stream cap, `why` the streams each limit allows) or the step's prompt-token budget."""
    lam = rep.throughput(b) / req.output_tokens
    service = req.output_tokens * rep.tpot(b) + rep.prefill_s(b)
    if not math.isfinite(slot_wait(lam, service, slots, 0.5)):
        return DoesNotFit(f"no prompt gets through: the replica runs at most {slots:.3g} stream(s) at once (streams "
                          f"allowed by {why}), so under a steady load every new request waits for a slot without end",
                          "raise the limit that binds: --max-batch (batch cap), --max-num-tokens (step budget), "
                          "or an fp8 KV cache or more GPUs per replica (KV memory)")
    return DoesNotFit(f"no prompt gets through: the step budget leaves {max(0.0, rep.prefill_room(b)):.3g} "
                      f"prompt tokens per step beside the running streams, so a {req.prompt_tokens:g}-token "
                      "prompt queues without end", "raise --max-num-tokens (the step token budget)")


def wave_point(rep: _Replica, req: ServingRequest, replicas: int) -> Point:
    """A finite offline run (req.requests over the system, an even share per replica) followed to
    its end (planner.serving_wave): throughput = its output tokens / its wall time."""
    m, lay, pp = rep.m, rep.lay, rep.lay.pp
    per_token = kv_bytes_per_token_per_gpu(m, lay, rep.prec.kv_bytes)

    def stage_s(decode: float, prefill: float, ctx: float, prompt: float) -> float:
        # the wave schedules its prefill tokens explicitly: a step's prefill is its own chunk
        return pp * rep.seconds(step_time(m, lay, rep.prec, decode / pp, prefill / pp, ctx, prompt, rep.r,
                                          chunk=prefill / pp))

    w = sw.Wave(requests=req.requests / replicas, prompt=req.prompt_tokens, output=req.output_tokens,
                slots=rep.slots, kv_free_bytes=rep.kv_free_bytes,
                kv_bytes=lambda c: per_token * c * held_kv_fraction(m, rep.windowed_kv_memory, c), reserve_full=rep.reserve_full,
                decode_s=lambda n, c: stage_s(n, 0.0, c, req.prompt_tokens),
                prefill_s=lambda tokens, length: (stage_s(0.0, tokens, 1.0, length) - stage_s(0.0, 0.0, 1.0, length)
                                                  + rep.eager_forward_s() * prompt_chunks(tokens, rep.budget)))
    try:
        r = sw.run(w)
    except ValueError as exc:
        raise DoesNotFit(f"--requests {req.requests}: {exc}",
                         "use shorter requests, an fp8 KV cache or more GPUs per replica") from exc
    return Point(r.mean_streams, r.mean_step_s, r.first_prefill_s, r.tokens_per_s, rep.stage(r.mean_streams), r)


def admission_cap(rep: _Replica, req: ServingRequest, cap: float, lo: float) -> float:
    """Slots a latency-targeted server runs with. A TPOT target makes the engine hold the running
    batch at the largest that meets it (MLPerf server submissions cap their decode batch; vLLM
    --max-num-seqs, TensorRT-LLM max_batch_size): when the queue is not empty exactly that many
    streams run, so the step at that batch is the TPOT every stream sees at the tail, and arrivals
    beyond it wait for a slot, which the TTFT target then bounds (serving_queue.slot_wait).
    Without both targets the slots are the KV-memory cap (a TPOT target alone would let the queue,
    and so the TTFT, grow without bound at the cap)."""
    q = PERCENTILES[req.percentile]

    def tpot_at(c: float) -> float:
        return rep.tpot(c) + tpot_tail_s(rep, req, c, q)

    if not req.tpot_target_s or not req.ttft_target_s or tpot_at(lo) > req.tpot_target_s:
        return cap
    return max(lo, _bisect(lambda c: tpot_at(c) <= req.tpot_target_s, lo, cap, iters=40))


# --- layout choice and the estimate ------------------------------------------------------------

def _pow2_upto(n: int) -> list[int]:
    out, g = [], 1
    while g <= n:
        out.append(g)
        g *= 2
    return out


def allreduce_fusion_on(req: ServingRequest, engine: Any) -> bool:
    """Whether the TP all-reduces carry the residual add and RMSNorm: the request's setting, else
    the engine's default."""
    return engine.allreduce_norm_fusion if req.allreduce_fusion is None else req.allreduce_fusion


def _fusion_note(req: ServingRequest, engine: Any, lay: Layout) -> tuple[str, ...]:
    if not has_tp_allreduce(lay):
        return ()
    how = "the engine's default" if req.allreduce_fusion is None else "as set"
    if allreduce_fusion_on(req, engine):
        return (f"TP all-reduce fused with the residual add and RMSNorm ({how}): 2 kernels fewer per layer",)
    return (f"TP all-reduce not fused with the residual add and RMSNorm ({how}; --allreduce-fusion if the engine runs it)",)


def _routing_note(model: Any, run: "_Run") -> tuple[str, ...]:
    """How the experts a decode step reads are counted (MoE models only)."""
    if not model.moe:
        return ()
    r = run.rates
    return (f"experts a step reads: the distinct experts its T tokens route to, expert-load cv {r['value'].moe_expert_load_cv:g} "
            f"(0: uniform top-k routing, E(1 - (1 - k/E)^T)); the fast end cv {r['high'].moe_expert_load_cv:g}, a skewed "
            "router touching fewer experts per batch (DeepSeek-R1's published EP-load table; seeds/serving.toml [kernel] "
            "moe_expert_load_cv)",)


def _token_travel_words(run: "_Run") -> str:
    """How attention-DP tokens reach the experts (planner/serving_step.moe_token_comm_s)."""
    if tokens_by_alltoall(run.lay, run.rates["value"]):
        return "a token goes once to each other GPU holding one of its experts, quantized, over the scale-up fabric"
    if run.lay.ep > 1:
        return "each GPU all-gathers the others' quantized tokens and reduce-scatters the outputs: no fabric for a one-sided all-to-all"
    return "the tensor-split experts all-gather the tokens and reduce-scatter the outputs"


def _untuned_blockscale_note(model: Any, run: "_Run", req: ServingRequest) -> tuple[str, ...]:
    r = run.rates["value"]
    if not pays_untuned_blockscale(model, precision(req), r):
        return ()
    kb = blockscale_kblocks_per_layer(model, run.lay)
    return (f"block-scaled FP8 GEMMs untuned on this device for {req.engine} (no tuned aiter config for its gfx arch and "
            f"CU count): each dense GEMM call walks its K in 128-wide blocks at {r.blockscale_kblock_s * 1e6:.2g} us "
            f"({run.rates['high'].blockscale_kblock_s * 1e6:.3g}-{run.rates['low'].blockscale_kblock_s * 1e6:.3g}), "
            f"{kb:.3g} blocks a layer: at least {model.layers * kb * r.blockscale_kblock_s * 1e3:.3g} ms a forward "
            "(seeds/serving.toml [untuned_blockscale]; a build with tuned configs for these shapes does not pay it)",)


def _check_expert_flags(model: Any, model_name: str, req: ServingRequest) -> None:
    """--attention-dp and --ep are about experts: on a dense model, or an --ep that no expert count
    divides, no searched layout can take them, so say that instead of "no layout fits"."""
    experts = int(getattr(model, "experts", 1) or 1)
    if req.attention_dp and experts <= 1:
        raise BadInput(f"--attention-dp spreads a MoE model's experts over the tp GPUs; {model_name} is dense",
                       "drop --attention-dp, or plan a MoE model")
    if req.ep > 1 and (experts <= 1 or experts % req.ep):
        what = "is dense" if experts <= 1 else f"has {experts} experts, which {int(req.ep)} does not divide"
        raise BadInput(f"--ep {int(req.ep)}: {model_name} {what}", "drop --ep or pass a divisor of the expert count")


def _layouts(model: Any, system: SystemSpec, req: ServingRequest) -> list[Layout]:
    """The layouts to try: the user's tp, else every power of two within a node (and pipelines of
    nodes). Attention DP spreads the experts over the same tp GPUs (ep = tp unless given, or each expert split
    over them with split_experts); unless
    the user says, a MoE model's searched layouts are tried with and without it."""
    def lay(tp: int, pp: int, dp_attn: bool) -> Layout:
        dp_attn = dp_attn and tp > 1
        ep = (1 if req.split_experts else tp) if dp_attn and req.ep <= 1 else int(req.ep)
        return Layout(tp, pp, ep, dp_attn)

    if req.tp:
        return [lay(int(req.tp), int(req.pp), bool(req.attention_dp))]
    moe = int(getattr(model, "experts", 1) or 1) > 1
    modes = [req.attention_dp] if req.attention_dp is not None else ([False, True] if moe and req.ep <= 1 else [False])
    node = int(min(system.gpus_per_node, system.gpus))
    pps = [int(req.pp)] if req.pp > 1 else [1] + [p for p in (2, 4, 8, 16) if p * node <= system.gpus]
    out = [lay(tp, pp, m) for pp in pps for tp in _pow2_upto(node) for m in modes
           if model.heads % tp == 0 and model.tp_takes_kv_heads(tp) and (req.ep <= 1 or req.ep <= tp * pp)
           and (not m or tp > 1) and (not m or int(getattr(model, "experts", 1) or 1) % tp == 0)]
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class _Run:
    lay: Layout
    mem: Memory
    replicas: int
    value: Point
    notes: tuple[str, ...]
    solve_at: Any          # (rates, efficiency) -> Point, saturating: the bounds re-run the model with it
    rates: Mapping[str, Any]
    efficiency: Mapping[str, float]
    budget_tokens: float
    caps: Mapping[str, float]   # streams per replica each limit allows


def _gb(nbytes: float) -> str:
    """Gigabytes for a message: three figures when small, whole and comma-grouped when large."""
    gb = nbytes / 1e9
    return f"{gb:,.0f}" if gb >= 100 else f"{gb:.3g}"


def _usable_note(frac: float, spec: Any, engine: sr.Engine) -> str:
    cap = sr.hbm_capacity_bytes(spec) / 1e9
    if engine.kv_fraction_of_free:
        return f"KV cache {frac:.0%} of what weights and workspace leave of {cap:.0f} GB"
    return f"{frac:.0%} of {cap:.0f} GB usable"


def _run(model: Any, system: SystemSpec, spec: Any, req: ServingRequest, lay: Layout, engine: sr.Engine,
         profile: Any, shapes: Any = None) -> _Run:
    _check_layout(model, system, lay)
    mem = memory(model, spec, req, lay, engine)
    if mem.max_streams < 1:
        raise DoesNotFit(f"tp={lay.tp} pp={lay.pp}: {_gb(mem.weights_bytes)} GB of weights + {_gb(mem.workspace_bytes)} GB "
                         f"workspace + one stream's KV do not fit in {_gb(mem.usable_bytes)} GB usable per GPU",
                         "lower --max-num-tokens: the workspace alone is larger than the memory"
                         if mem.workspace_bytes >= mem.usable_bytes else
                         "use more GPUs per replica (--tp/--pp), fp8 weights/KV, or a larger --hbm-fraction")
    # with attention DP each of the tp ranks schedules its own requests under its own budget
    budget = step_budget_tokens(req, engine) * (lay.tp if lay.attn_dp else 1)
    replicas = int(system.gpus // (lay.tp * lay.pp))
    rs = sr.rate_set(spec, system, req.compute_dtype, lay.tp, engine, profile, shapes, req.weights,
                     attention_dtypes=req.attention_gemm_dtypes)  # TP inside a node when it fits
    if req.length_cv2 is not None:  # the user's length spread replaces the stated default at every corner
        rs = replace(rs, rates={c: replace(r, service_cv2=req.length_cv2, prompt_cv2=req.length_cv2) for c, r in rs.rates.items()})
    if req.spec_acceptance is not None:  # a measured acceptance replaces the stated range
        rs = replace(rs, rates={c: replace(r, spec_acceptance=req.spec_acceptance) for c, r in rs.rates.items()})
    room = (mem.usable_bytes - mem.weights_bytes - mem.workspace_bytes, engine.kv_reserve == "full",
            float(req.max_batch or engine.max_batch))

    def replica(rates: Any, eff: float) -> _Replica:
        return _Replica(model, req, lay, rates, eff, budget, room, engine.budget_counts_decode, allreduce_fusion_on(req, engine),
                        engine.windowed_kv_memory)

    first = replica(rs.rates["value"], rs.efficiency["value"])
    caps = {"KV memory": float(mem.max_streams), "batch cap": float(req.max_batch or engine.max_batch),
            "step budget": first.budget_streams()}
    cap = min(caps.values())
    why = ", ".join(f"{k} {v:.3g}" for k, v in caps.items())
    value = solve(first, req, cap, replicas, why=why)

    def solve_at(rates: Any, eff: float) -> Point:
        return solve(replica(rates, eff), req, cap, replicas, strict=False, why=why)

    return _Run(lay, mem, replicas, value, rs.notes, solve_at, rs.rates, rs.efficiency, budget, caps)


def has_rate(spec: Any, dtype: str) -> bool:
    """Whether the device's GEMMs run in `dtype` (16/32-bit always; fp8/fp4 only with a stated rate)."""
    return dtype in ("bf16", "fp16", "fp32") or bool(spec.peak(dtype) or assumed_peak(spec, dtype))


def supported_precision(spec: Any, req: ServingRequest) -> tuple[ServingRequest, str]:
    """`req` in the narrowest precision the device computes in: fp4 -> fp8 -> bf16 for weights and
    activations, and the KV cache no narrower than them (a device without fp8 math, MI250X or A100,
    serves bf16 as the engines do there). Returns the request and a note ('' when unchanged)."""
    if has_rate(spec, req.compute_dtype):
        return req, ""
    to = "fp8" if req.compute_dtype == "fp4" and has_rate(spec, "fp8") else "bf16"
    narrow = {"fp4": 0, "fp8": 1, "int8": 1, "bf16": 2, "fp16": 2, "fp32": 3}
    fit = {k: to if narrow[getattr(req, k)] < narrow[to] else getattr(req, k) for k in ("weights", "activations", "kv_cache")}
    note = (f"{spec.key} has no {req.compute_dtype} rate: served with weights {fit['weights']}, activations "
            f"{fit['activations']}, KV cache {fit['kv_cache']} (the workload asks for {req.weights}/{req.activations}/{req.kv_cache})")
    return replace(req, **fit), note


def _check_context(model: Any, model_name: str, req: ServingRequest) -> None:
    """An engine refuses a request longer than the model's window (vLLM: max_model_len): no plan serves it."""
    window = model.context_window_tokens
    if window and req.prompt_tokens + req.output_tokens > window:
        raise DoesNotFit(f"prompt {req.prompt_tokens:,} + output {req.output_tokens:,} tokens exceed {model_name}'s "
                       f"context window of {window:,} tokens",
                       "shorten --prompt-tokens / --output-tokens, or use a model with a longer window")


def as_released(model: Any, req: ServingRequest) -> ServingRequest:
    """A model served in the dtype it was released in keeps the released checkpoint's attention
    projections (models.toml released_attention_weights: gpt-oss's are BF16 beside MXFP4 experts)
    unless the request names theirs."""
    kept = getattr(model, "released_attention_weights", "")
    if kept and req.attention_weights is None and req.weights == model.released_weights:
        return replace(req, attention_weights=kept)
    return req


def _attention_weights_note(model: Any, req: ServingRequest) -> tuple[str, ...]:
    if not req.attention_apart:
        if req.weights == "fp4" and getattr(model, "moe", False) and req.weights != getattr(model, "released_weights", ""):
            return (f"attention projections counted in {req.weights} like the experts; the published FP4 MoE checkpoints "
                    "leave them out of the quantization (amd/DeepSeek-R1-0528-MXFP4, nvidia/DeepSeek-R1-0528-FP4: BF16; "
                    "the -FP4-v2 quantizes o_proj only): pass --attention-weights bf16 (and --attention-out-weights fp4) for those",)
        return ()
    inputs, out = req.attention_dtypes
    which = (f"attention projections {inputs}" if inputs == out
             else f"attention input projections {inputs}, output projection {out}")
    released = req.weights == getattr(model, "released_weights", "") and getattr(model, "released_attention_weights", "")
    why = "as released (released_attention_weights: seeds/models.toml, or the checkpoint's quantization config)" if released else "as the checkpoint keeps them"
    return (f"{which} weights, {why}: their bytes and GEMM rate in that dtype, the rest of the model in {req.weights}",)


def estimate_serving(model: Any, model_name: str, system: SystemSpec, req: ServingRequest, profile: Any = None,
                     gemm_shapes: Any = None) -> ServingEstimate:
    """`gemm_shapes` (serving_rates.GemmShapes from the --profile results file): measured GEMM
    rates by shape, used for the device the profile was measured on."""
    spec = get_device_spec(system.device)
    req = as_released(model, req)
    if not has_rate(spec, req.compute_dtype):
        usable = [d for d in ("fp4", "fp8") if has_rate(spec, d)] + ["bf16"]
        raise BadInput(f"device {spec.key} has no {req.compute_dtype} rate",
                       f"use --activations {' or '.join(usable)}: narrower weights are then dequantised in the GEMM "
                       "(weight-only quantisation, W4A16 / W8A16)")
    _check_expert_flags(model, model_name, req)
    _check_context(model, model_name, req)
    engine = sr.load_engine(req.engine)
    if req.engine_efficiency:
        engine = replace(engine, efficiency=(req.engine_efficiency,) * 3, source="set by the user")
    best, errors = None, []
    for lay in _layouts(model, system, req):
        if best is not None and lay.pp > best[1].lay.pp:
            break  # pipeline stages across nodes only when no single-node replica fits
        try:
            run = _run(model, system, spec, req, lay, engine, profile, gemm_shapes)
        except DoesNotFit as exc:
            errors.append(exc)
            continue
        per_gpu = run.value.tokens_per_s / (lay.tp * lay.pp)
        if best is None or per_gpu > best[0] * 1.02:  # prefer the smaller replica unless >2% better per GPU
            best = (per_gpu, run)
    if best is None:
        raise errors[-1] if errors else DoesNotFit(f"no layout of {model_name} fits {system.key}", "use more GPUs or fp8")
    return _estimate(best[1], model, model_name, system, spec, req, engine)


BOUNDED = ("tokens_per_s", "tpot_s", "ttft_s", "batch")


def _est(run: _Run, span: Mapping[str, tuple[float, float]], attr: str, unit: str, scale: float = 1.0) -> Estimate:
    lo, hi = span[attr]
    return Estimate(getattr(run.value, attr) * scale, lo * scale, hi * scale, unit)


def _estimate(run: _Run, model: Any, model_name: str, system: SystemSpec, spec: Any, req: ServingRequest,
              engine: sr.Engine) -> ServingEstimate:
    lay, g = run.lay, run.lay.tp * run.lay.pp
    span, corners, runs = sb.bounds(run.solve_at, run.rates, run.efficiency, run.value, BOUNDED)
    rep_tps = _est(run, span, "tokens_per_s", "tokens/s")
    per_gpu = rep_tps.scale(1.0 / g, "tokens/s")
    system_tps = rep_tps.scale(float(run.replicas), "tokens/s")
    batch = _est(run, span, "batch", "stream")
    value = run.value
    frac = req.hbm_fraction or engine.usable_hbm_fraction
    notes = tuple(dict.fromkeys(run.notes + (
        f"replica = tp {lay.tp} x pp {lay.pp}" + (f" (ep {lay.ep})" if lay.ep > 1 else "")
        + (" with attention data-parallel over the tp GPUs (each keeps its own streams' KV and the whole attention weights; "
           + _token_travel_words(run) + ")" if lay.attn_dp else "") + f" of {spec.key}; "
        f"{run.replicas} replica(s) in {system.key}" + ("" if req.tp else " (tp chosen for the most tokens/s per GPU)"),
        f"weights {req.weights}, activations {req.activations} (GEMMs in {req.compute_dtype}), KV cache {req.kv_cache}; "
        f"prompt {req.prompt_tokens:g}, output {req.output_tokens:g} tokens",
        *_attention_weights_note(model, req),
        *_fusion_note(req, engine, lay),
        *_untuned_blockscale_note(model, run, req),
        *_routing_note(model, run),
        f"memory per GPU: {_usable_note(frac, spec, engine)}, weights {run.mem.weights_bytes / 1e9:.1f} GB, "
        f"workspace {run.mem.workspace_bytes / 1e9:.1f} GB, KV {run.mem.kv_bytes_per_token / 1e3:.0f} kB/token "
        f"-> {run.mem.max_streams} streams of {run.mem.kv_tokens_per_stream:g} tokens",
        _mode_note(req),
        _budget_note(run, req, engine),
        *_spec_note(run, req),
        "every request exactly prompt + output tokens long (fixed lengths, as a throughput benchmark's random dataset); "
        "each admission prefills its streams' tokens once" if value.wave else
        "continuous batching with chunked prefill: each step carries B decode tokens + B x prompt/output prefill tokens",
        sb.NOTE,
        f"every constant at its pessimistic / optimistic end at once: {corners['low'].tokens_per_s / g:,.4g} / "
        f"{corners['high'].tokens_per_s / g:,.4g} output tokens/s per GPU")
        + _missed_target_note(corners["low"], req) + _unbounded_ttft_note(value, req) + _wave_note(value.wave)))
    return ServingEstimate(
        system=system.key, model=model_name, mode=req.mode, engine=req.engine, tp=lay.tp, pp=lay.pp, ep=lay.ep,
        attention_dp=lay.attn_dp,
        gpus_per_replica=g, replicas=run.replicas, batch=batch, tpot=_est(run, span, "tpot_s", "s"),
        ttft=_est(run, span, "ttft_s", "s"),
        tokens_per_s_per_gpu=per_gpu, tokens_per_s_replica=rep_tps, tokens_per_s_system=system_tps,
        requests_per_s_system=system_tps.scale(1.0 / req.output_tokens, "request/s"),
        concurrent_users=batch.scale(float(run.replicas), "user"), memory=run.mem,
        step_shares=value.step.shares(), bound=value.step.bound, knobs=req.knobs(), assumptions=notes,
        group_tokens_per_s_per_gpu={name: tuple(runs[(name, s)].tokens_per_s / g for s in sb.SIDES)
                                    for name, _, _ in sb.GROUPS})


def _spec_note(run: _Run, req: ServingRequest) -> tuple[str, ...]:
    if not req.spec_tokens:
        return ()
    acc = {c: run.rates[c].spec_acceptance for c in ("value", "low", "high")}
    k = req.spec_tokens
    gain = {c: accepted_tokens(k, a) for c, a in acc.items()}
    src = "--spec-acceptance" if req.spec_acceptance is not None else "seeds/serving.toml [kernel] spec_acceptance"
    return (f"speculative decoding: {k} draft token(s) per step, each accepted with probability {acc['value']:.2f} "
            f"({acc['low']:.2f}-{acc['high']:.2f}, {src}): {gain['value']:.2f} ({gain['low']:.2f}-{gain['high']:.2f}) "
            f"tokens per stream per step (Leviathan et al. 2023); a step verifies {k + 1} tokens per stream in one pass "
            f"(one KV read) after {k} draft pass(es) of one layer plus the LM head (an MTP module or EAGLE head, "
            "not a separate draft model); the draft layer's own KV cache is not counted in memory",)


def _budget_note(run: _Run, req: ServingRequest, engine: sr.Engine) -> str:
    binds = min(run.caps, key=run.caps.get)
    counted = "prefill and decode tokens" if engine.budget_counts_decode else "prefill tokens only"
    return (f"step token budget {run.budget_tokens:g} tokens per replica ({counted}; "
            f"{'--max-num-tokens' if req.max_num_tokens else engine.name + ' default'}"
            f"{', x tp: each attention-DP rank schedules its own' if run.lay.attn_dp else ''}); "
            f"streams per replica allowed by " + ", ".join(f"{k}: {v:,.4g}" for k, v in run.caps.items())
            + f" (the {binds} binds)")


def _missed_target_note(low: Point, req: ServingRequest) -> tuple[str, ...]:
    if req.mode != "server" or req.batch or req.concurrency or req.request_rate_per_s:
        return ()
    missed = ((req.tpot_target_s and low.tpot_s > req.tpot_target_s * (1 + 1e-6))
              or (req.ttft_target_s and low.ttft_s > req.ttft_target_s * (1 + 1e-6)))
    return ("with every constant at its pessimistic end at once, even one stream misses the latency target",) if missed else ()


def _unbounded_ttft_note(value: Point, req: ServingRequest) -> tuple[str, ...]:
    if math.isfinite(value.ttft_s):
        return ()
    return ("TTFT unbounded: the TPOT target holds even at the batch cap, so the load sits at the cap and arrivals "
            "queue without end; give a TTFT target (--ttft-ms) to keep the queue finite",)


def _wave_note(w: WaveRun | None) -> tuple[str, ...]:
    if w is None:
        return ()
    part = ("" if w.followed_requests >= w.requests else
            f" (followed for {w.followed_requests:,.0f}: {sw.WAVES - 1} full waves and the run's own last one)")
    if w.reserve_full:
        return (f"finite run: {w.requests:,.0f} requests per replica{part}; the engine reserves prompt + output at "
                f"admission, so about {w.mean_streams:,.0f} streams run at once (waves of full-length reservations) "
                "and none is preempted",)
    if not w.preempted_streams:
        return (f"finite run: {w.requests:,.0f} requests per replica{part}; those the slots admit at once hold "
                f"{w.peak_kv_fraction:.0%} of the KV memory at full length: no preemption",)
    return (f"finite run: {w.requests:,.0f} requests per replica{part}; those the slots admit at once would hold "
            f"{w.peak_kv_fraction:.0%} of the KV memory at full length, so the newest streams are preempted ({w.preempted_streams:,.0f} preemptions) and "
            f"re-prefilled on return ({w.recomputed_tokens / 1e6:.3g}M tokens again; vLLM RECOMPUTE, charged in full "
            f"though prefix caching may keep some); {w.mean_streams:,.0f} streams run on average",)


def _mode_note(req: ServingRequest) -> str:
    if req.batch or req.concurrency:
        return f"fixed load: {req.batch or req.concurrency} {'streams per replica' if req.batch else 'concurrent requests (system)'}"
    if req.requests is not None:
        return (f"offline, {req.requests} requests submitted at once and followed to the end (planner/serving_wave.py): "
                "they grow in lockstep; batch = the mean of the streams running; TTFT = the first admission's prefill")
    if req.mode == "offline":
        return ("offline: batch = the most streams the KV memory, the engine's batch cap and its step token budget "
                "(every prompt token passes through it) allow; TTFT = prefill only (no queue)")
    if req.request_rate_per_s:
        return (f"server: {req.request_rate_per_s:g} requests/s (Poisson) -> batch by Little's law; TTFT = half a step + "
                f"prefill-budget wait (M/G/1, {req.percentile}, exponential-tail approximation) + prefill")
    tgt = ", ".join(x for x in (f"TTFT <= {req.ttft_target_s * 1e3:g} ms" if req.ttft_target_s else "",
                                 f"TPOT <= {req.tpot_target_s * 1e3:g} ms" if req.tpot_target_s else "") if x)
    return f"server: the largest load meeting {tgt} at {req.percentile}"


def with_overrides(req: ServingRequest, **kw: Any) -> ServingRequest:
    return replace(req, **{k: v for k, v in kw.items() if v is not None})
