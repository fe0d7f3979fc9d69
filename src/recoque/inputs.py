"""The one validation layer: every user TOML (model/workload, system, named workloads), every results
JSON and every numeric command-line option passes here on its way in, and anything wrong becomes one
`BadInput` line naming the key, what was wrong and how to fix it.

A field is declared once, as data (`Field`): its kind (a count is a positive integer, a physical
quantity a finite positive number), bounds, whether it is required and whether `<key>_low` /
`<key>_high` may bracket it. NaN and infinity are refused everywhere a number enters. Unknown keys
are refused with a did-you-mean (`kv_head` -> `kv_heads`), so a typo never silently becomes a
default.

Known keys are derived, not listed by hand, so that adding a field in one place is enough: from the
dataclass a file becomes (`TransformerSpec`, `TrainingWorkload`, `SystemSpec` through its
`_NUMERIC` table) and from the keys the shipped seed files already use (a key one preset has is a
key every user file may have). `OVERRIDES` holds the few fields whose rule is narrower than their
type says (pue >= 1, a norm among two names).
"""
from __future__ import annotations

import difflib
import math
import re
import types
import typing
from dataclasses import MISSING, dataclass, fields
from functools import lru_cache
from typing import Any, Iterable, Mapping

from recoque.errors import BadInput


@dataclass(frozen=True)
class Field:
    """How one key is checked. kind: count (int > 0 unless min says otherwise), number, bool, text,
    texts (a list of text), table (free-form: sources, environment)."""

    kind: str
    required: bool = False
    min: float | None = None  # inclusive lower bound
    above: float | None = None  # exclusive lower bound
    max: float | None = None  # inclusive upper bound
    choices: tuple[str, ...] = ()
    ranged: bool = False  # <key>_low and <key>_high may bracket the value
    capped: bool = False  # a count in a user file or a flag: at most MAX_COUNT (not a results file's FLOPs)

    def describe(self) -> str:
        what = {"count": "an integer", "number": "a finite number", "bool": "true or false", "text": "text",
                "texts": "a list of text", "table": "a table"}[self.kind]
        if self.kind in ("count", "number"):
            if self.above == 0:
                what = what.replace("an integer", "a positive integer").replace("a finite number", "a finite positive number")
            elif self.above is not None:
                what += f" above {self.above:g}"
            elif self.min is not None:
                what += f" >= {self.min:g}" if self.min else ", not negative"
            if self.max is not None:
                what += f" and at most {self.max:,.0f}" if float(self.max).is_integer() else f" and at most {self.max:g}"
        if self.choices:
            what = f"one of {', '.join(self.choices)}"
        return what


COUNT = Field("count", above=0)
COUNT0 = Field("count", min=0)  # a count where 0 means "none" or "default"
POSITIVE = Field("number", above=0)
NONNEG = Field("number", min=0)
FRACTION = Field("number", above=0, max=1)
TEXT = Field("text")
BOOL = Field("bool")
TABLE = Field("table")
TEXTS = Field("texts")


def _number_ok(v: Any) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer beyond any float (10**400): no figure this tool reads
        return False


# Terminal control characters (C0 but tab and newline, DEL, C1): an escape sequence in a name or a
# note would recolour or rewrite the user's terminal when printed, markup or not.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def control_text(value: Any) -> str | None:
    """The first text inside `value` (a string, a list or a table, keys included) holding a control
    character, shown escaped; None when there is none."""
    if isinstance(value, str):
        return ascii(value) if _CONTROL.search(value) else None
    items = value.items() if isinstance(value, Mapping) else enumerate(value) if isinstance(value, (list, tuple)) else ()
    for k, v in items:
        bad = control_text(k) if isinstance(k, str) else None
        if bad or (bad := control_text(v)):
            return bad
    return None


def value_problem(value: Any, field: Field) -> str | None:
    """Why `value` does not satisfy `field` (None when it does)."""
    kind = field.kind
    if kind in ("text", "texts", "table") and (bad := control_text(value)):
        return f"holds a control character: {bad}"
    if kind in ("count", "number"):
        if not _number_ok(value):
            return f"must be {field.describe()}, got {value!r}"
        if kind == "count" and value != int(value):
            return f"must be {field.describe()}, got {value!r}"
        if kind == "count" and field.capped and field.max is None and value > MAX_COUNT:
            return f"must be {field.describe()}, got {value:.3g}, more than the {MAX_COUNT:,} any count may be"
        low_ok = (field.above is None or value > field.above) and (field.min is None or value >= field.min)
        if not low_ok or (field.max is not None and value > field.max):
            return f"must be {field.describe()}, got {value!r}"
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if kind == "text":
        if not isinstance(value, str):
            return f"must be text, got {value!r}"
        if field.choices and value not in field.choices:
            return f"must be one of {', '.join(field.choices)}, got {value!r}"
        return None
    if kind == "texts":
        ok = isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value)
        return None if ok else f"must be a list of text, got {value!r}"
    if kind == "table":
        return None if isinstance(value, Mapping) else f"must be a table, got {value!r}"
    raise ValueError(f"unknown field kind {kind!r}")  # our bug, not the user's


