"""The training check set (seeds/train_checks.toml): published runs never fitted, held against the
model by benchmarks/train_holdout.py. Guards: every case loads with a source, nothing in it was a
calibration group, and the errors and ranges stay where they were when the set was built."""

import pytest

from recoque.fileio import read_seed_toml
from recoque.planner.stacks import load_stack
from recoque.planner.validation import fitted_groups, load_cases
from bench_scripts import load_script



def _holdout():
    return load_script("train_holdout")


@pytest.fixture(scope="module")
def rows():
    mod = _holdout()
    return mod, mod.rows(load_cases("train_checks.toml"))


def test_every_check_case_has_a_source_and_was_never_fitted():
    cases = load_cases("train_checks.toml")
    assert len(cases) >= 100
    calibration = {c.group for c in load_cases()}
    for c in cases:
        assert c.source, c.name
        assert c.group not in calibration, c.name
        assert c.group not in fitted_groups(c.system.device), c.name
        assert c.group not in c.stack.fitted_on, c.name
        assert c.in_verdict or c.why_not_in_verdict, c.name
    raw = read_seed_toml("train_checks.toml")
    for key, sysraw in raw.get("systems", {}).items():
        assert sysraw.get("sources"), key


def test_case_level_gradient_reduction_dtype():
    cases = {c.name: c for c in load_cases("train_checks.toml")}
    assert cases["mbridge2511-h100-llama3-70b-fp8"].stack.grad_reduce_dtype == "bf16"
    assert cases["nemo2407-gpt3-175b-128gpu-fp8"].stack.grad_reduce_dtype == load_stack("megatron-core").grad_reduce_dtype


@pytest.mark.parametrize("vendor,mean_max,max_max,inside_min", [("nvidia", 0.085, 0.36, 0.90),
                                                                   ("amd", 0.09, 0.38, 0.90)])
