"""The whole-output check of a GEMM (kernels.gemm.sketch, bench/gemm.py _verify_whole): a tile the
kernel skips or corrupts where the 64 x 256 sample does not look must fail, and fp8's scales count."""
import numpy as np
import pytest

from recoque.bench import gemm
from recoque.bench.devices import detect_cpu
from recoque.bench.verify import SKETCH_TOLERANCE, compare
from recoque.kernels import gemm as KG


def _sketch_errors(a, b, c, scales=None):
    s = KG.sketch(a, b, c, scales, seed=1)
    return (compare(s["cx"], s["ref_cx"], s["row_norm"], SKETCH_TOLERANCE["bf16"]),
            compare(s["yc"], s["ref_yc"], s["col_norm"], SKETCH_TOLERANCE["bf16"]))


def test_a_zeroed_64x64_tile_of_a_wide_product_fails_both_projections():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((1024, 512)), rng.standard_normal((512, 4096))
    c = a @ b
    assert all(v.ok and v.max_error < 1e-12 for v in _sketch_errors(a, b, c))
    c[320:384, 1600:1664] = 0.0
    rows, cols = _sketch_errors(a, b, c)
    assert not rows.ok and 320 <= rows.worst_index[0] < 384
    assert not cols.ok and 1600 <= cols.worst_index[0] < 1664


def test_a_bf16_product_rounded_correctly_sits_far_under_the_bound():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((256, 2048)), rng.standard_normal((2048, 1024))
    c = (a @ b).astype(np.float32)
    c = (c.view(np.uint32) & 0xFFFF0000).view(np.float32)  # truncated to bf16: the worst rounding
    rows, cols = _sketch_errors(a, b, c)
    assert rows.ok and cols.ok and max(rows.max_error, cols.max_error) < SKETCH_TOLERANCE["bf16"] / 3


def test_a_kernel_that_skips_rows_the_sample_does_not_look_at_fails(monkeypatch):
    case = gemm.GemmCase(2048, 384, 256, "fp32")
    case.setup(detect_cpu(), 1, 0)
    try:
        assert case.verify().ok
        sampled = np.sort(np.random.default_rng(12345).choice(2048, size=gemm.SAMPLE_ROWS, replace=False))
        gap = int(np.argmax(np.diff(sampled)))
        lo, hi = int(sampled[gap]) + 1, int(sampled[gap + 1])  # rows the sample never reads
        assert hi - lo >= 16
        real = KG.matmul_torch

        def skips_a_block(a, b, out, *args, **kw):
            r = real(a, b, out, *args, **kw)
            out[lo:hi] = 0.0
            return r
        monkeypatch.setattr(KG, "matmul_torch", skips_a_block)
        v = case.verify()
        assert not v.ok and "over all 2048 rows" in v.what and lo <= v.worst_index[0] < hi
    finally:
        case.teardown()


def test_an_unwritten_output_fails_even_where_an_earlier_call_left_the_right_answer(monkeypatch):
    case = gemm.GemmCase(256, 128, 64, "fp32")
    case.setup(detect_cpu(), 1, 0)
    try:
        case.run(0)  # the right answer is now in C
        monkeypatch.setattr(KG, "matmul_torch", lambda a, b, out, *args, **kw: out)
        assert not case.verify().ok
    finally:
        case.teardown()


def test_fp8_operands_carry_scales_that_a_kernel_cannot_drop():
    torch = pytest.importorskip("torch")
    if not hasattr(torch, "_scaled_mm"):
        pytest.skip("this torch has no _scaled_mm")
    a, b, scales = KG.random_operands(256, 128, 512, "fp8", "cpu", 0, "e4m3fn")
    assert KG.scale_product(scales) == 0.125
    out = torch.empty(256, 128, dtype=torch.bfloat16)
    try:
        KG.matmul_torch(a, b, out, scales)
    except (RuntimeError, NotImplementedError) as exc:
        pytest.skip(f"no CPU _scaled_mm in this build: {exc}")
    s = KG.sketch(a, b, out, scales, seed=2)
    assert compare(s["cx"], s["ref_cx"], s["row_norm"], SKETCH_TOLERANCE["fp8"]).ok
    KG.matmul_torch(a, b, out, (torch.tensor(1.0), torch.tensor(1.0)))  # scales dropped: 8x too large
    s = KG.sketch(a, b, out, scales, seed=2)
    assert not compare(s["cx"], s["ref_cx"], s["row_norm"], SKETCH_TOLERANCE["fp8"]).ok
