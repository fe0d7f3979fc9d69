"""The norm-wise check beside the element-wise bound (bench/verify.py NORMWISE_TOLERANCE): a 16-bit
kernel a few percent wrong everywhere passes sum_k |a||b| at large k, and must fail."""
import numpy as np
import pytest

from recoque.bench import gemm
from recoque.bench.devices import detect_cpu
from recoque.bench.verify import NORMWISE_TOLERANCE, TOLERANCE, compare
from recoque.kernels import gemm as KG


def test_a_block_off_by_five_percent_passes_the_elementwise_bound_but_not_the_normwise_one():
    rng = np.random.default_rng(0)
    k = 8192
    a, b = rng.standard_normal((16, k)), rng.standard_normal((k, 32))
    ref, scale = a @ b, np.abs(a) @ np.abs(b)
    got = ref * 1.05
    assert compare(got, ref, scale, TOLERANCE["bf16"]).ok  # what let it through before
    v = compare(got, ref, scale, TOLERANCE["bf16"], normwise=NORMWISE_TOLERANCE["bf16"])
    assert not v.ok and v.max_error == pytest.approx(0.05, rel=1e-9) and "norm-wise" in v.describe()
    assert compare(ref * (1 + 1e-4), ref, scale, TOLERANCE["bf16"], normwise=NORMWISE_TOLERANCE["bf16"]).ok


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_a_gemm_kernel_that_scales_its_output_fails_verification(monkeypatch, dtype):
    dev = detect_cpu()
    case = gemm.GemmCase(64, 256, 4096, dtype)
    case.setup(dev, 1, 0)
    try:
        assert case.verify().ok  # the real kernel
        real = KG.matmul_torch

        def off_by_five_percent(a, b, out, *args, **kw):
            r = real(a, b, out, *args, **kw)
            out.mul_(1.05)
            return r
        monkeypatch.setattr(KG, "matmul_torch", off_by_five_percent)
        assert not case.verify().ok
    finally:
        case.teardown()


def test_an_empty_output_is_not_verified():
    import numpy as np
    from recoque.bench.verify import compare

    v = compare(np.array([]), np.array([]), 1.0, 1e-5, what="x")
    assert not v.ok and "empty output" in v.what
