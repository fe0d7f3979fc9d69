"""Rates and engine constants for the serving model, at three corners: the central value, the
pessimistic corner ("low": every constant at the end of its range that lowers throughput) and the
optimistic corner ("high"). The printed low-high range of a serving estimate comes from them, so from
the stated uncertainty of the constants, never from the answer: planner/serving_bounds.py moves one
group of constants at a time to a corner and combines the shifts in quadrature.

Where the rates come from, in order: a measured profile for this device (`--profile`), the best
public measurements in seeds/serving.toml [rates.<device>], the datasheet x achieved fraction of
seeds/workloads.toml [efficiency]. Engine constants: seeds/serving.toml [engines.<class>].
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

from recoque.catalog import DeviceSpec
from recoque.errors import BadInput
from recoque.fileio import read_seed_toml
from recoque.planner import power, shape_rates
from recoque.planner.serving_step import Rates
from recoque.planner.system import SystemSpec
from recoque.planner.workloads import gemm_rate, memory_rate, profile_applies

CORNERS = ("value", "low", "high")
ENGINES = ("vllm", "vllm-v0", "trtllm", "sglang", "atom")
# Link efficiency of a ring all-reduce against the stated per-GPU one-direction bandwidth, by vendor
# (AMD ROCm blog "mi300x-rccl-xgmi", 2 Mar 2025; ROCm/system-acceptance-docs docs/gpus/mi300x.md;
# stas00/ml-engineering network/benchmarks/README.md for 8x H200). AMD: RCCL on 8x MI300X reaches
# 318 GB/s busbw of 448 (0.71; AMD blog "mi300x-rccl-xgmi", RCCL 2.22.3, 8 GiB), 315-336 realised
# (0.70-0.75), acceptance floor 304 (0.68): the slowest of the 7 xGMI links caps every ring.
# NVIDIA and others: NVSwitch gives every GPU its full link; NCCL 8x H200 reaches 482 of 450 with
# NVLS (>1), serving engines' own all-reduce kernels less: 0.8 (0.7-1.0), stated.
LINK_EFFICIENCY = {"amd": {"value": 0.71, "low": 0.68, "high": 0.75},
                   "other": {"value": 0.8, "low": 0.7, "high": 1.0}}


def link_efficiency(vendor: str) -> Mapping[str, float]:
    return LINK_EFFICIENCY.get(vendor, LINK_EFFICIENCY["other"])


@lru_cache(maxsize=1)
def _seed() -> dict[str, Any]:
    return read_seed_toml("serving.toml")


def _ranged(table: Mapping[str, Any], key: str, where: str) -> tuple[float, float, float]:
    if key not in table:
        raise BadInput(f"seeds/serving.toml {where}: `{key}` is missing", "add it with _low/_high and a source")
    v = float(table[key])
    return v, float(table.get(f"{key}_low", v)), float(table.get(f"{key}_high", v))


def _corner(vlh: tuple[float, float, float], corner: str, higher_is_faster: bool) -> float:
    v, lo, hi = vlh
    if corner == "value":
        return v
    return (lo if higher_is_faster else hi) if corner == "low" else (hi if higher_is_faster else lo)


@dataclass(frozen=True)
class Engine:
    key: str
    name: str
    efficiency: tuple[float, float, float]
    step_overhead_s: tuple[float, float, float]
    kv_reserve: str           # "full": prompt + max output reserved; "live": blocks as produced
    max_batch: int
    usable_hbm_fraction: float
    source: str
    max_num_tokens: int = 8192        # tokens one step may carry (the chunked-prefill budget)
    budget_counts_decode: bool = True  # the budget holds the step's decode tokens too (TensorRT-LLM, vLLM)
    allreduce_norm_fusion: bool = False  # by default each TP all-reduce also adds the residual and runs the RMSNorm
    prefill_graphs: bool = True  # forwards that carry prompt tokens replay captured graphs (False: they run eagerly)
    kv_fraction_of_free: bool = False  # the usable fraction applies to the memory weights and workspace leave (TensorRT-LLM)
    windowed_kv_memory: bool = True  # windowed layers hold only their window of KV in memory (False: sized as full attention)
    kv_from_checkpoint: bool = False  # the default KV dtype is the checkpoint's recorded KV quantization (else the model dtype)
    attention_dp_limits: str = "per_rank"  # under attention DP: each rank has its own step token budget, or "global" (shared)
    attention_dp_whole: tuple[str, ...] = ()  # under attention DP, what else each rank holds whole: "ffn", "lm_head"
    # host (CPU) work per running request and rank in each step, overlapped with the GPU step: the
    # step lasts the longer of the two (seeds/serving.toml host_per_request_us; (0, 0, 0): none stated)
    host_per_request_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    vendors: tuple[str, ...] = ("amd", "nvidia")  # whose GPUs it runs on (seeds/serving.toml vendors)

    def note(self) -> str:
        v, lo, hi = self.efficiency
        return (f"engine {self.name}: efficiency {v:.2f} ({lo:.2f}-{hi:.2f}) of the kernel-level step (the GEMMs' weight "
                f"read excepted: it runs at the achieved HBM rate), "
                f"{self.step_overhead_s[0] * 1e3:g} ms CPU per step, {self._host_words()}KV reserved '{self.kv_reserve}', "
                f"default batch cap {self.max_batch}, default step budget {self.max_num_tokens} tokens "
                f"({'prefill and decode' if self.budget_counts_decode else 'prefill only'}), "
                f"TP all-reduce {'fused' if self.allreduce_norm_fusion else 'not fused'} with the residual add and RMSNorm by default, "
                f"prefill forwards {'replay graphs' if self.prefill_graphs else 'run eagerly (no graph replay)'}, "
                f"windowed layers' KV memory {'bounded by the window' if self.windowed_kv_memory else 'sized as full attention'}, "
                f"default KV dtype {'the one the checkpoint records' if self.kv_from_checkpoint else 'the model dtype'} "
                f"(seeds/serving.toml [engines.{self.key}]: {self.source})")

    def _host_words(self) -> str:
        v, lo, hi = (x * 1e6 for x in self.host_per_request_s)
        return (f"host work {v:g} us per running request and rank beside each step ({lo:g}-{hi:g}; "
                f"the step lasts the longer), " if hi > 0 else "")


def _kv_fraction_of(t: dict, where: str) -> str:
    v = str(t.get("kv_fraction_of", "total"))
    if v not in ("total", "free"):
        raise BadInput(f"{where} kv_fraction_of = {v!r}", 'use "total" (vLLM, SGLang) or "free" (TensorRT-LLM)')
    return v


def _attention_dp_limits(t: dict, where: str) -> str:
    v = str(t.get("attention_dp_limits", "per_rank"))
    if v not in ("per_rank", "global"):
        raise BadInput(f"{where} attention_dp_limits = {v!r}", 'use "per_rank" (TensorRT-LLM, vLLM) or "global" (SGLang)')
    return v


ADP_WHOLE = ("ffn", "lm_head")


def _attention_dp_whole(t: dict, where: str) -> tuple[str, ...]:
    v = t.get("attention_dp_whole", [])
    if not isinstance(v, list) or any(x not in ADP_WHOLE for x in v):
        raise BadInput(f"{where} attention_dp_whole = {v!r}", f"use a list of {', '.join(map(repr, ADP_WHOLE))}, or []")
    return tuple(str(x) for x in v)


def load_engine(key: str) -> Engine:
    table = _seed().get("engines", {})
    if key not in table:
        raise BadInput(f"unknown engine {key!r}", f"use one of {', '.join(sorted(table))}")
    t, where = table[key], f"[engines.{key}]"
    ms = _ranged(t, "step_overhead_ms", where)
    return Engine(key=key, name=str(t.get("name", key)), efficiency=_ranged(t, "engine_efficiency", where),
                  step_overhead_s=tuple(x / 1e3 for x in ms), kv_reserve=str(t.get("kv_reserve", "live")),
                  max_batch=int(t.get("max_batch", 256)), usable_hbm_fraction=float(t.get("usable_hbm_fraction", 0.9)),
                  source=str(t.get("sources", {}).get("engine_efficiency", "")),
                  max_num_tokens=int(t.get("max_num_tokens", 8192)), budget_counts_decode=bool(t.get("budget_counts_decode", True)),
                  allreduce_norm_fusion=bool(t.get("allreduce_norm_fusion", False)),
                  prefill_graphs=bool(t.get("prefill_graphs", True)),
                  kv_fraction_of_free=_kv_fraction_of(t, where) == "free",
                  windowed_kv_memory=bool(t.get("windowed_kv_memory", True)),
                  kv_from_checkpoint=bool(t.get("kv_from_checkpoint", False)),
                  attention_dp_limits=_attention_dp_limits(t, where),
                  attention_dp_whole=_attention_dp_whole(t, where),
                  host_per_request_s=tuple(x * 1e-6 for x in _ranged(t, "host_per_request_us", where))
                  if "host_per_request_us" in t else (0.0, 0.0, 0.0),
                  vendors=tuple(str(v) for v in t.get("vendors", ("amd", "nvidia"))))


def kernel_constants() -> Mapping[str, Any]:
    return _seed().get("kernel", {})


def hbm_capacity_bytes(spec: DeviceSpec) -> float:
    if not spec.hbm_bytes:
        raise BadInput(f"device {spec.key}: HBM capacity unknown", spec.complete("hbm_capacity_gb"))
    return spec.hbm_bytes * float(kernel_constants().get("hbm_gb_per_datasheet_gb", 1.0))


def _device_rate(spec: DeviceSpec, key: str) -> tuple[float, float, float] | None:
    table = _seed().get("rates", {}).get(spec.key)
    if not table or key not in table:
        return None
    return _ranged(table, key, f"[rates.{spec.key}]")


def _unverified(spec: DeviceSpec, key: str) -> bool:
    """The seed's source for this rate starts with 'U:' (an argued estimate, not a measurement)."""
    src = str(_seed().get("rates", {}).get(spec.key, {}).get("sources", {}).get(key, ""))
    return src.startswith("U:")


