"""Transfers: byte counts, sizes, the CPU skip path, and the byte check (GPU runs are marked gpu)."""
from __future__ import annotations

import pytest
import torch

from recoque.bench import transfer as T
from recoque.kernels import transfer as KT

from stand_in import MiB, StandIn

GPU = StandIn(kind="rocm", torch_device="cuda:0", llc_bytes=256 * MiB, memory_bytes=192 * 2**30)


def test_cpu_has_no_transfer_cases_and_says_why():
    assert T.cases(StandIn(), quick=True) == [] and T.cases(StandIn(), quick=False) == []
    assert "GPU" in T.skip_reason(StandIn())
    assert T.skip_reason(GPU) is None


def test_sizes_and_ops_on_a_gpu():
    quick = T.cases(GPU, quick=True)
    assert [(c.op, c.params["bytes"], c.params["pinned"]) for c in quick] == [
        ("h2d", 256 * MiB, True), ("d2h", 256 * MiB, True), ("d2d", 256 * MiB, True),
        ("h2d_pageable", 256 * MiB, False), ("d2h_pageable", 256 * MiB, False)]
    full = T.cases(GPU, quick=False)
    assert sorted({c.params["bytes"] for c in full}) == [64 * MiB, 128 * MiB, 256 * MiB, 512 * MiB, 1024 * MiB]
    pinned = [c for c in full if c.params["pinned"]]
    assert len(pinned) == 15 and all(c.dtype == "bytes" for c in full)
    assert sorted((c.op, c.params["bytes"]) for c in full if not c.params["pinned"]) == [
        ("d2h_pageable", 256 * MiB), ("h2d_pageable", 256 * MiB)]
    assert len({c.label() for c in full}) == len(full)  # a pageable row never shares a pinned row's label
    small = StandIn(kind="cuda", torch_device="cuda:0", memory_bytes=1024 * MiB)  # room for 256 MiB at most
    assert max(c.params["bytes"] for c in T.cases(small, quick=False)) == 256 * MiB


@pytest.mark.parametrize("op, factor, counted", [("h2d", 1, "bytes over the link"),
                                                 ("d2h", 1, "bytes over the link"), ("d2d", 2, "read+write"),
                                                 ("h2d_pageable", 1, "bytes over the link"),
                                                 ("d2h_pageable", 1, "bytes over the link")])
def test_bytes_moved(op, factor, counted):
    case = T.TransferCase(op, 64 * MiB)
    assert case.work().bytes_moved == factor * 64 * MiB
    assert case.params["counted"] == counted
    assert case.bytes_per_set() == 2 * 64 * MiB


def test_pageable_buffers_are_not_pinned_and_copy_the_same_bytes(monkeypatch):
    pins = []
    real_empty, real_zeros = torch.empty, torch.zeros

    def spy(real):
        def make(*a, pin_memory=False, **kw):
            pins.append(pin_memory)
            return real(*a, **kw)  # no pinning on a machine without a GPU driver
        return make

    monkeypatch.setattr(KT.torch, "empty", spy(real_empty))
    monkeypatch.setattr(KT.torch, "zeros", spy(real_zeros))
    for op in ("h2d", "d2h"):
        pins.clear()
        src, dst = KT.buffers(op + "_pageable", 4096, torch.device("cpu"), seed=2)
        assert pins and not any(pins)
        KT.copy(src, dst)
        assert torch.equal(src, dst)
        pins.clear()
        KT.buffers(op, 4096, torch.device("cpu"), seed=2)
        assert any(pins)  # the plain op stays pinned


def test_results_files_accept_every_transfer_op():
    from recoque import inputs
    assert inputs.TRANSFER_OPS == KT.OPS


def test_unknown_transfer_rejected():
    with pytest.raises(ValueError):
        T.TransferCase("d2d_pageable", MiB)  # no host side to leave pageable
    with pytest.raises(ValueError):
        KT.buffers("d2d_pageable", 4096, torch.device("cpu"), seed=0)
    with pytest.raises(ValueError):
        T.TransferCase("p2p", MiB)
    with pytest.raises(ValueError):
        KT.bytes_moved("p2p", MiB)


def test_random_bytes_are_seeded_normal_data_not_constants():
    x = KT.random_bytes(4096, torch.device("cpu"), seed=5)
    assert x.dtype == torch.uint8 and x.numel() == 4096
    assert torch.equal(x, KT.random_bytes(4096, torch.device("cpu"), seed=5))
    assert not torch.equal(x, KT.random_bytes(4096, torch.device("cpu"), seed=6))
    assert len(torch.unique(x)) > 200
    assert 0.8 < float(x.view(torch.float32).std()) < 1.2
    with pytest.raises(ValueError):
        KT.random_bytes(4097, torch.device("cpu"), seed=0)


def test_copy_and_byte_check_find_the_bad_byte():
    src = KT.random_bytes(1 << 16, torch.device("cpu"), seed=1)
    dst = torch.zeros_like(src)
    KT.copy(src, dst)
    idx = torch.arange(src.numel())
    assert T.check_bytes(src[idx], dst[idx], idx, "dst").ok
    dst[777] ^= 0xFF
    sample = torch.arange(500, 1000)  # a sample that contains the bad byte at position 277
    v = T.check_bytes(src[sample], dst[sample], sample, "dst")
    assert not v.ok and v.worst_index == (777,)
    assert v.worst_got == float(dst[777]) and v.worst_expected == float(src[777])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("op", T.OPS)
def test_transfer_case_on_gpu(op):
    case = T.TransferCase(op, 4 * MiB)
    case.setup(GPU, n_sets=2, seed=0)
    assert case.verify().ok
    case.run(1)
    case.teardown()


def test_d2d_case_on_cpu_tensors_verifies_and_catches_a_bad_copy(monkeypatch):
    """The d2d code path (no pinned memory) run on CPU tensors, with a sampled check (> 1 MiB)."""
    dev = StandIn(kind="cuda", torch_device="cpu")
    case = T.TransferCase("d2d", 2 * MiB)
    case.setup(dev, n_sets=2, seed=3)
    assert len(case._sets) == 2 and case.verify().ok

    def bad_copy(src, dst):
        dst.copy_(src)
        dst[: MiB] = 0  # half the bytes lost: any sample sees it

    monkeypatch.setattr(T, "copy", bad_copy)
    v = case.verify()
    assert not v.ok and v.worst_index[0] < MiB and 0.3 < v.max_error < 0.7
