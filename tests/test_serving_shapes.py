"""Measured GEMM rates by shape in the serving model (--profile with GEMM records at given m, n, k):
nearest (n, k), log-log interpolation in m, used by the decode step instead of the m/(m + m_half)
model."""
import json

import pytest
from typer.testing import CliRunner

from recoque.bench.schema import Record, ResultsDocument, save_results
from recoque.cli import app
from recoque.planner.serving_rates import GemmShapes

H100 = {"name": "NVIDIA H100 80GB HBM3"}


def _gemm(m, n, k, tflops, dt="bf16"):
    flops = 2 * m * n * k
    return Record("gemm", "matmul", dt, {"m": m, "n": n, "k": k}, (flops / (tflops * 1e12),) * 5, "TFLOP/s",
                  flop_count=flops)


def _doc(rate_at_m):
    """Two (n, k) columns; rates by m from `rate_at_m` (TFLOP/s)."""
    recs = [_gemm(m, n, k, rate_at_m(m)) for (n, k) in ((8192, 8192), (28672, 8192)) for m in (16, 256, 4096)]
    nbytes = 3 * 8 * 2 ** 28
    recs.append(Record("stream", "triad", "fp64", {"n_elements": 2 ** 28}, (nbytes / 3.0e12,) * 5, "GB/s",
                       bytes_moved=nbytes))
    return ResultsDocument(environment={}, device=H100, results=tuple(recs))


def test_shape_table_interpolates_in_m_and_takes_the_nearest_nk():
    sh = GemmShapes.from_results(_doc(lambda m: {16: 40.0, 256: 400.0, 4096: 700.0}[m]))
    assert sh.rate("bf16", 256, 8192, 8192) == pytest.approx(400e12, rel=1e-9)
    # log-log between m = 256 and 4096: at the geometric midpoint 1024 the geometric mean rate
    assert sh.rate("bf16", 1024, 8192, 8192) == pytest.approx((400e12 * 700e12) ** 0.5, rel=1e-9)
    # below the smallest m the rate falls as the tile model m/(m + 32) from m = 16 (the step adds the
    # weight read apart)
    assert sh.rate("bf16", 4, 8192, 8192) == pytest.approx(40e12 * (4 / 36) / (16 / 48), rel=1e-9)
    assert sh.rate("bf16", 100000, 8192, 8192) == pytest.approx(700e12, rel=1e-9)
    # (n, k) = (10240, 8192) is nearer (8192, 8192) than (28672, 8192) in log distance
    assert sh.rate("bf16", 256, 10240, 8192) == pytest.approx(400e12, rel=1e-9)
    assert not sh.has("fp8") and GemmShapes.from_results(ResultsDocument({}, H100, ())) is None


def _plan(path, batch, prompt=1000, output=1000):
    r = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h100", "--gpus", "1", "--model", "llama3.1-8b",
                                 "--tp", "1", "--batch", str(batch), "--prompt-tokens", str(prompt), "--output-tokens",
                                 str(output), "--kv-cache", "fp8", "--engine", "trtllm", "--profile", str(path), "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)["inference"]


def test_slower_measured_skinny_gemms_slow_the_compute_bound_step(tmp_path):
    fast, slow = tmp_path / "fast.json", tmp_path / "slow.json"
    save_results(fast, _doc(lambda m: {16: 40.0, 256: 600.0, 4096: 750.0}[m]))
    save_results(slow, _doc(lambda m: {16: 40.0, 256: 300.0, 4096: 750.0}[m]))
    a, b = _plan(fast, 128), _plan(slow, 128)
    # 128 streams + their prefill share = 256 rows: half the measured rate there, a slower step
    assert b["tpot"]["value"] > 1.3 * a["tpot"]["value"]
    assert any("nearest measured (n, k)" in x for x in a["assumptions"])
    # 64 streams of 8000-token prompts and 100-token answers: 5184 rows, where both files measure
    # the same rate: the same step but for the LM head (64 rows)
    c, d = _plan(fast, 64, 8000, 100), _plan(slow, 64, 8000, 100)
    assert d["tpot"]["value"] == pytest.approx(c["tpot"]["value"], rel=0.01)
