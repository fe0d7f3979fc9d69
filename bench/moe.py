"""MoE grouped GEMM benchmark: the expert up and down projections of published MoE models at a sweep
of rows per expert, the quantity a serving or training step of a MoE model sets (tokens x top_k / E).

A grouped GEMM's rate falls below the dense GEMM's of the same n x k as the rows per expert drop:
each expert's last row tile is padded and its weights are read for few rows. The sweep measures
that curve on the device; only the harness divides the declared work by time.

Verification samples 64 output rows (each with its own expert) x 128 columns and compares them with
a float64 product of the same operands on the CPU, normalised by sum_k |a_ik||w_kj|. Only the sampled
columns of the experts those rows went to are copied, one expert at a time (k x 128 in float64, 7 MiB
at DeepSeek-V3's k = 7168), as the GEMM check copies only its sampled rows and columns: the whole
expert weights in float64 are 56 GiB for DeepSeek-V3's up projection. The whole output is then
checked through its random projections, computed in bounded blocks (kernels.gemm.row_blocks).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from recoque.bench.base import Case, Verification, Work
from recoque.errors import is_oom
from recoque.bench.timing import device_scope
from recoque.bench.verify import NORMWISE_TOLERANCE, SKETCH_TOLERANCE, TOLERANCE, compare, compare_sketch
from recoque.kernels import moe as K

SAMPLE_ROWS, SAMPLE_COLS = 64, 128

# Mean rows per expert of the sweep: decode batches (8-32 rows an expert) up to prefill chunks.
ROWS_PER_EXPERT_GPU = (8, 32, 128, 512)
ROWS_PER_EXPERT_GPU_QUICK = (32, 512)
GPU_MODELS = tuple(K.MODELS)
# On a CPU a published expert shape costs seconds per call; a small synthetic layer (8 experts,
# top 2, 512 x 512) exercises the same path and says so in its label.
CPU_SHAPE = {"model": "synthetic-8x512", "experts": 8, "top_k": 2, "n": 512, "k": 512}
ROWS_PER_EXPERT_CPU = (32, 256)


class MoeCase(Case):
    benchmark = "moe"

    def __init__(self, model: str, experts: int, top_k: int, tokens: int, n: int, k: int, dtype: str,
                 tags: Iterable[str] = ()):
        if dtype not in K.DTYPES:
            from recoque.errors import BadInput

            raise BadInput(f"unknown MoE GEMM dtype {dtype!r}", f"use one of {', '.join(K.DTYPES)}")
        self.experts, self.top_k, self.tokens, self.n, self.k, self.dtype = experts, top_k, tokens, n, k, dtype
        self.op = "grouped_mm"
        self.params = {"model": model, "experts": experts, "top_k": top_k, "tokens": tokens, "n": n, "k": k}
        self.tags = tuple(tags) + (f"rows_per_expert:{tokens * top_k / experts:g}",)
        self._sets: list | None = None

    def work(self) -> Work:
        return Work(flop_count=K.flop_count(self.tokens, self.top_k, self.n, self.k))

    def bytes_per_set(self) -> int:
        return K.bytes_per_set(self.tokens, self.experts, self.top_k, self.n, self.k, self.dtype)

    def setup(self, device: Any, n_sets: int, seed: int) -> None:
        self._device = device
        self._counts = K.route(self.tokens, self.experts, self.top_k, seed)
        rows = int(self._counts.sum())
        dev = device.torch_device
        with device_scope(device):
            self._offs = K.offsets(self._counts, dev)
            self._bounds = K.bounds(self._counts)
            self._sets = []
            for i in range(n_sets):
                a, w = K.random_operands(rows, self.experts, self.n, self.k, self.dtype, dev, seed + i)
                self._sets.append((a, w, None))
            self._pick_op()

    def _pick_op(self) -> None:
        """torch._grouped_mm where this build and device run it on these operands (one kernel for all
        experts); else one GEMM per expert, recorded as op expert_loop."""
        import torch

        a, w, _ = self._sets[0]  # type: ignore[index]
        try:
            K.grouped_mm(a, w, self._offs)
            self.op, self.backend = "grouped_mm", "torch._grouped_mm"
        except (AttributeError, RuntimeError, NotImplementedError, TypeError) as exc:
            if is_oom(exc):  # not "unsupported": the runner says out of memory at this size
                raise
            self.op, self.backend = "expert_loop", "torch.matmul per expert"
            self._sets = [(a, w, torch.empty(a.shape[0], self.n, dtype=a.dtype, device=a.device))
                          for a, w, _ in self._sets]

    def run(self, i: int) -> Any:
        a, w, out = self._sets[i]  # type: ignore[index]
        if self.op == "grouped_mm":
            return K.grouped_mm(a, w, self._offs)
        return K.expert_loop(a, w, self._bounds, out)

    def verify(self) -> Verification:
        with device_scope(self._device):
            out = self._sets[0][2]  # type: ignore[index]
            if out is not None:  # the per-expert loop writes in place: no row may pass on an earlier call's
                out.fill_(float("nan"))
            got = self.run(0)
            if self._device.kind != "cpu":
                import torch

                torch.cuda.synchronize(self._device.torch_device)
            sampled = self._compare(got)
            return self._verify_whole(got) if sampled.ok else sampled

    def _verify_whole(self, got: Any) -> Verification:
        """Every row and column of the grouped output through its random projections (kernels.moe.sketch):
        a sample of 64 rows can miss an expert's rows altogether."""
        a, w, _ = self._sets[0]  # type: ignore[index]
        return compare_sketch(K.sketch(a, w, got, self._bounds, seed=54321), SKETCH_TOLERANCE[self.dtype],
                              f"out x over all {a.shape[0]} rows", f"y^T out over all {self.n} columns")

    def _compare(self, got: Any) -> Verification:
        from recoque.kernels.gemm import take, to_host_f64

        a, w, _ = self._sets[0]  # type: ignore[index]
        rng = np.random.default_rng(12345)
        rows = np.sort(rng.choice(a.shape[0], size=min(SAMPLE_ROWS, a.shape[0]), replace=False))
        cols = np.sort(rng.choice(self.n, size=min(SAMPLE_COLS, self.n), replace=False))
        experts_of_rows = K.row_expert(self._counts)[rows]

        def expert_cols(e: int) -> np.ndarray:  # selected where w lives, then widened: never all of W
            return to_host_f64(take(w[e], cols, 1))
        ref, scale = K.reference_rows(to_host_f64(take(a, rows, 0)), expert_cols, experts_of_rows)
        return compare(to_host_f64(take(take(got, rows, 0), cols, 1)), ref, scale, TOLERANCE[self.dtype],
                       what=f"out[{len(rows)} rows x {len(cols)} cols] over {len(np.unique(experts_of_rows))} experts",
                       normwise=NORMWISE_TOLERANCE.get(self.dtype))

    def teardown(self) -> None:
        self._sets = None
        self._offs = None


