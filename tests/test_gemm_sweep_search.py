"""The GEMM sweep's shape search (bench/sweep.py) and its use in the suite, on synthetic rate
landscapes: no timing, so the assertions are about which shapes get measured."""
import numpy as np
import pytest

from sweep_fakes import measuring

from recoque.bench import gemm, suite, sweep
from recoque.bench.devices import detect
from recoque.bench.runner import RunOutcome
from recoque.bench.schema import Record


def wave_rate(m, n, k, cus, tile):
    """A GPU-like landscape (numpy arrays or scalars): output tiles fill whole waves of compute units,
    padding to whole tiles is wasted work, and a short K does not amortise a tile's prologue."""
    tiles = np.ceil(m / tile[0]) * np.ceil(n / tile[1])
    padding = m * n / (np.ceil(m / tile[0]) * tile[0] * np.ceil(n / tile[1]) * tile[1])
    return 1000.0 * tiles / (np.ceil(tiles / cus) * cus) * padding * k / (k + 1024)


def test_mamf_range_reads_a_zero_start_as_one_step():
    assert sweep.mamf_range(0, 1025, 256) == [256, 512, 768, 1024]
    assert sweep.mamf_range(512, 1024, 256) == [512, 768]
    grid = sweep.mamf_grid([1, 2], [3], [4, 5])
    assert grid == [(1, 3, 4), (1, 3, 5), (2, 3, 4), (2, 3, 5)]  # M outermost, K innermost


def test_neighbours_stay_in_bounds():
    assert sorted(sweep.neighbours((256, 512, 512), 256, lo=256, hi=512)) == [(256, 256, 512), (256, 512, 256),
                                                                              (512, 512, 512)]
    assert len(gemm.refine_shapes((4096, 4096, 4096))) == 6


class GPU:
    kind = "rocm"


@pytest.mark.parametrize("cus, tile", [(304, (256, 192)), (132, (128, 256)), (228, (256, 224)), (80, (128, 256))])
def test_gpu_sweep_is_within_1pct_of_the_exhaustive_grid_with_a_small_fraction_of_its_shapes(cus, tile):
    """MAMF-finder's exhaustive grid (M, N to 16384, K to 32768, step 256: 524288 shapes) against the
    GPU sweep as the suite runs it: gpu_sweep_shapes, then the search that gemm.sweep_plan sets up."""
    mn, kk = np.arange(256, 16385, 256.0), np.arange(256, 32769, 256.0)
    m, n, k = np.meshgrid(mn, mn, kk, indexing="ij")
    best_exhaustive = wave_rate(m, n, k, cus, tile).max()
    coarse = gemm.gpu_sweep_shapes(quick=False, compute_units=cus)
    plan = gemm.sweep_plan(GPU(), False, "bf16", coarse)
    measure, seen = measuring(lambda s: float(wave_rate(*map(float, s), cus, tile)))
    log = sweep.drive(plan, measure)
    _, best = sweep.best_of(log.rates)
    assert best >= 0.99 * best_exhaustive
    assert len(seen) == log.coarse_shapes + log.refine_shapes <= 0.001 * m.size
    assert log.refine_shapes <= gemm.REFINE_GPU["max_shapes"] and not log.stopped


def test_refinement_is_what_closes_the_gap_on_a_rugged_landscape():
    cus, tile = 228, (256, 224)
    coarse = gemm.gpu_sweep_shapes(quick=False, compute_units=cus)
    rate = lambda s: float(wave_rate(*map(float, s), cus, tile))  # noqa: E731
    measure, _ = measuring(rate)
    log = sweep.drive(gemm.sweep_plan(GPU(), False, "bf16", coarse), measure)
    assert sweep.best_of(log.rates)[1] > 1.03 * max(rate(s) for s in coarse)


