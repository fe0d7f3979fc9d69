"""Device discovery: which device a benchmark runs on, and its datasheet (or computed) peaks.

Detected once per process (style rule 8). GPUs come from torch (ROCm and CUDA builds both answer
through `torch.cuda`); the CPU from /proc and /sys. torch is imported only inside functions, so
the planner can import this module's callers without a GPU stack.

CPU peaks are computed, not looked up: cores x clock x FLOPs/cycle/core for the detected ISA
(the TOP500 Rpeak formula), and every source string carries that formula and where the clock came
from. A rate with no rule stays None: never invented.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, Iterable, Mapping

from recoque.bench import hostlink
from recoque.catalog import GEMM_DTYPE_TO_RATE, DeviceSpec, match_device
from recoque.errors import BadInput

GEMM_DTYPES = tuple(GEMM_DTYPE_TO_RATE)  # fp64 fp32 tf32 bf16 fp16 fp8
CPU_ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
ACCEPTED_FORMS = "auto, cpu, gpu, gpu:N, cuda, cuda:N, rocm, rocm:N"
GPU_BUILD_HINT = ("install a GPU build of torch first (ROCm: pip install torch --index-url "
                  "https://download.pytorch.org/whl/rocm<version>; CUDA: .../whl/cu<version>), "
                  "then check the driver and HIP_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES, or use --device cpu")


@dataclass(frozen=True)
class Device:
    kind: str  # "cuda" | "rocm" | "cpu"
    torch_device: str  # "cuda:0" | "cpu"
    name: str
    arch: str | None  # "gfx942", "sm_90", "zen4"; None when not known
    spec: DeviceSpec | None  # catalog entry (GPU) or computed peaks (CPU); None: unknown GPU
    llc_bytes: int | None
    memory_bytes: int | None
    compute_units: int | None  # CUs / SMs visible to torch, or physical CPU cores
    cpu_isa: tuple[str, ...] = ()
    fp8_format: str | None = None  # "e4m3fn" | "e4m3fnuz" | None (no FP8 or unknown)
    llc_source: str = ""
    notes: tuple[str, ...] = ()
    host_link_bytes_s: float | None = None  # one direction, as the PCIe link trained (bench/hostlink.py)
    host_link_source: str = ""

    @property
    def is_gpu(self) -> bool:
        return self.kind != "cpu"

    @property
    def unit_fraction(self) -> float | None:
        """Visible CUs/SMs over the catalog's, when torch sees only part of the GPU (MIG, CPX)."""
        full = self.spec.compute_units if self.spec else None
        if not (self.is_gpu and full and self.compute_units) or self.compute_units >= full:
            return None
        return self.compute_units / full

    def peak(self, dtype: str) -> tuple[float | None, str | None]:
        """Dense peak in FLOP/s for a GEMM dtype, with where it comes from.

        The value is None when unknown; the second item then says why (it is None only when the
        device has no spec at all).
        """
        if dtype not in GEMM_DTYPES:
            raise BadInput(f"unknown GEMM dtype {dtype!r}", f"use one of {', '.join(GEMM_DTYPES)}")
        if self.spec is None:
            return None, None
        rate = self.spec.gemm_rate_key(dtype)
        value, key = self.spec.peak(rate), f"{rate}_tflops"
        if value is None:
            return None, self._unknown_reason(dtype, key)
        source = _spec_source(self.spec, key)
        frac = self.unit_fraction
        if frac is not None:
            value *= frac
            source += (f"; scaled by visible units {self.compute_units}/{self.spec.compute_units} "
                       "(partitioned or cut-down part)")
        return value, source

    def peak_bandwidth(self) -> tuple[float | None, str | None]:
        """Datasheet memory bandwidth in bytes/s with its source; None when unknown."""
        if self.spec is None:
            return None, None
        if not self.is_gpu:
            return None, ("unknown: CPU memory bandwidth is not derived (DIMM channels and speed are "
                          "not readable without root); the stream benchmark measures it")
        if self.unit_fraction is not None:
            return None, (f"unknown: partitioned GPU ({self.compute_units} of {self.spec.compute_units} "
                          "units visible); its HBM share depends on the memory partition mode")
        bw = self.spec.hbm_bandwidth_bytes_s
        if bw is None:
            return None, f"unknown: {self.spec.key} has no hbm_bandwidth_tb_s in seeds/hardware.toml"
        return bw, _spec_source(self.spec, "hbm_bandwidth_tb_s")

    def peak_host_link(self) -> tuple[float | None, str | None]:
        """Host-device bandwidth one direction in bytes/s with its source; None when unknown."""
        if not self.is_gpu:
            return None, None
        return self.host_link_bytes_s, self.host_link_source or "unknown: host link not read"

    def _unknown_reason(self, dtype: str, key: str) -> str:
        if not self.is_gpu:
            return {"tf32": "none: CPUs have no TF32 arithmetic (torch runs FP32)",
                    "fp8": "none: no FP8 arithmetic on this CPU"}.get(dtype, f"unknown: no rule for {dtype}")
        notes = " ".join(self.spec.notes) if self.spec else ""
        return f"unknown: {key} absent for {self.spec.key}" + (f" ({notes})" if notes else "")

    def to_json(self) -> dict[str, Any]:
        peaks = {}
        for d in GEMM_DTYPES:
            v, s = self.peak(d)
            peaks[d] = {"flop_s": v, "source": s}
        bw, bw_src = self.peak_bandwidth()
        link, link_src = self.peak_host_link()
        return {
            "kind": self.kind, "torch_device": self.torch_device, "name": self.name, "arch": self.arch,
            "catalog_key": self.spec.key if self.spec and self.is_gpu else None,
            "catalog_status": self.spec.status if self.spec else None,
            "llc_bytes": self.llc_bytes, "llc_source": self.llc_source, "memory_bytes": self.memory_bytes,
            "compute_units": self.compute_units, "cpu_isa": list(self.cpu_isa), "fp8_format": self.fp8_format,
            "peak_flop_s": peaks, "peak_bandwidth_bytes_s": {"bytes_s": bw, "source": bw_src},
            "host_link_bytes_s": {"bytes_s": link, "source": link_src},
            "notes": list(self.notes),
        }


