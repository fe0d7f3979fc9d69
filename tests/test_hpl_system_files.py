"""Bad system files give one BadInput line (exit 2), never a traceback or a silent default."""
import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner.system import load_system

GOOD = """[systems.mine]
device = "h100_sxm"
gpus = 64
gpus_per_node = 8
intra_node_bandwidth_gb_s = 450
inter_node_bandwidth_gb_s = 50
node_power_kw = 10.2
"""

BAD = {
    # the link bandwidths are optional (an HPL-only file needs none; issue 7): the device is not
    "missing field": (GOOD.replace('device = "h100_sxm"\n', ""), "device"),
    "unknown key": (GOOD + "node_powr_kw = 3\n", "did you mean `node_power_kw`"),
    "NaN": (GOOD.replace("node_power_kw = 10.2", "node_power_kw = nan"), "node_power_kw"),
    "zero node power": (GOOD.replace("node_power_kw = 10.2", "node_power_kw = 0"), "node_power_kw"),
    "negative GPUs": (GOOD.replace("gpus = 64", "gpus = -64"), "gpus"),
    "pue below 1": (GOOD + "pue = 0.9\n", "pue"),
    # before: accepted, and the TOP500 comparison rows vanished without a word
    "misspelt TOP500 machine": (GOOD + 'top500_machine = "jean-zay-h10"\n',
                                "`top500_machine` 'jean-zay-h10' is not a machine of seeds/top500.toml or seeds/hpcg.toml "
                                "(did you mean jean-zay-h100"),
}


def _write(tmp_path, text):
    p = tmp_path / "sys.toml"
    p.write_text(text)
    return str(p)


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_system_file_is_one_clear_line(tmp_path, case):
    text, word = BAD[case]
    with pytest.raises(BadInput) as exc:
        load_system(_write(tmp_path, text))
    line = exc.value.one_line()
    assert word in line and "\n" not in line


@pytest.mark.parametrize("case", ["missing field", "NaN", "zero node power"])
def test_bad_system_file_exits_2_from_plan_hpl(tmp_path, case):
    r = CliRunner().invoke(app, ["plan", "hpl", "--system", _write(tmp_path, BAD[case][0])])
    assert r.exit_code == 2
    assert "Traceback" not in r.output


def test_good_user_system_gets_an_estimate_without_top500_comparison(tmp_path):
    from recoque.planner import hpl

    est = hpl.estimate_hpl(load_system(_write(tmp_path, GOOD)))
    assert est.top500 is None and est.rmax.value == pytest.approx(64 * 66.9e12 * est.efficiency.value)
    assert est.gflops_per_w.value == pytest.approx(est.rmax_per_gpu.value / (10200 / 8) / 1e9)
