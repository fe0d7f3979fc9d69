"""Review 116 of the benchmark harness: collectives of two runs pair up in `bench compare`, the summary
keeps collective world sizes apart, STREAM floors are held against the best rate (BabelStream's
convention), an interrupted `bench accept` exits 128 + the signal with what it measured kept, and the
MoE reference check reads only the sampled columns of the experts it needs."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recoque import signals
from recoque.bench import accept as A
from recoque.bench import compare, summary
from recoque.bench import distributed as D
from recoque.bench.collective import CollectiveCase
from recoque.bench.rankmerge import PER_RUN_PARAMS
from recoque.bench.schema import Record, ResultsDocument, document_from_json, load_results, save_results
from recoque.cli import app
from recoque.errors import BadInput, Interrupted

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()
RECOQUE = [sys.executable, "-m", "recoque"]


# --------------------------------------------------------------------------- 1. compare pairs collectives


def _topo(n: int, host: str) -> dict:
    return {"world_size": n, "nodes": 1, "ranks_per_node": {0: n}, "hosts": [host], "backend": "gloo",
            "launcher": "torchrun",
            "ranks": [{"rank": r, "host": host, "local_rank": r, "node_rank": 0} for r in range(n)]}


def _allreduce(n: int, times: list[float]) -> Record:
    c = CollectiveCase("all_reduce", 2**20, n)
    return Record("collective", c.op, c.dtype, c.params, tuple(times), "GB/s", bytes_moved=c.work().bytes_moved)


def _triad(rate_gb_s: float) -> Record:
    b = 3 * 2**20 * 8
    return Record("stream", "triad", "fp64", {"n_elements": 2**20, "elem_bytes": 8},
                  tuple(b / (rate_gb_s * 1e9) * (1 + 0.001 * i) for i in range(8)), "GB/s", bytes_moved=b)


def _merged_run(n: int, scale_s: float, host: str) -> ResultsDocument:
    """What rank 0 writes after a torchrun job of n ranks: every rank's document merged (the real merge)."""
    docs = [ResultsDocument(environment={"hostname": host}, device={"name": "cpu"},
                            results=(_allreduce(n, [scale_s * (1 + 0.02 * r + 0.001 * i) for i in range(10)]),
                                     _triad(100.0 / scale_s * 1e-3 * (1 + 0.1 * r))))
            for r in range(n)]
    return D.merge(docs, _topo(n, host))


def test_the_same_collective_of_two_merged_runs_pairs_and_is_compared():
    a, b = _merged_run(2, 1e-3, "node-a"), _merged_run(2, 0.8e-3, "node-b")
    ar_a, ar_b = a.select("collective")[0], b.select("collective")[0]
    assert ar_a.params["per_rank_median_s"] != ar_b.params["per_rank_median_s"]  # what kept them apart
    comp = compare.compare_documents(a, b)
    coll = [c for c in comp.cases if c.benchmark == "collective"]
    assert len(coll) == 1 and not comp.only_in_a and not comp.only_in_b
    assert coll[0].ratio == pytest.approx(ar_a.median_s / ar_b.median_s) and coll[0].verdict == "faster"
    assert coll[0].params["world_size"] == 2 and not set(PER_RUN_PARAMS) & set(coll[0].params)
    # node-wide records of different hosts pair rank with rank, not host with host
    streams = sorted((c for c in comp.cases if c.benchmark == "stream"), key=lambda c: c.params["rank"])
    assert [c.params["rank"] for c in streams] == [0, 1]
    assert streams[1].achieved_a == pytest.approx(a.select("stream")[1].achieved)


def test_collectives_of_different_world_sizes_never_pair():
    two, four = _merged_run(2, 1e-3, "h"), _merged_run(4, 1e-3, "h")
    with pytest.raises(BadInput, match="no case in common"):
        compare.compare_documents(replace(two, results=two.select("collective")),
                                  replace(four, results=four.select("collective")))


