"""check-data on DCASE Task 2 development roots (issue 18): 2020, 2021 and 2023 layouts, bad clips, hidden files.

Real synthetic roots (`common.data.synth.generate_dcase_dataset`, 1 s clips) scanned by `common.data.check.check_data` and
by ``python -m common check-data`` in-process (`conftest.run_main`).
"""

import re
from pathlib import Path

import pytest

from common.data.check import TABLE_COLUMNS, check_data, ignored_in_root, resolve_layout
from common.errors import DataError
from common.data.synth import generate_dcase_dataset
from conftest import run_main

N_SOURCE, N_TARGET, N_TEST = 4, 2, 2  # per machine; N_TEST per domain and label


def _dcase_root(root: Path, year: int) -> Path:
    """fan and valve, one machine each, in `year`'s layout (2021's test clips in ``source_test/``, ``target_test/``)."""
    generate_dcase_dataset(root, year=year, types=("fan", "valve"), n_source=N_SOURCE,
                           n_target=None if year == 2020 else N_TARGET, n_test=N_TEST, seconds=1.0, progress=False)
    return root


EXPECTED = {  # year -> machine names, normal clips, abnormal clips, (train_source, train_target)
    2020: (["fan/id_00", "valve/id_00"], N_SOURCE + N_TEST, N_TEST, ("-", "-")),
    2021: (["fan/section_00", "valve/section_00"], N_SOURCE + N_TARGET + 2 * N_TEST, 2 * N_TEST, (N_SOURCE, N_TARGET)),
    2023: (["fan/section_00", "valve/section_00"], N_SOURCE + N_TARGET + 2 * N_TEST, 2 * N_TEST, (N_SOURCE, N_TARGET)),
}


@pytest.mark.parametrize("year", sorted(EXPECTED))
def test_check_data_reads_each_dcase_layout(tmp_path, year):
    root = _dcase_root(tmp_path / f"dcase{year}", year)
    assert resolve_layout(root) == ("dcase2020" if year == 2020 else "dcase2021")
    names, normal, abnormal, (source, target) = EXPECTED[year]
    table, problems = check_data(root, snr=6)  # snr is a MIMII setting: ignored here
    assert problems.empty, problems
    assert list(table.columns) == TABLE_COLUMNS
    assert table["machine"].tolist() == names
    assert (table["normal"] == normal).all() and (table["abnormal"] == abnormal).all()
    assert (table["train_source"] == source).all() and (table["train_target"] == target).all()
    assert (table["min_s"] == 1.0).all() and (table["max_s"] == 1.0).all()
    assert (table["rates"] == "16000").all() and (table["channels"] == "1").all() and (table["problems"] == 0).all()
    code, text = run_main(["check-data", str(root), "--no-progress"])
    assert code == 0, text
    assert f"no problems in 2 machine(s) under {root}" in text
    assert all(re.search(rf"^\s*{re.escape(name)}\s+{normal}\s+{abnormal}\s", text, re.M) for name in names), text


def test_a_broken_dcase_clip_is_a_problem_naming_the_file_and_exit_1(tmp_path):
    root = _dcase_root(tmp_path / "dcase2023", 2023)
    broken = root / "fan" / "train" / "section_00_target_train_normal_0001_spd_125.wav"
    broken.write_bytes(broken.read_bytes()[:100])
    garbage = root / "valve" / "test" / "section_00_source_test_anomaly_0000_spd_100.wav"
    garbage.write_bytes(b"not a wav file at all" * 10)
    table, problems = check_data(root)
    assert problems["path"].tolist() == [str(broken), str(garbage)]
    assert problems["machine"].tolist() == ["fan/section_00", "valve/section_00"]
    assert all(path in why for path, why in zip(problems["path"], problems["problem"]))
    assert table["problems"].tolist() == [1, 1]
    assert table["train_target"].tolist() == [N_TARGET, N_TARGET]  # counted as listed; the problem says it is bad
    code, text = run_main(["check-data", str(root), "--no-progress"])
    assert code == 1 and "2 problem(s)" in text
    assert str(broken) in text and str(garbage) in text


def test_a_dcase_machine_its_good_clips_cannot_split_is_a_problem_row(tmp_path):
    root = _dcase_root(tmp_path / "dcase2020", 2020)
    anomalies = sorted((root / "valve" / "test").glob("anomaly_*.wav"))
    for clip in anomalies:
        clip.write_bytes(b"")
    table, problems = check_data(root)
    assert problems["path"].tolist()[:-1] == [str(p) for p in anomalies]
    assert problems["path"].iloc[-1] == str(root / "valve")
    assert re.search(r"valve/id_00 has test clips of one class only \(2 bad file\(s\) skipped\)",
                     problems["problem"].iloc[-1])
    assert table.set_index("machine")["problems"].to_dict() == {"fan/id_00": 0, "valve/id_00": 3}


def test_dcase_clips_too_short_for_the_features_are_problems(tmp_path):
    root = _dcase_root(tmp_path / "dcase2023", 2023)
    table, problems = check_data(root, feature={"frames": 40, "n_fft": 1024, "hop_length": 512})
    n_clips = 2 * (N_SOURCE + N_TARGET + 4 * N_TEST)
    assert len(problems) == n_clips + 2  # every 1 s clip (32 STFT frames), then each machine left with none
    assert problems["problem"].str.contains("too short: 32 STFT frames").sum() == n_clips


def test_hidden_wavs_in_dcase_split_folders_are_reported_as_ignored(tmp_path):
    root = _dcase_root(tmp_path / "dcase2021", 2021)
    fork = root / "fan" / "target_test" / "._section_00_target_test_normal_0000.wav"
    stray = root / "valve" / "train" / "._x.wav"  # names no section: still reported
    for path in (fork, stray):
        path.write_bytes(b"\x00\x05\x16\x07" + bytes(60))  # a macOS AppleDouble file
    assert ignored_in_root(root) == [fork, stray]
    table, problems = check_data(root)
    assert problems.empty and (table["normal"] == EXPECTED[2021][1]).all()
    code, text = run_main(["check-data", str(root), "--no-progress"])
    assert code == 0, text
    assert "note: 2 file(s) named like clips are not clips" in text and str(fork) in text and str(stray) in text


def test_layout_argument_and_roots_no_layout_fits(tmp_path):
    root = _dcase_root(tmp_path / "dcase2023", 2023)
    with pytest.raises(DataError, match=r"fits no dcase2020 pattern: .*fan/train/section_00_source_train"):
        check_data(root, layout="dcase2020")
    with pytest.raises(DataError, match=r"layout='dcase' must be one of"):
        check_data(root, layout="dcase")
    with pytest.raises(DataError, match="holds a DCASE Task 2 data set"):
        check_data(root, layout="mimii")
    with pytest.raises(DataError, match=r"data root not found: .*missing"):
        check_data(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    code, text = run_main(["check-data", str(tmp_path / "empty"), "--no-progress"])
    assert code == 2 and "no machines at snr=-6 dB" in text, text
