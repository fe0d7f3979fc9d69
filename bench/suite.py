"""Which cases make up `bench all` and each named benchmark, in what order, with what refinement."""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

from recoque.bench import attention, environment, gemm, headline, noise, sweep
from recoque.bench.base import Case
from recoque.bench.schema import BENCHMARKS, SDPA_TAG_PREFIX
from recoque.bench.runner import RunOutcome, run_cases
from recoque.bench.timing import FULL, QUICK, TimingPolicy
from recoque.errors import BadInput

ALL_DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8")
# A GPU is warmed up thermally before its first sample (mamf-finder warms for 30 s; AMD's MAF
# method about a quarter of a 1 s run).
GPU_WARMUP_S = {True: 2.0, False: 20.0}


def policy_for(device: Any, quick: bool) -> TimingPolicy:
    return QUICK if quick else FULL


def check_dtypes(dtypes: tuple[str, ...]) -> tuple[str, ...]:
    bad = [d for d in dtypes if d not in ALL_DTYPES]
    if bad:
        raise BadInput(f"unknown dtype {bad[0]!r}", f"use one of {', '.join(ALL_DTYPES)}")
    return dtypes


def run_suite(names: tuple[str, ...], device: Any, quick: bool, dtypes: tuple[str, ...], seed: int = 0,
              telemetry: bool = True, dtypes_explicit: bool = True, on_plan: Callable[[int], None] | None = None,
              on_done: Callable[[Case, Any, Any], None] | None = None,
              out: RunOutcome | None = None) -> tuple[RunOutcome, list[str]]:
    """Run the named benchmarks; returns the outcome and notes (what was not run and why). `out`: the
    outcome to fill as the stages finish, so a caller interrupted between stages still holds the
    warnings and sweeps measured so far."""
    r = _Runner(device, quick, dtypes, dtypes_explicit, seed, telemetry, on_plan, on_done, policy_for(device, quick),
                out=out if out is not None else RunOutcome())
    environment.prepare(device)
    for name in names:
        stage = _STAGES.get(name)
        if stage is None:
            raise BadInput(f"unknown benchmark {name!r}", f"use one of all, {', '.join(BENCHMARKS)}")
        if not stage(r):  # interrupted or failed: keep what was measured
            break
    return r.out, r.notes


@dataclass
class _Runner:
    """What every benchmark stage shares: the request, the timing policy, the outcome so far, and
    the one call that runs cases (the first GPU case of the run gets the long warm-up)."""

    device: Any
    quick: bool
    dtypes: tuple[str, ...]
    dtypes_explicit: bool
    seed: int
    telemetry: bool
    on_plan: Callable[[int], None] | None
    on_done: Callable[[Case, Any, Any], None] | None
    policy: TimingPolicy
    out: RunOutcome = field(default_factory=RunOutcome)
    notes: list[str] = field(default_factory=list)
    first: bool = True

    @property
    def on_cpu(self) -> bool:  # other processes' load is measured where it slows the kernels
        return self.device.kind == "cpu"

    def __call__(self, cases: list[Case], fixed_policy: TimingPolicy | None = None) -> bool:
        if not cases:
            return True
        if self.on_plan:
            self.on_plan(len(cases))
        if fixed_policy is not None:  # every rank must make the same number of calls
            return self._run(cases, fixed_policy)
        if self.first and not self.on_cpu:
            self.first = False
            if not self._run(cases[:1], replace(self.policy, warmup_s=GPU_WARMUP_S[self.quick])):
                return False
            cases = cases[1:]
        self.first = False
        return self._run(cases, self.policy)

    def _run(self, cases: list[Case], policy: TimingPolicy) -> bool:
        return _merge(self.out, run_cases(cases, self.device, policy, self.seed, self.telemetry, self.on_done))

    def confirmed(self, cases: list[Case], benchmark: str) -> bool:
        """Run the cases, then confirm their candidates in alternating rounds."""
        n0 = len(self.out.records)
        return self(cases) and _confirm(self.out, self.out.records[n0:], benchmark, self.policy, self, self.on_cpu)[0]