def _gloo_runs(*outs: Path) -> None:
    """`recoque bench collective --quick` as 2 real ranks on this host (gloo), as torchrun starts them,
    once per file, the jobs side by side (each on its own port)."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).with_name("scaleout")))
    from launch import free_port, rank_env

    procs, ports = [], set()
    for out in outs:
        port = free_port()
        while port in ports:  # two jobs on one port would join each other's group
            port = free_port()
        ports.add(port)
        cmd = RECOQUE + ["bench", "collective", "--device", "cpu", "--quick", "--dtype", "fp32", "--out", str(out)]
        procs += [subprocess.Popen(cmd, env=rank_env(r, 2, 2, port), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, cwd=out.parent) for r in range(2)]
    res = [p.communicate(timeout=180) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), res[0][1][-2000:]


def test_bench_compare_pairs_every_collective_of_two_real_gloo_runs(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    _gloo_runs(a, b)
    n = len(load_results(str(a)).results)
    res = runner.invoke(app, ["bench", "compare", str(a), str(b), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)["comparisons"][0]
    assert n >= 6 and len(data["cases"]) == n and data["only_in_a"] == data["only_in_b"] == []
    assert all(c["benchmark"] == "collective" and "per_rank_median_s" not in c["params"] for c in data["cases"])


# --------------------------------------------------------------------------- 2. summary keeps world sizes apart


def test_summary_rows_of_a_two_and_an_eight_rank_allreduce_stay_apart():
    two, eight = _merged_run(2, 1e-3, "h"), _merged_run(8, 4e-3, "h")
    doc = ResultsDocument(environment={"hostname": "h"}, device={"kind": "cpu", "name": "cpu"},
                          results=two.select("collective") + eight.select("collective"))
    rows = [r for r in summary.best_rows(doc) if r["benchmark"] == "collective"]
    assert len(rows) == 2 and all(r["cases"] == 1 for r in rows)
    by_n = {r["params"]["world_size"]: r for r in rows}
    assert "2 ranks" in by_n[2]["best_shape"] and "8 ranks" in by_n[8]["best_shape"]
    assert by_n[8]["achieved"] == pytest.approx(eight.select("collective")[0].achieved)
    assert {r["best_params"]["world_size"] for r in summary.json_rows(doc) if r["benchmark"] == "collective"} == {2, 8}


# --------------------------------------------------------------------------- 3. STREAM floors against the best rate


def _with_triad(best: float, median: float) -> ResultsDocument:
    """The passing MI300X fixture with its triad's samples replaced: one at `best` x the floor, the
    other nine at `median` x the floor (the median)."""
    d = json.loads((FIX / "accept_mi300x_gpu0.json").read_text())
    floor = _triad_floor()
    for r in d["results"]:
        if r["op"] == "triad":
            r["times_s"] = [r["bytes_moved"] / (best * floor * 1e9)] + [r["bytes_moved"] / (median * floor * 1e9)] * 9
    return document_from_json(d)


def _triad_floor() -> float:
    return next(f for f in A.load_policy().floors if f.device == "mi300x" and f.op == "triad").minimum


def _triad_check(doc: ResultsDocument) -> A.Check:
    return next(c for c in A.check_document(doc, A.load_policy()) if c.figure == "stream triad fp64")


def test_a_stream_floor_is_held_against_the_best_rate_with_the_median_beside_it():
    doc = _with_triad(best=1.01, median=0.98)
    check = _triad_check(doc)
    rec = next(r for r in doc.results if r.op == "triad")
    assert check.verdict == A.PASS and check.statistic == "best"
    assert check.measured == pytest.approx(rec.best) == pytest.approx(1.01 * _triad_floor())
    assert check.median == pytest.approx(rec.achieved) == pytest.approx(0.98 * _triad_floor())
    assert _triad_check(_with_triad(best=0.995, median=0.99)).verdict == A.FAIL  # below the floor even at its best


def test_gemm_figures_stay_at_the_median():
    checks = A.check_document(_with_triad(1.01, 0.98), A.load_policy())
    gemm = [c for c in checks if c.figure.startswith("gemm")]
    assert gemm and all(c.statistic == "median" and c.median is None for c in gemm)


def test_stream_siblings_compare_best_with_best():
    doc0, doc1 = _with_triad(1.01, 0.98), _with_triad(1.0, 0.97)
    doc1 = replace(doc1, device={**doc1.device, "torch_device": "cuda:1"})
    sib = [c for c in A.check_siblings([doc0, doc1], A.load_policy()) if c.figure == "stream triad fp64"]
    assert len(sib) == 2 and all(c.statistic == "best" for c in sib)
    assert sib[0].threshold == pytest.approx(0.9 * next(r for r in doc1.results if r.op == "triad").best)


def test_the_accept_table_and_json_say_best_and_median(tmp_path):
    f = tmp_path / "tri.json"
    save_results(str(f), _with_triad(1.01, 0.98))
    res = runner.invoke(app, ["--width", "250", "bench", "accept", str(f), "--no-write"])
    assert res.exit_code == 0, res.output
    assert "best (median" in res.output
    data = json.loads(runner.invoke(app, ["bench", "accept", str(f), "--no-write", "--json"]).stdout)
    tri = next(c for c in data["checks"] if c["figure"] == "stream triad fp64" and c["basis"] == A.OWN_FLOOR)
    assert tri["statistic"] == "best" and tri["median"] < tri["threshold"] < tri["measured"]


# --------------------------------------------------------------------------- 4. an interrupted accept


def _interrupted_doc() -> ResultsDocument:
    return replace(load_results(str(FIX / "accept_mi300x_gpu0.json")), complete=False)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_accept_exits_with_the_signal_and_keeps_what_it_measured(monkeypatch, tmp_path, sig):
    monkeypatch.setattr(signals, "_received", [int(sig)])  # what the handler records when the signal lands
    monkeypatch.setattr(A, "measure_quick", lambda device: _interrupted_doc())  # the runner kept what finished
    out = tmp_path / "node.json"
    res = runner.invoke(app, ["bench", "accept", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 128 + sig, res.output
    assert f"interrupted by {signal.Signals(sig).name}: kept" in res.output and "marked incomplete" in res.output
    written = json.loads(out.read_text())
    assert written["complete"] is False and written["results"] and written["acceptance"]["passed"] is False
    assert any(c["figure"] == "run complete" and c["verdict"] == A.FAIL for c in written["acceptance"]["checks"])


def test_a_signal_before_anything_finished_writes_nothing(monkeypatch, tmp_path):
    def interrupted(device):
        raise Interrupted(int(signal.SIGTERM))
    monkeypatch.setattr(A, "measure_quick", interrupted)
    out = tmp_path / "node.json"
    res = runner.invoke(app, ["bench", "accept", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 128 + signal.SIGTERM and "nothing written" in res.output, res.output
    assert not out.exists()


def test_a_signal_on_the_first_gpu_stops_the_whole_run(monkeypatch, tmp_path):
    from recoque.cli import bench_accept

    monkeypatch.setattr(signals, "_received", [int(signal.SIGINT)])
    measured = []
    monkeypatch.setattr(bench_accept, "_devices", lambda requested: ["gpu0", "gpu1"])
    monkeypatch.setattr(A, "measure_quick", lambda device: measured.append(device) or _interrupted_doc())
    out = tmp_path / "node.json"
    res = runner.invoke(app, ["bench", "accept", "--out", str(out)])
    assert res.exit_code == 130, res.output
    assert measured == ["gpu0"] and (tmp_path / "node.gpu0.json").exists() and not (tmp_path / "node.gpu1.json").exists()


def test_measure_quick_keeps_what_finished_when_a_signal_lands_between_cases(monkeypatch):
    from recoque.bench import suite
    from recoque.bench.devices import detect

    rec = _triad(50.0)

    def stopped(*args, out, **kwargs):
        out.records.append(rec)  # one stage finished, then the signal came outside the runner's loop
        raise Interrupted(int(signal.SIGINT))
    monkeypatch.setattr(suite, "run_suite", stopped)
    doc = A.measure_quick(detect("cpu"))
    assert doc.results == (rec,) and doc.complete is False

    def early(*args, out, **kwargs):
        raise Interrupted(int(signal.SIGINT))
    monkeypatch.setattr(suite, "run_suite", early)
    with pytest.raises(Interrupted):  # nothing measured: the caller says so and writes nothing
        A.measure_quick(detect("cpu"))


def _handler_installed(pid: int, signum: int) -> bool:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except OSError:
        return True
    return True


def test_ctrl_c_during_a_real_accept_run_exits_130(tmp_path):
    pytest.importorskip("torch")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    err = tmp_path / "err.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen(RECOQUE + ["bench", "accept", "--device", "cpu", "--out", "r.json"], cwd=tmp_path,
                                env=env, stdout=subprocess.DEVNULL, stderr=fh)
        deadline = time.monotonic() + 60
        while not _handler_installed(proc.pid, signal.SIGINT) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(6.0)  # into the GEMM cases
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=120)
    text = err.read_text()
    assert rc == 128 + signal.SIGINT, text[-2000:]
    assert text.count("interrupted by SIGINT") == 1 and "Traceback" not in text  # one line, not two
    out = tmp_path / "r.json"
    if out.exists():  # a case finished before the signal: kept, marked incomplete, judged not accepted
        doc = json.loads(out.read_text())
        assert doc["complete"] is False and doc["results"] and doc["acceptance"]["passed"] is False
    else:
        assert "nothing written" in text


# --------------------------------------------------------------------------- 5. MoE verification in bounded memory


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


def _host_copies(monkeypatch) -> list[tuple[int, ...]]:
    """Every array the MoE check widens to float64 on the host, by shape (the real conversion runs)."""
    from recoque.kernels import gemm as G

    real, seen = G.to_host_f64, []

    def recording(x):
        seen.append(tuple(x.shape))
        return real(x)
    monkeypatch.setattr(G, "to_host_f64", recording)
    return seen


def test_moe_reference_reads_one_experts_sampled_columns_at_a_time(monkeypatch, torch):
    import tracemalloc

    from recoque.bench import moe
    from recoque.bench.devices import detect

    experts, k, n = 64, 256, 512  # the old reference held all of W in float64: 64 MiB
    case = moe.MoeCase("many-experts", experts, 2, 2048, n, k, "fp32")
    case.setup(detect("cpu"), 1, 0)
    a, w, _ = case._sets[0]
    assert float(w.std()) > 0.5  # random normal weights, never zeros
    seen = _host_copies(monkeypatch)
    tracemalloc.start()
    try:
        check = case.verify()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert check.ok, check.describe()
    biggest = max(int(np.prod(s)) for s in seen)
    assert biggest <= max(k * moe.SAMPLE_COLS, moe.SAMPLE_ROWS * k)  # never E x k x n
    assert (k, moe.SAMPLE_COLS) in seen and peak < experts * k * n * 8 / 8  # an eighth of what it held before


def test_moe_sampled_check_still_catches_a_wrong_element(monkeypatch, torch):
    from recoque.bench import moe
    from recoque.bench.devices import detect
    from recoque.kernels import moe as K

    case = moe.MoeCase("m", 32, 2, 512, 256, 128, "fp32")
    case.setup(detect("cpu"), 1, 0)
    rows = int(case._counts.sum())
    rng = np.random.default_rng(12345)  # the sample the check draws (bench/moe.py _compare)
    row = int(np.sort(rng.choice(rows, size=min(moe.SAMPLE_ROWS, rows), replace=False))[0])
    col = int(np.sort(rng.choice(256, size=min(moe.SAMPLE_COLS, 256), replace=False))[0])
    real = K.grouped_mm

    def one_wrong(a, w, offs):
        out = real(a, w, offs).clone()
        out[row, col] += 10.0
        return out
    monkeypatch.setattr(K, "grouped_mm", one_wrong)
    v = case.verify()
    assert not v.ok and v.what.startswith("out[") and "experts" in v.what


def test_deepseek_v3_shapes_ask_for_megabytes_not_56_gib(monkeypatch, torch):
    """DeepSeek-V3's up projection: W is 256 x 7168 x 4096 (15 GB in bf16, 56 GiB in float64). The
    operands are meta tensors (no memory); every host copy the check asks for is recorded."""
    from recoque.bench import moe
    from recoque.kernels import gemm as G
    from recoque.kernels import moe as K

    experts, top_k, n, k = K.up_shape("deepseek-v3")
    case = moe.MoeCase("deepseek-v3", experts, top_k, moe.tokens_for(experts, top_k, 8), n, k, "bf16")
    case._counts = K.route(case.tokens, experts, top_k, 0)
    rows = int(case._counts.sum())
    meta = lambda *shape: torch.empty(*shape, dtype=torch.bfloat16, device="meta")  # noqa: E731
    case._sets = [(meta(rows, k), meta(experts, k, n), None)]
    seen = []

    def stand_in(x):  # meta tensors hold no data: random normal values of the asked shape
        seen.append(tuple(x.shape))
        return np.random.default_rng(len(seen)).standard_normal(tuple(x.shape))
    monkeypatch.setattr(G, "to_host_f64", stand_in)
    case._compare(meta(rows, n))
    assert max(int(np.prod(s)) * 8 for s in seen) <= k * moe.SAMPLE_COLS * 8  # 7 MiB at most, per expert
    assert sum(s == (k, moe.SAMPLE_COLS) for s in seen) == len(np.unique(K.row_expert(case._counts)[
        np.sort(np.random.default_rng(12345).choice(rows, size=moe.SAMPLE_ROWS, replace=False))]))
