"""Sweep 6: figures that disagreed with each other or with their own stated arithmetic."""
from cli_json import cli_json, runner, section_value

from recoque.cli import app
from recoque.planner.system import load_system


def test_a_system_range_names_its_file_key_unit_and_source():
    note = load_system("alice-recoque").estimate("node_power_w", "W").assumptions[0]
    assert note.startswith("alice-recoque node_power_kw 4.5..7.5: U")


def test_pins_print_as_typed():
    d = cli_json("plan", "train", "-s", "jean-zay-h100", "-w", "llama3.1-8b", "--gpus", "8", "--recompute", "full",
                 "--pp", "2", "--vpp", "2", "--no-sp", "--top", "1")
    line = d["reasons"][-1]
    assert "--recompute full" in line and "--vpp 2" in line and "--no-sp" in line and "recompute=" not in line


def test_a_reshard_pin_is_a_zero3_pin():
    refused = runner.invoke(app, ["plan", "train", "-s", "jean-zay-h100", "-w", "llama3.1-8b", "--gpus", "8",
                                  "--no-reshard-after-forward"])
    assert refused.exit_code != 0 and "--zero 3" in refused.output   # megatron-core runs no ZeRO-3
    d = cli_json("plan", "train", "-s", "jean-zay-h100", "-w", "llama3.1-8b", "--gpus", "8", "--stack", "fsdp",
                 "--no-reshard-after-forward", "--top", "3")
    assert d["pins"]["zero"] == 3
    assert all(b["plan"]["zero_stage"] == 3 and b["plan"]["reshard_after_forward"] is False for b in d["best"])


def test_json_says_the_dtype_and_no_fp8_gather_in_bf16():
    d = cli_json("plan", "train", "-s", "jean-zay-h100", "-w", "llama3.1-8b", "--gpus", "8", "--top", "1")
    assert d["dtype"] == "bf16" and d["fp8_param_gather"] is False


def test_system_serving_rows_span_an_uncertain_gpu_count():
    d = cli_json("plan", "-s", "alice-recoque", "-w", "le-chat")
    reps = section_value(d, "inference", "replicas")
    assert (reps["low"], reps["high"]) == (4106, 9068)
    per_gpu = section_value(d, "inference", "output tokens/s per GPU")
    system = section_value(d, "inference", "output tokens/s, system")
    assert abs(system["high"] / (per_gpu["high"] * 9068) - 1) < 1e-6   # one GPU per replica


def test_a_targeted_latency_stays_within_its_target():
    d = cli_json("plan", "-s", "alice-recoque", "-w", "inference-fleet")
    tpot = section_value(d, "inference", "time per output token")
    assert tpot["high"] <= 0.030 + 1e-12   # the workload's TPOT <= 30 ms


def test_a_capped_hpl_table_multiplies_out():
    d = cli_json("plan", "-s", "frontier", "-w", "hpl", "--power-limit-w", "400")
    clock = float(section_value(d, "HPL", "compute clock under the power cap").split()[1])
    rate, eff = section_value(d, "HPL", "HPL rate per GPU")["value"], section_value(d, "HPL", "HPL efficiency")["value"]
    per_gpu = section_value(d, "HPL", "Rmax per GPU")["value"]
    assert abs(rate * eff * clock / per_gpu - 1) < 0.01


def test_the_hpcg_label_says_assumed_without_a_family_reference():
    d = cli_json("plan", "-s", "alice-recoque", "-w", "hpcg")
    assert any(r["quantity"].startswith("HPCG: HBM efficiency") and r["quantity"].endswith("(no family reference: ASSUMED)") for r in d["sections"]["stencil"])


def test_a_paced_hpl_efficiency_says_so():
    d = cli_json("plan", "-s", "frontier", "-w", "hpl")
    assert any("total Rmax at the median GPU's pace" in a for a in d["assumptions"])


def test_a_counter_that_did_not_advance_gives_no_per_watt_figure():
    from recoque.bench.power import efficiency

    assert efficiency(700.0, "TFLOP/s", {"energy_j": 0.0, "avg_power_w": 0.0, "power_w": {"median": 361.4}}) == {}
    assert efficiency(700.0, "TFLOP/s", {"energy_j": 50.0, "avg_power_w": 500.0})["gflop_s_per_w"] == 1400.0


def test_the_electricity_check_quotes_the_eligible_range_it_computes():
    # the verdict is now held against the supply range (stop 115); the eligible range stays in the arithmetic
    d = cli_json("check", "--claim", "electricity-70eur")
    claim = d["claims"][0] if "claims" in d else d[0]
    assert any("- 5.7 network-fee discount = 86.3 (72.3..97.2) EUR/MWh" in line for line in claim["arithmetic"])


def test_the_h100e_band_says_it_is_a_factor():
    d = cli_json("check", "--claim", "h100e-25000")
    claim = d["claims"][0] if "claims" in d else d[0]
    assert any("a factor 1.15 either way" in line for line in claim["arithmetic"])
