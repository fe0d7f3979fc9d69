"""Check every stated figure in the source documents (seeds/claims.toml): the metric it holds under,
the numbers it implies, a verdict and the arithmetic. --profile uses what was measured."""
from __future__ import annotations

from typing import List, Optional

import typer

from recoque.render import console, emit_json
from recoque.cli._edge import profile_anyway_option, refuse_repeats


def check(claim: Optional[List[str]] = typer.Option(None, "--claim", help="check only this claim (repeatable)"),
          profile: Optional[str] = typer.Option(None, "--profile", help="results.json from `recoque bench`"),
          as_json: bool = typer.Option(False, "--json", help="emit the same data as JSON"),
          profile_anyway: bool = profile_anyway_option()) -> None:
    """Check the figures the documents state, with verdict and arithmetic."""
    from recoque.planner.capacity import check_claims

    refuse_repeats(list(claim or []), "--claim")
    results, mark = check_claims(profile, list(claim) if claim else None, profile_anyway)
    counts = {v: sum(r.verdict == v for r in results) for v in dict.fromkeys(r.verdict for r in results)}
    if as_json:
        emit_json({"claims": [r.to_json() for r in results], "verdict_counts": counts,
                   **({"profile_note": mark} if mark else {})})
        return
    if mark:
        console.print(mark, highlight=False, markup=False, soft_wrap=True)
    for r in results:
        console.print(f"{r.key}: {r.summary}", highlight=False)
        console.print(f"  stated: {r.stated}  ({r.document}, {r.locator})", highlight=False, soft_wrap=True)
        console.print(f"  verdict: {r.verdict_line}", highlight=False, soft_wrap=True)
        console.print(f"  holds under: {r.holds_under}", highlight=False)
        for line in r.arithmetic:
            console.print(f"    {line}", highlight=False, soft_wrap=True)
        for src in r.sources:
            console.print(f"    source: {src}", highlight=False, soft_wrap=True)
    console.print(f"{len(results)} claims: " + ", ".join(f"{n} {v}" for v, n in counts.items()), highlight=False)
