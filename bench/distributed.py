"""Multi-process runs on torch.distributed: join with a bounded timeout, one GPU per rank, and
every rank's results gathered into one document on rank 0.

Who is who comes from the launcher (bench/launcher.py: torchrun or srun; no launcher or transport
of our own). Joining goes through a TCPStore that we open ourselves, so that a missing rank is
named: each rank writes join/<rank>; rank 0 waits at most the join timeout and then says which
ranks never came. The same store carries the results home (result/<rank>, merged by
bench/rankmerge.py), a stop flag (Ctrl-C on rank 0) and a heartbeat per rank, so a rank that dies
mid-run is named by the others instead of a hang.
Timeouts (seconds): RECOQUE_JOIN_TIMEOUT_S (default 180), RECOQUE_OP_TIMEOUT_S (default 600).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from recoque.errors import one_line
from recoque.bench.launcher import (  # noqa: F401 - re-exported: the one import for callers
    BACKENDS, DEFAULT_JOIN_TIMEOUT_S, DEFAULT_OP_TIMEOUT_S, DEFAULT_PORT, SLURM_PORT_BASE, VISIBLE_VARS, World,
    backend_for, discover, parse_hostlist, parse_tasks_per_node, rank_device, timeouts,
)
from recoque.bench.rankmerge import merge, spread_summary, summary_line  # noqa: F401 - re-exported
from recoque.bench.schema import ResultsDocument, document_from_json
from recoque.errors import RecoqueError

HEARTBEAT_S = 1.0
STALE_BEATS = 5  # a rank silent this many heartbeats is named as dead
POLL_S = 0.02


class RankFailure(RecoqueError):
    """A rank never joined, died, or stopped answering (exit code 1)."""


# --------------------------------------------------------------------------------------------
# The session: store, process group, heartbeat.
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RankInfo:
    rank: int
    host: str
    local_rank: int
    node_rank: int
    pid: int = 0


@dataclass
class Session:
    world: World
    backend: str
    device: Any  # this rank's torch.device
    store: Any
    ranks: tuple[RankInfo, ...]
    join_timeout_s: float
    op_timeout_s: float
    failure: str | None = None
    _beat: Any = field(default=None, repr=False)

    @property
    def nodes(self) -> int:
        return len({r.node_rank for r in self.ranks})

    @property
    def ranks_per_node(self) -> dict[int, int]:
        out: dict[int, int] = {}
        for r in self.ranks:
            out[r.node_rank] = out.get(r.node_rank, 0) + 1
        return dict(sorted(out.items()))

    @property
    def tier(self) -> str:
        """Where a whole-world collective runs: inside one node, or across nodes."""
        return "intra" if self.nodes == 1 else "inter"

    def p2p_pairs(self) -> list[tuple[int, int, str]]:
        """Rank 0 with a rank on its own node (intra) and with one on another node (inter)."""
        me = self.ranks[0]
        same = [r.rank for r in self.ranks[1:] if r.node_rank == me.node_rank]
        other = [r.rank for r in self.ranks if r.node_rank != me.node_rank]
        out = []
        if same:
            out.append((0, same[0], "intra"))
        if other:
            out.append((0, other[0], "inter"))
        return out

    def host_of(self, rank: int) -> str:
        return self.ranks[rank].host

    def topology(self) -> dict[str, Any]:
        per_node = self.ranks_per_node
        return {
            "world_size": self.world.world_size, "nodes": self.nodes,
            "ranks_per_node": next(iter(set(per_node.values()))) if len(set(per_node.values())) == 1 else per_node,
            "hosts": sorted({r.host for r in self.ranks}), "backend": self.backend,
            "launcher": self.world.launcher,
            "launcher_topology": {"nodes": self.world.nodes, "local_world_size": self.world.local_world_size,
                                  "master": f"{self.world.master_addr}:{self.world.master_port}",
                                  "node_list": list(self.world.node_list)},
            "ranks": [r.__dict__ for r in self.ranks],
        }


_SESSION: Session | None = None


def session() -> Session | None:
    """The joined session of this process, if any."""
    return _SESSION


def _open_store(world: World, join_timeout_s: float) -> Any:
    import torch.distributed as dist

    host = world.master_addr
    is_master = world.rank == 0 and not world.agent_store
    try:
        store = dist.TCPStore(host, world.master_port, None, is_master, timedelta(seconds=join_timeout_s),
                              wait_for_workers=False)
    except Exception as exc:  # noqa: BLE001 - DistNetworkError, RuntimeError, OSError by version
        if is_master:
            raise RankFailure(f"rank 0 cannot open the rendezvous store on {host}:{world.master_port}: {exc}",
                              "free the port or set MASTER_PORT to another one") from None
        raise RankFailure(f"rank {world.rank} could not reach rank 0's store at {host}:{world.master_port} "
                          f"within {join_timeout_s:g} s", "check that rank 0 started, and MASTER_ADDR/MASTER_PORT") from None
    return dist.PrefixStore(world.store_prefix, store)


def refuse_job(world: World, why: str, wait_s: float = 10.0) -> None:
    """Rank 0 refuses to run (a bad --out) before any rank joined: it says so in the rendezvous
    store, so the other ranks stop with its reason at once instead of waiting out the join timeout;
    it keeps the store up until they have read it (at most wait_s)."""
    if world.rank != 0 or not world.distributed:
        return
    try:
        store = _open_store(world, wait_s)
        store.set("abort", f"rank 0 refused to start: {why}")
        deadline = time.monotonic() + wait_s
        while int(store.add("joined", 0)) < world.world_size - 1 and time.monotonic() < deadline:
            time.sleep(POLL_S)
        time.sleep(2 * POLL_S)  # the last rank to join reads the abort on its next poll
    except Exception:  # noqa: BLE001 - rank 0's own refusal stands whatever the store does
        pass


def _has(store: Any, key: str) -> bool:
    return bool(store.check([key]))


def _join(store: Any, world: World, timeout_s: float) -> tuple[RankInfo, ...]:
    """Every rank says who it is; rank 0 waits at most timeout_s and names the ranks that never came."""
    me = RankInfo(world.rank, socket.gethostname(), world.local_rank, world.node_rank, os.getpid())
    store.set(f"join/{world.rank}", json.dumps(me.__dict__))
    deadline = time.monotonic() + timeout_s
    if world.rank == 0:
        n = world.world_size
        while int(store.add("joined", 0)) < n - 1 and time.monotonic() < deadline:
            time.sleep(POLL_S)
        missing = [r for r in range(1, n) if not _has(store, f"join/{r}")]
        if missing:
            msg = (f"rank{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of {n} never joined "
                   f"within {timeout_s:g} s ({world.launcher}, store {world.master_addr}:{world.master_port})")
            store.set("abort", msg)
            raise RankFailure(msg, "check those ranks' logs, or raise RECOQUE_JOIN_TIMEOUT_S")
        store.set("go", "1")
    else:
        store.add("joined", 1)
        while not _has(store, "go"):
            if _has(store, "abort"):
                raise RankFailure(store.get("abort").decode(), "check the other ranks' logs")
            if time.monotonic() > deadline + 5.0:
                raise RankFailure(f"rank 0 did not confirm the {world.world_size} ranks within {timeout_s:g} s",
                                  "check rank 0's log, or raise RECOQUE_JOIN_TIMEOUT_S")
            time.sleep(POLL_S)
    return tuple(RankInfo(**json.loads(store.get(f"join/{r}").decode())) for r in range(world.world_size))


def start(world: World, device: Any, join_timeout_s: float | None = None, op_timeout_s: float | None = None) -> Session:
    """Join the job (once per process): store rendezvous, then the process group on this rank's GPU."""
    global _SESSION
    if _SESSION is not None:
        return _SESSION
    import torch
    import torch.distributed as dist

    j_default, o_default = timeouts()
    join_s, op_s = join_timeout_s or j_default, op_timeout_s or o_default
    backend = backend_for(device.kind)
    tdev = torch.device(device.torch_device)
    if backend == "nccl":
        torch.cuda.set_device(tdev)  # before any collective: otherwise every rank lands on GPU 0
    store = _open_store(world, join_s)
    ranks = _join(store, world, join_s)
    kwargs = {"device_id": tdev} if backend == "nccl" else {}
    dist.init_process_group(backend=backend, store=dist.PrefixStore("pg", store), rank=world.rank,
                            world_size=world.world_size, timeout=timedelta(seconds=op_s), **kwargs)
    _SESSION = Session(world, backend, tdev, store, ranks, join_s, op_s)
    _SESSION._beat = _Heartbeat(store, world.rank)
    return _SESSION