def gemm_rates(spec: DeviceSpec, dtype: str, profile: Any = None) -> tuple[tuple[float, float, float], str]:
    """Large-shape GEMM FLOP/s (value, low, high) in `dtype` and where it came from."""
    measured = profile_applies(spec, profile) and not getattr(profile, "uses_datasheet_for", lambda d: False)(dtype)
    if measured:
        e = gemm_rate(spec, dtype, profile)
        return (e.value, e.low, e.high), f"{spec.key} {dtype} GEMM from the measured profile (large shape)"
    seeded = _device_rate(spec, f"{dtype}_gemm_tflops")
    if seeded:
        what = ("stated estimate, no public measurement" if _unverified(spec, f"{dtype}_gemm_tflops")
                else "best public measurement")
        return tuple(x * 1e12 for x in seeded), f"{spec.key} {dtype} GEMM {seeded[0]:g} TFLOP/s ({seeded[1]:g}-{seeded[2]:g}), {what} (seeds/serving.toml)"
    e = gemm_rate(spec, dtype)
    basis = "datasheet" if spec.peak(dtype) else "an ASSUMED peak (seeds/workloads.toml [assumed_peaks])"
    return (e.value, e.low, e.high), (f"{spec.key} {dtype} GEMM = {basis} x achieved fraction ({e.value / 1e12:.0f} TFLOP/s, "
                                      f"{e.low / 1e12:.0f}-{e.high / 1e12:.0f}; no measurement on file)")


