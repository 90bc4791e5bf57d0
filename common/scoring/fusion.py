"""Fused scores: each part's clip scores normalised by its training clips' scores, then summed (score fusion).

The toolkits' ensembles (ASDKit, the DCASE 2023-2024 top systems) add the scores of systems that see different
things, each brought to one scale first. Here a part's scale is fitted on the budget clips only: the mean and
standard deviation of its training clips' scores (out of sample where the part has them), so no evaluation
clip sets a weight. With one clip, or scores that do not vary, the scale is the mean's size (the score as a
ratio to the training clips' typical score).

A fused scorer (``{"kind": "fusion", "parts": [...]}``, `common.scoring.scorer`) lists its parts, each with its
own scorer, its head's ``prefix`` in the model's head, and its ``mean`` and ``scale``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

PART_KEYS = ("scorer", "prefix", "mean", "scale")  # what each part of a fused scorer records


def normaliser(train_scores: Sequence[float]) -> tuple[float, float]:
    """(mean, scale) of a part's training clip scores: their mean and standard deviation, with a floor."""
    scores = np.asarray(train_scores, dtype=np.float64)
    mean, std = float(scores.mean()), float(scores.std())
    if std > 1e-6 * abs(mean):
        return mean, std
    return mean, (abs(mean) if mean != 0 else 1.0)


def part_head(head: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The arrays of one part in a fused head: those named ``prefix + name``, under ``name``."""
    return {name[len(prefix):]: array for name, array in head.items() if name.startswith(prefix)}


def fused_head(heads: Sequence[Mapping[str, np.ndarray] | None]) -> tuple[list[str], dict[str, np.ndarray]]:
    """The prefixes (``p0_``, ``p1_``, ...) of the parts and one head holding every part's arrays under its prefix."""
    prefixes = [f"p{i}_" for i in range(len(heads))]
    return prefixes, {p + name: a for p, h in zip(prefixes, heads) for name, a in (h or {}).items()}


def fuse(part_scores: Sequence[np.ndarray], parts: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """The sum over parts of ``(score - mean) / scale`` [shape=(n_clips,)]."""
    return np.sum([(np.asarray(s, dtype=np.float64) - float(p["mean"])) / float(p["scale"])
                   for s, p in zip(part_scores, parts)], axis=0)
