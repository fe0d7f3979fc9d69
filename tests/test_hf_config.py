"""A checkpoint's Hugging Face config.json read as a model (recoque.hf_config): the same network as
the preset built from the same figures, and one clear line for what it cannot read."""
import json

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner.workload import load_model

# The config.json fields of released checkpoints (the values the presets' sources quote).
LLAMA31_8B = {"model_type": "llama", "_name_or_path": "meta-llama/Llama-3.1-8B", "hidden_size": 4096,
              "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128,
              "intermediate_size": 14336, "vocab_size": 128256, "max_position_embeddings": 131072,
              "tie_word_embeddings": False}
MIXTRAL = {"model_type": "mixtral", "hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
           "num_key_value_heads": 8, "intermediate_size": 14336, "num_local_experts": 8, "num_experts_per_tok": 2,
           "vocab_size": 32000, "max_position_embeddings": 32768, "sliding_window": None}
QWEN3_30B = {"model_type": "qwen3_moe", "hidden_size": 2048, "num_hidden_layers": 48, "num_attention_heads": 32,
             "num_key_value_heads": 4, "head_dim": 128, "intermediate_size": 6144, "moe_intermediate_size": 768,
             "num_experts": 128, "num_experts_per_tok": 8, "vocab_size": 151936, "max_position_embeddings": 40960,
             "tie_word_embeddings": False}
