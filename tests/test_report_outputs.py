"""`recoque report`: self-contained HTML (parsed, images decodable, text escaped), Markdown and CSV round
trips, one plot per kind, on the stored fixtures."""
import base64
import csv
import json
import re
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.bench.schema import load_results
from recoque.cli import app
from recoque.report import build_report, html, markdown
from recoque.report.csv import BABELSTREAM_COLUMNS, NCCL_COLUMNS, export
from recoque.report.model import build, load_input

FIX = Path(__file__).parent / "fixtures"
A, B = str(FIX / "compare_a.json"), str(FIX / "compare_b.json")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

PLAN = {  # the shape of `recoque plan --system S --workload W --json` (the keys the plots read)
    "system": "alice-recoque", "workload": "mistral-large-2",
    "train": {"best": [{"gpus": 4096, "plan_label": "TP2 PP16 DP128",
                        "time_to_train": {"value": 3.0e6, "low": 2.0e6, "high": 5.0e6, "unit": "s"},
                        "tokens_per_s": {"value": 4.0e6, "low": 3.0e6, "high": 5.0e6, "unit": "tokens/s"}}]},
    "h100e": {"peak": [{"metric": "fp64_vector", "h100e": {"value": 45000.0, "low": 40000.0, "high": 47000.0,
                                                          "unit": "H100e"}}]},
    "assumptions": ["an assumption <b>with markup</b>"],
}


def _plan_with_gpus(gpus, days):
    p = json.loads(json.dumps(PLAN))
    p["train"]["best"][0]["gpus"] = gpus
    p["train"]["best"][0]["time_to_train"] = {"value": days * 86400.0, "low": days * 0.7 * 86400.0,
                                               "high": days * 1.6 * 86400.0, "unit": "s"}
    return p


class Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.imgs, self.text, self.external = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a)
        for key in ("src", "href"):
            if key in a and not a[key].startswith("data:"):
                self.external.append(a[key])

    def handle_data(self, data):
        self.text.append(data)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def report_with_plots():
    pytest.importorskip("matplotlib")
    inputs = [load_input(A), load_input(B)]
    return build(inputs, [("plan-4096.json", PLAN), ("plan-8192.json", _plan_with_gpus(8192, 20.0))])


def test_html_is_self_contained_with_decodable_images(report_with_plots):
    page = html.render(report_with_plots)
    p = Collector()
    p.feed(page)
    assert "script" not in p.tags and "link" not in p.tags
    assert p.external == []  # no network: every src is a data: URI
    assert len(p.imgs) >= 6
    for img in p.imgs:
        head, data = img["src"].split(",", 1)
        assert head == "data:image/png;base64"
        w, h = png_size(base64.b64decode(data))
        assert w > 300 and h > 100
    text = " ".join(p.text)
    for must in ("Environment", "Noise", "Acceptance", "Comparison", "slower", "high_cov", "Power and efficiency",
                 "GFLOP/s/W", "driver_version", "Capacity estimates"):
        assert must in text, must


def test_html_escapes_user_text(tmp_path):
    raw = json.loads(Path(A).read_text())
    raw["command"] = "<script>alert(1)</script>"
    raw["environment"]["hostname"] = '<img src="http://evil/x">'
    path = tmp_path / "evil.json"
    path.write_text(json.dumps(raw))
    page = html.render(build_report([str(path)], with_plots=False))
    assert "<script>" not in page and "<img src=\"http://evil" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    p = Collector()
    p.feed(page)
    assert p.external == [] and "script" not in p.tags


def test_every_plot_kind_is_in_the_report(report_with_plots):
    names = {p.name for s in report_with_plots.sections for p in s.plots}
    assert {"roofline_1", "roofline_2", "gemm_sweep", "stream_bandwidth", "collective_busbw", "training_scaling",
            "h100_equivalents_1", "h100_equivalents_2"} == names


