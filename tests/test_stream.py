"""STREAM: byte counts, kernels against the float64 reference, verification, sizing, one timed run."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from recoque.bench import stream as S
from recoque.bench.timing import TimingPolicy, measure
from recoque.kernels import stream as K
from recoque.kernels import stream_numba as NB

SMALL = 10_000  # elements: tests stay small; the real sizes are for the benchmark command


@dataclass(frozen=True)
class StandInDevice:
    """The attributes of devices.Device that the stream benchmark reads."""

    kind: str = "cpu"
    torch_device: str = "cpu"
    name: str = "stand-in CPU"
    llc_bytes: int | None = 32 * 2**20
    memory_bytes: int | None = 16 * 2**30
    compute_units: int | None = 2

    def peak(self, dtype):
        return None, "unknown"

    def peak_bandwidth(self):
        return None, "unknown"


def _random(n, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(n).astype(dtype) for _ in range(3))


@pytest.mark.parametrize("op, arrays", [("copy", 2), ("mul", 2), ("add", 3), ("triad", 3), ("dot", 2)])
@pytest.mark.parametrize("elem_bytes", [8, 4])
def test_bytes_moved_is_babelstream_weight_times_array_bytes(op, arrays, elem_bytes):
    assert K.bytes_moved(op, 1000, elem_bytes) == arrays * 1000 * elem_bytes
    case = S.StreamCase(op, "fp64" if elem_bytes == 8 else "fp32", 1000)
    assert case.work().bytes_moved == arrays * 1000 * elem_bytes
    assert case.work().unit == "GB/s"


def test_unknown_kernel_is_rejected():
    with pytest.raises(ValueError, match="nstream"):
        K.bytes_moved("nstream", 10, 8)
    with pytest.raises(ValueError):
        S.StreamCase("scale")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [SMALL, 1, 1023, 4097])
def test_numba_kernels_match_reference(dtype, n):
    a, b, c = _random(n, dtype)
    s = dtype(K.SCALAR)
    NB.copy(a, c)
    np.testing.assert_array_equal(c, K.reference("copy", {"a": a}))
    NB.mul(c, b, s)
    np.testing.assert_array_equal(b, (s * c).astype(dtype))  # same rounding as the dtype's multiply
    assert np.allclose(b, K.reference("mul", {"c": c}), rtol=1e-6)
    NB.add(a, b, c)
    np.testing.assert_array_equal(c, a + b)
    NB.triad(a, b, c, s)
    np.testing.assert_array_equal(a, b + s * c)
    got = NB.dot(a, b)
    ref, scale = K.reference("dot", {"a": a, "b": b}), K.error_scale("dot", {"a": a, "b": b})
    assert abs(got - ref) / scale < (1e-12 if dtype == np.float64 else 1e-6)


def test_torch_kernels_match_reference():
    torch = pytest.importorskip("torch")
    from recoque.kernels import stream_torch as T

    a, b, c = (torch.from_numpy(x) for x in _random(SMALL))
    T.copy(a, c)
    assert torch.equal(c, a)
    T.mul(c, b, K.SCALAR)
    np.testing.assert_allclose(b.numpy(), K.reference("mul", {"c": c.numpy()}), rtol=1e-15)
    T.add(a, b, c)
    np.testing.assert_allclose(c.numpy(), K.reference("add", {"a": a.numpy(), "b": b.numpy()}), rtol=1e-15)
    T.triad(a, b, c, K.SCALAR)
    np.testing.assert_allclose(a.numpy(), K.reference("triad", {"b": b.numpy(), "c": c.numpy()}),
                               rtol=1e-14, atol=1e-15)
    got = float(T.dot(a, b))
    assert got == pytest.approx(K.reference("dot", {"a": a.numpy(), "b": b.numpy()}), rel=1e-12)


@pytest.mark.parametrize("op", K.OPS)
@pytest.mark.parametrize("dtype", ["fp64", "fp32"])
def test_case_verifies_on_random_data(op, dtype):
    case = S.StreamCase(op, dtype, SMALL)
    case.setup(StandInDevice(), n_sets=1, seed=7)
    assert case.backend == "numba"
    for name in K.READS[op]:  # inputs are random normal, not constants
        x = case._sets[0][name]
        assert x.dtype == K.NUMPY_DTYPE[dtype] and 0.8 < x.std() < 1.2 and len(np.unique(x)) > SMALL // 2
    v = case.verify()
    assert v.ok, v.describe()
    assert v.max_error <= v.tolerance
    case.teardown()
    assert case._sets is None


def test_verify_follows_state_across_repeated_calls():
    """The reference is taken from the arrays as they are right before the verified call."""
    case = S.StreamCase("triad", "fp64", SMALL)
    case.setup(StandInDevice(), 1, seed=3)
    case._sets[0]["b"] *= 3.0  # change an input after setup: a stale reference would now fail
    for i in range(3):
        case.run(i)
    assert case.verify().ok


def test_broken_kernel_is_caught_with_its_worst_element(monkeypatch):
    bad = 1234

    def broken_triad(a, b, c, s):
        a[:] = b + s * c
        a[bad] += 1.0

    monkeypatch.setattr(NB, "triad", broken_triad)
    case = S.StreamCase("triad", "fp64", SMALL)
    case.setup(StandInDevice(), 1, seed=1)
    v = case.verify()
    assert not v.ok
    assert v.worst_index == (bad,)
    assert v.max_error > 1e-3 and str(bad) in v.describe()


def test_kernel_that_skips_elements_is_caught(monkeypatch):
    monkeypatch.setattr(NB, "copy", lambda a, c: c.__setitem__(slice(0, -1), a[:-1]))
    case = S.StreamCase("copy", "fp64", SMALL)
    case.setup(StandInDevice(), 1, seed=1)
    v = case.verify()
    assert not v.ok and v.worst_index == (SMALL - 1,)


def test_broken_dot_is_caught(monkeypatch):
    monkeypatch.setattr(NB, "dot", lambda a, b: float(np.dot(a[1:], b[1:])))  # drops one term
    case = S.StreamCase("dot", "fp64", SMALL)
    case.setup(StandInDevice(), 1, seed=2)
    assert not case.verify().ok


def test_a_dot_that_skips_a_fraction_of_the_array_fails_the_self_dot(monkeypatch):
    """With random signs a skipped 0.4% moves sum(a*b) by ~sqrt(0.004) of sqrt(n) against a scale of
    ~0.64 n: under fp32's 1e-5 from n ~ 1e8 elements on. On (a, a) it moves the sum by 0.4%."""
    case = S.StreamCase("dot", "fp32", SMALL)
    case.setup(StandInDevice(), 1, seed=3)
    assert case.verify().ok and case.verify().what == "dot: sum(a*a)"
    real = NB.dot
    monkeypatch.setattr(NB, "dot", lambda a, b: real(a[: len(a) - len(a) // 250], b[: len(b) - len(b) // 250]))
    a = case._sets[0]["a"]
    v = case._check_self_dot(a, float(np.dot(a.astype(np.float64), a)))
    assert not v.ok and v.what == "dot: sum(a*a)" and 0.002 < v.max_error < 0.01  # the skipped squares


def test_sizes_follow_stream_and_babelstream_rules():
    cpu = StandInDevice()
    quick, full = S.cases(cpu, quick=True), S.cases(cpu, quick=False)
    assert [c.op for c in quick] == list(K.OPS)
    for c in quick:
        assert c.params["n_elements"] * 8 >= 4 * cpu.llc_bytes
        assert c.bytes_per_set() >= 8 * cpu.llc_bytes  # so the harness uses a single set
    assert full[0].params["n_elements"] >= 2 * quick[0].params["n_elements"]
    gpu_small_llc = StandInDevice(kind="cuda", torch_device="cuda:0", llc_bytes=50 * 2**20, memory_bytes=80 * 2**30)
    assert S.cases(gpu_small_llc, quick=True)[0].params["n_elements"] >= 2**25
    mi300 = StandInDevice(kind="rocm", torch_device="cuda:0", llc_bytes=256 * 2**20, memory_bytes=192 * 2**30)
    for quick_mode in (True, False):
        assert S.cases(mi300, quick_mode)[0].params["n_elements"] * 8 >= 2**30
    both = S.cases(cpu, True, dtypes=("fp64", "fp32", "bf16"))
    assert {c.dtype for c in both} == {"fp64", "fp32"}
    fp32 = [c for c in both if c.dtype == "fp32"][0]
    assert fp32.params == {"n_elements": fp32.params["n_elements"], "elem_bytes": 4}
    assert S.skip_reason(cpu) is None


def test_harness_uses_one_set_for_stream_sizes():
    from recoque.bench.timing import rotation_sets

    dev = StandInDevice()
    for c in S.cases(dev, quick=True):
        assert rotation_sets(c.bytes_per_set(), dev.llc_bytes) == 1
    mi300 = StandInDevice(kind="rocm", torch_device="cuda:0", llc_bytes=256 * 2**20, memory_bytes=192 * 2**30)
    for c in S.cases(mi300, quick=True):  # even with the 512 MiB rotation floor of MI300-class parts
        assert rotation_sets(c.bytes_per_set(), mi300.llc_bytes, 512 * 2**20) == 1


def test_setup_allocates_one_set_even_if_asked_for_more():
    case = S.StreamCase("add", "fp64", SMALL)
    case.setup(StandInDevice(), n_sets=3, seed=0)
    assert len(case._sets) == 1
    case.run(2)  # any set index maps onto the single set
    assert case.verify().ok


def test_end_to_end_through_the_timing_helper():
    case = S.StreamCase("triad", "fp64", 200_000)
    dev = StandInDevice()
    case.setup(dev, 1, seed=0)
    assert case.verify().ok
    policy = TimingPolicy(warmup_s=0.0, budget_s=0.01, min_samples=5, max_samples=10)
    timing = measure(case.run, dev, policy, n_sets=1)
    assert timing.timer == "perf_counter_ns"
    assert 5 <= len(timing.times_s) <= 10 and all(t > 0 for t in timing.times_s)
    gbs = case.work().bytes_moved / min(timing.times_s) / 1e9
    assert 0.1 < gbs < 5000  # a plausible memory bandwidth, not a unit slip


def test_kernels_are_cached_on_disk():
    """cache=True only helps if numba can write the cache (dynamic globals would silently stop it)."""
    import os

    import numba

    a, b, c = _random(2048)
    NB.triad(a, b, c, np.float64(K.SCALAR))
    assert numba.config.CACHE_DIR == os.environ["NUMBA_CACHE_DIR"]
    names = [f for _, _, files in os.walk(numba.config.CACHE_DIR) for f in files]
    for kernel in ("_copy", "_mul", "_add", "_triad", "dot"):
        assert any(f.startswith(f"stream_numba.{kernel}-") and f.endswith(".nbi") for f in names), kernel


def test_cpu_write_kernels_are_tagged_with_streaming_stores():
    for op in K.OPS:
        case = S.StreamCase(op, "fp64", 4096)
        case.setup(StandInDevice(), 1, seed=0)
        tagged = "streaming-stores" in case.tags
        assert tagged == (NB.STREAMING_STORES and op != "dot")


TORCH_PATH = StandInDevice(kind="cuda", torch_device="cpu")  # the GPU code path, run on CPU tensors


@pytest.mark.parametrize("op", K.OPS)
def test_torch_path_verifies(op):
    case = S.StreamCase(op, "fp32", SMALL)
    case.setup(TORCH_PATH, 1, seed=4)
    assert case.backend == "torch"
    v = case.verify()
    assert v.ok, v.describe()


def test_torch_path_catches_a_broken_kernel(monkeypatch):
    from recoque.kernels import stream_torch as T

    def broken_mul(c, b, s):
        T.torch.mul(c, s, out=b)
        b[4321] = 0.0

    monkeypatch.setattr(T, "mul", broken_mul)
    case = S.StreamCase("mul", "fp64", SMALL)
    case.setup(TORCH_PATH, 1, seed=4)
    v = case.verify()
    assert not v.ok and v.worst_index == (4321,)


@pytest.mark.parametrize("op", ["copy", "mul", "add", "triad"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_pass_check_matches_the_numpy_comparison(op, dtype):
    """kernels/stream_check gives bench/verify.compare's worst error and element, NaN included."""
    from recoque.bench.verify import compare
    from recoque.kernels.stream_check import worst_element

    rng = np.random.default_rng(3)
    n = 100_003  # not a multiple of the thread blocks
    arrays = {k: rng.standard_normal(n).astype(dtype) for k in K.READS[op]}
    out = np.asarray(K.reference(op, arrays)).astype(dtype)
    out[4321] *= 1.001
    assert worst_element(op, arrays, out, K.SCALAR) == pytest.approx(
        (compare(out, K.reference(op, arrays), K.error_scale(op, arrays), 1.0).max_error, 4321))
    out[77] = np.nan
    err, at = worst_element(op, arrays, out, K.SCALAR)
    assert err == np.inf and at == 77
