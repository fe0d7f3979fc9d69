"""The two error kinds every command raises (style rule 6).

`BadInput`: the user gave something we cannot use (malformed file, unknown preset, negative count).
`DoesNotFit`: the input is well formed but the request is impossible (model does not fit in memory,
more GPUs than the system has). Plan searches count these instead of raising.
Both carry one line saying what went wrong and one hint saying how to fix it.
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
