"""Collectives: nccl-tests bus-bandwidth arithmetic, the skip path, rank-independent timing, the reference."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pytest

from recoque.bench import collective as B
from recoque.bench.schema import Record
from recoque.bench.timing import measure
from recoque.bench.verify import compare
from recoque.kernels import collectives as C

from stand_in import StandIn as _StandIn

GiB = 2**30


def StandIn(**over):
    """An MI300X-like GPU stand-in (tests/stand_in.py), with `over` replacing its fields."""
    gpu = dict(kind="rocm", torch_device="cuda:0", name="stand-in GPU", llc_bytes=256 * 2**20,
               memory_bytes=192 * GiB, compute_units=304)
    return _StandIn(**{**gpu, **over})


@pytest.mark.parametrize("op, n, factor", [
    ("all_reduce", 8, Fraction(7, 4)), ("all_reduce", 2, Fraction(1)), ("all_reduce", 1, Fraction(0)),
    ("all_gather", 8, Fraction(7, 8)), ("reduce_scatter", 4, Fraction(3, 4)), ("all_to_all", 8, Fraction(7, 8)),
])
def test_busbw_factors_are_nccl_tests(op, n, factor):
    assert C.busbw_factor(op, n) == factor


def test_bus_bytes_turn_algbw_into_busbw():
    # 8 GiB all-reduce on 8 ranks: busbw = algbw x 7/4 (nccl-tests PERFORMANCE.md)
    assert C.bus_bytes("all_reduce", 8 * GiB, 8) == 8 * GiB * 7 // 4
    case = B.CollectiveCase("all_reduce", 8 * GiB, 8)
    t = 0.047  # seconds, any value
    rec = Record("collective", case.op, case.dtype, case.params, (t,), "GB/s", bytes_moved=case.work().bytes_moved)
    algbw = case.params["bytes"] / t / 1e9
    assert rec.achieved == pytest.approx(algbw * 1.75)
    assert case.params["busbw_factor"] == 1.75
    with pytest.raises(ValueError):
        C.busbw_factor("broadcast_tree", 8)
    with pytest.raises(ValueError):
        C.busbw_factor("all_reduce", 0)


@pytest.mark.parametrize("world", [None, "1"])
def test_no_cases_without_a_launcher(monkeypatch, world):
    for k in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS"):
        monkeypatch.delenv(k, raising=False)
    if world is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world)
    assert B.cases(StandIn(), quick=True) == []
    assert B.skip_reason(StandIn()) == "collectives need >1 rank: run under torchrun --nproc-per-node=N or srun"
    assert B.cases(StandIn(kind="cpu", torch_device="cpu"), quick=True) == []


@dataclass
class FakeSession:
    """What cases() asks of a joined session, without joining one."""

    world: object
    nodes: int = 1
    pairs: tuple = ((0, 1, "intra"),)

    @property
    def tier(self):
        return "intra" if self.nodes == 1 else "inter"

    def p2p_pairs(self):
        return list(self.pairs)


def _fake_world(monkeypatch, n, nodes=1, pairs=((0, 1, "intra"),)):
    from types import SimpleNamespace

    from recoque.bench import distributed as D

    monkeypatch.setenv("WORLD_SIZE", str(n))
    monkeypatch.setattr(D, "session", lambda: FakeSession(SimpleNamespace(world_size=n), nodes, pairs))


def test_cases_under_a_launcher(monkeypatch):
    _fake_world(monkeypatch, 8)
    quick = B.cases(StandIn(), quick=True)
    assert sorted({c.op for c in quick}) == sorted(C.OPS)
    assert {c.params["bytes"] for c in quick if c.op == "all_reduce"} == {32, 2**20, 64 * 2**20}  # 8 B -> one float per rank
    assert {c.dtype for c in quick} == {"fp32"} and {c.params["placement"] for c in quick if c.op == "all_gather"} == {"out_of_place"}
    full = B.cases(StandIn(), quick=False)
    assert max(c.params["bytes"] for c in full) == 8 * GiB  # nccl-tests -e 8G, with 192 GiB of memory
    assert {c.dtype for c in full} == {"fp32", "bf16"}
    assert {c.params["placement"] for c in full if c.op == "reduce_scatter"} == {"in_place", "out_of_place"}
    small = B.cases(StandIn(memory_bytes=16 * GiB), quick=False)
    assert max(c.params["bytes"] for c in small) == 2 * GiB  # 8x the message must fit
    for c in full:
        group = 2 if c.op == "send_recv" else 8
        assert c.params["group_size"] == group and c.work().bytes_moved == C.bus_bytes(c.op, c.params["bytes"], group)


def test_cpu_sweep_and_node_pairs(monkeypatch):
    _fake_world(monkeypatch, 4, nodes=2, pairs=((0, 1, "intra"), (0, 2, "inter")))
    cpu = StandIn(kind="cpu", torch_device="cpu", memory_bytes=None)
    full = B.cases(cpu, quick=False)
    assert max(c.params["bytes"] for c in full) == 16 * 2**20
    assert min(c.params["bytes"] for c in full if c.dtype == "fp32") == 16  # 8 B: one float per rank
    p2p = [c for c in full if c.op == "send_recv" and c.dtype == "fp32"]
    assert {(tuple(c.params["ranks"]), c.params["tier"]) for c in p2p} == {((0, 1), "intra"), ((0, 2), "inter")}
    assert all(c.params["tier"] == "inter" for c in full if c.op != "send_recv")


def test_sizes_round_to_whole_chunks_per_rank():
    case = B.CollectiveCase("reduce_scatter", 2**20, 6)  # 1 MiB is not a multiple of 6 floats
    assert case.params["bytes"] % (6 * 4) == 0 and 2**20 - 24 < case.params["bytes"] <= 2**20
    assert case.count % 6 == 0
    gather = B.CollectiveCase("all_gather", 2**20, 8)
    assert gather.count == 2**20 // 4 // 8  # S is the gathered whole for all-gather
    assert gather.bytes_per_set() == (gather.count * 9) * 4
    assert B.CollectiveCase("all_reduce", 2**20, 8).bytes_per_set() == 2**20  # in place


def test_policy_makes_the_same_number_of_calls_on_every_rank():
    calls = []
    cpu = StandIn(kind="cpu", torch_device="cpu")
    for quick in (True, False):
        calls.clear()
        timing = measure(lambda i: calls.append(i), cpu, B.policy(quick))
        n = 10 if quick else 20
        assert timing.warmup_calls == 2 and len(timing.times_s) == n and len(calls) == 2 + n


def _simulate(op, inputs):
    """What each rank's output is, computed on the host for n ranks' inputs."""
    n = len(inputs)
    if op == "all_reduce":
        return [sum(inputs)] * n
    if op == "all_gather":
        return [np.concatenate(inputs)] * n
    if op == "reduce_scatter":
        total = sum(inputs)
        return list(np.split(total, n))
    if op == "all_to_all":
        return [np.concatenate([np.split(x, n)[r] for x in inputs]) for r in range(n)]
    if op == "broadcast":  # root 0's buffer everywhere
        return [inputs[0]] * n
    if op == "send_recv":  # pairs (0, 1), (2, 3): each receives its peer's buffer
        return [inputs[r ^ 1] for r in range(n)]
    raise AssertionError(op)


@pytest.mark.parametrize("op", C.OPS)
def test_reference_matches_a_simulated_collective_and_catches_errors(op):
    n, count = 4, 64
    rng = np.random.default_rng(0)
    inputs = [rng.standard_normal(count).astype(np.float32) for _ in range(n)]
    outputs = _simulate(op, inputs)
    for rank in range(n):
        out = outputs[rank]
        idx = np.arange(out.size)
        ref, scale = C.reference(op, idx, rank, n, count, lambda r, src: inputs[r][src], peer=rank ^ 1)
        assert compare(out, ref, scale, 1e-5).ok
        bad = out.copy()
        bad[5] += 1.0
        v = compare(bad, ref, scale, 1e-5)
        assert not v.ok and v.worst_index == (5,)


def test_the_bf16_reduction_norm_bound_passes_a_ring_sum_and_fails_a_missing_rank():
    """At 64 ranks the element-wise worst case (63 x 2^-8 = 0.25 of sum |x|) passed an all-reduce
    missing a whole rank; the norm-wise bound 3 u sqrt(n) (bench/collective.py) holds a bf16 sum
    rounded after every add and fails one without a rank's share."""
    import torch

    n, u = 64, 2.0**-8
    xs = torch.randn(n, 20000, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    ring = xs[0].clone()
    for x in xs[1:]:  # a ring's partial sums, each rounded to bf16
        ring = (ring.float() + x.float()).to(torch.bfloat16)
    exact = xs.double().sum(0)
    bound = 3 * u * n**0.5

    def rel(got):
        return float((got.double() - exact).norm() / exact.norm())
    assert rel(ring) < bound / 2
    assert rel(exact - xs[7].double()) > bound


def test_sizes_that_round_to_one_chunk_are_one_case(monkeypatch):
    """On 8 ranks in fp32 the 8 B and 32 B requests both round to 32 B (whole 4-byte chunks per rank):
    two identical cases, which the rank merge then mixed into one record."""
    from types import SimpleNamespace

    from recoque.bench import collective
    from recoque.bench import distributed as D

    stub = SimpleNamespace(world=SimpleNamespace(world_size=8), tier="intra", nodes=1, p2p_pairs=lambda: [(0, 1, "intra")])
    monkeypatch.setattr(collective.C, "world", lambda: (8, 0))
    monkeypatch.setattr(D, "session", lambda: stub)
    gpu = SimpleNamespace(kind="cuda", memory_bytes=80 * 2**30)
    cs = collective.cases(gpu, quick=False, dtypes=("fp32",))
    keys = [(c.op, c.placement, c.params["bytes"], tuple(c.params.get("ranks", ()))) for c in cs]
    assert len(keys) == len(set(keys))
    assert [c.params["bytes"] for c in cs if c.op == "all_reduce" and c.placement == "in_place"][:2] == [32, 128]
