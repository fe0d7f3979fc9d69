"""Size labels of the summary tables (bench/summary.py): a small collective message read "0 MiB"."""
from recoque.bench.summary import size_label


def test_sizes_keep_a_unit_above_one():
    assert size_label(8) == "8 B"
    assert size_label(4096) == "4 KiB"
    assert size_label(256 * 2**20) == "256 MiB"
    assert size_label(1.5 * 2**30) == "1.5 GiB"
    assert size_label(3 * 2**20 + 1) == "3 MiB"
