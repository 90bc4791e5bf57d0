"""DCASE Task 2 data roots (2020; 2021-2025): layout detection, clip names, machines, the given split, and errors."""

from pathlib import Path

import numpy as np
import pytest

from common.data.mimii import Split
from common.data.dcase import (
    UNKNOWN_LABEL,
    find_dcase_machines,
    ignored_dcase_files,
    list_dcase_clips,
    parse_clip,
    read_attribute_csv,
    split_dcase_machine,
)
from common.errors import DataError
from common.data.layouts import detect_layout
from conftest import write_wav


def _wav(folder: Path, *names: str) -> list[Path]:
    """Tiny real WAV files (0.05 s of 16 kHz noise) named `names` in `folder`."""
    rng = np.random.default_rng(440)
    return [write_wav(folder / name, 0.1 * rng.standard_normal(800)) for name in names]


def _root_2020(root: Path) -> Path:
    """ToyCar id_01, id_02 and ToyConveyor id_01 as the DCASE 2020 development set names them (fewer clips)."""
    for machine_type, ids in {"ToyCar": ("id_01", "id_02"), "ToyConveyor": ("id_01",)}.items():
        for i in ids:
            _wav(root / machine_type / "train", *(f"normal_{i}_{n:08d}.wav" for n in range(3)))
            _wav(root / machine_type / "test", f"normal_{i}_00000000.wav", f"normal_{i}_00000001.wav",
                 f"anomaly_{i}_00000000.wav")
    return root


def _root_2023(root: Path) -> Path:
    """fan/section_00 in the 2022+ names (3 source + 2 target training clips) with its attributes_00.csv."""
    train = [f"section_00_source_train_normal_{n:04d}_vel_{6 + n}.wav" for n in range(3)]
    train += [f"section_00_target_train_normal_{n:04d}_vel_20.wav" for n in range(2)]
    test = [f"section_00_{d}_test_{lab}_0000_vel_{v}.wav" for d, v in (("source", 6), ("target", 20))
            for lab in ("normal", "anomaly")]
    _wav(root / "fan" / "train", *train)
    _wav(root / "fan" / "test", *test)
    rows = [f"fan/{'train' if '_train_' in n else 'test'}/{n},vel,{n.rsplit('_', 1)[1][:-4]}" for n in train + test]
    (root / "fan" / "attributes_00.csv").write_text("file_name,d1p,d1v\n" + "\n".join(rows) + "\n")
    return root


def _root_2021(root: Path) -> Path:
    """gearbox sections 00 and 01 as 2021 names them: test clips in source_test/ and target_test/."""
    for s in ("00", "01"):
        _wav(root / "gearbox" / "train", f"section_{s}_source_train_normal_0000_0_g_25_mm_2000_mV_none.wav",
             f"section_{s}_target_train_normal_0000_1_g_25_mm_2000_mV_none.wav")
        for domain in ("source", "target"):
            _wav(root / "gearbox" / f"{domain}_test", f"section_{s}_{domain}_test_normal_0000.wav",
                 f"section_{s}_{domain}_test_anomaly_0000.wav")
    return root


def test_detect_layout_of_each_kind(tmp_path):
    _wav(tmp_path / "mimii" / "-6_dB_fan" / "fan" / "id_00" / "normal", "00000000.wav")
    assert detect_layout(tmp_path / "mimii") == "mimii"
    assert detect_layout(_root_2020(tmp_path / "d20")) == "dcase2020"
    assert detect_layout(_root_2023(tmp_path / "d23")) == "dcase2021"
    assert detect_layout(_root_2021(tmp_path / "d21")) == "dcase2021"


