"""Issue 12: one accounting of time, ZeRO-3 vs ZeRO-1, fp8 scope, NIC bandwidth, stacks, search."""
from dataclasses import replace

import numpy as np
import pytest

from recoque.errors import BadInput
from recoque.planner.execution import ExecutionPlan
from recoque.planner.search import fastest_gpu_count, search
from recoque.planner.stacks import load_stack
from recoque.planner.train import BREAKDOWN_KEYS, evaluate
from recoque.planner.validation import load_cases, shipped_profile, validation_system
from recoque.planner.workload import load_training_workload

SEL = validation_system("selene")
PROF = shipped_profile("a100_sxm_80gb")
GPT3 = load_training_workload("gpt3-175b")
PLANS = [ExecutionPlan(tp=8, pp=8, dp=16, micro_batch=1, recompute="selective", interleave=2),
         ExecutionPlan(tp=4, pp=4, dp=64, micro_batch=2, recompute="full", sequence_parallel=False),
         ExecutionPlan(tp=8, pp=1, dp=128, micro_batch=1, recompute="full"),
         ExecutionPlan(tp=2, pp=16, dp=32, micro_batch=1, recompute="none", cp=1, dp_overlap=False)]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.label())
def test_breakdown_sums_to_iteration_time(plan):
    r = evaluate(GPT3, SEL, plan, PROF)
    parts = sum(r.breakdown[k] for k in BREAKDOWN_KEYS)
    assert parts == pytest.approx(r.breakdown["iteration_time_s"], rel=1e-9)
    assert r.breakdown["iteration_time_s"] == pytest.approx(r.iteration_time.value, rel=1e-9)
    assert all(r.breakdown[k] >= 0.0 for k in BREAKDOWN_KEYS)


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.label())
@pytest.mark.parametrize("stack", ["fsdp", "deepspeed"])
def test_zero3_never_faster_than_zero1(plan, stack):
    st = load_stack(stack)
    z1 = evaluate(GPT3, SEL, replace(plan, zero_stage=1), PROF, stack=st)
    for reshard in (True, False):
        z3 = evaluate(GPT3, SEL, replace(plan, zero_stage=3, reshard_after_forward=reshard), PROF, stack=st)
        assert z3.iteration_time.value >= z1.iteration_time.value
        assert z3.memory_per_gpu.value <= z1.memory_per_gpu.value + 1.0 or not reshard


def test_reshard_after_forward_trades_memory_for_traffic():
    plan = ExecutionPlan(tp=1, pp=1, dp=1024, micro_batch=1, recompute="full", zero_stage=3,
                         sequence_parallel=False)
    wl = replace(GPT3, global_batch_seqs=1024)
    on = evaluate(wl, SEL, plan, PROF, stack=load_stack("fsdp"))
    off = evaluate(wl, SEL, replace(plan, reshard_after_forward=False), PROF, stack=load_stack("fsdp"))
    assert off.memory_per_gpu.value > on.memory_per_gpu.value
    assert off.breakdown["zero3_exposed_s"] <= on.breakdown["zero3_exposed_s"]


def test_time_monotone_in_nic_bandwidth():
    plan = ExecutionPlan(tp=1, pp=1, dp=1536, micro_batch=1, recompute="full", zero_stage=3,
                         sequence_parallel=False)
    times = []
    for nics in (2, 4, 8, 16):
        sysx = replace(SEL, extra={**SEL.extra, "nics_per_node": nics, "nic_bandwidth_gb_s": 25})
        times.append(evaluate(GPT3, sysx, plan, PROF, stack=load_stack("deepspeed")).iteration_time.value)
    # more NICs per node: never slower; beyond the stated per-GPU figure (8 x 25 GB/s) no gain
    assert times[0] > times[1] > times[2] and times[2] == pytest.approx(times[3])


