"""The synthetic generator in the DCASE Task 2 layouts: exact folders, names and counts per year (2021's own
``source_test/`` and ``target_test/``), attribute CSVs, WAV format, determinism, the target domain's speed shift,
refusing to overwrite or to mix sets, argument errors, and the layout reader on what it writes."""

import csv
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import butter, sosfiltfilt, welch

from common.errors import DataError
from common.data.synth import FAN_PARAMS, PUMP_PARAMS, SLIDER_PARAMS, VALVE_PARAMS, generate_dcase_dataset
from common.data.synth.dcase import at_speed, clip_folder, clip_name

SR = 16000
TINY = dict(types=("pump",), sections=(0,), n_source=2, n_target=1, n_test=1, seconds=0.1, seed=1, progress=False)


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def set2020(tmp_path_factory) -> tuple[Path, list[Path]]:
    """DCASE 2020 layout: fan and valve, units 0 and 2 (id_00, id_04), 3 training and 2 + 2 test clips of 2 s."""
    root = tmp_path_factory.mktemp("dcase2020")
    return root, generate_dcase_dataset(root, year=2020, types=("fan", "valve"), sections=(0, 2), n_source=3,
                                        n_test=2, seconds=2.0, seed=0, progress=False)


@pytest.fixture(scope="module")
def set2021(tmp_path_factory) -> tuple[Path, list[Path]]:
    """DCASE 2021 layout: the arguments of `set2022` (fan, sections 00 and 01, 3 + 2 training, 1 test clip each)."""
    root = tmp_path_factory.mktemp("dcase2021")
    return root, generate_dcase_dataset(root, year=2021, types=("fan",), sections=(0, 1), n_source=3, n_target=2,
                                        n_test=1, seconds=2.0, seed=0, progress=False)


@pytest.fixture(scope="module")
def set2022(tmp_path_factory) -> tuple[Path, list[Path]]:
    """DCASE 2022 layout: fan, sections 00 and 01, 3 source + 2 target training clips, 1 test clip per domain and label."""
    root = tmp_path_factory.mktemp("dcase2022")
    return root, generate_dcase_dataset(root, year=2022, types=("fan",), sections=(0, 1), n_source=3, n_target=2,
                                        n_test=1, seconds=2.0, seed=0, progress=False)


# --- names and counts -----------------------------------------------------------------------------


def test_2020_layout_names_ids_and_counts(set2020):
    root, folders = set2020
    assert folders == [root / "fan", root / "valve"]
    expected = {
        f"{machine_type}/{name}"
        for machine_type in ("fan", "valve")
        for machine_id in ("id_00", "id_04")
        for name in [f"train/normal_{machine_id}_{i:08d}.wav" for i in range(3)]
        + [f"test/{label}_{machine_id}_{i:08d}.wav" for label in ("normal", "anomaly") for i in range(2)]
    }
    files = set(_files(root))
    assert files == expected  # no attribute CSV in 2020, no temp files, nothing else
    assert {"fan/train/normal_id_04_00000002.wav", "valve/test/anomaly_id_00_00000001.wav"} <= files
    assert len(files) == 2 * 2 * (3 + 2 + 2)


def test_2021_layout_test_clips_by_domain_without_attributes_and_no_csv(tmp_path):
    assert generate_dcase_dataset(tmp_path, year=2021, **TINY) == [tmp_path / "pump"]
    assert set(_files(tmp_path)) == {  # as the real 2021 development set: no attribute CSV, no test/ folder
        "pump/train/section_00_source_train_normal_0000_spd_100.wav",
        "pump/train/section_00_source_train_normal_0001_spd_100.wav",
        "pump/train/section_00_target_train_normal_0000_spd_125.wav",
        "pump/source_test/section_00_source_test_normal_0000.wav",
        "pump/source_test/section_00_source_test_anomaly_0000.wav",
        "pump/target_test/section_00_target_test_normal_0000.wav",
        "pump/target_test/section_00_target_test_anomaly_0000.wav",
    }
    assert sorted(p.name for p in (tmp_path / "pump").iterdir()) == ["source_test", "target_test", "train"]


