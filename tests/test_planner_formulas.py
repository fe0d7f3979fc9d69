"""FLOP, memory and communication formulas against the papers."""
from dataclasses import replace

import numpy as np
import pytest

from recoque.planner import comm, flops, memory
from recoque.planner.workload import load_model


def gpt(name="gpt3-175b", **kw):
    return load_model(name).with_overrides(vocab=51200, **kw)


def test_model_flops_match_megatron_formula():
    m = gpt()
    B, s, l, h, V = 64, 2048, 96, 12288, 51200
    ours = flops.model_flops_per_iteration(m, B)
    # Narayanan 2021 eq. 3 without recompute: 72 B s l h^2 (1 + s/6h + V/(12 l h))
    assert ours == pytest.approx(flops.megatron_flops_per_iteration(B, s, l, h, V, False), rel=1e-9)
    full = flops.hardware_flops_per_iteration(m, B, "full")
    assert full == pytest.approx(flops.megatron_flops_per_iteration(B, s, l, h, V, True), rel=1e-9)


def test_megatron_96_formula_value():
    # 96 B s l h^2 (1 + s/6h + V/(16 l h)) for BLOOM at 150 TFLOP/s on 384 GPUs: ~104.5 s/iteration
    f = flops.megatron_flops_per_iteration(2048, 2048, 70, 14336, 250880, True)
    assert f / (384 * 150e12) == pytest.approx(104.5, rel=0.005)


def test_hfu_above_mfu_only_with_recompute():
    m = gpt()
    base = flops.model_flops_per_iteration(m, 8)
    assert flops.hardware_flops_per_iteration(m, 8, "none") == base
    assert base < flops.hardware_flops_per_iteration(m, 8, "selective") < flops.hardware_flops_per_iteration(m, 8, "full")


def test_op_level_selective_recompute_counts_its_linear_share_not_the_attention_core():
    # torchtitan's per-op checkpointing recomputes every second matmul's forward and keeps the
    # attention output. GPT-3's linear weights are 12 h^2 a layer (Q, K, V, O of h^2 each; up and down of
    # 4 h^2, no GLU), 24 s h^2 forward FLOPs a sequence; every second matmul (K, O, down: 6 h^2) is half
    m = gpt()
    share = memory.op_sac_recomputed_flop_share(m)
    assert share == pytest.approx(0.5, rel=1e-9)
    B, s, l, h = 8, 2048, 96, 12288
    extra = flops.recompute_flops_per_iteration(m, B, "selective", op_sac_share=share)
    assert extra == pytest.approx(B * l * share * 24.0 * s * h * h, rel=1e-9)
    hw = flops.hardware_flops_per_iteration(m, B, "selective", op_sac_share=share)
    assert hw - flops.model_flops_per_iteration(m, B) == pytest.approx(extra, rel=1e-9)
    assert extra != pytest.approx(flops.recompute_flops_per_iteration(m, B, "selective"), rel=1e-3)


def test_six_n_d_close_to_model_flops_for_short_sequences():
    m = gpt(seq_len_tokens=256)
    tokens = 256 * 100
    assert flops.model_flops_per_iteration(m, 100) == pytest.approx(flops.six_n_d(m, tokens), rel=0.03)


def test_korthikanti_5as_over_h():
    # Korthikanti 2022 sec. 4.1: for GPT-3 175B the 5as/h term is 80, for MT-NLG 530B 64.
    assert 5 * 96 * 2048 / 12288 == 80
    s, b, h, a = 2048, 1, 12288, 96
    assert memory.korthikanti_activation_bytes(s, b, h, a) == s * b * h * (34 + 80)


@pytest.mark.parametrize("name", ["gpt3-175b", "megatron-530b", "megatron-22b"])
@pytest.mark.parametrize("t", [1, 2, 8])
@pytest.mark.parametrize("rc,mode", [(0, "none"), (1, "selective"), (2, "full")])
@pytest.mark.parametrize("sp", [False, True])
def test_generalised_activations_reduce_to_paper(name, t, rc, mode, sp):
    m = gpt(name) if name == "gpt3-175b" else load_model(name)
    b = 2
    ours = memory.activation_bytes_per_layer(m, b, t, sp, rc, False)
    paper = memory.korthikanti_activation_bytes(m.seq_len, b, m.hidden, m.heads, t, mode, sp and t > 1 or sp)
    assert float(ours) == pytest.approx(paper, rel=1e-9)


