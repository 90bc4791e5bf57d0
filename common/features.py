"""Log-mel spectrogram -> stacked frame vectors (the MIMII baseline's features), fast and cached.

The definition is the MIMII baseline's ``file_to_vector_array``::

    y (one channel) -> librosa.feature.melspectrogram(y=y, sr=sr, n_fft, hop_length, n_mels, power)
      -> logmel = 20 / power * log10(mel + sys.float_info.epsilon)         [dB, (n_mels, n_frames)]
      -> vector t = concat(logmel[:, t], ..., logmel[:, t + frames - 1])   [(n_vectors, n_mels * frames)]

with librosa's defaults (``center=True``, zero padding, periodic Hann window, Slaney mel
filters). `reference_logmel_frames` is that pipeline verbatim; it is kept for parity tests and
the benchmark. The fast path computes the same numbers differently:

- reads only the chosen channel (`common.audio.read_channel`) instead of decoding all eight;
- frames clips with stride tricks into reused buffers (fresh multi-MB arrays cost page faults),
  FFTs blocks of frames that stay in cache, and applies the mel filters as one sparse float32
  product and ``log10`` per batch of equal-length clips;
- runs `jobs` threads over chunks of files (file reads, FFT, sparse product and ufuncs release
  the GIL; no BLAS, whose own threads would fight the workers).

Parity: the FFT runs in float64, as librosa's does (librosa multiplies float32 frames by a
float64 window, so numpy/scipy transform in float64 and store complex64). What remains is float32
rounding in ``|X|**power``, the mel product's summation order and the log: under 1e-5 dB over
200 synthetic 10 s MIMII clips, 3e-5 dB (two float32 ulps at -156 dB) on pure tones and digital
silence; the tests assert 1e-4 dB. A float32 FFT would save ~30 % of that step but is not
faithful: its rounding error scales with the whole frame's energy, so bands far below the loudest
drift (2e-4 dB at 75 dB dynamic range, 0.015 dB at 110 dB, 30 dB where a pure tone leaves
exact zeros).

`extract` returns all vectors of a list of files concatenated, with offsets; `cached_features`
stores them under a key of every parameter and each file's path, size, mtime, inode and ctime, so a
changed parameter or a rewritten file (even one of the same size and mtime) never returns stale features.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import shutil
import sys
import tempfile
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import scipy.fft
import scipy.sparse
from tqdm.auto import tqdm

from .audio import WavInfo, check_info, read_channel, validate_audio, wav_info
from .io import digest, file_fingerprint
from .errors import AudioError, DataError

# Bump when the feature definition or the cache layout changes: old entries then miss.
FORMAT_VERSION = 1

# Clips per task given to a worker thread; clips per batch (one mel product and log per batch);
# frames per FFT block (128 x 1024 float64 = 1 MiB, near the 512 KiB L2 with its spectrum).
_CHUNK = 8
_BATCH = 4
_BLOCK = 128

_EPS32 = np.float32(sys.float_info.epsilon)

# numpy >= 2 can write an FFT into a preallocated array.
_FFT_OUT = np.lib.NumpyVersion(np.__version__) >= "2.0.0"


# --------------------------------------------------------------------------------------------
# Parameters


def _check_params(*, sr: int, n_mels: int, n_fft: int, hop_length: int, power: float, frames: int | None = None) -> None:
    """Raise `DataError` naming the first parameter out of range."""
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
            raise DataError(f"{name}={value!r} must be {expected}")


def n_frames_of(n_samples: int, *, n_fft: int = 1024, hop_length: int = 512) -> int:
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
    y: np.ndarray,
    *,
    sr: int,
    n_mels: int = 64,
    n_fft: int = 1024,
    hop_length: int = 512,
    power: float = 2.0,
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
    DataError
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
    DataError
        `frames` < 1, `logmel` is not 2-D, or `frames` exceeds the clip's `n_frames` (the
        baseline silently returns no vectors there; here that clip would get no score).

    Examples
    --------
    >>> stack_frames(np.arange(6.0).reshape(2, 3), frames=2)
    array([[0., 3., 1., 4.],
           [1., 4., 2., 5.]], dtype=float32)
    """
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise DataError(f"frames={frames!r} must be an integer >= 1")
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
    n_mels: int = 64,
    frames: int = 5,
    n_fft: int = 1024,
    hop_length: int = 512,
    power: float = 2.0,
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
    DataError
        A parameter is out of range, or the clip has fewer than `frames` frames.
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
    path: str | os.PathLike,
    *,
    channel: int = 0,
    n_mels: int = 64,
    frames: int = 5,
    n_fft: int = 1024,
    hop_length: int = 512,
    power: float = 2.0,
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


# --------------------------------------------------------------------------------------------
# Many files


