"""The report lays planner JSON out as rows: one quantity given in two units (energy_j and
energy_mwh) is one row, not two."""
from __future__ import annotations

from recoque.report.model import generic_tables


def _rows(obj):
    return [r for t in generic_tables("plan", obj) for r in t.rows]


def test_energy_in_joules_and_mwh_is_one_row():
    e_j = {"value": 5.472e14, "low": 5.22e14, "high": 5.976e14, "unit": "J"}
    e_mwh = {"value": 1.52e5, "low": 1.45e5, "high": 1.66e5, "unit": "MWh"}
    rows = _rows({"energy_j": e_j, "energy_mwh": e_mwh})
    assert rows == [("energy", "152", "145", "166", "GWh")]


def test_two_different_quantities_keep_their_rows():
    a = {"value": 1.0e9, "low": 1.0e9, "high": 1.0e9, "unit": "W"}
    b = {"value": 2.0e9, "low": 2.0e9, "high": 2.0e9, "unit": "W"}
    rows = _rows({"power_w": a, "peak_power_w": b, "energy_mwh": {"value": 1.52e5, "low": 1.45e5, "high": 1.66e5,
                                                                 "unit": "MWh"}})
    assert [r[0] for r in rows] == ["power", "peak power", "energy"]
    assert rows[2][1:] == ("152", "145", "166", "GWh")