def hbm_rates(spec: DeviceSpec, profile: Any = None) -> tuple[tuple[float, float, float], str]:
    if profile_applies(spec, profile) and profile.states_memory:
        e = memory_rate(spec, profile)
        return (e.value, e.low, e.high), f"{spec.key} HBM from the measured profile"
    seeded = _device_rate(spec, "hbm_read_tb_s")
    if seeded:
        return tuple(x * 1e12 for x in seeded), f"{spec.key} HBM read {seeded[0]:g} TB/s ({seeded[1]:g}-{seeded[2]:g}) (seeds/serving.toml)"
    e = memory_rate(spec)
    return (e.value, e.low, e.high), f"{spec.key} HBM = datasheet x achieved fraction ({e.value / 1e12:.2f} TB/s)"


def link_rates(system: SystemSpec, gpus: int, vendor: str) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
    """(bandwidth, per-hop latency) triples for a group of `gpus` of `vendor`: inside one node or across nodes."""
    inside = gpus <= system.gpus_per_node
    bw_attr = "intra_node_bandwidth_bytes_s" if inside else "inter_node_bandwidth_bytes_s"
    lat_attr = "intra_node_latency_s" if inside else "inter_node_latency_s"
    bw, lat = system.estimate(bw_attr), system.estimate(lat_attr)
    eff = link_efficiency(vendor)
    bws = (bw.value * eff["value"], bw.low * eff["low"], bw.high * eff["high"])
    return bws, (lat.value, lat.low, lat.high)


