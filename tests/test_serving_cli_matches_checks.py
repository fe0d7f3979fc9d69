"""A published serving run typed into `recoque plan infer` gives what the check sets report for it:
every field a check case may set has a CLI flag, and a sample of rows from each shipped set gives
the same tokens/s through the CLI as through planner/serving_validation.run_case."""
import json
import math

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.planner import serving_validation as sv
from recoque.fileio import read_seed_toml
from serving_sets import SERVING_SEEDS

# TOML key of a check case -> the `plan infer` flag that sets it
FLAGS = {"prompt_tokens_mean": "--prompt-tokens", "output_tokens_mean": "--output-tokens", "mode": "--mode",
         "batch": "--batch", "concurrency": "--concurrency", "request_rate_per_s": "--request-rate",
         "ttft_target_ms": "--ttft-ms", "tpot_target_ms": "--tpot-ms", "percentile": "--percentile", "tp": "--tp",
         "pp": "--pp", "ep": "--ep", "weights": "--weights", "activations": "--activations", "kv_cache": "--kv-cache",
         "attention_weights": "--attention-weights", "attention_out_weights": "--attention-out-weights",
         "engine": "--engine", "max_batch": "--max-batch", "length_cv2": "--length-cv2", "output_cv2": "--output-cv2", "requests": "--requests",
         "max_num_tokens": "--max-num-tokens", "spec_tokens": "--spec-tokens", "spec_acceptance": "--spec-acceptance",
         "hbm_fraction": "--hbm-fraction"}
SWITCHES = {"attention_dp": ("--attention-dp", "--attention-tp"),
            "allreduce_fusion": ("--allreduce-fusion", "--no-allreduce-fusion"),
            "split_experts": ("--split-experts", "--whole-experts")}
SETS = SERVING_SEEDS
EVERY = 25  # rows sampled per set: the first and every 25th


def cli_args(raw: dict) -> list[str]:
    args = ["plan", "infer", "--system", raw["system"], "--model", raw["model"], "--gpus", str(raw.get("gpus", 8)), "--json"]
    for key, flag in FLAGS.items():
        if key in raw:
            args += [flag, str(raw[key])]
    for key, (on, off) in SWITCHES.items():
        if key in raw:
            args.append(on if raw[key] else off)
    return args


def test_every_field_a_check_case_sets_has_a_flag():
    assert set(sv._REQUEST_KEYS) == set(FLAGS) | set(SWITCHES)


def sampled_rows():
    for name in SETS:
        yield from ((name, r) for r in read_seed_toml(name)["serving"][::EVERY])


@pytest.mark.parametrize("seed_file,raw", list(sampled_rows()), ids=lambda x: x["key"] if isinstance(x, dict) else x)
def test_the_cli_gives_the_check_sets_figure(seed_file, raw):
    case = next(c for c in sv.load_cases(seed_file=seed_file) if c.key == raw["key"])
    harness = sv.run_case(case).estimate.tokens_per_s_system.value
    r = CliRunner().invoke(app, cli_args(raw))
    assert r.exit_code == 0, r.output
    cli = json.loads(r.output)["inference"]["tokens_per_s_system"]["value"]
    assert math.isclose(cli, harness, rel_tol=1e-9), (cli, harness)


def test_a_fractional_dataset_mean_is_taken_and_a_nan_length_refused():
    base = ["plan", "infer", "--system", "node-8x-h200", "--model", "llama2-70b", "--tp", "8", "--dtype", "fp8"]
    ok = CliRunner().invoke(app, base + ["--prompt-tokens", "222.3", "--output-tokens", "290.5", "--json"])
    assert ok.exit_code == 0, ok.output
    req = json.loads(ok.output)["serving_request"]
    assert req["prompt_tokens"] == 222.3 and req["output_tokens"] == 290.5
    for bad in ("nan", "0", "-5", "inf"):
        r = CliRunner().invoke(app, base + ["--prompt-tokens", bad])
        assert r.exit_code == 2 and "--prompt-tokens" in r.output and len(r.output.strip().splitlines()) == 1, r.output
