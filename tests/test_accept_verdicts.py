"""Acceptance verdicts on stored fixtures (tests/fixtures/accept_*.json, made by make_accept_fixtures.py)."""
import json
from pathlib import Path

import pytest

from recoque.bench import accept
from recoque.bench.schema import Record, ResultsDocument, load_results
from recoque.errors import BadInput

FIX = Path(__file__).parent / "fixtures"


def node(*names):
    return [load_results(str(FIX / f"accept_mi300x_{n}.json")) for n in names]


def verdicts(a, gpu_index):
    return {c.figure + " | " + c.basis: c.verdict for c in a.checks if f"cuda:{gpu_index} " in c.gpu}


def test_floors_are_sourced_and_in_units():
    p = accept.load_policy()
    assert p.floors and all(f.source and f.unit in ("GB/s", "TFLOP/s") for f in p.floors)
    triad = next(f for f in p.floors if f.device == "mi300x" and f.op == "triad")
    assert triad.minimum == pytest.approx(3885.301) and triad.unit == "GB/s"  # AMD: 3,885,301 MB/s
    assert {f.device for f in p.floors} >= {"mi250_gcd", "mi300x", "mi325x", "mi350x", "mi355x"}
    # the MI250 page states its floors per GCD: BabelStream triad 1,100,000 MB/s, RCCL 125 GB/s on 8 GCDs
    gcd = {(f.benchmark, f.op): f.minimum for f in p.floors if f.device == "mi250_gcd"}
    assert gcd[("stream", "triad")] == pytest.approx(1100.0) and gcd[("collective", "all_reduce")] == pytest.approx(125.0)
    assert 0 < p.gemm_fraction < 1 and 0 < p.sibling_tolerance < 0.5


def test_healthy_gpu_passes_every_floor():
    a = accept.evaluate(node("gpu0"))
    v = verdicts(a, 0)
    assert v["stream triad fp64 | vendor acceptance floor"] == "pass"
    assert v["gemm matmul fp32 4000x4000x4000 | vendor acceptance floor"] == "pass"
    assert v["gemm matmul bf16 | 0.45 x datasheet peak"] == "pass"
    # single GPU: no RCCL run; a node-level floor, so the GPU is not incomplete for it
    assert v["collective all_reduce fp32 | vendor acceptance floor, node-level (8 GPUs under torchrun)"] == "not measured"
    assert a.passed and a.per_gpu() == {"node-a cuda:0 AMD Instinct MI300X": "pass"}


def test_gpu_below_the_floor_fails_with_the_figure_named():
    a = accept.evaluate(node("gpu3_fail"))
    failed = {c.figure: c.threshold for c in a.failed}
    assert failed == {"stream triad fp64": pytest.approx(3885.301), "gemm matmul fp32 4000x4000x4000": 94.1}
    assert not a.passed


def test_sibling_outlier_is_named():
    a = accept.evaluate(node("gpu0", "gpu1", "gpu2"))
    assert [(c.gpu, c.figure) for c in a.failed] == [("node-a cuda:2 AMD Instinct MI300X", "gemm matmul bf16")]
    bad = a.failed[0]
    assert bad.basis.startswith("siblings: 10% below the median of the other 2")
    assert bad.measured == pytest.approx(600.0) and bad.threshold == pytest.approx(0.9 * (700.0 + 690.0) / 2)
    assert a.per_gpu()["node-a cuda:0 AMD Instinct MI300X"] == "pass"
    # alone, the same GPU passes: only its siblings show it is slow
    assert accept.evaluate(node("gpu2")).passed


def test_verdicts_are_written_into_the_results_file(tmp_path):
    src = FIX / "accept_mi300x_gpu3_fail.json"
    dst = tmp_path / "r.json"
    dst.write_text(src.read_text())
    a = accept.evaluate([load_results(str(dst))])
    accept.write_into(str(dst), None, a)
    data = json.loads(dst.read_text())
    assert data["acceptance"]["passed"] is False
    assert any(c["verdict"] == "fail" and c["figure"] == "stream triad fp64" for c in data["acceptance"]["checks"])
    assert load_results(str(dst)).results  # still a readable results document


