"""Expert ops a fused grouped MLP would take into its kernels (gpt-oss's clamped SwiGLU and expert
biases), paid as kernels of their own when the stack runs the experts unfused (Megatron-Core's default)."""
import json
import pytest
from typer.testing import CliRunner

from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner.stacks import load_stack
from recoque.planner.train import hardware_for, plan_arrays
from recoque.planner.train_core import EXPERT_BIAS_BYTES, GLU_CLAMP_BYTES, GLU_CLAMP_KERNELS, core, moe_unfused_ops_s
from recoque.planner.validation import load_cases, shipped_profile
from recoque.planner.workload import load_model

MB = "mbridge260401-h100-gpt-oss-120b-bf16"  # Megatron-Bridge 26.04.01: op fuser off, EP 8, bf16
HPE = "mlperf60-gptoss20b-hpe-16-gb300"      # MLPerf v6.0: USE_TE_OPS, CuteDSL grouped MLP


def _case(name):
    return [c for c in load_cases("train_checks.toml") if c.name == name][0]


def _hw(c):
    return hardware_for(c.system, shipped_profile(c.system.device))


def test_the_gpt_oss_presets_clamp_and_the_config_reader_agrees(tmp_path):
    for key in ("gpt-oss-120b", "gpt-oss-20b"):
        m = load_model(key)
        assert m.glu_clamp and m.linear_bias and m.moe
    assert not load_model("deepseek-v3").glu_clamp and not load_model("llama3.1-8b").glu_clamp
    cfg = {"model_type": "gpt_oss", "num_hidden_layers": 24, "hidden_size": 2880, "num_attention_heads": 64,
           "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 2880, "vocab_size": 201088,
           "max_position_embeddings": 131072, "num_local_experts": 32, "num_experts_per_tok": 4,
           "sliding_window": 128, "layer_types": ["sliding_attention", "full_attention"] * 12,
           "swiglu_limit": 7.0, "attention_dropout": 0.0}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    assert load_model(str(path)).glu_clamp


def test_bytes_and_kernels_per_layer_are_the_counted_ones():
    c = _case(MB)
    m, hw, ovh = c.workload.model, _hw(c), shipped_profile(c.system.device).kernel_overhead_s()
    tokens, etp, ep = 4096.0, 1.0, 8.0
    fwd, bwd = moe_unfused_ops_s(m, c.stack, hw, tokens, etp, ep, ovh)
    rows, local = tokens * m.active_experts, m.experts / ep
    fc1, fc2 = rows * 2 * m.ffn_hidden, rows * m.hidden
    want_f = (GLU_CLAMP_BYTES[0] * fc1 + EXPERT_BIAS_BYTES[0] * fc2) / hw.hbm_bw + (GLU_CLAMP_KERNELS[0] + 2 * local + 1) * ovh
    want_b = (GLU_CLAMP_BYTES[1] * fc1 + EXPERT_BIAS_BYTES[1] * fc2) / hw.hbm_bw + (GLU_CLAMP_KERNELS[1] + 2 * local) * ovh
    assert float(fwd) == pytest.approx(m.moe_layer_fraction * want_f, rel=1e-9)
    assert float(bwd) == pytest.approx(m.moe_layer_fraction * want_b, rel=1e-9)
    assert (GLU_CLAMP_BYTES, EXPERT_BIAS_BYTES) == ((8.0, 10.0), (12.0, 4.0))


def test_the_fused_grouped_mlp_takes_them_and_other_models_pay_nothing():
    c = _case(MB)
    hw, fused = _hw(c), c.stack.with_fused_expert_mlp(True)
    assert not c.stack.fused_expert_mlp and not load_stack("megatron-core").fused_expert_mlp
    assert moe_unfused_ops_s(c.workload.model, fused, hw, 4096.0, 1.0, 8.0, 4e-6) == (0.0, 0.0)
    for key in ("deepseek-v3", "qwen3-235b-a22b", "llama3.1-8b"):
        assert moe_unfused_ops_s(load_model(key), c.stack, hw, 4096.0, 1.0, 8.0, 4e-6) == (0.0, 0.0), key


def test_unfused_is_slower_in_the_whole_iteration_and_the_v6_rows_say_fused():
    c = _case(MB)
    prof = shipped_profile(c.system.device)

    def it(stack):
        return core(c.workload, _hw(c), prof, c.dtype, plan_arrays([c.plan]), stack=stack)["iteration_time_s"][0]
    assert it(c.stack) > it(c.stack.with_fused_expert_mlp(True)) * 1.03
    hpe = _case(HPE)
    assert hpe.stack.fused_expert_mlp and hpe.workload.model.glu_clamp
    for name in ("mlperf60-gptoss20b-nv-512-gb300", "mlperf60-gptoss20b-nv-8-gb200"):
        assert _case(name).stack.fused_expert_mlp, name


def test_bad_setting_refused():
    with pytest.raises(BadInput, match="fused_expert_mlp must be true or false"):
        load_stack("megatron-core").with_fused_expert_mlp("yes")
    from recoque.planner.workload import _model_from_raw
    raw = {"layers": 2, "hidden": 64, "heads": 4, "ffn_hidden": 128, "vocab": 100, "seq_len_tokens": 32,
           "gated_ffn": True, "glu_clamp": "yes"}
    with pytest.raises(BadInput, match="`glu_clamp` must be true or false"):
        _model_from_raw("tiny", raw, "models.toml [models.tiny]")


ARGS = ["plan", "train", "-w", "gpt-oss-20b", "-s", "node-8x-h100", "--gpus", "8", "--seq-len", "4096",
        "--global-batch", "16", "--tokens", "1e9", "--top", "1", "--json", "--tp", "1", "--ep", "8"]


def test_cli_flag_round_trips_and_changes_the_time():
    out = {}
    for flag in ("--fused-expert-mlp", "--no-fused-expert-mlp"):
        r = CliRunner().invoke(app, ARGS + [flag])
        assert r.exit_code == 0, r.output
        out[flag] = json.loads(r.output)
    assert out["--fused-expert-mlp"]["fused_expert_mlp"] is True
    assert out["--no-fused-expert-mlp"]["fused_expert_mlp"] is False
    fast = out["--fused-expert-mlp"]["best"][0]["iteration_time"]["value"]
    slow = out["--no-fused-expert-mlp"]["best"][0]["iteration_time"]["value"]
    assert slow > fast
