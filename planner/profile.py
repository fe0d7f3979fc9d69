"""Device profile: what one GPU delivers, as a function of operation size, with bounds.

Three origins, always named in `assumptions`:
  * measured   `DeviceProfile.from_results(doc, spec)`: GEMM and attention throughput curves
               interpolated (log-log, by operation size in FLOPs) from a `recoque bench` results
               file; STREAM bandwidth for memory-bound work. Bounds from the sample spread.
  * datasheet  `DeviceProfile.from_datasheet(spec, default_efficiency=...)`: the dense peak times a
               stated efficiency, with a fixed per-kernel overhead so that small operations are
               slower (rate(F) = F / (F / (eff * peak) + overhead_s)). Wide bounds.
  * calibrated `DeviceProfile.from_parameters(spec, params, label)`: efficiencies a user could
               measure (GEMM, attention, memory, link), e.g. the A100 and H100 profiles in
               seeds/validation.toml. GEMMs there follow a shape model (`gemm_time_s`): plateau x
               wave quantisation over the SMs (`wave_quantization`) x k/(k + thin_gemm_dim),
               a roofline floor, a per-kernel overhead; the plateau may be given directly
               (`gemm_efficiency`) or anchored on a measured best GEMM (`gemm_anchor_tflops` at
               gemm_anchor_m/n/k, times `gemm_sustained_fraction`).
Dtypes a results file does not cover fall back to the datasheet, labelled as such.

Conventions: attention rates are in "full" FLOPs (4 * b * h * s_q * s_k * d forward, twice that
backward, causal masking not discounted), the convention of Megatron's FLOP formula, whatever the
kernel's own count was. Link efficiencies are the fraction of the system's stated per-GPU
one-direction bandwidth that a collective achieves as NCCL "bus bandwidth".
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import numpy as np

from recoque.bench.schema import sdpa_backend_times
from recoque.catalog import GEMM_DTYPE_TO_RATE, DeviceSpec
from recoque.errors import BadInput
from recoque.planner import shape_rates

WHICH = ("value", "low", "high")
_GRID_LOG2 = np.arange(10.0, 56.0, 0.5)  # 1 kFLOP .. 2^55 FLOP

# Datasheet fallbacks (stated, not measured). The GEMM figure sits between the A100 and H100
# best-shape results in the public MAMF table (86.9% and 80.3% of peak, stas00/ml-engineering
# compute/accelerator/README.md, "Maximum Achievable Matmul FLOPS comparison table") less a margin
# for Megatron-sized shapes; the rest are round stated guesses.
DEFAULT_GEMM_EFFICIENCY = 0.75
DEFAULT_ATTENTION_EFFICIENCY = 0.45
DEFAULT_MEMORY_EFFICIENCY = 0.85
DEFAULT_INTRA_LINK_EFFICIENCY = 0.80
DEFAULT_INTER_LINK_EFFICIENCY = 0.85
DEFAULT_KERNEL_OVERHEAD_S = 5e-6
DEFAULT_THIN_GEMM_DIM = 16.0  # a GEMM with inner dimension 128 runs at 128/(128+16) = 89% of the curve
DEFAULT_UNCERTAINTY = 0.15  # +/- on every datasheet-derived efficiency
# The shipped attention efficiencies are read at head dim 128 (the H200 SDPA run, aiter's d128 MI355X
# figure: seeds/validation.toml): forward FLOPs per (query, key) pair and head 2 x (128 + 128), one
# softmax exponential each. FlashAttention-3 (Shah et al. 2024, arXiv 2407.08608, sec. 3.2): the
# H100 SXM5 runs 989 TFLOPS of FP16 matmul but 3.9 TFLOPS of exponentials, so at head 128 the
# exponentials take half the matmul's cycles; at head 64 twice that share (DeviceProfile.attention_time_s).
ATTENTION_REFERENCE_FLOPS_PER_PAIR = 2.0 * (128 + 128)
# A measured profile knows its kernel rates, not how a training framework composes them: its curves
# keep at least the band the shipped Hopper profiles carry for that ([profiles.h100_sxm] uncertainty
# in seeds/validation.toml, sized on the held-out NVIDIA runs). Without it, 2 of the 5 held-out H200
# rows in the verdict of seeds/train_checks.toml fell outside the range the bench-measured H200 profile
# (seeds/measured/h200.json) gave them; with it, none.
MEASURED_COMPOSITION_UNCERTAINTY = 0.12
# fp8 GEMMs reach a lower fraction of their (doubled) peak than 16-bit GEMMs do. Public best-GEMM
# pairs measured in one source: H100 SXM fp8 1402.6 / 1979 = 70.9% against bf16 794.5 / 989 =
# 80.3% (MAMF table) -> 0.88; MI300X fp8 1273 / 2615 against bf16 708 / 1307 (AMD "Measuring
# Max-Achievable FLOPs part 2", Table 1) -> 0.90; MI325X 1519 against 843 -> 0.90
# (same blog, Table 1). The default is the lowest of the three.
DEFAULT_FP8_RELATIVE_EFFICIENCY = 0.88
FP8_DTYPES = ("fp8", "fp8_e4m3", "fp8_e5m2")
# fp4 (NVFP4/MXFP4 block-scaled) GEMMs against the same 16-bit fraction: the fp8 rule applied once
# more (each halving of the operand width keeps 0.88 of the achieved fraction, as fp8 does on H100).
# The one public large-GEMM fp4 figure is lower: B200 at 8192^3, MXFP4 4,520 / 9,000 = 50.2% against
# the MAMF BF16 77.6% -> 0.65 (github.com/tmoreau89/triton python/triton_cublas_bench/RESULTS.md,
# third-party); it is Triton's tutorial block-scaled kernel, not the cuBLASLt/CUTLASS kernels
# Transformer Engine calls, and with it the MLPerf v5.1 NVFP4 training runs of seeds/train_checks.toml
# come out 8-36% slow (0.7-10% on 10 of 12 with the rule). Serving keeps the measured figure
# (seeds/serving.toml [rates.b200] fp4), whose TensorRT-LLM rows it fits. A profile with its own
# measured table states its own factor (MI355X/MI350X: 0.74, seeds/validation.toml).
DEFAULT_FP4_RELATIVE_EFFICIENCY = 0.88
FP4_DTYPES = ("fp4",)
# Training precisions whose GEMMs run only the linear layers in low precision (attention, logits
# and adapters stay 16-bit): Transformer Engine's fp8 and NVFP4 recipes.
LOW_PRECISION_DTYPES = FP8_DTYPES + FP4_DTYPES
# Output tiles a cuBLAS/hipBLASLt-class library chooses among for large 16-bit GEMMs; the wave
# model takes the one that wastes the least of the last wave (the library's heuristic does the same).
GEMM_TILES = ((256.0, 128.0), (128.0, 256.0), (128.0, 128.0))
ELEMENT_BYTES = {"fp64": 8.0, "fp32": 4.0, "tf32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5625}


def wave_efficiency(m: Any, n: Any, batch: Any, units: float) -> Any:
    """Fraction of the device's SMs/CUs busy over a GEMM's waves of output tiles: tiles /
    (ceil(tiles / units) * units), the best over GEMM_TILES (wave quantisation)."""
    m, n, batch = (np.asarray(x, dtype=float) for x in (m, n, batch))
    # ceil(m / tm) and ceil(n / tn) once per distinct tile edge, shared by the tiles that use it
    cm = {tm: np.ceil(m / tm) for tm in {t[0] for t in GEMM_TILES}}
    cn = {tn: np.ceil(n / tn) for tn in {t[1] for t in GEMM_TILES}}
    best = None
    for tm, tn in GEMM_TILES:
        cm_, cn_ = cm[tm], cn[tn]
        tiles = cm_ * cn_ if batch.ndim == 0 and batch == 1.0 else batch * cm_ * cn_
        eff = tiles / (np.ceil(tiles / units) * units)
        best = eff if best is None else np.maximum(best, eff)
    return best


@dataclass(frozen=True)
class Curve:
    """Achieved rate (FLOP/s) against log2(work in FLOPs): value, low and high, interpolated."""

    log2_work: np.ndarray
    rate: np.ndarray
    low: np.ndarray
    high: np.ndarray

    def at(self, work: Any, which: str = "value") -> np.ndarray:
        y = {"value": self.rate, "low": self.low, "high": self.high}[which]
        w = np.maximum(np.asarray(work, dtype=float), 1.0)
        x = np.log2(w)
        r = np.exp(np.interp(x, self.log2_work, np.log(y)))
        # Below the smallest measured size the time per call no longer shrinks: rate ~ work.
        small = x < self.log2_work[0]
        if np.any(small):
            r = np.where(small, y[0] * w / 2.0 ** self.log2_work[0], r)
        return r

    @classmethod
    def parametric(cls, peak: float, eff: float, overhead_s: float, rel_unc: float) -> "Curve":
        work = 2.0 ** _GRID_LOG2

        def rate(e: float) -> np.ndarray:
            return work / (work / (e * peak) + overhead_s)

        return cls(_GRID_LOG2.copy(), rate(eff), rate(eff * (1 - rel_unc)), rate(min(eff * (1 + rel_unc), 1.0)))

    def widened(self, rel: float) -> "Curve":
        """The same curve with its low-high band at least +/-rel around the rate."""
        return replace(self, low=np.minimum(self.low, self.rate * (1 - rel)), high=np.maximum(self.high, self.rate * (1 + rel)))

    @classmethod
    def from_points(cls, work: np.ndarray, rate: np.ndarray, low: np.ndarray, high: np.ndarray) -> "Curve":
        order = np.argsort(work)
        x = np.log2(np.asarray(work, dtype=float)[order])
        r, lo, hi = (np.asarray(a, dtype=float)[order] for a in (rate, low, high))
        # One point per size: keep the best median where a size was measured twice.
        ux, idx = np.unique(x, return_index=True)
        if len(ux) != len(x):
            r2, lo2, hi2 = [], [], []
            for u in ux:
                m = x == u
                k = int(np.argmax(np.where(m, r, -np.inf)))
                r2.append(r[k]); lo2.append(lo[k]); hi2.append(hi[k])
            r, lo, hi = np.array(r2), np.array(lo2), np.array(hi2)
        return cls(ux, r, np.minimum(lo, r), np.maximum(hi, r))


@dataclass(frozen=True)
class Rate:
    value: float
    low: float
    high: float

    def get(self, which: str = "value") -> float:
        return {"value": self.value, "low": self.low, "high": self.high}[which]


@dataclass(frozen=True)
class DeviceProfile:
    spec: DeviceSpec
    origin: str  # "measured", "datasheet", "calibrated"
    gemm: Mapping[str, Curve]
    attention_fwd: Mapping[str, Curve]
    attention_bwd: Mapping[str, Curve]
    memory_bandwidth: Rate
    intra_link_efficiency: Rate
    inter_link_efficiency: Rate
    assumptions: tuple[str, ...] = ()
    fallback: Mapping[str, Any] = field(default_factory=dict)  # parameters for unmeasured dtypes
    states_memory: bool = False   # memory_bandwidth measured (STREAM) or a stated memory_efficiency, not the default
    measured_on: DeviceSpec | None = None  # the part a profile used --profile-anyway was measured on (else spec)
    kernel_gap_s: Rate | None = None  # seconds per kernel of a graph-replayed chain (bench launch), when measured
    kernel_launch_s: Rate | None = None  # seconds per kernel of the eagerly launched chain (bench launch), when measured
    # grouped expert GEMMs measured by `recoque bench moe`, per dtype (planner/shape_rates.py rows)
    moe: Mapping[str, tuple[tuple[float, ...], ...]] = field(default_factory=dict)

    # --- public queries ----------------------------------------------------------------------
    def gemm_flop_s(self, dtype: str, m: int, n: int, k: int, which: str = "value") -> float:
        """Achieved FLOP/s of one (m x k) @ (k x n) GEMM: a measured curve interpolated by its size
        2mnk, or the parametric shape model of `gemm_time_s`."""
        return float(2.0 * m * n * k / self.gemm_time_s(dtype, m, n, k, which))

    def gemm_time_s(self, dtype: str, m: Any, n: Any, k: Any, which: str = "value", batch: Any = 1.0) -> Any:
        """Seconds for `batch` GEMMs of (m x k) @ (k x n); numpy arrays broadcast.

        Measured dtype: the measured curve at the total work. Otherwise the parametric model
            t = max(F / (eff * peak * wave * k / (k + k0)), bytes / HBM) + overhead_s
        F = 2 m n k batch; eff = the plateau efficiency (a full last wave, a long k loop);
        wave = wave_efficiency over the device's SMs/CUs (only when the profile states
        wave_quantization, i.e. knows its compute units); k / (k + k0) = the main-loop prologue
        and epilogue of a short inner dimension (k0 = thin_gemm_dim); bytes = operands and output
        once (roofline); overhead_s = launch and tail per kernel."""
        m, n, k, batch = (np.asarray(x, dtype=float) for x in (m, n, k, batch))
        work = 2.0 * m * n * k * batch
        if self.origin == "measured" and dtype in self.gemm:
            return work / self.gemm[dtype].at(work, which)
        fb = self.fallback
        unc = float(fb.get("uncertainty", DEFAULT_UNCERTAINTY))
        eff = float(fb.get("gemm_efficiency", DEFAULT_GEMM_EFFICIENCY))
        if dtype in FP8_DTYPES:
            eff = eff * float(fb.get("fp8_gemm_relative_efficiency", DEFAULT_FP8_RELATIVE_EFFICIENCY))
        elif dtype in FP4_DTYPES:
            eff = eff * float(fb.get("fp4_gemm_relative_efficiency", DEFAULT_FP4_RELATIVE_EFFICIENCY))
        eff = min(1.0, eff * {"value": 1.0, "low": 1.0 - unc, "high": 1.0 + unc}[which])
        rate = eff * self.peak_flop_s(dtype) * self.thin_gemm_factor(k)
        units = float(fb.get("compute_units", 0.0) or (self.spec.compute_units or 0))
        if fb.get("wave_quantization") and units > 0:
            rate = rate * wave_efficiency(m, n, batch, units)
        nbytes = ELEMENT_BYTES.get(dtype, 2.0) * (m * k + k * n + m * n) * batch
        return np.maximum(work / rate, nbytes / self.memory_bandwidth.get(which)) + self.kernel_overhead_s()

    def has_expert_rates(self, dtype: str) -> bool:
        return bool(self.moe.get(dtype))

    def expert_gemm_time_s(self, dtype: str, m: Any, n: Any, k: Any, which: str = "value") -> Any:
        """Seconds of one expert's (m x k) @ (k x n) inside a grouped MoE GEMM whose experts see m
        rows each: at the grouped rate `recoque bench moe` measured (the nearest measured (n, k),
        planner/shape_rates.py), the dense GEMM model where that dtype was not measured."""
        if not self.has_expert_rates(dtype):
            return self.gemm_time_s(dtype, m, n, k, which)
        m, n, k = (np.asarray(x, dtype=float) for x in (m, n, k))
        return 2.0 * m * n * k / shape_rates.rate_at(self.moe[dtype], m, n, k, which)

    def attention_flop_s(self, dtype: str, batch: int, heads: int, seq: int, head_dim: int,
                         direction: str = "fwd", which: str = "value") -> float:
        """Achieved attention-core FLOP/s in full (non-causal) FLOPs, by forward work 4*b*h*s^2*d."""
        work = 4.0 * batch * heads * seq * seq * head_dim
        return float(self.attention_curve(dtype, direction).at(work, which))

    def attention_time_s(self, dtype: str, direction: str, flops: Any, exps: Any, which: str = "value",
                         work: Any = None) -> Any:
        """Seconds of fused attention doing `flops` (full-count FLOPs) and `exps` softmax exponentials,
        the curve read at `work` (default: `flops`: the forward FLOPs in both directions).

        The softmax sits on each tile's critical path between the two GEMMs (NVIDIA, 'Making Softmax
        More Efficient with NVIDIA Blackwell Ultra', 2026: BMM2 waits for the exponentials), so the
        curve, read at the reference head dim (`ATTENTION_REFERENCE_FLOPS_PER_PAIR`) on the part its
        efficiency comes from, holds work / that many exponentials at that part's rate. Where this
        part's rate is known, they are swapped for the `exps` this attention runs, at this part's rate:
        t = flops / curve + max(exps, E_ref) / own - E_ref / reference rate, E_ref = work / reference
        FLOPs per pair. A head-128 attention on its own part is the curve; a head-64 one runs twice the
        exponentials per FLOP (gpt-oss) and pays them; a part with faster special function units
        (Blackwell Ultra) gains their time. Heads wider than 128 (MLA's 192/128) are not credited
        fewer: FlashAttention-3's causal sweep gains 4% from head 128 to 256 (616 -> 642 TFLOPS, its
        Figure 5), where the exponentials alone would give 18%; other limits of a wide tile take over.
        Never below the FLOPs at the datasheet peak. A measured curve is taken as it is (the bench
        sweeps head 64 and 128 alike)."""
        work = flops if work is None else work
        t = flops / self.attention_curve(dtype, direction).at(work, which)
        rates = None if self.origin == "measured" else _exp_rates(self.spec, self.fallback)
        if rates is None:
            return t
        ref, own = rates
        at_reference = work / ATTENTION_REFERENCE_FLOPS_PER_PAIR
        swapped = (at_reference + narrow_head_exponentials(work, exps)) / own - at_reference / ref
        return np.maximum(t + swapped, flops / self.peak_flop_s(dtype))

    def kernel_overhead_s(self) -> float:
        """Launch and tail time every kernel pays at least: measured, the eager launch chain's median
        seconds per kernel (`recoque bench launch`: each kernel launched from Python, as a framework
        launches a training step's kernels, so the larger of the host's dispatch and the device's
        launch); else the profile's stated kernel_overhead_s."""
        if self.kernel_launch_s is not None:
            return self.kernel_launch_s.value
        return float(self.fallback.get("kernel_overhead_s", DEFAULT_KERNEL_OVERHEAD_S))

    def thin_gemm_factor(self, inner_dim: Any) -> Any:
        """Efficiency multiplier for a GEMM whose inner dimension is `inner_dim` (attention's
        head_dim): inner / (inner + thin_gemm_dim) with the profile's stated thin_gemm_dim."""
        d0 = float(self.fallback.get("thin_gemm_dim", DEFAULT_THIN_GEMM_DIM))
        k = np.asarray(inner_dim, dtype=float)
        out = k / (k + d0)
        return float(out) if out.ndim == 0 else out

    def memory_bandwidth_bytes_s(self, which: str = "value") -> float:
        return self.memory_bandwidth.get(which)

    def peak_flop_s(self, dtype: str) -> float:
        p = self.spec.peak(dtype)
        if not p:
            has = [d for d in ("fp4", "fp8", "bf16", "fp16", "fp32", "fp64") if self.spec.peak(d)]
            raise BadInput(f"device {self.spec.key}: no datasheet peak for {dtype} (it has {', '.join(has) or 'none'})",
                           f"use --dtype {'fp8' if dtype == 'fp4' and 'fp8' in has else 'bf16'}, or add the "
                           f"{dtype}_tflops to [devices.{self.spec.key}] in {self.spec.origin} if the part computes in it")
        return p

    # --- curves, with datasheet fallback per dtype ------------------------------------------
    def gemm_curve(self, dtype: str) -> Curve:
        if dtype in self.gemm:
            return self.gemm[dtype]
        return self._fallback_curve(dtype, "gemm_efficiency", DEFAULT_GEMM_EFFICIENCY)

    def attention_curve(self, dtype: str, direction: str = "fwd") -> Curve:
        table = self.attention_bwd if direction == "bwd" else self.attention_fwd
        if dtype in table:
            return table[dtype]
        if direction == "bwd" and dtype in self.attention_fwd:
            return self.attention_fwd[dtype]
        return self._fallback_curve(dtype, "attention_efficiency", DEFAULT_ATTENTION_EFFICIENCY)

    def _fallback_curve(self, dtype: str, key: str, default: float) -> Curve:
        eff = float(self.fallback.get(key, default))
        unc = float(self.fallback.get("uncertainty", DEFAULT_UNCERTAINTY))
        return Curve.parametric(self.peak_flop_s(dtype), eff, self.kernel_overhead_s(), unc)

    def uses_datasheet_for(self, dtype: str) -> bool:
        return dtype not in self.gemm

    def describe(self, dtype: str) -> tuple[str, ...]:
        """The assumptions that apply when this profile is used at `dtype`."""
        out = list(self.assumptions)
        if self.origin == "measured" and self.uses_datasheet_for(dtype):
            eff = self.fallback.get("gemm_efficiency", DEFAULT_GEMM_EFFICIENCY)
            out.append(f"{dtype} GEMM not measured: datasheet peak x default efficiency {eff:.2f} (stated, not measured)")
        if self.origin == "measured" and dtype not in self.attention_fwd:
            eff = self.fallback.get("attention_efficiency", DEFAULT_ATTENTION_EFFICIENCY)
            out.append(f"{dtype} attention not measured: datasheet peak x default efficiency {eff:.2f}")
        return tuple(dict.fromkeys(out))

    # --- constructors -----------------------------------------------------------------------
    @classmethod
    def from_datasheet(cls, spec: DeviceSpec, default_efficiency: float = DEFAULT_GEMM_EFFICIENCY,
                       attention_efficiency: float = DEFAULT_ATTENTION_EFFICIENCY,
                       memory_efficiency: float = DEFAULT_MEMORY_EFFICIENCY,
                       intra_link_efficiency: float = DEFAULT_INTRA_LINK_EFFICIENCY,
                       inter_link_efficiency: float = DEFAULT_INTER_LINK_EFFICIENCY,
                       kernel_overhead_s: float = DEFAULT_KERNEL_OVERHEAD_S,
                       uncertainty: float = DEFAULT_UNCERTAINTY) -> "DeviceProfile":
        params = dict(gemm_efficiency=default_efficiency, attention_efficiency=attention_efficiency,
                      memory_efficiency=memory_efficiency, intra_link_efficiency=intra_link_efficiency,
                      inter_link_efficiency=inter_link_efficiency, kernel_overhead_s=kernel_overhead_s,
                      uncertainty=uncertainty)
        note = (f"{spec.name}: nothing measured; datasheet peak x default GEMM efficiency {default_efficiency:.2f}, "
                f"attention {attention_efficiency:.2f}, memory {memory_efficiency:.2f}, links "
                f"{intra_link_efficiency:.2f}/{inter_link_efficiency:.2f} (stated defaults, +/-{uncertainty:.0%})")
        return cls.from_parameters(spec, params, origin="datasheet", note=note)

    @classmethod
    def from_parameters(cls, spec: DeviceSpec, params: Mapping[str, Any], origin: str = "calibrated",
                        note: str = "", dtypes: tuple[str, ...] = ("bf16", "fp16")) -> "DeviceProfile":
        """A parametric profile: efficiencies (fractions of the datasheet) and a kernel overhead."""
        p = {k: float(v) for k, v in params.items() if isinstance(v, (int, float))}
        if "gemm_anchor_tflops" in p and "gemm_efficiency" not in p:
            p["gemm_efficiency"] = anchored_gemm_efficiency(spec, p, dtypes[0])
        for k in ("gemm_efficiency", "attention_efficiency", "memory_efficiency",
                  "intra_link_efficiency", "inter_link_efficiency"):
            if k in p and not 0 < p[k] <= 1:
                raise BadInput(f"profile for {spec.key}: {k} must be in (0, 1], got {p[k]}", "fix the profile")
        unc = p.get("uncertainty", DEFAULT_UNCERTAINTY)
        ovh = p.get("kernel_overhead_s", DEFAULT_KERNEL_OVERHEAD_S)
        gemm, att = {}, {}
        for dt in dtypes:
            peak = spec.peak(dt)
            if peak:
                gemm[dt] = Curve.parametric(peak, p.get("gemm_efficiency", DEFAULT_GEMM_EFFICIENCY), ovh, unc)
                att[dt] = Curve.parametric(peak, p.get("attention_efficiency", DEFAULT_ATTENTION_EFFICIENCY), ovh, unc)
        if not spec.hbm_bandwidth_bytes_s:
            raise BadInput(f"device {spec.key}: HBM bandwidth unknown", spec.complete("hbm_bandwidth_tb_s"))
        mem = spec.hbm_bandwidth_bytes_s * p.get("memory_efficiency", DEFAULT_MEMORY_EFFICIENCY)

        def rate(v: float, key: str = "") -> Rate:
            # a measured spread (`<key>_low` / `<key>_high`, e.g. nccl-tests busbw across runs) wins
            # over the profile's generic +/- uncertainty
            lo, hi = p.get(f"{key}_low", v * (1 - unc)), p.get(f"{key}_high", v * (1 + unc))
            return Rate(v, min(lo, v), min(max(hi, v), 1.0))

        return cls(spec=spec, origin=origin, gemm=gemm, attention_fwd=att, attention_bwd={},
                   memory_bandwidth=Rate(mem, mem * (1 - unc), mem * (1 + unc)), states_memory="memory_efficiency" in p,
                   intra_link_efficiency=rate(p.get("intra_link_efficiency", DEFAULT_INTRA_LINK_EFFICIENCY),
                                              "intra_link_efficiency"),
                   inter_link_efficiency=rate(p.get("inter_link_efficiency", DEFAULT_INTER_LINK_EFFICIENCY),
                                              "inter_link_efficiency"),
                   assumptions=tuple(a for a in (note, _exp_note(spec, p)) if a), fallback=p)

    @classmethod
    def from_results(cls, doc: Any, spec: DeviceSpec,
                     default_efficiency: float = DEFAULT_GEMM_EFFICIENCY) -> "DeviceProfile":
        """Curves from a ResultsDocument (recoque.bench.schema); datasheet where a dtype is missing."""
        base = cls.from_datasheet(spec, default_efficiency=default_efficiency)
        notes: list[str] = []
        gemm = _gemm_curves(doc, notes)
        att_f, att_b = _attention_curves(doc, notes)
        moe = shape_rates.rate_table(doc, "moe", shape_rates.moe_rows_per_expert)
        if moe:
            notes.append(f"MoE expert GEMMs ({', '.join(sorted(moe))}): forward and data gradient at the grouped rate "
                         "`bench moe` measured; the weight gradient (not measured) at the dense GEMM model x the same "
                         "grouped / dense ratio")
        mem = base.memory_bandwidth
        streams = [r for r in doc.select("stream") if r.unit == "GB/s"]
        if streams:
            big = max(r.params.get("n_elements", 0) for r in streams)
            top = [r for r in streams if r.params.get("n_elements", 0) == big]
            best = max(top, key=lambda r: r.achieved)
            worst = min(r.work / max(r.times_s) for r in top)
            mem = Rate(best.achieved * 1e9, worst, best.best * 1e9)
            notes.append(f"memory bandwidth from STREAM {best.op} ({best.achieved:.0f} GB/s measured)")
        else:
            notes.append("memory bandwidth not measured: datasheet x default efficiency")
        if not gemm:
            notes.append("no GEMM measured: datasheet peak x default efficiency (stated)")
        gap, eager = launch_gap(doc, "graph"), launch_gap(doc, "eager")
        if gap is not None:
            notes.append(f"kernel launch gap from the graph-replayed chain ({gap.value * 1e6:.2f} us per kernel measured)")
        if eager is not None:
            notes.append(f"per-kernel floor from the eagerly launched chain ({eager.value * 1e6:.2f} us per kernel "
                         f"measured) in place of the stated {base.kernel_overhead_s() * 1e6:g} us")
        notes.append("link efficiencies: stated defaults (collectives measured per system, not per device)")
        dev = dict(getattr(doc, "device", {}) or {})
        head = f"measured profile of {dev.get('name', spec.name)}"
        limit = (getattr(doc, "environment", {}) or {}).get("gpu_power_limit_w")
        if isinstance(limit, (int, float)) and not isinstance(limit, bool):
            board = f" of {spec.tdp_w:g} W board power" if spec.tdp_w else ""
            head += f", measured with the GPU limited to {limit:g} W{board}"
        u = MEASURED_COMPOSITION_UNCERTAINTY
        notes.append(f"measured GEMM and attention rates +/-{u:.0%} at least: how a framework composes the kernels "
                     f"(the shipped profiles' held-out band)")
        return replace(base, origin="measured", gemm={k: v.widened(u) for k, v in gemm.items()},
                       attention_fwd={k: v.widened(u) for k, v in att_f.items()},
                       attention_bwd={k: v.widened(u) for k, v in att_b.items()},
                       memory_bandwidth=mem, states_memory=bool(streams), assumptions=(head, *notes),
                       kernel_gap_s=gap, kernel_launch_s=eager,
                       moe={k: shape_rates.widened(v, u) for k, v in moe.items()})

    def _assumed_corner(self, which: str) -> tuple[DeviceSpec, dict[str, float]]:
        """The spec at this corner's end of each ASSUMED peak's bracket (spec.assumed_rates: MI430X BF16
        and FP8) and the factor on the rates built from it (dtype -> factor); a measured GEMM keeps its rate."""
        peaks, span = dict(self.spec.peak_flop_s), {}
        for rate in self.spec.assumed_rates:
            lo, hi = self.spec.peak_range_flop_s[rate]
            f = (lo if which == "low" else hi) / peaks[rate]
            peaks[rate] *= f
            dtype = next((d for d, r in GEMM_DTYPE_TO_RATE.items() if r == rate), rate)
            if self.origin != "measured" or self.uses_datasheet_for(dtype):
                span[dtype] = f
        return (replace(self.spec, peak_flop_s=peaks) if self.spec.assumed_rates else self.spec), span

    def bound(self, which: str) -> "DeviceProfile":
        """A copy whose central values are the low or high bound (for corner evaluation)."""
        if which == "value":
            return self

        def c(cv: Curve, f: float) -> Curve:
            y = (cv.low if which == "low" else cv.high) * f
            return Curve(cv.log2_work, y, y, y)

        def r(x: Rate) -> Rate:
            v = x.get(which)
            return Rate(v, v, v)

        fb = dict(self.fallback)
        u = float(fb.get("uncertainty", DEFAULT_UNCERTAINTY))
        for k in ("gemm_efficiency", "attention_efficiency"):
            if k in fb:
                fb[k] = min(1.0, fb[k] * (1 - u if which == "low" else 1 + u))
        fb["uncertainty"] = 0.0
        spec, span = self._assumed_corner(which)
        # a time, not a rate: the slow (low) corner takes its slow end
        launch = self.kernel_launch_s
        if launch is not None:
            t = launch.high if which == "low" else launch.low
            launch = Rate(t, t, t)
        return replace(self, spec=spec, kernel_launch_s=launch,
                       gemm={k: c(v, span.get(k, 1.0)) for k, v in self.gemm.items()},
                       moe={k: shape_rates.corner(v, which) for k, v in self.moe.items()},
                       attention_fwd={k: c(v, span.get(k, 1.0)) for k, v in self.attention_fwd.items()},
                       attention_bwd={k: c(v, span.get(k, 1.0)) for k, v in self.attention_bwd.items()},
                       memory_bandwidth=r(self.memory_bandwidth),
                       intra_link_efficiency=r(self.intra_link_efficiency),
                       inter_link_efficiency=r(self.inter_link_efficiency), fallback=fb)


