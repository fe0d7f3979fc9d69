"""Published training runs through the planner: predicted vs published iteration time, error per case."""
from __future__ import annotations

import typer

from recoque.planner.validation import DEFAULT_THRESHOLD_MAX, DEFAULT_THRESHOLD_MEAN, validate_all
from recoque.render import console, emit_json, table


def validate(
    as_json: bool = typer.Option(False, "--json", help="emit JSON with the same content"),
    threshold_mean: float = typer.Option(DEFAULT_THRESHOLD_MEAN, "--threshold-mean",
                                         help="fail above this mean absolute error (fraction)"),
    threshold_max: float = typer.Option(DEFAULT_THRESHOLD_MAX, "--threshold-max",
                                        help="fail above this largest absolute error (fraction)"),
) -> None:
    """Published training runs through the planner: predicted vs published iteration time, error per case."""
    rep = validate_all(threshold_mean, threshold_max)
    if as_json:
        emit_json(rep.to_json())
    else:
        rows = []
        for r in rep.results:
            pub = rep.public_errors.get(r.case.name)
            rows.append((r.case.name, "held out" if r.case.held_out else "training", r.case.plan.gpus,
                         r.plan.label() + (" (tuned: " + ",".join(r.case.tuned) + ")" if r.case.tuned else "")
                         + ("" if r.fits else " [over memory in the model]"),
                         r.case.published_text, f"{r.case.published_time_s:.2f}",
                         f"{r.predicted_s:.2f} [{r.predicted_low_s:.2f}-{r.predicted_high_s:.2f}]", f"{r.error:+.1%}",
                         "" if pub is None else f"{pub:+.1%}"))
        console.print(table("validation: iteration time, predicted vs published",
                            ("case", "role", "GPUs", "plan", "published", "published s", "predicted s [low-high]",
                             "error", "error, public-only profile"), rows))
        for g, (mean, mx, n) in rep.by_group().items():
            console.print(f"{g}: {n} cases, mean |error| {mean:.1%}, max {mx:.1%}", highlight=False)
        sp = rep.split()
        console.print(f"training (profile fitted on these): {sp['training'][2]} cases, mean |error| "
                      f"{sp['training'][0]:.1%}, max {sp['training'][1]:.1%}", highlight=False)
        console.print(f"held out (never used in any fit): {sp['held_out'][2]} cases, mean |error| "
                      f"{sp['held_out'][0]:.1%}, max {sp['held_out'][1]:.1%}", highlight=False)
        pm, px, pn = rep.public_stats()
        if pn:
            console.print(f"public-only profiles (MAMF GEMM figure as measured, STREAM-class memory, nothing "
                          f"fitted): {pn} cases, mean |error| {pm:.1%}, max {px:.1%} (reference, not the verdict)",
                          highlight=False)
        loose = [f"{r.case.name} <= {rep.limit(r):.0%}" for r in rep.results if rep.limit(r) > threshold_max]
        verdict = "PASS" if rep.passed else "FAIL"
        console.print(f"all: mean |error| {rep.mean_abs_error:.1%} (threshold {threshold_mean:.0%}), max "
                      f"{rep.max_abs_error:.1%} (threshold {threshold_max:.0%} per case"
                      + (f"; held-out looser: {', '.join(loose)}" if loose else "") + f"): {verdict}")
    if not rep.passed:
        raise typer.Exit(1)