def _plan(
    files: Sequence[str], *, channel: int, sr: int | None, frames: int, n_fft: int, hop_length: int
) -> tuple[list[WavInfo], np.ndarray]:
    """Headers of all files (checked) and the int64 offsets of their vectors."""
    infos = []
    counts = np.empty(len(files), dtype=np.int64)
    for i, path in enumerate(files):
        info = wav_info(path)
        check_info(info, path, channel=channel, expected_sr=sr)
        n_frames = n_frames_of(info.frames, n_fft=n_fft, hop_length=hop_length)
        counts[i] = _n_vectors(n_frames, frames, what=f"{path} ({info.frames} samples)")
        infos.append(info)
    offsets = np.zeros(len(files) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return infos, offsets


def extract(
    files: Iterable[str | os.PathLike],
    *,
    channel: int = 0,
    sr: int = 16000,
    jobs: int = 2,
    progress: bool = True,
    n_mels: int = 64,
    frames: int = 5,
    n_fft: int = 1024,
    hop_length: int = 512,
    power: float = 2.0,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stacked log-mel vectors of many WAV files, concatenated.

    All headers are read and checked first (rate, channel, length), so a bad file fails before
    any work. Clips are then processed in chunks by `jobs` threads; equal-length clips of a chunk
    share one FFT and one matmul. The result equals `logmel_frames` of each clip.

    Parameters
    ----------
    files : iterable of str or os.PathLike
        WAV files; clips may differ in length.
    channel : int >= 0
        Channel to use.
    sr : int > 0
        Required sample rate of every file.
    jobs : int >= 1
        Worker threads.
    progress : bool
        Show a tqdm progress bar over files.
    n_mels, frames, n_fft, hop_length, power
        As in `logmel_frames`.
    out : np.ndarray or None
        Preallocated float32 array of the right shape to fill (e.g. a memory-mapped ``.npy``);
        None allocates one. A wrong shape raises `DataError`.

    Returns
    -------
    vectors : np.ndarray [shape=(n_vectors_total, n_mels * frames), float32]
        All vectors; file ``i`` is ``vectors[offsets[i]:offsets[i + 1]]``.
    offsets : np.ndarray [shape=(n_files + 1,), int64]

    Raises
    ------
    AudioError
        A file is missing, broken, truncated, has another rate, or lacks `channel`.
    DataError
        A parameter is out of range, `files` is empty, or a clip has fewer than `frames` frames.
    """
    files = [str(f) for f in files]
    params = dict(sr=sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, power=float(power))
    _check_params(frames=frames, **params)
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise DataError(f"jobs={jobs!r} must be a positive integer")
    infos, offsets = _plan(files, channel=channel, sr=sr, frames=frames, n_fft=n_fft, hop_length=hop_length)
    shape = (int(offsets[-1]), n_mels * frames)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32:
        raise DataError(f"out has shape={out.shape} dtype={out.dtype}, expected shape={shape} float32")
    if not files:
        return out, offsets
    _warn_short(min(info.frames for info in infos), n_fft)

    chunks = [range(s, min(s + _CHUNK, len(files))) for s in range(0, len(files), _CHUNK)]

    local = threading.local()

    def run(idx: range) -> int:
        if not hasattr(local, "ws"):
            local.ws = _Workspace()
        return _extract_indices(files, infos, idx, out, offsets, channel=channel, frames=frames, params=params, ws=local.ws)

    with tqdm(total=len(files), unit="clip", desc="log-mel", leave=False, disable=not progress) as bar:
        if jobs == 1 or len(chunks) == 1:
            for idx in chunks:
                bar.update(run(idx))
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                futures = [pool.submit(run, idx) for idx in chunks]
                try:
                    for fut in as_completed(futures):
                        bar.update(fut.result())
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    return out, offsets


def _extract_indices(
    files: Sequence[str],
    infos: Sequence[WavInfo],
    idx: Sequence[int],
    out: np.ndarray,
    offsets: np.ndarray,
    *,
    channel: int,
    frames: int,
    params: dict[str, Any],
    ws: _Workspace,
) -> int:
    """Read, transform and stack clips ``files[idx]`` into their rows of `out`; returns how many."""
    by_length: dict[int, list[int]] = {}
    for i in idx:
        by_length.setdefault(infos[i].frames, []).append(i)
    pad = params["n_fft"] // 2
    for n, members in by_length.items():
        for start in range(0, len(members), _BATCH):
            group = members[start : start + _BATCH]
            padded = _padded(len(group), n, params["n_fft"], ws)
            for row, i in enumerate(group):
                read_channel(files[i], channel=channel, expected_sr=None, info=infos[i], out=padded[row, pad : pad + n])
            spec = _logmel_padded(padded, ws=ws, **params)
            for row, i in enumerate(group):
                _stack_into(spec[row], frames, out[offsets[i] : offsets[i + 1]])
    return len(idx)


# --------------------------------------------------------------------------------------------
# Cache

# The feature parameters a key covers, with their defaults (those of `extract`).
FEATURE_DEFAULTS: dict[str, Any] = {"n_mels": 64, "frames": 5, "n_fft": 1024, "hop_length": 512, "power": 2.0}


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
    """

    files: tuple[str, ...]
    vectors: np.ndarray
    offsets: np.ndarray

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
    """`params` over `FEATURE_DEFAULTS`, checked, in a canonical form (power as float)."""
    unknown = sorted(set(params) - set(FEATURE_DEFAULTS))
    if unknown:
        raise DataError(f"unknown feature parameter(s) {unknown}; expected some of {sorted(FEATURE_DEFAULTS)}")
    merged = {**FEATURE_DEFAULTS, **params}
    for name, value in merged.items():  # numpy scalars -> JSON-able Python numbers
        if isinstance(value, np.generic):
            merged[name] = value.item()
    if isinstance(merged["power"], (int, float)) and not isinstance(merged["power"], bool):
        merged["power"] = float(merged["power"])
    return merged


def _file_stamp(path: str | os.PathLike) -> dict[str, Any]:
    try:
        return file_fingerprint(path)
    except OSError as exc:
        raise AudioError(f"WAV file {path} cannot be read: {exc.strerror}") from None


def _key_payload(files: Sequence[str | os.PathLike], *, channel: int, sr: int, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "params": dict(sorted(params.items())),
        "channel": int(channel),
        "sr": int(sr),
        "files": [_file_stamp(f) for f in files],
    }


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
    """`extract` once; later calls with the same files and parameters load the result memory-mapped.

    The entry for `feature_key` is ``<key>.vectors.npy``, ``<key>.offsets.npy`` and
    ``<key>.json`` (parameters, files, shapes) in `cache_dir`. Each is written to a temporary file
    and renamed into place, the manifest last, so an entry exists only once complete; an entry
    whose arrays do not match its manifest is rebuilt. A changed file (see `feature_key`) or
    parameter gives another key, never stale features. Entries are never deleted here: removing
    `cache_dir` is always safe.

    Parameters
    ----------
    files : iterable of str or os.PathLike
        WAV files, in the order wanted.
    cache_dir : str or os.PathLike
        Folder of the cache (created if missing).
    channel, sr, jobs, progress
        As in `extract`.
    **params
        Feature parameters: any of ``n_mels``, ``frames``, ``n_fft``, ``hop_length``, ``power``.

    Returns
    -------
    features : ClipFeatures
        With read-only memory-mapped `vectors`.

    Raises
    ------
    AudioError, DataError
        As `extract`; also DataError for an empty `files` or an unknown parameter.
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
    return ClipFeatures(files=tuple(files), vectors=vectors, offsets=offsets)


def _load_entry(paths: dict[str, Path], *, n_files: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The arrays of a complete, consistent cache entry, or None (a miss)."""
    if not paths["json"].is_file():
        return None
    try:
        manifest = json.loads(paths["json"].read_text())
        vectors = np.load(paths["vectors.npy"], mmap_mode="r", allow_pickle=False)
        offsets = np.load(paths["offsets.npy"], allow_pickle=False)
    except (OSError, ValueError):  # half-deleted or corrupt entry: rebuild it
        return None
    consistent = (
        list(vectors.shape) == manifest.get("vectors_shape")
        and vectors.dtype == np.float32
        and offsets.shape == (n_files + 1,)
        and offsets.dtype == np.int64
        and int(offsets[-1]) == vectors.shape[0]
    )
    return (vectors, offsets) if consistent else None


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
    """Extract `files` straight into a temporary ``.npy`` and move the entry into place.

    Temporary files are removed on every failure; a full disk is a `DataError` naming the folder.
    """
    infos, offsets = _plan(
        files, channel=channel, sr=sr, frames=params["frames"], n_fft=params["n_fft"], hop_length=params["hop_length"]
    )
    shape = (int(offsets[-1]), params["n_mels"] * params["frames"])
    temps: list[Path] = []

    def temp(final: Path) -> Path:
        fd, name = tempfile.mkstemp(dir=final.parent, prefix=final.name + ".", suffix=".tmp")
        os.close(fd)
        temps.append(Path(name))
        return temps[-1]

    try:
        paths["json"].parent.mkdir(parents=True, exist_ok=True)
        tmp_vectors = temp(paths["vectors.npy"])
        vectors = np.lib.format.open_memmap(tmp_vectors, mode="w+", dtype=np.float32, shape=shape)
        _reserve(tmp_vectors)
        extract(files, channel=channel, sr=sr, jobs=jobs, progress=progress, out=vectors, **params)
        vectors.flush()
        del vectors
        tmp_offsets = temp(paths["offsets.npy"])
        with open(tmp_offsets, "wb") as fh:
            np.save(fh, offsets, allow_pickle=False)
        manifest = {**payload, "key": paths["json"].name[: -len(".json")], "vectors_shape": list(shape),
                    "offsets_shape": [len(files) + 1], "dtype": "float32"}
        tmp_manifest = temp(paths["json"])
        tmp_manifest.write_text(json.dumps(manifest, indent=1))
        os.replace(tmp_vectors, paths["vectors.npy"])
        os.replace(tmp_offsets, paths["offsets.npy"])
        os.replace(tmp_manifest, paths["json"])  # last: its presence means the entry is complete
    except OSError as exc:
        raise _cache_write_error(exc, paths["json"].parent, need_bytes=4 * shape[0] * shape[1]) from None
    finally:
        for t in temps:
            with contextlib.suppress(FileNotFoundError):
                t.unlink()


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
