"""One continuous-batching step of an LLM replica, from its parts (planner.serving's inner model).

A step runs every layer once over T tokens: B decode tokens (one per running stream) plus C prefill
tokens of other requests (chunked prefill). Per layer, on one GPU of a tensor-parallel group of g:

  weight GEMMs  math = 2 T P_layer / g / (R_gemm x m/(m + m_half)), memory = W_layer / g / BW,
                t = (math^p + memory^p)^(1/p)  (the weights are read once per step whatever T is; a
                skinny m = T GEMM is bound by that read, a fat one by the math; m/(m + m_half) is the
                last partial row tile; p < infinity: imperfect overlap near the ridge point)
  attention     decode: KV read of B x context x cached elements per token (K and V of the GPU's KV
                heads; MLA: latent + RoPE key) x bytes at BW (MLA: or its latent math, if slower);
                prefill: C x prompt x heads/g x (qk + v head widths) FLOPs (causal) at the attention rate
  elementwise   norms, rotary, residuals, activation: ~ T x (10 hidden + 3 ffn/g) x 2 bytes at BW;
                MoE: + the combine of each token's k expert outputs, (k + 1) hidden x 2 bytes
  all-reduce    2 per layer (after attention and after the MLP), ring: 2(g-1) hops x latency
                + 2(g-1)/g x T x hidden x 2 bytes / link bandwidth; or, where the system file carries a
                measured all-reduce table for g GPUs, its time at that message size
  launches      kernels_per_layer x per-kernel gap (graph replay)
then once per step: the LM head (a GEMM over the decode tokens and the vocabulary) and the engine's
CPU scheduling time, which does not overlap the GPU work.
Mixture-of-experts layers: each token runs k of E experts; the weights read are those of the experts
the step touches (E(1 - (1 - k/E)^T) in expectation, uniform routing); with expert parallelism (ep)
the experts are spread over ep GPUs. Under tensor-parallel attention every GPU holds every token and
the MLP all-reduce sums the experts' outputs; under attention DP the tokens travel (moe_token_comm_s:
once to each other rank holding one of their experts, or all-gathered where no fabric carries a
one-sided all-to-all). Everything here is floats in base units; planner.serving wraps it in Estimates.
Formula sources: the weights-over-bandwidth decode floor and 2 x params FLOPs per token are the usual
LLM-serving arithmetic (e.g. Pope et al. 2022, Efficiently Scaling Transformer Inference, section 2);
ring all-reduce cost 2(g-1)/g x bytes / bandwidth + 2(g-1) x latency (Thakur et al. 2005).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from recoque.estimate import expected_max_z
from recoque.planner import flops
from recoque.planner.profile import narrow_head_exponentials_float
from recoque.planner.workload import spec_memo

ACT_BYTES = 2.0          # activations between kernels are bf16/fp16 in all three engine classes
# Kernels one decode step launches per layer (CUDA/HIP graph replay), counted from the engines'
# model code: vLLM llama.py @e06c9ba2 (LlamaDecoderLayer: fused add+norm, qkv GEMM, rotary, KV
# write, attention, o-proj, all-reduce; fused add+norm, gate/up GEMM, SiLU-and-mul, down GEMM,
# all-reduce: 12); SGLang deepseek_v2.py @3e4a39ee (DeepseekV2AttentionMLA absorbed decode: the
# q_a/kv_a GEMM in place of qkv, plus q_a and kv_a norms, the q_b GEMM and the two absorbed bmms
# q.W_UK and attn.W_UV: +5; DeepseekV2MoE: router GEMM, top-k, align/sort, combine: +4; a shared
# expert's gate/up GEMM, activation and down GEMM: +3); vLLM gpt_oss.py @a6b6cfaa (the same MoE
# steps in triton routing and matmul kernels). Activation quantisation for 8- and 4-bit GEMMs:
# engines fuse it into the norm or activation kernel that produces the input where they can; MLA's
# absorbed decode has three inputs no such kernel produces, each quantised in a kernel of its own
# before its fp8 GEMM: q_nope before the q.W_UK bmm and the attention output before the attn.W_UV
# bmm (SGLang forward_mla per_tensor_quant_mla_fp8 then bmm_fp8), and the W_UV output before the
# o-proj (block-scaled checkpoints: SGLang/vLLM apply_w8a8_block_fp8_linear runs
# per_token_group_quant_fp8, TensorRT-LLM's FP8BlockScalesLinearMethod fp8_quantize_1x128 on
# sm89/sm90, before the GEMM): +3 with fp8/fp4 activations. Not counted: split-KV combine kernels.
# The shared expert's +3 is kept where SGLang folds it into the grouped GEMM (DeepSeek-V3 without
# expert parallelism): TensorRT-LLM and vLLM run it apart, and the MoE's own input quantisations
# (fused-MoE per-token-group quant before each grouped GEMM) are of the same size.
ATTENTION_KERNELS = 7
MLP_KERNELS = 5
KERNELS_PER_LAYER = ATTENTION_KERNELS + MLP_KERNELS
MLA_EXTRA_KERNELS = 5
MLA_QUANT_KERNELS = 3
FUSED_NORM_KERNELS = 2
# The two all-reduces of KERNELS_PER_LAYER exist only where a layer is split over a TP group: at
# tp = 1 the engines' row-parallel layers return their output without a collective (vLLM
# tensor_model_parallel_all_reduce and SGLang's return the input for a group of one; TensorRT-LLM's
# AllReduce module is a no-op at tp_size 1). Under attention DP (tp > 1) the tokens' dispatch and
# combine take their two places.
TP_ALLREDUCE_KERNELS = 2
MOE_EXTRA_KERNELS = 4
SHARED_EXPERT_KERNELS = 3
# A clamped SwiGLU (gpt-oss, TransformerSpec.glu_clamp) has no kernel in the engines' general MoE
# path; its own path applies the activation inside the first expert GEMM and the routing weights
# and the sum over the k experts inside the second (vLLM gpt_oss_triton_kernels_moe.py @04bec4cd,
# triton_kernel_fused_experts: matmul_ogs with FusedActivation swiglu(alpha, limit), then matmul_ogs
# with scatter_indx and gammas; TopKWeightAndReduceNoOP): the SiLU-and-mul and combine kernels of
# the count above are not launched. Counted from vLLM's path and applied to every engine (U for
# TensorRT-LLM, SGLang and ATOM, whose gpt-oss MoE kernels were not read).
FUSED_GLU_MOE_SAVED_KERNELS = 2


def kernels_per_layer(model: Any, quantized_activations: bool = False, fused_norms: bool = False,
                      tp_group: bool = True) -> float:
    """Kernels a decode step launches in an average layer of `model` (counts above); with
    `quantized_activations` (fp8/fp4 GEMMs) MLA's three stand-alone quantisations too; with
    `fused_norms` the two add+norm kernels run inside the layer's two TP all-reduces; without a
    `tp_group` (tp = 1) the two all-reduces are not launched at all (nor fused: the norms stay)."""
    saved = TP_ALLREDUCE_KERNELS if not tp_group else FUSED_NORM_KERNELS if fused_norms else 0.0
    n = float(KERNELS_PER_LAYER) - saved
    if model.mla:
        n += MLA_EXTRA_KERNELS + (MLA_QUANT_KERNELS if quantized_activations else 0.0)
    if model.moe:
        shared = SHARED_EXPERT_KERNELS if model.shared_experts else 0.0
        fused = FUSED_GLU_MOE_SAVED_KERNELS if model.glu_clamp else 0.0
        n += model.moe_layer_fraction * (MOE_EXTRA_KERNELS + shared - fused)
    return n


@dataclass(frozen=True)
class Rates:
    """What one GPU (and its links) deliver, for one bound of the estimate. Base units."""

    gemm_flop_s: float        # large-shape GEMM rate in the weights' compute dtype
    attention_flop_s: float   # prefill attention rate (flash-attention class kernel)
    hbm_bytes_s: float        # achieved streaming bandwidth
    link_bytes_s: float       # per-GPU one-direction bandwidth the all-reduce achieves
    hop_latency_s: float      # per ring hop
    kernel_gap_s: float       # per kernel launch with graph replay
    step_overhead_s: float    # CPU scheduling per step (not overlapped)
    pp_link_bytes_s: float = 0.0  # stage-to-stage send rate where the stages span nodes (0: link_bytes_s)
    pp_hop_latency_s: float = 0.0  # ... and its latency (used with pp_link_bytes_s)
    host_per_request_s: float = 0.0  # host work per running request and rank, overlapped with the step (0: none)
    m_half: float = 32.0      # GEMM rows at which a skinny GEMM runs at half its large-shape rate
    moe_m_half: float = 0.0   # the same for the expert GEMMs where the MoE kernel's row tile is known (0: m_half)
    overlap_p: float = 2.0    # math/memory overlap inside a GEMM: t = (t_math^p + t_mem^p)^(1/p)
    moe_gemm_efficiency: float = 1.0  # grouped (MoE expert) GEMM rate / dense GEMM rate at the same rows
    moe_rank_imbalance_ep32: float = 0.0  # busiest EP rank's tokens / mean - 1, DeepSeek-R1 at EP 32 (seeds/serving.toml)
    moe_expert_load_cv: float = 0.0  # coefficient of variation of the experts' shares of the routed tokens (0: uniform)
    service_cv2: float = 0.0  # squared coefficient of variation of a request's time in the engine
    prompt_cv2: float = 0.0   # squared coefficient of variation of prompt lengths (tail TTFT)
    spec_acceptance: float = 0.0  # speculative decoding: probability a draft token is accepted
    head_flop_s: float = 0.0  # the LM head's GEMM rate: 16-bit (quantized checkpoints keep the head in bf16); 0: gemm_flop_s
    attention_proj_flop_s: tuple[float, float] = (0.0, 0.0)  # GEMM rates of the attention's (input, output)
                                                             # projections where they run another dtype; 0: the body's
    gemm_at: Any = None       # measured (m, n, k) -> FLOP/s (serving_rates.GemmShapes); None: the m/(m + m_half) model
    moe_at: Any = None        # measured grouped GEMM (rows per expert, n, k) -> FLOP/s (`recoque bench moe`); None: modelled
    allreduce_at: Any = None  # measured bytes -> seconds of one all-reduce over allreduce_gpus GPUs (planner.allreduce_table)
    allreduce_gpus: int = 0
    eager_kernel_s: float = 0.0  # what a kernel launched without graph replay (eager) adds to a forward's wall time
    blockscale_kblock_s: float = 0.0  # per 128-wide K-block of an untuned block-scaled FP8 GEMM call (0: tuned)
    mla_heads_per_kv_pass: int = 0  # MLA decode: query heads one walk of the latent cache serves (0: all of them)
    mla_native_fp8_heads: int = 0   # ... except this many heads with an FP8 cache, served in one walk
    p2p_fabric: bool = True  # the GPUs share a scale-up fabric (NVLink, Infinity Fabric) one-sided all-to-all kernels use
    # under attention DP, what else each rank holds whole (the engine's: seeds/serving.toml attention_dp_whole):
    # the shared experts and dense-first FFNs ("ffn"), the LM head ("lm_head"); otherwise split over tp
    adp_whole_ffn: bool = False
    adp_whole_head: bool = False
    exp2_per_s: float = 0.0  # softmax exponentials per second of the part's SFUs, where stated (0: unknown)


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    ep: int = 1
    # Attention data parallelism inside the tp group (TensorRT-LLM enable_attention_dp, SGLang
    # --enable-dp-attention): each GPU runs the attention of its own streams with the whole attention
    # weights and keeps only their KV; the experts stay spread over ep and the tokens travel by
    # all-to-all. What MLA needs: under TP every rank would hold the whole latent cache.
    attn_dp: bool = False


@dataclass(frozen=True)
class Precision:
    weight_bytes: float = 2.0
    kv_bytes: float = 2.0
    quantized_activations: bool = False  # the GEMMs run in fp8/fp4: activations are quantised first
    fused_allreduce_norm: bool = False   # each TP all-reduce also adds the residual and runs the next RMSNorm
    fp8_weights: bool = False            # the weights are FP8 (not int8, the other 1-byte format)
    attention_weight_bytes: tuple[float, float] = (0.0, 0.0)  # weight widths of the attention's (input, output)
    # projections where the checkpoint keeps them apart (its quantization excludes self_attn); 0: weight_bytes
    dispatch_bytes: float = ACT_BYTES  # bytes an element of a token sent to the experts takes (quantized first)


@dataclass(frozen=True)
class StepTime:
    """Seconds one step takes on one pipeline stage, by part, and the part that bounds it."""

    gemm_compute_s: float
    gemm_memory_s: float
    gemm_s: float
    attention_s: float
    elementwise_s: float
    comm_s: float
    launch_s: float
    overhead_s: float
    untuned_gemm_s: float = 0.0  # of gemm_s: what untuned block-scaled GEMM calls take beyond the tuned model
    host_s: float = 0.0  # host work of the step, overlapped with the GPU's: the step lasts at least this (not in total_s)

    @property
    def total_s(self) -> float:
        return self.gemm_s + self.attention_s + self.elementwise_s + self.comm_s + self.launch_s + self.overhead_s

    @property
    def bound(self) -> str:
        parts = {"weight read (memory)": self.gemm_memory_s if self.gemm_memory_s >= self.gemm_compute_s else 0.0,
                 "GEMM math (compute)": self.gemm_compute_s if self.gemm_compute_s > self.gemm_memory_s else 0.0,
                 "KV-cache read / attention": self.attention_s, "communication": self.comm_s,
                 "launches, CPU scheduling, elementwise": self.launch_s + self.overhead_s + self.elementwise_s,
                 "untuned block-scaled GEMMs (latency)": self.untuned_gemm_s}
        return max(parts, key=parts.get)

    def plus(self, other: "StepTime") -> "StepTime":
        """This step and `other` run one after the other (a draft model's passes after the target's)."""
        return StepTime(*(getattr(self, f) + getattr(other, f) for f in self.__dataclass_fields__))

    def shares(self) -> dict[str, float]:
        t = self.total_s
        return {"gemm": self.gemm_s / t, "attention": self.attention_s / t, "elementwise": self.elementwise_s / t,
                "communication": self.comm_s / t, "launch": self.launch_s / t, "cpu_overhead": self.overhead_s / t}


def kv_heads_per_gpu(model: Any, tp: int) -> float:
    """GQA KV heads held by one GPU: split over TP, replicated once TP exceeds the KV head count."""
    return max(model.kv_heads / tp, 1.0)


def kv_elems_per_token_layer_per_gpu(model: Any, layout: Layout) -> float:
    """Cached elements of one of the replica's tokens in one layer, per GPU: under TP the GPU's share
    of the KV heads (MLA: all of the latent, on every rank); with attention DP a GPU holds whole
    caches of 1/tp of the streams."""
    if layout.attn_dp:
        return model.kv_cache_elems_per_token_layer(1.0) / layout.tp
    return model.kv_cache_elems_per_token_layer(layout.tp)


def mla_kv_walks(model: Any, lay: Layout, prec: Precision, r: Rates) -> float:
    """Walks over the latent cache one MLA decode step makes on a GPU: the kernel serves
    r.mla_heads_per_kv_pass query heads a walk (aiter: 16; seeds/serving.toml [mla_decode]), so a GPU
    with more heads walks the cache heads / 16 times, except the one wide native case (128 heads
    with an FP8 cache). 1 where the kernel takes all heads at once, or the model is not MLA."""
    if not model.mla or r.mla_heads_per_kv_pass <= 0:
        return 1.0
    heads = model.heads if lay.attn_dp else model.heads / lay.tp
    if heads <= r.mla_heads_per_kv_pass or (heads == r.mla_native_fp8_heads and prec.kv_bytes <= 1.0):
        return 1.0
    return float(math.ceil(heads / r.mla_heads_per_kv_pass))


def kv_bytes_per_token_per_gpu(model: Any, layout: Layout, kv_bytes: float) -> float:
    """The cache of one token (K and V of the GPU's KV heads; MLA: the latent and RoPE key), for the
    layers one pipeline stage holds, on one GPU (an average over the GPUs with attention DP)."""
    return (model.layers / layout.pp) * kv_elems_per_token_layer_per_gpu(model, layout) * kv_bytes


@spec_memo  # pure in the model: asked for once or twice per step, ~10^6 times a check-set run
def _expert_split(model: Any) -> tuple[float, float, int, int]:
    """(dense params per layer, params of one expert, experts, active experts)."""
    experts = int(getattr(model, "experts", 1) or 1)
    active = int(getattr(model, "active_experts", 1) or 1)
    if experts <= 1:
        return float(model.layer_params()), 0.0, experts, active
    # an average layer: the routed experts by the share of layers that have them
    return float(model.nonexpert_params_per_layer()), model.moe_layer_fraction * float(model.expert_params()), experts, active


def experts_touched(experts: int, active: int, tokens: float, load_cv: float = 0.0) -> float:
    """Expected distinct experts a batch of `tokens` routes to. Uniform top-k routing (load_cv 0):
    an expert is missed by one token with probability 1 - k/E, so by all of them with
    (1 - k/E)^T = exp(-lambda T), lambda = -ln(1 - k/E). Popular and unpopular experts (load_cv > 0,
    the coefficient of variation of the experts' shares of the routed tokens): each expert's rate is
    lambda x g with g ~ Gamma(mean 1, shape 1 / cv^2), and E[exp(-lambda g T)] = (1 + lambda T cv^2)^(-1 / cv^2)
    (the gamma Laplace transform), which is exp(-lambda T) as cv -> 0: a skewed router sends a small
    batch to fewer distinct experts, so a decode step reads fewer expert weights."""
    if experts <= 1:
        return 1.0
    t = max(tokens, 1.0)
    if active >= experts:
        return float(experts)
    lam_t = -math.log1p(-active / experts) * t
    if load_cv <= 0.0:
        return experts * -math.expm1(-lam_t)
    cv2 = load_cv * load_cv
    return experts * (1.0 - (1.0 + lam_t * cv2) ** (-1.0 / cv2))


def overlap(math_s: float, mem_s: float, p: float) -> float:
    """Time of a kernel whose math and operand reads overlap imperfectly: the p-norm of the two,
    the roofline max when p is large, their sum when p = 1. A GEMM keeps a few tiles in flight, so
    near the ridge point each unit stalls the other part of the time (p = 2: 71% of the roofline there)."""
    return (math_s ** p + mem_s ** p) ** (1.0 / p)


def shapes_rate(at: Any, m: float, shapes: tuple[tuple[float, float], ...]) -> float:
    """The rate of a layer's GEMMs (n, k) at m rows each, from a measured (m, n, k) -> FLOP/s: their
    work over the sum of their measured times (FLOP-weighted harmonic mean)."""
    return sum(n * k for n, k in shapes) / sum(n * k / at(m, n, k) for n, k in shapes)


def _gemm(flops: float, nbytes: float, m: float, r: Rates, shapes: tuple[tuple[float, float], ...] = (),
          flop_s: float | None = None, m_half: float = 0.0) -> tuple[float, float]:
    """(math time, weight-read time). With measured rates by shape, the math time is the measured
    time of the GEMMs (n, k) in `shapes` at m rows, FLOP-weighted (sum of their times). `flop_s`:
    a large-shape rate of another dtype than the body's (the 16-bit LM head), by the tile model.
    `m_half`: the kernel's own half tile where known (0: r.m_half)."""
    if flop_s is None and r.gemm_at is not None and shapes and m > 0:
        rate = shapes_rate(r.gemm_at, m, shapes)
    else:
        big = r.gemm_flop_s if flop_s is None else flop_s
        rate = big * m / (m + (m_half or r.m_half)) if m > 0 else big
    return flops / rate, nbytes / r.hbm_bytes_s


def gemm_shapes(model: Any, lay: Layout) -> tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]:
    """(n, k) of one layer's weight GEMMs on one GPU: (dense ones, one expert's) - the attention
    projections (planner.flops), MLP up(+gate) and down, split over tp (experts over ep when ep > 1)."""
    g, h = lay.tp, float(model.hidden)
    up = (2.0 if getattr(model, "gated_ffn", True) else 1.0) * model.ffn_hidden
    attn = tuple((float(n), float(k)) for _, n, k, _ in flops.attention_gemm_shapes_fwd(model, 1.0, g))
    mlp_g = moe_tp(lay)   # each expert's matrices over tp / ep GPUs (all tp without expert parallelism)
    mlp = ((up / mlp_g, h), (h, model.ffn_hidden / mlp_g))
    if int(getattr(model, "experts", 1) or 1) > 1:
        return attn, mlp
    return attn + ((up / g, h), (h, model.ffn_hidden / g)), ()


def _allreduce_s(nbytes: float, g: int, r: Rates) -> float:
    if g <= 1:
        return 0.0
    if r.allreduce_at is not None and g == r.allreduce_gpus:
        return r.allreduce_at(nbytes)
    return 2.0 * (g - 1) * r.hop_latency_s + 2.0 * (g - 1) / g * nbytes / r.link_bytes_s


def rank_imbalance(model: Any, ep: int, r: Rates) -> float:
    """How much more than the mean the busiest of `ep` expert-parallel ranks receives, from the
    published DeepSeek-R1 figure at EP 32: a rank's share of the routed slots is 1/ep, its spread
    taken to fall as 1/sqrt(share of slots) (ep/32 the other way: independent loads summed), and the
    busiest of n ranks sits at the expected maximum of n normal draws; at most every token on one
    rank. The share, not the expert count, so a coarse-expert model (Mixtral: 8 experts) is not
    charged the fine-grained model's per-expert spread."""
    experts = int(getattr(model, "experts", 1) or 1)
    if ep <= 1 or experts <= 1 or r.moe_rank_imbalance_ep32 <= 0:
        return 0.0
    x = r.moe_rank_imbalance_ep32 * math.sqrt(ep / 32.0) * _max_z(ep) / _max_z(32)
    return min(x, ep - 1.0)


# cached: a pure function of the rank count, asked for two or three times a step under expert parallelism
_max_z = functools.lru_cache(maxsize=None)(expected_max_z)


def moe_tp(lay: Layout) -> float:
    """GPUs one expert's matrices are split over: the experts go to ep groups of the tp GPUs and
    each is tensor-parallel inside its group (TensorRT-LLM moe_tp_size = tp / ep; vLLM and SGLang
    without expert parallelism: ep 1, every expert split over all tp GPUs)."""
    return max(1.0, lay.tp / lay.ep)


def rank_share(x: float, lay: Layout) -> float:
    """One GPU's share of the replica's tokens or streams: under attention DP each rank runs 1/tp of
    them; otherwise every rank of the TP group works on all of them."""
    return x / lay.tp if lay.attn_dp else x


def mla_replicated_params(model: Any) -> float:
    """Parameters of MLA's query and KV down-projections to their latents, which every TP rank holds
    whole: vLLM and SGLang build them as ReplicatedLinear, TensorRT-LLM as its unsharded fused_A
    (flops.attention_gemm_shapes_fwd gives them the same unsplit shapes). 0 without MLA."""
    if not getattr(model, "mla", False):
        return 0.0
    return float(model.hidden) * (model.q_lora_rank + model.kv_lora_rank + model.rope_head_dim)


@spec_memo  # pure in the model: asked for once or twice per step, ~10^6 times a check-set run
def dense_ffn_params(model: Any) -> float:
    """An average layer's non-expert FFN parameters: the shared experts of the MoE layers and the
    dense FFN of the dense-first ones (0 for a dense model, whose FFN is all of it)."""
    if not model.moe:
        return 0.0
    m = model.moe_layer_fraction
    return float(model.nonexpert_params_per_layer() - model.attention_params_per_layer()
                 - model.norm_params_per_layer() - m * model.router_params_per_layer())


def adp_whole_params(model: Any, lay: Layout, whole_ffn: bool) -> float:
    """Parameters per layer each rank holds whole beyond the attention under attention DP: the shared
    experts and dense-first FFNs where the engine runs them data-parallel too (TensorRT-LLM's
    DeepSeek-V3 model: 'If using attention DP, the shared experts also use DP instead of TP',
    shared_tp_size = 1, and the dense MLP's mlp_tp_size = 1; tensorrt_llm/_torch/models/
    modeling_deepseekv3.py). Each rank still runs only its own tokens through them: more to read,
    the same math."""
    return dense_ffn_params(model) if lay.attn_dp and whole_ffn else 0.0


def dense_gemm_s(model: Any, lay: Layout, prec: Precision, tokens: float, r: Rates) -> tuple[float, float]:
    """(compute-bound time, memory-bound time) of one layer's non-expert weight GEMMs on one GPU:
    the split layers' share, the FFN weights an attention-DP rank reads whole (adp_whole_params),
    and MLA's replicated down-projections beyond their 1/tp share."""
    c, m = _split_dense_gemm_s(model, lay, prec, tokens, r)
    m += adp_whole_params(model, lay, r.adp_whole_ffn) * (1.0 - 1.0 / lay.tp) * prec.weight_bytes / r.hbm_bytes_s
    # attention DP already reads and runs the whole attention on each rank
    beyond = 0.0 if lay.attn_dp else mla_replicated_params(model) * (1.0 - 1.0 / lay.tp)
    if beyond <= 0.0:
        return c, m
    nbytes = prec.attention_weight_bytes[0] or prec.weight_bytes
    rate = r.attention_proj_flop_s[0] if prec.attention_weight_bytes[0] else None
    c_x, m_x = _gemm(2.0 * tokens * beyond, beyond * nbytes, tokens, r, flop_s=rate or None)
    return c + c_x, m + m_x


def _split_dense_gemm_s(model: Any, lay: Layout, prec: Precision, tokens: float, r: Rates) -> tuple[float, float]:
    """dense_gemm_s with every non-expert weight split over tp (attention DP: the attention whole)."""
    dense = _expert_split(model)[0]
    sh_d = gemm_shapes(model, lay)[0] if r.gemm_at is not None else ()
    rows = rank_share(tokens, lay)
    # attention DP: every GPU reads the whole attention weights for its 1/tp of the tokens
    read = dense + (lay.tp - 1.0) * model.attention_params_per_layer() if lay.attn_dp else dense
    if not any(prec.attention_weight_bytes):
        return _gemm(2.0 * tokens * dense / lay.tp, read * prec.weight_bytes / lay.tp, rows, r, sh_d)
    # attention projections in their own dtype (bytes, rate), the rest of the dense layer in the body's
    c = m = apart = 0.0
    for params, nbytes, rate in zip(attention_split(model), prec.attention_weight_bytes, r.attention_proj_flop_s):
        if nbytes:
            reads = params * lay.tp if lay.attn_dp else params
            c_a, m_a = _gemm(2.0 * tokens * params / lay.tp, reads * nbytes / lay.tp, rows, r, flop_s=rate or None)
            c, m, apart = c + c_a, m + m_a, apart + params
    # the measured shapes of the body's GEMMs less the attention's (input projections first, output last)
    n_attn = len(flops.attention_gemm_shapes_fwd(model, 1.0, lay.tp))
    sh_in, sh_out, sh_rest = sh_d[:n_attn - 1], sh_d[n_attn - 1:n_attn], sh_d[n_attn:]
    kept = sh_rest + (() if prec.attention_weight_bytes[0] else sh_in) + (() if prec.attention_weight_bytes[1] else sh_out)
    reads_apart = apart * lay.tp if lay.attn_dp else apart
    c_r, m_r = _gemm(2.0 * tokens * (dense - apart) / lay.tp, (read - reads_apart) * prec.weight_bytes / lay.tp, rows, r, kept)
    return c + c_r, m + m_r


@spec_memo  # pure in the model: asked for once or twice per step, ~10^6 times a check-set run
def attention_split(model: Any) -> tuple[float, float]:
    """Parameters of one layer's attention (input projections, output projection): the output
    projection maps heads x value width to the hidden size (with its bias), the inputs are the rest."""
    width = model.heads * (model.value_head_dim if model.mla else model.head_dim)
    out = float(width * model.hidden + (model.hidden if getattr(model, "linear_bias", False) else 0))
    return float(model.attention_params_per_layer()) - out, out


def layer_gemm_s(model: Any, lay: Layout, prec: Precision, tokens: float, r: Rates) -> tuple[float, float]:
    """(compute-bound time, memory-bound time) of one layer's weight GEMMs on one GPU; the GEMM time
    is their max (operand reads overlap the math inside a kernel)."""
    _, per_expert, experts, active = _expert_split(model)
    sh_e = gemm_shapes(model, lay)[1] if r.gemm_at is not None or r.moe_at is not None else ()
    c_d, m_d = dense_gemm_s(model, lay, prec, tokens, r)
    if experts <= 1:
        return c_d, m_d
    split = moe_tp(lay)                                # each expert's matrices split over tp / ep GPUs
    routed = tokens * active                           # token-expert pairs in the step
    per_gpu_pairs = routed / lay.ep                    # experts spread over ep groups
    touched_all = experts_touched(experts, active, tokens, r.moe_expert_load_cv)
    touched = touched_all / lay.ep
    # rows of one expert's GEMM: the pairs over the experts the step touches (a grouped GEMM runs no
    # tile for an expert no token routed to; over all E it would charge every idle expert a padded tile)
    m_exp = routed / max(touched_all, 1.0)
    flops = 2.0 * per_gpu_pairs * per_expert / split
    nbytes = touched * per_expert * prec.weight_bytes / split
    if r.moe_at is not None:
        # measured grouped GEMMs: the time already holds the grouped kernel's cost and its own weight
        # read (the roofline read only a floor), so it joins the math unoverlapped
        rate = shapes_rate(r.moe_at, m_exp, sh_e)
        c_e, m_e = max(flops / rate, nbytes / r.hbm_bytes_s), 0.0
    else:
        c_e, m_e = _gemm(flops, nbytes, m_exp, r, sh_e, m_half=r.moe_m_half)
        c_e /= r.moe_gemm_efficiency  # grouped GEMMs gather their rows by index and are tuned per (experts, n, k)
    c_e *= 1.0 + rank_imbalance(model, lay.ep, r)  # the busiest rank's tokens set the step (expert parallelism)
    return c_d + c_e, m_d + m_e


def _busiest_rank_prefill_s(model: Any, lay: Layout, prefill: float, prompt: float, r: Rates) -> tuple[float, float]:
    """Attention DP: the ranks run each step together (the expert all-to-all joins them), so a step
    lasts as long as its busiest rank, and a new prompt is prefilled by the one rank that holds its
    stream. The step's prefill tokens come from prefill/prompt prompts, on at most that many ranks:
    the busiest rank runs prefill / min(tp, max(1, prompts)) of them through the attention (whole
    attention weights, all heads), not prefill / tp. What that costs above the even share, per layer.
    (TensorRT-LLM's attention_dp_config.enable_balance withholds context requests to even this out;
    trtllm-bench runs without it unless configured.) Returned apart, (GEMM math, attention) s: the
    attention projections are GEMM math of the step, the scores and values attention."""
    g = float(lay.tp)
    spread = min(g, max(1.0, prefill / max(prompt, 1.0)))
    extra = max(prefill / spread - prefill / g, 0.0)
    rates = tuple(x or r.gemm_flop_s for x in r.attention_proj_flop_s)
    return (sum(extra * 2.0 * p / x for p, x in zip(attention_split(model), rates)),
            prefill_attention_s(model, extra * prompt * model.attention_pair_fraction(prompt, causal=True)
                                * model.heads * model.attention_flops_per_pair() / 2.0, r))


def prefill_attention_s(model: Any, flops: float, r: Rates) -> float:
    """Seconds of prefill (flash) attention doing `flops`: at the attention rate, read at head dim 128,
    plus the softmax exponentials a narrower head runs beyond that reference at the part's SFU rate
    where it is stated (gpt-oss's head 64 runs twice as many per FLOP; planner/profile.py
    attention_time_s, checked there against FlashAttention-3's head-dim sweep). Wider heads keep the rate."""
    t = flops / r.attention_flop_s
    if r.exp2_per_s <= 0.0:
        return t
    return t + narrow_head_exponentials_float(flops, flops / model.attention_flops_per_pair()) / r.exp2_per_s


def prefill_step_share(prefill: float, chunk: float) -> float:
    """q: the share of steps that carry a prompt chunk when `prefill` prompt tokens a step arrive, on
    average, as whole chunks of `chunk` (1: every step carries prefill)."""
    return min(prefill / chunk, 1.0) if prefill > 0.0 and chunk > 0.0 else 1.0


def mixed_step_gemm_s(model: Any, lay: Layout, prec: Precision, decode: float, prefill: float, chunk: float,
                      r: Rates, prefill_extra_math_s: float = 0.0) -> tuple[float, float, float]:
    """(math, weight read, GEMM time) of one layer's GEMMs on an average step carrying `decode` tokens
    and, on average, `prefill` prompt tokens that arrive as whole chunks of `chunk` tokens;
    `prefill_extra_math_s` is math the prefill steps alone carry (the busiest attention-DP rank's),
    averaged over all steps.

    The prompt tokens are not spread over the steps: a share q = prefill / chunk of the steps carries
    a chunk, the rest decode only. Each kind of step is timed on its own and the times are weighted by
    q. The overlap of math and weight read is convex: overlapping the averages would understate the
    average step (Llama 3.1 70B TP8, 64 streams, 1,024-token prompts: a decode step is read-bound at
    5.7 ms, a prompt step math-bound at 27 ms; the max of the averages is 5.7 ms, the average of the
    maxima 8.4 ms). So is a MoE step's count of experts touched, E(1 - (1 - k/E)^T): the average
    step's touches overstate the average touches (gpt-oss-120b, 4 streams, 922-token prompts: ~28 of
    128 experts per layer at the 8 average tokens, ~16 on the decode steps that are 99.6% of them).
    Math and read are returned as averages for the breakdown."""
    ov = _overlap_fn(r)
    q = prefill_step_share(prefill, chunk)
    if q >= 1.0:
        c, m = layer_gemm_s(model, lay, prec, decode + prefill, r)
        c += prefill_extra_math_s
        return c, m, ov(c, m)
    c_dec, m_dec = layer_gemm_s(model, lay, prec, decode, r)
    c_pre, m_pre = layer_gemm_s(model, lay, prec, decode + chunk, r)
    c_pre += prefill_extra_math_s / q
    return ((1.0 - q) * c_dec + q * c_pre, (1.0 - q) * m_dec + q * m_pre,
            (1.0 - q) * ov(c_dec, m_dec) + q * ov(c_pre, m_pre))


def _layer_parts(model: Any, lay: Layout, prec: Precision, decode: float, prefill: float, context: float,
                 prompt: float, r: Rates, queries: float = 1.0,
                 chunk: float | None = None) -> tuple[float, float, float, float, float, float]:
    """One layer on one GPU: (GEMM math, GEMM weight read, GEMM time, attention, elementwise,
    communication) s; the GEMM time overlaps math and read step by step (mixed_step_gemm_s).
    `queries` tokens per decode stream (1 + the draft tokens a speculative step verifies): they run
    through the GEMMs together and share one read of the stream's KV cache. `chunk`: the prompt
    tokens a step that carries prefill holds (default the whole prompt)."""
    tokens = decode * queries + prefill
    layers = model.layers / lay.pp
    g = lay.tp
    busiest_math = busiest_attn = 0.0
    if lay.attn_dp and prefill > 0:
        busiest_math, busiest_attn = _busiest_rank_prefill_s(model, lay, prefill, prompt, r)
    comp, mem, gemm = mixed_step_gemm_s(model, lay, prec, decode * queries, prefill,
                                        prompt if chunk is None else chunk, r, busiest_math)
    held = decode * context * model.kv_layer_fraction(context)  # cached tokens the decode streams attend to
    kv_read = held * kv_elems_per_token_layer_per_gpu(model, lay) * prec.kv_bytes * mla_kv_walks(model, lay, prec, r)
    # decode attention reads the cache at HBM bandwidth; MLA's latent-space scores and values are
    # heavy enough to be bound by the attention rate instead (arithmetic intensity ~ heads x 4)
    dec_math = queries * held * (model.heads / g) * model.decode_attention_flops_per_pair() / r.attention_flop_s
    attn = max(kv_read / r.hbm_bytes_s, dec_math if model.mla else 0.0) + prefill_attention_s(
        model, prefill * prompt * model.attention_pair_fraction(prompt, causal=True) * (model.heads / g)
        * model.attention_flops_per_pair() / 2.0, r) + busiest_attn
    # norms, residuals and rotary on each rank's own tokens (attention DP: 1/tp of them), the FFN's
    # activation on every token of its 1/tp slice of the width
    elem = (rank_share(tokens, lay) * 10.0 * model.hidden + tokens * 3.0 * model.active_ffn_width() / g) \
        * ACT_BYTES / r.hbm_bytes_s
    elem += moe_combine_bytes(model, lay, tokens) / r.hbm_bytes_s
    # TP: two all-reduces of the activations per layer (under expert parallelism too: every rank
    # holds every token, runs its own experts on them, and the MoE all-reduce sums the experts'
    # outputs); attention DP: none, the tokens travel to and from the experts instead
    comm = moe_token_comm_s(model, lay, prec, tokens, r) if lay.attn_dp \
        else 2.0 * _allreduce_s(tokens * model.hidden * ACT_BYTES, g, r)
    if lay.pp > 1:  # activations to the next stage once per step (one hop, spread over the stage's layers)
        bw, lat = (r.pp_link_bytes_s, r.pp_hop_latency_s) if r.pp_link_bytes_s else (r.link_bytes_s, r.hop_latency_s)
        comm += (lat + tokens * model.hidden * ACT_BYTES / bw) / layers
    return comp, mem, gemm, attn, elem, comm


def remote_ranks_per_token(model: Any, ep: int) -> float:
    """Other expert-parallel ranks a token's routed experts sit on, on average: each of the ep - 1
    holds at least one of its k experts with probability 1 - (1 - 1/ep)^k (uniform routing, experts
    spread evenly over the ranks)."""
    return (ep - 1) * (1.0 - (1.0 - 1.0 / ep) ** model.active_experts) if ep > 1 else 0.0


def tokens_by_alltoall(lay: Layout, r: Rates) -> bool:
    """Whether attention-DP tokens reach whole experts by a one-sided all-to-all (a scale-up fabric
    and expert parallelism) rather than by all-gather and reduce-scatter (moe_token_comm_s)."""
    return lay.ep > 1 and r.p2p_fabric


def moe_token_comm_s(model: Any, lay: Layout, prec: Precision, tokens: float, r: Rates) -> float:
    """Seconds a layer spends moving attention-DP tokens to the experts and their outputs back, per
    GPU (`tokens` of the tp group's replica, tokens / tp its own). Two ways, as TensorRT-LLM chooses
    (tensorrt_llm/_torch/modules/fused_moe/communication/communication_factory.py: a one-sided
    all-to-all where the GPUs share an NVLink fabric and each rank holds whole experts, else
    AllGatherReduceScatter, 'the fallback, always works'):
    - all-to-all: a token goes once to each other rank holding one of its experts (the dispatch
      sends per rank, the combine sums a rank's experts before sending back), and the busiest rank
      receives the most (rank_imbalance);
    - all-gather + reduce-scatter over the tp group: every rank gathers every token, quantized
      first ('AllGather ALWAYS supports post-quant dispatch', allgather_reducescatter.py), and the
      16-bit outputs are reduce-scattered back.
    MoE models with the experts tensor-split (ep 1: TensorRT-LLM's moe_tp_size != 1) take the
    second. Layers without experts (DeepSeek's first three) run replicated: nothing moves."""
    g = lay.tp
    if g <= 1 or not model.moe:
        return 0.0
    own, width = tokens / g, model.hidden * (prec.dispatch_bytes + ACT_BYTES)
    if tokens_by_alltoall(lay, r):  # under attention DP ep is tp or 1 (serving._check_layout)
        a2a = 2.0 * (lay.ep - 1) * r.hop_latency_s + own * remote_ranks_per_token(model, lay.ep) * width / r.link_bytes_s
        return model.moe_layer_fraction * a2a * (1.0 + rank_imbalance(model, lay.ep, r))
    return model.moe_layer_fraction * (2.0 * (g - 1) * r.hop_latency_s + (g - 1) * own * width / r.link_bytes_s)


def moe_combine_bytes(model: Any, lay: Layout, tokens: float) -> float:
    """Bytes of the MoE combine per layer on one GPU: each token's k expert outputs weighted and
    summed into one row, read k x hidden and write hidden, a pass of its own in every engine (vLLM
    and SGLang fused_moe's moe_sum, TensorRT-LLM's finalizeMoeRouting kernel). The expert GEMMs'
    own activation reads and writes are theirs, as for a dense layer; TensorRT-LLM's expand pass
    before the experts (read hidden, write k x hidden) is not counted. Under attention DP a GPU
    sums only its own tokens."""
    if not model.moe:
        return 0.0
    own = rank_share(tokens, lay)
    return own * (model.routed_per_layer + model.moe_layer_fraction) * model.hidden * ACT_BYTES


def _overlap_fn(r: Rates) -> Any:
    # a measured GEMM time already holds the kernel's own math/weight-read overlap: the roofline
    # weight read is then only a floor; the modelled rate overlaps the two by the p-norm
    return (lambda c, m: max(c, m)) if r.gemm_at is not None else (lambda c, m: overlap(c, m, r.overlap_p))


def _head_s(model: Any, lay: Layout, prec: Precision, rows: float, r: Rates) -> float:
    """The LM head: a GEMM over the sampling tokens and the (vocab-parallel) vocabulary. FP8 and FP4
    checkpoints keep it in 16 bits (NVIDIA ModelOpt, which makes the TensorRT-LLM FP8/NVFP4
    checkpoints, disables the '*lm_head*' quantizers in its default configs: modelopt/torch/
    quantization/config.py, _default_disabled_quantizer_cfg), so it reads 2-byte weights and runs at
    the 16-bit GEMM rate whatever the body's dtype. It samples decode tokens only, so it is ~1% of a
    step's math for Llama 3.1 8B on the MLPerf set (its 870-token prompts are not sampled).
    Under attention DP an engine may keep the head whole on each rank (TensorRT-LLM unless
    enable_lm_head_tp_in_adp, a prototype option off by default): each rank then samples its own
    rows against the whole vocabulary."""
    g = lay.tp
    if lay.attn_dp and r.adp_whole_head:
        g, rows = 1, rank_share(rows, lay)
    narrow = prec.weight_bytes < 2.0 and r.head_flop_s > 0  # 16-bit head: its modelled rate, the p-norm overlap
    c, m = _gemm(2.0 * rows * model.hidden * model.vocab / g,
                 model.hidden * model.vocab * (2.0 if narrow else prec.weight_bytes) / g,
                 rows, r, ((model.vocab / g, model.hidden),), flop_s=r.head_flop_s if narrow else None)
    return overlap(c, m, r.overlap_p) if narrow else _overlap_fn(r)(c, m)


def has_tp_allreduce(lay: Layout) -> bool:
    """A layer all-reduces over its TP group: tp > 1 and the attention not data-parallel (where
    TensorRT-LLM fuses the add+norm into the all-reduce, and the only place it can)."""
    return lay.tp > 1 and not lay.attn_dp


def layer_kernels(model: Any, lay: Layout, prec: Precision) -> float:
    return kernels_per_layer(model, prec.quantized_activations, prec.fused_allreduce_norm and has_tp_allreduce(lay),
                             tp_group=lay.tp > 1)


BLOCKSCALE_K_BLOCK = 128  # K columns one iteration of a block-scaled GEMM consumes: the weight block's width


def blockscale_kblocks_per_layer(model: Any, lay: Layout, attention: bool = True) -> float:
    """K-blocks (ceil(K / 128)) summed over the block-scaled dense GEMM calls of an average layer's
    decode forward on one GPU (seeds/serving.toml [untuned_blockscale.sources] kernels). MLA: the
    fused q_a + kv_a projection (K hidden), q_b (K q_lora_rank), o_proj (K heads x v_head_dim / tp);
    kv_b is absorbed into per-tensor bmms. Otherwise the fused QKV (K hidden) and o_proj. Dense FFNs
    (a dense model's, MoE models' dense-first layers by their share, the shared expert only under
    expert parallelism: without it SGLang folds it into the fused MoE): gate/up (K hidden), down.
    `attention` False: the attention projections are not block-scaled FP8 (a checkpoint that keeps
    them in another dtype)."""
    def kb(k: float) -> float:
        return float(math.ceil(k / BLOCKSCALE_K_BLOCK))

    g, h = lay.tp, float(model.hidden)
    if model.mla:
        attn = kb(h) + (kb(model.q_lora_rank) if model.q_lora_rank else 0.0) + kb(model.heads * model.value_head_dim / g)
    else:
        attn = kb(h) + kb(model.heads * model.head_dim / g)
    attn = attn if attention else 0.0
    if not model.moe:
        return attn + kb(h) + kb(model.ffn_hidden / g)
    ffn = (1.0 - model.moe_layer_fraction) * (kb(h) + kb(model.dense_ffn_width / g))
    if lay.ep > 1 and model.shared_experts:
        ffn += model.moe_layer_fraction * (kb(h) + kb(model.shared_experts * model.ffn_hidden / g))
    return attn + ffn


def pays_untuned_blockscale(model: Any, prec: Precision, r: Rates) -> bool:
    """FP8 weights with per-block scales (model fp8_weight_block) on rates whose kernels are untuned."""
    return r.blockscale_kblock_s > 0.0 and bool(model.fp8_weight_block) and prec.fp8_weights


def untuned_blockscale_s(model: Any, lay: Layout, prec: Precision, tokens: float, r: Rates) -> float:
    """What one layer's untuned block-scaled GEMM calls take beyond their tuned time (the dense GEMMs
    at the modelled rate): each call walks ceil(K / 128) blocks at r.blockscale_kblock_s whatever
    its rows, so it is a floor that larger batches grow into. 0 unless the weights are FP8 with
    per-block scales (model fp8_weight_block) and the rates say the device's kernels are untuned."""
    if not pays_untuned_blockscale(model, prec, r):
        return 0.0
    tuned = _overlap_fn(r)(*dense_gemm_s(model, lay, prec, tokens, r))
    kblocks = blockscale_kblocks_per_layer(model, lay, attention=not any(prec.attention_weight_bytes))
    return max(0.0, kblocks * r.blockscale_kblock_s - tuned)


def step_time(model: Any, lay: Layout, prec: Precision, decode: float, prefill: float,
              context: float, prompt: float, r: Rates, queries: float = 1.0, chunk: float | None = None) -> StepTime:
    """One step of one pipeline stage: `decode` streams at mean context `context` plus `prefill`
    prompt tokens from prompts of length `prompt`, in chunks of `chunk` tokens (default: whole
    prompts); each stream's `queries` tokens are verified together (1 without speculative decoding)."""
    layers = model.layers / lay.pp
    comp, mem, gemm, attn, elem, comm = _layer_parts(model, lay, prec, decode, prefill, context, prompt, r, queries, chunk)
    # LM head over the tokens that sample (decode streams' tokens + the last token of finishing prompts ~ decode)
    head = _head_s(model, lay, prec, decode * queries, r) / layers  # spread over the stage's layers (only the last stage runs it)
    # the untuned floor, like the overlap, is convex in the step's tokens: each kind of step on its own
    q = prefill_step_share(prefill, prompt if chunk is None else chunk)
    d = decode * queries
    untuned = untuned_blockscale_s(model, lay, prec, d + prefill, r) if q >= 1.0 else \
        (1.0 - q) * untuned_blockscale_s(model, lay, prec, d, r) + q * untuned_blockscale_s(model, lay, prec, d + prefill / q, r)
    return StepTime(gemm_compute_s=layers * comp, gemm_memory_s=layers * mem,
                    gemm_s=layers * (gemm + head + untuned), attention_s=layers * attn,
                    elementwise_s=layers * elem, comm_s=layers * comm,
                    launch_s=layers * layer_kernels(model, lay, prec) * r.kernel_gap_s, overhead_s=r.step_overhead_s,
                    untuned_gemm_s=layers * untuned, host_s=r.host_per_request_s * rank_share(decode, lay))


def draft_time(model: Any, lay: Layout, prec: Precision, decode: float, context: float, r: Rates,
               passes: int) -> StepTime:
    """The draft of a speculative step: `passes` sequential passes, each one decode token per stream
    through one layer of the target's shape and the LM head. That is DeepSeek-V3's multi-token
    prediction module (one transformer block sharing the embedding and output head, DeepSeek-V3
    technical report, section 2.2) and EAGLE's one-layer draft head (Li et al. 2024), run once per
    draft token; a separate small draft model is not this."""
    if passes <= 0:
        return StepTime(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    one = Layout(lay.tp, 1, lay.ep, lay.attn_dp)
    comp, mem, gemm, attn, elem, comm = _layer_parts(model, one, prec, decode, 0.0, context, context, r)
    untuned = untuned_blockscale_s(model, one, prec, decode, r)
    gemm = gemm + _head_s(model, lay, prec, decode, r) + untuned
    return StepTime(gemm_compute_s=passes * comp, gemm_memory_s=passes * mem, gemm_s=passes * gemm,
                    attention_s=passes * attn, elementwise_s=passes * elem, comm_s=passes * comm,
                    launch_s=passes * (layer_kernels(model, lay, prec) + 1) * r.kernel_gap_s, overhead_s=0.0,
                    untuned_gemm_s=passes * untuned)


def accepted_tokens(k: int, a: float) -> float:
    """Output tokens a stream gains per step: 1; with k draft tokens each accepted with probability
    a (independently), (1 - a^(k+1)) / (1 - a) (Leviathan et al. 2023, eq. 1)."""
    if k <= 0:
        return 1.0
    return k + 1.0 if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)
