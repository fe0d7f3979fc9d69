"""`recoque bench`: measure GEMM, attention, memory and link bandwidth, against datasheet and public bests."""
from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from recoque import __version__
from recoque.bench.schema import ResultsDocument, load_results, save_results
from recoque.errors import BadInput

app = typer.Typer(help="Run benchmarks: all, gemm, attention, stream, transfer, collective.", no_args_is_help=True)

QUICK = typer.Option(False, "--quick", help="Small sweep and short sampling (about a minute).")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, gpu[:N], cuda[:N] or rocm[:N].")
DTYPE = typer.Option(None, "--dtype", help="Repeatable: fp64 fp32 tf32 bf16 fp16 fp8 (default: all).")
OUT = typer.Option(None, "--out", help="Write the results JSON here (atomically).")
APPEND = typer.Option(False, "--append", help="Add to an existing --out file from the same machine.")
JSON = typer.Option(False, "--json", help="Print the results document as JSON instead of tables.")
SEED = typer.Option(0, "--seed", help="Seed of the random normal inputs.")
ROWS = typer.Option(False, "--all-rows", help="Show every measured case, not only the best per op and dtype.")


def _command(name: str):
    def cmd(quick: bool = QUICK, device: str = DEVICE, dtype: Optional[list[str]] = DTYPE,
            out: Optional[Path] = OUT, append: bool = APPEND, json_out: bool = JSON, seed: int = SEED,
            all_rows: bool = ROWS) -> None:
        names = ("gemm", "attention", "stream", "transfer", "collective") if name == "all" else (name,)
        run_bench(names, quick, device, tuple(dtype or ()), out, append, json_out, seed, all_rows)

    cmd.__doc__ = f"Run the {name} benchmark{'s' if name == 'all' else ''}."
    return cmd


for _name in ("all", "gemm", "attention", "stream", "transfer", "collective"):
    app.command(_name)(_command(_name))


def run_bench(names: tuple[str, ...], quick: bool, device_str: str, dtypes: tuple[str, ...], out: Path | None,
              append: bool, json_out: bool, seed: int, all_rows: bool) -> None:
    from recoque.bench import environment
    from recoque.bench.devices import detect
    from recoque.kernels import collectives
    from recoque.bench.suite import ALL_DTYPES, check_dtypes, run_suite

    explicit = bool(dtypes)
    dtypes = check_dtypes(dtypes) or ALL_DTYPES
    world, rank, local_rank = collectives.world()
    if world > 1 and device_str == "auto":  # under torchrun each rank takes its own GPU
        device_str = f"gpu:{local_rank}"
    if rank != 0:  # only rank 0 reports and writes; the others take part in the collectives
        json_out, out, append = False, None, False
    previous = _previous(out) if append else None
    device = detect(device_str)
    env = environment.capture(device)
    if previous is not None:
        _same_machine(previous, env, out)
    started = time.perf_counter()
    with _Progress(enabled=not json_out) as progress:
        outcome, notes = run_suite(names, device, quick, dtypes, seed, dtypes_explicit=explicit,
                                   on_plan=progress.add, on_done=progress.done)
    doc = ResultsDocument(
        environment={**env, "fingerprint": environment.fingerprint(env)}, device=device.to_json(),
        results=tuple((previous.results if previous else ()) + tuple(outcome.records)),
        skipped=tuple((previous.skipped if previous else ()) + tuple(outcome.skipped)),
        warnings=tuple(w.to_json() for w in outcome.warnings), complete=not outcome.interrupted,
        command=" ".join(["recoque"] + sys.argv[1:]), created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        tool_version=__version__,
    )
    if out is not None:
        save_results(str(out), doc)
    if rank != 0:
        return
    _report(doc, outcome, notes, json_out, all_rows, time.perf_counter() - started, out)
    failed = [s for s in outcome.skipped if s.reason.startswith("verification failed")]
    if outcome.interrupted:
        raise typer.Exit(130)
    if failed or not outcome.records:
        raise typer.Exit(1)


def _previous(out: Path | None) -> ResultsDocument | None:
    if out is None:
        raise BadInput("--append needs --out FILE", "name the file to add to")
    return load_results(str(out)) if out.exists() else None


def _same_machine(previous: ResultsDocument, env: dict[str, Any], out: Path | None) -> None:
    from recoque.bench import environment

    old = previous.environment.get("fingerprint")
    if old != environment.fingerprint(env):
        raise BadInput(f"{out} was measured on another machine or software stack (fingerprint {old})",
                       "write to a new --out file; results from different machines are not merged")


def _report(doc: ResultsDocument, outcome: Any, notes: list[str], json_out: bool, all_rows: bool,
            elapsed_s: float, out: Path | None) -> None:
    from recoque.render import bench_tables, emit_json, err_console

    for w in outcome.warnings:
        err_console.print(f"warning: {w.line()}", highlight=False, markup=False)
    if json_out:
        emit_json(doc.to_json())
    else:
        bench_tables(doc, all_rows)
    for note in notes:
        err_console.print(f"note: {note}", highlight=False, markup=False)
    where = f" into {out}" if out else ""
    status = "interrupted: kept" if outcome.interrupted else "measured"
    err_console.print(f"{status} {len(outcome.records)} verified results{where}, {len(outcome.skipped)} skipped, "
                      f"in {elapsed_s:.1f} s", highlight=False, markup=False)


class _Progress:
    """A progress bar on stderr during long sweeps; silent with --json or when stderr is no terminal."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self._bar = None

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from recoque.render import err_console

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=err_console, transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("benchmarking", total=0)
        return self

    def add(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, total=(self._bar.tasks[0].total or 0) + n)

    def done(self, case: Any, rec: Any, skip: Any) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=case.label()[:60])

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
