"""Anomaly score of a clip: the mean reconstruction error over its vectors (DCASE 2020 baseline)."""

from __future__ import annotations

import numpy as np

from common.errors import MetricError
from common.models.inference import outputs

ROWS = 16384  # rows squared at a time by `residual_clip_scores` (20 MB at 320 wide; a new array was 200 MB)


def reconstruction_errors(model, x: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
    """Mean squared reconstruction error of each vector [shape=(n_vectors,)], in batches of `batch_size`."""
    out = outputs(model, x, batch_size=batch_size)
    np.subtract(np.asarray(x, dtype=np.float32), out, out=out)  # in place: the same numbers, no new 200 MB arrays
    return np.mean(np.square(out, out=out), axis=1)


def clip_scores(model, vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Score every clip in one batched pass over all their vectors.

    Parameters
    ----------
    vectors : np.ndarray [shape=(n_vectors, input_dim)]
        The vectors of all clips, concatenated.
    offsets : np.ndarray [shape=(n_clips + 1,)]
        Clip i owns ``vectors[offsets[i]:offsets[i + 1]]``; clips may differ in length.

    Returns
    -------
    scores : np.ndarray [shape=(n_clips,)]
    """
    _check(offsets, len(vectors))
    return _clip_means(reconstruction_errors(model, vectors), offsets)


def residual_clip_scores(residuals: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """`clip_scores` from the vectors' residuals ``x - model(x)`` (`common.scoring.scorer.residuals`), bit for bit:
    a caller that holds them (``transfer_mahalanobis`` shares ``transfer``'s) runs the model no second time."""
    _check(offsets, len(residuals))
    errors = np.empty(len(residuals), dtype=np.float32)
    square = np.empty((min(len(residuals), ROWS), *residuals.shape[1:]), dtype=np.float32)
    for a in range(0, len(residuals), ROWS):  # a row's mean is its own: chunks give the same numbers, in less memory
        part = square[:len(residuals[a:a + ROWS])]
        errors[a:a + ROWS] = np.mean(np.square(residuals[a:a + ROWS], out=part), axis=1)
    return _clip_means(errors, offsets)


def _check(offsets: np.ndarray, n_vectors: int) -> None:
    offsets = np.asarray(offsets)
    if offsets[0] != 0 or offsets[-1] != n_vectors or np.any(np.diff(offsets) < 1):
        raise MetricError(f"offsets must run from 0 to {n_vectors} with every clip owning >= 1 vector")


def _clip_means(errors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    offsets = np.asarray(offsets)
    return np.add.reduceat(errors.astype(np.float64), offsets[:-1]) / np.diff(offsets)
