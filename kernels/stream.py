"""STREAM / BabelStream kernels: the work per call as data, and the float64 numpy reference.

Byte counting follows BabelStream (src/benchmark.h): every array read or written counts once,
reads and writes equally, no write-allocate traffic; bandwidth = arrays x N x sizeof(T) / t, in
decimal GB/s. The state is three arrays a, b, c and a scalar; the kernels are

    copy   c = a          2 arrays
    mul    b = s * c      2 arrays
    add    c = a + b      3 arrays
    triad  a = b + s * c  3 arrays
    dot    sum(a * b)     2 arrays (read only; the result is a scalar)

Each kernel is idempotent when repeated on its own (its output is not one of its inputs), so a
case that calls one kernel many times keeps its data bounded and checkable.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

OPS = ("copy", "mul", "add", "triad", "dot")

# Arrays moved per call (BabelStream's weights; STREAM counts 2/2/3/3 for the first four).
ARRAYS_MOVED: Mapping[str, int] = {"copy": 2, "mul": 2, "add": 3, "triad": 3, "dot": 2}

# Which of a, b, c each kernel reads and writes (dot writes none: it returns a scalar).
READS: Mapping[str, tuple[str, ...]] = {
    "copy": ("a",), "mul": ("c",), "add": ("a", "b"), "triad": ("b", "c"), "dot": ("a", "b"),
}
WRITES: Mapping[str, str | None] = {"copy": "c", "mul": "b", "add": "c", "triad": "a", "dot": None}

ELEM_BYTES = {"fp64": 8, "fp32": 4}
NUMPY_DTYPE = {"fp64": np.float64, "fp32": np.float32}

# BabelStream's startScalar; any value that is not 0 or 1 exercises the multiply.
SCALAR = 0.4

N_ARRAYS = 3  # a, b, c


def bytes_moved(op: str, n_elements: int, elem_bytes: int) -> int:
    """Bytes one call moves, as BabelStream counts them: arrays x N x sizeof(T)."""
    if op not in ARRAYS_MOVED:
        raise ValueError(f"unknown STREAM kernel {op!r}; expected one of {OPS}")
    return ARRAYS_MOVED[op] * int(n_elements) * int(elem_bytes)


def reference(op: str, arrays: Mapping[str, np.ndarray], scalar: float = SCALAR) -> np.ndarray | float:
    """The kernel's result in float64 from the given inputs (the output array, or the dot value)."""
    x = {k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()}
    s = float(scalar)
    if op == "copy":
        return x["a"].copy()
    if op == "mul":
        return s * x["c"]
    if op == "add":
        return x["a"] + x["b"]
    if op == "triad":
        return x["b"] + s * x["c"]
    if op == "dot":
        return float(np.dot(x["a"], x["b"]))
    raise ValueError(f"unknown STREAM kernel {op!r}; expected one of {OPS}")


def error_scale(op: str, arrays: Mapping[str, np.ndarray], scalar: float = SCALAR) -> np.ndarray | float:
    """What each result element's rounding is proportional to: the sum of the magnitudes of its terms.

    For dot this is sum |a_i b_i| (the denominator of the Higham bound), so the relative error of a
    correct reduction stays far below the dtype's tolerance whatever the cancellation.
    """
    return reference(op, {k: np.abs(np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}, abs(float(scalar)))
