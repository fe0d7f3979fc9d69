"""The CLI edge's two duties for every command alike: every numeric option passes the one rule of
recoque.inputs (finite, in range) on its way in, and every failure leaves as one line,
`recoque: error: what (fix)`, with its documented exit code. No typer usage box, no traceback."""
from __future__ import annotations

import sys
from typing import Any, Callable

try:  # typer >= 0.2x vendors click; its exceptions are what the parser raises
    from typer import _click
except ImportError:  # older typer runs on the click package
    import click as _click  # type: ignore[no-redef]

import typer

from recoque import inputs, signals
from recoque.errors import BadInput, Interrupted, WriteFailed, interrupt_of

_CHECKED = "_recoque_checked"
_ABORT = typer.Abort  # click's Abort, re-exported by every typer (its vendored click has none of its own)


def check_numeric_options(group: Any) -> None:
    """Give every int/float option of every (sub)command the shared check (once per command tree)."""
    for cmd in _walk(group):
        for param in getattr(cmd, "params", ()):
            if not _numeric(param) or getattr(param, _CHECKED, False):
                continue
            param.callback = _checked(param.callback)
            setattr(param, _CHECKED, True)


ROOT_FLAGS = ("--all-columns",)   # the `recoque` command's own options (cli/root.py), taken anywhere on the line
ROOT_VALUED = ("--width",)


def hoist_root_options(argv: list[str]) -> list[str]:
    """`recoque plan ... --width 120` as `recoque --width 120 plan ...`: the output options belong to
    `recoque` itself, and click only reads them before the subcommand (it said "no such option"
    after it). Words after `--` stay where they are."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            rest += argv[i:]
            break
        if word in ROOT_FLAGS or word.partition("=")[0] in ROOT_VALUED and "=" in word:
            front.append(word)
        elif word in ROOT_VALUED and i + 1 < len(argv):
            front += argv[i:i + 2]
            i += 1
        else:
            rest.append(word)
        i += 1
    return front + rest


def refuse_empty_values(argv: list[str]) -> None:
    """An empty name, path or list entry (`-w ''`, `--profile ''`, `--out ''`, `--systems a,,b`) is a
    usage error: before, each fell back to a default silently (another model, no profile, the
    current folder). Checked on the raw words, before any option converts them."""
    for i, word in enumerate(argv):
        flag, eq, value = word.partition("=") if word.startswith("--") else ("", "", word)
        text = value if eq or not flag else None
        if text is None:
            continue
        name = flag or (argv[i - 1] if i and argv[i - 1].startswith("-") else "an argument")
        if not text.strip():
            raise _click.exceptions.UsageError(f"{name} has an empty value ({word!r}): give a value or leave it out")
        if name.startswith("-") and "," in text and any(not p.strip() for p in text.split(",")):
            raise _click.exceptions.UsageError(f"{name} has an empty entry in its list ({text!r}): drop the extra comma")


# A flag that only changes how another one acts: alone it does nothing, which the user would not see.
NEEDS = {"--profile-anyway": ("--profile",), "--force": ("--out",)}


def refuse_inert_flags(argv: list[str]) -> None:
    """`--profile-anyway` without `--profile`, `--force` without `--out`: a usage error, not a no-op."""
    flags = {w.partition("=")[0] for w in argv if w.startswith("--")}
    for flag, needs in NEEDS.items():
        if flag in flags and not flags & set(needs):
            raise _click.exceptions.UsageError(f"{flag} acts on {' or '.join(needs)}, which is not given: "
                                               f"drop {flag} or add {needs[0]}")


def refuse_repeats(values: list[Any], flag: str, same: Callable[[Any], Any] = str) -> None:
    """The same system, claim or file named twice would be computed and shown twice, silently."""
    seen: dict[Any, Any] = {}
    for v in values:
        k = same(v)
        if k in seen:
            raise BadInput(f"{flag}: {str(v)!r} is given twice", "name each once")
        seen[k] = v


def _numeric(param: Any) -> bool:
    """An int or float option: typer's own annotation, or click's parameter type on older typer."""
    desc = getattr(param, "type_descriptor", None)
    if desc is not None:
        return getattr(desc, "annotation", None) in (int, float)
    return getattr(getattr(param, "type", None), "name", "") in ("integer", "float")


def _walk(cmd: Any):
    yield cmd
    for sub in getattr(cmd, "commands", {}).values():
        yield from _walk(sub)


def _checked(inner: Callable[..., Any] | None) -> Callable[..., Any]:
    def callback(ctx: Any, param: Any, value: Any) -> Any:
        if inner is not None:
            value = inner(ctx, param, value)
        flag = (param.opts or [f"--{param.name}"])[0]
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if v is None:
                continue
            problem = inputs.flag_problem(param.name, v)
            if problem is not None:
                raise _click.exceptions.BadParameter(problem, ctx=ctx, param_hint=flag)
        return value
    return callback


_SAID: set[str] = set()  # the signals already reported: one line per run, however many layers catch it


def said(sig: Interrupted) -> int:
    """Mark a signal as reported by a command's own line (what it kept); its exit code. The
    closing line of one_line_main is then not printed a second time."""
    _SAID.add(sig.name)
    return sig.exit_code


def interrupted(exc: BaseException, detail: str = "") -> int:
    """One line for a signal; the shell's exit code for it (128 + number)."""
    sig = interrupt_of(exc)
    if sig.name not in _SAID:
        _SAID.add(sig.name)
        print(f"recoque: error: interrupted by {sig.name}{detail}", file=sys.stderr, flush=True)
    return sig.exit_code


