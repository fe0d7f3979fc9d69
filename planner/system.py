"""System spec: which device, how many, how they are wired and powered. Base units inside.

TOML (seeds/systems.toml or a user file) carries units in its keys:
    [systems.<key>]
    name = "..."
    device = "mi430x"                    # key in seeds/hardware.toml
    gpus = 2048                           # or gpus_low / gpus_high when unpublished
    gpus_per_node = 4
    intra_node_bandwidth_gb_s = 450       # per GPU, one direction, inside a node
    inter_node_bandwidth_gb_s = 50        # per GPU, one direction, across nodes (NIC)
    intra_node_latency_us = 0.43
    inter_node_latency_us = 5
    node_power_kw = 4.5                   # optional, with _low/_high
    gpu_power_limit_w = 500               # optional: a power cap below the device's board power
    pue = 1.1                             # optional, with _low/_high
    [systems.<key>.sources]  field = "where it comes from"
Any numeric field may carry `<field>_low` and `<field>_high`; the plain value is the central one
(when it is missing, the geometric mean of the bounds).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Mapping

from recoque.errors import BadInput
from recoque.estimate import Estimate
from recoque.fileio import read_seed_toml
from recoque.names import resolve_key, unknown_hint
from recoque.planner import allreduce_table, power

# Field specs (src/recoque/inputs.py derives its checks from these two tables and from the keys the
# shipped presets use): every key of _NUMERIC is a finite number above 0 and may carry `_low`/`_high`;
# _REQUIRED must be present (plus `gpus` or both `gpus_low` and `gpus_high`); `pue` is >= 1;
# `gpus_per_node` a positive integer. Anything else must be a key some preset in seeds/systems.toml
# already uses (rmax_pflops, site_power_mw, top500_machine, ...), or it is refused with a did-you-mean.
# TOML key -> (attribute, scale to base unit, base unit)
_NUMERIC = {
    "gpus": ("gpus", 1.0, "gpu"),
    "gpus_per_node": ("gpus_per_node", 1.0, "gpu"),
    "intra_node_bandwidth_gb_s": ("intra_node_bandwidth_bytes_s", 1e9, "bytes/s"),
    "inter_node_bandwidth_gb_s": ("inter_node_bandwidth_bytes_s", 1e9, "bytes/s"),
    "intra_node_latency_us": ("intra_node_latency_s", 1e-6, "s"),
    "inter_node_latency_us": ("inter_node_latency_s", 1e-6, "s"),
    "node_power_kw": ("node_power_w", 1e3, "W"),
    "pue": ("pue", 1.0, "1"),
    "gpu_power_limit_w": ("gpu_power_limit_w", 1.0, "W"),
}
# The link bandwidths are optional: an HPL-only system file (device, GPUs, power) needs none; a command
# that does need one (train, infer across GPUs, stencil, HPCG) says which key to add (SystemSpec.known).
_REQUIRED = ("device", "gpus_per_node")
# Per ring hop of the TP all-reduce model where a system file states none: the graph-replay figure
# every node preset in seeds/systems.toml cites (node-8x-h100: an 8-GPU small-message all-reduce in
# about 6 us over 14 hops), so an unstated system and the H100 reference of the delivered
# equivalents are charged alike (a 3 us default once made one 8x H100 node 9.4 H100-equivalents).
_DEFAULTS = {"intra_node_latency_us": 0.43, "inter_node_latency_us": 5.0}
# and the range those presets state for it (0.25: the fastest custom all-reduce kernel less a launch;
# 1.2: RCCL without graph replay), so an unstated node is as uncertain as a stated one: an 8x H100
# system without the key once came out at 0.99-1.05 H100-equivalents per GPU of the H100 reference
_DEFAULT_RANGES = {"intra_node_latency_us": (0.25, 1.2)}
DEFAULT_GRID = "france"   # the documents' country: a system that names no grid is on it (planner/energy.py)


@dataclass(frozen=True)
class SystemSpec:
    key: str
    name: str
    device: str
    gpus: float
    gpus_per_node: int
    intra_node_bandwidth_bytes_s: float | None = None  # None: unknown (not in the system file)
    inter_node_bandwidth_bytes_s: float | None = None
    intra_node_latency_s: float = 0.43e-6
    inter_node_latency_s: float = 5e-6
    node_power_w: float | None = None
    pue: float | None = None
    gpu_power_limit_w: float | None = None  # None: the device's own board power (no cap)
    ranges: Mapping[str, tuple[float, float]] = field(default_factory=dict)  # attribute -> (low, high)
    sources: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # other keys from the TOML, units in names

    @property
    def nodes(self) -> float:
        return self.gpus / self.gpus_per_node

    @property
    def in_one_node(self) -> bool:
        """Every GPU in one node at every end of the count: a halo or reduction stays on the scale-up links."""
        return self.gpus <= self.gpus_per_node and "gpus" not in self.ranges

    def estimate(self, attr: str, unit: str = "") -> Estimate:
        """The attribute as an Estimate with its published range (exact when none)."""
        v = self.known(attr)
        lo, hi = self.ranges.get(attr, (v, v))
        return Estimate(float(v), float(lo), float(hi), unit, (self.range_note(attr),) if lo != hi else ())

    def range_note(self, attr: str) -> str:
        """'alice-recoque node_power_kw 4.5..7.5: <source>': the range in the file's own key and unit."""
        key, scale = next(((k, sc) for k, (a, sc, _u) in _NUMERIC.items() if a == attr), (attr, 1.0))
        lo, hi = self.ranges[attr]
        src = self.sources.get(key) or self.sources.get(attr, "")
        return f"{self.key} {key} {lo / scale:.4g}..{hi / scale:.4g}" + (f": {src}" if src else "")

    def known(self, attr: str) -> float:
        """The attribute's value; BadInput naming the TOML key to add when the system file left it out."""
        v = getattr(self, attr)
        if v is None:
            key = next((k for k, (a, _s, _u) in _NUMERIC.items() if a == attr), attr)
            raise BadInput(f"system {self.key}: `{key}` is unknown and this command needs it",
                           f"add `{key}` to the system file for {self.key}")
        return v

    def with_gpus(self, gpus: int) -> "SystemSpec":
        """This system with a GPU count given: the file's notes on how its own count was derived
        (`gpus_notes`) no longer apply."""
        r = {k: v for k, v in self.ranges.items() if k != "gpus"}
        derived = set(self.extra.get("gpus_notes", ()))
        # the count the system has, for advice that would otherwise say "a larger system" to a --gpus limit
        extra = {**self.extra, "gpus_of_system": self.extra.get("gpus_of_system", self.ranges.get("gpus", (0, self.gpus))[1])}
        return replace(self, gpus=float(gpus), ranges=r, extra=extra,
                       notes=tuple(n for n in self.notes if n not in derived))

    def with_grid(self, grid: str | None) -> "SystemSpec":
        """This system priced and counted on another grid (the --grid flag); unchanged without one.
        What the site states of its own supply (`supply_note`) stays only on the site's own grid."""
        if grid is None:
            return self
        grid = grid_key(grid, "--grid", "leave --grid out for the site's own grid")
        own = self.extra.get("grid", DEFAULT_GRID)
        extra = {k: v for k, v in self.extra.items() if k != "supply_note" or own == grid}
        return replace(self, extra={**extra, "grid": grid})