def closest(key: str, known: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(key, sorted(set(known)), n=1, cutoff=0.6)
    return close[0] if close else None


# A key in another unit than the one it resembles: renaming alone would keep the old numbers.
UNIT_SUFFIX_FACTORS = {("_ms", "_s"): "divide the values by 1,000", ("_us", "_s"): "divide the values by 1,000,000",
                       ("_ns", "_s"): "divide the values by 1e9", ("_kw", "_w"): "multiply the values by 1,000",
                       ("_w", "_kw"): "divide the values by 1,000", ("_mb", "_gb"): "divide the values by 1,000",
                       ("_tb", "_gb"): "multiply the values by 1,000"}


def unknown_key(key: str, known: Iterable[str], where: str, fix: str) -> BadInput:
    """`where: unknown key `kv_head` (rename it to `kv_heads`)`: the did-you-mean is the fix; a key
    that differs by its unit (`times_ms` for `times_s`) also says how to convert the numbers."""
    key, known = str(key), list(known)
    for (old, new), convert in UNIT_SUFFIX_FACTORS.items():
        stem = key[: -len(old)] if key.endswith(old) else None
        if stem and stem + new in known:
            return BadInput(f"{where}: unknown key `{key}`",
                            f"rename it to `{stem + new}` and {convert}: {old[1:]} -> {new[1:]}")
    near = closest(key, known)
    return BadInput(f"{where}: unknown key `{key}`", f"did you mean `{near}`? rename it" if near else fix)


def check_table(raw: Any, spec: Mapping[str, Field], where: str, fix: str,
                subtables: Mapping[str, Mapping[str, Field]] | None = None) -> None:
    """Check one TOML/JSON table against its spec: a table, no unknown key, every required key, every
    value of its kind and range, `_low <= _high`. Raises BadInput on the first problem."""
    subtables = subtables or {}
    if not isinstance(raw, Mapping):
        raise BadInput(f"{where}: must be a table, got {type(raw).__name__}", fix)
    known = set(spec) | set(subtables) | {f"{k}_{s}" for k, f in spec.items() if f.ranged for s in ("low", "high")}
    for key in raw:
        if isinstance(key, str) and _CONTROL.search(key):
            raise BadInput(f"{where}: key {ascii(key)} holds a control character", "remove it from the key")
        if key not in known:
            raise unknown_key(key, known, where, f"remove it; known keys: {', '.join(sorted(known))}")
    for key, field in spec.items():
        if field.required and key not in raw and not (field.ranged and f"{key}_low" in raw and f"{key}_high" in raw):
            raise BadInput(f"{where}: missing `{key}`", f"add it ({field.describe()}; the unit is in the key)")
        for k in (key, f"{key}_low", f"{key}_high") if field.ranged else (key,):
            if k in raw:
                problem = value_problem(raw[k], Field(**{**field.__dict__, "capped": True}))
                if problem:
                    raise BadInput(f"{where}: `{k}` {problem}", fix)
        lo, hi = raw.get(f"{key}_low"), raw.get(f"{key}_high")
        if field.ranged and lo is not None and hi is not None and lo > hi:
            raise BadInput(f"{where}: `{key}_low` {lo} is above `{key}_high` {hi}", "swap them")
    for key, sub in subtables.items():
        if key in raw:
            check_table(raw[key], sub, f"{where} [{key}]" if "[" not in where else f"{where[:-1]}.{key}]", fix)


# --- derived specs ----------------------------------------------------------------------------------

def _hints(cls: type) -> dict[str, Any]:
    import sys

    module = sys.modules[cls.__module__]
    return typing.get_type_hints(cls, vars(module))


def spec_from_dataclass(cls: type, rename: Mapping[str, str] = {}, skip: Iterable[str] = (),
                        optional: Iterable[str] = ()) -> dict[str, Field]:
    """A field per dataclass attribute: int -> count (0 allowed when the default is 0), float ->
    number, bool, str, a mapping -> table. Required when the dataclass has no default, unless named in
    `optional` (the loader fills it in)."""
    hints, out = _hints(cls), {}
    for f in fields(cls):
        if f.name in skip:
            continue
        tp = hints.get(f.name)
        base = {int: COUNT, float: POSITIVE, bool: BOOL, str: TEXT}.get(_strip_optional(tp))
        if base is None:
            base = TABLE if _is_mapping(tp) else TEXTS if _is_sequence(tp) else None
        if base is None:
            continue
        if base is COUNT and f.default == 0:
            base = COUNT0
        required = f.default is MISSING and f.default_factory is MISSING and f.name not in optional  # type: ignore[misc]
        out[rename.get(f.name, f.name)] = Field(**{**base.__dict__, "required": required})
    return out


def _strip_optional(tp: Any) -> Any:
    """`int | None` -> int (both spellings of a union)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    is_union = typing.get_origin(tp) in (typing.Union, getattr(types, "UnionType", None))
    return args[0] if is_union and len(args) == 1 else tp


def _is_mapping(tp: Any) -> bool:
    origin = typing.get_origin(_strip_optional(tp)) or _strip_optional(tp)
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _is_sequence(tp: Any) -> bool:
    origin = typing.get_origin(_strip_optional(tp))
    return origin in (tuple, list)


def _seed_keys(file: str, top: str, nested: str | None = None) -> dict[str, Field]:
    """Keys the shipped presets use, with a generic rule from their values: a number is finite and
    >= 0, text is text, a table is free-form. What a preset has, a user file may have."""
    from recoque.fileio import read_seed_toml

    out: dict[str, Field] = {}
    for entry in read_seed_toml(file).get(top, {}).values():
        table = entry.get(nested, {}) if nested else entry
        if not isinstance(table, Mapping):
            continue
        for k, v in table.items():
            if k in out:
                continue
            out[k] = NONNEG if _number_ok(v) else BOOL if isinstance(v, bool) else TEXT if isinstance(v, str) \
                else TEXTS if isinstance(v, list) else TABLE
    return out


# Narrower than the type says; keys in the TOML's spelling.
# Tokens to train, in a file as on the command line (--tokens): at most 1e15 (see FLAG_RULES["tokens"]).
TOKENS = Field("number", above=0, max=1e15, ranged=True)
# Link bandwidth per GPU, one direction, GB/s: at least 0.1 (below 1 Gb/s Ethernet, 0.125 GB/s, no GPU
# system is linked) and at most 100,000 (100 TB/s: five times the fastest HBM in seeds/hardware.toml,
# MI430X's 19.6 TB/s, and no link outruns its GPU's memory): outside that the value is a unit slip,
# not a network. The presets span 6.25-900.
LINK_GB_S = Field("number", min=0.1, max=1e5, ranged=True)
# Per hop, microseconds: at most 1,000 (1 ms; TCP over 1 GbE is about 50 us a hop): above it the value
# is milliseconds typed as microseconds. The presets span 0.25-10.
LATENCY_US = Field("number", above=0, max=1000.0, ranged=True)
# A node's power, kW, is bounded by 1,000 in OVERRIDES (1 MW: NVIDIA's Kyber NVL576 rack is announced at
# 600 kW; the presets span 0.7-135): above it the value is watts typed as kilowatts.
# Figures a system file may state about itself: above 0 (a 0 MW site made every energy and cost 0)
# and below what no machine reaches, a factor of ten or more beyond the largest stated today.
SYSTEM_FIGURES_MAX = {"site_power_mw": 1e5, "top500_power_kw": 1e6, "rmax_pflops": 1e5, "rpeak_pflops": 1e5,
                      "hpl_target_eflops": 1e2, "cumulative_peak_pflops": 1e5, "gflops_per_w": 1e3,
                      "gpus_installed": 2.0**40, "nodes_stated": 2.0**40, "investment_meur": 1e6,
                      "budget_eurohpc_meur": 1e6, "stated_h100_min": 2.0**40}
OVERRIDES: dict[str, dict[str, Field]] = {
    "model": {"norm": Field("text", choices=("layernorm", "rmsnorm")),
              "released_weights": Field("text", choices=("bf16", "fp8", "fp4")),
              "released_attention_weights": Field("text", choices=("bf16", "fp8", "fp4")),
              "released_kv_cache": Field("text", choices=("fp8", "fp4")),
              "released_fp4_format": Field("text", choices=("mxfp4", "nvfp4"))},
    # PUE: 1 is the floor by definition; above 3 no operating data centre reports (the Uptime Institute
    # Global Data Center Survey 2023 puts the average at 1.58): a typo, not a site.
    "system": {"pue": Field("number", min=1.0, max=3.0, ranged=True), "gpus": Field("count", above=0, max=2**40, ranged=True, required=True),
               # one count per node: a `_low`/`_high` was accepted and then read by nothing
               "gpus_per_node": Field("count", above=0, max=2**20, required=True), "device": Field("text", required=True),
               "intra_node_bandwidth_gb_s": LINK_GB_S, "inter_node_bandwidth_gb_s": LINK_GB_S,
               "intra_node_latency_us": LATENCY_US, "inter_node_latency_us": LATENCY_US,
               "node_power_kw": Field("number", above=0, max=1000.0, ranged=True),
               # a node's NICs, which its GPUs share (planner/train.py nic_share_bytes_s caps the
               # per-GPU inter-node figure at nics x rate / gpus_per_node); no preset needs them, as
               # each states its per-GPU figure from its NICs, so a user's file may say them apart
               "nics_per_node": Field("count", above=0, max=1024), "nic_bandwidth_gb_s": LINK_GB_S,
               **{k: Field("number", above=0, max=m) for k, m in SYSTEM_FIGURES_MAX.items()},
               "name": TEXT, "sources": TABLE, "notes": TEXTS},
    "workload": {"kind": Field("text", required=True, choices=("train", "infer", "hpl", "stencil")),
                 "target_tpot_ms": Field("number", above=0, ranged=True), "prompt_tokens": Field("count", above=0, ranged=True),
                 "output_tokens": Field("count", above=0, ranged=True), "train_tokens": TOKENS},
    # as TrainingWorkload checks them (planner/workload.py), said here with the file and the key
    "training": {"tokens_to_train": TOKENS, "lora_targets": Field("text", choices=("all", "attention")),
                 "lora_dropout": Field("number", min=0.0, max=0.99), "lora_rank": Field("count", min=0, max=2**20)},
}


def _merge(*specs: Mapping[str, Field]) -> dict[str, Field]:
    out: dict[str, Field] = {}
    for s in specs:
        out.update(s)
    return out


def _with_ranges(spec: Mapping[str, Field]) -> dict[str, Field]:
    """Seed keys named `<x>_low`/`<x>_high` become a ranged `<x>`."""
    out = dict(spec)
    for k in list(out):
        for suffix in ("_low", "_high"):
            base = k[: -len(suffix)]
            if k.endswith(suffix) and base in out:
                out.pop(k, None)
                out[base] = Field(**{**out[base].__dict__, "ranged": True})
    return out


@lru_cache(maxsize=1)
def model_spec() -> tuple[dict[str, Field], dict[str, Field]]:
    """(model table, its [training] subtable)."""
    from recoque.planner.workload import TrainingWorkload, TransformerSpec

    model = _merge(_seed_keys("models.toml", "models"),
                   spec_from_dataclass(TransformerSpec, rename={"seq_len": "seq_len_tokens"}, skip=("key",),
                                       optional=("name", "kv_heads", "gated_ffn")), OVERRIDES["model"])
    model.pop("training", None)
    training = _merge(_seed_keys("models.toml", "models", "training"),
                      spec_from_dataclass(TrainingWorkload, rename={"seq_len": "seq_len_tokens"}, skip=("model",)),
                      OVERRIDES["training"])
    return _with_ranges(model), _with_ranges(training)


@lru_cache(maxsize=1)
def system_spec() -> dict[str, Field]:
    from recoque.planner import system

    numeric = {k: Field("number", above=0, ranged=True) for k in getattr(system, "_NUMERIC", {})}
    required = {k: Field(**{**f.__dict__, "required": True}) for k, f in numeric.items()
                if k in getattr(system, "_REQUIRED", ())}
    return _with_ranges(_merge(_seed_keys("systems.toml", "systems"), numeric, required, OVERRIDES["system"]))


@lru_cache(maxsize=1)
def workload_spec() -> dict[str, Field]:
    spec = _merge(_seed_keys("workloads.toml", "workloads"), OVERRIDES["workload"],
                  {"name": TEXT, "model": TEXT, "sources": TABLE})
    return _with_ranges(spec)


# --- entry points the loaders call ---------------------------------------------------------------

def check_model(raw: Any, where: str) -> None:
    """A `[models.<key>]` table (user file or preset), with its optional [training] subtable."""
    model, training = model_spec()
    check_table(raw, model, where, "fix the model file; seeds/models.toml shows the layout", {"training": training})


def check_system(raw: Any, where: str) -> None:
    check_table(raw, system_spec(), where, "fix the system file; seeds/systems.toml shows the layout")
    most = max((raw.get(k) for k in ("gpus", "gpus_high") if raw.get(k) is not None), default=None)
    per_node = raw.get("gpus_per_node")
    if most is not None and per_node is not None and per_node > most:
        raise BadInput(f"{where}: `gpus_per_node` {per_node} is more than `gpus` {most:g}",
                       "gpus is the whole system's count; gpus_per_node one node's")


def check_workload(raw: Any, where: str) -> None:
    check_table(raw, workload_spec(), where, "fix the workload; seeds/workloads.toml shows the layout")


def check_single_table(data: Mapping[str, Any], top: str, path: str) -> tuple[str, Any]:
    """A user file holds exactly one `[<top>.<key>]` table and nothing else."""
    extra = [k for k in data if k != top]
    if extra:
        raise unknown_key(extra[0], [top], path, f"put everything under [{top}.<key>]")
    tables = data.get(top, {})
    if not isinstance(tables, Mapping) or len(tables) != 1:
        n = len(tables) if isinstance(tables, Mapping) else 0
        raise BadInput(f"{path}: expected exactly one [{top}.<key>] table, found {n}", f"see seeds/{top}.toml for the layout")
    key, table = next(iter(tables.items()))
    if _CONTROL.search(key):
        raise BadInput(f"{path}: [{top}.{ascii(key)}] holds a control character in its name", "rename the table")
    return key, table


# --- command-line numbers: one rule for every subcommand ------------------------------------------

# Option name (python spelling) -> rule; every other int/float option must be finite and > 0.
FLAG_RULES: dict[str, Field] = {
    "seed": Field("count", min=0, max=2**32 - 1),  # numpy's and torch's generators all take 32 bits
    # plan hpl --efficiency, plan infer --engine-efficiency: 0.05 lies far below every run in
    # seeds/top500.toml and seeds/serving_checks.toml, so no measured figure is refused; below it the
    # answer is no run at all (a 1e-100 efficiency overflowed the step model's overlap power).
    "efficiency": Field("number", min=0.05, max=1),
    "engine_efficiency": Field("number", min=0.05, max=1),
    "hbm_fraction": FRACTION,
    "lora_rank": COUNT0,
    "lora_dropout": Field("number", min=0, max=0.99),  # plan train: a dropout probability; 1 would drop every input
    "zero": Field("count", min=0, max=3),  # ZeRO stage 0-3
    "recompute_layers": Field("count", min=0, max=2**40),  # plan train: 0 = every layer of the stage (Megatron)
    "min_effect": Field("number", min=0, max=10),  # bench compare: a ratio beyond 11x is no "effect size"
    # plan infer latency targets: above an hour a target is no interactive latency (ttft 1e308 ms printed
    # a TTFT of billions of days); a request rate below one per ~3 hours falls under the model's
    # smallest batch and was answered at another load than the one asked.
    "ttft_ms": Field("number", above=0, max=3.6e6),
    "tpot_ms": Field("number", above=0, max=3.6e6),
    "request_rate": Field("number", min=1e-4),
    # plan train --tokens: 1e15 is 25x the largest published pre-training token count (Llama 4 Scout,
    # ~40T tokens, Meta's model card, April 2025); beyond it the day counts were hundreds of digits long.
    "tokens": Field("number", above=0, max=1e15),
    "length_cv2": Field("number", min=0, max=4),  # plan infer: 0 = fixed prompt/output lengths (issue 9)
    "output_cv2": Field("number", min=0, max=4),  # plan infer: the output lengths' own spread
    "spec_tokens": Field("count", min=0, max=16),  # plan infer: draft tokens per speculative step, 0 = none
    "spec_acceptance": Field("number", above=0, max=0.999),  # plan infer: chance one draft token is accepted
    # validate: the accepted mean/max relative error, a fraction (0.05 = 5%); above 1 nothing is ever refused
    "grid_points": Field("number", min=1),  # plan stencil: a grid has at least one point
    "threshold_mean": Field("number", above=0, max=1),
    "threshold_max": Field("number", above=0, max=1),
}
# No count, in a file or on the command line, is larger than this (2**40, about 1.1e12: GPUs, tokens,
# sequences, requests). Far above any real run, it keeps a 31-digit `--global-batch` out of a divisor
# search that never ends and 30-digit numbers out of the answers.
MAX_COUNT = 2**40
_ZERO_OK = ("seed", "warmup", "offset", "retries", "rank", "skip")


def flag_rule(name: str) -> Field:
    if name in FLAG_RULES:
        return FLAG_RULES[name]
    if any(w in name for w in _ZERO_OK):
        return NONNEG
    return POSITIVE


def flag_problem(name: str, value: Any) -> str | None:
    """Why a command-line number is unusable (NaN, inf, zero or negative where a quantity must be
    positive), as the message of a usage error; None when it is fine."""
    rule = flag_rule(name)
    if isinstance(value, bool):
        return None
    kind = "count" if isinstance(value, int) else "number"
    return value_problem(value, Field(kind, above=rule.above, min=rule.min, max=rule.max, capped=True))


def check_gpus(gpus: int | None, system: Any) -> None:
    """--gpus: a positive count no larger than the system has (the high end of a published range)."""
    if gpus is None:
        return
    if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus <= 0:
        raise BadInput(f"--gpus must be a positive count, got {gpus}", "pass a positive number of GPUs")
    high = max(float(getattr(system, "gpus", 0) or 0), float(getattr(system, "ranges", {}).get("gpus", (0, 0))[1]))
    if high and gpus > high:
        raise BadInput(f"--gpus {gpus:,} is more than the {high:,.0f} GPUs of system {getattr(system, 'key', '') or getattr(system, 'name', '?')}",
                       f"pass --gpus {int(high)} or fewer, or a system file with more GPUs")


# --- results files --------------------------------------------------------------------------------

SHAPE_PARAMS = frozenset({"m", "n", "k", "batch", "heads_q", "heads_kv", "head_dim", "seq_q", "seq_k",
                          "n_elements", "elem_bytes", "bytes", "world_size", "group_size", "kernels",
                          "experts", "top_k", "tokens"})
# The shape each benchmark's readers index (the work count, plots, CSV, the measured profile).
REQUIRED_PARAMS = {"gemm": ("m", "n", "k"), "moe": ("experts", "top_k", "tokens", "n", "k"),
                   "stream": ("n_elements",), "transfer": ("bytes",),
                   "collective": ("bytes",), "launch": ("kernels",)}
# A timing sample outside [1 ns, 1 day] is no measurement: perf_counter_ns and device events resolve
# no finer than a nanosecond, and no benchmark case runs for a day.
SAMPLE_RANGE_S = (1e-9, 86400.0)
# The device block: fields read as text (catalog matching, labels) and as non-negative numbers.
DEVICE_TEXT = ("kind", "torch_device", "name", "arch", "gfx_arch", "catalog_key", "catalog_status",
               "llc_source", "fp8_format", "vendor")
DEVICE_NUMBERS = ("llc_bytes", "memory_bytes", "compute_units")


@lru_cache(maxsize=1)
def _results_keys() -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str]]:
    """(document keys, record keys, required record keys, skip keys), from what the writer writes."""
    from recoque.bench.schema import Record, ResultsDocument, Skip

    rec = Record("gemm", "matmul", "fp32", {}, (1.0,), "TFLOP/s", flop_count=1)
    required = frozenset(f.name for f in fields(Record)
                         if f.default is MISSING and f.default_factory is MISSING)  # type: ignore[misc]
    doc = ResultsDocument({}, {}, ())
    return (frozenset(doc.to_json()), frozenset(rec.to_json()), required, frozenset(f.name for f in fields(Skip)))


def check_results(doc: Mapping[str, Any], origin: str) -> None:
    """A migrated (current-version) results document, every field: the layer under `load_results`."""
    top, rec_keys, rec_required, skip_keys = _results_keys()
    fix = "re-run `recoque bench --out`, or pass a file it wrote"
    _known(doc, top, origin, fix)
    for key, kind in (("environment", TABLE), ("device", TABLE), ("complete", BOOL), ("tool", TABLE),
                      ("command", TEXT), ("created_utc", TEXT), ("acceptance", TABLE)):
        if key in doc and value_problem(doc[key], kind):
            raise BadInput(f"{origin}: `{key}` {value_problem(doc[key], kind)}", fix)
    _check_device(doc.get("device", {}), f"{origin}: device", fix)
    _check_provenance(doc, origin, fix)
    _check_acceptance(doc.get("acceptance", {}), f"{origin}: acceptance", fix)
    for key in ("results", "skipped", "warnings", "sweeps", "summary"):
        if key in doc and not isinstance(doc[key], list):
            raise BadInput(f"{origin}: `{key}` must be a list, got {type(doc[key]).__name__}", fix)
    for i, rec in enumerate(doc.get("results", [])):
        _check_record(rec, f"{origin}: results[{i}]", rec_keys, rec_required, fix)
    for i, skip in enumerate(doc.get("skipped", [])):
        where = f"{origin}: skipped[{i}]"
        _known(skip, skip_keys, where, fix)
        for k in skip_keys:
            want = TABLE if k == "params" else TEXT
            if k not in skip or value_problem(skip[k], want):
                raise BadInput(f"{where}: `{k}` " + (value_problem(skip.get(k), want) or "is missing"), fix)
    for key in ("warnings", "sweeps", "summary"):  # summary: derived, checked for shape only, never read
        for i, w in enumerate(doc.get(key, [])):
            if not isinstance(w, Mapping):
                raise BadInput(f"{origin}: {key}[{i}] must be a table, got {w!r}", fix)
    for i, w in enumerate(doc.get("warnings", [])):  # bench.noise.NoiseWarning: the report ranks them by value
        for k, want in (("code", TEXT), ("case", TEXT), ("value", Field("number")), ("hint", TEXT)):
            if k in w and value_problem(w[k], want):
                raise BadInput(f"{origin}: warnings[{i}]: `{k}` {value_problem(w[k], want)}", fix)


DEVICE_KINDS = ("cuda", "rocm", "cpu")  # bench/devices.Device.kind


def _check_provenance(doc: Mapping[str, Any], origin: str, fix: str) -> None:
    """What only the harness writes: its own name, a UTC timestamp, a device kind it knows."""
    from datetime import datetime

    tool = doc.get("tool", {})
    if tool.get("name", "recoque") != "recoque":
        raise BadInput(f"{origin}: tool.name is {tool['name']!r}; only recoque's own results files are read", fix)
    kind = doc.get("device", {}).get("kind")
    if kind is not None and kind not in DEVICE_KINDS:
        raise BadInput(f"{origin}: device.kind {kind!r} is not one of {', '.join(DEVICE_KINDS)}", fix)
    stamp = doc.get("created_utc")
    if stamp:
        try:
            datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            raise BadInput(f"{origin}: created_utc {stamp!r} is not an ISO 8601 time (2026-12-04T15:36:51+00:00)", fix) from None


def _check_device(dev: Mapping[str, Any], where: str, fix: str) -> None:
    for k in DEVICE_TEXT:
        if dev.get(k) is not None and not isinstance(dev[k], str):
            raise BadInput(f"{where}.{k} must be text, got {dev[k]!r}", fix)
    for k in DEVICE_NUMBERS:
        if dev.get(k) is not None and value_problem(dev[k], NONNEG):
            raise BadInput(f"{where}.{k} {value_problem(dev[k], NONNEG)} (or null)", fix)


def _check_acceptance(acc: Mapping[str, Any], where: str, fix: str) -> None:
    """`bench accept`'s verdict as it writes it: {} (not judged) or passed + a list of checks."""
    if not acc:
        return
    if not isinstance(acc.get("passed"), bool):
        raise BadInput(f"{where}.passed must be true or false, got {acc.get('passed')!r}", fix)
    checks = acc.get("checks", [])
    if not isinstance(checks, list) or not all(isinstance(c, Mapping) for c in checks):
        raise BadInput(f"{where}.checks must be a list of tables", fix)


def _check_telemetry(tel: Mapping[str, Any], where: str, fix: str) -> None:
    """Per-metric tables of numbers (clock_mhz, power_w, temp_c: min/median/mean/max/n); every other
    entry one scalar (source, energy_j, throttled...)."""
    from recoque.bench.telemetry import METRICS

    for k, v in tel.items():
        if k in METRICS:
            if not isinstance(v, Mapping) or any(x is not None and not _number_ok(x) for x in v.values()):
                raise BadInput(f"{where}.{k} must be a table of finite numbers (min, median, mean, max, n), "
                               f"got {v!r}", fix)
        elif v is not None and not isinstance(v, (str, bool)) and not _number_ok(v):
            raise BadInput(f"{where}.{k} must be a number, text or true/false, got {v!r}", fix)


def _known(raw: Any, known: frozenset[str], where: str, fix: str) -> None:
    if not isinstance(raw, Mapping):
        raise BadInput(f"{where}: must be a JSON object, got {type(raw).__name__}", fix)
    for key in raw:
        if key not in known:
            raise unknown_key(key, known, where, fix)


def _check_record(rec: Any, where: str, known: frozenset[str], required: frozenset[str], fix: str) -> None:
    _known(rec, known, where, fix)
    for k in sorted(required):
        if k not in rec:
            raise BadInput(f"{where}: missing `{k}`", fix)
    checks: dict[str, Field] = {"benchmark": TEXT, "op": TEXT, "dtype": TEXT, "unit": TEXT, "params": TABLE,
                                "verified": BOOL, "verify": TABLE, "telemetry": TABLE, "tags": TEXTS, "timer": TEXT}
    for k, f in checks.items():
        if k in rec and value_problem(rec[k], f):
            raise BadInput(f"{where}: `{k}` {value_problem(rec[k], f)}", fix)
    from recoque.bench.schema import UNITS

    if rec["unit"] not in UNITS:
        raise BadInput(f"{where}: unknown unit {rec['unit']!r}", f"use one of {sorted(UNITS)}, or {fix}")
    times = rec["times_s"]
    if not isinstance(times, list) or not times:
        raise BadInput(f"{where}: `times_s` must be a non-empty list of seconds", fix)
    lo, hi = SAMPLE_RANGE_S
    for t in times:
        if value_problem(t, POSITIVE) or not lo <= t <= hi:
            raise BadInput(f"{where}: `times_s` holds {t!r}; every sample must be a finite positive time "
                           f"between {lo:g} s and {hi:g} s", fix)
    if "telemetry" in rec:
        _check_telemetry(rec["telemetry"], f"{where}: telemetry", fix)
    for tag in rec.get("tags", ()):
        if _tag_problem(tag):
            raise BadInput(f"{where}: tag {tag!r} {_tag_problem(tag)}", fix)
    missing = [k for k in REQUIRED_PARAMS.get(str(rec["benchmark"]), ()) if k not in rec["params"]]
    if missing:
        raise BadInput(f"{where}: a {rec['benchmark']} record needs params {', '.join(missing)}", fix)
    for k in ("flop_count", "bytes_moved", "kernel_count"):
        if rec.get(k) is not None and value_problem(rec[k], COUNT):
            raise BadInput(f"{where}: `{k}` {value_problem(rec[k], COUNT)}", fix)
    from recoque.bench.schema import WORK_FIELD

    work_key = WORK_FIELD[rec["unit"]]  # what the harness divides by time
    if not rec.get(work_key):
        raise BadInput(f"{where}: a record in {rec['unit']} needs `{work_key}` (the work per call), and has none", fix)
    for k in ("peak", "achieved", "fraction_of_peak"):
        if rec.get(k) is not None and value_problem(rec[k], POSITIVE):
            raise BadInput(f"{where}: `{k}` {value_problem(rec[k], POSITIVE)} (or null)", fix)
    for k in ("peak_source", "backend"):
        if rec.get(k) is not None and not isinstance(rec[k], str):
            raise BadInput(f"{where}: `{k}` must be text or null, got {rec[k]!r}", fix)
    for k, v in dict(rec["params"]).items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(k)):  # the kernels name their params in snake case
            raise BadInput(f"{where}: params key {k!r} is no parameter name (lower-case letters, digits, _)", fix)
        rule = COUNT if k in SHAPE_PARAMS else NONNEG
        if isinstance(v, (bool, str)) or v is None or isinstance(v, (list, dict)):
            if k in SHAPE_PARAMS:
                raise BadInput(f"{where}: params.{k} must be a positive integer, got {v!r}", fix)
            continue
        if value_problem(v, rule):
            raise BadInput(f"{where}: params.{k} {value_problem(v, rule)}", fix)
    _check_labels_and_work(rec, where, fix)


