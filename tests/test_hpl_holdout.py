"""The TOP500 check set (June 2025 list), leave-one-out of the references, the range's half-width and
benchmarks/hpl_holdout.py."""
import json
import math

import pytest

from recoque.catalog import get_device_spec
from recoque.planner import hpl, pace, top500
from bench_scripts import load_script



def _holdout_module():
    return load_script("hpl_holdout")


def test_the_check_set_loads_with_units_sources_and_whole_gpu_counts():
    entries = top500.load_entries()
    checks = [e for e in entries.values() if e.role == "check"]
    assert len(checks) >= 60
    for e in entries.values():
        assert e.sources, e.key
        assert e.status, e.key
        get_device_spec(e.device)                              # every device is in the catalog
        assert e.gpus_in_run == pytest.approx(round(e.gpus_in_run), abs=1e-9), e.key
        if e.rpeak_flop_s:
            assert e.rmax_flop_s < e.rpeak_flop_s, e.key      # PFLOP/s both, Rmax below Rpeak
    # Aurora: 8,159,232 accelerator cores / 128 Xe cores = 63,744 GPUs; Rmax 1,012 PF in flop/s
    a = entries["aurora-2025-06"]
    assert a.gpus_in_run == 63744 and a.rmax_flop_s == pytest.approx(1.012e18) and a.power_w == pytest.approx(38698.36e3)


def test_accelerator_cores_give_the_gpus_of_the_run():
    e = top500.entry_from_toml("x", {"role": "check", "device": "gh200", "accelerator_cores": 1372800,
                                     "gpu_compute_units": 132, "rmax_pflops": 434.9})
    assert e.gpus_in_run == 10400
    from recoque.errors import BadInput
    with pytest.raises(BadInput, match="gpu_compute_units"):
        top500.entry_from_toml("x", {"role": "check", "device": "gh200", "accelerator_cores": 1372800,
                                     "rmax_pflops": 434.9})


def test_leave_one_out_never_uses_the_machine_itself():
    rows = {r["entry"]: r for r in hpl.check_against_top500(("reference",))}
    assert set(rows) == {e.key for e in hpl.reference_entries()}
    for e in hpl.reference_entries():
        eff = hpl.hpl_efficiency(e.device, exclude_machines=(e.machine,), gpus=e.gpus_in_run)
        listed = eff.assumptions[0].split("(left out")[0]
        assert f"{e.machine} (TOP500" not in listed and f"left out: {e.machine}" in eff.assumptions[0]
        rate = hpl.hpl_rate(get_device_spec(e.device)).value
        assert rows[e.key]["model"].value == pytest.approx(e.gpus_in_run * rate * eff.value)
        # and the left-out figure differs from the one that learned from the machine
        assert hpl.hpl_efficiency(e.device).value != pytest.approx(eff.value, rel=1e-9)


def test_half_width_covers_the_leave_one_out_errors_of_references_with_a_sibling():
    w = top500.range_setting("in_family_halfwidth")
    refs = hpl.reference_entries()
    with_sibling = {e.key for e in refs
                    if any(o.machine != e.machine and top500.family_of(o.device) == top500.family_of(e.device)
                           for o in refs)}
    errs = [r["error"] for r in hpl.check_against_top500(("reference",)) if r["entry"] in with_sibling]
    assert len(errs) >= 4
    # published / predicted - 1 is what the +/-w range around the prediction has to hold
    assert max(abs(1 / (1 + e) - 1) for e in errs) <= w


def test_unknown_family_range_is_wider_than_a_calibrated_family():
    def rel_width(e):
        return (e.high - e.low) / e.value

    inside = hpl.hpl_efficiency("h100_sxm")
    for device in ("mi300x", "mi355x", "mi430x"):
        out = hpl.hpl_efficiency(device)
        assert "outside every calibrated family" in out.assumptions[0] and "ASSUMED" in out.assumptions[0]
        assert rel_width(out) > rel_width(inside), device
        assert all(math.isfinite(x) and x > 0 for x in (out.low, out.value, out.high))


