"""Start N ranks of tests/scaleout/worker.py on 127.0.0.1 the way torchrun would (its environment
variables), each bounded in time; a rank can be left out or told to die."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

WORKER = Path(__file__).with_name("worker.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rank_env(rank: int, n: int, per_node: int, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "TORCHELASTIC_"))}
    env.update(RANK=str(rank), WORLD_SIZE=str(n), LOCAL_RANK=str(rank % per_node), LOCAL_WORLD_SIZE=str(per_node),
               GROUP_RANK=str(rank // per_node), GROUP_WORLD_SIZE=str(n // per_node), MASTER_ADDR="127.0.0.1",
               MASTER_PORT=str(port), OMP_NUM_THREADS="1", GLOO_SOCKET_IFNAME="lo")
    env.update(extra or {})
    return env


def launch(out: Path, n: int, per_node: int, args: list[str], skip: tuple[int, ...] = (),
           extra: dict[str, str] | None = None, timeout_s: float = 60.0) -> list[subprocess.CompletedProcess]:
    port = free_port()
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(out), *args], env=rank_env(r, n, per_node, port, extra),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(n) if r not in skip]
    done = []
    for p in procs:
        try:
            o, e = p.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        done.append(subprocess.CompletedProcess(p.args, p.returncode, o, e))
    return done
