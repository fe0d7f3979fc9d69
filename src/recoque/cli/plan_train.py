"""Best training plans for a workload on N GPUs of a system: time to train, throughput, MFU/HFU, memory."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

import typer

from recoque.cli._edge import grid_option, power_limit_option, profile_anyway_option
from recoque.catalog import DeviceSpec, get_device_spec
from recoque.errors import BadInput, DoesNotFit
from recoque.planner.power import limited
from recoque.planner.profile import DeviceProfile
from recoque.planner.system import SystemSpec, as_shown, load_system
from recoque.planner.train import SearchResult
from recoque.planner.workload import LORA_TARGETS, load_training_workload
from recoque.render import console, emit_json, fmt, plan_words, rows_table, table, warn

DAY = 86400.0
# How far above the usable memory the model's estimate has been for published runs that ran:
# 1.27 x (DeepSeek-V3 on 2,048 H800, seeds/train_checks.toml; the next: 1.24, the MLPerf Llama-2-70B
# LoRA runs on one 8 x B200 node; CPU-offload runs, which the model does not express, left aside).
# Measure with: python benchmarks/train_memory_fit.py
MEMORY_MODEL_HIGH_SIDE = 1.27


def resolve_system(name_or_path: str) -> SystemSpec:
    """A preset from seeds/systems.toml, a user file, or one of the validation systems."""
    try:
        return load_system(name_or_path)
    except BadInput as exc:
        from recoque.planner.validation import list_validation_systems, validation_system

        if name_or_path in list_validation_systems():
            return validation_system(name_or_path)
        if exc.what.startswith("unknown system"):
            raise BadInput(exc.what, exc.fix + f"; validation systems: {', '.join(list_validation_systems())}") from None
        raise


def resolve_device(key: str) -> DeviceSpec:
    try:
        return get_device_spec(key)
    except BadInput:
        from recoque.planner.validation import validation_device

        return validation_device(key)


def resolve_profile(spec: DeviceSpec, results_path: Optional[str], anyway: bool = False) -> DeviceProfile:
    if results_path:
        from dataclasses import replace

        from recoque.bench.schema import load_results
        from recoque.inputs import check_profile_device, check_profile_rates

        doc = load_results(results_path)
        # another device's file is refused unless --profile-anyway; then every output carries the mark (issue 7)
        mark = check_profile_device(dict(doc.device), spec.key, results_path, anyway)
        check_profile_rates(doc, results_path)
        from recoque.planner.workloads import spec_with_assumed_peaks

        spec2, peak_notes = spec_with_assumed_peaks(spec)  # MI430X: no public BF16 peak; assumed, with its note
        prof = DeviceProfile.from_results(doc, spec2)
        if peak_notes:
            prof = replace(prof, assumptions=(*prof.assumptions, *peak_notes))
        if mark:
            warn(mark)
            prof = replace(prof, assumptions=(mark, *prof.assumptions))
        return prof
    from recoque.planner.validation import shipped_profile, training_profile

    if shipped_profile(spec.key) is None:
        warn(f"no measured profile for {spec.name}: datasheet x default efficiency (pass --profile results.json)")
    return training_profile(spec)


BREAKDOWN_WORDS = {"compute": "compute", "tp_comm": "tensor-parallel comm", "ep_comm": "expert-parallel comm",
                   "cp_comm": "context-parallel comm", "p2p": "pipeline sends", "bubble": "pipeline bubble",
                   "dp_exposed": "exposed data-parallel comm", "zero3_exposed": "exposed ZeRO-3 gathers",
                   "optimizer": "optimizer step", "param_passes": "gradient zeroing, weight quantisation",
                   "emb_sync": "embedding sync", "straggler": "wait for the slowest GPU"}


def _span(e: Any, scale: float = 1.0, digits: int = 3) -> str:
    return f"{fmt(e.value * scale, digits)} [{fmt(e.low * scale, digits)}-{fmt(e.high * scale, digits)}]"


def _pct(e: Any) -> str:
    return f"{e.value:.1%} [{e.low:.1%}-{e.high:.1%}]"


def render(res: SearchResult, workload_name: str, tokens: float, curve: Any = None) -> None:
    b = res.best[0]
    console.print(f"{workload_name} on {res.gpus} GPUs of {res.system}: {tokens:.3g} tokens")
    rows = []
    for i, r in enumerate(res.best, 1):
        rows.append((i, plan_words(r.plan), _span(r.iteration_time), _span(r.tokens_per_s),
                     _span(r.time_to_train, 1 / DAY), _span(r.time_to_train_wall, 1 / DAY),
                     _span(r.model_flop_s_per_gpu, 1e-12), _pct(r.mfu), _pct(r.hfu),
                     fmt(r.memory_per_gpu.value / 1e9), _pct(r.comm_share)))
    console.print(table("best plans: value, with low-high in brackets",
                        ("#", "plan", "s/iteration", "tokens/s", "days (steady)", "days (wall, goodput)",
                         "TFLOP/s/GPU (model)", "MFU", "HFU", "GB/GPU", "comm share"), rows))
    bd = b.breakdown
    it = bd["iteration_time_s"]
    parts = {k: v for k, v in bd.items() if k != "iteration_time_s" and v > 0}
    shown = _whole_percents([v / it for v in parts.values()])
    console.print("best plan, where the time goes (sums to the iteration time): " + ", ".join(
        f"{BREAKDOWN_WORDS.get(k[:-2], k[:-2])} {p}%" for k, p in zip(parts, shown)), highlight=False)
    if b.mfu_fp8_peak is not None:
        console.print(f"MFU against the bf16 peak {_pct(b.mfu)}; against the {b.narrow_dtype or 'fp8'} peak "
                      f"{_pct(b.mfu_fp8_peak)}")
    console.print(f"goodput {_pct(b.goodput)} (failures and checkpoints), shown apart from steady-state throughput")
    if curve is not None:
        console.print(table(f"GPU count: fastest by the clock is {curve.fastest_gpus:,} GPUs",
                            ("GPUs", "days (wall)", "days (steady)", "MFU", "best plan"),
                            [(f"{p.gpus:,}", fmt(p.time_to_train_wall_s / DAY) if p.fits else p.why,
                              fmt(p.time_to_train_s / DAY) if p.fits else "",
                              f"{p.mfu:.1%}" if p.fits else "", p.plan) for p in curve.curve]))
    for line in res.reasons:
        console.print(line, highlight=False)
    console.print("assumptions:", highlight=False)
    for a in b.assumptions:
        console.print(f"  - {a}", highlight=False)


def train(
    workload: str = typer.Option(..., "--workload", "-w", help="model preset (seeds/models.toml), a training workload (seeds/workloads.toml), a TOML file or a checkpoint's config.json"),
    system: str = typer.Option(..., "--system", "-s", help="system preset (seeds/systems.toml) or a TOML file"),
    gpus: Optional[int] = typer.Option(None, "--gpus", "-n", help="GPUs to use (default: the whole system)"),
    profile: Optional[str] = typer.Option(None, "--profile", help="results JSON from `recoque bench`"),
    profile_anyway: bool = profile_anyway_option(),
    power_limit_w: Optional[float] = power_limit_option(),
    grid: Optional[str] = grid_option(),
    top: int = typer.Option(5, "--top", help="how many plans to show"),
    full: bool = typer.Option(False, "--full", help="search every switch (slower) instead of the pruned space"),
    dtype: str = typer.Option("bf16", "--dtype", help="training precision of the GEMMs: bf16, fp16, fp8, fp4 (fp8, fp4: linear layers only)"),
    stack: Optional[str] = typer.Option(None, "--stack", help="software stack (seeds/stacks.toml); default by vendor"),
    tp: Optional[int] = typer.Option(None, "--tp", help="pin tensor parallelism"),
    pp: Optional[int] = typer.Option(None, "--pp", help="pin pipeline stages"),
    vpp: Optional[int] = typer.Option(None, "--vpp", help="pin virtual stages per GPU (interleave)"),
    dp: Optional[int] = typer.Option(None, "--dp", help="pin data parallelism"),
    cp: Optional[int] = typer.Option(None, "--cp", help="pin context parallelism"),
    micro_batch: Optional[int] = typer.Option(None, "--micro-batch", help="pin sequences per micro-batch"),
    global_batch: Optional[int] = typer.Option(None, "--global-batch", help="global batch in sequences"),
    tokens: Optional[float] = typer.Option(None, "--tokens", help="tokens to train (default: the preset's run)"),
    recompute: Optional[str] = typer.Option(None, "--recompute", help="pin none | selective | full"),
    zero: Optional[int] = typer.Option(None, "--zero", help="pin the ZeRO stage 0-3"),
    sp: Optional[bool] = typer.Option(None, "--sp/--no-sp", help="pin sequence parallelism"),
    tp_overlap: Optional[bool] = typer.Option(None, "--tp-overlap/--no-tp-overlap",
                                              help="pin TP communication overlap (with sequence parallelism)"),
    cp_a2a: Optional[bool] = typer.Option(None, "--cp-a2a/--cp-ring",
                                          help="context parallelism by all-to-all (Ulysses) or the K/V ring (default)"),
    ep_overlap: Optional[bool] = typer.Option(None, "--ep-overlap/--no-ep-overlap",
                                              help="pin the MoE all-to-all overlap (Megatron-Core combined 1F1B, DualPipe)"),
    ep: Optional[int] = typer.Option(None, "--ep", help="pin expert parallelism (MoE: the experts spread over ep GPUs)"),
    etp: Optional[int] = typer.Option(None, "--etp", help="pin the expert tensor-parallel size (MoE: each expert split "
                                      "over etp GPUs; searched: 1 and --tp)"),
    flash_attention: Optional[bool] = typer.Option(None, "--flash-attention/--no-flash-attention",
                                                   help="pin fused (flash) attention; default: the stack's"),
    dp_overlap: Optional[bool] = typer.Option(None, "--dp-overlap/--no-dp-overlap",
                                              help="pin the data-parallel gradient reduction overlapped with the backward"),
    reshard_after_forward: Optional[bool] = typer.Option(
        None, "--reshard-after-forward/--no-reshard-after-forward",
        help="ZeRO-3/FSDP: gather the weights again in the backward (on) or keep them from the forward (off)"),
    recompute_layers: Optional[int] = typer.Option(
        None, "--recompute-layers", help="with --recompute full: layers per pipeline stage recomputed (0: all of them)"),
    distribute_checkpoints: Optional[bool] = typer.Option(
        None, "--distribute-checkpoints/--no-distribute-checkpoints",
        help="with --recompute full: the checkpointed layer inputs split over the TP ranks (OPT-175B)"),
    grad_reduce: Optional[str] = typer.Option(None, "--grad-reduce-dtype", help="fp32 | bf16 gradient reduction"),
    fp8_param_gather: Optional[bool] = typer.Option(
        None, "--fp8-param-gather/--no-fp8-param-gather",
        help="fp8/fp4 training: the optimizer all-gathers the weights' fp8 copy (Megatron-Core fp8_param_gather, "
             "NeMo FP8_PARAM_GATHER); default: the stack's practice"),
    fused_expert_mlp: Optional[bool] = typer.Option(
        None, "--fused-expert-mlp/--no-fused-expert-mlp",
        help="MoE: the experts run as one fused grouped MLP that takes a clamped activation and expert biases "
             "in its kernels (Transformer Engine's op fuser); default: the stack's practice (off for Megatron-Core)"),
    nccl_max_ctas: Optional[str] = typer.Option(
        None, "--nccl-max-ctas",
        help="the run's NCCL CTA caps per communicator, e.g. cp=1,dp=8 (Megatron-Core nccl_communicator_config_path): "
             "a capped context-parallel ring or pipeline send moves at most CTAs x half a scale-up link"),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="sequence length in tokens (default: the model's)"),
    lora_rank: int = typer.Option(0, "--lora-rank", help="LoRA fine-tuning: adapter rank (0 = full training)"),
    lora_targets: str = typer.Option("all", "--lora-targets", help="LoRA adapters on: all | attention linear layers"),
    lora_dropout: float = typer.Option(0.0, "--lora-dropout",
                                       help="LoRA: dropout on the adapters' inputs (MLPerf's Llama-2-70B LoRA: 0.1); "
                                            "each adapter then keeps a mask and a dropped copy of its input"),
    as_json: bool = typer.Option(False, "--json", help="emit JSON with the same content"),
) -> None:
    """Best training plans for a workload on N GPUs of a system: time to train, throughput, MFU/HFU, memory."""
    from recoque.planner.search import fastest_gpu_count, search

    _check_dtype(dtype)
    wl = _training_workload(workload, tokens, global_batch, seq_len, lora_rank, lora_targets, lora_dropout)
    sysspec, spec, prof, link_lines = _system_and_profile(system, grid, power_limit_w, gpus, profile, profile_anyway,
                                                          as_json)
    if top <= 0:
        raise BadInput("--top must be positive", "give --top 1 or more")
    st = _stack(stack, spec, grad_reduce, fp8_param_gather, fused_expert_mlp, nccl_max_ctas)
    pins = _pins({"tp": tp, "pp": pp, "vpp": vpp, "dp": dp, "cp": cp, "micro_batch": micro_batch,
                  "recompute": recompute, "zero": zero, "sp": sp, "tp_overlap": tp_overlap, "cp_a2a": cp_a2a,
                  "ep_overlap": ep_overlap, "ep": ep, "etp": etp, "flash_attention": flash_attention,
                  "dp_overlap": dp_overlap, "reshard_after_forward": reshard_after_forward,
                  "recompute_layers": recompute_layers, "distribute_checkpoints": distribute_checkpoints})
    if fp8_param_gather and dtype not in ("fp8", "fp4"):
        raise BadInput(f"--fp8-param-gather gathers the weights' fp8 copy, which --dtype {dtype} training does not keep",
                       "drop --fp8-param-gather, or train with --dtype fp8")
    _check_tokens(wl)
    _check_pinned_shape(pins, gpus, sysspec)
    _check_pins_against_model(pins, wl)
    curve = None
    if gpus is None:
        curve = fastest_gpu_count(wl, sysspec, prof, top=top, dtype=dtype, full=full, stack=st, pins=pins)
        res = curve.best
    else:
        res = search(wl, sysspec, prof, top=top, gpus=gpus, dtype=dtype, full=full, stack=st, pins=pins)
    res = _one_pinned_plan_anyway(res, spec)
    if not res.best:
        _raise_no_plan(res, wl, spec, st, pins, curve)
    from recoque.planner.capacity import train_job_rows

    from recoque.planner.workloads import training_token_range

    job_rows, job_data, job_notes = train_job_rows(sysspec, wl, res, prof, st, dtype,
                                                   training_token_range(workload, tokens), pins=pins)
    if as_json:
        emit_json({**_json_doc(res, wl, prof, st, pins, curve, link_lines, dtype), "job": job_data,
                   "job_assumptions": list(job_notes)})
        return
    if not wl.tokens_published and tokens is None:
        warn(f"{wl.model.name}: tokens_to_train is a stated placeholder, not a published figure")
    render(res, wl.model.name, wl.tokens_to_train, curve)
    console.print(rows_table("the best plan's run: energy, cost, CO2 and H100-equivalents", job_rows))
    for a in job_notes:
        console.print(f"  - {a}", highlight=False)


def _system_and_profile(system: str, grid: Optional[str], power_limit_w: Optional[float], gpus: Optional[int],
                        profile: Optional[str], profile_anyway: bool, as_json: bool) -> tuple[Any, Any, Any, list]:
    """The system as the plan sees it (grid, power limit, MI250X ranks on GCDs as ROCm shows them), its
    device, the device profile and, with a results file, the measured link figures that replace the
    system file's."""
    from recoque.inputs import check_gpus  # one --gpus rule for every subcommand (issue 7)

    unshown = resolve_system(system).with_grid(grid)
    sysspec = limited(as_shown(unshown), power_limit_w)
    check_gpus(gpus, sysspec)
    if not profile:  # the link figures come from the system file: a missing one is said before any warning
        for attr in ("intra_node_bandwidth_bytes_s", "inter_node_bandwidth_bytes_s"):
            sysspec.known(attr)
    spec = resolve_device(sysspec.device)
    prof = resolve_profile(spec, profile, profile_anyway)
    if sysspec.device != unshown.device:  # the package-to-GCD note travels with every plan's assumptions, --json included
        prof = replace(prof, assumptions=(sysspec.notes[-1], *prof.assumptions))
    link_lines: list = []
    if profile:  # measured collectives in the file replace the datasheet link figures (issue 11, planner/commfit.py)
        from recoque.planner.commfit import measured_links
        from recoque.render import err_console

        sysspec, prof, link_lines = measured_links(profile, sysspec, prof)
        for line in ([] if as_json else link_lines):  # --json carries them as "link_figures"
            err_console.print(f"link figures: {line}", highlight=False, markup=False)
    return sysspec, spec, prof, link_lines


