"""Attention benchmark: SDPA forward and backward, causal or not, GQA, several sequence lengths.

Every SDPA backend that accepts the case (flash -- AOTriton/CK on ROCm --, cuDNN, memory-efficient,
math) is tried alone and timed briefly; the fastest is measured as the case's headline and recorded
as its backend, and every accepted backend's median stays in the record's tags. Verification: one
batch entry and one KV-head group, against float64 on the CPU.
"""
from __future__ import annotations

import statistics
from typing import Any, Callable, Mapping

import numpy as np

from recoque.bench import features
from recoque.bench.base import Case, Unsupported, Verification, Work
from recoque.bench.schema import SDPA_TAG_PREFIX
from recoque.bench.timing import TimingPolicy, device_scope, measure
from recoque.bench.verify import NORMWISE_TOLERANCE, TOLERANCE, compare
from recoque.kernels import attention as K
from recoque.kernels.gemm import torch_dtype

# A short look at each accepted backend; the chosen one then gets the case's full measurement.
PROBE_POLICY = TimingPolicy(warmup_s=0.02, budget_s=0.1, min_samples=3, max_samples=20)


def choose_fastest(accepted: list[str], median_s: Callable[[str], float]) -> tuple[str, dict[str, float]]:
    """The backend with the lowest median time, and every accepted backend's median (seconds)."""
    times = {name: float(median_s(name)) for name in accepted} if len(accepted) > 1 else {accepted[0]: float("nan")}
    best = accepted[0] if len(accepted) == 1 else min(times, key=times.__getitem__)
    return best, times


def backend_tags(times: Mapping[str, float]) -> tuple[str, ...]:
    """Every accepted backend's probe median as tags, so the record keeps the ones not chosen."""
    return tuple(f"{SDPA_TAG_PREFIX}{name}={t:.6g}" for name, t in times.items())


# Backward errors are larger: dS = P*(dP - rowsum) loses bits in low precision.
BWD_TOLERANCE = {"fp32": 1e-4, "bf16": 6e-2, "fp16": 1e-2}
# The element-wise bound above lets a gradient off by a few percent everywhere pass (a dk scaled by
# 1.048 in bf16), so dq, dk and dv also hold the norm-wise relative error ||g - ref|| / ||ref||, as
# the forward does (bench/verify.py NORMWISE_TOLERANCE). A correct run measured on the CPU (math
# backend, S 128-2048, D 64-128, causal or not): bf16 2.4-4.7e-3, fp16 3.0-6.0e-4; the bounds are
# about 6 u (bf16 u = 2^-8, fp16 2^-11), 5-8x those, room for a GPU kernel that stores P and dS in
# the input precision, and under the 2-5% a wrong scale or a dropped term gives.
BWD_NORMWISE_TOLERANCE = {"bf16": 2.5e-2, "fp16": 5e-3}
ROWS_PER_HEAD = 4  # query positions of every (batch, head) the forward check also holds