def anchored_gemm_efficiency(spec: DeviceSpec, p: Mapping[str, float], dtype: str) -> float:
    """The plateau efficiency at which the GEMM model reproduces a measured best GEMM: the rate
    `gemm_anchor_tflops` at shape gemm_anchor_m x n x k (a MAMF-finder-style sweep's best shape),
    times `gemm_sustained_fraction` (what a long training run sustains of that burst figure).
    Solved from t = F / (eff * peak * wave * thin) + overhead, the anchor being compute-bound."""
    m, n, k = (p[f"gemm_anchor_{x}"] for x in "mnk")
    work = 2.0 * m * n * k
    t_target = work / (p["gemm_anchor_tflops"] * 1e12 * p.get("gemm_sustained_fraction", 1.0))
    probe = DeviceProfile.from_parameters(spec, {**{x: v for x, v in p.items() if not x.startswith("gemm_anchor")},
                                                 "gemm_efficiency": 1.0, "uncertainty": 0.0}, dtypes=(dtype,))
    t_ideal = float(probe.gemm_time_s(dtype, m, n, k)) - float(p.get("kernel_overhead_s", DEFAULT_KERNEL_OVERHEAD_S))
    eff = t_ideal / (t_target - float(p.get("kernel_overhead_s", DEFAULT_KERNEL_OVERHEAD_S)))
    if not 0 < eff <= 1:
        raise BadInput(f"profile for {spec.key}: GEMM anchor {p['gemm_anchor_tflops']} TFLOP/s implies efficiency "
                       f"{eff:.3f}", "check gemm_anchor_tflops against the datasheet peak")
    return eff


