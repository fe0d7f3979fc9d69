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
# DTYPE_BYTES, precision and weights_bytes_per_gpu are imported for the callers that reach them here
from recoque.planner.serving_memory import (Memory, held_kv_fraction, memory, output_spread, step_budget_tokens,  # noqa: F401
                                            weights_bytes_per_gpu)
from recoque.planner.serving_notes import (attention_weights_note, budget_note, fusion_note, missed_target_note, mode_note,
                                           routing_note, spec_note, token_travel_words, unbounded_ttft_note,
                                           untuned_blockscale_note, usable_note, wave_note)
from recoque.planner.serving_queue import Z, mean_tail, prefill_wait, prompt_quantile, slot_wait
from recoque.planner.serving_request import (DTYPE_BYTES, PERCENTILES, ServingRequest, allreduce_fusion_on,  # noqa: F401
                                             precision)
from recoque.planner.serving_step import (Layout, StepTime, accepted_tokens, draft_time, kv_bytes_per_token_per_gpu,
                                          layer_kernels, step_time)
from recoque.planner.serving_wave import WaveRun
from recoque.planner.system import SystemSpec
from recoque.planner.workloads import assumed_peak


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


class _Replica:
    """The step model of one replica at one corner of the rates."""

    def __init__(self, model: Any, req: ServingRequest, lay: Layout, rates: Any, eff: float, budget: float,
                 room: tuple[float, bool, float] = (0.0, False, 0.0), budget_counts_decode: bool = True,
                 allreduce_norm_fusion: bool = False, windowed_kv_memory: bool = True):
        measured, moe = rates.gemm_at, rates.moe_at
        # the GEMMs take e inside their rate (their time overlaps math with the weight read); the
        # attention rate stays the kernel's: its time is in the parts seconds() takes at 1/e
        rates = replace(rates, gemm_flop_s=rates.gemm_flop_s * eff, head_flop_s=rates.head_flop_s * eff,
                        attention_proj_flop_s=tuple(x * eff for x in rates.attention_proj_flop_s),
                        gemm_at=None if measured is None else (lambda m, n, k: measured(m, n, k) * eff),
                        moe_at=None if moe is None else (lambda m, n, k: moe(m, n, k) * eff))
        self.m, self.req, self.lay, self.r, self.eff, self.budget = model, req, lay, rates, eff, budget
        self.budget_counts_decode, self.windowed_kv_memory = budget_counts_decode, windowed_kv_memory
        self.prec = precision(req, allreduce_norm_fusion)
        # a stream found running is length-biased (it holds its slot for its whole output) and uniformly
        # far through it: its mean context is P + E[O^2] / (2 E[O]) = P + (O/2)(1 + cv2 of O) (the
        # inspection paradox of renewal theory; Kleinrock, Queueing Systems vol. 1, 1975, sec. 5.2)
        self.ctx = req.prompt_tokens + req.output_tokens / 2.0 * (1.0 + rates.service_cv2)
        self.kv_free_bytes, self.reserve_full, self.slots = room   # per GPU after weights and workspace; engine cap
        # fixed for the replica and asked for at every step: the tokens a stream gains a step, an eager prefill forward
        self._accepted = min(accepted_tokens(req.spec_tokens, rates.spec_acceptance), req.output_tokens)
        self._eager_forward_s = model.layers * layer_kernels(model, lay, self.prec) * rates.eager_kernel_s
        # stage() is a pure function of its arguments here; the server-mode searches ask for the same
        # step many times over (4x on the check sets), so each is computed once
        self._stages: dict[tuple[float, float], StepTime] = {}

    def seconds(self, st: StepTime) -> float:
        """Engine time of a kernel-level step: the GEMMs (math already at e x the rate, weight read
        at the achieved HBM rate) plus everything else at 1/e; never shorter than the step's host work,
        which runs beside it (the engine's overlap scheduler)."""
        return max(st.gemm_s + (st.total_s - st.gemm_s) / self.eff, st.host_s)

    def accepted(self) -> float:
        """Output tokens a stream gains per step (accepted_tokens at this corner's acceptance), at most
        the request's output: a step cannot yield tokens past the end of the answer."""
        return self._accepted

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
        return self._eager_forward_s

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
        return fixed(req.batch, rep.prefill_s(req.batch) + 0.5 * rep.step_s(req.batch))
    if req.concurrency is not None:
        # Closed loop: each user sends the next request when the last one ends. Users beyond what the
        # KV memory admits wait; Little's law then gives TTFT = users / request rate - decode time.
        users = req.concurrency / replicas
        b = min(users, cap)
        x = rep.throughput(b)
        return fixed(b, max(rep.prefill_s(b) + 0.5 * rep.step_s(b),
                            users * req.output_tokens / x - (req.output_tokens - 1) * rep.tpot(b)))
    if req.requests is not None:
        return wave_point(rep, req, replicas)
    if req.mode == "offline":
        return fixed(cap, rep.prefill_s(cap) + 0.5 * rep.step_s(cap))
    if req.request_rate_per_s:
        lam = req.request_rate_per_s / replicas
        if lam * req.output_tokens >= x_max:
            if not strict:
                return Point(cap, rep.tpot(cap), math.inf, x_max, rep.stage(cap))
            raise OverCapacity(f"{req.request_rate_per_s:g} requests/s is above what {replicas} replica(s) of tp "
                               f"{rep.lay.tp} x pp {rep.lay.pp} sustain ({x_max / req.output_tokens * replicas:.3g}/s)",
                               "lower --request-rate or add GPUs", sustained_per_s=x_max / req.output_tokens * replicas)
        b = _bisect(lambda x: rep.throughput(x) < lam * req.output_tokens, 1e-6, cap)
        return server_point(rep, req, max(b, 1e-6), cap, q)

    # the lightest load searched: one running stream on average, or half the slots where one to two
    # (a one-slot replica at one stream on average is always busy, and its queue never drains); below
    # one slot (a step budget shorter than a stream's tokens) the cap itself, where the refusal names it
    lo = cap if cap < 1.0 else min(1.0, cap / 2.0)
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
        narrower = "" if req.weights in ("fp8", "fp4") else " or fp8"
        raise DoesNotFit(f"even a load of {lo:.3g} running stream(s) on average gives TPOT {p.tpot_s * 1e3:,.1f} ms / TTFT "
                         f"{p.ttft_s * 1e3:,.0f} ms ({req.percentile}; requests arriving at random queue behind "
                         f"each other's prompts, a lone prompt's prefill takes {rep.prefill_s(lo) * 1e3:,.0f} ms), "
                         "above the target", f"relax --tpot-ms/--ttft-ms, use more GPUs per replica{narrower}")
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
    # both pure in their arguments for this run, and asked again with the same ones: the empty prefill
    # step of every admission, the KV of each running group at every advance; so each is computed once
    stages: dict[tuple[float, float, float, float], float] = {}
    held: dict[float, float] = {}

    def stage_s(decode: float, prefill: float, ctx: float, prompt: float) -> float:
        key = (decode, prefill, ctx, prompt)
        if key not in stages:  # the wave schedules its prefill tokens explicitly: a step's prefill is its own chunk
            stages[key] = pp * rep.seconds(step_time(m, lay, rep.prec, decode / pp, prefill / pp, ctx, prompt, rep.r,
                                                     chunk=prefill / pp))
        return stages[key]

    def kv_bytes(c: float) -> float:
        if c not in held:
            held[c] = per_token * c * held_kv_fraction(m, rep.windowed_kv_memory, c)
        return held[c]

    w = sw.Wave(requests=req.requests / replicas, prompt=req.prompt_tokens, output=req.output_tokens,
                slots=rep.slots, kv_free_bytes=rep.kv_free_bytes, kv_bytes=kv_bytes, reserve_full=rep.reserve_full,
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


def _no_fit_hint(system: SystemSpec, req: ServingRequest, lay: Layout, mem: Any) -> str:
    """What would make a replica fit, from what was asked: more GPUs per replica, or a larger --gpus
    where the command limited the system's count; narrower weights/KV only where they are wider than
    fp8; the HBM fraction where it was set."""
    if mem.workspace_bytes >= mem.usable_bytes:
        first = "a larger --hbm-fraction or " if req.hbm_fraction is not None else ""
        return first + "lower --max-num-tokens: the workspace alone is larger than the memory"
    has = float(system.extra.get("gpus_of_system", system.gpus))
    more = ("use more GPUs per replica (--tp/--pp)" if lay.tp * lay.pp < system.gpus else
            f"raise --gpus, up to the system's {has:,.0f}" if has > system.gpus else
            f"use a system of more than {system.gpus:,.0f} GPU(s)")
    wide = [f"--{k.replace('_', '-')} fp8" for k in ("weights", "kv_cache") if DTYPE_BYTES[getattr(req, k)] > 1]
    return ", ".join([more, *wide]) + " or a larger --hbm-fraction"


def _run(model: Any, system: SystemSpec, spec: Any, req: ServingRequest, lay: Layout, engine: sr.Engine,
         profile: Any, shapes: Any = None) -> _Run:
    _check_layout(model, system, lay)
    mem = memory(model, spec, req, lay, engine)
    if mem.max_streams < 1:
        raise DoesNotFit(f"tp={lay.tp} pp={lay.pp}: {_gb(mem.weights_bytes)} GB of weights + {_gb(mem.workspace_bytes)} GB "
                         f"workspace + one stream's KV do not fit in {_gb(mem.usable_bytes)} GB usable per GPU",
                         _no_fit_hint(system, req, lay, mem))
    budget = step_budget_tokens(req, engine) * per_rank_factor(engine, lay)
    replicas = int(system.gpus // (lay.tp * lay.pp))
    rs = sr.rate_set(spec, system, req.compute_dtype, lay.tp, engine, profile, shapes, req.weights,
                     attention_dtypes=req.attention_gemm_dtypes,  # TP inside a node when it fits
                     replica_gpus=lay.tp * lay.pp)
    if req.length_cv2 is not None or req.output_cv2 is not None:  # the user's spreads replace the stated defaults
        # at every corner: a request's time in the engine spreads as its output length does (output_spread)
        spread = output_spread(req)
        rs = replace(rs, rates={c: replace(r, service_cv2=spread, prompt_cv2=r.prompt_cv2 if req.length_cv2 is None
                                           else req.length_cv2) for c, r in rs.rates.items()})
    if req.spec_acceptance is not None:  # a measured acceptance replaces the stated range
        rs = replace(rs, rates={c: replace(r, spec_acceptance=req.spec_acceptance) for c, r in rs.rates.items()})
    cap_b = float(req.max_batch or engine.max_batch)  # per replica (see [engines] max_batch in seeds/serving.toml)
    room = (mem.usable_bytes - mem.weights_bytes - mem.workspace_bytes, engine.kv_reserve == "full", cap_b)

    def replica(rates: Any, eff: float) -> _Replica:
        return _Replica(model, req, lay, rates, eff, budget, room, engine.budget_counts_decode, allreduce_fusion_on(req, engine),
                        engine.windowed_kv_memory)

    first = replica(rs.rates["value"], rs.efficiency["value"])
    caps = {"KV memory": float(mem.max_streams), "batch cap": cap_b,
            "step budget": first.budget_streams()}
    if caps["step budget"] < 1:  # not one stream's prompt share and decode token fit a step: no engine runs that
        flag = step_budget_tokens(req, engine)
        raise DoesNotFit(f"step budget {caps['step budget']:.2g} streams: {flag:g} tokens a step carry less than one "
                         f"stream of {req.prompt_tokens:g} prompt and {req.output_tokens:g} output tokens",
                         f"pass --max-num-tokens {math.ceil(flag / caps['step budget'])} or more")
    cap = min(caps.values())
    why = ", ".join(f"{k} {v:.3g}" for k, v in caps.items())
    value = solve(first, req, cap, replicas, why=why)
    # a pure function of (rates, eff) here; the bounds ask again for constants a group leaves as they are
    # (its low and high the value's: ~1 corner in 10 on the check sets), so each set is solved once. A
    # solve that did not fail is the same strict or not. Each entry keeps its rates (and their ids) alive.
    solved = {_constants_key(rs.rates["value"], rs.efficiency["value"]): (rs.rates["value"], value)}

    def solve_at(rates: Any, eff: float) -> Point:
        key = _constants_key(rates, eff)
        if key not in solved:
            solved[key] = (rates, solve(replica(rates, eff), req, cap, replicas, strict=False, why=why))
        return solved[key][1]

    return _Run(lay, mem, replicas, value, rs.notes, solve_at, rs.rates, rs.efficiency, budget, caps)


def _constants_key(rates: Any, eff: float) -> tuple:
    """What a solve depends on, bit for bit: floats by their hex (-0.0 is not 0.0), numbers, strings
    and tuples by value, anything else (a measured-rate callable) by identity."""
    def key(x: Any) -> Any:
        if isinstance(x, float):
            return float.hex(x)
        if x is None or isinstance(x, (bool, int, str)):
            return type(x), x
        return tuple(key(v) for v in x) if isinstance(x, tuple) else ("id", id(x))
    return key(eff), tuple(key(getattr(rates, f)) for f in rates.__dataclass_fields__)


def per_rank_factor(engine: sr.Engine, lay: Layout) -> int:
    """Under attention DP the step token budget of an engine whose ranks each schedule their own steps
    (TensorRT-LLM max_num_tokens, vLLM) is tp times the setting per replica; SGLang divides its
    --chunked-prefill-size over the ranks (attention_dp_limits = "global", seeds/serving.toml)."""
    return lay.tp if lay.attn_dp and engine.attention_dp_limits == "per_rank" else 1


def has_rate(spec: Any, dtype: str) -> bool:
    """Whether the device's GEMMs run in `dtype` (16/32-bit always; fp8/fp4 only with a stated rate)."""
    return dtype in ("bf16", "fp16", "fp32") or bool(spec.peak(dtype) or assumed_peak(spec, dtype))


def supported_precision(spec: Any, req: ServingRequest) -> tuple[ServingRequest, str]:
    """`req` in the narrowest precision the device computes in: fp4 -> fp8 -> bf16 for weights and
    activations, and the KV cache no narrower than them (a device without fp8 math, MI250X or A100,
    serves bf16 as the engines do there). Returns the request and a note ('' when unchanged)."""
    if has_rate(spec, req.compute_dtype):
        if req.kv_cache == "fp4" and not has_rate(spec, "fp4"):
            # an FP4 KV cache (TensorRT-LLM NVFP4 KV) needs Blackwell's FP4 units: elsewhere it is FP8
            return replace(req, kv_cache="fp8"), (f"{spec.key} has no fp4 rate: KV cache served in fp8 "
                                                  f"(the request asks for fp4)")
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


def with_fp4_format(model: Any, spec: Any, req: ServingRequest) -> ServingRequest:
    """The fp4 block format, where the request leaves it open: the checkpoint's where the model is
    served as released in fp4 (models.toml released_fp4_format; gpt-oss: MXFP4 on every vendor),
    else the one the vendor's quantisers write: NVFP4 on NVIDIA (ModelOpt, TensorRT-LLM's fp4
    path), MXFP4 on AMD (Quark; CDNA4's fp4 units take E8M0 block scales: AMD Instinct MI355X
    ISA guide, the MX formats)."""
    if req.fp4_format is not None or "fp4" not in (req.weights, req.kv_cache, *req.attention_dtypes):
        return req
    released = getattr(model, "released_fp4_format", "")
    if released and req.weights == getattr(model, "released_weights", ""):
        return replace(req, fp4_format=released)
    return replace(req, fp4_format="nvfp4" if spec.vendor == "nvidia" else "mxfp4")


def estimate_serving(model: Any, model_name: str, system: SystemSpec, req: ServingRequest, profile: Any = None,
                     gemm_shapes: Any = None) -> ServingEstimate:
    """`gemm_shapes` (serving_rates.GemmShapes from the --profile results file): measured GEMM
    rates by shape, used for the device the profile was measured on."""
    spec = get_device_spec(system.device)
    req = with_fp4_format(model, spec, as_released(model, req))
    if not has_rate(spec, req.compute_dtype):
        usable = [d for d in ("fp4", "fp8") if has_rate(spec, d)] + ["bf16"]
        raise BadInput(f"device {spec.key} has no {req.compute_dtype} rate",
                       f"use --activations {' or '.join(usable)}: narrower weights are then dequantised in the GEMM "
                       "(weight-only quantisation, W4A16 / W8A16)")
    if req.kv_cache == "fp4" and not has_rate(spec, "fp4"):  # TensorRT-LLM's NVFP4 KV needs FP4 units (Blackwell)
        raise BadInput(f"device {spec.key} has no fp4 rate: no engine keeps an fp4 KV cache on it",
                       "pass --kv-cache fp8 or bf16")
    _check_expert_flags(model, model_name, req)
    _check_context(model, model_name, req)
    engine = sr.load_engine(req.engine)
    if spec.vendor not in engine.vendors:
        others = [k for k in sr.ENGINES if spec.vendor in sr.load_engine(k).vendors]
        raise BadInput(f"{engine.name} does not run on {spec.vendor.upper()} GPUs ({spec.key})",
                       f"pass --engine {' or '.join(others)}")
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
        over = [e for e in errors if isinstance(e, OverCapacity)]
        if over:  # the layout that carries the most says how far the load is out of reach
            raise max(over, key=lambda e: e.sustained_per_s)
        raise errors[-1] if errors else DoesNotFit(f"no layout of {model_name} fits {system.key}", "use more GPUs or fp8")
    return _estimate(best[1], model, model_name, system, spec, req, engine)


BOUNDED = ("tokens_per_s", "tpot_s", "ttft_s", "batch")


class OverCapacity(DoesNotFit):
    """A request rate above what a layout's replicas sustain, with that rate (requests/s)."""

    def __init__(self, what: str, fix: str, sustained_per_s: float) -> None:
        super().__init__(what, fix)
        self.sustained_per_s = sustained_per_s


def _held_to_targets(span: dict, runs: Mapping[Any, Any], req: ServingRequest) -> dict:
    """A load solved for latency targets meets them at every corner the constants allow: the high of a
    targeted latency is at most the worse of the target and the slowest single-group corner (the shifts
    in quadrature could otherwise add up past the target every corner held)."""
    if req.mode != "server" or any(x is not None for x in (req.batch, req.concurrency, req.request_rate_per_s, req.requests)):
        return span
    out = dict(span)
    for attr, target in (("tpot_s", req.tpot_target_s), ("ttft_s", req.ttft_target_s)):
        if target:
            worst = max(getattr(p, attr) for p in runs.values())
            lo, hi = out[attr]
            out[attr] = (lo, min(hi, max(target, worst)))
    return out


def _est(run: _Run, span: Mapping[str, tuple[float, float]], attr: str, unit: str, scale: float = 1.0) -> Estimate:
    lo, hi = span[attr]
    return Estimate(getattr(run.value, attr) * scale, lo * scale, hi * scale, unit)


def _estimate(run: _Run, model: Any, model_name: str, system: SystemSpec, spec: Any, req: ServingRequest,
              engine: sr.Engine) -> ServingEstimate:
    lay, g = run.lay, run.lay.tp * run.lay.pp
    span, corners, runs = sb.bounds(run.solve_at, run.rates, run.efficiency, run.value, BOUNDED)
    span = _held_to_targets(span, runs, req)
    # every corner solves under the same stream cap (memory, batch cap, step budget): the groups'
    # shifts in quadrature must not carry the batch past it
    (lo_b, hi_b), cap = span["batch"], min(run.caps.values())
    span = {**span, "batch": (lo_b, max(min(hi_b, cap), run.value.batch))}
    rep_tps = _est(run, span, "tokens_per_s", "tokens/s")
    per_gpu = rep_tps.scale(1.0 / g, "tokens/s")
    system_tps = rep_tps.scale(float(run.replicas), "tokens/s")
    batch = _est(run, span, "batch", "stream")
    value = run.value
    frac = req.hbm_fraction or engine.usable_hbm_fraction
    notes = tuple(dict.fromkeys(run.notes + (
        f"replica = tp {lay.tp} x pp {lay.pp}" + (f" (ep {lay.ep})" if lay.ep > 1 else "")
        + (" with attention data-parallel over the tp GPUs (each keeps its own streams' KV and the whole attention weights; "
           + token_travel_words(run) + ")" if lay.attn_dp else "") + f" of {spec.key}; "
        f"{run.replicas} replica(s) in {system.key}" + ("" if req.tp else " (tp chosen for the most tokens/s per GPU)"),
        f"weights {req.weights}, activations {req.activations} (GEMMs in {req.compute_dtype}), KV cache {req.kv_cache}; "
        f"prompt {req.prompt_tokens:g}, output {req.output_tokens:g} tokens",
        *attention_weights_note(model, req),
        *fusion_note(req, engine, lay),
        *untuned_blockscale_note(model, run, req),
        *routing_note(model, run),
        f"memory per GPU: {usable_note(frac, spec, engine)}, weights {run.mem.weights_bytes / 1e9:.1f} GB, "
        f"workspace {run.mem.workspace_bytes / 1e9:.1f} GB, " + _kv_words(run.mem, lay),
        mode_note(req),
        budget_note(run, req, engine),
        *spec_note(run, req),
        "every request exactly prompt + output tokens long (fixed lengths, as a throughput benchmark's random dataset); "
        "each admission prefills its streams' tokens once" if value.wave else
        "continuous batching with chunked prefill: each step carries B decode tokens + B x prompt/output prefill tokens",
        sb.NOTE,
        f"every constant at its pessimistic / optimistic end at once: {corners['low'].tokens_per_s / g:,.4g} / "
        f"{corners['high'].tokens_per_s / g:,.4g} output tokens/s per GPU")
        + missed_target_note(corners["low"], req) + unbounded_ttft_note(value, req) + wave_note(value.wave)))
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


def _kv_words(mem: Any, lay: Any) -> str:
    """The KV memory line. Under attention DP each GPU keeps its own streams whole; the memory model
    spreads their KV over the tp GPUs (the same total), so the count is the replica's, not a GPU's."""
    if not lay.attn_dp:
        return (f"KV {mem.kv_bytes_per_token / 1e3:.0f} kB/token -> {mem.max_streams} streams of "
                f"{mem.kv_tokens_per_stream:g} tokens")
    return (f"KV {mem.kv_bytes_per_token * lay.tp / 1e3:.0f} kB/token on the GPU that keeps each stream -> "
            f"{mem.max_streams} streams of {mem.kv_tokens_per_stream:g} tokens per replica "
            f"({mem.max_streams / lay.tp:.0f} per GPU)")
