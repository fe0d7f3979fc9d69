"""List what recoque knows: system presets, named workloads, model architectures, the device catalog
and the electricity grids (seeds/*.toml). `--json` gives the same rows."""
from __future__ import annotations

from enum import Enum
from typing import Any, Callable

import typer

from recoque.errors import RecoqueError
from recoque.render import console, emit_json, fmt, table


class What(str, Enum):
    systems = "systems"
    workloads = "workloads"
    models = "models"
    devices = "devices"
    grids = "grids"


def _systems() -> list[dict[str, Any]]:
    from recoque.fileio import read_seed_toml
    from recoque.planner.system import DEFAULT_GRID, system_from_toml

    rows = []
    for key, raw in read_seed_toml("systems.toml").get("systems", {}).items():
        try:
            s = system_from_toml(key, raw)
        except RecoqueError as exc:
            rows.append({"key": key, "name": str(raw.get("name", "")), "problem": exc.one_line()})
            continue
        lo, hi = s.ranges.get("gpus", (s.gpus, s.gpus))
        rows.append({"key": key, "name": s.name, "device": s.device, "gpus": _count(s.gpus), "gpus_low": _count(lo),
                     "gpus_high": _count(hi), "gpus_per_node": s.gpus_per_node, "node_power_w": s.node_power_w,
                     "pue": s.pue, "grid": str(s.extra.get("grid", DEFAULT_GRID))})
    return rows


def _count(x: float) -> int | float:
    """A GPU count as the integer it is (a derived range end may be fractional: kept as it is)."""
    return int(x) if float(x).is_integer() else x


def _workloads() -> list[dict[str, Any]]:
    from recoque.planner.workloads import load_workloads

    return [{"key": k, "name": w.name, "kind": w.kind, "model": w.model} for k, w in load_workloads().items()]


def _models() -> list[dict[str, Any]]:
    from recoque.fileio import read_seed_toml
    from recoque.planner.workload import list_models, load_model

    raw = read_seed_toml("models.toml").get("models", {})
    rows = []
    for key in list_models():
        try:
            m = load_model(key)
            rows.append({"key": key, "name": getattr(m, "name", key), "aliases": list(raw[key].get("aliases", [])),
                         "params_total": m.params_total(), "params_active": m.params_active(),
                         "layers": m.layers, "hidden": m.hidden})
        except (RecoqueError, AttributeError, TypeError) as exc:
            rows.append({"key": key, "problem": str(exc)})
    return rows


def _devices() -> list[dict[str, Any]]:
    from recoque.catalog import load_catalog

    return [{"key": k, "vendor": d.vendor, "name": d.name, "status": d.status,
             "bf16_flop_s": d.peak("bf16"), "fp64_gemm_flop_s": d.peak(d.gemm_rate_key("fp64")), "hbm_bytes": d.hbm_bytes,
             "hbm_bandwidth_bytes_s": d.hbm_bandwidth_bytes_s, "tdp_w": d.tdp_w} for k, d in load_catalog().items()]


def _grids() -> list[dict[str, Any]]:
    from recoque.estimate import Estimate
    from recoque.planner.energy import grid_names, load_grid

    rows = []
    for key in grid_names():
        g = load_grid(key)
        # the grid as plans' --json give it (Grid.to_json), each range flat; the price is what a site
        # pays (France: supply + network fee + excise - rebates, the arithmetic in price_note), not the
        # seed's price_eur_per_mwh, which is France's supply alone
        row: dict[str, Any] = {}
        for k, v in g.to_json().items():
            row.update({k: v.value, f"{k}_low": v.low, f"{k}_high": v.high} if isinstance(v, Estimate) else {k: v})
        rows.append({**row, "price_note": g.price.assumptions[0], "sources": dict(g.sources)})
    return rows


def _span(r: dict[str, Any], key: str) -> str:
    """`value (low-high)`, or the value alone when it has no range."""
    v, lo, hi = r[key], r[f"{key}_low"], r[f"{key}_high"]
    return fmt(v) if lo == hi == v else f"{fmt(v)} ({fmt(lo)}-{fmt(hi)})"


def _scaled(x: float | None, scale: float) -> str:
    return "unknown" if x is None else fmt(x / scale)


def _also(r: dict[str, Any]) -> str:
    """The name, and the other published names the key answers to."""
    aliases = r.get("aliases") or []
    return r.get("name", "") + (f" (also: {', '.join(aliases)})" if aliases else "")


def _gpus(r: dict[str, Any]) -> str:
    return "" if r.get("gpus") is None else _span(r, "gpus")


# title, column headers, row -> cells
VIEWS: dict[str, tuple[str, tuple[str, ...], Callable[[dict[str, Any]], tuple[Any, ...]]]] = {
    "systems": ("Systems (seeds/systems.toml; --system KEY)",
                ("key", "device", "GPUs (range)", "GPUs/node", "node power (kW)", "PUE", "grid", "name"),
                lambda r: (r["key"], r.get("device", ""), _gpus(r), r.get("gpus_per_node", ""),
                           _scaled(r.get("node_power_w"), 1e3), fmt(r.get("pue")), r.get("grid", ""),
                           r.get("problem") or r["name"])),
    "workloads": ("Workloads (seeds/workloads.toml; --workload KEY)", ("key", "kind", "model", "name"),
                  lambda r: (r["key"], r["kind"], r["model"] or "", r["name"])),
    "models": ("Models (seeds/models.toml; plan train --workload KEY)",
               ("key", "parameters (B)", "active (B)", "layers", "hidden", "name"),
               lambda r: (r["key"], _scaled(r.get("params_total"), 1e9), _scaled(r.get("params_active"), 1e9),
                          r.get("layers", ""), r.get("hidden", ""), r.get("problem") or _also(r))),
    "devices": ("Devices (seeds/hardware.toml; dense datasheet peaks; FP64 GEMM: the matrix-unit rate where the part has one)",
                ("key", "vendor", "BF16 (TFLOP/s)", "FP64 GEMM (TFLOP/s)", "HBM (GB)", "HBM (TB/s)", "TDP (W)", "name"),
                lambda r: (r["key"], r["vendor"], _scaled(r["bf16_flop_s"], 1e12), _scaled(r["fp64_gemm_flop_s"], 1e12),
                           _scaled(r["hbm_bytes"], 1e9), _scaled(r["hbm_bandwidth_bytes_s"], 1e12),
                           _scaled(r["tdp_w"], 1), r["name"])),
    "grids": ("Grids (seeds/systems.toml [grid.*]; a system's `grid` key or --grid KEY)",
              ("key", "place", "electricity (EUR/MWh)", "carbon intensity (gCO2e/kWh)", "year", "shown against"),
              lambda r: (r["key"], r["place"], _span(r, "electricity_price_eur_per_mwh"), _span(r, "gco2e_per_kwh"),
                         r["intensity_year"], f"{r['region']} average, {fmt(r['region_average_gco2e_per_kwh'])}")),
}
LOADERS = {"systems": _systems, "workloads": _workloads, "models": _models, "devices": _devices, "grids": _grids}


def list_known(what: What = typer.Argument(..., help="systems, workloads, models, devices or grids"),
               as_json: bool = typer.Option(False, "--json", help="emit the same rows as JSON")) -> None:
    """List the known systems, workloads, models, devices or grids (the keys other commands take)."""
    rows = LOADERS[what.value]()
    if as_json:
        emit_json({what.value: rows})
        return
    title, columns, cells = VIEWS[what.value]
    console.print(table(title, columns, [cells(r) for r in rows]))