def shutdown() -> None:
    """Leave the process group (idempotent)."""
    global _SESSION
    s, _SESSION = _SESSION, None
    if s is not None and s._beat is not None:
        s._beat.stop()
    try:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - a broken group cannot be torn down cleanly; the process exits anyway
        pass


class _Heartbeat:
    """A daemon thread writing beat/<rank> = wall time, so that a silent rank can be named."""

    def __init__(self, store: Any, rank: int) -> None:
        self._store, self._rank, self._halt = store, rank, threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._loop, name="recoque-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        self._store.set(f"beat/{self._rank}", repr(time.time()))

    def _loop(self) -> None:
        while not self._halt.wait(HEARTBEAT_S):
            try:
                self._beat()
            except Exception:  # noqa: BLE001 - the store went away (rank 0 gone): stop beating
                return

    def stop(self) -> None:
        self._halt.set()


def silent_ranks(s: Session, now: float | None = None) -> list[int] | None:
    """Ranks whose heartbeat is older than STALE_BEATS beats, less those that sent their results and
    left (a peer that saw the same failure first and finished is not silent); None when the store is
    unreachable."""
    now = time.time() if now is None else now
    out = []
    try:
        for r in range(s.world.world_size):
            stale = not _has(s.store, f"beat/{r}") or now - float(s.store.get(f"beat/{r}").decode()) > STALE_BEATS * HEARTBEAT_S
            if stale and not _has(s.store, f"result/{r}"):
                out.append(r)
    except Exception:  # noqa: BLE001 - the store lives on rank 0 (or the torchrun agent)
        return None
    return out


