"""Sweep 8: figures that disagreed between commands, labels that did not match their values."""
import dataclasses
import json
from pathlib import Path

import pytest
from cli_json import cli_json, runner, section_value

from recoque.bench import compare
from recoque.bench.schema import document_from_json
from recoque.catalog import get_device_spec
from recoque.cli import app
from recoque.planner import capacity, claims
from recoque.planner.serving_notes import usable_note
from recoque.planner.serving_rates import load_engine
from recoque.planner.system import load_system
from recoque.report import model as report_model

H200 = Path(__file__).resolve().parents[1] / "seeds" / "measured" / "h200.json"


def _line(result, start: str) -> str:
    return next(a for a in result.arithmetic if a.strip().startswith(start))


def test_check_and_plan_hpl_print_one_delivered_h100e_for_alice():
    _, _, _, d, _ = capacity.plan_hpl(load_system("alice-recoque"))
    line = _line(claims.run_claim("h100e-25000"), "H100e HPL delivered")
    assert line.endswith(f"= {d.equivalent.h100e.value:,.0f} ({d.equivalent.h100e.low:,.0f}..{d.equivalent.h100e.high:,.0f})")


def test_check_and_plan_hpl_print_one_fp64_peak_h100e_for_alice():
    from recoque.planner import equivalents

    peaks = {e.metric: e.h100e for e in equivalents.peak_equivalents(load_system("alice-recoque"))}
    line = _line(claims.run_claim("h100e-25000"), "H100e fp64_vector peak")
    assert line.endswith(f"= {peaks['fp64_vector'].value:,.0f} ({peaks['fp64_vector'].low:,.0f}..{peaks['fp64_vector'].high:,.0f})")


def test_the_exaflop_check_derives_the_preset_count():
    alice = load_system("alice-recoque")
    need = claims.run_claim("exaflop").implied["gpus_for_hpl"]
    assert round(need.value) == alice.gpus
    assert (round(need.low), round(need.high)) == alice.ranges["gpus"]


def test_hbm_capacity_says_gib_and_gb():
    note = usable_note(0.9, get_device_spec("h100_sxm"), load_engine("vllm"))
    assert note == "90% of 80 GiB (85.9 GB) = 77.3 GB usable"


def test_report_estimate_labels_drop_the_base_unit_of_the_key():
    est = {"value": 6.77e13, "low": 4.25e13, "high": 1.79e14, "unit": "J"}
    rows = report_model.generic_tables("t", {"energy_per_year_j": est, "gpus": 8})[0].rows
    assert rows[0][0] == "energy per year" and rows[0][-1] == "GWh"
    assert rows[1][0] == "GPUs"
    # sweep 10: a rate keeps its "per" unit, and acronyms read as such
    rate = {"tokens_per_s": dict(est, unit="tokens/s"), "it_power_w": dict(est, unit="W"),
            "gflops_per_w": dict(est, unit="GFLOP/s/W")}
    names = [r[0] for r in report_model.generic_tables("t", rate)[0].rows]
    assert names == ["tokens per s", "IT power", "GFLOP/s per W"]


def test_report_environment_prints_versions_as_the_tools_do():
    rows = {r[0]: r[1] for r in report_model.environment([report_model.load_input(str(H200))]).tables[0].rows}
    assert rows["environment.cudnn_version"] == "91900"


def test_list_devices_names_the_fp64_rate_it_shows():
    out = runner.invoke(app, ["list", "devices", "--json"])
    assert out.exit_code == 0
    text = runner.invoke(app, ["list", "devices"]).output
    assert "FP64 GEMM" in text and "matrix-unit rate" in text


def test_validate_summaries_end_without_a_dangling_colon():
    out = runner.invoke(app, ["validate"])
    summaries = [ln for ln in out.output.splitlines() if ln.startswith("serving ")]
    assert summaries and not any(ln.rstrip().endswith(":") for ln in summaries)


def test_compare_pairs_a_case_round_by_round_and_says_so():
    doc = document_from_json(json.loads(H200.read_text()), origin="h200.json")
    sweep_only = dataclasses.replace(doc, results=tuple(
        r for r in doc.results if not any(t.startswith("confirm_round:") for t in r.tags)))
    c = compare.compare_documents(doc, sweep_only, "A", "B")
    assert all(not any(t.startswith("confirm_round:") for t in c_rec.tags)
               for c_rec in [p[0] for p in compare.pair_records(doc, sweep_only)[0]])
    assert any("records in A, 1 in B; paired round by round" in n for n in c.notes)


