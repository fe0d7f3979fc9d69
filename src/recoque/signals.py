"""SIGINT, SIGTERM and SIGHUP end a run cleanly: each becomes `recoque.errors.Interrupted`, a
KeyboardInterrupt carrying the signal number, so the code that keeps partial results on Ctrl-C
also keeps them when Slurm hits the time limit (SIGTERM) or an ssh session drops (SIGHUP).

The console script installs the handlers first thing, before the heavy imports, in *deferring*
mode: a signal that arrives while modules load is remembered, not raised (an exception in the middle
of an import would end in a traceback), and `main()` answers it before doing anything. From then
on a signal raises at once, except inside `deferred()`, which writing uses so that a second signal
cannot cut a results file short. A signal the parent ignores (`nohup`, `&` in a script) stays
ignored.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

from recoque.errors import Interrupted

HANDLED = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

_state = {"defer": 0, "pending": None, "installed": False}
_received: list[int] = []


def _handler(signum: int, _frame: object) -> None:
    _received.append(signum)
    if _state["defer"]:
        if _state["pending"] is None:
            _state["pending"] = signum
        return
    raise Interrupted(signum)


def install(defer: bool = False) -> None:
    """Route the three signals to `_handler` (main thread only; elsewhere a no-op). Idempotent."""
    if defer and not _state["installed"]:
        _state["defer"] += 1
    if _state["installed"]:
        return
    try:
        for sig in HANDLED:
            current = signal.getsignal(sig)
            if current is signal.SIG_IGN:
                continue  # nohup / background job: the user asked for this signal to be ignored
            signal.signal(sig, _handler)
    except ValueError:  # not the main thread (e.g. an embedding application): leave signals alone
        return
    _state["installed"] = True


def start_raising() -> None:
    """End the import-time deferral; a signal that already arrived is raised now."""
    if _state["defer"]:
        _state["defer"] = 0
        _raise_pending()


def _raise_pending() -> None:
    pending, _state["pending"] = _state["pending"], None
    if pending is not None:
        raise Interrupted(pending)


def hold() -> None:
    """From now on signals are only remembered: the command is done and exiting, and a late signal
    must not turn a clean exit into a traceback."""
    _state["defer"] += 1


def first() -> int | None:
    """The first signal this process received, if any."""
    return _received[0] if _received else None


@contextmanager
def deferred() -> Iterator[None]:
    """Hold signals while a file is written; the first one held is raised when the block ends."""
    _state["defer"] += 1
    try:
        yield
    finally:
        _state["defer"] -= 1
    if not _state["defer"]:
        _raise_pending()


def launched_as_cli() -> bool:
    """True in the `recoque` console script and `python -m recoque`, not when a test or another
    program imports the CLI (their own signal handling stays untouched)."""
    import os
    import sys

    argv0 = sys.argv[0] if sys.argv else ""
    return os.path.basename(argv0) == "recoque" or argv0.endswith(os.path.join("recoque", "__main__.py"))
