"""The library behind `recoque plan` and `recoque compare`: each workload kind on a system, with
energy, cost, CO2 and H100-equivalents, as rows of (quantity, Estimate or text) plus JSON data and the
assumptions used. No rendering here (the CLI renders through recoque.render).
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from recoque.catalog import get_device_spec, match_device
from recoque.errors import BadInput, DoesNotFit, RecoqueError
from recoque.estimate import Estimate, combine
from recoque.names import resolve_key
from recoque.planner import allreduce_table, energy, equivalents, hpl, inference, stencil
from recoque.planner.power import limited
from recoque.planner.serving_bounds import ratio_span
from recoque.planner.system import SystemSpec, as_shown, load_system
from recoque.planner.workloads import WorkloadEntry, load_workloads, memory_rate


def profile_for(system: SystemSpec, path: str | None, anyway: bool = False) -> tuple[SystemSpec, Any]:
    """(system, profile) for --profile on this system: a file from another device is refused
    (recoque.inputs.check_profile_device) unless `anyway`; then its rates stand in for the system's
    device and the mark is the first of the system's notes, so every output (table, JSON) carries it."""
    if not path:
        return system, None

    from recoque.bench.schema import load_results
    from recoque.inputs import check_profile_device, check_profile_rates
    from recoque.planner.profile import DeviceProfile

    from recoque.planner.workloads import spec_with_assumed_peaks

    doc = load_results(path)
    mark = check_profile_device(dict(doc.device), system.device, path, anyway)
    table = allreduce_table.from_results(doc, source=str(path))  # measured all-reduce: the TP collective of plan infer
    if table is not None:
        system = replace(system, extra={**system.extra, "allreduce_measured": table})
    if mark is None:
        return system, load_profile(path)
    spec, peak_notes = spec_with_assumed_peaks(get_device_spec(system.device))  # MI430X: no public BF16 peak
    check_profile_rates(doc, path)
    prof = DeviceProfile.from_results(doc, spec)
    dev = dict(doc.device)
    measured_on = match_device(str(dev.get("name", "")), dev.get("gfx_arch") or dev.get("arch"))
    return (replace(system, notes=(mark, *system.notes)),
            replace(prof, assumptions=(mark, *prof.assumptions, *peak_notes), measured_on=measured_on))


def profiles_for_systems(systems: list[SystemSpec], path: str | None, anyway: bool = False
                         ) -> list[tuple[SystemSpec, Any]]:
    """(system, profile) per system for `compare`: without `anyway` the profile applies to the systems of
    its device and must match one; with it, it stands in for every system's device (profile_for), and
    each system it was not measured on carries the mark in its notes, so every output shows it."""
    if anyway and path:
        return [profile_for(s, path, True) for s in systems]
    prof = profile_for_systems(systems, path)
    return [(s, prof) for s in systems]


def check_claims(path: str | None, only: list[str] | None, anyway: bool = False) -> tuple[list[Any], str | None]:
    """`recoque check` with --profile: the claims and the mark of a foreign profile (None when none).
    With `anyway`, the profile stands in for the device of each claim's system (profile_for)."""

    from recoque.planner.claims import _seed, claim_keys, run_all, run_claim

    claims = _seed().get("claims", {})
    if not (path and anyway):
        if path and all(k in claims for k in only or ()):  # (an unknown claim is named by run_all)
            _check_profile_concerns([claims[k].get("system") for k in (only or claim_keys())], path)
        prof = load_profile(path)
        results = run_all(prof, only)
        if prof is None:
            return results, None
        mine = {n for n in (claims.get(r.key, {}).get("system") for r in results) if n}
        mine = {n for n in mine if load_system(n).device == prof.spec.key}
        used = [r.key for r in results if claims.get(r.key, {}).get("system") in mine]
        head = f"measured profile {path} ({prof.spec.key})"
        mark = (f"{head}: its rates replace the datasheet's wherever a claim on a {prof.spec.key} system uses a rate "
                f"({', '.join(used)})" if used else f"{head}: no claim checked is on a {prof.spec.key} system")
        line = f"{head}: its rates replace the datasheet's wherever this claim uses a rate"
        return [replace(r, arithmetic=(line, *r.arithmetic)) if r.key in used else r for r in results], mark
    marks, out = [], []
    for key in only or claim_keys():
        name = claims.get(key, {}).get("system")
        system, prof = profile_for(load_system(name), path, True) if name else (None, None)
        mark = next((n for n in getattr(system, "notes", ()) if n.startswith("PROFILE FROM ANOTHER DEVICE")), None)
        r = run_claim(key, prof)
        out.append(replace(r, arithmetic=(mark, *r.arithmetic)) if mark else r)
        marks += [mark] if mark else []
    if not marks:  # no claim has a system of another device: the profile changed nothing foreign
        return out, None
    return out, marks[0].split("; its measured rates")[0] + "; its measured rates stand in for each claim's device"


def _check_profile_concerns(system_names: list[str | None], path: str) -> None:
    """A profile none of the checked claims' systems runs on would change nothing, silently."""
    names = list(dict.fromkeys(n for n in system_names if n))
    if not names:
        raise BadInput(f"--profile {path}: the claims checked name no system, so no measured rate enters them",
                       "drop --profile")
    profile_for_systems([load_system(n) for n in names], path)


def profile_for_systems(systems: list[SystemSpec], path: str | None) -> Any:
    """--profile for several systems (compare): it applies to those of its device and must match one."""
    if not path:
        return None
    from recoque.bench.schema import load_results
    from recoque.inputs import profile_mismatch

    doc = load_results(path)
    whys = [profile_mismatch(dict(doc.device), s.device) for s in systems]
    if all(whys):
        devices = ", ".join(dict.fromkeys(s.device for s in systems))
        raise BadInput(f"{path}: {whys[0].split(', not ')[0]}, not {devices}",
                       "pass a results file measured on the device of one of the systems")
    return load_profile(path)


def load_profile(path: str | None) -> Any:
    """A DeviceProfile from `recoque bench` results (measured); None without --profile."""
    if not path:
        return None
    from recoque.bench.schema import load_results
    from recoque.planner.profile import DeviceProfile

    doc = load_results(path)
    dev = dict(doc.device)
    if str(dev.get("kind", "")).lower() == "cpu":
        raise BadInput(f"{path}: this profile is for a CPU ({dev.get('name')}), not a GPU of the hardware catalog",
                       "pass a results file measured on the GPU the plan is about")
    spec = match_device(str(dev.get("name", "")), dev.get("gfx_arch"))
    if spec is None:
        raise BadInput(f"{path}: device {dev.get('name')!r} is not in the hardware catalog", "add it to seeds/hardware.toml")

    from recoque.planner.workloads import spec_with_assumed_peaks

    from recoque.inputs import check_profile_rates

    check_profile_rates(doc, str(path))
    spec, peak_notes = spec_with_assumed_peaks(spec)  # a peak the catalog lacks (MI430X BF16): assumed, noted
    prof = DeviceProfile.from_results(doc, spec)
    return replace(prof, assumptions=(*prof.assumptions, *peak_notes)) if peak_notes else prof


