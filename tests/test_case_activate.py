"""A case's process-wide settings hold while it is timed, in every confirmation round.

Found on an H200 (seeds/measured/h200.json, first run): the tf32 GEMM headline was measured at
347 TFLOP/s in round 1 and 51 (fp32 speed) in rounds 2 and 3, because the fp32 and bf16 cases held
beside it were set up after it and switched tf32 off. The runner now calls `activate()` before
each timed measurement."""
from __future__ import annotations

from dataclasses import dataclass

from recoque.bench import gemm, headline, suite
from recoque.bench.base import Case, Verification, Work
from recoque.bench.runner import RunOutcome, run_cases
from recoque.bench.timing import TimingPolicy
from recoque.kernels import gemm as KG

TINY = TimingPolicy(warmup_s=0.0, budget_s=0.002, min_samples=3, max_samples=4)
SWITCH = {"mode": None}  # stands for a process-wide switch such as torch's allow_tf32


@dataclass(frozen=True)
class Dev:
    kind: str = "cpu"
    torch_device: str = "cpu"
    llc_bytes: int | None = 2**15
    memory_bytes: int | None = 2**30

    def peak(self, dtype):
        return None, "unknown"


class Switching(Case):
    """Sets the switch to its own mode at setup, as GemmCase does, and records the mode it ran under."""

    benchmark, op, dtype = "gemm", "matmul", "fp32"

    def __init__(self, mode: str):
        self.mode, self.params, self.seen = mode, {"m": 1, "n": 1, "k": 1, "mode": mode}, []

    def work(self):
        return Work(flop_count=2)

    def bytes_per_set(self):
        return 8

    def setup(self, device, n_sets, seed):
        SWITCH["mode"] = self.mode

    def activate(self):
        SWITCH["mode"] = self.mode

    def run(self, i):
        self.seen.append(SWITCH["mode"])

    def verify(self):
        return Verification(True, 0.0, 1e-6)


def test_every_round_runs_each_case_under_its_own_setting():
    dev, out = Dev(), RunOutcome()

    def run(cases, policy=None):
        out.extend(run_cases(cases, dev, policy or TINY, telemetry=False))
        return True

    cases = [Switching("tf32"), Switching("fp32"), Switching("bf16")]
    assert suite._rounds(out, cases, TINY, run)[0]
    assert len(out.records) == 3 * headline.CONFIRM_ROUNDS
    for c in cases:
        assert c.seen and set(c.seen) == {c.mode}, (c.mode, set(c.seen))


def test_a_held_case_passes_activate_to_the_case_it_holds():
    inner = Switching("tf32")
    held = suite.HeldCase(inner)
    held.setup(Dev(), 1, 0)
    SWITCH["mode"] = "fp32"  # another case set up in between
    held.activate()
    assert SWITCH["mode"] == "tf32"


def test_gemm_activate_sets_tf32_for_its_own_dtype_on_a_gpu(monkeypatch):
    calls = []
    monkeypatch.setattr(KG, "set_tf32", lambda on: calls.append(on) or {})
    for dtype, want in (("tf32", True), ("fp32", False), ("bf16", False)):
        case = gemm.GemmCase(64, 64, 64, dtype)
        case._device = Dev(kind="cuda", torch_device="cuda:0")
        case.activate()
        assert calls[-1] is want
    cpu = gemm.GemmCase(64, 64, 64, "fp32")
    cpu._device = Dev()
    n = len(calls)
    cpu.activate()  # no tensor cores to switch on the CPU
    assert len(calls) == n
