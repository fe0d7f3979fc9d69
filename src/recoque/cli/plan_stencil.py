"""A bandwidth-bound stencil / HPCG-class kernel from the (measured) memory bandwidth."""
from __future__ import annotations

from typing import Optional

import typer

from recoque.errors import BadInput
from recoque.cli._edge import grid_option, power_limit_option, profile_anyway_option
from recoque.planner.capacity import assemble, plan_stencil, profile_for, resolve_system
from recoque.planner.workloads import get_workload


def stencil(system: str = typer.Option(..., "--system", "-s", help="system preset or a TOML file"),
            workload: str = typer.Option("climate-km", "--workload", "-w",
                                         help="a stencil workload (`recoque list workloads`: climate-km, hpcg)"),
            gpus: Optional[int] = typer.Option(None, "--gpus", help="use this many GPUs of the system"),
            grid_points: Optional[float] = typer.Option(None, "--grid-points",
                                                        help="a fixed grid (strong scaling; default: the workload's, "
                                                             "for hpcg a fixed share per GPU)"),
            sweeps: Optional[int] = typer.Option(None, "--sweeps", help="passes over the grid (default: the workload's)"),
            profile: Optional[str] = typer.Option(None, "--profile", help="results.json from `recoque bench`: measured rates"),
            profile_anyway: bool = profile_anyway_option(),
            power_limit_w: Optional[float] = power_limit_option(),
            grid: Optional[str] = grid_option(),
            as_json: bool = typer.Option(False, "--json", help="emit the same data as JSON")) -> None:
    """A bandwidth-bound stencil / HPCG-class kernel from the (measured) memory bandwidth."""
    from recoque.cli.plan import show

    s = resolve_system(system, gpus, power_limit_w, grid=grid)
    w = get_workload(workload)
    if w.kind != "stencil":
        raise BadInput(f"workload {w.key!r} is of kind {w.kind}, not stencil", "use a stencil workload such as climate-km or hpcg")
    s, prof = profile_for(s, profile, profile_anyway)
    rows, d, notes, dl, job = plan_stencil(s, w, prof, grid_points=grid_points, sweeps=sweeps)
    show(assemble(s, w.key, "stencil", rows, d, notes, dl, job), as_json)