@pytest.mark.parametrize("year", [2022, 2023, 2024, 2025])
def test_2022_to_2025_layout_names_and_counts(year, tmp_path):
    assert generate_dcase_dataset(tmp_path, year=year, **TINY) == [tmp_path / "pump"]
    assert set(_files(tmp_path)) == {
        "pump/attributes_00.csv",
        "pump/train/section_00_source_train_normal_0000_spd_100.wav",
        "pump/train/section_00_source_train_normal_0001_spd_100.wav",
        "pump/train/section_00_target_train_normal_0000_spd_125.wav",
        "pump/test/section_00_source_test_normal_0000_spd_100.wav",
        "pump/test/section_00_source_test_anomaly_0000_spd_100.wav",
        "pump/test/section_00_target_test_normal_0000_spd_125.wav",
        "pump/test/section_00_target_test_anomaly_0000_spd_125.wav",
    }


def test_sections_share_the_type_folders_and_each_has_its_counts(set2022):
    root, folders = set2022
    assert folders == [root / "fan"]
    names = set(_files(root))
    for section in ("section_00", "section_01"):
        ours = [n for n in names if n.split("/")[-1].startswith(section)]
        count = lambda part: sum(part in n for n in ours)  # noqa: E731
        assert count("_source_train_normal_") == 3 and count("_target_train_normal_") == 2
        for part in ("_source_test_normal_", "_source_test_anomaly_", "_target_test_normal_", "_target_test_anomaly_"):
            assert count(part) == 1, (section, part)
        assert all(n.startswith(("fan/train/", "fan/test/")) for n in ours)
    assert {"fan/attributes_00.csv", "fan/attributes_01.csv"} <= names
    assert len(names) == 2 * (3 + 2 + 4) + 2


def test_clip_name_known_values():
    assert clip_name(2020, unit=3, domain="source", split="test", label="abnormal", index=12) == \
        "anomaly_id_06_00000012.wav"
    assert clip_name(2024, unit=0, domain="target", split="test", label="abnormal", index=3) == \
        "section_00_target_test_anomaly_0003_spd_125.wav"
    assert clip_name(2021, unit=2, domain="source", split="train", label="normal", index=989) == \
        "section_02_source_train_normal_0989_spd_100.wav"
    assert clip_name(2021, unit=1, domain="target", split="test", label="abnormal", index=7) == \
        "section_01_target_test_anomaly_0007.wav"
    assert clip_name(2022, unit=1, domain="target", split="test", label="abnormal", index=7) == \
        "section_01_target_test_anomaly_0007_spd_125.wav"


@pytest.mark.parametrize("year, domain, split, folder", [
    (2020, "source", "train", "train"), (2020, "source", "test", "test"),
    (2021, "target", "train", "train"), (2021, "source", "test", "source_test"),
    (2021, "target", "test", "target_test"),
    (2022, "target", "test", "test"), (2025, "source", "test", "test"),
])
def test_clip_folder_known_values(year, domain, split, folder):
    assert clip_folder(year, domain=domain, split=split) == folder


# --- attribute files and WAV format ---------------------------------------------------------------


def test_attribute_csvs_list_every_clip_of_their_section_with_its_attributes(set2022):
    root, _ = set2022
    for section in ("00", "01"):
        with open(root / "fan" / f"attributes_{section}.csv", newline="") as f:
            reader = csv.DictReader(f)
            assert reader.fieldnames == ["file_name", "d1p", "d1v"]
            rows = list(reader)
        wavs = sorted(p.relative_to(root).as_posix() for p in (root / "fan").rglob(f"section_{section}_*.wav"))
        assert [row["file_name"] for row in rows] == wavs  # every clip of the section, once, sorted, no other
        for row in rows:
            value = "125" if "_target_" in row["file_name"] else "100"
            assert (row["d1p"], row["d1v"]) == ("spd", value), row
            assert row["file_name"].endswith(f"_{row['d1p']}_{row['d1v']}.wav")  # the name carries the same


def test_wavs_are_16_khz_16_bit_mono(set2020, set2021, set2022):
    for root, _ in (set2020, set2021, set2022):
        wavs = list(root.rglob("*.wav"))
        assert wavs
        for path in wavs:
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.frames) == (SR, 1, 2 * SR), path
            assert (info.format, info.subtype) == ("WAV", "PCM_16"), path


def test_channels_can_be_asked_for(tmp_path):
    generate_dcase_dataset(tmp_path, year=2023, **{**TINY, "n_source": 1}, channels=2)
    assert {sf.info(p).channels for p in tmp_path.rglob("*.wav")} == {2}


# --- determinism ----------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_clips(tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        generate_dcase_dataset(tmp_path / name, year=2022, **{**TINY, "seed": seed})
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert len(a) == 8 and a == b
    assert set(a) == set(c)
    assert all(a[name] != c[name] for name in a if name.endswith(".wav"))
    assert a["pump/attributes_00.csv"] == c["pump/attributes_00.csv"]  # attributes do not depend on the seed