# The tags that carry a value (bench/headline.py, bench/schema.py SDPA_TAG_PREFIX): read as numbers later,
# so checked here, where the file enters.
_VALUE_TAGS = {"confirm_round:": re.compile(r"[1-9][0-9]*/[1-9][0-9]*"),
               "other_cpu_cores:": re.compile(r"[0-9]+(\.[0-9]+)?"),
               "sdpa_backend_median_s:": re.compile(r"[A-Za-z0-9_]+=([0-9.eE+-]+|nan|inf)")}


def _tag_problem(tag: str) -> str | None:
    for prefix, form in _VALUE_TAGS.items():
        if tag.startswith(prefix) and not form.fullmatch(tag[len(prefix):]):
            return f"is not of the form {prefix}{form.pattern}"
    return None


# kernels/transfer.py OPS, written out: that module imports torch, which reading a file must not need
TRANSFER_OPS = ("h2d", "d2h", "d2d", "h2d_pageable", "d2h_pageable")


def _record_ops() -> dict[str, tuple[str, ...]]:
    """The op names each benchmark (bench/schema.py BENCHMARKS) writes: the kernels' own lists where
    they import without torch; gemm's from bench/gemm.py, attention's from bench/attention.py (and
    'sdpa' from files written before it split forward and backward), transfer's as kernels/transfer.py lists them (TRANSFER_OPS)."""
    from recoque.kernels import collectives, launch, moe, stream

    return {"gemm": ("matmul", "scaled_mm"), "attention": ("sdpa", "sdpa_fwd", "sdpa_bwd"),
            "moe": moe.OPS, "stream": stream.OPS,
            "launch": launch.OPS, "transfer": TRANSFER_OPS, "collective": collectives.OPS}