class AttentionCase(Case):
    benchmark = "attention"

    def __init__(self, batch: int, heads_q: int, heads_kv: int, seq: int, head_dim: int, causal: bool,
                 direction: str, dtype: str, tags: tuple[str, ...] = (), backend: str | None = None):
        """backend: measure this SDPA backend, not the fastest of a fresh probe (the headline's
        confirmation re-measures the backend its candidate was measured with)."""
        self.p = dict(batch=batch, heads_q=heads_q, heads_kv=heads_kv, seq_q=seq, seq_k=seq,
                      head_dim=head_dim, causal=causal, direction=direction)
        self.params = dict(self.p)
        self.op = f"sdpa_{direction}"
        self.dtype = dtype
        self.tags = tags
        self.backend = backend
        self.pinned_backend = backend
        self._sets: list | None = None

    def work(self) -> Work:
        p = self.p
        return Work(flop_count=K.flop_count(p["batch"], p["heads_q"], p["seq_q"], p["seq_k"], p["head_dim"],
                                            p["causal"], p["direction"]))

    def bytes_per_set(self) -> int:
        p, e = self.p, 4 if self.dtype == "fp32" else 2
        q = p["batch"] * p["heads_q"] * p["seq_q"] * p["head_dim"]
        kv = 2 * p["batch"] * p["heads_kv"] * p["seq_k"] * p["head_dim"]
        return (2 * q + kv) * e * (2 if p["direction"] == "bwd" else 1)

    def setup(self, device: Any, n_sets: int, seed: int) -> None:
        if self.dtype not in BWD_TOLERANCE:
            raise Unsupported(f"attention runs in fp32, bf16 or fp16, not {self.dtype}")
        features.require("sdpa_kernel")
        if self.p["heads_q"] != self.p["heads_kv"]:
            features.require("sdpa_enable_gqa")
        import torch

        self._device = device
        p, td, dev = self.p, torch_dtype(self.dtype), device.torch_device
        bwd = p["direction"] == "bwd"
        gen = torch.Generator(device=dev).manual_seed(seed)

        def rand(h: int, s: int) -> Any:
            x = torch.randn(p["batch"], h, s, p["head_dim"], generator=gen, device=dev, dtype=torch.float32)
            return x.to(td).requires_grad_(bwd)

        with device_scope(device):
            self._sets = []
            for _ in range(n_sets):
                q, k, v = rand(p["heads_q"], p["seq_q"]), rand(p["heads_kv"], p["seq_k"]), rand(p["heads_kv"], p["seq_k"])
                self._sets.append([q, k, v, None, None])
            if self.pinned_backend is None:
                self._choose_backend(device)
            else:
                self.backend = self.pinned_backend
            if bwd:  # keep one graph per set; the timed call is the backward alone
                for s in self._sets:
                    s[3] = K.sdpa(s[0], s[1], s[2], p["causal"], self.backend)
                    s[4] = torch.randn(s[3].shape, generator=gen, device=dev, dtype=torch.float32).to(td)

    def _choose_backend(self, device: Any) -> None:
        """Time every backend that accepts the case briefly; the fastest is the one measured.

        On H100/H200 cuDNN usually beats flash; on MI300-class the flash backend (AOTriton/CK)
        and the memory-efficient one trade places by shape, so none is assumed.
        """
        q, k, v = self._sets[0][:3]  # type: ignore[index]
        causal, bwd = self.p["causal"], self.p["direction"] == "bwd"
        accepted = K.accepted_backends(q, k, v, causal, bwd)
        if not accepted:
            raise Unsupported("no scaled_dot_product_attention backend accepts this case")
        best, times = choose_fastest(accepted, lambda name: self._probe_or_inf(name, device))
        if times[best] == float("inf"):
            raise Unsupported("every accepted SDPA backend failed while being timed (out of memory?)")
        self.backend = best
        self.tags = tuple(self.tags) + backend_tags(times)

    def _probe_or_inf(self, backend: str, device: Any) -> float:
        """A backend that accepts one call but fails while timed (e.g. math attention's s x s scores
        running out of memory beside the rotation sets) is left out, not the whole case."""
        try:
            return self._probe(backend, device)
        except RuntimeError:  # torch's OutOfMemoryError is a RuntimeError
            return float("inf")

    def _probe(self, backend: str, device: Any) -> float:
        import torch

        q, k, v = self._sets[0][:3]  # type: ignore[index]
        causal = self.p["causal"]
        if self.p["direction"] == "fwd":
            run = lambda _i: K.sdpa(q, k, v, causal, backend)  # noqa: E731
        else:
            out = K.sdpa(q, k, v, causal, backend)
            dout = torch.ones_like(out)
            run = lambda _i: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)  # noqa: E731
        return statistics.median(measure(run, device, PROBE_POLICY).times_s)

    def run(self, i: int) -> None:
        q, k, v, out, dout = self._sets[i]  # type: ignore[index]
        if out is None:
            K.sdpa(q, k, v, self.p["causal"], self.backend)
        else:
            import torch

            torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)

    def _verify_all_heads(self, q: Any, k: Any, v: Any, full: Any) -> Verification:
        """Sampled query positions of every batch entry and head (the first check reads batch 0's
        first head group only), against a float64 reference computed on the device."""
        rows = _sampled_positions(self.p["seq_q"])
        ref, scale = K.reference_rows(q, k, v, rows, self.p["causal"])
        return compare(_positions_f64(full, rows), ref, scale, TOLERANCE[self.dtype], normwise=NORMWISE_TOLERANCE.get(self.dtype),
                       what=f"out[all {self.p['batch']} x {self.p['heads_q']} heads, {len(rows)} positions]")

    def verify(self) -> Verification:
        import torch

        p = self.p
        q, k, v, out, dout = self._sets[0]  # type: ignore[index]
        group = p["heads_q"] // p["heads_kv"]

        def f64(x: Any, h: int) -> np.ndarray:  # batch entry 0, first `h` heads
            return x[0, :h].detach().to("cpu", torch.float64).numpy()

        qs, ks, vs = f64(q, group), f64(k, 1), f64(v, 1)
        if out is None:
            full = K.sdpa(q, k, v, p["causal"], self.backend)
            ref, scale = K.reference(qs, ks, vs, p["causal"])
            first = compare(f64(full, group), ref, scale, TOLERANCE[self.dtype], what="out[b=0, kv-head 0 group]",
                            normwise=NORMWISE_TOLERANCE.get(self.dtype))
            return self._verify_all_heads(q, k, v, full) if first.ok else first
        grads = torch.autograd.grad(out, (q, k, v), dout, retain_graph=True)
        refs = K.reference_grads(qs, ks, vs, f64(dout, group), p["causal"])
        # dk/dv of KV head 0 also receive gradient only from its own q-head group: the slices match.
        worst = None
        for name, g, r, h in zip(("dq", "dk", "dv"), grads, refs, (group, 1, 1)):
            res = compare(f64(g, h), r, np.max(np.abs(r)), BWD_TOLERANCE[self.dtype], what=name,
                          normwise=BWD_NORMWISE_TOLERANCE.get(self.dtype))
            if worst is None or res.max_error / res.tolerance > worst.max_error / worst.tolerance:
                worst = res
        if not worst.ok:  # type: ignore[union-attr]
            return worst  # type: ignore[return-value]
        return self._verify_dq_all_heads(q, k, v, dout, grads[0])

    def _verify_dq_all_heads(self, q: Any, k: Any, v: Any, dout: Any, dq: Any) -> Verification:
        """dq at sampled query positions of every batch entry and head (the check above reads batch 0's
        first head group only; dk and dv at other heads would need every query's softmax row)."""
        rows = _sampled_positions(self.p["seq_q"])
        ref = K.reference_dq_rows(q, k, v, dout, rows, self.p["causal"])
        return compare(_positions_f64(dq, rows), ref, np.max(np.abs(ref)), BWD_TOLERANCE[self.dtype],
                       what=f"dq[all {self.p['batch']} x {self.p['heads_q']} heads, {len(rows)} positions]")


