"""Two families on statistics of the clip's samples that the log-mel cache does not hold, each a Gaussian scored by
Mahalanobis distance, as the statistics family does with the log-mel statistics
(`common.features.sample_stats`):

- the modulation family, on the rhythm of each band's level (`common.features.modulation`): ``mod_scratch`` (the
  control) and ``mod_transfer``;
- the fine-spectrum family, on 128 fine mel bands (`common.features.fine_spectrum`): ``fine_scratch`` (the
  control) and ``fine_transfer``.

A ``*_scratch`` control takes the mean and Ledoit-Wolf covariance from the budget's clips only (one clip: the
distance is Euclidean). A ``*_transfer`` method takes the covariance (how normal sound varies) from the source
machines, each centred on its own mean, and only the mean from the target's few clips. Each clip's vector is
computed from its WAV samples once and cached under ``data.cache_dir`` (as SoundNet's embeddings are); the row model is of the statistic's kind (`common.models.kinds`),
so ``python -m common score`` computes a new clip's vector as the run did. Cost: about 9 ms per 10 s clip and
statistic on one core, plus reading its samples. Not in ``make demo`` (tens of seconds on its 1,200 clips, with
little room left in its 5 minutes).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from common.features.clipvectors import out_of_sample_rows
from common.features.fine_spectrum import KIND as FINE
from common.features.modulation import KIND as MODULATION
from common.features.sample_stats import architecture, cached_wav_rows
from common.methods.base import Adapted, CellData, wav_clip_rows
from common.scoring.mahalanobis import Gaussian, fit_gaussian, selective, to_arrays

SCORER = {"kind": "gaussian", "input": "clip_vectors"}


def clip_rows(data: CellData, kind: str, files: Sequence[Path], *, halves: bool = False) -> np.ndarray:
    """The statistic `kind` of `files` [shape=(n, dim), or (2n, dim) with `halves`]: from this process's memo, else
    the cache under ``data.cache_dir``, else computed (and cached)."""
    arch = architecture(kind, data.cfg.data.sample_rate)
    return wav_clip_rows(data, ("sample_stats", kind), files, lambda missing, **kw: cached_wav_rows(missing, arch, **kw),
                         halves=halves).astype(np.float64)


def _adapted(data: CellData, kind: str, gaussian_of: Callable[[np.ndarray], Gaussian], start: float,
             **sidecar) -> Adapted:
    """The budget's Gaussian, its clips' out-of-sample scores, and the evaluation clips scored here."""
    rows = clip_rows(data, kind, data.train_files)
    half_rows = clip_rows(data, kind, data.train_files, halves=True) if len(rows) == 1 else None
    train_scores = out_of_sample_rows(lambda r: [gaussian_of(r)], selective, rows, half_rows)
    gaussian, seconds = gaussian_of(rows), time.perf_counter() - start
    scores = selective([gaussian], clip_rows(data, kind, data.md.split.eval_files))
    return Adapted(architecture(kind, data.cfg.data.sample_rate), [], train_scores, len(data.train_files), seconds,
                   scores=scores, scorer=dict(SCORER), head=to_arrays([gaussian]), sidecar=sidecar)


def source_precision(data: CellData, kind: str) -> np.ndarray:
    """The precision of the source clips' statistic `kind`, each machine centred on its own mean."""
    source = data.cell.source
    key = ("sample_stats_source", kind, source.label, data.cfg.statistics.source_clips,
           data.cfg.experiment.pretrain_seed)
    if key not in data.memo:
        centred = [rows - rows.mean(axis=0)
                   for rows in (clip_rows(data, kind, files) for _, files in data.source_files(source))]
        data.memo[key] = fit_gaussian(np.concatenate(centred), mean=np.zeros(centred[0].shape[1])).precision
    return data.memo[key]


def _scratch(data: CellData, kind: str) -> Adapted:
    return _adapted(data, kind, fit_gaussian, time.perf_counter(), sources=[])


def _transfer(data: CellData, kind: str) -> Adapted:
    start = time.perf_counter()
    precision = source_precision(data, kind)
    return _adapted(data, kind, lambda rows: Gaussian(rows.mean(axis=0), precision), start,
                    sources=[m.name for m in data.cell.source.machines])


def mod_scratch(data: CellData) -> Adapted:
    """Mean and Ledoit-Wolf covariance of the budget's modulation statistics (no source data)."""
    return _scratch(data, MODULATION)


def mod_transfer(data: CellData) -> Adapted:
    """The source machines' within-machine covariance of modulation statistics, centred on the budget's mean."""
    return _transfer(data, MODULATION)


def fine_scratch(data: CellData) -> Adapted:
    """Mean and Ledoit-Wolf covariance of the budget's fine log-mel statistics (no source data)."""
    return _scratch(data, FINE)


def fine_transfer(data: CellData) -> Adapted:
    """The source machines' within-machine covariance of fine log-mel statistics, centred on the budget's mean."""
    return _transfer(data, FINE)


FUNCTIONS = (mod_scratch, mod_transfer, fine_scratch, fine_transfer)  # these families' methods