def _pins(flags: dict[str, Any]) -> dict[str, Any]:
    """The plan parts the flags pin, with the switches they imply: a recompute-layer count or distributed
    checkpoints shape full recompute only, and reshard-after-forward is a ZeRO-3 (FSDP) switch
    (unpinned, the search would drop them or ZeRO-1 plans ignore them)."""
    pins = {k: v for k, v in flags.items() if v is not None}
    if (pins.get("recompute_layers") or pins.get("distribute_checkpoints")) and "recompute" not in pins:
        pins["recompute"] = "full"
    if "reshard_after_forward" in pins and "zero" not in pins:
        pins["zero"] = 3
    return pins


def _training_workload(workload: str, tokens: Optional[float], global_batch: Optional[int], seq_len: Optional[int],
                       lora_rank: int, lora_targets: str, lora_dropout: float) -> Any:
    """The workload a command names, with its --global-batch, --seq-len and LoRA options applied."""
    from recoque.planner.search import with_global_batch
    from recoque.planner.workloads import training_target

    model_name, tokens = training_target(workload, tokens)
    wl = with_global_batch(load_training_workload(model_name, tokens, global_batch), global_batch)
    if seq_len is not None:
        if seq_len <= 0:
            raise BadInput(f"--seq-len must be positive, got {seq_len}", "give tokens per sequence")
        wl = replace(wl, seq_len=int(seq_len))
    if lora_rank or lora_targets != "all" or lora_dropout:
        if lora_rank <= 0:
            raise BadInput("--lora-targets and --lora-dropout need --lora-rank", "give the adapter rank, e.g. --lora-rank 16")
        if lora_targets not in LORA_TARGETS:
            raise BadInput(f"--lora-targets must be one of {', '.join(LORA_TARGETS)}, got {lora_targets!r}",
                           "all: every linear layer; attention: the attention projections only")
        wl = replace(wl, lora_rank=int(lora_rank), lora_targets=lora_targets, lora_dropout=float(lora_dropout))
    return wl


