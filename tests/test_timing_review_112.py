"""A review of the timing helper, the noise warnings and the power summary (stop 112)."""
import threading
import time
import types

import pytest

from recoque.bench import noise, power as P, telemetry as T, timing
from recoque.bench.timing import TimingPolicy, measure

CPU = types.SimpleNamespace(kind="cpu", torch_device="cpu", llc_bytes=None)


def test_one_lost_time_slice_is_not_high_spread_but_a_broad_spread_is():
    steady = [1e-3 * (1 + 0.002 * (i % 3)) for i in range(40)]
    assert noise.check_samples("c", steady + [4e-3], "perf_counter_ns") == []  # the median has not moved
    broad = [1e-3 * (1 + 0.1 * (i % 5)) for i in range(40)]
    assert [w.code for w in noise.check_samples("c", broad, "perf_counter_ns")] == ["high_cov"]


def test_a_run_that_speeds_up_is_flagged_apart_from_one_that_slows_down():
    up = noise.check_samples("c", [1.2] * 8 + [1.0] * 8, "device_event")
    down = noise.check_samples("c", [1.0] * 8 + [1.2] * 8, "device_event")
    assert "warming" in {w.code for w in up} and "drift" not in {w.code for w in up}
    assert "drift" in {w.code for w in down} and "warming" not in {w.code for w in down}
    worst = noise.group_lines([noise._w("warming", "a", 0.9), noise._w("warming", "b", 0.7)])
    assert "worst b" in worst[0]  # the biggest speed-up is the worst


def test_device_events_under_10_us_warn_and_above_do_not():
    assert {w.code for w in noise.check_samples("c", [2e-6] * 10, "device_event")} == {"timer_resolution"}
    assert noise.check_samples("c", [15e-6] * 10, "device_event") == []  # a host timer would warn here
    assert {w.code for w in noise.check_samples("c", [15e-6] * 10, "perf_counter_ns")} == {"timer_resolution"}


def test_a_slow_first_call_neither_shortens_the_warm_up_nor_the_sample_count(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(timing.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(timing.time, "perf_counter_ns", lambda: int(clock[0] * 1e9))
    calls = []

    def run(i):
        clock[0] += 0.3 if not calls else 1e-3  # a cold first call, then 1 ms
        calls.append(i)

    policy = TimingPolicy(warmup_s=0.05, budget_s=0.25, min_samples=5, max_samples=40)
    t = measure(run, CPU, policy)
    assert t.warmup_calls >= 50  # warmup_s of warm calls after the first: 1 + 50
    assert len(t.times_s) == 40 and t.times_s[0] == pytest.approx(1e-3)


def test_the_power_average_is_over_the_span_its_readings_cover():
    # a constant 100 W; the last reading has no counter, the first no power figure
    counted = [{"t_s": 0.0, "energy_j": 0.0}, {"t_s": 1.0, "energy_j": 100.0}, {"t_s": 2.0}]
    s = P.energy_summary(counted)
    assert s["avg_power_w"] == pytest.approx(100.0) and s["energy_j"] == pytest.approx(100.0)
    sampled = [{"t_s": 0.0, "power_w": 100.0}, {"t_s": 1.0, "power_w": 100.0}, {"t_s": 2.0, "clock_mhz": 1.0}]
    assert P.energy_summary(sampled)["avg_power_w"] == pytest.approx(100.0)


def test_too_few_clock_readings_leave_throttling_unknown_not_false():
    assert P.throttled([2100.0, 1500.0, 1400.0]) is None
    assert P.throttled([2100.0] * 8) is False and P.throttled([2100.0] * 4 + [1800.0] * 4) is True


def test_a_reading_begun_during_the_warm_up_is_left_out_of_the_timed_window(monkeypatch):
    """The sampler thread stamps a reading when it starts and appends it when it ends: a slow reader
    (nvidia-smi) begun in the warm-up lands after mark() and carried the warm-up's power."""
    started, release = threading.Event(), threading.Event()
    values = iter([{"power_w": 50.0}, {"power_w": 900.0}] + [{"power_w": 300.0}] * 100)

    def reader():
        got = next(values)
        if got["power_w"] == 900.0:  # the sampler thread's first reading: held until mark() has run
            started.set()
            release.wait(5)
        return got

    monkeypatch.setattr(T, "make_reader", lambda device: (reader, "fake", ""))
    with T.Sampler(types.SimpleNamespace(kind="cpu", torch_device="cpu"), interval_s=0.001) as s:
        assert started.wait(5)
        s.mark()
        release.set()
        time.sleep(0.02)
    got = s.summary()
    assert got["power_w"]["max"] == 300.0  # neither the warm-up's 900 W nor the start's 50 W


def test_an_unknown_cpu_cache_still_rotates_inputs_past_the_assumed_one():
    assert timing.llc_or_assumed(CPU) == timing.FALLBACK_LLC_BYTES["cpu"]
    gpu = types.SimpleNamespace(kind="rocm", llc_bytes=None)
    assert timing.llc_or_assumed(gpu) == 256 * 2**20
    assert timing.rotation_sets(3 * 2**20, timing.llc_or_assumed(CPU)) == 43  # ceil(128 / 3), not 1
