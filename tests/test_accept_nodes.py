"""`bench accept` on files from several hosts: a verdict per node, siblings only within a host, and
two files of one device refused (they would witness each other as siblings)."""
import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recoque.bench import accept
from recoque.bench.schema import load_results
from recoque.cli import app
from recoque.errors import BadInput

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()


def _on_host(tmp_path, name: str, host: str) -> Path:
    d = json.loads((FIX / f"accept_mi300x_{name}.json").read_text())
    d["environment"]["hostname"] = host
    out = tmp_path / f"{host}-{name}.json"
    out.write_text(json.dumps(d))
    return out


def test_siblings_are_the_gpus_of_one_host(tmp_path):
    # the slow gpu2 fails beside gpu0 and gpu1 of its host; on a host of its own it has no siblings
    together = accept.evaluate([load_results(str(FIX / f"accept_mi300x_gpu{i}.json")) for i in (0, 1, 2)])
    assert not together.passed
    apart = accept.evaluate([load_results(str(_on_host(tmp_path, "gpu0", "node-b"))),
                             load_results(str(_on_host(tmp_path, "gpu1", "node-b"))),
                             load_results(str(FIX / "accept_mi300x_gpu2.json"))])
    assert apart.passed
    assert apart.per_node() == {"node-b": "pass", "node-a": "pass"}
    assert not any(c.basis.startswith("siblings") and c.gpu.startswith("node-a") for c in apart.checks)


def test_a_failing_device_fails_its_node_only(tmp_path):
    a = accept.evaluate([load_results(str(FIX / "accept_mi300x_gpu0.json")),
                         load_results(str(_on_host(tmp_path, "gpu3_fail", "node-c")))])
    assert a.per_node() == {"node-a": "pass", "node-c": "fail"}
    assert a.to_json()["per_node"] == a.per_node()


def test_the_cli_gives_a_verdict_per_node(tmp_path):
    files = [str(FIX / "accept_mi300x_gpu0.json"), str(_on_host(tmp_path, "gpu3_fail", "node-c"))]
    res = runner.invoke(app, ["bench", "accept", *files, "--no-write"])
    assert res.exit_code == 1
    assert "Verdict per node" in res.output and "REJECTED: 2 nodes, 2 device(s)" in res.output
    one = runner.invoke(app, ["bench", "accept", str(FIX / "accept_mi300x_gpu0.json"), "--no-write"])
    assert "Verdict per node" not in one.output and "ACCEPTED: 1 device(s)" in one.output


def test_two_files_of_one_device_are_refused(tmp_path):
    copy = tmp_path / "again.json"
    shutil.copy(FIX / "accept_mi300x_gpu0.json", copy)
    with pytest.raises(BadInput) as exc:
        accept.evaluate([load_results(str(FIX / "accept_mi300x_gpu0.json")), load_results(str(copy))])
    assert "both measure node-a cuda:0" in exc.value.what
    res = runner.invoke(app, ["bench", "accept", str(FIX / "accept_mi300x_gpu0.json"), str(copy), "--no-write"])
    assert res.exit_code == 2 and "one results file per GPU" in res.output
