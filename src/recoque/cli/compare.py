"""Compare systems side by side on one workload: throughput, energy, cost, CO2 and H100-equivalents."""
from __future__ import annotations

from typing import Any, Optional

import typer

from recoque.errors import BadInput, DoesNotFit, RecoqueError
from recoque.estimate import Estimate
from recoque.cli._edge import grid_option, power_limit_option, profile_anyway_option, refuse_repeats
from recoque.names import spelling
from recoque.planner.capacity import (plan_any, planned_shown, profiles_for_systems, refuse_unfit_training,
                                      resolve_system)
from recoque.render import console, emit_json, human, plain, table


def compare(systems: list[str] = typer.Option(..., "--systems", "-s",
                                             help="presets or TOML files, comma-separated or -s repeated"),
            workload: str = typer.Option("hpl", "--workload", "-w", help="workload (seeds/workloads.toml) or model name"),
            profile: Optional[str] = typer.Option(None, "--profile", help="results.json from `recoque bench`"),
            as_json: bool = typer.Option(False, "--json", help="emit the same data as JSON"),
            profile_anyway: bool = profile_anyway_option(),
            power_limit_w: Optional[float] = power_limit_option(), grid: Optional[str] = grid_option()) -> None:
    """Side by side: the same workload on several systems."""

    names = [s.strip() for group in systems for s in group.split(",") if s.strip()]
    if not names:
        raise BadInput("--systems is empty", "e.g. --systems alice-recoque,jean-zay-h100,jupiter")
    refuse_repeats(names, "--systems", _same_system)
    resolved = [resolve_system(n, power_limit_w=power_limit_w, shown=planned_shown(workload), grid=grid) for n in names]
    keys = [s.key for s in resolved]
    twice = next((k for k in keys if keys.count(k) > 1), None)
    if twice:  # two files with one key: two columns no reader could tell apart
        given = [n for n, k in zip(names, keys) if k == twice]
        raise BadInput(f"--systems {', '.join(given)} all define the system key {twice!r}",
                       "give each system file its own [systems.<key>]")
    # refused when it is for none of their devices, unless --profile-anyway (then marked; issue 7)
    plans, misfits = [], []
    for s, prof in profiles_for_systems(resolved, profile, profile_anyway):
        try:
            d = plan_any(s, workload, prof)
            refuse_unfit_training(d, workload, s)
        except DoesNotFit as exc:  # an impossible plan on one system: its column says so, the others stand
            misfits.append(exc)
            d = {"system": s.key, "workload": None, "does_not_fit": f"{exc.one_line()}",
                 "sections": {"plan": [{"quantity": "plan", "value": f"does not fit: {exc.what}"}]}, "assumptions": []}
        except RecoqueError as exc:  # several systems: say which one the error is about
            raise type(exc)(f"{s.key}: {exc.what}", exc.fix) from exc
        d.pop("_sections", None)
        plans.append(d)
    if len(misfits) == len(plans):
        exc, key = misfits[0], plans[0]["system"]
        raise DoesNotFit(exc.what if key in exc.what else f"{key}: {exc.what}", exc.fix)
    workload = next(d["workload"] for d in plans if d["workload"])  # the preset's key, however it was typed
    for d in plans:
        d["workload"] = d["workload"] or workload
    if as_json:
        emit_json({"workload": workload, "systems": plans})
        return
    quantities: list[tuple[str, str]] = []
    for d in plans:
        for title, rows in d["sections"].items():
            for r in rows:
                if (title, r["quantity"]) not in quantities:
                    quantities.append((title, r["quantity"]))

    def cell(d: dict[str, Any], title: str, q: str) -> str:
        for r in d["sections"].get(title, []):
            if r["quantity"] == q:
                v = r["value"]
                if isinstance(v, Estimate):
                    val, lo, hi, unit = human(v)
                    return " ".join(filter(None, (val, unit))) + (f" ({lo}..{hi})" if lo != hi else "")
                return plain(v)  # as `plan` shows it
        return ""
    rows = [(f"{q}", *(cell(d, t, q) for d in plans)) for t, q in quantities]
    console.print(table(f"compare: {workload}", ["quantity", *(d["system"] for d in plans)], rows))
    console.print("assumptions (all systems)", style="bold")
    for a in dict.fromkeys(a for d in plans for a in d["assumptions"]):
        console.print(f"  - {a}", highlight=False, soft_wrap=True)


def _same_system(name: str) -> str:
    """A preset by its name, a file by where it is (`a.toml` and `./a.toml` are one system)."""
    from pathlib import Path

    p = Path(name)
    return str(p.resolve()) if p.is_file() else spelling(name)
