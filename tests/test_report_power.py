"""bench/power.py through the one sampler (bench/telemetry.py): energy from counters and from power
samples, throttling, GFLOP/s per W, RAPL on a fake sysfs tree (with counter wrap-around), and the one
'power unavailable' note."""
import types

import pytest

from recoque.bench import power as P
from recoque.bench import telemetry as T

CPU = types.SimpleNamespace(kind="cpu")


def _readings(powers, clocks, energies=None, dt=0.5):
    out = []
    for i, (p, c) in enumerate(zip(powers, clocks)):
        out.append({"t_s": 100.0 + i * dt, "power_w": p, "clock_mhz": c,
                    **({} if energies is None else {"energy_j": energies[i]})})
    return out


def test_energy_from_power_samples_is_the_trapezoid_integral():
    s = T.summarize(_readings([100.0, 200.0, 200.0], [2000.0] * 3), "test")
    # 0.5 s at (100+200)/2 + 0.5 s at 200 = 75 + 100 J over 1 s
    assert s["energy_j"] == pytest.approx(175.0)
    assert s["avg_power_w"] == pytest.approx(175.0)
    assert s["energy_from"] == "power samples"
    assert s["power_w"]["max"] == 200.0 and s["power_w"]["mean"] == pytest.approx(500 / 3)
    assert s["throttled"] is None and s["source"] == "test" and "note" not in s


def test_energy_counter_wins_over_samples():
    s = T.summarize(_readings([100.0] * 3, [2000.0] * 3, energies=[5000.0, 5200.0, 5300.0]), "test")
    assert s["energy_j"] == pytest.approx(300.0) and s["avg_power_w"] == pytest.approx(300.0)
    assert s["energy_from"] == "counter"


def test_throttling_is_a_clock_drop_under_load():
    steady = [2100.0] * 16
    dropping = [2100.0] * 8 + [1800.0] * 8
    assert not P.throttled(steady)
    assert P.throttled(dropping)
    assert P.throttled(dropping[:6]) is None  # too few samples to say
    s = T.summarize(_readings([700.0] * 16, dropping), "test")
    assert s["throttled"] is True and s["clock_mhz"]["min"] == 1800.0


def test_efficiency_per_watt():
    assert P.efficiency(700.0, "TFLOP/s", {"avg_power_w": 700.0}) == {"gflop_s_per_w": 1000.0, "avg_power_w": 700.0}
    assert P.efficiency(4000.0, "GB/s", {"power_w": {"median": 400.0}})["gb_s_per_w"] == pytest.approx(10.0)
    assert P.efficiency(1.0, "GB/s", {}) == {}


def _fake_rapl(root, value, span=1000):
    d = root / "intel-rapl:0"
    d.mkdir(parents=True, exist_ok=True)
    (d / "energy_uj").write_text(f"{value}\n")
    (d / "max_energy_range_uj").write_text(f"{span}\n")
    (root / "intel-rapl:0:0").mkdir(exist_ok=True)  # a sub-domain: not counted twice
    return d


def test_rapl_counter_unwraps_overflow(tmp_path):
    d = _fake_rapl(tmp_path, 900)
    domains = P.rapl_packages(str(tmp_path))
    assert domains == [str(d)]
    last: dict = {}
    e0 = P.rapl_energy_j(domains, last)
    (d / "energy_uj").write_text("100\n")  # wrapped past 1000
    e1 = P.rapl_energy_j(domains, last)
    assert e1 - e0 == pytest.approx(200e-6)


def test_rapl_sums_packages_not_the_platform_domain(tmp_path):
    # Intel client parts: intel-rapl:1 is `psys`, the whole platform, which holds the package
    d = _fake_rapl(tmp_path, 5)
    (d / "name").write_text("package-0\n")
    psys = tmp_path / "intel-rapl:1"
    psys.mkdir()
    (psys / "name").write_text("psys\n")
    (psys / "energy_uj").write_text("7\n")
    assert P.rapl_packages(str(tmp_path)) == [str(d)]


