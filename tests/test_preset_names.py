"""Preset names as typed: case and punctuation, published aliases, and a suggestion for a near miss."""
import pytest

from recoque.errors import BadInput
from recoque.planner.capacity import plan_any
from recoque.names import resolve_key, spelling, unknown_hint
from recoque.planner.system import load_system

TABLE = {"llama3-405b": {"aliases": ["llama3.1-405b"]}, "llama3.1-70b": {}, "alice-recoque": {}}


@pytest.mark.parametrize("typed,key", [("llama3-405b", "llama3-405b"), ("Llama-3.1-405B", "llama3-405b"),
                                       ("LLAMA_3.1_70B", "llama3.1-70b"), ("Alice Recoque", "alice-recoque")])
def test_a_name_resolves_in_any_case_punctuation_or_alias(typed, key):
    assert resolve_key(typed, TABLE) == key


def test_an_unknown_name_resolves_to_nothing_and_the_hint_names_the_nearest():
    assert resolve_key("llama4", TABLE) is None
    assert unknown_hint("alice", TABLE, "systems").startswith("did you mean alice-recoque? known systems:")
    assert unknown_hint("qqqq", TABLE, "systems") == "known systems: alice-recoque, llama3-405b, llama3.1-70b"
    assert spelling("") == "" and resolve_key("", TABLE) is None


def test_a_system_typed_as_people_write_it_is_the_preset():
    assert load_system("Alice-Recoque").key == "alice-recoque"
    with pytest.raises(BadInput, match="unknown system 'alice'") as e:
        load_system("alice")
    assert "did you mean alice-recoque?" in e.value.fix


def test_the_bare_plan_reports_the_preset_key_not_the_typing():
    assert plan_any(load_system("alice-recoque"), "HPL")["workload"] == "hpl"


def test_named_workloads_resolve_on_every_subcommand():
    from recoque.planner.workloads import get_workload, training_target

    assert get_workload("HPCG").key == "hpcg"
    assert training_target("Mistral-Large-2-Pretrain", None)[0] == "mistral-large-2"
    assert training_target("Llama-3.1-8B", 1e9) == ("Llama-3.1-8B", 1e9)  # a model passes through to load_model
    with pytest.raises(BadInput, match="unknown workload 'hpcgg'") as e:
        get_workload("hpcgg")
    assert e.value.fix.startswith("did you mean hpcg?")


def test_a_device_is_its_catalog_key_however_a_system_file_spells_it(tmp_path):
    from recoque.catalog import get_device_spec

    assert get_device_spec("MI300X").key == "mi300x" and get_device_spec("H100-SXM").key == "h100_sxm"
    f = tmp_path / "s.toml"
    f.write_text('[systems.x]\ndevice = "MI300X"\ngpus = 8\ngpus_per_node = 8\n')
    assert load_system(str(f)).device == "mi300x"
    with pytest.raises(BadInput, match="unknown device 'MI3000X'") as e:
        get_device_spec("MI3000X")
    assert "did you mean mi300x" in e.value.fix


@pytest.mark.parametrize("seed,top", [("systems.toml", "systems"), ("workloads.toml", "workloads"), ("hardware.toml", None)])
def test_no_two_presets_share_a_spelling(seed, top):
    from recoque.catalog import load_catalog
    from recoque.fileio import read_seed_toml

    table = load_catalog() if top is None else read_seed_toml(seed)[top]
    spelled = [spelling(k) for k in table]
    assert len(spelled) == len(set(spelled)), "two presets would answer to one name"
