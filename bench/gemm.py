"""GEMM benchmark: one case per (m, n, k, dtype, backend); the sweep finds max-achievable TFLOP/s.

Verification samples 64 rows x 256 columns of C and compares them with a float64 product of the
same operands on the CPU (normalised by sum_k |a_ik||b_kj|), then holds the whole of C through
random projections computed on the device (Freivalds' check, kernels.gemm.sketch), so every timed
shape is checked, every tile included, without copying whole matrices back.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from recoque.bench import features
from recoque.bench.base import Case, Unsupported, Verification, Work
from recoque.bench.sweep import SweepPlan, neighbours
from recoque.bench.timing import device_scope
from recoque.bench.verify import NORMWISE_TOLERANCE, SKETCH_TOLERANCE, TOLERANCE, compare, compare_sketch
from recoque.kernels import gemm as K

SAMPLE_ROWS, SAMPLE_COLS = 64, 256


class GemmCase(Case):
    benchmark = "gemm"

    def __init__(self, m: int, n: int, k: int, dtype: str, backend: str = "torch", tags: Iterable[str] = (),
                 fast_accum: bool = False):
        if dtype not in K.DTYPES:
            from recoque.errors import BadInput

            raise BadInput(f"unknown GEMM dtype {dtype!r}", f"use one of {', '.join(K.DTYPES)}")
        self.m, self.n, self.k, self.dtype, self.backend = m, n, k, dtype, backend
        self.op = "scaled_mm" if dtype == "fp8" else "matmul"
        self.params = {"m": m, "n": n, "k": k}
        self.fast_accum = bool(fast_accum) and dtype == "fp8"
        if dtype == "fp8":  # recorded either way: fast accumulation changes the rate on CUDA
            self.params["fast_accum"] = self.fast_accum
        self.tags = tuple(tags)
        self._sets: list | None = None

    def work(self) -> Work:
        return Work(flop_count=K.flop_count(self.m, self.n, self.k))

    def bytes_per_set(self) -> int:
        return K.bytes_per_set(self.m, self.n, self.k, self.dtype)

    def setup(self, device: Any, n_sets: int, seed: int) -> None:
        self._check_supported(device)
        self._device = device
        if self.backend == "numpy":
            rng = np.random.default_rng(seed)
            npd = np.float64 if self.dtype == "fp64" else np.float32
            self._sets = [(rng.standard_normal((self.m, self.k)).astype(npd),
                           rng.standard_normal((self.k, self.n)).astype(npd),
                           np.empty((self.m, self.n), dtype=npd), None) for _ in range(n_sets)]
            return
        import torch

        if device.kind != "cpu":
            self.tags = tuple(self.tags) + self._precision_settings(device)
        out_dtype = torch.bfloat16 if self.dtype == "fp8" else K.torch_dtype(self.dtype)
        with device_scope(device):
            drawn = K.random_operand_sets(self.m, self.n, self.k, self.dtype, device.torch_device, seed, n_sets,
                                          device.fp8_format)
            outs = torch.empty(n_sets, self.m, self.n, dtype=out_dtype, device=device.torch_device)
            self._sets = [(a, b, outs[i], scales) for i, (a, b, scales) in enumerate(drawn)]

    def _precision_settings(self, device: Any) -> tuple[str, ...]:
        """Switch tf32 on for tf32 cases only, and say in the tags what was set."""
        settings = K.rocm_tf32_env() if device.kind == "rocm" else {}
        settings.update(K.set_tf32(self.dtype == "tf32"))
        if self.dtype not in ("tf32", "fp32"):
            return ()
        return tuple(f"setting:{k}={v}" for k, v in settings.items())

    def activate(self) -> None:
        # The tf32 switch is global to the process: a fp32 or bf16 case set up after this one (the
        # confirmation rounds hold several) turns it off, and a tf32 case then times at fp32 speed
        # (seen on an H200: 347 TFLOP/s in round 1, 51 in rounds 2 and 3).
        if self._device.kind != "cpu":  # the numpy backend runs on the CPU only
            K.set_tf32(self.dtype == "tf32")

    def _check_supported(self, device: Any) -> None:
        if self.backend == "numpy" and (device.kind != "cpu" or self.dtype not in ("fp64", "fp32")):
            raise Unsupported("the numpy backend runs fp64/fp32 on the CPU only")
        if device.kind == "cpu" and self.dtype in ("tf32", "fp8"):
            raise Unsupported(f"{self.dtype} GEMM needs a GPU (CPUs have no {self.dtype} arithmetic)")
        if self.dtype == "fp8" and not device.fp8_format:
            raise Unsupported("this device has no known fp8 format for torch._scaled_mm")
        if self.dtype == "tf32" and device.peak("tf32")[0] is None:
            raise Unsupported("no hardware TF32 on this device (emulated or absent)")
        if self.dtype == "fp8":
            import torch

            features.require("scaled_mm_out")
            if not hasattr(torch, "_scaled_mm"):
                raise Unsupported("this torch has no _scaled_mm")

    def run(self, i: int) -> None:
        a, b, c, scales = self._sets[i]  # type: ignore[index]
        if self.backend == "numpy":
            K.matmul_numpy(a, b, c)
        else:
            K.matmul_torch(a, b, c, scales, **({"fast_accum": True} if self.fast_accum else {}))

    def verify(self) -> Verification:
        with device_scope(self._device):
            return self._verify()

    def _verify(self) -> Verification:
        a, b, c, scales = self._sets[0]  # type: ignore[index]
        K.fill_nan(c)  # so a tile the kernel never writes cannot pass on what an earlier call left there
        self.run(0)
        if self._device.kind != "cpu":
            import torch

            torch.cuda.synchronize(self._device.torch_device)
        rng = np.random.default_rng(12345)
        rows = np.sort(rng.choice(self.m, size=min(SAMPLE_ROWS, self.m), replace=False))
        cols = np.sort(rng.choice(self.n, size=min(SAMPLE_COLS, self.n), replace=False))
        # Sample on the device, then copy only the sampled rows/columns to the host in float64.
        a_rows, b_cols, got = K.take(a, rows, 0), K.take(b, cols, 1), K.take(K.take(c, rows, 0), cols, 1)
        ref, scale = K.reference_rows(a_rows, b_cols)
        f = K.scale_product(scales)
        sampled = compare(K.to_host_f64(got), f * ref, f * scale, TOLERANCE[self.dtype],
                          what=f"C[{len(rows)} rows x {len(cols)} cols]", normwise=NORMWISE_TOLERANCE.get(self.dtype))
        return sampled if not sampled.ok else self._verify_whole(a, b, c, scales)

    def _verify_whole(self, a: Any, b: Any, c: Any, scales: Any) -> Verification:
        """Every row and column of C through its random projections (kernels.gemm.sketch)."""
        return compare_sketch(K.sketch(a, b, c, scales, seed=54321), SKETCH_TOLERANCE[self.dtype],
                              f"C x over all {self.m} rows", f"y^T C over all {self.n} columns")

    def teardown(self) -> None:
        self._sets = None
        if getattr(self, "_device", None) is not None and self._device.kind != "cpu":
            K.set_tf32(False)


# ---- the sweep ---------------------------------------------------------------------------------

# Shapes that public max-achievable tables found best (MAMF table, stas00/ml-engineering
# compute/accelerator/README.md; AMD MAF blog: K = 32K+128 avoids power-of-two strides).
SEED_SHAPES_GPU = [(2048, 2048, 13312), (10240, 15360, 8192), (13312, 10240, 8192), (12288, 8192, 8192),
                   (1024, 10240, 5120), (4096, 4864, 32896)]
GRID_GPU_MN = (2048, 4096, 8192, 12288, 16384)
GRID_GPU_K = (4096, 8192, 13312, 16384)
GRID_CPU = (512, 1024, 2048)


def gpu_sweep_shapes(quick: bool, compute_units: int | None) -> list[tuple[int, int, int]]:
    if quick:
        shapes = [(4096, 4096, 4096), (8192, 8192, 8192)] + SEED_SHAPES_GPU[:3]
    else:
        shapes = [(m, n, k) for m in GRID_GPU_MN for n in GRID_GPU_MN for k in GRID_GPU_K] + SEED_SHAPES_GPU
    if compute_units:
        shapes += cu_tiled_shapes(compute_units)
    return list(dict.fromkeys(shapes))


def cu_tiled_shapes(compute_units: int, k: int = 32896) -> list[tuple[int, int, int]]:
    """AMD's rule: M x N as a factorisation of the CU count times the tile (256 x 192), one wave."""
    out = []
    for f in range(2, int(compute_units ** 0.5) + 1):
        if compute_units % f == 0:
            g = compute_units // f
            out += [(f * 256, g * 192, k), (g * 256, f * 192, k)]
    return out[:4]