# The GEMM precisions a training plan can name: mixed-precision training, whose activations,
# activation gradients and TP/PP/CP messages the model counts at 16 bits (planner/memory.py,
# planner/comm.py) with fp32 master weights. A 32- or 64-bit run stores and moves two or four
# times those bytes, which it does not count, so it is refused rather than shown too fast and small.
TRAIN_DTYPES = ("fp4", "fp8", "bf16", "fp16")
WIDE_DTYPES = ("tf32", "fp32", "fp64")


def _check_dtype(dtype: str) -> None:
    if dtype in WIDE_DTYPES:
        raise BadInput(f"--dtype {dtype}: plan train models mixed-precision training (16-bit activations and "
                       f"messages); a {dtype} run's 2-4x activation memory and traffic are not modelled",
                       f"use one of {', '.join(TRAIN_DTYPES)}")
    if dtype not in TRAIN_DTYPES:
        raise BadInput(f"unknown --dtype {dtype!r}", f"use one of {', '.join(TRAIN_DTYPES)}")


def _stack(stack: Optional[str], spec: DeviceSpec, grad_reduce: Optional[str], fp8_param_gather: Optional[bool],
           fused_expert_mlp: Optional[bool], nccl_max_ctas: Optional[str]) -> Any:
    """The software stack (--stack, or the vendor's default) with the run's own practice applied."""
    from recoque.planner.stacks import default_stack_for, list_stacks, load_stack

    st = load_stack(stack or default_stack_for(spec.vendor))
    if st.platform == "rocm" and (spec.vendor or "").lower() != "amd":
        raise BadInput(f"stack {st.key} is a ROCm build, and {spec.key} is not an AMD GPU",
                       "pick one of " + ", ".join(k for k in list_stacks() if load_stack(k).platform != "rocm")
                       + ", or an AMD system")
    return (st.with_reduce_dtype(grad_reduce)
            .with_fp8_param_gather(fp8_param_gather).with_fused_expert_mlp(fused_expert_mlp)
            .with_comm_max_ctas(_ctas(nccl_max_ctas), "--nccl-max-ctas"))