def check_gpus(n: int | None) -> None:
    if n is not None and n <= 0:
        raise BadInput(f"--gpus must be a positive count, got {n}", "pass a positive number of GPUs")


def resolve_system(name: str, gpus: int | None = None, power_limit_w: float | None = None,
                   shown: bool = False, grid: str | None = None) -> SystemSpec:
    """The system a command plans on, with --gpus, --power-limit-w and --grid applied; `shown`: in the GPUs
    ROCm shows (system.as_shown: MI250X GCDs), which the flags then count, as the output does."""
    from recoque.inputs import check_gpus as check_gpus_on  # one --gpus rule for every subcommand

    check_gpus(gpus)
    s = load_system(name).with_grid(grid)
    s = limited(as_shown(s) if shown else s, power_limit_w)
    check_gpus_on(gpus, s)
    return s.with_gpus(gpus) if gpus else s


def planned_shown(workload: str) -> bool:
    """Whether a workload is planned on the GPUs ROCm shows (system.as_shown: an MI250X is two GCDs):
    training and serving place ranks on them; HPL and stencil runs count packages, as the lists do."""
    return _workload_kind(workload)[0] in ("train", "infer", "model")


def _energy_rows(system: SystemSpec, label: str, job: energy.JobRun | None):
    g = energy.grid_for(system)  # read once: the rows, the year and the job all take it
    data: dict[str, Any] = {"grid": g}
    try:
        year = energy.per_year(system, grid=g)
    except BadInput as exc:  # the grid still says what a known energy would cost and emit
        return [*grid_rows(system, g), ("energy", f"unknown: {exc.one_line()}")], {"per_year": None, "unknown": exc.one_line(), **data}, ()
    rows = [*grid_rows(system, g), ("facility power (IT x PUE)", year.facility_power), *_stated_site(system, year, data),
            ("energy per year (full load)", year.energy), ("electricity cost per year", year.cost),
            ("CO2 per year (grid average)", year.co2), ("CO2 per year at the region's average", year.co2_region_average)]
    data["per_year"] = year
    if job is not None:
        run = energy.per_job(system, job, label, grid=g)
        rows += job_rows(run, f"energy per job ({label})")
        data["per_job"] = run
    notes = year.facility_power.assumptions + year.cost.assumptions + year.co2.assumptions + year.co2_region_average.assumptions
    if job is not None and job.note:
        notes += (job.note,)
    return rows, data, notes


def _stated_site(system: SystemSpec, year: energy.EnergyReport, data: dict[str, Any]) -> list[tuple[str, Any]]:
    """The site power a system states beside the modelled one, where its GPUs were stated, not derived from it."""
    stated = system.extra.get("site_power_mw")
    if stated is None or energy.site_bound(system):
        return []
    site = Estimate.exact(float(stated) * 1e6, "W", f"{system.key}: site power as stated, beside the modelled "
                          f"{year.facility_power.value / 1e6:,.1f} MW of its {system.gpus:,.0f} GPUs")
    data["stated_site_power_w"] = site
    return [("site power as stated", site)]


def job_rows(run: energy.EnergyReport, energy_label: str = "energy per job") -> list[tuple[str, Any]]:
    """One job's power, energy, cost and CO2, named alike in `plan` and `plan train`."""
    return [("facility power of the job (IT x PUE)", run.facility_power), (energy_label, run.energy),
            ("electricity cost per job", run.cost), ("CO2 per job (grid average)", run.co2)]


def grid_rows(system: SystemSpec, g: energy.Grid | None = None) -> list[tuple[str, Any]]:
    """The grid a system's energy is priced and counted on (`g`, where the caller has read it): one set
    of row names for every system, so `compare` lines Germany's figures up with France's."""
    g = g or energy.grid_for(system)
    return [("grid", f"{g.place} ({g.key}), in the {g.region}"), ("electricity price", g.price),
            ("grid carbon intensity", g.intensity.scale(1.0, "gCO2e/kWh")),
            ("region's average intensity", Estimate.exact(g.region_average, "gCO2e/kWh", f"the {g.region} average"))]


def _h100e_rows(system: SystemSpec, delivered: list[equivalents.Delivered]):
    """The peak and delivered H100-equivalent rows, their data, and the assumptions behind them (the
    peaks' own, e.g. a GPU count derived from an HPL target, and how each delivered figure was
    taken). A training figure counts the GPUs its fastest plan uses, and its row says how many."""
    peaks = equivalents.peak_equivalents(system)
    rows = [(f"H100e peak {p.metric}", p.h100e if p.h100e else p.note) for p in peaks]
    data: dict[str, Any] = {"peak": peaks}
    notes = [a for p in peaks if p.h100e is not None for a in p.h100e.assumptions]
    for k, d in enumerate(delivered):
        label = d.workload + (f" {d.kind}" if len(delivered) > 1 else "")
        if d.gpus is not None and d.gpus != int(system.gpus):
            label += f", on {d.gpus:,} of {int(system.gpus):,} GPUs"
        why = equivalents.explain(system, peaks, d)
        rows += [(f"H100e delivered ({label})", d.equivalent.h100e),
                 ("delivered vs peak" + (f" ({d.kind})" if k else ""), why)]
        notes.append(f"H100e delivered ({label}): {d.equivalent.note}")
        if k == 0:
            data["delivered"], data["delivered_vs_peak"] = d.equivalent, why
        data.setdefault("delivered_by_kind", {})[d.kind] = {"equivalent": d.equivalent, "vs_peak": why,
                                                            "gpus": d.gpus}
    return rows, data, notes


# --- per workload kind: returns (rows, data, assumptions) ------------------------------------------