def test_a_targeted_tpot_prints_as_solved():
    line = next(a for a in claims.run_claim("telehouse-25000-inference").arithmetic if a.strip().startswith("inference-fleet"))
    assert "29.5 ms/token" in line


# --- the second half of sweep 8: a helper's report on plan infer / hpl / stencil and bad input ----

def _quantities(d: dict, section: str) -> list[str]:
    return [r["quantity"] for r in d["sections"][section]]


def test_infer_json_totals_span_the_gpu_count_as_the_table_does():
    d = cli_json("plan", "infer", "-s", "alice-recoque")
    inf = d["inference"]
    for key, row in (("replicas", "replicas"), ("tokens_per_s_system", "output tokens/s, system"),
                     ("concurrent_users", "concurrent users")):
        shown = section_value(d, "inference", row)
        assert (inf[key]["low"], inf[key]["high"]) == pytest.approx((shown["low"], shown["high"]))
    assert (inf["replicas"]["low"], inf["replicas"]["high"]) == (4106, 9068)


def test_a_load_the_user_fixes_does_not_span_the_gpu_count():
    # --request-rate 100: the system serves 100 requests/s whatever its GPU count (before: 80-178)
    d = cli_json("plan", "infer", "-s", "alice-recoque", "-m", "llama3.1-8b", "--request-rate", "100")
    inf = d["inference"]
    rps = inf["serving"]["requests_per_s_system"]
    assert (rps["low"], rps["value"], rps["high"]) == pytest.approx((100, 100, 100))
    assert inf["replicas"]["low"] < inf["replicas"]["high"]
    # --batch 16 streams a replica: the users are 16 x replicas and span the count with them (before: fixed)
    b = cli_json("plan", "infer", "-s", "alice-recoque", "-m", "llama3.1-8b", "--batch", "16")["inference"]
    assert b["concurrent_users"]["low"] == pytest.approx(16 * b["replicas"]["low"])
    assert b["concurrent_users"]["high"] == pytest.approx(16 * b["replicas"]["high"])


def test_a_fixed_load_per_gpu_rows_span_the_gpu_count():
    """100,000 users on alice-recoque's 4,106..9,068 GPUs: each replica carries 24.4..11 streams, so
    the batch, the token latency and the per-GPU rate span that, not only the profile's corners at the
    central count (before: batch 19.6..19.6, per-GPU 2,573..7,537 at 5,109 GPUs only)."""
    args = ("plan", "infer", "-s", "alice-recoque", "-m", "mistral-7b", "--mode", "server")
    inf = cli_json(*args, "--concurrency", "100000")["inference"]
    b = inf["batch"]
    assert b["low"] == pytest.approx(100000 / 9068, rel=0.01) and b["high"] == pytest.approx(100000 / 4106, rel=0.01)
    one = cli_json("plan", "infer", "-s", "alice-recoque", "-m", "mistral-7b", "--mode", "server", "--gpus", "4106",
                   "--concurrency", "100000")["inference"]
    assert inf["tpot"]["high"] >= one["tpot"]["high"] and inf["tokens_per_s_per_gpu"]["high"] >= one["tokens_per_s_per_gpu"]["high"]
    assert inf["concurrent_users"]["low"] == inf["concurrent_users"]["high"] == 100000


def test_the_batch_range_stays_under_the_stream_cap():
    # 218 streams of KV fit a replica; the groups' shifts in quadrature put the batch high at 335 before
    inf = cli_json("plan", "infer", "-s", "node-8x-h100", "-m", "llama3.1-70b", "--request-rate", "7")["inference"]
    cap = inf["serving"]["memory"]["max_streams"]
    assert inf["batch"]["low"] <= inf["batch"]["value"] <= inf["batch"]["high"] <= cap
    assert inf["concurrent_users"]["high"] <= cap * inf["replicas"]["value"]


def test_a_request_rate_out_of_reach_quotes_the_layout_that_carries_the_most():
    # tp 4 replicas sustain 7.05/s (7.24 before stop 112's step mix, 7.15 before stop 113's length-biased context), tp 8 ones 5.66/s: the refusal quoted the last layout tried (tp 8)
    from typer.testing import CliRunner

    from recoque.cli import app
    r = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-h100", "-m", "llama3.1-70b", "--request-rate", "8"])
    assert r.exit_code == 3
    assert "8 requests/s is above what 2 replica(s) of tp 4 x pp 1 sustain (7.05/s)" in " ".join(r.output.split())
    assert cli_json("plan", "infer", "-s", "node-8x-h100", "-m", "llama3.1-70b", "--request-rate", "7")


