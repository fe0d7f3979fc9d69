"""Best public measurements (seeds/anchors.toml), to report '% of achievable' beside '% of peak'."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from recoque.errors import BadInput
from recoque.fileio import read_seed_toml


@dataclass(frozen=True)
class Anchor:
    device: str
    benchmark: str
    op: str | None
    dtype: str
    achieved: float  # in the record unit: TFLOP/s or GB/s
    unit: str
    source: str


@lru_cache(maxsize=1)
def load_anchors() -> tuple[Anchor, ...]:
    out = []
    for i, raw in enumerate(read_seed_toml("anchors.toml").get("anchors", [])):
        if "achieved_tflops" in raw:
            value, unit = raw["achieved_tflops"], "TFLOP/s"
        elif "achieved_gb_s" in raw:
            value, unit = raw["achieved_gb_s"], "GB/s"
        else:
            raise BadInput(f"anchors.toml entry {i}: no achieved_tflops or achieved_gb_s", "fix seeds/anchors.toml")
        out.append(Anchor(raw["device"], raw["benchmark"], raw.get("op"), raw["dtype"], float(value), unit, raw["source"]))
    return tuple(out)


def find_anchor(device_key: str | None, benchmark: str, op: str, dtype: str) -> Anchor | None:
    if not device_key:
        return None
    for a in load_anchors():
        if a.device == device_key and a.benchmark == benchmark and a.dtype == dtype and a.op in (None, op):
            return a
    return None
