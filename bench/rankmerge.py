"""Every rank's results document merged into one on rank 0 (pure: no torch, no store).

Collectives: one record per case, its samples the mean over the participating ranks of each
rank's sample (nccl-tests averages the time over ranks), with every rank's median and the slowest
rank named. Other benchmarks ran on every rank at once (node-wide): each rank's record is kept,
tagged node_wide with its rank and host, and the spread across ranks is summarised.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import replace
from typing import Any, Iterable, Mapping

from recoque.bench.schema import Record, ResultsDocument, Skip

COLLECTIVE = "collective"
# What merging adds to a record's params about this run, not about the case: which ranks were timed,
# each one's median, the slowest and the spread (_average_over_ranks), and the host a node-wide record
# ran on (_tag_rank). Two runs of one case differ in these, so a comparison keys on the rest
# (bench/compare.py); the rank itself stays, so rank k of one run pairs with rank k of the other.
PER_RUN_PARAMS = ("timed_ranks", "per_rank_median_s", "slowest_rank", "slowest_host", "rank_spread", "host")


def case_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A record's params without the per-run fields merging added: the case's own identity."""
    return {k: v for k, v in params.items() if k not in PER_RUN_PARAMS}


def _key(rec: Record) -> str:
    return json.dumps([rec.benchmark, rec.op, rec.dtype, dict(rec.params)], sort_keys=True, default=str)


def _host(topo: Mapping[str, Any], rank: int) -> str:
    return str(topo["ranks"][rank]["host"])


def merge(docs: list[ResultsDocument | None], topo: Mapping[str, Any], failures: Iterable[str] = ()) -> ResultsDocument:
    """One document from every rank's (None: a rank that sent nothing).

    Collectives: one record per case, its samples the mean over the participating ranks of each
    rank's sample (nccl-tests averages the time over ranks), with every rank's median and the
    slowest rank named. Other benchmarks ran on every rank at once (node-wide): each rank's record
    is kept, tagged node_wide with its rank and host, and the spread across ranks is summarised."""
    base = next(d for d in docs if d is not None)
    coll: dict[str, list[tuple[int, Record]]] = {}
    node_wide: list[Record] = []
    skipped: dict[str, list[tuple[int, Skip]]] = {}
    warnings: list[dict[str, Any]] = []
    for r, d in enumerate(docs):
        if d is None:
            continue
        for rec in d.results:
            if rec.benchmark == COLLECTIVE:
                coll.setdefault(_key(rec), []).append((r, rec))
            else:
                node_wide.append(_tag_rank(rec, r, topo))
        for sk in d.skipped:
            k = json.dumps([sk.benchmark, sk.op, sk.dtype, dict(sk.params)], sort_keys=True, default=str)
            skipped.setdefault(k, []).append((r, sk))
        warnings += [{**dict(w), "rank": r} for w in d.warnings]
    results = [_average_over_ranks(recs, topo) for recs in coll.values()] + node_wide
    missing = [r for r, d in enumerate(docs) if d is None]
    dist_info = dict(topo)
    dist_info["per_rank"] = [_rank_summary(r, d, topo) for r, d in enumerate(docs)]
    dist_info["node_wide"] = spread_summary(node_wide) if len(docs) > 1 else []
    notes = [f"rank {r} ({_host(topo, r)}) sent no results" for r in missing] + list(failures)
    names = {d.device.get("name") for d in docs if d is not None}
    if len(names) > 1:
        notes.append(f"ranks ran on different devices: {sorted(map(str, names))}")
    notes += _software_differs(docs)
    dist_info["notes"] = notes
    complete = not missing and not failures and all(d.complete for d in docs if d is not None)
    return ResultsDocument(
        environment={**dict(base.environment), "distributed": dist_info}, device=base.device,
        results=tuple(results), skipped=tuple(_one_skip(v) for v in skipped.values()), warnings=tuple(warnings), complete=complete,
        command=base.command, sweeps=base.sweeps, created_utc=base.created_utc, tool_version=base.tool_version)


# What a rank's software is: a collective timed across ranks of different stacks is one figure of
# two stacks (the merged file keeps rank 0's environment), so a difference is said.
SOFTWARE_KEYS = ("driver_version", "rocm_version", "cuda_version", "torch_version")


