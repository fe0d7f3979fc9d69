"""seeds/systems.toml and seeds/workloads.toml: every preset loads, every value has a source, bad input."""
import pytest

from recoque.catalog import load_catalog
from recoque.errors import BadInput
from recoque.fileio import read_seed_toml
from recoque.planner.system import load_system, system_from_toml
from recoque.planner.workloads import get_workload, load_workloads, workload_from_toml

PRESETS = read_seed_toml("systems.toml")["systems"]


@pytest.mark.parametrize("key", sorted(PRESETS))
def test_every_preset_loads_with_a_known_device_and_sources(key):
    s = load_system(key)
    assert s.device in load_catalog()
    raw = PRESETS[key]
    sources = raw.get("sources", {})
    for field in ("gpus", "node_power_kw", "pue", "rmax_pflops", "site_power_mw", "cumulative_peak_pflops", "gflops_per_w"):
        if field in raw:
            assert field in sources, f"{key}.{field} has no source"
    if "gpus_low" in raw:
        assert s.notes, f"{key}: derived GPU count needs its derivation in notes"


def test_top500_figures_as_stated_in_the_reference_notes():
    from recoque.planner.top500 import load_entries

    e = load_entries()
    assert e["el-capitan-2025-11"].rmax_flop_s == pytest.approx(1809.0e15)
    assert e["frontier-2025-06"].rpeak_flop_s == pytest.approx(2055.72e15)
    assert e["jupiter-2025-11"].power_w == pytest.approx(15794e3)
    assert load_system("jupiter").gpus == e["jupiter-2025-11"].gpus_in_run
    assert load_system("jean-zay-h100").gpus == 364 * 4


def test_system_file_missing_a_field_is_a_clear_error(tmp_path):
    p = tmp_path / "my.toml"
    p.write_text('[systems.mine]\ndevice = "mi300x"\ngpus = 8\ngpus_per_node = 8\nintra_node_bandwidth_gb_s = 448\n')
    s = load_system(str(p))  # the link bandwidths are optional (an HPL-only file; issue 7) ...
    with pytest.raises(BadInput, match="`inter_node_bandwidth_gb_s` is unknown"):  # ... until a command needs one
        s.estimate("inter_node_bandwidth_bytes_s")


def test_negative_count_is_rejected():
    with pytest.raises(BadInput):
        system_from_toml("x", {"device": "h100_sxm", "gpus": -8, "gpus_per_node": 8,
                               "intra_node_bandwidth_gb_s": 450, "inter_node_bandwidth_gb_s": 50})


def test_unknown_system_lists_the_known_ones():
    with pytest.raises(BadInput) as exc:
        load_system("no-such-machine")
    assert "alice-recoque" in exc.value.one_line()


def test_workloads_load_and_reference_known_models():
    from recoque.planner.workload import list_models

    models = set(list_models())
    for w in load_workloads().values():
        if w.kind in ("train", "infer"):
            assert w.model in models, f"{w.key} references unknown model {w.model}"


def test_workload_errors():
    with pytest.raises(BadInput, match="unknown workload"):
        get_workload("nope")
    with pytest.raises(BadInput, match="kind"):
        workload_from_toml("x", {"kind": "dance"})
    with pytest.raises(BadInput, match="negative"):
        workload_from_toml("x", {"kind": "stencil", "grid_points": -1})


def test_seed_files_are_parsed_once_and_every_caller_gets_its_own_copy():
    from recoque import fileio

    a = fileio.read_seed_toml("systems.toml")
    a["systems"]["frontier"]["gpus"] = -1          # a caller scribbling on what it got...
    a["systems"].pop("jupiter")
    b = fileio.read_seed_toml("systems.toml")
    assert b["systems"]["frontier"]["gpus"] == 38416 and "jupiter" in b["systems"]   # ...changes nobody else's
    before = fileio._parsed_seed.cache_info().hits
    fileio.read_seed_toml("systems.toml")
    assert fileio._parsed_seed.cache_info().hits == before + 1
