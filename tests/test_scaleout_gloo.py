"""Scale-out on the CPU: real ranks on 127.0.0.1 with gloo, each bounded in time.

2 ranks through the command itself (`python -m recoque bench collective --device cpu` with
torchrun's variables), 4 ranks as 2 nodes x 2 through tests/scaleout/worker.py, and a rank that
never joins."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).with_name("scaleout")))
from launch import free_port, launch, rank_env  # noqa: E402

from recoque.bench.schema import load_results  # noqa: E402
from recoque.kernels import collectives as C  # noqa: E402

OPS_OUT_OF_PLACE = {"all_gather", "reduce_scatter", "all_to_all", "send_recv"}


def test_two_ranks_through_the_command(tmp_path):
    out = tmp_path / "two.json"
    port = free_port()
    cmd = [sys.executable, "-m", "recoque", "bench", "collective", "--device", "cpu", "--quick", "--out", str(out)]
    procs = [subprocess.Popen(cmd, env=rank_env(r, 2, 2, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=tmp_path) for r in range(2)]
    res = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], res[0][1][-3000:] + res[1][1][-3000:]
    doc = load_results(str(out))
    d = doc.environment["distributed"]
    assert (d["world_size"], d["nodes"], d["ranks_per_node"], d["backend"], d["launcher"]) == (2, 1, 2, "gloo", "torchrun")
    assert [r["sent"] for r in d["per_rank"]] == [True, True] and doc.complete
    assert {r.op for r in doc.results} == set(C.OPS) and not doc.skipped
    for r in doc.results:  # every record verified, averaged over both ranks, each rank's median kept
        assert r.verified and "ranks_averaged" in r.tags and len(r.params["per_rank_median_s"]) == 2
        assert r.bytes_moved == C.bus_bytes(r.op, r.params["bytes"], r.params["group_size"])
    assert "2 ranks on 1 node(s)" in res[0][1] and res[1][0] == ""  # rank 1 prints nothing
    assert "alpha-beta all_reduce fp32 in_place, 2 ranks intra-node: latency" in res[0][1]  # the fit, shown
    assert f"measured {len(doc.results)} verified results into" in res[0][1]  # the merged document's count


def test_four_ranks_on_two_nodes(tmp_path):
    out = tmp_path / "four.json"
    # rank 3's bf16 all-reduce goes wrong: every rank must drop that case, the rest must verify
    runs = launch(out, 4, 2, ["sizes=4096", "dtypes=fp32,bf16", "corrupt=3:bf16"], timeout_s=180)
    assert [r.returncode for r in runs] == [0] * 4, runs[0].stderr[-3000:]
    doc = load_results(str(out))
    d = doc.environment["distributed"]
    assert (d["world_size"], d["nodes"], d["ranks_per_node"]) == (4, 2, 2)
    assert [r["node_rank"] for r in d["ranks"]] == [0, 0, 1, 1]
    got = [(r.op, r.dtype, r.params["placement"], r.params["bytes"]) for r in doc.results]
    for dtype in ("fp32", "bf16"):
        for op in C.OPS:
            if (op, dtype) == ("all_reduce", "bf16"):
                continue
            for place in C.PLACEMENTS[op]:
                assert sum(1 for g in got if g[:3] == (op, dtype, place)) == (2 if op == "send_recv" else 1), (op, dtype, place)
    broken = [s for s in doc.skipped if s.op == "all_reduce" and s.dtype == "bf16"]
    assert len(broken) == 1 and broken[0].reason.startswith("rank 3: verification failed")  # the rank that saw it
    assert not doc.select("collective", dtype="bf16", op="all_reduce")
    tiers = {(tuple(r.params["ranks"]), r.params["tier"]) for r in doc.select("collective", op="send_recv")}
    assert tiers == {((0, 1), "intra"), ((0, 2), "inter")}  # a pair inside node 0 and one across
    assert all(r.params["tier"] == "inter" for r in doc.results if r.op != "send_recv")
    ar = doc.select("collective", dtype="fp32", op="all_reduce")[0]
    assert ar.params["busbw_factor"] == 1.5 and len(ar.params["per_rank_median_s"]) == 4


def test_a_rank_that_never_joins_is_named(tmp_path):
    started = time.monotonic()
    runs = launch(tmp_path / "x.json", 3, 3, ["sizes=8"], skip=(2,), extra={"RECOQUE_JOIN_TIMEOUT_S": "3"},
                  timeout_s=90)
    assert time.monotonic() - started < 75  # 3 s join timeout + starting python and torch on a busy box
    assert [r.returncode for r in runs] == [1, 1]
    for r in runs:  # rank 0 and rank 1 both say which rank is missing
        assert "rank 2 of 3 never joined within 3 s" in r.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.slow
def test_a_rank_that_dies_mid_run_is_named_and_the_rest_is_kept(tmp_path):
    out = tmp_path / "dead.json"
    runs = launch(out, 3, 3, ["sizes=8,4096", "die=2:4"], extra={"RECOQUE_OP_TIMEOUT_S": "20"}, timeout_s=120)
    assert runs[0].returncode == 1 and runs[2].returncode == 9
    assert "rank 2" in runs[0].stderr and "stopped answering" in runs[0].stderr
    doc = json.loads(out.read_text())
    assert doc["complete"] is False and len(doc["results"]) >= 3
    notes = doc["environment"]["distributed"]["notes"]
    assert any("rank 2" in n for n in notes)


@pytest.mark.slow
def test_ctrl_c_on_rank_0_stops_every_rank_and_keeps_what_was_measured(tmp_path):
    import signal

    from launch import WORKER

    out, port = tmp_path / "int.json", free_port()
    args = [sys.executable, str(WORKER), str(out), "sizes=8,512,4096,32768,262144,2097152", "dtypes=fp32,bf16"]
    procs = [subprocess.Popen(args, env=rank_env(r, 2, 2, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for r in range(2)]
    try:
        for line in procs[0].stdout:  # rank 0 has finished three cases
            if line.strip() == "done 3":
                break
        procs[0].send_signal(signal.SIGINT)
        codes = [p.wait(timeout=60) for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert codes == [0, 0]
    doc = json.loads(out.read_text())
    assert doc["complete"] is False and 3 <= len(doc["results"]) < 48
    assert all(r["sent"] for r in doc["environment"]["distributed"]["per_rank"])


def test_one_rank_out_of_memory_skips_the_size_on_every_rank(tmp_path):
    """Rank 1 cannot allocate all_gather's buffers at 4 KiB (2 KiB a rank): it skipped the case alone and the ranks
    then paired calls of different cases (a gloo timeout, the run lost); now every rank skips it."""
    out = tmp_path / "oom.json"
    runs = launch(out, 2, 2, ["sizes=8,4096", "ops=all_gather,all_reduce", "oom=1:all_gather:1024"],
                  extra={"RECOQUE_OP_TIMEOUT_S": "20"}, timeout_s=90)
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr[-2000:]
    doc = load_results(str(out))
    assert doc.complete
    skipped = [s for s in doc.skipped if s.op == "all_gather"]
    assert skipped and all("out of memory" in s.reason for s in skipped)
    assert {r.params["bytes"] for r in doc.select("collective", op="all_reduce")} == {8, 4096}


def test_a_call_that_writes_nothing_fails_verification(tmp_path):
    """After its warm-up calls left the right answer in the receive buffer, an all_gather that writes
    nothing passed verification at a thousand times its real rate: the buffer is poisoned first."""
    out = tmp_path / "stale.json"
    runs = launch(out, 2, 2, ["sizes=4096", "ops=all_gather", "stale=all_gather"], timeout_s=90)
    doc = load_results(str(out))
    assert not doc.select("collective", op="all_gather")
    assert doc.skipped and all("verification failed" in s.reason for s in doc.skipped), runs[0].stderr[-2000:]


def test_a_refused_out_on_rank_0_stops_the_other_ranks_at_once(tmp_path):
    """Rank 0 refused its --out and left before the rendezvous: rank 1 waited out the join timeout
    (180 s by default) and blamed the network; rank 0 now says why in the store."""
    bad = tmp_path / "notes.txt"
    bad.write_text("not a results file\n")
    port = free_port()
    cmd = [sys.executable, "-m", "recoque", "bench", "collective", "--device", "cpu", "--quick", "--out", str(bad)]
    started = time.monotonic()
    procs = [subprocess.Popen(cmd, env=rank_env(r, 2, 2, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in (0, 1)]
    outs = [p.communicate(timeout=90) for p in procs]
    assert procs[0].returncode == 2 and procs[1].returncode != 0
    assert "rank 0 refused to start" in outs[1][1], outs[1][1][-1500:]
    assert time.monotonic() - started < 60
    assert bad.read_text() == "not a results file\n"
