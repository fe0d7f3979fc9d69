"""A run's per-communicator NCCL CTA caps (Megatron-Core nccl_communicator_config_path): a capped
context-parallel ring moves at most CTAs x half a scale-up link, collectives keep the bus bandwidth,
and a bad cap or a device without known links is one clear line."""
import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from recoque.catalog import get_device_spec, spec_from_toml
from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner.execution import ExecutionPlan
from recoque.planner import stacks
from recoque.planner.stacks import load_stack
from recoque.planner.train import evaluate, hardware_for
from recoque.planner.train_kernels import capped_bw
from recoque.planner.validation import cases_from_seed, load_cases, shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

WL = replace(load_training_workload("mistral-7b"), global_batch_seqs=16)
SYS = validation_system("meta-llama3-h100")
PROF = shipped_profile("h100_sxm")
RING = ExecutionPlan(tp=1, pp=1, dp=4, cp=2, micro_batch=1, recompute="none", sequence_parallel=False)
CORE = load_stack("megatron-core")


def _t(plan, stack):
    return evaluate(WL, SYS, plan, PROF, stack=stack).iteration_time.value


def test_the_catalog_counts_the_scale_up_links():
    assert get_device_spec("h100_sxm").scaleup_links == 18
    assert get_device_spec("gb200").scaleup_links == 18
    assert get_device_spec("a100_sxm_80gb").scaleup_links == 12
    assert get_device_spec("mi300x").scaleup_links == 7             # Infinity Fabric mesh: not NCCL CTAs
    assert get_device_spec("mi300x").scaleup_topology == "mesh"
    assert "NVLink" in get_device_spec("b200").sources["scaleup_links"]


def test_one_cta_moves_half_a_link():
    hw = hardware_for(SYS, PROF)
    # H100: 450 GB/s one direction over 18 links = 25 GB/s a link, half of it a CTA
    assert hw.cta_bytes_s == pytest.approx(450e9 / 18 / 2)
    one = CORE.with_comm_max_ctas({"cp": 1})
    assert capped_bw(hw.bw_intra, hw, one, "cp") == pytest.approx(12.5e9)
    assert capped_bw(hw.bw_intra, hw, one, "dp") == hw.bw_intra                # not capped: NCCL's own choice
    assert capped_bw(hw.bw_intra, hw, CORE.with_comm_max_ctas({"cp": 64}), "cp") == hw.bw_intra  # never above the link
    # the corners bracket it: a whole link (fast), half a link at the achieved efficiency (slow)
    fast, slow = hardware_for(SYS, PROF, "high"), hardware_for(SYS, PROF, "low")
    assert fast.cta_bytes_s == pytest.approx(2 * hw.cta_bytes_s)
    assert slow.cta_bytes_s == pytest.approx(hw.cta_bytes_s * PROF.intra_link_efficiency.get("value"))


def test_a_capped_ring_slows_a_context_parallel_plan_and_only_it():
    capped = CORE.with_comm_max_ctas({"cp": 1, "dp": 8, "tp": 8, "pp": 2})
    assert _t(RING, capped) > _t(RING, CORE)
    assert evaluate(WL, SYS, RING, PROF, stack=capped).breakdown["cp_comm_s"] > 0.0
    no_cp = replace(RING, cp=1, dp=8)
    assert _t(no_cp, capped) == pytest.approx(_t(no_cp, CORE), rel=1e-12)     # dp/tp caps leave collectives
    # more CTAs never slow the ring
    ts = [_t(RING, CORE.with_comm_max_ctas({"cp": n})) for n in (1, 2, 4, 8, 32)]
    assert all(a >= b for a, b in zip(ts, ts[1:]))
    assert ts[-1] == pytest.approx(_t(RING, CORE), rel=1e-12)


@pytest.mark.parametrize("bad, why", [({"cp": 0}, "integers 1..64"), ({"cp": True}, "integers 1..64"),
                                      ({"cp": 1.5}, "integers 1..64"), ({"ep": 1}, "unknown communicator"),
                                      ([1], "must be a table")])
def test_a_bad_cap_is_one_line(bad, why):
    with pytest.raises(BadInput, match=why):
        CORE.with_comm_max_ctas(bad, "case x")