def test_a_gpu_reading_of_one_sample_gives_no_per_watt_figure():
    # one sample is the driver's trailing average from before the case: not the case's power
    one = {"source": "pynvml", "power_w": {"median": 361.0}}
    assert P.efficiency(740.0, "TFLOP/s", one) == {}
    assert P.efficiency(740.0, "TFLOP/s", {**one, "duration_s": 5.0})["avg_power_w"] == 361.0


def test_cpu_sampler_reads_rapl_energy_and_clocks(tmp_path, monkeypatch):
    _fake_rapl(tmp_path, 1_000_000, span=10**12)
    monkeypatch.setattr(P, "RAPL_ROOT", str(tmp_path))
    with T.Sampler(CPU, interval_s=0.01) as s:
        (tmp_path / "intel-rapl:0" / "energy_uj").write_text("3000000\n")  # +2 J
    out = s.summary()
    assert out["source"].startswith("RAPL") and "note" not in out
    assert out["energy_j"] == pytest.approx(2.0) and out["energy_from"] == "counter"
    assert out["avg_power_w"] == pytest.approx(2.0 / out["duration_s"])
    assert "energy_j" not in T.read_once(CPU)  # a counter, not a reading for the environment


def test_unavailable_power_says_so_once(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(P, "_NOTED", set())
    _fake_rapl(tmp_path, 5)
    (tmp_path / "intel-rapl:0" / "energy_uj").write_text("not a number\n")  # as unreadable as root-only
    monkeypatch.setattr(P, "RAPL_ROOT", str(tmp_path))
    for _ in range(3):
        with T.Sampler(CPU, interval_s=0.01) as s:
            pass
    err = capsys.readouterr().err
    assert err.count("power unavailable") == 1 and "energy_uj is not readable" in err
    out = s.summary()
    assert "power unavailable" in out["note"] and "energy_j" not in out and "power_w" not in out
    assert out["source"] in ("/proc/cpuinfo", "none")  # the clock alone where /proc/cpuinfo has one


from recoque.bench.base import Case  # noqa: E402


class _EnergyCase(Case):
    """A tiny case whose every call adds 1 J to the fake RAPL counter: a known energy per run."""

    benchmark, op, dtype, backend, tags = "gemm", "matmul", "fp32", "test", ()
    params = {"m": 8, "n": 8, "k": 8}

    def __init__(self, counter):
        self.counter, self.calls = counter, 0

    def label(self):
        return "gemm/matmul/fp32/8"

    def work(self):
        from recoque.bench.base import Work

        return Work(flop_count=10**9)

    def bytes_per_set(self):
        return 1024

    def setup(self, device, n_sets, seed):
        pass

    def verify(self):
        from recoque.bench.base import Verification

        return Verification(True, 0.0, 1e-5, (0, 0), 1.0, 1.0, "C")

    def run(self, i):
        self.calls += 1
        self.counter.write_text(f"{(1 + self.calls) * 10**6}\n")

    def activate(self):
        pass

    def teardown(self):
        pass


def test_record_telemetry_carries_energy_and_efficiency_the_report_reads(tmp_path, monkeypatch):
    from recoque.bench.devices import detect
    from recoque.bench.runner import run_cases
    from recoque.bench.schema import ResultsDocument
    from recoque.bench.timing import TimingPolicy
    from recoque.report.model import power_table

    monkeypatch.setattr(P, "RAPL_ROOT", str(tmp_path))
    case = _EnergyCase(_fake_rapl(tmp_path, 10**6, span=10**12) / "energy_uj")
    fast = TimingPolicy(warmup_s=0.0, budget_s=0.0, min_samples=3, max_samples=3)
    rec = run_cases([case], detect("cpu"), fast).records[0]
    tel = rec.telemetry
    # the energy of the 3 timed calls, not of the warm-up's (its first call pays the setup)
    assert case.calls == 5 and tel["energy_j"] == pytest.approx(3) and tel["energy_from"] == "counter"
    assert tel["gflop_s_per_w"] == pytest.approx(rec.achieved * 1e3 / tel["avg_power_w"])
    assert "power" not in tel  # one flat summary, no second sampler's copy
    old = type(rec)(**{**rec.__dict__, "telemetry": {"clock_mhz": tel.get("clock_mhz", {}),
                                                     "power": {"avg_power_w": 400.0, "energy_j": 4.0}}})
    table = power_table(ResultsDocument({}, {}, (rec, old)))
    (new_row, old_row) = table.rows
    assert new_row[6] != "" and "GFLOP/s/W" in new_row[7]  # energy and efficiency of the flat layout
    assert old_row[5] == "400" and old_row[6] == "4"  # files written before the merge (nested "power") still read


def test_a_counter_that_did_not_advance_gives_no_energy():
    """Seen on an H200: a 64 ms case read 0 J from NVML's counter and was stored as 0 J and 0 W."""
    stuck = _readings([360.0, 361.0], [1965.0] * 2, energies=[5000.0, 5000.0], dt=0.06)
    s = T.summarize(stuck, "pynvml", power_window_s=P.GPU_POWER_WINDOW_S)
    assert "energy_j" not in s and "avg_power_w" not in s and s["short_window"]
    s = T.summarize(stuck, "test")  # no averaging window: the power samples, never a 0 J counter
    assert s["energy_from"] == "power samples" and s["energy_j"] > 0


def test_a_gpu_case_shorter_than_the_power_window_has_no_per_watt_figure():
    short = T.summarize(_readings([360.0, 361.0], [1965.0] * 2, dt=0.06), "pynvml", power_window_s=P.GPU_POWER_WINDOW_S)
    assert short["short_window"] and "energy_j" not in short
    assert short["power_w"]["median"] == pytest.approx(360.5)  # the readings themselves are kept
    assert P.efficiency(740.0, "TFLOP/s", short) == {}
    long = T.summarize(_readings([690.0] * 8, [1980.0] * 8, dt=0.2), "pynvml", power_window_s=P.GPU_POWER_WINDOW_S)
    assert "short_window" not in long and long["energy_from"] == "power samples"
    assert P.efficiency(740.0, "TFLOP/s", long)["gflop_s_per_w"] == pytest.approx(740e3 / 690.0)


def test_an_advancing_gpu_energy_counter_over_a_short_case_gives_no_per_watt_figure():
    """Seen on an H200 (quick suite): NVML's counter advanced 262 J over a 0.32 s fp32 case, 823 W under
    a 700 W limit. The counter is read at the case's ends only: its update period decides, not the case."""
    short = T.summarize(_readings([600.0, 700.0], [1965.0] * 2, energies=[1000.0, 1262.0], dt=0.32), "pynvml",
                        power_window_s=P.GPU_POWER_WINDOW_S)
    assert short["short_window"] and "energy_j" not in short
    old_file = {"source": "pynvml (physical GPU 0)", "duration_s": 0.32, "energy_j": 262.0, "avg_power_w": 823.0}
    assert P.efficiency(52.0, "TFLOP/s", old_file) == {}   # files written before: judged by their duration
    cpu = {"source": "RAPL + /proc/cpuinfo", "duration_s": 0.32, "energy_j": 20.0, "avg_power_w": 62.5}
    assert P.efficiency(1.0, "TFLOP/s", cpu)["avg_power_w"] == 62.5   # RAPL counts every millisecond


def test_the_sampler_applies_the_window_on_gpus_only(monkeypatch):
    readings = iter([{"power_w": 300.0}, {"power_w": 310.0}] + [{"power_w": 320.0}] * 50)
    monkeypatch.setattr(T, "make_reader", lambda device: (lambda: next(readings), "fake", ""))
    with T.Sampler(types.SimpleNamespace(kind="cuda", torch_device="cuda:0"), interval_s=0.01) as gpu:
        pass
    assert gpu.summary().get("short_window") is True
    readings = iter([{"power_w": 30.0}] * 50)
    with T.Sampler(CPU, interval_s=0.01) as cpu:
        pass
    assert "short_window" not in cpu.summary()