def test_fp8_linear_only_attention_stays_bf16():
    prof = shipped_profile("h100_sxm")
    sysx = validation_system("meta-llama3-h100")
    wl = replace(load_training_workload("llama3-405b"), global_batch_seqs=2048)
    plan = ExecutionPlan(tp=8, pp=16, dp=128, micro_batch=1, recompute="full")
    bf = evaluate(wl, sysx, plan, prof, "bf16")
    f8 = evaluate(wl, sysx, plan, prof, "fp8")
    assert f8.iteration_time.value < bf.iteration_time.value  # fp8 linear layers help ...
    assert f8.iteration_time.value > 0.5 * bf.iteration_time.value  # ... but far from 2x
    # MFU is quoted against the bf16 peak, with the fp8-peak figure beside it
    assert f8.mfu.value == pytest.approx(2.0 * f8.mfu_fp8_peak.value, rel=0.01)
    # attention runs at the bf16 rate: the profile is never asked for an fp8 attention curve
    asked = []

    class Spy:
        def __getattr__(self, k):
            return getattr(prof, k)

        def attention_curve(self, dtype, direction="fwd"):
            asked.append(dtype)
            return prof.attention_curve(dtype, direction)

        def attention_time_s(self, dtype, *args, **kw):
            asked.append(dtype)
            return prof.attention_time_s(dtype, *args, **kw)

    from recoque.planner.train import hardware_for, plan_arrays
    from recoque.planner.train_core import core
    core(wl, hardware_for(sysx, prof), Spy(), "fp8", plan_arrays([plan]))
    assert asked and set(asked) == {"bf16"}


def test_fp4_runs_the_linear_layers_at_the_fp4_rate_and_attention_in_bf16():
    """NVFP4 training as fp8 is handled: only the linear GEMMs change precision, at the fp4 peak x
    the fp4 relative efficiency (the fp8 rule once more: 0.88 of the 16-bit fraction); parts without an fp4
    rate refuse it in one line."""
    from recoque.planner.profile import DEFAULT_FP4_RELATIVE_EFFICIENCY
    from recoque.planner.system import load_system

    prof = shipped_profile("b200")
    sysx = load_system("node-8x-b200")
    wl = replace(load_training_workload("llama3-405b"), global_batch_seqs=8)
    plan = ExecutionPlan(tp=8, pp=1, dp=1, micro_batch=1, recompute="full")
    f8, f4 = (evaluate(wl, sysx, plan, prof, d) for d in ("fp8", "fp4"))
    assert f4.iteration_time.value < f8.iteration_time.value < evaluate(wl, sysx, plan, prof, "bf16").iteration_time.value
    # the fp4 GEMM rate relative to fp8: peak ratio 2 x (0.65 / the fp8 relative efficiency)
    rel8 = float(prof.fallback.get("fp8_gemm_relative_efficiency"))
    t8, t4 = (prof.gemm_time_s(d, 8192, 8192, 8192) for d in ("fp8", "fp4"))
    assert t8 / t4 == pytest.approx(2.0 * DEFAULT_FP4_RELATIVE_EFFICIENCY / rel8, rel=0.02)
    assert f4.mfu.value == pytest.approx(4.0 * f4.mfu_fp8_peak.value, rel=0.01)  # against bf16, fp4 peak beside
    with pytest.raises(BadInput, match="fp4"):
        evaluate(wl, validation_system("meta-llama3-h100"), plan, shipped_profile("h100_sxm"), "fp4")


def test_lora_drops_weight_gradients_and_optimizer_state():
    prof = shipped_profile("mi300x")
    c = [c for c in load_cases() if c.name == "mlperf-lora-70b-8x-mi300x"][0]
    full = replace(c.workload, lora_rank=0, lora_dropout=0.0)
    lo = evaluate(c.workload, c.system, c.plan, prof, "fp8", stack=c.stack)
    fu = evaluate(full, c.system, c.plan, prof, "fp8", stack=c.stack)
    assert lo.iteration_time.value < fu.iteration_time.value
    assert lo.memory_per_gpu.value < 0.5 * fu.memory_per_gpu.value


def test_stack_limits_the_search():
    wl = replace(GPT3, global_batch_seqs=512)
    res = search(wl, SEL, PROF, top=3, gpus=512, stack=load_stack("megatron-lm"))
    assert res.best and all(not r.plan.flash_attention and r.plan.cp == 1 and r.plan.zero_stage < 2
                            for r in res.best)
    with pytest.raises(BadInput):
        search(wl, SEL, PROF, gpus=512, dtype="fp8", stack=load_stack("megatron-lm"))


@pytest.mark.parametrize("gpus,stack", [(256, "megatron-core"), (512, "deepspeed"), (1024, "fsdp"), (96, "megatron-lm")])
def test_pruned_search_equals_full_search(gpus, stack):
    wl = replace(GPT3, global_batch_seqs=768)
    st = load_stack(stack)
    a = search(wl, SEL, PROF, top=1, gpus=gpus, stack=st)
    b = search(wl, SEL, PROF, top=1, gpus=gpus, stack=st, full=True)
    assert a.evaluated <= b.evaluated
    assert a.best[0].iteration_time.value == pytest.approx(b.best[0].iteration_time.value, rel=1e-12)


