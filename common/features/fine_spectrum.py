"""A clip's fine log-mel statistics: the mean and std over frames of 128 mel bands from 2,048-sample frames.

The log-mel cache's bands (32-64 from 1,024-sample frames, the MIMII baseline's) are wider than the step a tone
takes when a drive runs a few per cent slow: at 300 Hz, 4 % is 12 Hz, a fraction of a band, so the shift barely
moves the band levels. At 128 bands from 128 ms frames the low bands are 7.8 Hz apart in the FFT and about 15-20 Hz
wide, so a tone that moves changes which band it sits in. Computed from the clip's samples
(`common.features.sample_stats`), since the cache holds the baseline's bands only:

    y (one channel) -> log-mel (`common.features.logmel.logmel`: 128 bands, n_fft 2048, hop 512)
      -> mean and std over frames of each band         [shape=(2 * 128,)]
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from common.errors import AudioError, ModelError
from common.features.logmel import logmel

KIND = "fine_spectrum"  # the model kind whose clip vectors these are (`common.models.kinds`)
ARCHITECTURE = {"kind": KIND, "n_mels": 128, "n_fft": 2048, "hop_length": 512}
PARAMS = tuple(k for k in ARCHITECTURE if k != "kind")


def _params(arch: Mapping[str, Any]) -> dict[str, int]:
    """The parameters `arch` records, checked; ModelError naming what is missing or wrong."""
    p = {k: arch.get(k) for k in PARAMS}
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in p.values()):
        raise ModelError(f"fine_spectrum architecture {dict(arch)} needs {list(PARAMS)}, each a positive integer: use "
                         "the sidecar saved with the model")
    return p


def dim(arch: Mapping[str, Any], sr: int) -> int:
    """The width of a clip's vector: a mean and a std per band."""
    return 2 * _params(arch)["n_mels"]


def fine_stats(y: np.ndarray, *, sr: int, arch: Mapping[str, Any] = ARCHITECTURE,
               name: str = "the clip") -> np.ndarray:
    """One clip's fine log-mel statistics [shape=(dim(arch, sr),), float32]; AudioError naming `name` when the clip
    is shorter than one frame."""
    p = _params(arch)
    if len(y) < p["n_fft"]:
        raise AudioError(f"{name} has {len(y) / sr:.3f} s, shorter than one frame of fine log-mel statistics "
                         f"({p['n_fft'] / sr:.3f} s, n_fft)")
    levels = logmel(np.asarray(y, dtype=np.float32), sr=sr, **p, power=2.0).astype(np.float64)
    return np.concatenate([levels.mean(axis=1), levels.std(axis=1)]).astype(np.float32)