def describe_failure(s: Session, exc: BaseException) -> str:
    """One line naming the rank(s) that stopped answering, for an error raised by a collective."""
    time.sleep(STALE_BEATS * HEARTBEAT_S + 0.5)  # let a dead rank's heartbeat go stale before judging
    silent = silent_ranks(s)
    if silent is None:
        who = f"rank 0 ({s.host_of(0)}) is unreachable (its store is gone)"
    elif silent:
        who = "rank " + ", ".join(f"{r} ({s.host_of(r)})" for r in silent) + " stopped answering"
    else:
        who = "no rank is silent; the collective itself failed"
    return f"rank {s.world.rank}: {who}: {one_line(exc)}"


# --------------------------------------------------------------------------------------------
# Stop flag (Ctrl-C on rank 0 stops every rank; each keeps what it measured).
# --------------------------------------------------------------------------------------------
def _is_oom(exc: BaseException) -> bool:
    """Out of memory is the runner's to handle (a skip at this size), not a broken group."""
    from recoque.errors import is_oom

    return is_oom(exc) or "out of memory" in str(exc).lower()


def request_stop(s: Session, reason: str = "interrupted on rank 0") -> None:
    try:
        s.store.set("stop", reason)
    except Exception:  # noqa: BLE001 - nothing more to tell when the store is gone
        pass


def stop_requested(s: Session | None = None) -> bool:
    s = s or _SESSION
    if s is None:
        return False
    try:
        return _has(s.store, "stop")
    except Exception:  # noqa: BLE001 - the store is gone: rank 0 has left, stop too
        return True


def check_stop(s: Session | None = None) -> None:
    """Raise KeyboardInterrupt when rank 0 asked every rank to stop (call between cases)."""
    if stop_requested(s):
        raise KeyboardInterrupt


