"""What the third bad-input sweep found and stop 37 mended: named training workloads and model
files where a workload is asked, one --gpus rule for every plan, a case-blind --percentile, a
checked RECOQUE_PROGRESS, readable memory figures, one line per signal, no lock file left behind."""
import json
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.cli import _edge, app
from recoque.errors import BadInput
from recoque.planner.workloads import training_target

FIXTURES = Path(__file__).parent / "fixtures"
runner = CliRunner()


def _ok(args: list[str]) -> dict:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, (args, r.output)
    return json.loads(r.stdout)


def test_a_named_training_workload_trains_its_model_on_its_tokens():
    assert training_target("bloom-pretrain", None) == ("bloom-176b", 3.66e11)
    assert training_target("bloom-pretrain", 1e12) == ("bloom-176b", 1e12)  # --tokens wins
    assert training_target("gpt3-175b", None) == ("gpt3-175b", None)  # a model preset passes through
    data = _ok(["plan", "train", "-s", "alice-recoque", "-w", "bloom-pretrain", "--gpus", "1024"])
    assert data["workload"] == "bloom-176b" and data["tokens_to_train"] == pytest.approx(3.66e11)


def test_a_serving_workload_is_not_a_training_run():
    with pytest.raises(BadInput) as exc:
        training_target("le-chat", None)
    assert "not a training run" in exc.value.one_line() and "recoque plan -s SYSTEM -w le-chat" in exc.value.one_line()


def test_plan_takes_a_model_file_as_its_workload():
    data = _ok(["plan", "-s", "alice-recoque", "-w", str(FIXTURES / "user_model.toml")])
    assert data["kind"] == "model" and "training" in data["sections"]
    r = runner.invoke(app, ["plan", "-s", "alice-recoque", "-w", "no-such-file.toml"])
    assert r.exit_code == 2 and "no such file" in r.output


def test_plan_train_takes_gpus_up_to_the_high_end_of_a_published_range():
    """alice-recoque's count is a range (central 5,109, high 9,068): every plan takes up to the high end."""
    data = _ok(["plan", "train", "-s", "alice-recoque", "-w", "mistral-7b", "--gpus", "6144"])
    assert data["gpus"] == 6144
    r = runner.invoke(app, ["plan", "train", "-s", "alice-recoque", "-w", "mistral-7b", "--gpus", "9100"])
    assert r.exit_code == 2 and "more than the 9,068 GPUs" in r.output


def test_percentile_is_case_blind():
    # a percentile applies under Poisson arrivals: server mode with a latency target
    base = ["plan", "infer", "-s", "alice-recoque", "--model", "mistral-7b", "--mode", "server", "--tpot-ms", "50",
            "--percentile"]
    assert _ok([*base, "P99"]) == _ok([*base, "p99"])


def test_an_unknown_progress_mode_is_one_line_before_measuring(monkeypatch, tmp_path):
    monkeypatch.setenv("RECOQUE_PROGRESS", "bogus")
    # the cheapest real run (STREAM sizes its arrays from the last-level cache: a minute on a 480 MiB one)
    r = runner.invoke(app, ["bench", "gemm", "--quick", "--device", "cpu", "--dtype", "fp16",
                            "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 2 and "RECOQUE_PROGRESS='bogus' is not a progress mode" in r.output
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


def test_a_workspace_larger_than_memory_reads_as_one_figure_and_names_its_flag():
    r = runner.invoke(app, ["plan", "infer", "-s", "alice-recoque", "--model", "mistral-7b",
                            "--max-num-tokens", str(2 ** 40)])
    assert r.exit_code == 3, r.output
    assert "51,791,396 GB workspace" in r.output and "lower --max-num-tokens" in r.output


def test_a_signal_is_said_once_however_many_layers_catch_it(capsys):
    _edge._SAID.clear()
    exc = KeyboardInterrupt()
    assert _edge.interrupted(exc) == 128 + signal.SIGINT
    assert _edge.interrupted(exc) == 128 + signal.SIGINT
    assert capsys.readouterr().err.count("interrupted by SIGINT") == 1
    _edge._SAID.clear()


def test_bench_out_leaves_no_lock_file(tmp_path):
    # the cheapest real run (STREAM sizes its arrays from the last-level cache: a minute on a 480 MiB one)
    r = runner.invoke(app, ["bench", "gemm", "--quick", "--device", "cpu", "--dtype", "fp16",
                            "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 0, r.output
    assert sorted(os.listdir(tmp_path)) == ["r.json"]
