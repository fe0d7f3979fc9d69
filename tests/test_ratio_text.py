"""B/A prints on the side of the effect threshold it is on (bench.compare.ratio_text)."""
import pytest

from recoque.bench.compare import ratio_text


@pytest.mark.parametrize("ratio,text", [(1.0096, "1.0096"), (1.0104, "1.010"), (1.25, "1.250"), (0.9904, "0.9904"),
                                        (0.98999, "0.990"), (0.99002, "0.99002"), (1.0, "1.000")])
def test_the_printed_ratio_stays_on_its_side_of_the_threshold(ratio, text):
    assert ratio_text(ratio, 0.01) == text
    assert (abs(float(text) - 1) >= 0.01) == (abs(ratio - 1) >= 0.01)


def test_a_threshold_of_its_own_is_honoured():
    assert ratio_text(1.0496, 0.05) == "1.0496" and ratio_text(1.0496, 0.01) == "1.050"
