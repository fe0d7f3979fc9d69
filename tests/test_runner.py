import pytest

from recoque.bench.base import Case, Unsupported, Verification, Work
from recoque.bench.devices import detect
from recoque.bench.gemm import GemmCase
from recoque.bench.runner import run_cases
from recoque.bench.timing import TimingPolicy

FAST = TimingPolicy(warmup_s=0.0, budget_s=0.0, min_samples=3, max_samples=3)


class Fake(Case):
    benchmark, op, dtype = "gemm", "matmul", "fp32"

    def __init__(self, setup_error=None, ok=True, interrupt=False):
        self.params = {"m": 4, "n": 4, "k": 4}
        self.setup_error, self.ok, self.interrupt = setup_error, ok, interrupt

    def work(self):
        return Work(flop_count=128)

    def bytes_per_set(self):
        return 1024

    def setup(self, device, n_sets, seed):
        if self.setup_error:
            raise self.setup_error

    def run(self, i):
        if self.interrupt:
            raise KeyboardInterrupt

    def verify(self):
        return Verification(self.ok, 0.0 if self.ok else 3.0, 1e-5, (1, 2), 3.0, 0.0, "C")


@pytest.fixture(scope="module")
def cpu():
    return detect("cpu")


def test_skips_keep_the_sweep_going(cpu, capsys):
    out = run_cases([Fake(MemoryError()), Fake(Unsupported("no fp8")), Fake(ok=False), Fake()], cpu, FAST)
    reasons = [s.reason for s in out.skipped]
    assert reasons[0] == "out of memory at this size"
    assert reasons[1] == "unsupported: no fp8"
    assert reasons[2].startswith("verification failed")
    assert len(out.records) == 1 and out.records[0].verified
    assert "worst element at [1, 2]: got 3.0" in capsys.readouterr().err


def test_real_size_that_cannot_fit_is_skipped(cpu):
    out = run_cases([GemmCase(10**6, 10**6, 10**6, "fp32")], cpu, FAST)
    assert out.skipped and out.skipped[0].reason == "out of memory at this size"


def test_ctrl_c_keeps_what_was_measured(cpu):
    out = run_cases([Fake(), Fake(interrupt=True), Fake()], cpu, FAST)
    assert out.interrupted and len(out.records) == 1


def test_record_carries_peak_and_samples(cpu):
    out = run_cases([GemmCase(128, 128, 128, "fp32")], cpu, FAST, telemetry=False)
    rec = out.records[0]
    assert len(rec.times_s) == 3 and rec.flop_count == 2 * 128**3
    assert rec.peak and rec.peak_source and rec.verify["ok"]
