"""`recoque plan infer` and the serving section of `recoque validate` through typer's CliRunner."""
import json

from typer.testing import CliRunner

from recoque.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_plan_infer_offline_table_names_bound_and_assumptions():
    r = run("plan", "infer", "--system", "node-8x-mi300x", "--workload", "llama2-70b", "--dtype", "fp8", "--tp", "1",
            "--prompt-tokens", "294", "--output-tokens", "291")
    assert r.exit_code == 0, r.output
    assert "step bound by" in r.output and "offline / vllm" in r.output and "assumptions" in r.output


def test_plan_infer_json_has_every_knob():
    r = run("plan", "infer", "--system", "node-8x-h200", "--workload", "llama3.3-70b", "--gpus", "1", "--mode", "server",
            "--prompt-tokens", "1000", "--output-tokens", "1000", "--ttft-ms", "2000", "--tpot-ms", "80", "--percentile", "p99", "--weights", "fp8", "--activations", "fp8",
            "--kv-cache", "fp8", "--engine", "trtllm", "--hbm-fraction", "0.9", "--tp", "1", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    knobs = d["serving_request"]
    for k in ("mode", "prompt_tokens", "output_tokens", "batch", "concurrency", "request_rate_per_s", "ttft_target_s",
              "tpot_target_s", "percentile", "tp", "pp", "ep", "weights", "activations", "kv_cache", "engine",
              "hbm_fraction", "max_batch", "engine_efficiency"):
        assert k in knobs
    assert knobs["engine"] == "trtllm" and knobs["percentile"] == "p99" and knobs["tpot_target_s"] == 0.08
    inf = d["inference"]
    assert inf["tpot"]["value"] <= 0.08 * (1 + 1e-6) and inf["ttft"]["value"] <= 2.0 * (1 + 1e-6)
    assert inf["serving"]["bound"]


def test_plan_infer_accepts_toml_files(tmp_path):
    model = tmp_path / "tiny.toml"
    model.write_text('[models.tiny]\nlayers = 8\nhidden = 1024\nheads = 8\nkv_heads = 2\nffn_hidden = 4096\n'
                     'gated_ffn = true\nvocab = 32000\nseq_len_tokens = 4096\n', encoding="utf-8")
    system = tmp_path / "box.toml"
    system.write_text('[systems.box]\ndevice = "mi300x"\ngpus = 2\ngpus_per_node = 2\nintra_node_bandwidth_gb_s = 448\n'
                      'inter_node_bandwidth_gb_s = 50\n', encoding="utf-8")
    r = run("plan", "infer", "--system", str(system), "--workload", str(model), "--concurrency", "16", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["inference"]["tokens_per_s_system"]["value"] > 0


def test_replica_larger_than_the_system_is_a_does_not_fit_line():
    r = run("plan", "infer", "--system", "node-8x-h100", "--workload", "llama3-405b", "--tp", "16")
    assert r.exit_code == 3
    assert "Traceback" not in r.output


def test_bad_targets_are_bad_input():
    for flags in (("--tpot-ms", "0"), ("--ttft-ms", "nan"), ("--request-rate", "-3"), ("--mode", "fast"),
                  ("--percentile", "p42"), ("--engine", "tgi")):
        r = run("plan", "infer", "--system", "node-8x-h100", "--workload", "llama3.1-8b", *flags)
        assert r.exit_code == 2, (flags, r.output)
        assert "Traceback" not in r.output


def test_validate_includes_the_serving_cases():
    r = run("validate", "--json")
    d = json.loads(r.output)
    s = d["serving"]
    assert s["passed"] and s["summary"]["calibration"]["cases"] == 4
    assert any(c["key"] == "mlperf41-llama2-70b-offline-8xmi300x" for c in s["cases"])