def test_pins_are_kept():
    wl = replace(GPT3, global_batch_seqs=512)
    pins = {"tp": 4, "pp": 8, "vpp": 2, "micro_batch": 1, "recompute": "selective", "zero": 1, "sp": True}
    res = search(wl, SEL, PROF, top=3, gpus=512, pins=pins)
    for r in res.best:
        p = r.plan
        assert (p.tp, p.pp, p.interleave, p.micro_batch, p.recompute, p.zero_stage, p.sequence_parallel) == \
            (4, 8, 2, 1, "selective", 1, True)
    with pytest.raises(BadInput):
        search(wl, SEL, PROF, gpus=512, pins={"recompute": "sometimes"})


def test_gpu_count_curve_picks_the_minimum_time():
    wl = replace(GPT3, global_batch_seqs=512)
    sc = fastest_gpu_count(wl, replace(SEL, gpus=1024), PROF, top=1, counts=[128, 256, 512, 1024])
    pts = [p for p in sc.curve if p.fits]
    assert pts and sc.fastest_gpus == min(pts, key=lambda p: (p.time_to_train_wall_s, p.gpus)).gpus
    # goodput below 1: the clock runs longer than steady state
    assert all(p.time_to_train_wall_s > p.time_to_train_s for p in pts)
    assert set(sc.to_json()["curve"][0]) >= {"time_to_train_s", "time_to_train_wall_s", "mfu"}  # base units in the keys
    assert sc.to_json()["curve"][0]["gpus"] == 128
    days = [p.time_to_train_s for p in pts]
    assert days[0] > days[-1]  # more GPUs help here
    assert np.isfinite(days).all()


def test_recompute_modes_memory_order_and_distributed_checkpoints():
    base = ExecutionPlan(tp=8, pp=8, dp=16, micro_batch=1, recompute="none", sequence_parallel=False,
                         flash_attention=False)
    mem = {}
    for name, p in (("none", base), ("selective", replace(base, recompute="selective")),
                    ("half", replace(base, recompute="full", recompute_layers=6)),
                    ("full", replace(base, recompute="full")),
                    ("full-dist", replace(base, recompute="full", distribute_checkpoints=True))):
        r = evaluate(GPT3, SEL, p, PROF)
        mem[name] = (r.memory_per_gpu.value, r.iteration_time.value)
    m = {k: v[0] for k, v in mem.items()}
    t = {k: v[1] for k, v in mem.items()}
    assert m["none"] > m["selective"] > m["half"] > m["full"] > m["full-dist"]
    assert t["none"] < t["half"] < t["full"] <= t["full-dist"]


def test_context_parallel_splits_activations():
    wl = replace(load_training_workload("llama3-405b"), global_batch_seqs=256)
    sysx = validation_system("meta-llama3-h100")
    prof = shipped_profile("h100_sxm")
    p1 = ExecutionPlan(tp=8, pp=16, dp=16, micro_batch=1, recompute="none")
    p2 = replace(p1, dp=8, cp=2)
    r1, r2 = evaluate(wl, sysx, p1, prof), evaluate(wl, sysx, p2, prof)
    assert r2.memory_per_gpu.value < r1.memory_per_gpu.value
    assert r2.breakdown["cp_comm_s"] >= 0.0 and r1.breakdown["cp_comm_s"] == 0.0


def test_stack_efficiency_fit_reproduces_the_seed():
    from recoque.planner.validation import fit_stack

    assert fit_stack("deepspeed-2022")["efficiency"] == pytest.approx(load_stack("deepspeed-2022").efficiency, abs=1e-9)
    assert load_stack("deepspeed").efficiency == load_stack("deepspeed-2022").efficiency  # carried over, stated


def test_zero3_node_rings_share_the_nodes_nics():
    """FSDP-type stacks run ZeRO-3 collectives as node-crossing rings (the node's NICs share the
    inter-node part); the DeepSpeed stacks keep the per-rank NIC bound they were checked with."""
    plan = ExecutionPlan(tp=1, pp=1, dp=64, micro_batch=1, recompute="full", zero_stage=3, sequence_parallel=False)
    wl = replace(GPT3, global_batch_seqs=512)
    fsdp = load_stack("fsdp")
    assert fsdp.zero3_node_rings and not load_stack("deepspeed-2022").zero3_node_rings
    rings = evaluate(wl, SEL, plan, PROF, stack=fsdp)
    per_rank = evaluate(wl, SEL, plan, PROF, stack=replace(fsdp, zero3_node_rings=False))
    assert rings.breakdown["zero3_exposed_s"] < per_rank.breakdown["zero3_exposed_s"]
    z1 = evaluate(wl, SEL, replace(plan, zero_stage=1), PROF, stack=fsdp)
    assert rings.iteration_time.value >= z1.iteration_time.value


