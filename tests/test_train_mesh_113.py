"""On a mesh scale-up (MI300X: one xGMI link to each of 7 peers) a collective over a subset of a
node's GPUs reaches only the links to its own peers; through switches (NVLink) it keeps the whole rate."""
import numpy as np
import pytest

from recoque.catalog import get_device_spec
from recoque.planner.profile import DeviceProfile
from recoque.planner.system import load_system
from recoque.planner.train import hardware_for
from recoque.planner.train_kernels import group_bw


def hw(system):
    s = load_system(system)
    return hardware_for(s, DeviceProfile.from_datasheet(get_device_spec(s.device)))


def test_a_subset_of_a_mesh_gets_its_peers_links():
    h = hw("node-8x-mi300x")
    assert h.bw_p2p_intra is not None
    assert group_bw(h, 2.0) == pytest.approx(h.bw_p2p_intra)
    assert group_bw(h, 4.0) == pytest.approx(3 * h.bw_p2p_intra)
    assert group_bw(h, 8.0) == pytest.approx(h.bw_intra)        # all 7 links: the whole rate
    assert np.all(np.diff(group_bw(h, np.array([2.0, 3.0, 4.0, 8.0]))) > 0)


def test_through_switches_every_group_keeps_the_whole_rate():
    h = hw("node-8x-h100")
    assert h.bw_p2p_intra is None
    assert group_bw(h, 2.0) == group_bw(h, 8.0) == h.bw_intra


def _tp_comm_s(system, tp):
    import json

    from typer.testing import CliRunner

    from recoque.cli import app

    r = CliRunner().invoke(app, ["plan", "train", "-s", system, "-w", "llama3.1-8b", "--tp", str(tp), "--pp", "1",
                                 "--micro-batch", "1", "--recompute", "full", "--zero", "1", "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)["best"][0]["breakdown_s"]["tp_comm_s"]


def test_tp2_on_a_mesh_pays_for_its_one_link():
    """Llama 3.1 8B on 8 MI300X, TP2 against TP8, per GPU and iteration: TP8 (DP1) runs 4x the
    micro-batches of TP2 (DP4); each TP2 all-reduce moves 1 x S over its one
    link, each TP8 all-reduce 1.75 x S over 7 links: 16 x 1 / 1 = 64 x 1.75 / 7, a ratio of ~1.
    With the whole node rate for every group (before stop 113) it was 0.14."""
    assert 0.7 < _tp_comm_s("node-8x-mi300x", 2) / _tp_comm_s("node-8x-mi300x", 8) < 1.3