@dataclass(frozen=True)
class RateSet:
    """Rates at the three corners, the engine efficiency at each, and the notes saying where from."""

    rates: Mapping[str, Rates]
    efficiency: Mapping[str, float]
    notes: tuple[str, ...]


def rate_set(spec: DeviceSpec, system: SystemSpec, compute_dtype: str, gpus_per_group: int, engine: Engine,
             profile: Any = None, shapes: "GemmShapes | None" = None, weights: str = "",
             attention_dtypes: tuple[str, str] = ("", ""), replica_gpus: int = 0) -> RateSet:
    """`attention_dtypes`: the GEMM dtypes of the attention's input and output projections where
    they are not `compute_dtype` (a checkpoint that keeps them apart), "" where they are.
    `replica_gpus`: a pipelined replica's tp x pp GPUs; where they span nodes and the TP group does
    not, the stage-to-stage sends run at the inter-node rate (pp_link_bytes_s)."""
    gemm, g_note = gemm_rates(spec, compute_dtype, profile)
    attn_proj = [gemm_rates(spec, d, profile)[0] if d else (0.0, 0.0, 0.0) for d in attention_dtypes]
    by_shape = shapes is not None and profile_applies(spec, profile) and shapes.has(compute_dtype)
    by_moe = shapes is not None and profile_applies(spec, profile) and shapes.has_moe(compute_dtype)
    if by_shape:
        g_note = (f"{spec.key} {compute_dtype} GEMMs at the measured rate of the nearest measured (n, k), interpolated "
                  f"in m ({len(shapes.points[compute_dtype])} shapes{', ' + shapes.source if shapes.source else ''}); "
                  "the measured time already holds the math/weight-read overlap")
    attn_base, _ = gemm_rates(spec, "bf16", profile) if spec.peak("bf16") else (gemm, "")
    # A GPU power limit slows the compute-bound kernels by its clock ratio; the weight and KV reads
    # keep the HBM rate (planner/power.py).
    measured = profile if profile_applies(spec, profile) else None
    # (value, low, high) rates: each corner at its corner of the clock law
    clock = tuple(power.clock_factor(system, measured, w) for w in ("value", "low", "high"))
    gemm, attn_base = (tuple(x * c for x, c in zip(r, clock)) for r in (gemm, attn_base))
    attn_proj = [tuple(x * c for x, c in zip(r, clock)) for r in attn_proj]
    hbm, h_note = hbm_rates(spec, profile)
    # one GPU per replica: no link carries anything (every collective and stage send is zero at g = 1,
    # pp = 1), so a single-GPU system file need not state its links
    alone = gpus_per_group <= 1 and replica_gpus <= 1
    link, lat = ((0.0,) * 3, (0.0,) * 3) if alone else link_rates(system, gpus_per_group, spec.vendor)
    spans = replica_gpus > system.gpus_per_node >= gpus_per_group
    pp_link, pp_lat = link_rates(system, replica_gpus, spec.vendor) if spans else ((0.0,) * 3, (0.0,) * 3)
    table = system.extra.get("allreduce_measured")
    if table is not None and (table.gpus != gpus_per_group or gpus_per_group > system.gpus_per_node):
        table = None
    ar_at = {"value": table.at, "high": table.at, "low": lambda b: table.at(b, slow=True)} if table else {}
    k = kernel_constants()
    m_half = _ranged(k, "gemm_m_half_rows", "[kernel]")
    gap, gap_src = kernel_gaps(k, spec, profile)
    eager = tuple(x * 1e-6 for x in _ranged(k, "eager_kernel_us", "[kernel]"))
    afrac = _ranged(k, "attention_fraction_of_gemm", "[kernel]")
    p_ov = _ranged(k, "gemm_overlap_p", "[kernel]")
    moe = _ranged(k, "moe_gemm_efficiency", "[kernel]") if "moe_gemm_efficiency" in k else (1.0, 1.0, 1.0)
    imb = _ranged(k, "moe_rank_imbalance_ep32", "[kernel]") if "moe_rank_imbalance_ep32" in k else (0.0, 0.0, 0.0)
    load_cv = _ranged(k, "moe_expert_load_cv", "[kernel]")
    cv2 = _ranged(k, "service_cv2", "[kernel]") if "service_cv2" in k else (0.0, 0.0, 0.0)
    pcv2 = _ranged(k, "prompt_cv2", "[kernel]") if "prompt_cv2" in k else (0.0, 0.0, 0.0)
    acc = _ranged(k, "spec_acceptance", "[kernel]") if "spec_acceptance" in k else (0.0, 0.0, 0.0)
    kblock = untuned_blockscale_kblock_s(spec, engine)
    moe_half = moe_tile_m_half(spec, engine, a16w4=weights == "fp4" and compute_dtype in ("bf16", "fp16"))
    mla = mla_decode_heads(spec)
    rates, eff = {}, {}
    for c in CORNERS:
        rates[c] = Rates(gemm_flop_s=_corner(gemm, c, True),
                         attention_flop_s=_corner(attn_base, c, True) * _corner(afrac, c, True),
                         hbm_bytes_s=_corner(hbm, c, True), link_bytes_s=_corner(link, c, True),
                         hop_latency_s=_corner(lat, c, False), kernel_gap_s=_corner(gap, c, False),
                         pp_link_bytes_s=_corner(pp_link, c, True), pp_hop_latency_s=_corner(pp_lat, c, False),
                         step_overhead_s=_corner(engine.step_overhead_s, c, False), m_half=_corner(m_half, c, False),
                         host_per_request_s=_corner(engine.host_per_request_s, c, False),
                         moe_m_half=_corner(moe_half, c, False),
                         overlap_p=_corner(p_ov, c, True), moe_gemm_efficiency=_corner(moe, c, True),
                         moe_rank_imbalance_ep32=_corner(imb, c, False),
                         moe_expert_load_cv=_corner(load_cv, c, True),
                         service_cv2=_corner(cv2, c, False), prompt_cv2=_corner(pcv2, c, False),
                         spec_acceptance=_corner(acc, c, True),
                         head_flop_s=_corner(attn_base, c, True),
                         attention_proj_flop_s=tuple(_corner(a, c, True) for a in attn_proj),
                         gemm_at=shapes.at(compute_dtype, c, _corner(m_half, c, False)) if by_shape else None,
                         moe_at=shapes.moe_at(compute_dtype, c, _corner(m_half, c, False)) if by_moe else None,
                         allreduce_at=ar_at.get(c), allreduce_gpus=table.gpus if table else 0,
                         eager_kernel_s=_eager_kernel_s(engine, eager, c),
                         blockscale_kblock_s=_corner(kblock, c, False),
                         mla_heads_per_kv_pass=mla[0], mla_native_fp8_heads=mla[1],
                         adp_whole_ffn="ffn" in engine.attention_dp_whole,
                         adp_whole_head="lm_head" in engine.attention_dp_whole,
                         p2p_fabric=spec.scaleup_bandwidth_bytes_s is not None,
                         exp2_per_s=spec.exp2_per_s or 0.0)
        eff[c] = _corner(engine.efficiency, c, True)
    ar_note = (f"TP all-reduce: the measured all-reduce table of {system.key} for {table.gpus} GPUs, interpolated "
               f"in message size ({table.source})" if table else
               f"TP all-reduce: {link[0] / 1e9:.0f} GB/s achieved per GPU ({link_efficiency(spec.vendor)['value']:.0%} "
               f"of the system's link), {lat[0] * 1e6:g} us per ring hop ({min(lat) * 1e6:g}..{max(lat) * 1e6:g}; {system.key})")
    notes = (g_note, h_note, *((ar_note,) if gpus_per_group > 1 else ()),  # one GPU: no all-reduce to describe
             f"skinny GEMMs: rate x m/(m + {m_half[0]:g}), math/memory overlap p-norm p={p_ov[0]:g}; {gap[0] * 1e6:.3g} us per kernel launch "
             f"with graph replay ({gap_src}), {eager[0] * 1e6:g} us more without (eager prefill forwards); "
             f"prefill attention at {afrac[0]:.0%} of the BF16 GEMM rate (seeds/serving.toml [kernel])",
             engine.note()) + tuple(n for n in (power.note(system, measured), _moe_tile_note(moe_half),
                                                _moe_measured_note(shapes, compute_dtype) if by_moe else "") if n)
    return RateSet(rates=rates, efficiency=eff, notes=notes)


