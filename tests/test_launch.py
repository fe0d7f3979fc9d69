"""The kernel launch benchmark (bench/launch.py) and the per-kernel gap it gives the serving model.

CPU: the eager chain through the harness, its verification, the record's work count and what a
results file may hold. The graph case needs a GPU (marked gpu). The planner side is fed a record
made here (the graph chain cannot run without a GPU): its per-kernel seconds replace the stated
gap, and only that; the eager chain's replaces the stated per-kernel floor of training."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from recoque.bench import launch as L
from recoque.bench.schema import Record, ResultsDocument, document_from_json, load_results
from recoque.bench.suite import run_suite
from recoque.catalog import get_device_spec
from recoque.cli import app
from recoque.errors import BadInput
from recoque.kernels import launch as K
from recoque.planner import serving_rates as sr
from recoque.planner.profile import DeviceProfile
from recoque.planner.system import load_system

from stand_in import StandIn as Cpu

MEASURED_H200 = Path(__file__).resolve().parents[1] / "seeds" / "measured" / "h200.json"


def test_the_chain_counts_one_kernel_per_add_and_refuses_unknown_ops():
    assert K.kernel_count("eager") == K.kernel_count("graph") == K.KERNELS_PER_CALL
    with pytest.raises(ValueError):
        K.kernel_count("fused")
    with pytest.raises(ValueError):
        L.LaunchCase("fused")
    x0, y = np.array([1.0, -2.0], dtype=np.float32), np.array([0.5, 0.25], dtype=np.float32)
    assert K.expected(x0, y, 4).tolist() == [3.0, -1.0]


def test_cpu_runs_the_eager_chain_only_and_says_why():
    assert [c.op for c in L.cases(Cpu(), quick=True)] == ["eager"]
    assert "GPU" in L.skip_reason(Cpu())
    assert L.skip_reason(Cpu(kind="cuda", torch_device="cuda:0")) is None
    assert [c.op for c in L.cases(Cpu(kind="cuda", torch_device="cuda:0"), quick=True)] == ["eager", "graph"]


def test_the_eager_case_verifies_on_random_data_and_catches_a_missing_kernel(monkeypatch):
    case = L.LaunchCase("eager")
    case.setup(Cpu(), n_sets=4, seed=7)
    assert float(case._x0.abs().min()) > 0  # random normal, never zeros
    v = case.verify()
    assert v.ok  # 256 fp32 roundings stay under n x 2^-24 of the terms' sum (the tolerance's half)
    real = K.chain
    monkeypatch.setattr(K, "chain", lambda x, y, n=K.KERNELS_PER_CALL: real(x, y, n - 1))  # one add lost
    v = case.verify()
    assert not v.ok and v.max_error > 10 * L.TOLERANCE
    case.teardown()


def test_a_longer_chain_is_held_to_its_own_length():
    # a correct chain of 4096 adds errs past the 256-add bound (its error grows like n u)
    case = L.LaunchCase("eager", kernels=4096)
    case.setup(Cpu(), n_sets=1, seed=3)
    v = case.verify()
    assert v.ok and v.tolerance == L.tolerance(4096) == 16 * L.TOLERANCE
    case.teardown()


def test_the_harness_records_kernels_per_call_and_a_rate_in_kernels_per_second():
    out, notes = run_suite(("launch",), Cpu(), True, ("fp32",), seed=0, telemetry=False)
    assert out.records and not out.skipped and any("graph replay needs a GPU" in n for n in notes)
    for r in out.records:
        assert (r.benchmark, r.op, r.unit, r.kernel_count, r.work) == ("launch", "eager", "Mkernel/s", 256, 256)
        assert r.achieved == pytest.approx(256 / r.median_s / 1e6)
        assert r.verified and r.peak is None and "gb_s_per_w" not in r.telemetry
    back = Record.from_json(json.loads(json.dumps(out.records[0].to_json())))
    assert back == out.records[0]


def test_a_dtype_the_chain_does_not_run_is_said():
    out, notes = run_suite(("launch",), Cpu(), True, ("bf16",), seed=0, telemetry=False)
    assert {r.dtype for r in out.records} == {"fp32"}
    assert any(n.startswith("launch: bf16 not measured") for n in notes)


def test_a_launch_record_needs_its_kernel_count():
    with pytest.raises(BadInput, match="no work count"):
        Record("launch", "eager", "fp32", {"kernels": 256}, (1e-3,), "Mkernel/s")


def _launch_record(op_name: str, per_kernel_s: float, kernels: int = 256, **over) -> dict:
    times = [kernels * per_kernel_s * (1.0 + 0.01 * i) for i in range(10)]
    rec = Record("launch", op_name, "fp32", {"kernels": kernels, "n_elements": 4096}, tuple(times), "Mkernel/s",
                 kernel_count=kernels, verify={"ok": True, "max_error": 1e-7, "tolerance": L.TOLERANCE},
                 backend="torch", timer="device_event").to_json()
    rec.update(over)
    return rec


def _h200_with_launch(tmp_path: Path, per_kernel_s: float, op_name: str = "graph", **over) -> Path:
    doc = json.loads(MEASURED_H200.read_text())
    doc["results"].append(_launch_record(op_name, per_kernel_s, **over))
    path = tmp_path / f"h200_launch_{op_name}_{per_kernel_s:g}.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("over, message", [
    ({"kernel_count": 255}, "kernel's count for these params is 256"),
    ({"op": "fused"}, "unknown launch op 'fused'"),
    ({"params": {"n_elements": 4096}}, "needs params kernels"),
])
def test_a_results_file_with_a_wrong_launch_record_is_refused_in_one_line(tmp_path, over, message):
    path = _h200_with_launch(tmp_path, 2e-6, **over)
    with pytest.raises(BadInput, match=message):
        load_results(str(path))


def test_the_measured_graph_gap_replaces_the_stated_one(tmp_path):
    spec, system, engine = get_device_spec("h200"), load_system("node-8x-h200"), sr.load_engine("vllm")
    without = DeviceProfile.from_results(load_results(str(MEASURED_H200)), spec)  # the same file, no launch record
    stated = sr.rate_set(spec, system, "bf16", 1, engine, profile=without)
    assert stated.rates["value"].kernel_gap_s == pytest.approx(3.0e-6)  # seeds/serving.toml [kernel]
    doc = load_results(str(_h200_with_launch(tmp_path, 1.2e-6)))
    prof = DeviceProfile.from_results(doc, spec)
    assert prof.kernel_gap_s.value == pytest.approx(1.2e-6 * 1.045, rel=0.01)  # the median of 1.00..1.09
    assert prof.kernel_gap_s.low == pytest.approx(1.2e-6)
    measured = sr.rate_set(spec, system, "bf16", 1, engine, profile=prof)
    r = measured.rates
    assert r["value"].kernel_gap_s == pytest.approx(prof.kernel_gap_s.value)
    assert r["high"].kernel_gap_s == pytest.approx(1.2e-6)  # the fast corner takes the fastest sample
    # the slow corner keeps the stated 2 us above the centre: a decode step's kernels are larger
    assert r["low"].kernel_gap_s == pytest.approx(prof.kernel_gap_s.value + 2.0e-6)
    assert any("measured: bench launch graph chain" in n for n in measured.notes)
    for k in ("gemm_flop_s", "hbm_bytes_s", "step_overhead_s"):  # nothing else moves
        assert getattr(r["value"], k) == getattr(stated.rates["value"], k)


def test_an_eager_record_alone_leaves_the_stated_gap(tmp_path):
    doc = json.loads(MEASURED_H200.read_text())
    doc["results"].append(_launch_record("eager", 6e-6))
    prof = DeviceProfile.from_results(document_from_json(doc, "here"), get_device_spec("h200"))
    assert prof.kernel_gap_s is None


def test_the_measured_eager_chain_is_the_training_per_kernel_floor():
    spec = get_device_spec("h200")
    doc = json.loads(MEASURED_H200.read_text())
    # without its fp8 GEMMs, so that fp8 falls back to the datasheet model (which adds the floor per GEMM)
    doc["results"] = [r for r in doc["results"] if not (r["benchmark"] == "gemm" and r["dtype"] == "fp8")]
    stated = DeviceProfile.from_results(document_from_json(doc, "here"), spec)
    assert stated.kernel_overhead_s() == pytest.approx(5e-6)  # planner/profile.py DEFAULT_KERNEL_OVERHEAD_S
    doc["results"].append(_launch_record("eager", 7e-6))
    prof = DeviceProfile.from_results(document_from_json(doc, "here"), spec)
    assert prof.kernel_gap_s is None  # the serving gap is the graph chain's only
    assert prof.kernel_overhead_s() == pytest.approx(7e-6 * 1.045, rel=0.01)  # the median of 1.00..1.09
    assert prof.bound("high").kernel_overhead_s() == pytest.approx(7e-6)  # the fast corner: the fastest sample
    assert prof.bound("low").kernel_overhead_s() == pytest.approx(7e-6 * 1.081, rel=0.001)  # the 90th percentile
    assert any("eagerly launched chain (7.3" in a for a in prof.assumptions)
    tiny = (8, 8, 8)
    assert prof.gemm_time_s("fp8", *tiny) - stated.gemm_time_s("fp8", *tiny) == pytest.approx(7e-6 * 1.045 - 5e-6, rel=0.02)


def test_plan_train_charges_the_measured_floor_per_elementwise_kernel(tmp_path):
    args = ["plan", "train", "-s", "node-8x-h200", "-w", "llama3.1-8b", "--tp", "1", "--pp", "1", "--micro-batch", "1",
            "--recompute", "none", "--json"]
    compute = {}
    for gap in (2e-6, 40e-6):
        r = CliRunner().invoke(app, args + ["--profile", str(_h200_with_launch(tmp_path, gap, "eager"))])
        assert r.exit_code == 0, r.output
        d = json.loads(r.output)
        assert "per-kernel floor from the eagerly launched chain" in json.dumps(d)
        compute[gap] = d["best"][0]["breakdown_s"]["compute_s"]
    # 2,048 sequences over DP 8 = 256 micro-batches of 1, x 32 layers x 18 elementwise kernels (6 forward,
    # 12 backward: planner/train_core.py ELEMENTWISE_KERNELS_FWD); the bf16 GEMMs are measured curves.
    # Each record's median is 1.045 x its fastest sample (the test above).
    expected = 256 * 32 * 18 * (40e-6 - 2e-6) * 1.045
    assert compute[40e-6] - compute[2e-6] == pytest.approx(expected, rel=0.02)


def test_plan_infer_with_a_measured_gap_says_so_and_a_smaller_gap_shortens_a_small_batch_step(tmp_path):
    args = ["plan", "infer", "-s", "node-8x-h200", "-w", "llama3.1-8b", "--concurrency", "1", "--tp", "8", "--json"]
    tpot = {}
    for gap in (1.0e-6, 4.0e-6):
        r = CliRunner().invoke(app, args + ["--profile", str(_h200_with_launch(tmp_path, gap))])
        assert r.exit_code == 0, r.output
        d = json.loads(r.output)
        assert "measured: bench launch graph chain" in json.dumps(d)
        tpot[gap] = d["inference"]["tpot"]["value"]
    # 3 us more per kernel: 32 layers x 12 kernels (TP 8: two all-reduces a layer) x 3 us = 1.15 ms
    # of GPU time, over vLLM's engine efficiency 0.71 = 1.6 ms more per token
    assert 1.3e-3 < tpot[4.0e-6] - tpot[1.0e-6] < 2.0e-3


def test_bench_launch_on_the_cpu_from_the_command_line(tmp_path):
    out = tmp_path / "l.json"
    r = CliRunner().invoke(app, ["bench", "launch", "--quick", "--device", "cpu", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    rows = [row for row in load_results(str(out)).to_json()["summary"] if row["benchmark"] == "launch"]
    assert rows and rows[0]["achieved_kernels_per_s"] > 0 and "us each" in rows[0]["best_shape"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_the_graph_case_on_a_gpu_verifies_and_replays():
    gpu = Cpu(kind="cuda", torch_device="cuda:0")
    case = L.LaunchCase("graph")
    case.setup(gpu, n_sets=1, seed=0)
    assert case.verify().ok
    case.run(0)
    torch.cuda.synchronize()
    case.teardown()


def test_the_rotation_tag_says_the_one_set_a_launch_chain_uses():
    from recoque.bench.runner import run_one
    from recoque.bench.timing import TimingPolicy

    rec, skip, _ = run_one(L.LaunchCase("eager", kernels=8), Cpu(), TimingPolicy(0.0, 0.0, 3, 3), 0, telemetry=False)
    assert skip is None and "rotation_sets:1" in rec.tags