def test_per_vendor_families_differ_on_their_own_rate_bases():
    amd, nvidia = hpl.hpl_efficiency("mi250x"), hpl.hpl_efficiency("gh200")
    # MI250X on its vector rate is the more efficient family; the two are not one pooled number
    assert amd.value > nvidia.value and "frontier" not in nvidia.assumptions[0]
    assert hpl.hpl_rate_key(get_device_spec("v100_sxm2")) == "fp64_matrix"
    assert hpl.hpl_rate(get_device_spec("v100_sxm2")).value == pytest.approx(7.8e12)   # no FP64 tensor: vector


def test_holdout_script_prints_every_row_and_the_summaries(capsys):
    mod = _holdout_module()
    assert mod.main([]) == 0
    out = capsys.readouterr().out
    for machine in ("el-capitan", "jean-zay-h100", "aurora", "alps", "leonardo"):
        assert machine in out
    assert "reference overall" in out and "check overall" in out and "inside" in out
    assert mod.main(["--json", "--role", "check"]) == 0
    data = json.loads(capsys.readouterr().out)
    rows = hpl.check_against_top500(("check",))
    assert data["check"]["machines"] == len(rows)
    assert data["check"]["inside_fraction"] == pytest.approx(sum(r["inside_range"] for r in rows) / len(rows))
    # --json carries what the table shows: every machine with its range, and the family lines
    by_entry = {r["entry"]: r for r in data["check"]["rows"]}
    assert set(by_entry) == {r["entry"] for r in rows}
    for r in rows:
        got = by_entry[r["entry"]]
        assert got["model"]["value"] == pytest.approx(r["model"].value) and got["error"] == pytest.approx(r["error"])
        assert got["model"]["low"] <= got["model"]["value"] <= got["model"]["high"]
    fams = data["check"]["families"]
    assert sum(f["machines"] for f in fams.values()) == len(rows)
    assert fams["hopper"]["machines"] == sum(str(r["family"]) == "hopper" for r in rows)


def test_blackwell_has_its_own_reference_and_holds_on_the_other_b200_runs():
    """B200's FP64 peak is one rate for FMA and tensor units; Hopper's efficiency on its 67 TF tensor
    basis does not carry over (CHIE-4 left out: -34%), CHIE-4 as the family's reference does."""
    eff = hpl.hpl_efficiency("b200")
    assert "family blackwell" in eff.assumptions[0] and "chie-4" in eff.assumptions[0]
    rows = [r for r in hpl.check_against_top500(("check",)) if r["device"] == "b200"]
    assert len(rows) >= 3
    assert all(r["inside_range"] and abs(r["error"]) < 0.10 for r in rows)
    loo = [r for r in hpl.check_against_top500(("reference",)) if r["machine"] == "chie-4"][0]
    assert loo["error"] < -0.2     # without its own reference B200 falls to the Hopper-dominated pool


def test_hpl_runs_at_the_slowest_gpus_pace():
    # one reference machine (El Capitan) in its family: at its own GPU count the paced efficiency is its own
    elc = [e for e in hpl.reference_entries() if e.machine == "el-capitan"][0]
    own = hpl.hpl_efficiency("mi300a")
    assert hpl.hpl_efficiency("mi300a", gpus=elc.gpus_in_run).value == pytest.approx(own.value, rel=1e-12)
    small, big = (hpl.hpl_efficiency("mi300a", gpus=n).value for n in (64, 100_000))
    assert small > own.value > big
    assert small / own.value == pytest.approx(pace.slowdown(elc.gpus_in_run) / pace.slowdown(64), rel=1e-12)
    assert "slowest of 64 GPUs" in hpl.hpl_efficiency("mi300a", gpus=64).assumptions[-1]
    # a measured DGEMM x the HPL fraction carries no run's scale: no pace applied
    dgemm = hpl.hpl_efficiency("max1550", exclude_machines=("aurora",))
    assert hpl.hpl_efficiency("max1550", exclude_machines=("aurora",), gpus=64).value == dgemm.value