def _check_labels_and_work(rec: Mapping[str, Any], where: str, fix: str) -> None:
    """What the harness writes and nothing else: a verified record (a failed check goes to `skipped`),
    a benchmark and dtype it knows, and the work per call as the kernel counts it (kernels/gemm.py,
    kernels/stream.py). A hand-edited `bytes_moved` or label would change every rate read from it."""
    from recoque.kernels import gemm as G, moe as M, stream as S

    verify = rec.get("verify") if isinstance(rec.get("verify"), Mapping) else {}
    if rec.get("verified") is not True or verify.get("ok") is False:  # absent reads as unverified, refused alike
        said = "does not say it was verified (no `verified`)" if "verified" not in rec else "failed verification"
        raise BadInput(f"{where}: the record {said}; a result counts only if its kernel was verified (verified true)",
                       "drop the record, or " + fix)
    bench, dtype, p, known = rec["benchmark"], rec["dtype"], rec["params"], _record_ops()
    if bench not in known:
        raise BadInput(f"{where}: unknown benchmark {bench!r}", f"one of {', '.join(known)}; or {fix}")
    if bench in ("stream", "launch") and rec["op"] not in known[bench]:  # the op sets the work of a call
        raise BadInput(f"{where}: unknown {bench} op {rec['op']!r}", f"one of {', '.join(known[bench])}; or {fix}")
    dtypes = G.DTYPES + ("bytes", "u8")  # the GEMM kernel's dtypes (the suite's too), and transfers' units
    if dtype not in dtypes:
        raise BadInput(f"{where}: unknown dtype {dtype!r}", f"one of {', '.join(dtypes)}; or {fix}")
    want = None
    if bench == "gemm" and all(_number_ok(p.get(k)) for k in "mnk"):
        want = ("flop_count", G.flop_count(int(p["m"]), int(p["n"]), int(p["k"])))
    elif bench == "moe" and all(_number_ok(p.get(k)) for k in ("tokens", "top_k", "n", "k")):
        if _number_ok(p.get("experts")) and p["top_k"] > p["experts"]:  # each token picks distinct experts
            raise BadInput(f"{where}: params.top_k {p['top_k']!r} is more than params.experts {p['experts']!r}", fix)
        want = ("flop_count", M.flop_count(int(p["tokens"]), int(p["top_k"]), int(p["n"]), int(p["k"])))
    elif bench == "stream":
        if dtype not in S.ELEM_BYTES:
            raise BadInput(f"{where}: a stream record is in {' or '.join(S.ELEM_BYTES)}, got {dtype!r}", fix)
        if p.get("elem_bytes", S.ELEM_BYTES[dtype]) != S.ELEM_BYTES[dtype]:
            raise BadInput(f"{where}: params.elem_bytes {p['elem_bytes']!r} is not {S.ELEM_BYTES[dtype]} for {dtype}", fix)
        if _number_ok(p.get("n_elements")):
            want = ("bytes_moved", S.bytes_moved(rec["op"], int(p["n_elements"]), S.ELEM_BYTES[dtype]))
    elif bench == "launch" and _number_ok(p.get("kernels")):
        want = ("kernel_count", int(p["kernels"]))  # one kernel per add of the chain (kernels/launch.py)
    if want and rec.get(want[0]) is not None and rec[want[0]] != want[1]:
        raise BadInput(f"{where}: `{want[0]}` is {rec[want[0]]!r}, but the kernel's count for these params is "
                       f"{want[1]:,}", fix)


