"""What a user asks of a serving estimate (ServingRequest), checked once where it enters, and the
byte widths of the dtypes it names. planner.serving estimates it."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from recoque.errors import BadInput
from recoque.planner import serving_rates as sr
from recoque.planner.serving_step import ACT_BYTES, Precision

DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5}
# An fp4 tensor is stored with one scale per block of values, read and held with its elements:
# MXFP4 (OCP Microscaling Formats v1.0, 2023, sec. 5: blocks of 32 E2M1 values, one 8-bit E8M0
# scale) 0.5 + 1/32 byte per value; NVFP4 (NVIDIA, "Introducing NVFP4 for efficient and accurate
# low-precision inference", 2025: blocks of 16 values, one FP8 E4M3 scale, plus one FP32 scale per
# tensor, negligible) 0.5 + 1/16. The 16-bit, 8-bit and per-tensor-scaled formats carry no
# per-block scales here (DeepSeek's 128 x 128 block scales are 1/16,384 byte per value).
FP4_SCALE_BYTES = {"mxfp4": 1.0 / 32.0, "nvfp4": 1.0 / 16.0}
# Bytes per element of a token sent to the experts: quantized to the GEMMs' format before it
# travels, NVFP4 with one 8-bit scale per 16 values (TensorRT-LLM fp4_quantize, scaling_vector_size
# 16), FP8 with one scale per tensor; 16-bit GEMMs send 16-bit tokens.
DISPATCH_BYTES = {"fp4": 0.5 + 1.0 / 16.0, "fp8": 1.0}
MODES = ("offline", "server")


def stored_bytes(dtype: str, fp4_format: str | None = None) -> float:
    """Bytes one value of `dtype` takes in memory and on the way from it: the element, plus the block
    scale of an fp4 format (FP4_SCALE_BYTES)."""
    return DTYPE_BYTES[dtype] + (FP4_SCALE_BYTES[fp4_format] if dtype == "fp4" and fp4_format else 0.0)
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
    output_cv2: float | None = None        # the output lengths' own, where a dataset's differs from its prompts' (None: length_cv2)
    requests: int | None = None            # offline: this many requests submitted at once, over the system
                                           # (vLLM benchmark_throughput --num-prompts); the run is followed to its end
    spec_tokens: int = 0                   # speculative decoding: draft tokens verified per step (MTP / EAGLE)
    spec_acceptance: float | None = None   # probability a draft token is accepted (None: seeds/serving.toml)
    fp4_format: str | None = None          # the block format of fp4 weights and KV (mxfp4, nvfp4); None:
                                           # the checkpoint's where it was released in fp4, else the vendor's
                                           # (planner.serving.with_fp4_format)
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
            raise BadInput(f"percentile must be one of {', '.join(PERCENTILES)}, got {self.percentile!r}", "pass --percentile " + " or ".join((", ".join(list(PERCENTILES)[:-1]), list(PERCENTILES)[-1])))
        for name in ("weights", "activations", "kv_cache"):
            if getattr(self, name) not in DTYPE_BYTES:
                raise BadInput(f"unknown {name} dtype {getattr(self, name)!r}", f"use one of {', '.join(DTYPE_BYTES)}")
        if self.fp4_format is not None and self.fp4_format not in FP4_SCALE_BYTES:
            raise BadInput(f"unknown fp4 format {self.fp4_format!r}", f"use one of {', '.join(FP4_SCALE_BYTES)}")
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
        if self.output_cv2 is not None and (isinstance(self.output_cv2, bool) or not isinstance(self.output_cv2, (int, float))
                                            or not math.isfinite(self.output_cv2) or not 0 <= self.output_cv2 <= 4):
            raise BadInput(f"output cv2 must be a number in [0, 4], got {self.output_cv2!r}",
                           "pass --output-cv2 0 for fixed output lengths, or leave it out to take --length-cv2")
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
        if self.percentile != "p50" and (self.mode == "offline" or fixed):
            # the tails come from Poisson arrivals (serving_queue); a fixed load or an offline run has only its median
            raise BadInput(f"--percentile {self.percentile} is modelled for server mode under a request rate or latency "
                           "targets; with --batch, --concurrency or offline the figures are medians",
                           "drop --percentile, or pass --mode server with --request-rate or --ttft-ms/--tpot-ms")
        if self.request_rate_per_s is not None and (self.ttft_target_s or self.tpot_target_s):
            raise BadInput("a request rate and latency targets both given", "pass --request-rate or --ttft-ms/--tpot-ms")
        if fixed and (self.ttft_target_s or self.tpot_target_s):  # a fixed load sets the latency; a target would be dropped
            raise BadInput("a fixed batch/concurrency and latency targets both given",
                           "pass --batch or --concurrency to see the latency that load gives, or --ttft-ms/--tpot-ms "
                           "to find the load that meets them")

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

    def stored_bytes(self, dtype: str) -> float:
        """stored_bytes of `dtype` in this request's fp4 format (none where not resolved yet)."""
        return stored_bytes(dtype, self.fp4_format)

    def knobs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def precision(req: ServingRequest, fused_allreduce_norm: bool = False) -> Precision:
    """The byte widths and GEMM formats of a request, as the step model takes them."""
    return Precision(req.stored_bytes(req.weights), req.stored_bytes(req.kv_cache),
                     quantized_activations=req.compute_dtype in ("fp8", "fp4"),
                     fused_allreduce_norm=fused_allreduce_norm, fp8_weights=req.weights == "fp8",
                     attention_weight_bytes=tuple(req.stored_bytes(d) if d != req.weights else 0.0 for d in req.attention_dtypes),
                     dispatch_bytes=DISPATCH_BYTES.get(req.compute_dtype, ACT_BYTES))


def allreduce_fusion_on(req: ServingRequest, engine: Any) -> bool:
    """Whether the TP all-reduces carry the residual add and RMSNorm: the request's setting, else
    the engine's default."""
    return engine.allreduce_norm_fusion if req.allreduce_fusion is None else req.allreduce_fusion
