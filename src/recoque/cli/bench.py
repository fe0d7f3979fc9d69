"""`recoque bench`: measure GEMM, attention, memory and link bandwidth, against datasheet and public bests."""
from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import typer

from recoque import __version__
from recoque.bench.schema import BENCHMARKS, ResultsDocument, check_same_machine, load_results, save_results, store_results
from recoque.bench.dtypes import completions as dtype_completions  # H13: light, no torch
from recoque.cli._edge import said
from recoque.errors import BadInput, Interrupted, WriteFailed, interrupt_of

app = typer.Typer(help=f"Run benchmarks: all, {', '.join(BENCHMARKS)}.", no_args_is_help=True)

QUICK = typer.Option(False, "--quick", help="Small sweep and short sampling (`bench all`: about 4 minutes on one "
                                            "H200, 3 on a 2-core CPU).")
DEVICE = typer.Option("auto", "--device", help="auto, cpu, gpu[:N], cuda[:N] or rocm[:N].")
DTYPES_RUN = {  # what each benchmark measures of --dtype (bench/suite.py); the others are said and skipped
    "all": "each benchmark runs those it supports (gemm: all six; attention: bf16 fp16 fp32, bf16 fp32 on a CPU; "
           "moe: bf16 fp16 fp32, fp32 bf16 on a CPU; stream: fp64 fp32; launch: fp32; collective: fp32 bf16; transfer: bytes, no dtype); the others are said",
    "gemm": "default: all six",
    "attention": "attention runs bf16 fp16 fp32 (bf16 fp32 on a CPU); default: all of those",
    "moe": "moe runs bf16 fp16 fp32 (fp32 bf16 on a CPU); default: bf16 (fp32 and bf16 on a CPU)",
    "stream": "stream runs fp64 fp32; default: both, fp64 only with --quick",
    "launch": "launch times a chain of fp32 adds: any other dtype is said and not measured",
    "transfer": "transfer copies bytes: --dtype does not apply",
    "collective": "collective runs fp32 bf16; default: both, fp32 only with --quick",
}


def _dtype_option(name: str):
    return typer.Option(None, "--dtype", help="Repeatable or comma-separated: fp64 fp32 tf32 bf16 fp16 fp8, or torch's "
                                              f"names (float32, bfloat16, float8_e4m3fn...); {DTYPES_RUN[name]}.",
                        autocompletion=dtype_completions)
OUT = typer.Option(None, "--out", help="Write the results JSON here (atomically).")
APPEND = typer.Option(False, "--append", help="Add to an existing --out file from the same machine.")
JSON = typer.Option(False, "--json", help="Print the results document as JSON instead of tables.")
SEED = typer.Option(0, "--seed", help="Seed of the random normal inputs.")
ROWS = typer.Option(False, "--all-rows", help="Show every measured case, not only the best per op and dtype.")
FORCE = typer.Option(False, "--force", help="Replace an existing --out file even if it holds more results.")


DOCS = {
    "all": "Run every benchmark: GEMM, attention, MoE grouped GEMM, memory (STREAM), kernel launches, copies and "
           "collectives.",
    "gemm": "Matrix multiply per dtype over a shape sweep (TFLOP/s against the datasheet peak).",
    "attention": "Fused attention forward and backward (TFLOP/s against the matrix peak).",
    "moe": "MoE grouped GEMM: the expert up and down projections of DeepSeek-V3, gpt-oss-120b and Qwen3-30B-A3B at 8-512 rows "
           "per expert (TFLOP/s against the matrix peak; the drop from the dense GEMM is the grouped kernel's cost).",
    "stream": "Memory bandwidth: STREAM copy/mul/add/triad/dot (GB/s against the datasheet).",
    "launch": "Kernel launch cost: a chain of tiny dependent kernels, eager and replayed as a CUDA/HIP graph "
              "(million kernels per second; its inverse is what `plan infer --profile` charges per decode-step kernel, "
              "graph, and `plan train --profile` per training kernel, eager).",
    "transfer": "Copy bandwidth host-to-device and device-to-host (pinned; pageable at 256 MiB as "
                "h2d_pageable, d2h_pageable) and device-to-device (GB/s).",
    "collective": "Collectives across ranks (torchrun or srun): bus bandwidth per message size (GB/s).",
}