def check_rates_below_peak(doc: Any, origin: str) -> None:
    """Reading a results file for its figures (report, bench compare): no record above the acceptance
    ceiling of its own stated peak (seeds/acceptance.toml ceiling_fraction_of_peak); `bench accept`
    judges the same rule as a FAIL line instead."""
    from recoque.bench.accept import load_policy

    ceiling = load_policy().ceiling_fraction
    for i, r in enumerate(doc.results):
        if r.peak and r.achieved > ceiling * r.peak:
            raise BadInput(f"{origin}: results[{i}] {r.benchmark} {r.op} {r.dtype}: {r.achieved:.4g} {r.unit} is "
                           f"{r.achieved / r.peak:.3g} x the record's peak {r.peak:.4g} (at most {ceiling:g} x)",
                           "only a timing, work-count or label error gives this: re-run `recoque bench --out`")


# --- a measured profile meets a system ---------------------------------------------------------------

def profile_mismatch(device: Mapping[str, Any], system_device: str) -> str | None:
    """Why a results file's device is not the system's (None when it is): the CPU case says so."""
    from recoque.catalog import match_device

    name = str(device.get("name", "") or "an unnamed device")
    if str(device.get("kind", "")).lower() == "cpu":
        return f"this profile is for a CPU ({name}), not {system_device}"
    found = match_device(name, device.get("gfx_arch") or device.get("arch"))
    if found is None:
        return f"this profile is for {name}, which the hardware catalog does not know, not {system_device}"
    if found.key != system_device:
        return f"this profile is for {found.key} ({name}), not {system_device}"
    return None


