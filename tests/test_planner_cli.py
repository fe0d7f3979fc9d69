"""`recoque plan train` through the CLI."""
import json

from typer.testing import CliRunner

from recoque.cli import app

runner = CliRunner()


def test_plan_train_table():
    res = runner.invoke(app, ["plan", "train", "--workload", "gpt3-175b", "--system", "selene", "--gpus", "1024",
                              "--top", "2"])
    assert res.exit_code == 0, res.output
    assert "MFU" in res.output and "assumptions" in res.output and "goodput" in res.output


def test_plan_train_json_same_content():
    res = runner.invoke(app, ["plan", "train", "-w", "bloom-176b", "-s", "jean-zay-a100", "-n", "384", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    b = d["best"][0]
    for k in ("iteration_time", "tokens_per_s", "time_to_train", "time_to_train_wall", "model_flop_s_per_gpu",
              "mfu", "hfu", "memory_per_gpu", "comm_share"):
        assert b[k]["low"] <= b[k]["value"] <= b[k]["high"], k
    p = b["plan"]
    assert d["evaluated"] > 0 and p["tp"] * p["pp"] * p["dp"] * p["cp"] == 384  # context parallelism counts too


def test_unknown_workload_lists_presets():
    res = runner.invoke(app, ["plan", "train", "-w", "nope", "-s", "selene", "-n", "8"])
    assert res.exit_code == 2 and "bloom-176b" in res.output


def test_unknown_system_lists_presets():
    res = runner.invoke(app, ["plan", "train", "-w", "gpt3-175b", "-s", "nope", "-n", "8"])
    assert res.exit_code == 2 and "selene" in res.output


def test_impossible_request_says_why():
    res = runner.invoke(app, ["plan", "train", "-w", "llama3-405b", "-s", "selene", "-n", "8"])
    assert res.exit_code == 3
    assert "does not fit" in res.output and "GB per GPU" in res.output


def test_measured_profile_from_results(tmp_path):
    from pathlib import Path

    fx = Path(__file__).parent / "fixtures" / "planner_results_v2.json"
    sysf = tmp_path / "h100.toml"
    sysf.write_text('[systems.h100-test]\ndevice = "h100_sxm"\ngpus = 64\ngpus_per_node = 8\n'
                    'intra_node_bandwidth_gb_s = 450\ninter_node_bandwidth_gb_s = 50\n')
    res = runner.invoke(app, ["plan", "train", "-w", "mistral-7b", "-s", str(sysf), "-n", "64", "--profile", str(fx),
                              "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["profile_origin"] == "measured"
    assert any("measured curve" in a for a in d["best"][0]["assumptions"])


def test_plan_with_nothing_to_plan_shows_help_and_exits_2():
    res = runner.invoke(app, ["plan"])
    assert res.exit_code == 2 and "--workload" in res.output and "train" in res.output
