"""The statistics family: a Gaussian of the target's log-mel clip statistics, scored by Mahalanobis distance.

- ``lw_scratch`` (the control): mean and Ledoit-Wolf covariance from the budget's clips only. With
  one clip the covariance is unknown and the distance is Euclidean.
- ``lw_transfer``: statistical transfer without a network. The covariance (how normal sound varies
  around its mean) is learned on the source machines, each centred on its own mean, so it is the
  pooled within-machine spread; only the mean comes from the target's few clips.

The model is ``identity`` (no weights): the Gaussian is its head (`common.scoring.scorer`, ``gaussian``).
"""

from __future__ import annotations

import time

import numpy as np

from common.methods.base import Adapted, CellData, budget_stats, identity_architecture
from common.features.clipvectors import out_of_sample_rows
from common.scoring.mahalanobis import Gaussian, fit_gaussian, selective, to_arrays

SCORER = {"kind": "gaussian", "input": "logmel_stats"}


def _adapted(data: CellData, gaussian_of, start: float, **sidecar) -> Adapted:
    rows, half_rows = budget_stats(data)
    train_scores = out_of_sample_rows(lambda r: [gaussian_of(r)], selective, rows, half_rows)
    return Adapted(identity_architecture(data.train()[0].shape[1]), [], train_scores, len(data.train_files),
                   time.perf_counter() - start, scorer=dict(SCORER), head=to_arrays([gaussian_of(rows)]),
                   sidecar=sidecar)


def lw_scratch(data: CellData) -> Adapted:
    """Mean and Ledoit-Wolf covariance of the budget's clip statistics (no source data)."""
    return _adapted(data, fit_gaussian, time.perf_counter(), sources=[])


def source_covariance(data: CellData) -> Gaussian:
    """The Ledoit-Wolf Gaussian of the source clips' statistics, each machine centred on its own mean."""
    source, n_mels = data.cell.source, data.cfg.feature.n_mels
    key = ("source_covariance", source.label, data.cfg.statistics.source_clips, n_mels)
    if key not in data.memo:
        centred = [rows - rows.mean(axis=0) for rows in data.source_stats(source)]
        data.memo[key] = fit_gaussian(np.concatenate(centred), mean=np.zeros(2 * n_mels))
    return data.memo[key]


def lw_transfer(data: CellData) -> Adapted:
    """The source machines' within-machine covariance, centred on the mean of the budget's clip statistics."""
    start = time.perf_counter()
    precision = source_covariance(data).precision
    return _adapted(data, lambda rows: Gaussian(rows.mean(axis=0), precision), start,
                    sources=[m.name for m in data.cell.source.machines])


FUNCTIONS = (lw_scratch, lw_transfer)  # this family's methods
