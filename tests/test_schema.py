import json
from pathlib import Path

import pytest

from recoque.bench.schema import SCHEMA_VERSION, Record, ResultsDocument, Skip, document_from_json, load_results, save_results
from recoque.errors import BadInput

FIX = Path(__file__).parent / "fixtures"


def _record(**kw):
    base = dict(benchmark="gemm", op="matmul", dtype="bf16", params={"m": 10**4, "n": 10**4, "k": 10**4},
                times_s=(2e-3, 1e-3, 3e-3), unit="TFLOP/s", flop_count=2 * 10**12, peak=1000.0)
    base.update(kw)
    return Record(**base)


def test_derived_figures_come_from_samples_and_work():
    r = _record()
    assert r.median_s == 2e-3
    assert r.achieved == pytest.approx(2e12 / 2e-3 / 1e12)  # 1000 TFLOP/s at the median
    assert r.best == pytest.approx(2000.0)
    assert r.fraction_of_peak == pytest.approx(1.0)
    assert _record(peak=None).fraction_of_peak is None


def test_round_trip_keeps_raw_samples(tmp_path):
    doc = ResultsDocument(environment={"host": "x"}, device={"kind": "cpu"}, results=(_record(),),
                          skipped=(Skip("gemm", "scaled_mm", "fp8", {"m": 1}, "unsupported: no fp8"),),
                          complete=False, command="recoque bench")
    path = tmp_path / "r.json"
    save_results(str(path), doc)
    raw = json.loads(path.read_text())
    assert raw["schema_version"] == SCHEMA_VERSION and raw["complete"] is False
    back = load_results(str(path))
    assert back.results[0] == doc.results[0]
    assert back.skipped == doc.skipped
    assert raw["results"][0]["achieved"] == pytest.approx(1000.0)


def test_version_1_fixture_migrates_milliseconds_to_seconds():
    doc = load_results(str(FIX / "results_v1.json"))
    gemm = doc.select("gemm")[0]
    assert gemm.times_s == (0.020, 0.021, 0.022)
    assert gemm.achieved == pytest.approx(2147483648 / 0.021 / 1e12)
    assert doc.select("stream", op="triad")[0].unit == "GB/s"


@pytest.mark.parametrize("payload, words", [
    ({"results": []}, "no schema_version"),
    ({"schema_version": 99, "results": []}, "newer"),
    ({"schema_version": 0, "results": []}, "too old"),
    ({"schema_version": "2", "results": []}, "integer"),
    ({"schema_version": 2, "results": {}}, "must be a list"),
    ({"schema_version": 2, "results": [{"benchmark": "gemm"}]}, "missing"),
    ([1, 2], "no schema_version"),
])
def test_bad_documents_get_one_clear_error(payload, words):
    with pytest.raises(BadInput) as err:
        document_from_json(payload)
    assert words in err.value.one_line()


def test_malformed_json_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(BadInput, match="not valid JSON"):
        load_results(str(p))


def test_record_refuses_missing_work_or_samples():
    with pytest.raises(BadInput):
        _record(flop_count=None)
    with pytest.raises(BadInput):
        _record(times_s=())
    with pytest.raises(BadInput):
        _record(unit="furlongs")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    save_results(str(tmp_path / "r.json"), ResultsDocument({}, {}, (_record(),)))
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