def test_flash_drops_score_term():
    m = gpt()
    no = memory.activation_bytes_per_layer(m, 1, 8, True, 0, False)
    fl = memory.activation_bytes_per_layer(m, 1, 8, True, 0, True)
    assert float(no - fl) == pytest.approx(5 * 96 * 2048 * 2048 / 8)


@pytest.mark.parametrize("flash", [False, True])
@pytest.mark.parametrize("sp", [False, True])
def test_a_model_trained_without_dropout_keeps_no_masks(sp, flash):
    # two sbh masks (1 byte each, outside the TP region: split by t only with SP) and, unfused, the
    # probabilities' mask and dropped copy (3 a s^2 b of the 5); full recompute keeps only the input
    m = gpt()
    nod = replace(m, dropout=False)
    t, b, s, h = 8, 2, m.seq_len, m.hidden
    gap = memory.activation_bytes_per_layer(m, b, t, sp, 0, flash) - memory.activation_bytes_per_layer(nod, b, t, sp, 0, flash)
    masks = 2.0 * s * b * h / (t if sp else 1) + (0.0 if flash else 3.0 * m.heads * s * s * b / t)
    assert float(gap) == pytest.approx(masks, rel=1e-12)
    assert float(memory.activation_bytes_per_layer(nod, b, t, sp, 2, flash)) == \
        pytest.approx(float(memory.activation_bytes_per_layer(m, b, t, sp, 2, flash)))
    assert m.dropout and not load_model("llama3.1-70b").dropout  # Megatron's default; the Llama configs set 0


def test_adamw_sixteen_bytes_and_zero():
    w, g, o = memory.state_bytes(1e9, 8, 0)
    assert w + g + o == 16e9
    w1, g1, o1 = memory.state_bytes(1e9, 8, 1)
    assert o1 == 12e9 / 8 and g1 == 2e9
    w3, g3, o3 = memory.state_bytes(1e9, 8, 3)
    assert w3 + g3 + o3 == pytest.approx(2e9)


def test_pipeline_activation_factor():
    # Korthikanti sec 4.2.3: first stage holds p micro-batches; interleaving 1 + (p-1)/(p v)
    assert memory.pipeline_activation_factor(8, 1, 64) == 8
    assert memory.pipeline_activation_factor(8, 3, 64) == pytest.approx(8 * (1 + 7 / 24))
    assert memory.pipeline_activation_factor(8, 1, 2) == 2


def test_nccl_bus_factors():
    S, bw = 1e9, 1e11
    assert comm.allreduce_time(S, 8, bw, 0.0) == pytest.approx(2 * 7 / 8 * S / bw)
    assert comm.allgather_time(S, 8, bw, 0.0) == pytest.approx(7 / 8 * S / bw)
    assert comm.allreduce_time(S, 1, bw, 1e-5) == 0.0


def test_hierarchical_reduces_to_flat_in_one_node():
    S, bw = 1e9, 1e11
    assert comm.hierarchical_allreduce_time(S, 8, 1, bw, 1e10, 0, 0) == pytest.approx(comm.allreduce_time(S, 8, bw, 0))
    # across nodes the slow tier carries 1/local of the data
    t = comm.hierarchical_allreduce_time(S, 8, 4, bw, 1e10, 0, 0)
    assert t == pytest.approx(2 * 7 / 8 * S / bw + 2 * 3 / 4 * S / 8 / 1e10)


def test_group_layout():
    loc, nod = comm.group_layout(np.array([8, 16, 4]), np.array([1, 1, 4]), 8)
    assert list(loc) == [8, 8, 2] and list(nod) == [1, 2, 2]
