"""An MI250X package is two GPUs to ROCm: training and serving plan on GCDs, HPL keeps packages."""
import json

import pytest
from typer.testing import CliRunner

from recoque.catalog import get_device_spec, spec_from_toml
from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner import energy
from recoque.planner.capacity import planned_shown, resolve_system
from recoque.planner.equivalents import peak_equivalents
from recoque.planner.system import as_shown, load_system


def test_frontier_is_planned_on_twice_as_many_gcds_with_half_a_nic_each():
    pkg = load_system("frontier")
    gcd = as_shown(pkg)
    assert gcd.device == "mi250x_gcd"
    assert gcd.gpus == 2 * pkg.gpus and gcd.gpus_per_node == 8
    assert gcd.nodes == pkg.nodes
    assert gcd.inter_node_bandwidth_bytes_s == pytest.approx(12.5e9)  # one 25 GB/s NIC per MI250X
    lo, hi = pkg.ranges["intra_node_bandwidth_bytes_s"]
    assert gcd.ranges["intra_node_bandwidth_bytes_s"] == pytest.approx((lo / 2, hi / 2))
    assert "--gpus and --power-limit-w count these GPUs" in gcd.notes[-1]


def test_the_gcd_view_keeps_the_power_and_the_peak_totals():
    pkg = load_system("lumi-g")
    gcd = as_shown(pkg)
    assert energy.per_year(gcd).energy.value == pytest.approx(energy.per_year(pkg).energy.value)
    for a, b in zip(peak_equivalents(pkg), peak_equivalents(gcd)):
        if a.h100e is not None:
            assert b.h100e.value == pytest.approx(a.h100e.value)


def test_a_device_shown_as_itself_is_unchanged():
    s = load_system("jean-zay-h100")
    assert as_shown(s) is s


def test_hpl_counts_packages_and_serving_counts_gcds():
    assert not planned_shown("hpl") and planned_shown("llmaas") and planned_shown("llama2-70b")
    assert resolve_system("lumi-g", 100, shown=planned_shown("hpl")).device == "mi250x"
    served = resolve_system("lumi-g", 100, 200.0, shown=planned_shown("llmaas"))
    assert (served.device, served.gpus, served.gpu_power_limit_w) == ("mi250x_gcd", 100, 200.0)


def test_shown_as_needs_its_count():
    raw = {"vendor": "amd", "name": "x", "shown_as": "mi250x_gcd"}
    with pytest.raises(BadInput, match="shown_per_package"):
        spec_from_toml("x", raw)
    raw["shown_per_package"] = 1
    with pytest.raises(BadInput, match=">= 2"):
        spec_from_toml("x", raw)
    assert get_device_spec("mi250x").shown_per_package == 2


def test_plan_train_gpus_counts_gcds_and_fits_a_gcd():
    out = CliRunner().invoke(app, ["plan", "train", "-s", "adastra-mi250x", "-w", "llama2-70b", "--gpus", "32",
                                   "--top", "1", "--json"])
    assert out.exit_code == 0, out.output
    d = json.loads(out.output)
    assert d["gpus"] == 32
    best = d["best"][0]
    assert best["memory_per_gpu"]["value"] <= 64e9   # one GCD's HBM, not the package's 128 GB
    assert any("2 GPUs to ROCm" in a for a in best["assumptions"])


def _budget_line(engine: str) -> str:
    out = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h200", "-w", "deepseek-r1", "--engine", engine,
                                   "--attention-dp", "--tp", "8", "--ep", "8", "--json"])
    assert out.exit_code == 0, out.output
    return next(a for a in json.loads(out.output)["assumptions"] if a.startswith("step token budget"))


def test_sglang_shares_its_step_budget_over_the_attention_dp_ranks():
    # SGLang divides --chunked-prefill-size by the DP size (server_args _handle_data_parallelism);
    # TensorRT-LLM's max_num_tokens holds per rank
    assert _budget_line("sglang").startswith("step token budget 8192 tokens per replica")
    assert "shared by the 8 attention-DP ranks" in _budget_line("sglang")
    assert _budget_line("trtllm").startswith("step token budget 65536 tokens per replica")


def test_the_flags_count_the_gpus_the_plan_prints():
    # the fastest count printed can be passed back; the cap is per GCD (250 W board power)
    fast = CliRunner().invoke(app, ["plan", "train", "-s", "lumi-g", "-w", "llama2-70b", "--gpus", "20480",
                                    "--power-limit-w", "250", "--top", "1", "--json"])
    assert fast.exit_code == 0, fast.output
    assert json.loads(fast.output)["gpus"] == 20480
    over = CliRunner().invoke(app, ["plan", "train", "-s", "lumi-g", "-w", "llama2-70b", "--power-limit-w", "300"])
    assert over.exit_code != 0 and "250" in over.output
    hpl = CliRunner().invoke(app, ["plan", "-s", "lumi-g", "-w", "hpl", "--gpus", "11664", "--json"])
    assert hpl.exit_code == 0, hpl.output   # HPL keeps the TOP500's packages
