"""The report's plots (matplotlib, Agg backend: no display, no network). Each function returns a
figure, or None when the inputs hold no data for that kind; `render_all` turns them into PNG/SVG.

matplotlib is imported inside the functions: planning-only installs need not have it.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from recoque.bench.schema import Record, ResultsDocument
from recoque.bench.summary import collective_variant

ELEM_BYTES = {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
MiB = 2**20
Docs = Sequence[tuple[str, ResultsDocument]]


@dataclass(frozen=True)
class Plot:
    name: str  # file stem: roofline, gemm_sweep, ...
    title: str
    png: bytes
    svg: str | None = None  # only when asked for (--plots DIR): SVG output doubles the drawing time


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    # file names, device names and plan systems are user text: a `$` pair is drawn literally, not
    # parsed as mathtext (an unbalanced one raised a traceback, a balanced one turned italic)
    plt.rcParams["text.parse_math"] = False
    return plt


def _rank(r: Record) -> str:
    """A multi-rank file holds one record per GPU of the same case: each GPU its own line."""
    return f" rank {r.params['rank']}" if "rank" in r.params else ""


def one_per_case(recs: Iterable[Record]) -> list[Record]:
    """A case measured in confirmation rounds once, as the tables show it: the round at the median of
    the rounds' figures (bench/headline.py), not every round as its own point and the first, unconfirmed
    run beside them."""
    from recoque.bench.headline import CONFIRM_TAG

    cases: dict[str, list[Record]] = {}
    for r in recs:
        cases.setdefault(repr(sorted(r.params.items())) + (r.backend or "") + r.op + r.dtype, []).append(r)
    out = []
    for group in cases.values():
        rounds = sorted((r for r in group if CONFIRM_TAG in r.tags), key=lambda r: r.achieved)
        out += [rounds[(len(rounds) - 1) // 2]] if rounds else group
    return out


STYLES = ("-", "--", ":", "-.")


def short(label: str, among: Sequence[str] = ()) -> str:
    """File labels without their folders and .json suffix (legends stay readable); where another
    label of `among` has the same name (node1/results.json, node2/results.json), as many folders
    are kept as tell them apart."""
    parts = label.replace("\\", "/").split("/")
    others = [o.replace("\\", "/").split("/") for o in among if o != label]
    keep = 1
    while keep < len(parts) and any(o[-keep:] == parts[-keep:] for o in others):
        keep += 1
    name = "/".join(parts[-keep:])
    return name[:-5] if name.endswith(".json") else name


def _legend(ax, n_lines: int) -> None:
    if n_lines > 6:  # many series: beside the axes, never over the data
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize=8, loc="best")


def _series(ax, docs_series, xlabel_fn, ylabel_fn) -> None:
    """One colour per series key, one line style per file."""
    colors = _plt().rcParams["axes.prop_cycle"].by_key()["color"]
    keys = list(dict.fromkeys(k for _, series in docs_series for k in series))
    n = 0
    for i, (label, series) in enumerate(docs_series):
        for key, recs in series.items():
            name = key if len(docs_series) == 1 else f"{short(label, [lb for lb, _ in docs_series])}: {key}"
            ax.plot([xlabel_fn(r) for r in recs], [ylabel_fn(r) for r in recs], marker="o", ms=4,
                    ls=STYLES[i % len(STYLES)], color=colors[keys.index(key) % len(colors)], label=name)
            n += 1
    _legend(ax, n)


def _new(title: str, xlabel: str, ylabel: str, logx: bool = True, logy: bool = False):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 4.4), dpi=100)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log", base=2)
    if logy:
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    return fig, ax


# --------------------------------------------------------------------------- roofline


def intensity(rec: Record) -> float | None:
    """FLOPs per byte of the operands read and written once (the roofline's x; Williams et al. 2009)."""
    eb = ELEM_BYTES.get(rec.dtype)
    if rec.flop_count is None or eb is None:
        return None
    p = rec.params
    if rec.benchmark == "gemm":
        moved = (p["m"] * p["k"] + p["k"] * p["n"]) * eb + p["m"] * p["n"] * (2 if rec.dtype == "fp8" else eb)
    elif rec.benchmark == "attention":
        q = p["batch"] * p["heads_q"] * p["seq_q"] * p["head_dim"]
        kv = 2 * p["batch"] * p["heads_kv"] * p["seq_k"] * p["head_dim"]
        moved = (2 * q + kv) * eb  # q and o, k and v
    elif rec.benchmark == "moe":  # the routed rows, every expert's weights, the output rows
        rows = p["tokens"] * p["top_k"]
        moved = (rows * p["k"] + p["experts"] * p["k"] * p["n"] + rows * p["n"]) * eb
    else:
        return None
    return rec.flop_count / moved


def _ceilings(doc: ResultsDocument) -> dict[str, Any]:
    """The measured ceilings are the headline figures the report's best table prints (bench/headline:
    a confirmation's median round), not the fastest single record, which one noisy round can set."""
    from recoque.bench.summary import best_rows

    compute_measured: dict[str, float] = {}
    compute_sheet: dict[str, float] = {}
    best = best_rows(doc)
    for b in best:
        if b["unit"] == "TFLOP/s":
            compute_measured[b["dtype"]] = max(compute_measured.get(b["dtype"], 0.0), b["achieved"])
    for r in doc.results:
        if r.unit == "TFLOP/s" and r.peak:
            compute_sheet[r.dtype] = r.peak
    streams = [r for r in doc.results if r.benchmark == "stream"]
    bw_measured = max((b["achieved"] for b in best if b["benchmark"] == "stream"), default=None)
    bw_sheet = next((r.peak for r in streams if r.peak), None)
    dev_bw = (doc.device.get("peak_bandwidth_bytes_s") or {})
    if bw_sheet is None and isinstance(dev_bw, Mapping) and dev_bw.get("bytes_s"):
        bw_sheet = dev_bw["bytes_s"] / 1e9
    return {"compute_measured": compute_measured, "compute_sheet": compute_sheet,
            "bw_measured": bw_measured, "bw_sheet": bw_sheet}


def roofline(label: str, doc: ResultsDocument, among: Sequence[str] = ()):
    """Measured ceilings (solid) against the datasheet's (dashed); every compute case a point."""
    pts = [(intensity(r), r.achieved, r) for r in one_per_case(doc.results) if r.unit == "TFLOP/s"]
    pts = [(x, y, r) for x, y, r in pts if x]
    c = _ceilings(doc)
    if not pts and not c["compute_measured"]:
        return None
    unit, scale = ("GFLOP/s", 1e3) if doc.device.get("kind") == "cpu" else ("TFLOP/s", 1.0)  # as the GEMM sweep
    fig, ax = _new(f"Roofline: {short(label, among)} ({doc.device.get('name', 'device')})", "arithmetic intensity (FLOP/byte)",
                   unit, logx=True, logy=True)
    xs = [x for x, _, _ in pts] or [1.0]
    lo, hi = min(xs) / 8, max(xs) * 4
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    colors = _plt().rcParams["axes.prop_cycle"].by_key()["color"]
    for i, dtype in enumerate(sorted(set(c["compute_measured"]) | set(c["compute_sheet"]))):
        col = colors[i % len(colors)]
        for kind, peak, bw, style in (("datasheet", c["compute_sheet"].get(dtype), c["bw_sheet"], "--"),
                                      ("measured", c["compute_measured"].get(dtype), c["bw_measured"], "-")):
            if not peak:
                continue
            ys = [scale * (min(peak, x * bw / 1e3) if bw else peak) for x in grid]  # GB/s x FLOP/B = GFLOP/s
            ax.plot(grid, ys, style, color=col, lw=1.2, alpha=0.8, label=f"{dtype} {kind} ceiling")
        mine = [(x, y) for x, y, r in pts if r.dtype == dtype]
        if mine:
            ax.scatter([x for x, _ in mine], [y * scale for _, y in mine], s=16, color=col, zorder=3,
                       label=f"{dtype} cases")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


# --------------------------------------------------------------------------- sweeps


def gemm_sweep(docs: Docs):
    per_doc = []
    for label, doc in docs:
        by_dtype: dict[str, list[Record]] = {}
        for r in one_per_case(doc.results):
            if r.benchmark == "gemm" and "llm" not in r.tags:
                by_dtype.setdefault(r.dtype + (f" {r.backend}" if r.backend == "numpy" else "") + _rank(r), []).append(r)
        for recs in by_dtype.values():
            recs.sort(key=lambda r: r.work)
        if by_dtype:
            per_doc.append((label, dict(sorted(by_dtype.items()))))
    if not per_doc:
        return None
    cpu = all(doc.device.get("kind") == "cpu" for _, doc in docs)
    unit, scale = ("GFLOP/s", 1e3) if cpu else ("TFLOP/s", 1.0)
    fig, ax = _new("GEMM throughput over the shape sweep (median time)", "work per call (FLOP = 2 m n k)", unit)
    _series(ax, per_doc, lambda r: r.work, lambda r: r.achieved * scale)
    return fig


def stream_bandwidth(docs: Docs):
    per_doc = []
    for label, doc in docs:
        by_op: dict[str, list[Record]] = {}
        for r in one_per_case(doc.results):
            if r.benchmark == "stream" and "n_elements" in r.params:
                by_op.setdefault(f"{r.op} {r.dtype}{_rank(r)}", []).append(r)
        for recs in by_op.values():
            recs.sort(key=lambda r: r.params["n_elements"])
        if by_op:
            per_doc.append((label, dict(sorted(by_op.items()))))
    if not per_doc:
        return None
    fig, ax = _new("Memory bandwidth (BabelStream kernels) over array size", "array size (MiB)", "GB/s (decimal)")
    _series(ax, per_doc, lambda r: r.params["n_elements"] * r.params.get("elem_bytes", 8) / MiB, lambda r: r.achieved)
    return fig


def collective_busbw(docs: Docs):
    per_doc = []
    for label, doc in docs:
        by_op: dict[str, list[Record]] = {}
        for r in one_per_case(doc.results):
            if r.benchmark == "collective" and "bytes" in r.params:
                ranks = r.params.get("group_size", r.params.get("world_size", "?"))
                by_op.setdefault(f"{r.op} {r.dtype} x{ranks} ({collective_variant(r)})", []).append(r)
        for recs in by_op.values():
            recs.sort(key=lambda r: r.params["bytes"])
        if by_op:
            per_doc.append((label, dict(sorted(by_op.items()))))
    if not per_doc:
        return None
    fig, ax = _new("Collective bus bandwidth (nccl-tests busbw) over message size", "message size (bytes)",
                   "bus bandwidth (GB/s)")
    _series(ax, per_doc, lambda r: r.params["bytes"], lambda r: r.achieved)
    return fig


# --------------------------------------------------------------------------- planner output


def _estimate(d: Any) -> tuple[float, float, float] | None:
    if isinstance(d, Mapping) and all(isinstance(d.get(k), (int, float)) for k in ("value", "low", "high")):
        return float(d["value"]), float(d["low"]), float(d["high"])
    return None


def training_points(plans: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The best training plan of each planner JSON, one point per system, workload and GPU count,
    in series order then by GPU count: plans of other systems or workloads are other lines, never
    joined into one curve."""
    pts: dict[tuple[str, int], dict[str, Any]] = {}
    for doc in plans:
        train = doc.get("train", doc) if isinstance(doc, Mapping) else {}
        best = train.get("best") if isinstance(train, Mapping) else None
        if not isinstance(best, list) or not best or not isinstance(best[0], Mapping):
            continue
        b = best[0]
        ttt, tps = _estimate(b.get("time_to_train")), _estimate(b.get("tokens_per_s"))
        series = " / ".join(str(doc.get(k) or train.get(k) or "?") for k in ("system", "workload"))
        if isinstance(b.get("gpus"), int) and (ttt or tps):
            pts[(series, b["gpus"])] = {"gpus": b["gpus"], "time_to_train": ttt, "tokens_per_s": tps,
                                        "label": b.get("plan_label", ""), "series": series}
    order = list(dict.fromkeys(s for s, _ in pts))
    return [pts[k] for k in sorted(pts, key=lambda k: (order.index(k[0]), k[1]))]


def training_scaling(plans: Sequence[Mapping[str, Any]]):
    pts = training_points(plans)
    if not pts:
        return None
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4), dpi=100)
    fig.suptitle("Training: time to train and throughput over GPU count (best plan, low-high range)", fontsize=10)
    lines = list(dict.fromkeys(p["series"] for p in pts))
    for ax, key, scale, ylabel in ((a1, "time_to_train", 86400, "time to train (days)"),
                                   (a2, "tokens_per_s", 1e6, "throughput (million tokens/s)")):
        ticks: set[int] = set()
        for series in lines:
            sel = [p for p in pts if p[key] and p["series"] == series]
            if not sel:
                continue
            xs = [p["gpus"] for p in sel]
            ticks.update(xs)
            err = [[max(0.0, p[key][0] - p[key][1]) / scale for p in sel],
                   [max(0.0, p[key][2] - p[key][0]) / scale for p in sel]]
            ax.errorbar(xs, [p[key][0] / scale for p in sel], yerr=err, fmt="o-", capsize=3, label=series)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(ticks), [f"{x:,}" for x in sorted(ticks)])
        ax.minorticks_off()
        ax.set_xlabel("GPUs")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
    if len(lines) > 1:
        a1.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def h100_equivalents(plan: Mapping[str, Any]):
    """Bars of H100-equivalents per metric (the `h100e` block of `recoque plan --json`)."""
    block = plan.get("h100e") if isinstance(plan, Mapping) else None
    rows = []
    if isinstance(block, Mapping):
        for basis in ("peak", "delivered"):
            items = block.get(basis)
            items = items if isinstance(items, list) else [items] if isinstance(items, Mapping) else []
            for it in items:
                est = _estimate(it.get("h100e")) if isinstance(it, Mapping) else None
                if est:
                    rows.append((f"{it.get('metric', basis)} ({basis})", est))
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(rows) + 1.6), dpi=100)
    ys = range(len(rows))
    vals = [e[0] for _, e in rows]
    err = [[max(0.0, e[0] - e[1]) for _, e in rows], [max(0.0, e[2] - e[0]) for _, e in rows]]
    ax.barh(list(ys), vals, xerr=err, capsize=3, color="#4c72b0")
    ax.set_yticks(list(ys), [name for name, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("H100-equivalents (bars: estimate, whiskers: low-high)")
    ax.set_title(f"{plan.get('system', 'system')}: H100-equivalents per metric", fontsize=11)
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- output


def to_png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def to_svg(fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


def render_all(docs: Docs, plans: Sequence[Mapping[str, Any]] = (), svg: bool = False) -> list[Plot]:
    """Every plot the inputs have data for, in a fixed order."""
    plt = _plt()
    made: list[tuple[str, str, Any]] = []
    for i, (label, doc) in enumerate(docs):
        labels = [lb for lb, _ in docs]
        made.append((f"roofline_{i + 1}" if len(docs) > 1 else "roofline", f"Roofline: {short(label, labels)}",
                     roofline(label, doc, labels)))
    made += [("gemm_sweep", "GEMM throughput over the shape sweep", gemm_sweep(docs)),
             ("stream_bandwidth", "Stream bandwidth over array size", stream_bandwidth(docs)),
             ("collective_busbw", "Collective bus bandwidth over message size", collective_busbw(docs)),
             ("training_scaling", "Time to train and tokens/s over GPU count", training_scaling(plans))]
    for i, plan in enumerate(plans):
        made.append((f"h100_equivalents_{i + 1}" if len(plans) > 1 else "h100_equivalents",
                     "H100-equivalents per metric", h100_equivalents(plan)))
    out = []
    for name, title, fig in made:
        if fig is None:
            continue
        out.append(Plot(name, title, to_png(fig), to_svg(fig) if svg else None))
        plt.close(fig)
    return out

