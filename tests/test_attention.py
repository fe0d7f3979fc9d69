import numpy as np
import pytest

from recoque.bench.attention import AttentionCase, cases
from recoque.bench.devices import detect
from recoque.kernels import attention as K


@pytest.fixture(scope="module")
def cpu():
    return detect("cpu")


def test_flop_formula_follows_the_flash_attention_convention():
    fwd = K.flop_count(2, 4, 128, 128, 64, False, "fwd")
    assert fwd == 4 * 2 * 4 * 128 * 128 * 64
    assert K.flop_count(2, 4, 128, 128, 64, True, "fwd") == fwd // 2
    assert K.flop_count(2, 4, 128, 128, 64, False, "bwd") == int(2.5 * fwd)
    with pytest.raises(ValueError, match="seq_q 128 != seq_k 1024"):  # a top-left mask: not half the pairs
        K.flop_count(1, 1, 128, 1024, 64, True, "fwd")


def test_reference_matches_a_direct_softmax():
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((2, 5, 4)), rng.standard_normal((1, 5, 4)), rng.standard_normal((1, 5, 4))
    out, scale = K.reference(q, k, v, causal=True)
    s = q[1] @ k[0].T / 2.0
    s[np.triu(np.ones((5, 5), dtype=bool), k=1)] = -np.inf
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert np.allclose(out[1], p @ v[0])
    assert np.allclose(out[1, 0], v[0, 0])  # causal: the first query sees only the first key
    assert np.all(scale >= np.abs(out) - 1e-12)


@pytest.mark.parametrize("direction", ["fwd", "bwd"])
@pytest.mark.parametrize("causal", [False, True])
def test_gqa_attention_verifies_and_records_backend(cpu, direction, causal):
    case = AttentionCase(1, 4, 2, 64, 32, causal, direction, "fp32")
    case.setup(cpu, 1, 0)
    check = case.verify()
    assert check.ok, check.describe()
    assert case.backend in K.backend_names()
    case.run(0)


def test_wrong_attention_output_is_caught(cpu, monkeypatch):
    case = AttentionCase(1, 2, 2, 32, 16, False, "fwd", "fp32")
    case.setup(cpu, 1, 0)
    real = K.sdpa
    monkeypatch.setattr(K, "sdpa", lambda *a, **k: real(*a, **k) * 1.1)
    assert not case.verify().ok


def test_cpu_quick_plan_is_small():
    plan = cases(detect("cpu"), quick=True)
    assert plan and all(c.p["seq_q"] <= 1024 for c in plan)
    assert {c.p["direction"] for c in plan} == {"fwd", "bwd"}


@pytest.mark.parametrize("causal", [False, True])
def test_the_forward_check_reads_every_batch_entry_and_head(cpu, monkeypatch, causal):
    """A kernel wrong only on the last batch entry's last KV head group passed the batch-0, group-0
    check; the sampled positions of every head now catch it."""
    case = AttentionCase(2, 4, 2, 64, 32, causal, "fwd", "fp32")
    case.setup(cpu, 1, 0)
    ok = case.verify()
    assert ok.ok and "all 2 x 4 heads" in ok.what and ok.max_error < 1e-6
    real = K.sdpa

    def wrong_last_group(*a, **k):
        out = real(*a, **k).clone()
        out[1, 2:] *= 1.1
        return out
    monkeypatch.setattr(K, "sdpa", wrong_last_group)
    v = case.verify()
    assert not v.ok and "all 2 x 4 heads" in v.what and v.worst_index[:2] in ((1, 2), (1, 3))


def test_the_sampled_positions_include_the_last_one():
    from recoque.bench.attention import ROWS_PER_HEAD, _sampled_positions

    for seq in (1, 3, 64, 16384):
        rows = _sampled_positions(seq)
        assert rows[-1] == seq - 1 and len(rows) <= ROWS_PER_HEAD and len(set(rows)) == len(rows)


@pytest.mark.parametrize("causal", [False, True])
def test_the_backward_check_reads_dq_of_every_batch_entry_and_head(cpu, monkeypatch, causal):
    case = AttentionCase(2, 4, 2, 64, 32, causal, "bwd", "fp32")
    case.setup(cpu, 1, 0)
    ok = case.verify()
    assert ok.ok and "dq[all 2 x 4 heads" in ok.what and ok.max_error < 1e-6
    import torch

    real, q = torch.autograd.grad, case._sets[0][0]

    def wrong_dq_on_the_last_batch_entry(outputs, inputs, *a, **k):
        g = list(real(outputs, inputs, *a, **k))
        if inputs[0] is q:  # the kernel's call, not the float64 reference's
            g[0] = g[0].clone()
            g[0][1, 3] *= 1.2
        return tuple(g)
    monkeypatch.setattr(torch.autograd, "grad", wrong_dq_on_the_last_batch_entry)
    v = case.verify()
    assert not v.ok and "dq[all 2 x 4 heads" in v.what and v.worst_index[:2] == (1, 3)


def test_a_bf16_gradient_a_few_percent_off_everywhere_is_caught(cpu, monkeypatch):
    # under the element-wise bound alone (6e-2 of max |dk|) a dk scaled by 1.048 passed
    import torch

    case = AttentionCase(1, 2, 2, 256, 64, True, "bwd", "bf16")
    case.setup(cpu, 1, 0)
    assert case.verify().ok
    real, k = torch.autograd.grad, case._sets[0][1]

    def dk_scaled(outputs, inputs, *a, **kw):
        g = list(real(outputs, inputs, *a, **kw))
        if inputs[1] is k:
            g[1] = g[1] * 1.048
        return tuple(g)
    monkeypatch.setattr(torch.autograd, "grad", dk_scaled)
    v = case.verify()
    assert not v.ok and v.what.startswith("dk") and "norm-wise" in v.what


def test_out_of_memory_in_every_backend_is_said_as_such_not_unsupported(monkeypatch):
    import torch

    q = torch.randn(1, 2, 16, 8)
    monkeypatch.setattr(K, "sdpa", lambda *a, **k: (_ for _ in ()).throw(torch.OutOfMemoryError("CUDA out of memory")))
    with pytest.raises(torch.OutOfMemoryError):
        K.accepted_backends(q, q, q, False, False)
    names = K.backend_names()

    def first_runs_out(q_, k_, v_, causal, need_grad, backend):
        if backend == names[0]:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return True
    monkeypatch.setattr(K, "accepts", first_runs_out)
    assert K.accepted_backends(q, q, q, False, False) == names[1:]  # the others still run it
