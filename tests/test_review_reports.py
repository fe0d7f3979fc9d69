"""bench compare / bench accept / report defects found by the stop-102 review, one test each."""
import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.bench import accept as A
from recoque.bench.compare import compare_documents, interval_text, pair_records
from recoque.bench.schema import document_from_json, load_results
from recoque.cli import app
from recoque.errors import BadInput

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()


def _json(name):
    return json.loads((FIX / name).read_text())


def _with_rounds(doc, rec_index, n_rounds=3):
    """The record at rec_index measured again in n confirmation rounds beside its sweep."""
    d = copy.deepcopy(doc)
    base = d["results"][rec_index]
    for k in range(1, n_rounds + 1):
        r = copy.deepcopy(base)
        r["tags"] = ["sweep", "headline", "confirmation", f"confirm_round:{k}/{n_rounds}"]
        r["times_s"] = [t * (1 + 0.05 * k) for t in r["times_s"]]
        d["results"].append(r)
    return d


def test_a_round_b_lacks_is_not_paired_with_another_round():
    a = _with_rounds(_json("compare_a.json"), 3)
    b = copy.deepcopy(a)
    b["results"] = [r for r in b["results"] if not (r is b["results"][3])]  # B lacks the sweep round
    del b["results"][3]
    pairs, only_a, _ = pair_records(document_from_json(a), document_from_json(b))
    for ra, rb in pairs:
        assert ra.tags == rb.tags and ra.times_s == rb.times_s  # identical twins only
    assert any("(sweep)" in label for label in only_a)
    cmp = compare_documents(document_from_json(a), document_from_json(b))
    assert all(c.ratio == pytest.approx(1.0) for c in cmp.cases)
    assert {c.to_json()["run"] for c in cmp.cases if c.params.get("m") == 8192 and c.dtype == "bf16"} >= {
        "confirmation 1/3", "confirmation 2/3", "confirmation 3/3"}


@pytest.mark.parametrize("low,high,ratio", [(1.0204, 1.1228, 1.0204), (0.912, 0.9999995, 0.95), (0.98, 1.02, 1.0)])
def test_the_printed_interval_holds_the_computed_one(low, high, ratio):
    text = interval_text(low, high)
    lo, hi = (float(x) for x in text.split("-"))
    assert lo <= low and hi >= high and lo <= ratio <= hi
    assert (lo <= 1.0 <= hi) == (low <= 1.0 <= high)  # an interval that excludes 1 never prints touching it


def test_a_file_with_nothing_to_judge_fails_and_is_not_written_as_passed(tmp_path):
    good = load_results(str(FIX / "accept_mi300x_gpu0.json"))
    other = _json("accept_mi300x_gpu1.json")
    other["environment"]["hostname"] = "vm2"
    other["results"] = [r for r in other["results"] if r["benchmark"] == "attention"]
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(other))
    doc = load_results(str(bare))
    result = A.evaluate([good, doc])
    assert not result.passed and result.per_node()["vm2"] == A.FAIL
    A.write_into(str(bare), None, A.Acceptance((), {}), A.gpu_label(doc))
    assert json.loads(bare.read_text())["acceptance"]["passed"] is False  # no checks is no pass


def test_a_vendor_floor_is_held_against_the_headline_not_the_luckiest_round():
    d = _json("accept_mi300x_gpu0.json")
    tri = next(r for r in d["results"] if r["op"] == "triad")
    floor = next(f for f in A.load_policy().floors if f.device == d["device"]["catalog_key"] and f.op == "triad")
    rounds = []
    for k, rate in ((1, 0.95), (2, 0.965), (3, 1.02)):  # median round under the floor, the best above it
        r = copy.deepcopy(tri)
        med = r["bytes_moved"] / (rate * floor.minimum * 1e9)
        r["times_s"] = [med * (1 + 0.002 * (i - 5)) for i in range(11)]
        r["tags"] = ["headline", "confirmation", f"confirm_round:{k}/3"]
        rounds.append(r)
    d["results"] = [r for r in d["results"] if r["op"] != "triad"] + rounds
    check = next(c for c in A.check_document(document_from_json(d), A.load_policy()) if "triad" in c.figure)
    # STREAM is held at the headline round's best sample (its fastest time, as stream.c and BabelStream
    # report), the median beside it; never at the luckiest round (1.02 x the floor)
    assert check.verdict == A.FAIL and check.measured == pytest.approx(0.965 / 0.99 * floor.minimum, rel=1e-3)
    assert check.median == pytest.approx(0.965 * floor.minimum, rel=1e-3)


def test_a_read_only_results_file_still_shows_the_verdict(tmp_path, monkeypatch):
    f = tmp_path / "gpu0.json"
    f.write_text((FIX / "accept_mi300x_gpu0.json").read_text())
    from recoque.errors import WriteFailed

    def fails(*a, **k):
        raise WriteFailed(f"cannot write {f}: Read-only file system", "write elsewhere")
    monkeypatch.setattr(A, "write_into", fails)
    r = runner.invoke(app, ["bench", "accept", str(f)])
    assert r.exit_code == 4 and "ACCEPTED" in r.output or "REJECTED" in r.output
    assert "--no-write" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("value", ["abc", [1.2], None])
