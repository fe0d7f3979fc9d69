"""bench/power.py: energy from counters and from power samples, throttling, GFLOP/s per W, RAPL on a fake
sysfs tree (with counter wrap-around), and the one 'power unavailable' note."""
import pytest

from recoque.bench import power as P


def _readings(powers, clocks, energies=None, dt=0.5):
    out = []
    for i, (p, c) in enumerate(zip(powers, clocks)):
        out.append(P.Reading(t_s=100.0 + i * dt, power_w=p, clock_mhz=c,
                             energy_j=None if energies is None else energies[i]))
    return out


def test_energy_from_power_samples_is_the_trapezoid_integral():
    s = P.summarize(_readings([100.0, 200.0, 200.0], [2000.0] * 3), "test")
    # 0.5 s at (100+200)/2 + 0.5 s at 200 = 75 + 100 J over 1 s
    assert s["energy_j"] == pytest.approx(175.0)
    assert s["avg_power_w"] == pytest.approx(175.0)
    assert s["energy_from"] == "power samples"
    assert s["power_w"]["max"] == 200.0 and s["throttled"] is False


def test_energy_counter_wins_over_samples():
    s = P.summarize(_readings([100.0] * 3, [2000.0] * 3, energies=[5000.0, 5200.0, 5300.0]), "test")
    assert s["energy_j"] == pytest.approx(300.0) and s["avg_power_w"] == pytest.approx(300.0)
    assert s["energy_from"] == "counter"


def test_throttling_is_a_clock_drop_under_load():
    steady = [2100.0] * 16
    dropping = [2100.0] * 8 + [1800.0] * 8
    assert not P.throttled(steady)
    assert P.throttled(dropping)
    assert not P.throttled(dropping[:6])  # too few samples to say
    s = P.summarize(_readings([700.0] * 16, dropping), "test")
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


def test_sampler_with_a_source_collects_and_summarizes(tmp_path):
    _fake_rapl(tmp_path, 1_000_000, span=10**12)
    reader = P.rapl_source(str(tmp_path))
    s = P.PowerSampler(source=reader, source_name="rapl", interval_s=0.01)
    with s:
        (tmp_path / "intel-rapl:0" / "energy_uj").write_text("3000000\n")  # +2 J
    out = s.summary()
    assert out["source"] == "rapl"
    assert out["energy_j"] == pytest.approx(2.0)
    assert out["samples"] and out["samples"][0]["t_s"] == 0


def test_unavailable_power_says_so_once(capsys, monkeypatch):
    monkeypatch.setattr(P, "_NOTED", set())
    monkeypatch.setattr(P, "rapl_source", lambda root="/sys/class/powercap": (_ for _ in ()).throw(
        PermissionError("energy_uj is not readable")))
    for _ in range(3):
        with P.PowerSampler(None, interval_s=0.01) as s:
            pass
    err = capsys.readouterr().err
    assert err.count("power unavailable") == 1 and "energy_uj is not readable" in err
    assert s.summary()["source"] == "none" and "power unavailable" in s.summary()["note"]