def _stage_gemm(r: _Runner) -> bool:
    out, n0, s0 = r.out, len(r.out.records), len(r.out.sweeps)
    for dtype in r.dtypes:
        if not _sweep(out, r.device, r.quick, dtype, r):
            return False
    # Every dtype's candidate, confirmed in alternating rounds once all sweeps are done.
    ok, seconds = _confirm(out, out.records[n0:], "gemm", r.policy, r, r.on_cpu)
    _note_confirm_seconds(out, seconds)
    _settle_best_shapes(out.records[n0:], out.sweeps[s0:])
    if not ok:
        return False
    llm_ok = r.confirmed(gemm.llm_cases(r.device, r.quick, r.dtypes), "gemm")
    out.records[:], ratio = headline.mark_tf32(out.records)  # after the LLM layers: their tf32 rows too
    out.warnings += noise.check_tf32(ratio)
    return llm_ok


def _dtypes_for(r: _Runner, benchmark: str, supported: tuple[str, ...], default: tuple[str, ...]) -> tuple[str, ...]:
    """The dtypes of the request a benchmark runs; the others asked for by name are said, not dropped
    silently (and with none it can run, its default is measured and said)."""
    kept = tuple(d for d in r.dtypes if d in supported)
    dropped = [d for d in r.dtypes if d not in supported]
    if r.dtypes_explicit and dropped:
        ran = kept or default
        r.notes.append(f"{benchmark}: {', '.join(dropped)} not measured ({benchmark} runs {', '.join(supported)}; "
                       f"measured {', '.join(ran)})")
    return kept or default


# What the CPU runs of each (attention.cases and moe.cases measure these only on a CPU)
CPU_DTYPES = {"attention": ("bf16", "fp32"), "moe": ("bf16", "fp32")}


def _stage_attention(r: _Runner) -> bool:
    att = _dtypes_for(r, "attention", CPU_DTYPES["attention"] if r.on_cpu else ("bf16", "fp16", "fp32"), ("bf16",))
    return r.confirmed(attention.cases(r.device, r.quick, att), "attention")


def _stage_moe(r: _Runner) -> bool:
    from recoque.bench import moe

    dts = _dtypes_for(r, "moe", CPU_DTYPES["moe"] if r.on_cpu else ("bf16", "fp16", "fp32"), ("bf16",))
    if not (r.dtypes_explicit or r.on_cpu):
        dts = ("bf16",)  # the dtype MoE layers run in; fp16 and fp32 on request
    return r(moe.cases(r.device, r.quick, dts))


def _stage_stream(r: _Runner) -> bool:
    from recoque.bench import stream

    sd = _dtypes_for(r, "stream", ("fp64", "fp32"), ("fp64",))
    if r.quick and not r.dtypes_explicit:
        sd = ("fp64",)  # quick mode: BabelStream's default precision only
    # One case per kernel and dtype: the candidate is known, so the kernels are measured
    # straight away in alternating confirmation rounds (BabelStream's loop does the same).
    for dtype in sd:
        pool: dict[str, Any] = {}
        tags = (headline.HEADLINE_TAG, headline.CONFIRM_TAG)
        if not _rounds(r.out, stream.cases(r.device, r.quick, (dtype,), tags, pool), r.policy, r, (), r.on_cpu)[0]:
            return False
        pool.clear()
    return True


def _stage_launch(r: _Runner) -> bool:
    from recoque.bench import launch

    _dtypes_for(r, "launch", ("fp32",), ("fp32",))  # an fp32 chain whatever --dtype asks: said, not silent
    why = launch.skip_reason(r.device)
    if why:
        r.notes.append(f"launch: eager only; {why}")
    # One case per op: measured straight away in alternating confirmation rounds, as STREAM's kernels.
    tags = (headline.HEADLINE_TAG, headline.CONFIRM_TAG)
    return _rounds(r.out, launch.cases(r.device, r.quick, tags), r.policy, r, (), r.on_cpu)[0]


def _stage_transfer(r: _Runner) -> bool:
    from recoque.bench import transfer

    cases = transfer.cases(r.device, r.quick)
    if not cases:
        r.notes.append("transfer: host-device bandwidth needs a GPU")
    return r.confirmed(cases, "transfer")


def _stage_collective(r: _Runner) -> bool:
    from recoque.bench import collective

    dts = (_dtypes_for(r, "collective", tuple(collective.ELEM_BYTES), collective.default_dtypes(r.quick))
           if r.dtypes_explicit else None)
    cases = collective.cases(r.device, r.quick, dts)
    if not cases:
        r.notes.append(f"collective: {collective.skip_reason(r.device) or 'nothing to run'}")
    return r(cases, collective.policy(r.quick))


