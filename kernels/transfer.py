"""Host<->device and device-to-device copies through torch (the copy engines: hipMemcpyAsync / cudaMemcpyAsync).

Host buffers are pinned (page-locked) for h2d and d2h, so `copy_(..., non_blocking=True)` is a true
asynchronous DMA on the current stream and the device events the harness records around it time the
copy itself, as nvbandwidth's CE tests and TransferBench's DMA executor do. Nothing here synchronises.

Pageable host buffers (h2d_pageable, d2h_pageable: what a framework's plain `tensor.to(device)` from ordinary
host memory gets) are copied by the driver through its own pinned staging buffer, and the call
returns only once the host side is done (CUDA Runtime API, "API synchronization behavior":
memcpy from pageable memory); the device events before and after it still bracket the whole copy,
staging included, since the stream has nothing else to run. CUDA's bandwidthTest measures both
kinds (`--memory=pinned|pageable`).

Work per call: h2d and d2h move n bytes across the link; d2d reads n and writes n bytes of the
same memory, so it counts 2n (read + write), the way BabelStream counts copy.
"""
from __future__ import annotations

from typing import Mapping

import torch

OPS = ("h2d", "d2h", "d2d", "h2d_pageable", "d2h_pageable")
PAGEABLE = "_pageable"
# Bytes counted per byte of buffer, and what they mean (kept with each result's params).
BYTES_PER_BYTE: Mapping[str, int] = {op: 2 if op == "d2d" else 1 for op in OPS}
COUNTED: Mapping[str, str] = {op: "read+write" if op == "d2d" else "bytes over the link" for op in OPS}


def direction(op: str) -> str:
    """h2d, d2h or d2d: the copy's direction, pinned or not."""
    return op.removesuffix(PAGEABLE)


def is_pinned(op: str) -> bool:
    return not op.endswith(PAGEABLE)


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
    """(src, dst) for one copy: the host side pinned (pageable for the *_pageable ops), the source
    random, the destination zero."""
    if op not in OPS:
        raise ValueError(f"unknown transfer {op!r}; expected one of {OPS}")
    data = random_bytes(n_bytes, device, seed)  # generated on the GPU: fast at GiB sizes
    pinned, op = is_pinned(op), direction(op)
    if op == "h2d":
        src = torch.empty(n_bytes, dtype=torch.uint8, pin_memory=pinned)
        src.copy_(data)  # blocking: the host source is complete before any timed copy
        return src, torch.zeros(n_bytes, dtype=torch.uint8, device=device)
    if op == "d2h":
        return data, torch.zeros(n_bytes, dtype=torch.uint8, pin_memory=pinned)
    return data, torch.zeros(n_bytes, dtype=torch.uint8, device=device)  # d2d, the only op left


def copy(src: torch.Tensor, dst: torch.Tensor) -> None:
    """One asynchronous copy on the current stream."""
    dst.copy_(src, non_blocking=True)
