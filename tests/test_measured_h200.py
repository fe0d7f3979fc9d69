"""The results a real GPU produced (seeds/measured/h200.json: `scripts/gpu-check` on one NVIDIA H200,
2026-12-04) load, pass the node acceptance, and feed the planner: a stored fixture of the GPU path,
checked here without a GPU."""
from __future__ import annotations

from pathlib import Path

import pytest

from recoque.bench import accept
from recoque.bench.schema import load_results
from recoque.catalog import load_catalog
from recoque.planner.profile import DeviceProfile

MEASURED = Path(__file__).resolve().parents[1] / "seeds" / "measured"


@pytest.fixture(scope="module")
def doc():
    return load_results(str(MEASURED / "h200.json"))


def test_the_h200_run_is_complete_verified_and_its_own_machine(doc):
    assert doc.complete and doc.environment["gpu_name"] == "NVIDIA H200"
    assert doc.environment["gpu_catalog_key"] == "h200" and doc.environment["cuda_version"]
    assert {r.benchmark for r in doc.results} == {"gemm", "attention", "stream", "transfer"}
    assert all(r.verified for r in doc.results) and not doc.skipped
    gemm_dtypes = {r.dtype for r in doc.results if r.benchmark == "gemm"}
    assert gemm_dtypes == {"fp64", "fp32", "tf32", "bf16", "fp16", "fp8"}


def test_the_h200_run_passes_the_acceptance_floors(doc):
    result = accept.evaluate([doc])
    assert result.passed and len(result.checks) == 11


def test_tf32_was_really_tf32_in_every_round(doc):
    """The bug the first run found: rounds 2 and 3 of the tf32 headline ran at fp32 speed."""
    fp32 = max(r.achieved for r in doc.results if r.benchmark == "gemm" and r.dtype == "fp32")
    tf32 = [r.achieved for r in doc.results if r.benchmark == "gemm" and r.dtype == "tf32"]
    assert min(tf32) > 3 * fp32


def test_the_planner_takes_the_measured_rates(doc):
    prof = DeviceProfile.from_results(doc, load_catalog()["h200"])
    assert prof.origin == "measured"
    bf16 = prof.gemm_flop_s("bf16", 4096, 8192, 8192)
    assert 600e12 < bf16 < 800e12  # measured 687-778 TFLOP/s at such shapes, against 989 on the datasheet
    assert 3.9e12 < prof.memory_bandwidth_bytes_s() < 4.3e12  # STREAM add/triad 4,225 GB/s