def kernel_gaps(k: Mapping[str, Any], spec: DeviceSpec, profile: Any = None) -> tuple[tuple[float, float, float], str]:
    """Seconds per kernel launch with graph replay (value, low, high) and where from. Measured
    (`recoque bench launch`, a chain of tiny kernels replayed as a graph): its median, fastest
    sample and slow end; the slow end keeps at least the stated spread above the centre, because
    a decode step's kernels run many more blocks than the chain's and drain longer. Else the
    stated figure of seeds/serving.toml [kernel]."""
    stated = tuple(x * 1e-6 for x in _ranged(k, "kernel_gap_us", "[kernel]"))
    measured = getattr(profile, "kernel_gap_s", None) if profile_applies(spec, profile) else None
    if measured is None:
        return stated, f"{stated[1] * 1e6:g}-{stated[2] * 1e6:g}, stated"
    high = max(measured.high, measured.value + (stated[2] - stated[0]))
    return ((measured.value, measured.low, high),
            f"measured: bench launch graph chain, {measured.low * 1e6:.3g}-{high * 1e6:.3g}")


def _moe_tile_note(moe_half: tuple[float, float, float]) -> str:
    if not moe_half[0]:
        return ""
    return (f"expert GEMMs: rate x m/(m + {moe_half[0]:g}), aiter's fused-MoE row tile of {2 * moe_half[0]:g} "
            f"({2 * moe_half[1]:g}-{2 * moe_half[2]:g}; seeds/serving.toml [moe_tile])")