def test_jobs_do_not_change_the_files(tmp_path):
    generate_dcase_dataset(tmp_path / "one", year=2021, jobs=1, **TINY)
    generate_dcase_dataset(tmp_path / "two", year=2021, jobs=2, **TINY)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


def test_a_2020_clip_is_the_source_domain_clip_of_the_later_layout(tmp_path):
    args = dict(types=("slider",), sections=(1,), n_source=2, n_test=1, seconds=0.5, seed=2, progress=False)
    generate_dcase_dataset(tmp_path / "y2020", year=2020, **args)
    generate_dcase_dataset(tmp_path / "y2022", year=2022, n_target=1, **args)
    old, new = tmp_path / "y2020" / "slider", tmp_path / "y2022" / "slider"
    pairs = [("train/normal_id_02_00000001.wav", "train/section_01_source_train_normal_0001_spd_100.wav"),
             ("test/normal_id_02_00000000.wav", "test/section_01_source_test_normal_0000_spd_100.wav"),
             ("test/anomaly_id_02_00000000.wav", "test/section_01_source_test_anomaly_0000_spd_100.wav")]
    for a, b in pairs:
        assert (old / a).read_bytes() == (new / b).read_bytes(), (a, b)
    assert (old / pairs[0][0]).read_bytes() != (old / "train/normal_id_02_00000000.wav").read_bytes()


def test_a_2021_clip_is_the_2022_clip_under_its_own_folder_and_name(set2021, set2022):
    """Same seed and arguments: every 2021 clip has the bytes of the 2022 clip of the same unit, domain, split,
    label and index; only 2022 adds the attribute CSVs."""
    old, new = _files(set2021[0]), _files(set2022[0])
    renamed = {}
    for path, data in new.items():
        if path.endswith(".csv"):
            continue
        machine_type, folder, name = path.split("/")
        if folder == "test":  # fan/test/section_00_source_test_normal_0000_spd_100.wav -> source_test/..._0000.wav
            folder, name = f"{name.split('_')[2]}_test", name.rsplit("_", 2)[0] + ".wav"
        renamed[f"{machine_type}/{folder}/{name}"] = data
    assert len(old) == 2 * (3 + 2 + 4) and old == renamed


# --- the domain shift -----------------------------------------------------------------------------


def test_target_speed_scales_the_documented_parameters():
    fan = at_speed("fan", FAN_PARAMS["id_00"], 125)
    assert fan.rot_hz == pytest.approx(23.3 * 1.25) and fan.blades == FAN_PARAMS["id_00"].blades
    slider = at_speed("slider", SLIDER_PARAMS["id_02"], 125)
    assert slider.motor_hz == pytest.approx(560.0 * 1.25) and slider.period_s == pytest.approx(1.6 / 1.25)
    valve = at_speed("valve", VALVE_PARAMS["id_06"], 125)
    assert valve.period_s == pytest.approx(0.7 / 1.25) and valve.pattern == VALVE_PARAMS["id_06"].pattern
    assert at_speed("pump", PUMP_PARAMS["id_04"], 100) == PUMP_PARAMS["id_04"]  # 100 % is the unit itself


def _detrended_log_spectrum(path: Path) -> np.ndarray:
    """Welch log spectrum (dB, 50 Hz-6 kHz) of a clip less its line over log frequency (level and tilt vary per clip)."""
    f, power = welch(sf.read(path)[0], fs=SR, nperseg=2048)
    keep = (f >= 50) & (f <= 6000)
    f, log_power = f[keep], 10 * np.log10(power[keep])
    basis = np.stack([np.ones_like(f), np.log2(f)], axis=1)
    return log_power - basis @ np.linalg.lstsq(basis, log_power, rcond=None)[0]


@pytest.mark.parametrize("machine_type", ["fan", "pump", "slider"])
def test_target_domain_spectra_differ_from_source_ones(machine_type, tmp_path):
    """Mean spectra of 4 target vs 4 source clips differ more than two halves of 8 source clips do.

    At +6 dB: at the default -6 dB the background's clip-to-clip variation hides a 25 % speed change from this
    crude statistic (measured ratio 1.1-1.5 there, 1.9-2.6 at +6 dB over seeds 0-2)."""
    generate_dcase_dataset(tmp_path, year=2023, types=(machine_type,), n_source=8, n_target=4, n_test=1,
                           seconds=2.0, seed=0, snr=6.0, progress=False)
    train = tmp_path / machine_type / "train"
    source = np.array([_detrended_log_spectrum(p) for p in sorted(train.glob("*_source_*.wav"))])
    target = np.array([_detrended_log_spectrum(p) for p in sorted(train.glob("*_target_*.wav"))])
    within = np.sqrt(np.mean((source[0::2].mean(axis=0) - source[1::2].mean(axis=0)) ** 2))
    between = np.sqrt(np.mean((source[:4].mean(axis=0) - target.mean(axis=0)) ** 2))
    assert between > 1.5 * within, (machine_type, between, within)


