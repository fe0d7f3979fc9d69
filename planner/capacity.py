"""The library behind `recoque plan` and `recoque compare`: each workload kind on a system, with
energy, cost, CO2 and H100-equivalents, as rows of (quantity, Estimate or text) plus JSON data and the
assumptions used. No rendering here (the CLI renders through recoque.render).
"""
from __future__ import annotations

from typing import Any

from recoque.catalog import match_device
from recoque.errors import BadInput, RecoqueError
from recoque.estimate import Estimate, combine
from recoque.planner import energy, equivalents, hpl, inference, stencil
from recoque.planner.system import SystemSpec, load_system
from recoque.planner.workloads import WorkloadEntry, load_workloads, memory_rate


def load_profile(path: str | None) -> Any:
    """A DeviceProfile from `recoque bench` results (measured); None without --profile."""
    if not path:
        return None
    from recoque.bench.schema import load_results
    from recoque.planner.profile import DeviceProfile

    doc = load_results(path)
    dev = dict(doc.device)
    spec = match_device(str(dev.get("name", "")), dev.get("gfx_arch"))
    if spec is None:
        raise BadInput(f"{path}: device {dev.get('name')!r} is not in the hardware catalog", "add it to seeds/hardware.toml")
    return DeviceProfile.from_results(doc, spec)


def check_gpus(n: int | None) -> None:
    if n is not None and n <= 0:
        raise BadInput(f"--gpus must be a positive count, got {n}", "pass a positive number of GPUs")


def resolve_system(name: str, gpus: int | None = None) -> SystemSpec:
    check_gpus(gpus)
    s = load_system(name)
    return s.with_gpus(gpus) if gpus else s


def _energy_rows(system: SystemSpec, label: str, seconds: Estimate | None, gpus_used: Estimate | None = None):
    rows: list[tuple[str, Any]] = []
    data: dict[str, Any] = {}
    try:
        year = energy.per_year(system)
    except BadInput as exc:
        return [("energy", f"unknown: {exc.one_line()}")], {"energy": None}, ()
    rows += [("facility power (IT x PUE)", year.facility_power), ("energy per year (full load)", year.energy),
             ("electricity cost per year", year.cost), ("CO2 per year (France 21.3 g/kWh)", year.co2),
             ("CO2 per year at EU average 292 g/kWh", year.co2_eu_average)]
    data["per_year"] = year
    if seconds is not None:
        job = energy.per_job(system, gpus_used or system.estimate("gpus", "gpu"), seconds, label)
        rows += [(f"energy per job ({label})", job.energy), ("cost per job", job.cost), ("CO2 per job", job.co2)]
        data["per_job"] = job
    notes = year.facility_power.assumptions + year.cost.assumptions + year.co2.assumptions
    return rows, data, notes


def _h100e_rows(system: SystemSpec, delivered: equivalents.Delivered | None):
    peaks = equivalents.peak_equivalents(system)
    rows = [(f"H100e peak {p.metric}", p.h100e if p.h100e else p.note) for p in peaks]
    data: dict[str, Any] = {"peak": peaks}
    if delivered is not None:
        rows.append((f"H100e delivered ({delivered.workload})", delivered.equivalent.h100e))
        why = equivalents.explain(system, peaks, delivered)
        rows.append(("delivered vs peak", why))
        data["delivered"] = delivered.equivalent
        data["delivered_vs_peak"] = why
    return rows, data


# --- per workload kind: returns (rows, data, assumptions) ------------------------------------------

def plan_hpl(system: SystemSpec, profile: Any = None, efficiency: float | None = None):
    eff = Estimate.exact(efficiency, "1", f"HPL efficiency fixed at {efficiency:g} (--efficiency)") if efficiency else None
    if efficiency is not None and not 0 < efficiency <= 1:
        raise BadInput(f"--efficiency must be in (0, 1], got {efficiency}", "pass a fraction such as 0.7")
    h = hpl.estimate_hpl(system, profile, eff)
    rows: list[tuple[str, Any]] = [("GPUs", h.gpus), ("HPL rate per GPU (counted)", h.rate_per_gpu),
                                   ("HPL efficiency", h.efficiency), ("Rmax per GPU", h.rmax_per_gpu), ("Rmax", h.rmax)]
    if h.top500_rmax:
        rows.append(("TOP500 Rmax", Estimate.exact(h.top500_rmax, "flop/s")))
        rows.append(("model vs TOP500", f"{h.error_vs_top500:+.1%}"))
    if h.it_power is not None:
        rows += [("IT power during HPL", h.it_power), ("energy efficiency (GFLOP/s per W)", h.gflops_per_w)]
    ref = hpl.estimate_hpl(equivalents.h100_reference(1), equivalents.measured_profile_for(equivalents.H100))
    d = equivalents.Delivered("hpl", "hpl", h.rmax, ref.rmax_per_gpu,
                              equivalents.Equivalent("delivered:hpl", None,
                                                     combine(lambda a, b: a / b, h.rmax, ref.rmax_per_gpu, unit="H100e"),
                                                     "delivered", "Rmax / one H100's HPL"))
    notes = h.rmax.assumptions + ((h.gflops_per_w.assumptions if h.gflops_per_w else ()))
    return rows, {"hpl": h}, notes, d, None


