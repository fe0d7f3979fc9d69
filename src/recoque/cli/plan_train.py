"""Best training plans for a workload on N GPUs of a system: time to train, throughput, MFU/HFU, memory."""
from __future__ import annotations

from typing import Any, Optional

import typer

from recoque.catalog import DeviceSpec, get_device_spec, match_device
from recoque.errors import BadInput, DoesNotFit
from recoque.planner.profile import DeviceProfile
from recoque.planner.system import SystemSpec, load_system
from recoque.planner.train import SearchResult, best_plans
from recoque.planner.workload import load_training_workload
from recoque.render import console, emit_json, fmt, table, warn

DAY = 86400.0


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


def resolve_profile(spec: DeviceSpec, results_path: Optional[str]) -> DeviceProfile:
    if results_path:
        from recoque.bench.schema import load_results

        doc = load_results(results_path)
        name = str(doc.device.get("name", ""))
        found = match_device(name, doc.device.get("gfx_arch")) if name else None
        if found is not None and found.key != spec.key:
            warn(f"results in {results_path} were measured on {found.name}, the system uses {spec.name}; "
                 "using them anyway")
        return DeviceProfile.from_results(doc, spec)
    from recoque.planner.validation import shipped_profile

    prof = shipped_profile(spec.key)
    if prof is None:
        warn(f"no measured profile for {spec.name}: datasheet x default efficiency (pass --profile results.json)")
        prof = DeviceProfile.from_datasheet(spec)
    return prof


def _span(e: Any, scale: float = 1.0, digits: int = 3) -> str:
    return f"{fmt(e.value * scale, digits)} [{fmt(e.low * scale, digits)}-{fmt(e.high * scale, digits)}]"


def _pct(e: Any) -> str:
    return f"{e.value:.1%} [{e.low:.1%}-{e.high:.1%}]"


def render(res: SearchResult, workload_name: str, tokens: float) -> None:
    b = res.best[0]
    console.print(f"{workload_name} on {res.gpus} GPUs of {res.system}: {tokens:.3g} tokens")
    rows = []
    for i, r in enumerate(res.best, 1):
        rows.append((i, r.plan.label(), _span(r.iteration_time), _span(r.tokens_per_s),
                     _span(r.time_to_train, 1 / DAY), _span(r.time_to_train_wall, 1 / DAY),
                     _span(r.model_flop_s_per_gpu, 1e-12), _pct(r.mfu), _pct(r.hfu),
                     fmt(r.memory_per_gpu.value / 1e9), _pct(r.comm_share)))
    console.print(table("best plans: value, with low-high in brackets",
                        ("#", "plan", "s/iteration", "tokens/s", "days (steady)", "days (wall, goodput)",
                         "TFLOP/s/GPU (model)", "MFU", "HFU", "GB/GPU", "comm share"), rows))
    bd = b.breakdown
    it = bd["iteration_time_s"]
    console.print("best plan, where the time goes: " + ", ".join(
        f"{k[:-2]} {v / it:.0%}" for k, v in bd.items() if k != "iteration_time_s"), highlight=False)
    console.print(f"goodput {_pct(b.goodput)} (failures and checkpoints), shown apart from steady-state throughput")
    for line in res.reasons:
        console.print(line, highlight=False)
    console.print("assumptions:", highlight=False)
    for a in b.assumptions:
        console.print(f"  - {a}", highlight=False)


def train(
    workload: str = typer.Option(..., "--workload", "-w", help="model preset (seeds/models.toml) or a TOML file"),
    system: str = typer.Option(..., "--system", "-s", help="system preset (seeds/systems.toml) or a TOML file"),
    gpus: Optional[int] = typer.Option(None, "--gpus", "-n", help="GPUs to use (default: the whole system)"),
    profile: Optional[str] = typer.Option(None, "--profile", help="results JSON from `recoque bench`"),
    top: int = typer.Option(5, "--top", help="how many plans to show"),
    full: bool = typer.Option(False, "--full", help="search every switch (slower) instead of the pruned space"),
    dtype: str = typer.Option("bf16", "--dtype", help="training precision of the GEMMs"),
    as_json: bool = typer.Option(False, "--json", help="emit JSON with the same content"),
) -> None:
    """Best training plans for a workload on N GPUs of a system: time to train, throughput, MFU/HFU, memory."""
    wl = load_training_workload(workload)
    sysspec = resolve_system(system)
    spec = resolve_device(sysspec.device)
    prof = resolve_profile(spec, profile)
    if top <= 0:
        raise BadInput("--top must be positive", "give --top 1 or more")
    res = best_plans(wl, sysspec, prof, top=top, gpus=gpus, dtype=dtype, full=full)
    n = res.gpus
    if not res.best:
        name = wl.model.name
        if res.smallest_memory is None:
            raise DoesNotFit(f"{name}: no valid plan on {n} GPUs ({res.invalid:,} combinations break a divisibility rule: "
                             f"tp must divide {wl.model.heads} heads, pp {wl.model.layers} layers, dp the batch "
                             f"{wl.global_batch_seqs})", "choose a GPU count with more small factors (a power of two)")
        sm = res.smallest_memory
        raise DoesNotFit(f"{name} does not fit on {n} GPUs of {spec.name}: the leanest of {res.evaluated:,} plans "
                         f"({sm.plan.label()}) needs {sm.memory_per_gpu.value / 1e9:.1f} GB per GPU, "
                         f"{sm.memory_capacity_bytes / 1e9:.1f} GB usable",
                         "use more GPUs or a device with more memory")
    if as_json:
        emit_json({"workload": wl.model.key, "tokens_to_train": wl.tokens_to_train,
                   "tokens_published": wl.tokens_published, "global_batch_seqs": wl.global_batch_seqs,
                   "seq_len_tokens": wl.seq_len, "params_total": wl.model.params_total(),
                   "params_active": wl.model.params_active(), "profile_origin": prof.origin, **res.to_json()})
        return
    if not wl.tokens_published:
        warn(f"{wl.model.name}: tokens_to_train is a stated placeholder, not a published figure")
    render(res, wl.model.name, wl.tokens_to_train)
