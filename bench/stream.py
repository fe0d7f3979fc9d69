"""Memory bandwidth: the BabelStream kernels (copy, mul, add, triad, dot) on the CPU or one GPU.

Sizing follows the STREAM rule (each array >= 4x the last-level cache) and BabelStream's default
(>= 2**25 elements on a GPU); the full run uses 8x the LLC, as AMD's MI300X acceptance run does
(2 GiB arrays against a 256 MiB Infinity Cache). Since every array alone is far larger than the
LLC, one set of arrays is enough and the harness does not rotate (`bytes_per_set` is their total).
CPU: numba prange kernels (backend "numba"); GPU: torch out= kernels (backend "torch").

Every sample is kept: the results table quotes the median, and acceptance (bench/accept.py
BEST_RATE_BENCHMARKS) holds the floors against the best rate over the repeats (Record.best: bytes /
the minimum time), the figure STREAM and BabelStream print and AMD's floors are stated in.
"""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from recoque.bench.base import Case, Verification, Work
from recoque.bench.timing import llc_or_assumed
from recoque.bench.verify import TOLERANCE, compare
from recoque.kernels import stream as K

SUPPORTED_DTYPES = ("fp64", "fp32")  # BabelStream supports only these two
LLC_MULTIPLE = {True: 4, False: 8}  # quick: the STREAM minimum; full: AMD's acceptance ratio
GPU_MIN_ELEMENTS = 2**25  # BabelStream's default array size
MEMORY_FRACTION = 0.5  # the arrays of one case use at most this share of device memory
SAMPLE = 100_000  # elements checked on a GPU (copied back to the host)
# dot on (a, a) against sum a_i^2 (positive terms: a correct float32 reduction's relative error is
# ~u log2 n <= 2e-6 as a tree, ~u x a thread's run length serially, u = 6e-8): a kernel that skips
# more than 0.01% of the array fails in fp32.
SELF_DOT_TOLERANCE = {"fp64": 1e-10, "fp32": 1e-4}
_FILL_CHUNK = 2**21  # elements per independently seeded block of the CPU fill
_VERIFY_BLOCK = 2**20  # elements per block of the CPU check


def array_elements(device: Any, dtype: str, quick: bool) -> int:
    """Elements per array: >= LLC_MULTIPLE x LLC bytes, >= 2**25 on GPUs, capped by memory."""
    elem = K.ELEM_BYTES[dtype]
    kind = "cpu" if device.kind == "cpu" else "gpu"
    llc = llc_or_assumed(device)
    n = math.ceil(LLC_MULTIPLE[quick] * llc / elem)
    if kind == "gpu":
        n = max(n, GPU_MIN_ELEMENTS)
    n = math.ceil(n / 4096) * 4096  # whole pages and SIMD blocks
    if device.memory_bytes:  # shrink the full size to fit, never below the 4x-LLC minimum
        fit = int(MEMORY_FRACTION * device.memory_bytes) // (K.N_ARRAYS * elem)
        n = max(min(n, fit), math.ceil(LLC_MULTIPLE[True] * llc / elem))
    return int(n)


def cases(device: Any, quick: bool, dtypes: Sequence[str] = ("fp64",), tags: tuple[str, ...] = (),
          pool: dict[str, Any] | None = None) -> list[Case]:
    """One case per kernel and supported dtype (dtypes other than fp64/fp32 are not STREAM's).
    pool: one dict shared by the cases, so that the five kernels use one set of arrays a, b, c."""
    out: list[Case] = []
    for dtype in dtypes:
        if dtype not in SUPPORTED_DTYPES:
            continue
        n = array_elements(device, dtype, quick)
        out.extend(StreamCase(op, dtype, n, tags=tags, pool=pool) for op in K.OPS)
    return out


def skip_reason(device: Any) -> str | None:
    """Why this benchmark cannot run here (never: the CPU path always exists)."""
    return None


def _fill_normal_cpu(arr: np.ndarray, seed: int) -> None:
    """Standard normal data in place, block by block on threads (numpy's generators release the GIL).

    Each block has its own child seed, so the data depend on the seed only, not on the thread count.
    """
    starts = range(0, arr.shape[0], _FILL_CHUNK)
    seeds = np.random.SeedSequence(seed).spawn(len(starts))

    def fill(k: int) -> None:
        lo = starts[k]
        np.random.default_rng(seeds[k]).standard_normal(dtype=arr.dtype, out=arr[lo:lo + _FILL_CHUNK])

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(fill, range(len(starts))))


