"""STREAM kernels for GPUs through torch (ROCm and CUDA both run as torch.cuda).

Every kernel writes into a preallocated tensor (`out=` or an in-place method), so a call is one
kernel launch and allocates nothing. Nothing here synchronises: the timing helper owns that.
dot returns a 0-d device tensor; reading it (`.item()`) would synchronise, so callers keep it.
"""
from __future__ import annotations

import torch


def copy(a: torch.Tensor, c: torch.Tensor) -> None:  # c = a
    c.copy_(a)


def mul(c: torch.Tensor, b: torch.Tensor, s: float) -> None:  # b = s * c
    torch.mul(c, s, out=b)


def add(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> None:  # c = a + b
    torch.add(a, b, out=c)


def triad(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, s: float) -> None:  # a = b + s * c
    torch.add(b, c, alpha=s, out=a)


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # sum(a * b), left on the device
    return torch.dot(a, b)


def run(op: str, a: torch.Tensor | None, b: torch.Tensor | None, c: torch.Tensor | None,
        scalar: float) -> torch.Tensor | None:
    """Enqueue one kernel on (a, b, c) (None for unused ones); dot returns its 0-d device tensor."""
    if op == "copy":
        copy(a, c)
    elif op == "mul":
        mul(c, b, scalar)
    elif op == "add":
        add(a, b, c)
    elif op == "triad":
        triad(a, b, c, scalar)
    elif op == "dot":
        return dot(a, b)
    else:
        raise ValueError(f"unknown STREAM kernel {op!r}")
    return None
