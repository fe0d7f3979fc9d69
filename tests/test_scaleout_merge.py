"""Scale-out: nccl-tests' bus-bandwidth factors, and every rank's results merged on rank 0."""
from __future__ import annotations

from fractions import Fraction

import pytest

from recoque.bench import distributed as D
from recoque.bench.collective import CollectiveCase
from recoque.bench.schema import Record, ResultsDocument, Skip, document_from_json
from recoque.kernels import collectives as C

# nccl-tests doc/PERFORMANCE.md "Summary": AllReduce 2(n-1)/n, ReduceScatter, AllGather and
# AlltoAll (n-1)/n, Broadcast 1; sendrecv_perf prints busbw = algbw.
NCCL_TESTS = {"all_reduce": lambda n: Fraction(2 * (n - 1), n), "reduce_scatter": lambda n: Fraction(n - 1, n),
              "all_gather": lambda n: Fraction(n - 1, n), "all_to_all": lambda n: Fraction(n - 1, n),
              "broadcast": lambda n: Fraction(1), "send_recv": lambda n: Fraction(1)}


@pytest.mark.parametrize("op", C.OPS)
@pytest.mark.parametrize("n", [2, 3, 4, 8, 16, 1024])
def test_busbw_factors_are_nccl_tests(op, n):
    assert C.busbw_factor(op, n) == NCCL_TESTS[op](n)


def test_algbw_and_busbw_of_a_record():
    # 4 ranks, all-gather of a 1 MiB whole (S = count x n x 4 bytes): busbw = S/t x 3/4.
    case = CollectiveCase("all_gather", 2**20, 4)
    t = 0.002
    rec = Record("collective", case.op, case.dtype, case.params, (t,), "GB/s", bytes_moved=case.work().bytes_moved)
    algbw = case.params["bytes"] / t / 1e9
    assert rec.achieved == pytest.approx(algbw * 0.75) and case.count * 4 * 4 == case.params["bytes"]
    pair = CollectiveCase("send_recv", 4096, 8, pair=(0, 5), tier="inter")
    assert pair.params["group_size"] == 2 and pair.params["busbw_factor"] == 1.0 and pair.params["ranks"] == [0, 5]
    assert pair.work().bytes_moved == 4096  # busbw = algbw for send/recv
    with pytest.raises(ValueError):
        CollectiveCase("send_recv", 4096, 8)  # a pair is required


TOPO = {"world_size": 3, "nodes": 2, "ranks_per_node": {0: 2, 1: 1}, "hosts": ["a", "b"], "backend": "gloo",
        "launcher": "torchrun", "ranks": [{"rank": 0, "host": "a", "local_rank": 0, "node_rank": 0},
                                          {"rank": 1, "host": "a", "local_rank": 1, "node_rank": 0},
                                          {"rank": 2, "host": "b", "local_rank": 0, "node_rank": 1}]}


def _coll(times, op="all_reduce", ranks=None):
    params = {"bytes": 1024, "world_size": 3, "group_size": 2 if ranks else 3, "tier": "inter"}
    if ranks:
        params["ranks"] = ranks
    return Record("collective", op, "fp32", params, tuple(times), "GB/s", bytes_moved=1024)


def _stream(rate_gb_s):
    return Record("stream", "triad", "fp64", {"n_elements": 1000}, (24000 / rate_gb_s / 1e9,), "GB/s", bytes_moved=24000)


def _doc(*recs, skipped=(), complete=True, name="cpu x"):
    return ResultsDocument(environment={"hostname": "h"}, device={"name": name}, results=recs,
                           skipped=tuple(skipped), complete=complete)


def test_merge_averages_collectives_over_ranks_and_names_the_slow_one():
    docs = [_doc(_coll([1.0, 3.0]), _coll([2.0, 2.0], "send_recv", [0, 2]), _stream(100.0)),
            _doc(_coll([1.0, 1.0]), _coll([9.0, 9.0], "send_recv", [0, 2]), _stream(50.0)),  # rank 1 idles in the pair
            _doc(_coll([4.0, 5.0]), _coll([4.0, 4.0], "send_recv", [0, 2]), _stream(90.0))]
    m = D.merge(docs, TOPO)
    ar = m.select("collective", op="all_reduce")[0]
    assert ar.times_s == pytest.approx((2.0, 3.0))  # sample i averaged over the 3 ranks (nccl-tests)
    assert ar.params["per_rank_median_s"] == [2.0, 1.0, 4.5] and ar.params["slowest_rank"] == 2
    assert ar.params["slowest_host"] == "b" and "ranks_averaged" in ar.tags
    p2p = m.select("collective", op="send_recv")[0]
    assert p2p.times_s == pytest.approx((3.0, 3.0)) and p2p.params["timed_ranks"] == [0, 2]  # the pair only
    streams = m.select("stream")
    assert [r.params["rank"] for r in streams] == [0, 1, 2] and all("node_wide" in r.tags for r in streams)
    assert [r.params["host"] for r in streams] == ["a", "a", "b"]
    d = m.environment["distributed"]
    assert d["nodes"] == 2 and d["world_size"] == 3 and m.complete
    spread = d["node_wide"][0]
    assert spread["slowest_rank"] == 1 and spread["min"] == pytest.approx(50.0) and spread["max"] == pytest.approx(100.0)
    again = document_from_json(m.to_json())  # the merged file reads back through the schema
    assert again.environment["distributed"]["per_rank"][2]["host"] == "b" and len(again.results) == 5


def test_merge_names_a_rank_that_sent_nothing_and_dedupes_skips():
    sk = Skip("collective", "all_to_all", "bf16", {"bytes": 8}, "unsupported: gloo all_to_all bf16")
    m = D.merge([_doc(_coll([1.0]), skipped=[sk]), None, _doc(_coll([3.0]), skipped=[sk], name="cpu y")], TOPO,
                failures=["rank 1 (a) stopped answering"])
    assert not m.complete and len(m.skipped) == 1
    notes = m.environment["distributed"]["notes"]
    assert "rank 1 (a) sent no results" in notes and "rank 1 (a) stopped answering" in notes
    assert any("different devices" in n for n in notes)
    assert m.environment["distributed"]["per_rank"][1] == {**TOPO["ranks"][1], "sent": False}
    assert m.results[0].times_s == (2.0,)


def test_merge_says_when_ranks_ran_different_software():
    """The merged file keeps rank 0's environment: a rank on another driver or torch was merged unsaid."""
    def on(driver, torch="2.13.0"):
        return ResultsDocument(environment={"hostname": "h", "driver_version": driver, "torch_version": torch},
                               device={"name": "cpu x"}, results=(_coll([1.0]),))
    notes = D.merge([on("550.54"), on("550.54"), on("560.35")], TOPO).environment["distributed"]["notes"]
    assert notes == ["ranks ran different driver versions: 550.54 on rank 0, 1; 560.35 on rank 2"]
    assert D.merge([on("550.54")] * 3, TOPO).environment["distributed"]["notes"] == []
