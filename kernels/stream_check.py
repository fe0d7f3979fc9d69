"""The whole-output check of a CPU STREAM kernel in one parallel pass: each element's float64
reference from the kernel's inputs, its normalised error |got - ref| / scale (scale: the same
expression over the magnitudes, bench/verify's bound), and the worst element.

It computes what kernels/stream.reference and error_scale give block by block in numpy, without
their float64 temporaries: on a 2 GB array numpy took 25 s of a 56 s quick STREAM run (2-core VM).
"""
from __future__ import annotations

from recoque.kernels import stream_numba  # noqa: F401 - sets numba's cache folder before numba loads

import numba  # noqa: E402
import numpy as np  # noqa: E402

OP_CODES = {"copy": 0, "mul": 1, "add": 2, "triad": 3}
_TINY = np.finfo(np.float64).tiny


@numba.njit(cache=True, inline="always")
def _ref_and_scale(code, a, b, c, s, i):
    if code == 0:
        x = np.float64(a[i])
        return x, abs(x)
    if code == 1:
        x = np.float64(c[i])
        return s * x, abs(s) * abs(x)
    if code == 2:
        x, y = np.float64(a[i]), np.float64(b[i])
        return x + y, abs(x) + abs(y)
    x, y = np.float64(b[i]), np.float64(c[i])
    return x + s * y, abs(x) + abs(s) * abs(y)


@numba.njit(parallel=True, cache=True, nogil=True)
def _block_worst(code, a, b, c, out, s, nb):
    n = out.shape[0]
    per = -(-n // nb)
    worst = np.zeros(nb)
    where = np.zeros(nb, dtype=np.int64)
    for k in numba.prange(nb):
        w, at = -1.0, k * per
        for i in range(k * per, min((k + 1) * per, n)):
            ref, scale = _ref_and_scale(code, a, b, c, s, i)
            got = np.float64(out[i])
            err = abs(got - ref) / max(scale, _TINY) if np.isfinite(got) else np.inf
            if not err <= w:  # `not <=`: a NaN error wins, as in bench/verify
                w, at = (np.inf if np.isnan(err) else err), i
        worst[k], where[k] = w, at
    return worst, where


def worst_element(op: str, arrays: dict, out: np.ndarray, scalar: float, blocks: int = 64) -> tuple[float, int]:
    """The largest normalised error of `out` against the float64 reference, and its index (the first
    of equal ones). `arrays` holds the kernel's inputs by name (a, b, c); missing ones are unused."""
    dummy = out[:0]
    a, b, c = (arrays.get(k, dummy) for k in ("a", "b", "c"))
    nb = max(1, min(blocks, out.shape[0]))
    worst, where = _block_worst(OP_CODES[op], a, b, c, out, float(scalar), nb)
    k = int(np.argmax(worst))  # blocks in index order: argmax keeps the first of equal maxima
    return float(worst[k]), int(where[k])
