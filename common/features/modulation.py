"""A clip's modulation statistics: how the loudness of each band of its sound rises and falls, 0.8-40 times a second.

The log-mel statistics (`common.features.clipvectors.logmel_stats`) see *where* a machine's energy sits; a fault
that keeps the energy and changes its rhythm (a worn bearing pulsing at its cage rate, a loose guard knocking, a
valve or slide cycling slower) moves them little. Envelope analysis, the classical tool of condition monitoring,
looks at the rhythm instead: here, the power spectrum over time of each log-mel band's level.

    y (one channel) -> log-mel at a 10 ms hop (`common.features.logmel.logmel`: 32 bands, n_fft 1024)
      -> each band's level less its mean -> Welch power spectrum over time (segments of 128 frames, 1.28 s:
         0.78 Hz apart; a shorter clip, such as half of a 2 s clip, is one segment zero-padded to 128 frames),
         the bins above 0 Hz up to 40 Hz
      -> log10, averaged over 8 groups of 4 adjacent bands       [shape=(8 * 51,) at 16 kHz]

The 64 ms frames smooth rhythms faster than about 15 Hz (a knock's dip of 12-35 ms still shows). The hop is 10 ms
whatever the sample rate (160 samples at 16 kHz), not the log-mel cache's (32 ms), so a clip's
vector is computed from its WAV samples (`common.features.sample_stats`). The parameters are an architecture's
(`ARCHITECTURE`): a saved model records them, and `modulation_stats` takes them from it.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from scipy import signal

from common.errors import AudioError, ModelError
from common.features.logmel import logmel

KIND = "modulation"  # the model kind whose clip vectors these are (`common.models.kinds`)
ARCHITECTURE = {"kind": KIND, "hop_s": 0.01, "n_mels": 32, "n_fft": 1024, "segment_frames": 128,
                "max_hz": 40.0, "groups": 8}
PARAMS = tuple(k for k in ARCHITECTURE if k != "kind")
MIN_SEGMENT_FRACTION = 4  # a clip shorter than a segment is one shorter segment, zero-padded to the same frequencies


def _params(arch: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters `arch` records, checked; ModelError naming what is missing or wrong."""
    missing = [k for k in PARAMS if k not in arch]
    if missing:
        raise ModelError(f"modulation architecture {dict(arch)} lacks {missing}: use the sidecar saved with the model")
    p = {k: arch[k] for k in PARAMS}
    ints = ("n_mels", "n_fft", "segment_frames", "groups")
    if (any(isinstance(p[k], bool) or not isinstance(p[k], int) or p[k] < 1 for k in ints)
            or p["n_mels"] % p["groups"] or not all(isinstance(p[k], (int, float)) and p[k] > 0
                                                     for k in ("hop_s", "max_hz"))):
        raise ModelError(f"modulation architecture {dict(arch)}: n_mels, n_fft, segment_frames and groups must be "
                         "positive integers (groups dividing n_mels), hop_s and max_hz positive numbers")
    return p


def bins(arch: Mapping[str, Any], sr: int) -> int:
    """How many modulation frequencies (above 0 Hz, up to ``max_hz``) a clip of rate `sr` has per band group."""
    p = _params(arch)
    rate = sr / max(1, round(p["hop_s"] * sr))
    freqs = np.fft.rfftfreq(p["segment_frames"], d=1.0 / rate)
    return int(np.count_nonzero((freqs > 0) & (freqs <= p["max_hz"])))


def dim(arch: Mapping[str, Any], sr: int) -> int:
    """The width of a clip's modulation vector."""
    return _params(arch)["groups"] * bins(arch, sr)


def modulation_stats(y: np.ndarray, *, sr: int, arch: Mapping[str, Any] = ARCHITECTURE,
                     name: str = "the clip") -> np.ndarray:
    """One clip's modulation statistics [shape=(dim(arch, sr),), float32]; AudioError naming `name` when too short."""
    p = _params(arch)
    hop = max(1, round(p["hop_s"] * sr))
    levels = logmel(np.asarray(y, dtype=np.float32), sr=sr, n_mels=p["n_mels"], n_fft=p["n_fft"], hop_length=hop,
                    power=2.0).astype(np.float64)
    shortest = max(2, p["segment_frames"] // MIN_SEGMENT_FRACTION)
    if levels.shape[1] < shortest:
        raise AudioError(f"{name} has {len(y) / sr:.2f} s, too short for modulation statistics, which need "
                         f"{shortest * hop / sr:.2f} s (a quarter of segment_frames x hop_s)")
    freqs, power = signal.welch(levels - levels.mean(axis=1, keepdims=True), fs=sr / hop,
                                nperseg=min(p["segment_frames"], levels.shape[1]), nfft=p["segment_frames"], axis=1)
    keep = (freqs > 0) & (freqs <= p["max_hz"])
    logs = np.log10(power[:, keep] + 1e-12)
    return logs.reshape(p["groups"], p["n_mels"] // p["groups"], -1).mean(axis=1).ravel().astype(np.float32)

