"""Download the real MIMII data set from Zenodo into the layout the loader reads, resumably and verified.

MIMII (Purohit et al., 2019; Zenodo record 3384388, licence CC BY-SA 4.0) is one zip per noise level and
machine type, e.g. ``-6_dB_fan.zip`` (about 10 GB), which unpacks to ``fan/id_00/normal/00000000.wav`` ...
For each machine type asked for, :func:`download_mimii`

1. skips it when ``ROOT/-6_dB_fan/.complete.json`` says it was already downloaded, verified and extracted
   from the same record (no network needed);
2. checks the free disk space for what is left to download and extract, before downloading anything;
3. downloads ``ROOT/.downloads/-6_dB_fan.zip.part``, resuming a partial file with an HTTP Range request;
4. checks the size and MD5 against the record's metadata (Zenodo's records API lists both; a mismatching
   file is moved to ``-6_dB_fan.zip.bad`` and never used);
5. extracts into ``ROOT/.-6_dB_fan.partial`` and renames it to ``ROOT/-6_dB_fan`` only once every file
   and the completion marker are written, so a half-extracted folder never looks complete.

Steps 2-5 are :func:`download_zips` and :func:`extract_zip`, and step 1 is :func:`is_complete`, shared with
:mod:`common.data.download_dcase` (the DCASE Task 2 development sets), which differs only in names and layout.
Only the standard library talks to the network (``urllib``); nothing happens on import.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable

from tqdm.auto import tqdm

from common.errors import DownloadError
from common.data.names import MACHINE_TYPES, snr_folder

__all__ = [
    "MIMII_RECORD",
    "ZENODO_URL",
    "MARKER",
    "RemoteFile",
    "fetch_record",
    "download_file",
    "verify_md5",
    "extract_zip",
    "extract_machine_zip",
    "is_complete",
    "download_zips",
    "download_mimii",
]

MIMII_RECORD = 3384388  # Zenodo record of MIMII (all 12 zips: 3 SNRs x 4 machine types)
ZENODO_URL = "https://zenodo.org"
MARKER = ".complete.json"  # written last into an extracted machine folder, before it is renamed into place
DOWNLOADS = ".downloads"  # ROOT/.downloads holds the .part / .zip / .bad files
USER_AGENT = "mimii-transfer-download/1 (+python urllib)"
CHUNK = 1 << 20  # bytes per read: large enough for speed, small enough for a smooth progress bar
ZIP_EXPANSION = 1.1  # uncompressed / zip size assumed before the zip is there (16-bit WAV barely compresses)
_RETRY = "run the same command again to retry; a partial download resumes where it stopped"


@dataclass(frozen=True)
class RemoteFile:
    """One file of a Zenodo record, as its metadata lists it.

    Attributes
    ----------
    key : str
        File name, e.g. ``"-6_dB_fan.zip"``.
    size : int >= 0
        Size in bytes.
    checksum : str or None
        As the record gives it, e.g. ``"md5:0123..."``; None when the record lists none.
    url : str
        Download URL.
    """

    key: str
    size: int
    checksum: str | None
    url: str


def fetch_record(record_id: int | str, *, base_url: str = ZENODO_URL, timeout: float = 60.0) -> list[RemoteFile]:
    """List the files of a Zenodo record with their size, checksum and download URL.

    Reads ``{base_url}/api/records/{record_id}``. Entries are read tolerantly: the name from ``key``
    (or ``filename``), the size from ``size`` (or ``filesize``), the URL from ``links.self`` (or
    ``links.content`` / ``links.download``), else ``{base_url}/records/{record_id}/files/{key}?download=1``.

    Parameters
    ----------
    record_id : int or str
        e.g. 3384388 (MIMII).
    base_url : str
        e.g. ``"https://zenodo.org"`` or a mirror / local test server.
    timeout : float > 0
        Seconds to wait for the server.

    Returns
    -------
    files : list of RemoteFile
        In the record's order.

    Raises
    ------
    DownloadError
        Network failure, HTTP error, a response that is not a record, or a file entry without name or size.
    """
    base = _base(base_url)
    url = f"{base}/api/records/{urllib.parse.quote(str(record_id))}"
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": USER_AGENT})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read()
    except urllib.error.HTTPError as exc:
        hint = "check --record and --base-url" if exc.code == 404 else _RETRY
        raise DownloadError(f"record metadata {url}: HTTP {exc.code} {exc.reason}; {hint}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot reach {url}: {_reason(exc)}; check the network, then {_RETRY}") from exc
    try:
        meta = json.loads(body)
    except ValueError as exc:
        raise DownloadError(f"record metadata {url} is not JSON: {exc}") from exc
    entries = meta.get("files") if isinstance(meta, dict) else None
    if isinstance(entries, dict):  # some Zenodo endpoints nest the list: {"entries": [...] or {...}}
        entries = entries.get("entries")
        entries = list(entries.values()) if isinstance(entries, dict) else entries
    if not isinstance(entries, list):
        raise DownloadError(f"record metadata {url} has no 'files' list (is {record_id} a Zenodo record id?)")
    return [_remote_file(entry, url=url, base=base, record_id=record_id) for entry in entries]


def download_file(
    remote: RemoteFile,
    dest: str | os.PathLike,
    *,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download `remote` to `dest`, resuming ``dest + ".part"`` with an HTTP Range request.

    The bytes go to ``{dest}.part``, which is renamed to `dest` once it has exactly ``remote.size``
    bytes. A `dest` of that size already there is returned as is (its checksum is the caller's job:
    :func:`verify_md5`). A server that answers a Range request with the whole file (200) is fine:
    the download restarts from byte 0.

    Parameters
    ----------
    remote : RemoteFile
    dest : path
        Final file, e.g. ``ROOT/.downloads/-6_dB_fan.zip``; its folder is created.
    progress : bool
        Show a tqdm progress bar in bytes.
    timeout : float > 0
        Seconds to wait for each network read.

    Returns
    -------
    dest : pathlib.Path

    Raises
    ------
    DownloadError
        Network failure, HTTP error, or a transfer that ended early (the ``.part`` file is kept, and
        running again resumes it) or sent more than ``remote.size`` bytes (the ``.part`` is removed).
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if dest.is_file():
        if dest.stat().st_size == remote.size:
            return dest
        dest.unlink()  # a stale or foreign file of the wrong size; never trust it
    offset = part.stat().st_size if part.is_file() else 0
    if offset > remote.size:
        part.unlink()
        offset = 0
    if offset < remote.size or remote.size == 0:
        offset = _transfer(remote, part, offset=offset, progress=progress, timeout=timeout)
    if offset < remote.size:
        raise DownloadError(
            f"download of {remote.url} stopped after {offset} of {remote.size} bytes (kept in {part}); {_RETRY}"
        )
    if offset > remote.size:
        part.unlink()
        raise DownloadError(
            f"{remote.url} sent {offset} bytes but the record lists {remote.size} for {remote.key}; "
            "the partial file was removed, the record or the server may have changed"
        )
    os.replace(part, dest)
    return dest


def verify_md5(path: str | os.PathLike, expected: str) -> None:
    """Check that a file's MD5 is `expected`.

    Parameters
    ----------
    path : path
    expected : str
        ``"md5:<32 hex digits>"`` as Zenodo writes it, or the bare hex digest.

    Raises
    ------
    DownloadError
        The checksums differ (the message names both and the file), or `expected` is not an MD5.
    """
    path = Path(path)
    want = _md5_hex(expected, what=f"checksum for {path.name}")
    digest = hashlib.md5()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    got = digest.hexdigest()
    if got != want:
        raise DownloadError(f"checksum mismatch for {path}: expected md5:{want}, got md5:{got}")


def extract_machine_zip(zip_path: str | os.PathLike, root: str | os.PathLike, *, snr: float, machine_type: str,
                        marker: dict[str, Any] | None = None, progress: bool = False) -> Path:
    """Extract one MIMII zip to ``root/{snr}_dB_{type}/{type}/...``, atomically.

    The zip's files must all lie under ``{type}/`` (as MIMII's zips do) or all under
    ``{snr}_dB_{type}/{type}/``, with at least one ``{type}/{id}/normal/*.wav``. They are extracted
    into ``root/.{snr}_dB_{type}.partial``, the completion marker :data:`MARKER` is written there,
    and only then is the folder renamed to ``root/{snr}_dB_{type}``. On any failure the partial
    folder is removed, so the machine folder either is complete or does not exist.

    Parameters
    ----------
    zip_path : path
        e.g. ``-6_dB_fan.zip``.
    root : path
        Data root, e.g. ``Sample_data``; created if missing.
    snr : float
        Noise level of the zip in dB, e.g. -6.
    machine_type : str
        e.g. ``"fan"``.
    marker, progress
        As for :func:`extract_zip`.

    Returns
    -------
    folder : pathlib.Path
        ``root/{snr}_dB_{type}``.

    Raises
    ------
    DownloadError
        Not a zip, a corrupt member, an entry with an absolute path or ``..`` (zip-slip), contents
        in another layout ("unexpected contents", listing a few entries), not enough disk space,
        or the target folder already exists.
    """
    zip_path, stem = Path(zip_path), snr_folder(snr, machine_type)

    def plan(files: list[zipfile.ZipInfo]) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
        return _plan_members(files, zip_path=zip_path, stem=stem, machine_type=machine_type)

    return extract_zip(zip_path, Path(root) / stem, plan=plan, marker=marker, progress=progress)


def extract_zip(zip_path: str | os.PathLike, target: str | os.PathLike, *,
                plan: Callable[[list[zipfile.ZipInfo]], list[tuple[zipfile.ZipInfo, PurePosixPath]]],
                marker: dict[str, Any] | None = None, progress: bool = False) -> Path:
    """Extract the files of a zip that `plan` places into the folder `target`, atomically.

    Entries with an absolute path or ``..`` (zip-slip) are refused before `plan` sees the files.
    The planned files go to ``.{target.name}.partial`` beside `target`, then :data:`MARKER` is
    written there, and only then is the folder renamed to `target`; on any failure the partial
    folder is removed, so `target` either is complete or does not exist.

    Parameters
    ----------
    zip_path : path
    target : path
        Folder to create, e.g. ``root/-6_dB_fan``; its parent is created if missing.
    plan : callable
        ``plan(files) -> [(zip entry, path relative to target), ...]`` over the zip's file entries
        (folders and ``__MACOSX/`` left out); it raises DownloadError when the contents are unexpected.
    marker : dict, optional
        Extra JSON-serialisable fields for the completion marker (the record, key, size, checksum).
    progress : bool
        Show a tqdm progress bar over the files.

    Returns
    -------
    target : pathlib.Path

    Raises
    ------
    DownloadError
        Not a zip, a corrupt member, an entry outside its folder, whatever `plan` raises, not
        enough disk space, or `target` already exists.
    """
    zip_path, target = Path(zip_path), Path(target)
    partial = target.with_name(f".{target.name}.partial")
    if target.exists():
        raise DownloadError(f"{target} already exists; move it away or delete it to extract {zip_path.name} again")
    with _open_zip(zip_path) as archive:
        members = plan(_safe_files(archive, zip_path=zip_path))
        target.parent.mkdir(parents=True, exist_ok=True)
        _check_space(target.parent, sum(info.file_size for info, _ in members), what=f"extracting {zip_path.name}")
        shutil.rmtree(partial, ignore_errors=True)  # leftover of an interrupted earlier run
        try:
            _write_members(archive, members, partial, desc=f"extract {target.name}", progress=progress)
            record = {"zip": zip_path.name, "files": len(members), **(marker or {})}
            (partial / MARKER).write_text(json.dumps(record, indent=2) + "\n")
            os.rename(partial, target)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as exc:
            raise DownloadError(f"{zip_path} is corrupt ({exc}); delete it and download again") from exc
        finally:
            if partial.exists():
                shutil.rmtree(partial, ignore_errors=True)
    return target


def download_mimii(root: str | os.PathLike, *, snr: float = -6, types: Iterable[str] = MACHINE_TYPES,
                   record_id: int | str = MIMII_RECORD, base_url: str = ZENODO_URL, keep_zip: bool = False,
                   progress: bool = True, timeout: float = 60.0) -> list[Path]:
    """Download, verify and extract the MIMII zips of one noise level into `root`.

    A machine type whose folder carries a completion marker from the same record is skipped
    without touching the network. Free disk space is checked for everything left to do before
    anything is downloaded.

    Parameters
    ----------
    root : path
        Data root, e.g. ``Sample_data``; ends up holding ``{snr}_dB_{type}/{type}/id_XX/...``.
    snr : float
        -6, 0 or 6 in MIMII.
    types : iterable of str
        Machine types, e.g. ``("fan", "pump")``; each needs a ``{snr}_dB_{type}.zip`` in the record.
    record_id : int or str
        Zenodo record (MIMII: 3384388).
    base_url : str
        Zenodo or a mirror with the same API.
    keep_zip : bool
        Keep ``root/.downloads/{snr}_dB_{type}.zip`` after extracting it (default: delete it).
    progress : bool
        Show progress bars.
    timeout : float > 0
        Seconds to wait for each network read.

    Returns
    -------
    folders : list of pathlib.Path
        ``root/{snr}_dB_{type}`` for every type asked for, downloaded now or before.

    Raises
    ------
    DownloadError
        Network failure (running again resumes), a zip missing from the record, no MD5 in the record,
        a checksum mismatch (the file is moved to ``.bad``), a zip with unexpected contents, too little
        disk space, or a machine folder that exists without this tool's completion marker.

    Examples
    --------
    >>> download_mimii("Sample_data", snr=-6, types=("fan",))  # doctest: +SKIP
    [PosixPath('Sample_data/-6_dB_fan')]
    """
    root = Path(root)
    types = _check_types(types)
    stems = {t: snr_folder(snr, t) for t in types}
    pending = {t: f"{stems[t]}.zip" for t in types
               if not is_complete(root / stems[t], record_id=record_id, key=f"{stems[t]}.zip")}

    def extract(t: str, zip_path: Path, marker: dict[str, Any]) -> Path:
        return extract_machine_zip(zip_path, root, snr=snr, machine_type=t, marker=marker, progress=progress)

    if pending:
        download_zips(root, pending, extract=extract, record_id=record_id, asked=f"snr={snr:g}", base_url=base_url,
                      keep_zip=keep_zip, progress=progress, timeout=timeout)
    return [root / stems[t] for t in types]


def download_zips(root: str | os.PathLike, keys: dict[str, str], *,
                  extract: Callable[[str, Path, dict[str, Any]], Path], record_id: int | str, asked: str = "",
                  base_url: str = ZENODO_URL, keep_zip: bool = False, progress: bool = True,
                  timeout: float = 60.0) -> None:
    """Download, verify and extract the zips `keys` of one Zenodo record into `root`.

    The record's file list is read once; every zip must be listed with an MD5, and the free space
    for all of them is checked before the first byte is fetched. Each zip goes to
    ``root/.downloads/{key}`` (resuming a ``.part``), is checked against the record's MD5 (a
    mismatch is moved to ``.bad``), handed to `extract`, and deleted unless `keep_zip`.

    Parameters
    ----------
    root : path
        Data root; created if missing.
    keys : dict of str to str
        Label (a machine type) -> zip name in the record, e.g. ``{"fan": "-6_dB_fan.zip"}``.
    extract : callable
        ``extract(label, zip_path, marker) -> folder``; `marker` holds the record, key, size and checksum.
    record_id : int or str
    asked : str
        What the caller asked for, for the error naming a missing zip, e.g. ``"snr=-6"``.
    base_url, keep_zip, progress, timeout
        As for :func:`download_mimii`.

    Raises
    ------
    DownloadError
        Network failure, a zip missing from the record or without an MD5, a checksum mismatch, too
        little disk space, or whatever `extract` raises.
    """
    root = Path(root)
    files = {f.key: f for f in fetch_record(record_id, base_url=base_url, timeout=timeout)}
    remotes = {label: _remote_zip(files, key, record_id=record_id, base_url=base_url,
                                  asked=", ".join(filter(None, [asked, f"type={label!r}"])))
               for label, key in keys.items()}
    downloads = root / DOWNLOADS
    root.mkdir(parents=True, exist_ok=True)
    _check_space(root, _space_needed(remotes.values(), downloads, keep_zip=keep_zip), what="the download")

    for label, remote in remotes.items():
        zip_path = _download_verified(remote, downloads / remote.key, progress=progress, timeout=timeout)
        marker = {"record": str(record_id), "key": remote.key, "size": remote.size, "checksum": remote.checksum}
        extract(label, zip_path, marker)
        if not keep_zip:
            zip_path.unlink()
    if downloads.is_dir() and not any(downloads.iterdir()):
        downloads.rmdir()


def is_complete(folder: str | os.PathLike, *, record_id: int | str, key: str, command: str = "download") -> bool:
    """True when `folder` carries this tool's marker for `key` of the same record; raise if it holds other data.

    `command` names the CLI command that writes such folders, for the error message.
    """
    folder = Path(folder)
    if not folder.exists():
        return False
    try:
        marker = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        raise DownloadError(
            f"{folder} exists but was not completed by `python -m common {command}` (no valid {MARKER}); "
            "if it holds the data set placed by hand, use it as is, else move it away or delete it and download again"
        ) from None
    if isinstance(marker, dict) and marker.get("record") == str(record_id) and marker.get("key") == key:
        return True
    raise DownloadError(
        f"{folder} was downloaded from record {marker.get('record') if isinstance(marker, dict) else '?'}, "
        f"not {record_id}; move it away or delete it to download it again"
    )


# ---------------------------------------------------------------------------------------------- helpers


def _remote_zip(files: dict[str, RemoteFile], key: str, *, record_id: int | str, base_url: str,
                asked: str) -> RemoteFile:
    """The zip `key` of the record's `files`, refused when it is missing or has no usable MD5 checksum."""
    if key not in files:
        raise DownloadError(f"record {record_id} at {_base(base_url)} has no {key} ({asked}); "
                            f"it lists: {sorted(files)[:12]}")
    if not files[key].checksum:
        raise DownloadError(f"record {record_id} lists no checksum for {key}; refusing to use it unverified")
    _md5_hex(files[key].checksum, what=f"checksum of {key} in record {record_id}")
    return files[key]


def _download_verified(remote: RemoteFile, zip_path: Path, *, progress: bool, timeout: float) -> Path:
    """`download_file`, then its MD5 checked; a mismatching file is moved to ``.bad`` and never used."""
    zip_path = download_file(remote, zip_path, progress=progress, timeout=timeout)
    try:
        verify_md5(zip_path, remote.checksum)
    except DownloadError as exc:
        bad = zip_path.with_name(zip_path.name + ".bad")
        os.replace(zip_path, bad)
        raise DownloadError(f"{exc}; the file was moved to {bad} and not used. {_RETRY}") from exc
    return zip_path


def _open_zip(zip_path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(f"{zip_path} is not a readable zip file: {exc}") from exc


def _write_members(archive: zipfile.ZipFile, members: list, folder: Path, *, desc: str, progress: bool) -> None:
    """Write each (zip entry, relative path) of `members` under `folder` (created)."""
    folder.mkdir()
    for info, rel in tqdm(members, desc=desc, unit="file", leave=False, disable=not progress):
        out = folder.joinpath(*rel.parts)
        out.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as src, out.open("wb") as dst:
            shutil.copyfileobj(src, dst, CHUNK)


def _base(base_url: str) -> str:
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/]", base_url):
        raise DownloadError(f"base_url={base_url!r} must be an http(s) URL, e.g. {ZENODO_URL!r}")
    return base_url.rstrip("/")


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason if reason is not None else exc) or type(exc).__name__


def _remote_file(entry: Any, *, url: str, base: str, record_id: int | str) -> RemoteFile:
    if not isinstance(entry, dict):
        raise DownloadError(f"record metadata {url}: file entry {entry!r} is not an object")
    key = entry.get("key", entry.get("filename"))
    size = entry.get("size", entry.get("filesize"))
    if not isinstance(key, str) or not key or isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise DownloadError(f"record metadata {url}: file entry without a name or size: {entry!r}")
    links = entry.get("links") if isinstance(entry.get("links"), dict) else {}
    link = links.get("self") or links.get("content") or links.get("download")
    if not isinstance(link, str) or not link:
        link = f"{base}/records/{urllib.parse.quote(str(record_id))}/files/{urllib.parse.quote(key)}?download=1"
    checksum = entry.get("checksum")
    checksum = checksum if isinstance(checksum, str) and checksum else None
    return RemoteFile(key=key, size=size, checksum=checksum, url=link)


def _md5_hex(checksum: str | None, *, what: str) -> str:
    text = checksum.strip().lower() if isinstance(checksum, str) else ""
    if text.startswith("md5:"):
        text = text[4:]
    if not re.fullmatch(r"[0-9a-f]{32}", text):
        raise DownloadError(f"{what}={checksum!r} is not an MD5 ('md5:' and 32 hex digits)")
    return text


def _transfer(remote: RemoteFile, part: Path, *, offset: int, progress: bool, timeout: float) -> int:
    """Append the rest of `remote` to `part` from byte `offset`; return the bytes `part` holds after."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(remote.url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:  # our .part does not fit the file any more: start over
            part.unlink()
            return _transfer(remote, part, offset=0, progress=progress, timeout=timeout)
        raise DownloadError(f"download {remote.url}: HTTP {exc.code} {exc.reason}; {_RETRY}") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DownloadError(f"cannot reach {remote.url}: {_reason(exc)}; check the network, then {_RETRY}") from exc
    with response:
        if offset and response.status == 206:
            start = _range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise DownloadError(
                    f"{remote.url} answered a request for bytes {offset}- with "
                    f"Content-Range {response.headers.get('Content-Range')!r}; the partial file was removed, {_RETRY}"
                )
        elif offset:
            offset = 0  # the server ignored Range and sends the whole file
        with part.open("ab" if offset else "wb") as out, tqdm(
            total=remote.size, initial=offset, desc=remote.key, unit="B", unit_scale=True, unit_divisor=1024,
            leave=False, disable=not progress,
        ) as bar:
            while True:
                try:
                    block = response.read(CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    out.flush()
                    raise DownloadError(
                        f"download of {remote.url} interrupted after {offset} of {remote.size} bytes "
                        f"({_reason(exc)}; kept in {part}); {_RETRY}"
                    ) from exc
                if not block:
                    break
                out.write(block)
                offset += len(block)
                bar.update(len(block))
    return offset


def _range_start(content_range: str) -> int | None:
    m = re.match(r"^\s*bytes\s+(\d+)-\d+/(?:\d+|\*)\s*$", content_range)
    return int(m[1]) if m else None


def _safe_files(archive: zipfile.ZipFile, *, zip_path: Path) -> list[zipfile.ZipInfo]:
    """The zip's file entries (no folders, no ``__MACOSX/``); raise if any entry points outside its folder."""
    infos = [i for i in archive.infolist() if not i.filename.startswith("__MACOSX/")]
    for info in infos:
        name = info.filename
        parts = re.split(r"[/\\]", name)
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts:
            raise DownloadError(f"{zip_path} has an entry outside its folder: {name!r}; refusing to extract it")
    return [i for i in infos if not i.is_dir()]


def _plan_members(
    files: list[zipfile.ZipInfo], *, zip_path: Path, stem: str, machine_type: str
) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Each zip file with its path relative to the machine folder; raise unless the layout is MIMII's."""
    for prefix in (f"{machine_type}/", f"{stem}/{machine_type}/"):
        if files and all(i.filename.startswith(prefix) for i in files):
            strip = len(prefix) - len(machine_type) - 1
            break
    else:
        strip = None
    layout = re.compile(rf"^{re.escape(machine_type)}/[^/]+/normal/[^/]+\.wav$", re.IGNORECASE)
    rel = {i.filename: PurePosixPath(i.filename[strip:]) for i in files} if strip is not None else {}
    if strip is None or not any(layout.match(str(rel[i.filename])) for i in files):
        odd = [i.filename for i in files if strip is None or not str(rel[i.filename]).startswith(f"{machine_type}/")]
        shown = (odd or [i.filename for i in files])[:5]
        raise DownloadError(
            f"{zip_path} has unexpected contents: expected {machine_type}/id_XX/normal/*.wav "
            f"(or {stem}/{machine_type}/...), found e.g. {shown} among {len(files)} files"
        )
    return [(i, rel[i.filename]) for i in files]  # folders are made from the files' paths


def _check_types(types: Iterable[str]) -> list[str]:
    if isinstance(types, str):
        types = [types]
    out: list[str] = []
    for t in types:
        if not isinstance(t, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", t):
            raise DownloadError(f"machine type {t!r} must be a name like 'fan'")
        if t not in out:
            out.append(t)
    if not out:
        raise DownloadError(f"types={types!r} must name at least one machine type, e.g. ('fan',)")
    return out


def _space_needed(remotes: Iterable[RemoteFile], downloads: Path, *, keep_zip: bool) -> int:
    """Bytes still to be written: the rest of each download plus every extracted zip (upper bound)."""
    extracted, fetch = 0, []
    for remote in remotes:
        zip_path = downloads / remote.key
        part = zip_path.with_name(zip_path.name + ".part")
        if zip_path.is_file() and zip_path.stat().st_size == remote.size:
            fetch.append(0)
            try:
                with zipfile.ZipFile(zip_path) as z:
                    extracted += sum(i.file_size for i in z.infolist())
                continue
            except (zipfile.BadZipFile, OSError):
                pass  # verified (and rejected) later; estimate as if not there yet
        else:
            have = part.stat().st_size if part.is_file() else 0
            fetch.append(max(remote.size - have, 0))
        extracted += int(remote.size * ZIP_EXPANSION)
    # zips are deleted after extraction unless kept, so only the largest one is on disk at a time
    return extracted + (sum(fetch) if keep_zip else max(fetch, default=0))


def _check_space(root: Path, needed: int, *, what: str) -> None:
    free = shutil.disk_usage(root).free
    if free < needed:
        raise DownloadError(
            f"not enough disk space for {what} under {root}: need {needed / 1e9:.2f} GB, "
            f"{free / 1e9:.2f} GB free; free some space or choose another --root"
        )