def tokens_for(experts: int, top_k: int, rows_per_expert: int) -> int:
    """Tokens whose top_k routing gives `rows_per_expert` rows to an expert on average."""
    return max(1, round(rows_per_expert * experts / top_k))


def cases(device: Any, quick: bool, dtypes: tuple[str, ...] = ("bf16",)) -> list[MoeCase]:
    """GPU: the up and down projections of each published model at each rows-per-expert point; CPU:
    the synthetic layer at two points, in fp32 (and bf16 where asked)."""
    out: list[MoeCase] = []
    if device.kind == "cpu":
        c = CPU_SHAPE
        for dtype in [d for d in dtypes if d in ("fp32", "bf16")] or ["fp32"]:
            for rpe in ROWS_PER_EXPERT_CPU[:1] if quick else ROWS_PER_EXPERT_CPU:
                out.append(MoeCase(c["model"], c["experts"], c["top_k"], tokens_for(c["experts"], c["top_k"], rpe),
                                   c["n"], c["k"], dtype, tags=("moe", "synthetic")))
        return out
    grid = ROWS_PER_EXPERT_GPU_QUICK if quick else ROWS_PER_EXPERT_GPU
    for dtype in [d for d in dtypes if d in K.DTYPES]:
        for model in GPU_MODELS:
            for projection, shape in K.PROJECTIONS.items():
                experts, top_k, n, k = shape(model)
                for rpe in grid:
                    out.append(MoeCase(model, experts, top_k, tokens_for(experts, top_k, rpe), n, k, dtype,
                                       tags=("moe", f"moe:{model}:{projection}")))
    return out