def usage_line(exc: Any) -> str:
    """A click usage error as `what (fix)`, on one line."""
    ctx = getattr(exc, "ctx", None)
    where = f"see `{ctx.command_path} --help`" if ctx is not None else "see `recoque --help`"
    what = " ".join(str(exc.message if hasattr(exc, "possibilities") else exc.format_message()).split()).rstrip(".")
    possible = sorted(getattr(exc, "possibilities", None) or ())
    fix = (f"did you mean {' or '.join(possible)}? " if possible else "") + where
    return f"{what[0].lower() + what[1:] if what else 'bad usage'} ({fix})"


def one_line_main(run: Callable[..., Any], args: Any = None, prog_name: Any = None, complete_var: Any = None,
                  standalone_mode: bool = True, **extra: Any) -> Any:
    """click's main() with standalone handling replaced by ours (one line, our exit codes)."""
    _SAID.clear()  # a new run (tests invoke many in one process)
    if not standalone_mode:
        return run(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
    try:
        args = hoist_root_options(list(sys.argv[1:] if args is None else args))
        refuse_empty_values(args)
        refuse_inert_flags(args)
        rv = run(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
        code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        if code == 130 and signals.first() is not None:
            # typer turns a KeyboardInterrupt raised while it parses or dispatches (before our
            # invoke() can catch it) into Exit(130), silently: say it as every other signal exit does
            code = interrupted(Interrupted(int(signals.first())))
    except _click.exceptions.NoArgsIsHelpError as exc:
        exc.show()
        code = 2
    except _click.exceptions.UsageError as exc:
        print(f"recoque: error: {usage_line(exc)}", file=sys.stderr)
        code = 2
    except _click.exceptions.ClickException as exc:
        print(f"recoque: error: {' '.join(exc.format_message().split())}", file=sys.stderr)
        code = exc.exit_code
    except KeyboardInterrupt as exc:
        code = interrupted(exc)
    except _ABORT as exc:  # click's Abort (EOF on a prompt)
        cause = exc.__cause__ or exc.__context__
        code = interrupted(cause) if isinstance(cause, KeyboardInterrupt) else 1
    except BrokenPipeError:
        code = _closed_pipe()
    except SystemExit as exc:  # rich exits this way when the reader of a pipe goes away (`| head`)
        code = _closed_pipe() if isinstance((exc.__context__), BrokenPipeError) else exc.code
    except OSError as exc:  # what is left: the output itself could not be written (a full disk, EIO)
        code = _failed_output(exc)
    sys.exit(code)


def _failed_output(exc: OSError) -> int:
    """stdout refused a write (`> /dev/full`): one line on stderr, the failed-write exit code, and
    no second error from the interpreter's final flush of the same stdout."""
    print(f"recoque: error: cannot write the output: {exc.strerror or exc} "
          "(free space on the device, or send the output elsewhere)", file=sys.stderr)
    _closed_pipe()
    return WriteFailed.exit_code


def _closed_pipe() -> int:
    """The reader left (`recoque check | head`): stop quietly, as Unix tools do, without a traceback
    from the interpreter's final flush (Python docs, signal module: "Note on SIGPIPE")."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OSError:
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a pipe reader that left


def power_limit_option() -> Any:
    """`--power-limit-w`, the same on every plan command: the GPUs held below their board power
    (replaces the system file's gpu_power_limit_w; planner/power.py)."""
    import typer

    return typer.Option(None, "--power-limit-w",
                        help="Cap every GPU at this many watts (at most its board power): compute slows by the "
                             "stated power law, node power drops.")


def grid_option() -> Any:
    """`--grid`, the same on every command that prices energy: the grid the system's energy is priced
    and counted on, in place of its own site's (seeds/systems.toml [grid.*])."""
    import typer

    return typer.Option(None, "--grid", help="price and count the energy on this grid (`recoque list grids`) "
                                             "instead of the site's own")


def profile_anyway_option() -> Any:
    """`--profile-anyway`, the same on every command that takes --profile and a system."""
    import typer

    return typer.Option(False, "--profile-anyway",
                        help="Use a --profile measured on another device than the system's (every output is marked).")
