"""Node acceptance: each GPU's figures against the vendor's published floors (AMD Instinct), a stated
fraction of the datasheet peak elsewhere, and its sibling GPUs; a pass/fail table, exit 1 on a fail."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from recoque.errors import WriteFailed
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
        from recoque.errors import BadInput

        raise BadInput("--device and --out apply only when measuring here (no results files given)",
                       "drop them to judge the files, or drop the files to measure this node")
    if files:
        seen = [f.resolve() for f in files]
        twice = next((f for f, r in zip(files, seen) if seen.count(r) > 1), None)
        if twice is not None:  # one GPU counted twice would pass the sibling check with itself
            from recoque.errors import BadInput

            raise BadInput(f"{twice} is given more than once", "pass each GPU's results file once")
        docs = [load_results(str(f)) for f in files]
        paths: list[Optional[Path]] = list(files)
    else:
        devs = _devices(device)
        paths = _out_paths(out, len(devs))
        _refuse_existing(paths)
        docs = [A.measure_quick(d) for d in devs]
    result = A.evaluate(docs)
    if as_json:  # the verdict first: a file that cannot take it must not hide it
        emit_json(result.to_json())
    else:
        _show(result)
    if write:
        try:
            _write_verdicts(A, result, docs, paths, bool(files))
        except WriteFailed as exc:
            if result.passed:
                raise
            # a rejected node stays exit 1 (a script must tell fail from pass); the write is said apart
            err_console.print(f"recoque: error: {exc.what} ({exc.fix})", highlight=False, markup=False)
    if not result.passed:
        raise typer.Exit(1)


def _write_verdicts(A, result, docs, paths, judged_files: bool) -> None:  # noqa: ANN001 - bench.accept and its types
    for doc, path in zip(docs, paths):
        if path is None:
            continue
        try:
            A.write_into(str(path), None if judged_files else doc.to_json(), result, A.gpu_label(doc))
        except WriteFailed as exc:  # the verdict above stands; only the copy in the file is missing
            raise WriteFailed(f"the verdict above was not added to the results file: {exc.what}",
                              "pass --no-write to judge without writing, or make the file writable") from None


def _refuse_existing(paths: List[Optional[Path]]) -> None:
    """Measuring here writes new files: an existing one (another run's results) is not replaced silently.
    Said before the run, so no measurement is lost either."""
    there = [p for p in paths if p is not None and p.exists()]
    if there:
        from recoque.errors import BadInput

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


def _show(result) -> None:  # noqa: ANN001 - bench.accept.Acceptance
    rows = [(c.gpu, c.figure, fmt(c.measured), fmt(c.threshold) if c.threshold is not None else "-", c.unit,
             c.basis, c.verdict.upper() if c.verdict == "fail" else c.verdict) for c in result.checks]
    console.print(table("Node acceptance: each figure against its floor", ("device", "figure", "measured", "floor",
                                                                           "unit", "basis", "verdict"), rows))
    per_gpu = result.per_gpu()
    console.print(table("Verdict per device", ("device", "verdict"), [(g, v.upper()) for g, v in per_gpu.items()]))
    for c in result.failed:
        side = ">" if c.measured is not None and c.threshold is not None and c.measured > c.threshold else "<"
        figures = f" {fmt(c.measured)} {c.unit} {side} {fmt(c.threshold)}" if c.threshold is not None else ""
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