def _command(name: str):
    def cmd(quick: bool = QUICK, device: str = DEVICE, dtype: Optional[list[str]] = _dtype_option(name),
            out: Optional[Path] = OUT, append: bool = APPEND, json_out: bool = JSON, seed: int = SEED,
            all_rows: bool = ROWS, force: bool = FORCE) -> None:
        names = BENCHMARKS if name == "all" else (name,)
        run_bench(names, quick, device, tuple(dtype or ()), out, append, json_out, seed, all_rows, force)

    cmd.__doc__ = DOCS[name]
    return cmd


for _name in ("all", *BENCHMARKS):
    app.command(_name)(_command(_name))


def run_bench(names: tuple[str, ...], quick: bool, device_str: str, dtypes: tuple[str, ...], out: Path | None,
              append: bool, json_out: bool, seed: int, all_rows: bool, force: bool = False) -> None:
    """Measure, then write and report. Nothing measured is lost: SIGINT/SIGTERM/SIGHUP at any point
    keep what finished (written marked incomplete, exit 128 + signal); a failed write keeps the
    tables and --json output and saves the file elsewhere (exit 4)."""
    from recoque import signals

    signals.install()
    kept = _Kept()
    try:
        _measure(names, quick, device_str, dtypes, out, append, json_out, seed, all_rows, force, kept)
    except KeyboardInterrupt as exc:
        sig = interrupt_of(exc)
        if kept.finished:  # the signal came during the write or the report: the file is whole
            raise typer.Exit(sig.exit_code) from None
        if not kept.records or kept.rank != 0:
            _say(f"recoque: error: interrupted by {sig.name} before any verified result: nothing written")
            raise typer.Exit(said(sig)) from None
        with signals.deferred():
            doc = kept.document(complete=False)
            where, failure = _store(doc, out, append, force)
            _report(doc, kept.outcome(), [], json_out, all_rows, kept.elapsed_s(), where, f"interrupted by {sig.name}")
            _say_failure(failure, where, doc, json_out)
        raise typer.Exit(said(sig)) from None