def plan_hpl(system: SystemSpec, profile: Any = None, efficiency: float | None = None):
    eff = Estimate.exact(efficiency, "1", f"HPL efficiency fixed at {efficiency:g} (--efficiency)") if efficiency else None
    if efficiency is not None and not 0 < efficiency <= 1:
        raise BadInput(f"--efficiency must be in (0, 1], got {efficiency}", "pass a fraction such as 0.7")
    h = hpl.estimate_hpl(system, profile, eff)
    # with a measured profile the rate is the DGEMM measured and the efficiency a fraction of it
    # (hpl_fraction_of_measured_dgemm), not of the rate TOP500 counts
    rows: list[tuple[str, Any]] = [
        ("GPUs", h.gpus), ("DGEMM rate per GPU (measured)" if h.measured else "HPL rate per GPU (counted)", h.rate_per_gpu),
        ("HPL efficiency (of the measured DGEMM)" if h.measured else "HPL efficiency", as_fraction(h.efficiency))]
    if h.clock != 1.0:  # the table multiplies out: rate x efficiency x clock = Rmax per GPU (before the FP64 ceiling)
        rows.append(("compute clock under the power cap", f"x {h.clock:.3f}"))
    rows += [("Rmax per GPU", h.rmax_per_gpu), ("Rmax", h.rmax)]
    if h.top500 is not None:
        t = h.top500
        # the list and the run's GPU count in the cell, so `compare` keeps one TOP500 Rmax row for every system
        rows.append(("TOP500 list, GPUs in the run", f"{t.list_date}, {t.gpus_in_run:,.0f} GPUs"))
        rows.append(("TOP500 Rmax", Estimate.exact(t.rmax_flop_s, "flop/s")))
        rows.append(("model vs TOP500", f"{h.error_vs_top500:+.1%} (TOP500 {'inside' if h.top500_inside_range else 'outside'} the range)"))
        if t.rmax_over_rpeak:
            rows.append(("TOP500 Rmax / Rpeak as listed", f"{t.rmax_over_rpeak:.3f}"))
        if t.gflops_per_w:
            rows.append(("TOP500 energy efficiency", Estimate.exact(t.gflops_per_w, "GFLOP/s/W")))
    elif h.note:
        rows.append(("TOP500", h.note))
    if h.it_power is not None:
        rows += [("IT power during HPL", h.it_power), ("energy efficiency", h.gflops_per_w)]
    # the H100 of the ratio is calibrated as this system is: with the same TOP500 machine left out;
    # per GPU as a machine of that many H100s runs HPL (the slowest of them sets the pace)
    ref = hpl.h100_machine(system.extra.get("top500_machine") or system.key, h.rmax.value)
    d = equivalents.Delivered("hpl", "hpl", h.rmax, ref.rmax_per_gpu,
                              equivalents.Equivalent("delivered:hpl", None, _hpl_h100e(system, h, ref, eff),
                                                     "delivered", "Rmax / HPL per GPU of a machine of that many H100"))
    notes = _package_note(system) + h.rmax.assumptions + ((h.gflops_per_w.assumptions if h.gflops_per_w else ()))
    return rows, {"hpl": h}, notes, d, None


def _package_note(system: SystemSpec) -> tuple[str, ...]:
    """HPL, HPCG and stencil count a multi-die package as the TOP500 does; plan train and infer count
    the GPUs ROCm shows (planner/system.as_shown): say which one --gpus and --power-limit-w mean here."""
    spec = get_device_spec(system.device)
    if spec.shown_as is None:
        return ()
    return (f"GPUs here are {spec.key} packages as the TOP500 counts them ({spec.shown_per_package} {spec.shown_as} "
            f"each): --gpus and --power-limit-w count packages; plan train and plan infer count {spec.shown_as}s",)


def _stencil_ratio(system: SystemSpec, profile: Any, per_gpu: Estimate) -> Any:
    """The delivered ratio per GPU from the system's per-GPU rate at one GPU count (`per_gpu`): an
    uncertain count then enters once, when the ratio is multiplied by it, not also in the division.
    On a system of H100s (with the H100's own profile or none) the achieved HBM fraction is one
    uncertain constant on both sides: the range pairs the ends; otherwise every corner."""
    same = system.device == equivalents.H100 and (
        profile is None or getattr(getattr(profile, "spec", None), "key", None) == equivalents.H100)
    if not same:
        return lambda sys_rate, ref_rate: combine(lambda a, b: a / b, per_gpu, ref_rate, unit="1")
    return lambda sys_rate, ref_rate: _paired_ratio(
        per_gpu, ref_rate, "1", "the system's GPUs are the reference's H100: one HBM fraction, whose range moves both sides")


def _paired_ratio(num: Estimate, den: Estimate, unit: str, note: str) -> Estimate:
    """num / den when one uncertain constant moves both: low end over low end, high over high."""
    value = num.value / den.value
    ends = sorted((num.low / den.low, num.high / den.high))
    return Estimate(value, min(ends[0], value), max(ends[1], value), unit, (note,))


def _hpl_h100e(system: SystemSpec, h: Any, ref: Any, override: Estimate | None) -> Estimate:
    """Rmax / an H100's Rmax per GPU. A system of H100s is modelled with the very efficiency its
    reference machine is: the one uncertain efficiency moves both sides together, so the ratio's
    range pairs the low ends and the high ends (what is left: the GPU count and the pace). Another
    device's run, even of the same family (GH200 machines reach 53-78% of Rpeak), draws its
    efficiency apart from the H100 machine's: every corner."""
    shared = not h.measured and override is None and system.device == equivalents.H100
    if not shared:
        return combine(lambda a, b: a / b, h.rmax, ref.rmax_per_gpu, unit="H100e")
    return _paired_ratio(h.rmax, ref.rmax_per_gpu, "H100e",
                         "the system's GPUs are the reference's H100: one efficiency, whose range moves both sides")


def plan_infer(system: SystemSpec, w: WorkloadEntry | None, model_name: str, profile: Any = None,
               request: Any = None, model: Any = None, gemm_shapes: Any = None, **overrides: Any):
    """Serving rows (planner.serving through planner.inference). `request` (a ServingRequest) is what
    `plan infer` builds from its flags; without it the workload's own scenario (or the defaults) applies."""
    model = model or inference.load_model_spec(model_name)
    given = {k: v for k, v in overrides.items() if v is not None}
    released = "" if (w or request or "weight_dtype" in given) else released_default(model)
    if released:  # a bare model is served in the precision it was released in
        given["weight_dtype"] = released
    asked = request or (inference.Serving.from_workload(w, **overrides) if w else inference.Serving(**given)).request()
    e, request, changes = _serve(system, model, model_name, asked, profile, gemm_shapes, scenario=request is None)
    r = inference.from_serving(model, request.kv_cache, request.weights, e)
    from recoque.planner.serving import estimate_serving

    def serve_on(gpus: int) -> Any:  # the same request on another GPU count of the system
        return estimate_serving(model, model_name, system.with_gpus(gpus), request, profile, gemm_shapes)
    shown_e, shown_r, count_note = _over_gpu_count(system, e, r, request, serve_on)
    rows = _serving_rows(model, model_name, request, shown_e, shown_r)
    rows[1:1] = changes
    # the H100 side serves what the system served: a latency target the system could not meet is
    # dropped on both sides (a precision the system lacks is not: the H100 runs its own narrowest)
    like = replace(asked, mode=request.mode, tpot_target_s=request.tpot_target_s, ttft_target_s=request.ttft_target_s)
    h100_rate, ratio, h100_runs = _h100_serving(system, model, model_name, like, e)
    served_as_released = released and request.weights == released  # else the precision row says what it became
    notes = tuple(r.assumptions) + ((released_weights_note(model_name, released),) if served_as_released else ())
    notes += count_note
    notes += _idle_note(system, e)
    try:
        d = equivalents.delivered(system, w or WorkloadEntry(model_name, model_name, "infer", model_name, {}),
                                  lambda s, p: r.tokens_per_s_system, h100_rate, profile, ratio)
    except DoesNotFit as exc:  # the system's answer stands; only the comparison is missing
        d, notes = None, notes + (f"delivered H100-equivalents for serving not computed: {exc.one_line()}",)
    if d is not None:
        notes += _h100_cliff_note(h100_runs[-1], asked)
    try:
        # per GPU on both sides: an uncertain GPU count moves the power and the tokens/s together;
        # every GPU draws power, working or left over
        bought = e.tokens_per_s_per_gpu.scale(working_share(system, e), "tokens/s")
        per_mtok = combine(lambda pw, t: pw / t * 1e6, energy.power_per_gpu(system), bought, unit="J")
        rows.append(("energy per million output tokens", per_mtok))
    except BadInput:
        pass
    from recoque.planner.serving import as_released, with_fp4_format  # what was served: the released attention
    served = with_fp4_format(model, get_device_spec(system.device), as_released(model, request))  # dtype, the fp4 format
    return rows, {"inference": shown_r, "serving_request": served.knobs()}, notes, d, None