def check_profile_device(device: Mapping[str, Any], system_device: str, path: str, anyway: bool) -> str | None:
    """Refuse a profile from another device unless `anyway`; then return the mark every output carries."""
    why = profile_mismatch(device, system_device)
    if why is None:
        return None
    if not anyway:
        raise BadInput(f"{path}: {why}", f"pass a results file measured on {system_device}, or --profile-anyway "
                                         "to use it regardless; every output is then marked")
    return f"PROFILE FROM ANOTHER DEVICE (--profile-anyway): {path}: {why}; its measured rates stand in for {system_device}'s"


PROFILE_BENCHMARKS = ("gemm", "stream", "attention", "collective", "launch")  # what a measured profile reads


def check_profile_rates(doc: Any, origin: str) -> None:
    """A results file about to become a measured profile: it must hold a verified figure a profile
    reads (GEMM, STREAM, attention, collective), and no GEMM or STREAM figure above the acceptance
    ceiling of the datasheet peak of the device it was measured on (seeds/acceptance.toml
    ceiling_fraction_of_peak): only a timing, work-count or labelling error produces one."""
    from recoque.bench.accept import load_policy
    from recoque.catalog import match_device

    if not any(r.verified and r.benchmark in PROFILE_BENCHMARKS for r in doc.results):
        raise BadInput(f"{origin}: no verified {', '.join(PROFILE_BENCHMARKS)} result to build a measured profile from",
                       "pass a file written by `recoque bench all --quick` (or `bench gemm` / `bench stream`)")
    dev = doc.device
    spec = match_device(str(dev.get("name", "")), dev.get("gfx_arch") or dev.get("arch"))
    if spec is None:  # a device the catalog does not know: no datasheet to hold the figures to
        return
    ceiling = load_policy().ceiling_fraction
    for r in (r for r in doc.results if r.verified and r.benchmark in ("gemm", "stream")):
        if r.benchmark == "gemm":
            rng = spec.peak_range(r.dtype)
            peak, what = (rng[1] if rng else None), f"{r.dtype} peak"
            rate = r.achieved * 1e12
        else:
            peak, what, rate = spec.hbm_bandwidth_bytes_s, "memory bandwidth", r.achieved * 1e9
        if peak and rate > ceiling * peak:
            raise BadInput(f"{origin}: {r.benchmark} {r.op} {r.dtype} measured {rate / peak:.1f} x the {spec.key} "
                           f"datasheet {what}, above the {ceiling:g} x that any real measurement stays under",
                           "re-run `recoque bench` on this device: the file's times, work counts or labels are wrong")
