"""One vector per clip from its frame vectors: log-mel statistics, and halves of clips for out-of-sample scores.

The statistics (mean and std over frames of each mel band) are the clip features of the no-network
methods (the statistics family and the embedding family's control). A training clip's own score (what its
model's decision threshold is fitted on) must not come from a model that contains it (a bank holds
it at distance 0): `out_of_sample` scores each clip with a model fitted without it (leave-one-out,
or ten folds for many clips), and a single clip one half against the other.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from common.errors import MetricError


def check_offsets(vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """`offsets` as an int array, checked: from 0 to len(vectors), every clip owning at least one vector."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if len(offsets) < 2 or offsets[0] != 0 or offsets[-1] != len(vectors) or np.any(np.diff(offsets) < 1):
        raise MetricError(f"offsets must run from 0 to {len(vectors)} with every clip owning >= 1 vector")
    return offsets


def logmel_stats(vectors: np.ndarray, offsets: np.ndarray, *, n_mels: int) -> np.ndarray:
    """Each clip's mean and std over frames of its log-mel bands [shape=(n_clips, 2 * n_mels)].

    Frame t of a clip is the first `n_mels` values of its vector t (vectors stack frames t, t+1, ...).
    """
    if isinstance(n_mels, bool) or not isinstance(n_mels, (int, np.integer)) or not 1 <= n_mels <= vectors.shape[1]:
        raise MetricError(f"n_mels={n_mels!r} must be an integer in [1, {vectors.shape[1]}] (the vector width)")
    offsets = check_offsets(vectors, offsets)
    frames = np.asarray(vectors[:, :n_mels], dtype=np.float64)
    counts = np.diff(offsets)[:, None]
    mean = np.add.reduceat(frames, offsets[:-1], axis=0) / counts
    square = np.add.reduceat(frames ** 2, offsets[:-1], axis=0) / counts
    return np.hstack([mean, np.sqrt(np.maximum(square - mean ** 2, 0.0))])


def halves(offsets: np.ndarray) -> np.ndarray:
    """Offsets cutting each clip into two halves (clip i becomes parts 2i and 2i+1); clips need 2+ vectors."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if np.any(np.diff(offsets) < 2):
        raise MetricError("a clip needs at least two vectors to be cut into halves")
    cut = np.empty(2 * len(offsets) - 1, dtype=np.int64)
    cut[0::2], cut[1::2] = offsets, (offsets[:-1] + offsets[1:]) // 2
    return cut


def take_clips(vectors: np.ndarray, offsets: np.ndarray, clips) -> tuple[np.ndarray, np.ndarray]:
    """The vectors and offsets of the given clips, in the given order."""
    clips = list(clips)
    parts = [vectors[offsets[i]:offsets[i + 1]] for i in clips]
    new = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=new[1:])
    return (np.concatenate(parts) if parts else vectors[:0]), new


def folds(n: int, *, max_folds: int = 10) -> list[np.ndarray]:
    """Clip indices 0..n-1 cut into at most `max_folds` consecutive folds (leave-one-out up to that many clips)."""
    return [f for f in np.array_split(np.arange(n), min(n, max_folds)) if len(f)]


def out_of_sample_rows(fit: Callable, score: Callable, rows: np.ndarray, halves_rows: np.ndarray | None = None,
                       *, max_folds: int = 10) -> np.ndarray:
    """Each training clip's score by a model fitted without it, on clip vectors (`rows`, one per clip).

    ``fit(rows) -> model`` and ``score(model, rows) -> scores``. Clips are left out a fold at a time
    (one by one up to `max_folds` clips). A single clip needs `halves_rows` (its two halves' vectors):
    each half is scored by the model of the other, and the clip's score is their mean.
    """
    rows = np.atleast_2d(rows)
    if len(rows) == 1:
        if halves_rows is None:
            raise MetricError("one training clip: its halves are needed to score it out of sample")
        a, b = halves_rows[:1], halves_rows[1:2]
        return np.array([(score(fit(a), b)[0] + score(fit(b), a)[0]) / 2])
    out = np.empty(len(rows))
    for fold in folds(len(rows), max_folds=max_folds):
        out[fold] = score(fit(np.delete(rows, fold, axis=0)), rows[fold])
    return out


def out_of_sample(fit: Callable | None, score: Callable, vectors: np.ndarray, offsets: np.ndarray,
                  *, max_folds: int = 10, fit_without: Callable | None = None) -> np.ndarray:
    """As `out_of_sample_rows`, for models fitted on frame vectors: ``fit(vectors, offsets)``, ``score(model, v, o)``.

    ``fit_without(vectors, offsets, parts) -> models`` (an iterable), when given, replaces `fit`: model ``i`` fitted
    on every clip of `offsets` but those of ``parts[i]`` (consecutive clip indices), all at once (e.g. from the
    whole set's sums less each part's, `common.scoring.mahalanobis.gaussians_without`). A single clip's parts are
    its two halves.
    """
    offsets = check_offsets(vectors, offsets)
    n = len(offsets) - 1
    if fit_without is None:
        def fit_without(v, o, parts):
            rest = lambda part: [j for j in range(len(o) - 1) if j not in set(part)]  # noqa: E731
            return (fit(*take_clips(v, o, rest(part))) for part in parts)  # one at a time, as scored
    if n == 1:
        cut = halves(offsets)
        first, second = take_clips(vectors, cut, [0]), take_clips(vectors, cut, [1])
        without_second, without_first = fit_without(vectors, cut, [[1], [0]])
        return np.array([(score(without_second, *second)[0] + score(without_first, *first)[0]) / 2])
    out = np.empty(n)
    parts = folds(n, max_folds=max_folds)
    for fold, model in zip(parts, fit_without(vectors, offsets, [list(f) for f in parts])):
        out[fold] = score(model, *take_clips(vectors, offsets, fold))
    return out