def _spread(rec: Any) -> tuple[float, float, float]:
    """(median, low, high) rates in FLOP/s from the raw samples: low at the 90th-percentile time."""
    ts = sorted(rec.times_s)
    slow = ts[min(len(ts) - 1, int(0.9 * len(ts)))]
    return rec.work / rec.median_s, rec.work / slow, rec.work / ts[0]


def launch_gap(doc: Any, op: str = "graph") -> Rate | None:
    """Seconds per kernel of the launch chain run as `op` (bench/launch.py: graph-replayed or
    eager), or None when not measured: the median of its rounds' medians, low the fastest sample,
    high the slowest round's 90th percentile, each over the chain's kernel count."""
    recs = [r for r in doc.select("launch", op=op) if r.verified and r.unit == "Mkernel/s"]
    if not recs:
        return None
    per = [np.asarray(r.times_s, dtype=float) / r.work for r in recs]
    value = float(np.median([np.median(t) for t in per]))
    return Rate(value, float(min(t.min() for t in per)), float(max(np.percentile(t, 90) for t in per)))


def _gemm_curves(doc: Any, notes: list[str]) -> dict[str, Curve]:
    out = {}
    by_dtype: dict[str, list] = {}
    for r in doc.select("gemm"):
        if r.unit == "TFLOP/s" and r.verified and all(k in r.params for k in ("m", "n", "k")):
            by_dtype.setdefault(r.dtype, []).append(r)
    for dt, recs in by_dtype.items():
        work = np.array([2.0 * r.params["m"] * r.params["n"] * r.params["k"] for r in recs])
        # The rate is defined on 2mnk whatever the record counted (they agree for plain GEMMs).
        stats = np.array([[w / r.work * x for x in _spread(r)] for w, r in zip(work, recs)])
        out[dt] = Curve.from_points(work, stats[:, 0], stats[:, 1], stats[:, 2])
        notes.append(f"{dt} GEMM: measured curve, {len(recs)} sizes from {work.min():.2g} to {work.max():.2g} FLOP, "
                     f"fastest case {stats[:, 0].max() / 1e12:.0f} TFLOP/s (a report's headline is the median of "
                     "the confirmation rounds)")
    return out


