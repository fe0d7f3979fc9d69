"""The summary's "% of public best" compares like with like: a public STREAM figure is a best over
repeats (BabelStream, stream.c), so our best rate is held against it; a GEMM figure stays the median."""
import pytest

from recoque.bench.schema import Record, ResultsDocument
from recoque.bench.summary import best_rows, json_rows


def _doc(*records):
    return ResultsDocument({"hostname": "h"}, {"kind": "cuda", "name": "MI300X", "catalog_key": "mi300x"}, records)


def test_stream_public_best_is_compared_with_our_best_rate():
    moved = 3 * 2**30 * 8
    times = (moved / 3.6e12, moved / 3.9e12, moved / 3.7e12, moved / 3.5e12, moved / 3.7e12)
    rec = Record("stream", "triad", "fp64", {"n_elements": 3 * 2**30}, times, "GB/s", bytes_moved=moved,
                 peak=5300.0, tags=("sweep",))
    row = next(r for r in best_rows(_doc(rec)) if r["benchmark"] == "stream")
    assert row["public_best"] == pytest.approx(4000.0)
    assert row["fraction_of_public_best"] == pytest.approx(3900.0 / 4000.0)  # the best, not the 3,700 median
    assert row["achieved"] == pytest.approx(3700.0)  # the table's figure stays the median
    js = next(r for r in json_rows(_doc(rec)) if r["benchmark"] == "stream")
    assert js["public_best_compared_with"] == "best"


def test_gemm_public_best_stays_the_median():
    f = 2 * 8192**3
    times = (f / 700e12, f / 800e12, f / 720e12)
    rec = Record("gemm", "matmul", "bf16", {"m": 8192, "n": 8192, "k": 8192}, times, "TFLOP/s", flop_count=f,
                 peak=1307.4, tags=("sweep",))
    row = next(r for r in best_rows(_doc(rec)) if r["benchmark"] == "gemm")
    assert row["public_best"]  # seeds/anchors.toml: the MAMF table's MI300X bf16
    assert row["fraction_of_public_best"] == pytest.approx(720.0 / row["public_best"])
    assert row["public_best_compared_with"] == "median"
