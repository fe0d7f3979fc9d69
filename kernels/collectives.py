"""Collectives across the GPUs of one node through torch.distributed ("nccl" is RCCL on ROCm).

Sizes and bandwidths follow nccl-tests (doc/PERFORMANCE.md): S is the bytes of one rank's buffer
for all-reduce and all-to-all, and the whole gathered/scattered array (count x n x sizeof) for
all-gather and reduce-scatter; algbw = S / t and busbw = algbw x factor, the factor being
k (n-1)/n with k below, so busbw is comparable to one link's unidirectional peak whatever n is.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Any, Mapping

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")
# busbw factor = BUSBW_K[op] * (n - 1) / n (nccl-tests: AllReduce 2(n-1)/n, the others (n-1)/n).
BUSBW_K: Mapping[str, int] = {"all_reduce": 2, "all_gather": 1, "reduce_scatter": 1, "all_to_all": 1}


def busbw_factor(op: str, n_ranks: int) -> Fraction:
    """The exact bus-bandwidth factor for `op` on n_ranks ranks."""
    if op not in BUSBW_K:
        raise ValueError(f"unknown collective {op!r}; expected one of {OPS}")
    if n_ranks < 1:
        raise ValueError(f"n_ranks must be >= 1, got {n_ranks}")
    return Fraction(BUSBW_K[op] * (n_ranks - 1), n_ranks)


def bus_bytes(op: str, size_bytes: int, n_ranks: int) -> int:
    """S x factor: the bytes whose rate is the bus bandwidth (rounded down to whole bytes)."""
    f = busbw_factor(op, n_ranks)
    return int(size_bytes) * f.numerator // f.denominator


def world() -> tuple[int, int, int]:
    """(world size, rank, local rank) from the torchrun environment; (1, 0, 0) without it."""
    env = os.environ
    return int(env.get("WORLD_SIZE", "1")), int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))


def init() -> Any:
    """Join the process group once (torchrun sets MASTER_ADDR etc.); returns this rank's torch device.

    GPUs: "nccl" (RCCL on ROCm), one device per local rank. A torch without GPUs gets "gloo" on the
    CPU, which only the tests use: it runs this same code path in two processes.
    """
    import torch
    import torch.distributed as dist

    _, _, local = world()
    if torch.cuda.is_available():
        dev, backend = torch.device("cuda", local), "nccl"
        torch.cuda.set_device(dev)
    else:
        dev, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=dev if backend == "nccl" else None)
    return dev


def shutdown() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def buffers(op: str, count: int, n_ranks: int, inp: Any) -> Any:
    """The output tensor for `op`, given this rank's input of `count` elements (None: in place)."""
    import torch

    if op == "all_reduce":
        return None
    if op == "all_gather":
        return torch.empty(count * n_ranks, dtype=inp.dtype, device=inp.device)
    if op == "reduce_scatter":
        return torch.empty(count // n_ranks, dtype=inp.dtype, device=inp.device)
    if op == "all_to_all":
        return torch.empty_like(inp)
    raise ValueError(f"unknown collective {op!r}; expected one of {OPS}")


def run(op: str, inp: Any, out: Any) -> None:
    """One collective (sum for the reductions), enqueued; the current stream waits for it."""
    import torch.distributed as dist

    if op == "all_reduce":
        dist.all_reduce(inp)  # in place: values grow n-fold per call; ring timings do not depend on values
    elif op == "all_gather":  # the *_single names replace *_tensor in newer torch (same arguments)
        (getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor)(out, inp)
    elif op == "reduce_scatter":
        (getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor)(out, inp)
    elif op == "all_to_all":
        dist.all_to_all_single(out, inp)
    else:
        raise ValueError(f"unknown collective {op!r}; expected one of {OPS}")


def reference(op: str, idx: Any, rank: int, n_ranks: int, count: int, input_of: Any) -> tuple[Any, Any]:
    """Expected output values at output indices `idx` on `rank`, and their error scale, in float64.

    `count` is the elements of one rank's input; input_of(r, src) returns rank r's input at indices
    src as float64 numpy values. Reductions sum every rank's term; gathers pick one rank's.
    """
    import numpy as np

    idx = np.asarray(idx, dtype=np.int64)
    ref, scale = np.zeros(idx.shape), np.zeros(idx.shape)
    per = count // n_ranks  # one rank's chunk for reduce-scatter and all-to-all
    for r in range(n_ranks):
        if op == "all_reduce":
            mask, src = np.ones(idx.shape, bool), idx
        elif op == "reduce_scatter":
            mask, src = np.ones(idx.shape, bool), rank * per + idx
        elif op == "all_gather":  # output block r is rank r's whole input
            mask, src = idx // count == r, idx % count
        elif op == "all_to_all":  # output block r is chunk `rank` of rank r's input
            mask, src = idx // per == r, rank * per + idx % per
        else:
            raise ValueError(f"unknown collective {op!r}; expected one of {OPS}")
        if mask.any():
            vals = np.asarray(input_of(r, src[mask]), dtype=np.float64)
            ref[mask] += vals
            scale[mask] += np.abs(vals)
    return ref, scale