def abort_peers(s: Session, failure: str | None = None) -> None:
    """Rank 0 stopping early: raise the stop flag so the others stop between cases, then leave the
    process group at once, so that a rank blocked in a collective waiting for this one sees its
    connections close (gloo) instead of waiting for the op timeout. The store stays up for the
    results. NCCL peers are released by their watchdog after RECOQUE_OP_TIMEOUT_S at worst."""
    if failure:
        s.failure = failure
    request_stop(s, failure or "interrupted on rank 0")
    try:
        import torch.distributed as dist
        from torch.distributed import distributed_c10d as c10d

        abort = getattr(c10d, "_abort_process_group", None)
        if abort is not None and s.backend == "nccl":
            abort()
        elif dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - best effort: the peers still have the op timeout
        pass


# --------------------------------------------------------------------------------------------
# Gathering: every rank's document through the store, merged on rank 0.
# --------------------------------------------------------------------------------------------
def gather(s: Session, doc: ResultsDocument, wait_s: float | None = None) -> ResultsDocument | None:
    """Send this rank's document to rank 0; on rank 0 return the merged document (None elsewhere).

    Rank 0 waits at most `wait_s` (default: the join timeout) for each other rank; a rank that
    sent nothing is named in the merged document, which is then marked incomplete."""
    me = s.world.rank
    payload = {"doc": doc.to_json(), "failure": s.failure}
    s.store.set(f"result/{me}", json.dumps(payload))
    if me != 0:
        return None
    deadline = time.monotonic() + (s.join_timeout_s if wait_s is None else wait_s)
    docs: list[ResultsDocument | None] = [doc]
    failures: list[str] = [s.failure] if s.failure else []
    dead = _Dead(s)
    for r in range(1, s.world.world_size):
        while not _has(s.store, f"result/{r}") and time.monotonic() < deadline and not dead.holds(r):
            time.sleep(POLL_S)
        if not _has(s.store, f"result/{r}"):
            docs.append(None)
            continue
        got = json.loads(s.store.get(f"result/{r}").decode())
        docs.append(document_from_json(got["doc"], origin=f"rank {r}'s results"))
        if got.get("failure"):
            failures.append(str(got["failure"]))
    return merge(docs, s.topology(), failures)


class _Dead:
    """Which ranks have stopped beating, looked up at most once a heartbeat while rank 0 waits for
    results: a dead rank ends the wait within STALE_BEATS beats instead of the whole wait. Under
    torchrun that matters: when a worker dies the agent sends the rest SIGTERM and SIGKILL 30 s
    later, so waiting those 30 s for a rank that will never send lost rank 0's own results too."""

    def __init__(self, s: Session) -> None:
        self._s, self._ranks, self._at = s, set(), -HEARTBEAT_S

    def holds(self, rank: int) -> bool:
        if time.monotonic() - self._at >= HEARTBEAT_S:
            self._at = time.monotonic()
            self._ranks = set(silent_ranks(self._s) or ()) - {self._s.world.rank}
        return rank in self._ranks


# --------------------------------------------------------------------------------------------
# What a command calls (src/recoque/cli/bench.py).
# --------------------------------------------------------------------------------------------
def stop_checked(callback: Any) -> Any:
    """Wrap a runner's on_done callback so that every rank stops between cases once rank 0 was
    interrupted (the runner turns KeyboardInterrupt into an incomplete outcome it keeps)."""
    def on_done(*args: Any) -> None:
        if callback is not None:
            callback(*args)
        check_stop()

    return on_done


def finish(s: Session, doc: ResultsDocument, interrupted: bool = False) -> ResultsDocument | None:
    """After the suite: tell the others to stop if this is rank 0 and it was interrupted, gather every
    rank's document (merged on rank 0; None on the others) and leave the group."""
    if interrupted and s.world.rank == 0:
        abort_peers(s)
    wait = min(s.join_timeout_s, 30.0) if (interrupted or s.failure) else None
    try:
        return gather(s, doc, wait_s=wait)
    finally:
        shutdown()


def raise_if_failed(s: Session | None) -> None:
    """A rank that died or stopped answering ends the command with its name (exit code 1)."""
    if s is not None and s.failure:
        raise RankFailure(s.failure, "the results file keeps what was measured; check that rank's log")
