"""The serving check set (seeds/serving_checks.toml): published results never calibrated on, held
against the serving model by benchmarks/serving_holdout.py. Guards at the values measured when the
set was built: every case runs, none is a calibration case, errors and ranges stay put."""

import json

import pytest

from recoque.planner.serving_validation import load_cases
from bench_scripts import load_script



@pytest.fixture(scope="module")
def rows():
    mod = load_script("serving_holdout")
    return mod, mod.rows(load_cases(seed_file="serving_checks.toml"))


def test_check_cases_are_new_sourced_and_never_calibration():
    checks = load_cases(seed_file="serving_checks.toml")
    assert len(checks) >= 55
    known = {c.key for c in load_cases()}
    for c in checks:
        assert c.role == "sanity" and c.key not in known, c.key
        assert c.sources.get("published"), c.key


@pytest.mark.parametrize("vendor,mean_max,max_max,inside_min", [("nvidia", 0.12, 1.36, 0.84),
                                                                   ("amd", 0.105, 0.56, 0.90)])
def test_serving_errors_stay_where_they_were(rows, vendor, mean_max, max_max, inside_min):
    """Measured when the set was built: nvidia 9.1% mean / 16.9% max over 24, amd 14.7% / 43.3% over
    33 (every MI300X/MI325X Llama-2-70B Interactive submission 28-43% low), every published figure
    inside its range. Since the engine efficiency no longer divides the weight read: nvidia 7.8% /
    16.3%, amd 11.7% / 31.1%. With the ROCm blog's vLLM batch caps read from ROCm/MAD config.csv
    (500-3,200 streams instead of vLLM's default 256): amd 13.6% / 44.0% (128 in / 4,096 out at
    1,500 streams runs 30% slower than the model says; not explained, not fitted). With ROCm/vllm's
    dev-docker README rows of July 2025 (vLLM 0.9.1, 14 more): amd 16.5% / 44.0% over 47; the model
    is too slow at one stream (-31%) and too fast from 128 streams up (+3-43%): its per-stream cost
    on a TP 8 MI300X replica is 1/2-2/3 of the published one. With every dense-model cell of the
    TensorRT-LLM perf overview not in validation.toml (89 more: Llama 3.3 70B, 3.1 405B and 8B on H100/H200
    FP8 and B200/GB200 FP4): nvidia 8.0% / 25.8% / 93% over 120 (worst: 405B TP4 FP4 at 1000/2000, the model 24-26% fast).
    With the TP all-reduce on AMD at RCCL's measured 0.71 of the xGMI links (0.8 before, both vendors):
    amd 14.7% / 39.0% / 96%. With the 8x MI300X preset's TP 8 all-reduce read from AMD's published RCCL
    table by message size: amd 11.0% / 32.3% / 98%. With DeepSeek-R1 (MLA, attention DP over TP 8,
    EP 8: TensorRT-LLM's own two max-throughput rows, 8x H200 FP8 and 8x B200 FP4) the model was 64%
    fast on both; with the busiest attention-DP rank's prefill 33% / 41%; with the busiest EP rank's
    share from TensorRT-LLM's published DeepSeek-R1 load statistics +17% / +19%, both inside:
    nvidia 8.1% / 25.8% / 93% over 122. With the ROCm rows' one wave of requests followed to its end
    (planner/serving_wave.py: 1,500-2,000 requests at once, whose KV at full length is 121-154% of the
    405B replica's KV memory, so vLLM preempts): the four 405B rows at 128/4,096 and 500/2,000 from
    +22..+32% to +2..+8%, the twelve that fit unchanged (within 0.5%): amd 9.2% / 27.2% / 100%.
    With the TensorRT-LLM perf-overview runs also followed to their end ($num_requests of the page, the
    last wave of full-length reservations partly empty) and the trtllm efficiency recomputed on its
    three calibration cases with that (0.83 -> 0.85): nvidia 8.1% / 23.9% / 95%.
    With MLPerf Inference v5.1 and v6.0 rows on Blackwell Ultra and MI355X (22 more, not a model change):
    nvidia 10.8% / 106.9% / 88% over 141, amd 9.1% / 29.4% / 100% over 50. Offline dense rows on B300/GB300
    land at -2.5..+16.7%; the Server and Interactive rows are 21-61% fast (Llama 3.1 405B Server on H200 was
    already +18.5%: the model under-charges MLPerf's latency bounds on fast parts); v6.0 DeepSeek-R1 rows
    are 29-43% slow where v5.1's GB300 Offline row fits (+1.5%); CoreWeave's 8 x GB300 DeepSeek-R1 Server
    row is +107%. Causes not found. With each row's step token budget from its config (max_num_tokens,
    52 rows) and the prefill queue charged P / room steps per prompt (it was one step at most): Llama 3.1
    405B Server on 8 x B300 (budget 1,024) +29% -> +17%, the 8 x B300 Interactive row (768) +61% -> +52%;
    nvidia 10.6% / 106.9% / 89%, amd 8.7% / 29.4% / 100%. With the B300's FP4 rate taken from the GB300's
    (same die) at 1100 W instead of 1400 W by the power-cap law (x 0.861, not the peak ratio 0.933): the
    B300 Llama rows -2..+45% (were +2..+61%); nvidia 10.4% / 106.9% / 90%. With TensorRT-LLM's DeepSeek-R1
    min-latency rows (batch 1, MTP with 3 draft tokens, EP 2 / EP 4 under TP 8: each expert split over
    tp / ep GPUs) and its R1-0528 FP8-KV max-throughput row: +46% / +42% / +22.5%; the default
    acceptance 0.85 (DeepSeek-V3's first-draft figure) gives a 2.9x MTP gain at batch 1 where NVIDIA
    measured 2.16x; nvidia 10.9% / 106.9% / 90% over 144. With the LM head kept 16-bit under FP8/FP4
    weights (ModelOpt's default): every row within 1.7 points; three TensorRT-LLM FP8 rows on H100/H200
    the model already ran 15-16% slow cross the low end; nvidia 10.8% / 105.8% / 88%, amd 8.7% / 28.6% / 100%.
    With the H200's HBM read rate measured by `recoque bench` on an H200 (4.2 TB/s, was 4.25 stated):
    nvidia 10.9% / 105.8% / 88%. With a MoE expert's GEMM rows counted over the experts the step
    touches (not all E): only the two DeepSeek-R1 min-latency rows move, +44% -> +66% (B200) and
    +40% -> +93% (H200): the idle experts' padded tiles had stood in for the per-layer kernels of MLA
    and MoE routing that the fixed 12 kernels per layer do not count; nvidia 11.4% / 105.8% / 88%.
    With three changes (stop 42): a MoE step's expert reads mixed over the steps that carry a prompt
    chunk and those that decode only (the touched-expert count is concave in the tokens); the kernels
    per layer counted by architecture (+5 for MLA, +4 for MoE routing, +3 for a shared expert, from
    the engines' model code); vLLM's V1 engine (>= 0.8) at 0.5 ms CPU per step, the 2024 V0 rows
    (ROCm vllm-dev of January 2025, OCI's 405B blog) kept at 2 ms as engine "vllm-v0": the DeepSeek-R1
    min-latency rows +66/+93% -> +24/+65%, both inside; AMD's vLLM rows at one to 32 streams move 8-20 points
    faster, the MI325X Interactive rows -16..-18% -> -4..-6%, but the Dell MI300X Interactive row
    (8,455 tokens/s where the same engine gives 15,566-18,846 on MI325X) +28.6% -> +51.1%:
    nvidia 10.9% / 90.5% / 88%, amd 9.0% / 51.1% / 100%. With the 8-GPU serving nodes' TP all-reduce
    hop latency at its graph-replay figure (0.43 us per hop, 6 us for 8 GPUs; it was 1.0, the figure
    without graphs; seeds/systems.toml): the Llama 3.1 405B TP 8 rows 1-5 points faster, the
    DeepSeek-R1 min-latency rows faster still (+24/+65% -> +44/+89%), CoreWeave's GB300 Server row
    +90.5% -> +95.6%; nvidia 11.4% / 95.6% / 87%, amd unchanged; the InferenceMAX set gains
    (nvidia 15.3% -> 12.8%, tests/test_serving_inferencemax.py). With the engine efficiency applied once
    to the attention math (prefill attention, MLA's decode math; it had been applied twice: the rate at
    e and the attention time at 1/e again, e^2) and the busiest attention-DP rank's projection GEMMs
    counted as GEMM math: the rows that move were already fast and move faster: TensorRT-LLM's
    DeepSeek-R1 attention-DP rows +16..+20% -> +24%, two of them and the v5.1 Llama 3.1 405B GB300
    Offline row (+18%) just past their high ends, CoreWeave's GB300 Server row +91.9% -> +101.7%;
    the long-prompt TensorRT-LLM rows the model ran slow move 2 points up; nvidia 11.4% / 91.9% / 87%
    -> 11.6% / 101.7% / 85%, amd unchanged (9.0% / 51.3% / 100%). The guard follows the fix: e^2 was
    an unsourced extra factor standing in for costs of those rows that are still not found. With a
    MoE layer's token traffic as the engines move it (stop 71, planner/serving_step.moe_token_comm_s):
    no all-to-all under tensor-parallel attention (the MLP all-reduce sums the experts' outputs), and
    under attention DP one quantized copy per other rank a token's experts sit on (it was k 16-bit
    copies): TensorRT-LLM's DeepSeek-R1 attention-DP rows -0.1/+5.5/+20.5% -> +13.4/+24.0/+31.0%,
    the MLPerf GB300 rows -4..+1% -> +7..+10%, CoreWeave's GB300 Server row +95.9% -> +122.5%, the
    MLPerf v6.0 B300/GB300 DeepSeek-R1 rows -48..-37% -> -42..-29%; nvidia 11.2% / 95.9% / 88% ->
    11.6% / 122.5% / 88%, amd unchanged. The old count was wrong for every engine (TensorRT-LLM
    communication_factory.py: no MoE communication without attention DP; dispatch per rank); what
    it stood in for on the attention-DP rows is not found. With no TP all-reduce kernels launched at
    tp = 1 (planner/serving_step.kernels_per_layer, stop 88): the single-GPU rows' launch time drops
    by 2 of 12 kernels a layer; Dell's MI300X Llama-2-70B Interactive row, already the AMD maximum
    and fast, +47.3% -> +54.7% (the MI325X Interactive rows of AMD, GIGABYTE and MiTAC -8..-6% ->
    -5..-2%, ASUS's +10.9% -> +15.6%);
    nvidia and amd means unchanged (11.6%, 8.8%). With 16 more MLPerf v6.0 AMD Llama-2-70B rows (stop 92:
    partners' MI355X, MI350X and MI300X; their gpt-oss-120b rows went to seeds/serving_checks_gptoss.toml):
    amd 8.8% / 100% inside over 50 -> 9.0% / 100% over 66 (the MI350X rows +5..+9% Offline and Server,
    +29..+37% Interactive, with [rates.mi350x] the MI355X rates at 1000 W; +12..+17% / +39..+48% before).
    Stop 112, a review of the step model: the average step's GEMM time the q-weighted overlap of a
    decode and a prompt step (it overlapped their averages); under attention DP the norms and residuals
    on each rank's own tokens (they were charged every token of the group), TensorRT-LLM's shared
    expert, dense-first FFN and LM head read whole on each rank; MLA's down-projections replicated
    under TP; the busiest rank's prefill attention over sliding windows. TensorRT-LLM's DeepSeek-R1
    attention-DP rows +12..+28% -> +21..+36% (the elementwise share, 8% of their step, falls to 2%),
    CoreWeave's GB300 Server row +117.5% -> +133.6%, the v6.0 DeepSeek-R1 rows -43..-30% -> -40..-25%:
    nvidia 11.6% / 117.5% -> 11.8% / 133.6% / 88%, amd 9.0% -> 8.9%."""
    mod, rs = rows
    s = mod.summary([r for r in rs if r["vendor"] == vendor])
    assert s["failed"] == 0
    assert s["mean_abs_error"] <= mean_max and s["max_abs_error"] <= max_max
    assert s["inside_fraction"] >= inside_min


def test_holdout_json_carries_numbers_not_reprs(capsys):
    """--json gives each predicted figure as value / low / high numbers (it printed the estimate's
    repr string, which no JSON reader can use)."""
    mod = load_script("serving_holdout")
    one = load_cases(seed_file="serving_checks.toml")[:1]
    mod.holdout_cli.run("t", ["--json"], lambda: one, lambda *_: one, mod.rows, mod.summary, mod.report)
    row = json.loads(capsys.readouterr().out)["rows"][0]
    for key in ("predicted_tokens_per_s", "predicted_ttft_s", "predicted_tpot_s"):
        est = row[key]
        assert isinstance(est["value"], float) and est["low"] <= est["value"] <= est["high"], key
