"""dtype names as people type them: recoque's short names, torch's spellings (float32, bfloat16,
float8_e4m3fn, torch.float16), numpy's (float64, double, half), case-insensitive, repeatable or
comma-separated. One function, `parse_dtypes`, used by every command that takes --dtype.
"""
from __future__ import annotations

from enum import Enum
from typing import Iterable

from recoque.errors import BadInput

CANONICAL = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8")


class DType(str, Enum):
    """The benchmark dtypes (help text and shell completion list these)."""

    fp64 = "fp64"
    fp32 = "fp32"
    tf32 = "tf32"
    bf16 = "bf16"
    fp16 = "fp16"
    fp8 = "fp8"


# fp8 is run as e4m3 in the flavour the device's matrix units take (e4m3fnuz on MI300, e4m3fn on
# MI350+/H100): both torch spellings name the same benchmark. e5m2 is not benchmarked (training
# gradients format) and is refused rather than silently measured as e4m3.
ALIASES = {
    "fp64": "fp64", "float64": "fp64", "f64": "fp64", "double": "fp64",
    "fp32": "fp32", "float32": "fp32", "f32": "fp32", "float": "fp32", "single": "fp32",
    "tf32": "tf32", "tensorfloat32": "tf32", "tensorfloat-32": "tf32",
    "bf16": "bf16", "bfloat16": "bf16",
    "fp16": "fp16", "float16": "fp16", "f16": "fp16", "half": "fp16",
    "fp8": "fp8", "float8": "fp8", "e4m3": "fp8", "fp8_e4m3": "fp8", "float8_e4m3fn": "fp8",
    "float8_e4m3fnuz": "fp8", "e4m3fn": "fp8", "e4m3fnuz": "fp8",
}


def parse_dtype(name: str) -> str:
    key = name.strip().lower()
    for prefix in ("torch.", "np.", "numpy."):
        if key.startswith(prefix):
            key = key[len(prefix):]
    if key in ALIASES:
        return ALIASES[key]
    raise BadInput(f"unknown dtype {name.strip()!r}",
                   f"use one of {', '.join(CANONICAL)} (torch names such as float32, bfloat16, float8_e4m3fn work too)")


def parse_dtypes(values: Iterable[str] | str | None) -> tuple[str, ...]:
    """Every --dtype value, each possibly a comma list, to canonical names in order, without repeats."""
    if values is None:
        return ()
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        for part in str(getattr(v, "value", v)).split(","):
            if not part.strip():  # `--dtype ''` or `bf16,,fp32`: a slip, not "every dtype"
                raise BadInput(f"--dtype {str(getattr(v, 'value', v))!r}: an empty dtype name",
                               f"name dtypes, e.g. --dtype bf16,fp32 (known: {', '.join(CANONICAL)})")
            d = parse_dtype(part)
            if d not in out:
                out.append(d)
    return tuple(out)


def completions(incomplete: str = "") -> list[str]:
    """Shell completion for --dtype: the short names first, then torch's spellings."""
    names = list(CANONICAL) + sorted(set(ALIASES) - set(CANONICAL))
    return [n for n in names if n.startswith(incomplete.lower())]
