"""An offline run of a finite number of requests submitted at once, followed to its end.

A throughput benchmark such as vLLM's benchmark_throughput (--num-prompts N, --max-num-seqs >= N)
hands the engine all N requests at t = 0. They are admitted together and, with fixed lengths, grow
in lockstep: the KV cache they hold peaks at N x (prompt + output) at the end of the run, not at
the N x (prompt + output/2) of the steady state the offline model assumes. When that peak is more
than the KV memory, a paged engine preempts. vLLM's scheduler, finding no free block for a running
request's next token, evicts the most recently admitted request and puts it back at the head of
the waiting queue with its computed tokens reset to zero (RECOMPUTE); it is readmitted when blocks
free up, and its prompt and the tokens it had produced are prefilled again
(vllm-project/vllm @00024d31 vllm/v1/core/sched/scheduler.py, Scheduler.schedule: "Preempt the
lowest-priority request", `self.running.pop()`, and _preempt_request; Kwon et al. 2023, SOSP,
section 4.5). Preempted streams still hold their produced tokens; the run ends when every request
has its output.

An engine that reserves prompt + output at admission (TensorRT-LLM's GUARANTEED_NO_EVICT) never
preempts: it admits what fits at full length and the rest wait.

When no stream is ever preempted (a reserving engine, or a paged one whose slots' streams fit at
full length), the run is whole lockstep waves and a last partial one, counted in closed form.
Otherwise it is followed as a fluid: groups of streams at one context, advanced a few decode steps
at a time; each advance costs `decode_s(streams, mean context)` per step, each admission
`prefill_s(tokens, length)` once. With no preemption and no waiting either way gives the
steady-state throughput back (the prefill the steady state spreads over the steps is paid here at
admission).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

TINY = 1e-9


@dataclass(frozen=True)
class WaveRun:
    requests: float
    seconds: float             # wall time of the run, prefills included
    decode_seconds: float      # the decode steps alone
    decode_steps: int
    output_tokens: float
    stream_steps: float        # sum over decode steps of the streams running
    recomputed_tokens: float   # tokens prefilled again after a preemption
    preempted_streams: float
    first_prefill_s: float     # the first admission's prefill: the earliest first token
    peak_kv_fraction: float    # KV of the requests a slot admits at once, at full length / the KV memory
    followed_requests: float = 0.0   # the requests followed (fewer than `requests` for a run of many waves)
    reserve_full: bool = False       # the engine reserved prompt + output at admission (never preempts)

    @property
    def tokens_per_s(self) -> float:
        return self.output_tokens / self.seconds

    @property
    def mean_streams(self) -> float:
        return self.stream_steps / self.decode_steps if self.decode_steps else 0.0

    @property
    def mean_step_s(self) -> float:
        return self.decode_seconds / self.decode_steps if self.decode_steps else 0.0


@dataclass
class _Group:
    count: float
    context: float
    resumed: bool = False


@dataclass(frozen=True)
class Wave:
    """What one replica is given: `requests` of `prompt` + `output` tokens, at most `slots` running,
    `kv_free_bytes` of cache, `kv_bytes(context)` per stream, `reserve_full` for a reserving engine."""
    requests: float
    prompt: float
    output: float
    slots: float
    kv_free_bytes: float
    kv_bytes: Callable[[float], float]
    reserve_full: bool
    decode_s: Callable[[float, float], float]
    prefill_s: Callable[[float, float], float]
    steps_per_advance: int = 0   # 0: output / 256, at least 1

    @property
    def length(self) -> float:
        return self.prompt + self.output

    def held(self, g: _Group) -> float:
        return g.count * self.kv_bytes(g.context)

    def peak_kv_fraction(self) -> float:
        return min(self.requests, self.slots) * self.kv_bytes(self.length) / self.kv_free_bytes


def run(w: Wave) -> WaveRun:
    """Follow the run from its first admission to its last token."""
    if w.kv_bytes(w.length) > w.kv_free_bytes:   # vLLM refuses to start when max_model_len cannot fit
        raise ValueError(f"one request of {w.length:,.0f} tokens needs more KV cache than the replica holds")
    wave = _lockstep_wave(w)
    if wave:
        return _in_waves(w, wave)
    return _followed_run(w)   # a paged engine whose streams outgrow the cache: it preempts


def _followed_run(w: Wave) -> WaveRun:
    followed = _followed(w)
    chunk = w.steps_per_advance or _advance(w, followed)
    running: list[_Group] = []                       # oldest first
    waiting: list[_Group] = [_Group(followed, w.prompt)]
    t = dec_t = out = stream_steps = recomputed = preempted = 0.0
    steps, first = 0, None
    while running or waiting:
        t_adm, rec = _admit(w, running, waiting)
        t += t_adm
        recomputed += rec
        first = t_adm if first is None else first
        if not running:   # unreachable after the check above; kept so a rounding slip cannot loop
            raise ValueError("no stream of the run fits the KV memory")
        n = sum(g.count for g in running)
        ctx = sum(g.count * g.context for g in running) / n
        k = max(1, min(chunk, int(round(min(w.length - g.context for g in running)))))
        step = w.decode_s(n, ctx + 0.5 * k)
        t, dec_t, out, stream_steps, steps = t + k * step, dec_t + k * step, out + n * k, stream_steps + n * k, steps + k
        for g in running:
            g.context += k
        running[:] = [g for g in running if g.context < w.length - TINY]
        preempted += _preempt(w, running, waiting)
    return WaveRun(w.requests, t, dec_t, steps, out, stream_steps, recomputed, preempted, first or 0.0,
                   w.peak_kv_fraction(), followed, w.reserve_full)


def _lockstep_wave(w: Wave) -> float:
    """Streams of one wave when the run goes in whole lockstep waves (0 when it does not): a reserving
    engine admits what fits at full length; a paged engine whose slots' streams fit at full length
    never preempts. Each wave then starts, grows and ends together."""
    if w.reserve_full:
        return max(1.0, min(w.requests, w.slots, math.floor(w.kv_free_bytes / w.kv_bytes(w.length))))
    n = min(w.requests, w.slots)
    return n if n * w.kv_bytes(w.length) <= w.kv_free_bytes else 0.0


def _in_waves(w: Wave, n: float) -> WaveRun:
    """Whole waves of n streams and a last one of the rest, in closed form: a wave is the prefill of
    its prompts and `output` decode steps whose mean context is prompt + output/2 (a step's time is
    linear in the context it reads)."""
    full = math.floor(w.requests / n + TINY)
    last = max(0.0, w.requests - full * n)
    sizes = [(n, full)] + ([(last, 1)] if last > TINY else [])
    ctx = w.prompt + 0.5 * w.output
    dec = sum(k * w.output * w.decode_s(m, ctx) for m, k in sizes)
    pre = sum(k * w.prefill_s(m * w.prompt, w.prompt) for m, k in sizes)
    waves = sum(k for _, k in sizes)
    return WaveRun(w.requests, dec + pre, dec, int(waves * w.output), w.requests * w.output, w.requests * w.output,
                   0.0, 0.0, w.prefill_s(min(n, w.requests) * w.prompt, w.prompt), w.peak_kv_fraction(),
                   w.requests, w.reserve_full)


ADVANCES = 1024   # decode advances a run is followed in, at most about (the cost of a long run stays bounded)
WAVES = 64        # a run of more waves than this is followed for this many: its last, partly empty wave
                  # then weighs the same share (at most 1/64 of the time is in question)


def _together(w: Wave) -> float:
    """Streams that run at once, about: the slots, or the requests at full length the KV memory holds."""
    return max(1.0, min(w.requests, w.slots, w.kv_free_bytes / w.kv_bytes(w.length)))


def _followed(w: Wave) -> float:
    """The requests followed: all of them, or WAVES - 1 waves plus the run's own last partial wave."""
    waves = w.requests / _together(w)
    if waves <= WAVES:
        return w.requests
    last = waves - math.ceil(waves) + 1.0     # the last wave's share of a full one, in (0, 1]
    return _together(w) * (WAVES - 1 + last)


