"""LLM serving: output tokens/s per GPU and system, TTFT and TPOT, batch, what bounds a step."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

import typer

from recoque.catalog import get_device_spec
from recoque.errors import BadInput
from recoque.cli._edge import grid_option, power_limit_option, profile_anyway_option
from recoque.names import resolve_key
from recoque.planner.capacity import (activations_for, assemble, plan_infer, profile_for, released_for_device,
                                      released_kv_default, released_kv_note, released_weights_note, resolve_system)
from recoque.planner.inference import load_model_spec
from recoque.planner.workload import preset_key
from recoque.planner.serving import ServingRequest
from recoque.planner.workloads import WorkloadEntry, load_workloads


def _workload_or_model(workload: Optional[str], model: Optional[str]) -> tuple[WorkloadEntry | None, str]:
    """--workload: an infer workload (seeds/workloads.toml), a model preset, a model TOML file or a checkpoint's config.json."""
    if workload and model:
        raise BadInput("--workload and --model both given", "pass one: a serving workload or a model")
    name = workload or model or "le-chat"
    entries = load_workloads()
    key = resolve_key(name, entries)
    if key is not None:
        w = entries[key]
        if w.kind != "infer":
            raise BadInput(f"workload {key!r} is of kind {w.kind}, not infer", "use an infer workload such as le-chat, or a model preset")
        return w, str(w.model)
    return None, name


def _gemm_shapes(path: Optional[str]) -> Any:
    """Measured GEMM rates by shape from the --profile results file (None without GEMM records)."""
    if not path:
        return None
    from recoque.bench.schema import load_results
    from recoque.planner.serving_rates import GemmShapes

    return GemmShapes.from_results(load_results(path), source=str(path))


ATTENTION_HELP = ("the attention projections' weight dtype where the checkpoint keeps them apart (its quantization "
                  "excludes self_attn, e.g. bf16 in amd/DeepSeek-R1-0528-MXFP4); default: --weights")
ATTENTION_OUT_HELP = ("the attention output projection's (o_proj) weight dtype where it differs from "
                      "--attention-weights (fp4 in nvidia/DeepSeek-R1-0528-FP4-v2)")


def _request(w: WorkloadEntry | None, flags: dict[str, Any], spec: Any) -> ServingRequest:
    """The workload's scenario (or the defaults), then every flag the user gave; `spec`, the
    system's device, decides the activations a narrow --weights or --dtype implies."""
    from recoque.planner.inference import Serving

    base = Serving.from_workload(w).request() if w else ServingRequest()
    dtype = flags.pop("dtype")
    clash = [k for k in ("weights", "activations") if dtype and flags[k] and flags[k] != dtype]
    if clash:  # --kv-cache may differ: the shorthand with a wider or narrower cache is a common setting
        raise BadInput(f"--dtype {dtype} and --{clash[0]} {flags[clash[0]]} disagree",
                       "give --dtype alone, or --weights/--activations/--kv-cache without it")
    if dtype:
        flags["weights"] = flags["weights"] or dtype
        # an fp4 KV cache needs fp4 units (Blackwell, CDNA4); elsewhere the shorthand keeps it in fp8
        flags["kv_cache"] = flags["kv_cache"] or ("fp8" if dtype == "fp4" and not spec.peak("fp4") else dtype)
        flags["activations"] = flags["activations"] or activations_for(dtype, spec)
    if flags.get("weights") in ("fp8", "fp4") and flags.get("activations") is None and base.activations not in ("fp8", "fp4"):
        flags["activations"] = activations_for(flags["weights"], spec)
    given = {k: v for k, v in flags.items() if v is not None}
    server_only = sorted(given.keys() & {"concurrency", "request_rate_per_s", "ttft_target_s", "tpot_target_s"})
    if given.get("mode") == "offline" and server_only:
        flag = "--" + server_only[0].replace("_per_s", "").replace("_target_s", "-ms").replace("_", "-")
        raise BadInput(f"{flag} sets a load or a latency target, which --mode offline ignores",
                       "drop it, or use --mode server")
    fields = base.knobs()
    load_flags = {"batch", "concurrency", "request_rate_per_s", "ttft_target_s", "tpot_target_s"}
    if given.keys() & load_flags:  # the user's load replaces the workload's latency target
        fields.update(batch=None, concurrency=None, request_rate_per_s=None, ttft_target_s=None, tpot_target_s=None)
        # a fixed batch alone is a closed benchmark run, as without a workload: one mode label for both
        fields["mode"] = "server" if given.keys() & (load_flags - {"batch"}) else "offline"
    elif not w:
        fields["mode"] = "offline"
    if "requests" in given:  # a finite offline run replaces the workload's load and targets
        fields.update(mode="offline", batch=None, concurrency=None, request_rate_per_s=None, ttft_target_s=None, tpot_target_s=None)
    if given.get("mode") == "offline":  # the workload's load and latency targets do not apply offline
        fields.update(concurrency=None, request_rate_per_s=None, ttft_target_s=None, tpot_target_s=None)
    fields.update(given)
    return ServingRequest(**fields)


