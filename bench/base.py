"""The one small interface every benchmark implements (setup / run / verify), and its work count.

A `Case` is one measurement point: a kernel at one shape and dtype. The work per call (flops or
bytes) is declared by the kernel module as data; only the harness divides it by time.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Mapping


@dataclass(frozen=True)
class Work:
    """Work done by one call: flop_count for compute-bound kernels, bytes_moved for memory ones,
    kernel_count for the launch chain (whose figure is kernels per second)."""

    flop_count: int | None = None
    bytes_moved: int | None = None
    kernel_count: int | None = None

    @property
    def unit(self) -> str:
        if self.flop_count is not None:
            return "TFLOP/s"
        return "Mkernel/s" if self.kernel_count is not None else "GB/s"


@dataclass(frozen=True)
class Verification:
    ok: bool
    max_error: float  # the normalised error compared against `tolerance`
    tolerance: float
    worst_index: tuple[int, ...] = ()
    worst_got: float | None = None
    worst_expected: float | None = None
    what: str = ""  # which output was checked, e.g. "C rows 0..63" or "dq"

    def describe(self) -> str:
        where = f"{self.what} " if self.what else ""
        if not self.worst_index:  # a whole-block figure (the norm-wise check), no one element
            return f"{where}error {self.max_error:.3g} vs tolerance {self.tolerance:.3g}"
        return (f"{where}worst element at {list(self.worst_index)}: got {self.worst_got!r}, "
                f"expected {self.worst_expected!r} (error {self.max_error:.3g} vs tolerance {self.tolerance:.3g})")

    def to_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "max_error": self.max_error, "tolerance": self.tolerance,
                "worst_index": list(self.worst_index), "what": self.what}


class Unsupported(Exception):
    """This device/torch build cannot run the case (fp8 without _scaled_mm, tf32 on a CPU...)."""


class Case(ABC):
    benchmark: str = ""
    op: str = ""
    dtype: str = ""
    params: Mapping[str, Any] = {}
    tags: tuple[str, ...] = ()
    backend: str | None = None  # what actually ran (e.g. sdpa backend, "numba", "torch")

    @abstractmethod
    def work(self) -> Work: ...

    @abstractmethod
    def bytes_per_set(self) -> int:
        """Bytes of one input/output set: the harness rotates sets to evict the last-level cache."""

    @abstractmethod
    def setup(self, device: Any, n_sets: int, seed: int) -> None:
        """Allocate n_sets input sets of random normal data on the device (may raise OOM)."""

    def sets_used(self, n_sets: int) -> int:
        """How many of the n_sets offered setup really allocated (recorded as the rotation_sets tag);
        a case that never rotates (its one set outgrows the cache, or it measures launches) says 1."""
        return n_sets

    @abstractmethod
    def run(self, i: int) -> None:
        """One call on set i (0 <= i < n_sets). No timing, no sync here."""

    @abstractmethod
    def verify(self) -> Verification:
        """Run once and compare against a float64 reference on the CPU (or the numba path)."""

    def activate(self) -> None:
        """Re-apply the process-wide settings this case's timing depends on (the tf32 switch), right
        before each timed measurement: cases held across confirmation rounds are set up once, and
        another case's setup in between may have changed them. Default: nothing to apply."""

    def teardown(self) -> None:
        for k in list(vars(self)):
            if k.startswith("_"):
                setattr(self, k, None)

    def label(self) -> str:
        p = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.benchmark}/{self.op}/{self.dtype}[{p}]"


@dataclass
class CaseResultContext:
    """What the harness knows about a case besides its timing (filled by the runner)."""

    n_sets: int = 1
    notes: list[str] = field(default_factory=list)