# Per-GPU quantities a package's shown GPUs split between them (counts multiply instead).
_SPLIT = ("intra_node_bandwidth_bytes_s", "inter_node_bandwidth_bytes_s", "gpu_power_limit_w")


def as_shown(system: SystemSpec) -> SystemSpec:
    """The system as the frameworks see it: a package ROCm shows as k GPUs (an MI250X is two GCDs,
    each its own torch device and RCCL rank) becomes k GPUs of the shown device, with k times the
    count per node and 1/k of each per-GPU link and power cap (the GCDs of a package share its NIC:
    one 200 Gb/s Slingshot NIC per MI250X on Frontier is 12.5 GB/s per GCD). Training and serving
    plans place ranks on these GPUs; HPL, HPCG and the TOP500 count packages and keep the file's view.
    Unchanged for a device shown as itself."""
    from recoque.catalog import get_device_spec, load_catalog

    spec = load_catalog().get(system.device)  # None: a validation-only device, shown as itself
    if spec is None or spec.shown_as is None:
        return system
    k, shown = spec.shown_per_package, get_device_spec(spec.shown_as)
    ranges = {a: ((lo * k, hi * k) if a == "gpus" else (lo / k, hi / k) if a in _SPLIT else (lo, hi))
              for a, (lo, hi) in system.ranges.items()}
    split = {a: getattr(system, a) / k for a in _SPLIT if getattr(system, a) is not None}
    note = (f"{system.key}: each {spec.name.split(' (')[0]} is {k} GPUs to ROCm ({shown.key}): the file's "
            f"{system.gpus:,.0f} packages, {system.gpus_per_node} per node, are planned as {system.gpus * k:,.0f} GPUs, "
            f"{system.gpus_per_node * k} per node, each with 1/{k} of a package's links and power; --gpus and "
            f"--power-limit-w count these GPUs")
    return replace(system, device=shown.key, gpus=system.gpus * k, gpus_per_node=system.gpus_per_node * k,
                   ranges=ranges, notes=(*system.notes, note), **split)


