"""Collectives through torch.distributed: "nccl" (RCCL on ROCm) on GPUs, "gloo" on the CPU.

Sizes and bandwidths follow nccl-tests (doc/PERFORMANCE.md, "Summary"): S is the bytes of one
rank's buffer for all-reduce, all-to-all, broadcast and send/recv, and the whole gathered or
scattered array (count x n x sizeof) for all-gather and reduce-scatter; algbw = S / t and
busbw = algbw x factor with factor 2(n-1)/n (all-reduce), (n-1)/n (all-gather, reduce-scatter,
all-to-all), 1 (broadcast: the root's one link carries everything; send/recv: nccl-tests'
sendrecv reports busbw = algbw). busbw is then comparable to one link's one-way peak whatever n is.

No timing and no process-group setup here: bench/distributed.py joins the group,
bench/collective.py times these calls.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Any, Mapping

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "broadcast", "send_recv")
# (k, scaled): factor = k (n-1)/n when scaled, else k (nccl-tests PERFORMANCE.md summary).
_BUSBW: Mapping[str, tuple[int, bool]] = {
    "all_reduce": (2, True), "all_gather": (1, True), "reduce_scatter": (1, True), "all_to_all": (1, True),
    "broadcast": (1, False), "send_recv": (1, False),
}
# Which buffer arrangements torch.distributed offers per op. all-reduce and broadcast exist only
# in place in torch; in-place all-gather / reduce-scatter alias the rank's chunk of the big buffer
# (nccl-tests' in-place: sendbuff = recvbuff + rank x count).
PLACEMENTS: Mapping[str, tuple[str, ...]] = {
    "all_reduce": ("in_place",), "all_gather": ("out_of_place", "in_place"),
    "reduce_scatter": ("out_of_place", "in_place"), "all_to_all": ("out_of_place",),
    "broadcast": ("in_place",), "send_recv": ("out_of_place",),
}
REDUCTIONS = ("all_reduce", "reduce_scatter")
BROADCAST_ROOT = 0


def _check(op: str) -> None:
    if op not in _BUSBW:
        raise ValueError(f"unknown collective {op!r}; expected one of {OPS}")


def busbw_factor(op: str, n_ranks: int) -> Fraction:
    """The exact bus-bandwidth factor for `op` on n_ranks ranks."""
    _check(op)
    if n_ranks < 1:
        raise ValueError(f"n_ranks must be >= 1, got {n_ranks}")
    k, scaled = _BUSBW[op]
    return Fraction(k * (n_ranks - 1), n_ranks) if scaled else Fraction(k)


def bus_bytes(op: str, size_bytes: int, n_ranks: int) -> int:
    """S x factor: the bytes whose rate is the bus bandwidth (rounded down to whole bytes)."""
    f = busbw_factor(op, n_ranks)
    return int(size_bytes) * f.numerator // f.denominator


def world() -> tuple[int, int, int]:
    """(world size, rank, local rank) from torchrun's or srun's environment; (1, 0, 0) without either.

    The full picture (nodes, hosts, master address) is recoque.bench.distributed.discover()."""
    env = os.environ
    if "WORLD_SIZE" in env or "SLURM_PROCID" not in env:
        return int(env.get("WORLD_SIZE", "1")), int(env.get("RANK", "0")), int(env.get("LOCAL_RANK", "0"))
    n = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1"
    return int(n), int(env["SLURM_PROCID"]), int(env.get("SLURM_LOCALID", "0"))


def input_count(op: str, size_bytes: int, n_ranks: int, elem_bytes: int) -> int:
    """Elements of one rank's input: S/elem, except all-gather whose S is the gathered whole."""
    total = size_bytes // elem_bytes
    return total // n_ranks if op == "all_gather" else total