def plan_infer(system: SystemSpec, w: WorkloadEntry | None, model_name: str, profile: Any = None, **overrides: Any):
    serving = inference.Serving.from_workload(w, **overrides) if w else inference.Serving(**{k: v for k, v in overrides.items() if v is not None})
    model = inference.load_model_spec(model_name)
    r = inference.estimate_inference(model, model_name, system, serving, profile)
    rows: list[tuple[str, Any]] = [
        ("model", f"{model_name}: {model.params_total() / 1e9:.1f} B params, weights {r.weight_bytes / 1e9:.0f} GB, KV {r.kv_bytes_per_token / 1e3:.0f} kB/token"),
        ("GPUs per replica", str(r.gpus_per_replica)), ("replicas", r.replicas), ("batch (streams per replica)", r.batch),
        ("time per output token", r.tpot), ("time to first token (prefill)", r.ttft), ("decode bound", r.decode_bound),
        ("output tokens/s per GPU", r.tokens_per_s_per_gpu), ("output tokens/s, system", r.tokens_per_s_system),
        ("concurrent users at target latency", r.concurrent_users)]
    ref_sys = equivalents.h100_reference()

    def sys_rate(s, p):
        return r.tokens_per_s_system

    def h100_rate(s, p):
        return inference.estimate_inference(model, model_name, ref_sys, serving, p).tokens_per_s_per_gpu
    d = equivalents.delivered(system, w or WorkloadEntry(model_name, model_name, "infer", model_name, {}), sys_rate, h100_rate, profile)
    try:
        p = energy.facility_power(system)
        per_mtok = combine(lambda pw, t: pw / t * 1e6, p, r.tokens_per_s_system, unit="J")
        rows.append(("energy per million output tokens", per_mtok))
    except BadInput:
        pass
    return rows, {"inference": r}, r.assumptions, d, None


def plan_stencil(system: SystemSpec, w: WorkloadEntry, profile: Any = None, **overrides: Any):
    k = stencil.StencilKernel.from_workload(w, **overrides)
    r = stencil.estimate_stencil(system, k, profile)
    rows: list[tuple[str, Any]] = [("GPUs", r.gpus), ("arithmetic intensity (FLOP/B)", f"{r.intensity_flop_per_byte:.3f}"),
                                   ("time per sweep", r.sweep_time), ("halo share of a sweep", f"{r.halo_share:.1%}"),
                                   ("time to solution", r.total_time), ("achieved FP64", r.achieved_flop_s),
                                   ("fraction of FP64 peak", r.fraction_of_fp64_peak)]
    from recoque.catalog import get_device_spec

    h100 = get_device_spec(equivalents.H100)

    def h100_rate(s, p):
        return memory_rate(h100, p).scale(k.intensity_flop_per_byte, "flop/s")
    d = equivalents.delivered(system, w, lambda s, p: r.achieved_flop_s, h100_rate, profile)
    return rows, {"stencil": r}, r.assumptions, d, r.total_time


def plan_train(system: SystemSpec, model_name: str, profile: Any = None, tokens: float | None = None):
    """Delegates to the planner core (planner.train.best_plans); no second training model here."""
    from dataclasses import replace

    from recoque.catalog import get_device_spec
    from recoque.planner import train
    from recoque.planner.profile import DeviceProfile
    from recoque.planner.workload import load_training_workload
    from recoque.planner.workloads import profile_applies, spec_with_assumed_peaks

    wl = load_training_workload(model_name)
    if tokens:
        wl = replace(wl, tokens_to_train=float(tokens))
    spec, notes = spec_with_assumed_peaks(get_device_spec(system.device))
    prof = profile if profile_applies(spec, profile) else DeviceProfile.from_datasheet(spec)
    try:
        res, used = _search_usable_count(train, wl, system, prof)
    except RecoqueError as exc:
        return [("training", f"not estimated: {exc.one_line()}")], {}, notes, None, None
    if used != int(system.gpus):
        notes = tuple(notes) + (
            f"{int(system.gpus):,} GPUs have no valid (TP, PP, DP) layout for a global batch of "
            f"{wl.global_batch_seqs} sequences: trained on the largest usable count, {used:,} "
            f"({used / system.gpus:.0%} of the system); the rest stay free for other jobs",)
    if not res.best:
        return [("training", "no plan fits: " + "; ".join(res.reasons))], {"train": res}, notes, None, None
    b = res.best[0]
    rows = [("training plan", b.plan.label() if hasattr(b.plan, "label") else str(b.plan))]
    rows += [(f"training {k.replace('_', ' ')}", v) for k, v in vars(b).items() if isinstance(v, Estimate)]
    return rows, {"train": res}, tuple(notes) + tuple(b.assumptions), None, b.time_to_train