def bare_model_request(model: Any, device: str) -> Any:
    """What `plan infer -w MODEL` serves with no other flag, so that `plan` on a bare model answers
    the same: offline (no latency target to meet or miss), in the precision the model was released in
    (activations in it where the device computes in it, else 16-bit: a weight-only quantised GEMM), and
    the KV dtype the checkpoint records where the engine's default follows it."""
    from recoque.planner.serving_request import ServingRequest

    weights = released_for_device(model, device) or "bf16"
    req = ServingRequest(weights=weights, activations=activations_for(weights, get_device_spec(device)))
    kv = released_kv_default(model, req.engine)
    return replace(req, kv_cache=kv) if kv else req


def activations_for(weights: str, spec: Any) -> str:
    """The activation dtype weights imply when none is named: narrow weights' own where the device
    computes in it, else 16 bits, a weight-only quantised GEMM (W4A16 / W8A16: vLLM's Marlin and
    triton MXFP4 kernels serve gpt-oss on H100 and MI300X that way, FP8 checkpoints on A100)."""
    from recoque.planner.serving import has_rate

    return weights if weights in ("fp8", "fp4") and has_rate(spec, weights) else "bf16"


def bare_model_notes(model_name: str, model: Any, request: Any) -> tuple[str, ...]:
    released, kv = released_default(model), released_kv_default(model, request.engine)  # notes only where served
    return (((released_weights_note(model_name, released),) if released and request.weights == released else ())
            + ((released_kv_note(model_name, request.engine, kv),) if kv and request.kv_cache == kv else ()))


def released_for_device(model: Any, device: str) -> str:
    """The released narrow precision where the device serves it: in its own math, or as a weight-only
    quantised GEMM on a part with fp8 math (vLLM's Marlin and triton MXFP4 kernels on H100 and MI300X);
    a part without fp8 math (MI250X, A100) serves the 16-bit model, as the engines do there ('')."""
    from recoque.planner.serving import has_rate

    released = released_default(model)
    spec = get_device_spec(device)
    return released if released and (has_rate(spec, released) or has_rate(spec, "fp8")) else ""


def released_default(model: Any) -> str:
    """The narrow precision a model was released in ('' for a 16-bit release): what it is served in
    when neither a workload nor the user names one."""
    return "" if model.released_weights == "bf16" else model.released_weights


def released_kv_default(model: Any, engine: str) -> str:
    """The KV-cache dtype the checkpoint records where the engine's default follows it (TensorRT-LLM,
    seeds/serving.toml kv_from_checkpoint); '' otherwise (the engine's own default, the model dtype)."""
    from recoque.planner.serving_rates import load_engine

    kv = getattr(model, "released_kv_cache", "")
    return kv if kv and load_engine(engine).kv_from_checkpoint else ""


def released_kv_note(model_name: str, engine: str, dtype: str) -> str:
    return (f"KV cache {dtype}: {engine} keeps the KV quantization {model_name}'s checkpoint records "
            "(kv_from_checkpoint, seeds/serving.toml); --kv-cache bf16 for a 16-bit cache")


def released_weights_note(model_name: str, dtype: str) -> str:
    return (f"weights {dtype}: {model_name} as released (released_weights: seeds/models.toml, or the checkpoint's "
            "quantization config); "
            "--weights bf16 (plan infer) for the 16-bit model")


def _serve(system: SystemSpec, model: Any, model_name: str, asked: Any, profile: Any, gemm_shapes: Any,
           scenario: bool) -> tuple[Any, Any, list[tuple[str, str]]]:
    """The serving estimate of `asked`. A workload's scenario (`plan`, `compare`) runs in the
    narrowest precision the device has, and offline when its latency target cannot be met; each
    change comes back as a row. A request from `plan infer`'s flags runs as given."""
    from recoque.planner.serving import estimate_serving, supported_precision

    if not scenario:
        return estimate_serving(model, model_name, system, asked, profile, gemm_shapes), asked, []
    request, precision = supported_precision(get_device_spec(system.device), asked)
    changes = [("precision", precision)] if precision else []
    try:
        return estimate_serving(model, model_name, system, request, profile), request, changes
    except DoesNotFit as exc:
        changes.append(("latency target", f"the workload's target cannot be met ({exc.one_line()}): offline throughput "
                                          "shown, and the H100 reference of the H100-equivalents serves offline too"))
        request = replace(request, mode="offline", tpot_target_s=None, ttft_target_s=None)
        try:
            return estimate_serving(model, model_name, system, request, profile), request, changes
        except DoesNotFit as exc:
            raise _in_plan_words(exc, system, model_name) from exc


def _in_plan_words(exc: DoesNotFit, system: SystemSpec, model_name: str) -> DoesNotFit:
    """The fix for a workload that does not fit, in the flags `plan` and `compare` have: the workload
    fixes precision and layout, so their --weights/--kv-cache/--hbm-fraction are `plan infer`'s."""
    has = float(system.extra.get("gpus_of_system", system.gpus))
    more = f"raise --gpus, up to the system's {has:,.0f}" if has > system.gpus else "use a system with more GPUs"
    return DoesNotFit(exc.what, f"{more}, or try `recoque plan infer -s {system.key} -m {model_name}` "
                                "with --tp, --weights fp8, --kv-cache fp8 or --hbm-fraction")


def _weights_label(weights: str, e: Any) -> str:
    """The weight dtype, with the attention projections' where the served checkpoint keeps them apart."""
    att, fmt = inference.attention_dtypes(e.knobs), e.knobs.get("fp4_format")
    weights = f"{weights} {fmt.upper()}" if weights == "fp4" and fmt else weights
    if att is None:
        return weights
    return f"{weights}, attention {att[0]}" + (f" (o_proj {att[1]})" if att[1] != att[0] else "")