class StreamCase(Case):
    benchmark = "stream"

    def __init__(self, op: str, dtype: str = "fp64", n_elements: int = GPU_MIN_ELEMENTS,
                 tags: tuple[str, ...] = (), pool: dict[str, Any] | None = None) -> None:
        if op not in K.OPS:
            raise ValueError(f"unknown STREAM kernel {op!r}; expected one of {K.OPS}")
        if dtype not in SUPPORTED_DTYPES:
            raise ValueError(f"STREAM dtype {dtype!r} unsupported; expected one of {SUPPORTED_DTYPES}")
        self.op, self.dtype = op, dtype
        self.params = {"n_elements": int(n_elements), "elem_bytes": K.ELEM_BYTES[dtype]}
        self.backend: str | None = None
        self.tags = tuple(tags)
        # Arrays shared with the other kernels' cases (the headline confirmation keeps all five set up
        # at once and alternates them, as BabelStream's loop does: one a, b, c, not one set per kernel).
        self._pool = pool
        self._sets: list[dict[str, Any]] | None = None
        self._device: Any = None
        self._kern: Any = None  # kernels.stream_numba or kernels.stream_torch
        self._dot: Any = None  # last dot result (a device tensor on GPU: reading it would sync)

    @property
    def n_elements(self) -> int:
        return int(self.params["n_elements"])

    def _names(self) -> tuple[str, ...]:
        """The arrays this kernel touches: its inputs, then its output (if any)."""
        out = K.WRITES[self.op]
        return K.READS[self.op] + ((out,) if out else ())

    def work(self) -> Work:
        return Work(bytes_moved=K.bytes_moved(self.op, self.n_elements, K.ELEM_BYTES[self.dtype]))

    def bytes_per_set(self) -> int:
        return len(self._names()) * self.n_elements * K.ELEM_BYTES[self.dtype]

    # -- setup ---------------------------------------------------------------------------------
    def sets_used(self, n_sets: int) -> int:
        return 1  # each array alone outgrows the LLC (see setup)

    def setup(self, device: Any, n_sets: int, seed: int) -> None:
        self._device = device
        self.backend = "numba" if device.kind == "cpu" else "torch"
        if device.kind == "cpu":  # imported here: numba compiles, torch may be a GPU build
            from recoque.kernels import stream_numba as kern
        else:
            from recoque.kernels import stream_torch as kern  # type: ignore[no-redef]
        self._kern = kern
        if device.kind == "cpu" and kern.STREAMING_STORES and K.WRITES[self.op] and "streaming-stores" not in self.tags:
            self.tags += ("streaming-stores",)  # no write-allocate reads: traffic = what is counted
        make = self._make_cpu_set if device.kind == "cpu" else self._make_gpu_set
        # One set whatever n_sets is: each array alone is >= 4x the LLC, so rotating would only
        # multiply the memory (several GiB on MI300-class parts) without evicting anything more.
        self._sets = [self._shared(make, seed)]

    def _shared(self, make: Any, seed: int) -> dict[str, Any]:
        """The arrays from the pool where it has them (same size and dtype), the rest made and added."""
        pool = self._pool
        if pool is None:
            return make(seed)
        if pool.get("_key") != (self.n_elements, self.dtype, self._device.kind):
            pool.clear()
            pool["_key"] = (self.n_elements, self.dtype, self._device.kind)
        if any(n not in pool for n in self._names()):
            made = make(seed)
            pool.update({n: a for n, a in made.items() if n not in pool})
        return {n: pool[n] for n in self._names()}

    def _make_cpu_set(self, seed: int) -> dict[str, Any]:
        dt = K.NUMPY_DTYPE[self.dtype]
        arrays: dict[str, Any] = {}
        for j, name in enumerate(K.READS[self.op]):
            arrays[name] = np.empty(self.n_elements, dtype=dt)
            _fill_normal_cpu(arrays[name], seed + j)
        out = K.WRITES[self.op]
        if out:  # poisoned, so an element the kernel never writes cannot pass verification
            arrays[out] = np.full(self.n_elements, np.nan, dtype=dt)
        return arrays

    def _make_gpu_set(self, seed: int) -> dict[str, Any]:
        import torch

        dev = torch.device(self._device.torch_device)
        dt = torch.float64 if self.dtype == "fp64" else torch.float32
        gen = torch.Generator(device=dev)
        gen.manual_seed(seed)
        arrays: dict[str, Any] = {n: torch.randn(self.n_elements, generator=gen, device=dev, dtype=dt)
                                  for n in K.READS[self.op]}
        out = K.WRITES[self.op]
        if out:
            arrays[out] = torch.full((self.n_elements,), float("nan"), device=dev, dtype=dt)
        return arrays

    # -- run -----------------------------------------------------------------------------------
    def run(self, i: int) -> None:
        s = self._sets[i % len(self._sets)]  # type: ignore[index]
        self._dot = self._kern.run(self.op, s.get("a"), s.get("b"), s.get("c"), K.SCALAR)

    # -- verify --------------------------------------------------------------------------------
    def verify(self) -> Verification:
        """One call on set 0, checked against the float64 reference of the inputs it was given."""
        if self.backend == "numba":
            return self._verify_cpu()
        return self._verify_gpu()

    def _verify_cpu(self) -> Verification:
        """The whole output: a dot block by block in float64, the other kernels every element in one
        parallel pass (kernels/stream_check: the float64 reference without numpy's temporaries).

        No kernel writes one of its own inputs (K.WRITES vs K.READS), so the inputs after the call are
        the inputs it was given, and the reference can be built from them.
        """
        s = self._sets[0]  # type: ignore[index]
        out = K.WRITES[self.op]
        if out:
            s[out].fill(np.nan)
        self.run(0)
        blocks = range(0, self.n_elements, _VERIFY_BLOCK)
        if out is None:  # dot: the sum of block dots in float64, against sum |a_i b_i|
            parts = [{n: s[n][lo:lo + _VERIFY_BLOCK] for n in K.READS[self.op]} for lo in blocks]
            ref = sum(float(K.reference(self.op, p)) for p in parts)
            scale = sum(float(K.error_scale(self.op, p)) for p in parts)
            squares = sum(float(np.dot(p["a"], p["a"].astype(np.float64))) for p in parts)
            first = self._compare(self._dot, ref, scale)
            return self._check_self_dot(s["a"], squares) if first.ok else first
        from recoque.kernels.stream_check import worst_element

        inputs = {n: s[n] for n in K.READS[self.op]}
        err, i = worst_element(self.op, inputs, s[out], K.SCALAR)  # every element, one parallel pass
        one = {n: a[i:i + 1] for n, a in inputs.items()}
        tol = TOLERANCE[self.dtype]
        return Verification(err <= tol, err, tol, (i,), float(s[out][i]), float(K.reference(self.op, one)[0]),
                            self._what())

    def _verify_gpu(self) -> Verification:
        import torch

        s = self._sets[0]  # type: ignore[index]
        out = K.WRITES[self.op]
        if out is None:
            return self._verify_gpu_dot(s)
        if self.n_elements <= SAMPLE:
            idx = torch.arange(self.n_elements)
        else:
            idx = torch.randint(0, self.n_elements, (SAMPLE,), generator=torch.Generator().manual_seed(12345))
        idx_dev = idx.to(s[out].device)
        inputs = {n: s[n][idx_dev].cpu().numpy() for n in K.READS[self.op]}
        s[out].fill_(float("nan"))
        self.run(0)
        got = s[out][idx_dev].cpu().numpy()  # .cpu() waits for the kernel
        v = self._compare(got, K.reference(self.op, inputs), K.error_scale(self.op, inputs))
        return replace(v, worst_index=(int(idx[v.worst_index[0]]),) if v.worst_index else ())

    def _verify_gpu_dot(self, s: dict[str, Any]) -> Verification:
        self.run(0)
        got = float(self._dot.item())
        ref = scale = squares = 0.0
        step = 2**24  # copy back in blocks: the host never holds a whole GPU-sized array
        for lo in range(0, self.n_elements, step):
            a = s["a"][lo:lo + step].cpu().numpy().astype(np.float64)
            b = s["b"][lo:lo + step].cpu().numpy().astype(np.float64)
            ref += float(np.dot(a, b))
            scale += float(np.dot(np.abs(a), np.abs(b)))
            squares += float(np.dot(a, a))
        first = self._compare(got, ref, scale)
        return self._check_self_dot(s["a"], squares) if first.ok else first

    def _check_self_dot(self, a: Any, squares: float) -> Verification:
        """The kernel on (a, a) against sum a_i^2: with random signs, a dot that skips a fraction f of
        the array moves by ~sqrt(f) of its scale and can pass; with all terms positive it moves by f."""
        got = self._kern.run("dot", a, a, None, K.SCALAR)
        return compare(np.array([float(got)]), np.array([squares]), squares, SELF_DOT_TOLERANCE[self.dtype],
                       what="dot: sum(a*a)")

    def _compare(self, got: Any, ref: Any, scale: Any) -> Verification:
        if K.WRITES[self.op] is None:  # a scalar: its relative error against sum |a_i b_i|
            got, ref = np.array([float(got)]), np.array([ref])
        return compare(got, ref, scale, TOLERANCE[self.dtype], what=self._what())

    def _what(self) -> str:
        out = K.WRITES[self.op]
        return f"{self.op}: {out} = ..." if out else "dot: sum(a*b)"