def _raise_no_plan(res: SearchResult, wl: Any, spec: DeviceSpec, st: Any, pins: dict, curve: Any) -> None:
    """Why no plan came back: the pins, a divisibility rule, or the memory (the leanest plan named)."""
    name, n = wl.model.name, res.gpus
    where = (f"on {n} GPUs" if curve is None else
             f"on any of the {len(curve.curve)} usable GPU counts up to {n:,}")
    pinned = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in pins.items())
    if res.smallest_memory is None and not res.invalid:
        why = (f" (a micro-batch divides the {wl.global_batch_seqs}-sequence batch of each replica)"
               if "micro_batch" in pins else "")
        raise DoesNotFit(f"{name}: no plan {where} " + (f"satisfies {pinned} " if pins else "runs ")
                         + f"with stack {st.key}{why}", "drop a pin or pick another --stack")
    if res.smallest_memory is None:
        raise DoesNotFit(f"{name}: no valid plan {where}" + (f" with {pinned}" if pins else "")
                         + f" ({res.invalid:,} combinations break a divisibility rule: tp must divide "
                         f"{wl.model.heads} heads and divide or be a multiple of {wl.model.kv_heads} KV heads, "
                         f"pp be at most {wl.model.layers} layers, dp divide the batch "
                         f"{wl.global_batch_seqs}, interleaving have pp > 1)",
                         "drop a pin" if pins else "choose a GPU count with more small factors (a power of two)")
    sm = res.smallest_memory
    raise DoesNotFit(f"{name} does not fit on {n} GPUs of {spec.name}: the leanest of {res.evaluated:,} plans "
                     f"({sm.plan.label()}) needs {_gb(sm.memory_per_gpu.value)} GB per GPU, "
                     f"{sm.memory_capacity_bytes / 1e9:.1f} GB usable",
                     "use more GPUs or a device with more memory")


