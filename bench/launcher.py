"""Who am I in a multi-process job: torchrun's or srun's environment, read as data (no torch).

  * torchrun: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK (node), GROUP_WORLD_SIZE,
    MASTER_ADDR/MASTER_PORT; with TORCHELASTIC_USE_AGENT_STORE=True the agent hosts the store.
  * srun: SLURM_PROCID, SLURM_STEP_NUM_TASKS (or SLURM_NTASKS), SLURM_LOCALID, SLURM_NODEID,
    SLURM_STEP_NUM_NODES (or SLURM_NNODES), SLURM_STEP_TASKS_PER_NODE like "4(x2),3"; the master
    is the first host of SLURM_STEP_NODELIST / SLURM_JOB_NODELIST unless MASTER_ADDR is set.
Backend: "nccl" on CUDA and ROCm (RCCL answers to that name), "gloo" on the CPU.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

from recoque.errors import BadInput

DEFAULT_JOIN_TIMEOUT_S = 180.0
DEFAULT_OP_TIMEOUT_S = 600.0
DEFAULT_PORT = 29500  # torchrun's default
SLURM_PORT_BASE = 20000  # srun without MASTER_PORT: a port every rank derives from the job id
BACKENDS = {"cuda": "nccl", "rocm": "nccl", "cpu": "gloo"}


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets: "a[1-2,4],b" -> ["a[1-2,4]", "b"]."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if depth < 0:
            raise BadInput(f"bad Slurm host list {text!r}: unbalanced ']'", "check SLURM_JOB_NODELIST")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if depth:
        raise BadInput(f"bad Slurm host list {text!r}: unclosed '['", "check SLURM_JOB_NODELIST")
    return out + [cur]


def _expand_range(spec: str, text: str) -> list[str]:
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise BadInput(f"bad Slurm host list {text!r}: range {part!r}", "check SLURM_JOB_NODELIST")
        width = len(lo)  # node[01-10]: the width of the first bound keeps the zero padding
        for i in range(int(lo), int(hi or lo) + 1):
            out.append(str(i).zfill(width))
    return out


def parse_hostlist(text: str) -> list[str]:
    """Expand Slurm's compact host list: "node[01-03,07],gpu-a[1-2]-ib" -> node01 node02 node03
    node07 gpu-a1-ib gpu-a2-ib. Several bracket groups in one name multiply out, in order."""
    hosts: list[str] = []
    for item in _split_top(text.strip()):
        if not item:
            continue
        names = [""]
        for literal, spec in re.findall(r"([^\[]*)(?:\[([^\]]*)\])?", item):
            if not literal and not spec:
                continue
            parts = _expand_range(spec, text) if spec else [""]
            names = [n + literal + p for n in names for p in parts]
        hosts.extend(names)
    return hosts


def parse_tasks_per_node(text: str) -> list[int]:
    """Slurm's "4(x2),3" -> [4, 4, 3] (tasks on each node of the step, in node order)."""
    out: list[int] = []
    for part in filter(None, text.split(",")):
        m = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not m:
            raise BadInput(f"bad Slurm tasks-per-node {text!r}", "check SLURM_STEP_TASKS_PER_NODE")
        out += [int(m.group(1))] * int(m.group(2) or 1)
    return out