def _serving_rows(model: Any, model_name: str, request: Any, e: Any, r: Any) -> list[tuple[str, Any]]:
    m, pct = e.memory, request.percentile
    return [
        ("model", f"{model_name}: {model.params_total() / 1e9:.1f} B params, weights {r.weight_bytes / 1e9:.3g} GB ({_weights_label(request.weights, e)}), "
                  f"KV {r.kv_bytes_per_token / 1e3:.0f} kB/token ({request.kv_cache})"),
        ("mode / engine", f"{e.mode} / {e.engine}"),
        ("replica layout", f"tp {e.tp} x pp {e.pp}" + (f", ep {e.ep}" if e.ep > 1 else "")
         + (", attention DP" if e.attention_dp else "") + f" = {e.gpus_per_replica} GPU(s)"),
        ("replicas", r.replicas), ("batch (running streams per replica)", r.batch),
        (f"time per output token ({pct})", r.tpot), (f"time to first token ({pct})", r.ttft),
        ("step bound by", e.bound),
        ("step time shares", ", ".join(f"{k} {v:.0%}" for k, v in e.step_shares.items() if v >= 0.005)),
        ("output tokens/s per GPU", r.tokens_per_s_per_gpu), ("output tokens/s, system", r.tokens_per_s_system),
        ("requests/s, system", e.requests_per_s_system), (_users_label(request, r.concurrent_users), r.concurrent_users),
        ("memory per GPU", f"{m.usable_bytes / 1e9:.0f} GB usable: weights {m.weights_bytes / 1e9:.1f} GB, workspace "
                           f"{m.workspace_bytes / 1e9:.1f} GB, KV for {m.max_streams} streams"
                           + (f" a replica ({m.max_streams / e.tp:.0f} a GPU: each keeps its own, attention DP)"
                              if e.attention_dp else ""))]


def _over_gpu_count(system: SystemSpec, e: Any, r: Any, request: Any,
                    serve_on: Any) -> tuple[Any, Any, tuple[str, ...]]:
    """Where the file gives the GPU count as a range (alice-recoque: derived from the HPL target), the
    whole-system figures span it too, as the energy and H100-equivalent rows do; per-GPU ones are unchanged.
    Under a load the user fixes (--request-rate, --concurrency) the system's requests, tokens and users
    are that load, not a capacity: the replica count spans the range, and so does what each replica
    carries (fewer GPUs, more streams each, a slower token), so the per-GPU, latency and batch rows span
    the load served on the count's two ends too (`serve_on(gpus)`). Under --batch (streams per
    replica) the users are batch x replicas and span it with them. The table and --json both print what
    this returns, with a note; the delivered ratio is taken per GPU at the central count, before it."""
    if "gpus" not in system.ranges:
        return e, r, ()
    n = system.estimate("gpus", "gpu")

    def span(v: Estimate) -> Estimate:
        return combine(lambda x, g: x * g / n.value, v, n, unit=v.unit)
    notes: tuple[str, ...] = ()
    if not (request.concurrency or request.request_rate_per_s):
        e = replace(e, tokens_per_s_system=span(e.tokens_per_s_system), requests_per_s_system=span(e.requests_per_s_system),
                    concurrent_users=span(e.concurrent_users))
    else:
        e, notes = _load_over_counts(e, n, serve_on)
    return e, replace(r, replicas=span(r.replicas), batch=e.batch, tpot=e.tpot, ttft=e.ttft,
                      tokens_per_s_per_gpu=e.tokens_per_s_per_gpu, tokens_per_s_system=e.tokens_per_s_system,
                      concurrent_users=e.concurrent_users, serving=e), notes


# What a fixed load puts on each replica moves with the GPU count: these rows span both ends of it.
_LOAD_SPANNED = ("batch", "tpot", "ttft", "tokens_per_s_per_gpu", "tokens_per_s_replica", "tokens_per_s_system",
                 "requests_per_s_system", "concurrent_users")


def _load_over_counts(e: Any, n: Estimate, serve_on: Any) -> tuple[Any, tuple[str, ...]]:
    """A fixed load's estimate widened to hold the same load served on the fewest and the most GPUs
    the count spans; an end where the load no longer fits is said, not silently left out."""
    ends, notes = [], []
    for g, end in ((int(n.low), "low"), (int(n.high), "high")):
        if g == int(n.value):
            continue
        try:
            ends.append(serve_on(g))
        except DoesNotFit as exc:
            notes.append(f"on {g:,} GPUs (the {end} end of the system's count) the load does not fit: "
                         f"{exc.one_line()}; the ranges span the counts where it does")
    if not ends:
        return e, tuple(notes)
    wide = {f: Estimate(getattr(e, f).value, min(getattr(x, f).low for x in (e, *ends)),
                        max(getattr(x, f).high for x in (e, *ends)), getattr(e, f).unit, getattr(e, f).assumptions)
            for f in _LOAD_SPANNED}
    notes.append(f"the GPU count spans {n.low:,.0f}..{n.high:,.0f}: the fixed load's batch, latency and per-GPU "
                 f"ranges also hold it served on those counts (fewer GPUs: more streams each)")
    return replace(e, **wide), tuple(notes)


def _users_label(request: Any, running: Estimate) -> str:
    """Under a fixed concurrency above what the slots hold, the rest wait: the row counts the running ones."""
    c = request.concurrency
    if c and c > running.value * 1.001:
        return f"concurrent users running ({c - running.value:,.0f} more of the {c:,} wait for a slot)"
    return "concurrent users"


def _h100_serving(system: SystemSpec, model: Any, model_name: str, asked: Any, e: Any) -> tuple[Any, Any, list[Any]]:
    """The H100 side of the delivered equivalent: (H100 rate per GPU, ratio) for equivalents.delivered,
    and the list the H100 ServingEstimates land in.
    The scenario as asked runs on H100 nodes in their own best layout: one node, or pipelined nodes
    when the model needs them; a dtype the H100 has no rate for (fp4) runs there in fp8, its narrowest."""
    from recoque.planner.serving import estimate_serving, supported_precision

    ref_sys = equivalents.h100_reference()
    h100_runs: list[Any] = []  # h100_rate keeps each H100 ServingEstimate: ratio() reads the last

    def h100_rate(s, p):
        on_h100 = replace(supported_precision(get_device_spec(s.device), asked)[0], tp=None, ep=1,
                          engine=_engine_on(asked.engine, "nvidia"))
        why = ""
        for pp in (1, 2, 4, 8, 16):
            try:
                ref = s.with_gpus(int(s.gpus_per_node) * pp) if pp > 1 else s
                h100_runs.append(estimate_serving(model, model_name, ref, replace(on_h100, pp=pp), p))
                return h100_runs[-1].tokens_per_s_per_gpu
            except DoesNotFit as exc:
                why = exc.what
        raise DoesNotFit(f"{model_name} cannot be served as asked on 1-16 H100 nodes, so no H100-equivalent "
                         f"(at 16 nodes: {why})", "use fp8 weights or relax the latency targets")

    def ratio(_system_rate: Estimate, _h100_rate: Estimate) -> Estimate:
        # From the two ServingEstimates, not their ranges: the predictions share the serving method's
        # constants, so the ratio gets its own range (serving_bounds); h100_rate has just filled h100_runs.
        h = h100_runs[-1]
        share = working_share(system, e)   # GPUs left over by the replicas serve nothing
        v = e.tokens_per_s_per_gpu.value / h.tokens_per_s_per_gpu.value
        lo, hi = ratio_span(e.tokens_per_s_per_gpu.value, e.group_tokens_per_s_per_gpu,
                            h.tokens_per_s_per_gpu.value, h.group_tokens_per_s_per_gpu,
                            same_device=system.device == ref_sys.device)
        return Estimate(v * share, lo * share, hi * share, "1")

    return h100_rate, ratio, h100_runs