def test_2020_machines_are_type_and_id_and_the_split_is_the_given_one(tmp_path):
    root = _root_2020(tmp_path)
    machines = find_dcase_machines(root)
    assert [m.name for m in machines] == ["ToyCar/id_01", "ToyCar/id_02", "ToyConveyor/id_01"]
    assert machines[0].path == root / "ToyCar"
    split = split_dcase_machine(machines[1])
    assert isinstance(split, Split)
    assert [p.name for p in split.train] == [f"normal_id_02_{n:08d}.wav" for n in range(3)]
    assert [p.name for p in split.eval_files] == ["anomaly_id_02_00000000.wav", "normal_id_02_00000000.wav",
                                                   "normal_id_02_00000001.wav"]
    assert split.eval_labels.tolist() == [1, 0, 0]
    assert split.eval_domains == (None, None, None) and split.target_train == ()
    assert [m.name for m in find_dcase_machines(root, "dcase2020", types=["ToyConveyor"])] == ["ToyConveyor/id_01"]
    assert [m.name for m in find_dcase_machines(root, sections=["id_02"])] == ["ToyCar/id_02"]


def test_2023_section_domains_labels_budget_and_attributes(tmp_path):
    root = _root_2023(tmp_path)
    (machine,) = find_dcase_machines(root)
    assert (machine.type, machine.id, machine.path) == ("fan", "section_00", root / "fan")
    split = split_dcase_machine(machine)
    assert len(split.train) == 5 and split.train_domains == ("source",) * 3 + ("target",) * 2
    assert [p.name for p in split.target_train] == ["section_00_target_train_normal_0000_vel_20.wav",
                                                    "section_00_target_train_normal_0001_vel_20.wav"]
    assert len(split.source_train) == 3 and not set(split.source_train) & set(split.target_train)
    assert split.eval_domains == ("source", "source", "target", "target")
    assert split.eval_labels.tolist() == [1, 0, 1, 0]  # sorted by name: anomaly before normal
    clips = {c.path.name: c for c in list_dcase_clips(root)}
    clip = clips["section_00_source_train_normal_0002_vel_8.wav"]
    assert (clip.split, clip.domain, clip.label, clip.index) == ("train", "source", 0, 2)
    assert clip.attribute_text == "vel_8" and clip.attributes == (("vel", "8"),)
    assert clips["section_00_target_test_anomaly_0000_vel_20.wav"].attributes == (("vel", "20"),)


def test_2021_source_test_and_target_test_folders(tmp_path):
    root = _root_2021(tmp_path)
    machines = find_dcase_machines(root)
    assert [m.name for m in machines] == ["gearbox/section_00", "gearbox/section_01"]
    split = split_dcase_machine(machines[1])
    assert [p.parent.name for p in split.eval_files] == ["source_test"] * 2 + ["target_test"] * 2
    assert split.eval_domains == ("source", "source", "target", "target")
    assert split.eval_labels.tolist() == [1, 0, 1, 0]
    assert [p.name for p in split.target_train] == ["section_01_target_train_normal_0000_1_g_25_mm_2000_mV_none.wav"]
    (clip,) = [c for c in list_dcase_clips(root) if c.path == split.train[0]]
    assert clip.attribute_text == "0_g_25_mm_2000_mV_none" and clip.attributes == ()  # 2021: no CSV
    # nttcslab's baseline copies source_test/ and target_test/ into test/: each clip is read once
    for clip in split.eval_files:
        _wav(root / "gearbox" / "test", clip.name)
    again = split_dcase_machine(machines[1])
    assert [p.parent.name for p in again.eval_files] == ["test"] * 4 and again.eval_domains == split.eval_domains


