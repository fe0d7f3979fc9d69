"""A rank that died: rank 0 stops waiting for its results once its heartbeat is stale, instead of
the whole wait (under torchrun the agent SIGKILLs the survivors 30 s after a worker dies, so a
30 s wait lost rank 0's own results), and a dead peer is not reported as a signal."""
from __future__ import annotations

import time

import pytest

from recoque.bench import distributed as D
from recoque.bench.schema import load_results

torch = pytest.importorskip("torch")
from torch.distributed import HashStore  # noqa: E402


def _session(world_size: int) -> D.Session:
    ranks = tuple(D.RankInfo(rank=r, host="node0", local_rank=r, node_rank=0) for r in range(world_size))
    return D.Session(world=D.World(rank=0, world_size=world_size, local_rank=0, local_world_size=world_size),
                     backend="gloo", device=None, store=HashStore(), ranks=ranks, join_timeout_s=180.0,
                     op_timeout_s=600.0)


def _doc():
    return load_results("tests/fixtures/compare_a.json")


def test_rank_0_stops_waiting_for_a_rank_whose_heartbeat_is_stale():
    s = _session(3)
    now = time.time()
    s.store.set("beat/0", repr(now))
    s.store.set("beat/1", repr(now))
    s.store.set("beat/2", repr(now - 60.0))  # rank 2 died a minute ago
    s.store.set("result/1", __import__("json").dumps({"doc": _doc().to_json(), "failure": None}))
    started = time.monotonic()
    merged = D.gather(s, _doc(), wait_s=30.0)
    assert time.monotonic() - started < 5.0  # not the 30 s wait
    per_rank = merged.environment["distributed"]["per_rank"]
    assert [r["sent"] for r in per_rank] == [True, True, False]
    assert not merged.complete and any("rank 2" in n for n in merged.environment["distributed"]["notes"])


def test_a_rank_that_is_alive_is_waited_for():
    """Beating but not yet sent: rank 0 waits for it (here up to the 1.5 s given)."""
    s = _session(2)
    s.store.set("beat/1", repr(time.time() + 60.0))  # fresh for the whole wait
    started = time.monotonic()
    merged = D.gather(s, _doc(), wait_s=1.5)
    assert time.monotonic() - started >= 1.4
    assert [r["sent"] for r in merged.environment["distributed"]["per_rank"]] == [True, False]


def test_a_dead_peer_is_not_reported_as_a_signal(monkeypatch):
    from types import SimpleNamespace

    from recoque import signals
    from recoque.cli import bench as cli_bench

    monkeypatch.setattr(signals, "first", lambda: None)
    outcome = SimpleNamespace(interrupted=True)
    failed = SimpleNamespace(failure="rank 2 (node1) stopped answering")
    assert cli_bench._signal_of(outcome, failed) is None
    assert cli_bench._stopped_by(outcome, None) == "stopped by a failed rank"
    sig = cli_bench._signal_of(outcome, SimpleNamespace(failure=None))  # Ctrl-C as tests raise it
    assert sig.name == "SIGINT" and cli_bench._stopped_by(outcome, sig) == "interrupted by SIGINT"
    monkeypatch.setattr(signals, "first", lambda: 15)  # SIGTERM came as well: the signal is named
    assert cli_bench._signal_of(outcome, failed).name == "SIGTERM"
