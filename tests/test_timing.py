import types

from recoque.bench.noise import HINTS, check_peak, check_rotation, check_samples
from recoque.bench.timing import TimingPolicy, measure, rotation_sets

CPU = types.SimpleNamespace(kind="cpu", torch_device="cpu")


def test_rotation_covers_twice_the_llc():
    mib = 2**20
    assert rotation_sets(6 * mib, 32 * mib) == 11  # ceil(64 / 6)
    assert rotation_sets(400 * mib, 32 * mib) == 1
    # MI300-class: 256 MiB Infinity Cache -> at least 512 MiB in rotation
    assert rotation_sets(64 * mib, 256 * mib) * 64 * mib >= 512 * mib
    assert rotation_sets(64 * mib, 256 * mib, max_total_bytes=128 * mib) == 2  # capped by memory


def test_measure_rotates_sets_and_keeps_every_sample():
    seen = []
    policy = TimingPolicy(warmup_s=0.0, budget_s=0.0, min_samples=7, max_samples=7)
    t = measure(lambda i: seen.append(i), CPU, policy, n_sets=3)
    assert len(t.times_s) == 7 and all(x >= 0 for x in t.times_s)
    assert t.timer == "perf_counter_ns"
    assert set(seen) == {0, 1, 2}  # every set used
    assert len(seen) == t.warmup_calls + 7


def test_sample_count_follows_the_budget():
    import time

    policy = TimingPolicy(warmup_s=0.0, budget_s=0.05, min_samples=3, max_samples=1000)
    t = measure(lambda i: time.sleep(0.01), CPU, policy)
    assert 3 <= len(t.times_s) <= 10


def test_noise_warnings_are_the_fixed_set_with_hints():
    noisy = check_samples("c", [1.0, 2.0, 1.0, 2.0, 1.0, 2.0], "perf_counter_ns")
    assert {w.code for w in noisy} == {"high_cov"}
    drift = check_samples("c", [1.0] * 8 + [1.2] * 8, "device_event")
    assert "drift" in {w.code for w in drift}
    assert {w.code for w in check_samples("c", [1e-6] * 3, "perf_counter_ns")} == {"few_samples", "timer_resolution"}
    assert check_samples("c", [1.0] * 10, "device_event") == []
    assert check_peak("c", 1.2)[0].code == "above_peak" and check_peak("c", 0.9) == []
    assert check_rotation("c", 10, 100)[0].code == "small_rotation"
    for w in noisy + drift:
        assert w.hint == HINTS[w.code] and w.hint
