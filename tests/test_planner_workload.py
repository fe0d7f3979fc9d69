"""Workload presets: parameter counts against published sizes, loading, bad input."""
import pytest

from recoque.errors import BadInput
from recoque.fileio import read_seed_toml
from recoque.planner.workload import list_models, load_model, load_training_workload

REQUIRED = ("bloom-176b", "gpt3-175b", "megatron-22b", "megatron-530b", "megatron-1t", "mistral-7b",
            "mistral-large-2", "mixtral-8x22b", "llama3-405b", "qwen3-235b-a22b", "qwen3-30b-a3b", "deepseek-v3",
            "deepseek-r1", "llama2-7b", "llama2-13b", "qwen2.5-7b", "qwen2.5-72b", "qwen3-8b", "qwen3-32b", "gpt-oss-20b",
            "llama4-scout", "llama4-maverick")


def test_required_presets_present():
    assert set(REQUIRED) <= set(list_models())


# Added 2026-12-07; their published sizes are rounded to two or three figures ("1T", "355B"), so
# the derived counts are held to 3% (seeds/models.toml, the head of that block).
ROUNDED_SIZE = ("kimi-k2", "glm-4.5", "glm-4.5-air", "qwen3-coder-480b-a35b", "minimax-m2", "gemma-3-27b")


@pytest.mark.parametrize("name", REQUIRED + ROUNDED_SIZE)
def test_params_match_published(name):
    raw = read_seed_toml("models.toml")["models"][name]
    m = load_model(name)
    rounded = name in ROUNDED_SIZE
    assert m.params_total() / 1e9 == pytest.approx(raw["published_params_b"], rel=0.03 if rounded else 0.015)
    assert raw["sources"]["architecture"]
    assert not rounded or raw["sources"]["context_window"]
    if "published_active_params_b" in raw:
        assert m.params_active() / 1e9 == pytest.approx(raw["published_active_params_b"], rel=0.03 if rounded else 0.02)


def test_new_presets_carry_their_shapes():
    kimi, glm, gemma = load_model("kimi-k2"), load_model("glm-4.5"), load_model("gemma-3-27b")
    assert kimi.mla and kimi.experts == 384 and kimi.dense_layers == 1 and kimi.released_weights == "fp8"
    assert glm.experts == 160 and glm.shared_experts == 1 and glm.dense_layers == 3 and glm.heads * glm.head_dim == 12288
    assert gemma.tied_embeddings and gemma.sliding_window == 1024 and gemma.sliding_layers == 52
    assert load_model("minimax-m2").moe and not load_model("minimax-m2").mla


def test_bloom_exact_and_gqa_head_dim():
    assert load_model("bloom-176b").params_total() == pytest.approx(176_247e6, rel=1e-4)
    m = load_model("llama3-405b")
    assert m.head_dim == 128 and m.kv_heads == 8 and m.gated_ffn


def test_moe_active_below_total():
    m = load_model("mixtral-8x22b")
    assert m.params_active() < 0.3 * m.params_total()


def test_training_workload():
    w = load_training_workload("gpt3-175b")
    assert w.global_batch_seqs == 1536 and w.seq_len == 2048 and w.tokens_to_train == 300e9
    assert w.iterations == pytest.approx(300e9 / (1536 * 2048))


def test_llama2_70b_trains_on_its_published_run():
    # Touvron et al. 2023 Table 1: 2.0T tokens at 4k context, a 4M-token global batch
    wl = load_training_workload("llama2-70b")
    assert wl.tokens_to_train == pytest.approx(2.0e12)
    assert wl.global_batch_seqs * wl.model.seq_len == pytest.approx(4 * 1024 * 1024)


def test_unknown_preset_lists_known():
    with pytest.raises(BadInput) as e:
        load_model("gpt5")
    assert "bloom-176b" in e.value.fix