def _number(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    if key not in raw:
        return None
    v = raw[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadInput(f"{where}: `{key}` must be a number, got {v!r}", "fix the system file")
    if v < 0:
        raise BadInput(f"{where}: `{key}` must not be negative, got {v}", "fix the system file")
    return float(v)


def system_from_toml(key: str, raw: Mapping[str, Any], origin: str = "systems.toml") -> SystemSpec:
    where = f"{origin} [systems.{key}]"
    if not isinstance(raw, Mapping):
        raise BadInput(f"{where}: must be a table", "see seeds/systems.toml for the layout")
    from recoque import inputs   # the one validation layer: unknown keys, NaN/inf, zero or negative quantities

    inputs.check_system(raw, where)
    for req in _REQUIRED:
        if req not in raw:
            raise BadInput(f"{where}: missing `{req}`", "add it (units are in the key name; see seeds/systems.toml)")
    if "gpus" not in raw and not ("gpus_low" in raw and "gpus_high" in raw):
        raise BadInput(f"{where}: missing `gpus` (or `gpus_low` and `gpus_high`)", "add the GPU count")
    values: dict[str, float] = {}
    ranges: dict[str, tuple[float, float]] = {}
    for tkey, (attr, scale, _unit) in _NUMERIC.items():
        v = _number(raw, tkey, where)
        lo, hi = _number(raw, f"{tkey}_low", where), _number(raw, f"{tkey}_high", where)
        if v is None and tkey in _DEFAULTS:
            v = _DEFAULTS[tkey]
            if lo is None and hi is None and tkey in _DEFAULT_RANGES:
                lo, hi = _DEFAULT_RANGES[tkey]
        if (lo is None) != (hi is None) and tkey != "gpu_power_limit_w":  # one bound alone is no range:
            # dropping it would hide a typo (a power limit's bounds are refused below, as no range at all)
            given = f"{tkey}_low" if lo is not None else f"{tkey}_high"
            raise BadInput(f"{where}: `{given}` without its other bound", f"give both `{tkey}_low` and `{tkey}_high`, or neither")
        if lo is not None and hi is not None:
            if lo > hi:
                raise BadInput(f"{where}: `{tkey}_low` {lo} is above `{tkey}_high` {hi}", "swap them")
            ranges[attr] = (lo * scale, hi * scale)
            if v is not None and not lo <= v <= hi:
                raise BadInput(f"{where}: `{tkey}` {v:g} is outside its own range {lo:g}..{hi:g}",
                               f"make `{tkey}_low` <= `{tkey}` <= `{tkey}_high`")
            if v is None:
                v = (lo * hi) ** 0.5 if lo > 0 else (lo + hi) / 2
        if v is not None:
            values[attr] = v * scale
    if values["gpus"] <= 0 or values["gpus_per_node"] <= 0:
        raise BadInput(f"{where}: `gpus` and `gpus_per_node` must be positive", "fix the counts")
    known = set(_NUMERIC) | {f"{k}_{s}" for k in _NUMERIC for s in ("low", "high")} | {"device", "name", "sources", "notes"}
    extra = {k: v for k, v in raw.items() if k not in known}
    if "allreduce_measured" in extra:
        extra["allreduce_measured"] = allreduce_table.parse(extra["allreduce_measured"], where)
    if "grid" in extra:
        extra["grid"] = grid_key(extra["grid"], where)
    if "top500_machine" in extra:
        _check_top500_machine(extra["top500_machine"], where)
    spec = SystemSpec(
        key=key, name=str(raw.get("name", key)), device=_device_key(str(raw["device"])),
        gpus=values["gpus"], gpus_per_node=int(values["gpus_per_node"]),
        intra_node_bandwidth_bytes_s=values.get("intra_node_bandwidth_bytes_s"),
        inter_node_bandwidth_bytes_s=values.get("inter_node_bandwidth_bytes_s"),
        intra_node_latency_s=values["intra_node_latency_s"], inter_node_latency_s=values["inter_node_latency_s"],
        node_power_w=values.get("node_power_w"), pue=values.get("pue"),
        gpu_power_limit_w=values.get("gpu_power_limit_w"), ranges=ranges,
        sources=dict(raw.get("sources", {})), notes=(*raw.get("gpus_notes", ()), *raw.get("notes", ())), extra=extra,
    )
    if any(f"gpu_power_limit_w_{s}" in raw for s in ("low", "high")):
        raise BadInput(f"{where}: a power limit is one setting, not a range", "give `gpu_power_limit_w` alone")
    if spec.gpu_power_limit_w is not None:
        power.clock_factor(spec)  # a limit above the device's board power is refused here, where it enters
    _check_node_power_holds_gpus(spec, where)
    return spec


@lru_cache(maxsize=1)
def _list_machines() -> list[str]:
    """The machine keys of the TOP500 and HPCG lists, read once (every system file load checks against them)."""
    from recoque.planner import hpcg, top500

    return sorted({e.machine for e in (*top500.load_entries().values(), *hpcg.load_entries().values())})


def _check_top500_machine(name: Any, where: str) -> None:
    """`top500_machine` names a machine of the TOP500 or HPCG lists (seeds/top500.toml, seeds/hpcg.toml):
    a misspelt one would silently drop the list comparisons and the leave-one-out of the machine's own run."""
    machines = _list_machines()
    if not isinstance(name, str) or name not in machines:
        close = difflib.get_close_matches(str(name), machines, n=3, cutoff=0.6)
        raise BadInput(f"{where}: `top500_machine` {name!r} is not a machine of seeds/top500.toml or seeds/hpcg.toml",
                       (f"did you mean {' or '.join(close)}?" if close else
                        f"use one of its {len(machines)} machine keys (the `machine` of each entry), or leave it out"))


def grid_key(name: Any, where: str, otherwise: str = "leave it out for France") -> str:
    """The [grid.<key>] of seeds/systems.toml (prices and carbon intensity) that `name` means: its key
    or its place, in any case and punctuation ("Germany", "us_california")."""
    grids = read_seed_toml("systems.toml").get("grid", {})
    named = {k: {"aliases": [str(g.get("place", k))]} for k, g in grids.items() if isinstance(g, Mapping)}
    key = resolve_key(name, named) if isinstance(name, str) else None
    if key is None:
        what = f"{where} {name!r}" if where.startswith("--") else f"{where}: `grid` {name!r}"
        raise BadInput(f"{what} is not a known grid",
                       f"use one of {', '.join(sorted(grids))} (recoque list grids), or {otherwise}")
    return key


def _device_key(name: str) -> str:
    """The catalog key a system's `device` spells ("MI300X", "H100-SXM" -> mi300x, h100_sxm); as given
    when none matches (a validation-only device, or an unknown one get_device_spec refuses with a hint)."""
    from recoque.catalog import load_catalog

    return resolve_key(name, load_catalog()) or name


# A node draws at most this multiple of its GPUs' board power: the presets span 1.2-2.0x (8x A100 DGX:
# 6.5 kW for 8 x 400 W); a CPU-heavy node with one small GPU could reach 3-4x. Beyond it the figure is
# watts typed as kilowatts (3,800 kW for a 4-GPU node gave 0.04 GFLOP/s per W).
NODE_OVER_GPUS_MAX = 5.0


def _check_node_power_holds_gpus(spec: SystemSpec, where: str) -> None:
    """A node draws at least what its GPUs do at full load (board power, or the cap): the presets'
    nodes state 1.2-1.8x that. A lower central figure is a unit slip (W for kW) or a per-GPU figure."""
    from recoque.catalog import load_catalog

    if spec.node_power_w is None or spec.device not in load_catalog():
        return
    tdp = power.board_power_w(spec)
    if not tdp:
        return
    gpus_w = spec.gpus_per_node * min(tdp, spec.gpu_power_limit_w or tdp)
    if spec.node_power_w < gpus_w:
        raise BadInput(f"{where}: `node_power_kw` {spec.node_power_w / 1e3:g} is below what its {spec.gpus_per_node} GPUs "
                       f"draw at full load ({gpus_w / 1e3:g} kW)", "give the whole node's power in kW")
    if spec.node_power_w > NODE_OVER_GPUS_MAX * gpus_w:
        raise BadInput(f"{where}: `node_power_kw` {spec.node_power_w / 1e3:g} is more than {NODE_OVER_GPUS_MAX:g}x what its "
                       f"{spec.gpus_per_node} GPUs draw at full load ({gpus_w / 1e3:g} kW)",
                       "give the whole node's power in kW: a figure in W divided by 1,000")


def load_system(name_or_path: str) -> SystemSpec:
    """A preset key from seeds/systems.toml, or a path to a user TOML file with one [systems.X] table."""
    from pathlib import Path

    from recoque.fileio import read_seed_toml, read_toml

    from recoque.inputs import check_single_table, check_system

    presets = read_seed_toml("systems.toml").get("systems", {})
    key = resolve_key(name_or_path, presets)
    # a path, not a preset; a bare preset name stays the preset even beside a file of that name
    if name_or_path.endswith(".toml") or "/" in name_or_path or (key is None and Path(name_or_path).is_file()):
        data = read_toml(name_or_path)
        devices = data.get("devices")
        key, raw = check_single_table({k: v for k, v in data.items() if k != "devices"}, "systems", name_or_path)
        where = f"{name_or_path} [systems.{key}]"
        check_system(raw, where)
        if devices is not None:
            _register_file_device(devices, raw, name_or_path)
        spec = system_from_toml(key, raw, origin=name_or_path)
        _check_device_known(spec.device, raw.get("device"), where)
        return spec
    if key is None:
        raise BadInput(f"unknown system {name_or_path!r}", unknown_hint(name_or_path, presets, "systems"))
    check_system(presets[key], f"systems.toml [systems.{key}]")
    return system_from_toml(key, presets[key])


def _check_device_known(key: str, given: Any, where: str) -> None:
    """The file's `device` names a catalog part (or the file's own [devices] table): said here, with
    the file and the key, not later by whichever model first looks it up."""
    from recoque.catalog import get_device_spec

    try:
        get_device_spec(key)
    except BadInput as exc:
        raise BadInput(f"{where}: `device` {given!r}: {exc.what}",
                       exc.fix or "use a key of `recoque list devices`, or define it in a [devices] table") from None


def _register_file_device(devices: Any, system_raw: Mapping[str, Any], path: str) -> None:
    """A system file may define the one device its system uses, in the layout of seeds/hardware.toml
    ([devices.<key>] with vendor, name and the *_tflops / hbm_* keys): a part the catalog lacks
    (a new or announced GPU) is then planned from its datasheet with the stated default efficiencies."""
    from recoque.catalog import register_device, spec_from_toml

    want = system_raw.get("device")
    if not isinstance(devices, Mapping) or list(devices) != [want]:
        names = list(devices) if isinstance(devices, Mapping) else devices
        raise BadInput(f"{path}: [devices] must hold exactly the system's device [devices.{want}], found {names!r}",
                       f"name the table [devices.{want}] or set the system's `device` to its key")
    spec = spec_from_toml(want, devices[want], origin=path)
    if spec.shown_as is not None:  # the device ROCm shows for each package: another, known part
        from recoque.catalog import load_catalog

        if spec.shown_as == want or spec.shown_as not in load_catalog():
            raise BadInput(f"{path} [devices.{want}]: `shown_as` {spec.shown_as!r} is "
                           + ("the device itself" if spec.shown_as == want else "not a device of the catalog"),
                           "name the catalog key of the device each package shows as (e.g. mi250x_gcd), or drop shown_as")
    register_device(spec)