def _spec_source(spec: DeviceSpec, key: str) -> str:
    src = spec.source_for(key) or "no source recorded"
    if spec.vendor == "cpu":
        return src
    rate = key[: -len("_tflops")] if key.endswith("_tflops") else None
    rng = spec.peak_range_flop_s.get(rate) if rate else None
    extra = f", range {rng[0] / 1e12:g}-{rng[1] / 1e12:g} TF" if rng else ""
    return f"seeds/hardware.toml {spec.key}.{key} [{spec.status}]{extra}: {src}"


# --------------------------------------------------------------------------- detection

_GPU_FORM = re.compile(r"^(gpu|cuda|rocm)(?::(\d+))?$")


def detect(requested: str = "auto") -> Device:
    """The device to benchmark. "auto": first GPU, else the CPU with a loud warning on stderr."""
    req = (requested or "auto").strip().lower()
    if req != "auto" and req != "cpu" and not _GPU_FORM.match(req):
        raise BadInput(f"--device {requested!r} is not a device", f"use one of: {ACCEPTED_FORMS}")
    return _detect(req)


@lru_cache(maxsize=None)
def _detect(req: str) -> Device:
    if req == "cpu":
        return detect_cpu()
    gpus, why = _gpu_inventory()
    if req == "auto":
        if gpus:
            return gpus[0]
        # Plain text, one line: the library does not render (the CLI owns rich).
        print(f"WARNING: no GPU visible to torch: using the CPU ({why})", file=sys.stderr)
        return detect_cpu()
    family, index = _GPU_FORM.match(req).groups()  # type: ignore[union-attr]
    if not gpus:
        raise BadInput(f"--device {req}: no GPU visible to torch ({why})", GPU_BUILD_HINT)
    if family == "rocm" and gpus[0].kind != "rocm":
        raise BadInput(f"--device {req}: this torch is a CUDA build ({gpus[0].name})", "use --device cuda or gpu")
    i = int(index or 0)
    if i >= len(gpus):
        raise BadInput(f"--device {req}: only {len(gpus)} GPU(s) visible (0..{len(gpus) - 1})",
                       "pick an index in range, or check HIP_VISIBLE_DEVICES / CUDA_VISIBLE_DEVICES")
    return gpus[i]


