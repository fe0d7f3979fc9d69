"""The assumption lines of a serving estimate (planner.serving): each says which constant or setting
an estimate took and where it comes from. `run` is the serving._Run of the chosen layout."""
from __future__ import annotations

import math
from typing import Any

from recoque.planner import serving_rates as sr
from recoque.planner import serving_wave as sw
from recoque.planner.serving_request import ServingRequest, allreduce_fusion_on, precision
from recoque.planner.serving_step import (Layout, accepted_tokens, blockscale_kblocks_per_layer, has_tp_allreduce,
                                          pays_untuned_blockscale, tokens_by_alltoall)
from recoque.planner.serving_wave import WaveRun


def fusion_note(req: ServingRequest, engine: Any, lay: Layout) -> tuple[str, ...]:
    if not has_tp_allreduce(lay):
        return ()
    how = "the engine's default" if req.allreduce_fusion is None else "as set"
    if allreduce_fusion_on(req, engine):
        return (f"TP all-reduce fused with the residual add and RMSNorm ({how}): 2 kernels fewer per layer",)
    return (f"TP all-reduce not fused with the residual add and RMSNorm ({how}; --allreduce-fusion if the engine runs it)",)


def routing_note(model: Any, run: Any) -> tuple[str, ...]:
    """How the experts a decode step reads are counted (MoE models only)."""
    if not model.moe:
        return ()
    r = run.rates
    return (f"experts a step reads: the distinct experts its T tokens route to, expert-load cv {r['value'].moe_expert_load_cv:g} "
            f"(0: uniform top-k routing, E(1 - (1 - k/E)^T)); the fast end cv {r['high'].moe_expert_load_cv:g}, a skewed "
            "router touching fewer experts per batch (DeepSeek-R1's published EP-load table; seeds/serving.toml [kernel] "
            "moe_expert_load_cv)",)


def token_travel_words(run: Any) -> str:
    """How attention-DP tokens reach the experts (planner/serving_step.moe_token_comm_s)."""
    if tokens_by_alltoall(run.lay, run.rates["value"]):
        return "a token goes once to each other GPU holding one of its experts, quantized, over the scale-up fabric"
    if run.lay.ep > 1:
        return "each GPU all-gathers the others' quantized tokens and reduce-scatters the outputs: no fabric for a one-sided all-to-all"
    return "the tensor-split experts all-gather the tokens and reduce-scatter the outputs"


def untuned_blockscale_note(model: Any, run: Any, req: ServingRequest) -> tuple[str, ...]:
    r = run.rates["value"]
    if not pays_untuned_blockscale(model, precision(req), r):
        return ()
    kb = blockscale_kblocks_per_layer(model, run.lay)
    return (f"block-scaled FP8 GEMMs untuned on this device for {req.engine} (no tuned aiter config for its gfx arch and "
            f"CU count): each dense GEMM call walks its K in 128-wide blocks at {r.blockscale_kblock_s * 1e6:.2g} us "
            f"({run.rates['high'].blockscale_kblock_s * 1e6:.3g}-{run.rates['low'].blockscale_kblock_s * 1e6:.3g}), "
            f"{kb:.3g} blocks a layer: at least {model.layers * kb * r.blockscale_kblock_s * 1e3:.3g} ms a forward "
            "(seeds/serving.toml [untuned_blockscale]; a build with tuned configs for these shapes does not pay it)",)


def usable_note(frac: float, spec: Any, engine: sr.Engine) -> str:
    # hardware.toml's HBM "GB" are binary (seeds/serving.toml hbm_gb_per_datasheet_gb): say both, as the other
    # memory rows are in decimal GB
    cap_bytes = sr.hbm_capacity_bytes(spec)
    cap = f"{cap_bytes / 2 ** 30:.0f} GiB ({cap_bytes / 1e9:.1f} GB)"
    if engine.kv_fraction_of_free:
        return f"KV cache {frac:.0%} of what weights and workspace leave of {cap}"
    return f"{frac:.0%} of {cap} = {frac * cap_bytes / 1e9:.1f} GB usable"


