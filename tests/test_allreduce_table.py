"""A measured all-reduce table in a system file: checked where it enters, interpolated by message size,
used by the serving model's TP all-reduce for the GPU count it was measured on only."""
import json
import math
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from recoque.bench.schema import Record, ResultsDocument, save_results
from recoque.catalog import get_device_spec
from recoque.cli import app
from recoque.errors import BadInput
from recoque.planner import allreduce_table as at
from recoque.planner import serving_rates as sr
from recoque.planner.capacity import profile_for
from recoque.planner.serving_step import Rates, _allreduce_s
from recoque.planner.system import load_system, system_from_toml

RAW = {"gpus": 8, "bytes": [1024, 1048576, 16777216], "time_us": [7.5, 19.4, 149.1],
       "time_us_slow": [13.1, 27.4, 149.1], "source": "test"}


def test_interpolation_is_log_log_between_points_and_bandwidth_bound_beyond():
    t = at.parse(RAW, "here")
    assert t.at(1048576) == pytest.approx(19.4e-6)
    assert t.at(100) == pytest.approx(7.5e-6)                       # below the smallest: its time
    assert t.at(2 * 16777216) == pytest.approx(2 * 149.1e-6)        # above the largest: linear in bytes
    mid = math.sqrt(1048576 * 16777216)                              # halfway in log(bytes) ...
    assert t.at(mid) == pytest.approx(math.sqrt(19.4e-6 * 149.1e-6))  # ... is halfway in log(time)
    assert t.at(1024, slow=True) == pytest.approx(13.1e-6)


@pytest.mark.parametrize("change, match", [
    ({"bytes": [1024, 1024, 16777216]}, "must increase"),
    ({"time_us": [7.5, 19.4]}, "same length"),
    ({"time_us_slow": [7.0, 27.4, 149.1]}, "below `time_us`"),
    ({"time_us": [7.5, float("nan"), 149.1]}, "finite numbers above 0"),
    ({"bytes": "1024"}, "list of numbers"),
    ({"gpus": 1}, "at least 2"),
    ({"colour": "red"}, "unknown key `colour`"),
])
def test_a_bad_table_is_refused_in_one_line(change, match):
    with pytest.raises(BadInput, match=match):
        at.parse({**RAW, **change}, "sys")


def test_a_system_file_carries_the_table_parsed():
    raw = {"device": "mi300x", "gpus": 8, "gpus_per_node": 8, "intra_node_bandwidth_gb_s": 448,
           "allreduce_measured": dict(RAW)}
    s = system_from_toml("mine", raw, "mine.toml")
    assert isinstance(s.extra["allreduce_measured"], at.AllReduceTable)
    with pytest.raises(BadInput, match=r"mine.toml \[systems.mine\].allreduce_measured: `bytes` must increase"):
        system_from_toml("mine", {**raw, "allreduce_measured": {**RAW, "bytes": [3, 2, 1]}}, "mine.toml")


def test_the_serving_all_reduce_uses_the_table_for_its_gpu_count_only():
    t = at.parse(RAW, "here")
    base = Rates(gemm_flop_s=1e15, attention_flop_s=5e14, hbm_bytes_s=4e12, link_bytes_s=318e9,
                 hop_latency_s=1e-6, kernel_gap_s=0, step_overhead_s=0)
    measured = replace(base, allreduce_at=t.at, allreduce_gpus=8)
    assert _allreduce_s(16777216, 8, measured) == pytest.approx(149.1e-6)
    # the alpha-beta ring at 318 GB/s would say 14 us + 92 us: the table holds the protocol's real cost
    assert _allreduce_s(16777216, 8, base) == pytest.approx(14e-6 + 1.75 * 16777216 / 318e9)
    assert _allreduce_s(16777216, 4, measured) == _allreduce_s(16777216, 4, base)


def test_the_mi300x_node_preset_uses_amds_rccl_table_at_tp8_only():
    system = load_system("node-8x-mi300x")
    spec, engine = get_device_spec("mi300x"), sr.load_engine("vllm")
    r8 = sr.rate_set(spec, system, "fp8", 8, engine)
    assert r8.rates["value"].allreduce_gpus == 8 and "measured all-reduce table" in r8.notes[2]
    # 24.6 MB (1,500 tokens x 8,192 x 2 B): between AMD's 16 MB (149 us) and 32 MB (243 us) rows
    assert 149e-6 < r8.rates["value"].allreduce_at(24.6e6) < 243e-6
    r4 = sr.rate_set(spec, system, "fp8", 4, engine)
    assert r4.rates["value"].allreduce_at is None and "per ring hop" in r4.notes[2]


