"""MoE grouped GEMM benchmark: the work count, the routing, verification against float64 (and a wrong
kernel caught), both kernel paths, the sweep plan, and the record through the results loader."""
import json
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from recoque.bench import moe  # noqa: E402
from recoque.bench.devices import detect  # noqa: E402
from recoque.bench.runner import run_one  # noqa: E402
from recoque.bench.schema import document_from_json  # noqa: E402
from recoque.bench.timing import TimingPolicy  # noqa: E402
from recoque.errors import BadInput  # noqa: E402
from recoque.kernels import moe as K  # noqa: E402

TINY = TimingPolicy(warmup_s=0.0, budget_s=0.0, min_samples=3, max_samples=3)


@pytest.fixture(scope="module")
def cpu():
    return detect("cpu")


def test_work_counts_routed_rows_only():
    # 2 FLOPs per multiply-add, one row per (token, expert) pair: 64 tokens x top 2 = 128 rows
    assert K.flop_count(64, 2, 96, 48) == 2 * 128 * 96 * 48
    case = moe.MoeCase("m", 8, 2, 64, 96, 48, "fp32")
    assert case.work().flop_count == K.flop_count(64, 2, 96, 48)
    assert "rows_per_expert:16" in case.tags


def test_routing_gives_top_k_distinct_experts_per_token():
    counts = K.route(1000, 16, 4, seed=3)
    assert counts.sum() == 4000 and len(counts) == 16
    assert counts.max() <= 1000  # no token sends two rows to one expert
    assert 0.5 * 250 < counts.min() <= counts.max() < 1.5 * 250  # spread around tokens x k / E
    assert np.array_equal(counts, K.route(1000, 16, 4, seed=3))  # seeded
    with pytest.raises(ValueError):
        K.route(10, 4, 5, seed=0)


def test_tokens_for_hits_the_rows_per_expert():
    experts, top_k, _, _ = K.up_shape("deepseek-v3")
    assert moe.tokens_for(experts, top_k, 128) * top_k / experts == 128


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_grouped_case_verifies_on_random_normal_data(cpu, dtype):
    case = moe.MoeCase("m", 8, 2, 96, 64, 32, dtype)
    case.setup(cpu, 2, 0)
    a, _, _ = case._sets[0]
    assert float(a.float().std()) > 0.5  # random normal, never zeros
    check = case.verify()
    assert check.ok, check.describe()
    assert case.op == "grouped_mm" and case.backend == "torch._grouped_mm"


def test_expert_loop_fallback_gives_the_same_product(cpu, monkeypatch):
    def unsupported(*a, **k):
        raise RuntimeError("grouped GEMM not supported on this device")

    monkeypatch.setattr(K, "grouped_mm", unsupported)
    case = moe.MoeCase("m", 8, 2, 96, 64, 32, "fp32")
    case.setup(cpu, 1, 0)
    assert case.op == "expert_loop"
    check = case.verify()
    assert check.ok, check.describe()


def test_wrong_expert_is_caught(cpu, monkeypatch):
    case = moe.MoeCase("m", 4, 1, 64, 32, 32, "fp32")
    case.setup(cpu, 1, 0)
    real = K.grouped_mm
    # every row multiplied by the next expert's weights: right shapes, wrong product
    monkeypatch.setattr(K, "grouped_mm", lambda a, w, offs: real(a, torch.roll(w, 1, dims=0), offs))
    assert not case.verify().ok


