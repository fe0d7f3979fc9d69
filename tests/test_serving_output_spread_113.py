"""A running stream is length-biased: its mean context is P + (O/2)(1 + cv2 of the outputs), and a
dataset's output spread may differ from its prompts' (DeepSeek-R1's MLPerf outputs: 1.57)."""
import json

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner.serving_memory import output_spread
from recoque.planner.serving_request import ServingRequest


def test_output_spread_takes_the_outputs_own_then_the_lengths():
    base = dict(prompt_tokens=800, output_tokens=4000)
    assert output_spread(ServingRequest(**base, length_cv2=0.25, output_cv2=1.57)) == 1.57
    assert output_spread(ServingRequest(**base, length_cv2=0.25)) == 0.25
    assert output_spread(ServingRequest(**base)) > 0   # the stated chat-dataset default


@pytest.mark.parametrize("bad", [-0.1, 5.0, float("nan"), True])
def test_a_bad_output_cv2_is_one_line(bad):
    with pytest.raises(BadInput, match="output cv2 must be a number in"):
        ServingRequest(prompt_tokens=800, output_tokens=4000, output_cv2=bad)


def test_spread_outputs_hold_more_context_per_stream():
    def run(*extra):
        r = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h200", "-m", "llama3.1-70b", "--dtype", "fp8",
                                     "--tp", "8", "--mode", "offline", "--prompt-tokens", "1000", "--output-tokens", "4000",
                                     "--length-cv2", "0", "--json", *extra])
        assert r.exit_code == 0, r.output
        return json.loads(r.output)["inference"]["serving"]["memory"]["kv_tokens_per_stream"]
    assert run() == pytest.approx(1000 + 2000)
    assert run("--output-cv2", "1.5") == pytest.approx(1000 + 2000 * 2.5)
