"""The serving workloads the documents name (seeds/workloads.toml: le-chat, llmaas, inference-fleet)
on the Alice Recoque preset: latency targets from the workload, an MI430X fp8 rate only as an
assumed bracket, stated."""
import math

import pytest

from recoque.errors import BadInput
from recoque.planner import inference as inf
from recoque.planner.system import load_system
from recoque.planner.workloads import get_workload, workload_from_toml


def _estimate(key):
    w = get_workload(key)
    s = inf.Serving.from_workload(w)
    return s, inf.estimate_inference(inf.load_model_spec(w.model), w.model, load_system("alice-recoque"), s)


@pytest.mark.parametrize("key", ["le-chat", "llmaas", "inference-fleet"])
def test_named_serving_workloads_have_a_bounded_first_token(key):
    s, e = _estimate(key)
    assert s.request().ttft_target_s == pytest.approx(2.0) and s.request().tpot_target_s == s.target_tpot_s
    # with a TPOT target alone the inference fleet ran at its batch cap with a queue that never drains
    assert math.isfinite(e.ttft.value) and e.ttft.value <= 2.0 * (1 + 1e-6)
    assert e.tpot.value <= s.target_tpot_s * (1 + 1e-6)


def test_fp8_serving_on_mi430x_uses_the_assumed_bracket_and_says_so():
    _, e = _estimate("llmaas")  # fp8 weights; the MI430X fp8 rate is not published
    notes = " ".join(e.assumptions)
    assert "mi430x fp8 GEMM = an ASSUMED peak" in notes
    assert e.tokens_per_s_per_gpu.low < e.tokens_per_s_per_gpu.value < e.tokens_per_s_per_gpu.high


@pytest.mark.parametrize("bad", [0, -5])
def test_a_workload_ttft_target_must_be_positive(bad):
    raw = {"kind": "infer", "model": "mistral-7b", "target_ttft_ms": bad}
    with pytest.raises(BadInput):
        inf.Serving.from_workload(workload_from_toml("x", raw))


def test_a_workload_in_fp8_on_a_device_without_fp8_is_served_in_bf16_and_says_so():
    import json

    from typer.testing import CliRunner

    from recoque.cli import app

    out = CliRunner().invoke(app, ["plan", "-s", "frontier", "-w", "llmaas", "--json"])
    assert out.exit_code == 0, out.output
    data = json.dumps(json.loads(out.output))
    assert "mi250x_gcd has no fp8 rate: served with weights bf16, activations bf16, KV cache bf16" in data
    assert '"weights": "bf16"' in data


def test_serving_a_dtype_the_device_lacks_names_the_ones_it_has():
    from recoque.planner.serving import ServingRequest, estimate_serving

    req = ServingRequest(weights="fp8", activations="fp8", kv_cache="fp8")
    with pytest.raises(BadInput) as exc:
        estimate_serving(inf.load_model_spec("mistral-7b"), "mistral-7b", load_system("frontier"), req)
    assert "mi250x has no fp8 rate" in str(exc.value) and "or fp8" not in exc.value.one_line()


def _served_precision(*args):
    import json

    from typer.testing import CliRunner

    from recoque.cli import app

    out = CliRunner().invoke(app, ["plan", "infer", "--model", "gpt-oss-120b", *args, "--json"])
    assert out.exit_code == 0, out.output
    r = json.loads(out.output)["serving_request"]
    return r["weights"], r["activations"]


@pytest.mark.parametrize("args, expected", [
    (["-s", "node-8x-h100", "--weights", "fp4"], ("fp4", "bf16")),    # W4A16: no fp4 math on Hopper
    (["-s", "node-8x-mi300x", "--dtype", "fp4"], ("fp4", "bf16")),    # nor on CDNA3
    (["-s", "node-8x-b200", "--weights", "fp4"], ("fp4", "fp4")),     # Blackwell computes in fp4
    (["-s", "node-8x-mi355x", "--dtype", "fp4"], ("fp4", "fp4")),     # and CDNA4
    (["-s", "node-8x-h100", "--weights", "fp8"], ("fp8", "fp8")),
])
def test_narrow_weights_alone_imply_the_activations_the_device_computes_in(args, expected):
    assert _served_precision(*args) == expected


def test_asking_for_activations_the_device_lacks_points_at_weight_only_quantisation():
    from typer.testing import CliRunner

    from recoque.cli import app

    out = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h100", "--model", "gpt-oss-120b",
                                   "--weights", "fp4", "--activations", "fp4"])
    assert out.exit_code == 2
    assert "h100_sxm has no fp4 rate" in out.output and "--activations fp8 or bf16" in out.output


def _plan_json(*args):
    import json

    from typer.testing import CliRunner

    from recoque.cli import app

    out = CliRunner().invoke(app, ["plan", *args, "--json"])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_a_model_named_alone_is_served_in_its_released_precision_and_says_so():
    d = _plan_json("infer", "-s", "node-8x-h200", "-m", "deepseek-r1")
    assert (d["serving_request"]["weights"], d["serving_request"]["activations"]) == ("fp8", "fp8")
    assert any("deepseek-r1 as released" in a for a in d["assumptions"])
    # the same model on the bare `plan` path, and an explicit dtype wins
    assert _plan_json("--system", "node-8x-h200", "--workload", "deepseek-r1")["serving_request"]["weights"] == "fp8"
    d = _plan_json("infer", "-s", "node-8x-h200", "--model", "deepseek-r1", "--weights", "fp8", "--kv-cache", "fp8")
    assert not any("as released" in a for a in d["assumptions"])


def test_a_model_is_named_as_its_release_is_on_both_paths():
    d = _plan_json("--system", "node-8x-h200", "--workload", "DeepSeek-R1-0528")
    assert d["kind"] == "model" and d["serving_request"]["weights"] == "fp8"
    # a serving-only preset (no training run): the estimate leads, the training row follows
    assert list(d["sections"])[:2] == ["inference (default serving)", "training"]
    assert _plan_json("infer", "-s", "node-8x-h200", "-m", "Llama-3.1-70B")["inference"] == \
        _plan_json("infer", "-s", "node-8x-h200", "-m", "llama3.1-70b")["inference"]


def test_a_release_the_device_cannot_compute_in_is_not_claimed_as_served():
    d = _plan_json("--system", "frontier", "--workload", "gpt-oss-120b")   # MI250X: no fp4 or fp8 math
    assert d["serving_request"]["weights"] == "bf16"
    assert not any("as released" in a for a in d["assumptions"])
