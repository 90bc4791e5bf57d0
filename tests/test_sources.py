"""Source sets per version: exactly as defined, never containing the target's type (v1/v3/v4) or ID (v2)."""

from pathlib import Path

import pytest

from common.data.mimii import Machine
from common.errors import ConfigError
from common.data.versions import VERSIONS, all_source_sets, source_sets

TYPES = ("fan", "pump", "slider", "valve")
IDS = ("id_00", "id_02", "id_04", "id_06")
MACHINES = [Machine(t, i, Path(t) / i) for t in TYPES for i in IDS]


def types_of(source):
    return {m.type for m in source.machines}


@pytest.mark.parametrize("target", MACHINES, ids=lambda m: m.name)
def test_each_version_defines_its_sources(target):
    others = set(TYPES) - {target.type}
    v1 = source_sets("v1", target, MACHINES)
    assert sorted(tuple(types_of(s)) for s in v1) == sorted((t,) for t in others)
    assert all(len(s.machines) == 4 for s in v1)
    (v2,) = source_sets("v2", target, MACHINES)
    assert types_of(v2) == {target.type} and target not in v2.machines and len(v2.machines) == 3
    v3 = source_sets("v3", target, MACHINES)
    assert len(v3) == 3 and all(len(types_of(s)) == 2 and types_of(s) <= others for s in v3)
    assert len({frozenset(types_of(s)) for s in v3}) == 3
    (v4,) = source_sets("v4", target, MACHINES)
    assert types_of(v4) == others and len(v4.machines) == 12
    for s in v1 + v3 + [v4]:
        assert target.type not in types_of(s)


def test_distinct_source_sets_are_shared_across_targets():
    assert [s.label for s in all_source_sets("v1", MACHINES)] == list(TYPES)
    assert len(all_source_sets("v2", MACHINES)) == 16
    assert [s.label for s in all_source_sets("v3", MACHINES)] == [
        "fan+pump", "fan+slider", "fan+valve", "pump+slider", "pump+valve", "slider+valve"]
    assert [s.label for s in all_source_sets("v4", MACHINES)] == [
        "fan+pump+slider", "fan+pump+valve", "fan+slider+valve", "pump+slider+valve"]


def test_fewer_machines_give_fewer_sources():
    two_types = [m for m in MACHINES if m.type in ("fan", "valve") and m.id in ("id_00", "id_02")]
    target = two_types[0]
    assert [s.label for s in source_sets("v1", target, two_types)] == ["valve"]
    assert source_sets("v3", target, two_types) == []
    assert [s.label for s in source_sets("v4", target, two_types)] == ["valve"]
    lonely = [MACHINES[0], MACHINES[4]]
    assert source_sets("v2", lonely[0], lonely) == []


def test_unknown_version():
    with pytest.raises(ConfigError, match="v9"):
        source_sets("v9", MACHINES[0], MACHINES)


def test_one_table_holds_every_version_with_its_words(tmp_path):
    from common.config import load_config

    assert list(VERSIONS) == ["v1", "v2", "v3", "v4", "v5"]
    for version, entry in VERSIONS.items():
        assert entry.short and entry.text.startswith("For every target machine"), version
        yaml_path = tmp_path / f"{version}.yaml"
        yaml_path.write_text(f"experiment:\n  version: {version}\n")
        assert load_config(yaml_path).experiment.version == version  # config accepts exactly this table
