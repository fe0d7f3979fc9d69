"""Every headline is confirmed (issue 8): the candidate of each group -- GEMM per dtype, attention per
direction and dtype, STREAM per kernel and dtype -- is measured again in alternating longer rounds,
its figure is the median of the rounds' medians, and an unsteady case is never the headline.

Fake records stand in for measurements (the checks are about the choice, not the machine); one
test runs the real STREAM kernels on small arrays through the real runner."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from recoque.bench import headline, noise, stream, suite, summary
from recoque.bench.base import Case, Verification, Work
from recoque.bench.runner import RunOutcome, run_cases
from recoque.bench.schema import SDPA_TAG_PREFIX, Record, ResultsDocument
from recoque.bench.timing import TimingPolicy

STREAM_BYTES = 3 * 8 * 2**24
ATT = dict(batch=1, heads_q=8, heads_kv=8, seq_q=512, seq_k=512, head_dim=64, direction="bwd")
ATT_FLOPS = 10**10


def stream_rec(op, times, tags=()):
    return Record("stream", op, "fp64", {"n_elements": 2**24, "elem_bytes": 8}, tuple(times), "GB/s",
                  bytes_moved=STREAM_BYTES, backend="numba", tags=tuple(tags))


def att_rec(times, causal=False, direction="bwd", dtype="bf16", tags=(), flops=ATT_FLOPS, backend="FLASH_ATTENTION"):
    params = {**ATT, "causal": causal, "direction": direction}
    probes = (f"{SDPA_TAG_PREFIX}FLASH_ATTENTION=0.05", f"{SDPA_TAG_PREFIX}MATH=0.09")
    return Record("attention", f"sdpa_{direction}", dtype, params, tuple(times), "TFLOP/s", flop_count=flops,
                  backend=backend, tags=tuple(tags) + probes + ("rotation_sets:16",))


def rounds_of(make, medians, k0=1, spread=0.0, other=None):
    """Round records (confirm_round:k/n) whose medians are `medians` (seconds), 9 samples each."""
    n = len(medians)
    out = []
    for k, m in enumerate(medians, start=k0):
        times = [m * (1 + spread * ((i % 3) - 1)) for i in range(9)]
        tags = (headline.HEADLINE_TAG, headline.CONFIRM_TAG, headline.round_tag(k, n))
        if other is not None:
            tags += (f"{headline.OTHER_CPU_PREFIX}{other[k - k0]:.2f}",)
        out.append(make(times, tags))
    return out


@dataclass(frozen=True)
class StandInDevice:
    """The attributes of devices.Device that the stream benchmark and the runner read."""

    kind: str = "cpu"
    torch_device: str = "cpu"
    llc_bytes: int | None = 2**15
    memory_bytes: int | None = 16 * 2**30

    def peak(self, dtype):
        return None, "unknown"

    def peak_bandwidth(self):
        return None, "unknown"


def round_in(tags):
    prefix = headline.ROUND_PREFIX
    return next(int(t[len(prefix):].partition("/")[0]) for t in tags if t.startswith(prefix))


def doc_of(records):
    return ResultsDocument(environment={}, device={}, results=tuple(records))


# --------------------------------------------------------------------------- the figure


def test_median_of_round_medians_is_the_headline_whatever_one_bursty_round_did():
    quick = [stream_rec("copy", [0.010] * 5)]  # a faster short run: not the figure once confirmed
    confirmed = rounds_of(lambda t, tags: stream_rec("copy", t, tags), [0.020, 0.041, 0.021])  # round 2: load
    best = headline.headline(quick + confirmed)
    assert best is confirmed[2]  # 0.021 s: the median of 0.020, 0.041, 0.021
    assert best.achieved == pytest.approx(STREAM_BYTES / 0.021 / 1e9)
    row = summary.best_rows(doc_of(quick + confirmed))[0]
    assert row["headline"] == "confirmed" and row["achieved"] == pytest.approx(best.achieved)
    assert row["confirm_rounds"] == pytest.approx([STREAM_BYTES / m / 1e9 for m in (0.020, 0.041, 0.021)])
    js = summary.json_rows(doc_of(quick + confirmed))[0]
    assert js["confirm_rounds_bytes_per_s"] == pytest.approx([STREAM_BYTES / m for m in (0.020, 0.041, 0.021)])


def test_the_last_confirmation_counts_after_append():
    first = rounds_of(lambda t, tags: stream_rec("add", t, tags), [0.05, 0.05, 0.05])
    second = rounds_of(lambda t, tags: stream_rec("add", t, tags), [0.03, 0.031, 0.032])
    assert headline.rounds(first + second) == second
    assert headline.headline(first + second) is second[1]


def test_rounds_run_beside_busy_processes_are_set_aside_when_quiet_ones_exist():
    recs = rounds_of(lambda t, tags: stream_rec("triad", t, tags), [0.040, 0.020, 0.021], other=[1.3, 0.0, 0.1])
    assert headline.quiet_rounds(recs) == recs[1:]
    assert headline.headline(recs) is recs[2]  # of the two quiet rounds, the slower
    busy = rounds_of(lambda t, tags: stream_rec("triad", t, tags), [0.040, 0.041, 0.039], other=[1.3, 0.9, 1.1])
    assert headline.headline(busy) is busy[0]  # all busy: all count
    codes = [w.code for w in suite.confirmation_warnings(busy)]
    assert codes == ["contended"]


def test_noise_measures_other_processes_from_snapshots():
    before = noise.CpuSnapshot(wall_s=10.0, machine_busy_s=100.0, own_cpu_s=5.0)
    after = noise.CpuSnapshot(wall_s=12.0, machine_busy_s=104.0, own_cpu_s=7.0)  # 4 s busy, 2 s ours
    assert noise.other_cores(before, after) == pytest.approx(1.0)
    assert noise.other_cores(noise.CpuSnapshot(1.0, None, 0.0), after) is None
    assert noise.cpu_snapshot().own_cpu_s > 0  # this process has run


# --------------------------------------------------------------------------- unsteady: never the headline


def test_an_unsteady_confirmation_is_never_the_headline():
    sweep = [att_rec([0.050] * 5), att_rec([0.052] * 5, causal=True, flops=ATT_FLOPS // 2)]
    shaky = rounds_of(lambda t, tags: att_rec(t, tags=tags), [0.05, 0.05, 0.05], spread=0.4)
    assert headline.headline(sweep + shaky) is None  # not the shaky figure, and no other shape stands in
    rec, status = headline.figure(sweep + shaky)
    assert status == "unsteady" and rec in shaky
    row = summary.best_rows(doc_of(sweep + shaky))[0]
    assert row["headline"] == "unsteady" and len(row["confirm_rounds"]) == 3  # shown, marked unsteady
    warns = suite.confirmation_warnings(sweep + shaky)
    assert [w.code for w in warns] == ["unstable_headline"] and "attention/sdpa_bwd/bf16" in warns[0].case


def test_quartile_spread_ignores_one_lost_time_slice_but_not_a_bimodal_case():
    one_hiccup = [0.052, 0.056, 0.056, 0.0706, 0.056]  # plain CoV 11%: one call lost a 4 ms slice
    assert headline.spread(one_hiccup) < headline.MAX_HEADLINE_COV
    bimodal = [0.5, 1.5, 0.5, 1.5, 0.5, 1.5]
    assert headline.spread(bimodal) > headline.MAX_HEADLINE_COV
    # the attention bwd flip: the full case (2x the rate of the causal one) stays the candidate
    full = att_rec(one_hiccup)
    causal = att_rec([0.052] * 5, causal=True, flops=ATT_FLOPS // 2)
    assert headline.candidate([full, causal], "bf16", "attention", op="sdpa_bwd") is full


# --------------------------------------------------------------------------- the suite's confirmation


def test_attention_candidates_are_confirmed_in_alternating_rounds_with_their_backend():
    recs = [att_rec([0.050] * 5), att_rec([0.030] * 5, causal=True, flops=ATT_FLOPS // 2),
            att_rec([0.020] * 5, direction="fwd"), att_rec([0.005, 0.015] * 3, direction="fwd", causal=True)]
    out = RunOutcome(records=list(recs))
    order = []

    def fake_run(cases, policy=None):
        (case,) = cases
        order.append((case.op, case.params["causal"], round_in(case.tags)))
        assert case.backend == "FLASH_ATTENTION" and case.inner.pinned_backend == "FLASH_ATTENTION"
        assert any(t.startswith(SDPA_TAG_PREFIX + "MATH") for t in case.tags)  # the probes are kept
        base = 0.045 if case.op == "sdpa_bwd" else 0.018
        out.records.append(Record("attention", case.op, "bf16", dict(case.params), (base,) * 12, "TFLOP/s",
                                  flop_count=ATT_FLOPS, backend=case.backend, tags=tuple(case.tags)))
        return True

    ok, seconds = suite._confirm(out, out.records, "attention", suite.QUICK, fake_run)
    assert ok and set(seconds) == {("attention", op, "bf16", "sweep") for op in ("sdpa_bwd", "sdpa_fwd")}
    # bwd: the full case (faster than causal); fwd: the steady one and, being faster in its short
    # run, the bimodal one too (both confirmed; the faster steady confirmation is the figure); alternating
    assert order == [(op, causal, k) for k in (1, 2, 3)
                     for op, causal in (("sdpa_bwd", False), ("sdpa_fwd", False), ("sdpa_fwd", True))]
    rows = {r["op"]: r for r in summary.best_rows(doc_of(out.records))}
    assert rows["sdpa_bwd"]["headline"] == "confirmed"
    assert rows["sdpa_bwd"]["achieved"] == pytest.approx(ATT_FLOPS / 0.045 / 1e12)  # the confirmation, not 0.050


def test_a_case_skipped_in_the_first_round_is_not_retried():
    out = RunOutcome(records=[stream_rec("copy", [0.02] * 5), stream_rec("mul", [0.02] * 5)])
    calls = []

    def fake_run(cases, policy=None):
        calls.append(cases[0].op)
        if cases[0].op == "copy":
            out.records.append(stream_rec("copy", (0.02,) * 9, cases[0].tags))
        return True  # mul: skipped (e.g. out of memory), no record

    assert suite._confirm(out, list(out.records), "stream", suite.QUICK, fake_run)[0]
    assert calls == ["copy", "mul", "copy", "copy"]


def test_interrupt_stops_the_rounds_and_releases_what_was_set_up():
    released = []

    class Fake(FakeCase):
        def teardown(self):
            released.append(self.name)

    out = RunOutcome()
    cases = [Fake("a"), Fake("b")]
    calls = []

    def fake_run(batch, policy=None):
        calls.append(batch[0].inner.name)
        batch[0].setup(None, 1, 0)
        out.records.append(stream_rec("copy", (0.02,) * 9, batch[0].tags))
        return len(calls) < 3

    assert suite._rounds(out, cases, suite.QUICK, fake_run)[0] is False
    assert calls == ["a", "b", "a"] and released == ["a", "b"]


@dataclass
class FakeCase(Case):
    name: str = "x"
    benchmark = "stream"
    op = "copy"
    dtype = "fp64"

    def __post_init__(self):
        self.params = {"n_elements": 8}
        self.setups = self.verifies = 0
        self.ran: list[int] = []

    def work(self):
        return Work(bytes_moved=64)

    def bytes_per_set(self):
        return 64

    def setup(self, device, n_sets, seed):
        self.setups += 1

    def run(self, i):
        self.ran.append(i)

    def verify(self):
        self.verifies += 1
        return Verification(True, 0.0, 1e-6)


def test_a_held_case_is_set_up_and_checked_once_and_freed_at_release():
    inner = FakeCase("h")
    torn = []
    inner.teardown = lambda: torn.append(1)  # type: ignore[method-assign]
    held = suite.HeldCase(inner)
    for k in (1, 2, 3):
        held.round_tags = (headline.round_tag(k, 3),)
        held.setup(None, 2, 0)
        assert held.verify().ok
        held.run(5)
        held.teardown()  # the runner's teardown: deferred
        assert held.tags == (headline.round_tag(k, 3),)
    assert (inner.setups, inner.verifies, inner.ran, torn) == (1, 1, [1, 1, 1], [])
    held.release()
    assert torn == [1]


def test_stream_kernels_share_one_set_of_arrays_in_the_confirmation():
    pool: dict = {}
    cases = stream.cases(StandInDevice(llc_bytes=2**15), True, ("fp64",), pool=pool)
    for c in cases:
        c.setup(StandInDevice(llc_bytes=2**15), 1, seed=3)
    assert {k for k in pool if not k.startswith("_")} == {"a", "b", "c"}
    copy, mul = cases[0], cases[1]
    assert copy._sets[0]["c"] is mul._sets[0]["c"] is pool["c"]
    for c in cases:  # each kernel still checks its own output against the inputs it was given
        assert c.verify().ok, c.op


def test_real_stream_rounds_through_the_runner():
    dev = StandInDevice(llc_bytes=2**15)
    out = RunOutcome()
    tiny = TimingPolicy(warmup_s=0.0, budget_s=0.005, min_samples=3, max_samples=5)

    def run(cases, policy=None):
        out.extend(run_cases(cases, dev, policy or tiny, telemetry=False))
        return True

    pool: dict = {}
    tags = (headline.HEADLINE_TAG, headline.CONFIRM_TAG)
    assert suite._rounds(out, stream.cases(dev, True, ("fp64",), tags, pool), tiny, run)[0]
    assert len(out.records) == 5 * headline.CONFIRM_ROUNDS
    assert [headline.round_of(r) for r in out.records[:6]] == [1, 1, 1, 1, 1, 2]
    assert all(r.verified and headline.HEADLINE_TAG in r.tags for r in out.records)
    rows = summary.best_rows(doc_of(out.records))
    assert sorted(r["op"] for r in rows) == sorted(stream.K.OPS)
    assert all(r["headline"] in ("confirmed", "unsteady") and r["cases"] == 1 for r in rows)  # one case, 3 rounds


def test_transfer_and_llm_candidates_are_rebuilt_as_confirmation_cases():
    xfer = Record("transfer", "h2d", "bytes", {"bytes": 2**26, "pinned": True, "counted": 1}, (0.002,) * 5, "GB/s",
                  bytes_moved=2**26, backend="torch", tags=("rotation_sets:4",))
    (case,) = suite.confirmation_cases(xfer)
    assert (case.benchmark, case.op, case.params["bytes"]) == ("transfer", "h2d", 2**26)
    assert set(case.tags) == {headline.HEADLINE_TAG, headline.CONFIRM_TAG}
    llm = Record("gemm", "matmul", "bf16", {"m": 256, "n": 28672, "k": 4096}, (0.3,) * 5, "TFLOP/s",
                 flop_count=2 * 256 * 28672 * 4096, backend="torch",
                 tags=("llm", "llm:mistral-7b:mlp_up", "tokens:256", "rotation_sets:1"))
    (case,) = suite.confirmation_cases(llm)
    assert case.tags == ("llm", "llm:mistral-7b:mlp_up", "tokens:256", headline.HEADLINE_TAG, headline.CONFIRM_TAG)
    assert headline.candidates([llm], "gemm") == [llm] and headline.group_key(llm)[3] == "llm"


def test_two_candidates_the_faster_steady_confirmation_is_the_figure():
    """The sweep's fastest case was judged unsteady in its short run, so the steady slower case and
    it are both confirmed; the headline is the faster steady confirmation, whichever was the candidate."""
    steady_slow = att_rec([0.040] * 5, causal=True, flops=ATT_FLOPS // 2, direction="fwd")
    noisy_fast = att_rec([0.010, 0.030] * 3, direction="fwd")
    assert headline.candidates([steady_slow, noisy_fast], "attention") == [steady_slow, noisy_fast]
    conf = [replace(r, times_s=(t,) * 12, tags=tuple(r.tags) + (headline.HEADLINE_TAG, headline.CONFIRM_TAG,
                                                               headline.round_tag(k, 3)))
            for k in (1, 2, 3) for r, t in ((steady_slow, 0.040), (noisy_fast, 0.020))]
    best = headline.headline([steady_slow, noisy_fast] + conf)
    assert best.params["causal"] is False and best.median_s == pytest.approx(0.020)
    assert [r.params["causal"] for r in headline.rounds([steady_slow, noisy_fast] + conf)] == [False] * 3