def test_an_expert_whose_rows_the_sample_misses_is_still_checked(cpu, monkeypatch):
    """The 64 sampled rows can miss an expert altogether; the whole-output projections cannot."""
    case = moe.MoeCase("m", 8, 2, 512, 64, 32, "fp32")
    case.setup(cpu, 1, 0)
    rows = int(case._counts.sum())
    sampled = set(np.random.default_rng(12345).choice(rows, size=min(moe.SAMPLE_ROWS, rows), replace=False).tolist())
    lo, hi = max(((lo, hi) for lo, hi in case._bounds), key=lambda b: sum(r not in sampled for r in range(*b)))
    unseen = [r for r in range(lo, hi) if r not in sampled]
    assert unseen
    real = K.grouped_mm

    def wrong_on_unsampled_rows(a, w, offs):
        out = real(a, w, offs).clone()
        out[unseen] *= 1.5
        return out
    monkeypatch.setattr(K, "grouped_mm", wrong_on_unsampled_rows)
    v = case.verify()
    assert not v.ok and "over all" in v.what and v.worst_index[0] in unseen


def test_the_expert_loop_output_is_cleared_before_the_verified_call(cpu, monkeypatch):
    monkeypatch.setattr(K, "grouped_mm", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("not supported")))
    case = moe.MoeCase("m", 4, 1, 64, 32, 32, "fp32")
    case.setup(cpu, 1, 0)
    case.run(0)  # the right product is now in the output buffer
    monkeypatch.setattr(K, "expert_loop", lambda a, w, bounds, out: out)  # writes nothing
    assert not case.verify().ok


def test_unknown_dtype_is_refused():
    with pytest.raises(BadInput, match="unknown MoE GEMM dtype"):
        moe.MoeCase("m", 8, 2, 64, 32, 32, "fp8")


def test_plans_cpu_small_gpu_published_shapes(cpu):
    plan = moe.cases(cpu, quick=True, dtypes=("fp32", "bf16", "fp16"))
    assert {c.dtype for c in plan} == {"fp32", "bf16"}  # no fp16 arithmetic on a CPU
    assert all(c.params["model"] == moe.CPU_SHAPE["model"] and "synthetic" in c.tags for c in plan)
    gpu = types.SimpleNamespace(kind="cuda")
    full = moe.cases(gpu, quick=False, dtypes=("bf16",))
    assert {c.params["model"] for c in full} == set(moe.GPU_MODELS)
    rpe = sorted({c.tokens * c.top_k / c.experts for c in full if c.params["model"] == "gpt-oss-120b"})
    assert rpe == list(moe.ROWS_PER_EXPERT_GPU)
    ds = {(c.n, c.k) for c in full if c.params["model"] == "deepseek-v3" and c.experts == 256 and c.top_k == 8}
    assert ds == {(4096, 7168), (7168, 2048)}  # up (gate and up fused: 2 x 2048) and down
    assert len(full) == len(moe.GPU_MODELS) * 2 * len(moe.ROWS_PER_EXPERT_GPU)


def test_record_round_trips_through_the_results_loader(cpu):
    r, skip, _ = run_one(moe.MoeCase("m", 8, 2, 64, 32, 32, "fp32"), cpu, TINY, 0, telemetry=False)
    assert skip is None and r.verified and r.benchmark == "moe"
    doc = {"schema_version": 2, "device": {"kind": "cpu", "torch_device": "cpu", "name": "cpu"},
           "environment": {}, "results": [json.loads(json.dumps(r.to_json()))]}
    assert document_from_json(doc, origin="t").results[0].flop_count == r.flop_count
    doc["results"][0]["flop_count"] += 1  # a hand-edited work count changes every rate read from it
    with pytest.raises(BadInput, match="kernel's count"):
        document_from_json(doc, origin="t")
    doc["results"][0]["flop_count"] -= 1
    doc["results"][0]["params"]["top_k"] = 9  # of 8 experts: no routing picks 9 distinct ones
    doc["results"][0]["flop_count"] = K.flop_count(64, 9, 32, 32)
    with pytest.raises(BadInput, match="top_k 9 is more than params.experts 8"):
        document_from_json(doc, origin="t")


# --------------------------------------------------------------------------- the planner reads it

