"""The data-set layouts table (issue 29): every row reads a small real root of its layout, the DCASE clip-name rule
reads back what it writes, and the layout names and DCASE years each have one owner.

Roots are the tiny MIMII set (`conftest.tiny_root`) and synthetic DCASE sets (`common.data.synth.generate_dcase_dataset`,
0.5 s clips).
"""

import ast
from pathlib import Path

import pytest

import common
from common.config import DATA_LAYOUTS
from common.data.dcase import ANOMALY, NORMAL, YEARS, clip_folder, clip_name, layout_of_year, parse_clip
from common.data.download_dcase import DEV_SETS
from common.errors import DataError
from common.data.layouts import LAYOUTS, check_layout, detect_layout, official_year
from common.data.synth import generate_dcase_dataset

PACKAGE = Path(common.__file__).resolve().parent


def _dcase_root(root: Path, year: int) -> Path:
    """fan, one machine, in `year`'s layout: 3 source (+ 2 target) training clips, 2 test clips per domain and label."""
    generate_dcase_dataset(root, year=year, types=("fan",), n_source=3, n_target=None if year == 2020 else 2,
                           n_test=2, seconds=0.5, progress=False)
    return root


@pytest.fixture(scope="module")
def roots(tiny_root, tmp_path_factory) -> dict[str, tuple[Path, int | None]]:
    """One root per layout row, with the official year its machines score under (None: no official score)."""
    tmp = tmp_path_factory.mktemp("layouts")
    return {"mimii": (tiny_root, None), "dcase2020": (_dcase_root(tmp / "d20", 2020), 2020),
            "dcase2021": (_dcase_root(tmp / "d23", 2023), 2022)}


def test_every_row_has_a_root_here(roots):
    assert set(roots) == set(LAYOUTS)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_each_row_detects_and_reads_its_own_root(roots, name):
    root, year = roots[name]
    layout = LAYOUTS[name]
    assert detect_layout(root) == name
    assert layout.detect(root) and all(not other.detect(root) for n, other in LAYOUTS.items() if n != name)
    machines = layout.machines(root, snr=-6, types=None, ids=None)
    assert machines == sorted(machines) and machines
    for machine in machines:
        clips = layout.clips(machine)
        split = layout.split(machine, exclude=())
        assert sorted(map(str, split.train + split.eval_files)) == sorted(map(str, clips))
        assert set(split.eval_labels.tolist()) == {0, 1} and layout.ignored(machine) == []
        assert layout.official_year(machine) == official_year(machine, name) == year
    inventory = list(layout.inventory(root, snr=-6))
    assert [m for m, _, _ in inventory] == machines
    assert all(counts["normal"] + counts["abnormal"] == len(files) for _, files, counts in inventory)
    assert layout.ignored_under(root, snr=-6) == []


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_a_bad_clip_left_out_changes_the_split_not_the_layout(roots, name):
    root, _ = roots[name]
    layout = LAYOUTS[name]
    machine = layout.machines(root, snr=-6, types=None, ids=None)[0]
    first = layout.split(machine, exclude=())
    dropped = first.train[0]
    assert dropped not in layout.split(machine, exclude=[dropped]).train


def test_hidden_clips_are_ignored_by_each_row(roots, tmp_path):
    root = _dcase_root(tmp_path / "d21", 2021)
    fork = root / "fan" / "train" / "._section_00_source_train_normal_0000_spd_100.wav"
    fork.write_bytes(b"\0")
    (machine,) = LAYOUTS["dcase2021"].machines(root, snr=-6, types=None, ids=None)
    assert LAYOUTS["dcase2021"].ignored(machine) == [fork] and fork not in LAYOUTS["dcase2021"].clips(machine)
    assert LAYOUTS["dcase2021"].ignored_under(root, snr=-6) == [fork]
    assert LAYOUTS["dcase2021"].official_year(machine) == 2021  # test clips in source_test/, target_test/


def test_layout_names_have_one_owner():
    assert DATA_LAYOUTS == ("auto", *LAYOUTS)
    assert check_layout("dcase2020") == "dcase2020"
    with pytest.raises(DataError, match=r"layout='dcase2019' must be one of \['mimii', 'dcase2020', 'dcase2021'\]"):
        check_layout("dcase2019")


def test_dcase_years_have_one_owner():
    assert tuple(DEV_SETS) == YEARS == tuple(range(2020, 2026))
    assert {year: DEV_SETS[year].layout for year in YEARS} == {year: layout_of_year(year) for year in YEARS}
    assert DEV_SETS[2021].test_folders == ("source_test", "target_test") and DEV_SETS[2023].test_folders == ("test",)
    with pytest.raises(DataError, match="year=2019 must be one of"):
        layout_of_year(2019)


@pytest.mark.parametrize("year", YEARS)
@pytest.mark.parametrize("domain, split, label", [("source", "train", NORMAL), ("source", "test", ANOMALY),
                                                  ("target", "test", NORMAL), ("target", "train", NORMAL)])
def test_the_dcase_name_rule_reads_back_what_it_writes(tmp_path, year, domain, split, label):
    if year == 2020 and domain == "target":
        pytest.skip("2020 has no target domain")
    machine_id = "id_04" if year == 2020 else "section_01"
    name = clip_name(year, machine_id=machine_id, domain=domain, split=split, label=label, index=7,
                     attributes="vel_21")
    clip = parse_clip(tmp_path / "fan" / clip_folder(year, domain=domain, split=split) / name, layout_of_year(year))
    assert (clip.id, clip.split, clip.label, clip.index) == (machine_id, split, label, 7)
    assert clip.domain == (None if year == 2020 else domain)
    assert clip.attribute_text == ("" if year == 2020 or (year == 2021 and split == "test") else "vel_21")


def _compares_a_layout_name(node: ast.AST) -> bool:
    """Whether `node` compares something called ``*layout*`` with a layout's name (``layout == "mimii"``)."""
    if not isinstance(node, ast.Compare):
        return False
    parts = list(ast.walk(node))
    named = any("layout" in (getattr(n, "id", None) or getattr(n, "attr", None) or "") for n in parts)
    return named and any(isinstance(n, ast.Constant) and n.value in LAYOUTS for n in parts)


def test_no_module_compares_a_layout_name_outside_the_table():
    """A layout is looked up in `common.data.layouts.LAYOUTS`, never branched on by name (``layout == "mimii"``)."""
    found = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in sorted(PACKAGE.rglob("*.py"))
             if path.name != "layouts.py" for node in ast.walk(ast.parse(path.read_text()))
             if _compares_a_layout_name(node)]
    assert not found, f"layout names compared outside common.data.layouts: {found}"


# The data layer's imports at the top (no {mimii, dcase} cycle in hiding): tests/test_code_shape.py checks every module.
