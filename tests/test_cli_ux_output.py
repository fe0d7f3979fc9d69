"""A CLI that reads well: width when output is not a terminal (no number split), secondary columns in a
narrow terminal, dtype aliases, plain plan labels, progress lines for logs, --version, list, and
planning commands that import neither torch nor numba."""
import io
import json
import os
import re
import subprocess
import sys

import pytest

from recoque import render
from recoque.bench.dtypes import parse_dtypes
from recoque.errors import BadInput

NUMBERS = ["0.000759123", "8192x28672x8192", "1,307,400", "123456.789", "b4 h32/8 s4096 d128"]


def _print(con, tbl) -> str:
    con.print(tbl)
    return con.file.getvalue()


def _table(secondary=()):
    rows = [["gemm matmul with a long description of the case", NUMBERS[1], NUMBERS[0], NUMBERS[2], "torch"],
            ["attention sdpa", NUMBERS[4], NUMBERS[3], "unknown", "flash"]]
    return render.table("Cases", ["benchmark", "shape", "median (s)", "rate (GFLOP/s)", "backend"], rows,
                        secondary=secondary)


@pytest.fixture(autouse=True)
def reset_options():
    saved = (render.OPTIONS.width, render.OPTIONS.all_columns)
    render.OPTIONS.width, render.OPTIONS.all_columns = None, False
    yield
    render.OPTIONS.width, render.OPTIONS.all_columns = saved


def test_pipe_output_is_as_wide_as_the_table_and_splits_no_number():
    con = render.FitConsole(file=io.StringIO(), width=40, markup=False)  # a file: not a terminal
    out = _print(con, _table())
    for token in ["0.000759123", "8192x28672x8192", "1,307,400", "123456.789"]:
        assert token in out, token
    widths = {len(line) for line in out.splitlines()[1:]}
    assert max(widths) > 40  # wider than the 40-column default rather than folding


def test_width_option_still_never_splits_a_number():
    render.OPTIONS.width = 50
    con = render.FitConsole(file=io.StringIO(), width=200, markup=False)
    out = _print(con, _table())
    assert all(tok in out for tok in ["0.000759123", "8192x28672x8192", "1,307,400", "123456.789"])
    lines = out.splitlines()
    assert lines[1].startswith("┏") and lines[1].endswith("┓")  # not cropped at the right edge


def test_narrow_terminal_hides_secondary_columns_unless_all_columns():
    con = render.FitConsole(file=io.StringIO(), width=70, force_terminal=True, markup=False, color_system=None)
    out = _print(con, _table(secondary=("backend",)))
    assert "flash" not in out and "--all-columns" in out
    assert all(len(line) <= 70 for line in out.splitlines())
    render.OPTIONS.all_columns = True
    con = render.FitConsole(file=io.StringIO(), width=70, force_terminal=True, markup=False, color_system=None)
    assert "flash" in _print(con, _table(secondary=("backend",)))


def test_wide_terminal_keeps_every_column():
    con = render.FitConsole(file=io.StringIO(), width=200, force_terminal=True, markup=False, color_system=None)
    assert "flash" in _print(con, _table(secondary=("backend",)))


def test_bench_tables_put_units_in_headers_and_cpu_rates_in_gflops():
    from dataclasses import replace
    from pathlib import Path

    from recoque.bench.schema import load_results

    doc = load_results(str(Path(__file__).parent / "fixtures" / "compare_a.json"))
    cpu = replace(doc, device={**doc.device, "kind": "cpu"})
    buf = io.StringIO()
    saved = render.console
    render.console = render.FitConsole(file=buf, markup=False)
    try:
        render.bench_tables(cpu, all_rows=False)
    finally:
        render.console = saved
    out = buf.getvalue()
    assert "(GFLOP/s)" in out and "(TFLOP/s)" not in out
    assert re.search(r"\b700,\d{3}\b", out)  # ~700 TFLOP/s shown as ~700,000 GFLOP/s
    assert not re.search(r"\d TFLOP/s", out)  # units in headers, not in cells


@pytest.mark.parametrize("typed, want", [
    ("float32", ("fp32",)), ("bfloat16", ("bf16",)), ("FLOAT8_E4M3FN", ("fp8",)), ("float8_e4m3fnuz", ("fp8",)),
    ("torch.float16", ("fp16",)), ("half,double", ("fp16", "fp64")), ("bf16, BF16,fp32", ("bf16", "fp32")),
    ("TF32", ("tf32",)),
])
def test_dtype_aliases(typed, want):
    assert parse_dtypes([typed]) == want


def test_dtype_lists_and_unknown_names():
    assert parse_dtypes(["fp32", "bfloat16,fp8"]) == ("fp32", "bf16", "fp8")
    assert parse_dtypes(None) == ()
    with pytest.raises(BadInput) as exc:
        parse_dtypes(["float8_e5m2"])
    assert "float8_e5m2" in exc.value.one_line() and "float8_e4m3fn" in exc.value.one_line()


def test_plan_words_spell_out_the_label():
    plan = {"tp": 2, "pp": 16, "dp": 128, "micro_batch": 1, "recompute": "none", "interleave": 3,
            "sequence_parallel": True, "zero_stage": 1, "dp_overlap": True, "ep": 1}
    assert render.plan_words(plan) == ("tensor parallel 2, pipeline 16 stages x 3 virtual, data parallel 128, "
                                       "micro-batch 1, no recompute, sequence parallel, ZeRO-1, comm overlapped")
    plan.update(interleave=1, recompute="full", zero_stage=0, dp_overlap=False, ep=8)
    words = render.plan_words(plan)
    assert "x 3 virtual" not in words and "full recompute" in words and "expert parallel 8" in words
    assert "no ZeRO" in words and "not overlapped" in words


