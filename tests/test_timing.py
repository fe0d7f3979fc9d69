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
    assert "timer_resolution" in {w.code for w in check_samples("c", [5e-6] * 10, "thread_time_ns")}  # a host timer too
    assert check_samples("c", [1.0] * 10, "device_event") == []
    assert check_peak("c", 1.2)[0].code == "above_peak" and check_peak("c", 0.9) == []
    assert check_rotation("c", 10, 100)[0].code == "small_rotation"
    for w in noisy + drift:
        assert w.hint == HINTS[w.code] and w.hint


def test_a_gpu_rotates_at_least_512_mib_whatever_cache_it_reports():
    """A GPU the catalog does not list reports torch's L2 only (4 MiB on MI300X, whose 256 MiB
    Infinity Cache sits behind it): the floor still evicts that."""
    from recoque.bench.timing import GPU_MIN_ROTATION_BYTES, QUICK, rotation_floor_bytes

    mib = 2**20
    floor = rotation_floor_bytes("rocm", QUICK)
    assert floor == GPU_MIN_ROTATION_BYTES == 512 * mib and rotation_floor_bytes("cuda", QUICK) == floor
    assert rotation_sets(24 * mib, 4 * mib, floor) * 24 * mib >= 512 * mib  # 22 sets, not 1
    assert rotation_floor_bytes("cpu", QUICK) == QUICK.min_rotation_bytes == 0


def test_the_runner_applies_the_gpu_floor_to_gemm_but_not_to_transfers(monkeypatch):
    from recoque.bench import runner
    from recoque.bench.timing import QUICK

    seen = {}

    def fake_rotation_sets(bytes_per_set, llc, floor, budget=None):
        seen["floor"] = floor
        raise RuntimeError("stop here")
    monkeypatch.setattr(runner, "rotation_sets", fake_rotation_sets)

    class Dev:
        kind, llc_bytes, memory_bytes = "rocm", 4 * 2**20, 192 * 2**30

    class Fake:
        benchmark = "gemm"

        def label(self):
            return "fake"

        def bytes_per_set(self):
            return 2**20
    monkeypatch.setattr(runner, "memory_budget_bytes", lambda device: 2**34)
    for bench, want in (("gemm", 512 * 2**20), ("transfer", 0)):
        Fake.benchmark = bench
        try:
            runner._run_one(Fake(), Dev(), QUICK, 0, False)
        except RuntimeError:
            pass
        assert seen["floor"] == want
