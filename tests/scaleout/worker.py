"""One rank of a test job: join, run the collective benchmark on the CPU, gather on rank 0, write.

What `recoque bench collective --device cpu` does under a launcher, without the CLI layer.
Usage: python worker.py OUT.json [sizes=8,4096] [dtypes=fp32,bf16] [ops=...]
       [corrupt=RANK:DTYPE]  that rank's all-reduce output goes wrong in that dtype (fault injection)
       [die=RANK:N]          that rank dies after N cases (a rank lost mid-run)
       [oom=RANK:OP:BYTES]   that rank cannot allocate OP's buffers from BYTES up (one rank out of memory)
       [stale=OP]            OP writes nothing after its warm-up calls (a call that leaves its output as it was)
"""
from __future__ import annotations

import os
import sys

from recoque.bench import collective, distributed
from recoque.bench.runner import run_cases
from recoque.bench.schema import ResultsDocument, save_results
from recoque.kernels import collectives as C


class HostCPU:
    """What the runner and the collective cases ask of a device."""

    kind, torch_device, name, llc_bytes, memory_bytes = "cpu", "cpu", "test host CPU", None, None

    def to_json(self) -> dict:
        return {"kind": self.kind, "torch_device": self.torch_device, "name": self.name}


def main(argv: list[str]) -> int:
    out = argv[0]
    opts = dict(a.split("=", 1) for a in argv[1:] if "=" in a)
    world = distributed.discover()
    assert distributed.rank_device("cpu", world) == "cpu"
    device = HostCPU()  # the command's detect() also probes the clock (seconds per rank): not needed here
    s = distributed.start(world, device)
    if "sizes" in opts:  # a short sweep keeps the test fast
        collective.CPU_SIZES = tuple(int(x) for x in opts["sizes"].split(","))
    dtypes = tuple(opts.get("dtypes", "fp32").split(","))
    cases = collective.cases(device, quick=False, dtypes=dtypes)
    if "ops" in opts:
        cases = [c for c in cases if c.op in opts["ops"].split(",")]
    if "corrupt" in opts:
        _corrupt(s.world.rank, *opts["corrupt"].split(":"))
    if "oom" in opts:
        _oom(s.world.rank, *opts["oom"].split(":"))
    if "stale" in opts:
        _stale(opts["stale"])
    on_done = distributed.stop_checked(_dier(s.world.rank, opts.get("die")))
    outcome = run_cases(cases, device, collective.policy(quick=True), seed=0, telemetry=False, on_done=on_done)
    doc = ResultsDocument(environment={"hostname": s.ranks[s.world.rank].host}, device=device.to_json(),
                          results=tuple(outcome.records), skipped=tuple(outcome.skipped),
                          complete=not outcome.interrupted, command="test worker")
    merged = distributed.finish(s, doc, outcome.interrupted)
    if merged is not None:
        save_results(out, merged)
    failure = s.failure
    if failure:
        print(f"failure: {failure}", file=sys.stderr)
        return 1
    return 0


def _corrupt(me: int, rank: str, dtype: str) -> None:
    if me != int(rank):
        return
    import torch

    real = C.run

    def wrong(op, send, recv, peer=None):
        real(op, send, recv, peer)
        if op == "all_reduce" and send.dtype == getattr(torch, collective.TORCH_DTYPE[dtype]):
            send[0] += 1e6

    C.run = wrong


def _oom(me: int, rank: str, op: str, from_bytes: str) -> None:
    if me != int(rank):
        return
    real = C.buffers

    def short(o, placement, x, r, n):
        if o == op and x.numel() * x.element_size() >= int(from_bytes):
            raise RuntimeError("CUDA out of memory. Tried to allocate (fault injection)")
        return real(o, placement, x, r, n)

    C.buffers = short


def _stale(op: str) -> None:
    real, calls = C.run, {}

    def idle(o, send, recv, peer=None):
        key = (o, send.data_ptr())
        calls[key] = calls.get(key, 0) + 1
        if o != op or calls[key] <= collective.WARMUP_CALLS:
            real(o, send, recv, peer)

    C.run = idle


def _dier(me: int, spec: str | None):
    done = [0]

    def on_done(case, rec, skip) -> None:
        done[0] += 1
        print(f"done {done[0]}", flush=True)  # a test waits for this before interrupting rank 0
        if spec and me == int(spec.split(":")[0]) and done[0] >= int(spec.split(":")[1]):
            os._exit(9)  # no goodbye: the others must notice on their own

    return on_done


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