DEEPSEEK_V3 = {"model_type": "deepseek_v3", "hidden_size": 7168, "num_hidden_layers": 61, "num_attention_heads": 128,
               "num_key_value_heads": 128, "intermediate_size": 18432, "moe_intermediate_size": 2048,
               "n_routed_experts": 256, "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
               "n_group": 8, "topk_group": 4, "q_lora_rank": 1536, "kv_lora_rank": 512, "qk_nope_head_dim": 128,
               "qk_rope_head_dim": 64, "v_head_dim": 128, "vocab_size": 129280, "max_position_embeddings": 163840,
               "tie_word_embeddings": False,
               "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}}
GPT_OSS_120B = {"model_type": "gpt_oss", "hidden_size": 2880, "num_hidden_layers": 36, "num_attention_heads": 64,
                "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 2880, "num_local_experts": 128,
                "num_experts_per_tok": 4, "sliding_window": 128, "vocab_size": 201088,
                "max_position_embeddings": 131072, "tie_word_embeddings": False,
                "layer_types": ["sliding_attention", "full_attention"] * 18,
                "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": [
                    "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}}
MAVERICK = {"model_type": "llama4", "tie_word_embeddings": False, "text_config": {
    "model_type": "llama4_text", "hidden_size": 5120, "num_hidden_layers": 48, "num_attention_heads": 40,
    "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
    "num_local_experts": 128, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2, "attention_chunk_size": 8192,
    "vocab_size": 202048, "max_position_embeddings": 1048576}}

SAME = [(LLAMA31_8B, "llama3.1-8b"), (MIXTRAL, "mixtral-8x7b"), (QWEN3_30B, "qwen3-30b-a3b"),
        (DEEPSEEK_V3, "deepseek-v3"), (GPT_OSS_120B, "gpt-oss-120b"), (MAVERICK, "llama4-maverick")]
SHAPE = ("layers", "hidden", "heads", "kv_heads", "head_dim", "ffn_hidden", "experts", "active_experts",
         "shared_experts", "dense_layers", "dense_ffn_hidden", "vocab", "q_lora_rank", "kv_lora_rank",
         "rope_head_dim", "v_head_dim", "expert_groups", "group_topk", "sliding_window", "sliding_layers",
         "tied_embeddings", "linear_bias", "dropout", "released_weights", "released_attention_weights",
         "fp8_weight_block")


def _write(tmp_path, cfg, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(cfg))
    return str(path)


@pytest.mark.parametrize("cfg,preset", SAME, ids=[p for _, p in SAME])
def test_config_json_is_the_preset_network(tmp_path, cfg, preset):
    from_json, from_seed = load_model(_write(tmp_path, cfg)), load_model(preset)
    assert {k: getattr(from_json, k) for k in SHAPE} == {k: getattr(from_seed, k) for k in SHAPE}
    assert from_json.params_total() == pytest.approx(from_seed.params_total(), rel=1e-12)
    assert from_json.params_active() == pytest.approx(from_seed.params_active(), rel=1e-12)


def test_key_and_name_from_the_checkpoint(tmp_path):
    m = load_model(_write(tmp_path, LLAMA31_8B))
    assert m.name == "meta-llama/Llama-3.1-8B" and m.key == "llama-3.1-8b"
    assert "config.json" in m.sources["architecture"]
    assert load_model(str(tmp_path)).params_total() == m.params_total()  # the checkpoint folder names it too


def test_attention_dropout_in_the_config_is_a_model_trained_with_dropout(tmp_path):
    assert not load_model(_write(tmp_path, LLAMA31_8B)).dropout
    assert load_model(_write(tmp_path, {**LLAMA31_8B, "attention_dropout": 0.1}, "d.json")).dropout


def test_mistral_v01_window_on_every_layer(tmp_path):
    cfg = {**MIXTRAL, "model_type": "mistral", "sliding_window": 4096}
    cfg = {k: v for k, v in cfg.items() if k not in ("num_local_experts", "num_experts_per_tok")}
    m = load_model(_write(tmp_path, cfg))
    assert (m.sliding_window, m.sliding_layers) == (4096, 32)


@pytest.mark.parametrize("change,words", [
    ({"model_type": "gpt2"}, "model_type 'gpt2'"),
    ({"num_hidden_layers": None}, "`num_hidden_layers` is missing"),
    ({"hidden_size": -4096}, "`hidden_size` must be a positive integer"),
    ({"hidden_size": 4096.5}, "`hidden_size` must be a positive integer"),
    ({"num_attention_heads": True}, "`num_attention_heads` must be a positive integer"),
    ({"attention_dropout": 1.5}, "`attention_dropout` must be a number from 0 to 1"),
    ({"attention_dropout": "0.1"}, "`attention_dropout` must be a number from 0 to 1"),
])
def test_bad_config_one_line(tmp_path, change, words):
    cfg = {k: v for k, v in {**LLAMA31_8B, **change}.items() if v is not None}
    with pytest.raises(BadInput, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_model(_write(tmp_path, cfg))


def test_malformed_and_nan_json(tmp_path):
    (tmp_path / "cut.json").write_text('{"hidden_size": 4096,')
    with pytest.raises(BadInput, match="not valid JSON"):
        load_model(str(tmp_path / "cut.json"))
    (tmp_path / "nan.json").write_text(json.dumps(LLAMA31_8B).replace("4096", "NaN", 1))
    with pytest.raises(BadInput, match="not valid JSON"):
        load_model(str(tmp_path / "nan.json"))
    with pytest.raises(BadInput, match="one JSON object"):
        load_model(_write(tmp_path, [LLAMA31_8B], "list.json"))


def test_qwen2_moe_shared_expert_width(tmp_path):
    cfg = {**QWEN3_30B, "model_type": "qwen2_moe", "shared_expert_intermediate_size": 768 * 4}
    assert load_model(_write(tmp_path, cfg)).shared_experts == 4
    with pytest.raises(BadInput, match="not a whole number of experts"):
        load_model(_write(tmp_path, {**cfg, "shared_expert_intermediate_size": 1000}, "odd.json"))


def test_plan_infer_takes_a_config_json(tmp_path):
    path = _write(tmp_path, LLAMA31_8B)
    by_file = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h100", "--model", path, "--json"])
    by_name = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h100", "--model", "llama3.1-8b", "--json"])
    assert by_file.exit_code == 0 and by_name.exit_code == 0, by_file.output
    tok = [json.loads(o.output)["inference"]["tokens_per_s_per_gpu"]["value"] for o in (by_file, by_name)]
    assert tok[0] == pytest.approx(tok[1], rel=1e-9)
    bad = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h100", "--model", _write(tmp_path, {"model_type": "opt"}, "o.json")])
    assert bad.exit_code != 0 and "model_type 'opt'" in bad.output


def test_deepseek_v2_lite_direct_query_projection(tmp_path):
    """DeepSeek-V2-Lite projects its queries directly (q_lora_rank null) and routes without groups:
    15.7B parameters (its model card)."""
    cfg = {**DEEPSEEK_V3, "model_type": "deepseek_v2", "hidden_size": 2048, "num_hidden_layers": 27,
           "num_attention_heads": 16, "num_key_value_heads": 16, "intermediate_size": 10944,
           "moe_intermediate_size": 1408, "n_routed_experts": 64, "n_shared_experts": 2, "num_experts_per_tok": 6,
           "first_k_dense_replace": 1, "n_group": 1, "topk_group": 1, "q_lora_rank": None, "vocab_size": 102400}
    del cfg["quantization_config"]
    m = load_model(_write(tmp_path, cfg))
    assert m.q_lora_rank == 0 and m.shared_experts == 2 and m.released_weights == "bf16"
    assert m.params_total() / 1e9 == pytest.approx(15.7, rel=0.015)


def test_quantization_exclusions_keep_the_attention_in_bf16(tmp_path):
    # AMD Quark MXFP4 (amd/DeepSeek-R1-0528-MXFP4: exclude lists every self_attn projection)
    excluded = [f"model.layers.{i}.self_attn.{p}" for i in range(61)
                for p in ("q_a_proj", "q_b_proj", "kv_a_proj_with_mqa", "kv_b_proj", "o_proj")] + ["lm_head"]
    mx = {"quant_method": "quark", "global_quant_config": {"weight": {"dtype": "fp4", "qscheme": "per_group", "group_size": 32}},
          "exclude": excluded}
    m = load_model(_write(tmp_path, {**DEEPSEEK_V3, "quantization_config": mx}))
    assert (m.released_weights, m.released_attention_weights) == ("fp4", "bf16")
    # only the output projection left out: not every attention projection, so none is held apart
    only_out = {**mx, "exclude": [e for e in excluded if e.endswith("o_proj")]}
    m = load_model(_write(tmp_path, {**DEEPSEEK_V3, "quantization_config": only_out}))
    assert (m.released_weights, m.released_attention_weights) == ("fp4", "")
    # a two-stage record: the last stage is what is stored; an int4 result is not a served dtype here
    staged = {"quant_method": "quark", "global_quant_config": {"weight": [{"dtype": "fp8_e4m3"}, {"dtype": "fp4_e2m1"}]}}
    assert load_model(_write(tmp_path, {**DEEPSEEK_V3, "quantization_config": staged})).released_weights == "fp4"
    int4 = {"quant_method": "quark", "global_quant_config": {"weight": {"dtype": "int4"}}}
    assert load_model(_write(tmp_path, {**DEEPSEEK_V3, "quantization_config": int4})).released_weights == "bf16"
    # gpt-oss without its modules_to_not_convert: the attention counts as fp4
    bare = {**GPT_OSS_120B, "quantization_config": {"quant_method": "mxfp4"}}
    assert load_model(_write(tmp_path, bare)).released_attention_weights == ""


def _quantized(tmp_path, base, q=None, hf_quant=None):
    cfg = {k: v for k, v in base.items() if k != "quantization_config"}
    if q is not None:
        cfg["quantization_config"] = q
    if hf_quant is not None:
        (tmp_path / "hf_quant_config.json").write_text(json.dumps(hf_quant))
    m = load_model(_write(tmp_path, cfg))
    return m.released_weights, m.released_attention_weights


def test_modelopt_quantization_read_from_either_file(tmp_path):
    """NVIDIA ModelOpt exports state the algorithm and the modules left out in config.json (`ignore`)
    or in hf_quant_config.json beside it (`exclude_modules`); only exclusions reaching every layer's
    attention hold it apart."""
    every = [f"model.layers.{i}.self_attn*" for i in range(61)] + ["lm_head"]
    hf = {"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "NVFP4", "kv_cache_quant_algo": None,
                                                             "group_size": 16, "exclude_modules": every}}
    assert _quantized(tmp_path, DEEPSEEK_V3, hf_quant=hf) == ("fp4", "bf16")
    hf["quantization"]["exclude_modules"] = every[:3] + ["lm_head"]  # the first three layers only
    assert _quantized(tmp_path, DEEPSEEK_V3, hf_quant=hf) == ("fp4", "")
    in_config = {"quant_method": "modelopt", "quant_algo": "NVFP4", "ignore": ["lm_head", "model.layers.*.self_attn*"]}
    assert _quantized(tmp_path, DEEPSEEK_V3, q=in_config) == ("fp4", "bf16")
    assert _quantized(tmp_path, LLAMA31_8B, q={"quant_method": "modelopt", "quant_algo": "FP8", "ignore": ["lm_head"]}) == ("fp8", "")
    # integer and weight-only formats are not served as such: the model stays 16-bit
    for algo in ("W4A16_AWQ", "W4A8_AWQ", "W4A16_NVFP4", "INT8_SQ"):
        assert _quantized(tmp_path, LLAMA31_8B, q={"quant_method": "modelopt", "quant_algo": algo}) == ("bf16", ""), algo


def test_modelopt_mixed_precision_per_layer(tmp_path):
    layers = {f"model.layers.{i}.{m}": {"quant_algo": a} for i in range(32)
              for m, a in (("mlp.gate_proj", "NVFP4"), ("mlp.down_proj", "NVFP4"), ("self_attn.qkv_proj", "FP8"),
                           ("self_attn.o_proj", "FP8"))}
    q = {"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION", "quantized_layers": layers}
    assert _quantized(tmp_path, LLAMA31_8B, q=q) == ("fp4", "fp8")
    no_attention = {k: v for k, v in layers.items() if "self_attn" not in k}
    assert _quantized(tmp_path, LLAMA31_8B, q={**q, "quantized_layers": no_attention}) == ("fp4", "bf16")
    two_bodies = {**layers, "model.layers.0.mlp.up_proj": {"quant_algo": "FP8"}}  # not one body dtype: left 16-bit
    assert _quantized(tmp_path, LLAMA31_8B, q={**q, "quantized_layers": two_bodies}) == ("bf16", "")


def test_compressed_tensors_schemes(tmp_path):
    """llm-compressor checkpoints (RedHatAI FP8-dynamic, NVFP4): float schemes are served in their
    width, integer ones (W4A16 GPTQ, W8A8 int8) are not."""
    def ct(bits, kind, ignore=("lm_head",), extra=None):
        groups = {"group_0": {"targets": ["Linear"], "weights": {"num_bits": bits, "type": kind},
                              "input_activations": {"num_bits": bits, "type": kind, "dynamic": True}}}
        return {"quant_method": "compressed-tensors", "format": "float-quantized", "config_groups": {**groups, **(extra or {})},
                "ignore": list(ignore)}
    assert _quantized(tmp_path, LLAMA31_8B, q=ct(8, "float")) == ("fp8", "")
    assert _quantized(tmp_path, LLAMA31_8B, q=ct(4, "float", ignore=("lm_head", "re:.*self_attn.*"))) == ("fp4", "bf16")
    assert _quantized(tmp_path, LLAMA31_8B, q=ct(4, "int")) == ("bf16", "")
    assert _quantized(tmp_path, LLAMA31_8B, q=ct(8, "int")) == ("bf16", "")
    attn_fp8 = {"group_1": {"targets": ["re:.*self_attn.*"], "weights": {"num_bits": 8, "type": "float"}}}
    assert _quantized(tmp_path, LLAMA31_8B, q=ct(4, "float", extra=attn_fp8)) == ("fp4", "fp8")


def test_bad_hf_quant_config_one_line(tmp_path):
    (tmp_path / "hf_quant_config.json").write_text('{"quantization": {"quant_algo": NaN}}')
    with pytest.raises(BadInput, match="hf_quant_config.json"):
        load_model(_write(tmp_path, LLAMA31_8B))
    (tmp_path / "hf_quant_config.json").write_text('["not", "a", "table"]')  # not a ModelOpt record: ignored
    assert load_model(_write(tmp_path, LLAMA31_8B)).released_weights == "bf16"


def test_plan_infer_serves_a_modelopt_checkpoint_folder_as_released(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in DEEPSEEK_V3.items() if k != "quantization_config"}))
    (tmp_path / "hf_quant_config.json").write_text(json.dumps(
        {"quantization": {"quant_algo": "NVFP4", "exclude_modules": ["lm_head", "model.layers.*.self_attn*"]}}))
    out = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-b200", "--model", str(tmp_path), "--json"])
    assert out.exit_code == 0, out.output
    res = json.loads(out.output)
    assert res["serving_request"]["weights"] == "fp4"
    assert any(n.startswith("attention projections bf16 weights, as released") for n in res["assumptions"])


def test_released_kv_cache_read_from_the_quantization(tmp_path):
    """The KV dtype a quantization records: ModelOpt kv_cache_quant_algo, compressed-tensors
    kv_cache_scheme (a float scheme); none recorded, or an integer scheme, leaves it to the engine."""
    def kv(q=None, hf_quant=None):
        _quantized(tmp_path, LLAMA31_8B, q=q, hf_quant=hf_quant)
        return load_model(str(tmp_path / "config.json")).released_kv_cache

    modelopt = {"quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}
    assert kv(hf_quant=modelopt) == "fp8"
    modelopt["quantization"]["kv_cache_quant_algo"] = None
    assert kv(hf_quant=modelopt) == ""
    (tmp_path / "hf_quant_config.json").unlink()
    assert kv(q={"quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_quant_algo": "NVFP4"}) == "fp4"
    fp8 = {"type": "float", "num_bits": 8}
    ct = {"quant_method": "compressed-tensors", "config_groups": {"g": {"targets": ["Linear"], "weights": fp8}},
          "kv_cache_scheme": {**fp8, "strategy": "tensor"}}
    assert kv(q=ct) == "fp8"
    assert "quantization_config" in load_model(str(tmp_path / "config.json")).sources["released_kv_cache"]
    assert kv(q={**ct, "kv_cache_scheme": {"type": "int", "num_bits": 8}}) == ""


def test_released_kv_cache_must_be_a_narrow_dtype(tmp_path):
    toml = tmp_path / "m.toml"
    toml.write_text('[models.m]\nlayers = 2\nhidden = 64\nheads = 4\nffn_hidden = 128\nvocab = 100\n'
                    'seq_len_tokens = 128\nreleased_kv_cache = "int4"\n')
    with pytest.raises(BadInput, match="released_kv_cache"):
        load_model(str(toml))


def test_plan_infer_keeps_the_checkpoint_kv_dtype_where_the_engine_does(tmp_path):
    """TensorRT-LLM's default KV dtype ('auto') is the one the checkpoint records; vLLM's is the model
    dtype; --kv-cache always wins."""
    (tmp_path / "config.json").write_text(json.dumps(LLAMA31_8B))
    (tmp_path / "hf_quant_config.json").write_text(json.dumps(
        {"quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}}))

    def served(*extra):
        out = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h100", "--model", str(tmp_path), "--json", *extra])
        assert out.exit_code == 0, out.output
        res = json.loads(out.output)
        noted = any(n.startswith("KV cache fp8: trtllm keeps the KV quantization") for n in res["assumptions"])
        return res["serving_request"]["kv_cache"], noted

    assert served("--engine", "trtllm") == ("fp8", True)
    assert served("--engine", "vllm") == ("bf16", False)
    assert served("--engine", "trtllm", "--kv-cache", "bf16") == ("bf16", False)
    assert served("--engine", "trtllm", "--dtype", "bf16") == ("bf16", False)


def test_bare_plan_takes_what_plan_infer_takes(tmp_path):
    """`plan -w` refused a config.json and a checkpoint folder that `plan infer -w` read ("unknown
    workload"); now both read them as the same model."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    path = _write(ckpt, LLAMA31_8B)
    for w in (path, str(ckpt)):
        res = CliRunner().invoke(app, ["plan", "-s", "node-8x-h100", "-w", w, "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["kind"] == "model"
