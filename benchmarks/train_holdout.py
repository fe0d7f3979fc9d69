"""Training model held against published runs it was not calibrated on (seeds/train_checks.toml).

Every case is fed through `recoque validate`'s machinery (shipped device profiles, the case's
stack, its published plan) but nothing in the check set was used to fit anything. Each row prints
the published figure, the predicted iteration time with its [low-high] range, the error and
whether the published time lies inside the range; the end gives mean and max |error| per vendor
over the runs in the verdict (a run whose hardware or plan the model cannot represent is shown
with its reason, `why_not_in_verdict`, and left out).

    python benchmarks/train_holdout.py [--file PATH] [--json]

Exit 0 always (it measures; tests/test_train_holdout.py holds the guards).
"""
from __future__ import annotations

import holdout_cli

from recoque.planner.checksets import summary, training_rows as rows
from recoque.planner.validation import cases_from_seed, load_cases


def report(rs: list[dict]) -> str:
    out = [f"{'case':<34} {'device':<12} {'GPUs':>6} {'published':>22} {'model s':>8} {'[low-high] s':>17} "
           f"{'error':>7} {'inside':>6}"]
    for r in rs:
        out.append(f"{r['case']:<34} {r['device']:<12} {r['gpus']:>6} {r['published']:>22} "
                   f"{r['predicted_time_s']:>8.3g} [{r['predicted_low_s']:>7.3g}-{r['predicted_high_s']:>7.3g}] "
                   f"{r['error']:>+7.1%} {'yes' if r['inside'] else 'NO':>6}"
                   + holdout_cli.verdict_mark(r))
    return "\n".join(out + holdout_cli.left_out_lines(rs, "case") + holdout_cli.vendor_lines(rs))


def main(argv: list[str] | None = None) -> int:
    return holdout_cli.run(__doc__.splitlines()[0], argv, lambda: load_cases("train_checks.toml"), cases_from_seed,
                           rows, summary, report)


if __name__ == "__main__":
    raise SystemExit(main())