def _measure(names, quick, device_str, dtypes, out, append, json_out, seed, all_rows, force, kept: "_Kept") -> None:
    from recoque.bench.extras import require_bench_stack  # H13: say what to install, before importing torch

    require_bench_stack()
    from recoque.bench import environment
    from recoque.bench.devices import detect
    from recoque.bench.suite import ALL_DTYPES, check_dtypes, run_suite
    from recoque import signals

    explicit = bool(dtypes)
    from recoque.bench.dtypes import parse_dtypes  # H13: torch spellings, case-insensitive, comma lists

    dtypes = check_dtypes(parse_dtypes(dtypes)) or ALL_DTYPES
    from recoque.bench import distributed  # scale-out (issue 11): torchrun or srun, one GPU per rank

    dworld = distributed.discover()
    rank = kept.rank = dworld.rank
    device_str = distributed.rank_device(device_str, dworld)
    if rank != 0:  # only rank 0 reports and writes; the others take part in the collectives
        json_out, out, append = False, None, False
    if append and out is None:
        raise BadInput("--append needs --out FILE", "name the file to add to")
    try:
        existing = _check_target(out, append, force) if out is not None else None
    except BadInput as exc:  # the other ranks would wait out the join timeout for a rank 0 that left
        distributed.refuse_job(dworld, exc.one_line())
        raise
    lines = progress_lines()  # before measuring: a mistyped setting is one line, not a silent default
    device = detect(device_str)
    session = distributed.start(dworld, device) if dworld.distributed else None
    env = environment.capture(device)
    kept.start(env={**env, "fingerprint": environment.fingerprint(env)}, device=device.to_json())
    if existing is not None:  # refuse another machine's file before measuring, not after
        _check_machine(existing, kept.env, out, append, device.torch_device)
    from recoque.render import StageLog  # H13: one line per finished stage in logs (stderr not a terminal)

    bar = sys.stderr.isatty() or lines
    with (_Progress(enabled=not json_out, lines=lines) if bar else StageLog(enabled=not json_out)) as progress:
        def done(case: Any, rec: Any, skip: Any) -> None:
            kept.add(rec, skip)
            progress.done(case, rec, skip)

        outcome, notes = run_suite(names, device, quick, dtypes, seed, dtypes_explicit=explicit,
                                   on_plan=progress.add,
                                   on_done=distributed.stop_checked(done) if session else done, out=kept.live)
    with signals.deferred():
        kept.finished = True
        doc = kept.document(complete=not outcome.interrupted, outcome=outcome)
        if session is not None:  # every rank's results, merged into one document on rank 0
            doc = distributed.finish(session, doc, outcome.interrupted)
            if doc is None:
                distributed.raise_if_failed(session)
                return
            notes.append(distributed.summary_line(doc))
            from recoque.planner.commfit import fit_lines

            notes += fit_lines(doc)  # the alpha-beta fit per collective, group size and tier
        where, failure = _store(doc, out, append, force) if rank == 0 else (None, None)
        sig = _signal_of(outcome, session) if outcome.interrupted else None
        if rank != 0:  # rank 0 reports and writes; a signalled rank still exits with its signal's code
            if sig is not None:
                raise typer.Exit(sig.exit_code)
            return
        _report(doc, outcome, notes, json_out, all_rows, kept.elapsed_s(), where, _stopped_by(outcome, sig))
        _say_failure(failure, where, doc, json_out)
    distributed.raise_if_failed(session)
    failed = [s for s in outcome.skipped if s.reason.startswith("verification failed")]
    if sig is not None:
        raise typer.Exit(sig.exit_code)
    if failure is not None:
        raise typer.Exit(failure.exit_code)
    if failed or not outcome.records:
        raise typer.Exit(1)


def _signal_of(outcome: Any, session: Any = None) -> Interrupted | None:
    """Which signal stopped the runner's loop: the first one this process received (a plain
    KeyboardInterrupt, as in tests, is SIGINT). None when no signal came and a rank failed: a
    collective whose peer died stops the loop the same way, and that is not a signal."""
    from recoque import signals

    first = signals.first()
    if first is None and session is not None and session.failure:
        return None
    return Interrupted(first) if first is not None else interrupt_of(KeyboardInterrupt())


def _stopped_by(outcome: Any, sig: Interrupted | None) -> str | None:
    """The status line's reason when the run ended early: a signal, or a rank that failed."""
    if sig is not None:
        return f"interrupted by {sig.name}"
    return "stopped by a failed rank" if outcome.interrupted else None