def usable_gpu_counts(gpus: int, gpus_per_node: int) -> list[int]:
    """The count itself, then the largest multiples of gpus_per_node x 2^j below it (descending).

    A derived count such as 5,230 (= 2 x 5 x 523) factors into no TP x PP x DP layout; a job on
    a real machine takes whole nodes in a count that factors, and leaves the rest to others.
    """
    out = [gpus]
    step = max(1, gpus_per_node)
    while step <= gpus:
        n = gpus // step * step
        if n not in out:
            out.append(n)
        step *= 2
    return sorted(set(out), reverse=True)


def _search_usable_count(train: Any, wl: Any, system: SystemSpec, prof: Any) -> tuple[Any, int]:
    res = None
    for n in usable_gpu_counts(int(system.gpus), system.gpus_per_node):
        res = train.best_plans(wl, system, prof, top=1, gpus=n)
        if res.best:
            return res, n
    return res, int(system.gpus)


def _workload_kind(name: str) -> tuple[str, WorkloadEntry | None, str | None]:
    table_ = load_workloads()
    if name in table_:
        w = table_[name]
        return w.kind, w, w.model
    from recoque.planner.workload import list_models

    models = list_models()
    if name in models:
        return "model", None, name
    raise BadInput(f"unknown workload {name!r}",
                   f"known workloads: {', '.join(sorted(table_))}; or a model: {', '.join(models) or 'none installed'}")


def plan_any(system: SystemSpec, workload: str, profile: Any = None) -> dict[str, Any]:
    """Everything `plan` and `compare` show for one system and one workload, with default assumptions."""
    kind, w, model = _workload_kind(workload)
    sections: list[tuple[str, list]] = []
    data: dict[str, Any] = {"system": system.key, "workload": workload, "kind": kind}
    notes: list[str] = list(system.notes)
    delivered, seconds = None, None
    parts = []
    if kind == "hpl":
        parts.append(("HPL", plan_hpl(system, profile)))
    elif kind == "stencil":
        parts.append(("stencil", plan_stencil(system, w, profile)))
    elif kind == "infer":
        parts.append(("inference", plan_infer(system, w, model, profile)))
    elif kind == "train":
        parts.append(("training", plan_train(system, model, profile, w.number("train_tokens") if w and "train_tokens" in w.values else None)))
    else:  # a bare model name: training and inference summaries
        parts.append(("training", plan_train(system, model, profile)))
        parts.append(("inference (default serving)", plan_infer(system, None, model, profile)))
    for title, (rows, d, n, dl, secs) in parts:
        sections.append((title, rows))
        data.update(d)
        notes.extend(n)
        delivered = delivered or dl
        seconds = seconds or secs
    e_rows, e_data, e_notes = _energy_rows(system, workload, seconds)
    sections.append(("energy, cost, CO2", e_rows))
    data["energy"] = e_data
    notes.extend(e_notes)
    h_rows, h_data = _h100e_rows(system, delivered)
    sections.append(("H100-equivalents", h_rows))
    data["h100e"] = h_data
    data["sections"] = {t: [{"quantity": q, "value": v} for q, v in rows] for t, rows in sections}
    data["assumptions"] = list(dict.fromkeys(a for a in notes if a))
    data["_sections"] = sections
    return data


def assemble(s: SystemSpec, wname: str, title: str, rows: list, d: dict[str, Any], notes: Any,
             dl: Any, secs: Estimate | None) -> dict[str, Any]:
    """One workload kind's rows plus the energy and H100-equivalent sections, as `plan_any` returns."""
    e_rows, e_data, e_notes = _energy_rows(s, wname, secs)
    h_rows, h_data = _h100e_rows(s, dl)
    sections = [(title, rows), ("energy, cost, CO2", e_rows), ("H100-equivalents", h_rows)]
    return {"system": s.key, "workload": wname, **d, "energy": e_data, "h100e": h_data,
            "sections": {t: [{"quantity": q, "value": v} for q, v in r] for t, r in sections},
            "assumptions": list(dict.fromkeys(tuple(s.notes) + tuple(notes) + tuple(e_notes))), "_sections": sections}