def test_stage_log_one_line_per_finished_stage_with_estimate():
    class Case:
        def __init__(self, b, d):
            self.benchmark, self.dtype = b, d

    ticks = iter(range(0, 1000, 10))
    buf = io.StringIO()
    with render.StageLog(stream=buf, clock=lambda: next(ticks)) as log:
        log.add(6)
        for b, d in [("gemm", "bf16")] * 2 + [("gemm", "fp32")] * 2 + [("stream", "fp64")] * 2:
            log.done(Case(b, d), object(), None)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("progress: gemm bf16 done (2 cases, 2 verified, 0 skipped); 2/6 cases in")
    assert "left" in lines[0] and "left" not in lines[2]


def _cli(*args):
    from typer.testing import CliRunner

    from recoque.cli import app

    return CliRunner().invoke(app, list(args))


def test_version_and_python_m():
    r = _cli("--version")
    assert r.exit_code == 0 and re.match(r"recoque \d+\.\d+", r.stdout)
    p = subprocess.run([sys.executable, "-m", "recoque", "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("recoque ")


@pytest.mark.parametrize("what, key", [("systems", "alice-recoque"), ("workloads", "mistral-large-2-pretrain"),
                                       ("models", "gpt3-175b"), ("devices", "mi300x")])
def test_list(what, key):
    r = _cli("list", what, "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)[what]
    assert key in {row["key"] for row in rows}
    table = _cli("list", what)
    assert table.exit_code == 0 and key in table.stdout


def test_list_models_shows_the_names_each_key_also_answers_to():
    rows = {r["key"]: r for r in json.loads(_cli("list", "models", "--json").stdout)["models"]}
    assert "llama3.1-405b" in rows["llama3-405b"]["aliases"] and rows["gpt3-175b"]["aliases"] == []
    assert "(also: llama3.1-405b)" in _cli("--width", "200", "list", "models").stdout


def test_list_unknown_kind_is_a_usage_error():
    assert _cli("list", "gpus").exit_code == 2


PLANNING = [
    ["plan", "--system", "alice-recoque", "--workload", "hpl", "--json"],
    ["plan", "train", "--workload", "gpt3-175b", "--system", "jean-zay-h100", "--gpus", "1024", "--top", "1", "--json"],
    ["check", "--json"],
    ["validate", "--json"],
    ["compare", "--systems", "frontier,jean-zay-h100", "--json"],
    ["list", "systems"],
]


def test_planning_commands_import_neither_torch_nor_numba():
    """`pip install recoque` without the bench extra must plan: run each planning command in one fresh
    interpreter and look at sys.modules afterwards."""
    code = ("import sys; from typer.testing import CliRunner; from recoque.cli import app; "
            f"codes = [CliRunner().invoke(app, a).exit_code for a in {PLANNING!r}]; "
            "heavy = sorted(m for m in ('torch', 'numba', 'matplotlib', 'scipy') if m in sys.modules); "
            "print('EXIT', codes, 'HEAVY', ','.join(heavy) or '-')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    tail = p.stdout.strip().splitlines()[-1] if p.stdout.strip() else p.stderr[-2000:]
    assert tail == f"EXIT {[0] * len(PLANNING)} HEAVY -", tail


def test_bench_without_torch_says_what_to_install_and_compare_still_works():
    from pathlib import Path

    fix = Path(__file__).parent / "fixtures"
    code = ("import sys; sys.modules['torch'] = None; sys.modules['numba'] = None; "
            "from typer.testing import CliRunner; from recoque.cli import app; "
            "r = CliRunner().invoke(app, ['bench', 'stream', '--quick', '--device', 'cpu']); "
            f"c = CliRunner().invoke(app, ['bench', 'compare', {str(fix / 'compare_a.json')!r}, "
            f"{str(fix / 'compare_c.json')!r}]); "
            "print(r.output.strip()); print('EXIT', r.exit_code, c.exit_code)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = p.stdout.strip().splitlines()
    assert lines[-1] == "EXIT 2 0", p.stdout + p.stderr[-2000:]
    assert "needs torch and numba" in p.stdout and "recoque[bench]" in p.stdout


@pytest.mark.parametrize("value, why", [("abc", "valid integer"), ("10", "greater than or equal to 40")])
def test_a_bad_recoque_width_is_refused_not_ignored(value, why):
    r = subprocess.run([sys.executable, "-m", "recoque", "list"], capture_output=True, text=True,
                       env={**os.environ, "RECOQUE_WIDTH": value})
    assert r.returncode == 2 and "RECOQUE_WIDTH" in r.stderr and why in r.stderr


def test_width_folds_plain_lines_too():
    """--width 100 into a pipe: a 91-character claim line stays whole (it folded at rich's 80 before)."""
    r = subprocess.run([sys.executable, "-m", "recoque", "--width", "100", "check"], capture_output=True, text=True)
    first = r.stdout.splitlines()[0]
    assert r.returncode == 0 and 80 < len(first) <= 100 and first.endswith("exascale")
