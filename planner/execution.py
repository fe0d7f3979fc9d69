"""Execution plan: how one training iteration is split over the GPUs (the third planner input).

    tp    tensor parallel size (Megatron column/row split, Shoeybi et al. 2019)
    pp    pipeline stages; `interleave` = virtual stages per GPU (Narayanan et al. 2021, sec. 2.2.2)
    dp    data-parallel replicas; tp * cp * pp * dp = GPUs
    cp    context-parallel size: each sequence split over cp GPUs, attention as a ring over them
          (Megatron-Core context parallelism; Llama 3 used CP 16 for 128K sequences)
    ep    expert-parallel size for mixture-of-experts (divides the expert count)
    etp   expert tensor-parallel size: each expert split over etp GPUs (Megatron-Core
          --expert-tensor-parallel-size). The experts are laid out over a stage's tp x cp x dp
          ranks as etp x ep x edp (edp: expert data-parallel replicas), so etp x ep must divide
          tp x cp x dp. 0 = Megatron-Core's default, etp = tp, where that divides, else 1;
          Megatron-Bridge's MoE recipes set 1 (recipes/qwen/h100/qwen3_moe.py)
    micro_batch            sequences per micro-batch
    recompute              "none" | "selective" (attention core, Korthikanti et al. 2022 sec. 5) | "full"
    sequence_parallel      Korthikanti et al. 2022 sec. 4.2.2 (LayerNorm/dropout split over tp)
    zero_stage             0..3 (Rajbhandari et al. 2020): 1 optimizer, 2 + gradients, 3 + weights
    dp_overlap             overlap the gradient reduction with the last micro-batch's backward
    tp_overlap             with sequence parallelism: pipeline the TP all-gathers/reduce-scatters
                           with the GEMMs they feed, in tp chunks (Transformer Engine userbuffers,
                           Megatron-Core --tp-comm-overlap, NeMo ub_tp_comm_overlap; torchtitan
                           async TP): only the first chunk and what the GEMMs cannot cover show
    cp_a2a                 context parallelism by all-to-all (Ulysses; Megatron-Core/Transformer
                           Engine cp_comm_type "a2a": heads split over the cp ranks for attention)
                           instead of the default ring of K/V chunks ("p2p")
    ep_overlap             MoE: the expert all-to-alls of one micro-batch run beside the compute of
                           another (Megatron-Core --overlap-moe-expert-parallel-comm, its combined
                           1F1B schedule; DeepSeek-V3's DualPipe): only what that compute cannot cover shows
    flash_attention        fused attention (Dao et al. 2022): no s x s activations stored
    reshard_after_forward  ZeRO-3/FSDP only: free the gathered weights after the forward and
                           gather them again in the backward (FSDP FULL_SHARD); off = FSDP
                           SHARD_GRAD_OP, weights kept whole between forward and backward

Layers need not divide evenly over stages (BLOOM: 70 layers on 12 stages); the stage with the
most layers, ceil(L / (pp v)) v, sets the pace and the memory.
Rank order is Megatron's: tensor-parallel ranks innermost, then context-parallel, data-parallel, pipeline.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np

from recoque.errors import BadInput

RECOMPUTE = ("none", "selective", "full")
RECOMPUTE_CODE = {name: i for i, name in enumerate(RECOMPUTE)}


def all_to_all_splits_heads(heads: Any, tp: Any, cp: Any) -> Any:
    """Context parallelism by all-to-all gives each cp rank a share of a TP rank's heads: they must
    split evenly (numbers or arrays)."""
    return (heads // tp) % cp == 0


@dataclass(frozen=True)
class ExecutionPlan:
    tp: int
    pp: int
    dp: int
    micro_batch: int
    recompute: str = "selective"
    interleave: int = 1
    sequence_parallel: bool = True
    zero_stage: int = 1
    dp_overlap: bool = True
    flash_attention: bool = True
    ep: int = 1
    cp: int = 1
    reshard_after_forward: bool = True
    recompute_layers: int = 0  # with recompute "full": layers per stage recomputed (0 = all; Megatron block method)
    distribute_checkpoints: bool = False  # full recompute: checkpointed inputs split over TP (OPT-175B)
    tp_overlap: bool = False
    cp_a2a: bool = False  # context parallelism by all-to-all instead of the K/V ring
    ep_overlap: bool = False  # expert all-to-alls hidden behind another micro-batch's compute
    etp: int = 0  # expert tensor-parallel size; 0 (resolved on construction): tp where tp x ep divides the stage's ranks, else 1

    def __post_init__(self) -> None:
        for k in ("tp", "pp", "dp", "micro_batch", "interleave", "ep", "cp"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise BadInput(f"plan: `{k}` must be a positive integer, got {v!r}", "fix the plan")
        for k in ("recompute_layers", "etp"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise BadInput(f"plan: {k} must be a non-negative integer, got {v!r}", "fix the plan")
        # 0 asks for the default; the plan keeps the size it runs, so that equal plans compare equal
        object.__setattr__(self, "etp", expert_tp_size(self.etp, self.tp, self.tp * self.cp * self.dp, self.ep))
        if self.recompute not in RECOMPUTE:
            raise BadInput(f"plan: recompute must be one of {RECOMPUTE}, got {self.recompute!r}", "fix the plan")
        if self.zero_stage not in (0, 1, 2, 3):
            raise BadInput(f"plan: zero_stage must be 0..3, got {self.zero_stage!r}", "fix the plan")

    @property
    def expert_dp(self) -> int:
        """Expert data-parallel replicas: the stage's tp x cp x dp ranks over etp x ep."""
        return self.tp * self.cp * self.dp // (self.etp * self.ep)

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    def recompute_share(self, layers: int) -> float:
        """Share of the layers recomputed: 1 for full (all layers), N / layers-per-chunk for block (Megatron-Core
        recomputes the first N layers of each virtual stage's block, so N x v of a GPU's layers)."""
        if self.recompute != "full" or self.recompute_layers == 0:
            return 1.0
        per_chunk = -(-layers // (self.pp * self.interleave))
        return min(1.0, self.recompute_layers / per_chunk)

    def micro_batches(self, global_batch_seqs: int) -> int:
        return global_batch_seqs // (self.dp * self.micro_batch)

    def problems(self, model: Any, global_batch_seqs: int, gpus: int | None = None) -> list[str]:
        """Why this plan cannot run this model (empty when it can). `model` is a TransformerSpec."""
        out = []
        if gpus is not None and self.gpus != gpus:
            out.append(f"tp*cp*pp*dp = {self.gpus} but {gpus} GPUs")
        if model.heads % self.tp:
            out.append(f"tp {self.tp} does not divide {model.heads} heads")
        if not model.tp_takes_kv_heads(self.tp):
            out.append(f"tp {self.tp} and {model.kv_heads} kv heads do not divide one another")
        if self.pp * self.interleave > model.layers:
            out.append(f"pp*interleave {self.pp * self.interleave} is more than {model.layers} layers")
        if global_batch_seqs % (self.dp * self.micro_batch):
            out.append(f"dp*micro_batch {self.dp * self.micro_batch} does not divide batch {global_batch_seqs}")
        elif self.interleave > 1 and (self.pp == 1 or self.micro_batches(global_batch_seqs) % self.pp):
            out.append("interleaving needs pp > 1 and micro-batches a multiple of pp")
        if self.cp > 1 and self.cp_a2a and not all_to_all_splits_heads(model.heads, self.tp, self.cp):
            out.append(f"cp {self.cp} by all-to-all must divide the {model.heads // self.tp} heads per TP rank")
        if self.cp > 1 and model.seq_len % (2 * self.cp):
            out.append(f"cp {self.cp}: sequence {model.seq_len} must split into 2*cp equal chunks")
        if self.ep > 1 and model.experts % self.ep:
            out.append(f"ep {self.ep} must divide the {model.experts} experts")
        stage = self.tp * self.cp * self.dp
        if model.moe and stage % (self.etp * self.ep):
            out.append(f"etp {self.etp} x ep {self.ep} must divide tp x cp x dp = {stage}")
        return out

    def label(self) -> str:
        parts = [f"TP{self.tp}"] + ([f"CP{self.cp}" + ("a2a" if self.cp_a2a else "")] if self.cp > 1 else []) + [f"PP{self.pp}" + (f"x{self.interleave}" if self.interleave > 1 else ""),
                 f"DP{self.dp}", f"mb{self.micro_batch}", f"rc:{self.recompute}" + (f"({self.recompute_layers})" if self.recompute == "full" and self.recompute_layers else "")]
        if self.sequence_parallel and self.tp > 1:
            parts.append("SP" + ("+tp-overlap" if self.tp_overlap else ""))
        if self.distribute_checkpoints and self.recompute == "full" and self.tp > 1:
            parts.append("dist-ckpt")
        parts.append(f"ZeRO{self.zero_stage}" + ("" if self.zero_stage < 3 or self.reshard_after_forward else "-noreshard"))
        if self.ep > 1:
            parts.append(f"EP{self.ep}" + (f"/ETP{self.etp}" if self.etp != self.tp else "")
                         + ("+a2a-overlap" if self.ep_overlap else ""))
        if self.dp_overlap and self.dp > 1:
            parts.append("overlap")
        if not self.flash_attention:
            parts.append("no-flash")
        return " ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def expert_tp_size(etp: Any, tp: Any, stage_ranks: Any, ep: Any) -> Any:
    """etp as given, or for 0 Megatron-Core's default (tp) where tp x ep divides the stage's
    tp x cp x dp ranks, else 1 (Megatron-Bridge's MoE recipes' setting, the one size that always fits an ep
    dividing them). Scalars (a plan) or arrays (the planner's plan arrays)."""
    size = np.where(np.asarray(etp) > 0, etp, np.where(np.mod(stage_ranks, np.multiply(tp, ep)) == 0, tp, 1))
    return int(size) if np.ndim(size) == 0 else size


def plan_from_mapping(raw: Mapping[str, Any], where: str = "plan") -> ExecutionPlan:
    known = {f for f in ExecutionPlan.__dataclass_fields__}
    unknown = set(raw) - known
    if unknown:
        raise BadInput(f"{where}: unknown keys {sorted(unknown)}", f"known: {sorted(known)}")
    try:
        return ExecutionPlan(**dict(raw))
    except TypeError as exc:
        raise BadInput(f"{where}: {exc}", "give tp, pp, dp and micro_batch") from None
