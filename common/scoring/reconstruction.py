"""Anomaly score of a clip: the mean reconstruction error over its vectors (DCASE 2020 baseline)."""

from __future__ import annotations

import numpy as np

from common.errors import MetricError
from common.models.inference import outputs


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
    offsets = np.asarray(offsets)
    counts = np.diff(offsets)
    if offsets[0] != 0 or offsets[-1] != len(vectors) or np.any(counts < 1):
        raise MetricError(f"offsets must run from 0 to {len(vectors)} with every clip owning >= 1 vector")
    errors = reconstruction_errors(model, vectors)
    return np.add.reduceat(errors.astype(np.float64), offsets[:-1]) / counts
