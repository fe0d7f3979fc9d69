"""What a second output sweep found: figures that contradicted the load, the hardware or each other.
Each case fails on the code before the fix."""
import pytest
from typer.testing import CliRunner

from recoque.catalog import get_device_spec
from recoque.cli import app
from recoque.planner import hpl
from cli_json import cli_json as _json, section_value as _row

runner = CliRunner()


def test_gpus_left_over_by_the_replicas_count_in_the_h100e_and_the_energy():
    six = _json("plan", "infer", "-s", "scaleway", "-m", "llama3.1-70b", "--tp", "4", "--gpus", "6")
    eight = _json("plan", "infer", "-s", "scaleway", "-m", "llama3.1-70b", "--tp", "4", "--gpus", "8")
    # one replica of 4 on 6 GPUs serves what 4 GPUs serve: as many H100e as 4 of 8 would be
    assert six["h100e"]["delivered"]["h100e"]["value"] == pytest.approx(
        eight["h100e"]["delivered"]["h100e"]["value"] / 2, rel=1e-6)
    e6 = _row(six, "inference", "energy per million output tokens")["value"]
    e8 = _row(eight, "inference", "energy per million output tokens")["value"]
    assert e6 == pytest.approx(e8 * 6 / 4, rel=1e-6)
    assert any("2 of 6 GPUs serve nothing" in a for a in six["assumptions"])


def test_a_one_node_stencil_halo_stays_on_the_scale_up_links():
    d = _json("plan", "stencil", "-s", "node-8x-h200", "--grid-points", "2e9")
    assert any("scale-up links inside the node" in a for a in d["assumptions"])
    assert d["stencil"]["halo_share"] < 0.2   # 41.8% over a 50 GB/s NIC that a single node does not use


@pytest.mark.parametrize("load", [["--concurrency", "128"], ["--batch", "32"], ["--mode", "offline"]])
def test_a_percentile_the_load_does_not_model_is_refused(load):
    args = ["plan", "infer", "-s", "node-8x-h100", "-m", "llama3.1-70b", "--percentile", "p99", *load]
    if load[0] != "--mode":
        args += ["--mode", "server"]
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and "--percentile p99 is modelled for server mode" in res.output


def test_users_beyond_the_slots_are_said_to_wait():
    d = _json("plan", "infer", "-s", "node-8x-h100", "-m", "llama3.1-70b", "--mode", "server", "--concurrency", "1024")
    row = next(r for r in d["sections"]["inference"] if r["quantity"].startswith("concurrent users"))
    running = row["value"]["value"]
    assert running < 1024 and f"{1024 - running:,.0f} more of the 1,024 wait for a slot" in row["quantity"]


def test_a_measured_dgemm_never_counts_above_the_datasheet():
    d = _json("plan", "hpl", "-s", "node-8x-h200", "--profile", "seeds/measured/h200.json")
    counted = _row(d, "HPL", "DGEMM rate per GPU (measured)")
    assert counted["high"] <= hpl.fp64_ceiling_flop_s(get_device_spec("h200")) * (1 + 1e-12)


def test_hpl_explanation_for_a_part_counted_like_the_h100():
    d = _json("plan", "hpl", "-s", "node-8x-h200")
    why = d["h100e"]["delivered_vs_peak"]
    assert "both counted at their FP64 matrix (tensor) rate" in why and "vector" not in why