def test_offline_drops_the_workloads_targets_and_json_says_what_was_served():
    # le-chat carries a 50 ms TPOT / 2 s TTFT target: --mode offline ignores them, so must the JSON
    req = cli_json("plan", "infer", "-s", "node-8x-h100", "-w", "le-chat", "--mode", "offline")["serving_request"]
    assert req["mode"] == "offline" and req["tpot_target_s"] is None and req["ttft_target_s"] is None
    # gpt-oss served as released keeps its BF16 attention: the request shown names it (before: null)
    oss = cli_json("plan", "infer", "-s", "node-8x-b200", "-m", "gpt-oss-120b")["serving_request"]
    assert oss["attention_weights"] == "bf16"


def test_a_fixed_batch_reads_the_same_mode_with_or_without_a_workload():
    a = cli_json("plan", "infer", "-s", "node-8x-h100", "-w", "le-chat", "--batch", "8")["serving_request"]
    b = cli_json("plan", "infer", "-s", "node-8x-h100", "-m", "mistral-large-2", "--batch", "8")["serving_request"]
    assert a["mode"] == b["mode"] == "offline"


def test_a_length_spread_with_no_effect_is_said():
    d = cli_json("plan", "infer", "-s", "node-8x-h100", "-m", "llama3.1-8b", "--tp", "1", "--length-cv2", "4")
    assert any("no effect on this load" in n for n in d["inference"]["serving"]["assumptions"])


def test_a_power_limit_lowers_a_site_bound_systems_facility_power():
    # campus-1gw's count is derived from its 1 GW site; before, a 500 W cap left the facility at 1 GW
    # while the IT power under HPL fell to 703 MW, so facility (IT x PUE) came out below IT x PUE
    capped = section_value(cli_json("plan", "hpl", "-s", "campus-1gw", "--power-limit-w", "500"),
                           "energy, cost, CO2", "facility power (IT x PUE)")
    whole = section_value(cli_json("plan", "hpl", "-s", "campus-1gw"), "energy, cost, CO2", "facility power (IT x PUE)")
    assert whole["value"] == whole["high"] == pytest.approx(1e9)
    assert capped["value"] < whole["value"] and capped["high"] <= 1e9 * (1 + 1e-12)
    # the IT power under the cap stays under the uncapped one at every end (before: 455..1,204 MW
    # against 714..909, the count's high end taken with the high node power)
    it = {k: section_value(cli_json("plan", "hpl", "-s", "campus-1gw", *cap), "HPL", "IT power during HPL")
          for k, cap in (("capped", ("--power-limit-w", "500")), ("whole", ()))}
    for end in ("value", "low", "high"):
        assert it["capped"][end] <= it["whole"][end] * (1 + 1e-12)
    # central: 1 GW / PUE 1.2 x (10.2 kW - 8 x 200 W) / 10.2 kW
    assert it["capped"]["value"] == pytest.approx(1e9 / 1.2 * 8.6 / 10.2, rel=1e-6)
    assert capped["value"] == pytest.approx(1e9 * 8.6 / 10.2, rel=1e-6)


def test_stencil_states_its_latency_and_compares_hpcg_only_uncapped():
    d = cli_json("plan", "stencil", "-s", "lumi-g", "-w", "hpcg")
    # the halo's latency is said with where to set it (before: a silent 5 us default)
    assert "us a message (the system file's inter_node_latency_us" in json.dumps(d["assumptions"])
    assert section_value(d, "stencil", "model vs published HPCG").endswith("the range)")
    capped = cli_json("plan", "stencil", "-s", "lumi-g", "-w", "hpcg", "--power-limit-w", "300")
    assert section_value(capped, "stencil", "model vs published HPCG").startswith("not compared")


def test_hpl_efficiency_never_passes_one():
    d = cli_json("plan", "hpl", "-s", "nvl72-gb200")
    assert section_value(d, "HPL", "HPL efficiency")["high"] <= 1.0


