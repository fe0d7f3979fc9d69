"""CPU triad (fp64), numba vs torch vs numpy on the same arrays: pytest-benchmark groups.

Skipped in CI (--benchmark-skip in the pytest options). Run apart:
    python -m pytest tests/perf --benchmark-only
The ratios to read: numba triad should be >= 1.0x torch.add(b, c, alpha=s, out=a) and >= 2x
numpy's np.add(b, s*c, out=a). benchmarks/perf_cpu_stream.py checks the bars in one run.
"""
from __future__ import annotations

import numpy as np
import pytest

from recoque.bench import stream as S
from recoque.bench.verify import TOLERANCE, compare
from recoque.kernels import stream as K

pytestmark = pytest.mark.slow


def _llc_bytes() -> int:
    try:
        from recoque.bench.devices import detect

        return int(detect("cpu").llc_bytes or S.FALLBACK_LLC_BYTES["cpu"])
    except ImportError:
        return S.FALLBACK_LLC_BYTES["cpu"]


@pytest.fixture(scope="module")
def arrays():
    n = 4 * _llc_bytes() // 8  # STREAM rule: each array >= 4x the last-level cache
    rng = np.random.default_rng(0)
    return tuple(rng.standard_normal(n) for _ in range(3))


def _check_triad(a, b, c):
    """Within fp64 rounding of b + s*c (torch may fuse into an FMA, so not always bit-equal)."""
    inputs = {"b": b, "c": c}
    v = compare(a, K.reference("triad", inputs), K.error_scale("triad", inputs), TOLERANCE["fp64"])
    assert v.ok, v.describe()


def _bench(benchmark, fn, n):
    benchmark.extra_info["bytes_moved"] = K.bytes_moved("triad", n, 8)
    benchmark.pedantic(fn, rounds=15, iterations=1, warmup_rounds=2)


@pytest.mark.benchmark(group="cpu-triad-fp64")
def test_triad_numba(benchmark, arrays):
    from recoque.kernels import stream_numba as NB

    a, b, c = arrays
    s = np.float64(K.SCALAR)
    _bench(benchmark, lambda: NB.triad(a, b, c, s), a.size)
    _check_triad(a, b, c)


@pytest.mark.benchmark(group="cpu-triad-fp64")
def test_triad_torch(benchmark, arrays):
    torch = pytest.importorskip("torch")
    a, b, c = arrays
    ta, tb, tc = (torch.from_numpy(x) for x in arrays)
    _bench(benchmark, lambda: torch.add(tb, tc, alpha=K.SCALAR, out=ta), a.size)
    _check_triad(a, b, c)


@pytest.mark.benchmark(group="cpu-triad-fp64")
def test_triad_numpy(benchmark, arrays):
    a, b, c = arrays
    _bench(benchmark, lambda: np.add(b, K.SCALAR * c, out=a), a.size)
    _check_triad(a, b, c)
