"""A GPU power limit below the board power (system `gpu_power_limit_w`, planner/power.py): compute
slows by (limit / board power) ** exponent, memory-bound work does not, a measured profile is not
slowed twice, node power drops, and a bad limit is one clear line where the file enters."""
import dataclasses
import json
import math

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner import energy, power
from recoque.planner.serving_rates import load_engine, rate_set
from recoque.planner.system import load_system, system_from_toml
from recoque.planner.train import hardware_for
from recoque.planner.validation import training_profile
from recoque.catalog import get_device_spec

NODE = {"device": "h100_sxm", "gpus": 8, "gpus_per_node": 8, "intra_node_bandwidth_gb_s": 450,
        "inter_node_bandwidth_gb_s": 50, "node_power_kw": 10.2, "pue": 1.2}


def _system(**extra):
    return system_from_toml("capped", {**NODE, **extra})


def _user_file(tmp_path, limit_w):
    f = tmp_path / "s.toml"
    f.write_text("[systems.capped]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in NODE.items())
                 + f"gpu_power_limit_w = {limit_w}\n")
    return str(f)


def test_the_clock_follows_the_stated_power_law():
    e = power.clock_exponent()
    assert 0 < e <= 1
    assert power.clock_factor(_system()) == 1.0
    assert power.clock_factor(_system(gpu_power_limit_w=700)) == 1.0  # at the board power: no change
    assert power.clock_factor(_system(gpu_power_limit_w=500)) == pytest.approx((500 / 700) ** e)
    # the exponent is the MI355X / MI350X pair it is sourced from: 1400 W -> 1000 W gives their rate ratio
    assert (1000 / 1400) ** e == pytest.approx(99.709 / 122.929, rel=2e-3)


@pytest.mark.parametrize("bad, why", [(800, "800 W is above the h100_sxm board power"), (0, "finite positive"),
                                      (float("nan"), "finite positive"), ("500", "finite positive")])
def test_a_bad_limit_is_refused_where_the_file_enters(bad, why):
    with pytest.raises(BadInput, match=why):
        _system(gpu_power_limit_w=bad)


def test_a_limit_is_one_setting_not_a_range():
    with pytest.raises(BadInput, match="one setting"):
        _system(gpu_power_limit_w=500, gpu_power_limit_w_low=400)


def test_a_bad_limit_in_a_user_file_is_one_line_and_exit_2(tmp_path):
    r = CliRunner().invoke(app, ["plan", "train", "-s", _user_file(tmp_path, 900), "-w", "llama3.1-8b"])
    assert r.exit_code == 2 and "a GPU power limit of 900 W is above" in r.output and "Traceback" not in r.output


