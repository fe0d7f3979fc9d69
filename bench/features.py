"""The oldest torch each optional feature needs, declared as data and checked once per process.

A case that needs a feature the installed torch lacks is skipped with the reason (`Unsupported`),
never crashed on a TypeError deep inside a sweep. Versions come from the sources named per entry.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from recoque.bench.base import Unsupported


@dataclass(frozen=True)
class Feature:
    name: str
    min_torch: tuple[int, int]
    what: str
    source: str


FEATURES = {f.name: f for f in (
    Feature("sdpa_enable_gqa", (2, 5), "scaled_dot_product_attention(enable_gqa=True) for GQA/MQA heads",
            "PyTorch docs, torch.nn.functional.scaled_dot_product_attention signature (enable_gqa, 2.5)"),
    Feature("sdpa_kernel", (2, 3), "torch.nn.attention.sdpa_kernel to pin one SDPA backend",
            "PyTorch 2.3 release (torch.backends.cuda.sdp_kernel deprecated for torch.nn.attention.sdpa_kernel)"),
    Feature("scaled_mm_out", (2, 4), "torch._scaled_mm(a, b, scale_a=, scale_b=, out=) returning one tensor",
            "pytorch/pytorch PR #128683 (June 2024, 'Remove amax return from _scaled_mm'), in the 2.4 "
            "release (ROCm/pytorch PR #1742 backports the matching test change to release/2.4)"),
    Feature("init_process_group_device_id", (2, 3), "init_process_group(device_id=) binding a rank to its GPU",
            "PyTorch distributed docs, init_process_group device_id (2.3); not re-read in this project's "
            "sources: treat as the brief's figure"),
)}


def parse_version(text: str) -> tuple[int, int]:
    """'2.5.1+rocm6.2' -> (2, 5); an unparsable string -> (0, 0), which fails every check loudly."""
    m = re.match(r"\s*(\d+)\.(\d+)", text or "")
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def torch_version() -> str:
    try:
        import torch
    except Exception:  # no torch at all: every torch feature is missing
        return "0.0"
    return str(torch.__version__)


@lru_cache(maxsize=None)
def check(name: str) -> str | None:
    """None when the installed torch has the feature, else the reason to skip (checked once)."""
    feature = FEATURES[name]
    have = parse_version(torch_version())
    if have >= feature.min_torch:
        return None
    need = ".".join(map(str, feature.min_torch))
    return f"{feature.what} needs torch >= {need}; this is torch {torch_version()}"


def require(name: str) -> None:
    """Raise Unsupported (the case is skipped with the reason) when the feature is missing."""
    reason = check(name)
    if reason is not None:
        raise Unsupported(reason)


def clear_cache() -> None:
    """Forget the checks (tests that fake the torch version)."""
    check.cache_clear()