def _advance(w: Wave, followed: float) -> int:
    """Steps per advance: 1/256 of the output, coarser when the requests run in many waves."""
    steps = followed / _together(w) * w.output
    return max(1, int(w.output // 256), math.ceil(steps / ADVANCES))


def _admit(w: Wave, running: list[_Group], waiting: list[_Group]) -> tuple[float, float]:
    """Admit from the head of the queue while a slot and the KV memory (as the streams hold it now)
    allow: (prefill seconds, tokens recomputed)."""
    used = sum(w.held(g) for g in running)
    n = sum(g.count for g in running)
    seconds = recomputed = 0.0
    while waiting and n < w.slots - TINY:
        head = waiting[0]
        if head.count <= TINY:   # a rounding remainder, not a stream
            waiting.pop(0)
            continue
        per = w.kv_bytes(head.context)
        take = min(head.count, w.slots - n, (w.kv_free_bytes - used) / per)
        if take <= TINY:
            break
        running.append(_Group(take, head.context, head.resumed))
        used, n = used + take * per, n + take
        seconds += w.prefill_s(take * head.context, head.context)
        recomputed += take * head.context if head.resumed else 0.0
        head.count -= take
        if head.count > TINY:
            break
        waiting.pop(0)
    return seconds, recomputed


def _preempt(w: Wave, running: list[_Group], waiting: list[_Group]) -> float:
    """Evict the newest streams until the cache fits; they go back to the head of the queue."""
    over = sum(w.held(g) for g in running) - w.kv_free_bytes
    evicted = 0.0
    while over > TINY * w.kv_free_bytes and running:
        g = running[-1]
        per = w.kv_bytes(g.context)
        m = min(g.count, over / per)
        g.count -= m
        over -= m * per
        evicted += m
        waiting.insert(0, _Group(m, g.context, True))
        if g.count <= TINY:
            running.pop()
    return evicted
