"""Host<->device and device-to-device copy bandwidth on one GPU (GPU only).

Sizes 64 MiB..1 GiB (TransferBench's default transfer is 64 MiB, nvbandwidth's buffer 512 MiB);
quick mode 256 MiB. Pinned host memory and non-blocking copies: see kernels/transfer.py for what
is counted (n bytes for h2d/d2h, 2n read+write for d2d). h2d_pageable and d2h_pageable copy from
and to pageable host memory, at 256 MiB only: the driver's staging copy sets their rate, not the
size (bandwidthTest's default transfer is 32 MB; 256 MiB is past any staging buffer). Each is its
own table row against the host link's peak, so the gap to the pinned row is what pinning buys.
"""
from __future__ import annotations

from typing import Any

import torch

from recoque.bench.base import Case, Verification, Work
from recoque.kernels.transfer import COUNTED, OPS, buffers, bytes_moved, copy, is_pinned

MiB = 2**20
FULL_SIZES = tuple(2**k * 64 * MiB for k in range(5))  # 64 MiB .. 1 GiB
QUICK_SIZES = (256 * MiB,)
PINNED_OPS = ("h2d", "d2h", "d2d")
PAGEABLE_OPS = ("h2d_pageable", "d2h_pageable")  # d2d has no host side
PAGEABLE_SIZE = 256 * MiB
SAMPLE = 1 << 20  # bytes compared when the buffer is larger than this
NO_GPU = "host<->device transfers need a GPU (run with --device gpu on a GPU node)"


def skip_reason(device: Any) -> str | None:
    return NO_GPU if device.kind == "cpu" else None


def cases(device: Any, quick: bool) -> list[Case]:
    """Every op at every size that leaves room on the device; [] on the CPU (see skip_reason)."""
    if skip_reason(device):
        return []
    sizes = QUICK_SIZES if quick else FULL_SIZES
    room = device.memory_bytes // 4 if device.memory_bytes else None  # d2d holds 2 buffers, plus rotation
    pinned = [TransferCase(op, n) for n in sizes if room is None or n <= room for op in PINNED_OPS]
    pageable = [TransferCase(op, PAGEABLE_SIZE) for op in PAGEABLE_OPS if room is None or PAGEABLE_SIZE <= room]
    return pinned + pageable


class TransferCase(Case):
    benchmark = "transfer"
    dtype = "bytes"

    def __init__(self, op: str, n_bytes: int) -> None:
        if op not in OPS:
            raise ValueError(f"unknown transfer {op!r}; expected one of {OPS}")
        self.op = op
        self.params = {"bytes": int(n_bytes), "pinned": is_pinned(op), "counted": COUNTED[op]}
        self.backend = "torch"
        self._sets: list[tuple[Any, Any]] | None = None
        self._device: Any = None

    @property
    def n_bytes(self) -> int:
        return int(self.params["bytes"])

    def work(self) -> Work:
        return Work(bytes_moved=bytes_moved(self.op, self.n_bytes))

    def bytes_per_set(self) -> int:
        return 2 * self.n_bytes  # source and destination

    def setup(self, device: Any, n_sets: int, seed: int) -> None:
        dev = self._device = torch.device(device.torch_device)
        self._sets = [buffers(self.op, self.n_bytes, dev, seed + k) for k in range(max(1, n_sets))]
        _sync(dev)

    def run(self, i: int) -> None:
        src, dst = self._sets[i % len(self._sets)]  # type: ignore[index]
        copy(src, dst)

    def verify(self) -> Verification:
        """Zero the destination, copy once, and compare the bytes (a random sample above 1 MiB)."""
        src, dst = self._sets[0]  # type: ignore[index]
        dst.zero_()
        self.run(0)
        _sync(self._device)
        if self.n_bytes <= SAMPLE:
            idx = torch.arange(self.n_bytes)
        else:
            gen = torch.Generator().manual_seed(4321)
            idx = torch.randint(0, self.n_bytes, (SAMPLE,), generator=gen)
            idx = torch.cat([idx, torch.tensor([0, self.n_bytes - 1])])  # both ends too
        want, got = (t[idx.to(t.device)].cpu() for t in (src, dst))
        return check_bytes(want, got, idx, what=f"{self.op} destination bytes")


def _sync(dev: Any) -> None:
    if dev.type != "cpu":  # (CPU tensors only in tests of the d2d path)
        torch.cuda.synchronize(dev)


def check_bytes(want: Any, got: Any, idx: Any, what: str) -> Verification:
    """Exact comparison: the error is the fraction of sampled bytes that differ."""
    if torch.equal(want, got):
        return Verification(True, 0.0, 0.0, what=what)
    bad = (want != got).nonzero().flatten()
    k = int(bad[0])
    return Verification(False, float(bad.numel()) / float(want.numel()), 0.0, worst_index=(int(idx[k]),),
                        worst_got=float(got[k]), worst_expected=float(want[k]), what=what)