def working_share(system: SystemSpec, e: Any) -> float:
    """Share of the system's GPUs inside a replica (a count that is no multiple of the replica leaves some out)."""
    return min(1.0, e.replicas * e.gpus_per_replica / float(system.gpus))


def _idle_note(system: SystemSpec, e: Any) -> tuple[str, ...]:
    used = e.replicas * e.gpus_per_replica
    if used >= system.gpus:
        return ()
    return (f"{system.gpus - used:,.0f} of {system.gpus:,.0f} GPUs serve nothing: {e.replicas:,} replica(s) of "
            f"{e.gpus_per_replica} GPUs; tokens/s per GPU is per working GPU, while the energy per token and the "
            "H100-equivalents count every GPU",)


# An H100 group corner serving this many times fewer tokens than its centre sits at the latency cliff.
CLIFF_FALL = 5.0


def _h100_cliff_note(h: Any, asked: Any) -> tuple[str, ...]:
    """Why a delivered range can span an order of magnitude: under a latency target, an H100 that meets
    it only with few streams collapses when one group of constants turns pessimistic, and the ratio
    (the H100 in the denominator) soars. Named, so the high end is read as the reference's cliff."""
    groups = h.group_tokens_per_s_per_gpu
    v = h.tokens_per_s_per_gpu.value
    if not groups or not v > 0:
        return ()
    name, (low, _) = min(groups.items(), key=lambda kv: kv[1][0])
    if low * CLIFF_FALL > v:
        return ()
    target = f"TPOT <= {asked.tpot_target_s * 1e3:g} ms" if asked.tpot_target_s else "its latency target"
    return (f"the H100 reference (tp {h.tp} x pp {h.pp}) barely meets {target}: with the {name} group at its pessimistic "
            f"end it serves {low:.3g} output tokens/s per GPU against {v:.3g}, so the delivered range's high end is the "
            "H100 reaching that limit, not the system getting faster",)


def plan_stencil(system: SystemSpec, w: WorkloadEntry, profile: Any = None, **overrides: Any):
    k = stencil.StencilKernel.from_workload(w, **overrides)
    r = stencil.estimate_stencil(system, k, profile)
    rows: list[tuple[str, Any]] = [("GPUs", r.gpus), ("arithmetic intensity (FLOP/B)", f"{r.intensity_flop_per_byte:.3f}"),
                                   ("time per sweep", r.sweep_time), ("halo share of a sweep", f"{r.halo_share:.1%}"),
                                   ("time to solution", r.total_time), ("achieved FP64", r.achieved_flop_s),
                                   ("fraction of FP64 peak", as_fraction(r.fraction_of_fp64_peak))]

    n_ref = max(1, round(system.gpus))

    def h100_rate(s, p):  # per GPU of an H100 machine of the system's (central) count running the same grid:
        # halo exchange, links and the slowest GPU's pace on both sides (one lone H100's STREAM rate made
        # 1,456 H100s worth 674 H100e)
        return stencil.estimate_stencil(equivalents.h100_reference(n_ref), k, p).achieved_flop_s.scale(1 / n_ref, "flop/s")
    if k.points_per_gpu is None and "gpus" in system.ranges:
        # a fixed grid over an uncertain count: the rate per GPU falls as the count grows, so the
        # system's rate (each corner at one count) over an H100's, every corner
        ratio = None
    else:  # per GPU at the central count (weak scaling: the count's own range enters once)
        n0 = round(system.gpus)
        at_n0 = r if "gpus" not in system.ranges else stencil.estimate_stencil(system.with_gpus(n0), k, profile)
        ratio = _stencil_ratio(system, profile, at_n0.achieved_flop_s.scale(1 / n0))
    d = equivalents.delivered(system, w, lambda s, p: r.achieved_flop_s, h100_rate, profile, ratio)
    data: dict[str, Any] = {"stencil": r}
    notes = _package_note(system) + r.assumptions
    if w.key == "hpcg":
        rows_h, h = _hpcg_rows(system, profile)
        # two FP64 rates would otherwise read as one quantity twice: say which model gave which
        rows = [("achieved FP64, generic stencil model (the HPCG-calibrated rate is below)", v) if name == "achieved FP64"
                else (name, v) for name, v in rows]
        rows += rows_h
        data["hpcg"] = h
        if h is not None:
            notes = notes + h.rate.assumptions + h.memory_efficiency.assumptions
    job = energy.JobRun(r.gpus, r.gpu_seconds, f"energy per job: {r.gpus.value:,.0f} GPUs for the time "
                        "to solution, each end of the range at one GPU count", seconds=r.total_time)
    return rows, data, notes, d, job


def _hpcg_rows(system: SystemSpec, profile: Any):
    """The HPCG-calibrated rate (published HPCG results, machine left out) beside the stencil model."""
    from recoque.planner import hpcg

    try:
        h = hpcg.estimate_hpcg(system, profile)
    except BadInput as exc:  # no STREAM figure for the part or its vendor: the generic rows still stand
        return [("HPCG rate (model)", f"not estimated: {exc.one_line()}")], None
    # none of its memory family among the references, or no STREAM figure for the part or its family
    assumed = any("no HPCG reference in" in a or "ASSUMED" in a
                  for a in h.memory_efficiency.assumptions + (h.sustained_bandwidth or h.rate).assumptions)
    # the efficiency counts 340 B per 54-FLOP row; a tuned HPCG that keeps vectors in cache moves fewer
    # bytes, so this figure can pass 1 (JUPITER's GH200 runs: 1.04) without passing the bandwidth
    rows: list[tuple[str, Any]] = [(f"HPCG: HBM efficiency at 340 B/row counted, above 1 when fewer bytes move "
                                    f"({'no family reference: ASSUMED' if assumed else 'family, calibrated'})",
                                    h.memory_efficiency),
                                   ("HPCG: parallel efficiency (weak scaling)", f"{h.parallel_efficiency:.3f}"),
                                   ("HPCG rate (model)", h.rate)]
    if h.not_compared:
        rows.append(("model vs published HPCG", f"not compared: {h.not_compared}"))
    elif h.compared is not None:
        rows.append(("HPCG published", Estimate.exact(h.compared.hpcg_flop_s, "flop/s")))
        rows.append(("model vs published HPCG", f"{h.error:+.1%} (published {'inside' if h.inside else 'outside'} the range)"))
    return rows, h


TRAIN_ROWS = (("time_to_train", "time to train (steady state)"),
              ("time_to_train_wall", "time to train, wall clock (with failures and checkpoints)"),
              ("iteration_time", "time per iteration"), ("tokens_per_s", "training throughput"),
              ("mfu", "model FLOP utilisation (MFU)"), ("hfu", "hardware FLOP utilisation (HFU, with recompute)"),
              ("model_flop_s_per_gpu", "useful FLOP/s per GPU"), ("hardware_flop_s_per_gpu", "executed FLOP/s per GPU"),
              ("comm_share", "share of time in exposed communication"), ("memory_per_gpu", "memory per GPU"),
              ("goodput", "goodput (useful share of wall time)"))