def test_nvl72_keeps_a_pipeline_of_64_gpus_inside_its_nvlink_domain():
    """A GB200 NVL72 rack is one 72-GPU NVLink domain: TP 8 x PP 8 sends activations between stages
    over NVLink there, while the same plan on 8-GPU nodes of the same GPUs sends them over the NICs."""
    from recoque.planner.system import load_system

    rack = load_system("nvl72-gb200").with_gpus(64)
    eight = replace(rack, gpus_per_node=8)
    plan = ExecutionPlan(tp=8, pp=8, dp=1, micro_batch=1, recompute="full", sequence_parallel=True)
    wl = replace(GPT3, global_batch_seqs=64)
    t_rack, t_eight = (evaluate(wl, s, plan, shipped_profile("gb200")).breakdown["p2p_s"] for s in (rack, eight))
    assert 0 < t_rack < 0.5 * t_eight


def test_gpu_count_curve_says_why_a_count_has_no_plan():
    wl = replace(GPT3, global_batch_seqs=512)
    # 1,021 GPUs (prime): no TP x CP x PP x DP layout; 8 GPUs: layouts exist but 175B does not fit
    sc = fastest_gpu_count(wl, replace(SEL, gpus=1024), PROF, top=1, counts=[8, 512, 1021])
    why = {p.gpus: p.why for p in sc.curve}
    assert why[8] == "does not fit" and why[1021] == "no valid layout" and why[512] == ""
    assert sc.to_json()["curve"][2]["why"] == "no valid layout"


@pytest.mark.parametrize("model", ["mixtral-8x7b", "qwen3-30b-a3b"])
def test_zero3_never_faster_than_zero1_on_moe_plan_grid(model):
    """The routed experts' gradient reduction counts under ZeRO-3 too: over every searchable
    plan of a MoE model on 64 GPUs, ZeRO-3 (resharded or not) is never faster than ZeRO-1."""
    from recoque.planner.search import enumerate_plans
    from recoque.planner.train import hardware_for
    from recoque.planner.train_core import core
    sysx = validation_system("meta-llama3-h100")
    prof = shipped_profile(sysx.device)
    st = load_stack("fsdp")
    wl = load_training_workload(model, 1e12, 512)
    hw = hardware_for(sysx, prof)
    chunks, _ = enumerate_plans(wl, 64, sysx.gpus_per_node, full=True, stack=st, pins={"zero_stage": 1})
    checked = 0
    for a in chunks:
        a = {k: np.asarray(v)[np.asarray(a["dp"]) > 1] for k, v in a.items()}
        if not len(a["tp"]):
            continue
        t1 = core(wl, hw, prof, "bf16", a, stack=st)["iteration_time_s"]
        for reshard in (True, False):
            b = {**a, "zero_stage": np.full_like(a["zero_stage"], 3),
                 "reshard_after_forward": np.full(len(a["tp"]), reshard)}
            t3 = core(wl, hw, prof, "bf16", b, stack=st)["iteration_time_s"]
            assert np.all(t3 >= t1 * (1.0 - 1e-12))
            checked += len(t3)
    assert checked > 1000


def test_embedding_sync_inside_one_node_does_not_use_the_nics():
    # GPT-3 ties its embeddings: with pp > 1 the first and last stage all-reduce their gradient; on
    # one node that runs over NVLink, so the NIC rate must not move it (before: always the NIC rate)
    plan = ExecutionPlan(tp=2, pp=4, dp=1, micro_batch=1, recompute="full")
    wl = replace(GPT3, global_batch_seqs=64)
    syncs = []
    for nic in (1, 25, 100):
        sysx = replace(SEL, extra={**SEL.extra, "nics_per_node": 8, "nic_bandwidth_gb_s": nic})
        syncs.append(evaluate(wl, sysx, plan, PROF).breakdown["emb_sync_s"])
    assert GPT3.model.tied_embeddings and syncs[0] > 0.0
    assert syncs[1] == pytest.approx(syncs[0], rel=1e-12) and syncs[2] == pytest.approx(syncs[0], rel=1e-12)
    across = evaluate(wl, SEL, replace(plan, dp=4), PROF).breakdown["emb_sync_s"]
    assert across > syncs[0]
