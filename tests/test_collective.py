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

GiB = 2**30


@dataclass(frozen=True)
class StandIn:
    kind: str = "rocm"
    torch_device: str = "cuda:0"
    name: str = "stand-in GPU"
    llc_bytes: int | None = 256 * 2**20
    memory_bytes: int | None = 192 * GiB
    compute_units: int | None = 304


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
def test_no_cases_without_torchrun(monkeypatch, world):
    if world is None:
        monkeypatch.delenv("WORLD_SIZE", raising=False)
    else:
        monkeypatch.setenv("WORLD_SIZE", world)
    assert B.cases(StandIn(), quick=True) == []
    assert B.skip_reason(StandIn()) == "collectives need >1 GPU: run under torchrun --nproc-per-node=N"


def test_no_cases_on_cpu_even_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    cpu = StandIn(kind="cpu", torch_device="cpu")
    assert B.cases(cpu, quick=False) == [] and "GPU" in B.skip_reason(cpu)


def test_cases_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    quick = B.cases(StandIn(), quick=True)
    assert [c.op for c in quick] == list(C.OPS) and {c.params["bytes"] for c in quick} == {64 * 2**20}
    full = B.cases(StandIn(), quick=False)
    assert max(c.params["bytes"] for c in full) == 8 * GiB  # the anchor size, with 192 GiB of memory
    small = B.cases(StandIn(memory_bytes=16 * GiB), quick=False)
    assert max(c.params["bytes"] for c in small) == GiB
    for c in full:
        assert c.params["world_size"] == 8 and c.work().bytes_moved == C.bus_bytes(c.op, c.params["bytes"], 8)


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
        ref, scale = C.reference(op, idx, rank, n, count, lambda r, src: inputs[r][src])
        assert compare(out, ref, scale, 1e-5).ok
        bad = out.copy()
        bad[5] += 1.0
        v = compare(bad, ref, scale, 1e-5)
        assert not v.ok and v.worst_index == (5,)


_TWO_RANKS = r"""
import sys
from dataclasses import replace
from types import SimpleNamespace

from recoque.bench import collective as B
from recoque.bench.timing import measure
from recoque.kernels import collectives as C

cpu = SimpleNamespace(kind="cpu", torch_device="cpu")
report = open(f"{sys.argv[1]}/rank{C.world()[1]}.txt", "w")  # one file per rank: stdout interleaves
for op in C.OPS:
    case = B.CollectiveCase(op, 4096 * 4 * 2, 2)
    case.setup(cpu, 2, seed=11)
    ok = case.verify().ok
    timing = measure(case.run, cpu, B.policy(True), n_sets=2)
    print(op, "verified" if ok else "FAILED", len(timing.times_s), file=report)
case = B.CollectiveCase("all_reduce", 4096 * 4, 2)
case.setup(cpu, 1, seed=5)
if C.world()[1] == 1:  # one rank's output goes wrong: both ranks must report the failure
    real = C.run
    C.run = lambda op, inp, out: (real(op, inp, out), inp.__setitem__(7, 1e6))
v = case.verify()
print("broken", "caught" if not v.ok else "MISSED", file=report)
report.close()
C.shutdown()
"""


def test_two_gloo_ranks_verify_time_and_agree_on_failure(tmp_path):
    """The real case code in two CPU processes under torchrun (gloo stands in for nccl)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "two_ranks.py"
    script.write_text(_TWO_RANKS)
    proc = subprocess.run(  # --standalone: a local rendezvous on a free port
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script),
         str(tmp_path)],
        capture_output=True, text=True, timeout=180, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for rank in (0, 1):
        lines = (tmp_path / f"rank{rank}.txt").read_text().splitlines()
        assert lines == [f"{op} verified 10" for op in C.OPS] + ["broken caught"], (rank, lines)
