"""Collectives across ranks (torchrun or srun): all-reduce, all-gather, reduce-scatter, all-to-all,
broadcast and send/recv, over a message-size sweep, in place and out of place, in fp32 and bf16.

Each result's bytes_moved is S x busbw_factor (nccl-tests' definitions, kernels/collectives.py), so
the harness's GB/s is the bus bandwidth nccl-tests / rccl-tests print; algbw = params["bytes"] /
time. Every rank times its own calls; bench/distributed.merge averages the time over ranks as
nccl-tests does and keeps each rank's median, so a slow rank is named.

Every rank must make the same calls in the same order or the job hangs, so these cases need a
timing policy whose counts do not depend on each rank's clock: `policy(quick)` (warmup_s=0 gives
exactly two warm-up calls, min_samples == max_samples fixes the sample count). nccl-tests' own
warm-up (-w 5) happens in setup. Verification agrees across ranks (a MIN all-reduce of the
verdicts). One buffer set is reused, as nccl-tests does: collectives are not cache-evicted.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from recoque.bench import distributed as D
from recoque.bench.base import Case, Unsupported, Verification, Work
from recoque.bench.timing import TimingPolicy
from recoque.bench.verify import TOLERANCE, compare
from recoque.kernels import collectives as C

KiB, MiB, GiB = 2**10, 2**20, 2**30
# nccl-tests -b 8 -e <max>: 8 B upward. GPU x4 steps to 8 GiB; CPU (gloo) x8 steps to 16 MiB.
GPU_SIZES = tuple(8 * 4**k for k in range(16))  # 8 B .. 8 GiB
CPU_SIZES = tuple(8 * 8**k for k in range(8))  # 8 B .. 16 MiB
QUICK_GPU_SIZES = (8, MiB, 64 * MiB)
QUICK_CPU_SIZES = (8, 64 * KiB, MiB)
ALWAYS_FITS = GiB  # larger sizes only when the GPU holds 8x the message
ELEM_BYTES = {"fp32": 4, "bf16": 2}
TORCH_DTYPE = {"fp32": "float32", "bf16": "bfloat16"}
# Unit roundoff: a sum of n terms in floating point is off by at most (n-1) u sum|x_i| (Higham,
# Accuracy and Stability of Numerical Algorithms, 2nd ed., eq. 4.4), whatever order the ring adds in.
UNIT_ROUNDOFF = {"fp32": 2.0**-24, "bf16": 2.0**-8}
WARMUP_CALLS = 5  # nccl-tests -w default
SAMPLE = 100_000
NEED_RANKS = "collectives need >1 rank: run under torchrun --nproc-per-node=N or srun"


def policy(quick: bool) -> TimingPolicy:
    """A rank-independent timing policy: 2 warm-up calls and a fixed number of samples (nccl-tests -n 20)."""
    n = 10 if quick else 20
    return TimingPolicy(warmup_s=0.0, budget_s=0.0, min_samples=n, max_samples=n)


def skip_reason(device: Any) -> str | None:
    if C.world()[0] <= 1:
        return NEED_RANKS
    return None


def sizes(device: Any, quick: bool) -> list[int]:
    if device.kind == "cpu":
        return list(QUICK_CPU_SIZES if quick else CPU_SIZES)
    if quick:
        return list(QUICK_GPU_SIZES)
    mem = device.memory_bytes or 0
    return [s for s in GPU_SIZES if s <= ALWAYS_FITS or 8 * s <= mem]


def default_dtypes(quick: bool) -> tuple[str, ...]:
    return ("fp32",) if quick else ("fp32", "bf16")


def cases(device: Any, quick: bool, dtypes: tuple[str, ...] | None = None) -> list[Case]:
    """Every collective, placement and dtype at every size; [] for a single process (skip_reason).

    Joins the process group first if the caller has not (every rank calls this at the same point)."""
    if skip_reason(device):
        return []
    s = D.session() or D.start(D.discover(), device)
    n = s.world.world_size
    dts = tuple(d for d in (dtypes or ()) if d in ELEM_BYTES) or default_dtypes(quick)
    out: list[Case] = []
    for dt in dts:
        for op in C.OPS:
            places = C.PLACEMENTS[op][:1] if quick else C.PLACEMENTS[op]
            rounded = list(dict.fromkeys(whole_chunks(sz, n, dt) for sz in sizes(device, quick)))  # one case each
            for place in places:
                for size in rounded:
                    if op == "send_recv":
                        out += [CollectiveCase(op, size, n, dt, place, tier=t, pair=(a, b)) for a, b, t in s.p2p_pairs()]
                    else:
                        out.append(CollectiveCase(op, size, n, dt, place, tier=s.tier, nodes=s.nodes))
    return out


def whole_chunks(size_bytes: int, n_ranks: int, dtype: str) -> int:
    """A message size rounded down to whole elements for every rank (at least one each)."""
    unit = n_ranks * ELEM_BYTES[dtype]
    return max(unit, size_bytes // unit * unit)


def _on_every_rank(ok: bool, device: Any) -> bool:
    """True only if `ok` holds on every rank (a MIN all-reduce of one flag: each rank agrees)."""
    import torch
    import torch.distributed as dist

    flag = torch.tensor([1 if ok else 0], device=device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(int(flag.item()))


def input_count(op: str, size_bytes: int, n_ranks: int, elem_bytes: int) -> int:
    return C.input_count(op, size_bytes, n_ranks, elem_bytes)


class CollectiveCase(Case):
    benchmark = "collective"

    def __init__(self, op: str, size_bytes: int, n_ranks: int, dtype: str = "fp32", placement: str | None = None,
                 tier: str = "intra", nodes: int = 1, pair: tuple[int, int] | None = None) -> None:
        if op not in C.OPS:
            raise ValueError(f"unknown collective {op!r}; expected one of {C.OPS}")
        if dtype not in ELEM_BYTES:
            raise ValueError(f"collective dtype {dtype!r}: use one of {tuple(ELEM_BYTES)}")
        if (op == "send_recv") != (pair is not None):
            raise ValueError("send_recv needs a pair of ranks, and only send_recv takes one")
        placement = placement or C.PLACEMENTS[op][0]
        size = whole_chunks(size_bytes, n_ranks, dtype)
        self.op, self.dtype, self.placement, self.pair = op, dtype, placement, pair
        group = 2 if pair else n_ranks
        self.params = {"bytes": size, "world_size": n_ranks, "group_size": group, "placement": placement,
                       "tier": tier, "nodes": 2 if pair and tier == "inter" else (1 if pair else nodes),
                       "busbw_factor": float(C.busbw_factor(op, group)),
                       "counted": "busbw = bytes x busbw_factor (nccl-tests); algbw = bytes / time"}
        if pair:
            self.params["ranks"] = list(pair)
        self.backend = "torch.distributed"
        self._set: tuple[Any, Any] | None = None
        self._seed = 0
        self._dev: Any = None
        self._rank = 0
        self._peer: int | None = None

    @property
    def n_ranks(self) -> int:
        return int(self.params["world_size"])

    @property
    def count(self) -> int:
        return C.input_count(self.op, int(self.params["bytes"]), self.n_ranks, ELEM_BYTES[self.dtype])

    def work(self) -> Work:
        return Work(bytes_moved=C.bus_bytes(self.op, int(self.params["bytes"]), int(self.params["group_size"])))

    def bytes_per_set(self) -> int:
        out = C.output_count(self.op, self.count, self.n_ranks)
        shared = self.placement == "in_place" or self.op in ("all_reduce", "broadcast")
        return (max(self.count, out) if shared else self.count + out) * ELEM_BYTES[self.dtype]

    def _input(self, rank: int) -> Any:
        """Rank `rank`'s input, regenerated anywhere from its seed (every rank's device draws alike)."""
        import torch

        gen = torch.Generator(device=self._dev)
        gen.manual_seed(self._seed + rank)
        x = torch.randn(self.count, generator=gen, device=self._dev, dtype=torch.float32)
        return x.to(getattr(torch, TORCH_DTYPE[self.dtype]))

    def setup(self, device: Any, n_sets: int, seed: int) -> None:
        s = D.session() or D.start(D.discover(), device)
        D.check_stop(s)  # rank 0 was interrupted: stop at this case boundary, keeping what was measured
        self._dev, self._seed, self._rank = s.device, seed, s.world.rank
        if self.pair and self._rank in self.pair:
            self._peer = self.pair[1] if self._rank == self.pair[0] else self.pair[0]
        held = True
        try:
            self._set = C.buffers(self.op, self.placement, self._input(self._rank), self._rank, self.n_ranks)
        except Exception as exc:  # noqa: BLE001 - only out of memory is a skip; the rest is raised
            if not D._is_oom(exc):
                raise
            held = False
        try:
            every = _on_every_rank(held, self._dev)
        except RuntimeError as exc:  # a peer died or the group broke: as any call of the case
            self._broken(exc)
        if not every:  # one rank's skip alone would pair later calls across cases
            self._set = None
            raise RuntimeError(f"out of memory at {self.params['bytes']:,} bytes on "
                               f"{'this' if not held else 'another'} rank: every rank skips this size")
        try:
            for _ in range(WARMUP_CALLS):
                C.run(self.op, *self._set, self._peer)
        except RuntimeError as exc:  # the backend refuses this op or dtype: the same on every rank
            text = str(exc).lower()
            if any(w in text for w in ("not supported", "unsupported", "not implemented")):
                raise Unsupported(f"{s.backend} {self.op} {self.dtype} {self.placement}: {str(exc).splitlines()[0]}") from None
            self._broken(exc)

    def run(self, i: int) -> None:
        send, recv = self._set  # type: ignore[misc]
        try:
            C.run(self.op, send, recv, self._peer)
        except RuntimeError as exc:
            self._broken(exc)

    def _broken(self, exc: BaseException) -> None:
        """A peer died or the group broke: name the silent rank, then stop like Ctrl-C so that the
        runner keeps what was measured (KeyboardInterrupt is its interrupted path)."""
        s = D.session()
        if s is None or D._is_oom(exc):
            raise exc
        if not D.stop_requested(s):
            s.failure = s.failure or D.describe_failure(s, exc)
        raise KeyboardInterrupt from exc

    def verify(self) -> Verification:
        """Fresh seeded inputs, one call, a sample of the output against float64 sums on the host."""
        import torch
        import torch.distributed as dist

        send, recv = self._set  # type: ignore[misc]
        if recv is not None and recv is not send and recv.is_floating_point():
            recv.fill_(float("nan"))  # the warm-up calls left the right answer there: a call that writes nothing must fail
        send.copy_(self._input(self._rank))  # in place: undo the growth of earlier calls
        self.run(0)
        if self.pair and self._peer is None:
            v = Verification(True, 0.0, 0.0, what=f"send_recv: rank {self._rank} not in pair {list(self.pair)}")
        else:
            v = self._check(C.result_of(self.op, send, recv))
        verdict = torch.tensor([1 if v.ok else 0], device=self._dev)
        dist.all_reduce(verdict, op=dist.ReduceOp.MIN)  # one rank failing fails the case on every rank
        if v.ok and int(verdict.item()) == 0:
            v = replace(v, ok=False, what=v.what + "; another rank's check failed")
        return v

    def _check(self, result: Any) -> Verification:
        import torch

        if result.numel() <= SAMPLE:
            idx = torch.arange(result.numel())
        else:
            idx = torch.randint(0, result.numel(), (SAMPLE,), generator=torch.Generator().manual_seed(999))
        got = result[idx.to(self._dev)].double().cpu().numpy()
        def input_of(r: int, src: Any) -> Any:  # one rank's input at a time: 8 GiB x n would not fit
            return self._input(r)[torch.as_tensor(src, device=self._dev)].double().cpu().numpy()

        ref, scale = C.reference(self.op, idx.numpy(), self._rank, self.n_ranks, self.count, input_of, self._peer)
        tol, normwise = TOLERANCE[self.dtype], None
        if self.op in C.REDUCTIONS:
            # element-wise: the worst case of n - 1 roundings of partial sums; at 64 ranks in bf16 (0.25)
            # it passes an output missing a whole rank, so the block's norm-wise error is held too:
            # rounding errors of random-signed partial sums add as a random walk, about u sqrt(n/2) of
            # ||ref||; 3 u sqrt(n) sits above it and below a missing rank's 1/sqrt(n) up to 64 bf16 ranks
            u = UNIT_ROUNDOFF[self.dtype]
            tol, normwise = max(tol, (self.n_ranks - 1) * u), max(tol, 3 * u * self.n_ranks ** 0.5)
        v = compare(got, ref, scale, tol, what=f"{self.op} {self.placement} output (rank {self._rank})", normwise=normwise)
        if v.worst_index:
            v = replace(v, worst_index=(int(idx[v.worst_index[0]]),))
        return v
