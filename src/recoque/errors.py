"""The errors every command raises (style rule 6): two kinds about the input, one about the output,
and the signals.

`BadInput` (exit 2): the user gave something we cannot use (malformed file, unknown preset, negative
count). `DoesNotFit` (exit 3): the input is well formed but the request is impossible (model does not
fit in memory, more GPUs than the system has); plan searches count these instead of raising.
`WriteFailed` (exit 4): results could not be written where asked (they are saved elsewhere).
Each carries one line saying what went wrong and one hint saying how to fix it. `Interrupted`
(exit 128 + the signal) is a signal mid-run; what was measured is kept.
"""
from __future__ import annotations


class RecoqueError(Exception):
    exit_code = 1

    def __init__(self, what: str, fix: str = "") -> None:
        super().__init__(what)
        self.what = what
        self.fix = fix

    def one_line(self) -> str:
        return f"{self.what}" + (f" ({self.fix})" if self.fix else "")


class BadInput(RecoqueError):
    exit_code = 2


class DoesNotFit(RecoqueError):
    exit_code = 3


class WriteFailed(RecoqueError):
    """Results could not be written where asked (disk full, read-only, permission, a directory, a
    missing folder, or an existing file that holds more results). The caller keeps the results and
    saves them elsewhere; the exit code says the file the user named was not written."""

    exit_code = 4


class Interrupted(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP arrived (recoque.signals turns each into this). A KeyboardInterrupt,
    so every `except KeyboardInterrupt` that keeps partial results handles all three alike; the exit
    code is the shell's convention, 128 + the signal number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    @property
    def name(self) -> str:
        import signal

        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"


def interrupt_of(exc: BaseException) -> Interrupted:
    """A plain KeyboardInterrupt (Python's own SIGINT handler) is SIGINT."""
    import signal

    return exc if isinstance(exc, Interrupted) else Interrupted(int(signal.SIGINT))


def is_oom(exc: BaseException) -> bool:
    """Out of memory, from the host (MemoryError, an allocator's message) or the device
    (torch.OutOfMemoryError): the bench runner's to handle, a skip at this size with its one line;
    a kernel that probes what runs (SDPA backends) raises it rather than reading it as a refusal."""
    if isinstance(exc, MemoryError):
        return True
    msg = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and ("out of memory" in msg or "can't allocate memory" in msg))


def one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception's message on one line, whitespace collapsed, at most `limit` characters. A
    longer one keeps its head and its tail: NCCL and RCCL put where the call failed first and the
    cause last ('... unhandled system error ... Last error: ...'), so cutting only the end drops
    the part that says what to fix."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) <= limit:
        return text
    tail = limit // 2
    return text[: limit - tail - 5] + " ... " + text[-tail:]
