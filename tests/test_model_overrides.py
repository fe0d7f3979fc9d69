"""A model override of the width or the head count carries a derived head size with it."""
from recoque.planner.workload import load_model


def test_a_derived_head_size_follows_new_heads_and_hidden():
    bloom = load_model("bloom-176b")  # 14,336 / 112 = 128, derived
    assert bloom.head_dim == 128
    m = bloom.with_overrides(hidden=12288, heads=64, kv_heads=64)
    assert m.head_dim == 192 and m.heads * m.head_dim == m.hidden
    assert load_model("megatron-22b").with_overrides(heads=48, kv_heads=48).head_dim == 128


def test_an_explicit_head_size_that_is_not_hidden_over_heads_stays():
    qwen = load_model("qwen3-30b-a3b")  # head_dim 128 with hidden 2,048 and 32 heads: stated, not derived
    assert qwen.head_dim != qwen.hidden // qwen.heads
    assert qwen.with_overrides(heads=16, kv_heads=4).head_dim == qwen.head_dim
    assert load_model("bloom-176b").with_overrides(heads=64, kv_heads=64, head_dim=96).head_dim == 96