def _json_doc(res: SearchResult, wl: Any, prof: DeviceProfile, st: Any, pins: dict, curve: Any,
              link_lines: list, dtype: str) -> dict:
    """Everything the table shows, and the inputs that made it."""
    return {"workload": wl.model.key, "tokens_to_train": wl.tokens_to_train,
            "tokens_published": wl.tokens_published, "global_batch_seqs": wl.global_batch_seqs,
            "seq_len_tokens": wl.seq_len, "lora_rank": wl.lora_rank, "lora_targets": wl.lora_targets,
            "lora_dropout": wl.lora_dropout,
            "params_total": wl.model.params_total(),
            "params_active": wl.model.params_active(), "profile_origin": prof.origin, "stack": st.key,
            "dtype": dtype, "grad_reduce_dtype": st.grad_reduce_dtype,
            "fp8_param_gather": st.fp8_param_gather and dtype in ("fp8", "fp4"),  # it gathers the fp8 copy only
            "fused_expert_mlp": st.fused_expert_mlp,
            "nccl_max_ctas": dict(st.comm_max_ctas),
            "pins": pins, "gpu_count_curve": None if curve is None else curve.to_json(),
            "link_figures": list(link_lines), **res.to_json()}


def _one_pinned_plan_anyway(res: SearchResult, spec: DeviceSpec) -> SearchResult:
    """Pins that leave one plan (a published run's) are answered even where the memory model says
    the plan does not fit: the model counts every stored tensor at its largest, and published runs
    ran where it says they would not (seeds/train_checks.toml rows with fits false), so the time is
    shown and the memory named as the doubt, not refused."""
    sm = res.smallest_memory
    if res.best or sm is None or res.evaluated != 1:
        return res
    if sm.memory_per_gpu.value > MEMORY_MODEL_HIGH_SIDE * sm.memory_capacity_bytes:
        return res  # beyond what the model has been seen to overstate: it does not fit
    why = (f"memory: this plan needs {_gb(sm.memory_per_gpu.value)} GB per GPU by the model, "
           f"{sm.memory_capacity_bytes / 1e9:.1f} GB usable on {spec.name}: it may not fit (the memory model "
           f"errs high: published runs ran at up to {MEMORY_MODEL_HIGH_SIDE:g}x its usable figure); the time assumes it runs")
    warn(why)
    return replace(res, best=[sm], reasons=(*res.reasons, why))


