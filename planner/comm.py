"""Collective and point-to-point times: multi-tier alpha-beta with NCCL's bus-bandwidth factors.

For n ranks and a buffer of S bytes, NCCL reports bus bandwidth busbw = algbw * factor with
factor 2(n-1)/n for all-reduce and (n-1)/n for all-gather and reduce-scatter (nccl-tests
doc/PERFORMANCE.md). So time = latency + factor * S / busbw, where busbw is what one GPU's link
sustains in one direction (the system's per-GPU bandwidth times the profile's link efficiency).
Latency: ring steps within a node (n-1 hops); across nodes a tree for the all-reduce (2 log2 n
hops) and a ring for the all-gather and reduce-scatter (nodes-1 hops).
A group spanning nodes is hierarchical: reduce-scatter inside the node, all-reduce of S/n_local
across nodes on each GPU's own NIC, all-gather inside the node.
All functions take numpy arrays or scalars; a group of one costs nothing.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def _f(x: Any) -> np.ndarray:
    return np.asarray(x, dtype=float)


def allreduce_time(nbytes: Any, n: Any, busbw: Any, alpha: Any) -> Any:
    n = _f(n)
    t = 2.0 * (n - 1.0) * alpha + 2.0 * (n - 1.0) / np.maximum(n, 1.0) * nbytes / busbw
    return np.where(n > 1, t, 0.0)


def allgather_time(nbytes: Any, n: Any, busbw: Any, alpha: Any) -> Any:
    """All-gather (or reduce-scatter) whose full output buffer is `nbytes`."""
    n = _f(n)
    t = (n - 1.0) * alpha + (n - 1.0) / np.maximum(n, 1.0) * nbytes / busbw
    return np.where(n > 1, t, 0.0)


reduce_scatter_time = allgather_time


def tree_latency(n: Any, alpha: Any) -> Any:
    n = _f(n)
    return np.where(n > 1, 2.0 * np.ceil(np.log2(np.maximum(n, 1.0))) * alpha, 0.0)


def group_layout(size: Any, stride: Any, gpus_per_node: int) -> tuple[Any, Any]:
    """(ranks per node, nodes) of a group of `size` ranks spaced `stride` apart in rank order."""
    size, stride = _f(size), _f(stride)
    per_node_slots = np.maximum(np.floor(gpus_per_node / stride), 1.0)
    # The ranks of one node that belong to the group: the largest common divisor of the group size
    # and the slots a node offers, so that every node holds the same share.
    local = np.gcd(size.astype(np.int64), per_node_slots.astype(np.int64)).astype(float)
    local = np.where(stride >= gpus_per_node, 1.0, local)
    return local, size / local


def hierarchical_allreduce_time(nbytes: Any, local: Any, nodes: Any, bw_intra: Any, bw_inter: Any,
                                alpha_intra: Any, alpha_inter: Any) -> Any:
    """Reduce-scatter in node, all-reduce across nodes on 1/local of the data, all-gather in node."""
    intra = 2.0 * allgather_time(nbytes, local, bw_intra, alpha_intra)
    nodes = _f(nodes)
    inter_bw = 2.0 * (nodes - 1.0) / np.maximum(nodes, 1.0) * (nbytes / local) / bw_inter
    inter = np.where(nodes > 1, inter_bw + tree_latency(nodes, alpha_inter), 0.0)
    return intra + inter


def hierarchical_allgather_time(nbytes: Any, local: Any, nodes: Any, bw_intra: Any, bw_inter: Any,
                                alpha_intra: Any, alpha_inter: Any) -> Any:
    """All-gather (or reduce-scatter) of an `nbytes` output across local x nodes ranks."""
    n = _f(local) * _f(nodes)
    nodes = _f(nodes)
    # Across nodes first: each GPU receives (nodes-1) shards of nbytes/n on its own NIC;
    # then inside the node each GPU gathers the full buffer from its local peers. NCCL runs an
    # all-gather as a ring (no tree), so nodes-1 network steps of latency (its tuning model,
    # src/graph/tuning.cc: nInterSteps = nNodes - 1 for ring all-gather and reduce-scatter).
    inter = np.where(nodes > 1, (nodes - 1.0) / np.maximum(n, 1.0) * nbytes / bw_inter
                     + (nodes - 1.0) * alpha_inter, 0.0)
    intra = allgather_time(nbytes, local, bw_intra, alpha_intra)
    return np.where(n > 1, intra + inter, 0.0)


def alltoall_time(nbytes: Any, local: Any, nodes: Any, bw_intra: Any, bw_inter: Any,
                  alpha_intra: Any, alpha_inter: Any, inter_nbytes: Any = None) -> Any:
    """All-to-all in which every rank of local x nodes sends `nbytes` in all, spread evenly over the
    ranks (MoE token dispatch or combine). Unlike an all-gather nothing is shared between
    destinations, so the (nodes-1)/nodes of it bound for other nodes crosses this GPU's NIC share,
    beside the (local-1)/n for its node's peers on the scale-up links (the two overlap: separate
    links); one round of latency. `inter_nbytes`: what crosses the NIC when the dispatcher sends one
    copy per destination node and forwards inside it (DeepEP, HybridEP)."""
    local, nodes = _f(local), _f(nodes)
    n = local * nodes
    intra = (local - 1.0) / np.maximum(n, 1.0) * nbytes / bw_intra
    off = (nodes - 1.0) / np.maximum(nodes, 1.0) * nbytes if inter_nbytes is None else inter_nbytes
    inter = np.where(nodes > 1, off / bw_inter, 0.0)
    lat = np.where(nodes > 1, alpha_inter, alpha_intra)
    return np.where(n > 1, np.maximum(intra, inter) + lat, 0.0)


def p2p_time(nbytes: Any, bw: Any, alpha: Any) -> Any:
    return alpha + nbytes / bw


def sharded_allgather_time(nbytes: Any, local: Any, nodes: Any, bw_intra: Any, bw_inter: Any,
                           alpha_intra: Any, alpha_inter: Any) -> Any:
    """ZeRO-3/FSDP weight all-gather (or gradient reduce-scatter) of an `nbytes` output over a DP
    group of local x nodes ranks, issued per layer in a flat ring (NCCL's all-gather and
    reduce-scatter are ring algorithms): when the group spans nodes every rank's (n-1)/n S bytes
    are bound by its share of the node's NICs (`bw_inter` is already per GPU), with one
    inter-node latency per ring step; inside one node, the plain ring at the intra-node rate."""
    local, nodes = _f(local), _f(nodes)
    n = local * nodes
    inter = (n - 1.0) / np.maximum(n, 1.0) * nbytes / bw_inter + (n - 1.0) * alpha_inter
    intra = allgather_time(nbytes, local, bw_intra, alpha_intra)
    return np.where(n > 1, np.where(nodes > 1, inter, intra), 0.0)
