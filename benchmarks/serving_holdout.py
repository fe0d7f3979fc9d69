"""Serving model held against published runs it set no constant on (seeds/serving_checks.toml).

Each row: published output tokens/s, the predicted figure with its [low-high] range, the error
and whether the published figure lies inside; the end gives mean and max |error| per vendor.

    python benchmarks/serving_holdout.py [--file PATH] [--json]

Exit 0 always (it measures; tests/test_serving_holdout.py holds the guards).
"""
from __future__ import annotations

import holdout_cli

from recoque.planner.checksets import serving_rows as rows, summary
from recoque.planner.serving_validation import cases_from_seed, load_cases


def report(rs: list[dict]) -> str:
    out = [f"{'case':<52} {'published':>10} {'model':>10} {'[low-high]':>21} {'error':>7} {'inside':>6}"]
    for r in rs:
        if r["error"] is None:
            out.append(f"{r['key']:<52} {r['published_tokens_per_s']:>10,.0f}  failed: {r['note']}")
            continue
        out.append(f"{r['key']:<52} {r['published_tokens_per_s']:>10,.0f} {r['predicted_tokens_per_s'].value:>10,.0f} "
                   f"[{r['predicted_low']:>9,.0f}-{r['predicted_high']:>9,.0f}] {r['error']:>+7.1%} "
                   f"{'yes' if r['inside'] else 'NO':>6}" + holdout_cli.verdict_mark(r))
    return "\n".join(out + holdout_cli.left_out_lines(rs, "key") + holdout_cli.vendor_lines(rs))


def main(argv: list[str] | None = None) -> int:
    return holdout_cli.run(__doc__.splitlines()[0], argv, lambda: load_cases(seed_file="serving_checks.toml"),
                           lambda seed, path: cases_from_seed(seed), rows, summary, report)


if __name__ == "__main__":
    raise SystemExit(main())
