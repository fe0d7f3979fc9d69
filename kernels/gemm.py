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


def set_tf32(enabled: bool) -> None:
    """fp32 GEMMs must run in true fp32; tf32 cases switch the tensor-core path on."""
    import torch

    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


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
    scales = (torch.tensor(1.0, device=device), torch.tensor(1.0, device=device))
    return a, b, scales


def matmul_torch(a: Any, b: Any, out: Any, scales: Any = None) -> Any:
    import torch

    if scales is None:
        return torch.matmul(a, b, out=out)
    return torch._scaled_mm(a, b, scale_a=scales[0], scale_b=scales[1], out_dtype=torch.bfloat16, out=out)


def matmul_numpy(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    return np.matmul(a, b, out=out)


def reference_rows(a: Any, b: Any, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float64 reference for the chosen rows of C, and the error scale sum_k |a_ik||b_kj|."""
    a64 = _to_f64(a)[rows]
    b64 = _to_f64(b)
    return a64 @ b64, np.abs(a64) @ np.abs(b64)


def _to_f64(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x.astype(np.float64, copy=False)
    import torch

    return x.detach().to(device="cpu").to(torch.float64).numpy()