def _software_differs(docs: list) -> list[str]:
    seen: dict[str, dict[str, list[int]]] = {}
    for r, d in enumerate(docs):
        if d is not None:
            for k in SOFTWARE_KEYS:
                seen.setdefault(k, {}).setdefault(str(d.environment.get(k)), []).append(r)
    return [f"ranks ran different {k.replace('_', ' ')}s: " + "; ".join(f"{v} on rank {', '.join(map(str, rs))}"
                                                                       for v, rs in by.items())
            for k, by in seen.items() if len(by) > 1]


def _one_skip(per_rank: list[tuple[int, Skip]]) -> Skip:
    """One skip per case: the rank whose own check failed speaks for all (the others only
    learned of it through the verdict all-reduce)."""
    reasons = {sk.reason for _, sk in per_rank}
    if len(reasons) == 1:
        return per_rank[0][1]
    rank, sk = next(((r, x) for r, x in per_rank if "another rank's check failed" not in x.reason), per_rank[0])
    return replace(sk, reason=f"rank {rank}: {sk.reason}")


def _tag_rank(rec: Record, rank: int, topo: Mapping[str, Any]) -> Record:
    info = topo["ranks"][rank]
    params = {**dict(rec.params), "rank": rank, "host": info["host"], "local_rank": info["local_rank"],
              "node_rank": info["node_rank"]}
    tags = tuple(rec.tags) + (("node_wide",) if int(topo["world_size"]) > 1 else ())
    return replace(rec, params=params, tags=tags)


def _average_over_ranks(recs: list[tuple[int, Record]], topo: Mapping[str, Any]) -> Record:
    first = recs[0][1]
    wanted = first.params.get("ranks")
    use = [(r, x) for r, x in recs if wanted is None or r in wanted]  # send/recv: the pair only
    n = min(len(x.times_s) for _, x in use)
    times = tuple(statistics.fmean(x.times_s[i] for _, x in use) for i in range(n))
    medians = [statistics.median(x.times_s) for _, x in use]
    slow = max(range(len(use)), key=lambda i: medians[i])
    mid = statistics.median(medians)
    params = {**dict(first.params), "timed_ranks": [r for r, _ in use], "per_rank_median_s": medians,
              "slowest_rank": use[slow][0], "slowest_host": _host(topo, use[slow][0]),
              "rank_spread": (max(medians) - min(medians)) / mid if mid else 0.0}
    return replace(first, params=params, times_s=times, tags=tuple(first.tags) + ("ranks_averaged",))


def _rank_summary(rank: int, d: ResultsDocument | None, topo: Mapping[str, Any]) -> dict[str, Any]:
    info = dict(topo["ranks"][rank])
    if d is None:
        return {**info, "sent": False}
    return {**info, "sent": True, "complete": d.complete, "records": len(d.results), "skipped": len(d.skipped),
            "device": d.device.get("name"), "torch_device": d.device.get("torch_device"),
            "fingerprint": d.environment.get("fingerprint")}


def spread_summary(records: Iterable[Record]) -> list[dict[str, Any]]:
    """Per case run on several ranks at once: the rate on each, min/median/max and the slowest rank."""
    groups: dict[str, list[Record]] = {}
    for rec in records:
        p = {k: v for k, v in rec.params.items() if k not in ("rank", "host", "local_rank", "node_rank")}
        groups.setdefault(json.dumps([rec.benchmark, rec.op, rec.dtype, p], sort_keys=True, default=str), []).append(rec)
    out = []
    for recs in groups.values():
        if len(recs) < 2:
            continue
        rates = [x.achieved for x in recs]
        mid = statistics.median(rates)
        worst = min(range(len(recs)), key=lambda i: rates[i])
        out.append({"benchmark": recs[0].benchmark, "op": recs[0].op, "dtype": recs[0].dtype, "unit": recs[0].unit,
                    "ranks": [x.params["rank"] for x in recs], "achieved": rates, "min": min(rates), "median": mid,
                    "max": max(rates), "spread": (max(rates) - min(rates)) / mid if mid else 0.0,
                    "slowest_rank": recs[worst].params["rank"], "slowest_host": recs[worst].params["host"]})
    return out


def summary_line(doc: ResultsDocument) -> str:
    """One line on who took part, for the command's notes."""
    d = doc.environment.get("distributed", {})
    sent = sum(1 for r in d.get("per_rank", []) if r.get("sent"))
    line = (f"{d.get('world_size')} ranks on {d.get('nodes')} node(s) ({', '.join(d.get('hosts', []))}), "
            f"{d.get('ranks_per_node')} per node, {d.get('backend')} via {d.get('launcher')}; "
            f"{sent} sent results; collectives averaged over ranks")
    return "; ".join([line] + list(d.get("notes", [])))
