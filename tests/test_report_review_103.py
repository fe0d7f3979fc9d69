"""`recoque report` defects a review found (stop 103): a `$` in user text crashed the plots (matplotlib
mathtext), the plots drew every confirmation round as its own point, an empty results file gave an
empty report, and an upper-case .CSV made odd side-file names."""
from __future__ import annotations

import json

from typer.testing import CliRunner

from recoque.bench.schema import load_results
from recoque.cli import app
from recoque.report.plots import one_per_case

runner = CliRunner()


def _copy(tmp_path, file="a.json", **device):
    doc = json.loads(open("tests/fixtures/compare_a.json").read())
    doc["device"].update(device)
    p = tmp_path / file
    p.write_text(json.dumps(doc))
    return p


def test_a_dollar_pair_in_user_text_is_drawn_literally(tmp_path):
    src = _copy(tmp_path, "run $x^{$.json", name="GPU $x^{$ z")
    res = runner.invoke(app, ["report", str(src), "--out", str(tmp_path / "r.html")])
    assert res.exit_code == 0, res.output
    assert "GPU $x^{$ z" in (tmp_path / "r.html").read_text()


def test_plots_take_one_point_per_confirmed_case():
    from dataclasses import replace

    first = load_results("tests/fixtures/compare_a.json").results[0]
    once = replace(first, times_s=tuple(t * 5 for t in first.times_s))  # the slow first run
    rounds = [replace(first, tags=("confirmation", f"confirm_round:{i}/3"), times_s=tuple(t * f for t in first.times_s))
              for i, f in enumerate((1.0, 0.9, 1.1), 1)]
    other = replace(first, params={**first.params, "extra": 1})
    picked = one_per_case([once, *rounds, other])
    assert len(picked) == 2 and other in picked  # each case once
    mid = [r for r in picked if r is not other][0]
    assert mid is rounds[0]  # the median round (times x1.0), not the first run nor every round


def test_an_empty_results_file_is_refused(tmp_path):
    doc = json.loads(open("tests/fixtures/compare_a.json").read())
    doc["results"] = []
    p = tmp_path / "empty.json"
    p.write_text(json.dumps(doc))
    res = runner.invoke(app, ["report", str(p), "--out", str(tmp_path / "e.md")])
    assert res.exit_code == 2 and "holds no verified result" in res.stderr, res.output
    assert not (tmp_path / "e.md").exists()


def test_an_upper_case_csv_suffix_names_its_side_files_alike():
    from recoque.report.csv import derived_paths

    assert derived_paths("R.CSV") == ("R-babelstream.csv", "R-nccl-tests.csv")


def test_markdown_keeps_user_text_literal_outside_tables_and_links_odd_folders():
    from recoque.report import markdown
    from recoque.report.model import Section
    from recoque.report.plots import Plot

    s = Section("t [x](javascript:alert(1))", paragraphs=("**b**",), items=("see [here](javascript:alert(1))",),
                plots=(Plot("p", "title", b""),))
    out = markdown.section(s, "my plots (v2)")
    assert "[here](javascript" not in out and "\\[here\\]" in out and "\\*\\*b\\*\\*" in out
    assert "(<my plots (v2)/p.png>)" in out
