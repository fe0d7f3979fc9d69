"""A system file may define the device its system uses ([devices.<key>] in the layout of
seeds/hardware.toml): a GPU the catalog lacks is planned from its datasheet; a bad table is one line."""
import pytest
from typer.testing import CliRunner

from recoque import catalog
from recoque.catalog import get_device_spec
from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner.system import load_system

SYSTEM = """[systems.mine]
device = "{key}"
gpus = 144
gpus_per_node = 72
intra_node_bandwidth_gb_s = 1800
inter_node_bandwidth_gb_s = 100
node_power_kw = 190
"""
DEVICE = """
[devices.{key}]
vendor = "nvidia"
name = "An announced GPU (assumed figures)"
fp64_matrix_tflops = 33
bf16_tflops = 4000
fp8_tflops = 8000
hbm_capacity_gb = 288
hbm_bandwidth_tb_s = 13
tdp_w = 1800
"""


@pytest.fixture(autouse=True)
def _forget_user_devices():
    """A registered device lives for the process: leave the catalog as the other tests expect it."""
    yield
    catalog._USER_DEVICES.clear()


def _write(tmp_path, text, name="sys.toml"):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_a_device_defined_in_the_system_file_is_planned_from_its_datasheet(tmp_path):
    path = _write(tmp_path, SYSTEM.format(key="gpu-x1") + DEVICE.format(key="gpu-x1"))
    assert load_system(path).device == "gpu-x1"
    assert get_device_spec("gpu-x1").peak("bf16") == pytest.approx(4000e12)
    for args in (["plan", "train", "-s", path, "-w", "mistral-7b", "--gpus", "144"],
                 ["plan", "infer", "-s", path, "-w", "llama3.1-8b", "--gpus", "8"],
                 ["plan", "hpl", "-s", path]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 0, (args, r.output)
        assert "mine" in r.output


BAD = {
    "NaN peak": (DEVICE.replace("bf16_tflops = 4000", "bf16_tflops = nan"), "bf16_tflops"),
    "unknown key": (DEVICE.replace("bf16_tflops", "bf16_tflop"), "unknown key"),
    "missing vendor": (DEVICE.replace('vendor = "nvidia"\n', ""), "vendor"),
    "other key than the system's": (DEVICE.replace("[devices.{key}]", "[devices.gpu-y]"), "exactly the system's device"),
    "unknown scale-up topology": (DEVICE.replace("bf16_tflops = 4000", 'bf16_tflops = 4000\nscaleup_topology = "ring"'),
                                  "scaleup_topology"),
    "mesh without its links": (DEVICE.replace("bf16_tflops = 4000", 'bf16_tflops = 4000\nscaleup_topology = "mesh"'),
                               "scaleup_links"),
    "negative exponential rate": (DEVICE.replace("bf16_tflops = 4000", "bf16_tflops = 4000\nexp2_tera_per_s = -1"),
                                  "exp2_tera_per_s"),
    # a zero rate is no figure (it divides): leave the key out instead
    "zero bf16 peak": (DEVICE.replace("bf16_tflops = 4000", "bf16_tflops = 0"), "bf16_tflops must be a finite positive"),
    "zero HBM bandwidth": (DEVICE.replace("hbm_bandwidth_tb_s = 13", "hbm_bandwidth_tb_s = 0"), "hbm_bandwidth_tb_s"),
    "notes not a list": (DEVICE.replace("tdp_w = 1800", "tdp_w = 1800\nnotes = 5"), "notes must be a list of text"),
    "gfx_arch not a list": (DEVICE.replace("tdp_w = 1800", "tdp_w = 1800\ngfx_arch = 5"), "gfx_arch must be a list"),
    "sources not a table": (DEVICE.replace("tdp_w = 1800", "tdp_w = 1800\nsources = 5"), "sources must be a table"),
    "low above high": (DEVICE.replace("bf16_tflops = 4000", "bf16_tflops = 4000\nbf16_tflops_low = 5000\n"
                                      "bf16_tflops_high = 4500"), "bf16_tflops_low 5000 is above"),
    "unknown vendor": (DEVICE.replace('vendor = "nvidia"', 'vendor = "quantum"'), "vendor 'quantum' is not one of"),
    "fractional compute units": (DEVICE.replace("tdp_w = 1800", "tdp_w = 1800\ncompute_units = 132.5"),
                                 "compute_units must be a whole number"),
    "fractional scale-up links": (DEVICE.replace("tdp_w = 1800", "tdp_w = 1800\nscaleup_links = 17.5"),
                                  "scaleup_links must be a whole number"),
    "central figure outside its range": (DEVICE.replace("bf16_tflops = 4000", "bf16_tflops = 4000\nbf16_tflops_low = 4500\n"
                                                        "bf16_tflops_high = 5000"), "outside its own range"),
    "milliwatt board power": (DEVICE.replace("tdp_w = 1800", "tdp_w = 0.001"), "tdp_w 0.001 W is outside"),
    # before: a traceback from the HPL pace model (1e17) or the KV stream count (1e300)
    "FLOP/s given for TFLOP/s": (DEVICE.replace("fp64_matrix_tflops = 33", "fp64_matrix_tflops = 3.3e13"),
                                 "fp64_matrix_tflops = 3.3e+13 is above any device's (1,000,000 at most)"),
    "astronomic memory": (DEVICE.replace("hbm_capacity_gb = 288", "hbm_capacity_gb = 1e300"),
                          "hbm_capacity_gb = 1e+300 is above any device's"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_bad_device_table_is_one_clear_line(tmp_path, case):
    text, word = BAD[case]
    path = _write(tmp_path, SYSTEM.format(key="gpu-x2") + text.format(key="gpu-x2"))
    with pytest.raises(BadInput) as exc:
        load_system(path)
    assert word in exc.value.one_line() and "\n" not in exc.value.one_line()
    r = CliRunner().invoke(app, ["plan", "hpl", "--system", path])
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_a_catalog_device_cannot_be_redefined(tmp_path):
    path = _write(tmp_path, SYSTEM.format(key="h100_sxm") + DEVICE.format(key="h100_sxm"))
    with pytest.raises(BadInput, match="already in the catalog"):
        load_system(path)
    assert get_device_spec("h100_sxm").peak("bf16") == pytest.approx(989.4e12, rel=1e-3)


def test_two_system_files_cannot_give_one_device_key_different_figures(tmp_path):
    """`compare --systems a.toml,b.toml` with [devices.gpu-x3] in both: the second would silently
    replace the first's figures for both systems."""
    a = _write(tmp_path, SYSTEM.format(key="gpu-x3") + DEVICE.format(key="gpu-x3"), "a.toml")
    b = _write(tmp_path, SYSTEM.format(key="gpu-x3") + DEVICE.format(key="gpu-x3").replace("4000", "5000"), "b.toml")
    same = _write(tmp_path, SYSTEM.format(key="gpu-x3") + DEVICE.format(key="gpu-x3"), "same.toml")
    load_system(a)
    load_system(same)  # the same figures again: no conflict
    with pytest.raises(BadInput, match="defined twice with different figures"):
        load_system(b)
    assert get_device_spec("gpu-x3").peak("bf16") == pytest.approx(4000e12)