def test_search_halves_the_step_and_stops_at_the_finest():
    # A single peak at (1280, 1280, 1280): from a coarse grid 1024 apart, steps 512 then 256 reach it.
    peak = (1280, 1280, 1280)
    rate = lambda s: -sum(abs(a - b) for a, b in zip(s, peak))  # noqa: E731
    plan = sweep.SweepPlan(((1024, 1024, 1024), (2048, 2048, 2048)), step=512, min_step=256, lo=256, hi=4096,
                           top=1, max_shapes=100)
    measure, seen = measuring(rate)
    log = sweep.drive(plan, measure)
    assert sweep.best_of(log.rates)[0] == peak
    assert all(s[0] % 256 == 0 for s in seen)  # never below the finest step


def test_search_stops_when_measurement_is_interrupted():
    calls = []

    def measure(batch):
        calls.append(batch)
        return {s: 1.0 for s in batch} if len(calls) == 1 else None

    plan = sweep.SweepPlan(((1024, 1024, 1024),), step=512, min_step=256, lo=256, hi=4096)
    log = sweep.drive(plan, measure)
    assert log.stopped and len(calls) == 2 and log.rates == {(1024, 1024, 1024): 1.0}


def test_quick_runs_and_cpu_fp16_are_not_refined():
    cpu = detect("cpu")
    assert gemm.sweep_plan(cpu, True, "fp32", [(512, 512, 512)]) is None
    assert gemm.sweep_plan(cpu, False, "fp16", [(512, 512, 512)]) is None
    plan = gemm.sweep_plan(cpu, False, "fp32", [(512, 512, 512), (4096, 4096, 4096)])
    assert plan is not None and plan.hi == 4096 and plan.min_step == 256


def fake_run_cases(rate):
    """run_cases that 'measures' each case at the landscape's rate (same samples, so CoV 0)."""

    def run_cases(cases, device, policy, seed=0, telemetry=True, on_done=None):
        out = RunOutcome()
        for c in cases:  # params, not attributes: the suite may wrap a GemmCase (suite.HeldCase)
            m, n, k = c.params["m"], c.params["n"], c.params["k"]
            flops = 2 * m * n * k
            bonus = 1.0 if c.backend == "torch" else 0.5  # the numpy backend is slower here
            t = flops / (rate((m, n, k)) * bonus * 1e12)
            out.records.append(Record("gemm", c.op, c.dtype, dict(c.params), (t,) * 5, "TFLOP/s", flop_count=flops,
                                      backend=c.backend, tags=tuple(c.tags)))
        return out

    return run_cases


def test_cpu_sweep_refines_around_the_best_backend_and_records_its_cost(monkeypatch):
    peak = (2304, 2048, 2560)  # off the square coarse grid
    rate = lambda s: 1.0 / (1 + sum(abs(a - b) for a, b in zip(s, peak)) / 4096)  # noqa: E731
    monkeypatch.setattr(suite, "run_cases", fake_run_cases(rate))
    out, _ = suite.run_suite(("gemm",), detect("cpu"), False, ("fp32",), telemetry=False)
    refined = [r for r in out.records if "refine" in r.tags]
    assert refined and all(r.backend == "torch" for r in refined)
    coarse_best = max(rate(s) for s in gemm.cpu_sweep_shapes(False, "fp32"))
    assert max(r.achieved for r in refined) > coarse_best
    (sw,) = out.sweeps
    assert sw["dtype"] == "fp32" and sw["refined"] and sw["backend"] == "torch" and sw["complete"]
    assert sw["refine_shapes"] == len(refined) <= gemm.REFINE_CPU["max_shapes"]
    assert sw["cases_measured"] == sw["coarse_cases"] + sw["refine_shapes"]
    assert sw["sweep_s"] >= 0 and sw["confirm_s"] >= 0
    # the headline is the confirmation of the refined best, not of a coarse shape
    heads = [r for r in out.records if "headline" in r.tags and "llm" not in r.tags]  # one per confirmation round
    assert heads and all((h.params["m"], h.params["n"], h.params["k"]) == tuple(sw["best_shape"]) for h in heads)
    assert rate(tuple(sw["best_shape"])) == max(rate((r.params["m"], r.params["n"], r.params["k"])) for r in refined)