def test_cpu_node_is_judged_against_its_computed_peak():
    f = 2 * 1024**3

    def rec(tflops):
        return Record("gemm", "matmul", "fp64", {"m": 1024, "n": 1024, "k": 1024}, (f / (tflops * 1e12),) * 9,
                      "TFLOP/s", flop_count=f, peak=0.1, peak_source="computed", tags=("sweep",))

    stream = Record("stream", "copy", "fp64", {"n_elements": 10}, (1e-3,) * 9, "GB/s", bytes_moved=10**8)
    doc = lambda r: ResultsDocument({"hostname": "h"}, {"kind": "cpu", "torch_device": "cpu", "name": "EPYC"},
                                    (r, stream))
    ok = accept.evaluate([doc(rec(0.05))])
    assert {c.figure: c.verdict for c in ok.checks} == {"gemm matmul fp64": "pass", "stream copy fp64": "no floor"}
    slow = accept.evaluate([doc(rec(0.02))])  # 20% of the computed peak: below the stated 30%
    assert [c.figure for c in slow.failed] == ["gemm matmul fp64"] and "computed peak" in slow.failed[0].basis


def test_a_cpus_reduced_precision_gemm_is_shown_not_held_and_fp32_still_is():
    """AMX bf16 at 23% of its computed 8.1 TFLOP/s (a healthy 2-core VM) is no failure; fp32 at 20% is."""
    f = 2 * 1024**3

    def rec(dtype, tflops, peak):
        return Record("gemm", "matmul", dtype, {"m": 1024, "n": 1024, "k": 1024}, (f / (tflops * 1e12),) * 9,
                      "TFLOP/s", flop_count=f, peak=peak, peak_source="computed", tags=("sweep",))

    doc = ResultsDocument({"hostname": "h"}, {"kind": "cpu", "torch_device": "cpu", "name": "Xeon"},
                          (rec("bf16", 1.9, 8.1), rec("fp16", 0.07, 0.5), rec("fp32", 0.1, 0.5)))
    checks = {c.figure: c for c in accept.evaluate([doc]).checks}
    for dtype in ("bf16", "fp16"):
        c = checks[f"gemm matmul {dtype}"]
        assert c.verdict == "no floor" and c.threshold is None and "shown, not held" in c.basis
        assert c.measured == pytest.approx({"bf16": 1.9, "fp16": 0.07}[dtype])  # TFLOP/s, as the table shows
    assert checks["gemm matmul fp32"].verdict == "fail"  # 20% of the FP32 FMA peak: BLAS or clocks are wrong
    from recoque.fileio import read_seed_toml
    data = read_seed_toml("acceptance.toml")
    held = accept.policy_from({**data, "policy": {**data["policy"],
                                                  "cpu_gemm_held_dtypes": ["fp64", "fp32", "bf16"]}})
    flipped = {c.figure: c.verdict for c in accept.evaluate([doc], held).checks}
    assert flipped["gemm matmul bf16"] == "fail"  # the seed decides which dtypes are held
    with pytest.raises(BadInput, match="cpu_gemm_held_dtypes"):
        accept.policy_from({**data, "policy": {**data["policy"], "cpu_gemm_held_dtypes": "fp32"}})


def test_bad_seed_entry_is_bad_input():
    with pytest.raises(BadInput, match="acceptance.toml"):
        accept.policy_from({"floors": [{"device": "x", "benchmark": "gemm", "op": "matmul", "dtype": "fp32"}],
                            "policy": {}})
    with pytest.raises(BadInput):
        accept.evaluate([])


