"""`plan infer` and `plan train` inputs reviews found accepted with a wrong answer (stop 103): latency
targets dropped under a fixed load, engines on the other vendor's GPUs, an FP4 KV cache without FP4
units, a step budget below one stream, link figures demanded of a one-GPU replica, advice that did not
follow the flags; pipeline pins beyond the layer count and the narrow-peak MFU's dtype in plan train."""
from __future__ import annotations

from typer.testing import CliRunner

from recoque.cli import app

runner = CliRunner()


def _refused(args, *words):
    res = runner.invoke(app, ["plan", "infer", *args])
    line = res.stderr.strip().splitlines()[-1]
    assert res.exit_code == 2, (args, res.exit_code, res.stderr)
    assert line.startswith("recoque: error: ") and all(w in line for w in words), line
    return line


def test_a_fixed_load_with_latency_targets_is_refused():
    # before: TPOT 111 ms reported for a 5 ms target, exit 0
    _refused(["-s", "node-8x-h100", "-w", "llama3.1-70b", "--batch", "200", "--ttft-ms", "100", "--tpot-ms", "5"],
             "fixed batch/concurrency and latency targets")
    _refused(["-s", "node-8x-h100", "-w", "llama3.1-8b", "--concurrency", "64", "--tpot-ms", "1"],
             "latency targets")


def test_an_engine_runs_only_on_its_vendors_gpus():
    _refused(["-s", "node-8x-mi300x", "-w", "llama3.1-8b", "--engine", "trtllm"], "TensorRT-LLM does not run on AMD")
    _refused(["-s", "node-8x-h100", "-w", "llama3.1-8b", "--engine", "atom"], "does not run on NVIDIA", "--engine vllm")
    assert runner.invoke(app, ["plan", "infer", "-s", "node-8x-mi300x", "-w", "llama3.1-8b", "--engine", "atom"]).exit_code == 0


def test_an_fp4_kv_cache_needs_fp4_units():
    # before: 872 streams on A100 at 20 kB/token, four times the bf16 count
    _refused(["-s", "node-8x-a100", "-w", "llama3.1-70b", "--kv-cache", "fp4"], "no fp4 rate", "--kv-cache fp8")
    assert runner.invoke(app, ["plan", "infer", "-s", "node-8x-b200", "-w", "llama3.1-70b", "--kv-cache", "fp4"]).exit_code == 0


def test_a_step_budget_below_one_stream_is_refused():
    # before: "batch 0.6", exit 0; now "does not fit" (exit 3), naming the budget that would
    res = runner.invoke(app, ["plan", "infer", "-s", "node-8x-h100", "-w", "llama3.1-8b", "--max-num-tokens", "3"])
    line = res.stderr.strip().splitlines()[-1]
    assert res.exit_code == 3 and "less than one" in line, res.output
    need = int(line.split("--max-num-tokens ")[1].split()[0])
    res = runner.invoke(app, ["plan", "infer", "-s", "node-8x-h100", "-w", "llama3.1-8b", "--max-num-tokens", str(need),
                              "--json"])
    assert res.exit_code == 0, res.stderr


def test_a_one_gpu_system_needs_no_link_figures(tmp_path):
    path = tmp_path / "one.toml"
    path.write_text('[systems.one]\nname = "one GPU"\ndevice = "h100_sxm"\ngpus = 1\ngpus_per_node = 1\n'
                    'node_power_kw = 2.0\npue = 1.2\n')
    res = runner.invoke(app, ["plan", "infer", "-s", str(path), "-w", "llama3.1-8b"])
    assert res.exit_code == 0, res.stderr


def test_does_not_fit_advice_follows_what_was_asked():
    def last(args):
        res = runner.invoke(app, ["plan", "infer", *args])
        assert res.exit_code == 3, res.output
        return res.stderr.strip().splitlines()[-1]

    # the system has 8: a --gpus 1 limit is named, not "a system of more than 1 GPU"
    line = last(["-s", "node-8x-h100", "-w", "llama3.1-70b", "--gpus", "1"])
    assert "raise --gpus, up to the system's 8" in line and "more than 1 GPU" not in line
    # fp8 weights already: only the wider KV cache is offered
    line = last(["-s", "node-8x-h100", "-w", "deepseek-r1", "--weights", "fp8"])
    assert "--kv-cache fp8" in line and "--weights fp8" not in line
    # a tiny --hbm-fraction is the cause, and is named first
    line = last(["-s", "node-8x-h100", "-w", "llama3.1-70b", "--hbm-fraction", "0.001"])
    assert "a larger --hbm-fraction or lower --max-num-tokens" in line


def test_train_pins_beyond_the_layers_and_the_narrow_peak_label():
    for pins, words in ((["--gpus", "64", "-s", "jean-zay-h100", "--pp", "64"], "--pp 64 exceeds the 32 layers"),
                        (["--gpus", "8", "-s", "node-8x-h100", "--pp", "4", "--vpp", "16"], "= 64 virtual stages exceeds")):
        res = runner.invoke(app, ["plan", "train", "-w", "llama3.1-8b", *pins])
        assert res.exit_code == 2 and words in res.stderr, res.output
    res = runner.invoke(app, ["plan", "train", "-s", "node-8x-b300", "-w", "llama3.1-8b", "--gpus", "8", "--dtype", "fp4"])
    assert res.exit_code == 0 and "against the fp4 peak" in res.stdout and "against the fp8 peak" not in res.stdout
