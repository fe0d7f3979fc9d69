"""Host<->device and device-to-device copies through torch (the copy engines: hipMemcpyAsync / cudaMemcpyAsync).

Host buffers are pinned (page-locked), so `copy_(..., non_blocking=True)` is a true asynchronous
DMA on the current stream and the device events the harness records around it time the copy
itself, as nvbandwidth's CE tests and TransferBench's DMA executor do. Nothing here synchronises.

Work per call: h2d and d2h move n bytes across the link; d2d reads n and writes n bytes of the
same memory, so it counts 2n (read + write), the way BabelStream counts copy.
"""
from __future__ import annotations

from typing import Mapping

import torch

OPS = ("h2d", "d2h", "d2d")
# Bytes counted per byte of buffer, and what they mean (kept with each result's params).
BYTES_PER_BYTE: Mapping[str, int] = {"h2d": 1, "d2h": 1, "d2d": 2}
COUNTED: Mapping[str, str] = {"h2d": "bytes over the link", "d2h": "bytes over the link", "d2d": "read+write"}


def bytes_moved(op: str, n_bytes: int) -> int:
    if op not in BYTES_PER_BYTE:
        raise ValueError(f"unknown transfer {op!r}; expected one of {OPS}")
    return BYTES_PER_BYTE[op] * int(n_bytes)


def random_bytes(n_bytes: int, device: torch.device, seed: int) -> torch.Tensor:
    """n random bytes on `device`: standard normal float32 values viewed as bytes (n % 4 == 0)."""
    if n_bytes % 4:
        raise ValueError(f"transfer size {n_bytes} is not a multiple of 4 bytes")
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return torch.randn(n_bytes // 4, generator=gen, device=device, dtype=torch.float32).view(torch.uint8)


def buffers(op: str, n_bytes: int, device: torch.device, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(src, dst) for one copy: the host side pinned, the source random, the destination zero."""
    data = random_bytes(n_bytes, device, seed)  # generated on the GPU: fast at GiB sizes
    if op == "h2d":
        src = torch.empty(n_bytes, dtype=torch.uint8, pin_memory=True)
        src.copy_(data)  # blocking: the pinned source is complete before any timed copy
        return src, torch.zeros(n_bytes, dtype=torch.uint8, device=device)
    if op == "d2h":
        return data, torch.zeros(n_bytes, dtype=torch.uint8, pin_memory=True)
    if op == "d2d":
        return data, torch.zeros(n_bytes, dtype=torch.uint8, device=device)
    raise ValueError(f"unknown transfer {op!r}; expected one of {OPS}")


def copy(src: torch.Tensor, dst: torch.Tensor) -> None:
    """One asynchronous copy on the current stream."""
    dst.copy_(src, non_blocking=True)