def test_rvs_gemm_targets_are_floors_at_their_shapes():
    from types import SimpleNamespace
    from recoque.bench.gemm import sweep_cases
    p = accept.load_policy()
    mi300 = {(f.dtype, f.shape): f.minimum for f in p.floors if f.device == "mi300x" and f.benchmark == "gemm"}
    assert mi300[("bf16", (4864, 4096, 8192))] == pytest.approx(581.0)
    assert mi300[("fp8", (4864, 4096, 8192))] == pytest.approx(1215.0)
    mi355 = {(f.dtype, f.shape): f.minimum for f in p.floors if f.device == "mi355x" and f.benchmark == "gemm"}
    assert mi355[("fp8", (8192, 8192, 16384))] == pytest.approx(2061.0)
    # every GPU runs the shapes the floors name, tagged so they never become a sweep's headline
    gpu = SimpleNamespace(kind="cuda", compute_units=304)
    shapes = {(c.m, c.n, c.k) for c in sweep_cases(gpu, True, "bf16") if "acceptance" in c.tags}
    assert shapes == {(4864, 4096, 8192), (8192, 8192, 16384)}


def test_a_bf16_gemm_below_amds_rvs_target_fails_at_that_shape_only():
    def rec(tflops, m=4864, n=4096, k=8192, tags=("acceptance",)):
        return Record("gemm", "matmul", "bf16", {"m": m, "n": n, "k": k}, (2 * m * n * k / (tflops * 1e12),) * 9,
                      "TFLOP/s", flop_count=2 * m * n * k, peak=1307.4, peak_source="datasheet", tags=tags)

    def doc(*records):
        return ResultsDocument({"hostname": "h"}, {"kind": "cuda", "torch_device": "cuda:0", "name": "AMD Instinct MI300X",
                                                   "catalog_key": "mi300x"}, records)
    ok = {c.figure: c.verdict for c in accept.evaluate([doc(rec(600.0), rec(650.0, 8192, 8192, 8192, ("sweep",)))]).checks}
    assert ok["gemm matmul bf16 4864x4096x8192"] == "pass"
    slow = accept.evaluate([doc(rec(500.0), rec(650.0, 8192, 8192, 8192, ("sweep",)))])
    assert [(c.figure, c.threshold) for c in slow.failed] == [("gemm matmul bf16 4864x4096x8192", pytest.approx(581.0))]


def test_a_gpu_measured_on_one_figure_is_incomplete_not_accepted():
    """Only a bf16 sweep of an MI300X: its STREAM, fp32 4000^3 and RVS floors read 'not measured'
    and it was ACCEPTED on the one figure; now incomplete, not accepted, each floor named."""
    d = node("gpu0")[0]
    part = ResultsDocument(d.environment, d.device, tuple(r for r in d.results if "sweep" in r.tags and r.dtype == "bf16"))
    a = accept.evaluate([part])
    assert not a.failed and not a.passed
    assert a.per_gpu() == {"node-a cuda:0 AMD Instinct MI300X": "incomplete"}
    missing = {c.figure for c in a.unmeasured}
    assert {"stream triad fp64", "gemm matmul fp32 4000x4000x4000", "gemm scaled_mm fp8 4864x4096x8192"} <= missing
    assert not any(f.startswith("collective") for f in missing)  # node-level: torchrun's, not the GPU's own
    assert all("measure it: `recoque bench" in c.source for c in a.unmeasured)
    assert a.to_json()["unmeasured"] == [c.figure for c in a.unmeasured]


def test_a_quick_acceptance_run_measures_the_dtypes_of_the_device_floors():
    from types import SimpleNamespace

    def dev(key):
        return SimpleNamespace(to_json=lambda: {"catalog_key": key})
    assert accept.accept_dtypes(dev("mi300x")) == ("fp64", "fp32", "bf16", "fp16", "fp8")
    assert accept.accept_dtypes(dev(None)) == ("fp64", "fp32", "bf16")  # a CPU: no vendor floor