def _iteration_s(system):
    r = CliRunner().invoke(app, ["plan", "train", "-s", system, "-w", "llama3.1-8b", "--gpus", "8", "--tp", "1",
                                 "--pp", "1", "--micro-batch", "1", "--json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)["best"][0]
    return d["iteration_time"]["value"], d["assumptions"]


def test_training_slows_by_at_most_the_clock_ratio(tmp_path):
    f = _user_file(tmp_path, 500)
    t_cap, notes = _iteration_s(f)
    t_full, _ = _iteration_s("node-8x-h100")
    c = power.clock_factor(load_system(f))
    # compute-bound kernels slow by 1/c, HBM-bound ones not at all: the step lands in between
    assert t_full < t_cap < t_full / c
    assert t_cap > t_full * (1 + 0.6 * (1 / c - 1))  # an 8B step on one node is mostly GEMM time
    assert any("capped at 500 W of 700 W" in n for n in notes)


def test_a_measured_profile_is_not_slowed_again():
    sys_ = _system(gpu_power_limit_w=500)
    shipped = training_profile(get_device_spec("h100_sxm"))
    measured = dataclasses.replace(shipped, origin="measured")
    assert hardware_for(sys_, shipped).clock_factor == pytest.approx(power.clock_factor(sys_))
    assert hardware_for(sys_, measured).clock_factor == 1.0
    assert "already holds the limit" in power.note(sys_, measured)


def test_serving_scales_compute_rates_not_memory():
    spec, eng = get_device_spec("h100_sxm"), load_engine("vllm")
    full = rate_set(spec, _system(), "bf16", 1, eng).rates["value"]
    cap = rate_set(spec, _system(gpu_power_limit_w=500), "bf16", 1, eng).rates["value"]
    c = power.clock_factor(_system(gpu_power_limit_w=500))
    assert cap.gemm_flop_s == pytest.approx(full.gemm_flop_s * c)
    assert cap.attention_flop_s == pytest.approx(full.attention_flop_s * c)
    assert cap.hbm_bytes_s == full.hbm_bytes_s


def test_node_power_drops_by_the_gpus_shed_watts():
    full = energy.it_power(_system())
    cap = energy.it_power(_system(gpu_power_limit_w=500))
    assert full.value - cap.value == pytest.approx(8 * (700 - 500))
    assert any("takes 1600 W off a node at full load" in a for a in cap.assumptions)
    ranged = {**NODE, "node_power_kw_low": 6.5, "node_power_kw_high": 10.2}
    lo_full = energy.it_power(system_from_toml("r", ranged))
    lo_cap = energy.it_power(system_from_toml("r", {**ranged, "gpu_power_limit_w": 500}))
    assert lo_cap.high == pytest.approx(lo_full.high - 1600) and lo_cap.low == lo_full.low  # 6.5 kW < 10.2 - 1.6
    assert math.isclose(energy.capped_watts_per_node(_system()), 0.0)


def test_the_law_holds_on_the_same_die_pairs_it_was_not_set_on():
    from recoque.fileio import read_seed_toml

    checks = read_seed_toml("validation.toml")["power_cap"]["checks"]
    assert len(checks) >= 3
    e = power.clock_exponent()
    errors = {k: (c["high_power_w"] / c["low_power_w"]) ** e / c["rate_ratio"] - 1 for k, c in checks.items()}
    assert all(abs(x) < 0.08 for x in errors.values()), errors  # the weakest: a short MAMF burst, +7%
    assert sorted(abs(x) for x in errors.values())[len(errors) // 2] < 0.02  # the typical pair within 2%


def test_the_bench_records_the_limit_the_gpu_ran_under(monkeypatch):
    from types import SimpleNamespace

    from recoque.bench import environment

    seen = []
    monkeypatch.setattr(environment, "_smi_line", lambda cmd: seen.append(cmd) or "500.00")
    gpu = SimpleNamespace(kind="cuda", torch_device="cuda:1")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert environment._power_limit_w(gpu) == 500.0 and "--id=1" in seen[0] and "--query-gpu=power.limit" in seen[0]
    monkeypatch.setattr(environment, "_smi_line", lambda cmd: "[N/A]")
    assert environment._power_limit_w(gpu) is None  # unreadable: the key is left out, not guessed
    assert environment._watts(5e8, 1e-6) == 500.0 and environment._watts(2.0, 1.0) is None


def test_a_measured_profile_says_the_limit_it_was_measured_at():
    from types import SimpleNamespace

    from recoque.planner.profile import DeviceProfile

    doc = SimpleNamespace(results=(), device={"name": "NVIDIA H100 80GB HBM3"},
                          environment={"gpu_power_limit_w": 500.0}, select=lambda *a, **k: [])
    prof = DeviceProfile.from_results(doc, get_device_spec("h100_sxm"))
    assert prof.assumptions[0].endswith("measured with the GPU limited to 500 W of 700 W board power")


def test_hpl_slows_by_the_clock_ratio_and_skips_the_top500_comparison():
    from recoque.planner import hpl
    from recoque.planner.system import load_system

    full = hpl.estimate_hpl(_system())
    cap = hpl.estimate_hpl(_system(gpu_power_limit_w=500))
    c = power.clock_factor(_system(gpu_power_limit_w=500))
    assert cap.rmax.value == pytest.approx(full.rmax.value * c)  # DGEMM-bound: the whole clock ratio
    assert cap.it_power.value == pytest.approx(full.it_power.value - 8 * 200)
    frontier = load_system("frontier")  # MI250X, 500 W board power
    assert hpl.estimate_hpl(frontier).top500 is not None
    got = hpl.estimate_hpl(dataclasses.replace(frontier, gpu_power_limit_w=400.0))
    assert got.top500 is None and "board power" in got.note


@pytest.mark.parametrize("args", [["plan", "train", "-w", "llama3.1-8b", "--gpus", "8", "--tp", "1", "--pp", "1",
                                   "--micro-batch", "1"],
                                  ["plan", "hpl"], ["plan", "infer", "-w", "llama3.1-8b"],
                                  ["plan", "--workload", "hpl"]])
def test_the_flag_caps_a_preset_on_every_plan_command(args):
    runner = CliRunner()
    full = runner.invoke(app, args + ["-s", "node-8x-h100", "--json"])
    cap = runner.invoke(app, args + ["-s", "node-8x-h100", "--json", "--power-limit-w", "500"])
    assert full.exit_code == 0 and cap.exit_code == 0, cap.output
    assert "capped at 500 W of 700 W" in cap.output and "capped at" not in full.output
    assert json.loads(cap.output) != json.loads(full.output)


def test_the_flag_above_the_board_power_is_one_line_and_exit_2():
    r = CliRunner().invoke(app, ["plan", "hpl", "-s", "node-8x-h100", "--power-limit-w", "800"])
    assert r.exit_code == 2 and "a GPU power limit of 800 W is above the h100_sxm board power" in r.output
    r = CliRunner().invoke(app, ["compare", "--systems", "node-8x-h100,node-8x-h200", "--power-limit-w", "0"])
    assert r.exit_code == 2 and "--power-limit-w" in r.output


def test_mi350x_serving_rates_are_the_mi355x_rates_at_its_board_power():
    """seeds/serving.toml [rates.mi350x] is derived, not measured: the MI355X figures with the compute
    ones slowed by the clock law from 1400 W to the MI350X's 1000 W, and the HBM ones unchanged (the
    same stacks; a power limit lowers the core clock). A change to either table or to the law
    without the other shows here."""
    from recoque.fileio import read_seed_toml
    rates = read_seed_toml("serving.toml")["rates"]
    fast, slow = rates["mi355x"], rates["mi350x"]
    clock = (get_device_spec("mi350x").tdp_w / get_device_spec("mi355x").tdp_w) ** power.clock_exponent()
    for key in ("bf16_gemm_tflops", "fp8_gemm_tflops", "fp4_gemm_tflops"):
        for end in ("", "_low", "_high"):
            assert slow[key + end] == pytest.approx(fast[key + end] * clock, abs=0.1), key + end
    for end in ("", "_low", "_high"):
        assert slow["hbm_read_tb_s" + end] == fast["hbm_read_tb_s" + end]