SHARE_FIELDS = ("mfu", "hfu", "comm_share", "goodput")  # fractions of a whole: shown in percent, as `plan train` does


def as_fraction(e: Estimate) -> Estimate:
    """A share of a whole (unit 'fraction'): the table prints it in percent, --json keeps the fraction."""
    return e.map(lambda x: x, "fraction")


def _as_share(field: str, e: Estimate) -> Estimate:
    return as_fraction(e) if field in SHARE_FIELDS else e


def plan_train(system: SystemSpec, model_name: str, profile: Any = None, tokens: float | Estimate | None = None):
    """Delegates to the planner core (planner.train.best_plans); no second training model here.
    `tokens` as an Estimate (a workload's stated token range): the plan is searched at its central
    count, and one more row, the energy and the cost span its range as well as the model's."""
    from recoque.planner.workload import load_training_workload
    from recoque.planner.workloads import profile_applies, spec_with_assumed_peaks

    try:
        wl = load_training_workload(model_name)
    except BadInput as exc:  # a model without a published run: `plan` still shows its serving summary
        return [("training", f"not estimated: {exc.what}; `recoque plan train -s {system.key} -w {model_name} "
                             "--tokens N --global-batch B` estimates a run you name")], {}, (), None, None
    spread = token_spread(tokens)   # the token range as a factor on the central count
    if isinstance(tokens, Estimate):
        tokens = tokens.value
    if tokens:
        wl = replace(wl, tokens_to_train=float(tokens))
    from recoque.planner.validation import training_profile

    spec, notes = spec_with_assumed_peaks(get_device_spec(system.device))
    # The same profile as `plan train` (shipped calibrated profile, else the datasheet).
    prof = profile if profile_applies(spec, profile) else training_profile(get_device_spec(system.device))
    from recoque.planner.search import fastest_gpu_count
    from recoque.planner.stacks import default_stack_for, load_stack

    try:
        # The same search as `plan train` without --gpus: every usable count up to the system's,
        # the fastest wins (planner.search.fastest_gpu_count), on the vendor's default stack.
        curve = fastest_gpu_count(wl, system, prof, top=1, stack=load_stack(default_stack_for(spec.vendor)))
        res, used = curve.best, curve.fastest_gpus
    except RecoqueError as exc:
        return [("training", f"not estimated: {exc.one_line()}")], {}, notes, None, None
    if used != int(system.gpus):
        notes = tuple(notes) + (
            f"fastest on {used:,} of {int(system.gpus):,} GPUs (searched every usable count; the curve is in "
            f"`plan train --json`); the rest stay free for other jobs",)
    if not res.best:
        return [("training", "no plan fits: " + "; ".join(res.reasons))], {"train": res}, notes, None, None
    b = res.best[0]
    # The plan itself as the value: the table spells it out (recoque.render.plan_words), --json keeps
    # the compact fields. Row names written for a reader, not derived from field names.
    said = ("published" if wl.tokens_published
            else "a stated placeholder: not published; `--tokens N` on `plan train` sets your own")
    notes = tuple(notes) + (f"{wl.tokens_to_train:.3g} tokens to train ({said})",)
    rows: list[tuple[str, Any]] = [("training plan", b.plan), ("GPUs used", int(used)),
                                   ("tokens to train", Estimate.exact(float(wl.tokens_to_train), "tokens", said))]
    rows += [(name, _as_share(field, getattr(b, field))) for field, name in TRAIN_ROWS if getattr(b, field, None) is not None]
    if spread is not None:
        row, note = token_range_row(b, spread, tokens)
        rows.append(row)
        notes = tuple(notes) + (note,)
    d = None
    try:
        d = equivalents.training_delivered(system, model_name, used, b, profile=prof)
    except RecoqueError as exc:
        notes = tuple(notes) + (f"delivered H100-equivalents for training not computed: {exc.one_line()}",)
    job = training_job(used, b, spread)
    return rows, {"train": res, "gpu_count_curve": curve}, tuple(notes) + tuple(b.assumptions), d, job


def token_spread(tokens: Any) -> Estimate | None:
    """A workload's stated token range (an Estimate of tokens) as a factor on its central count;
    None for a single count."""
    if not isinstance(tokens, Estimate) or tokens.low == tokens.high:
        return None
    return tokens.map(lambda t: t / tokens.value, "1")


def token_range_row(best: Any, spread: Estimate, tokens: float) -> tuple[tuple[str, Estimate], str]:
    """The time-to-train row over a stated token range, and the note that says what it spans."""
    span = f"{spread.low * tokens:.3g}..{spread.high * tokens:.3g} tokens"
    return ((f"time to train over {span}, wall clock", _over_tokens(best.time_to_train_wall or best.time_to_train, spread)),
            f"the workload states {span} ({spread.assumptions[0]}): the plan and the times above are at {tokens:.3g}, "
            "as `plan train` gives them; the last time row, the energy and the cost span the whole range")


def training_job(used: int, best: Any, spread: Estimate | None = None) -> energy.JobRun:
    """What a training job holds: the GPUs its plan uses, for its wall-clock time to train (over a
    stated token range when `spread` is given)."""
    wall = _over_tokens(best.time_to_train_wall or best.time_to_train, spread)
    return energy.JobRun(Estimate.exact(float(used), "gpu"), wall.scale(float(used), "gpu s"),
                         f"energy per job: the {used:,} GPUs the plan uses, over the wall-clock time to train (the "
                         "nodes stay powered through checkpoints, failures and restarts)", seconds=wall)


