"""plan / check / compare through the console script (typer CliRunner)."""
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, list(args))


def test_plan_with_only_system_and_workload_prints_assumptions():
    r = run("plan", "--system", "alice-recoque", "--workload", "mistral-large-2")
    assert r.exit_code == 0, r.output
    assert "assumptions" in r.output and "H100e" in r.output and "tokens/s" in r.output


def test_plan_hpl_json_mirrors_table():
    r = run("plan", "hpl", "--system", "frontier", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    assert abs(d["hpl"]["error_vs_top500"]) < 0.15
    assert "HPL" in d["sections"] and d["assumptions"]


def test_plan_infer_and_stencil():
    r = run("plan", "infer", "--system", "jean-zay-h100", "--model", "mistral-7b", "--tpot-ms", "40", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["inference"]["tpot"]["value"] <= 0.04
    r = run("plan", "stencil", "--system", "lumi-g", "--workload", "hpcg")
    assert r.exit_code == 0, r.output and "time to solution" in r.output


def test_compare_side_by_side():
    r = run("compare", "--systems", "alice-recoque,jean-zay-h100,jupiter", "--workload", "hpl", "--json")
    assert r.exit_code == 0, r.output
    assert [s["system"] for s in json.loads(r.output)["systems"]] == ["alice-recoque", "jean-zay-h100", "jupiter"]
    # the short flags `plan` takes, and names as people type them
    r2 = run("compare", "-s", "Alice-Recoque,Jean-Zay-H100,JUPITER", "-w", "HPL", "--json")
    assert r2.exit_code == 0, r2.output
    assert json.loads(r2.output) == json.loads(r.output)
    # -s repeated, as with other multi-value flags, adds systems (it used to keep only the last one)
    r3 = run("compare", "-s", "alice-recoque", "-s", "jean-zay-h100,jupiter", "--json")
    assert r3.exit_code == 0, r3.output
    assert json.loads(r3.output) == json.loads(r.output)


def test_check_json_has_every_claim():
    r = run("check", "--json")
    assert r.exit_code == 0, r.output
    claims = {c["claim"]: c for c in json.loads(r.output)["claims"]}
    assert claims["h100e-25000"]["verdict"] == "consistent only if"
    r = run("check", "--claim", "evroc-96mw")
    assert r.exit_code == 0 and "1.92 kW per GPU" in r.output


@pytest.mark.parametrize("args,msg", [
    (("plan", "--system", "nowhere", "--workload", "hpl"), "known systems"),
    (("plan", "--system", "frontier", "--workload", "nothing"), "known workloads"),
    (("plan", "hpl", "--system", "frontier", "--gpus", "-4"), "positive"),
    (("plan", "hpl", "--system", "frontier", "--gpus", "0"), "positive"),
    (("plan", "--system", "frontier"), "both --system and --workload"),
    (("check", "--claim", "nope"), "known claims"),
])
def test_bad_input_is_one_clear_line(args, msg):
    r = run(*args)
    assert r.exit_code == 2
    assert msg in r.output


def test_system_file_missing_a_field(tmp_path):
    p = tmp_path / "my.toml"
    p.write_text('[systems.mine]\ndevice = "h100_sxm"\ngpus = 16\ngpus_per_node = 8\n')
    r = run("plan", "hpl", "--system", str(p))  # HPL needs no link bandwidth (issue 7): it plans
    assert r.exit_code == 0, r.output
    r = run("plan", "stencil", "--system", str(p), "--grid-points", "1e9")  # a halo exchange does: it says which key to add
    assert r.exit_code == 2 and "add `inter_node_bandwidth_gb_s`" in r.output


def test_user_system_file(tmp_path):
    p = tmp_path / "my.toml"
    p.write_text('[systems.mine]\ndevice = "mi300x"\ngpus = 64\ngpus_per_node = 8\n'
                 'intra_node_bandwidth_gb_s = 448\ninter_node_bandwidth_gb_s = 50\nnode_power_kw = 10\npue = 1.2\n')
    r = run("plan", "hpl", "--system", str(p), "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["hpl"]["gpus"]["value"] == 64


def _write_h100_results(path, bf16_tflops=700.0, fp64_tflops=55.0, stream_tb_s=3.0):
    """A small results file as `recoque bench` writes it (H100, one GEMM size per dtype, one STREAM)."""
    from recoque.bench.schema import Record, ResultsDocument, save_results

    n = 8192
    flops = 2 * n ** 3
    recs = [Record("gemm", "matmul", dt, {"m": n, "n": n, "k": n}, (flops / (r * 1e12),) * 5, "TFLOP/s", flop_count=flops)
            for dt, r in (("bf16", bf16_tflops), ("fp64", fp64_tflops))]
    nbytes = 3 * 8 * 2 ** 28
    recs.append(Record("stream", "triad", "fp64", {"n_elements": 2 ** 28}, (nbytes / (stream_tb_s * 1e12),) * 5,
                       "GB/s", bytes_moved=nbytes))
    save_results(path, ResultsDocument(environment={}, device={"name": "NVIDIA H100 80GB HBM3"}, results=tuple(recs)))


def test_profile_changes_hpl_and_check(tmp_path):
    p = tmp_path / "h100.json"
    _write_h100_results(p)
    r = run("plan", "hpl", "--system", "jean-zay-h100", "--profile", str(p), "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)["hpl"]
    assert d["measured_profile"] is True
    # measured DGEMM 55 TF x HPL/DGEMM fraction 0.8
    assert d["rmax_per_gpu_flop_s"]["value"] == pytest.approx(55e12 * 0.8, rel=1e-3)
    r = run("check", "--claim", "telehouse-25000-inference", "--profile", str(p), "--json")
    assert r.exit_code == 0, r.output


def test_bad_profile_file(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    r = run("check", "--profile", str(p))
    assert r.exit_code == 2 and "not valid JSON" in r.output


@pytest.mark.parametrize("args,msg", [
    (("--zero", "2"), "--zero 2: stack megatron-lm-rocm runs ZeRO stages 0, 1, 3 only"),
    (("--micro-batch", "3", "--global-batch", "64"),
     "no plan on any of the 4 usable GPU counts up to 8 satisfies --micro-batch 3"),
    (("--micro-batch", "3", "--global-batch", "64", "--gpus", "8"), "no plan on 8 GPUs satisfies --micro-batch 3"),
    # tp 4 divides 32 heads but Llama 3.1 8B has 8 KV heads: 4 divides 8 -> fine; tp 16 is a multiple; tp 3 named up front
    (("--tp", "3"), "--tp 3 does not divide the 32 attention heads"),
])
def test_a_pin_no_plan_can_meet_is_named(args, msg):
    # before, both came out as 'no valid plan (0 combinations break a divisibility rule ...)'
    r = run("plan", "train", "-s", "node-8x-mi355x", "-w", "llama3.1-8b", "--dtype", "bf16", *args)
    assert r.exit_code != 0 and msg in " ".join(r.output.split())


def test_dp_overlap_pinned_with_pp_on_a_stack_that_reduces_after_the_schedule_is_refused():
    # before: answered with a degenerate TP32 PP2 DP1 plan (the only shape where the pin is moot), 6.8x slower
    r = run("plan", "train", "-s", "jean-zay-h100", "-w", "llama3.1-8b", "-n", "64", "--stack", "deepspeed",
            "--pp", "2", "--dp-overlap")
    assert r.exit_code == 2
    assert "--dp-overlap with --pp 2: stack deepspeed reduces gradients after the whole pipeline schedule" in \
        " ".join(r.output.split())
    ok = run("plan", "train", "-s", "jean-zay-h100", "-w", "llama3.1-8b", "-n", "64", "--stack", "megatron-core",
             "--pp", "2", "--dp-overlap")
    assert ok.exit_code == 0, ok.output


def _best(*args):
    r = run("plan", "train", "-s", "jean-zay-h100", "--tokens", "1e12", "-n", "64", *args, "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    return d["best"][0], d["reasons"]


def test_a_switch_the_model_cannot_act_on_is_shown_off_and_its_pin_called_moot():
    # before: the label said EP8+a2a-overlap and the JSON ep_overlap true, though the time left it out
    moe = ("-w", "mixtral-8x7b", "--global-batch", "64", "--tp", "1", "--pp", "1", "--dp", "64",
           "--micro-batch", "1", "--ep", "8", "--etp", "1")
    on, why = _best(*moe, "--ep-overlap")
    off, _ = _best(*moe, "--no-ep-overlap")
    assert on["plan"]["ep_overlap"] is False and "a2a-overlap" not in on["plan_label"]
    assert on["iteration_time"] == off["iteration_time"]
    assert any(w.startswith("--ep-overlap moot in the best plan: one micro-batch") for w in why)
    # distributed checkpoints under sequence parallelism: the inputs are already split over TP
    sp, why = _best("-w", "llama3.1-70b", "--tp", "8", "--sp", "--recompute", "full", "--distribute-checkpoints")
    assert sp["plan"]["distribute_checkpoints"] is False and "dist-ckpt" not in sp["plan_label"]
    assert any(w.startswith("--distribute-checkpoints moot in the best plan") for w in why)


def test_recompute_layers_beyond_the_stage_is_shown_as_plain_full():
    every, _ = _best("-w", "llama3.1-8b", "-n", "8", "--recompute", "full", "--recompute-layers", "1000")
    # every one of the 8B's 32 layers on one stage: plain full (unpinned, the search would try fewer)
    plain, _ = _best("-w", "llama3.1-8b", "-n", "8", "--recompute", "full", "--recompute-layers", "32", "--pp", "1")
    assert every["plan"]["pp"] == 1
    assert every["plan"]["recompute_layers"] == 0 and "rc:full " in every["plan_label"] + " "
    assert every["iteration_time"] == plain["iteration_time"]


def test_an_unpinned_cp_may_make_up_the_gpu_count():
    # before: '--tp 2 x --pp 2 x --dp 2 = 8 GPUs, but --gpus is 16', though cp 2 fills it
    best, _ = _best("-w", "llama3.1-8b", "-n", "16", "--tp", "2", "--pp", "2", "--dp", "2")
    assert best["plan"]["cp"] == 2 and best["gpus"] == 16
    r = run("plan", "train", "-s", "jean-zay-h100", "-w", "llama3.1-8b", "-n", "16", "--tp", "2", "--pp", "2",
            "--dp", "2", "--cp", "1")
    assert r.exit_code == 2 and "= 8 GPUs, but --gpus is 16" in " ".join(r.output.split())


def test_a_fully_pinned_plan_without_gpus_is_answered_as_on_its_own_count():
    # one GPU count evaluates the pinned plan (memory near the limit); before, the curve fell back to
    # its last count, where nothing was evaluated, and blamed the micro-batch
    pins = ("-w", "llama3.1-8b", "--tp", "1", "--pp", "1", "--dp", "8", "--cp", "1", "--micro-batch", "1",
            "--recompute", "none", "--zero", "1", "--dp-overlap", "--seq-len", "4096")
    r = run("plan", "train", "-s", "jean-zay-h100", "--tokens", "1e12", *pins, "--json")
    n8 = run("plan", "train", "-s", "jean-zay-h100", "--tokens", "1e12", *pins, "-n", "8", "--json")
    assert r.exit_code == 0 and n8.exit_code == 0, r.output
    a, b = json.loads(r.stdout)["best"][0], json.loads(n8.stdout)["best"][0]
    assert a["gpus"] == 8 and a["iteration_time"] == b["iteration_time"]


def test_a_tp_the_kv_heads_cannot_take_is_named_before_the_search():
    # Mistral Large 2: 96 heads, 8 KV heads; tp 3 divides the heads but not the KV heads, so no GPU
    # count can run it (before: the whole GPU-count search ran, then blamed one count's divisibility)
    r = run("plan", "train", "-s", "alice-recoque", "-w", "mistral-large-2", "--tp", "3")
    assert r.exit_code == 2
    assert "--tp 3 neither divides nor is a multiple of the 8 KV heads of Mistral Large 2" in " ".join(r.output.split())


def test_plan_on_a_model_without_a_training_run_still_serves_it():
    res = runner.invoke(app, ["plan", "-s", "node-8x-mi300x", "-w", "mixtral-8x7b", "--json"])
    assert res.exit_code == 0, res.output
    sections = json.loads(res.output)["sections"]
    assert "has no training run" in sections["training"][0]["value"]
    assert "recoque plan train -s node-8x-mi300x -w mixtral-8x7b --tokens N" in sections["training"][0]["value"]
    assert any(r["quantity"] == "output tokens/s, system" for r in sections["inference (default serving)"])
    # plan train itself still refuses: it has no run to time without --tokens and --global-batch
    assert runner.invoke(app, ["plan", "train", "-s", "node-8x-mi300x", "-w", "mixtral-8x7b"]).exit_code == 2


def test_plan_on_a_model_whose_training_does_not_fit_still_serves_it():
    res = runner.invoke(app, ["plan", "-s", "node-8x-h200", "-w", "llama2-70b", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["sections"]["training"][0]["value"].startswith("no plan fits")
    assert any(r["quantity"] == "output tokens/s, system" for r in data["sections"]["inference (default serving)"])
    # a training workload that does not fit stays an impossible plan
    assert runner.invoke(app, ["plan", "-s", "node-8x-h100", "-w", "mistral-large-2-pretrain"]).exit_code == 3


def test_plan_keeps_the_system_answer_when_the_h100_comparison_cannot_be_made(tmp_path):
    # Llama 3 405B's shape at twice its depth (810B, 1.6 TB in bf16) fits 8 B300 and meets the
    # default 50 ms TPOT there, but no H100 layout up to 16 nodes reads its weights that fast (pipeline
    # stages run one after another for a stream; 405B itself now meets it on H100 once the H100
    # reference's all-reduce hops are charged as the node presets charge them)
    text = (Path(__file__).parents[1] / "seeds" / "models.toml").read_text()
    block = text[text.index("[models.llama3-405b]"):text.index("[models.llama3-405b.training]")]
    model = tmp_path / "m810.toml"
    model.write_text(block.replace("[models.llama3-405b]", "[models.big810]").replace("layers = 126", "layers = 252")
                     .replace("published_params_b = 405.0", "").replace('aliases = ["llama3.1-405b"]', ""))
    # (a bare model is served offline by default, as `plan infer` serves it: the target is asked for)
    res = runner.invoke(app, ["plan", "infer", "-s", "node-8x-b300", "-w", str(model), "--tpot-ms", "50", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert any("delivered H100-equivalents for serving not computed" in a and "at 16 nodes" in a
               for a in data["assumptions"])
    assert any(r["quantity"] == "output tokens/s, system" for rows in data["sections"].values() for r in rows)


def test_plan_on_a_model_with_neither_estimate_is_an_impossible_plan():
    res = runner.invoke(app, ["plan", "-s", "node-8x-h200", "-w", "megatron-1t"])
    assert res.exit_code == 3 and "context window of 2,048 tokens" in res.output  # serving 2,000 + 500 cannot run either


def test_plan_train_spans_a_named_workloads_token_range_as_plan_does():
    """`plan train -w mistral-large-2-pretrain` showed the run at the central 1e13 tokens only, where
    `plan` spans the stated 5e12..2e13 in a time row, the energy and the cost."""
    args = ["-s", "alice-recoque", "-w", "mistral-large-2-pretrain", "--json"]
    tr = runner.invoke(app, ["plan", "train", *args])
    assert tr.exit_code == 0, tr.output
    job = json.loads(tr.stdout)["job"]
    span = job["time_to_train_over_token_range"]
    assert (span["tokens"]["low"], span["tokens"]["value"], span["tokens"]["high"]) == (5e12, 1e13, 2e13)
    assert span["wall_s"]["high"] > 3.9 * span["wall_s"]["value"] / 2  # 2e13 / 1e13, times the model's own spread
    pl = runner.invoke(app, ["plan", *args])
    assert pl.exit_code == 0, pl.output
    energy = json.loads(pl.stdout)["energy"]["per_job"]
    for key in ("value", "low", "high"):
        assert job["energy_per_job"]["energy_j"][key] == pytest.approx(energy["energy_j"][key], rel=1e-9)
    fixed = json.loads(runner.invoke(app, ["plan", "train", *args, "--tokens", "1e13"]).stdout)["job"]
    assert fixed["time_to_train_over_token_range"] is None  # --tokens replaces the range
    assert fixed["energy_per_job"]["energy_j"]["high"] < job["energy_per_job"]["energy_j"]["high"]
