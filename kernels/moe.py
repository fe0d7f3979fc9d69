"""Mixture-of-experts grouped GEMM: each token's row goes to its top-k of E experts, and every
expert multiplies the rows routed to it by its own weight matrix (a MoE layer's up or down
projection). No timing here.

Work per call: 2 x (tokens x top_k) x n x k FLOPs: each routed (token, expert) pair is one row of
one expert's GEMM. The padding rows a tiled kernel adds to an expert's last tile are not useful
work and are not counted, so a kernel that pads shows it as a lower rate.

Routing: every token draws top_k distinct experts uniformly (the expected load of a balanced
router), from a seeded generator, so the rows per expert spread around tokens x top_k / E as a
real router's do. Rows are stored sorted by expert, as a MoE layer's permute step leaves them.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from recoque.kernels.gemm import BYTES_PER_ELEMENT

DTYPES = ("fp32", "bf16", "fp16")
OPS = ("grouped_mm", "expert_loop")  # one torch._grouped_mm call; one GEMM per expert where it is missing

# Expert GEMM shapes of published MoE models: (experts, top_k, hidden, expert ffn width, gated).
# The same figures as seeds/models.toml (experts, active_experts, hidden, ffn_hidden, gated_ffn),
# each from the model's released config.json.
MODELS = {
    "deepseek-v3": (256, 8, 7168, 2048, True),
    "gpt-oss-120b": (128, 4, 2880, 2880, True),
    "qwen3-30b-a3b": (128, 8, 2048, 768, True),
}


def up_shape(model: str) -> tuple[int, int, int, int]:
    """(experts, top_k, n, k) of the model's expert up projection (gate and up fused when gated)."""
    experts, top_k, hidden, ffn, gated = MODELS[model]
    return experts, top_k, (2 if gated else 1) * ffn, hidden


def down_shape(model: str) -> tuple[int, int, int, int]:
    """(experts, top_k, n, k) of the model's expert down projection (expert width back to hidden)."""
    experts, top_k, hidden, ffn, _ = MODELS[model]
    return experts, top_k, hidden, ffn


PROJECTIONS = {"up": up_shape, "down": down_shape}


def flop_count(tokens: int, top_k: int, n: int, k: int) -> int:
    return 2 * tokens * top_k * n * k


def bytes_per_set(tokens: int, experts: int, top_k: int, n: int, k: int, dtype: str) -> int:
    """The routed rows (A), every expert's weights (W) and the output rows of one set."""
    rows = tokens * top_k
    return (rows * k + experts * k * n + rows * n) * BYTES_PER_ELEMENT[dtype]


def route(tokens: int, experts: int, top_k: int, seed: int) -> np.ndarray:
    """Rows per expert (length E, summing to tokens x top_k) of a uniform top-k routing."""
    if not 1 <= top_k <= experts:
        raise ValueError(f"top_k must be 1..{experts}, got {top_k}")
    rng = np.random.default_rng(seed)
    picks = np.argsort(rng.random((tokens, experts)), axis=1)[:, :top_k]  # k distinct experts per token
    return np.bincount(picks.ravel(), minlength=experts).astype(np.int64)


def row_expert(counts: np.ndarray) -> np.ndarray:
    """The expert of each row when rows are sorted by expert."""
    return np.repeat(np.arange(len(counts)), counts)


def random_operands(rows: int, experts: int, n: int, k: int, dtype: str, device: str, seed: int):
    """Random normal routed rows A (rows, k) and expert weights W (E, k, n)."""
    import torch

    from recoque.kernels.gemm import torch_dtype

    gen = torch.Generator(device=device).manual_seed(seed)
    td = torch_dtype(dtype)
    a = torch.randn(rows, k, generator=gen, device=device, dtype=torch.float32).to(td)
    w = torch.randn(experts, k, n, generator=gen, device=device, dtype=torch.float32).to(td)
    return a, w


def offsets(counts: np.ndarray, device: str) -> Any:
    """End row of each expert's group, as torch._grouped_mm takes them (int32, cumulative)."""
    import torch

    return torch.as_tensor(np.cumsum(counts), dtype=torch.int32, device=device)


def grouped_mm(a: Any, w: Any, offs: Any) -> Any:
    """One grouped GEMM call over all experts (torch._grouped_mm: one kernel for every group)."""
    import torch

    return torch._grouped_mm(a, w, offs=offs)


def expert_loop(a: Any, w: Any, bounds: list[tuple[int, int]], out: Any) -> Any:
    """The fallback: one GEMM per expert that has rows, into its slice of `out`."""
    import torch

    for e, (lo, hi) in enumerate(bounds):
        if hi > lo:
            torch.matmul(a[lo:hi], w[e], out=out[lo:hi])
    return out


def bounds(counts: np.ndarray) -> list[tuple[int, int]]:
    ends = np.cumsum(counts)
    return [(int(e - c), int(e)) for c, e in zip(counts, ends)]


def sketch(a: Any, w: Any, out: Any, expert_bounds: list[tuple[int, int]], seed: int = 0) -> dict[str, np.ndarray]:
    """kernels.gemm.sketch for the grouped product (rows lo..hi of `a` times expert e's w[e]): the
    whole output's projections against each expert's A_e (W_e x) and (y_e^T A_e) W_e in float64."""
    from recoque.kernels.gemm import cat, host, project_output, row_blocks

    xd, yd, got = project_output(out, seed)
    ref_cx, ref_yc = [], 0.0
    for e, (lo, hi) in enumerate(expert_bounds):
        if hi <= lo:
            continue
        wx = cat([blk @ xd for _, blk in row_blocks(w[e])])
        ya = 0.0
        for r0, blk in row_blocks(a[lo:hi]):
            ref_cx.append(blk @ wx)
            ya = ya + yd[lo + r0:lo + r0 + blk.shape[0]] @ blk
        ref_yc = ref_yc + sum(ya[r0:r0 + blk.shape[0]] @ blk for r0, blk in row_blocks(w[e]))
    return {**got, "ref_cx": host(cat(ref_cx)), "ref_yc": host(ref_yc)}


def reference_rows(a_rows: np.ndarray, expert_cols: Callable[[int], np.ndarray],
                   experts_of_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 reference of sampled output rows (each with its own expert) at the sampled columns, and
    the error scale sum_k |a_ik||w_kj| (bench/verify.py).

    expert_cols(e) gives expert e's weights at the sampled columns only, (k, columns) in float64, and
    is asked once per expert the rows went to, one at a time: the whole W in float64 would be E x k x n
    x 8 bytes, 56 GiB for DeepSeek-V3's up projection (256 x 7168 x 4096); one expert's slice at 128
    columns is k x 128 x 8 bytes, 7 MiB."""
    experts_of_rows = np.asarray(experts_of_rows)
    ref: np.ndarray | None = None
    scale: np.ndarray | None = None
    for e in np.unique(experts_of_rows):
        wc = np.asarray(expert_cols(int(e)), dtype=np.float64)
        if ref is None or scale is None:
            ref, scale = np.empty((len(a_rows), wc.shape[1])), np.empty((len(a_rows), wc.shape[1]))
        mine = experts_of_rows == e
        ref[mine], scale[mine] = a_rows[mine] @ wc, np.abs(a_rows[mine]) @ np.abs(wc)
    if ref is None or scale is None:
        raise ValueError("reference_rows: no sampled rows")
    return ref, scale