def visible_gpus() -> tuple[Device, ...]:
    """Every GPU torch sees (empty without a GPU build or a GPU)."""
    return _gpu_inventory()[0]


def clear_cache() -> None:
    """Forget what was detected (tests; a long-lived process after a driver change)."""
    _detect.cache_clear()
    _gpu_inventory.cache_clear()
    read_cpu_facts.cache_clear()


@lru_cache(maxsize=1)
def _gpu_inventory() -> tuple[tuple[Device, ...], str]:
    """Every GPU torch sees, and a short reason when there is none."""
    try:
        import torch
    except Exception as exc:  # a broken install should still let the CPU path run
        return (), f"torch import failed: {exc}"
    hip, cuda = getattr(torch.version, "hip", None), getattr(torch.version, "cuda", None)
    if not hip and not cuda:
        return (), f"torch {torch.__version__} is a CPU-only build"
    try:
        if not torch.cuda.is_available():
            return (), f"torch {'ROCm ' + hip if hip else 'CUDA ' + cuda} build, but no device or driver found"
        count = torch.cuda.device_count()
        kind = "rocm" if hip else "cuda"
        devices = tuple(gpu_device(kind, i, torch.cuda.get_device_properties(i)) for i in range(count))
    except Exception as exc:
        return (), f"torch.cuda failed: {exc}"
    return devices, "" if devices else "torch.cuda.device_count() is 0"


def gpu_device(kind: str, index: int, props: Any) -> Device:
    """Build a Device from torch.cuda.get_device_properties(index) (ROCm or CUDA)."""
    gcn = str(getattr(props, "gcnArchName", "") or "") if kind == "rocm" else ""
    arch = (gcn.split(":")[0] or None) if kind == "rocm" else _sm_arch(props)
    name = str(getattr(props, "name", "") or "").strip() or f"GPU {index} ({arch or 'unknown arch'})"
    units = _int_or_none(getattr(props, "multi_processor_count", None))
    spec = match_device(name, gcn or None, units)
    notes = [] if spec else [f"no catalog entry matches {name!r} ({arch}): datasheet peaks unknown"]
    llc, llc_src = _gpu_llc(props, spec)
    link, link_src = hostlink.link_peak(hostlink.bdf(props))
    return Device(kind=kind, torch_device=f"cuda:{index}", name=name, arch=arch, spec=spec, llc_bytes=llc,
                  memory_bytes=_int_or_none(getattr(props, "total_memory", None)), compute_units=units,
                  fp8_format=(spec.fp8_format if spec else None) or fp8_format_for_arch(arch),
                  llc_source=llc_src, notes=tuple(notes), host_link_bytes_s=link, host_link_source=link_src)


def _sm_arch(props: Any) -> str | None:
    major, minor = getattr(props, "major", None), getattr(props, "minor", None)
    return f"sm_{major}{minor}" if major is not None and minor is not None else None


