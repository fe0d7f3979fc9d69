"""FP4 weights and KV carry their block scales (MXFP4 1/32 byte a value, NVFP4 1/16), and a serving
step's workspace holds logits only for the position each sequence samples."""
import json

import pytest

from recoque.catalog import get_device_spec
from recoque.errors import BadInput
from recoque.planner import serving_memory as sm
from recoque.planner.serving import with_fp4_format
from recoque.planner.serving_request import ServingRequest, precision
from recoque.planner.serving_step import Layout
from recoque.planner.workload import load_model

from test_hf_config import GPT_OSS_120B, LLAMA31_8B, _write


def req(**kw):
    return ServingRequest(prompt_tokens=1000, output_tokens=1000, **kw)


def test_stored_bytes_add_the_block_scale_of_the_format():
    assert req(weights="fp4", activations="fp4", fp4_format="mxfp4").stored_bytes("fp4") == 0.5 + 1 / 32
    assert req(weights="fp4", activations="fp4", fp4_format="nvfp4").stored_bytes("fp4") == 0.5 + 1 / 16
    assert req(weights="fp4", activations="fp4").stored_bytes("fp4") == 0.5  # not resolved yet
    assert req(weights="fp8", activations="fp8", fp4_format="nvfp4").stored_bytes("fp8") == 1.0
    p = precision(req(weights="fp4", activations="fp4", kv_cache="fp4", fp4_format="nvfp4"))
    assert (p.weight_bytes, p.kv_bytes) == (0.5625, 0.5625)


def test_an_unknown_fp4_format_is_one_line():
    with pytest.raises(BadInput, match="unknown fp4 format 'fp4e2'"):
        req(weights="fp4", activations="fp4", fp4_format="fp4e2")


def test_the_format_follows_the_checkpoint_then_the_vendor():
    nv, amd = get_device_spec("b200"), get_device_spec("mi355x")
    oss, llama = load_model("gpt-oss-120b"), load_model("llama3.1-70b")
    fp4 = req(weights="fp4", activations="fp8")
    assert with_fp4_format(oss, nv, fp4).fp4_format == "mxfp4"      # released MXFP4, served as released
    assert with_fp4_format(llama, nv, fp4).fp4_format == "nvfp4"
    assert with_fp4_format(llama, amd, fp4).fp4_format == "mxfp4"
    assert with_fp4_format(llama, nv, req(weights="fp4", activations="fp8", fp4_format="mxfp4")).fp4_format == "mxfp4"
    assert with_fp4_format(llama, nv, req(weights="fp8", activations="fp8")).fp4_format is None


def test_gpt_oss_weights_grow_by_a_32nd_byte_a_value():
    oss = load_model("gpt-oss-120b")
    bare = req(weights="fp4", activations="fp8")
    mx = with_fp4_format(oss, get_device_spec("b200"), bare)
    lay = Layout()
    grown = sm.weights_bytes_per_gpu(oss, mx, lay) - sm.weights_bytes_per_gpu(oss, bare, lay)
    # every value held in fp4 (experts, embedding and head here; the BF16 attention is held apart
    # only as released, not in this bare request) gains 1/32 byte
    fp4_values = sm.weights_bytes_per_gpu(oss, bare, lay) / 0.5
    assert grown == pytest.approx(fp4_values / 32)
    # the released checkpoint is ~61 GiB (openai/gpt-oss-120b safetensors): 4.25 bits a value
    assert 60e9 < sm.weights_bytes_per_gpu(oss, mx, lay) < 68e9


def test_workspace_logits_for_each_sequence_not_each_token():
    oss, lay = load_model("gpt-oss-120b"), Layout(tp=2)
    activations = 16384 * (4 * oss.hidden + 2 * oss.dense_ffn_width / 2) * 2.0
    ws = sm.workspace_bytes(oss, lay, 16384, 256)
    assert ws == pytest.approx(activations + 256 * oss.vocab * 4.0 / 2)
    # a step carrying fewer tokens than the batch cap samples at most one position per token
    assert sm.workspace_bytes(oss, lay, 64, 256) == pytest.approx(64 * (4 * oss.hidden + oss.dense_ffn_width) * 2.0
                                                                  + 64 * oss.vocab * 4.0 / 2)


@pytest.mark.parametrize("q,hf_quant,fmt", [
    ({"quant_method": "mxfp4"}, None, "mxfp4"),
    ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, None, "nvfp4"),
    ({"quant_method": "modelopt", "quant_algo": "W4A8_MXFP4_FP8"}, None, "mxfp4"),
    ({"quant_method": "modelopt", "quant_algo": "FP8"}, None, ""),
    ({"quant_method": "quark", "global_quant_config": {"weight": {"dtype": "fp4", "group_size": 32}}}, None, "mxfp4"),
    (None, {"quantization": {"quant_algo": "NVFP4", "group_size": 16}}, "nvfp4"),
])
def test_the_checkpoint_records_its_fp4_format(tmp_path, q, hf_quant, fmt):
    base = GPT_OSS_120B if q == {"quant_method": "mxfp4"} else LLAMA31_8B
    cfg = {k: v for k, v in base.items() if k != "quantization_config"}
    if q is not None:
        cfg["quantization_config"] = q
    if hf_quant is not None:
        (tmp_path / "hf_quant_config.json").write_text(json.dumps(hf_quant))
    assert load_model(_write(tmp_path, cfg)).released_fp4_format == fmt


@pytest.mark.parametrize("group,fmt", [(16, "nvfp4"), (32, "mxfp4")])
def test_compressed_tensors_fp4_format_from_its_group(tmp_path, group, fmt):
    g = {"targets": ["Linear"], "weights": {"num_bits": 4, "type": "float", "group_size": group}}
    cfg = {**LLAMA31_8B, "quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"group_0": g},
                                                 "ignore": ["lm_head"]}}
    m = load_model(_write(tmp_path, cfg))
    assert (m.released_weights, m.released_fp4_format) == ("fp4", fmt)


def test_plan_infer_takes_the_fp4_format():
    from typer.testing import CliRunner

    from recoque.cli import app

    def weights_gb(*extra):
        r = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-b200", "-m", "llama3.1-70b", "--dtype", "fp4",
                                     "--tp", "1", "--json", *extra])
        assert r.exit_code == 0, r.output
        return json.loads(r.output)["inference"]["weight_bytes"]
    nv, mx = weights_gb(), weights_gb("--fp4-format", "mxfp4")
    assert nv / mx == pytest.approx(0.5625 / 0.53125, rel=0.01)
    bad = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-b200", "-m", "llama3.1-70b", "--dtype", "fp4",
                                   "--fp4-format", "fp6"])
    assert bad.exit_code != 0 and "unknown fp4 format 'fp6'" in bad.output
