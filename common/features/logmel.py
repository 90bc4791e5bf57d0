"""Log-mel numerics: one clip's log-mel spectrogram and its stacked frame vectors, as the MIMII baseline computes them.

The definition is the MIMII baseline's ``file_to_vector_array``::

    y (one channel) -> librosa.feature.melspectrogram(y=y, sr=sr, n_fft, hop_length, n_mels, power)
      -> logmel = 20 / power * log10(mel + sys.float_info.epsilon)         [dB, (n_mels, n_frames)]
      -> vector t = concat(logmel[:, t], ..., logmel[:, t + frames - 1])   [(n_vectors, n_mels * frames)]

with librosa's defaults (``center=True``, zero padding, periodic Hann window, Slaney mel
filters). `reference_logmel_frames` is that pipeline verbatim; it is kept for parity tests and
the benchmark. The fast path (`logmel`, `logmel_frames`, and `common.features.extract.extract` over many
files) computes the same numbers differently:

- frames clips with stride tricks into reused buffers (fresh multi-MB arrays cost page faults),
  FFTs blocks of frames that stay in cache, and applies the mel filters as one sparse float32
  product and ``log10`` per batch of equal-length clips;
- starts no threads of its own (no BLAS), so that `common.features.extract` can run one worker per core.

Parity: the FFT runs in float64, as librosa's does (librosa multiplies float32 frames by a
float64 window, so numpy/scipy transform in float64 and store complex64). What remains is float32
rounding in ``|X|**power``, the mel product's summation order and the log: under 1e-5 dB over
200 synthetic 10 s MIMII clips, 3e-5 dB (two float32 ulps at -156 dB) on pure tones and digital
silence; the tests assert 1e-4 dB. A float32 FFT would save ~30 % of that step but is not
faithful: its rounding error scales with the whole frame's energy, so bands far below the loudest
drift (2e-4 dB at 75 dB dynamic range, 0.015 dB at 110 dB, 30 dB where a pure tone leaves
exact zeros).

The keyword defaults are `common.features.params.FeatureConfig`'s (the baseline's: 64 mels, 5 frames,
n_fft 1024, hop 512, power 2).
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from typing import Any

import numpy as np
import scipy.fft
import scipy.sparse

from common.features.audio import validate_audio
from common.features.params import FeatureConfig
from common.errors import AudioError, ConfigError, DataError

_DEFAULT = FeatureConfig()  # the one source of the keyword defaults below

# Frames per FFT block (128 x 1024 float64 = 1 MiB, near the 512 KiB L2 with its spectrum).
_BLOCK = 128

_EPS32 = np.float32(sys.float_info.epsilon)

# numpy >= 2 can write an FFT into a preallocated array.
_FFT_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


# --------------------------------------------------------------------------------------------
# Parameters


def _check_params(*, sr: int, n_mels: int, n_fft: int, hop_length: int, power: float, frames: int | None = None) -> None:
    """Raise `ConfigError` naming the first parameter out of range."""
    checks = [
        ("sr", sr, isinstance(sr, (int, np.integer)) and sr > 0, "a positive integer"),
        ("n_mels", n_mels, isinstance(n_mels, (int, np.integer)) and n_mels > 0, "a positive integer"),
        ("n_fft", n_fft, isinstance(n_fft, (int, np.integer)) and n_fft > 1, "an integer > 1"),
        ("hop_length", hop_length, isinstance(hop_length, (int, np.integer)) and hop_length > 0, "a positive integer"),
        ("power", power, isinstance(power, (int, float, np.number)) and float(power) > 0, "a positive number"),
    ]
    if frames is not None:
        checks.append(("frames", frames, isinstance(frames, (int, np.integer)) and frames >= 1, "an integer >= 1"))
    for name, value, ok, expected in checks:
        if not ok or isinstance(value, bool):
            raise ConfigError(f"{name}={value!r} must be {expected}")


def n_frames_of(n_samples: int, *, n_fft: int = _DEFAULT.n_fft, hop_length: int = _DEFAULT.hop_length) -> int:
    """Number of STFT frames librosa gives a clip of `n_samples` (``center=True``)."""
    return 1 + (n_samples + 2 * (n_fft // 2) - n_fft) // hop_length


@functools.lru_cache(maxsize=16)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> scipy.sparse.csr_array:
    """librosa's Slaney mel filters [shape=(n_mels, 1 + n_fft // 2), float32] as a sparse matrix.

    Each band is a triangle over a few bins (3 % of the entries are non-zero). The sparse product
    is faster than a dense one and, unlike BLAS, starts no threads of its own: OpenBLAS sgemm
    called from `jobs` worker threads oversubscribes the cores and was up to 20x slower here.
    """
    import librosa  # deferred: importing librosa takes ~0.5 s and only the filters need it

    return scipy.sparse.csr_array(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels))


@functools.lru_cache(maxsize=16)
def _window(n_fft: int) -> np.ndarray:
    """librosa's STFT window: periodic Hann [shape=(n_fft,), float64], read-only."""
    import librosa

    win = np.ascontiguousarray(librosa.filters.get_window("hann", n_fft, fftbins=True), dtype=np.float64)
    win.flags.writeable = False
    return win


