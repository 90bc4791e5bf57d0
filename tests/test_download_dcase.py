"""`common.download_dcase` against a local HTTP server on 127.0.0.1 that mimics Zenodo's records API (no internet)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from common.audio import read_channel
from common.dcase_layout import detect_layout, find_dcase_machines
from common.download import MARKER
from common.download_dcase import DEV_SETS, dev_set, dev_types, download_dcase, extract_dcase_zip
from common.errors import DownloadError
from conftest import run_main, write_wav

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


class FakeZenodo:
    """Serves ``/api/records/<id>`` and its files for several records, with Range, cut transfers and bad bytes."""

    def __init__(self) -> None:
        self.records: dict[int, dict[str, tuple[bytes, bytes]]] = {}  # record -> key -> (listed, served)
        self.requests: list[tuple[str, str | None]] = []
        self.cut_after: int | None = None  # close the connection after this many body bytes (once)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                m = re.fullmatch(r"/api/records/(\d+)", self.path)
                if m and int(m[1]) in server.records:
                    return self._send(200, json.dumps(server.metadata(int(m[1]))).encode())
                m = re.fullmatch(r"/files/(\d+)/(.+)", self.path)
                if not m or m[2] not in server.records.get(int(m[1]), {}):
                    return self._send(404, b"not found")
                data = server.records[int(m[1])][m[2]][1]
                rng = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                start = int(rng[1]) if rng else 0
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_after is not None:
                    body, server.cut_after = body[: server.cut_after], None
                    self.close_connection = True
                self.wfile.write(body)

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def add(self, record: int, key: str, data: bytes, *, served: bytes | None = None) -> None:
        self.records.setdefault(record, {})[key] = (data, data if served is None else served)

    def metadata(self, record: int) -> dict:
        files = [{"key": key, "size": len(listed), "checksum": f"md5:{hashlib.md5(listed).hexdigest()}",
                  "links": {"self": f"{self.base_url}/files/{record}/{key}"}}
                 for key, (listed, _) in self.records[record].items()]
        return {"id": record, "files": files}

    def file_requests(self) -> list[tuple[str, str | None]]:
        return [r for r in self.requests if r[0].startswith("/files/")]


@pytest.fixture
def server():
    fake = FakeZenodo()
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


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


def _zip(tmp_path: Path, entries: dict[str, bytes]) -> bytes:
    path = tmp_path / "made.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path.read_bytes()


def _type_zip(tmp_path: Path, clips: dict[str, bytes], year: int, machine_type: str, *, prefix: str = "") -> bytes:
    """The development zip of one type as the record serves it: entries ``{prefix}{type}/...``."""
    return _zip(tmp_path, {f"{prefix}{machine_type}/{e}": clips[e.rpartition("/")[2]] for e in _year_entries(year)})


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
    assert marker["checksum"] == f"md5:{hashlib.md5(server.records[record][key][0]).hexdigest()}"
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
    assert sorted(r[0] for r in server.file_requests()) == sorted(
        f"/files/3678171/dev_data_{t}.zip" for t in ("ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve"))


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
    assert server.file_requests()[-1] == ("/files/15097779/dev_fan.zip", f"bytes={cut}-")
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
    server.add(DEV_SETS[year].record, key, _zip(tmp_path, {"fan/id_00/normal/00000000.wav": b"RIFF"}))
    with pytest.raises(DownloadError, match=rf"unexpected contents for the DCASE {year} layout: {missing}"
                                            r".*fan/id_00/normal"):
        _download(server, tmp_path / "root", year)
    assert not (tmp_path / "root" / "fan").exists() and not list((tmp_path / "root").glob(".*.partial"))


def test_test_clips_must_lie_in_the_years_test_folders(tmp_path):
    zip_path = tmp_path / "dev_data_fan.zip"  # 2021 keeps test clips in source_test/ and target_test/
    zip_path.write_bytes(_zip(tmp_path, {f"fan/train/{SECTION_TRAIN[0]}": b"a", f"fan/test/{SECTION_TEST[0]}": b"b"}))
    with pytest.raises(DownloadError, match=r"no fan/source_test\|target_test/"):
        extract_dcase_zip(zip_path, tmp_path / "root", year=2021, machine_type="fan")
    assert not (tmp_path / "root" / "fan").exists()


def test_files_outside_the_type_folder_are_refused(tmp_path):
    zip_path = tmp_path / "dev_fan.zip"
    zip_path.write_bytes(_zip(tmp_path, {f"fan/train/{SECTION_TRAIN[0]}": b"x", "README.txt": b"hi"}))
    with pytest.raises(DownloadError, match=r"expected every file under fan/.*'README\.txt'"):
        extract_dcase_zip(zip_path, tmp_path / "root", year=2023, machine_type="fan")


def test_zip_slip_is_refused(tmp_path):
    zip_path = tmp_path / "dev_fan.zip"
    zip_path.write_bytes(_zip(tmp_path, {f"fan/train/{SECTION_TRAIN[0]}": b"a", "fan/../../evil.wav": b"x"}))
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