def _click_period_s(path: Path) -> float:
    """The strongest repetition lag (0.3-1.6 s) of a clip's 2-5 kHz envelope: a valve's open/close cycle."""
    x = sosfiltfilt(butter(4, [2000, 5000], btype="band", fs=SR, output="sos"), sf.read(path)[0])
    hop = 80
    envelope = np.sqrt(np.mean(x[: x.size // hop * hop].reshape(-1, hop) ** 2, axis=1))
    envelope -= envelope.mean()
    autocorrelation = np.correlate(envelope, envelope, "full")[envelope.size - 1 :]
    low, high = int(0.3 * SR / hop), int(1.6 * SR / hop)
    return (low + int(np.argmax(autocorrelation[low:high]))) * hop / SR


def test_target_domain_valve_cycles_faster(tmp_path):
    """At the default -6 dB the valve's cycle is measured in every clip: 0.9 s at 100 %, 0.72 s at 125 % speed."""
    generate_dcase_dataset(tmp_path, year=2023, types=("valve",), n_source=4, n_target=4, n_test=1, seconds=4.0,
                           seed=0, progress=False)
    train = tmp_path / "valve" / "train"
    assert VALVE_PARAMS["id_00"].period_s == 0.9
    for pattern, period in (("*_source_*.wav", 0.9), ("*_target_*.wav", 0.9 / 1.25)):
        measured = [_click_period_s(p) for p in sorted(train.glob(pattern))]
        assert len(measured) == 4 and np.allclose(measured, period, rtol=0.04), (pattern, measured)


# --- refusing to overwrite, and argument errors ---------------------------------------------------


@pytest.mark.parametrize("year, files", [(2021, 7), (2022, 8)])  # 2022 also writes an attribute CSV
def test_rewriting_the_same_set_needs_overwrite_and_mixing_sets_is_refused(year, files, tmp_path):
    generate_dcase_dataset(tmp_path, year=year, **TINY)
    before = _files(tmp_path)
    with pytest.raises(DataError, match=f"already holds {files} of the clips"):
        generate_dcase_dataset(tmp_path, year=year, **TINY)
    generate_dcase_dataset(tmp_path, year=year, overwrite=True, **TINY)
    assert _files(tmp_path) == before
    with pytest.raises(DataError, match=r"train already holds 1 clip\(s\) this run would not rewrite"):
        generate_dcase_dataset(tmp_path, year=year, overwrite=True, **{**TINY, "n_source": 1})
    assert _files(tmp_path) == before


def test_2021_test_folders_are_checked_for_foreign_clips(tmp_path):
    generate_dcase_dataset(tmp_path, year=2021, **TINY)
    before = _files(tmp_path)
    for folder in ("source_test", "target_test"):
        foreign = tmp_path / "pump" / folder / f"section_00_{folder[:6]}_test_normal_0001.wav"
        foreign.write_bytes(before[f"pump/{folder}/section_00_{folder[:6]}_test_normal_0000.wav"])
        with pytest.raises(DataError, match=rf"{folder} already holds 1 clip\(s\) this run would not rewrite"):
            generate_dcase_dataset(tmp_path, year=2021, overwrite=True, **TINY)
        foreign.unlink()
    assert _files(tmp_path) == before


@pytest.mark.parametrize("first, second, folder, clips", [(2021, 2022, "source_test", 2), (2022, 2021, "test", 4)])
def test_a_2021_set_and_a_2022_set_are_not_mixed_in_one_root(first, second, folder, clips, tmp_path):
    """Their training clips share names; their test clips would be read twice, from test/ and source_test/."""
    generate_dcase_dataset(tmp_path, year=first, **TINY)
    before = _files(tmp_path)
    with pytest.raises(DataError, match=rf"pump/{folder} already holds {clips} clip\(s\) this run would not rewrite"):
        generate_dcase_dataset(tmp_path, year=second, overwrite=True, **TINY)
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"year": 2019}, "year"),
        ({"year": 2026}, "year"),
        ({"year": "2022"}, "year"),
        ({"year": True}, "year"),
        ({"types": ("ToyCar",)}, "types"),
        ({"types": ()}, "types"),
        ({"sections": (4,)}, "sections"),
        ({"sections": ()}, "sections"),
        ({"sections": ("00",)}, "sections"),
        ({"year": 2023, "sections": (0, 1)}, "sections"),
        ({"year": 2025, "sections": (1,)}, "sections"),
        ({"n_source": 0}, "n_source"),
        ({"n_source": 10001}, "n_source"),  # numbered 0000-9999 in names
        ({"n_target": 0}, "n_target"),
        ({"year": 2020, "n_target": 3}, "n_target"),
        ({"n_test": 0}, "n_test"),
        ({"n_test": 1.5}, "n_test"),
        ({"seconds": 0}, "seconds"),
        ({"seconds": 0.001}, "seconds"),
        ({"channels": 0}, "channels"),
        ({"seed": -1}, "seed"),
        ({"snr": float("nan")}, "snr"),
        ({"jobs": 0}, "jobs"),
    ],
)
def test_bad_arguments_are_refused_before_writing(kwargs, name, tmp_path):
    args = {**TINY, "year": 2022, **kwargs}
    with pytest.raises(DataError, match=rf"^{name}="):
        generate_dcase_dataset(tmp_path / "root", **args)
    assert not (tmp_path / "root").exists()