def train_job_rows(system: SystemSpec, wl: Any, res: Any, profile: Any, stack: Any, dtype: str,
                   token_range: Estimate | None = None, pins: Mapping[str, Any] | None = None):
    """What `plan train` shows below its plans, as `plan` shows it for a named workload: the best
    plan's energy, cost and CO2 for the whole run, and its delivered H100-equivalents (the same
    workload, stack and search on as many H100s). Returns (rows, JSON data, notes); a figure that
    cannot be had (no node power in a user's system file, no H100 plan) is a row saying why.
    `token_range`: the workload's stated token range (its central count is the plan's), which the
    time to train over it, the energy and the cost then span, as in `plan`."""
    b = res.best[0]
    rows: list[tuple[str, Any]] = []
    g = energy.grid_for(system)
    data: dict[str, Any] = {"grid": g, "energy_per_job": None, "h100e_delivered": None, "delivered_vs_peak": None,
                            "time_to_train_over_token_range": None}
    notes: list[str] = []
    spread = token_spread(token_range)
    if spread is not None:
        row, note = token_range_row(b, spread, float(token_range.value))  # type: ignore[union-attr]
        rows.append(row)
        data["time_to_train_over_token_range"] = {"tokens": token_range, "wall_s": row[1]}
        notes.append(note)
    try:
        run = energy.per_job(system, training_job(res.gpus, b, spread), wl.model.key, grid=g)
        rows += [*grid_rows(system, g), *job_rows(run)]
        data["energy_per_job"] = run
        notes += [*run.energy.assumptions, *run.cost.assumptions, *run.co2.assumptions]
    except BadInput as exc:
        rows.append(("energy per job", f"unknown: {exc.one_line()}"))
    try:
        d = equivalents.training_delivered(system, wl.model.key, res.gpus, b, dtype=dtype, profile=profile,
                                           workload=wl, stack=stack, pins=pins)
        why = equivalents.explain(system, equivalents.peak_equivalents(system), d)
        rows += [(f"H100e delivered ({res.gpus:,} GPUs)", d.equivalent.h100e), ("delivered vs peak", why)]
        data["h100e_delivered"], data["delivered_vs_peak"] = d.equivalent, why
        notes.append(d.equivalent.note)
    except RecoqueError as exc:
        rows.append(("H100e delivered", f"not computed: {exc.one_line()}"))
    shown = set(b.assumptions)  # `plan train` prints the plan's own assumptions above these
    return rows, data, tuple(n for n in dict.fromkeys(notes) if n not in shown)


def _over_tokens(days: Estimate, spread: Estimate | None) -> Estimate:
    """A time to train over the token range too (time is proportional to the tokens)."""
    return days if spread is None else combine(lambda t, f: t * f, days, spread, unit=days.unit)


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


def _workload_kind(name: str) -> tuple[str, WorkloadEntry | None, str | None]:
    table_ = load_workloads()
    named = resolve_key(name, table_)
    if named is not None:
        w = table_[named]
        return w.kind, w, w.model
    from recoque.planner.workload import is_model_path, list_models, preset_key

    key, models = preset_key(name), list_models()
    if key in models:
        return "model", None, key
    if is_model_path(name):  # a model file, config.json or checkpoint folder (load_model reads and checks it)
        return "model", None, name
    raise BadInput(f"unknown workload {name!r}",
                   f"known workloads: {', '.join(sorted(table_))}; or a model: {', '.join(models) or 'none installed'}; "
                   "or a model TOML file (FILE.toml), a Hugging Face config.json or a checkpoint folder")


def refuse_unfit_training(data: dict[str, Any], workload: str, system: SystemSpec, gpus_given: bool = False) -> None:
    """An impossible training plan is DoesNotFit (exit 3), not a table row, in `plan` and in each
    column of `compare` alike; a bare model name whose serving was estimated still shows it."""
    train = data.get("train")
    if train is None or getattr(train, "best", True) or (data["kind"] == "model" and "inference" in data):
        return
    more = "use more GPUs (--gpus) or " if gpus_given else ""  # the whole system: --gpus cannot add any
    raise DoesNotFit(f"{workload} does not fit on {system.gpus:,.0f} GPU{'s' if system.gpus != 1 else ''} of "
                     f"{system.key}: {train.reasons[0]}", f"{more}use a system with more GPUs or more memory per GPU")


def plan_any(system: SystemSpec, workload: str, profile: Any = None) -> dict[str, Any]:
    """Everything `plan` and `compare` show for one system and one workload, with default assumptions."""
    kind, w, model = _workload_kind(workload)
    workload = w.key if w is not None else str(model)  # the preset's key, however it was typed
    sections: list[tuple[str, list]] = []
    data: dict[str, Any] = {"system": system.key, "workload": workload, "kind": kind}
    notes: list[str] = list(system.notes)
    delivered: list[equivalents.Delivered] = []
    job = None
    parts = []
    if kind == "hpl":
        parts.append(("HPL", plan_hpl(system, profile)))
    elif kind == "stencil":
        parts.append(("stencil", plan_stencil(system, w, profile)))
    elif kind == "infer":
        parts.append(("inference", plan_infer(system, w, model, profile)))
    elif kind == "train":
        parts.append(("training", plan_train(system, model, profile, w.estimate("train_tokens", "tokens") if w and "train_tokens" in w.values else None)))
    else:  # a bare model name: training and inference summaries, each shown when it can be estimated
        training = plan_train(system, model, profile)
        trained = bool(getattr(training[1].get("train"), "best", None))
        parts.append(("training", training))
        try:
            spec = inference.load_model_spec(model)
            req = bare_model_request(spec, system.device)
            rows, d, n, dl, run = plan_infer(system, None, model, profile, request=req, model=spec)
            parts.append(("inference (default serving)", (rows, d, n + bare_model_notes(model, spec, req), dl, run)))
        except DoesNotFit as exc:
            if not trained:
                raise  # neither estimate exists: an impossible plan
            parts.append(("inference (default serving)",
                          ([("serving", f"not estimated: {exc.one_line()}")], {}, (), None, None)))
        if not trained:  # a serving-only preset (no training run): what was estimated comes first
            parts.reverse()
    for title, (rows, d, n, dl, run) in parts:
        sections.append((title, rows))
        data.update(d)
        notes.extend(n)
        delivered += [dl] if dl is not None else []
        job = job or run
    e_rows, e_data, e_notes = _energy_rows(system, workload, job)
    sections.append(("energy, cost, CO2", e_rows))
    data["energy"] = e_data
    notes.extend(e_notes)
    h_rows, h_data, h_notes = _h100e_rows(system, delivered)
    sections.append(("H100-equivalents", h_rows))
    data["h100e"] = h_data
    notes.extend(h_notes)
    data["sections"] = {t: [{"quantity": q, "value": v} for q, v in rows] for t, rows in sections}
    data["assumptions"] = list(dict.fromkeys(a for a in notes if a))
    data["_sections"] = sections
    return data


def assemble(s: SystemSpec, wname: str, title: str, rows: list, d: dict[str, Any], notes: Any,
             dl: Any, job: energy.JobRun | None) -> dict[str, Any]:
    """One workload kind's rows plus the energy and H100-equivalent sections, as `plan_any` returns."""
    e_rows, e_data, e_notes = _energy_rows(s, wname, job)
    h_rows, h_data, h_notes = _h100e_rows(s, [dl] if dl is not None else [])
    sections = [(title, rows), ("energy, cost, CO2", e_rows), ("H100-equivalents", h_rows)]
    return {"system": s.key, "workload": wname, **d, "energy": e_data, "h100e": h_data,
            "sections": {t: [{"quantity": q, "value": v} for q, v in r] for t, r in sections},
            "assumptions": list(dict.fromkeys(tuple(s.notes) + tuple(notes) + tuple(e_notes) + tuple(h_notes))),
            "_sections": sections}


def _engine_on(engine: str, vendor: str) -> str:
    """The engine as asked where it runs on `vendor`'s GPUs; vLLM (which runs on both) where it does
    not: the H100 side of an ATOM plan on MI300X is served as an H100 user would serve it."""
    from recoque.planner import serving_rates as sr

    return engine if vendor in sr.load_engine(engine).vendors else "vllm"