def test_caps_on_a_device_without_known_links_say_what_to_add():
    sys = replace(SYS, device="mi300x")
    prof = shipped_profile("mi300x")
    with pytest.raises(BadInput, match="known only for NVLink parts") as e:
        evaluate(WL, sys, RING, prof, stack=CORE.with_comm_max_ctas({"cp": 1}))
    assert "scaleup_links" in e.value.fix
    assert evaluate(WL, sys, RING, prof, stack=CORE).iteration_time.value > 0   # no cap: no links needed


def test_a_user_device_may_state_its_links():
    spec = spec_from_toml("mygpu", {"vendor": "nvidia", "name": "x", "scaleup_bandwidth_gb_s": 900, "scaleup_links": 18})
    assert spec.scaleup_links == 18


def test_a_check_case_reads_its_caps():
    seed = {"cases": [{"name": "c", "model": "mistral-7b", "system": "meta-llama3-h100", "global_batch_seqs": 16,
                       "stack": "megatron-core", "nccl_max_ctas": {"cp": 1, "dp": 8},
                       "plan": {"tp": 1, "pp": 1, "dp": 4, "cp": 2, "micro_batch": 1}, "iteration_time_s": 1.0}]}
    (case,) = cases_from_seed(seed, "test")
    assert case.stack.comm_max_ctas == {"cp": 1, "dp": 8}
    assert "NCCL CTAs per communicator capped (cp 1, dp 8)" in case.stack.describe()


def test_the_mlperf_context_parallel_runs_carry_their_caps():
    # NVIDIA's MLPerf v5.1 NeMo recipes cap the cp communicator at one CTA (conf/nccl/custom_communicator_cta.yaml)
    cases = {c.name: c for c in load_cases("train_checks.toml")}
    for name in ("mlperf51-llama31-8b-nv-512-gb200", "mlperf51-llama31-8b-uf-4x8-b200", "mlperf51-llama31-8b-nv-72-gb300"):
        assert cases[name].stack.comm_max_ctas.get("cp") == 1


def test_a_stack_file_may_carry_caps(monkeypatch):
    raw = dict(stacks._raw())
    raw["capped-core"] = {**raw["megatron-core"], "comm_max_ctas": {"cp": 1}}
    raw["bad-core"] = {**raw["megatron-core"], "comm_max_ctas": {"cp": 0}}
    monkeypatch.setattr(stacks, "_raw", lambda: raw)
    assert stacks.load_stack("capped-core").comm_max_ctas == {"cp": 1}
    assert stacks.load_stack("megatron-core").comm_max_ctas == {}
    with pytest.raises(BadInput, match="stack bad-core: NCCL CTA caps"):
        stacks.load_stack("bad-core")


def _cli(*extra):
    r = CliRunner().invoke(app, ["plan", "train", "-w", "llama3.1-8b", "-s", "node-8x-h100", "--gpus", "8",
                                 "--global-batch", "16", "--cp", "2", "--top", "1", "--json", *extra])
    return r, (json.loads(r.output) if r.exit_code == 0 else None)


def test_cli_caps_round_trip_and_slow_the_ring():
    r0, free = _cli()
    r1, capped = _cli("--nccl-max-ctas", "cp=1,dp=8")
    assert r0.exit_code == 0 and r1.exit_code == 0, r1.output
    assert free["nccl_max_ctas"] == {} and capped["nccl_max_ctas"] == {"cp": 1, "dp": 8}
    assert capped["best"][0]["breakdown_s"]["cp_comm_s"] > free["best"][0]["breakdown_s"]["cp_comm_s"]


@pytest.mark.parametrize("bad, why", [("cp1", "is not communicator=count"), ("ep=1", "unknown communicator"),
                                      ("cp=0", "integers 1..64"), (",", "an empty entry")])
def test_cli_bad_caps_are_one_line_and_exit_2(bad, why):
    r, _ = _cli("--nccl-max-ctas", bad)
    assert r.exit_code == 2 and why in r.output and "Traceback" not in r.output


def test_cli_caps_on_an_amd_node_say_what_to_add():
    r = CliRunner().invoke(app, ["plan", "train", "-w", "llama3.1-8b", "-s", "node-8x-mi300x", "--gpus", "8",
                                 "--global-batch", "16", "--top", "1", "--nccl-max-ctas", "cp=1"])
    assert r.exit_code == 2 and "known only for NVLink parts" in r.output and "scaleup_links" in r.output
