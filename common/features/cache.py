"""The feature cache: stacked log-mel vectors on disk, keyed by every parameter and file, and reading them back.

`cached_features` stores what `common.features.extract.extract` returns under `feature_key`, a hash of
every feature parameter and each file's `common.io.file_fingerprint` (path, size, mtime, inode,
ctime), so a changed parameter or a rewritten file (even one of the same size and mtime) never
returns stale features. Each entry's manifest records the sha256 of its array files, checked on every
load: an entry changed in place (even at the same size) is extracted again, with a warning, never
served. An entry is loaded memory-mapped (`ClipFeatures`); `common.features.vectorset.VectorSet` reads
chosen rows of several such arrays, for training and scoring, without concatenating them in RAM.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from common.features.params import FeatureConfig
from common.errors import AudioError, DataError
from common.features.extract import extract, vector_offsets
from common.io import atomic_write, atomic_write_text, digest, file_fingerprint, file_sha256

# Bump when the feature definition or the cache layout changes: old entries then miss.
FORMAT_VERSION = 1


# --------------------------------------------------------------------------------------------
# Entries: one list of clips, extracted once


@dataclass(frozen=True, eq=False)
class ClipFeatures:
    """The stacked log-mel vectors of a list of clips, concatenated (usually memory-mapped).

    Attributes
    ----------
    files : tuple of str
        The clips, as given to `cached_features`.
    vectors : np.ndarray [shape=(n_vectors_total, n_mels * frames), float32]
        All vectors; read-only and memory-mapped when loaded from the cache.
    offsets : np.ndarray [shape=(len(files) + 1,), int64]
        Clip ``i`` is ``vectors[offsets[i]:offsets[i + 1]]``.
    frame_width : int > 0 or None
        Values per log-mel frame (``n_mels``) when vector ``t`` of a clip stacks its frames ``t .. t + frames - 1``
        (as `common.features.extract.extract` writes them), so that a set of them can be held as its frames,
        ``frames`` times smaller (`common.features.vectorset.VectorSet.frames`); None when not known.
    """

    files: tuple[str, ...]
    vectors: np.ndarray
    offsets: np.ndarray
    frame_width: int | None = None

    def __len__(self) -> int:
        return len(self.files)

    def clip(self, i: int) -> np.ndarray:
        """Vectors of clip `i` [shape=(n_vectors_i, n_mels * frames)] (a view, read-only if mapped)."""
        i = self._indices([i])[0]
        return self.vectors[self.offsets[i] : self.offsets[i + 1]]

    def take(self, indices: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of the chosen clips, concatenated in the given order, and their offsets.

        Parameters
        ----------
        indices : iterable of int
            Clip indices (negative ones count from the end); repeats are allowed.

        Returns
        -------
        vectors : np.ndarray [shape=(n, n_mels * frames), float32]
            A new array.
        offsets : np.ndarray [shape=(len(indices) + 1,), int64]
            Chosen clip ``j`` is ``vectors[offsets[j]:offsets[j + 1]]``.

        Raises
        ------
        IndexError
            An index is out of range.
        """
        idx = self._indices(indices)
        starts, stops = self.offsets[idx], self.offsets[idx + 1]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(stops - starts, out=offsets[1:])
        vectors = np.empty((int(offsets[-1]), self.vectors.shape[1]), dtype=self.vectors.dtype)
        for j, (a, b) in enumerate(zip(starts, stops)):
            vectors[offsets[j] : offsets[j + 1]] = self.vectors[a:b]
        return vectors, offsets

    def _indices(self, indices: Iterable[int]) -> np.ndarray:
        idx = np.asarray(list(indices), dtype=np.int64)
        n = len(self.files)
        bad = idx[(idx < -n) | (idx >= n)]
        if bad.size:
            raise IndexError(f"clip index {int(bad[0])} is out of range for {n} clips")
        return np.where(idx < 0, idx + n, idx)



def _feature_params(params: dict[str, Any]) -> dict[str, Any]:
    """`params` over `FeatureConfig`'s defaults, checked, in a canonical form (power as float)."""
    names = FeatureConfig.names()
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise DataError(f"unknown feature parameter(s) {unknown}; expected some of {sorted(names)}")
    merged = {**FeatureConfig().kwargs(), **params}
    for name, value in merged.items():  # numpy scalars -> JSON-able Python numbers
        if isinstance(value, np.generic):
            merged[name] = value.item()
    if isinstance(merged["power"], (int, float)) and not isinstance(merged["power"], bool):
        merged["power"] = float(merged["power"])
    return merged



