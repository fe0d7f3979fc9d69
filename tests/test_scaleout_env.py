"""Scale-out: who am I under torchrun and srun (faked environments), one GPU per rank, timeouts."""
from __future__ import annotations

import pytest

from recoque.bench import distributed as D
from recoque.errors import BadInput


@pytest.mark.parametrize("text, hosts", [
    ("node01", ["node01"]),
    ("node[01-04,07]", ["node01", "node02", "node03", "node04", "node07"]),
    ("gpu-a[1-2]-ib,login1", ["gpu-a1-ib", "gpu-a2-ib", "login1"]),
    ("nid[008-010],x[9-11]", ["nid008", "nid009", "nid010", "x9", "x10", "x11"]),
    ("r[1-2]n[01-02]", ["r1n01", "r1n02", "r2n01", "r2n02"]),  # two bracket groups multiply out
])
def test_slurm_hostlist(text, hosts):
    assert D.parse_hostlist(text) == hosts


@pytest.mark.parametrize("bad", ["node[01-04", "node01]", "node[a-b]"])
def test_bad_hostlist_is_one_clear_line(bad):
    with pytest.raises(BadInput, match="Slurm host list"):
        D.parse_hostlist(bad)


def test_tasks_per_node():
    assert D.parse_tasks_per_node("4(x2),3") == [4, 4, 3]
    assert D.parse_tasks_per_node("8") == [8]
    with pytest.raises(BadInput):
        D.parse_tasks_per_node("4(2)")


SRUN = {"SLURM_PROCID": "13", "SLURM_NTASKS": "16", "SLURM_STEP_NUM_TASKS": "16", "SLURM_LOCALID": "5",
        "SLURM_NODEID": "1", "SLURM_NNODES": "2", "SLURM_STEP_NUM_NODES": "2", "SLURM_JOB_ID": "123456",
        "SLURM_JOB_NODELIST": "gpu[017-018]", "SLURM_STEP_TASKS_PER_NODE": "8(x2)"}


def test_srun_environment():
    w = D.discover(SRUN)
    assert (w.launcher, w.rank, w.world_size, w.local_rank, w.local_world_size, w.node_rank, w.nodes) == \
        ("slurm", 13, 16, 5, 8, 1, 2)
    assert w.master_addr == "gpu017" and w.master_port == D.SLURM_PORT_BASE + 123456 % 10000
    assert w.node_list == ("gpu017", "gpu018")
    assert D.rank_device("auto", w, {}, gpu_visible=True) == "gpu:5" and D.rank_device("rocm", w, {}) == "rocm:5"
    # a CPU-only machine under a launcher: auto is the CPU (gloo), as for one process (before: gpu:5, refused)
    assert D.rank_device("auto", w, {}, gpu_visible=False) == "cpu"
    w2 = D.discover({**SRUN, "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29999"})
    assert (w2.master_addr, w2.master_port) == ("10.0.0.1", 29999)


def test_srun_uneven_nodes_and_bad_values():
    env = {**SRUN, "SLURM_STEP_TASKS_PER_NODE": "4,3", "SLURM_NODEID": "1", "SLURM_PROCID": "5",
           "SLURM_STEP_NUM_TASKS": "7", "SLURM_LOCALID": "1"}
    assert D.discover(env).local_world_size == 3
    with pytest.raises(BadInput, match="SLURM_PROCID"):
        D.discover({**SRUN, "SLURM_PROCID": "x"})
    with pytest.raises(BadInput, match="outside a world"):
        D.discover({**SRUN, "SLURM_PROCID": "16"})
    with pytest.raises(BadInput, match="no node list"):
        D.discover({k: v for k, v in SRUN.items() if "NODELIST" not in k})


def test_torchrun_environment_wins_over_slurm():
    env = {**SRUN, "RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1",
           "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29400", "TORCHELASTIC_USE_AGENT_STORE": "True"}
    w = D.discover(env)
    assert (w.launcher, w.rank, w.world_size, w.local_rank, w.node_rank, w.nodes, w.agent_store) == \
        ("torchrun", 3, 4, 1, 1, 2, True)
    assert D.discover({**env, "TORCHELASTIC_RUN_ID": "j7", "TORCHELASTIC_RESTART_COUNT": "2"}).store_prefix == "recoque/j7/2"
    assert D.discover({}) == D.World() and not D.World().distributed


def test_one_gpu_per_rank():
    w = D.World(rank=3, world_size=4, local_rank=1, local_world_size=2)
    assert D.rank_device("gpu", w, {}) == "gpu:1" and D.rank_device("cpu", w, {}) == "cpu"
    with pytest.raises(BadInput, match="names one GPU"):
        D.rank_device("gpu:0", w, {})  # every rank on GPU 0 was the old bug
    assert D.rank_device("gpu:3", D.World()) == "gpu:3"
    # srun --gpus-per-task=1 shows each task one GPU: it is GPU 0 of that task
    assert D.rank_device("gpu", w, {"CUDA_VISIBLE_DEVICES": "5"}) == "gpu:0"
    assert D.rank_device("gpu", w, {"ROCR_VISIBLE_DEVICES": "0,1,2,3"}) == "gpu:1"


def test_backends_and_timeouts():
    assert (D.backend_for("cuda"), D.backend_for("rocm"), D.backend_for("cpu")) == ("nccl", "nccl", "gloo")
    with pytest.raises(BadInput):
        D.backend_for("tpu")
    assert D.timeouts({"RECOQUE_JOIN_TIMEOUT_S": "5"}) == (5.0, D.DEFAULT_OP_TIMEOUT_S)
    for bad in ("-1", "soon"):
        with pytest.raises(BadInput, match="RECOQUE_JOIN_TIMEOUT_S"):
            D.timeouts({"RECOQUE_JOIN_TIMEOUT_S": bad})
