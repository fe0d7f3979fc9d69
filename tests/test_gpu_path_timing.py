"""Timing on GPU N must launch, record events and synchronise on GPU N (fake torch.cuda, CPU only)."""
import types

import pytest

torch = pytest.importorskip("torch")

from recoque.bench.timing import TimingPolicy, device_index, measure  # noqa: E402


class FakeCuda:
    """The parts of torch.cuda the timing helper uses, remembering which device each call hit."""

    def __init__(self):
        self.current = 0
        self.recorded_on: list[int] = []
        self.synced: list[int] = []
        self.runs_on: list[int] = []
        fake = self

        class Event:
            def __init__(self, enable_timing=False):
                self.t = None

            def record(self, stream=None):
                fake.recorded_on.append(stream.device_index if stream is not None else fake.current)
                self.t = len(fake.recorded_on)

            def elapsed_time(self, other):
                return float(other.t - self.t)  # ms

        self.Event = Event

    def device(self, index):
        fake = self

        class Ctx:
            def __enter__(self):
                self.prev, fake.current = fake.current, index

            def __exit__(self, *exc):
                fake.current = self.prev

        return Ctx()

    def current_stream(self, index=None):
        return types.SimpleNamespace(device_index=self.current if index is None else index)

    def synchronize(self, index=None):
        self.synced.append(self.current if index is None else index)


@pytest.fixture
def fake_cuda(monkeypatch):
    fake = FakeCuda()
    for name in ("Event", "device", "current_stream", "synchronize"):
        monkeypatch.setattr(torch.cuda, name, getattr(fake, name))
    return fake


def test_device_index_parses_the_torch_device():
    assert device_index(types.SimpleNamespace(torch_device="cuda:3")) == 3
    assert device_index(types.SimpleNamespace(torch_device="cuda")) == 0


def test_timing_on_device_n_records_and_runs_on_device_n(fake_cuda):
    gpu3 = types.SimpleNamespace(kind="rocm", torch_device="cuda:3")
    policy = TimingPolicy(warmup_s=0.0, budget_s=0.0, min_samples=4, max_samples=4)
    t = measure(lambda i: fake_cuda.runs_on.append(fake_cuda.current), gpu3, policy)
    assert t.timer == "device_event" and len(t.times_s) == 4
    assert fake_cuda.recorded_on and set(fake_cuda.recorded_on) == {3}  # 8 events, all on GPU 3's stream
    assert len(fake_cuda.recorded_on) == 8
    assert set(fake_cuda.runs_on) == {3}  # every launch (warm-up too) with GPU 3 current
    assert set(fake_cuda.synced) == {3}
    assert fake_cuda.current == 0  # the previous device is restored afterwards
    assert all(x == pytest.approx(1e-3) for x in t.times_s)  # one fake ms between start and end
