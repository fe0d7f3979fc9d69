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


def compare(got: np.ndarray, ref: np.ndarray, scale: np.ndarray | float, tolerance: float,
            what: str = "") -> Verification:
    got64 = np.asarray(got, dtype=np.float64)
    ref64 = np.asarray(ref, dtype=np.float64)
    if got64.shape != ref64.shape:
        return Verification(False, float("inf"), tolerance, (), None, None, f"{what} shape {got64.shape} != {ref64.shape}")
    denom = np.maximum(np.asarray(scale, dtype=np.float64), np.finfo(np.float64).tiny)
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
