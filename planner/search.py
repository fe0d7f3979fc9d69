"""Plan search: enumerate every valid plan for a workload on N GPUs, evaluate them as numpy arrays.

Space: tp over the divisors of N (across nodes too), cp over the divisors of N / tp (when the
stack has context parallelism and the sequence splits into 2 cp chunks), pp over the divisors of
the rest (dp = N / (tp cp pp)); micro-batch over the divisors of the per-replica batch;
interleave 1, 2, 3, 4, 6 or 8 (stack permitting; needs pp > 1, micro-batches a multiple of pp,
pp * interleave <= layers; layers may split unevenly over stages unless the stack's code forbids
it, and interleaving may need more stages: `Stack.pipeline_ok`); recompute none/selective/full, and
for each plan that fits recomputing every layer, the same plan recomputing the fewest layers per
virtual stage that fit (block recompute: `fewest_recomputed_layers`); context parallelism as the K/V
ring and, where the stack has it and the heads split over the cp ranks, as all-to-all;
sequence parallelism on/off (tp > 1); the ZeRO stages the stack has (with pp > 1 up to its
`pipeline_max_zero`), with FSDP reshard on/off for ZeRO-3; overlap on/off (dp > 1; never with
pp > 1 on DeepSpeed's pipeline engine); expert parallelism over the divisors of the expert count,
each expert whole on a GPU (etp 1) or split like the attention (etp = tp), etp x ep dividing the
stage's tp x cp x dp ranks (MoE). Flash attention is a property of the stack, not a switch: a stack that has
it uses it. Any field may be pinned (`pins`); the rest is searched.

The default (pruned) search drops only choices the model itself proves dominated, so it returns
the same best plan as the full search (tests/test_search_pruned_full.py: a grid of cases):
  * overlap off: exposed = t - hidden + 0.1 hidden <= t at the same memory;
  * sequence parallelism off when the TP group is inside one node: there the all-reduce costs
    exactly two all-gathers (comm.py), and SP stores and moves less elementwise data;
  * ZeRO-0 when the DP group is inside one node: reduce-scatter + weight all-gather (2-byte
    weights, >= 2-byte gradients) costs no more than the all-reduce, and stores less.
It evaluates memory first and times only the plans that fit.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Iterator, Mapping

import numpy as np

from recoque.errors import BadInput
from recoque.inputs import check_gpus
from recoque.planner.comm import group_layout
from recoque.planner.execution import RECOMPUTE_CODE, all_to_all_splits_heads
from recoque.planner.profile import LOW_PRECISION_DTYPES, DeviceProfile
from recoque.planner.stacks import NEUTRAL, Stack
from recoque.planner.train import PLAN_FIELDS, SearchResult, hardware_for, results_from_arrays
from recoque.planner.train_core import core
from recoque.planner.workload import TrainingWorkload

CHUNK = 1 << 19
INTERLEAVE = (1, 2, 3, 4, 6, 8)
# CLI/pin names -> plan fields
PIN_KEYS = {"tp": "tp", "pp": "pp", "vpp": "interleave", "interleave": "interleave", "dp": "dp", "cp": "cp",
            "micro_batch": "micro_batch", "recompute": "recompute", "zero": "zero_stage", "zero_stage": "zero_stage",
            "sp": "sequence_parallel", "sequence_parallel": "sequence_parallel", "ep": "ep",
            "reshard_after_forward": "reshard_after_forward", "dp_overlap": "dp_overlap",
            "recompute_layers": "recompute_layers", "distribute_checkpoints": "distribute_checkpoints",
            "tp_overlap": "tp_overlap", "cp_a2a": "cp_a2a", "ep_overlap": "ep_overlap",
            "flash_attention": "flash_attention", "etp": "etp"}


def divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


def normalise_pins(pins: Mapping[str, Any] | None) -> dict[str, Any]:
    """Pins given with CLI names (vpp, zero, sp) as plan fields; recompute as its code."""
    out: dict[str, Any] = {}
    for k, v in (pins or {}).items():
        if v is None:
            continue
        if k not in PIN_KEYS:
            raise BadInput(f"cannot pin {k!r}", f"pin one of {sorted(PIN_KEYS)}")
        f = PIN_KEYS[k]
        if f == "recompute":
            if v not in RECOMPUTE_CODE:
                raise BadInput(f"--recompute {v!r} unknown", f"use one of {sorted(RECOMPUTE_CODE)}")
            v = RECOMPUTE_CODE[v]
        elif f in ("sequence_parallel", "reshard_after_forward", "dp_overlap", "distribute_checkpoints", "tp_overlap",
                   "cp_a2a", "ep_overlap", "flash_attention"):
            v = bool(v)
        else:
            v = int(v)
            if v < 0 or (v == 0 and f not in ("zero_stage", "recompute_layers")):
                raise BadInput(f"--{k} must be positive, got {v}", "give a positive integer")
        out[f] = v
    return out


def check_pins_for_stack(pins: Mapping[str, Any], stack: Stack) -> None:
    """A pinned switch the stack cannot run is named here, not reported later as 'no valid plan'."""
    z = pins.get("zero_stage")
    if z is not None and z not in stack.zero_stages():
        raise BadInput(f"--zero {z}: stack {stack.key} runs ZeRO stages {', '.join(map(str, stack.zero_stages()))} only",
                       "pin a stage it runs, or pick a stack that runs every stage (--stack fsdp, deepspeed, "
                       "torchtitan-rocm)")
    if z is not None and z > stack.pipeline_max_zero and (pins.get("pp") or 1) > 1:  # else only dp=1 plans, where
        # the pin is moot, would be left: the ZeRO stage asked for would vanish from the answer unsaid
        raise BadInput(f"--zero {z} with --pp {pins['pp']}: stack {stack.key} runs ZeRO stage {stack.pipeline_max_zero} "
                       "at most with pipeline parallelism (seeds/stacks.toml pipeline_max_zero)",
                       f"pin --zero {stack.pipeline_max_zero} or drop --pp")
    if pins.get("dp_overlap") and not stack.dp_overlap_with_pp and (pins.get("pp") or 1) > 1:
        raise BadInput(f"--dp-overlap with --pp {pins['pp']}: stack {stack.key} reduces gradients after the whole "
                       "pipeline schedule, not beside the backward (seeds/stacks.toml dp_overlap_with_pp)",
                       "drop --dp-overlap or --pp, or pick a stack that overlaps both (--stack megatron-core)")
    if pins.get("dp_overlap") and not stack.zero1_overlap and pins.get("zero_stage") == 1:
        raise BadInput(f"--dp-overlap with --zero 1: stack {stack.key} ignores overlap_comm at ZeRO stage 1 and reduces "
                       "the gradients on the compute stream (seeds/stacks.toml zero1_overlap)",
                       "drop --dp-overlap, pin --zero 2, or pick a stack that overlaps ZeRO-1 (--stack deepspeed)")
    if pins.get("tp_overlap") and not stack.tp_comm_overlap:
        raise BadInput(f"stack {stack.key} has no TP communication overlap (seeds/stacks.toml)",
                       "drop --tp-overlap or pick a stack that has it (--stack megatron-core or fsdp)")
    if pins.get("cp_a2a") and not stack.cp_all_to_all:
        raise BadInput(f"stack {stack.key} has no all-to-all context parallelism (seeds/stacks.toml cp_all_to_all)",
                       "drop --cp-a2a (the K/V ring) or pick a stack that has it (--stack megatron-core)")
    if pins.get("distribute_checkpoints") and not stack.distribute_checkpoints:
        raise BadInput(f"stack {stack.key} does not distribute checkpointed activations over TP "
                       "(seeds/stacks.toml distribute_checkpoints)",
                       "drop --distribute-checkpoints or pick a stack that has it (--stack megatron-lm or deepspeed)")
    if pins.get("ep_overlap") and not stack.ep_comm_overlap:
        raise BadInput(f"stack {stack.key} has no expert all-to-all overlap (seeds/stacks.toml)",
                       "drop --ep-overlap or pick a stack that has it (--stack megatron-core)")
    needs = (("sequence_parallel", True, "sequence_parallel", "--sp"),
             ("flash_attention", True, "flash_attention", "--flash-attention"),
             ("dp_overlap", True, "dp_overlap", "--dp-overlap"),
             ("cp", lambda v: v > 1, "context_parallel", "--cp above 1"),
             ("interleave", lambda v: v > 1, "interleave", "--vpp above 1"),
             ("recompute", RECOMPUTE_CODE["selective"], "selective_recompute", "--recompute selective"))
    for key, bad, capability, flag in needs:
        if key not in pins or getattr(stack, capability):
            continue
        if (bad(pins[key]) if callable(bad) else pins[key] == bad):
            raise BadInput(f"{flag}: stack {stack.key} does not run it", "drop the pin or pick another --stack")


def _ok(pins: Mapping[str, Any], key: str, value: Any) -> bool:
    return key not in pins or pins[key] == value


def _expert_layouts(model: Any, tp: int, stage_ranks: int, pins: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(ep, etp) pairs for a MoE stage of tp x cp x dp ranks: each expert whole on one GPU (etp 1)
    or split like the attention (etp = tp, Megatron-Core's default), etp x ep dividing the ranks."""
    if not model.moe:
        return [(1, 0)]  # 0: no experts to lay out (the plan's default)
    etps = [int(pins["etp"])] if pins.get("etp") else sorted({tp, 1})
    # unpinned, whole experts only with expert parallelism: without it they would be copied on every
    # TP rank, a layout no recipe runs and one the table would show as a near-twin of the split one
    return [(e, t) for t in etps for e in divisors(model.experts)
            if stage_ranks % (t * e) == 0 and _ok(pins, "ep", e) and (e > 1 or not pins.get("ep_overlap"))
            and (e > 1 or t == tp or "etp" in pins)]


