"""Kernel launch cost: a chain of tiny dependent kernels, launched eagerly or replayed as a graph.

What a serving step pays per kernel besides the kernel's own work (planner/serving_step.py
counts the kernels of a decode step; `recoque plan infer --profile` takes the measured "graph"
figure for its per-kernel gap). "eager" runs on the CPU too (the torch dispatcher per op there);
"graph" needs a GPU (CUDA graphs, HIP graphs on ROCm). See kernels/launch.py for the chain.

The data are a few KiB, so caches do not matter to what is measured: one set serves every call
(the harness's rotation would only repeat it).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from recoque.bench.base import Case, Unsupported, Verification, Work
from recoque.bench.verify import compare
from recoque.kernels import launch as K

NO_GPU = "graph replay needs a GPU (CUDA/HIP graphs)"
# A serial sum of n fp32 adds rounds n times: |error| <= n x 2^-24 x sum of |terms| (Higham,
# Accuracy and Stability of Numerical Algorithms, 2nd ed., section 4.2), with a factor 2 of margin.
# One missing add is an error of about 1/n of that sum: 100 times the tolerance. n is the case's own
# chain length (a confirmation rebuilds a case from its record's `kernels`).
def tolerance(kernels: int) -> float:
    return 2.0 * kernels * 2.0 ** -24


TOLERANCE = tolerance(K.KERNELS_PER_CALL)


def cases(device: Any, quick: bool, tags: tuple[str, ...] = ()) -> list[Case]:
    """Eager everywhere; graph replay on a GPU. The same chain in quick and full runs (it is short)."""
    ops = ("eager",) if device.kind == "cpu" else K.OPS
    return [LaunchCase(op, tags=tags) for op in ops]


def skip_reason(device: Any) -> str | None:
    return NO_GPU if device.kind == "cpu" else None


class LaunchCase(Case):
    benchmark = "launch"
    dtype = "fp32"

    def __init__(self, op: str, kernels: int = K.KERNELS_PER_CALL, elements: int = K.ELEMENTS,
                 tags: tuple[str, ...] = ()) -> None:
        K.kernel_count(op)  # refuses an unknown op
        self.op = op
        self.tags = tuple(tags)
        self.params = {"kernels": int(kernels), "n_elements": int(elements)}
        self.backend = "torch"
        self._x: Any = None
        self._y: Any = None
        self._x0: Any = None
        self._graph: Any = None

    @property
    def kernels(self) -> int:
        return int(self.params["kernels"])

    def work(self) -> Work:
        return Work(kernel_count=self.kernels)

    def bytes_per_set(self) -> int:
        return 2 * 4 * int(self.params["n_elements"])

    def sets_used(self, n_sets: int) -> int:
        return 1  # one small pair: a launch-bound chain, not a cache-bound one

    def setup(self, device: Any, n_sets: int, seed: int) -> None:
        import torch

        dev = torch.device(device.torch_device)
        gen = torch.Generator().manual_seed(seed)
        n = int(self.params["n_elements"])
        self._x0 = torch.randn(n, generator=gen, dtype=torch.float32)
        self._y = torch.randn(n, generator=gen, dtype=torch.float32).to(dev)
        self._x = self._x0.clone().to(dev)
        if self.op == "graph":
            if dev.type == "cpu":
                raise Unsupported(NO_GPU)
            self._graph = _capture(self._x, self._y, self.kernels, dev)

    def run(self, i: int) -> None:
        if self._graph is not None:
            self._graph.replay()
        else:
            K.chain(self._x, self._y, self.kernels)

    def verify(self) -> Verification:
        """Reset x to its random start, run one call, compare with x0 + n y in float64."""
        import torch

        self._x.copy_(self._x0.to(self._x.device))
        self.run(0)
        if self._x.device.type != "cpu":
            torch.cuda.synchronize(self._x.device)
        x0, y = self._x0.numpy(), self._y.cpu().numpy()
        scale = np.abs(x0.astype(np.float64)) + self.kernels * np.abs(y.astype(np.float64))
        return compare(self._x.cpu().numpy(), K.expected(x0, y, self.kernels), scale, tolerance(self.kernels),
                       what=f"x after {self.kernels} {self.op} adds")


def _capture(x: Any, y: Any, n: int, dev: Any) -> Any:
    """The chain captured once as a graph on `dev` (warmed up on a side stream first, as torch asks)."""
    import torch

    with torch.cuda.device(dev):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            K.chain(x, y, 2)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            K.chain(x, y, n)
        torch.cuda.synchronize(dev)
    return graph
