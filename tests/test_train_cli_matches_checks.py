"""A published training run typed into `recoque plan train` with its whole plan pinned gives the
iteration time the check set reports for it (planner/validation.run_case): the model and system as
TOML files where the case defines its own, every plan field as a flag."""
import json
import math

import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.fileio import read_seed_toml
from recoque.planner import validation as V
from recoque.planner.execution import ExecutionPlan

INTS = {"tp": "--tp", "pp": "--pp", "dp": "--dp", "cp": "--cp", "micro_batch": "--micro-batch", "interleave": "--vpp",
        "zero_stage": "--zero", "ep": "--ep", "recompute_layers": "--recompute-layers"}
SWITCHES = {"sequence_parallel": ("--sp", "--no-sp"), "dp_overlap": ("--dp-overlap", "--no-dp-overlap"),
            "flash_attention": ("--flash-attention", "--no-flash-attention"),
            "tp_overlap": ("--tp-overlap", "--no-tp-overlap"), "cp_a2a": ("--cp-a2a", "--cp-ring"),
            "ep_overlap": ("--ep-overlap", "--no-ep-overlap"),
            "reshard_after_forward": ("--reshard-after-forward", "--no-reshard-after-forward"),
            "distribute_checkpoints": ("--distribute-checkpoints", "--no-distribute-checkpoints")}
# switches that mean nothing without the parallelism or mode they act on
APPLIES = {"sequence_parallel": lambda p: p["tp"] > 1, "tp_overlap": lambda p: p.get("sequence_parallel", False),
           "ep_overlap": lambda p: p.get("ep", 1) > 1, "cp_a2a": lambda p: p.get("cp", 1) > 1,
           "reshard_after_forward": lambda p: p["zero_stage"] >= 3,
           "distribute_checkpoints": lambda p: p["recompute"] == "full"}
CASES = ("forge-m-frontier-512gcd", "nemo2407-llama2-13b-16gpu-fp8", "rocmdocs2412-llama2-70b-8x-mi300x-bf16",
         "trainy-h200-8b-32gpu-fsdp-float8", "frontier-torchtitan-8b-64gcd-fsdp-bf16", "mpt-13b-a100-40g-64gpu-s2048",
         "mlperf50-lora-70b-1x8-b200", "mbridge260401-b200-qwen3-30b-fp8", "neox-175b-frontier-384gcd",
         "bigscience-prequel-h14336-l70-nh64-tp8pp12dp4-mbs2", "primus262-mixtral-8x22b-64x-mi355x-bf16")


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return json.dumps(v) if isinstance(v, str) else repr(v)


def _table(path, kind, key, raw):
    lines = [f"[{kind}.{key}]"] + [f"{k} = {_value(v)}" for k, v in raw.items() if not isinstance(v, dict)]
    for sub, body in ((k, v) for k, v in raw.items() if isinstance(v, dict)):
        lines += [f"[{kind}.{key}.{sub}]"] + [f"{k} = {_value(v)}" for k, v in body.items() if not isinstance(v, dict)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _model_arg(raw, tmp_path):
    if "model_inline" in raw:
        return _table(tmp_path / "model.toml", "models", "m", dict(raw["model_inline"]))
    over = dict(raw.get("model_overrides", {}))
    if not over:
        return raw["model"]
    base = {k: v for k, v in read_seed_toml("models.toml")["models"][raw["model"]].items() if k != "training"}
    if "seq_len" in over:
        base["seq_len_tokens"] = over.pop("seq_len")
    if over.keys() & {"hidden", "heads"}:  # a new shape: head size re-derived, the stated size no longer applies
        base.pop("head_dim", None)
        base.pop("published_params_b", None)
    return _table(tmp_path / "model.toml", "models", "m", {**base, **over})


def cli_args(raw, seed, tmp_path):
    plan = raw["plan"]
    system = raw["system"]
    if system in seed.get("systems", {}):
        system = _table(tmp_path / "system.toml", "systems", system, dict(seed["systems"][system]))
    gpus = plan["tp"] * plan["pp"] * plan["dp"] * plan.get("cp", 1)
    args = ["plan", "train", "-w", _model_arg(raw, tmp_path), "-s", system, "--gpus", str(gpus), "--tokens", "1e12",
            "--global-batch", str(raw["global_batch_seqs"]), "--dtype", raw.get("dtype", "bf16"),
            "--stack", raw["stack"], "--recompute", plan["recompute"], "--top", "1", "--json"]
    args += [x for k, flag in INTS.items() if k in plan for x in (flag, str(plan[k]))]
    if plan["recompute"] == "full" and "recompute_layers" not in plan:  # every layer, as the run did
        args += ["--recompute-layers", "0"]  # (unpinned, the search would also try fewer)
    defaults = ExecutionPlan(tp=1, pp=1, dp=1, micro_batch=1)
    for k, (on, off) in SWITCHES.items():
        if APPLIES.get(k, lambda p: True)(plan):
            args.append(on if plan.get(k, getattr(defaults, k)) else off)
    if "grad_reduce_dtype" in raw:
        args += ["--grad-reduce-dtype", raw["grad_reduce_dtype"]]
    if "fp8_param_gather" in raw:
        args.append("--fp8-param-gather" if raw["fp8_param_gather"] else "--no-fp8-param-gather")
    if "nccl_max_ctas" in raw:
        args += ["--nccl-max-ctas", ",".join(f"{k}={v}" for k, v in raw["nccl_max_ctas"].items())]
    if raw.get("lora_rank"):
        args += ["--lora-rank", str(raw["lora_rank"]), "--lora-targets", raw.get("lora_targets", "all"),
                 "--lora-dropout", str(raw.get("lora_dropout", 0.0))]
    return args


@pytest.mark.parametrize("name", CASES)
def test_the_cli_gives_the_check_sets_iteration_time(name, tmp_path):
    seed = read_seed_toml("train_checks.toml")
    raw = next(c for c in seed["cases"] if c["name"] == name)
    case = next(c for c in V.load_cases("train_checks.toml") if c.name == name)
    r = CliRunner().invoke(app, cli_args(raw, seed, tmp_path))
    assert r.exit_code == 0, r.output
    cli = json.loads(r.stdout)["best"][0]["iteration_time"]["value"]
    assert math.isclose(cli, V.run_case(case).predicted_s, rel_tol=1e-9)