def _ctas(text: Optional[str]) -> Optional[dict]:
    """'cp=1,dp=8' -> {"cp": 1, "dp": 8}; the values are checked by Stack.with_comm_max_ctas."""
    if text is None:
        return None
    out: dict = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, val = part.partition("=")
        if not sep or not val.strip().isdigit():
            raise BadInput(f"--nccl-max-ctas: {part!r} is not communicator=count", "write e.g. --nccl-max-ctas cp=1,dp=8")
        if key.strip() in out:
            raise BadInput(f"--nccl-max-ctas: {key.strip()!r} given twice", "give each communicator once")
        out[key.strip()] = int(val)
    if not out:
        raise BadInput("--nccl-max-ctas is empty", "write e.g. --nccl-max-ctas cp=1,dp=8")
    return out


def _gb(nbytes: float) -> str:
    gb = nbytes / 1e9
    return f"{gb:,.1f}" if gb < 1e6 else f"{gb:.3g}"  # a 1e12-token sequence must not print 20 digits


def _whole_percents(shares: list[float]) -> list[int]:
    """Whole percents that add up to the rounded total (largest remainder): shares summing to 1
    print as 100%, not 99% from rounding each down."""
    scaled = [x * 100 for x in shares]
    out = [int(x) for x in scaled]
    for i in sorted(range(len(scaled)), key=lambda i: scaled[i] - out[i], reverse=True)[:round(sum(scaled)) - sum(out)]:
        out[i] += 1
    return out