def test_root_must_be_a_path():
    with pytest.raises(DataError, match="^root="):
        generate_dcase_dataset(None, year=2022, **TINY)


def test_2020_defaults_to_no_target_domain(tmp_path):
    generate_dcase_dataset(tmp_path, year=2020, **{**TINY, "n_target": None})
    assert not any("target" in name for name in _files(tmp_path))


# --- read back by the DCASE layout reader ---------------------------------------------------------


def test_the_layout_reader_finds_the_machines_splits_domains_and_attributes(set2020, set2022):
    from common.data.dcase import find_dcase_machines, split_dcase_machine
    from common.data.layouts import detect_layout

    root, _ = set2020
    assert detect_layout(root) == "dcase2020"
    machines = find_dcase_machines(root)
    assert [(m.type, m.id) for m in machines] == [("fan", "id_00"), ("fan", "id_04"), ("valve", "id_00"),
                                                  ("valve", "id_04")]
    split = split_dcase_machine(machines[1])
    assert len(split.train) == 3 and sorted(split.eval_labels) == [0, 0, 1, 1]

    root, _ = set2022
    assert detect_layout(root) == "dcase2021"  # the reader's name for the 2021-2025 scheme
    machines = find_dcase_machines(root)
    assert [(m.type, m.id) for m in machines] == [("fan", "section_00"), ("fan", "section_01")]
    split = split_dcase_machine(machines[1])
    assert (len(split.source_train), len(split.target_train)) == (3, 2)
    assert sorted(zip(split.eval_domains, split.eval_labels)) == [("source", 0), ("source", 1), ("target", 0),
                                                                  ("target", 1)]
    assert {c.attributes for c in split.train_clips} == {(("spd", "100"),), (("spd", "125"),)}


def test_the_layout_reader_reads_2021_test_clips_from_their_domain_folders(set2021, set2022):
    from common.data.dcase import find_dcase_machines, split_dcase_machine
    from common.data.layouts import detect_layout, official_year

    root, _ = set2021
    assert detect_layout(root) == "dcase2021"
    machines = find_dcase_machines(root)
    assert [(m.type, m.id) for m in machines] == [("fan", "section_00"), ("fan", "section_01")]
    for machine in machines:
        assert official_year(machine, "dcase2021") == 2021
        split = split_dcase_machine(machine)
        assert (len(split.source_train), len(split.target_train)) == (3, 2)
        assert {c.attribute_text for c in split.train_clips} == {"spd_100", "spd_125"}
        assert sorted(zip(split.eval_domains, split.eval_labels)) == [("source", 0), ("source", 1), ("target", 0),
                                                                      ("target", 1)]
        for clip in split.eval_clips:
            assert clip.path.parent == root / "fan" / f"{clip.domain}_test", clip.path
            assert clip.path.name.startswith(f"{machine.id}_{clip.domain}_test_")
            assert (clip.attribute_text, clip.attributes) == ("", ())
    assert [official_year(m, "dcase2021") for m in find_dcase_machines(set2022[0])] == [2022, 2022]
