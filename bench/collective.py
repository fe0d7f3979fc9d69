"""Collective bus bandwidth across the GPUs of one node (all-reduce, all-gather, reduce-scatter, all-to-all).

Runs only under torchrun (WORLD_SIZE > 1), one process per GPU. Each result's bytes_moved is
S x busbw_factor (nccl-tests' definitions, kernels/collectives.py), so the harness's GB/s is the
bus bandwidth that rccl-tests / nccl-tests print; algbw is recoverable as params["bytes"] / time.

Every rank must make the same calls in the same order or the job hangs, so these cases need a
timing policy whose counts do not depend on each rank's clock: `policy(quick)` (warmup_s=0 gives
exactly two warm-up calls, min_samples == max_samples fixes the sample count). rccl-tests' own
warm-up (-w 5) happens in setup. Verification agrees across ranks (a MIN all-reduce of the verdicts).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from recoque.bench.base import Case, Verification, Work
from recoque.bench.timing import TimingPolicy
from recoque.bench.verify import TOLERANCE, compare
from recoque.kernels import collectives as C

MiB, GiB = 2**20, 2**30
QUICK_SIZES = (64 * MiB,)
FULL_SIZES = tuple(MiB * 4**k for k in range(6))  # 1 MiB .. 1 GiB, x4 steps
BIG_SIZE, BIG_SIZE_MIN_MEMORY = 8 * GiB, 64 * GiB  # the size AMD's MI300X anchors use
ELEM_BYTES = {"fp32": 4}  # rccl-tests' default type (float)
WARMUP_CALLS = 5  # rccl-tests -w default
SAMPLE = 100_000
NEED_TORCHRUN = "collectives need >1 GPU: run under torchrun --nproc-per-node=N"


def policy(quick: bool) -> TimingPolicy:
    """A rank-independent timing policy: 2 warm-up calls and a fixed number of samples (nccl-tests -n 20)."""
    n = 10 if quick else 20
    return TimingPolicy(warmup_s=0.0, budget_s=0.0, min_samples=n, max_samples=n)


def skip_reason(device: Any) -> str | None:
    if device.kind == "cpu":
        return "collectives need GPUs; " + NEED_TORCHRUN
    if C.world()[0] <= 1:
        return NEED_TORCHRUN
    return None


def cases(device: Any, quick: bool) -> list[Case]:
    """Every collective at every size; [] without torchrun or on the CPU (see skip_reason)."""
    if skip_reason(device):
        return []
    n = C.world()[0]
    sizes = list(QUICK_SIZES if quick else FULL_SIZES)
    if not quick and (device.memory_bytes or 0) >= BIG_SIZE_MIN_MEMORY:
        sizes.append(BIG_SIZE)
    return [CollectiveCase(op, s, n) for s in sizes for op in C.OPS]


def input_count(op: str, size_bytes: int, n_ranks: int, elem_bytes: int) -> int:
    """Elements of one rank's input: S/elem, except all-gather whose S is the gathered whole."""
    total = size_bytes // elem_bytes
    return total // n_ranks if op == "all_gather" else total


class CollectiveCase(Case):
    benchmark = "collective"
    dtype = "fp32"

    def __init__(self, op: str, size_bytes: int, n_ranks: int) -> None:
        if op not in C.OPS:
            raise ValueError(f"unknown collective {op!r}; expected one of {C.OPS}")
        unit = n_ranks * ELEM_BYTES[self.dtype]  # whole chunks for every rank
        size = max(unit, size_bytes // unit * unit)
        self.op = op
        self.params = {"bytes": size, "world_size": n_ranks, "busbw_factor": float(C.busbw_factor(op, n_ranks)),
                       "counted": "busbw = bytes x busbw_factor (nccl-tests); algbw = bytes / time"}
        self.backend = "torch.distributed"
        self._sets: list[tuple[Any, Any]] | None = None
        self._seed = 0
        self._dev: Any = None

    @property
    def n_ranks(self) -> int:
        return int(self.params["world_size"])

    @property
    def count(self) -> int:
        return input_count(self.op, int(self.params["bytes"]), self.n_ranks, ELEM_BYTES[self.dtype])

    def work(self) -> Work:
        return Work(bytes_moved=C.bus_bytes(self.op, int(self.params["bytes"]), self.n_ranks))

    def bytes_per_set(self) -> int:
        c, n = self.count, self.n_ranks
        out = {"all_reduce": 0, "all_gather": c * n, "reduce_scatter": c // n, "all_to_all": c}[self.op]
        return (c + out) * ELEM_BYTES[self.dtype]  # all-reduce works in place

    def _input(self, rank: int, set_index: int = 0) -> Any:
        """Rank `rank`'s input, regenerated anywhere from its seed (the node's GPUs are alike)."""
        import torch

        gen = torch.Generator(device=self._dev)
        gen.manual_seed(self._seed + 1000 * set_index + rank)
        return torch.randn(self.count, generator=gen, device=self._dev, dtype=torch.float32)

    def setup(self, device: Any, n_sets: int, seed: int) -> None:
        self._dev = C.init()
        self._seed, rank = seed, C.world()[1]
        self._sets = []
        for k in range(max(1, n_sets)):
            inp = self._input(rank, k)
            self._sets.append((inp, C.buffers(self.op, self.count, self.n_ranks, inp)))
        for i in range(WARMUP_CALLS):
            self.run(i)

    def run(self, i: int) -> None:
        inp, out = self._sets[i % len(self._sets)]  # type: ignore[index]
        C.run(self.op, inp, out)

    def verify(self) -> Verification:
        """Fresh seeded inputs, one call, a sample of the output against the float64 sum on the host."""
        import torch
        import torch.distributed as dist

        rank = C.world()[1]
        inp, out = self._sets[0]  # type: ignore[index]
        inp.copy_(self._input(rank))  # all-reduce works in place: undo the growth of earlier calls
        result = inp if out is None else out
        self.run(0)
        if result.numel() <= SAMPLE:
            idx = torch.arange(result.numel())
        else:
            idx = torch.randint(0, result.numel(), (SAMPLE,), generator=torch.Generator().manual_seed(999))
        got = result[idx.to(self._dev)].double().cpu().numpy()

        def input_of(r: int, src: Any) -> Any:
            return self._input(r)[torch.as_tensor(src, device=self._dev)].double().cpu().numpy()

        ref, scale = C.reference(self.op, idx.numpy(), rank, self.n_ranks, self.count, input_of)
        v = compare(got, ref, scale, TOLERANCE[self.dtype], what=f"{self.op} output (rank {rank})")
        if v.worst_index:
            v = replace(v, worst_index=(int(idx[v.worst_index[0]]),))
        verdict = torch.tensor([1 if v.ok else 0], device=self._dev)
        dist.all_reduce(verdict, op=dist.ReduceOp.MIN)  # one rank failing fails the case on every rank
        if v.ok and int(verdict.item()) == 0:
            v = replace(v, ok=False, what=v.what + "; another rank's check failed")
        return v