def output_count(op: str, count: int, n_ranks: int) -> int:
    """Elements of one rank's output for an input of `count` elements."""
    _check(op)
    return {"all_gather": count * n_ranks, "reduce_scatter": count // n_ranks}.get(op, count)


def buffers(op: str, placement: str, inp: Any, rank: int, n_ranks: int) -> tuple[Any, Any]:
    """(send, recv) tensors for one call, holding `inp` as this rank's input.

    In place, send and recv share memory: all-reduce and broadcast work on one buffer;
    all-gather sends its own chunk of the gathered buffer; reduce-scatter receives into its chunk
    of the input."""
    import torch

    _check(op)
    if placement not in PLACEMENTS[op]:
        raise ValueError(f"{op} has no {placement} form in torch.distributed; use one of {PLACEMENTS[op]}")
    count = inp.numel()
    if op in ("all_reduce", "broadcast"):
        return inp, inp
    if placement == "in_place" and op == "all_gather":
        out = torch.empty(count * n_ranks, dtype=inp.dtype, device=inp.device)
        chunk = out[rank * count:(rank + 1) * count]
        chunk.copy_(inp)
        return chunk, out
    if placement == "in_place" and op == "reduce_scatter":
        per = count // n_ranks
        return inp, inp[rank * per:(rank + 1) * per]
    return inp, torch.empty(output_count(op, count, n_ranks), dtype=inp.dtype, device=inp.device)


def result_of(op: str, send: Any, recv: Any) -> Any:
    """The tensor holding this rank's output after a call."""
    return send if op in ("all_reduce", "broadcast") else recv


def run(op: str, send: Any, recv: Any, peer: int | None = None) -> None:
    """One collective (sum for the reductions). send_recv exchanges with `peer` both ways at once
    (peer None: this rank sits the case out)."""
    import torch.distributed as dist

    if op == "all_reduce":
        dist.all_reduce(send)  # values grow n-fold per call; timings do not depend on values
    elif op == "all_gather":  # the *_single names replace *_tensor in newer torch (same arguments)
        (getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor)(recv, send)
    elif op == "reduce_scatter":
        (getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor)(recv, send)
    elif op == "all_to_all":
        dist.all_to_all_single(recv, send)
    elif op == "broadcast":
        dist.broadcast(send, src=BROADCAST_ROOT)
    elif op == "send_recv":
        if peer is not None:
            ops = [dist.P2POp(dist.isend, send, peer), dist.P2POp(dist.irecv, recv, peer)]
            for req in dist.batch_isend_irecv(ops):
                req.wait()
    else:
        raise ValueError(f"unknown collective {op!r}; expected one of {OPS}")


def reference(op: str, idx: Any, rank: int, n_ranks: int, count: int, input_of: Any,
              peer: int | None = None) -> tuple[Any, Any]:
    """Expected output values at output indices `idx` on `rank`, and their error scale, in float64.

    `count` is the elements of one rank's input; input_of(r, src) returns rank r's input at indices
    src as float64 numpy values. Reductions sum every rank's term; gathers pick one rank's;
    broadcast is the root's input; send/recv is the peer's input.
    """
    import numpy as np

    _check(op)
    idx = np.asarray(idx, dtype=np.int64)
    ref, scale = np.zeros(idx.shape), np.zeros(idx.shape)
    per = count // n_ranks  # one rank's chunk for reduce-scatter and all-to-all
    if op in ("broadcast", "send_recv"):
        src_rank = BROADCAST_ROOT if op == "broadcast" else peer
        if src_rank is None:
            raise ValueError("send_recv reference needs the peer rank")
        vals = np.asarray(input_of(src_rank, idx), dtype=np.float64)
        return vals, np.abs(vals)
    for r in range(n_ranks):
        if op == "all_reduce":
            mask, src = np.ones(idx.shape, bool), idx
        elif op == "reduce_scatter":
            mask, src = np.ones(idx.shape, bool), rank * per + idx
        elif op == "all_gather":  # output block r is rank r's whole input
            mask, src = idx // count == r, idx % count
        else:  # all_to_all: output block r is chunk `rank` of rank r's input
            mask, src = idx // per == r, rank * per + idx % per
        if mask.any():
            vals = np.asarray(input_of(r, src[mask]), dtype=np.float64)
            ref[mask] += vals
            scale[mask] += np.abs(vals)
    return ref, scale