def test_evaluation_sets_without_labels(tmp_path):
    _wav(tmp_path / "d23" / "ToyTank" / "train", "section_00_source_train_normal_0000_noAttribute.wav")
    _wav(tmp_path / "d23" / "ToyTank" / "test", "section_00_0000.wav", "section_00_0001.wav")
    (machine,) = find_dcase_machines(tmp_path / "d23")
    with pytest.raises(DataError, match=r"ToyTank/section_00: 2 test clip\(s\) without a label.*section_00_0000.wav"):
        split_dcase_machine(machine)
    split = split_dcase_machine(machine, require_labels=False)
    assert split.eval_labels.tolist() == [UNKNOWN_LABEL] * 2 and split.eval_domains == (None, None)

    _wav(tmp_path / "d21" / "fan" / "train", "section_03_source_train_normal_0000_strength_1.wav")
    _wav(tmp_path / "d21" / "fan" / "target_test", "section_03_target_test_0000.wav")
    split = split_dcase_machine(find_dcase_machines(tmp_path / "d21")[0], require_labels=False)
    assert split.eval_domains == ("target",) and split.eval_labels.tolist() == [UNKNOWN_LABEL]

    _wav(tmp_path / "d20" / "ToyCar" / "train", "normal_id_05_00000000.wav")
    _wav(tmp_path / "d20" / "ToyCar" / "test", "id_05_00000000.wav")
    assert detect_layout(tmp_path / "d20") == "dcase2020"
    split = split_dcase_machine(find_dcase_machines(tmp_path / "d20")[0], require_labels=False)
    assert split.eval_labels.tolist() == [UNKNOWN_LABEL]


def test_stray_files_hidden_ones_left_out_unparseable_wav_an_error(tmp_path):
    root = _root_2023(tmp_path)
    (root / "fan" / "test" / "README.txt").write_text("not a clip")
    (root / "fan" / "supplemental").mkdir()
    _wav(root / "fan" / "supplemental", "section_00_machine_0001_.wav")  # 2025 eval extras: not read
    hidden = _wav(root / "fan" / "train", "._section_00_source_train_normal_0000_vel_6.wav")
    (machine,) = find_dcase_machines(root)
    assert hidden[0] not in split_dcase_machine(machine).train
    assert ignored_dcase_files(machine) == hidden
    stray = _wav(root / "fan" / "test", "recording_7.wav")[0]
    with pytest.raises(DataError, match=f"fits no dcase2021 pattern: {stray}"):
        find_dcase_machines(root)


def test_mixed_and_unrecognised_layouts_are_named(tmp_path):
    with pytest.raises(DataError, match="data root not found: .*nowhere"):
        detect_layout(tmp_path / "nowhere")
    (tmp_path / "empty" / "notes").mkdir(parents=True)
    with pytest.raises(DataError, match="no data layout recognised under .*empty"):
        detect_layout(tmp_path / "empty")
    root = _root_2020(tmp_path / "mixed")
    _wav(root / "-6_dB_fan" / "fan" / "id_00" / "normal", "00000000.wav")
    with pytest.raises(DataError, match=r"mixed data layouts .*\(dcase2020: ToyCar, ToyConveyor; mimii: -6_dB_fan\)"):
        detect_layout(root)
    root = _root_2020(tmp_path / "mixed_in_type")
    _wav(root / "ToyCar" / "train", "section_00_source_train_normal_0000_a_1.wav")
    with pytest.raises(DataError, match=r"dcase2020: ToyCar, ToyConveyor; dcase2021: ToyCar"):
        detect_layout(root)


def test_names_that_contradict_their_folder_or_the_layout(tmp_path):
    root = _root_2021(tmp_path / "a")
    with pytest.raises(DataError, match="fits no dcase2020 pattern"):
        find_dcase_machines(root, "dcase2020")
    with pytest.raises(DataError, match=r"layout='dcase2019' must be one of"):
        find_dcase_machines(root, "dcase2019")
    with pytest.raises(DataError, match="MIMII root"):
        find_dcase_machines(root, "mimii")
    wrong = _wav(root / "gearbox" / "source_test", "section_00_target_test_normal_0001.wav")[0]
    with pytest.raises(DataError, match=f"{wrong}: its name says a test clip of the target domain.*source_test/"):
        parse_clip(wrong, "dcase2021")
    root = _root_2023(tmp_path / "b")
    _wav(root / "fan" / "train", "section_00_source_test_normal_0009_vel_6.wav")
    with pytest.raises(DataError, match="a test clip of the source domain, but it lies in train/"):
        find_dcase_machines(root)


