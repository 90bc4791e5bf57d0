"""Clip statistics computed from a clip's samples, not from the log-mel cache, in one table (`SAMPLE_STATS`).

Each is a model kind of its own (`common.models.kinds`: a weightless identity on the vectors), named by its
architecture's ``kind``, whose other keys are its parameters, so a saved model records how its vectors were made:

- ``modulation``: the rhythm of each band's level (`common.features.modulation`);
- ``fine_spectrum``: mean and std of 128 fine mel bands (`common.features.fine_spectrum`).

A new statistic is one module with ``ARCHITECTURE``, ``dim`` and its function, and one row here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from common.errors import ModelError
from common.features import fine_spectrum, modulation
from common.features.clip_cache import Request, cached_rows, requests, samples

CACHE_FOLDER = "sample_stats"  # under data.cache_dir
FORMAT_VERSION = 1  # bump when a statistic's computation changes: old entries then miss


@dataclass(frozen=True)
class SampleStat:
    """One statistic of a clip's samples: its default architecture, its width, and how to compute it."""

    architecture: Mapping[str, Any]
    dim: Callable[[Mapping[str, Any], int], int]  # (architecture, sample rate) -> width
    compute: Callable[..., np.ndarray]  # (samples, *, sr, arch, name) -> [shape=(dim,)]


SAMPLE_STATS: dict[str, SampleStat] = {
    modulation.KIND: SampleStat(modulation.ARCHITECTURE, modulation.dim, modulation.modulation_stats),
    fine_spectrum.KIND: SampleStat(fine_spectrum.ARCHITECTURE, fine_spectrum.dim, fine_spectrum.fine_stats),
}


def _stat(arch: Mapping[str, Any]) -> SampleStat:
    kind = arch.get("kind")
    if kind not in SAMPLE_STATS:
        raise ModelError(f"unknown clip statistic {kind!r} (known: {', '.join(SAMPLE_STATS)})")
    return SAMPLE_STATS[kind]


def architecture(kind: str, sr: int) -> dict[str, Any]:
    """The architecture a row model of the statistic `kind` records: its parameters and its vectors' width."""
    stat = SAMPLE_STATS[kind]
    return dict(stat.architecture) | {"input_dim": stat.dim(stat.architecture, sr)}


def _compute(asked: Sequence[Request], arch: Mapping[str, Any], *, channel: int, sr: int) -> np.ndarray:
    """The statistic `arch` names of each (file, part) [shape=(len(asked), dim)]."""
    stat, rows = _stat(arch), []
    for path, part, y in samples(asked, channel=channel, sr=sr):
        name = f"WAV file {path}" if part == "whole" else f"the {'first' if part == 'half1' else 'second'} half of {path}"
        rows.append(stat.compute(y, sr=sr, arch=arch, name=name))
    return np.stack(rows) if rows else np.zeros((0, stat.dim(arch, sr)), np.float32)


def wav_rows(paths: Iterable[str | Path], arch: Mapping[str, Any], *, channel: int, sr: int,
             halves: bool = False) -> np.ndarray:
    """The statistic `arch` names of each WAV file, computed now [shape=(n, dim), or (2n, dim) with `halves`: clip i's
    halves are rows 2i and 2i + 1]; AudioError naming a file that is unreadable, of another rate, or too short."""
    return _compute(requests(paths, halves=halves), arch, channel=channel, sr=sr)


def cached_wav_rows(paths: Iterable[str | Path], arch: Mapping[str, Any], *, cache_dir: str | Path, channel: int,
                    sr: int, halves: bool = False) -> np.ndarray:
    """As `wav_rows`, each clip's vector computed once: later calls, in any process, read it from
    ``cache_dir/sample_stats/`` (`common.features.clip_cache`: keyed by the clip's fingerprint, channel, rate, part
    and the statistic's parameters; an entry changed in place is computed again, with a warning)."""
    stat = _stat(arch)
    return cached_rows(requests(paths, halves=halves), lambda asked: _compute(asked, arch, channel=channel, sr=sr),
                       folder=Path(cache_dir) / CACHE_FOLDER,
                       describe={"statistic": {k: v for k, v in arch.items() if k != "input_dim"}},
                       dim=stat.dim(arch, sr), channel=channel, sr=sr, format_version=FORMAT_VERSION,
                       what="clip statistics")


def clip_vectors(path: str | Path, arch: Mapping[str, Any], *, channel: int, sr: int) -> np.ndarray:
    """A WAV file's vector as a model of the statistic's kind scores it [shape=(1, dim)]."""
    return wav_rows([path], arch, channel=channel, sr=sr)