def _int_or_none(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _gpu_llc(props: Any, spec: DeviceSpec | None) -> tuple[int | None, str]:
    """Largest of torch's L2 size and the catalog's last-level cache.

    torch reports the L2 only; on MI300-class parts the 256 MiB Infinity Cache (MALL) behind it
    is the last level, so cache eviction must size for the catalog figure there.
    """
    l2 = _int_or_none(getattr(props, "L2_cache_size", None))
    cat = int(spec.llc_bytes) if spec and spec.llc_bytes else None
    if l2 and cat:
        return (cat, "catalog llc_mib (exceeds torch L2_cache_size)") if cat > l2 else (l2, "torch L2_cache_size")
    if l2:
        return l2, "torch L2_cache_size"
    if cat:
        return cat, "catalog llc_mib"
    return None, "unknown"


def fp8_format_for_arch(arch: str | None) -> str | None:
    """FP8 flavour by architecture: MI300-class (gfx940-942) use the fnuz variant, OCP e4m3fn after."""
    if not arch:
        return None
    if arch in ("gfx940", "gfx941", "gfx942"):
        return "e4m3fnuz"
    if arch == "gfx950" or arch.startswith("gfx12"):
        return "e4m3fn"
    m = re.match(r"sm_(\d+)$", arch)
    if m and int(m.group(1)) >= 89:  # Ada (8.9), Hopper (9.0) and later
        return "e4m3fn"
    return None


# --------------------------------------------------------------------------- CPU


@dataclass(frozen=True)
class CpuFacts:
    """What the CPU peak needs, parsed from /proc/cpuinfo and /sys; pure data for the rules below."""

    vendor: str  # "AuthenticAMD", "GenuineIntel", ...
    family: int | None
    model: int | None
    model_name: str
    cores: int  # physical cores this process may run on
    clock_hz: float | None
    clock_source: str
    flags: frozenset[str]


def parse_cpuinfo(text: str) -> list[dict[str, str]]:
    """One dict per processor block of /proc/cpuinfo."""
    blocks, cur = [], {}
    for line in text.splitlines():
        if not line.strip():
            if cur:
                blocks.append(cur)
            cur = {}
            continue
        k, _, v = line.partition(":")
        cur[k.strip()] = v.strip()
    if cur:
        blocks.append(cur)
    return [b for b in blocks if "processor" in b] or blocks


def cpu_facts(blocks: list[dict[str, str]], allowed_cpus: Iterable[int] | None = None,
              max_freq_khz: int | None = None) -> CpuFacts:
    """Combine parsed cpuinfo blocks, the affinity set and cpufreq's max into CpuFacts."""
    allowed = set(allowed_cpus) if allowed_cpus is not None else None
    mine = [b for b in blocks if allowed is None or _int_or_none(b.get("processor")) in allowed] or blocks
    first = mine[0] if mine else {}
    pairs = {(b.get("physical id"), b.get("core id")) for b in mine}
    cores = len(pairs) if mine and all(p[1] is not None for p in pairs) else max(1, len(mine))
    if max_freq_khz:
        clock, src = max_freq_khz * 1e3, "cpufreq cpuinfo_max_freq (boost; all-core vector clocks run lower)"
    elif _float(first.get("cpu MHz")):
        clock, src = _float(first["cpu MHz"]) * 1e6, "/proc/cpuinfo 'cpu MHz' (clock at detection)"  # type: ignore[operator]
    else:
        clock, src = None, "no clock readable"
    return CpuFacts(vendor=first.get("vendor_id", ""), family=_int_or_none(first.get("cpu family")),
                    model=_int_or_none(first.get("model")),
                    model_name=first.get("model name") or first.get("Model name") or "CPU",
                    cores=cores, clock_hz=clock, clock_source=src,
                    flags=frozenset((first.get("flags") or first.get("Features") or "").split()))


def _float(v: str | None) -> float | None:
    try:
        return float(v) if v else None
    except ValueError:
        return None


def zen_generation(vendor: str, family: int | None, model: int | None) -> int | None:
    """AMD Zen generation from cpuinfo family/model (AMD's family numbers: 0x17, 0x19, 0x1A)."""
    if vendor != "AuthenticAMD" or family is None or model is None:
        return None
    if family == 0x17:
        return 2 if model >= 0x30 else 1
    if family == 0x19:
        zen4 = 0x10 <= model <= 0x1F or 0x60 <= model <= 0x7F or 0xA0 <= model <= 0xAF
        return 4 if zen4 else 3
    if family == 0x1A:
        return 5
    return None


def fp64_flops_per_cycle(facts: CpuFacts) -> tuple[int | None, str]:
    """FP64 FLOPs/cycle/core = FMA pipes x vector lanes x 2, with the reason (and 'assumed')."""
    f, zen = facts.flags, zen_generation(facts.vendor, facts.family, facts.model)
    if "avx512f" in f:
        if zen == 4:
            return 16, "Zen 4 runs AVX-512 on 2 x 256-bit FMA pipes: 2 x 4 lanes x 2"
        if zen == 5 and facts.model is not None and (0x20 <= facts.model <= 0x2F or 0x60 <= facts.model <= 0x6F):
            return 16, "assumed: mobile Zen 5 runs AVX-512 on 256-bit pipes: 2 x 4 lanes x 2"
        if zen == 5:
            return 32, "Zen 5 (desktop/server): 2 x 512-bit FMA pipes: 2 x 8 lanes x 2"
        return 32, "assumed from the ISA: 2 x 512-bit FMA pipes: 2 x 8 lanes x 2 (one-pipe SKUs reach half)"
    if "avx2" in f and "fma" in f:
        if zen == 1:
            return 8, "Zen/Zen+ splits 256-bit FMA over 2 x 128-bit pipes: 2 x 2 lanes x 2"
        known = f"Zen {zen}" if zen in (2, 3) else "assumed from the ISA"
        return 16, f"{known}: 2 x 256-bit FMA pipes: 2 x 4 lanes x 2"
    if "avx" in f:
        return 8, "assumed from the ISA: 256-bit add + multiply pipes, no FMA: 4 lanes x 2"
    return None, "no FLOPs/cycle rule for this ISA (x86 AVX rules only)"


def cpu_rate_rules(facts: CpuFacts) -> dict[str, tuple[int | None, str]]:
    """FLOPs/cycle/core per catalog rate key, each with its reason."""
    fp64, why = fp64_flops_per_cycle(facts)
    if fp64 is None:
        return {k: (None, why) for k in ("fp64_vector", "fp64_matrix", "fp32", "bf16", "fp16")}
    fp32 = 2 * fp64
    f = facts.flags
    if "amx_bf16" in f:
        bf16 = (1024, "AMX-BF16 tile unit: 1024 FLOPs/cycle/core (Sapphire Rapids and later)")
    elif "avx512_bf16" in f:
        bf16 = (2 * fp32, "AVX512_BF16 dot product: 2 x the FP32 rate")
    else:
        bf16 = (fp32, "no BF16 arithmetic: converted to FP32, FP32 rate")
    return {"fp64_vector": (fp64, why), "fp64_matrix": (fp64, why + " (no separate matrix unit)"),
            "fp32": (fp32, "2 x the FP64 rate (" + why + ")"), "bf16": bf16, "fp16": _fp16_rule(f, fp32)}


def _fp16_rule(flags: frozenset[str], fp32: int) -> tuple[int | None, str]:
    """The unit torch's CPU fp16 GEMM runs on. With AVX512_FP16 but no AMX-FP16, oneDNN's fp16 GEMM
    ran at no more than the FP32 rate (2-core Sapphire Rapids-class VM, torch 2.13, one run: fp16 288,
    291, 145 GFLOP/s at n = 512, 1024, 2048; fp32 192, 289, 304), not at the 2x a native FP16 FMA gives."""
    if "amx_fp16" in flags:
        return 1024, "AMX-FP16 tile unit: 1024 FLOPs/cycle/core (Granite Rapids and later)"
    if "avx512_fp16" in flags:
        return fp32, "AVX512_FP16 present, but torch's oneDNN fp16 GEMM runs at the FP32 rate: FP32 rate"
    # Without either torch converts each element (about 1 GFLOP/s, bench/gemm.py cpu_sweep_shapes):
    # no unit runs it, so no peak, and no acceptance bar a fraction of one.
    return None, "no FP16 arithmetic on this CPU (torch converts element by element): no peak"


def cpu_peaks(facts: CpuFacts) -> dict[str, tuple[float | None, str]]:
    """Peak FLOP/s per rate key = cores x clock x FLOPs/cycle/core, with the formula as source."""
    out = {}
    for rate, (per_cycle, why) in cpu_rate_rules(facts).items():
        if per_cycle is None or facts.clock_hz is None:
            out[rate] = (None, f"unknown: {why if per_cycle is None else facts.clock_source}")
            continue
        value = facts.cores * facts.clock_hz * per_cycle
        out[rate] = (value, f"computed: {facts.cores} cores x {facts.clock_hz / 1e9:.3f} GHz "
                            f"[{facts.clock_source}] x {per_cycle} FLOP/cycle/core [{why}]")
    return out


def cpu_spec(facts: CpuFacts, llc_bytes: int | None = None) -> DeviceSpec:
    peaks = cpu_peaks(facts)
    return DeviceSpec(key="cpu", vendor="cpu", name=facts.model_name,
                      peak_flop_s={k: v for k, (v, _) in peaks.items() if v is not None},
                      sources={f"{k}_tflops": s for k, (_, s) in peaks.items()},
                      llc_bytes=float(llc_bytes) if llc_bytes else None,
                      status="computed (cores x clock x FLOPs/cycle), not a datasheet")


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


CLOCK_PROBES = 15  # short probes: a neighbour's time slice rarely hits all of them
CLOCK_ROUND_HZ = 50e6  # the kept clock is rounded down to this, so run-to-run jitter does not move the peak
CLOCK_CACHE = os.path.join(os.path.expanduser("~"), ".cache", "recoque", "cpu_clock.json")


def measure_clock_hz(iterations: int = 10_000_000, probes: int = CLOCK_PROBES) -> float | None:
    """Single-core clock from kernels/clock_probe's dependent chain: the fastest of `probes` runs.

    The maximum, not the median: preemption and frequency dips only ever slow a probe down.
    """
    import time

    from recoque.kernels.clock_probe import CYCLES_PER_ITERATION, dependent_chain

    dependent_chain(10, 3)  # compile (or load from cache) outside the timing
    best = float("inf")
    for _ in range(probes):
        t0 = time.perf_counter_ns()
        dependent_chain(iterations, 12345)
        best = min(best, (time.perf_counter_ns() - t0) * 1e-9)
    return CYCLES_PER_ITERATION * iterations / best if best > 0 else None


def stable_clock_hz(measured: float, key: str, path: str = CLOCK_CACHE) -> tuple[float, int]:
    """The highest clock measured on this host so far (this run included), rounded down to
    CLOCK_ROUND_HZ, and how many runs it is the maximum of. Kept in a small JSON file per CPU
    model, so a run on a busy machine does not lower the peak that results are compared with."""
    import json

    try:
        with open(path, encoding="utf-8") as fh:
            cache = json.load(fh)
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key) if isinstance(cache.get(key), dict) else {}
    try:
        best, runs = max(float(entry.get("clock_hz", 0.0)), measured), int(entry.get("runs", 0)) + 1
    except (TypeError, ValueError):
        best, runs = measured, 1
    cache[key] = {"clock_hz": best, "runs": runs}
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(cache, fh)
        os.replace(tmp, path)
    except OSError:  # read-only home: this run's own maximum only
        runs = 1
    return (best // CLOCK_ROUND_HZ) * CLOCK_ROUND_HZ, runs


def _measured_clock(facts: CpuFacts) -> CpuFacts:
    measured = measure_clock_hz()
    if not measured:
        return facts
    key = f"{facts.model_name}|{facts.vendor}|{facts.family}|{facts.model}|{facts.cores}"
    clock, runs = stable_clock_hz(measured, key)
    if facts.clock_hz is not None and clock <= facts.clock_hz:
        return facts
    said = f"; /proc/cpuinfo says {facts.clock_hz / 1e6:.0f} MHz" if facts.clock_hz else ""
    return replace(facts, clock_hz=clock, clock_source=(
        f"measured: dependent integer chain, 4 one-cycle ops/iteration, fastest of {CLOCK_PROBES} probes, "
        f"highest over {runs} run(s) on this host ({CLOCK_CACHE}), rounded down to 50 MHz{said}"))


@lru_cache(maxsize=1)
def read_cpu_facts() -> CpuFacts:
    allowed = _affinity()
    khz = _int_or_none((_read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") or "").strip() or None)
    blocks = parse_cpuinfo(_read("/proc/cpuinfo") or "")
    if blocks:
        facts = cpu_facts(blocks, allowed, khz)
        if khz is None:  # VMs hide cpufreq and report the nominal clock: measure the real one
            facts = _measured_clock(facts)
        return facts
    import platform  # no /proc (not Linux): what Python knows, no ISA flags, so peaks stay unknown

    name = platform.processor() or platform.machine() or "CPU"
    return replace(cpu_facts([{"processor": "0", "model name": name}], None, khz), cores=os.cpu_count() or 1)


def cache_size_bytes(text: str) -> int | None:
    """'32768K' / '32 MiB' / '1024 KB' -> bytes."""
    m = re.match(r"\s*([\d.]+)\s*([KMG]?)i?B?", text.strip(), re.IGNORECASE)
    if not m:
        return None
    return int(float(m.group(1)) * {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}[m.group(2).upper()])


def cpu_llc_bytes(cpus: Iterable[int] | None = None) -> tuple[int | None, str]:
    """Total last-level cache over the instances this process's CPUs use (/sys, else lscpu)."""
    root = "/sys/devices/system/cpu"
    seen: dict[str, int] = {}
    best_level = 0
    for cpu in sorted(cpus) if cpus is not None else range(os.cpu_count() or 1):
        base = f"{root}/cpu{cpu}/cache"
        for idx in sorted(os.listdir(base)) if os.path.isdir(base) else ():
            level = _int_or_none((_read(f"{base}/{idx}/level") or "").strip() or None) or 0
            kind = (_read(f"{base}/{idx}/type") or "").strip()
            size = cache_size_bytes(_read(f"{base}/{idx}/size") or "")
            if kind == "Instruction" or not size or level < best_level:
                continue
            if level > best_level:
                best_level, seen = level, {}
            seen[(_read(f"{base}/{idx}/shared_cpu_list") or str(cpu)).strip()] = size
    if seen:
        return sum(seen.values()), f"/sys cache L{best_level}, {len(seen)} instance(s)"
    return _lscpu_l3()


def _lscpu_l3() -> tuple[int | None, str]:
    try:
        out = subprocess.run(["lscpu", "-B"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None, "unknown"
    m = re.search(r"^L3 cache:\s*(\d+)", out, re.MULTILINE)
    return (int(m.group(1)), "lscpu L3") if m else (None, "unknown")


def _meminfo_bytes() -> int | None:
    m = re.search(r"^MemTotal:\s*(\d+)\s*kB", _read("/proc/meminfo") or "", re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


def detect_cpu() -> Device:
    facts = read_cpu_facts()
    llc, llc_src = cpu_llc_bytes(_affinity())
    zen = zen_generation(facts.vendor, facts.family, facts.model)
    isa = tuple(f for f in CPU_ISA_FLAGS if f in facts.flags)
    return Device(kind="cpu", torch_device="cpu", name=facts.model_name, arch=f"zen{zen}" if zen else None,
                  spec=cpu_spec(facts, llc), llc_bytes=llc, memory_bytes=_meminfo_bytes(),
                  compute_units=facts.cores, cpu_isa=isa, llc_source=llc_src)


def describe_peaks(device: Device) -> Mapping[str, tuple[float | None, str | None]]:
    """Every GEMM dtype's (FLOP/s, source) for a device, in GEMM_DTYPES order."""
    return {d: device.peak(d) for d in GEMM_DTYPES}