def _ar_record(n, size, t, dtype="bf16", tier="intra"):
    params = {"bytes": size, "world_size": n, "group_size": n, "placement": "in_place", "tier": tier}
    return Record("collective", "all_reduce", dtype, params, (t * 0.98, t, t * 1.05), "GB/s", bytes_moved=size)


def _ar_doc(series, device="AMD Instinct MI300X"):
    return ResultsDocument(environment={}, device={"name": device}, results=tuple(series))


def test_a_bench_results_file_gives_the_largest_groups_bf16_table():
    sizes = [2**k for k in range(10, 28, 2)]
    recs = [_ar_record(8, s, 10e-6 + s / 200e9) for s in sizes]
    recs += [_ar_record(8, s, 1.0, dtype="fp32") for s in sizes]      # fp32 of the same group: bf16 is preferred
    recs += [_ar_record(4, s, 5e-6) for s in sizes]                    # a smaller group: the largest wins
    recs += [_ar_record(8, s, 9.0, tier="inter") for s in sizes]      # inter-node: never the TP table
    t = at.from_results(_ar_doc(recs), "f.json")
    assert t.gpus == 8 and t.bytes == tuple(float(s) for s in sizes) and "bf16" in t.source and "f.json" in t.source
    assert t.at(sizes[3]) == pytest.approx(10e-6 + sizes[3] / 200e9)
    assert t.at(sizes[3], slow=True) == pytest.approx(1.05 * (10e-6 + sizes[3] / 200e9))
    assert at.from_results(_ar_doc(recs[-len(sizes):])) is None      # inter-node only: no table


def test_plan_infer_takes_the_all_reduce_table_from_the_profile(tmp_path):
    sizes = [2**k for k in range(10, 31, 2)]
    slow = [_ar_record(8, s, 1e-3 + s / 20e9) for s in sizes]          # 50x slower than AMD's table
    path = tmp_path / "ar.json"
    save_results(str(path), _ar_doc(slow))
    args = ["plan", "infer", "-s", "node-8x-mi300x", "-w", "llama3.1-70b", "--tp", "8", "--json"]
    base = CliRunner().invoke(app, args)
    mine = CliRunner().invoke(app, args + ["--profile", str(path)])
    assert base.exit_code == 0 and mine.exit_code == 0, mine.output
    assert str(path) in mine.output and "measured bf16 all_reduce, 8 GPUs" in mine.output
    tps = [json.loads(r.output)["inference"]["tokens_per_s_per_gpu"]["value"] for r in (base, mine)]
    assert tps[1] < 0.7 * tps[0]  # a slower measured all-reduce slows the TP 8 replica


def test_plan_and_plan_infer_read_the_same_measured_table(tmp_path):
    sizes = [2**k for k in range(10, 31, 2)]
    path = tmp_path / "ar.json"
    save_results(str(path), _ar_doc([_ar_record(8, s, 1e-3 + s / 20e9) for s in sizes]))
    infer = CliRunner().invoke(app, ["plan", "infer", "-s", "node-8x-mi300x", "-w", "le-chat", "--profile", str(path),
                                     "--json"])
    both = CliRunner().invoke(app, ["plan", "-s", "node-8x-mi300x", "-w", "le-chat", "--profile", str(path), "--json"])
    assert infer.exit_code == 0 and both.exit_code == 0, both.output
    a, b = json.loads(infer.output)["inference"], json.loads(both.output)["inference"]
    assert a["tokens_per_s_per_gpu"] == b["tokens_per_s_per_gpu"]
    assert [n for n in a["assumptions"] if "all-reduce" in n] == [n for n in b["assumptions"] if "all-reduce" in n]


def test_every_command_with_a_profile_gets_its_all_reduce_table(tmp_path):
    sizes = [2**k for k in range(10, 31, 2)]
    path = tmp_path / "ar.json"
    save_results(str(path), _ar_doc([_ar_record(8, s, 1e-3 + s / 20e9) for s in sizes]))
    system, _ = profile_for(load_system("node-8x-mi300x"), str(path))
    assert system.extra["allreduce_measured"].at(sizes[0]) == pytest.approx(1e-3 + sizes[0] / 20e9)
    assert "ar.json" in system.extra["allreduce_measured"].source