def _check_pins_against_model(pins: dict, wl) -> None:  # noqa: ANN001 - TrainingWorkload
    """Pins that no GPU count can satisfy, named before the search (the search would only report an
    empty space and blame the GPU count). The rules are the search's own (planner/search.py)."""
    heads, batch = wl.model.heads, wl.global_batch_seqs
    _check_switch_pins(pins, wl)
    cp, seq = pins.get("cp", 1), wl.model.seq_len
    if cp > 1 and seq % (2 * cp):  # the search's rule (planner/execution.py): Megatron's load-balanced split
        raise BadInput(f"--cp {cp}: the {seq}-token sequence does not split into 2 x {cp} equal chunks",
                       f"pick a --cp with 2 x cp dividing {seq}, or a --seq-len that 2 x {cp} divides")
    layers, stages = wl.model.layers, pins.get("pp", 1) * pins.get("vpp", 1)
    if stages > layers:  # every (virtual) stage holds at least one layer
        what = f"--pp {pins.get('pp', 1)} x --vpp {pins['vpp']} = {stages} virtual stages" if pins.get("vpp", 1) > 1 \
            else f"--pp {stages}"
        raise BadInput(f"{what} exceeds the {layers} layers of {wl.model.name}",
                       f"pick --pp (x --vpp) of at most {layers}")
    if pins.get("vpp", 1) > 1 and pins.get("pp") == 1:
        raise BadInput(f"--vpp {pins['vpp']} needs --pp 2 or more", "interleaving splits each pipeline stage; drop --vpp or raise --pp")
    if "tp" in pins and heads % pins["tp"]:
        raise BadInput(f"--tp {pins['tp']} does not divide the {heads} attention heads of {wl.model.name}",
                       "pick a --tp that divides the head count")
    if "tp" in pins and not wl.model.tp_takes_kv_heads(pins["tp"]):
        kv = wl.model.kv_heads
        raise BadInput(f"--tp {pins['tp']} neither divides nor is a multiple of the {kv} KV heads of {wl.model.name}",
                       f"pick a --tp that divides {kv} or is a multiple of it")
    if "dp" in pins and batch % pins["dp"]:
        raise BadInput(f"--dp {pins['dp']} does not divide the global batch of {batch} sequences",
                       "pick a --dp that divides --global-batch, or a --global-batch that --dp divides")
    per_replica = batch // pins.get("dp", 1)
    if "micro_batch" in pins and "dp" in pins and per_replica % pins["micro_batch"]:
        raise BadInput(f"--micro-batch {pins['micro_batch']} does not divide the {per_replica} sequences each of the "
                       f"--dp {pins['dp']} replicas gets", "pick a --micro-batch that divides global batch / dp")


