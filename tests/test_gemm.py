import numpy as np
import pytest

from recoque.bench.devices import detect
from recoque.bench.gemm import GemmCase, cu_tiled_shapes, gpu_sweep_shapes, llm_layer_shapes, refine_shapes, sweep_cases
from recoque.bench.base import Unsupported
from recoque.errors import BadInput
from recoque.kernels import gemm as K


@pytest.fixture(scope="module")
def cpu():
    return detect("cpu")


def test_flop_and_byte_formulas():
    assert K.flop_count(2, 3, 4) == 48  # 2mnk
    assert K.bytes_per_set(2, 3, 4, "fp32") == (8 + 12 + 6) * 4
    assert K.bytes_per_set(2, 3, 4, "fp8") == (8 + 12) * 1 + 6 * 2  # C in bf16


@pytest.mark.parametrize("dtype,backend", [("fp64", "torch"), ("fp64", "numpy"), ("fp32", "torch"),
                                           ("fp32", "numpy"), ("bf16", "torch"), ("fp16", "torch")])
def test_cpu_gemm_verifies_on_random_data(cpu, dtype, backend):
    case = GemmCase(96, 80, 72, dtype, backend=backend)
    case.setup(cpu, n_sets=2, seed=3)
    a = case._sets[0][0]
    assert float(np.std(K._to_f64(a))) > 0.5  # random normal, not zeros
    check = case.verify()
    assert check.ok, check.describe()
    # the last check made is the whole-output projection, whose worst of all rows and columns sits
    # 6-8x under its bound for a correct bf16 product (the sampled element-wise check, 10x or more)
    assert check.max_error < check.tolerance / 5


def test_broken_kernel_fails_verification_with_worst_element(cpu, monkeypatch):
    case = GemmCase(64, 64, 64, "fp32")
    case.setup(cpu, 1, 0)

    real = K.matmul_torch

    def wrong(a, b, out, scales=None):
        real(a, b, out)
        out[5, 7] += 10.0

    monkeypatch.setattr(K, "matmul_torch", wrong)
    check = case.verify()
    assert not check.ok
    assert "worst element at [5, 7]" in check.describe()


def test_unsupported_dtypes_on_cpu_and_unknown_dtype(cpu):
    for dtype in ("tf32", "fp8"):
        with pytest.raises(Unsupported):
            GemmCase(16, 16, 16, dtype).setup(cpu, 1, 0)
    with pytest.raises(BadInput, match="unknown GEMM dtype"):
        GemmCase(16, 16, 16, "fp7")


def test_sweep_shapes():
    shapes = gpu_sweep_shapes(quick=False, compute_units=304)
    assert (2048, 2048, 13312) in shapes and (8192, 8192, 8192) in shapes
    assert len(shapes) == len(set(shapes))
    # AMD's rule: M x N tiles one wave of CUs, K = 32K + 128
    for m, n, k in cu_tiled_shapes(304):
        assert k == 32896 and (m // 256) * (n // 192) == 304
    assert len(refine_shapes((4096, 4096, 4096))) == 6
    assert {c.backend for c in sweep_cases(detect("cpu"), True, "fp64")} == {"torch", "numpy"}


def test_llm_layer_shapes_follow_the_architecture():
    layers = dict(llm_layer_shapes("llama3-70b", 4096))
    # GQA: q (8192) + k and v (8 heads x 128) = 10240 output features
    assert layers["qkv"] == (4096, 10240, 8192)
    assert layers["ffn_up"] == (4096, 2 * 28672, 8192)  # SwiGLU: gate and up together
    assert layers["ffn_down"] == (4096, 8192, 28672)