_STAGES: dict[str, Callable[[_Runner], bool]] = {
    "gemm": _stage_gemm, "attention": _stage_attention, "moe": _stage_moe, "stream": _stage_stream, "launch": _stage_launch,
    "transfer": _stage_transfer, "collective": _stage_collective}


def _sweep(out: RunOutcome, device: Any, quick: bool, dtype: str, run: Callable[..., bool]) -> bool:
    """The coarse grid (gemm.sweep_cases), then, unless --quick, the search around its best shapes
    (bench/sweep.py); how many shapes it measured and how long it took go into out.sweeps."""
    t0, n0 = time.perf_counter(), len(out.records)
    cases = gemm.sweep_cases(device, quick, dtype)
    plan = gemm.sweep_plan(device, quick, dtype, [(c.m, c.n, c.k) for c in cases if "sweep" in c.tags])
    backend: list[str] = []  # the backend of the coarse grid's best, refined alone (CPU grids run two)

    def measure(batch: list[sweep.Shape]) -> dict[sweep.Shape, float] | None:
        if not backend:
            ok = run(cases)
            best = headline.candidate(out.records[n0:], dtype)
            backend.append((best.backend if best is not None else None) or "torch")
        else:
            ok = run([gemm.GemmCase(*s, dtype, backend=backend[0], tags=("sweep", "refine")) for s in batch])
        return sweep_rates(out.records[n0:], dtype, backend[0]) if ok else None

    if plan is None:
        log = sweep.SearchLog({}, len(cases), 0, 0, stopped=not run(cases))
        backend.append("")
    else:
        log = sweep.drive(plan, measure)
    mine = [r for r in out.records[n0:] if r.dtype == dtype and "sweep" in r.tags]
    if mine:
        best = headline.candidate(mine, dtype)
        out.sweeps.append({
            "benchmark": "gemm", "dtype": dtype, "backend": backend[0] or None, "refined": plan is not None,
            "coarse_cases": sum("sweep" in c.tags for c in cases), "refine_shapes": log.refine_shapes, "refine_rounds": log.refine_rounds,
            "cases_measured": len(mine), "sweep_s": time.perf_counter() - t0, "complete": not log.stopped,
            "best_shape": [best.params["m"], best.params["n"], best.params["k"]] if best is not None else None})
    return not log.stopped


def _settle_best_shapes(records: list[Any], sweeps: list[dict[str, Any]]) -> None:
    """Each sweep's best shape as its table row shows it (headline.figure over the dtype's sweep
    group, confirmation rounds included), not the candidate picked before the confirmation: a
    faster case the short sweep judged unsteady may win its rounds (the note said 4096^3 while
    the table showed 512^3)."""
    for sw in sweeps:
        op = next((r.op for r in records if r.benchmark == "gemm" and r.dtype == sw["dtype"] and "sweep" in r.tags), None)
        group = [r for r in records if headline.group_key(r) == ("gemm", op, sw["dtype"], "sweep")]
        if op is not None and group:
            best, _ = headline.figure(group)
            sw["best_shape"] = [best.params["m"], best.params["n"], best.params["k"]]


def sweep_rates(records: list[Any], dtype: str, backend: str) -> dict[sweep.Shape, float]:
    """Rate per shape of the sweep's records of one backend, steady ones only when any is steady (the
    search then follows real gains, not one lucky median)."""
    mine = [r for r in records if r.benchmark == "gemm" and r.dtype == dtype and (r.backend or "torch") == backend
            and "sweep" in r.tags and headline.CONFIRM_TAG not in r.tags]
    steady = [r for r in mine if headline.is_stable(r)] or mine
    rates: dict[sweep.Shape, float] = {}
    for r in steady:
        s = (r.params["m"], r.params["n"], r.params["k"])
        rates[s] = max(rates.get(s, 0.0), r.achieved)
    return rates


