"""Software stacks (seeds/stacks.toml): what a training stack supports and its sustained efficiency.

A stack limits the plan search (a switch it does not support is never turned on) and scales every
compute rate of the device profile by its stated `efficiency` (the only stack quantity that is
calibrated, with `zero3_compute_slowdown` where a stack states it; seeds/stacks.toml says on
what). `grad_reduce_dtype` is the default dtype of the
gradient reduction; `zero3_regather_on_recompute` says whether a recomputed forward gathers the
sharded weights again (DeepSpeed) or reuses the backward's gather (FSDP). The pipeline fields say
what the stack's pipeline code accepts and costs (even layer splits, fewest stages for
interleaving, gradient reduction after the schedule, 16-bit gradients kept), each cited to the
code in seeds/stacks.toml.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Mapping

from recoque.errors import BadInput
from recoque.fileio import read_seed_toml

DEFAULT_STACK = "megatron-core"
DEFAULT_STACK_AMD = "megatron-lm-rocm"
REDUCE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0}
# Communicators whose NCCL CTA (channel) cap a run may set (Megatron-Core's per-communicator
# nccl_communicator_config_path file: its keys dp/dp_cp, cp, tp, pp); "dp" stands for dp and dp_cp.
COMM_GROUPS = ("dp", "cp", "tp", "pp")
_BOOLS = ("flash_attention", "sequence_parallel", "selective_recompute", "distributed_optimizer", "zero2", "zero3", "dp_overlap",
          "interleave", "context_parallel", "fp8", "tp_comm_overlap", "ep_comm_overlap", "ep_node_dedup",
          "zero3_regather_on_recompute")
# How the stack's pipeline is built (seeds/stacks.toml cites the code for each); not features to list as missing.
_PIPE_BOOLS = ("even_pipeline_split", "dp_overlap_with_pp", "pipeline_16bit_grads", "zero3_node_rings",
               "fp8_param_gather", "fp8_saves_inputs", "pp_comm_overlap", "selective_op_sac", "grad_buffer_zeroed",
               "fused_expert_mlp", "param_gather_overlap", "grad_reduce_allreduce", "zero1_overlap",
               "pp_keeps_unsharded", "block_recompute", "cp_all_to_all", "distribute_checkpoints")


@dataclass(frozen=True)
class Stack:
    key: str
    name: str
    flash_attention: bool = True
    sequence_parallel: bool = True
    selective_recompute: bool = True
    distributed_optimizer: bool = True
    zero2: bool = True
    zero3: bool = True
    dp_overlap: bool = True
    interleave: bool = True
    context_parallel: bool = True
    fp8: bool = True
    fp8_saves_inputs: bool = False  # under fp8 the linear layers keep their fp8 input for the backward (Transformer Engine)
    tp_comm_overlap: bool = False  # TP collectives pipelined with the GEMMs (ExecutionPlan.tp_overlap)
    ep_comm_overlap: bool = False  # MoE all-to-alls beside another micro-batch's compute (ExecutionPlan.ep_overlap)
    ep_node_dedup: bool = False    # MoE dispatch sends a token once per destination node (DeepEP, HybridEP)
    pp_comm_overlap: bool = False  # interleaved schedule: pipeline sends run beside the next chunk's compute
    # Full recompute of only N layers per pipeline stage (Megatron --recompute-method block): the
    # search then tries the fewest N that fit (planner/search.fewest_recomputed_layers)
    block_recompute: bool = False
    # Context parallelism by all-to-all (Ulysses; Megatron --cp-comm-type a2a) beside the K/V ring:
    # the search tries both where the heads split over the cp ranks (ExecutionPlan.cp_a2a)
    cp_all_to_all: bool = False
    # Full recompute with each checkpointed layer input split over the TP ranks and all-gathered for
    # the recompute (Megatron --distribute-saved-activations, DeepSpeed partition_activations): the
    # search tries it on plans without sequence parallelism that do not fit otherwise
    distribute_checkpoints: bool = False
    grad_reduce_dtype: str = "fp32"
    zero3_regather_on_recompute: bool = False
    # What "selective" recompute means in the stack: Megatron's core-attention recompute (False), or
    # torchtitan's per-op checkpointing, which keeps every second matmul output and recomputes the
    # rest of each block (True; planner/memory.op_sac_activation_bytes)
    selective_op_sac: bool = False
    efficiency: float = 1.0
    platform: str = ""   # "rocm": a build for AMD GPUs only (seeds/stacks.toml); "": either vendor
    # A ROCm build's CUDA counterpart (the same code base on NVIDIA GPUs): the stack an H100
    # reference runs when a delivered H100-equivalent is taken for this stack's plan
    cuda_counterpart: str = ""
    # How much slower compute runs while ZeRO-3/FSDP collectives stream beside it (NCCL/RCCL
    # channels hold SMs/CUs, the gathered buffers are copied into parameters on the device);
    # None = the planner's generic OVERLAP_COMPUTE_SLOWDOWN.
    zero3_compute_slowdown: float | None = None
    # Recompute modes the stack's runs use ("none", "selective", "full"); empty = every mode the
    # switches allow. An era's practice where the memory model alone would allow more (Megatron-LM
    # 2021 ran everything with full recomputation: seeds/stacks.toml says why).
    recompute_modes: tuple[str, ...] = ()
    # dtype of the gradient buffers kept in memory, when it differs from the reduction dtype
    # (DeepSpeed's BF16_Optimizer accumulates bf16 gradients into full fp32 buffers); None = same
    grad_buffer_dtype: str | None = None
    # Pipeline constraints and costs of the stack's code (seeds/stacks.toml cites each):
    # layers must split evenly over the stages (and over the virtual stages when interleaving);
    # interleaving needs at least this many stages; the data-parallel gradient reduction can
    # overlap the backward when the plan has a pipeline (DeepSpeed's pipeline engine reduces after
    # the whole schedule); 16-bit gradients stay allocated beside the fp32 gradient buffers through
    # the pipeline's backward passes (DeepSpeed bf16 optimizer under the pipeline engine).
    even_pipeline_split: bool = False
    interleave_min_pp: int = 2
    pipeline_max_zero: int = 3  # highest ZeRO stage the stack runs with pp > 1 (DeepSpeed's pipeline engine: 1)
    dp_overlap_with_pp: bool = True
    pipeline_16bit_grads: bool = False
    # ZeRO-1/2: the updated weights' all-gather may hide behind compute (Megatron-Core's
    # overlap_param_gather beside the next forward); False: it runs after the optimizer step, outside
    # any compute (DeepSpeed stage_1_and_2.py step(): all_gather_dp_groups once the fp32 update is done)
    param_gather_overlap: bool = True
    # ZeRO-1/2's gradient reduction is a whole all-reduce, not a reduce-scatter (DeepSpeed's default
    # use_multi_rank_bucket_allreduce: allreduce_and_scatter -> allreduce_bucket -> dist.all_reduce)
    grad_reduce_allreduce: bool = False
    # ZeRO-1's gradient reduction may run beside the backward (overlap_comm); False: the stack ignores
    # the overlap at stage 1 and reduces on the compute stream (DeepSpeed 0.4.4-0.12, engine.py
    # _configure_zero_optimizer: "Overlap and contiguous grads are meaningless in stage 1")
    zero1_overlap: bool = True
    # FSDP under a pipeline schedule keeps each stage's parameters and its accumulated gradients (in the
    # reduce dtype) unsharded from the first micro-batch's backward to the last (torch.distributed.pipelining
    # stage.py backward_maybe_with_nosync: set_requires_gradient_sync(False), set_reshard_after_backward(False))
    pp_keeps_unsharded: bool = False
    # ZeRO-3/FSDP collectives as NCCL/RCCL build them: multi-channel rings that pass through every
    # GPU of a node, so a node's NICs share the inter-node part (comm.hierarchical_allgather_time);
    # False: each rank's whole (n-1)/n share over its own NIC share (comm.sharded_allgather_time),
    # what DeepSpeed's 2021-22 ZeRO-3 runs delivered (seeds/stacks.toml says on what evidence)
    zero3_node_rings: bool = False
    # The distributed optimizer's (and ZeRO-3's) weight all-gather moves the fp8 copy of the weights,
    # 1 byte per parameter, under fp8/fp4 training: Megatron-Core DistributedDataParallelConfig
    # fp8_param_gather, NeMo FP8_PARAM_GATHER. The stack's practice (seeds/stacks.toml), or a run's setting.
    fp8_param_gather: bool = False
    # The data-parallel wrapper keeps every trainable parameter's gradient in one contiguous buffer
    # and zeroes the whole of it at the start of every iteration (Megatron's DDP), not only the
    # optimizer's shard: a write of grad_buffer_bytes per local parameter (train_core.param_passes_s).
    grad_buffer_zeroed: bool = False
    # The experts run as one fused grouped MLP that takes the activation's clamp and the expert
    # biases inside its kernels (Transformer Engine's op fuser, Megatron-Core
    # use_transformer_engine_op_fuser); off (Megatron-Core's default), a model with clamped gated
    # activations or expert biases pays them as kernels of their own (train_core.moe_unfused_ops_s).
    # The stack's practice (seeds/stacks.toml), or a run's setting.
    fused_expert_mlp: bool = False
    # NCCL CTAs a communicator may use (Megatron-Core nccl_communicator_config_path, max_ctas per
    # group); empty: NCCL's own choice, which fills the scale-up links. A cap bounds the group's
    # scale-up bandwidth (planner/train_kernels.py Hardware.cta_bytes_s). A run's setting, not a stack default.
    comm_max_ctas: Mapping[str, int] = field(default_factory=dict)
    fitted_on: tuple[str, ...] = ()  # validation case groups `efficiency` was fitted on
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def grad_reduce_bytes(self) -> float:
        return REDUCE_BYTES[self.grad_reduce_dtype]

    @property
    def grad_buffer_bytes(self) -> float:
        return REDUCE_BYTES[self.grad_buffer_dtype or self.grad_reduce_dtype]

    def zero_stages(self) -> tuple[int, ...]:
        out = [0]
        if self.distributed_optimizer:
            out.append(1)
        if self.zero2:
            out.append(2)
        if self.zero3:
            out.append(3)
        return tuple(out)

    def recompute_codes(self) -> tuple[int, ...]:
        """Recompute codes (0 none, 1 selective, 2 full) the search may use with this stack."""
        codes = (0, 1, 2) if self.selective_recompute else (0, 2)
        if self.recompute_modes:
            codes = tuple(c for c in codes if ("none", "selective", "full")[c] in self.recompute_modes)
        return codes

    def pipeline_ok(self, layers: int, pp: int, interleave: int) -> bool:
        """Whether the stack's code can lay `layers` over `pp` stages of `interleave` virtual
        stages each (Megatron-LM before 2024: layers divisible by pp x interleave, interleaving
        only with pp >= 3; seeds/stacks.toml cites the asserts)."""
        if interleave > 1 and pp < self.interleave_min_pp:
            return False
        return not self.even_pipeline_split or layers % (pp * interleave) == 0

    def with_reduce_dtype(self, dtype: str | None) -> "Stack":
        if dtype is None:
            return self
        if dtype not in REDUCE_BYTES:
            raise BadInput(f"gradient reduction dtype {dtype!r} unknown", f"use one of {sorted(REDUCE_BYTES)}")
        return replace(self, grad_reduce_dtype=dtype)

    def _with_switch(self, name: str, on: bool | None, where: str) -> "Stack":
        """A run's true/false setting of one stack switch; `where` names the input it came from."""
        if on is None:
            return self
        if not isinstance(on, bool):
            raise BadInput(f"{where + ': ' if where else ''}{name} must be true or false, got {on!r}",
                           f"write {name} = true or false")
        return replace(self, **{name: on})

    def with_fused_expert_mlp(self, on: bool | None, where: str = "") -> "Stack":
        return self._with_switch("fused_expert_mlp", on, where)

    def with_fp8_param_gather(self, on: bool | None, where: str = "") -> "Stack":
        out = self._with_switch("fp8_param_gather", on, where)  # a non-boolean is refused first
        if on and not self.fp8:
            raise BadInput(f"stack {self.key} has no fp8 training, so no fp8 parameter gather",
                           "drop fp8_param_gather or pick a stack with fp8")
        return out

    def with_comm_max_ctas(self, caps: Mapping[str, Any] | None, where: str = "") -> "Stack":
        """The run's per-communicator NCCL CTA caps ({"cp": 1, "dp": 8, ...}); `where` names the input."""
        if caps is None:
            return self
        pre = f"{where + ': ' if where else ''}NCCL CTA caps (nccl_max_ctas / comm_max_ctas)"
        if not isinstance(caps, Mapping):
            raise BadInput(f"{pre} must be a table such as {{ dp = 8, cp = 1 }}", f"use keys among {', '.join(COMM_GROUPS)}")
        unknown = sorted(set(caps) - set(COMM_GROUPS))
        if unknown:
            raise BadInput(f"{pre}: unknown communicator(s) {', '.join(unknown)}", f"use keys among {', '.join(COMM_GROUPS)}")
        bad = {k: v for k, v in caps.items() if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 64}
        if bad:
            raise BadInput(f"{pre}: CTA counts must be integers 1..64, got {bad}", "write e.g. nccl_max_ctas = { cp = 1 }")
        return replace(self, comm_max_ctas={k: int(v) for k, v in caps.items()})

    def describe(self) -> str:
        off = [k for k in _BOOLS[:-1] if not getattr(self, k)]
        pipe = ([f"layers split evenly over pp x interleave, interleaving from pp >= {self.interleave_min_pp}"]
                if self.even_pipeline_split else [])
        pipe += [] if self.dp_overlap_with_pp else ["with pp > 1 the gradient reduction runs after the pipeline schedule"]
        pipe += [f"with pp > 1 ZeRO stage {self.pipeline_max_zero} at most"] if self.pipeline_max_zero < 3 else []
        pipe += ["with pp > 1 16-bit gradients kept beside the fp32 ones"] if self.pipeline_16bit_grads else []
        pipe += ["weights all-gathered in fp8 under fp8/fp4 training"] if self.fp8_param_gather else []
        pipe += ["interleaved pipeline sends overlap compute"] if self.pp_comm_overlap else []
        pipe += ["the whole gradient buffer zeroed every iteration"] if self.grad_buffer_zeroed else []
        pipe += ["experts as one fused grouped MLP"] if self.fused_expert_mlp else []
        pipe += [] if self.param_gather_overlap else ["ZeRO-1/2 weight all-gather after the optimizer step, not overlapped"]
        pipe += ["ZeRO-1/2 gradients reduced by a whole all-reduce"] if self.grad_reduce_allreduce else []
        pipe += [] if self.zero1_overlap else ["ZeRO-1 gradient reduction not overlapped (overlap_comm ignored at stage 1)"]
        if self.comm_max_ctas:
            caps = ", ".join(f"{k} {v}" for k, v in sorted(self.comm_max_ctas.items()))
            pipe += [f"NCCL CTAs per communicator capped ({caps}): each CTA moves half of one scale-up link"]
        return (f"stack {self.key} ({self.name}): sustained efficiency {self.efficiency:g} x the profile's compute "
                f"rates; gradients reduced in {self.grad_reduce_dtype}"
                + (f"; not available: {', '.join(off)}" if off else "") + "".join(f"; {p}" for p in pipe))