def _key_payload(files: Sequence[str | os.PathLike], *, channel: int, sr: int, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "params": dict(sorted(params.items())),
        "channel": int(channel),
        "sr": int(sr),
        "files": [_file_stamp(f) for f in files],
    }


def _file_stamp(path: str | os.PathLike) -> dict[str, Any]:
    try:
        return file_fingerprint(path)
    except OSError as exc:
        raise AudioError(f"WAV file {path} cannot be read: {exc.strerror}") from None


def feature_key(files: Iterable[str | os.PathLike], *, channel: int, sr: int, **params: Any) -> str:
    """Cache key of the features of `files`: changes with any parameter or any file.

    A sha256 over a JSON of the feature parameters (defaults filled in), `channel`, `sr`, the
    cache format version and, per file in order, its `common.io.file_fingerprint` (absolute
    path, size, ``mtime_ns``, inode and ``ctime_ns``): a file replaced by one of the same size and
    mtime (``cp -p``, ``rsync -a``, ``tar x``) still changes the key.

    Parameters
    ----------
    files : iterable of str or os.PathLike
        The clips, in order.
    channel : int >= 0
        Channel used.
    sr : int > 0
        Sample rate required.
    **params
        Any of ``n_mels``, ``frames``, ``n_fft``, ``hop_length``, ``power``.

    Returns
    -------
    key : str
        64 hex digits.

    Raises
    ------
    AudioError
        A file cannot be stat'ed.
    DataError
        An unknown parameter name.
    """
    return digest(_key_payload(list(files), channel=channel, sr=sr, params=_feature_params(params)))


def cached_features(
    files: Iterable[str | os.PathLike],
    *,
    cache_dir: str | os.PathLike,
    channel: int = 0,
    sr: int = 16000,
    jobs: int = 2,
    progress: bool = True,
    **params: Any,
) -> ClipFeatures:
    """`common.features.extract.extract` once; later calls with the same files and parameters load it memory-mapped.

    The entry for `feature_key` is ``<key>.vectors.npy``, ``<key>.offsets.npy`` and
    ``<key>.json`` (parameters, files, shapes) in `cache_dir`. Each is written to a temporary file
    and renamed into place, the manifest last, so an entry exists only once complete; an entry
    whose arrays do not match its manifest (shapes, or the sha256 of each file) is rebuilt, with a
    warning when a checksum differs. A changed file (see `feature_key`) or parameter gives another
    key, never stale features. Entries are never deleted here: removing
    `cache_dir` is always safe.

    Parameters
    ----------
    files : iterable of str or os.PathLike
        WAV files, in the order wanted.
    cache_dir : str or os.PathLike
        Folder of the cache (created if missing).
    channel, sr, jobs, progress
        As in `common.features.extract.extract`.
    **params
        Feature parameters: any of ``n_mels``, ``frames``, ``n_fft``, ``hop_length``, ``power``.

    Returns
    -------
    features : ClipFeatures
        With read-only memory-mapped `vectors`.

    Raises
    ------
    AudioError, ConfigError, DataError
        As `common.features.extract.extract`; also DataError for an empty `files` or an unknown parameter.
    """
    files = [str(f) for f in files]
    if not files:
        raise DataError("cached_features needs at least one file, got none")
    params = _feature_params(params)
    payload = _key_payload(files, channel=channel, sr=sr, params=params)
    key = digest(payload)
    cache_dir = Path(cache_dir)
    paths = {name: cache_dir / f"{key}.{name}" for name in ("vectors.npy", "offsets.npy", "json")}

    loaded = _load_entry(paths, n_files=len(files))
    if loaded is None:
        _build_entry(files, paths, payload, channel=channel, sr=sr, jobs=jobs, progress=progress, params=params)
        loaded = _load_entry(paths, n_files=len(files))
        if loaded is None:
            raise DataError(f"feature cache entry {paths['json']} is unreadable right after writing it")
    vectors, offsets = loaded
    return ClipFeatures(files=tuple(files), vectors=vectors, offsets=offsets, frame_width=int(params["n_mels"]))