@pytest.mark.parametrize("typed,key", [("Llama-3.1-70B", "llama3.1-70b"), ("LLAMA3.1-8B", "llama3.1-8b"),
                                       ("llama3.1-405b", "llama3-405b"), ("DeepSeek-R1-0528", "deepseek-r1"),
                                       ("Mistral-Large-Instruct-2407", "mistral-large-2"), ("gpt_oss_120b", "gpt-oss-120b"),
                                       ("DeepSeek-V3.1", "deepseek-v3"), ("DeepSeek-V3-0324", "deepseek-v3"),
                                       ("Kimi-K2-Instruct", "kimi-k2"), ("GLM-4.6", "glm-4.5"), ("gemma-3-27b-it", "gemma-3-27b")])
def test_a_model_is_found_by_any_spelling_or_published_alias(typed, key):
    assert load_model(typed).key == key


def test_every_alias_names_one_preset_only():
    from recoque.names import spelling

    models = read_seed_toml("models.toml")["models"]
    owners: dict[str, str] = {}
    for key, raw in models.items():
        for name in (key, *raw.get("aliases", [])):
            assert owners.setdefault(spelling(name), key) == key, f"{name} names {owners[spelling(name)]} and {key}"


def test_a_near_miss_suggests_the_presets_it_resembles():
    with pytest.raises(BadInput, match="unknown model 'qwen3-235b'") as e:
        load_model("qwen3-235b")
    assert "did you mean qwen3-235b-a22b" in e.value.fix
    with pytest.raises(BadInput) as e:
        load_model("zzzz")
    assert "did you mean" not in e.value.fix and "known models: bloom-176b" in e.value.fix


def test_user_file(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('[models.tiny]\nlayers = 2\nhidden = 64\nheads = 4\nffn_hidden = 256\nvocab = 100\n'
                 'seq_len_tokens = 32\n[models.tiny.training]\ntokens_to_train = 1e6\nglobal_batch_seqs = 8\n')
    w = load_training_workload(str(p))
    assert w.model.layers == 2 and w.global_batch_seqs == 8


def test_bad_user_file(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text('[models.x]\nlayers = -2\nhidden = 64\nheads = 4\nffn_hidden = 256\nvocab = 100\nseq_len_tokens = 32\n')
    with pytest.raises(BadInput):
        load_model(str(p))
    p.write_text('[models.x]\nlayers = 2\nhidden = 64\nheads = 5\nkv_heads = 2\nffn_hidden = 256\nvocab = 100\nseq_len_tokens = 32\n')
    with pytest.raises(BadInput):
        load_model(str(p))


def test_released_weights_default_to_16_bits_and_name_the_published_checkpoints():
    assert load_model("llama2-70b").released_weights == "bf16"
    assert load_model("deepseek-r1").released_weights == load_model("deepseek-v3").released_weights == "fp8"
    assert load_model("gpt-oss-120b").released_weights == "fp4"


@pytest.mark.parametrize("bad", ['"int4"', "8", '"FP8 "'])
def test_released_weights_outside_the_served_dtypes_is_one_clear_error(tmp_path, bad):
    p = tmp_path / "bad.toml"
    p.write_text('[models.x]\nlayers = 2\nhidden = 64\nheads = 4\nffn_hidden = 256\nvocab = 100\n'
                 f'seq_len_tokens = 32\nreleased_weights = {bad}\n')
    with pytest.raises(BadInput) as e:
        load_model(str(p))
    assert "released_weights" in e.value.one_line()
    assert bad == "8" or "bf16, fp8, fp4" in e.value.one_line()  # a number is refused as not text first


def test_llama4_layers_and_chunked_kv():
    """Maverick alternates dense and MoE layers (half of them MoE); both Llama 4 models hold the KV of
    36 of their 48 layers to the 8,192-token attention chunk."""
    scout, maverick = load_model("llama4-scout"), load_model("llama4-maverick")
    assert maverick.moe_layer_fraction == pytest.approx(0.5) and scout.moe_layer_fraction == pytest.approx(1.0)
    assert scout.kv_layer_fraction(8192) == pytest.approx(1.0)
    # at 131,072 tokens: 12 global layers hold all of them, 36 chunked layers 8,192 each
    assert scout.kv_layer_fraction(131072) == pytest.approx((12 + 36 * 8192 / 131072) / 48)
    assert load_model("Llama-4-Maverick-17B-128E-Instruct").key == "llama4-maverick"
