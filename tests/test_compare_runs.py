"""bench/compare.py and `recoque bench compare` on the stored fixtures (tests/fixtures/compare_*.json).

compare_b has the bf16 GEMM at 8192^3 20% slower than compare_a and everything else at noise level;
compare_c is compare_a re-measured (noise only). See tests/fixtures/make_compare_fixtures.py.
"""
import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.bench.compare import bootstrap_ratio, compare_documents, compare_many, compare_records
from recoque.bench.schema import load_results
from recoque.cli import app
from recoque.errors import BadInput

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def docs():
    return {k: load_results(str(FIX / f"compare_{k}.json")) for k in "abc"}


def test_real_20_percent_difference_is_flagged_and_nothing_else(docs):
    cmp = compare_documents(docs["a"], docs["b"])
    flagged = [c for c in cmp.cases if c.significant]
    assert len(flagged) == 1
    c = flagged[0]
    assert (c.benchmark, c.dtype, c.params["m"]) == ("gemm", "bf16", 8192)
    assert c.verdict == "slower"
    assert 0.78 < c.ratio < 0.82
    assert c.ratio_low <= c.ratio <= c.ratio_high < 1.0
    # the ratio is the rate ratio, i.e. the inverse ratio of the median times
    ra = next(r for r in docs["a"].results if r.benchmark == "gemm" and r.params["m"] == 8192 and r.dtype == "bf16")
    rb = next(r for r in docs["b"].results if r.benchmark == "gemm" and r.params["m"] == 8192 and r.dtype == "bf16")
    assert c.ratio == pytest.approx(rb.achieved / ra.achieved)


def test_noise_level_run_is_not_flagged(docs):
    cmp = compare_documents(docs["a"], docs["c"])
    assert cmp.n_significant == 0
    assert len(cmp.cases) == len(docs["a"].results)
    assert all(abs(c.ratio - 1) < 0.01 for c in cmp.cases)
    # a difference the interval resolves but smaller than the effect threshold is named as such, not as noise
    for c in cmp.cases:
        resolved = c.ratio_low > 1.0 or c.ratio_high < 1.0
        assert c.verdict == ("below the effect threshold" if resolved else "same within noise")
    assert any(c.verdict == "below the effect threshold" for c in cmp.cases)


def test_environment_differences_listed_across_machines(docs):
    diff = {k: (a, b) for k, a, b in compare_documents(docs["a"], docs["b"]).environment_differences}
    assert diff["environment.hostname"] == ("node-a", "node-b")
    assert "environment.driver_version" in diff
    assert "environment.rocm_version" not in diff  # equal fields are not listed
    assert not compare_documents(docs["a"], docs["c"]).environment_differences
    from dataclasses import replace

    idle = replace(docs["c"], environment={**docs["c"].environment, "gpu_power_w": 97.0, "gpu_temp_c": 41})
    assert not compare_documents(docs["a"], idle).environment_differences  # one idle reading is no setting


def test_blas_libraries_loaded_in_another_order_are_no_difference(docs):
    libs = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.27"},
            {"user_api": "openmp", "internal_api": "openmp", "version": None}]
    a = replace(docs["a"], environment={**docs["a"].environment, "blas_libraries": libs})
    c = replace(docs["c"], environment={**docs["c"].environment, "blas_libraries": libs[::-1]})
    assert not compare_documents(a, c).environment_differences
    c2 = replace(c, environment={**c.environment, "blas_libraries": [libs[0]]})
    assert any(k.startswith("environment.blas_libraries") for k, _, _ in compare_documents(a, c2).environment_differences)


def test_different_work_count_for_same_case_is_refused(docs):
    a = docs["a"]
    rec = a.results[0]
    changed = replace(rec, flop_count=rec.flop_count * 2)  # a different FLOP formula for the same case
    other = replace(a, results=(changed,) + a.results[1:])
    with pytest.raises(BadInput, match="different benchmark definitions"):
        compare_documents(a, other)
    with pytest.raises(BadInput, match="different benchmark definitions"):
        compare_records(rec, replace(rec, unit="GB/s", flop_count=None, bytes_moved=10**9))


def test_unmatched_cases_listed_and_nothing_in_common_refused(docs):
    a = docs["a"]
    gemm_only = replace(a, results=tuple(r for r in a.results if r.benchmark == "gemm"))
    cmp = compare_documents(a, gemm_only)
    assert len(cmp.cases) == len(gemm_only.results)
    assert any(x.startswith("stream/triad") for x in cmp.only_in_a) and not cmp.only_in_b
    stream_only = replace(a, results=tuple(r for r in a.results if r.benchmark == "stream"))
    with pytest.raises(BadInput, match="no case in common"):
        compare_documents(gemm_only, stream_only)
    with pytest.raises(BadInput):
        compare_many([("a", a)])


def test_bootstrap_is_deterministic_and_brackets_the_ratio():
    ta = [1.0, 1.01, 0.99, 1.02, 0.98, 1.0]
    tb = [0.5, 0.505, 0.495, 0.51, 0.49, 0.5]
    lo, hi = bootstrap_ratio(ta, tb)
    assert (lo, hi) == bootstrap_ratio(ta, tb)
    assert lo <= 2.0 <= hi and hi - lo < 0.2


def test_few_samples_get_no_verdict(docs):
    rec = docs["a"].results[0]
    two = replace(rec, times_s=rec.times_s[:2])
    c = compare_records(two, two)
    assert c.verdict == "too few samples" and c.ratio_low is None and not c.significant


runner = CliRunner()


def test_cli_bench_compare_json_and_fail_on_slower():
    a, b, c = (str(FIX / f"compare_{k}.json") for k in "abc")
    r = runner.invoke(app, ["bench", "compare", a, b, c, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [x["n_significant"] for x in data["comparisons"]] == [1, 0]
    assert runner.invoke(app, ["bench", "compare", a, b, "--fail-on-slower"]).exit_code == 1
    assert runner.invoke(app, ["bench", "compare", a, c, "--fail-on-slower"]).exit_code == 0


def test_cli_bench_compare_table_names_the_slower_case():
    a, b = (str(FIX / f"compare_{k}.json") for k in "ab")
    r = runner.invoke(app, ["bench", "compare", a, b])
    assert r.exit_code == 0, r.output
    assert "1 of 32 cases differ" in r.stdout
    assert "m=8192 n=8192 k=8192" in r.stdout and "slower" in r.stdout
    assert "driver_version" in r.stdout


def test_cli_bench_compare_bad_file_is_one_line(tmp_path):
    bad = tmp_path / "x.json"
    bad.write_text('{"no": "schema"}')
    r = runner.invoke(app, ["bench", "compare", str(FIX / "compare_a.json"), str(bad)])
    assert r.exit_code == 2
    assert "schema_version" in r.output and "Traceback" not in r.output
