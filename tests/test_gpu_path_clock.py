"""The CPU clock behind the computed peaks is the highest probe seen on this host, rounded, so
a busy run does not lower the peak; and it is part of the fingerprint (no mixed peaks on --append)."""
import json

from recoque.bench import devices, environment


def test_clock_keeps_the_highest_probe_and_rounds_down(tmp_path):
    path = str(tmp_path / "clock.json")
    assert devices.stable_clock_hz(3.5237e9, "cpu-a", path) == (3.5e9, 1)
    assert devices.stable_clock_hz(2.31e9, "cpu-a", path) == (3.5e9, 2)  # a slow (busy) probe lowers nothing
    assert devices.stable_clock_hz(3.571e9, "cpu-a", path) == (3.55e9, 3)
    assert devices.stable_clock_hz(2.0e9, "cpu-b", path) == (2.0e9, 1)  # per CPU model
    assert json.loads(open(path).read())["cpu-a"]["runs"] == 3


def test_unreadable_cache_is_ignored(tmp_path):
    path = tmp_path / "clock.json"
    path.write_text("not json")
    assert devices.stable_clock_hz(3.0e9, "x", str(path)) == (3.0e9, 1)


def test_the_clock_is_recorded_but_not_in_the_fingerprint():
    # the clock is measured each run (on a VM without cpufreq, the highest probe so far, which only
    # rises): in the fingerprint it made one host "another machine" at every run; bench compare lists
    # it apart (VOLATILE_ENV) so a clock change still shows beside the ratios
    from recoque.bench.compare import VOLATILE_ENV

    env = {"hostname": "h", "cpu_clock_hz": 3.5e9}
    assert environment.fingerprint(env) == environment.fingerprint(dict(env, cpu_clock_hz=3.55e9))
    assert environment.same_machine(env, dict(env, cpu_clock_hz=3.0e9)) == (True, [])
    assert "cpu_clock_hz" in VOLATILE_ENV