class _Kept:
    """What the run has measured so far, case by case (on_done), so a signal that lands outside the
    runner's own loop (between benchmarks, in a refinement step) still finds every finished case."""

    def __init__(self) -> None:
        self.records: list[Any] = []
        self.skipped: list[Any] = []
        self.rank = 0
        self.finished = False
        from recoque.bench.runner import RunOutcome

        self.live = RunOutcome()  # the suite's own outcome, filled stage by stage (run_suite's `out`)
        self.env: dict[str, Any] = {}
        self.device: dict[str, Any] = {}
        self._t0 = time.perf_counter()

    def start(self, env: dict[str, Any], device: dict[str, Any]) -> None:
        self.env, self.device, self._t0 = env, device, time.perf_counter()

    def add(self, rec: Any, skip: Any) -> None:
        if rec is not None:
            self.records.append(rec)
        if skip is not None:
            self.skipped.append(skip)

    def elapsed_s(self) -> float:
        return time.perf_counter() - self._t0

    def outcome(self) -> Any:
        from recoque.bench.runner import RunOutcome

        # records and skips as each case finished; warnings and sweeps as each stage did (`live`)
        return RunOutcome(records=list(self.records), skipped=list(self.skipped), warnings=list(self.live.warnings),
                          sweeps=list(self.live.sweeps), interrupted=True)

    def document(self, complete: bool, outcome: Any = None) -> ResultsDocument:
        src = outcome if outcome is not None else self.outcome()
        return ResultsDocument(
            environment=self.env, device=self.device, results=tuple(src.records), skipped=tuple(src.skipped),
            warnings=tuple(w.to_json() for w in src.warnings), complete=complete, sweeps=tuple(src.sweeps),
            command=" ".join(["recoque"] + sys.argv[1:]),
            created_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"), tool_version=__version__)


def _check_target(out: Path, append: bool, force: bool) -> ResultsDocument | None:
    """Say at the start, not after an hour, when --out cannot be written. A file that is not a results
    file (and no --force) is refused before anything runs; for a folder problem the run goes on and
    the results then go to a fallback file. Returns the existing results file it read (for --append's
    machine check), or None."""
    existing = None
    if os.path.lexists(out) and not out.is_file() and not out.is_dir():  # a device node, a FIFO: never replaced
        raise BadInput(f"--out {out} exists and is not a regular file: nothing was run", "choose another --out")
    if out.is_file() and not (force and not append):
        try:
            existing = load_results(str(out))
        except BadInput as exc:
            raise BadInput(f"--out {out} exists and is not a readable results file ({exc.what}): nothing was run",
                           "pass --force to replace it, or choose another --out") from None
    folder = out.parent if str(out.parent) else Path(".")
    problem = ("it is a folder" if out.is_dir() else "its folder does not exist" if not folder.is_dir()
               else "its folder is not writable" if not os.access(folder, os.W_OK) else None)
    if problem:
        _say(f"warning: --out {out}: {problem}; the results will be saved to a fallback file")
    return existing


def _check_machine(existing: ResultsDocument, env: dict, out: Path, append: bool, torch_device: str) -> None:
    """--append merges only the same machine's and GPU's results under the same settings; a plain --out
    (no --force: `existing` is then None) replaces only the same machine's and GPU's. Either way the
    refusal comes before anything is measured."""
    if append:
        check_same_machine(existing, env["fingerprint"], str(out), env, {"torch_device": torch_device})
    elif existing.environment.get("fingerprint") != env["fingerprint"]:
        raise BadInput(f"--out {out} holds results of another machine or software stack: nothing was run",
                       "pass --force to replace it, or choose another --out")
    elif existing.device.get("torch_device") not in (None, torch_device):
        raise BadInput(f"--out {out} holds results of {existing.device.get('torch_device')}, this run is on "
                       f"{torch_device}: nothing was run", "write each GPU's results to its own --out file, or pass --force")


def _store(doc: ResultsDocument, out: Path | None, append: bool, force: bool) -> tuple[Path | None, WriteFailed | None]:
    """Write `doc` to --out; on failure save it to a fallback file. (where it went, the failure)."""
    if not doc.results:
        if out is not None:
            _say(f"no verified result: nothing written to {out}" + (" (it is unchanged)" if out.exists() else ""))
        return None, None
    if out is None:
        return None, None
    try:
        store_results(str(out), doc, append=append, force=force)
        return out, None
    except WriteFailed as exc:
        return _fallback(doc, out), exc


def _fallback(doc: ResultsDocument, out: Path) -> Path | None:
    """The working directory first, then the temp dir; a name that says when and which run."""
    import tempfile

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"recoque-results-{stamp}-{os.getpid()}.json"
    for folder in (Path.cwd(), Path(tempfile.gettempdir())):
        try:
            save_results(str(folder / name), doc)
            return folder / name
        except WriteFailed:
            continue
    return None


def _say_failure(failure: WriteFailed | None, where: Path | None, doc: ResultsDocument, json_out: bool) -> None:
    """One line: why --out was not written and where the results are instead."""
    if failure is None:
        return
    if where is not None:
        _say(f"recoque: error: {failure.one_line()}; the results are saved in {where}")
        return
    _say(f"recoque: error: {failure.one_line()}; no fallback file could be written either"
         + ("" if json_out else ": the results document follows on stdout"))
    if not json_out:
        from recoque.render import emit_json

        emit_json(doc.to_json())


def _say(line: str) -> None:
    from recoque.render import err_console

    err_console.print(line, highlight=False, markup=False)


def _report(doc: ResultsDocument, outcome: Any, notes: list[str], json_out: bool, all_rows: bool,
            elapsed_s: float, where: Path | None, stopped: str | None = None) -> None:
    """Tables (or --json), notes, then one status line: how many results, where they went, and, when
    the run ended early, why (`stopped`: a signal, or a failed rank)."""
    from recoque.render import bench_tables, emit_json, err_console

    from recoque.bench.noise import group_lines

    # One line per kind (every case is in the results file; --all-rows lists them here too).
    for line in group_lines(outcome.warnings, verbose=all_rows):
        err_console.print(f"warning: {line}", highlight=False, markup=False)
    if json_out:
        emit_json(doc.to_json())
    elif doc.results or doc.skipped:
        bench_tables(doc, all_rows)
    from recoque.bench.summary import sweep_lines

    for note in notes + sweep_lines(doc):  # the GEMM sweeps' shapes and seconds, also in the file's `sweeps`
        err_console.print(f"note: {note}", highlight=False, markup=False)
    into = f" into {where}" if where else ""
    status = f"{stopped}: kept" if stopped else "measured"
    incomplete = " (marked incomplete)" if stopped and where else ""
    # the document's counts: under torchrun it holds every rank's results and skips, not rank 0's only.
    # Cases as well as records: a confirmed headline is its sweep record plus its rounds, and a group
    # confirms a second case when the fastest looked unsteady, so the record count moves with noise.
    from recoque.bench.headline import identity

    cases = len({(r.benchmark, r.op, r.dtype) + identity(r) for r in doc.results})
    rounds = f" ({cases} cases; the rest are confirmation rounds)" if cases < len(doc.results) else ""
    err_console.print(f"{status} {len(doc.results)} verified results{into}{incomplete}{rounds}, {len(doc.skipped)} "
                      f"skipped, in {elapsed_s:.1f} s", highlight=False, markup=False)


PROGRESS_MODES = ("", "bar", "lines")  # RECOQUE_PROGRESS: unset or bar = a bar on a terminal; lines = one line per case


def progress_lines() -> bool:
    """RECOQUE_PROGRESS, read once: True for one plain line per finished case."""
    mode = os.environ.get("RECOQUE_PROGRESS", "").strip().lower()
    if mode not in PROGRESS_MODES:
        raise BadInput(f"RECOQUE_PROGRESS={mode!r} is not a progress mode",
                       "set it to `lines` (one line per finished case) or `bar`, or unset it")
    return mode == "lines"


class _Progress:
    """A progress bar on stderr during long sweeps; silent with --json or when stderr is no terminal.
    RECOQUE_PROGRESS=lines prints one plain line per finished case instead (batch logs, Slurm)."""

    def __init__(self, enabled: bool, lines: bool) -> None:
        self.lines = lines
        self.enabled = enabled and sys.stderr.isatty() and not self.lines
        self._bar = None
        self._planned = self._done = 0

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            from recoque.render import err_console

            self._bar = Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=err_console, transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("benchmarking", total=0)
        return self

    def add(self, n: int) -> None:
        self._planned += n
        if self.lines:
            print(f"progress: planned {n} more cases", file=sys.stderr, flush=True)
        if self._bar is not None:
            self._bar.update(self._task, total=(self._bar.tasks[0].total or 0) + n)

    def done(self, case: Any, rec: Any, skip: Any) -> None:
        self._done += 1
        if self.lines:
            what = "measured" if rec is not None else "skipped"
            print(f"progress: {self._done}/{self._planned} {what} {case.label()}", file=sys.stderr, flush=True)
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=case.label()[:60])

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