def attention_full_work(p: Mapping[str, Any]) -> float:
    """Forward FLOPs of an attention record's shape in the full (non-causal) convention: 4 b h sq sk d."""
    return 4.0 * p["batch"] * p["heads_q"] * p["seq_q"] * p["seq_k"] * p["head_dim"]


def narrow_head_exponentials(work: Any, exps: Any) -> Any:
    """Softmax exponentials an attention of `work` forward FLOPs runs beyond the head-128 reference
    its rate is read at (`ATTENTION_REFERENCE_FLOPS_PER_PAIR`): a head-64 one runs twice as many;
    wider heads are not credited fewer (DeviceProfile.attention_time_s says why)."""
    return np.maximum(_exponentials_beyond_reference(work, exps), 0.0)


def narrow_head_exponentials_float(work: float, exps: float) -> float:
    """narrow_head_exponentials of one pair of floats, as a float, without numpy's per-scalar cost
    (the serving step asks ~10^5 times a check-set run): max(x, 0.0) is np.maximum(x, 0.0) for a
    float x, -0.0 and NaN included."""
    return float(max(_exponentials_beyond_reference(work, exps), 0.0))


def _exponentials_beyond_reference(work: Any, exps: Any) -> Any:
    return exps - work / ATTENTION_REFERENCE_FLOPS_PER_PAIR