def refine_shapes(best: tuple[int, int, int], step: int = 256) -> list[tuple[int, int, int]]:
    """Neighbours of the best shape, one step along each dimension (MAMF's fine range, locally)."""
    return neighbours(best, step, lo=1)


# Refinement after the coarse grid (bench/sweep.py): GPU grids are 2048-4096 apart, so the search
# starts at 1024 and halves down to MAMF's usual fine step of 256; CPU grids (squares 512-4096) start
# at 512. On the CPU the rate is flat over large shapes, so fewer refinement shapes are allowed.
REFINE_GPU = {"step": 1024, "min_step": 256, "top": 2, "max_shapes": 64}
REFINE_CPU = {"step": 512, "min_step": 256, "top": 1, "max_shapes": 8}


def sweep_plan(device: Any, quick: bool, dtype: str, coarse: Iterable[tuple[int, int, int]]) -> SweepPlan | None:
    """How the sweep refines around its best coarse shapes; None when it does not (--quick, fp16 on
    a CPU without fp16 arithmetic: about 1 GFLOP/s, where more shapes only cost time)."""
    coarse = tuple(dict.fromkeys(coarse))
    if quick or not coarse or (device.kind == "cpu" and dtype == "fp16"):
        return None
    knobs = REFINE_CPU if device.kind == "cpu" else REFINE_GPU
    return SweepPlan(coarse=coarse, lo=knobs["min_step"], hi=max(max(s) for s in coarse), step=knobs["step"],
                     min_step=knobs["min_step"], top=knobs["top"], max_shapes=knobs["max_shapes"])


