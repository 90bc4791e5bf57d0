"""`common.data.download_mimii` against `fake_zenodo.FakeZenodo`, a local Zenodo records API (no internet)."""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import zipfile
from collections import namedtuple
from pathlib import Path

import pytest

from common.data.mimii import find_machines
from common.data.download_mimii import MARKER, download_mimii, extract_machine_zip, fetch_record, verify_md5
from common.errors import DownloadError
from fake_zenodo import FakeZenodo, make_zip

RECORD = 3384388
KEY = "-6_dB_fan.zip"


Clips = namedtuple("Clips", "root zip_bytes prefixed_zip_bytes")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Clips:
    """Synthetic fan/id_00 clips, zipped as MIMII does (entries ``fan/...``) and with a ``-6_dB_fan/`` prefix."""
    from common.data.synth import generate_dataset

    root = tmp_path_factory.mktemp("source")
    generate_dataset(root, n_normal=3, n_abnormal=1, seconds=0.5, channels=2, types=("fan",), ids=("id_00",),
                     progress=False)
    zips = []
    for arc_root in (root / "-6_dB_fan", root):
        path = tmp_path_factory.mktemp("zip") / KEY
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for wav in sorted((root / "-6_dB_fan" / "fan").rglob("*")):
                z.write(wav, wav.relative_to(arc_root).as_posix())
        zips.append(path.read_bytes())
    return Clips(root, *zips)


@pytest.fixture
def server():
    with FakeZenodo() as fake:
        fake.add_entry(RECORD, {"key": "README.txt", "size": 3, "checksum": None, "links": {}})  # tolerated, unused
        yield fake


def _download(server: FakeZenodo, root: Path, **kwargs) -> list[Path]:
    return download_mimii(root, snr=-6, types=("fan",), record_id=RECORD, base_url=server.base_url,
                          progress=False, **kwargs)


def _assert_same_wavs(root: Path, clips: Clips) -> None:
    src = sorted(p.relative_to(clips.root) for p in clips.root.rglob("*.wav"))
    got = sorted(p.relative_to(root) for p in root.rglob("*.wav"))
    assert got == src and len(src) == 4
    for rel in src:
        assert (root / rel).read_bytes() == (clips.root / rel).read_bytes()


@pytest.mark.parametrize("prefixed", [False, True], ids=["fan/", "-6_dB_fan/fan/"])
def test_download_extracts_the_loader_layout(server, clips, tmp_path, prefixed):
    server.add(RECORD, KEY, clips.prefixed_zip_bytes if prefixed else clips.zip_bytes)
    root = tmp_path / "Sample_data"
    assert _download(server, root) == [root / "-6_dB_fan"]
    machines = find_machines(root, snr=-6)
    assert [(m.type, m.id) for m in machines] == [("fan", "id_00")]
    _assert_same_wavs(root, clips)
    marker = json.loads((root / "-6_dB_fan" / MARKER).read_text())
    assert marker["key"] == KEY and marker["checksum"] == f"md5:{server.listed_md5(RECORD, KEY)}"
    assert sorted(p.name for p in root.iterdir()) == ["-6_dB_fan"]  # zip deleted, no .partial / .downloads


def test_keep_zip_keeps_the_verified_zip(server, clips, tmp_path):
    server.add(RECORD, KEY, clips.zip_bytes)
    _download(server, tmp_path, keep_zip=True)
    assert (tmp_path / ".downloads" / KEY).read_bytes() == clips.zip_bytes


def test_interrupted_download_resumes_with_range(server, clips, tmp_path):
    server.add(RECORD, KEY, clips.zip_bytes)
    server.cut_after = cut = len(clips.zip_bytes) // 3
    with pytest.raises(DownloadError, match=r"stopped after \d+ of \d+ bytes.*run the same command again"):
        _download(server, tmp_path)
    part = tmp_path / ".downloads" / f"{KEY}.part"
    assert part.stat().st_size == cut
    assert not (tmp_path / "-6_dB_fan").exists()

    _download(server, tmp_path)
    assert server.file_requests()[-1][1] == f"bytes={cut}-" and cut > 0
    _assert_same_wavs(tmp_path, clips)
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(server, clips, tmp_path):
    server.add(RECORD, KEY, clips.zip_bytes)
    server.ignore_range = True
    part = tmp_path / ".downloads" / f"{KEY}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"x" * 1000)  # not the file's first bytes: appending would corrupt it
    _download(server, tmp_path)
    assert server.file_requests()[-1][1] == "bytes=1000-"
    _assert_same_wavs(tmp_path, clips)


