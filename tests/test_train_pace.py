"""A synchronous training step runs at the pace of the job's slowest GPU (planner/pace.py,
train_core.at_slowest_gpu): the spread of identical GPUs' speeds, and what it costs at scale."""
import json
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.planner import pace
from recoque.planner.train import BREAKDOWN_KEYS, hardware_for, plan_arrays
from recoque.planner.train_core import core
from recoque.planner.validation import load_cases, shipped_profile

# E[max of n standard normals], exact (numerical integration): 0.5642 (2), 1.4236 (8), 2.5727 (128)
EXACT_MAX_Z = {2: 0.5642, 8: 1.4236, 128: 2.5727}


def test_one_gpu_waits_on_no_one_and_the_wait_grows_with_the_gpu_count():
    assert pace.slowest_gpu_z(1) == 0.0 and pace.slowdown(1) == 1.0
    for n, z in EXACT_MAX_Z.items():
        assert pace.slowest_gpu_z(n) == pytest.approx(z, rel=0.05)  # Blom's approximation: 4.5% high at n = 2, <1% from 8
    z = pace.slowest_gpu_z(np.array([8.0, 64.0, 1024.0, 16384.0, 8.0]))
    assert z.shape == (5,) and z[0] == z[4] and np.all(np.diff(z[:4]) > 0)
    same = pace.slowest_gpu_z(np.full(3, 64.0))
    assert np.all(same == pace.slowest_gpu_z(64))


def test_the_spread_is_the_sourced_one():
    # 8% whisker span (4 IQR) / median -> 1.5%; the per-GPU SGEMM data's IQR / 1.349 -> 1.7%
    assert 0.015 <= pace.GPU_SPEED_SPREAD <= 0.02
    assert pace.slowdown(1024) == pytest.approx(1.0 + pace.GPU_SPEED_SPREAD * pace.slowest_gpu_z(1024))


def _case(name, file="train_checks.toml"):
    return [c for c in load_cases(file) if c.name == name][0]


def _run(c, plan=None, spread=None, monkeypatch=None):
    if spread is not None:
        monkeypatch.setattr(pace, "GPU_SPEED_SPREAD", spread)
    prof = shipped_profile(c.system.device)
    return core(c.workload, hardware_for(c.system, prof), prof, c.dtype, plan_arrays([plan or c.plan]), stack=c.stack)


def test_the_lag_is_the_compute_times_the_slowdown_and_the_breakdown_still_sums():
    c = _case("mlperf51-llama31-8b-cisco-8x8-h100")  # TP1 PP1 DP64
    out = _run(c)
    n = c.plan.tp * c.plan.pp * c.plan.dp * c.plan.cp
    assert n == 64
    want = out["compute_s"][0] * (pace.slowdown(n) - 1.0)
    assert out["straggler_s"][0] == pytest.approx(want, rel=1e-9) and want > 0
    assert "straggler_s" in BREAKDOWN_KEYS
    assert sum(out[k][0] for k in BREAKDOWN_KEYS) == pytest.approx(out["iteration_time_s"][0], rel=1e-12)


def test_more_gpus_with_the_same_work_each_wait_longer(monkeypatch):
    c = _case("mlperf51-llama31-8b-cisco-8x8-h100")
    small = _run(c, replace(c.plan, dp=8))
    big = _run(c, replace(c.plan, dp=512))
    lag = [o["straggler_s"][0] / o["compute_s"][0] for o in (small, big)]
    assert lag[1] > lag[0] > 0
    one = _run(c, replace(c.plan, dp=1))
    assert one["straggler_s"][0] == 0.0


def test_a_communication_bound_step_hides_part_of_the_lag(monkeypatch):
    # ZeRO-3 530B on 1,120 A100 (Narayanan et al. 2021 Table 2): the gathers set the pace, so the
    # slow GPU's longer compute shrinks the exposed traffic instead of adding to the step
    c = _case("narayanan-zero3-530b-1120", "validation.toml")
    with_lag = _run(c)
    without = _run(c, spread=0.0, monkeypatch=monkeypatch)
    assert without["straggler_s"][0] == 0.0 and with_lag["straggler_s"][0] > 0
    grew = with_lag["iteration_time_s"][0] - without["iteration_time_s"][0]
    assert 0 <= grew < 0.5 * with_lag["straggler_s"][0]


def test_plan_train_json_carries_the_lag():
    res = CliRunner().invoke(app, ["plan", "train", "-w", "gpt3-175b", "-s", "selene", "--gpus", "512",
                                   "--top", "1", "--json", "--tp", "8", "--pp", "8"])
    assert res.exit_code == 0, res.output
    bd = json.loads(res.output)["best"][0]["breakdown_s"]
    assert bd["straggler_s"] > 0
    assert sum(v for k, v in bd.items() if k != "iteration_time_s") == pytest.approx(bd["iteration_time_s"], rel=1e-9)
