"""Comparison against a float64 reference: normalised error, worst element, pass/fail.

The error of element i is |got_i - ref_i| / scale_i where scale_i bounds the rounding the
computation may legitimately accumulate (for a dot product, sum_k |a_ik||b_kj|, the Higham
bound's denominator), so one tolerance per dtype serves every shape.
"""
from __future__ import annotations

import numpy as np

from recoque.bench.base import Verification

# Normalised tolerances per dtype of the computation. Garbage gives errors of order 1;
# correct kernels stay orders of magnitude below these.
TOLERANCE = {"fp64": 1e-10, "fp32": 1e-5, "tf32": 5e-3, "bf16": 2e-2, "fp16": 5e-3, "fp8": 5e-2}
# The element-wise bound's scale (sum_k |a_ik||b_kj|) grows like k, a correct product like sqrt(k):
# for the 8- to 19-bit paths a kernel off by a few percent everywhere (a wrong scale, a dropped
# term) stays under TOLERANCE at large k. So these paths also hold the norm-wise relative error
# ||got - ref|| / ||ref|| of the sampled block, which for a correct kernel is about the output's
# rounding (the reference takes the kernel's own stored inputs): ~u / sqrt(3), u the unit roundoff
# (bf16 2^-8, fp16 and tf32 2^-11; fp8 GEMMs write bf16). Each bound is 5-16 u: far above rounding
# and accumulation order, under a 5% error (bf16, fp8 with fast accumulation: 2-3%; fp16, tf32: <1%).
NORMWISE_TOLERANCE = {"tf32": 8e-3, "bf16": 2e-2, "fp16": 4e-3, "fp8": 3e-2}
# The whole-output projections of a GEMM (kernels.gemm.sketch): row i's |(C x)_i - (A B x)_i| over
# ||c_i||. For a correct kernel it is a normal draw of spread ~ the element's relative error (output
# rounding u / sqrt(3): bf16 0.0023, fp16 0.0003; fp32 accumulation ~ u sqrt(k), 1e-5 at k = 32K),
# and the check takes the worst of up to ~50,000 rows and columns (4.5 spreads). Each bound is at
# least 15 spreads above that; fp8 allows for the fast-accumulation path's ~2% (DeepSeek-V3 report,
# arXiv:2412.19437 sec. 3.3.2: 14-bit accumulation on H800). A zeroed or garbage 64 x 64 tile of a
# 16384-wide C moves its rows by 0.06 spreads of ||c_i|| each, whose worst of 64 exceeds 0.1.
SKETCH_TOLERANCE = {"fp64": 1e-10, "fp32": 2e-4, "tf32": 1e-2, "bf16": 4e-2, "fp16": 1e-2, "fp8": 1e-1}


def compare(got: np.ndarray, ref: np.ndarray, scale: np.ndarray | float, tolerance: float,
            what: str = "", normwise: float | None = None) -> Verification:
    """Element-wise against `tolerance`; where `normwise` is given (NORMWISE_TOLERANCE), the whole
    block's relative error as well, the first failing check reported."""
    got64 = np.asarray(got, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    if got64.shape != ref64.shape:
        return Verification(False, float("inf"), tolerance, (), None, None, f"{what} shape {got64.shape} != {ref64.shape}")
    if not got64.size:  # nothing compared is nothing verified
        return Verification(False, float("inf"), tolerance, (), None, None, f"{what}: empty output, nothing to compare")
    element = _elementwise(got64, ref64, scale, tolerance, what)
    if not element.ok or normwise is None or not got64.size:
        return element
    rel = float(np.linalg.norm(got64 - ref64) / max(float(np.linalg.norm(ref64)), np.finfo(np.float64).tiny))
    if rel <= normwise:
        return element
    return Verification(False, rel, normwise, (), None, None, f"{what} norm-wise ||got - ref|| / ||ref||")


def _elementwise(got64: np.ndarray, ref64: np.ndarray, scale: np.ndarray | float, tolerance: float,
                 what: str) -> Verification:
    denom = np.maximum(np.asarray(scale, dtype=np.float64), np.finfo(np.float64).tiny)
    with np.errstate(over="ignore", invalid="ignore"):  # an all-zero row's scale: the error is inf
        err = np.abs(got64 - ref64) / denom
    err = np.where(np.isfinite(got64), err, np.inf)  # NaN or inf in the output is always a failure
    flat = int(np.argmax(err)) if err.size else 0
    worst = float(err.reshape(-1)[flat]) if err.size else 0.0
    idx = tuple(int(i) for i in np.unravel_index(flat, err.shape)) if err.size else ()
    return Verification(
        ok=bool(worst <= tolerance), max_error=worst, tolerance=tolerance, worst_index=idx,
        worst_got=float(got64.reshape(-1)[flat]) if err.size else None,
        worst_expected=float(ref64.reshape(-1)[flat]) if err.size else None, what=what,
    )


def compare_sketch(s: dict[str, np.ndarray], tolerance: float, rows_what: str, cols_what: str) -> Verification:
    """The whole-output projections of a (grouped) GEMM (kernels.gemm.sketch, kernels.moe.sketch): each
    row's, then each column's, against its own norm; the first failing side reported."""
    rows = compare(s["cx"], s["ref_cx"], s["row_norm"], tolerance, what=rows_what)
    return rows if not rows.ok else compare(s["yc"], s["ref_yc"], s["col_norm"], tolerance, what=cols_what)