def test_a_warning_with_a_value_that_is_not_a_number_is_refused_in_one_line(tmp_path, value):
    d = _json("compare_a.json")
    d["warnings"] = [{"code": "x", "case": "c", "value": value, "hint": "h"}]
    f = tmp_path / "w.json"
    f.write_text(json.dumps(d))
    r = runner.invoke(app, ["report", str(f), "--json"])
    assert r.exit_code == 2 and "warnings[0]: `value`" in r.output and "Traceback" not in r.output


def test_a_record_that_does_not_say_it_was_verified_is_refused():
    d = _json("compare_a.json")
    del d["results"][0]["verified"]
    with pytest.raises(BadInput, match="does not say it was verified"):
        document_from_json(d, "x.json")


def test_a_schema_1_file_keeps_its_host_and_a_record_already_in_seconds():
    v1 = _json("results_v1.json")
    assert document_from_json(v1).environment["hostname"] == "old-node"
    v1["results"][1].pop("times_ms")
    v1["results"][1]["times_s"] = [0.01, 0.0105]
    assert document_from_json(v1).results[1].times_s == (0.01, 0.0105)


def test_report_checks_the_derived_csv_paths_before_writing_anything(tmp_path):
    (tmp_path / "r-babelstream.csv").mkdir()
    r = runner.invoke(app, ["report", str(FIX / "compare_a.json"), "--out", str(tmp_path / "r.md"),
                            "--csv", str(tmp_path / "r.csv"), "--no-plots"])
    assert r.exit_code == 4 and "r-babelstream.csv" in r.output
    assert not (tmp_path / "r.md").exists() and not (tmp_path / "r.csv").exists()


def test_compare_refuses_a_file_against_itself(tmp_path):
    r = runner.invoke(app, ["bench", "compare", str(FIX / "compare_a.json"), str(FIX / ".." / "fixtures" / "compare_a.json")])
    assert r.exit_code == 2 and "more than once" in r.output


def test_markdown_keeps_user_text_literal():
    from recoque.report.markdown import cell

    assert cell("[x](https://e.example) **b** a|b") == "\\[x\\](https://e.example) \\*\\*b\\*\\* a\\|b"


# --- bench runtime (review helper 3) -------------------------------------------------------------

def test_the_fingerprint_leaves_out_the_measured_cpu_clock():
    from recoque.bench import environment as E

    env = {"hostname": "h", "cpu_model": "x", "torch_version": "2.13.0"}
    assert "cpu_clock_hz" not in E.FINGERPRINT_KEYS
    assert E.fingerprint({**env, "cpu_clock_hz": 2.0e9}) == E.fingerprint({**env, "cpu_clock_hz": 3.1e9})


def _stored(tmp_path, name, keep):
    from recoque.bench.schema import save_results

    d = _json("compare_a.json")
    d["results"] = [r for r in d["results"] if keep(r)]
    doc = document_from_json(d)
    path = tmp_path / name
    save_results(str(path), doc)
    return path, doc


def test_a_run_of_another_benchmark_does_not_replace_the_file(tmp_path):
    from recoque.bench.schema import store_results
    from recoque.errors import WriteFailed

    path, old = _stored(tmp_path, "r.json", lambda r: r["benchmark"] == "attention")
    new = replace(old, results=tuple(r for r in document_from_json(_json("compare_a.json")).results
                                     if r.benchmark == "gemm"))
    assert len(new.results) >= len(old.results)
    with pytest.raises(WriteFailed, match="attention results this run does not measure"):
        store_results(str(path), new)
    assert load_results(str(path)).results == old.results
    store_results(str(path), new, force=True)  # --force still replaces


def test_a_device_node_or_fifo_is_never_replaced(tmp_path):
    import os

    from recoque.bench.schema import store_results
    from recoque.errors import WriteFailed

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    doc = document_from_json(_json("compare_a.json"))
    with pytest.raises(WriteFailed, match="not a regular file"):
        store_results(str(fifo), doc, force=True)
    r = runner.invoke(app, ["bench", "launch", "--quick", "--out", str(fifo)])
    assert r.exit_code == 2 and "not a regular file: nothing was run" in r.output


def test_fp16_on_the_cpu_is_said_not_measured_for_attention_and_moe():
    from recoque.bench.suite import CPU_DTYPES

    assert "fp16" not in CPU_DTYPES["attention"] and "fp16" not in CPU_DTYPES["moe"]


def test_the_environment_names_torchs_own_cpu_blas():
    from recoque.bench import environment as E

    got = E._torch_cpu_maths()
    assert got["torch_blas"] and got["torch_cpu_capability"]
