"""GEMM: C = A @ B per dtype, on torch (GPU and CPU) or numpy (CPU BLAS). No timing here.

Work per call: 2*m*n*k FLOPs (one multiply and one add per inner-product term).
fp8 goes through torch._scaled_mm with per-tensor scales: e4m3fnuz on MI300-class (gfx942),
OCP e4m3fn on MI350+ and H100 (the format is the device's `fp8_format`).
"""
from __future__ import annotations

from typing import Any

import numpy as np

DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8")
BYTES_PER_ELEMENT = {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}


FP8_SCALES = (0.5, 0.25)  # scale_a, scale_b of the fp8 cases
SKETCH_CHUNK_BYTES = 256 * 2**20  # float64 rows widened at a time by `sketch`


def flop_count(m: int, n: int, k: int) -> int:
    return 2 * m * n * k


def bytes_per_set(m: int, n: int, k: int, dtype: str) -> int:
    """A, B and C of one set; fp8 writes its C in bf16."""
    e = BYTES_PER_ELEMENT[dtype]
    c = 2 if dtype == "fp8" else e
    return (m * k + k * n) * e + m * n * c


def torch_dtype(dtype: str) -> Any:
    import torch

    return {"fp64": torch.float64, "fp32": torch.float32, "tf32": torch.float32,
            "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]


def fp8_torch_dtype(fp8_format: str) -> Any:
    import torch

    return {"e4m3fn": torch.float8_e4m3fn, "e4m3fnuz": torch.float8_e4m3fnuz}[fp8_format]


def set_tf32(enabled: bool) -> dict[str, str]:
    """fp32 GEMMs must run in true fp32; tf32 cases switch the tensor-core path on.

    Returns what was set, for the record. On ROCm torch also needs HIPBLASLT_ALLOW_TF32=1 in the
    environment before its first hipBLASLt call (see `rocm_tf32_env`), or allow_tf32 is ignored.
    """
    import torch

    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled
    precision = "high" if enabled else "highest"
    try:
        torch.set_float32_matmul_precision(precision)
    except (AttributeError, RuntimeError):  # very old builds: allow_tf32 alone
        precision = "unset"
    return {"allow_tf32": str(enabled).lower(), "float32_matmul_precision": precision}


def rocm_tf32_env() -> dict[str, str]:
    """Set HIPBLASLT_ALLOW_TF32=1 unless the user chose a value; torch reads it once, at first use.

    With it set, fp32 cases still run in fp32: torch then follows allow_tf32, which set_tf32 turns
    off for them.
    """
    import os

    preset = os.environ.get("HIPBLASLT_ALLOW_TF32")
    os.environ.setdefault("HIPBLASLT_ALLOW_TF32", "1")
    return {"HIPBLASLT_ALLOW_TF32": os.environ["HIPBLASLT_ALLOW_TF32"] + (" (user)" if preset is not None else "")}


def random_operands(m: int, n: int, k: int, dtype: str, device: str, seed: int, fp8_format: str | None = None):
    """Random normal A (m,k) and B (k,n); for fp8 also the per-tensor scales, B column-major."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    if dtype != "fp8":
        td = torch_dtype(dtype)
        a = torch.randn(m, k, generator=gen, device=device, dtype=torch.float32).to(td)
        b = torch.randn(k, n, generator=gen, device=device, dtype=torch.float32).to(td)
        return a, b, None
    f8 = fp8_torch_dtype(fp8_format or "e4m3fn")
    a = torch.randn(m, k, generator=gen, device=device, dtype=torch.float32).to(f8)
    # _scaled_mm wants B column-major: make (n,k) row-major and view it transposed.
    b = torch.randn(n, k, generator=gen, device=device, dtype=torch.float32).to(f8).t()
    # Scales other than 1 (powers of two: the product stays exact), so a kernel that drops them fails.
    scales = (torch.tensor(FP8_SCALES[0], device=device), torch.tensor(FP8_SCALES[1], device=device))
    return a, b, scales


SET_CHUNK_ELEMENTS = 2**24  # random operands drawn this many fp32 values at a time (64 MiB), then cast


def random_operand_sets(m: int, n: int, k: int, dtype: str, device: str, seed: int, count: int,
                        fp8_format: str | None = None) -> list:
    """`count` distinct (A, B, scales) sets as random_operands gives one, a chunk of sets at a time.

    Rotating through 2x a 480 MiB last-level cache takes thousands of small sets. Only the first
    chunk is drawn (randn costs about 3 ns a value on one CPU core, 4 of a quick case's 5.6 s); each
    later chunk is that chunk rolled by its own offset: a copy, new memory holding the same random
    normal values in another place, which is all a timed rotation needs."""
    import torch

    per_set = max(1, (m * k + k * n))
    chunk = max(1, min(count, SET_CHUNK_ELEMENTS // per_set))
    gen = torch.Generator(device=device).manual_seed(seed)
    fp8 = dtype == "fp8"
    td = fp8_torch_dtype(fp8_format or "e4m3fn") if fp8 else torch_dtype(dtype)
    # B column-major for fp8 (as _scaled_mm takes it): drawn (n, k) and viewed transposed below
    a0 = torch.randn(chunk, m, k, generator=gen, device=device, dtype=torch.float32).to(td)
    b0 = torch.randn(chunk, *((n, k) if fp8 else (k, n)), generator=gen, device=device,
                     dtype=torch.float32).to(td)
    scales = (torch.tensor(FP8_SCALES[0], device=device), torch.tensor(FP8_SCALES[1], device=device)) \
        if fp8 else None
    out: list = []
    for j, start in enumerate(range(0, count, chunk)):
        c = min(chunk, count - start)
        a, b = (a0, b0) if j == 0 else (_rolled(a0, j), _rolled(b0, j))
        out += [(a[i], b[i].t() if fp8 else b[i], scales) for i in range(c)]
    return out


def _rolled(x: Any, shift: int) -> Any:
    """A copy of x with its values moved `shift` places along the flat order (1-byte view: fp8 too)."""
    import torch

    flat = x.reshape(-1).view(torch.uint8) if x.element_size() == 1 else x.reshape(-1)
    return torch.roll(flat, shift * 7919).view(x.dtype).reshape(x.shape)


def matmul_torch(a: Any, b: Any, out: Any, scales: Any = None, fast_accum: bool = False) -> Any:
    """C = A @ B into `out`; fp8 (scales given) through _scaled_mm, with or without fast accumulation
    (use_fast_accum: fp8 partial sums kept in lower precision on CUDA; hipBLASLt may ignore it)."""
    import torch

    if scales is None:
        return torch.matmul(a, b, out=out)
    return torch._scaled_mm(a, b, scale_a=scales[0], scale_b=scales[1], out_dtype=torch.bfloat16, out=out,
                            use_fast_accum=fast_accum)


def matmul_numpy(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.matmul(a, b, out=out)


def take(x: Any, index: np.ndarray, dim: int) -> Any:
    """x's rows (dim 0) or columns (dim 1) at `index`, selected where x lives (GPU stays GPU).

    fp8 tensors are selected through a uint8 view of the same bytes: index_select has no fp8
    kernels on some builds, and a byte view works for any strides.
    """
    if isinstance(x, np.ndarray):
        return np.take(x, index, axis=dim)
    import torch

    ix = torch.as_tensor(index, device=x.device, dtype=torch.long)
    if x.element_size() == 1 and x.dtype.is_floating_point:
        return x.view(torch.uint8).index_select(dim, ix).view(x.dtype)
    return x.index_select(dim, ix)


def reference_rows(a_rows: Any, b_cols: Any) -> tuple[np.ndarray, np.ndarray]:
    """float64 reference for sampled rows/columns of C = A @ B, and the error scale sum_k |a_ik||b_kj|."""
    a64, b64 = to_host_f64(a_rows), to_host_f64(b_cols)
    return a64 @ b64, np.abs(a64) @ np.abs(b64)


def to_host_f64(x: Any) -> np.ndarray:
    """A (small, already sampled) array as float64 on the host: converted on the device, then copied."""
    if isinstance(x, np.ndarray):
        return x.astype(np.float64, copy=False)
    import torch

    x = x.detach()
    if x.element_size() == 1:  # fp8: widen through fp32 (exact), the conversion every build has
        x = x.to(torch.float32)
    return x.to(torch.float64).cpu().numpy()


_to_f64 = to_host_f64  # older name, kept for callers


def fill_nan(c: Any) -> None:
    """Fill an output (numpy or torch) with NaN in place."""
    if isinstance(c, np.ndarray):
        c.fill(np.nan)
    else:
        c.fill_(float("nan"))


def scale_product(scales: Any) -> float:
    """The factor _scaled_mm applies to A @ B (1 without scales)."""
    return 1.0 if scales is None else float(scales[0]) * float(scales[1])


def sketch(a: Any, b: Any, c: Any, scales: Any = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Projections of the whole of C = A @ B by random normal vectors x (n) and y (m), in float64
    where the operands live (Freivalds' check): C x against A (B x), y^T C against (y^T A) B, and
    C's row and column norms as their scales. A skipped or corrupted tile anywhere in C moves the
    projections of its rows and columns, which a sample of rows and columns can miss.
    """
    xd, yd, got = project_output(c, seed)
    f = scale_product(scales)
    bx = cat([blk @ xd for _, blk in row_blocks(b)])
    ref_cx, ya = [], 0.0
    for lo, blk in row_blocks(a):
        ref_cx.append(blk @ bx)
        ya = ya + yd[lo:lo + blk.shape[0]] @ blk
    ref_yc = sum(ya[lo:lo + blk.shape[0]] @ blk for lo, blk in row_blocks(b))
    return {**got, "ref_cx": f * host(cat(ref_cx)), "ref_yc": f * host(ref_yc)}


def project_output(c: Any, seed: int) -> tuple[Any, Any, dict[str, np.ndarray]]:
    """The random vectors x (columns) and y (rows) where c lives, and c's projections C x and y^T C
    with its row and column norms (host float64) for `sketch` and its grouped-GEMM twin."""
    m, n = c.shape
    rng = np.random.default_rng(seed)
    xd, yd = _like(rng.standard_normal(n), c), _like(rng.standard_normal(m), c)
    cx, rows_sq, yc, cols_sq = [], [], 0.0, 0.0
    for lo, blk in row_blocks(c):
        cx.append(blk @ xd)
        rows_sq.append((blk * blk).sum(1))
        yc = yc + yd[lo:lo + blk.shape[0]] @ blk
        cols_sq = cols_sq + (blk * blk).sum(0)
    return xd, yd, {"cx": host(cat(cx)), "row_norm": np.sqrt(host(cat(rows_sq))),
                    "yc": host(yc), "col_norm": np.sqrt(host(cols_sq))}


def row_blocks(t: Any):
    """(first row, rows widened to float64) over t, a chunk of SKETCH_CHUNK_BYTES at a time."""
    step = max(1, SKETCH_CHUNK_BYTES // (8 * max(1, t.shape[1])))
    for lo in range(0, t.shape[0], step):
        yield lo, _f64_here(t[lo:lo + step])


def _f64_here(t: Any) -> Any:
    """float64 on the operand's own device (fp8 widened through fp32, exact)."""
    if isinstance(t, np.ndarray):
        return t.astype(np.float64)
    import torch

    t = t.detach()
    return (t.to(torch.float32) if t.element_size() == 1 else t).to(torch.float64)


def _like(v: np.ndarray, t: Any) -> Any:
    if isinstance(t, np.ndarray):
        return v
    import torch

    return torch.from_numpy(v).to(t.device)


def cat(parts: list) -> Any:
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    import torch

    return torch.cat(parts)


def host(v: Any) -> np.ndarray:
    return v if isinstance(v, np.ndarray) else v.cpu().numpy()