def test_jean_zay_and_adastra_are_held_against_their_top500_runs():
    for key, gpus in (("jean-zay-h100", "1,456"), ("adastra-mi250x", "1,352")):
        q = _quantities(cli_json("plan", "hpl", "-s", key), "HPL")
        assert "TOP500 Rmax" in q and "model vs TOP500" in q
        rows = {r["quantity"]: r["value"] for r in cli_json("plan", "hpl", "-s", key)["sections"]["HPL"]}
        assert rows["TOP500 list, GPUs in the run"] == f"2025-06, {gpus} GPUs"


def test_a_system_of_h100s_is_its_own_count_of_h100e():
    d = cli_json("plan", "hpl", "-s", "jean-zay-h100")
    e = section_value(d, "H100-equivalents", "H100e delivered (hpl)")
    assert e["low"] == pytest.approx(1456) and e["high"] == pytest.approx(1456)
    d = cli_json("plan", "stencil", "-s", "node-8x-h100", "-w", "hpcg")
    e = section_value(d, "H100-equivalents", "H100e delivered (hpcg)")
    assert e["high"] / e["low"] < 1.01
    jup = section_value(cli_json("plan", "hpl", "-s", "jupiter"), "H100-equivalents", "H100e delivered (hpl)")
    assert jup["high"] / jup["low"] > 1.5   # another part's run draws its own efficiency


def test_the_delivered_ratio_blames_a_power_cap_and_not_the_part():
    why = cli_json("plan", "hpl", "-s", "jean-zay-h100", "--power-limit-w", "500")["h100e"]["delivered_vs_peak"]
    assert "500 W power cap" in why and "family" not in why
    why = cli_json("plan", "hpl", "-s", "node-8x-mi355x")["h100e"]["delivered_vs_peak"]
    assert "vector" not in why   # MI355X's FP64 vector and matrix rates are one figure


def test_hpl_on_mi250x_says_it_counts_packages():
    d = cli_json("plan", "hpl", "-s", "adastra-mi250x")
    assert any("count packages; plan train and plan infer count mi250x_gcds" in a for a in d["assumptions"])


def test_a_measured_profile_renames_the_rate_and_efficiency_rows():
    q = _quantities(cli_json("plan", "hpl", "-s", "node-8x-h200", "--profile", str(H200)), "HPL")
    assert "DGEMM rate per GPU (measured)" in q and "HPL efficiency (of the measured DGEMM)" in q


def test_one_bound_alone_is_refused(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[systems.x]\nname = "x"\ndevice = "h100_sxm"\ngpus = 8\ngpus_per_node = 8\n'
                 'node_power_kw = 10\nnode_power_kw_high = 12\n')
    res = runner.invoke(app, ["plan", "hpl", "-s", str(f)])
    assert res.exit_code == 2 and "`node_power_kw_high` without its other bound" in res.output


def test_compare_names_the_system_an_error_is_about():
    # (sweep 10: a system the workload does not fit gets its own column; the others stand)
    d = cli_json("compare", "-s", "node-1x-gh200,jean-zay-h100", "-w", "le-chat")
    assert d["systems"][0]["system"] == "node-1x-gh200" and d["systems"][0]["does_not_fit"]
    res = runner.invoke(app, ["compare", "-s", "node-1x-gh200", "-w", "le-chat"])
    assert res.exit_code == 3 and "node-1x-gh200: " in res.output


def test_attention_dp_memory_counts_streams_a_replica():
    d = cli_json("plan", "infer", "-s", "nvl72-gb200", "-w", "deepseek-r1", "--dtype", "fp4", "--engine", "trtllm")
    mem = section_value(d, "inference", "memory per GPU")
    if "attention DP" in section_value(d, "inference", "replica layout"):
        assert "streams a replica" in mem and "a GPU: each keeps its own" in mem


def test_hpl_energy_rows_carry_their_unit_once():
    q = _quantities(cli_json("plan", "hpl", "-s", "el-capitan"), "HPL")
    assert "energy efficiency" in q and "TOP500 energy efficiency" in q
    assert not any("GFLOP/s per W" in x for x in q)


def test_a_given_gpu_count_drops_the_notes_on_deriving_the_count():
    d = cli_json("plan", "hpl", "-s", "alice-recoque", "--gpus", "1000")
    assert not any(a.startswith("GPU count not published") for a in d["assumptions"])
    d = cli_json("plan", "hpl", "-s", "alice-recoque")
    assert any(a.startswith("GPU count not published") for a in d["assumptions"])


