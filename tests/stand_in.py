"""The attributes of bench/devices.Device that the benchmark cases read, for tests without a device."""
from __future__ import annotations

from dataclasses import dataclass

MiB = 2**20


@dataclass(frozen=True)
class StandIn:
    kind: str = "cpu"
    torch_device: str = "cpu"
    name: str = "stand-in"
    llc_bytes: int | None = 32 * MiB
    memory_bytes: int | None = 16 * 2**30
    compute_units: int | None = 2
