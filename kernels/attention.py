"""Attention through torch's scaled_dot_product_attention, forward and backward. No timing here.

FLOPs (flash-attention benchmark convention): forward 4*b*h*sq*sk*d (two GEMMs, QK^T and PV),
halved when causal; backward 2.5x forward (five GEMMs of which one recomputes QK^T).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from recoque.errors import is_oom

BACKWARD_FACTOR = 2.5


def flop_count(batch: int, heads_q: int, seq_q: int, seq_k: int, head_dim: int, causal: bool, direction: str) -> int:
    if causal and seq_q != seq_k:
        # torch's is_causal aligns the mask top-left: query i sees min(i + 1, seq_k) keys, which the
        # halving convention does not count; no case here runs it
        raise ValueError(f"causal attention with seq_q {seq_q} != seq_k {seq_k}: its work is not counted")
    fwd = 4 * batch * heads_q * seq_q * seq_k * head_dim
    if causal:
        fwd //= 2
    return int(fwd * BACKWARD_FACTOR) if direction == "bwd" else fwd


def backend_names() -> list[str]:
    """Every SDPA backend torch can pin (on ROCm, FLASH_ATTENTION is AOTriton/CK; cuDNN is CUDA-only)."""
    return ["FLASH_ATTENTION", "CUDNN_ATTENTION", "EFFICIENT_ATTENTION", "MATH"]


def sdpa(q: Any, k: Any, v: Any, causal: bool, backend: str | None = None) -> Any:
    import torch.nn.functional as F

    # enable_gqa is passed only when the heads differ: torch < 2.5 has no such keyword.
    extra = {"enable_gqa": True} if q.shape[1] != k.shape[1] else {}
    if backend is None:
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, **extra)
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([getattr(SDPBackend, backend)]):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, **extra)


def accepts(q: Any, k: Any, v: Any, causal: bool, need_grad: bool, backend: str) -> bool:
    """Whether this backend alone runs these inputs (torch raises when it cannot)."""
    import warnings

    import torch

    # A backend that refuses the inputs first warns why (UserWarning), then raises: the refusal is
    # the answer here, so its warnings would only fill the log of every GPU run.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        try:
            out = sdpa(q, k, v, causal, backend)
            if need_grad:
                torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
        except (RuntimeError, AttributeError, NotImplementedError, TypeError) as exc:
            # out of memory is no refusal: raised, so the runner says so instead of "unsupported"
            if is_oom(exc):
                raise
            return False
    return True


def accepted_backends(q: Any, k: Any, v: Any, causal: bool, need_grad: bool) -> list[str]:
    """The backends that run this case. One out of memory (math attention's s x s scores) is left
    out when another runs it; when none does, the out-of-memory error is raised, not "unsupported"."""
    ok, oom = [], None
    for b in backend_names():
        try:
            if accepts(q, k, v, causal, need_grad, b):
                ok.append(b)
        except (RuntimeError, MemoryError) as exc:
            oom = exc
    if not ok and oom is not None:
        raise oom
    return ok


def pick_backend(q: Any, k: Any, v: Any, causal: bool, need_grad: bool) -> str:
    """The first backend that accepts the inputs (kept for callers that do not time backends)."""
    names = accepted_backends(q, k, v, causal, need_grad)
    if not names:
        raise RuntimeError("no scaled_dot_product_attention backend accepted these inputs")
    return names[0]


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """float64 attention for one batch entry: q (hq, sq, d), k/v (hkv, sk, d), GQA by head groups.

    Returns the output and its error scale P @ |V| (the bound for a convex combination of V rows).
    """
    hq, sq, d = q.shape
    hkv, sk, _ = k.shape
    group = hq // hkv
    kk, vv = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
    scores = q @ kk.transpose(0, 2, 1) / np.sqrt(d)
    if causal:  # top-left aligned, as torch's is_causal
        scores = np.where(np.tril(np.ones((sq, sk), dtype=bool)), scores, -np.inf)
    scores -= scores.max(axis=-1, keepdims=True)
    p = np.exp(scores)
    p /= p.sum(axis=-1, keepdims=True)
    return p @ vv, p @ np.abs(vv)


def reference_rows(q: Any, k: Any, v: Any, rows: np.ndarray, causal: bool) -> tuple[np.ndarray, np.ndarray]:
    """float64 attention of the query positions `rows` of every batch entry and head, computed where
    q, k, v live (torch, (b, h, s, d), GQA by head groups), and its error scale P @ |V|: arrays of
    shape (b, hq, len(rows), d) on the host."""
    p, kk, vv, unshape = _row_probabilities(q, k, v, rows, causal)
    return unshape(p @ vv), unshape(p @ vv.abs())


def reference_dq_rows(q: Any, k: Any, v: Any, dout: Any, rows: np.ndarray, causal: bool) -> np.ndarray:
    """float64 dq of sum(out * dout) at the query positions `rows` of every batch entry and head,
    computed where the tensors live: a query row's gradient needs only its own row of P and dout
    (dS = P o (dout V^T - rowsum(P o dout V^T)), dq = dS K / sqrt(d); FlashAttention-2, Dao 2023,
    Algorithm 2). Shape (b, hq, len(rows), d) on the host."""
    import torch

    p, kk, vv, unshape = _row_probabilities(q, k, v, rows, causal)
    b, hkv, gr, d = p.shape[0], kk.shape[1], p.shape[2], kk.shape[3]
    ix = torch.as_tensor(rows, device=q.device, dtype=torch.long)
    do = dout.detach().index_select(2, ix).to(torch.float64).reshape(b, hkv, gr, d)
    dp = do @ vv.transpose(-1, -2)
    ds = p * (dp - (p * dp).sum(-1, keepdim=True))
    return unshape(ds @ kk / float(np.sqrt(d)))


def _row_probabilities(q: Any, k: Any, v: Any, rows: np.ndarray, causal: bool):
    """Softmax rows P (b, hkv, group x len(rows), sk) of the sampled queries in float64, K and V in
    float64, and the reshape of a (b, hkv, group x r, d) result back to host (b, hq, r, d)."""
    import torch

    b, hq, _, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    group, r = hq // hkv, len(rows)
    ix = torch.as_tensor(rows, device=q.device, dtype=torch.long)
    qs = q.detach().index_select(2, ix).to(torch.float64).reshape(b, hkv, group * r, d)
    kk, vv = k.detach().to(torch.float64), v.detach().to(torch.float64)
    scores = qs @ kk.transpose(-1, -2) / float(np.sqrt(d))
    if causal:  # top-left aligned, as torch's is_causal: query i sees keys j <= i
        pos = torch.as_tensor(np.tile(rows, group), device=q.device)
        scores = scores.masked_fill(torch.arange(sk, device=q.device)[None, :] > pos[:, None], float("-inf"))
    return torch.softmax(scores, dim=-1), kk, vv, lambda x: x.reshape(b, hq, r, d).cpu().numpy()


def reference_grads(q: np.ndarray, k: np.ndarray, v: np.ndarray, dout: np.ndarray, causal: bool):
    """float64 gradients (dq, dk, dv) of sum(out * dout) via torch autograd on the CPU in float64."""
    import torch

    tq, tk, tv = (torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (q, k, v))
    out = sdpa(tq[None], tk[None], tv[None], causal, "MATH")[0]
    return [g.numpy() for g in torch.autograd.grad(out, (tq, tk, tv), torch.tensor(dout, dtype=torch.float64))]