@dataclass(frozen=True)
class World:
    """This process's place in the job, as the launcher states it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    node_rank: int = 0
    nodes: int = 1
    launcher: str = "none"  # "torchrun", "slurm" or "none"
    master_addr: str = "127.0.0.1"
    master_port: int = DEFAULT_PORT
    agent_store: bool = False  # torchrun's agent already hosts the store at MASTER_ADDR:PORT
    node_list: tuple[str, ...] = ()
    store_prefix: str = "recoque"  # per torchrun run and restart: the agent's store outlives a restart

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def to_json(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def _int(env: Mapping[str, str], key: str, default: int | None = None) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        if default is None:
            raise BadInput(f"{key} is not set", "launch with torchrun or srun")
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadInput(f"{key}={raw!r} is not an integer", "check the launcher's environment") from None


def discover(env: Mapping[str, str] | None = None) -> World:
    """The World from torchrun's variables, else srun's, else a single process."""
    env = os.environ if env is None else env
    if "RANK" in env and "WORLD_SIZE" in env:
        return _from_torchrun(env)
    if "SLURM_PROCID" in env and (env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS")):
        return _from_slurm(env)
    return World()


def _from_torchrun(env: Mapping[str, str]) -> World:
    n = _int(env, "WORLD_SIZE")
    local_n = _int(env, "LOCAL_WORLD_SIZE", n)
    nodes = _int(env, "GROUP_WORLD_SIZE", max(1, -(-n // max(1, local_n))))
    w = World(rank=_int(env, "RANK"), world_size=n, local_rank=_int(env, "LOCAL_RANK", 0), local_world_size=local_n,
              node_rank=_int(env, "GROUP_RANK", 0), nodes=nodes, launcher="torchrun",
              master_addr=env.get("MASTER_ADDR", "127.0.0.1"), master_port=_int(env, "MASTER_PORT", DEFAULT_PORT),
              agent_store=env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true",
              store_prefix=f"recoque/{env.get('TORCHELASTIC_RUN_ID', 'none')}/{env.get('TORCHELASTIC_RESTART_COUNT', '0')}")
    return _checked(w)


def _from_slurm(env: Mapping[str, str]) -> World:
    n = _int(env, "SLURM_STEP_NUM_TASKS", _int(env, "SLURM_NTASKS", 1))
    nodelist = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
    hosts = tuple(parse_hostlist(nodelist)) if nodelist else ()
    nodes = _int(env, "SLURM_STEP_NUM_NODES", _int(env, "SLURM_NNODES", max(1, len(hosts))))
    node = _int(env, "SLURM_NODEID", 0)
    per_node = parse_tasks_per_node(env.get("SLURM_STEP_TASKS_PER_NODE") or env.get("SLURM_TASKS_PER_NODE") or "")
    local_n = per_node[node] if node < len(per_node) else max(1, n // max(1, nodes))
    master = env.get("MASTER_ADDR") or (hosts[0] if hosts else None)
    if master is None:
        raise BadInput("srun gave no node list to find rank 0's host", "export MASTER_ADDR=<first node> in the sbatch script")
    job = _int(env, "SLURM_JOB_ID", 0)
    port = _int(env, "MASTER_PORT", SLURM_PORT_BASE + job % 10000)
    w = World(rank=_int(env, "SLURM_PROCID"), world_size=n, local_rank=_int(env, "SLURM_LOCALID", 0),
              local_world_size=local_n, node_rank=node, nodes=nodes, launcher="slurm", master_addr=master,
              master_port=port, node_list=hosts)
    return _checked(w)


# The largest job any launcher here has run is ~10^5 ranks (Frontier: 37,888 GPUs); 2**20 leaves room
# and keeps a typo (WORLD_SIZE=10^12) from waiting forever for ranks that never come.
MAX_WORLD_SIZE = 2**20


def _checked(w: World) -> World:
    if not 1 <= w.master_port <= 65535:
        raise BadInput(f"MASTER_PORT={w.master_port} is not a TCP port", "give a port from 1 to 65535, e.g. 29500")
    if w.world_size > MAX_WORLD_SIZE:
        raise BadInput(f"a world of {w.world_size:,} ranks ({w.launcher}) is more than {MAX_WORLD_SIZE:,}",
                       "check WORLD_SIZE / SLURM_NTASKS")
    if w.world_size < 1 or not 0 <= w.rank < w.world_size:
        raise BadInput(f"rank {w.rank} is outside a world of {w.world_size} ({w.launcher})", "check the launcher's environment")
    if not 0 <= w.local_rank < max(1, w.local_world_size) or not 0 <= w.node_rank < max(1, w.nodes):
        raise BadInput(f"local rank {w.local_rank} of {w.local_world_size} on node {w.node_rank} of {w.nodes} is inconsistent",
                       "check the launcher's environment")
    return w


def backend_for(kind: str) -> str:
    """torch.distributed backend for a device kind: nccl on CUDA and ROCm (RCCL), gloo on the CPU."""
    if kind not in BACKENDS:
        raise BadInput(f"no torch.distributed backend for device kind {kind!r}", f"use one of {sorted(BACKENDS)}")
    return BACKENDS[kind]


VISIBLE_VARS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")


def rank_device(requested: str, world: World, env: Mapping[str, str] | None = None,
                gpu_visible: bool | None = None) -> str:
    """The device string for this rank: one GPU per local rank (an explicit index is kept when one
    process runs alone, but under a launcher every rank takes GPU local_rank of its node, or GPU 0
    when the launcher already shows each task only its own GPU, as srun --gpus-per-task=1 does).
    `auto` on a machine without a GPU is the CPU (gloo), as it is for one process."""
    if not world.distributed:
        return requested
    env = os.environ if env is None else env
    visible = [v for v in (env.get(k) for k in VISIBLE_VARS) if v]
    one_each = bool(visible) and all(len(v.split(",")) == 1 for v in visible)
    family = requested.split(":")[0]
    if family == "auto" and requested == "auto" and not (_gpu_visible() if gpu_visible is None else gpu_visible):
        return "cpu"
    if family == "cpu":
        return "cpu"
    if family == "auto":
        family = "gpu"
    if ":" in requested:
        raise BadInput(f"--device {requested} names one GPU, but {world.world_size} ranks are running",
                       f"use --device {family}: each rank takes GPU LOCAL_RANK of its node")
    return f"{family}:{0 if one_each else world.local_rank}"


def _gpu_visible() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def timeouts(env: Mapping[str, str] | None = None) -> tuple[float, float]:
    env = os.environ if env is None else env
    out = []
    for key, default in (("RECOQUE_JOIN_TIMEOUT_S", DEFAULT_JOIN_TIMEOUT_S), ("RECOQUE_OP_TIMEOUT_S", DEFAULT_OP_TIMEOUT_S)):
        try:
            v = float(env.get(key, default))
        except ValueError:
            raise BadInput(f"{key}={env[key]!r} is not a number of seconds", f"unset it or give seconds, e.g. {default:g}") from None
        if not math.isfinite(v) or v <= 0:  # nan or inf later failed in the rendezvous, blamed on the port
            raise BadInput(f"{key}={env.get(key)!r} is not a positive, finite number of seconds",
                           f"unset it or give seconds, e.g. {default:g}")
        out.append(v)
    return out[0], out[1]
