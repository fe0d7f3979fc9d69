"""`plan` on a bare model: the training H100e row says how many of the system's GPUs it counts, the
serving figure is kept beside it, the assumptions behind both are printed, the placeholder token
count is said; a per-GPU delivered ratio takes the GPU count's range once; no TP note at tp 1."""
from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from recoque.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def alice():
    res = runner.invoke(app, ["plan", "--system", "alice-recoque", "--workload", "mistral-large-2", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _rows(d, section):
    return {r["quantity"]: r["value"] for r in d["sections"][section]}


def test_training_h100e_row_names_the_gpus_it_counts_and_serving_stays_beside_it(alice):
    rows = _rows(alice, "H100-equivalents")
    used = next(r["value"] for r in alice["sections"]["training"] if r["quantity"] == "GPUs used")
    train = [q for q in rows if q.startswith("H100e delivered (mistral-large-2 train")]
    assert train == [f"H100e delivered (mistral-large-2 train, on {used:,} of 5,109 GPUs)"]
    assert "H100e delivered (mistral-large-2 infer)" in rows and "delivered vs peak (infer)" in rows
    assert set(alice["h100e"]["delivered_by_kind"]) == {"train", "infer"}
    notes = alice["assumptions"]
    assert any(n.startswith(train[0] + ":") and f"on {used} GPUs" in n for n in notes)


def test_the_placeholder_token_count_is_said(alice):
    rows = _rows(alice, "training")
    assert rows["tokens to train"]["value"] == pytest.approx(1e13)
    assert any("tokens to train (a stated placeholder" in n for n in alice["assumptions"])


def test_no_tp_all_reduce_note_for_a_one_gpu_replica_and_sources_for_grid_and_price(alice):
    notes = alice["assumptions"]
    assert not any(n.startswith("TP all-reduce: 0 GB/s") for n in notes)
    assert any("gCO2e/kWh, 21.3..48.2 (France 2024, location-based grid average: " in n for n in notes)
    assert any(n.startswith("electricity ") and "Supply: " in n and "network fee: " in n for n in notes)


def test_a_per_gpu_delivered_ratio_takes_the_count_range_once():
    res = runner.invoke(app, ["plan", "--system", "alice-recoque", "--workload", "climate-km", "--json"])
    assert res.exit_code == 0, res.output
    eq = json.loads(res.stdout)["h100e"]["delivered"]
    per_gpu, whole = eq["per_gpu_ratio"], eq["h100e"]
    ratio = whole["value"] / per_gpu["value"]  # the central GPU count
    assert per_gpu["low"] == pytest.approx(whole["low"] / ratio) and per_gpu["high"] == pytest.approx(whole["high"] / ratio)