def _check_switch_pins(pins: dict, wl) -> None:  # noqa: ANN001 - TrainingWorkload
    """A switch pinned on needs the parallelism it runs on; pinned off that parallelism, it could only
    come back as a plan with the switch off."""
    if pins.get("tp") == 1 and (pins.get("sp") or pins.get("tp_overlap")):
        flag = "--sp" if pins.get("sp") else "--tp-overlap"
        raise BadInput(f"{flag} needs tensor parallelism, but --tp is 1", f"drop {flag}, or pin --tp 2 or more")
    if pins.get("tp_overlap") and pins.get("sp") is False:
        raise BadInput("--tp-overlap overlaps sequence parallelism's collectives, and --no-sp turns it off",
                       "drop one of --tp-overlap / --no-sp")
    if pins.get("cp_a2a") and pins.get("cp") == 1:
        raise BadInput("--cp-a2a runs context parallelism, but --cp is 1", "drop --cp-a2a, or pin --cp 2 or more")
    for flag in ("ep_overlap", "ep", "etp"):
        if pins.get(flag) and not wl.model.moe and (flag == "ep_overlap" or pins[flag] > 1):
            raise BadInput(f"--{flag.replace('_', '-')} sets expert parallelism, and {wl.model.name} has no experts",
                           f"drop --{flag.replace('_', '-')}; it applies to mixture-of-experts models")
    if wl.model.moe and pins.get("ep") and wl.model.experts % pins["ep"]:
        raise BadInput(f"--ep {pins['ep']} does not divide the {wl.model.experts} experts of {wl.model.name}",
                       "pick an --ep that divides the expert count")
    if "etp" in pins and pins["etp"] < 1:
        raise BadInput(f"--etp must be 1 or more, got {pins['etp']}", "give --etp 1, or the --tp size")
    ranks = [pins[k] for k in ("tp", "cp", "dp") if k in pins]
    if wl.model.moe and len(ranks) == 3 and (ranks[0] * ranks[1] * ranks[2]) % (pins.get("etp", 1) * pins.get("ep", 1)):
        raise BadInput(f"--etp {pins.get('etp', 1)} x --ep {pins.get('ep', 1)} does not divide --tp x --cp x --dp = "
                       f"{ranks[0] * ranks[1] * ranks[2]} (the experts are laid out over a stage's ranks)",
                       "pick an --ep (and --etp) whose product divides tp x cp x dp")
    full_only = [f for f in ("recompute_layers", "distribute_checkpoints") if pins.get(f)]
    if full_only and pins.get("recompute", "full") != "full":
        flag = "--" + full_only[0].replace("_", "-")
        raise BadInput(f"{flag} applies to full recompute, and --recompute is {pins['recompute']}",
                       f"drop {flag}, or pin --recompute full")
    if pins.get("reshard_after_forward") is False and pins.get("zero", 3) != 3:
        raise BadInput(f"--no-reshard-after-forward keeps ZeRO-3's gathered weights, and --zero is {pins['zero']}",
                       "drop --no-reshard-after-forward, or pin --zero 3")


def _check_tokens(wl) -> None:  # noqa: ANN001 - TrainingWorkload
    if wl.tokens_to_train < wl.tokens_per_iteration:
        raise BadInput(f"{wl.tokens_to_train:.3g} tokens to train are less than one iteration "
                       f"({wl.global_batch_seqs:,} sequences x {wl.seq_len:,} tokens = {wl.tokens_per_iteration:,})",
                       "give --tokens of at least one global batch, or a smaller --global-batch")


def _check_pinned_shape(pins: dict, gpus: Optional[int], system) -> None:  # noqa: ANN001 - SystemSpec
    """Pinned tp x pp x dp x cp must fit the GPUs: say so plainly instead of an empty search (issue 7)."""
    given = {k: int(pins[k]) for k in ("tp", "pp", "dp", "cp") if k in pins}
    if not given:
        return
    product = 1
    for v in given.values():
        product *= v
    shown = " x ".join(f"--{k} {v}" for k, v in given.items())
    total = int(gpus) if gpus is not None else int(system.gpus)
    where = f"--gpus {total:,}" if gpus is not None else f"the {total:,} GPUs of {system.key}"
    if product > total or (gpus is not None and total % product):  # without --gpus every usable count is searched
        raise BadInput(f"{shown} = {product:,} GPUs, which does not divide {where}",
                       "make tp x pp x dp x cp divide the GPU count (or pass --gpus to match)")
    # with tp, pp and dp pinned an unpinned cp may still make up the rest (the search tries it)
    if all(k in given for k in ("tp", "pp", "dp", "cp")) and gpus is not None and product != total:
        raise BadInput(f"{shown} = {product:,} GPUs, but --gpus is {total:,}", "make tp x pp x dp x cp equal --gpus")