def _load_entry(paths: dict[str, Path], *, n_files: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The arrays of a complete, consistent cache entry whose files match their checksums, or None (a miss).

    An entry whose files differ from the sha256 its manifest records (changed in place, even at the
    same size; or written before entries had checksums) is a miss, with a warning naming it.
    """
    if not paths["json"].is_file():
        return None
    try:
        manifest = json.loads(paths["json"].read_text())
        vectors = np.load(paths["vectors.npy"], mmap_mode="r", allow_pickle=False)
        offsets = np.load(paths["offsets.npy"], allow_pickle=False)
    except (OSError, ValueError):  # half-deleted or corrupt entry: rebuild it
        return None
    consistent = (
        isinstance(manifest, dict)
        and list(vectors.shape) == manifest.get("vectors_shape")
        and vectors.dtype == np.float32
        and offsets.shape == (n_files + 1,)
        and offsets.dtype == np.int64
        and int(offsets[-1]) == vectors.shape[0]
    )
    if not consistent:
        return None
    why = _checksum_problem(paths, manifest.get("sha256"))
    if why is not None:
        warnings.warn(f"feature cache entry {paths['json']} (data.cache_dir) {why}: its features are extracted "
                      "again and the entry rewritten", stacklevel=3)
        return None
    return vectors, offsets


CHECKSUMMED = ("vectors.npy", "offsets.npy")  # the entry files whose sha256 the manifest records


def _checksum_problem(paths: dict[str, Path], recorded: Any) -> str | None:
    """Why the entry's array files do not match the sha256 of each its manifest records (None: they match)."""
    if not isinstance(recorded, dict):
        return "has no checksum (written by an older version)"
    for name in CHECKSUMMED:
        try:
            same = file_sha256(paths[name]) == recorded.get(name)
        except OSError as exc:
            return f"cannot be read ({exc.strerror or exc})"
        if not same:
            return f"has a {name} file that differs from its sha256 (changed since it was written)"
    return None


def _build_entry(
    files: list[str],
    paths: dict[str, Path],
    payload: dict[str, Any],
    *,
    channel: int,
    sr: int,
    jobs: int,
    progress: bool,
    params: dict[str, Any],
) -> None:
    """Extract `files` straight into the entry's ``.npy`` and write its offsets, then its manifest.

    Each file goes through `common.io.atomic_write` (a temporary file renamed into place, removed
    on every failure), the manifest last: its presence means the entry is complete. A full disk
    is a `DataError` naming the folder.
    """
    infos, offsets = vector_offsets(
        files, channel=channel, sr=sr, frames=params["frames"], n_fft=params["n_fft"], hop_length=params["hop_length"]
    )
    shape = (int(offsets[-1]), params["n_mels"] * params["frames"])

    def write_vectors(tmp: Path) -> None:
        # extract fills a memory map of the temporary .npy: the vectors never sit in RAM whole.
        vectors = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
        _reserve(tmp)
        extract(files, channel=channel, sr=sr, jobs=jobs, progress=progress, out=vectors, **params)
        vectors.flush()

    def write_offsets(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, offsets, allow_pickle=False)

    manifest = {**payload, "key": paths["json"].name[: -len(".json")], "vectors_shape": list(shape),
                "offsets_shape": [len(files) + 1], "dtype": "float32"}
    try:
        atomic_write(paths["vectors.npy"], write_vectors)
        atomic_write(paths["offsets.npy"], write_offsets)
        # The checksums of what was written, checked on every load (`_load_entry`).
        manifest["sha256"] = {name: file_sha256(paths[name]) for name in CHECKSUMMED}
        atomic_write_text(paths["json"], json.dumps(manifest, indent=1))  # last: the entry is complete
    except OSError as exc:
        raise _cache_write_error(exc, paths["json"].parent, need_bytes=4 * shape[0] * shape[1]) from None


def _reserve(path: Path) -> None:
    """Allocate the disk blocks of a memory-mapped file up front.

    A write through a map into a sparse file on a full disk is a SIGBUS that kills the process
    without a word; ``posix_fallocate`` fails with ENOSPC before any write instead.
    """
    if not hasattr(os, "posix_fallocate"):  # macOS, Windows: no reservation, as before
        return
    with open(path, "r+b") as fh:
        try:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise


def _cache_write_error(exc: OSError, folder: Path, *, need_bytes: int) -> DataError:
    """A `DataError` naming the cache folder for an OSError met while writing an entry."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = f"{shutil.disk_usage(folder).free / 1e6:.1f} MB available"
        except OSError:
            free = "free space unknown"
        return DataError(
            f"not enough disk space for the feature cache in {folder} (data.cache_dir): the entry needs "
            f"{need_bytes / 1e6:.1f} MB, {free}. Free some space or point data.cache_dir at a larger disk"
        )
    return DataError(f"cannot write the feature cache in {folder} (data.cache_dir): {exc.strerror or exc}")
