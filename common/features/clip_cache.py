"""Per-clip vectors computed from WAV samples, cached on disk one entry per clip and part, checked on every load.

Entries live in one folder per kind of vector (SoundNet's embeddings, `common.models.sound_embeddings`; the
statistics of the samples, `common.features.sample_stats`): ``<key>.npy`` (the vector) and ``<key>.json`` (its
manifest, written last, recording the sha256 of the ``.npy``). The key hashes the clip's
`common.io.file_fingerprint`, the channel, the sample rate, the part (the whole clip, or one of its halves) and what
makes the vector (the caller's `describe`), as `common.features.cache` keys its entries: a rewritten clip or another
model never returns a stale vector, and an entry changed in place is computed again, with a warning, never served.
Entries are never deleted here: removing the folder is safe.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from common.errors import AudioError, DataError
from common.features.audio import read_channel
from common.io import atomic_write, atomic_write_text, digest, file_fingerprint

WHOLE, HALVES = ("whole",), ("half1", "half2")  # the parts of a clip: itself, or its first and second half
CHUNK = 64  # clips computed at a time (64 clips of 10 s: 40 MB of samples)
Request = tuple[Path, str]  # (WAV file, part)


def segment(y: np.ndarray, part: str) -> np.ndarray:
    """One part of a clip's samples: all of it, or its first or second half."""
    cut = len(y) // 2
    return {"whole": y, "half1": y[:cut], "half2": y[cut:]}[part]


def samples(asked: Sequence[Request], *, channel: int, sr: int) -> Iterator[tuple[Path, str, np.ndarray]]:
    """(file, part, samples) of each request, each file read once for its consecutive parts (a clip's halves)."""
    path = y = None
    for file, part in asked:
        if file != path:
            path, y = file, read_channel(file, channel=channel, expected_sr=sr)[0]
        yield file, part, segment(y, part)


def requests(paths: Iterable[str | Path], *, halves: bool) -> list[Request]:
    """(file, part) of every clip, its two halves in order where `halves`."""
    return [(Path(p), part) for p in paths for part in (HALVES if halves else WHOLE)]


def _payload(path: Path, part: str, describe: Mapping[str, Any], *, channel: int, sr: int,
             format_version: int) -> dict[str, Any]:
    try:
        stamp = file_fingerprint(path)
    except OSError as exc:
        raise AudioError(f"WAV file {path} cannot be read: {exc.strerror}") from None
    return {"format_version": format_version, "file": stamp, "channel": int(channel), "sr": int(sr), "part": part,
            **describe}


def cached_rows(asked: Sequence[Request], compute: Callable[[Sequence[Request]], np.ndarray], *, folder: Path,
                describe: Mapping[str, Any], dim: int, channel: int, sr: int, format_version: int,
                what: str) -> np.ndarray:
    """The vector of each (file, part) of `asked` [shape=(len(asked), dim), float32]: from its entry in `folder`, else
    computed by `compute` (a chunk of requests at a time) and written there.

    Raises
    ------
    AudioError
        A file cannot be read (naming it), or as `compute`.
    DataError
        The folder cannot be written (naming it and ``data.cache_dir``).
    """
    payloads = [_payload(p, part, describe, channel=channel, sr=sr, format_version=format_version)
                for p, part in asked]
    keys = [digest(payload) for payload in payloads]
    rows: list[np.ndarray | None] = [_load_entry(folder, key, dim, what) for key in keys]
    missing = [i for i, row in enumerate(rows) if row is None]
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start:start + CHUNK]
        for i, vector in zip(chunk, compute([asked[i] for i in chunk])):
            _write_entry(folder, keys[i], payloads[i], vector, what)
            rows[i] = vector
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32)


def _load_entry(folder: Path, key: str, dim: int, what: str) -> np.ndarray | None:
    """The vector of a complete entry whose ``.npy`` matches its manifest's sha256, else None (a miss)."""
    manifest_path, vector_path = folder / f"{key}.json", folder / f"{key}.npy"
    if not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text())
        data = vector_path.read_bytes()
        vector = np.load(io.BytesIO(data), allow_pickle=False)
    except (OSError, ValueError):  # half-deleted or corrupt entry: compute it again
        return None
    if not isinstance(manifest, dict) or vector.shape != (dim,) or vector.dtype != np.float32:
        return None
    if hashlib.sha256(data).hexdigest() != manifest.get("sha256"):
        warnings.warn(f"{what} cache entry {manifest_path} (data.cache_dir) has a vector file that differs from its "
                      "sha256 (changed since it was written): the clip's vector is computed again and the entry "
                      "rewritten", stacklevel=4)
        return None
    return vector


def _write_entry(folder: Path, key: str, payload: Mapping[str, Any], vector: np.ndarray, what: str) -> None:
    """Write an entry's ``.npy``, then its manifest with the ``.npy``'s sha256 (last: the entry is complete)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(vector, dtype=np.float32), allow_pickle=False)
    data = buffer.getvalue()
    manifest = {**payload, "key": key, "shape": [int(np.size(vector))], "sha256": hashlib.sha256(data).hexdigest()}
    try:
        atomic_write(folder / f"{key}.npy", lambda tmp: tmp.write_bytes(data))
        atomic_write_text(folder / f"{key}.json", json.dumps(manifest, indent=1))
    except OSError as exc:
        raise DataError(f"cannot write the {what} cache in {folder} (data.cache_dir): {exc.strerror or exc}") from None
