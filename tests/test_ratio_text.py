"""B/A prints on the side of the effect threshold it is on (bench.compare.ratio_text)."""
import pytest

from recoque.bench.compare import is_effect, ratio_text


# the change is symmetric (stop 115): a slowdown is an effect of 1% at or below 1/1.01 = 0.990099
@pytest.mark.parametrize("ratio,text", [(1.0096, "1.0096"), (1.0104, "1.010"), (1.25, "1.250"), (0.9904, "0.9904"),
                                        (0.98999, "0.990"), (0.99002, "0.990"), (0.9901, "0.9901"), (1.0, "1.000")])
def test_the_printed_ratio_stays_on_its_side_of_the_threshold(ratio, text):
    assert ratio_text(ratio, 0.01) == text
    assert is_effect(float(text), 0.01) == is_effect(ratio, 0.01)


def test_a_threshold_of_its_own_is_honoured():
    assert ratio_text(1.0496, 0.05) == "1.0496" and ratio_text(1.0496, 0.01) == "1.050"