def _exp_rates(spec: DeviceSpec, p: Mapping[str, Any]) -> tuple[float, float] | None:
    """(reference, own) softmax exponentials per second where this part's is stated, else None: the
    reference is the rate of the part the attention efficiency was measured on
    (`attention_exp2_reference_tera_per_s`), this part's own where the profile names none."""
    if not spec.exp2_per_s:
        return None
    ref = float(p.get("attention_exp2_reference_tera_per_s", 0.0)) * 1e12
    return (ref if ref > 0 else spec.exp2_per_s), spec.exp2_per_s


def _exp_note(spec: DeviceSpec, p: Mapping[str, Any]) -> str:
    """The assumption DeviceProfile.attention_time_s adds, where it applies."""
    rates = _exp_rates(spec, p)
    if rates is None:
        return ""
    ref, own = (r / 1e12 for r in rates)
    swap = (f"the attention efficiency of a part whose SFUs run {ref:g} TeraExponentials/s, less the softmax time "
            f"saved at this part's {own:g}" if ref != own else
            f"softmax exponentials at this part's {own:g} TeraExponentials/s")
    return (f"{spec.key} fused attention: {swap} (seeds/hardware.toml exp2_tera_per_s); the efficiency is read at "
            "head dim 128, so a head dim with more exponentials per FLOP (64: gpt-oss) runs slower; wider heads "
            "(MLA 192/128) are not credited fewer")