def test_split_errors_name_the_machine(tmp_path):
    root = _root_2023(tmp_path)
    _wav(root / "fan" / "train", "section_00_source_train_anomaly_0000_vel_6.wav")
    (machine,) = find_dcase_machines(root)
    with pytest.raises(DataError, match="train_anomaly_0000_vel_6.wav: a training clip not named normal"):
        split_dcase_machine(machine)
    anomaly = root / "fan" / "train" / "section_00_source_train_anomaly_0000_vel_6.wav"
    normals = [p for p in (root / "fan" / "test").glob("*_normal_*")]
    with pytest.raises(DataError, match=r"fan/section_00 has test clips of one class only \(3 bad file"):
        split_dcase_machine(machine, exclude=[anomaly, *normals])
    split = split_dcase_machine(machine, exclude=[anomaly, split_dcase_machine(machine, exclude=[anomaly]).train[0]])
    assert len(split.train) == 4
    with pytest.raises(DataError, match=r"section / ID\(s\) \['section_01'\] not found"):
        find_dcase_machines(root, sections=["section_01"])
    with pytest.raises(DataError, match=r"machine type\(s\) \['pump'\] not found .*found: \['fan'\]"):
        find_dcase_machines(root, types=["pump"])


def test_attribute_csv_errors_name_file_and_line(tmp_path):
    good = tmp_path / "attributes_00.csv"
    good.write_text("file_name,d1p,d1v,d2p,d2v\nToyCar/train/a.wav,car,A1,spd,28V\nToyCar/test/b.wav,car,A2,,\n")
    assert read_attribute_csv(good) == {"a.wav": (("car", "A1"), ("spd", "28V")), "b.wav": (("car", "A2"),)}
    bad = tmp_path / "attributes_01.csv"
    bad.write_text("name,d1p,d1v\nx.wav,vel,6\n")
    with pytest.raises(DataError, match=f"{bad}: an attribute CSV starts with a 'file_name' column"):
        read_attribute_csv(bad)
    bad.write_text("file_name,d1p,d1v\nx.wav,vel,6,loc\n")
    with pytest.raises(DataError, match=f"{bad} line 2: attributes come in .parameter, value. pairs"):
        read_attribute_csv(bad)
    bad.write_bytes(b"file_name,d1p,d1v\nx.wav,vel,\xff\n")
    with pytest.raises(DataError, match=f"{bad}: cannot read the attribute CSV"):
        read_attribute_csv(bad)


@pytest.mark.parametrize("year, layout", [(2020, "dcase2020"), (2023, "dcase2021")])
def test_the_grid_names_a_dcase_root_it_cannot_read_yet(tmp_path, year, layout):
    """A DCASE root given as a MIMII data root: the error names the folder and the layout, not 'no machines'."""
    from common.data.mimii import find_machines
    from common.data.synth.dcase import generate_dcase_dataset

    generate_dcase_dataset(tmp_path, year=year, types=("fan",), n_source=2, n_target=0 if year == 2020 else 1,
                           n_test=2, seconds=0.5, progress=False)
    with pytest.raises(DataError, match=rf"{tmp_path} holds a DCASE Task 2 data set \({layout} layout\)"):
        find_machines(tmp_path)
    (tmp_path / "fan").rename(tmp_path / "elsewhere")
    with pytest.raises(DataError, match="no (machines|data layout)"):
        find_machines(tmp_path / "elsewhere" / "train")


def test_official_year_follows_the_folders(tmp_path):
    """The formula a machine is scored by: none on MIMII, 2020 for IDs, 2021 with source_test/ or target_test/,
    otherwise the 2022-2025 formula (2022)."""
    from common.data.mimii import Machine
    from common.data.layouts import official_year

    folder = tmp_path / "fan"
    (folder / "train").mkdir(parents=True)
    machine = Machine("fan", "section_00", folder)
    assert official_year(Machine("fan", "id_00", tmp_path), "mimii") is None
    assert official_year(Machine("ToyCar", "id_01", folder), "dcase2020") == 2020
    assert official_year(machine, "dcase2021") == 2022
    (folder / "target_test").mkdir()
    assert official_year(machine, "dcase2021") == 2021
    with pytest.raises(DataError, match="layout='dcase2019'"):
        official_year(machine, "dcase2019")
