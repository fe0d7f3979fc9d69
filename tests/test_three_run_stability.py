"""benchmarks/three_run_stability.py: the verdict, and the machine probe that says when the
machine's own reference kernels moved as much as the headlines."""
from types import SimpleNamespace
from bench_scripts import load_script



def _mod():
    return load_script("three_run_stability")


def _fake_docs(mod, monkeypatch, rows):
    docs = [SimpleNamespace(environment={"fingerprint": "f", "cpu_clock_hz": 3.6e9}, results=[], i=i)
            for i in range(len(rows))]
    monkeypatch.setattr(mod, "headlines", lambda d: rows[d.i])
    monkeypatch.setattr(mod, "peaks", lambda d: {"gemm fp64 (TFLOP/s)": 0.1})
    monkeypatch.setattr(mod, "others_busy", lambda d: "0.00 median, 0.00 max")
    return docs


def test_stable_runs_pass_and_a_drifting_stream_row_fails_with_the_machine_note(monkeypatch, capsys):
    mod = _mod()
    steady = [{"gemm matmul fp64": (0.1, "TFLOP/s", "confirmed")}] * 3
    assert mod.report(_fake_docs(mod, monkeypatch, steady), [60.0] * 3, 0.10) == 0
    rows = [{"stream triad fp64": (v, "GB/s", "confirmed")} for v in (68.0, 45.5, 42.9)]
    probes = [{"memory_gb_s": v, "fp64_matmul_gflop_s": 100.0} for v in (75.0, 40.0, 41.0, 39.0)]
    assert mod.report(_fake_docs(mod, monkeypatch, rows), [60.0] * 3, 0.10, probes) == 1
    out = capsys.readouterr().out
    assert "stream triad fp64: spread 58.5%" in out
    assert "machine drift: memory 92.3%, fp64 matmul 0.0%" in out
    assert "stream rows cannot be stable to 10% on it" in out


def test_probe_measures_both_references_with_the_timing_helper():
    out = _mod().probe()
    assert set(out) == {"memory_gb_s", "fp64_matmul_gflop_s"}
    assert all(v > 0 for v in out.values())