def cpu_sweep_shapes(quick: bool, dtype: str) -> list[tuple[int, int, int]]:
    if dtype == "fp16":  # without avx512_fp16 torch converts element by element: ~1 GFLOP/s
        return [(256, 256, 256)] if quick else [(256, 256, 256), (512, 512, 512), (1024, 1024, 1024)]
    sizes = GRID_CPU + ((4096,) if dtype == "bf16" else ()) + (() if quick else (3072, 4096))
    return [(s, s, s) for s in dict.fromkeys(sizes)]


# LLM layer shapes (m = tokens in a micro-batch, n = output features, k = input features), from the
# models' published architectures: (name, hidden, ffn, heads, kv_heads, gated ffn).
LLM_MODELS = {
    "mistral-7b": (4096, 14336, 32, 8, True),
    "llama3-70b": (8192, 28672, 64, 8, True),
    "gpt3-175b": (12288, 49152, 96, 96, False),
    "llama3-405b": (16384, 53248, 128, 8, True),
}


def llm_layer_shapes(model: str, tokens: int) -> list[tuple[str, tuple[int, int, int]]]:
    h, ffn, heads, kv, gated = LLM_MODELS[model]
    head_dim = h // heads
    up = 2 * ffn if gated else ffn
    return [("qkv", (tokens, h + 2 * kv * head_dim, h)), ("attn_out", (tokens, h, h)),
            ("ffn_up", (tokens, up, h)), ("ffn_down", (tokens, h, ffn))]


def llm_cases(device: Any, quick: bool, dtypes: Iterable[str]) -> list[GemmCase]:
    if device.kind == "cpu":
        plan = [("mistral-7b", 256)]
    else:
        plan = [("llama3-70b", 4096), ("gpt3-175b", 4096)] if quick else [(m, 8192) for m in LLM_MODELS]
    out = []
    for dtype in dtypes:
        if device.kind == "cpu" and dtype not in (("bf16",) if quick else ("bf16", "fp32")):
            continue
        for model, tokens in plan:
            for layer, (m, n, k) in llm_layer_shapes(model, tokens):
                out.append(GemmCase(m, n, k, dtype, tags=("llm", f"llm:{model}:{layer}", f"tokens:{tokens}")))
    return out


def sweep_cases(device: Any, quick: bool, dtype: str) -> list[GemmCase]:
    if device.kind == "cpu":
        backends = ("torch", "numpy") if dtype in ("fp64", "fp32") else ("torch",)
        return [GemmCase(m, n, k, dtype, backend=b, tags=("sweep",))
                for (m, n, k) in cpu_sweep_shapes(quick, dtype) for b in backends]
    cases = [GemmCase(m, n, k, dtype, tags=("sweep",)) for (m, n, k) in gpu_sweep_shapes(quick, device.compute_units)]
    # AMD's acceptance shapes for this dtype, judged by `bench accept` against seeds/acceptance.toml
    cases += [GemmCase(m, n, k, dtype, tags=("acceptance",)) for (m, n, k) in ACCEPTANCE_SHAPES.get(dtype, ())]
    return cases


# The shapes AMD's floors are stated at: rocblas-bench FP32 4000^3 (ROCm/system-acceptance-docs) and the
# RVS GPU stress test's hipBLASLt GEMMs, 4864x4096x8192 on CDNA3 and 8192x8192x16384 on CDNA4, in bf16,
# fp16 and fp8 (ROCm/ROCmValidationSuite rvs/conf/<GPU>/gst_single.conf); every GPU runs all of them.
RVS_GST_SHAPES = ((4864, 4096, 8192), (8192, 8192, 16384))
ACCEPTANCE_SHAPES = {"fp32": ((4000, 4000, 4000),), "bf16": RVS_GST_SHAPES, "fp16": RVS_GST_SHAPES,
                     "fp8": RVS_GST_SHAPES}