def test_training_points_one_per_gpu_count():
    from recoque.report.plots import training_points

    pts = training_points([_plan_with_gpus(8192, 20.0), PLAN])
    assert [p["gpus"] for p in pts] == [4096, 8192]
    assert pts[1]["time_to_train"][0] == pytest.approx(20 * 86400)


def _md_tables(text: str) -> list[tuple[str, list[list[str]]]]:
    """Parse the Markdown back: **title** then a pipe table, in order."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("**") and i + 2 < len(lines) and lines[i + 2].startswith("| "):
            title, rows, j = re.sub(r"\\(.)", r"\1", lines[i].strip("*")), [], i + 2
            while j < len(lines) and lines[j].startswith("|"):
                if not lines[j].startswith("|---"):
                    cells = [re.sub(r"\\(.)", r"\1", c.strip()) for c in lines[j].strip()[1:-1].split(" | ")]
                    rows.append(cells)
                j += 1
            out.append((title, rows))
            i = j
        else:
            i += 1
    return out


def test_markdown_round_trip():
    rep = build_report([A, B], with_plots=False)
    parsed = _md_tables(markdown.render(rep))
    tables = [t for s in rep.sections for t in s.tables]
    assert len(parsed) == len(tables)
    for (title, rows), t in zip(parsed, tables):
        assert title == t.title
        assert rows[0] == list(t.columns)
        assert rows[1:] == [list(r) for r in t.rows]


def test_csv_round_trip(tmp_path):
    doc = load_results(A)
    paths = export([("a", doc)], str(tmp_path / "res.csv"))
    assert [Path(p).name for p in paths] == ["res.csv", "res-babelstream.csv", "res-nccl-tests.csv"]
    with open(paths[0], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(doc.results)
    for row, rec in zip(rows, doc.results):
        assert (row["benchmark"], row["op"], row["dtype"]) == (rec.benchmark, rec.op, rec.dtype)
        assert json.loads(row["params"]) == dict(rec.params)
        assert float(row["median_s"]) == rec.median_s and float(row["achieved"]) == pytest.approx(rec.achieved)
    with open(paths[1], newline="") as fh:
        stream = list(csv.reader(fh))
    assert tuple(stream[0]) == BABELSTREAM_COLUMNS
    triad = next(r for r in doc.results if r.op == "triad")
    row = next(r for r in stream[1:] if r[0] == "Triad" and int(r[2]) == triad.params["n_elements"])
    assert float(row[4]) == pytest.approx(3 * triad.params["n_elements"] * 8 / triad.min_s / 1e6)
    with open(paths[2], newline="") as fh:
        coll = list(csv.DictReader(fh))
    assert tuple(coll[0].keys()) == NCCL_COLUMNS
    ar = next(r for r in coll if r["op"] == "all_reduce" and r["size"] == str(256 * 2**20))
    rec = next(r for r in doc.results if r.op == "all_reduce" and r.params["bytes"] == 256 * 2**20)
    # nccl-tests: busbw = algbw x 2(n-1)/n for all-reduce
    assert float(ar["busbw"]) == pytest.approx(float(ar["algbw"]) * 2 * 7 / 8, rel=1e-6)
    assert float(ar["busbw"]) == pytest.approx(rec.achieved)
    assert ar["type"] == "float" and ar["redop"] == "sum" and int(ar["count"]) == 256 * 2**20 // 4
    assert ar["nranks"] == str(rec.params.get("group_size", rec.params.get("world_size")))
    assert ar["placement"] == str(rec.params.get("placement", "")) and ar["tier"] == str(rec.params.get("tier", ""))


def test_acceptance_verdicts_shown_when_present(tmp_path):
    raw = json.loads(Path(A).read_text())
    # the layout bench/accept.py writes under "acceptance"
    raw["acceptance"] = {"passed": False, "checks": [
        {"gpu": "gpu0", "figure": "gemm matmul bf16", "measured": 700.3, "unit": "TFLOP/s", "threshold": 784.4,
         "basis": "0.6 x datasheet peak", "source": "seeds/acceptance.toml", "verdict": "fail"}]}
    path = tmp_path / "acc.json"
    path.write_text(json.dumps(raw))
    rep = build_report([str(path)], with_plots=False)
    acc = next(s for s in rep.sections if s.title == "Acceptance")
    checks = next(t for t in acc.tables if t.title.endswith("checks"))
    row = dict(zip(checks.columns, checks.rows[0]))
    assert row["verdict"] == "fail" and row["figure"] == "gemm matmul bf16" and row["threshold"] == "784.4"
    assert any(r[:2] == ("passed", "no") for t in acc.tables for r in t.rows)
    none = next(s for s in build_report([A], with_plots=False).sections if s.title == "Acceptance")
    assert not none.tables and "No acceptance verdicts" in none.paragraphs[0]


runner = CliRunner()


def test_cli_report_writes_html_md_csv_plots(tmp_path):
    pytest.importorskip("matplotlib")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(PLAN))
    out = tmp_path / "r.html"
    r = runner.invoke(app, ["report", A, "--plan", str(plan), "--out", str(out), "--plots", str(tmp_path / "p"),
                            "--csv", str(tmp_path / "r.csv")])
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("<!DOCTYPE html>") and out.read_text().count("data:image/png;base64,") == 6
    assert (tmp_path / "r-nccl-tests.csv").exists()
    names = {"roofline", "gemm_sweep", "stream_bandwidth", "collective_busbw", "training_scaling", "h100_equivalents"}
    assert {f.name for f in (tmp_path / "p").iterdir()} == {f"{n}.{ext}" for n in names for ext in ("png", "svg")}
    for name in names:  # every plot kind as a decodable PNG and an SVG document
        assert png_size((tmp_path / "p" / f"{name}.png").read_bytes())[0] > 300
        assert (tmp_path / "p" / f"{name}.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    md = tmp_path / "r.md"
    r = runner.invoke(app, ["report", A, "--out", str(md), "--no-plots"])
    assert r.exit_code == 0, r.output
    assert md.read_text().startswith("# recoque report")


def test_cli_report_needs_an_output_and_a_known_format(tmp_path):
    r = runner.invoke(app, ["report", A])
    assert r.exit_code == 2 and "--out report.html" in r.output
    r = runner.invoke(app, ["report", A, "--out", str(tmp_path / "r.pdf"), "--no-plots"])
    assert r.exit_code == 2 and ".html or .md" in r.output


def test_a_report_output_that_cannot_be_written_replaces_nothing(tmp_path):
    """Every output is checked before any is written: a CSV path in a missing folder leaves an
    existing HTML report as it was (it used to be overwritten first, then the run failed)."""
    keep = tmp_path / "keep.html"
    keep.write_text("keep")
    r = CliRunner().invoke(app, ["report", A, "--out", str(keep), "--csv", str(tmp_path / "no" / "x.csv"), "--no-plots"])
    assert r.exit_code == 4 and "does not exist" in r.output and "Traceback" not in r.output
    assert keep.read_text() == "keep"
    afile = tmp_path / "afile"
    afile.write_text("")
    r = CliRunner().invoke(app, ["report", A, "--plots", str(afile)])
    assert r.exit_code == 4 and "not a folder" in r.output and "Traceback" not in r.output


def test_markdown_keeps_user_html_as_text(tmp_path):
    doc = json.loads(Path(A).read_text())
    doc["device"]["name"] = "<script>alert(1)</script>"
    src = tmp_path / "inj.json"
    src.write_text(json.dumps(doc))
    md = markdown.render(build_report([str(src)], [], with_plots=False))
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_training_points_keep_systems_apart():
    """Plans of two systems at other GPU counts were joined into one curve: each is its own series."""
    from recoque.report.plots import training_points, training_scaling

    other = _plan_with_gpus(1024, 50.0)
    other["system"] = "jean-zay-h100"
    pts = training_points([_plan_with_gpus(8192, 20.0), PLAN, other])
    assert [(p["series"], p["gpus"]) for p in pts] == [("alice-recoque / mistral-large-2", 4096),
                                                       ("alice-recoque / mistral-large-2", 8192),
                                                       ("jean-zay-h100 / mistral-large-2", 1024)]
    fig = training_scaling([_plan_with_gpus(8192, 20.0), PLAN, other])
    assert len(fig.axes[0].get_legend().get_texts()) == 2


def test_files_of_one_name_keep_the_folders_that_tell_them_apart():
    from recoque.report.plots import short

    both = ["runs/node1/results.json", "runs/node2/results.json", "other.json"]
    assert [short(x, both) for x in both] == ["node1/results", "node2/results", "other"]
    assert short("a/b/results.json") == "results"


def test_a_cpu_roofline_reads_in_gflops_as_its_gemm_sweep():
    from recoque.bench.schema import Record, ResultsDocument
    from recoque.report.plots import roofline

    f = 2 * 512**3
    rec = Record("gemm", "matmul", "fp32", {"m": 512, "n": 512, "k": 512}, (f / 2e11,) * 5, "TFLOP/s", flop_count=f,
                 bytes_moved=3 * 512 * 512 * 4, peak=0.5, peak_source="computed", tags=("sweep",))
    fig = roofline("cpu.json", ResultsDocument({"hostname": "h"}, {"kind": "cpu", "name": "cpu"}, (rec,)))
    ax = fig.axes[0]
    assert ax.get_ylabel() == "GFLOP/s"
    pts = [c for c in ax.collections if len(c.get_offsets())]
    assert pts and abs(pts[0].get_offsets()[0][1] - 200.0) < 1.0  # 0.2 TFLOP/s drawn as 200 GFLOP/s


def test_collective_plot_keeps_dtype_placement_tier_and_pairs_apart():
    from recoque.bench.schema import Record, ResultsDocument
    from recoque.report import plots

    recs = []
    for dt, bw in (("fp32", 300e9), ("bf16", 150e9)):
        for place in ("in_place", "out_of_place"):
            for size in (2**20, 2**24):
                recs.append(Record("collective", "all_reduce", dt, {"bytes": size, "world_size": 16, "group_size": 16,
                                   "placement": place, "tier": "inter"}, (size * 1.875 / bw,), "GB/s",
                                   bytes_moved=int(size * 1.875)))
    for tier, bw, peer in (("intra", 400e9, 1), ("inter", 45e9, 8)):
        for size in (2**20, 2**24):
            recs.append(Record("collective", "send_recv", "fp32", {"bytes": size, "world_size": 16, "group_size": 2,
                               "placement": "out_of_place", "tier": tier, "ranks": [0, peer]},
                               (size / bw,), "GB/s", bytes_moved=size))
    doc = ResultsDocument(environment={}, device={"name": "H100", "kind": "cuda"}, results=tuple(recs))
    lines = plots.collective_busbw([("c.json", doc)]).axes[0].get_lines()
    assert len(lines) == 6  # 2 dtypes x 2 placements, and the two pairs
    for line in lines:
        assert len(set(round(float(y), 6) for y in line.get_ydata())) == 1, line.get_label()  # no zigzag
    assert any("x2" in line.get_label() and "ranks 0-8" in line.get_label() for line in lines)


def test_progress_bar_shows_case_labels_as_plain_text():
    from recoque.cli import bench as cli_bench

    p = cli_bench._Progress(True, False)
    p.enabled = True  # stderr is no terminal under pytest
    with p:
        col = p._bar.columns[0]
        p._bar.update(p._task, description="gemm/mm/bf16[m=64,n=64,k=64]")
        shown = col.render(p._bar.tasks[0])
    assert col.markup is False and shown.plain == "gemm/mm/bf16[m=64,n=64,k=64]"  # markup ate the [..] before