def test_errors_stay_where_they_were(rows, vendor, mean_max, max_max, inside_min):
    """Regression guards at the values measured when the set was built (in the verdict: nvidia
    8.3% mean / 29.7% max / 85% inside over 97 runs, the worst NeMo Megatron 2022 GPT-3 175B (27-29%
    fast) and MPT-1B/70B on A100 (23-30%); amd 12.3% / 32.6% / 73% over 26, the FORGE runs
    on 512-1,024 Frontier GCDs 27-33% slower than the model). With the GB200 NVL72 MLPerf runs and
    17 more AMD MLPerf partner runs and 12 NVFP4 v5.1 runs: nvidia 8.5% / 36.2% / 83% over 120 (worst:
    MLPerf v5.1 Llama 3.1 8B on 512 GB200, the model 36% fast), amd 9.3% / 32.6% / 83% over 42. With the
    kernel overhead on every non-GEMM kernel (and the refits it moved): nvidia 8.4% / 33.7% / 82%, amd 9.6% / 32.6% / 83%;
    with the run-to-run spread on the slow side of the range: inside 92% (nvidia), 95% (amd); with the
    context-parallel merges and all-to-all: nvidia 8.3% / 31.2% / 90%, amd 9.5% / 32.6% / 95%. With the fp8
    weight all-gather (the runs' configs, else the Megatron-Core stacks' practice) and the bf16 gradient
    reduction the AMD 8B configs state: nvidia 8.3% / 40.6% / 91%, amd
    9.0% / 32.6% / 98% (the 512-GB200 Llama 3.1 8B run, already the worst, loses DP time it never showed:
    -31% -> -41%). With the rest of the v5.1 Llama 3.1 8B NVIDIA submissions (UF ladder, GB300 72/512,
    Cisco H100, single-node B200/B300; the 500 W limit of the torchtitan hosts and the GB300 anchor from
    the B300 by the power-cap law): nvidia 8.6% / 43.7% / 90% over 131 (worst: the same recipe on 512
    GB300, -44%). With the runs' NCCL CTA caps (one CTA for the context-parallel ring, half a link each):
    nvidia 7.6% / 29.6% / 92% (worst: Cisco's 16 x 8 H100 TP2 8B run, -29%; the 512-GPU 8B runs +2%
    and +0.4%). Six more v5.1 8B B200 runs added after that (Oracle, Verda, Nebius, Dell; -8..+5%):
    nvidia 7.5% / 29.6% / 93% over 137; with eight single-node B200/B300 runs of the same recipes
    (Lenovo, Supermicro, Oracle, Nebius; within 2%): 7.2% / 29.6% / 93% over 145. With the MI355X/MI350X
    FP8 GEMMs at the bf16 fraction of their doubled peak (hipBLASLt 3,130 TFLOP/s at 8192^3): amd 7.8% / 32.6% / 98%.
    With GB200's NVFP4 GEMMs at the cuBLASLt fraction Azure measured (7.5-7.6 PFLOP/s at 8192^3): nvidia 7.0% / 29.6% / 94%.
    With the MI300X/MI325X FP8 plateaus at AMD's measured FP8 rates (1,273 / 1,519, above AMD's RVS floors):
    amd 6.9% / 32.6% / 100%.
    With more check rows (not a model change): Megatron-Bridge 26.04.01 dense Llama 3 70B / 3.1 405B and 26.08
    MoE, AMD's own Primus and ROCm-docs runs: nvidia 7.6% / 35.1% / 90% over 173 (worst: 405B NVFP4 on 256
    GB200, +35%, slow: the model exposes its TP and pipeline transfers), amd 6.9% / 32.6% / 100% over 45.
    With fp8 all-gathers under fp8/fp4 with SP (Transformer Engine quantizes before it gathers):
    nvidia 7.5% / 30.7% / 92%.
    With the MLPerf Training v6.0 rows (not a model change: NVIDIA, partner and AMD Llama 3.1 8B / 405B /
    LoRA, DeepSeek-V3 and gpt-oss-20b; MXFP4 on MI355X/MI350X): nvidia 7.8% / 30.7% / 90% over 193 (largest
    new errors in the verdict: GB300 LoRA +14..+23%, the 1,024-GB200 8B run -27%), amd 7.6% / 32.6% / 100% over 66
    (MI350X MXFP4 -7..-12%).
    With Blackwell Ultra's softmax exponentials at its stated 10.7 TeraExponentials/s against the B200's 5
    (the B200 attention efficiency carried to B300/GB300 less the exponential time saved): nvidia 7.9% / 30.7% /
    92% (GB300 LoRA +14..+23% -> +9..+15%; B300/GB300 8B rows 0..-8% lower, the 8 x 8 B300 8B run -17%).
    Nine more v6.0 partner rows read after that change (Lambda GB300 72 / B200 8, Supermicro and Dell B300 and B200
    single-node 8B and LoRA, Dell 2 x 8 B300 8B): the B300 LoRA rows +5..+6% (they would be +15% without the SFU
    rate), Lambda's 72-GB300 8B -14%: nvidia 7.8% / 30.7% / 92% over 202. Five more (Dell XE9780 B200/B300,
    Oracle 2 x 4 GB300 8B and LoRA; Oracle's LoRA +15%): 7.8% / 30.7% / 92% over 207. With a torchtitan FSDP2
    Llama 3 8B run on 64 Frontier GCDs (-15%): amd 7.7% / 32.6% / 100% over 67.
    A model override of hidden or heads now re-derives a head size that was hidden / heads (it kept the
    preset's: BigScience's 64-head 12,288-wide rows had 8,192-wide attention projections, Dash's 48-head
    22B 4,608): the BigScience rows -12..-27% -> -4..-21%, nvidia 7.5% / 30.7% / 92%; the deepspeed-rocm
    stack refitted on the corrected Dash runs by its stated grid (0.60 -> 0.65; Dash 22B/175B/1T +0.3 / -4.6 /
    +4.7%, the 1T back in the verdict) makes the FORGE and NeoX Frontier rows 5 points faster: amd 8.4% / 37.2% / 99%.
    With Megatron-Core's interleaved pipeline sends beside the next chunk's compute outside the warm-up
    and cool-down (stack pp_comm_overlap, Megatron overlap_p2p_comm): the Megatron-Bridge 405B GB200 rows
    +14 / +13 / +31% -> +7 / -0 / +11%, the MLPerf 405B rows 3-6 points faster (-7..-14%): nvidia 7.4% / 29.7% / 95%.
    Three rows added (not a model change): the NeMo launcher README's July 2022 GPT-3 175B table, 29-38% faster
    than its September table for the same model and plan, lands -2 / -7 / -2%: nvidia 7.4% / 29.7% / 95% over 210.
    The September table out of the verdict (stop 98: the 22.09 config's own max_time needs the July throughput):
    nvidia 6.7% / 27.7% / 97% over 205 (worst: Cisco's 16 x 8 H100 TP2 8B run, -28%).
    The issue's target is max <= 15% on both: not met."""
    mod, rs = rows
    s = mod.summary([r for r in rs if r["vendor"] == vendor])
    assert s["runs"] >= 20
    assert s["mean_abs_error"] <= mean_max
    assert s["max_abs_error"] <= max_max
    assert s["inside_fraction"] >= inside_min


def test_report_names_the_runs_left_out_of_the_verdict(rows):
    mod, rs = rows
    text = mod.report(rs)
    assert "not in the verdict: torchtitan-8b-8gpu-fsdp-float8" in text
    assert "500 W" in text