def _positions_f64(t: Any, rows: np.ndarray) -> np.ndarray:
    """A (b, h, s, d) tensor at sequence positions `rows`, float64 on the host."""
    import torch

    ix = torch.as_tensor(rows, device=t.device, dtype=torch.long)
    return t.detach().index_select(2, ix).to(torch.float64).cpu().numpy()


def _sampled_positions(seq: int) -> np.ndarray:
    """ROWS_PER_HEAD query positions: random ones and the last (a last tile a kernel might skip)."""
    rng = np.random.default_rng(12345)
    picked = rng.choice(seq, size=min(ROWS_PER_HEAD, seq), replace=False)
    return np.unique(np.append(picked[: ROWS_PER_HEAD - 1], seq - 1))


def cases(device: Any, quick: bool, dtypes: tuple[str, ...] = ("bf16", "fp16")) -> list[AttentionCase]:
    """Sweep at a fixed 16k tokens per batch (flash-attention benchmark convention) where it fits."""
    out: list[AttentionCase] = []
    if device.kind == "cpu":
        dts = [d for d in dtypes if d in ("bf16", "fp32")] or ["fp32"]
        grid = [(1, 512, 64)] if quick else [(2, 512, 64), (1, 1024, 64), (1, 1024, 128)]
        heads = [(8, 8), (8, 2)]
    else:
        dts = [d for d in dtypes if d in ("bf16", "fp16", "fp32")]
        seqs = (2048, 8192) if quick else (1024, 2048, 4096, 8192, 16384)
        grid = [(max(1, 16384 // s), s, d) for s in seqs for d in (64, 128)]
        heads = [(16, 16), (32, 8)]  # MHA, and GQA with 4 query heads per KV head
    for dtype in dts:
        for batch, seq, d in grid:
            for hq, hkv in heads:
                for causal in (False, True):
                    for direction in ("fwd", "bwd"):
                        if quick and direction == "bwd" and hq != hkv:
                            continue
                        out.append(AttentionCase(batch, hq, hkv, seq, d, causal, direction, dtype))
    return out
