"""Node acceptance: every measured figure against a published floor, a stated fraction of the
datasheet peak, and the same figure on the sibling GPUs of the node; a verdict per GPU and figure.

Floors and fractions live in seeds/acceptance.toml (with their sources). One results document is
one GPU (or the CPU); several documents from one host are siblings. A GEMM figure is the rate at
the median time; a STREAM figure the best rate over the repeats, as STREAM and BabelStream report
it and AMD states its floors (BEST_RATE_BENCHMARKS), its median shown beside. No torch import here:
the verdicts are computed from results files, so they can be re-run anywhere.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from typing import Any, Iterable, Mapping, Sequence

from recoque.bench.headline import BEST_RATE_BENCHMARKS, figure, held_rate  # noqa: F401 (re-exported)
from recoque.bench.schema import Record, ResultsDocument
from recoque.catalog import get_device_spec
from recoque.errors import BadInput
from recoque.fileio import read_json, read_seed_toml, write_json_atomic

PASS, FAIL, NOT_MEASURED, NO_FLOOR = "pass", "fail", "not measured", "no floor"
INCOMPLETE = "incomplete"  # a GPU with no failure, one of whose own vendor floors was not measured
_SEVERITY = {PASS: 0, INCOMPLETE: 1, FAIL: 2}  # a GPU's or node's verdict is its worst
OWN_FLOOR = "vendor acceptance floor"  # the basis of a floor on the GPU's own figure (GEMM, STREAM)
UNIT_OF_KEY = {"min_gb_s": "GB/s", "min_tflops": "TFLOP/s"}
JUDGED = ("gemm", "stream", "collective")  # figures with floors or peaks; the rest is not judged


@dataclass(frozen=True)
class Floor:
    device: str
    benchmark: str
    op: str
    dtype: str
    minimum: float
    unit: str
    source: str
    shape: tuple[int, int, int] | None = None  # GEMM floors are for one shape (rocBLAS 4000^3)
    world_size: int | None = None  # collective floors: GPUs in the all-reduce
    min_message_bytes: int | None = None


@dataclass(frozen=True)
class Policy:
    floors: tuple[Floor, ...]
    gemm_fraction: float
    stream_fraction: float
    cpu_gemm_fraction: float
    sibling_tolerance: float
    ceiling_fraction: float
    cpu_gemm_held_dtypes: tuple[str, ...] = ("fp64", "fp32")  # the rest of a CPU's GEMMs: shown, not held


@dataclass(frozen=True)
class Check:
    """One verdict: a GPU's figure against one threshold."""

    gpu: str
    figure: str  # "stream copy fp64", "gemm matmul bf16"
    measured: float | None
    unit: str
    threshold: float | None
    basis: str  # what the threshold is: "AMD acceptance floor", "0.45 x datasheet peak", ...
    source: str
    verdict: str  # pass | fail | not measured | no floor
    statistic: str = "median"  # what `measured` is: the rate at the median time, or "best" over the repeats
    median: float | None = None  # the rate at the median time beside a best (None: `measured` is the median)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Acceptance:
    checks: tuple[Check, ...]
    hosts: Mapping[str, str] = field(default_factory=dict)  # device label -> the host that measured it

    @property
    def passed(self) -> bool:
        """Accepted: nothing failed and every vendor floor on a GPU's own figures was measured (a
        GPU measured on one figure was accepted on it while its other floors read 'not measured')."""
        return not self.failed and not self.unmeasured

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == FAIL]

    @property
    def unmeasured(self) -> list[Check]:
        """The GPUs' own vendor floors the run did not measure (node-level RCCL floors are not here)."""
        return [c for c in self.checks if c.verdict == NOT_MEASURED and c.basis == OWN_FLOOR]

    def per_gpu(self) -> dict[str, str]:
        """Overall verdict per GPU: fail if any of its checks failed, else incomplete if one of its
        own vendor floors was not measured, else pass."""
        unmeasured = {id(c) for c in self.unmeasured}
        out: dict[str, str] = {}
        for c in self.checks:
            v = FAIL if c.verdict == FAIL else INCOMPLETE if id(c) in unmeasured else PASS
            out[c.gpu] = max(v, out.get(c.gpu, PASS), key=_SEVERITY.__getitem__)
        return out

    def per_node(self) -> dict[str, str]:
        """Overall verdict per host: a node fails if any of its devices failed, is incomplete if one
        is (files from several hosts are judged node by node; siblings are only ever the GPUs of one host)."""
        out: dict[str, str] = {}
        for gpu, verdict in self.per_gpu().items():
            host = self.hosts.get(gpu, "?")
            out[host] = max(verdict, out.get(host, PASS), key=_SEVERITY.__getitem__)
        return out

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "per_node": self.per_node(), "per_gpu": self.per_gpu(),
                "unmeasured": [c.figure for c in self.unmeasured], "checks": [c.to_json() for c in self.checks]}