def mla_decode_heads(spec: DeviceSpec) -> tuple[int, int]:
    """(query heads one MLA decode walk of the cache serves, the wide FP8 case) on the device's
    kernel library (seeds/serving.toml [mla_decode], aiter on gfx942/gfx950); (0, 0): all heads at once."""
    t = _seed().get("mla_decode", {})
    if not set(spec.gfx_arch) & set(t.get("targets", ())):
        return 0, 0
    return int(t["heads_per_kv_pass"]), int(t.get("native_fp8_heads", 0))


def moe_tile_m_half(spec: DeviceSpec, engine: Engine, a16w4: bool) -> tuple[float, float, float]:
    """Half the row tile of the expert GEMMs (value, low, high) where the engine runs aiter's fused
    MoE on the device's arch (seeds/serving.toml [moe_tile]): the CK-Tile a16w4 kernels (MXFP4
    weights, 16-bit activations) or the others; zeros elsewhere (the generic [kernel] tile)."""
    t = _seed().get("moe_tile", {})
    if engine.key not in t.get("engines", ()) or not set(spec.gfx_arch) & set(t.get("targets", ())):
        return 0.0, 0.0, 0.0
    return tuple(x / 2.0 for x in _ranged(t, "rows_a16w4" if a16w4 else "rows", "[moe_tile]"))