# Training attention runs at the flash-attention backend's rate (FA2 class; on ROCm the AOTriton/CK
# kernel of that name), not at the fastest backend's: the Hopper profiles' stated 0.50 is FA2's
# rate measured on an H200, and the held-out H100/H200 runs match it, not cuDNN's isolated 0.77-0.95
# (seeds/validation.toml [profiles.h100_sxm.sources] attention_efficiency; with the measured H200
# profile the 5 H200 rows in the verdict move from -30..-5% to -16..+7% of their published times).
FLASH_BACKEND = "FLASH_ATTENTION"


def _flash_median_s(r: Any) -> float | None:
    """FLASH_BACKEND's probe median of an attention record that ran another backend, else None."""
    flash = sdpa_backend_times(r.tags).get(FLASH_BACKEND, math.nan)
    return flash if r.backend != FLASH_BACKEND and math.isfinite(flash) and flash > 0 else None


def _flash_times(r: Any) -> tuple[float, float, float]:
    """(median, p90, min) seconds of an attention record at FLASH_BACKEND's probe median, with the
    record's own spread; the record's own times where it ran that backend or never probed it."""
    own = tuple(r.work / x for x in _spread(r))  # median, 90th-percentile and fastest times
    flash = _flash_median_s(r)
    k = 1.0 if flash is None else flash / own[0]
    return own[0] * k, own[1] * k, own[2] * k  # the flash median with the record's own spread


