"""The hardware catalog (seeds/hardware.toml): dense datasheet peaks, in base units once loaded.

TOML keys carry their unit (`bf16_tflops`, `hbm_bandwidth_tb_s`); inside Python everything is
FLOP/s, bytes and bytes/s. A missing key means unknown: it stays None, never invented.
A value may carry a range (`fp64_matrix_tflops_low`, `..._high`) when sources disagree.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

from recoque.errors import BadInput
from recoque.fileio import read_seed_toml
from recoque.names import resolve_key, unknown_hint

# Compute rates the catalog can hold, in TFLOP/s in the TOML (dense, never sparse).
RATE_KEYS = ("fp64_vector", "fp64_matrix", "fp32", "tf32", "bf16", "fp16", "fp8", "fp6", "fp4")
# The GEMM dtypes a benchmark names, mapped to the catalog rate that bounds them.
GEMM_DTYPE_TO_RATE = {"fp64": "fp64_matrix", "fp32": "fp32", "tf32": "tf32", "bf16": "bf16",
                      "fp16": "fp16", "fp8": "fp8"}
TERA, GIGA = 1e12, 1e9
FP8_FORMATS = ("e4m3fn", "e4m3fnuz")
# Numeric TOML fields, grouped the way `[devices.X.sources]` names their source.
SOURCE_GROUPS = {
    "compute": tuple(f"{rk}_tflops{sfx}" for rk in RATE_KEYS for sfx in ("", "_low", "_high")),
    "memory": ("hbm_capacity_gb", "hbm_bandwidth_tb_s"),
    "power": ("tdp_w",),
    "scaleup": ("scaleup_bandwidth_gb_s", "scaleup_links"),
    "cache": ("llc_mib",),
    "units": ("compute_units",),
    "sfu": ("exp2_tera_per_s",),
}
NUMERIC_KEYS = tuple(k for keys in SOURCE_GROUPS.values() for k in keys)
_OTHER_KEYS = ("vendor", "name", "match_names", "exclude_names", "gfx_arch", "detectable", "fp8_format",
               "status", "notes", "sources", "scaleup_topology", "shown_as", "shown_per_package")
VENDORS = ("amd", "nvidia", "intel", "cpu")
# A board power a datasheet could state: the catalog's parts span 250-1,400 W; a 10 W edge module
# and a 5 kW superchip bound what a file may give (a 0.001 W typo would make every GF/W absurd).
TDP_W_RANGE = (10.0, 5000.0)
# How a part's scale-up links reach its peers: through switches (NVSwitch: a transfer to one peer can
# use every link) or as a direct mesh (AMD Infinity Fabric: one peer sits behind its own link(s)).
SCALEUP_TOPOLOGIES = ("switch", "mesh")


def source_group(toml_key: str) -> str | None:
    for group, keys in SOURCE_GROUPS.items():
        if toml_key in keys:
            return group
    return None


@dataclass(frozen=True)
class DeviceSpec:
    key: str
    vendor: str  # "amd", "nvidia", "cpu"
    name: str
    match_names: tuple[str, ...] = ()
    gfx_arch: tuple[str, ...] = ()
    peak_flop_s: Mapping[str, float] = field(default_factory=dict)
    peak_range_flop_s: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    hbm_bytes: float | None = None
    hbm_bandwidth_bytes_s: float | None = None
    tdp_w: float | None = None
    scaleup_bandwidth_bytes_s: float | None = None  # per GPU, bidirectional aggregate
    scaleup_links: int | None = None  # scale-up links per GPU (NVLink: 12 on A100, 18 from H100)
    llc_bytes: float | None = None
    sources: Mapping[str, str] = field(default_factory=dict)
    status: str = ""
    compute_units: int | None = None  # CUs (AMD) or SMs (NVIDIA) of the whole device
    fp8_format: str | None = None  # torch float8 flavour the matrix units take: e4m3fn / e4m3fnuz
    notes: tuple[str, ...] = ()
    exclude_names: tuple[str, ...] = ()  # a torch name holding one of these never matches
    detectable: bool = True  # False: torch never shows this as one device (MI250X package)
    exp2_per_s: float | None = None  # softmax exponentials (SFU EX2) per second, where the vendor states it
    scaleup_topology: str = "switch"  # "mesh": a point-to-point transfer gets one peer's link(s) only
    shown_as: str | None = None  # a package ROCm shows as several GPUs (MI250X: 2 GCDs): their catalog key
    shown_per_package: int = 1  # how many GPUs ROCm shows per package
    assumed_rates: tuple[str, ...] = ()  # peaks filled from [assumed_peaks] (MI430X BF16): their range is a bracket
    origin: str = field(default="seeds/hardware.toml", compare=False)  # the file that defines it

    def complete(self, keys: str) -> str:
        """The fix for a figure the entry lacks: where to add it, in the file that defines the device."""
        return f"add {keys} to [devices.{self.key}] in {self.origin}"

    def source_for(self, toml_key: str) -> str | None:
        """Where a TOML field's value comes from: its own entry, else its group's; None if neither."""
        if toml_key in self.sources:
            return self.sources[toml_key]
        group = source_group(toml_key)
        return self.sources.get(group) if group else None

    def names_match(self, name: str) -> int:
        """Length of the longest match pattern found in `name` (0: no match or vetoed)."""
        low = name.lower()
        if any(x.lower() in low for x in self.exclude_names):
            return 0
        return max((len(m) for m in self.match_names if m.lower() in low), default=0)

    def peak(self, rate_key: str) -> float | None:
        """Dense peak in FLOP/s for a catalog rate key or a GEMM dtype name; None if unknown."""
        return self.peak_flop_s.get(GEMM_DTYPE_TO_RATE.get(rate_key, rate_key))

    def gemm_rate_key(self, dtype: str) -> str:
        """The catalog rate that bounds a GEMM in `dtype`: its matrix rate, or for FP64 on a part
        without FP64 matrix units (V100, MI100) the vector rate the GEMM then runs on."""
        key = GEMM_DTYPE_TO_RATE.get(dtype, dtype)
        if key == "fp64_matrix" and key not in self.peak_flop_s and "fp64_vector" in self.peak_flop_s:
            return "fp64_vector"
        return key

    def peak_range(self, rate_key: str) -> tuple[float, float] | None:
        k = GEMM_DTYPE_TO_RATE.get(rate_key, rate_key)
        if k in self.peak_range_flop_s:
            return self.peak_range_flop_s[k]
        p = self.peak_flop_s.get(k)
        return (p, p) if p is not None else None


# The most a file may give per figure group: about 100x the largest catalog part (B300 fp4 14,000 TF,
# MI355X 288 GB at 8 TB/s), so a unit slip (GB/s for TB/s, FLOP/s for TFLOP/s) is named, not carried
# into an overflow further on.
MAX_BY_GROUP = {"compute": 1e6, "memory": 1e5, "scaleup": 1e5, "cache": 1e5, "units": 1e6, "sfu": 1e5}


def _num(raw: Mapping[str, Any], key: str, scale: float, where: str) -> float | None:
    if key not in raw:
        return None
    v = raw[key]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
        raise BadInput(f"{where}: {key} must be a finite positive number, got {v!r}",
                       "fix the [devices] table (leave a figure out when the part has none)")
    most = MAX_BY_GROUP.get(source_group(key) or "")
    if most is not None and v > most:
        raise BadInput(f"{where}: {key} = {v:g} is above any device's ({most:,.0f} at most)",
                       "check the unit in the key's name and fix the [devices] table")
    return float(v) * scale


def _texts(raw: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = raw.get(key, ())
    if not isinstance(v, (list, tuple)) or not all(isinstance(x, str) for x in v):
        raise BadInput(f"{where}: {key} must be a list of text, got {v!r}", "fix the [devices] table")
    return tuple(v)


def _check_counts_and_ranges(raw: Mapping[str, Any], where: str) -> None:
    """Counts are whole; a central figure sits inside its own low-high; a board power is plausible."""
    for count in ("compute_units", "scaleup_links"):
        v = raw.get(count)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v != int(v):
            raise BadInput(f"{where}: {count} must be a whole number, got {v!r}", "fix the [devices] table")
    for rk in RATE_KEYS:
        v, lo, hi = (raw.get(f"{rk}_tflops{sfx}") for sfx in ("", "_low", "_high"))
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (v, lo, hi)) and lo <= hi and not lo <= v <= hi:
            raise BadInput(f"{where}: {rk}_tflops {v:g} lies outside its own range {lo:g}-{hi:g}",
                           "fix the figure or its _low/_high")
    tdp = raw.get("tdp_w")
    if isinstance(tdp, (int, float)) and not isinstance(tdp, bool) and not TDP_W_RANGE[0] <= tdp <= TDP_W_RANGE[1]:
        raise BadInput(f"{where}: tdp_w {tdp:g} W is outside {TDP_W_RANGE[0]:g}-{TDP_W_RANGE[1]:g} W",
                       "give the board power in watts")


def spec_from_toml(key: str, raw: Mapping[str, Any], origin: str = "hardware.toml") -> DeviceSpec:
    where = f"{origin} [devices.{key}]"
    if not isinstance(raw, Mapping):
        raise BadInput(f"{where}: must be a table", "see seeds/hardware.toml for the layout")
    for required in ("vendor", "name"):
        if required not in raw:
            raise BadInput(f"{where}: missing `{required}`", "add it")
    unknown = sorted(set(raw) - set(NUMERIC_KEYS) - set(_OTHER_KEYS))
    if unknown:  # a typo such as `bf16_tflop` would otherwise silently read as unknown
        raise BadInput(f"{where}: unknown key(s) {', '.join(unknown)}",
                       "use the keys listed at the top of seeds/hardware.toml")
    for text_key in ("vendor", "name", "status"):
        if text_key in raw and not isinstance(raw[text_key], str):
            raise BadInput(f"{where}: {text_key} must be text, got {raw[text_key]!r}", "fix the [devices] table")
    if not isinstance(raw.get("sources", {}), Mapping):
        raise BadInput(f"{where}: sources must be a table of text, got {raw['sources']!r}", "fix the [devices] table")
    if raw["vendor"] not in VENDORS:
        raise BadInput(f"{where}: vendor {raw['vendor']!r} is not one of {', '.join(VENDORS)}", "fix the [devices] table")
    _check_counts_and_ranges(raw, where)
    fp8_format = raw.get("fp8_format")
    if fp8_format is not None and fp8_format not in FP8_FORMATS:
        raise BadInput(f"{where}: fp8_format {fp8_format!r} is not one of {FP8_FORMATS}", "fix the [devices] table")
    topology = str(raw.get("scaleup_topology", "switch"))
    if topology not in SCALEUP_TOPOLOGIES:
        raise BadInput(f"{where}: scaleup_topology {topology!r} is not one of {SCALEUP_TOPOLOGIES}",
                       "fix the [devices] table")
    if topology == "mesh" and not raw.get("scaleup_links"):
        raise BadInput(f"{where}: a mesh scale-up needs scaleup_links (the links one peer's share is counted in)",
                       "add scaleup_links")
    shown_as, shown_n = _shown_as(raw, where)
    peaks, ranges = {}, {}
    for rk in RATE_KEYS:
        v = _num(raw, f"{rk}_tflops", TERA, where)
        if v is not None:
            peaks[rk] = v
        lo, hi = _num(raw, f"{rk}_tflops_low", TERA, where), _num(raw, f"{rk}_tflops_high", TERA, where)
        if lo is not None and hi is not None:
            if lo > hi:
                raise BadInput(f"{where}: {rk}_tflops_low {lo / TERA:g} is above {rk}_tflops_high {hi / TERA:g}",
                               "swap them")
            ranges[rk] = (lo, hi)
    return DeviceSpec(
        key=key, vendor=str(raw["vendor"]), name=str(raw["name"]),
        match_names=_texts(raw, "match_names", where), gfx_arch=_texts(raw, "gfx_arch", where),
        peak_flop_s=peaks, peak_range_flop_s=ranges,
        hbm_bytes=_num(raw, "hbm_capacity_gb", GIGA, where),
        hbm_bandwidth_bytes_s=_num(raw, "hbm_bandwidth_tb_s", TERA, where),
        tdp_w=_num(raw, "tdp_w", 1.0, where),
        scaleup_bandwidth_bytes_s=_num(raw, "scaleup_bandwidth_gb_s", GIGA, where),
        scaleup_links=int(n) if (n := _num(raw, "scaleup_links", 1.0, where)) is not None else None,
        llc_bytes=_num(raw, "llc_mib", 2**20, where),
        sources=dict(raw.get("sources", {})), status=str(raw.get("status", "")),
        compute_units=int(cu) if (cu := _num(raw, "compute_units", 1.0, where)) is not None else None,
        fp8_format=fp8_format, notes=_texts(raw, "notes", where),
        exclude_names=_texts(raw, "exclude_names", where), detectable=bool(raw.get("detectable", True)),
        exp2_per_s=_num(raw, "exp2_tera_per_s", TERA, where), scaleup_topology=topology,
        shown_as=shown_as, shown_per_package=shown_n,
        origin="seeds/hardware.toml" if origin == "hardware.toml" else origin,
    )


def _shown_as(raw: Mapping[str, Any], where: str) -> tuple[str | None, int]:
    """`shown_as` (a catalog key) and `shown_per_package` (a whole number >= 2) come together."""
    key, n = raw.get("shown_as"), raw.get("shown_per_package")
    if key is None and n is None:
        return None, 1
    if not isinstance(key, str) or isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise BadInput(f"{where}: shown_as (a device key) and shown_per_package (a whole number >= 2) go together, "
                       f"got {key!r} and {n!r}", "give both, or neither")
    return key, n


@lru_cache(maxsize=1)
def _shipped_catalog() -> dict[str, DeviceSpec]:
    data = read_seed_toml("hardware.toml")
    return {k: spec_from_toml(k, v) for k, v in data.get("devices", {}).items()}


# Devices a user's system file defines ([devices.<key>] beside its [systems.<key>]): known to every
# later lookup of this process, never replacing a shipped entry.
_USER_DEVICES: dict[str, DeviceSpec] = {}


def register_device(spec: DeviceSpec) -> None:
    """Make a user-defined device known (planner.system.load_system calls this for a system file's
    [devices] table). A shipped key cannot be redefined: the catalog entry carries sources."""
    if spec.key in _shipped_catalog():
        raise BadInput(f"device {spec.key!r} is already in the catalog (seeds/hardware.toml)",
                       "drop the [devices] table to use the catalog entry, or give your device another key")
    if spec.key in _USER_DEVICES and _USER_DEVICES[spec.key] != spec:
        raise BadInput(f"device {spec.key!r} is defined twice with different figures (two system files)",
                       "give each system file's device its own key")
    _USER_DEVICES[spec.key] = spec


def load_catalog() -> dict[str, DeviceSpec]:
    # the cached shipped table itself unless a system file defined a device (no copy per lookup)
    return {**_shipped_catalog(), **_USER_DEVICES} if _USER_DEVICES else _shipped_catalog()


def get_device_spec(key: str) -> DeviceSpec:
    cat = load_catalog()
    found = resolve_key(key, cat)  # any case and punctuation: "MI300X", "H100-SXM"
    if found is None:
        raise BadInput(f"unknown device {key!r}", unknown_hint(key, cat, "devices"))
    return cat[found]


def same_part(a: str, b: str) -> bool:
    """Whether two device keys are one part: the same entry, or a package and the GPUs the runtime
    shows it as (mi250x and mi250x_gcd: a list counts packages, a system file may count either)."""
    x, y = get_device_spec(a), get_device_spec(b)
    return x.key == y.key or x.shown_as == y.key or y.shown_as == x.key


def match_device(name: str, gfx_arch: str | None = None, compute_units: int | None = None) -> DeviceSpec | None:
    """Find the catalog entry for a device torch reports, by name substring, gfx arch and unit count.

    Only entries torch can show as one device are candidates (an MI250X appears as two GCDs).
    The name decides first, longest pattern winning ("H100 PCIe" before "H100"); several AMD parts
    share one arch (MI300X/MI325X are both gfx942), so the arch alone decides only when exactly one
    entry has it, or exactly one of its entries has the unit count, and nothing contradicts: a unit
    count that differs, or an MI product number in the name that is not this entry's.
    """
    cat = [d for d in load_catalog().values() if d.detectable]
    base = gfx_arch.split(":")[0].strip().lower() if gfx_arch else None
    pool = [d for d in cat if base in d.gfx_arch] if base else []
    if not pool:  # no arch given, or one the catalog does not list: the name alone decides
        base, pool = None, cat
    named = sorted((d for d in pool if d.names_match(name)), key=lambda d: -d.names_match(name))
    if named:
        return named[0]
    if not base:
        return None
    if len(pool) == 1:
        only = pool[0]
        if compute_units is not None and only.compute_units is not None:
            return only if compute_units == only.compute_units else None
        return None if _MI_PRODUCT.search(name) else only
    # several parts share the arch (gfx90a: MI250X and MI250 GCDs): the unit count alone may decide
    same_units = [d for d in pool if compute_units is not None and d.compute_units == compute_units]
    if len(same_units) == 1 and not _MI_PRODUCT.search(name):
        return same_units[0]
    return None


_MI_PRODUCT = re.compile(r"MI\d{2,3}", re.IGNORECASE)
