"""GEMM rotation sets are drawn a chunk at a time (a 480 MiB LLC needs thousands of sets): each set is
its own random normal data, of the right shape and layout, across chunk boundaries."""
import pytest
import torch

from recoque.kernels import gemm as KG


@pytest.mark.parametrize("dtype", ["fp16", "fp32", "fp8"])
def test_sets_are_distinct_random_normal(monkeypatch, dtype):
    monkeypatch.setattr(KG, "SET_CHUNK_ELEMENTS", 3 * (16 * 24 + 24 * 8))  # three sets per chunk
    sets = KG.random_operand_sets(16, 8, 24, dtype, "cpu", 7, 7, "e4m3fn")
    assert len(sets) == 7
    flat = [a.float().flatten() for a, _, _ in sets]
    assert all(not torch.equal(flat[i], flat[j]) for i in range(7) for j in range(i + 1, 7))
    assert torch.cat(flat).std().item() == pytest.approx(1.0, abs=0.15)
    for a, b, scales in sets:
        assert a.shape == (16, 24) and b.shape == (24, 8) and a.is_contiguous()
        if dtype == "fp8":
            assert b.t().is_contiguous() and scales is not None  # column-major B, as _scaled_mm takes it
        else:
            assert b.is_contiguous() and scales is None


def test_sets_do_not_share_memory():
    sets = KG.random_operand_sets(8, 8, 8, "fp32", "cpu", 0, 4)
    sets[0][0].zero_()
    assert all(s[0].abs().sum() > 0 for s in sets[1:])