def infer(system: str = typer.Option(..., "--system", "-s", help="system preset (seeds/systems.toml) or a TOML file"),
          workload: Optional[str] = typer.Option(None, "--workload", "-w",
                                                 help="infer workload (seeds/workloads.toml), model preset, model TOML file or a checkpoint's config.json (default le-chat)"),
          model: Optional[str] = typer.Option(None, "--model", "-m", help="model preset (seeds/models.toml), TOML file or a checkpoint's config.json"),
          gpus: Optional[int] = typer.Option(None, "--gpus", help="use this many GPUs of the system"),
          mode: Optional[str] = typer.Option(None, "--mode", help="offline (max throughput) | server (a load or latency targets)"),
          prompt_tokens: Optional[float] = typer.Option(None, "--prompt-tokens",
                                                        help="mean prompt length (a dataset's mean may be fractional: 222.3)"),
          output_tokens: Optional[float] = typer.Option(None, "--output-tokens", help="mean output length"),
          batch: Optional[int] = typer.Option(None, "--batch", help="fixed running streams per replica"),
          concurrency: Optional[int] = typer.Option(None, "--concurrency", help="concurrent requests over the system (closed loop)"),
          request_rate: Optional[float] = typer.Option(None, "--request-rate", help="requests/s over the system (Poisson)"),
          ttft_ms: Optional[float] = typer.Option(None, "--ttft-ms", help="time-to-first-token target"),
          tpot_ms: Optional[float] = typer.Option(None, "--tpot-ms", help="time-per-output-token target"),
          percentile: Optional[str] = typer.Option(None, "--percentile", help="p50 | p90 | p99 for the targets and latencies"),
          tp: Optional[int] = typer.Option(None, "--tp", help="tensor parallel GPUs per replica (default: best per GPU)"),
          pp: Optional[int] = typer.Option(None, "--pp", help="pipeline stages per replica"),
          ep: Optional[int] = typer.Option(None, "--ep", help="expert-parallel GPUs (MoE)"),
          attention_dp: Optional[bool] = typer.Option(None, "--attention-dp/--attention-tp",
                                                      help="MoE: attention data-parallel over the tp GPUs, experts over --ep = --tp"),
          split_experts: bool = typer.Option(False, "--split-experts/--whole-experts",
                                             help="with --attention-dp: split every expert over the tp GPUs instead of spreading "
                                                  "whole experts over them (TensorRT-LLM's mapping when no expert-parallel size is given)"),
          weights: Optional[str] = typer.Option(None, "--weights", help="weight dtype: bf16 | fp8 | fp4"),
          activations: Optional[str] = typer.Option(None, "--activations", help="activation dtype (fp8 with fp8 weights = fp8 GEMMs)"),
          kv_cache: Optional[str] = typer.Option(None, "--kv-cache", help="KV cache dtype: bf16 | fp16 | fp8 | int8 | fp4 | fp32"),
          attention_weights: Optional[str] = typer.Option(None, "--attention-weights", help=ATTENTION_HELP),
          attention_out_weights: Optional[str] = typer.Option(None, "--attention-out-weights", help=ATTENTION_OUT_HELP),
          dtype: Optional[str] = typer.Option(None, "--dtype", help="shorthand: weights, KV cache (and fp8 activations)"),
          fp4_format: Optional[str] = typer.Option(None, "--fp4-format",
                                                   help="fp4 block format: mxfp4 (1/32-byte scales) | nvfp4 (1/16); default: the "
                                                        "checkpoint's, else NVFP4 on NVIDIA and MXFP4 on AMD"),
          engine: Optional[str] = typer.Option(None, "--engine", help="vllm (V1 engine, >= 0.8) | vllm-v0 (<= 0.7) | trtllm | sglang | atom (AMD ATOM) (seeds/serving.toml)"),
          engine_efficiency: Optional[float] = typer.Option(None, "--engine-efficiency", help="measured engine efficiency (0-1]"),
          hbm_fraction: Optional[float] = typer.Option(None, "--hbm-fraction", help="usable fraction of HBM (engine default 0.9)"),
          length_cv2: Optional[float] = typer.Option(None, "--length-cv2", help="spread of prompt/output lengths, squared CV (0 = fixed; default 0.6, chat datasets)"),
          output_cv2: Optional[float] = typer.Option(None, "--output-cv2",
                                                     help="the output lengths' own spread, squared CV, where it differs from the "
                                                          "prompts' (reasoning models: DeepSeek-R1's MLPerf outputs 1.57; default: --length-cv2)"),
          max_batch: Optional[int] = typer.Option(None, "--max-batch",
                                                  help="engine batch cap of one replica (max_num_seqs); under --attention-dp "
                                                       "TensorRT-LLM's max_batch_size is per rank: give it x tp"),
          max_num_tokens: Optional[int] = typer.Option(None, "--max-num-tokens",
                                                       help="tokens one engine step may carry: TensorRT-LLM max_num_tokens, "
                                                            "vLLM --max-num-batched-tokens, SGLang --chunked-prefill-size (default: the engine's)"),
          spec_tokens: Optional[int] = typer.Option(None, "--spec-tokens",
                                                    help="speculative decoding: draft tokens verified per step "
                                                         "(MTP / EAGLE one-layer draft; default 0)"),
          spec_acceptance: Optional[float] = typer.Option(None, "--spec-acceptance",
                                                          help="chance one draft token is accepted (measured; default 0.85, 0.6-0.9)"),
          allreduce_fusion: Optional[bool] = typer.Option(None, "--allreduce-fusion/--no-allreduce-fusion",
                                                          help="TP all-reduce fused with the residual add + RMSNorm (vLLM "
                                                               "fuse_allreduce_rms, SGLang --enable-flashinfer-allreduce-fusion; "
                                                               "default: the engine's, TensorRT-LLM on)"),
          requests: Optional[int] = typer.Option(None, "--requests",
                                                 help="offline: this many requests submitted at once, followed to the end "
                                                      "(vLLM benchmark_throughput --num-prompts; KV preemptions counted)"),
          gpus_per_replica: Optional[int] = typer.Option(None, "--gpus-per-replica", help="same as --tp"),
          profile: Optional[str] = typer.Option(None, "--profile", help="results.json from `recoque bench`: measured rates"),
          profile_anyway: bool = profile_anyway_option(),
          power_limit_w: Optional[float] = power_limit_option(),
          grid: Optional[str] = grid_option(),
          as_json: bool = typer.Option(False, "--json", help="emit the same data as JSON")) -> None:
    """LLM serving: output tokens/s per GPU and system, TTFT and TPOT, batch, what bounds a step."""
    from recoque.cli.plan import show

    if tp is not None and gpus_per_replica is not None and tp != gpus_per_replica:
        raise BadInput(f"--tp {tp} and --gpus-per-replica {gpus_per_replica} disagree (they are the same setting)",
                       "give one of them")
    s = resolve_system(system, gpus, power_limit_w, shown=True, grid=grid)  # MI250X: per GCD, as ROCm shows it
    w, name = _workload_or_model(workload, model)
    flags = dict(mode=mode, prompt_tokens=prompt_tokens, output_tokens=output_tokens, batch=batch, concurrency=concurrency,
                 request_rate_per_s=request_rate, ttft_target_s=ttft_ms / 1e3 if ttft_ms is not None else None,
                 tpot_target_s=tpot_ms / 1e3 if tpot_ms is not None else None, percentile=percentile.strip().lower() if percentile else None,
                 tp=tp or gpus_per_replica, pp=pp, ep=ep, attention_dp=attention_dp, split_experts=split_experts, weights=weights, activations=activations, kv_cache=kv_cache,
                 attention_weights=attention_weights,
                 attention_out_weights=attention_out_weights, dtype=dtype, engine=engine, engine_efficiency=engine_efficiency, hbm_fraction=hbm_fraction, length_cv2=length_cv2, output_cv2=output_cv2,
                 max_batch=max_batch, max_num_tokens=max_num_tokens, requests=requests,
                 spec_tokens=spec_tokens, spec_acceptance=spec_acceptance, allreduce_fusion=allreduce_fusion,
                 fp4_format=fp4_format.strip().lower() if fp4_format else None)
    name = name if w else preset_key(name)  # a preset under any spelling or alias prints as its key
    model_spec = None if w else load_model_spec(name)
    # a model named alone, with no --weights or --dtype, is served in the precision it was released in
    released = "" if (model_spec is None or flags["weights"] or flags["dtype"]) else \
        released_for_device(model_spec, s.device)
    flags["weights"] = flags["weights"] or released or None
    kv_unset = model_spec is not None and not (flags["kv_cache"] or flags["dtype"])
    req = _request(w, flags, get_device_spec(s.device))
    # with no --kv-cache, an engine whose default follows the checkpoint keeps the KV dtype it records
    released_kv = released_kv_default(model_spec, req.engine) if kv_unset else ""
    req = replace(req, kv_cache=released_kv) if released_kv else req
    s, prof = profile_for(s, profile, profile_anyway)
    rows, d, notes, dl, _ = plan_infer(s, w, name, prof, request=req, model=model_spec, gemm_shapes=_gemm_shapes(profile))
    notes = notes + ((released_weights_note(name, released),) if released else ())
    notes = notes + ((released_kv_note(name, req.engine, released_kv),) if released_kv else ())
    show(assemble(s, w.key if w else name, "inference", rows, d, notes, dl, None), as_json)