def untuned_blockscale_kblock_s(spec: DeviceSpec, engine: Engine) -> tuple[float, float, float]:
    """Seconds per 128-wide K-block of a block-scaled FP8 GEMM call where the engine's kernel library
    holds no tuned config for the device (seeds/serving.toml [untuned_blockscale]: aiter keys its
    tables by gfx arch and CU count); zeros elsewhere (value, low, high)."""
    t = _seed().get("untuned_blockscale", {})
    here = {f"{arch}:{spec.compute_units}" for arch in spec.gfx_arch}
    if engine.key not in t.get("engines", ()) or not here & set(t.get("targets", ())):
        return 0.0, 0.0, 0.0
    return tuple(x * 1e-6 for x in _ranged(t, "kblock_us", "[untuned_blockscale]"))


def _eager_kernel_s(engine: Engine, eager: tuple[float, float, float], corner: str) -> float:
    """What a prefill forward's kernel adds without graph replay, at one corner. An engine that runs
    prefill eagerly (SGLang) pays it at every corner. One that replays graphs pays none, except at
    the slow corner: whether a step's tokens fall inside its capture sizes is the build's and the
    run's setting (vLLM max_cudagraph_capture_size, 512 by default, InferenceX sets 2048; TensorRT-LLM
    graphs generation-only batches), so the slow corner takes the eager figure."""
    if not engine.prefill_graphs:
        return _corner(eager, corner, False)
    return eager[0] if corner == "low" else 0.0


def _moe_measured_note(shapes: "GemmShapes", dtype: str) -> str:
    return (f"MoE expert GEMMs at the measured grouped-GEMM rate (`recoque bench moe`, {len(shapes.moe[dtype])} points) "
            f"of the nearest measured expert (n, k), interpolated in rows per expert; it already holds the grouped "
            f"kernel's cost, so moe_gemm_efficiency is not applied{', ' + shapes.source if shapes.source else ''}")


# --- measured GEMM rates by shape (--profile) ---------------------------------------------------

@dataclass(frozen=True)
class GemmShapes:
    """GEMM rates measured by `recoque bench` at given (m, n, k), per dtype (planner/shape_rates.py
    says how a rate is read at another shape). The serving step asks for the rate of each of a
    layer's weight GEMMs at its row count m. The low/high corners use the sample spread (the
    90th-percentile and best times)."""

    points: Mapping[str, tuple[tuple[float, ...], ...]]
    source: str = ""
    # the same for MoE grouped GEMMs (`recoque bench moe`), m = mean rows per expert
    moe: Mapping[str, tuple[tuple[float, ...], ...]] = field(default_factory=dict)

    @classmethod
    def from_results(cls, doc: Any, source: str = "") -> "GemmShapes | None":
        dense = shape_rates.rate_table(doc, "gemm", lambda p: tuple(float(p[x]) for x in "mnk"))
        moe = shape_rates.rate_table(doc, "moe", shape_rates.moe_rows_per_expert)
        return cls(dense, source, moe) if dense or moe else None

    def has(self, dtype: str) -> bool:
        return bool(self.points.get(dtype))

    def has_moe(self, dtype: str) -> bool:
        return bool(self.moe.get(dtype))

    def rate(self, dtype: str, m: float, n: float, k: float, which: str = "value", m_half: float = 32.0) -> float:
        return shape_rates.rate_at(self.points[dtype], m, n, k, which, m_half)

    def at(self, dtype: str, which: str, m_half: float = 32.0):
        """A (m, n, k) -> FLOP/s callable for one corner (what serving_step.Rates.gemm_at holds)."""
        return lambda m, n, k: self.rate(dtype, m, n, k, which, m_half)

    def moe_at(self, dtype: str, which: str, m_half: float = 32.0):
        """The (rows per expert, n, k) -> FLOP/s callable of the measured grouped GEMMs (Rates.moe_at)."""
        return lambda m, n, k: shape_rates.rate_at(self.moe[dtype], m, n, k, which, m_half)
