"""CPU GEMM at one shape: recoque's GemmCase (torch and numpy backends) vs plain torch and numpy.

Skipped in CI (--benchmark-skip). Run apart:
    python -m pytest tests/perf/test_perf_gemm.py --benchmark-only
benchmarks/perf_cpu_gemm.py checks the bar (sweep best >= 0.97x the better baseline) in one run;
these groups show the per-call overhead of the harness path next to the bare calls.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from recoque.bench.devices import detect
from recoque.bench.gemm import GemmCase

pytestmark = pytest.mark.slow
N = 1024


@pytest.fixture(scope="module")
def cpu():
    return detect("cpu")


@pytest.mark.parametrize("dtype", ["fp64", "fp32"])
@pytest.mark.parametrize("impl", ["recoque-torch", "recoque-numpy", "torch", "numpy"])
def test_gemm_cpu(benchmark, cpu, dtype, impl):
    benchmark.group = f"gemm {dtype} {N}^3"
    if impl.startswith("recoque"):
        case = GemmCase(N, N, N, dtype, backend=impl.split("-")[1])
        case.setup(cpu, 1, 0)
        assert case.verify().ok
        benchmark(case.run, 0)
        return
    rng = np.random.default_rng(0)
    npd = np.float64 if dtype == "fp64" else np.float32
    a, b = rng.standard_normal((N, N)).astype(npd), rng.standard_normal((N, N)).astype(npd)
    if impl == "torch":
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out = torch.empty(N, N, dtype=ta.dtype)
        benchmark(torch.matmul, ta, tb, out=out)
        assert np.allclose(out.numpy(), a @ b, rtol=1e-3, atol=1e-3)
    else:
        out = np.empty((N, N), npd)
        benchmark(np.matmul, a, b, out=out)
        assert np.allclose(out, a.astype(np.float64) @ b, rtol=1e-3, atol=1e-3)
