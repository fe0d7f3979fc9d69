"""Published training and serving runs through the planner: predicted vs published, error per case."""
from __future__ import annotations

import typer

from recoque.errors import BadInput

from recoque.planner.validation import DEFAULT_THRESHOLD_MAX, DEFAULT_THRESHOLD_MEAN, validate_all
from recoque.render import console, emit_json, table


def validate(
    as_json: bool = typer.Option(False, "--json", help="emit JSON with the same content"),
    threshold_mean: float = typer.Option(DEFAULT_THRESHOLD_MEAN, "--threshold-mean",
                                         help="fail above this mean absolute error (fraction)"),
    threshold_max: float = typer.Option(DEFAULT_THRESHOLD_MAX, "--threshold-max",
                                        help="fail above this largest absolute error (fraction)"),
    checks: bool = typer.Option(False, "--checks", help="also hold the models against the check sets "
                                "(seeds/train_checks.toml, seeds/serving_checks.toml): never calibrated on, "
                                "reported, not part of the verdict"),
) -> None:
    """Published training and serving runs through the planner: predicted vs published iteration time
    (serving: throughput), error per case."""
    if threshold_mean != DEFAULT_THRESHOLD_MEAN and threshold_mean > threshold_max:
        # a mean never exceeds the largest error: a mean threshold given above the max one never acts
        raise BadInput(f"--threshold-mean {threshold_mean:g} is above --threshold-max {threshold_max:g}",
                       "a mean cannot exceed the largest error; give --threshold-mean at most --threshold-max")
    rep = validate_all(threshold_mean, threshold_max)
    from recoque.cli.validate_serving import serving_section  # LLM serving cases (issue 9)

    if as_json:
        data = rep.to_json()
        data["serving"], serving_ok = serving_section(True)
        if checks:
            data["checks"] = check_sets()
        emit_json(data)
    else:
        rows = []
        for r in rep.results:
            pub = rep.public_errors.get(r.case.name)
            role = ("not in verdict" if not r.case.in_verdict else "held out" if r.case.held_out else "training")
            inside = r.predicted_low_s <= r.case.published_high_s and r.case.published_low_s <= r.predicted_high_s
            rows.append((r.case.name, role + f"\n{r.case.stack.key}", r.case.plan.gpus,
                         r.plan.label() + (" (tuned: " + ",".join(r.case.tuned) + ")" if r.case.tuned else "")
                         + ("" if r.fits else " [over memory in the model]"),
                         r.case.published_text, f"{r.case.published_time_s:.2f}",
                         f"{r.predicted_s:.2f} [{r.predicted_low_s:.2f}-{r.predicted_high_s:.2f}]"
                         + ("" if inside else " (range misses)"), f"{r.error:+.1%}",
                         "" if pub is None else f"{pub:+.1%}"))
        console.print(table("validation: iteration time, predicted vs published",
                            ("case", "role / stack", "GPUs", "plan", "published", "published s", "predicted s [low-high]",
                             "error", "error, public-only profile"), rows))
        for g, (mean, mx, n) in rep.by_group().items():
            console.print(f"{g}: {n} cases, mean |error| {mean:.1%}, max {mx:.1%}", highlight=False)
        sp = rep.split()
        for r in rep.results:
            if not r.case.in_verdict:
                console.print(f"not in the verdict: {r.case.name} ({r.error:+.1%}): {r.case.why_not_in_verdict}",
                              highlight=False)
        console.print(f"training (a profile or stack efficiency fitted on these): {sp['training'][2]} cases, mean |error| "
                      f"{sp['training'][0]:.1%}, max {sp['training'][1]:.1%}", highlight=False)
        console.print(f"held out (never used in any fit): {sp['held_out'][2]} cases, mean |error| "
                      f"{sp['held_out'][0]:.1%}, max {sp['held_out'][1]:.1%}", highlight=False)
        pm, px, pn = rep.public_stats()
        if pn:
            console.print(f"public-only profiles (MAMF GEMM figure as measured, STREAM-class memory, nothing "
                          f"fitted): {pn} cases, mean |error| {pm:.1%}, max {px:.1%} (reference, not the verdict)",
                          highlight=False)
        loose = [f"{r.case.name} <= {rep.limit(r):.0%}" for r in rep.verdict_results if rep.limit(r) > threshold_max]
        verdict = "PASS" if rep.passed else "FAIL"
        console.print(f"all: mean |error| {rep.mean_abs_error:.1%} (threshold {threshold_mean:.0%}), max "
                      f"{rep.max_abs_error:.1%} (threshold {threshold_max:.0%} per case"
                      + (f"; looser limits stated in seeds/validation.toml: {', '.join(loose)}" if loose else "") + f"): {verdict}")
        _, serving_ok = serving_section(False)
        if checks:
            print_check_sets(check_sets())
    if not rep.passed or not serving_ok:
        raise typer.Exit(1)


def check_sets() -> dict:
    """Training and serving check-set rows with their per-vendor summaries (planner/checksets.py)."""
    from recoque.planner import checksets

    out = {}
    for name, rows in (("training", checksets.training_rows()), ("serving", checksets.serving_rows())):
        out[name] = {"rows": rows, "by_vendor": checksets.by_vendor(rows)}
    return out


def print_check_sets(sets: dict, worst: int = 5) -> None:
    """Per vendor: runs, mean and max |error|, inside fraction; then the worst runs of each set."""
    for name, data in sets.items():
        for vendor, s in data["by_vendor"].items():
            console.print(f"check set, {name}, {vendor}: {s['runs']} runs (never calibrated on), mean |error| "
                          f"{s['mean_abs_error']:.1%}, max {s['max_abs_error']:.1%}, published inside low-high "
                          f"{s['inside_fraction']:.0%}" + (f", {s['failed']} without an estimate" if s["failed"] else ""),
                          highlight=False, markup=False)
        shown = [r for r in data["rows"] if r.get("in_verdict", True) and r["error"] is not None]
        left = sum(1 for r in data["rows"] if not r.get("in_verdict", True))
        console.print(f"  worst of set {name}, every vendor" + (f" ({left} rows outside the verdict not counted)" if left else "")
                      + ":", highlight=False, markup=False)
        for r in sorted(shown, key=lambda r: -abs(r["error"]))[:worst]:
            console.print(f"  worst: {r.get('case') or r.get('key')} {r['error']:+.1%}", highlight=False, markup=False)