def _attention_curves(doc: Any, notes: list[str]) -> tuple[dict[str, Curve], dict[str, Curve]]:
    fwd: dict[str, list] = {}
    bwd: dict[str, list] = {}
    need = ("batch", "heads_q", "seq_q", "seq_k", "head_dim")
    for r in doc.select("attention"):
        if r.unit != "TFLOP/s" or not r.verified or not all(k in r.params for k in need):
            continue
        d = str(r.params.get("direction", "fwd"))
        if d in ("fwd", "bwd"):
            (bwd if d == "bwd" else fwd).setdefault(r.dtype, []).append(r)

    def build(table: dict[str, list], factor: float, label: str) -> dict[str, Curve]:
        out = {}
        for dt, recs in table.items():
            w_fwd = np.array([attention_full_work(r.params) for r in recs])
            full = w_fwd * factor  # model FLOPs of this direction, full (non-causal) convention
            t = np.array([_flash_times(r) for r in recs])
            out[dt] = Curve.from_points(w_fwd, full / t[:, 0], full / t[:, 1], full / t[:, 2])
            gain = [f / r.median_s for r in recs if (f := _flash_median_s(r)) is not None]
            how = (f"at the {FLASH_BACKEND} backend's probe medians ({len(gain)} shapes ran a faster backend in "
                   f"isolation, {min(gain):.2f}-{max(gain):.2f}x its speed; published training runs match the flash rate)" if gain else "")
            notes.append(f"{dt} attention {label}: measured curve, {len(recs)} shapes (full-FLOP convention) {how}".rstrip())
        return out

    return build(fwd, 1.0, "forward"), build(bwd, 2.0, "backward")