def attention_weights_note(model: Any, req: ServingRequest) -> tuple[str, ...]:
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


def spec_note(run: Any, req: ServingRequest) -> tuple[str, ...]:
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


def _attention_dp_words(lay: Any, engine: sr.Engine) -> str:
    if not lay.attn_dp:
        return ""
    if engine.attention_dp_limits == "global":
        return f", shared by the {lay.tp} attention-DP ranks ({engine.name} divides it among them)"
    return ", x tp: each attention-DP rank schedules its own"


def budget_note(run: Any, req: ServingRequest, engine: sr.Engine) -> str:
    binds = min(run.caps, key=run.caps.get)
    counted = "prefill and decode tokens" if engine.budget_counts_decode else "prefill tokens only"
    return (f"step token budget {run.budget_tokens:g} tokens per replica ({counted}; "
            f"{'--max-num-tokens' if req.max_num_tokens else engine.name + ' default'}"
            f"{_attention_dp_words(run.lay, engine)}); "
            f"streams per replica allowed by " + ", ".join(f"{k}: {v:,.4g}" for k, v in run.caps.items())
            + f" (the {binds} binds)")


def missed_target_note(low: Any, req: ServingRequest) -> tuple[str, ...]:
    if req.mode != "server" or req.batch or req.concurrency or req.request_rate_per_s:
        return ()
    missed = ((req.tpot_target_s and low.tpot_s > req.tpot_target_s * (1 + 1e-6))
              or (req.ttft_target_s and low.ttft_s > req.ttft_target_s * (1 + 1e-6)))
    return ("with every constant at its pessimistic end at once, even one stream misses the latency target",) if missed else ()


def unbounded_ttft_note(value: Any, req: ServingRequest) -> tuple[str, ...]:
    if math.isfinite(value.ttft_s):
        return ()
    return ("TTFT unbounded: the TPOT target holds even at the batch cap, so the load sits at the cap and arrivals "
            "queue without end; give a TTFT target (--ttft-ms) to keep the queue finite",)


def wave_note(w: WaveRun | None) -> tuple[str, ...]:
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


def mode_note(req: ServingRequest) -> str:
    note = _mode_words(req)
    queued = req.mode == "server" and not (req.batch or req.concurrency)
    if req.length_cv2 is not None and not queued:  # said, not refused: published offline rows carry their spread
        note += ("; the length spread (length_cv2) moves only a server's queueing tails under Poisson arrivals: "
                 "no effect on this load")
    return note


def _mode_words(req: ServingRequest) -> str:
    if req.batch or req.concurrency:
        return f"fixed load: {req.batch or req.concurrency} {'streams per replica' if req.batch else 'concurrent requests (system)'}"
    if req.requests is not None:
        return (f"offline, {req.requests} requests submitted at once and followed to the end (planner/serving_wave.py): "
                "they grow in lockstep; batch = the mean of the streams running; TTFT = the first admission's prefill")
    if req.mode == "offline":
        return ("offline: batch = the most streams the KV memory, the engine's batch cap and its step token budget "
                "(every prompt token passes through it) allow; TTFT = half a step + prefill (no queue)")
    if req.request_rate_per_s:
        return (f"server: {req.request_rate_per_s:g} requests/s (Poisson) -> batch by Little's law; TTFT = half a step + "
                f"prefill-budget wait (M/G/1, {req.percentile}, exponential-tail approximation) + prefill")
    tgt = ", ".join(x for x in (f"TTFT <= {req.ttft_target_s * 1e3:g} ms" if req.ttft_target_s else "",
                                 f"TPOT <= {req.tpot_target_s * 1e3:g} ms" if req.tpot_target_s else "") if x)
    return f"server: the largest load meeting {tgt} at {req.percentile}"
