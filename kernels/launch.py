"""A chain of tiny dependent kernels: what launching one kernel costs, apart from its work.

One call runs `KERNELS_PER_CALL` in-place adds x += y on a vector of `ELEMENTS` floats (a few
thread blocks), each waiting for the one before on the same stream. The adds do next to no work,
so the time of a call over its kernel count is the per-kernel gap: the launch, the scheduling of
the blocks and the tail before the next kernel starts. "eager" launches each add from Python
(the dispatcher and the driver per kernel, as an engine's eager prefill does); "graph" replays
the chain captured once as a CUDA/HIP graph, as serving engines replay their decode steps
(torch.cuda.CUDAGraph; ROCm runs it as a HIP graph). Nothing here synchronises.

Work per call: KERNELS_PER_CALL kernels (the harness divides it by the time). The result after
one call is x0 + KERNELS_PER_CALL * y, which the bench verifies against float64.
"""
from __future__ import annotations

from typing import Any

OPS = ("eager", "graph")
KERNELS_PER_CALL = 256   # a graph launch of its own is a few us: spread over 256 kernels it is ~1-2% of a call
ELEMENTS = 4096          # 16 KiB of fp32: a few thread blocks, as the smallest kernels of a decode step


def kernel_count(op: str) -> int:
    if op not in OPS:
        raise ValueError(f"unknown launch op {op!r}; expected one of {OPS}")
    return KERNELS_PER_CALL


def chain(x: Any, y: Any, n: int = KERNELS_PER_CALL) -> None:
    """n dependent in-place adds x += y, one kernel each."""
    for _ in range(n):
        x.add_(y)


def expected(x0: Any, y: Any, n: int = KERNELS_PER_CALL) -> Any:
    """The float64 reference of one call: x0 + n y (numpy arrays in, numpy array out)."""
    return x0.astype("float64") + n * y.astype("float64")