def _flag_grid(tp: int, dp: int, model: Any, full: bool, stack: Stack, pins: Mapping[str, Any],
               tp_intra: bool, dp_intra: bool, pp: int = 1, cp: int = 1) -> dict[str, np.ndarray]:
    """Every combination of the per-plan switches for one (tp, cp, dp), as parallel arrays."""
    # A pinned mode only needs the stack to be capable of it; unpinned, the stack's practice
    # (recompute_modes) limits the choice.
    rc = ([c for c in ((0, 1, 2) if stack.selective_recompute else (0, 2)) if _ok(pins, "recompute", c)]
          if "recompute" in pins else list(stack.recompute_codes()))
    sp_all = [False, True] if (tp > 1 and stack.sequence_parallel) else [False]
    # sequence parallelism is never slower inside a node and stores less, except under per-op
    # selective checkpointing at tp 2, where its reduce-scatter outputs (4h/t a token) outweigh what
    # it saves (planner/memory.op_sac_activation_bytes): there SP off may be the only plan that fits
    if not full and tp_intra and True in sp_all and "sequence_parallel" not in pins \
            and not (stack.selective_op_sac and tp < 3):
        sp_all = [True]
    sp = [x for x in (sp_all if tp > 1 else [False]) if _ok(pins, "sequence_parallel", x)]
    if pins.get("tp_overlap"):  # the overlap runs on sequence parallelism's collectives: a pin needs it on
        sp = [x for x in sp if x]
    zs = list(stack.zero_stages()) if dp > 1 else [0]
    if pp > 1:  # DeepSpeed's pipeline engine asserts ZeRO < 2 (seeds/stacks.toml)
        zs = [z for z in zs if z <= stack.pipeline_max_zero]
    # ZeRO-1 is ZeRO-0 with less optimizer memory and the same traffic inside a node, except where a
    # pipeline keeps 16-bit gradients beside fp32 ones (DeepSpeed's pipeline engine): ZeRO-1 then
    # all-reduces the fp32 gradients and all-gathers the weights, ZeRO-0 the 16-bit gradients only
    if not full and dp_intra and 1 in zs and len(zs) > 1 and "zero_stage" not in pins \
            and not (pp > 1 and stack.pipeline_16bit_grads):
        zs = [z for z in zs if z != 0]
    # with one data-parallel rank there is nothing to shard or overlap: a ZeRO or overlap pin is moot there
    zs = [z for z in zs if _ok(pins, "zero_stage", z)] if dp > 1 else zs
    if pins.get("dp_overlap") and not stack.zero1_overlap:  # an overlap pin rules out the stage that cannot overlap
        zs = [z for z in zs if z != 1]
    # DeepSpeed's pipeline engine reduces gradients after the whole schedule: no overlap with pp > 1.
    can_overlap = stack.dp_overlap and (pp == 1 or stack.dp_overlap_with_pp)
    ov_all = ([False, True] if can_overlap else [False]) if dp > 1 else [False]
    # overlap hides DP traffic behind compute; under ZeRO-3 with one layer a stage its prefetch of
    # the next layer costs more than it hides (planner/train_core zero3_exposed_s), so keep both there
    if not full and True in ov_all and "dp_overlap" not in pins and max(zs, default=0) < 3:  # a pin is never pruned away
        ov_all = [True]
    ov = [x for x in ov_all if _ok(pins, "dp_overlap", x)] if dp > 1 else ov_all
    layouts = _expert_layouts(model, tp, tp * cp * dp, pins)
    ep = list(range(len(layouts)))  # indices of the (ep, etp) pairs
    rows = []
    for z in zs:
        rs = [True, False] if z >= 3 else [True]
        rs = [x for x in rs if _ok(pins, "reshard_after_forward", x)] or ([True] if z < 3 else [])
        for r in rs:
            rows.append((z, r))
    if not rows or not rc or not sp or not ov or not ep:
        return {k: np.empty(0) for k in ("recompute", "sequence_parallel", "zero_stage", "dp_overlap", "ep", "etp",
                                         "reshard_after_forward")}
    zi = np.arange(len(rows))
    grids = np.meshgrid(rc, sp, zi, ov, ep, indexing="ij")
    g = {k: gr.ravel() for k, gr in zip(("recompute", "sequence_parallel", "zi", "dp_overlap", "ep"), grids)}
    zr = np.array(rows, dtype=object)
    g["zero_stage"] = np.array([rows[i][0] for i in g["zi"]], dtype=int)
    g["reshard_after_forward"] = np.array([rows[i][1] for i in g["zi"]], dtype=bool)
    if not stack.zero1_overlap:  # the stack reduces ZeRO-1 gradients on the compute stream (stacks.toml zero1_overlap)
        g["dp_overlap"] = g["dp_overlap"] & (g["zero_stage"] != 1)
    pairs = np.array(layouts, dtype=int).reshape(-1, 2)
    g["ep"], g["etp"] = pairs[g["ep"], 0], pairs[g["ep"], 1]
    del g["zi"], zr
    return g