def confirm_policy(policy: TimingPolicy) -> TimingPolicy:
    """One round of a headline's confirmation: the budget x CONFIRM_BUDGET_FACTOR spread over
    CONFIRM_ROUNDS rounds (each longer than the sweep's run), and a warm-up of at least 0.1 s: the
    rounds alternate between thread pools (OpenBLAS for numpy, OpenMP for torch and numba), and an
    idle pool busy-waits a while before it sleeps (OpenBLAS: OPENBLAS_THREAD_TIMEOUT; GNU OpenMP:
    GOMP_SPINCOUNT), taking cores from the next case's first calls."""
    f, n = headline.CONFIRM_BUDGET_FACTOR, headline.CONFIRM_ROUNDS
    return replace(policy, warmup_s=max(policy.warmup_s, 0.1), budget_s=policy.budget_s * f / n,
                   max_samples=max(policy.max_samples, policy.max_samples * f // n))


_OWN_TAGS = ("rotation_sets:", headline.ROUND_PREFIX, headline.OTHER_CPU_PREFIX, SDPA_TAG_PREFIX)
_DROPPED_TAGS = {headline.HEADLINE_TAG, headline.CONFIRM_TAG, headline.TF32_UNCONFIRMED_TAG, "refine",
                 "streaming-stores"}


def _kept_tags(rec: Any) -> tuple[str, ...]:
    """The candidate's tags that describe the case (sweep, llm layer...), not how it was measured."""
    return tuple(t for t in rec.tags if t not in _DROPPED_TAGS and not t.startswith(_OWN_TAGS))


def confirmation_cases(rec: Any, pool: dict[str, Any] | None = None) -> list[Case]:
    """The candidate measured again, first; then what is measured once beside it (fp8 with fast
    accumulation, when the candidate ran without). pool: arrays the STREAM kernels share."""
    p, tags = rec.params, _kept_tags(rec) + (headline.HEADLINE_TAG, headline.CONFIRM_TAG)
    if rec.benchmark == "gemm":
        cases: list[Case] = [gemm.GemmCase(p["m"], p["n"], p["k"], rec.dtype, backend=rec.backend or "torch",
                                           tags=tags, fast_accum=bool(p.get("fast_accum", False)))]
        if rec.dtype == "fp8" and not p.get("fast_accum"):
            cases.append(gemm.GemmCase(p["m"], p["n"], p["k"], "fp8", tags=_kept_tags(rec) + (
                headline.CONFIRM_TAG, "fast_accum"), fast_accum=True))
        return cases
    if rec.benchmark == "attention":
        probed = tuple(t for t in rec.tags if t.startswith(SDPA_TAG_PREFIX))  # every backend's probe
        return [attention.AttentionCase(p["batch"], p["heads_q"], p["heads_kv"], p["seq_q"], p["head_dim"],
                                        p["causal"], p["direction"], rec.dtype, tags=tags + probed,
                                        backend=rec.backend)]
    if rec.benchmark == "stream":
        from recoque.bench import stream

        return [stream.StreamCase(rec.op, rec.dtype, p["n_elements"], tags=tags, pool=pool)]
    if rec.benchmark == "launch":
        from recoque.bench import launch

        return [launch.LaunchCase(rec.op, p["kernels"], p["n_elements"], tags=tags)]
    if rec.benchmark == "transfer":
        from recoque.bench import transfer

        case = transfer.TransferCase(rec.op, p["bytes"])
        case.tags = tags
        return [case]
    return []


class HeldCase(Case):
    """A case set up and verified once, then timed in several rounds (the runner's teardown is
    deferred to release()), so that rounds alternate between candidates without paying for the
    allocation, the random fill and the float64 check again."""

    def __init__(self, inner: Case) -> None:
        self.inner = inner
        self.round_tags: tuple[str, ...] = ()
        self.n_sets: int | None = None
        self.check: Any = None

    benchmark = property(lambda self: self.inner.benchmark)  # type: ignore[assignment]
    op = property(lambda self: self.inner.op)  # type: ignore[assignment]
    dtype = property(lambda self: self.inner.dtype)  # type: ignore[assignment]
    params = property(lambda self: self.inner.params)  # type: ignore[assignment]
    backend = property(lambda self: self.inner.backend)  # type: ignore[assignment]
    tags = property(lambda self: tuple(self.inner.tags) + self.round_tags)  # type: ignore[assignment]

    def work(self) -> Any:
        return self.inner.work()

    def bytes_per_set(self) -> int:
        return self.inner.bytes_per_set()

    def sets_used(self, n_sets: int) -> int:
        return self.inner.sets_used(n_sets)

    def setup(self, device: Any, n_sets: int, seed: int) -> None:
        if self.n_sets is None:
            self.inner.setup(device, n_sets, seed)
            self.n_sets = n_sets

    def verify(self) -> Any:
        if self.check is None:
            self.check = self.inner.verify()
        return self.check

    def activate(self) -> None:
        self.inner.activate()

    def run(self, i: int) -> None:
        self.inner.run(i % (self.n_sets or 1))  # the sets it was set up with, whatever this round's count

    def teardown(self) -> None:
        """Kept for the next round: release() frees it."""

    def release(self) -> None:
        if self.n_sets is not None:
            self.inner.teardown()
        self.n_sets = self.check = None


def _confirm(out: RunOutcome, records: list[Any], benchmark: str, policy: TimingPolicy,
             run: Callable[..., bool], contention: bool = True) -> tuple[bool, dict[tuple, float]]:
    """Re-measure the candidate of every group of `benchmark` in `records` in alternating rounds
    (_rounds); the headline is the median of the rounds' medians (bench/headline.py). Returns (not
    interrupted, seconds spent per group)."""
    cands = headline.candidates(records, benchmark)
    pool: dict[str, Any] = {}
    built = [cases for cases in (confirmation_cases(c, pool) for c in cands) if cases]
    ok, seconds = _rounds(out, [cases[0] for cases in built], policy, run, [x for cases in built for x in cases[1:]],
                          contention)
    pool.clear()
    return ok, seconds


def _rounds(out: RunOutcome, cases: list[Case], policy: TimingPolicy, run: Callable[..., bool],
            extras: Sequence[Case] = (), contention: bool = True) -> tuple[bool, dict[tuple, float]]:
    """CONFIRM_ROUNDS rounds, each case once per round, in turn, set up and verified once; each
    round's record is tagged with its round and, with `contention` (CPU devices: a GPU kernel does
    not wait for host cores), the cores other processes used meanwhile. `extras` are measured once,
    after the first round. Returns (not interrupted, seconds per group)."""
    held = [HeldCase(c) for c in cases]
    seconds: dict[tuple, float] = {}
    pol, n = confirm_policy(policy), headline.CONFIRM_ROUNDS
    n0 = len(out.records)
    try:
        live = list(held)
        for k in range(1, n + 1):
            for case in list(live):
                case.round_tags = (headline.round_tag(k, n),)
                t0, before, n_before = time.perf_counter(), noise.cpu_snapshot(), len(out.records)
                ok = run([case], pol)
                key = headline.group_key(case)
                seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - t0
                if not ok:
                    return False, seconds
                if len(out.records) == n_before:  # skipped (out of memory, failed check): no more rounds
                    live.remove(case)
                    continue
                if contention:
                    _tag_contention(out, n_before, noise.other_cores(before, noise.cpu_snapshot()))
            if k == 1 and extras and not run(list(extras), pol):
                return False, seconds
    finally:
        for case in held:
            case.release()
    out.warnings += confirmation_warnings(out.records[n0:])
    return True, seconds


def _tag_contention(out: RunOutcome, index: int, cores: float | None) -> None:
    if cores is not None:
        rec = out.records[index]
        out.records[index] = replace(rec, tags=tuple(rec.tags) + (f"{headline.OTHER_CPU_PREFIX}{cores:.2f}",))


def confirmation_warnings(records: list[Any]) -> list[noise.NoiseWarning]:
    """unstable_headline when a group's confirmation spread too much to be its headline; contended
    when every round of it ran beside another busy process."""
    out = []
    groups = dict.fromkeys(headline.group_key(r) for r in records if headline.HEADLINE_TAG in r.tags)
    for key in groups:
        group = [r for r in records if headline.group_key(r) == key]
        conf = headline.confirmed(group)
        if conf is None:
            continue
        label = f"{'/'.join(key[:3])} headline {dict(conf.params)}"
        if not headline.is_stable(conf):
            out.append(noise.NoiseWarning("unstable_headline", label, noise.spread(conf.times_s),
                                          noise.HINTS["unstable_headline"]))
        busy = [headline.other_cores(r) for r in headline.rounds(group)]
        if busy and all(b is not None and b > headline.CONTENDED_CORES for b in busy):
            least = min(b for b in busy if b is not None)
            out.append(noise.NoiseWarning("contended", label, least, noise.HINTS["contended"]))
    return out


def _note_confirm_seconds(out: RunOutcome, seconds: dict[tuple, float]) -> None:
    """The GEMM sweeps' confirmation time, per dtype, beside their sweep time."""
    for sweep_info in out.sweeps:
        key = (sweep_info.get("benchmark"), "scaled_mm" if sweep_info.get("dtype") == "fp8" else "matmul",
               sweep_info.get("dtype"), "sweep")
        if key in seconds and sweep_info.get("confirm_s") is None:
            sweep_info["confirm_s"] = seconds[key]


def _merge(out: RunOutcome, part: RunOutcome) -> bool:
    out.extend(part)
    return not part.interrupted