def _moe_doc(points):
    """A results document of moe records: (rows per expert, n, k, seconds) with flop counts as the kernel's."""
    from recoque.bench.schema import Record

    recs = []
    for rpe, n, k, t in points:
        experts, top_k = 128, 4
        tokens = moe.tokens_for(experts, top_k, rpe)
        recs.append(Record("moe", "grouped_mm", "bf16", {"model": "m", "experts": experts, "top_k": top_k,
                                                         "tokens": tokens, "n": n, "k": k},
                           (t, t, t), "TFLOP/s", flop_count=K.flop_count(tokens, top_k, n, k)))
    return types.SimpleNamespace(select=lambda b: recs if b == "moe" else [])


def test_measured_grouped_rates_interpolate_in_rows_per_expert():
    from recoque.planner.serving_rates import GemmShapes

    flops = [K.flop_count(moe.tokens_for(128, 4, r), 4, 5760, 2880) for r in (32, 512)]
    shapes = GemmShapes.from_results(_moe_doc([(32, 5760, 2880, flops[0] / 2e14), (512, 5760, 2880, flops[1] / 8e14)]))
    assert shapes.has_moe("bf16") and not shapes.has("bf16") and not shapes.has_moe("fp8")
    at = shapes.moe_at("bf16", "value")
    assert at(32, 5760, 2880) == pytest.approx(2e14) and at(512, 5760, 2880) == pytest.approx(8e14)
    assert at(128, 5760, 2880) == pytest.approx(4e14)  # log-log halfway between 32 and 512
    assert at(4096, 5760, 2880) == pytest.approx(8e14)  # flat above the largest measured


def test_step_takes_the_measured_grouped_rate_instead_of_the_stated_efficiency():
    from dataclasses import replace

    from recoque.planner.serving_step import Layout, Precision, Rates, layer_gemm_s
    from recoque.planner.workload import load_model

    base = Rates(gemm_flop_s=2e15, attention_flop_s=1e15, hbm_bytes_s=1e30, link_bytes_s=6e11, hop_latency_s=2e-6,
                 kernel_gap_s=3e-6, step_overhead_s=5e-4, moe_gemm_efficiency=0.85)  # math only: reads are free
    model = load_model("gpt-oss-120b")
    prec = Precision(2.0, 2.0)
    modelled = layer_gemm_s(model, Layout(), prec, 4096.0, base)[0]
    slow = layer_gemm_s(model, Layout(), prec, 4096.0, replace(base, moe_at=lambda m, n, k: 1e14))[0]
    fast = layer_gemm_s(model, Layout(), prec, 4096.0, replace(base, moe_at=lambda m, n, k: 1e16))[0]
    assert slow > modelled > fast  # a slower measured grouped kernel gives a slower layer, and back
    dense = layer_gemm_s(model, Layout(), prec, 4096.0, replace(base, moe_at=lambda m, n, k: 1e30))[0]
    expert_flops = 2.0 * 4096 * model.active_experts * model.moe_layer_fraction * model.expert_params()
    assert slow - dense == pytest.approx(expert_flops / 1e14, rel=1e-6)  # the measured rate, no efficiency on top


def test_roofline_places_a_moe_record_by_its_weights_and_rows():
    from recoque.bench.schema import Record
    from recoque.report.plots import intensity

    r = Record("moe", "grouped_mm", "bf16", {"model": "m", "experts": 8, "top_k": 2, "tokens": 64, "n": 32, "k": 16},
               (1e-3,), "TFLOP/s", flop_count=K.flop_count(64, 2, 32, 16))
    moved = (128 * 16 + 8 * 16 * 32 + 128 * 32) * 2
    assert intensity(r) == pytest.approx(K.flop_count(64, 2, 32, 16) / moved)


def test_out_of_memory_in_the_grouped_gemm_is_a_skip_not_a_silent_expert_loop(cpu, monkeypatch):
    def oom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    monkeypatch.setattr(K, "grouped_mm", oom)
    r, skip, _ = run_one(moe.MoeCase("m", 8, 2, 64, 32, 32, "fp32"), cpu, TINY, 0, telemetry=False)
    assert r is None and "out of memory" in skip.reason
