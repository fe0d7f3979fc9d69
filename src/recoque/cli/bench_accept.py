"""Node acceptance: each GPU's figures against the vendor's published floors (AMD Instinct), a stated
fraction of the datasheet peak elsewhere, and its sibling GPUs; a pass/fail table, exit 1 on a fail
(128 + the signal when a run here is interrupted: what it measured is judged and kept, as `bench` does)."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from recoque.cli._edge import said
from recoque.errors import BadInput, Interrupted, WriteFailed, interrupt_of
from recoque.render import console, emit_json, err_console, fmt, table


def accept(files: Optional[List[Path]] = typer.Argument(None, help="results files, one per GPU (from `recoque bench "
                                                                   "--out`); none: run the quick suite here"),
           device: str = typer.Option("all", "--device", help="without files: all (every visible GPU, else the CPU), "
                                                              "cpu, gpu:N ..."),
           out: Optional[Path] = typer.Option(None, "--out", help="without files: write the measured results here "
                                                                  "(one file per GPU: NAME.gpuN.json when several)"),
           write: bool = typer.Option(True, "--write/--no-write", help="add the verdicts to the results files"),
           as_json: bool = typer.Option(False, "--json", help="emit the same data as JSON")) -> None:
    """Accept or reject this node: vendor floors, datasheet fractions and siblings, per GPU and figure."""
    from recoque.bench import accept as A
    from recoque.bench.schema import load_results

    if files and (device != "all" or out is not None):  # both apply only to a run here; never ignored silently
        raise BadInput("--device and --out apply only when measuring here (no results files given)",
                       "drop them to judge the files, or drop the files to measure this node")
    unsaved: Optional[WriteFailed] = None
    if files:
        seen = [f.resolve() for f in files]
        twice = next((f for f, r in zip(files, seen) if seen.count(r) > 1), None)
        if twice is not None:  # one GPU counted twice would pass the sibling check with itself
            raise BadInput(f"{twice} is given more than once", "pass each GPU's results file once")
        docs = [load_results(str(f)) for f in files]
        paths: list[Optional[Path]] = list(files)
    else:
        devs = _devices(device)
        paths = _out_paths(out, len(devs))
        _refuse_existing(paths)
        docs, sig = _measure_each(A, devs)
        if sig is not None:
            _interrupted(A, docs, paths, sig, as_json, write)
        try:  # before judging: a signal or a device without floors loses nothing
            _save_measured(docs, paths)
        except WriteFailed as exc:  # judged all the same; said below, as a failed verdict write is
            unsaved = exc
    result = A.evaluate(docs)
    _verdict_out(result, as_json)  # the verdict first: a file that cannot take it must not hide it
    failed = unsaved
    if failed is None and write:
        try:
            _write_verdicts(A, result, docs, paths, True)
        except WriteFailed as exc:
            failed = exc
    if failed is not None:
        if result.passed:
            raise failed
        # a rejected node stays exit 1 (a script must tell fail from pass); the write is said apart
        _say(f"recoque: error: {failed.what} ({failed.fix})")
    if not result.passed:
        raise typer.Exit(1)


def _measure_each(A, devs: list) -> tuple[list, Optional[Interrupted]]:  # noqa: ANN001 - bench.accept
    """Each device's quick suite in turn, and the signal that stopped it, if one did: it ends the whole
    run, not only the device it landed on (the next GPU's suite would have started)."""
    from recoque import signals
    from recoque.cli.bench import _signal_of

    signals.install()
    docs = []
    for d in devs:
        try:
            doc = A.measure_quick(d)
        except KeyboardInterrupt as exc:  # before that device's first case finished
            return docs, interrupt_of(exc)
        docs.append(doc)
        if not doc.complete:  # the runner kept what finished and stopped: only a signal does that here
            return docs, _signal_of(None)
    return docs, None


def _interrupted(A, docs: list, paths: list, sig: Interrupted, as_json: bool, write: bool) -> None:  # noqa: ANN001
    """A signal mid-run: the verdict on what was measured (an interrupted run is not accepted), the
    results kept in the --out files marked incomplete, then exit 128 + the signal, as `bench` does."""
    from recoque import signals

    kept = [(d, p) for d, p in zip(docs, paths) if d.results]
    if not kept:
        _say(f"recoque: error: interrupted by {sig.name} before any verified result: nothing written")
        raise typer.Exit(said(sig))
    with signals.deferred():  # a second signal must not cut a results file short
        try:
            result = A.evaluate([d for d, _ in kept])
        except BadInput as exc:  # nothing measured so far has a floor: the results are kept all the same
            _say(f"recoque: error: {exc.one_line()}")
            result = A.Acceptance(())
        else:
            _verdict_out(result, as_json)
        where = _keep(A, result, kept, write)
        n = sum(len(d.results) for d, _ in kept)
        into = f"kept {n} verified results in {', '.join(where)}" if where else \
            f"{n} verified results measured, none written (no --out)"
        _say(f"interrupted by {sig.name}: {into}; the GPU it stopped on is marked incomplete")
    raise typer.Exit(said(sig))


def _keep(A, result, kept: list, write: bool) -> list[str]:  # noqa: ANN001 - bench.accept and its Acceptance
    """The interrupted run's documents in their --out files, with the verdict unless --no-write; the
    files written."""
    try:
        _save_measured([d for d, _ in kept], [p for _, p in kept])
        if write:
            _write_verdicts(A, result, [d for d, _ in kept], [p for _, p in kept], True)
    except WriteFailed as exc:  # the verdict is shown; the exit code stays the signal's
        _say(f"recoque: error: {exc.what} ({exc.fix})")
        return []
    return [str(p) for _, p in kept if p is not None]


def _verdict_out(result, as_json: bool) -> None:  # noqa: ANN001 - bench.accept.Acceptance
    if as_json:
        emit_json(result.to_json())
    else:
        _show(result)


def _say(line: str) -> None:
    err_console.print(line, highlight=False, markup=False)


def _save_measured(docs: list, paths: list) -> None:
    """The measured documents in their --out files, whole, signals held while each is written."""
    from recoque import signals
    from recoque.bench.schema import save_results

    with signals.deferred():
        for doc, path in zip(docs, paths):
            if path is not None:
                save_results(str(path), doc)


def _write_verdicts(A, result, docs, paths, judged_files: bool) -> None:  # noqa: ANN001 - bench.accept and its types
    from recoque import signals

    for doc, path in zip(docs, paths):
        if path is None:
            continue
        try:
            with signals.deferred():  # a results file is never left half-written
                A.write_into(str(path), None if judged_files else doc.to_json(), result, A.gpu_label(doc))
        except WriteFailed as exc:  # the verdict above stands; only the copy in the file is missing
            raise WriteFailed(f"the verdict above was not added to the results file: {exc.what}",
                              "pass --no-write to judge without writing, or make the file writable") from None


def _refuse_existing(paths: List[Optional[Path]]) -> None:
    """Measuring here writes new files: an existing one (another run's results) is not replaced silently.
    Said before the run, so no measurement is lost either."""
    there = [p for p in paths if p is not None and p.exists()]
    if there:
        raise BadInput(f"{there[0]} exists: `bench accept --out` writes a new results file",
                       f"choose another --out, or judge that file: recoque bench accept {there[0]}")


def _devices(requested: str) -> list:
    from recoque.bench.devices import detect, visible_gpus

    if requested != "all":
        return [detect(requested)]
    return list(visible_gpus()) or [detect("cpu")]


def _out_paths(out: Optional[Path], n: int) -> list[Optional[Path]]:
    if out is None:
        return [None] * n
    if n == 1:
        return [out]
    return [out.with_name(f"{out.stem}.gpu{i}{out.suffix or '.json'}") for i in range(n)]


def _measured(c) -> str:  # noqa: ANN001 - bench.accept.Check
    """The figure held to the floor; a STREAM best with its median beside it."""
    if c.statistic == "best" and c.measured is not None:
        return f"{fmt(c.measured)} best (median {fmt(c.median)})"
    return fmt(c.measured)


def _show(result) -> None:  # noqa: ANN001 - bench.accept.Acceptance
    rows = [(c.gpu, c.figure, _measured(c), fmt(c.threshold) if c.threshold is not None else "-", c.unit,
             c.basis, c.verdict.upper() if c.verdict == "fail" else c.verdict) for c in result.checks]
    console.print(table("Node acceptance: each figure against its floor", ("device", "figure", "measured", "floor",
                                                                           "unit", "basis", "verdict"), rows))
    per_gpu = result.per_gpu()
    console.print(table("Verdict per device", ("device", "verdict"), [(g, v.upper()) for g, v in per_gpu.items()]))
    for c in result.failed:
        side = ">" if c.measured is not None and c.threshold is not None and c.measured > c.threshold else "<"
        best = f" best (median {fmt(c.median)})" if c.statistic == "best" and c.measured is not None else ""
        figures = f" {fmt(c.measured)} {c.unit}{best} {side} {fmt(c.threshold)}" if c.threshold is not None else ""
        err_console.print(f"FAIL {c.gpu}: {c.figure}{figures} ({c.basis}{'; ' + c.source if c.source else ''})",
                          highlight=False, markup=False)
    per_node = result.per_node()
    if len(per_node) > 1:  # files from several hosts: each node has its verdict, siblings stay within a host
        console.print(table("Verdict per node", ("host", "verdict"), [(h, v.upper()) for h, v in per_node.items()]))
    for c in result.unmeasured:
        err_console.print(f"NOT MEASURED {c.gpu}: {c.figure} (floor {fmt(c.threshold)} {c.unit}; {c.source})",
                          highlight=False, markup=False)
    word = "ACCEPTED" if result.passed else "REJECTED" if result.failed else "INCOMPLETE (not accepted)"
    nodes = f"{len(per_node)} nodes, " if len(per_node) > 1 else ""
    missing = f", {len(result.unmeasured)} vendor floors not measured" if result.unmeasured else ""
    err_console.print(f"{word}: {nodes}{len(per_gpu)} device(s), {len(result.checks)} checks, {len(result.failed)} failed"
                      f"{missing}", highlight=False, markup=False)
