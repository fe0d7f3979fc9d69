"""Stop 116: `plan` names its own flags when a workload does not fit; France's grid intensity has a
range; a job's cost is said to be its electricity."""
import json

from typer.testing import CliRunner

from recoque.cli import app
from recoque.planner import energy
from recoque.planner.system import load_system

runner = CliRunner()


def test_a_workload_that_does_not_fit_names_plan_flags_not_plan_infer_flags():
    res = runner.invoke(app, ["plan", "-s", "jean-zay-h100", "-w", "le-chat", "--gpus", "1"])
    assert res.exit_code == 3
    line = res.output.strip().splitlines()[-1]
    assert "raise --gpus, up to the system's 1,456" in line
    assert "`recoque plan infer -s jean-zay-h100 -m mistral-large-2`" in line
    assert ", --weights fp8" not in line.split("plan infer")[0]  # no flag `plan` lacks offered as its own


def test_plan_infer_still_offers_its_flags():
    res = runner.invoke(app, ["plan", "infer", "-s", "jean-zay-h100", "-m", "mistral-large-2", "--gpus", "1", "--tp", "1"])
    assert res.exit_code == 3
    assert "--weights fp8" in res.output and "plan infer -s" not in res.output


def test_france_intensity_has_a_life_cycle_high_end():
    g = energy.grid_for(load_system("alice-recoque"))
    assert (g.intensity.value, g.intensity.low, g.intensity.high) == (21.3, 21.3, 48.2)


def test_job_cost_row_says_electricity():
    res = runner.invoke(app, ["plan", "-s", "jean-zay-h100", "-w", "bloom-pretrain", "--json"])
    assert res.exit_code == 0, res.output
    text = json.dumps(json.loads(res.output))
    assert "electricity cost per job" in text and '"cost per job"' not in text


def test_a_plan_file_with_a_number_beyond_a_double_is_refused_naming_it(tmp_path):
    f = tmp_path / "plan.json"
    f.write_text('{"system": "x", "workload": "hpl", "rows": [{"value": 1e400}]}')
    res = runner.invoke(app, ["report", "tests/fixtures/compare_a.json", "--plan", str(f), "--json"])
    assert res.exit_code == 2
    assert "rows.0.value is inf, not a finite number" in res.output


def test_plan_prints_shares_in_percent_and_keeps_fractions_in_json():
    res = runner.invoke(app, ["plan", "-s", "jean-zay-h100", "-w", "bloom-pretrain", "--json"])
    text = json.loads(res.output)
    found = []

    def walk(x):
        if isinstance(x, dict):
            if x.get("unit") == "fraction":
                found.append(x["value"])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(text)
    assert found and all(0 < v <= 1 for v in found)
    table = runner.invoke(app, ["plan", "-s", "jean-zay-h100", "-w", "bloom-pretrain"]).output
    mfu = next(line for line in table.splitlines() if "model FLOP utilisation" in line)
    assert "%" in mfu and "0." not in mfu.split("│")[2]


def test_acceptance_keeps_collective_world_sizes_apart():
    from recoque.bench import accept as A
    from recoque.bench.schema import Record, ResultsDocument

    def rec(ws: int, t: float) -> Record:
        return Record("collective", "all_reduce", "bf16", {"world_size": ws, "size_bytes": 2**20}, (t, t, t),
                      "GB/s", bytes_moved=2**20)

    doc = ResultsDocument(environment={"fingerprint": "x"}, device={"name": "cpu", "kind": "cpu"},
                          results=(rec(2, 1e-4), rec(4, 4e-4)))
    figs = A.figures(doc)
    assert set(figs) == {("collective", "all_reduce (2 ranks)", "bf16"), ("collective", "all_reduce (4 ranks)", "bf16")}
    assert figs[("collective", "all_reduce (4 ranks)", "bf16")].params["world_size"] == 4


def test_bench_accept_saves_what_it_measured_before_judging(tmp_path, monkeypatch):
    """A device the judge cannot hold to anything (BadInput) still leaves its measured results in --out."""
    from recoque.bench import accept as A
    from recoque.bench.schema import load_results
    from recoque.errors import BadInput

    doc = load_results("tests/fixtures/accept_mi300x_gpu0.json")
    monkeypatch.setattr(A, "measure_quick", lambda device, seed=0: doc)

    def no_judge(docs):
        raise BadInput("nothing to judge", "measure a catalogued GPU")

    monkeypatch.setattr(A, "evaluate", no_judge)
    out = tmp_path / "acc.json"
    res = runner.invoke(app, ["bench", "accept", "--device", "cpu", "--out", str(out)])
    assert res.exit_code == 2 and "nothing to judge" in res.output
    assert len(load_results(str(out)).results) == len(doc.results)
