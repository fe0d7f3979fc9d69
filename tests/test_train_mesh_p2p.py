"""Point-to-point transfers on a mesh scale-up (AMD Infinity Fabric: each peer behind its own xGMI link)
get one link's share of the per-GPU bandwidth; through NVSwitch they get all of it."""
from dataclasses import replace

import pytest

from recoque.catalog import get_device_spec, spec_from_toml
from recoque.errors import BadInput
from recoque.planner.execution import ExecutionPlan
from recoque.planner.stacks import load_stack
from recoque.planner.train import evaluate, hardware_for
from recoque.planner.train_kernels import capped_bw
from recoque.planner.validation import shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

MI300X_SYS = validation_system("mlperf-8x-mi300x")


def test_cdna3_and_cdna4_parts_are_stated_as_a_seven_link_mesh_with_a_source():
    for dev in ("mi300x", "mi325x", "mi350x", "mi355x"):
        spec = get_device_spec(dev)
        assert (spec.scaleup_topology, spec.scaleup_links) == ("mesh", 7), dev
        assert "one link" in spec.sources["scaleup_topology"], dev
    assert get_device_spec("h100_sxm").scaleup_topology == "switch"


@pytest.mark.parametrize("raw,what", [({"scaleup_topology": "torus", "scaleup_links": 4}, "scaleup_topology"),
                                      ({"scaleup_topology": "mesh"}, "scaleup_links")])
def test_bad_topology_entries_are_refused(raw, what):
    with pytest.raises(BadInput, match=what):
        spec_from_toml("x", {"vendor": "amd", "name": "X", **raw})


def test_one_peer_gets_one_link_on_the_mesh_and_everything_through_switches():
    p = shipped_profile("mi300x")
    hw = hardware_for(MI300X_SYS, p)
    assert hw.bw_p2p_intra == pytest.approx(hw.bw_intra / 7)
    # about the 45-48 GB/s AMD's TransferBench measures point to point (xGMI blog)
    assert 35e9 < hw.bw_p2p_intra < 64e9
    stack = load_stack("megatron-core")
    assert capped_bw(hw.bw_intra, hw, stack, "cp") == pytest.approx(hw.bw_p2p_intra)
    nv = hardware_for(validation_system("meta-llama3-h100"), shipped_profile("h100_sxm"))
    assert nv.bw_p2p_intra is None and capped_bw(nv.bw_intra, nv, stack, "pp") == nv.bw_intra


def test_pipeline_sends_cost_more_on_the_mesh_than_through_a_switch():
    wl = replace(load_training_workload("llama2-70b"), global_batch_seqs=64)
    plan = ExecutionPlan(tp=2, pp=4, dp=1, micro_batch=1, recompute="full")
    mesh = shipped_profile("mi300x")
    switch = replace(mesh, spec=replace(mesh.spec, scaleup_topology="switch"))
    t_mesh, t_switch = (evaluate(wl, MI300X_SYS, plan, p) for p in (mesh, switch))
    assert t_mesh.breakdown["p2p_s"] > t_switch.breakdown["p2p_s"] > 0.0
    assert t_mesh.breakdown["compute_s"] == pytest.approx(t_switch.breakdown["compute_s"])
