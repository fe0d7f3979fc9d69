"""HPL Rmax, GFLOP/s per W and H100-equivalents of a system."""
from __future__ import annotations

from typing import Optional

import typer

from recoque.cli._edge import grid_option, power_limit_option, profile_anyway_option
from recoque.planner.capacity import assemble, plan_hpl, profile_for, resolve_system


def hpl(system: str = typer.Option(..., "--system", "-s", help="system preset or a TOML file"),
        gpus: Optional[int] = typer.Option(None, "--gpus", help="use this many GPUs of the system"),
        efficiency: Optional[float] = typer.Option(None, "--efficiency", help="fix the HPL efficiency (Rmax/Rpeak-basis)"),
        profile: Optional[str] = typer.Option(None, "--profile", help="results.json from `recoque bench`: measured rates"),
        profile_anyway: bool = profile_anyway_option(),
        power_limit_w: Optional[float] = power_limit_option(),
        grid: Optional[str] = grid_option(),
        as_json: bool = typer.Option(False, "--json", help="emit the same data as JSON")) -> None:
    """HPL Rmax, GFLOP/s per W and H100-equivalents of a system."""
    from recoque.cli.plan import show

    s = resolve_system(system, gpus, power_limit_w, grid=grid)
    s, prof = profile_for(s, profile, profile_anyway)
    rows, d, notes, dl, _ = plan_hpl(s, prof, efficiency)
    show(assemble(s, "hpl", "HPL", rows, d, notes, dl, None), as_json)
