"""`recoque plan`: how long, how many GPUs, how much energy, money and CO2 a workload needs on a system,
and how many H100s the system is worth for it. `recoque plan --system S --workload W` answers with
default assumptions, each printed; `plan infer|hpl|stencil|train` take the workload's own flags.
"""
from __future__ import annotations

from typing import Any, Optional

import typer

from recoque.cli import plan_hpl, plan_infer, plan_stencil, plan_train
from recoque.errors import BadInput
from recoque.cli._edge import grid_option, power_limit_option, profile_anyway_option
from recoque.planner.capacity import plan_any, planned_shown, profile_for, refuse_unfit_training, resolve_system
from recoque.render import GLOSSARY, console, emit_json, rows_table

app = typer.Typer(help="Plan workloads on systems (run with --system and --workload, or a subcommand).",
                  epilog="Abbreviations: " + GLOSSARY, invoke_without_command=True)

SYSTEM_OPT = typer.Option(None, "--system", "-s", help="system preset (seeds/systems.toml) or a TOML file")
PROFILE_OPT = typer.Option(None, "--profile", help="results.json from `recoque bench`: measured rates")
JSON_OPT = typer.Option(False, "--json", help="emit the same data as JSON")


def show(data: dict[str, Any], as_json: bool) -> None:
    """Print what `planner.capacity` assembled: one table per section, then the assumptions."""
    sections = data.pop("_sections")
    if as_json:
        emit_json(data)
        return
    for title, rows in sections:
        console.print(rows_table(f"{data['system']} / {data['workload']}: {title}", rows))
    console.print("assumptions", style="bold", highlight=False)
    for a in data["assumptions"]:
        console.print(f"  - {a}", highlight=False, soft_wrap=True)


@app.callback(invoke_without_command=True)
def plan(ctx: typer.Context, system: Optional[str] = SYSTEM_OPT,
         workload: Optional[str] = typer.Option(None, "--workload", "-w", help="workload (seeds/workloads.toml) or model name"),
         gpus: Optional[int] = typer.Option(None, "--gpus", help="use this many GPUs of the system"),
         profile: Optional[str] = PROFILE_OPT, as_json: bool = JSON_OPT,
         profile_anyway: bool = profile_anyway_option(),
         power_limit_w: Optional[float] = power_limit_option(), grid: Optional[str] = grid_option()) -> None:
    """Plan a workload on a system with default assumptions, each printed."""
    if ctx.invoked_subcommand is not None:
        given = [f for f, v in (("--system", system), ("--workload", workload), ("--gpus", gpus), ("--profile", profile),
                                ("--json", as_json), ("--profile-anyway", profile_anyway),
                                ("--power-limit-w", power_limit_w), ("--grid", grid)) if v not in (None, False)]
        if given:  # they belong to `plan` itself; the subcommand would say its own are missing
            raise BadInput(f"{given[0]} is given before `{ctx.invoked_subcommand}`",
                           f"put the options after the subcommand: recoque plan {ctx.invoked_subcommand} {given[0]} ...")
        return
    if not system and not workload:
        typer.echo(ctx.get_help())
        raise typer.Exit(2)  # a usage error, as `recoque plan train` with nothing to plan is
    if not system or not workload:
        raise BadInput("plan needs both --system and --workload", "e.g. recoque plan --system alice-recoque --workload mistral-large-2")
    s = resolve_system(system, gpus, power_limit_w, shown=planned_shown(workload), grid=grid)
    s, prof = profile_for(s, profile, profile_anyway)
    data = plan_any(s, workload, prof)
    refuse_unfit_training(data, workload, s, gpus_given=gpus is not None)
    show(data, as_json)


app.command("hpl", help=plan_hpl.__doc__)(plan_hpl.hpl)
app.command("stencil", help=plan_stencil.__doc__)(plan_stencil.stencil)
app.command("infer", help=plan_infer.__doc__)(plan_infer.infer)
app.command("train", help=plan_train.__doc__, epilog="Abbreviations: " + GLOSSARY)(plan_train.train)
