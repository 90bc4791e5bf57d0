"""Nearest-neighbour anomaly score: a clip's cosine distance to the nearest clips of a bank of normal clips.

Used by the embedding family (`common.methods.embedding`): the bank is the target budget's clips
(or the source clips, zero-shot) as clip vectors; a clip far from every normal clip is anomalous.
"""

from __future__ import annotations

import numpy as np
from sklearn.neighbors import NearestNeighbors

from common.errors import MetricError


def cosine_knn(queries: np.ndarray, bank: np.ndarray, *, k: int = 1) -> np.ndarray:
    """Mean cosine distance (1 - cos) of each query to its `k` nearest bank rows [shape=(n_queries,)].

    With fewer than `k` bank rows, all of them are the neighbours.
    """
    queries, bank = np.atleast_2d(np.asarray(queries, float)), np.atleast_2d(np.asarray(bank, float))
    if len(bank) == 0:
        raise MetricError("the nearest-neighbour bank is empty: it needs at least one normal clip")
    if queries.shape[1] != bank.shape[1]:
        raise MetricError(f"queries have {queries.shape[1]} values per clip but the bank has {bank.shape[1]}")
    if k < 1:
        raise MetricError(f"k must be at least 1, got {k}")
    nn = NearestNeighbors(n_neighbors=min(k, len(bank)), metric="cosine", algorithm="brute").fit(bank)
    distances, _ = nn.kneighbors(queries)
    return distances.mean(axis=1)