def test_corrupted_file_is_moved_aside(server, clips, tmp_path):
    corrupt = bytearray(clips.zip_bytes)
    corrupt[len(corrupt) // 2] ^= 0xFF
    server.add(RECORD, KEY, clips.zip_bytes, served=bytes(corrupt))
    good, bad_md5 = hashlib.md5(clips.zip_bytes).hexdigest(), hashlib.md5(corrupt).hexdigest()
    with pytest.raises(DownloadError, match=rf"expected md5:{good}, got md5:{bad_md5}.*\.bad"):
        _download(server, tmp_path)
    assert (tmp_path / ".downloads" / f"{KEY}.bad").read_bytes() == bytes(corrupt)
    assert not (tmp_path / ".downloads" / KEY).exists()
    assert not (tmp_path / "-6_dB_fan").exists()
    assert not list(tmp_path.glob(".*.partial"))


def test_corrupt_zip_with_matching_checksum_leaves_no_folder(server, clips, tmp_path):
    corrupt = bytearray(clips.zip_bytes)
    for i in range(len(corrupt) // 4, len(corrupt) // 2, 997):  # damage member data, keep the directory
        corrupt[i] ^= 0xFF
    server.add(RECORD, KEY, bytes(corrupt))  # the record lists the corrupt bytes' MD5, so only the zip can tell
    with pytest.raises(DownloadError, match="is corrupt"):
        _download(server, tmp_path)
    assert not (tmp_path / "-6_dB_fan").exists()
    assert not list(tmp_path.glob(".*.partial"))


def test_unexpected_contents_are_refused(server, tmp_path):
    server.add(RECORD, KEY, make_zip(tmp_path, {"recordings/a.wav": b"RIFF", "notes.txt": b"hi"}))
    with pytest.raises(DownloadError, match=r"unexpected contents.*recordings/a\.wav"):
        _download(server, tmp_path / "root")
    assert not (tmp_path / "root" / "-6_dB_fan").exists()
    assert not list((tmp_path / "root").glob(".*.partial"))


@pytest.mark.parametrize("name", ["fan/../../evil.wav", "/tmp/evil.wav", "fan\\..\\..\\evil.wav"])
def test_zip_slip_is_refused(tmp_path, name):
    zip_path = tmp_path / KEY
    zip_path.write_bytes(make_zip(tmp_path, {"fan/id_00/normal/00000000.wav": b"RIFF", name: b"evil"}))
    with pytest.raises(DownloadError, match="outside its folder"):
        extract_machine_zip(zip_path, tmp_path / "root", snr=-6, machine_type="fan")
    assert not (tmp_path / "root" / "-6_dB_fan").exists()
    assert not list(tmp_path.rglob("evil.wav"))


def test_complete_machine_is_skipped(server, clips, tmp_path):
    server.add(RECORD, KEY, clips.zip_bytes)
    _download(server, tmp_path)
    n_requests = len(server.requests)
    assert _download(server, tmp_path) == [tmp_path / "-6_dB_fan"]
    assert server.requests[n_requests:] == []  # neither metadata nor file: the marker is enough
    assert len(server.file_requests()) == 1


def test_foreign_folder_is_not_overwritten(server, clips, tmp_path):
    server.add(RECORD, KEY, clips.zip_bytes)
    (tmp_path / "-6_dB_fan" / "fan").mkdir(parents=True)
    with pytest.raises(DownloadError, match="not completed by"):
        _download(server, tmp_path)
    assert server.requests == []


def test_network_error_names_the_url(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again on leaving: nothing listens there
    with pytest.raises(DownloadError, match=rf"http://127\.0\.0\.1:{port}/api/records/{RECORD}.*again"):
        download_mimii(tmp_path, types=("fan",), base_url=f"http://127.0.0.1:{port}", progress=False, timeout=5)


def test_http_errors(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404.*--record"):
        fetch_record(1, base_url=server.base_url)
    server.add(RECORD, "-6_dB_pump.zip", b"x")
    with pytest.raises(DownloadError, match=r"no -6_dB_fan\.zip.*-6_dB_pump\.zip"):
        _download(server, tmp_path)


def test_metadata_is_parsed_tolerantly(server, clips):
    server.add(RECORD, KEY, clips.zip_bytes)
    files = {f.key: f for f in fetch_record(RECORD, base_url=server.base_url + "/")}
    assert files[KEY].size == len(clips.zip_bytes)
    assert files[KEY].checksum == f"md5:{hashlib.md5(clips.zip_bytes).hexdigest()}"
    assert files["README.txt"].checksum is None
    assert files["README.txt"].url == f"{server.base_url}/records/{RECORD}/files/README.txt?download=1"


def test_verify_md5(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    verify_md5(path, "md5:900150983cd24fb0d6963f7d28e17f72")
    verify_md5(path, "900150983CD24FB0D6963F7D28E17F72")
    with pytest.raises(DownloadError, match="expected md5:0{32}, got md5:9001"):
        verify_md5(path, "md5:" + "0" * 32)
    with pytest.raises(DownloadError, match="not an MD5"):
        verify_md5(path, "sha256:abc")


def test_disk_space_is_checked_before_downloading(server, clips, tmp_path, monkeypatch):
    server.add(RECORD, KEY, clips.zip_bytes)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(DownloadError, match="not enough disk space"):
        _download(server, tmp_path)
    assert server.file_requests() == []
    assert not (tmp_path / ".downloads").exists() or not any((tmp_path / ".downloads").iterdir())


def test_cli_download(server, clips, tmp_path, capsys):
    from common.__main__ import main

    server.add(RECORD, KEY, clips.zip_bytes)
    argv = ["download", "--snr", "-6", "--types", "fan", "--root", str(tmp_path), "--record", str(RECORD),
            "--base-url", server.base_url, "--no-progress"]
    assert main(argv) == 0
    assert "-6_dB_fan" in capsys.readouterr().out
    _assert_same_wavs(tmp_path, clips)
    server.records.clear()
    assert main(argv[:-3] + ["--base-url", f"{server.base_url}/nothing", "--no-progress"]) == 0  # skipped


def test_check_data_accepts_the_result(server, clips, tmp_path):
    from common.data.check import check_data

    server.add(RECORD, KEY, clips.zip_bytes)
    _download(server, tmp_path)
    table, problems = check_data(tmp_path, snr=-6)
    assert problems.empty, problems
    assert table[["machine", "normal", "abnormal", "problems"]].values.tolist() == [["fan/id_00", 3, 1, 0]]
