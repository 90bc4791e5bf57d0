"""`common.data.download_dcase` against `fake_zenodo.FakeZenodo`, a local Zenodo records API (no internet)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from common.features.audio import read_channel
from common.data.dcase import find_dcase_machines
from common.data.download_mimii import MARKER
from common.data.download_dcase import DEV_SETS, dev_set, dev_types, download_dcase, extract_dcase_zip
from common.errors import DownloadError
from common.data.layouts import detect_layout
from conftest import run_main, write_wav
from fake_zenodo import FakeZenodo, make_zip

SECTION_TRAIN = ["section_00_source_train_normal_0000_a_1.wav", "section_00_target_train_normal_0000_a_2.wav"]
SECTION_TEST = ["section_00_source_test_normal_0000_a_1.wav", "section_00_source_test_anomaly_0000_a_1.wav",
                "section_00_target_test_normal_0000_a_2.wav", "section_00_target_test_anomaly_0000_a_2.wav"]
# Each year's zip entries under "<type>/", which is where they must land under "ROOT/<type>/".
ENTRIES = {
    "id": [f"train/normal_id_00_0000000{i}.wav" for i in (0, 1)]
    + ["test/normal_id_00_00000000.wav", "test/anomaly_id_00_00000000.wav"],
    "split_test": [f"train/{n}" for n in SECTION_TRAIN] + [f"{n.split('_')[2]}_test/{n}" for n in SECTION_TEST],
    "section": [f"train/{n}" for n in SECTION_TRAIN] + [f"test/{n}" for n in SECTION_TEST] + ["attributes_00.csv"],
}


def _year_entries(year: int) -> list[str]:
    return ENTRIES["id" if year == 2020 else "split_test" if year == 2021 else "section"]  # 2021: {source,target}_test/


@pytest.fixture
def server():
    with FakeZenodo() as fake:
        yield fake


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> dict[str, bytes]:
    """File name -> bytes, whatever folder holds it: 50 ms seeded-noise WAVs and an attributes CSV."""
    rng = np.random.default_rng(seed=440)
    folder = tmp_path_factory.mktemp("clips")
    names = {e.rpartition("/")[2] for entries in ENTRIES.values() for e in entries if e.endswith(".wav")}
    out = {n: write_wav(folder / n, 0.1 * rng.standard_normal(800).astype(np.float32)).read_bytes()
           for n in sorted(names)}
    out["attributes_00.csv"] = b"file_name,d1p,d1v\nfan/train/section_00_source_train_normal_0000_a_1.wav,a,1\n"
    return out


def _type_zip(tmp_path: Path, clips: dict[str, bytes], year: int, machine_type: str, *, prefix: str = "") -> bytes:
    """The development zip of one type as the record serves it: entries ``{prefix}{type}/...``."""
    return make_zip(tmp_path, {f"{prefix}{machine_type}/{e}": clips[e.rpartition("/")[2]] for e in _year_entries(year)})


def _serve(server: FakeZenodo, tmp_path: Path, clip_bytes: dict[str, bytes], year: int, types=("fan",), **kw) -> None:
    spec = DEV_SETS[year]
    for t in types:
        server.add(spec.record, spec.archive.format(type=t), _type_zip(tmp_path, clip_bytes, year, t, **kw))


def _download(server: FakeZenodo, root: Path, year: int, types=("fan",), **kwargs) -> list[Path]:
    return download_dcase(root, year=year, types=types, base_url=server.base_url, progress=False, **kwargs)


@pytest.mark.parametrize("year", sorted(DEV_SETS))
def test_download_lands_in_the_years_layout(server, clip_bytes, tmp_path, year):
    _serve(server, tmp_path, clip_bytes, year)
    root = tmp_path / f"dcase{year}t2"
    assert _download(server, root, year) == [root / "fan"]
    want = sorted(_year_entries(year))
    assert sorted(p.relative_to(root / "fan").as_posix() for p in (root / "fan").rglob("*") if p.is_file()
                  and p.name != MARKER) == want
    for rel in want:
        assert (root / "fan" / rel).read_bytes() == clip_bytes[rel.rpartition("/")[2]]
    y, sr = read_channel(root / "fan" / want[-1])
    assert sr == 16000 and y.shape == (800,)
    marker = json.loads((root / "fan" / MARKER).read_text())
    record, key = DEV_SETS[year].record, DEV_SETS[year].archive.format(type="fan")
    assert (marker["year"], marker["type"], marker["record"], marker["key"]) == (year, "fan", str(record), key)
    assert marker["checksum"] == f"md5:{server.listed_md5(record, key)}"
    assert sorted(p.name for p in root.iterdir()) == ["fan"]  # zip deleted, no .downloads or .partial left
    assert detect_layout(root) == DEV_SETS[year].layout  # the loader reads what was downloaded
    assert [(m.type, m.id) for m in find_dcase_machines(root)] == [("fan", "id_00" if year == 2020 else "section_00")]


def test_second_run_downloads_nothing(server, clip_bytes, tmp_path):
    _serve(server, tmp_path, clip_bytes, 2023, types=("fan", "ToyCar"))
    _download(server, tmp_path, 2023, types=("fan", "ToyCar"))
    seen = len(server.requests)
    assert _download(server, tmp_path, 2023, types=("toycar", "FAN")) == [tmp_path / "ToyCar", tmp_path / "fan"]
    assert server.requests[seen:] == []  # neither the record nor a file: the markers are enough
    assert len(server.file_requests()) == 2


def test_all_types_of_the_year_by_default(server, clip_bytes, tmp_path):
    _serve(server, tmp_path, clip_bytes, 2020, types=DEV_SETS[2020].types)
    assert _download(server, tmp_path, 2020, types=None) == [tmp_path / t for t in DEV_SETS[2020].types]
    assert sorted(r[0] for r in server.file_requests()) == sorted(f"/api/records/3678171/files/dev_data_{t}.zip/content"
                                                                  for t in ("ToyCar", "ToyConveyor", "fan", "pump",
                                                                            "slider", "valve"))


def test_zip_with_its_own_folder_is_accepted(server, clip_bytes, tmp_path):
    _serve(server, tmp_path, clip_bytes, 2024, prefix="dev_fan/")
    _download(server, tmp_path / "root", 2024)
    assert (tmp_path / "root" / "fan" / "test" / SECTION_TEST[1]).read_bytes() == clip_bytes[SECTION_TEST[1]]


def test_interrupted_download_resumes_with_range(server, clip_bytes, tmp_path):
    _serve(server, tmp_path, clip_bytes, 2025)
    data = server.records[15097779]["dev_fan.zip"][0]
    server.cut_after = cut = len(data) // 3
    with pytest.raises(DownloadError, match=r"stopped after \d+ of \d+ bytes.*run the same command again"):
        _download(server, tmp_path, 2025)
    part = tmp_path / ".downloads" / "dev_fan.zip.part"
    assert part.stat().st_size == cut and not (tmp_path / "fan").exists()
    _download(server, tmp_path, 2025)
    assert server.file_requests()[-1] == ("/api/records/15097779/files/dev_fan.zip/content", f"bytes={cut}-")
    assert (tmp_path / "fan" / "train" / SECTION_TRAIN[0]).read_bytes() == clip_bytes[SECTION_TRAIN[0]]
    assert not part.exists()


def test_bad_checksum_is_an_error_and_the_file_is_moved_aside(server, clip_bytes, tmp_path):
    good = _type_zip(tmp_path, clip_bytes, 2022, "fan")
    corrupt = bytearray(good)
    corrupt[len(corrupt) // 2] ^= 0xFF
    server.add(6355122, "dev_fan.zip", good, served=bytes(corrupt))
    want, got = hashlib.md5(good).hexdigest(), hashlib.md5(corrupt).hexdigest()
    with pytest.raises(DownloadError, match=rf"checksum mismatch.*dev_fan\.zip.*md5:{want}, got md5:{got}.*\.bad"):
        _download(server, tmp_path, 2022)
    assert (tmp_path / ".downloads" / "dev_fan.zip.bad").read_bytes() == bytes(corrupt)
    assert not (tmp_path / "fan").exists() and not list(tmp_path.glob(".*.partial"))


def test_record_without_the_zip_names_it(server, clip_bytes, tmp_path):
    _serve(server, tmp_path, clip_bytes, 2023, types=("valve",))
    with pytest.raises(DownloadError, match=r"record 7882613 .* has no dev_fan\.zip \(DCASE year=2023, "
                                            r"type='fan'\); it lists: \['dev_valve\.zip'\]"):
        _download(server, tmp_path, 2023)
    assert server.file_requests() == []


@pytest.mark.parametrize("year, types, match", [
    (2019, None, r"year=2019 has no DCASE Task 2 development set.*\[2020, 2021, 2022, 2023, 2024, 2025\]"),
    ("twenty", None, "year='twenty'"),
    (True, None, "year=True"),
    (2020, ("gearbox",), r"'gearbox' is not in the DCASE 2020 development set.*ToyConveyor"),
    (2023, ("pump",), r"'pump' is not in the DCASE 2023 development set"),
    (2023, (), "at least one machine type"),
])
def test_unknown_year_or_type_is_refused_before_the_network(server, tmp_path, year, types, match):
    with pytest.raises(DownloadError, match=match):
        download_dcase(tmp_path, year=year, types=types, base_url=server.base_url, progress=False)
    assert server.requests == []


def test_dev_types_spell_names_as_the_year_does():
    assert dev_types(2021, ["toytrain", "fan", "FAN"]) == ["ToyTrain", "fan"]
    assert dev_types("2020") == ["ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve"]
    assert dev_set(2023).record == 7882613 and dev_set("2025").archive == "dev_{type}.zip"


def test_disk_space_is_checked_before_downloading(server, clip_bytes, tmp_path, monkeypatch):
    _serve(server, tmp_path, clip_bytes, 2023)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DownloadError, match="not enough disk space for the download"):
        _download(server, tmp_path, 2023)
    assert server.file_requests() == []


@pytest.mark.parametrize("year, key, missing", [
    (2020, "dev_data_fan.zip", r"no fan/train/normal_id_XX_\*\.wav and no fan/test/\{normal,anomaly\}_id_XX"),
    (2021, "dev_data_fan.zip", r"no fan/train/section_XX.*and no fan/source_test\|target_test/section_XX"),
    (2023, "dev_fan.zip", r"no fan/train/section_XX.*and no fan/test/section_XX"),
])
def test_zip_in_another_layout_is_refused(server, tmp_path, year, key, missing):
    server.add(DEV_SETS[year].record, key, make_zip(tmp_path, {"fan/id_00/normal/00000000.wav": b"RIFF"}))
    with pytest.raises(DownloadError, match=rf"unexpected contents for the DCASE {year} layout: {missing}"
                                            r".*fan/id_00/normal"):
        _download(server, tmp_path / "root", year)
    assert not (tmp_path / "root" / "fan").exists() and not list((tmp_path / "root").glob(".*.partial"))


def test_test_clips_must_lie_in_the_years_test_folders(tmp_path):
    zip_path = tmp_path / "dev_data_fan.zip"  # 2021 keeps test clips in source_test/ and target_test/
    entries = {f"fan/train/{SECTION_TRAIN[0]}": b"a", f"fan/test/{SECTION_TEST[0]}": b"b"}
    zip_path.write_bytes(make_zip(tmp_path, entries))
    with pytest.raises(DownloadError, match=r"no fan/source_test\|target_test/"):
        extract_dcase_zip(zip_path, tmp_path / "root", year=2021, machine_type="fan")
    assert not (tmp_path / "root" / "fan").exists()


def test_files_outside_the_type_folder_are_refused(tmp_path):
    zip_path = tmp_path / "dev_fan.zip"
    zip_path.write_bytes(make_zip(tmp_path, {f"fan/train/{SECTION_TRAIN[0]}": b"x", "README.txt": b"hi"}))
    with pytest.raises(DownloadError, match=r"expected every file under fan/.*'README\.txt'"):
        extract_dcase_zip(zip_path, tmp_path / "root", year=2023, machine_type="fan")


def test_zip_slip_is_refused(tmp_path):
    zip_path = tmp_path / "dev_fan.zip"
    zip_path.write_bytes(make_zip(tmp_path, {f"fan/train/{SECTION_TRAIN[0]}": b"a", "fan/../../evil.wav": b"x"}))
    with pytest.raises(DownloadError, match="outside its folder"):
        extract_dcase_zip(zip_path, tmp_path / "root", year=2022, machine_type="fan")
    assert not list(tmp_path.rglob("evil.wav"))


def test_folder_not_made_by_this_tool_is_not_overwritten(server, clip_bytes, tmp_path):
    _serve(server, tmp_path, clip_bytes, 2023)
    (tmp_path / "fan" / "train").mkdir(parents=True)
    with pytest.raises(DownloadError, match=r"not completed by `python -m common download-dcase`"):
        _download(server, tmp_path, 2023)
    assert server.requests == []


def test_folder_of_another_year_is_not_mixed_in(server, clip_bytes, tmp_path):
    _serve(server, tmp_path, clip_bytes, 2020)
    _serve(server, tmp_path, clip_bytes, 2021)
    _download(server, tmp_path, 2020)
    with pytest.raises(DownloadError, match=r"downloaded from record 3678171, not 4562016"):
        _download(server, tmp_path, 2021)


def test_cli_download_dcase(server, clip_bytes, tmp_path, monkeypatch):
    _serve(server, tmp_path, clip_bytes, 2023, types=("fan", "valve"))
    monkeypatch.chdir(tmp_path)
    argv = ["download-dcase", "--year", "2023", "--types", "fan,valve", "--base-url", server.base_url, "--no-progress"]
    code, out = run_main(argv)
    assert code == 0, out
    assert "ready  dcase2023t2_dev/fan" in out and "ready  dcase2023t2_dev/valve" in out
    assert (tmp_path / "dcase2023t2_dev" / "valve" / "test" / SECTION_TEST[3]).is_file()
    code, out = run_main(argv[:-3] + ["--base-url", f"{server.base_url}/nothing", "--no-progress"])
    assert code == 0, out  # both complete: skipped without the network
    code, out = run_main(["download-dcase", "--year", "2019", "--root", str(tmp_path / "r")])
    assert code not in (0, "escaped") and "year=2019" in out and "[2020, 2021, 2022, 2023, 2024, 2025]" in out