def test_a_one_slot_replica_serves_under_targets_at_under_one_stream():
    # before: searched from one stream on average, where a single slot is always busy: refused
    inf = cli_json("plan", "infer", "-s", "node-8x-h100", "-m", "llama3.1-8b", "--tp", "1", "--max-batch", "1",
                   "--tpot-ms", "50", "--ttft-ms", "2000")["inference"]
    assert 0.0 < inf["batch"]["value"] < 1.0 and inf["ttft"]["value"] <= 2.0


def test_serving_error_hints_are_complete_and_possible():
    res = runner.invoke(app, ["plan", "infer", "-s", "node-8x-h100", "-w", "le-chat", "--percentile", "p75"])
    assert res.exit_code == 2 and "p50, p90 or p99" in res.output
    res = runner.invoke(app, ["plan", "infer", "-s", "node-8x-l40s", "-w", "llmaas"])
    assert res.exit_code == 3 and "even a load of 1 running stream(s) on average" in res.output
    assert "or fp8" not in res.output and "353254" not in res.output
    assert "a lone prompt's prefill takes" in res.output  # the queue's TTFT is told apart from one prompt's


# --- sweep 9: plan train, compare, check and report against each other --------------------------

def test_alice_hpl_rows_multiply_out_and_check_takes_one_efficiency():
    d = cli_json("plan", "hpl", "-s", "alice-recoque")
    gpus, per_gpu = section_value(d, "HPL", "GPUs"), section_value(d, "HPL", "Rmax per GPU")
    assert gpus["value"] * per_gpu["value"] == pytest.approx(1e18, rel=1e-3)
    effs = {_line(claims.run_claim(k), start).split("efficiency ")[1].split(" ")[0]
            for k, start in (("exaflop", "HPL rate per mi430x"), ("h100e-25000", "system FP64 peak"))}
    assert len(effs) == 1


def test_a_campus_sized_by_its_site_power_draws_that_power():
    d = cli_json("plan", "-s", "campus-1gw", "-w", "hpl")
    site = next(r["value"] for s in d["sections"].values() for r in s if r["quantity"].startswith("facility power"))
    assert site["low"] == site["value"] == site["high"] == pytest.approx(1e9)


def test_a_zero_stage_the_pipeline_engine_cannot_run_is_refused():
    res = runner.invoke(app, ["plan", "train", "-s", "h100-reference", "-w", "llama3.1-8b", "--zero", "3", "--pp", "2",
                              "--stack", "deepspeed"])
    assert res.exit_code == 2 and "ZeRO stage 1 at most with pipeline parallelism" in res.output


def test_a_moot_zero_pin_is_said():
    d = cli_json("plan", "train", "-s", "h100-reference", "-w", "llama3.1-8b", "--zero", "1", "--tp", "8", "--top", "1")
    assert any("--zero 1 moot in the best plan" in r for r in d["reasons"])


def test_recompute_layers_zero_means_every_layer():
    d = cli_json("plan", "train", "-s", "h100-reference", "-w", "llama3.1-8b", "--recompute", "full",
                 "--recompute-layers", "0", "--top", "1")
    assert d["best"][0]["plan"]["recompute"] == "full" and d["best"][0]["plan"]["recompute_layers"] == 0


def test_context_parallel_needs_the_sequence_to_split():
    res = runner.invoke(app, ["plan", "train", "-s", "h100-reference", "-w", "llama3.1-8b", "--cp", "4", "--seq-len", "1"])
    assert res.exit_code == 2 and "does not split into 2 x 4 equal chunks" in res.output


def test_breakdown_percents_add_to_100():
    from recoque.cli.plan_train import _whole_percents

    assert sum(_whole_percents([0.9644, 0.0009, 0.0010, 0.0102, 0.0001, 0.0235])) == 100
    assert _whole_percents([0.5, 0.5]) == [50, 50]


def test_check_json_names_the_document_by_title_only():
    out = cli_json("check")
    rows = out["claims"] if isinstance(out, dict) else out
    assert all("file" not in r and r["document"] for r in rows)


def test_report_says_how_a_best_row_was_chosen():
    rows = report_model.results(report_model.load_input(str(H200))).tables[0]
    assert rows.columns[-1] == "figure" and any(r[-1].startswith("confirmed: median of") for r in rows.rows)
