"""The results document: frozen records in base units, a schema version, and a loader for old files.

No torch import here: the planner reads results through this module without touching a GPU stack.

Document layout (schema_version 2):
    {"schema_version": 2, "tool": {...}, "created_utc": "...", "command": "...",
     "environment": {...}, "device": {...}, "complete": bool,
     "results": [Record...], "skipped": [Skip...], "warnings": [NoiseWarning...], "acceptance": {...},
     "sweeps": [{GEMM sweep: shapes, seconds}...], "summary": [best per op and dtype, derived, not read]}

Version 1 (recoque 0.0.x) stored raw samples in milliseconds (`times_ms`) and the achieved rate
under `value`; `load_results` migrates it. Anything else gets one clear line.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

from recoque.errors import BadInput, WriteFailed
from recoque.fileio import read_json, write_json_atomic

SCHEMA_VERSION = 2
# Every benchmark, in the order `bench all` runs them (bench/suite.py, the CLI, the results checks).
BENCHMARKS = ("gemm", "attention", "moe", "stream", "launch", "transfer", "collective")
UNITS = {"TFLOP/s": 1e12, "GB/s": 1e9, "Mkernel/s": 1e6}
# The field holding the work per call that each unit divides by time.
WORK_FIELD = {"TFLOP/s": "flop_count", "GB/s": "bytes_moved", "Mkernel/s": "kernel_count"}
# An attention record keeps the probe median of every SDPA backend it tried as a tag
# "<prefix><BACKEND>=<seconds>" (bench/attention.py writes them; the planner reads them here).
SDPA_TAG_PREFIX = "sdpa_backend_median_s:"


def sdpa_backend_times(tags: tuple[str, ...] | list[str]) -> dict[str, float]:
    """The SDPA probe tags of a record: {backend: median seconds} (nan when not probed)."""
    out = {}
    for tag in tags:
        if tag.startswith(SDPA_TAG_PREFIX):
            name, _, value = tag[len(SDPA_TAG_PREFIX):].partition("=")
            out[name] = float(value)
    return out


@dataclass(frozen=True)
class Record:
    """One verified measurement. Raw samples in seconds; work in flops, bytes or kernels per call."""

    benchmark: str
    op: str
    dtype: str
    params: Mapping[str, Any]
    times_s: tuple[float, ...]
    unit: str
    flop_count: int | None = None
    bytes_moved: int | None = None
    kernel_count: int | None = None  # the launch chain's kernels per call (unit Mkernel/s)
    peak: float | None = None  # in `unit`, dense datasheet figure; None when unknown
    peak_source: str | None = None
    verified: bool = True
    verify: Mapping[str, Any] = field(default_factory=dict)
    backend: str | None = None
    timer: str = "perf_counter_ns"
    tags: tuple[str, ...] = ()
    telemetry: Mapping[str, Any] = field(default_factory=dict)  # clocks/power during the samples

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise BadInput(f"record {self.op}: unknown unit {self.unit!r}", f"use one of {sorted(UNITS)}")
        if not self.times_s:
            raise BadInput(f"record {self.op}: no timing samples", "re-run the benchmark")
        work = getattr(self, WORK_FIELD[self.unit])
        if work is None or work <= 0:
            raise BadInput(f"record {self.op}: no work count for unit {self.unit}", "re-run the benchmark")

    # Derived figures are computed, never stored as truth: only the harness divides by time.
    @property
    def work(self) -> int:
        return int(getattr(self, WORK_FIELD[self.unit]))

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)

    @property
    def min_s(self) -> float:
        return min(self.times_s)

    @property
    def achieved(self) -> float:
        """Rate at the median time, in `unit` (headline figure)."""
        return self.work / self.median_s / UNITS[self.unit]

    @property
    def best(self) -> float:
        """Rate at the fastest sample, in `unit` (STREAM's "best" convention)."""
        return self.work / self.min_s / UNITS[self.unit]

    @property
    def fraction_of_peak(self) -> float | None:
        return None if not self.peak else self.achieved / self.peak

    def stats(self) -> dict[str, float]:
        mean = statistics.fmean(self.times_s)
        sd = statistics.pstdev(self.times_s) if len(self.times_s) > 1 else 0.0
        return {"min_s": self.min_s, "median_s": self.median_s, "mean_s": mean, "cov": sd / mean if mean else 0.0}

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["params"] = dict(self.params)
        d["verify"] = dict(self.verify)
        d["times_s"] = list(self.times_s)
        d["tags"] = list(self.tags)
        d["telemetry"] = dict(self.telemetry)
        # Stored for readers that do not use this module; recomputed on load, never trusted.
        d["achieved"] = self.achieved
        d["fraction_of_peak"] = self.fraction_of_peak
        d["stats"] = self.stats()
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> "Record":
        try:
            return cls(
                benchmark=str(d["benchmark"]), op=str(d["op"]), dtype=str(d["dtype"]),
                params=dict(d.get("params", {})), times_s=tuple(float(t) for t in d["times_s"]),
                unit=str(d["unit"]), flop_count=d.get("flop_count"), bytes_moved=d.get("bytes_moved"),
                kernel_count=d.get("kernel_count"), peak=d.get("peak"), peak_source=d.get("peak_source"),
                verified=bool(d.get("verified", False)),
                verify=dict(d.get("verify", {})), backend=d.get("backend"), timer=str(d.get("timer", "unknown")),
                tags=tuple(d.get("tags", ())), telemetry=dict(d.get("telemetry", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadInput(f"result record is missing or has a bad field: {exc}", "re-run `recoque bench`") from None


@dataclass(frozen=True)
class Skip:
    """A case that produced no result, and why (OOM, failed verification, unsupported dtype)."""

    benchmark: str
    op: str
    dtype: str
    params: Mapping[str, Any]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "params": dict(self.params)}


@dataclass(frozen=True)
class ResultsDocument:
    environment: Mapping[str, Any]
    device: Mapping[str, Any]
    results: tuple[Record, ...]
    skipped: tuple[Skip, ...] = ()
    warnings: tuple[Mapping[str, Any], ...] = ()
    complete: bool = True
    command: str = ""
    created_utc: str = ""
    tool_version: str = ""
    acceptance: Mapping[str, Any] = field(default_factory=dict)  # `bench accept` verdicts (H8), {} if not judged
    sweeps: tuple[Mapping[str, Any], ...] = ()  # per GEMM sweep: shapes measured and seconds (bench/suite.py)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "tool": {"name": "recoque", "version": self.tool_version},
            "created_utc": self.created_utc,
            "command": self.command,
            "complete": self.complete,
            "environment": dict(self.environment),
            "device": dict(self.device),
            "results": [r.to_json() for r in self.results],
            "skipped": [s.to_json() for s in self.skipped],
            "warnings": [dict(w) for w in self.warnings],
            "acceptance": dict(self.acceptance),
            "sweeps": [dict(w) for w in self.sweeps],
            # What the tables show (best per op and dtype, public anchors, headline confirmation), for
            # readers that do not use this module; recomputed from the records, never read back.
            "summary": _summary(self),
        }

    def select(self, benchmark: str, dtype: str | None = None, op: str | None = None) -> list[Record]:
        return [r for r in self.results if r.benchmark == benchmark
                and (dtype is None or r.dtype == dtype) and (op is None or r.op == op)]


def _summary(doc: "ResultsDocument") -> list[dict[str, Any]]:
    from recoque.bench.summary import json_rows  # summary imports this module

    return json_rows(doc)


def _migrate_v1(doc: dict[str, Any], origin: str) -> dict[str, Any]:
    """v1: `times_ms` raw samples, `value` for the achieved rate (dropped: recomputed)."""
    out = dict(doc)
    env = doc.get("environment")
    if isinstance(env, dict) and "host" in env and "hostname" not in env:  # v1 named the host `host`
        out["environment"] = {("hostname" if k == "host" else k): v for k, v in env.items()}
    out["results"] = []
    recs = doc.get("results", [])
    for rec in recs if isinstance(recs, list) else ():
        if not isinstance(rec, dict) or not isinstance(rec.get("times_ms", []), list):
            out["results"].append(rec)  # left as found: the field checks name what is wrong
            continue
        if "times_ms" in rec and "times_s" in rec:  # which one holds the samples cannot be guessed
            raise BadInput(f"{origin}: record {rec.get('op', '?')!r} holds both `times_ms` (schema 1) and `times_s`",
                           "keep one: schema 1 files store times_ms; or set schema_version 2 and keep times_s")
        r = {k: v for k, v in rec.items() if k not in ("times_ms", "value")}
        if "times_ms" in rec or "times_s" not in rec:  # a v1 record already in seconds keeps them
            r["times_s"] = [t / 1e3 if isinstance(t, (int, float)) and not isinstance(t, bool) else t
                            for t in rec.get("times_ms", [])]
        out["results"].append(r)
    if not isinstance(recs, list):
        out["results"] = recs
    out["schema_version"] = 2
    return out


_MIGRATIONS = {1: _migrate_v1}


def document_from_json(doc: Any, origin: str = "results") -> ResultsDocument:
    if not isinstance(doc, dict) or "schema_version" not in doc:
        raise BadInput(f"{origin}: not a recoque results file (no schema_version)",
                       "pass a file written by `recoque bench --out`")
    version = doc["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise BadInput(f"{origin}: schema_version must be an integer, got {version!r}", "re-run `recoque bench`")
    if version > SCHEMA_VERSION:
        raise BadInput(f"{origin}: schema_version {version} is newer than this recoque reads ({SCHEMA_VERSION})",
                       "upgrade recoque")
    while version < SCHEMA_VERSION:
        if version not in _MIGRATIONS:
            raise BadInput(f"{origin}: schema_version {version} is too old to read", "re-run `recoque bench`")
        doc = _MIGRATIONS[version](doc, origin)
        version = doc["schema_version"]
    if not isinstance(doc.get("results"), list):
        raise BadInput(f"{origin}: `results` must be a list", "re-run `recoque bench`")
    from recoque.inputs import check_results

    check_results(doc, origin)  # every field, in the one validation layer
    return ResultsDocument(
        environment=doc.get("environment", {}), device=doc.get("device", {}),
        results=tuple(Record.from_json(r) for r in doc["results"]),
        skipped=tuple(Skip(**s) for s in doc.get("skipped", [])),
        warnings=tuple(doc.get("warnings", [])), complete=bool(doc.get("complete", True)),
        command=str(doc.get("command", "")), created_utc=str(doc.get("created_utc", "")),
        tool_version=str(doc.get("tool", {}).get("version", "")),
        acceptance=dict(doc.get("acceptance") or {}), sweeps=tuple(doc.get("sweeps") or ()),
    )


def load_results(path: str) -> ResultsDocument:
    return document_from_json(read_json(path), origin=str(path))


def save_results(path: str, doc: ResultsDocument) -> None:
    write_json_atomic(path, doc.to_json())


def merge(old: ResultsDocument, new: ResultsDocument) -> ResultsDocument:
    """`new` added to `old` (same machine): every record and skip of both; incomplete if either is."""
    return replace(new, results=tuple(old.results) + tuple(new.results), skipped=tuple(old.skipped) + tuple(new.skipped),
                   warnings=tuple(old.warnings) + tuple(new.warnings), complete=old.complete and new.complete,
                   sweeps=tuple(old.sweeps) + tuple(new.sweeps))


def check_same_machine(old: ResultsDocument, fingerprint: Any, path: str, env: dict[str, Any] | None = None,
                       device: Mapping[str, Any] | None = None) -> None:
    """Results from different machines or software stacks are never merged silently (style rule 4),
    nor those of another GPU of the same machine (`device`: the new run's; the merged file keeps one
    device label), nor those of one machine under other settings (`env`: the new run's environment),
    since the merged file keeps one environment for every record."""
    from recoque.bench.environment import settings_differences

    if old.environment.get("fingerprint") != fingerprint:
        raise BadInput(f"{path} was measured on another machine or software stack "
                       f"(fingerprint {old.environment.get('fingerprint')})",
                       "write to a new --out file; results from different machines are not merged")
    was, now = (old.device.get("torch_device"), (device or {}).get("torch_device"))
    if was is not None and now is not None and was != now:
        raise BadInput(f"{path} was measured on {was}, this run on {now}",
                       "write each GPU's results to its own --out file")
    differ = settings_differences(old.environment, env) if env is not None else []
    if differ:
        raise BadInput(f"{path} was measured on this machine under other settings ({'; '.join(differ)})",
                       "write to a new --out file, or restore those settings; one file holds one run's settings")


def store_results(path: str, doc: ResultsDocument, append: bool = False, force: bool = False) -> ResultsDocument:
    """Write `doc` to `path` under a lock on it, and return what the file now holds.

    append: the file is re-read under the lock and `doc` merged into it, so two runs appending at
    once both land. Otherwise an existing file is replaced only by at least as many results, or
    with force; anything else raises WriteFailed (the caller keeps `doc`). OS failures also raise
    WriteFailed. A file of another machine raises BadInput."""
    from recoque.fileio import locked

    with locked(path):
        old = _existing(path, force and not append)
        if append and old is not None:
            check_same_machine(old, doc.environment.get("fingerprint"), path, doc.environment, doc.device)
            doc = merge(old, doc)
        elif old is not None and not force:
            _check_replaceable(old, doc, path)
        save_results(path, doc)
    return doc


def _check_replaceable(old: ResultsDocument, doc: ResultsDocument, path: str) -> None:
    """Without --force a run replaces a results file only with at least as many results, of the same
    machine, and never an interrupted run a complete one: a Ctrl-C or another node's run cannot lose it."""
    add = "pass --force to replace it, or --append to add to it"
    if old.environment.get("fingerprint") != doc.environment.get("fingerprint"):
        raise WriteFailed(f"{path} holds results of another machine or software stack: not replaced",
                          "pass --force to replace it, or choose another --out")
    if old.device.get("torch_device") not in (None, doc.device.get("torch_device")):
        raise WriteFailed(f"{path} holds results of {old.device.get('torch_device')}, this run "
                          f"{doc.device.get('torch_device')}: not replaced", "pass --force to replace it, or choose another --out")
    if len(old.results) > len(doc.results):
        raise WriteFailed(f"{path} holds {len(old.results)} results, this run {len(doc.results)}: not replaced", add)
    lost = sorted({r.benchmark for r in old.results} - {r.benchmark for r in doc.results})
    if lost:  # another benchmark's run: replacing would drop what the file holds
        raise WriteFailed(f"{path} holds {', '.join(lost)} results this run does not measure: not replaced", add)
    if old.complete and not doc.complete:
        raise WriteFailed(f"{path} holds a complete run and this one was interrupted: not replaced", add)


def _existing(path: str, forced: bool) -> ResultsDocument | None:
    import os

    if not os.path.lexists(path) or os.path.isdir(path):
        return None  # a folder fails in the write itself, with its own message
    if not os.path.isfile(path):  # a device node, a FIFO, a socket: never replaced, --force or not
        raise WriteFailed(f"{path} exists and is not a regular file: not replaced", "choose another --out")
    try:
        return load_results(path)
    except BadInput as exc:
        if forced:
            return None
        raise WriteFailed(f"{path} exists and is not a readable results file ({exc.what}): not replaced",
                          "pass --force to replace it, or choose another --out") from None