# --------------------------------------------------------------------------- seeds

def _floor(i: int, raw: Mapping[str, Any]) -> Floor:
    keys = [k for k in UNIT_OF_KEY if k in raw]
    if len(keys) != 1 or not raw.get("source"):
        raise BadInput(f"seeds/acceptance.toml floor {i}: needs one of {sorted(UNIT_OF_KEY)} and a source",
                       "fix seeds/acceptance.toml")
    shape = tuple(int(x) for x in str(raw["shape"]).split("x")) if raw.get("shape") else None
    return Floor(str(raw["device"]), str(raw["benchmark"]), str(raw["op"]), str(raw["dtype"]), float(raw[keys[0]]),
                 UNIT_OF_KEY[keys[0]], str(raw["source"]), shape,  # type: ignore[arg-type]
                 raw.get("world_size"), raw.get("min_message_bytes"))


def policy_from(data: Mapping[str, Any]) -> Policy:
    p = data.get("policy", {})
    try:
        return Policy(tuple(_floor(i, f) for i, f in enumerate(data.get("floors", []))),
                      float(p["gemm_fraction_of_peak"]), float(p["stream_fraction_of_peak"]),
                      float(p["cpu_gemm_fraction_of_peak"]), float(p["sibling_tolerance"]),
                      float(p["ceiling_fraction_of_peak"]), _dtypes(p["cpu_gemm_held_dtypes"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"seeds/acceptance.toml [policy]: missing or bad {exc}", "fix seeds/acceptance.toml") from None


def _dtypes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("cpu_gemm_held_dtypes (a list of dtype names)")
    return tuple(value)


@lru_cache(maxsize=1)
def load_policy() -> Policy:
    return policy_from(read_seed_toml("acceptance.toml"))


# --------------------------------------------------------------------------- figures of one document

def gpu_label(doc: ResultsDocument) -> str:
    d, env = doc.device, doc.environment
    host = env.get("hostname", "?")
    return f"{host} {d.get('torch_device', '?')} {d.get('name', '?')}"


def figures(doc: ResultsDocument) -> dict[tuple[str, str, str], Record]:
    """The headline record per (benchmark, op, dtype), sweep cases only (LLM layers, acceptance
    shapes and fast-accumulation variants are figures of their own, not headlines)."""
    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for r in doc.results:
        if r.benchmark in JUDGED and not {"llm", "acceptance", "fast_accum"} & set(r.tags):
            groups[(r.benchmark, _op_label(r.benchmark, r.op, r.params.get("world_size")), r.dtype)].append(r)
    return {k: figure(v)[0] for k, v in groups.items()}  # the figure the results table shows


def _op_label(benchmark: str, op: str, world_size: Any) -> str:
    """A collective's op with its world size: a 2-rank and an 8-rank all-reduce are two figures (one
    headline over both showed whichever ran last, under one name)."""
    return f"{op} ({int(world_size)} ranks)" if benchmark == "collective" and world_size else op


def _label(key: tuple[str, str, str]) -> str:
    return " ".join(key)


def _beside(rec: Record | None) -> dict[str, Any]:
    """A check's statistic and, beside a best, the median (the Check fields after `verdict`)."""
    if rec is None or rec.benchmark not in BEST_RATE_BENCHMARKS:
        return {}
    return {"statistic": "best", "median": rec.achieved}


def _floor_record(doc: ResultsDocument, f: Floor) -> Record | None:
    """The figure a floor is held against: the headline the report shows for the (benchmark, op,
    dtype) (bench.headline.figure: a confirmed median, never one lucky round); for a floor on one
    shape, world size or message size, each such case's own figure, the best of them."""
    key = (f.benchmark, f.op, f.dtype)
    if f.shape is None and f.world_size is None and f.min_message_bytes is None:
        return figures(doc).get(key)
    recs = [r for r in doc.results if (r.benchmark, r.op, r.dtype) == key and not {"llm", "fast_accum"} & set(r.tags)]
    if f.shape is not None:
        recs = [r for r in recs if (r.params.get("m"), r.params.get("n"), r.params.get("k")) == f.shape]
    if f.world_size is not None:  # the floors are one node's (all_reduce_perf -g N): not a run across nodes
        recs = [r for r in recs if r.params.get("world_size") == f.world_size
                and r.params.get("tier", "intra") == "intra" and int(r.params.get("nodes", 1)) == 1]
    if f.min_message_bytes is not None:
        recs = [r for r in recs if int(r.params.get("bytes", 0)) >= f.min_message_bytes]
    cases: dict[str, list[Record]] = defaultdict(list)
    for r in recs:  # one case measured in several rounds (the sweep, its confirmation) gives one figure
        cases[repr(sorted(r.params.items()))].append(r)
    return max((figure(v)[0] for v in cases.values()), key=held_rate, default=None)


def _partition(doc: ResultsDocument, key: str | None) -> str:
    """'38 of 304 compute units visible (a partition)' where the device shows fewer units than its
    catalog part, else ''."""
    seen = doc.device.get("compute_units")
    whole = get_device_spec(key).compute_units if key else None
    if isinstance(seen, int) and whole and seen < whole:
        return f"{seen} of {whole} compute units visible (a partition), not held to it"
    return ""


def _over_ceiling(gpu: str, what: str, rec: Record, policy: Policy) -> Check:
    return Check(gpu, what, rec.achieved, rec.unit, policy.ceiling_fraction * rec.peak,
                 f"at most {policy.ceiling_fraction:g} x datasheet peak: above it the timing, work count or label is "
                 "wrong", rec.peak_source or "", FAIL, **_beside(rec))


def _measuring(f: Floor) -> str:
    """The command that measures a per-GPU floor's figure."""
    return f"`recoque bench {f.benchmark}" + (f" --dtype {f.dtype}`" if f.benchmark == "gemm" else "`")


def _verdict(value: float | None, threshold: float | None) -> str:
    if value is None:
        return NOT_MEASURED
    if threshold is None:
        return NO_FLOOR
    return PASS if value >= threshold else FAIL


def check_document(doc: ResultsDocument, policy: Policy) -> list[Check]:
    """Vendor floors for this device, then the datasheet fraction for every other judged figure."""
    gpu, key = gpu_label(doc), doc.device.get("catalog_key")
    out: list[Check] = []
    covered: set[tuple[str, str, str]] = set()
    part = _partition(doc, key)
    for f in (f for f in policy.floors if f.device == key):
        rec = _floor_record(doc, f)
        what = f"{f.benchmark} {f.op} {f.dtype}" + (f" {'x'.join(map(str, f.shape))}" if f.shape else "")
        value = held_rate(rec) if rec else None
        if part:  # AMD states its floors for the whole GPU: a CPX/DPX partition is not held to them
            out.append(Check(gpu, what, value, f.unit, None, f"vendor floor of the whole GPU: {part}",
                             f.source, NO_FLOOR, **_beside(rec)))
            continue
        own = f.world_size is None  # the GPU's own figure; RCCL over world_size GPUs is the node's (torchrun)
        basis = OWN_FLOOR if own else f"vendor acceptance floor, node-level ({f.world_size} GPUs under torchrun)"
        source = f"{f.source}; measure it: {_measuring(f)}" if own and value is None else f.source
        out.append(Check(gpu, what, value, f.unit, f.minimum, basis, source, _verdict(value, f.minimum), **_beside(rec)))
        if rec is not None and rec.peak and rec.unit == "TFLOP/s" and rec.achieved > policy.ceiling_fraction * rec.peak:
            out.append(_over_ceiling(gpu, what, rec, policy))  # a floor met above the peak is no measurement
        if f.shape is None:
            covered.add((f.benchmark, _op_label(f.benchmark, f.op, f.world_size), f.dtype))
    cpu = doc.device.get("kind") == "cpu"
    for fig, rec in sorted(figures(doc).items()):
        # the ceiling on the median: one glitched fast sample is no measurement above the peak
        if rec.peak and (rec.unit == "TFLOP/s" or not cpu) and rec.achieved > policy.ceiling_fraction * rec.peak:
            out.append(_over_ceiling(gpu, _label(fig), rec, policy))
            continue
        if fig in covered:
            continue
        frac = _fraction(fig, cpu, policy)
        threshold = frac * rec.peak if frac is not None and rec.peak else None
        basis = f"{frac:g} x {'computed' if cpu else 'datasheet'} peak" if threshold else \
            CPU_NOT_HELD if cpu and fig[0] == "gemm" and rec.peak else "no published floor or peak"
        out.append(Check(gpu, _label(fig), held_rate(rec), rec.unit, threshold, basis,
                         (rec.peak_source or "") if threshold else "", _verdict(held_rate(rec), threshold), **_beside(rec)))
    return out


CPU_NOT_HELD = ("a CPU's bf16/fp16 GEMM (oneDNN on AMX, AVX512-BF16 or converted): its reach depends on size "
                "and on a clock a VM cannot read, so it is shown, not held (seeds/acceptance.toml)")


def _fraction(fig: tuple, cpu: bool, policy: Policy) -> float | None:
    """The fraction of the peak a figure with no vendor floor is held to, or None (not held)."""
    if fig[0] == "stream":
        return policy.stream_fraction
    if fig[0] != "gemm":
        return None
    if not cpu:
        return policy.gemm_fraction
    return policy.cpu_gemm_fraction if fig[2] in policy.cpu_gemm_held_dtypes else None


# --------------------------------------------------------------------------- siblings

def check_siblings(docs: Sequence[ResultsDocument], policy: Policy) -> list[Check]:
    """Each GPU against the median of the same figure on the other same-model GPUs of its host (with
    itself in the median, a GPU of two sat against the mean of itself and its sibling: 18% slower passed)."""
    nodes: dict[tuple[Any, Any], list[ResultsDocument]] = defaultdict(list)
    for d in docs:
        nodes[(d.environment.get("hostname"), d.device.get("name"))].append(d)
    out: list[Check] = []
    for group in nodes.values():
        if len(group) < 2:
            continue
        figs = [figures(d) for d in group]
        for fig in sorted(set().union(*figs)):
            if sum(fig in f for f in figs) < 2:
                continue
            for i, (d, f) in enumerate(zip(group, figs)):
                if fig not in f:
                    continue
                # the statistic the floors use (STREAM's best), on every GPU alike
                others = [held_rate(g[fig]) for j, g in enumerate(figs) if j != i and fig in g]
                threshold = (1 - policy.sibling_tolerance) * statistics.median(others)
                mine = held_rate(f[fig])
                out.append(Check(gpu_label(d), _label(fig), mine, f[fig].unit, threshold,
                                 f"siblings: {policy.sibling_tolerance:.0%} below the median of the other "
                                 f"{len(others)} GPU{'s' if len(others) > 1 else ''}",
                                 "seeds/acceptance.toml [policy] sibling_tolerance", _verdict(mine, threshold),
                                 **_beside(f[fig])))
    return out


def per_rank_documents(doc: ResultsDocument) -> list[ResultsDocument]:
    """A torchrun node file (bench/rankmerge.py) holds every rank's GEMM and STREAM records, tagged
    node_wide with rank and host, under rank 0's device: each rank is a GPU of its own to accept (else
    the fastest rank's figure spoke for a slow one). The averaged collectives stay with the first rank."""
    node = [r for r in doc.results if "node_wide" in r.tags and "rank" in r.params]
    if not node:
        return [doc]
    per_rank = {int(x.get("rank", i)): x for i, x in
                enumerate(doc.environment.get("distributed", {}).get("per_rank", []))}
    ranks = sorted({int(r.params["rank"]) for r in node})
    out = []
    for k in ranks:
        mine = tuple(r for r in node if int(r.params["rank"]) == k)
        info, first = per_rank.get(k, {}), mine[0].params
        if k == ranks[0]:
            mine += tuple(r for r in doc.results if "node_wide" not in r.tags)
        device = {**doc.device, "torch_device": f"{info.get('torch_device') or doc.device.get('torch_device', '?')} (rank {k})",
                  "name": info.get("device") or doc.device.get("name")}
        env = {**doc.environment, "hostname": first.get("host", doc.environment.get("hostname"))}
        out.append(replace(doc, results=mine, device=device, environment=env))
    return out


def evaluate(docs: Iterable[ResultsDocument], policy: Policy | None = None) -> Acceptance:
    docs = [d for doc in docs for d in per_rank_documents(doc)]
    if not docs:
        raise BadInput("acceptance needs at least one results document", "pass results files or let it run the quick suite")
    _one_file_per_device(docs)
    policy = policy or load_policy()
    per_doc = [(d, check_document(d, policy)) for d in docs]
    if not any(cs for _, cs in per_doc):
        raise BadInput("nothing to judge: the results hold no GEMM, STREAM or collective figure",
                       "run `recoque bench all --quick` (or pass files it wrote), then `recoque bench accept`")
    siblings = check_siblings(docs, policy)
    checks = [c for d, cs in per_doc for c in cs + _whole_run(d, cs)] + siblings
    judged = [*(c for _, cs in per_doc for c in cs), *siblings]
    if all(c.verdict == NO_FLOOR for c in judged):  # a CPU's figures: shown, but nothing was held to a bar
        raise BadInput(f"nothing to judge: none of the {len(judged)} figures has a floor or ceiling for this device "
                       f"({', '.join(sorted({c.figure for c in judged}))})",
                       "acceptance floors exist for the GPUs in seeds/acceptance.toml; `recoque report` shows the figures")
    order = {gpu_label(d): i for i, d in enumerate(docs)}
    hosts = {gpu_label(d): str(d.environment.get("hostname", "?")) for d in docs}
    return Acceptance(tuple(sorted(checks, key=lambda c: (order.get(c.gpu, 0), c.figure))), hosts)  # stable: floors first


def _one_file_per_device(docs: Sequence[ResultsDocument]) -> None:
    """Two files of one device (a re-run beside the first) would be judged as two siblings, each the
    other's witness, and their checks would merge under one label: refused, naming the device."""
    seen: dict[str, int] = {}
    for i, d in enumerate(docs):
        label = gpu_label(d)
        if label in seen:
            raise BadInput(f"results {seen[label] + 1} and {i + 1} both measure {label}",
                           "pass one results file per GPU (the latest run of each)")
        seen[label] = i


def _rerun(doc: ResultsDocument) -> str:
    """The command that wrote the file (from `recoque` on), else `recoque bench all`."""
    cmd = doc.command.strip()
    return cmd[cmd.index("recoque"):] if "recoque bench" in cmd else "recoque bench all"


def _whole_run(doc: ResultsDocument, checks: list[Check]) -> list[Check]:
    """A device is accepted on what it was measured to do: an interrupted run (complete false), or
    floors none of which was measured, fail it (an empty results file was ACCEPTED before)."""
    gpu, out = gpu_label(doc), []
    if not checks:  # beside files that have figures: this one must not vanish from the verdict
        out.append(Check(gpu, "anything measured", 0.0, "figures", 1.0,
                         "no GEMM, STREAM or collective figure in this file: nothing to judge", "the results file", FAIL))
    if not doc.complete:
        out.append(Check(gpu, "run complete", None, "", None, "the run was interrupted (complete false)",
                         f"re-run `{_rerun(doc)}` to the end", FAIL))
    held = [c for c in checks if c.threshold is not None]
    if checks and not held:  # alone it is refused (evaluate); beside other files it passed unjudged
        out.append(Check(gpu, "anything held to a bar", None, "", None,
                         f"none of its {len(checks)} figures has a vendor floor or a datasheet peak: nothing accepts it",
                         "add the device to seeds/hardware.toml (its peaks), or judge its file on its own", FAIL))
    if held and all(c.measured is None for c in held):
        out.append(Check(gpu, "anything measured", 0.0, "figures", float(len(held)),
                         f"none of the {len(held)} figures with a floor was measured", "the results file", FAIL))
    return out


def checks_for(acceptance: Acceptance, doc: ResultsDocument) -> list[Check]:
    gpu = gpu_label(doc)
    return [c for c in acceptance.checks if c.gpu == gpu]


def write_into(path: str, doc_json: Mapping[str, Any] | None, acceptance: Acceptance, gpu: str | None = None) -> None:
    """Add the verdicts (this GPU's, or all) to a results file under "acceptance", atomically."""
    data = dict(doc_json) if doc_json is not None else dict(read_json(path))
    checks = [c for c in acceptance.checks if gpu is None or c.gpu == gpu]
    data["acceptance"] = {"passed": bool(checks) and replace(acceptance, checks=tuple(checks)).passed,
                          "checks": [c.to_json() for c in checks]}
    write_json_atomic(path, data)


# --------------------------------------------------------------------------- measuring, when no file is given

ACCEPT_BENCHMARKS = ("gemm", "stream")
ACCEPT_DTYPES = ("fp64", "fp32", "bf16")


def accept_dtypes(device: Any, policy: Policy | None = None) -> tuple[str, ...]:
    """The GEMM dtypes a quick acceptance run measures: fp64, fp32, bf16, and every dtype a vendor
    floor of this device is stated in (the RVS fp16 and fp8 GEMMs on MI300X-MI355X)."""
    floors = (policy or load_policy()).floors
    key = device.to_json().get("catalog_key")
    own = [f.dtype for f in floors if f.device == key and f.benchmark == "gemm"]
    return tuple(dict.fromkeys((*ACCEPT_DTYPES, *own)))


def measure_quick(device: Any, seed: int = 0) -> ResultsDocument:
    """The quick GEMM and stream suite on one device, as a results document (what `accept` judges
    when it is given no results file). A signal stops it as it stops `bench`: what finished is kept
    and the document says complete false; a signal before anything finished goes up to the caller."""
    from datetime import datetime, timezone

    from recoque import __version__
    from recoque.bench import environment
    from recoque.bench.runner import RunOutcome
    from recoque.bench.suite import run_suite

    env = environment.capture(device)
    outcome = RunOutcome()  # filled stage by stage, so a signal between the runner's cases loses nothing
    try:
        run_suite(ACCEPT_BENCHMARKS, device, True, accept_dtypes(device), seed, out=outcome)
    except KeyboardInterrupt:  # outside the runner's own loop (a sweep's refinement step, a stage's end)
        if not outcome.records:
            raise
        outcome.interrupted = True
    return ResultsDocument(
        environment={**env, "fingerprint": environment.fingerprint(env)}, device=device.to_json(),
        results=tuple(outcome.records), skipped=tuple(outcome.skipped),
        warnings=tuple(w.to_json() for w in outcome.warnings), complete=not outcome.interrupted,
        sweeps=tuple(outcome.sweeps), command="recoque bench accept", created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tool_version=__version__)