# --------------------------------------------------------------------------------------------
# Log-mel


class _Workspace:
    """Scratch arrays of one worker thread, reused from batch to batch.

    A fresh multi-megabyte array costs a page fault per 4 KiB on first touch, which here is as
    slow as the FFT itself; reusing the buffers keeps only the arithmetic.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, tuple[int, ...], str], np.ndarray] = {}

    def get(self, name: str, shape: tuple[int, ...], dtype: Any, *, zeros: bool = False) -> np.ndarray:
        key = (name, tuple(shape), np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            buf = np.zeros(shape, dtype) if zeros else np.empty(shape, dtype)
            self._buffers[key] = buf
        return buf


def _padded(batch: int, n: int, n_fft: int, ws: _Workspace | None) -> np.ndarray:
    """A float64 [shape=(batch, n + 2 * (n_fft // 2))] array whose padding columns are zero."""
    shape = (batch, n + 2 * (n_fft // 2))
    return np.zeros(shape) if ws is None else ws.get("padded", shape, np.float64, zeros=True)


def _logmel_padded(
    padded: np.ndarray,
    *,
    sr: int,
    n_mels: int,
    n_fft: int,
    hop_length: int,
    power: float,
    ws: _Workspace | None = None,
) -> np.ndarray:
    """Log-mel of zero-padded clips [shape=(batch, n + 2 * (n_fft // 2)), float64].

    Returns float32 [shape=(batch, n_mels, n_frames)] (a view; its rows are not contiguous).
    """
    batch, width = padded.shape
    n_frames = 1 + (width - n_fft) // hop_length
    n_bins = 1 + n_fft // 2
    block = min(_BLOCK, n_frames)
    get = (lambda name, shape, dtype: np.empty(shape, dtype)) if ws is None else ws.get
    windowed = get("windowed", (block, n_fft), np.float64)
    spec = get("spec", (block, n_bins), np.complex128)
    # Power spectrum bins-first, so that the sparse mel product runs over contiguous rows.
    mag = get("mag", (n_bins, batch * n_frames), np.float32)
    window = _window(n_fft)

    for row in range(batch):
        step = padded.strides[1]
        frames = np.lib.stride_tricks.as_strided(
            padded[row], shape=(n_frames, n_fft), strides=(hop_length * step, step), writeable=False
        )
        # Blocks of frames small enough to stay in cache through window, FFT and |X|**2.
        for start in range(0, n_frames, block):
            stop = min(start + block, n_frames)
            m = stop - start
            np.multiply(frames[start:stop], window, out=windowed[:m])
            # float64 like librosa's transform (float32 frames x float64 window): see the module notes.
            if _FFT_OUT:
                np.fft.rfft(windowed[:m], axis=-1, out=spec[:m])
            else:  # numpy < 2 has no `out`
                spec[:m] = scipy.fft.rfft(windowed[:m], axis=-1, workers=1)
            # |X|**2: square the interleaved (re, im) pairs in place, sum each pair into float32.
            pairs = spec[:m].view(np.float64).reshape(m, n_bins, 2)
            np.square(pairs, out=pairs)
            col = row * n_frames + start
            np.add(pairs[..., 0], pairs[..., 1], out=mag[:, col : col + m].T)

    if power != 2.0:
        # librosa: np.abs(complex64) ** power, both in float32.
        np.sqrt(mag, out=mag)
        if power != 1.0:
            np.power(mag, np.float32(power), out=mag)
    mel = _mel_basis(sr, n_fft, n_mels) @ mag
    # The baseline's dB: 20 / power * log10(mel + eps), in float32 like its float32 mel.
    mel += _EPS32
    np.log10(mel, out=mel)
    mel *= np.float32(20.0 / power)
    return mel.reshape(n_mels, batch, n_frames).transpose(1, 0, 2)


def _logmel_batch(y: np.ndarray, *, sr: int, n_mels: int, n_fft: int, hop_length: int, power: float) -> np.ndarray:
    """Log-mel of a batch [shape=(batch, n)] -> float32 [shape=(batch, n_mels, n_frames)] (a view)."""
    batch, n = y.shape
    padded = _padded(batch, n, n_fft, None)
    # center=True, pad_mode="constant": the clip sits between n_fft // 2 zeros on either side.
    padded[:, n_fft // 2 : n_fft // 2 + n] = y
    return _logmel_padded(padded, sr=sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, power=power)


def logmel(
    y: np.ndarray, *, sr: int, n_mels: int = _DEFAULT.n_mels, n_fft: int = _DEFAULT.n_fft,
    hop_length: int = _DEFAULT.hop_length, power: float = _DEFAULT.power,
) -> np.ndarray:
    """Log-mel spectrogram in dB, as the MIMII baseline computes it.

    ``20 / power * log10(melspectrogram(y, ...) + eps)`` with librosa's defaults (centred frames,
    zero padding, periodic Hann window, Slaney mel filters).

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (batch, n)], floating
        One clip, or a batch of clips of equal length.
    sr : int > 0
        Sample rate in Hz.
    n_mels : int > 0
        Mel bands.
    n_fft : int > 1
        FFT length (and window length) in samples.
    hop_length : int > 0
        Samples between frames.
    power : float > 0
        Exponent of the magnitude spectrogram: 2.0 power, 1.0 magnitude.

    Returns
    -------
    logmel : np.ndarray [shape=(n_mels, n_frames) or (batch, n_mels, n_frames), float32]
        dB values; ``n_frames = 1 + n // hop_length`` for even `n_fft`.

    Raises
    ------
    AudioError
        `y` is not a non-empty, finite, floating-point array of 1 or 2 dimensions.
    ConfigError
        A parameter is out of range.

    Warns
    -----
    UserWarning
        `n_fft` is longer than the clip (valid, but most of each frame is padding).
    """
    _check_params(sr=sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, power=power)
    if isinstance(y, np.ndarray) and y.ndim == 2:
        for row in y:
            validate_audio(row)
        batch = y
    else:
        validate_audio(y)
        batch = y[np.newaxis]
    _warn_short(batch.shape[-1], n_fft)
    out = np.ascontiguousarray(
        _logmel_batch(batch, sr=sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, power=float(power))
    )
    return out if y.ndim == 2 else out[0]


def _warn_short(n: int, n_fft: int) -> None:
    if n_fft > n:
        warnings.warn(
            f"n_fft={n_fft} is longer than the clip of {n} samples: frames are mostly zero padding. "
            "Use a smaller n_fft (or longer clips) to silence this warning.",
            stacklevel=3,
        )


# --------------------------------------------------------------------------------------------
# Frame stacking


def _n_vectors(n_frames: int, frames: int, *, what: str) -> int:
    n_vectors = n_frames - frames + 1
    if n_vectors < 1:
        raise DataError(
            f"frames={frames} is more than the {n_frames} STFT frames of {what}: the clip is too short "
            "(lower feature.frames or hop_length)"
        )
    return n_vectors


def _stack_into(logmel: np.ndarray, frames: int, out: np.ndarray) -> None:
    """Write the stacked vectors of `logmel` [shape=(n_mels, n_frames)] into `out` [shape=(n_vectors, n_mels * frames)]."""
    n_mels = logmel.shape[0]
    n_vectors = out.shape[0]
    for k in range(frames):
        out[:, n_mels * k : n_mels * (k + 1)] = logmel[:, k : k + n_vectors].T


def stack_frames(logmel: np.ndarray, *, frames: int) -> np.ndarray:
    """Stack `frames` consecutive log-mel frames into one vector per time step (MIMII baseline).

    ``vectors[:, n_mels * k : n_mels * (k + 1)] = logmel[:, k : k + n_vectors].T`` for
    ``k = 0 .. frames - 1``, with ``n_vectors = n_frames - frames + 1``.

    Parameters
    ----------
    logmel : np.ndarray [shape=(n_mels, n_frames)]
        A log-mel spectrogram.
    frames : int >= 1
        Consecutive frames per vector.

    Returns
    -------
    vectors : np.ndarray [shape=(n_vectors, n_mels * frames), float32]

    Raises
    ------
    ConfigError
        `frames` < 1.
    DataError
        `logmel` is not 2-D, or `frames` exceeds the clip's `n_frames` (the baseline silently
        returns no vectors there; here that clip would get no score).

    Examples
    --------
    >>> stack_frames(np.arange(6.0).reshape(2, 3), frames=2)
    array([[0., 3., 1., 4.],
           [1., 4., 2., 5.]], dtype=float32)
    """
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ConfigError(f"frames={frames!r} must be an integer >= 1")
    logmel = np.asarray(logmel)
    if logmel.ndim != 2:
        raise DataError(f"logmel must have shape (n_mels, n_frames), got shape={logmel.shape}")
    n_mels, n_frames = logmel.shape
    n_vectors = _n_vectors(n_frames, frames, what="the log-mel spectrogram")
    out = np.empty((n_vectors, n_mels * frames), dtype=np.float32)
    _stack_into(logmel, frames, out)
    return out


def logmel_frames(
    y: np.ndarray,
    *,
    sr: int,
    n_mels: int = _DEFAULT.n_mels,
    frames: int = _DEFAULT.frames,
    n_fft: int = _DEFAULT.n_fft,
    hop_length: int = _DEFAULT.hop_length,
    power: float = _DEFAULT.power,
) -> np.ndarray:
    """Stacked log-mel vectors of one clip: `logmel` then `stack_frames`.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], floating
        One channel of one clip.
    sr, n_mels, n_fft, hop_length, power
        As in `logmel`.
    frames : int >= 1
        Consecutive frames per vector.

    Returns
    -------
    vectors : np.ndarray [shape=(n_vectors, n_mels * frames), float32]
        ``n_vectors = 1 + n // hop_length - frames + 1``: 309 x 320 for 10 s at 16 kHz with the
        defaults.

    Raises
    ------
    AudioError
        `y` is not a valid mono signal.
    ConfigError
        A parameter is out of range.
    DataError
        The clip has fewer than `frames` frames.
    """
    _check_params(sr=sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, power=power, frames=frames)
    validate_audio(y)
    n_frames = n_frames_of(y.shape[0], n_fft=n_fft, hop_length=hop_length)
    n_vectors = _n_vectors(n_frames, frames, what=f"a clip of {y.shape[0]} samples")
    _warn_short(y.shape[0], n_fft)
    spec = _logmel_batch(y[np.newaxis], sr=sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, power=float(power))[0]
    out = np.empty((n_vectors, n_mels * frames), dtype=np.float32)
    _stack_into(spec, frames, out)
    return out


def reference_logmel_frames(
    path: str | os.PathLike, *, channel: int = 0, n_mels: int = _DEFAULT.n_mels, frames: int = _DEFAULT.frames,
    n_fft: int = _DEFAULT.n_fft, hop_length: int = _DEFAULT.hop_length, power: float = _DEFAULT.power,
) -> np.ndarray:
    """The MIMII baseline's ``file_to_vector_array``, as published (for parity tests and benchmarks).

    ``librosa.load(path, sr=None, mono=False)``, keep `channel`, ``librosa.feature.melspectrogram``,
    ``20 / power * log10(mel + eps)``, stack `frames` frames. Unlike the baseline, which returns
    an empty array, a clip with fewer than `frames` frames raises.

    Parameters
    ----------
    path : str or os.PathLike
        A WAV file.
    channel : int >= 0
        Channel to keep.
    n_mels, frames, n_fft, hop_length, power
        As in `logmel_frames`.

    Returns
    -------
    vectors : np.ndarray [shape=(n_vectors, n_mels * frames), float32]

    Raises
    ------
    AudioError
        `channel` is out of range.
    DataError
        The clip has fewer than `frames` frames.
    """
    import librosa

    y, sr = librosa.load(path, sr=None, mono=False)
    if y.ndim == 1:
        y = y[np.newaxis]
    if not 0 <= channel < y.shape[0]:
        raise AudioError(f"channel={channel} is out of range for WAV file {path} with {y.shape[0]} channel(s)")
    mel = librosa.feature.melspectrogram(
        y=y[channel], sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels, power=power
    )
    log_mel = 20.0 / power * np.log10(mel + sys.float_info.epsilon)
    n_vectors = _n_vectors(log_mel.shape[1], frames, what=f"{path}")
    vectors = np.zeros((n_vectors, n_mels * frames), dtype=np.float32)
    for t in range(frames):
        vectors[:, n_mels * t : n_mels * (t + 1)] = log_mel[:, t : t + n_vectors].T
    return vectors