def _cp_options(model: Any, rest: int, stack: Stack, pins: Mapping[str, Any]) -> list[int]:
    if pins.get("cp_a2a"):  # a pinned all-to-all needs context parallelism to run it
        return [c for c in _cp_options(model, rest, stack, {k: v for k, v in pins.items() if k != "cp_a2a"}) if c > 1]
    if "cp" in pins:
        return [pins["cp"]] if rest % pins["cp"] == 0 else []
    if not stack.context_parallel:
        return [1]
    return [c for c in divisors(rest) if model.seq_len % (2 * c) == 0 and c <= 64] or [1]


def enumerate_plans(workload: TrainingWorkload, gpus: int, gpus_per_node: int, full: bool = False,
                    stack: Stack = NEUTRAL, pins: Mapping[str, Any] | None = None
                    ) -> tuple[Iterator[dict[str, np.ndarray]], dict[str, int]]:
    """Chunks of valid plans (dicts of arrays) and a live count of invalid combinations."""
    model, B = workload.model, workload.global_batch_seqs
    pins = normalise_pins(pins) if pins and any(k not in PLAN_FIELDS for k in pins) else dict(pins or {})
    check_pins_for_stack(pins, stack)
    counts = {"invalid": 0}
    b_all = [b for b in divisors(B) if _ok(pins, "micro_batch", b)]
    # a pinned interleave may be any depth (NeMo runs 10 or 12 virtual stages); searched, the usual grid
    v_all = [pins["interleave"]] if "interleave" in pins else list(INTERLEAVE if stack.interleave else (1,))
    flash = bool(pins.get("flash_attention", stack.flash_attention))  # a run without it may pin it off

    def gen() -> Iterator[dict[str, np.ndarray]]:
        buf: list[dict[str, np.ndarray]] = []
        flag_cache: dict[tuple[Any, ...], dict[str, np.ndarray]] = {}
        size = 0
        for tp in divisors(gpus):
            if not _ok(pins, "tp", tp):
                continue
            for cp in _cp_options(model, gpus // tp, stack, pins):
                if pins.get("cp_a2a") and cp > 1 and not all_to_all_splits_heads(model.heads, tp, cp):
                    continue
                for pp in divisors(gpus // (tp * cp)):
                    dp = gpus // (tp * cp * pp)
                    if not (_ok(pins, "pp", pp) and _ok(pins, "dp", dp)):
                        continue
                    # inside one node as comm.group_layout places the groups (tp 5 on 8-GPU nodes spans 5)
                    tp_intra = gpus_per_node % tp == 0
                    dp_intra = bool(group_layout(dp * cp, tp, gpus_per_node)[1] == 1)
                    # the switches depend on tp, dp and pp only through these (tp < 3: the SP prune under op-SAC; dp itself for MoE's ep)
                    fkey = (tp > 1, tp < 3, (tp, cp, dp) if model.moe else dp > 1, pp > 1, tp_intra, dp_intra)
                    if fkey not in flag_cache:
                        flag_cache[fkey] = _flag_grid(tp, dp, model, full, stack, pins, tp_intra, dp_intra, pp, cp)
                    flags = flag_cache[fkey]
                    nf = len(flags["recompute"])
                    raw = len(b_all) * len(v_all)
                    ok_shape = (model.heads % tp == 0 and model.tp_takes_kv_heads(tp)
                                and pp <= model.layers and B % dp == 0)
                    if not ok_shape or nf == 0:
                        counts["invalid"] += raw * nf
                        continue
                    pairs = []
                    for b in b_all:
                        if (B // dp) % b:
                            continue
                        m = B // (dp * b)
                        for v in v_all:
                            if (pp * v <= model.layers and (v == 1 or (pp > 1 and m % pp == 0))
                                    and stack.pipeline_ok(model.layers, pp, v)):
                                pairs.append((b, v))
                    counts["invalid"] += (raw - len(pairs)) * nf
                    if not pairs:
                        continue
                    nb = len(pairs)
                    pv = np.array(pairs)
                    chunk = {k: np.tile(x, nb) for k, x in flags.items()}
                    chunk["micro_batch"] = np.repeat(pv[:, 0], nf)
                    chunk["interleave"] = np.repeat(pv[:, 1], nf)
                    n = nb * nf
                    chunk["tp"] = np.full(n, tp)
                    chunk["pp"] = np.full(n, pp)
                    chunk["dp"] = np.full(n, dp)
                    chunk["cp"] = np.full(n, cp)
                    chunk["flash_attention"] = np.full(n, flash)
                    chunk["recompute_layers"] = np.full(n, int(pins.get("recompute_layers", 0)))
                    chunk["distribute_checkpoints"] = np.full(n, bool(pins.get("distribute_checkpoints", False)))
                    # TP overlap never slows a plan in the model: on wherever the stack has it (or as pinned)
                    chunk["tp_overlap"] = chunk["sequence_parallel"] & bool(pins.get("tp_overlap", stack.tp_comm_overlap))
                    # context parallelism as the ring (Megatron-Core's default) unless all-to-all is pinned
                    chunk["cp_a2a"] = np.full(n, cp > 1 and bool(pins.get("cp_a2a", False)))
                    # the expert all-to-all overlap never slows a plan in the model either
                    chunk["ep_overlap"] = (chunk["ep"] > 1) & bool(pins.get("ep_overlap", stack.ep_comm_overlap))
                    buf.append(chunk)
                    size += n
                    if size >= CHUNK:
                        yield _concat(buf)
                        buf, size = [], 0
        if buf:
            yield _concat(buf)

    return gen(), counts


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in PLAN_FIELDS}


def _take(a: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in a.items()}


def fewest_recomputed_layers(workload: TrainingWorkload, hw: Any, profile: DeviceProfile, dtype: str,
                             a: dict[str, np.ndarray], fits: np.ndarray, stack: Stack
                             ) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """Each fitting plan that recomputes every layer (recompute full, recompute_layers 0), as the same
    plan recomputing the fewest layers per virtual stage that still fit (Megatron-Core's block method,
    --recompute-method block --recompute-num-layers N). In the model memory falls and time rises with N (tests/test_search_partial_recompute.py),
    so the fewest N that fits is the fastest of the plan's N: found by bisection over N = 1..L-1, L the
    layers of a virtual stage (N = L recomputes them all, which fits). Returns those plans (only where
    N < L), their memory, and how many plans the bisection evaluated."""
    idx = np.nonzero(fits & (a["recompute"] == RECOMPUTE_CODE["full"]) & (a["recompute_layers"] == 0))[0]
    empty = {k: np.empty(0, dtype=a[k].dtype) for k in PLAN_FIELDS}
    if not len(idx):
        return empty, np.empty(0), 0
    base = _take(a, idx)
    per_chunk = np.ceil(workload.model.layers / (base["pp"] * base["interleave"])).astype(int)
    lo, hi = np.ones(len(idx), dtype=int), per_chunk.copy()  # hi always fits; the answer lies in [lo, hi]
    mem_hi = np.full(len(idx), np.nan)
    tried = 0
    while True:
        act = np.nonzero(lo < hi)[0]
        if not len(act):
            break
        mid = (lo[act] + hi[act]) // 2
        trial = _take(base, act)
        trial["recompute_layers"] = mid
        mo = core(workload, hw, profile, dtype, trial, memory_only=True, stack=stack)
        tried += len(act)
        ok = mo["fits"]
        hi[act] = np.where(ok, mid, hi[act])
        mem_hi[act] = np.where(ok, mo["memory_bytes"], mem_hi[act])
        lo[act] = np.where(ok, lo[act], mid + 1)
    fewer = np.nonzero(hi < per_chunk)[0]
    out = _take(base, fewer)
    out["recompute_layers"] = hi[fewer]
    return out, mem_hi[fewer], tried


def distributed_checkpoint_plans(workload: TrainingWorkload, hw: Any, profile: DeviceProfile, dtype: str,
                                 a: dict[str, np.ndarray], fits: np.ndarray, mem: np.ndarray, stack: Stack,
                                 pins: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, int]:
    """A chunk with, added, each plan that does not fit with full recompute, TP > 1 and no sequence
    parallelism, as the same plan with its checkpointed inputs split over the TP ranks (Megatron's
    --distribute-saved-activations), where the stack has the split and no pin decides it. It adds an
    all-gather per recomputed layer and saves memory, so it is worth trying only where the plan would
    not fit without it; under sequence parallelism the checkpoints are split already. The added plans
    that still do not fit stay in, marked so, for the leanest plan said when nothing fits. Returns
    the chunk, its fits and memory, and how many were tried."""
    if not stack.distribute_checkpoints or "distribute_checkpoints" in pins:
        return a, fits, mem, 0
    cand = np.nonzero(~fits & (a["recompute"] == RECOMPUTE_CODE["full"]) & (a["tp"] > 1)
                      & ~a["sequence_parallel"] & ~a["distribute_checkpoints"])[0]
    if not len(cand):
        return a, fits, mem, 0
    trial = _take(a, cand)
    trial["distribute_checkpoints"] = np.ones(len(cand), dtype=bool)
    mo = core(workload, hw, profile, dtype, trial, memory_only=True, stack=stack)
    return (_join(a, trial), np.concatenate([fits, mo["fits"]]),
            np.concatenate([mem, mo["memory_bytes"]]), len(cand))


def fitting_variants(workload: TrainingWorkload, hw: Any, profile: DeviceProfile, dtype: str,
                     a: dict[str, np.ndarray], fits: np.ndarray, mem: np.ndarray, stack: Stack,
                     pins: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], np.ndarray, int]:
    """A chunk's plans that fit (those with distributed checkpoints among them), their memory, and
    the variants of them the stack may run and the pins leave open: each all-layers-recomputed plan
    with the fewest layers that fit (block recompute)
    and each context-parallel plan by all-to-all beside its ring, which stores the same (the memory
    model does not read how K/V travel). Returns the plans, their memory and how many plans the
    variants added to the evaluation."""
    tried = 0
    idx = np.nonzero(fits)[0]
    kept, kept_mem = _take(a, idx), mem[idx]
    if stack.block_recompute and "recompute_layers" not in pins:
        fewer, fewer_mem, n = fewest_recomputed_layers(workload, hw, profile, dtype, a, fits, stack)
        tried += n
        kept, kept_mem = _join(kept, fewer), np.concatenate([kept_mem, fewer_mem])
    if stack.cp_all_to_all and "cp_a2a" not in pins:
        twin = np.nonzero((kept["cp"] > 1) & all_to_all_splits_heads(workload.model.heads, kept["tp"], kept["cp"]))[0]
        a2a = _take(kept, twin)
        a2a["cp_a2a"] = np.ones(len(twin), dtype=bool)
        kept, kept_mem = _join(kept, a2a), np.concatenate([kept_mem, kept_mem[twin]])
        tried += len(twin)
    return kept, kept_mem, tried


def _join(x: dict[str, np.ndarray], y: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([x[k], y[k]]) for k in PLAN_FIELDS}


def search(workload: TrainingWorkload, system: Any, profile: DeviceProfile, top: int = 5, gpus: int | None = None,
           dtype: str = "bf16", full: bool = False, stack: Stack = NEUTRAL,
           pins: Mapping[str, Any] | None = None) -> SearchResult:
    n = int(gpus if gpus is not None else system.gpus)
    check_gpus(n, system)  # the same --gpus rule as every other plan (up to the high end of a published range)
    if dtype in LOW_PRECISION_DTYPES and not stack.fp8:
        raise BadInput(f"stack {stack.key} has no {dtype} training", "pick a stack with low-precision training "
                       "(megatron-core, fsdp, megatron-lm-rocm) or --dtype bf16")
    pins = normalise_pins(pins)
    hw = hardware_for(system, profile)
    t0 = time.perf_counter()
    chunks, counts = enumerate_plans(workload, n, system.gpus_per_node, full=full, stack=stack, pins=pins)
    evaluated = infeasible = 0
    best_t, best_m = np.empty(0), np.empty(0)
    best_a: dict[str, np.ndarray] = {k: np.empty(0, dtype=int) for k in PLAN_FIELDS}
    small_mem, small_a = np.inf, None
    for a in chunks:
        mo = core(workload, hw, profile, dtype, a, memory_only=True, stack=stack)
        fits, mem = mo["fits"], mo["memory_bytes"]
        evaluated += len(fits)
        infeasible += int((~fits).sum())
        a, fits, mem, tried = distributed_checkpoint_plans(workload, hw, profile, dtype, a, fits, mem, stack, pins)
        evaluated += tried
        i = int(np.argmin(mem))  # the leanest plan, checkpoints split or not, said when nothing fits
        if mem[i] < small_mem:
            small_mem, small_a = float(mem[i]), _take(a, np.array([i]))
        kept, kept_mem, tried = fitting_variants(workload, hw, profile, dtype, a, fits, mem, stack, pins)
        evaluated += tried
        if not len(kept_mem):
            continue
        t = core(workload, hw, profile, dtype, kept, stack=stack)["iteration_time_s"]
        best_t, best_m = np.concatenate([best_t, t]), np.concatenate([best_m, kept_mem])
        best_a = {k: np.concatenate([best_a[k], kept[k]]) for k in PLAN_FIELDS}
        if len(best_t) > 4 * top:
            # every plan as fast as the top-th, ties included, in the order enumerated: the pruned
            # search's plans come in the full search's order, so both break a tie alike
            keep = np.nonzero(best_t <= np.partition(best_t, top - 1)[top - 1])[0]
            best_t, best_m, best_a = best_t[keep], best_m[keep], _take(best_a, keep)
    order = np.lexsort((best_m, best_t))[:top]  # the fastest; at equal time the one that stores less
    seconds = time.perf_counter() - t0
    best = (results_from_arrays(workload, system, profile, dtype, _take(best_a, order), stack=stack)
            if len(order) else [])
    smallest = None
    if not best and small_a is not None:
        smallest = results_from_arrays(workload, system, profile, dtype, small_a, stack=stack)[0]
    pin_txt = (", pinned " + ", ".join(_pin_words(k, v) for k, v in pins.items())) if pins else ""
    reasons = (f"{evaluated:,} plans evaluated in {seconds:.2f} s ({evaluated / max(seconds, 1e-9):,.0f}/s), "
               f"{infeasible:,} do not fit in memory, {counts['invalid']:,} invalid combinations",
               "search space: " + ("full (every switch)" if full else
                                   "pruned (only provably dominated switches dropped; memory checked first)")
               + f", stack {stack.key}{pin_txt}") + _moot_pins(pins, best)
    return SearchResult(workload=workload.model.key or workload.model.name, system=system.key, gpus=n, best=best,
                        evaluated=evaluated, infeasible_memory=infeasible, invalid=counts["invalid"],
                        seconds=seconds, reasons=reasons, smallest_memory=smallest)


# --------------------------------------------------------------------------------------------
# GPU count: the fastest usable count up to the system's, with the scaling curve
# --------------------------------------------------------------------------------------------
def usable_gpu_counts(gpus: int, gpus_per_node: int) -> list[int]:
    """Whole-node counts a job can take: the system's count, then powers of two times the node
    size and the multiples of 3 and 5 times a power of two (their TP x PP x DP layouts), every
    count <= the system's, ascending."""
    node = max(1, int(gpus_per_node))
    out = {int(gpus)}
    for base in (1, 3, 5, 9, 15):
        k = base
        while k * node <= gpus:
            out.add(k * node)
            k *= 2
    out.update(c for c in range(1, node + 1) if c <= gpus and node % c == 0)
    return sorted(out)


@dataclass(frozen=True)
class CurvePoint:
    gpus: int
    time_to_train_s: float | None   # steady state: iterations x the iteration time
    mfu: float | None               # a fraction of the peak (unit "fraction" where it is an Estimate)
    plan: str
    fits: bool
    why: str = ""  # when no plan: "does not fit" (in memory) or "no valid layout" (the count does not factor)
    time_to_train_wall_s: float | None = None  # by the clock: steady state / goodput (failures and checkpoints)

    def to_json(self) -> dict[str, Any]:
        return {"gpus": self.gpus, "time_to_train_s": self.time_to_train_s,
                "time_to_train_wall_s": self.time_to_train_wall_s, "mfu": self.mfu,
                "plan": self.plan, "fits": self.fits, "why": self.why}


@dataclass(frozen=True)
class ScalingResult:
    best: SearchResult
    curve: tuple[CurvePoint, ...]

    @property
    def fastest_gpus(self) -> int:
        return self.best.gpus

    def to_json(self) -> dict[str, Any]:
        return {"fastest_gpus": self.fastest_gpus, "curve": [p.to_json() for p in self.curve]}


def fastest_gpu_count(workload: TrainingWorkload, system: Any, profile: DeviceProfile, top: int = 5,
                      dtype: str = "bf16", full: bool = False, stack: Stack = NEUTRAL,
                      pins: Mapping[str, Any] | None = None, counts: list[int] | None = None) -> ScalingResult:
    """Search every usable GPU count up to the system's; the one with the shortest time to train by
    the clock (ties: fewer GPUs) wins: steady state over goodput, since failures grow with the GPU
    count (planner/train.goodput_estimate) and past some size more GPUs finish later. The curve lists
    each count's best time (days by the clock and at steady state) and MFU."""
    cs = counts or usable_gpu_counts(int(system.gpus), int(system.gpus_per_node))
    pts, best, best_t, nearest = [], None, np.inf, None
    for n in cs:
        # A count smaller than the model needs is skipped quickly by the memory check.
        res = search(workload, system, profile, top=top, gpus=n, dtype=dtype, full=full, stack=stack, pins=pins)
        if res.best:
            b = res.best[0]
            steady = b.time_to_train.value
            d = b.time_to_train_wall.value if b.time_to_train_wall is not None else steady
            pts.append(CurvePoint(n, steady, b.mfu.value, b.plan.label(), True, time_to_train_wall_s=d))
            if d < best_t * (1 - 1e-9):
                best, best_t = res, d
        else:
            why = "does not fit" if res.evaluated else "no valid layout"
            pts.append(CurvePoint(n, None, None, "", False, why))
            if _nearer_fit(res, nearest):
                nearest = res
    # Nothing fits on any count: the count whose leanest plan comes nearest to fitting says why
    # (a fully pinned plan is evaluated on one count only), else the last count searched.
    return ScalingResult(best=best or nearest or res, curve=tuple(pts))


def _nearer_fit(res: SearchResult, than: SearchResult | None) -> bool:
    """Whether `res`'s leanest plan needs a smaller share of its GPUs' memory than `than`'s."""
    if res.smallest_memory is None:
        return False
    if than is None or than.smallest_memory is None:
        return True

    def share(r: SearchResult) -> float:
        return r.smallest_memory.memory_per_gpu.value / r.smallest_memory.memory_capacity_bytes

    return share(res) < share(than)


def with_global_batch(workload: TrainingWorkload, global_batch: int | None) -> TrainingWorkload:
    if global_batch is None:
        return workload
    if global_batch <= 0:
        raise BadInput(f"--global-batch must be positive, got {global_batch}", "give sequences per iteration")
    return replace(workload, global_batch_seqs=int(global_batch))


_PIN_FLAG = {"interleave": "vpp", "zero_stage": "zero", "sequence_parallel": "sp"}  # plan field -> CLI flag


def _moot_pins(pins: Mapping[str, Any], best: list) -> tuple[str, ...]:
    """Pins the best plan cannot act on, said, so the pin is not taken as dropped: ZeRO or DP overlap
    with one data-parallel rank (nothing to shard or overlap), and switches the time model turns off
    there (train.as_run): the expert all-to-all overlap with one micro-batch, distributed checkpoints
    under sequence parallelism."""
    if not best:
        return ()
    plan, out = best[0].plan, []
    moot = [k for k in ("zero_stage", "dp_overlap") if pins.get(k)]
    if moot and plan.dp == 1:
        out.append(f"{', '.join(_pin_words(k, pins[k]) for k in moot)} moot in the best plan: data parallel 1 leaves "
                   "nothing to shard or overlap")
    why = {"ep_overlap": "one micro-batch leaves no other micro-batch's compute to hide the all-to-alls behind",
           "distribute_checkpoints": "sequence parallelism already splits the checkpointed inputs over TP"}
    out += [f"{_pin_words(k, True)} moot in the best plan: {w}" for k, w in why.items()
            if pins.get(k) and not getattr(plan, k)]
    if all(k in pins for k in ("tp", "pp", "dp")) and "cp" not in pins and plan.cp > 1:
        shape = int(pins["tp"]) * int(pins["pp"]) * int(pins["dp"])
        out.append(f"context parallel {plan.cp} searched: the pinned --tp x --pp x --dp covers {shape:,} of the "
                   f"{shape * plan.cp:,} GPUs and CP is the only axis left (pin --cp 1 with --gpus {shape:,} to use fewer)")
    return tuple(out)


def _pin_words(field: str, value: object) -> str:
    """A pin as the user typed it (--recompute full, --vpp 2, --no-sp), not as the plan field's code."""
    flag = _PIN_FLAG.get(field, field).replace("_", "-")
    if isinstance(value, (bool, np.bool_)):
        return f"--{flag}" if value else f"--no-{flag}"
    if field == "recompute":
        value = next(name for name, code in RECOMPUTE_CODE.items() if code == value)
    return f"--{flag} {value}"