def test_mi300a_is_held_to_amds_own_floors_not_the_generic_fraction():
    """AMD's MI300A page passes BabelStream Triad at 3.25 TB/s (61% of 5.3): the generic 0.65 fraction
    (3.445) rejected a node AMD accepts."""
    n = 2**28
    recs = tuple(Record("stream", op, "fp64", {"n_elements": n, "elem_bytes": 8}, (a * n * 8 / (gb * 1e9),) * 9, "GB/s",
                        bytes_moved=a * n * 8, peak=5300.0, peak_source="datasheet")
                 for op, a, gb in (("copy", 2, 3000.0), ("mul", 2, 3100.0), ("add", 3, 3300.0), ("triad", 3, 3300.0),
                                   ("dot", 2, 2300.0)))
    doc = ResultsDocument({"hostname": "h"}, {"kind": "rocm", "torch_device": "cuda:0", "name": "AMD Instinct MI300A",
                                              "catalog_key": "mi300a"}, recs)
    v = {c.figure: (c.threshold, c.verdict) for c in accept.evaluate([doc]).checks}
    assert v["stream triad fp64"] == (pytest.approx(3250.0), "pass") and v["stream dot fp64"][1] == "pass"
    assert v["gemm matmul fp32 4000x4000x4000"] == (pytest.approx(60.0), "not measured")


def test_of_two_siblings_the_slow_one_is_held_against_the_other():
    """Two GPUs, bf16 700 and 600 (14% apart): with itself in the median the slow one sat against
    their mean (650 x 0.9 = 585) and passed."""
    a = accept.evaluate(node("gpu0", "gpu2"))
    assert [(c.gpu, c.figure) for c in a.failed] == [("node-a cuda:2 AMD Instinct MI300X", "gemm matmul bf16")]
    assert a.failed[0].threshold == pytest.approx(0.9 * 700.0)


def test_an_acceptance_shape_above_the_peak_fails_the_ceiling():
    """fp32 4000^3 at 900 TFLOP/s on an MI300X (peak 163.4) met its 94.1 floor and passed: the
    acceptance shapes skipped the ceiling every other figure is held to."""
    d = node("gpu0")[0]
    recs = tuple(r if not (r.dtype == "fp32" and "acceptance" in r.tags) else
                 Record(r.benchmark, r.op, r.dtype, r.params, tuple(t * 110.0 / 900.0 for t in r.times_s), r.unit,
                        flop_count=r.flop_count, peak=r.peak, peak_source=r.peak_source, tags=r.tags) for r in d.results)
    a = accept.evaluate([ResultsDocument(d.environment, d.device, recs)])
    bad = [c for c in a.failed if c.figure == "gemm matmul fp32 4000x4000x4000"]
    assert len(bad) == 1 and bad[0].basis.startswith("at most 1.1 x datasheet peak") and not a.passed


def test_a_device_nothing_holds_to_a_bar_fails_beside_others():
    """An uncatalogued GPU (no peak, no floor) is refused alone, but beside an MI300X's file it was
    'pass' on nothing."""
    f = 2 * 4096**3
    rec = Record("gemm", "matmul", "bf16", {"m": 4096, "n": 4096, "k": 4096}, (f / 3e12,) * 9, "TFLOP/s",
                 flop_count=f, tags=("sweep",))
    odd = ResultsDocument({"hostname": "node-b"}, {"kind": "rocm", "torch_device": "cuda:0", "name": "AMD Instinct MI308X"},
                          (rec,))
    with pytest.raises(BadInput, match="nothing to judge"):
        accept.evaluate([odd])
    a = accept.evaluate([odd, *node("gpu0")])
    assert a.per_gpu()["node-b cuda:0 AMD Instinct MI308X"] == "fail" and a.per_node()["node-b"] == "fail"
    assert a.per_node()["node-a"] == "pass"


def test_a_partitioned_gpu_is_not_held_to_the_whole_gpus_floors():
    """An MI300X in CPX mode shows 38 of 304 CUs: its peaks are scaled (bench/devices.py), and AMD's
    whole-GPU floors (fp32 4000^3 >= 94.1) rejected it at 73% of its own scaled peak."""
    d = node("gpu0")[0]
    cpx = ResultsDocument(d.environment, {**d.device, "compute_units": 38}, d.results)
    checks = [c for c in accept.evaluate([cpx]).checks if c.basis.startswith("vendor floor of the whole GPU")]
    assert checks and all(c.verdict == "no floor" and "38 of 304" in c.basis for c in checks)
