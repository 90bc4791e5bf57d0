"""WAV files -> stacked log-mel vectors, concatenated with their offsets (`extract`), fast on many files.

The numbers are `common.features.logmel.logmel_frames` of each clip, bit for bit; what this module adds is
the work over many files:

- reads every header first (rate, channel, length: `vector_offsets`), so a bad file fails
  before any work and the output can be allocated (or memory-mapped) once;
- reads only the chosen channel (`common.features.audio.read_channel`) instead of decoding all eight;
- runs `jobs` threads over chunks of files (file reads, FFT, sparse product and ufuncs release
  the GIL; no BLAS, whose own threads would fight the workers), each with its own scratch
  buffers, and transforms equal-length clips of a chunk as one batch.

Caching the vectors on disk is `common.features.cache`'s job.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Iterable, Sequence

import numpy as np
from tqdm.auto import tqdm

from common.features.audio import WavInfo, check_info, read_channel, wav_info
from common.features.params import FeatureConfig
from common.errors import AudioError, ConfigError, DataError
from common.features.logmel import _check_params, _logmel_padded, _n_vectors, _padded, _stack_into, _warn_short, _Workspace, n_frames_of

_DEFAULT = FeatureConfig()  # the keyword defaults of `extract`

# Clips per task given to a worker thread; clips per batch (one mel product and log per batch).
_CHUNK = 8
_BATCH = 4


def vector_offsets(
    files: Sequence[str], *, channel: int, sr: int | None, frames: int, n_fft: int, hop_length: int
) -> tuple[list[WavInfo], np.ndarray]:
    """Read and check every file's header; the headers and where each file's vectors go.

    Returns
    -------
    infos : list of WavInfo
        One per file, checked for `channel` and `sr` (None: any rate).
    offsets : np.ndarray [shape=(len(files) + 1,), int64]
        File ``i``'s vectors are rows ``offsets[i]:offsets[i + 1]`` of the concatenation.

    Raises
    ------
    AudioError
        A file is missing, broken, has another rate, or lacks `channel`.
    DataError
        A clip has fewer than `frames` STFT frames.
    """
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
    files: Iterable[str | os.PathLike], *, channel: int = 0, sr: int = 16000, jobs: int = 2, progress: bool = True,
    n_mels: int = _DEFAULT.n_mels, frames: int = _DEFAULT.frames, n_fft: int = _DEFAULT.n_fft,
    hop_length: int = _DEFAULT.hop_length, power: float = _DEFAULT.power, out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Stacked log-mel vectors of many WAV files, concatenated.

    All headers are read and checked first (`vector_offsets`), so a bad file fails before any
    work. Clips are then processed in chunks by `jobs` threads; equal-length clips of a chunk
    share one FFT and one matmul. The result equals `common.features.logmel.logmel_frames` of each clip.

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
        As in `common.features.logmel.logmel_frames`.
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
        A file is missing, broken, truncated, has another rate, lacks `channel`, or gives non-finite
        features (`check_finite_logmel`).
    ConfigError
        A parameter is out of range.
    DataError
        `out` has the wrong shape, or a clip has fewer than `frames` frames.
    """
    files = [str(f) for f in files]
    params = dict(sr=sr, n_mels=n_mels, n_fft=n_fft, hop_length=hop_length, power=float(power))
    _check_params(frames=frames, **params)
    if isinstance(jobs, bool) or not isinstance(jobs, (int, np.integer)) or jobs < 1:
        raise ConfigError(f"jobs={jobs!r} must be a positive integer")
    infos, offsets = vector_offsets(files, channel=channel, sr=sr, frames=frames, n_fft=n_fft, hop_length=hop_length)
    out = _output(out, (int(offsets[-1]), n_mels * frames))
    if files:
        _warn_short(min(info.frames for info in infos), n_fft)
        _extract_all(files, infos, out, offsets, channel=channel, frames=frames, params=params, jobs=jobs,
                     progress=progress)
    return out, offsets


def _output(out: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """`out` checked against `shape` (float32), or a new array of it when None."""
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if out.shape != shape or out.dtype != np.float32:
        raise DataError(f"out has shape={out.shape} dtype={out.dtype}, expected shape={shape} float32")
    return out


def _extract_all(
    files: list[str],
    infos: list[WavInfo],
    out: np.ndarray,
    offsets: np.ndarray,
    *,
    channel: int,
    frames: int,
    params: dict[str, Any],
    jobs: int,
    progress: bool,
) -> None:
    """Fill `out` with the vectors of all `files`: chunks of `_CHUNK` clips over `jobs` threads."""
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
            return
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run, idx) for idx in chunks]
            try:
                for fut in as_completed(futures):
                    bar.update(fut.result())
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise


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
                check_finite_logmel(spec[row], files[i], params)
                _stack_into(spec[row], frames, out[offsets[i] : offsets[i + 1]])
    return len(idx)


def check_finite_logmel(logmel: np.ndarray, path: str, params: dict[str, Any]) -> None:
    """Raise `AudioError` naming `path` when its log-mel has a non-finite value: such a clip can only score NaN.

    `common.features.audio.check_sample_range` rejects the samples that overflow at the usual ``feature.power``;
    this catches the rest (a larger power), so no inf ever reaches the cache or a model.
    """
    if not np.isfinite(logmel).all():
        raise AudioError(
            f"WAV file {path} gives non-finite log-mel features (feature.power={params['power']:g}, "
            f"n_fft={params['n_fft']}): its samples overflow the power spectrum; fix or remove the file"
        )