# Everything on, efficiency 1: what the planner assumed before stacks existed.
NEUTRAL = Stack(key="neutral", name="every feature, efficiency 1 (no stack named)", block_recompute=True,
                cp_all_to_all=True, distribute_checkpoints=True)


@lru_cache(maxsize=1)
def _raw() -> Mapping[str, Any]:
    return read_seed_toml("stacks.toml").get("stacks", {})


def list_stacks() -> list[str]:
    return sorted(_raw())


def load_stack(key: str | None) -> Stack:
    if key is None or key == "neutral":
        return NEUTRAL
    raw = _raw()
    if key not in raw:
        raise BadInput(f"unknown stack {key!r}", f"known stacks: {', '.join(sorted(raw))}")
    r = raw[key]
    not_bool = [k for k in _BOOLS + _PIPE_BOOLS if k in r and not isinstance(r[k], bool)]
    if not_bool:  # bool("false") is True: a quoted switch would silently turn on
        raise BadInput(f"stack {key}: {', '.join(not_bool)} must be true or false, got "
                       f"{', '.join(repr(r[k]) for k in not_bool)}", "fix seeds/stacks.toml (no quotes)")
    kw: dict[str, Any] = {k: r[k] for k in _BOOLS + _PIPE_BOOLS if k in r}
    min_pp = r.get("interleave_min_pp", 2)
    if isinstance(min_pp, bool) or not isinstance(min_pp, int) or min_pp < 2:
        raise BadInput(f"stack {key}: interleave_min_pp must be an integer >= 2, got {min_pp!r}", "fix seeds/stacks.toml")
    kw["interleave_min_pp"] = int(min_pp)
    max_z = r.get("pipeline_max_zero", 3)
    if isinstance(max_z, bool) or not isinstance(max_z, int) or not 0 <= max_z <= 3:
        raise BadInput(f"stack {key}: pipeline_max_zero must be 0..3, got {max_z!r}", "fix seeds/stacks.toml")
    kw["pipeline_max_zero"] = int(max_z)
    if kw.get("fp8_param_gather") and not kw.get("fp8", True):
        raise BadInput(f"stack {key}: fp8_param_gather without fp8 training", "set fp8 = true or drop fp8_param_gather")
    eff = float(r.get("efficiency", 1.0))
    if not 0.0 < eff <= 1.0:
        raise BadInput(f"stack {key}: efficiency must be in (0, 1], got {eff}", "fix seeds/stacks.toml")
    gd = str(r.get("grad_reduce_dtype", "fp32"))
    if gd not in REDUCE_BYTES:
        raise BadInput(f"stack {key}: grad_reduce_dtype {gd!r} unknown", f"use one of {sorted(REDUCE_BYTES)}")
    modes = tuple(str(m) for m in r.get("recompute_modes", ()))
    bad = [m for m in modes if m not in ("none", "selective", "full")]
    if bad or ("selective" in modes and not kw.get("selective_recompute", True)):
        raise BadInput(f"stack {key}: recompute_modes {list(modes)} invalid", "use none/selective/full, selective only "
                       "when selective_recompute is on")
    gb = r.get("grad_buffer_dtype")
    if gb is not None and gb not in REDUCE_BYTES:
        raise BadInput(f"stack {key}: grad_buffer_dtype {gb!r} unknown", f"use one of {sorted(REDUCE_BYTES)}")
    slow = r.get("zero3_compute_slowdown")
    if slow is not None and (isinstance(slow, bool) or not isinstance(slow, (int, float)) or not 0.0 <= slow < 1.0):
        raise BadInput(f"stack {key}: zero3_compute_slowdown must be in [0, 1), got {slow!r}", "fix seeds/stacks.toml")
    platform = r.get("platform", "")
    if platform not in ("", "rocm"):
        raise BadInput(f"stack {key}: platform must be \"rocm\" or left out, got {platform!r}", "fix seeds/stacks.toml")
    twin = r.get("cuda_counterpart", "")
    if twin and (twin not in raw or raw[twin].get("platform", "")):
        raise BadInput(f"stack {key}: cuda_counterpart {twin!r} is not a stack that runs on NVIDIA GPUs",
                       "name a stack of seeds/stacks.toml without platform = \"rocm\"")
    return Stack(key=key, name=str(r.get("name", key)), grad_reduce_dtype=gd, efficiency=eff, platform=platform,
                 cuda_counterpart=str(twin),
                 zero3_compute_slowdown=None if slow is None else float(slow), recompute_modes=modes,
                 grad_buffer_dtype=None if gb is None else str(gb),
                 fitted_on=tuple(r.get("fitted_on", ())), sources=dict(r.get("sources", {})),
                 **kw).with_comm_max_ctas(r.get("comm_max_ctas"), f"stack {key}")


def cuda_counterpart(stack: Stack) -> Stack:
    """The stack an H100 runs to compare with `stack`: a ROCm build's CUDA counterpart, reducing its
    gradients in the same dtype; any other stack as it is (the same switches on both sides)."""
    if stack.platform != "rocm":
        return stack
    return load_stack(stack.cuda_counterpart or DEFAULT_STACK).with_reduce_dtype(stack.grad_reduce_dtype)


def default_stack_for(vendor: str | None) -> str:
    return DEFAULT_STACK_AMD if (vendor or "").lower() == "amd" else DEFAULT_STACK
