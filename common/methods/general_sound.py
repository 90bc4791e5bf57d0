"""The general-sound family: clips embedded by SoundNet-8, a network trained on general sound, never on machines.

- ``sound_random_knn`` (the control): the same network with seeded random weights (``general_sound.seed``), so a
  gain of ``sound_knn`` over it is the pretraining's, not the architecture's.
- ``sound_knn``: SoundNet-8 with the pretrained weights of the `soundnet` package (`common.models.soundnet`),
  frozen (`common.methods.catalog.GENERAL`: nothing is pretrained or saved per source set).

A clip's vector is ``general_sound.layer`` pooled over time (``general_sound.pooling``), computed from its WAV
samples, not from the log-mel cache, and cached per clip under ``data.cache_dir``
(`common.models.sound_embeddings`), so a run embeds each clip once, whatever its cells, budgets and versions. A
clip's score is its cosine distance to the nearest ``general_sound.k`` budget clips (`common.scoring.knn`); neither
method reads a source machine, so their rows have source "none", one per target, budget and seed, the same in every
version. Every bank clip's own score (for the threshold) is its distance to the *other* bank clips
(`common.features.clipvectors.out_of_sample_rows`); a single clip: between its two halves.

The row model's head holds the bank and its architecture the network (layer, pooling, the weights' sha256 or the
seed), so ``python -m common score`` embeds a new clip as the run did (`common.models.kinds`, kind ``soundnet``).

Cost (2 CPU cores, JAX): about 20 ms per 10 s clip and network once loaded, plus about 10 s per process to read
the weights and compile; a cell on cached vectors takes milliseconds. Not in ``make demo`` (its 1,200 clips, two
networks: about 2 minutes more on a demo of about 5).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from common.methods.base import Adapted, CellData, key_of, knn_train_scores, wav_clip_rows
from common.models.sound_embeddings import cached_wav_embeddings, soundnet_architecture
from common.models.soundnet import weights_path
from common.scoring.knn import cosine_knn

CLIP_INPUT = "clip_vectors"  # the scorer's input: the vectors are already one per clip (`common.scoring.scorer`)


def architecture(data: CellData, *, random_weights: bool) -> dict[str, Any]:
    """The SoundNet network of ``general_sound`` (pretrained, or the control's random weights) as a model records it."""
    g = data.cfg.general_sound
    return soundnet_architecture(layer=g.layer, pooling=g.pooling, random_weights=random_weights, seed=g.seed)


def clip_rows(data: CellData, arch: dict[str, Any], files: Sequence[Path], *, halves: bool = False) -> np.ndarray:
    """The clip vectors of `files` [shape=(n, dim), or (2n, dim) with `halves`]: from this process's memo, else the
    embedding cache, else computed (and cached)."""
    return wav_clip_rows(data, ("general_sound", key_of(arch)), files,
                         lambda missing, **kw: cached_wav_embeddings(missing, arch, **kw), halves=halves)


def _knn(data: CellData, *, random_weights: bool, **sidecar) -> Adapted:
    """The budget's clips as the bank; thresholds out of sample; the evaluation clips scored here."""
    start, k = time.perf_counter(), data.cfg.general_sound.k
    arch = architecture(data, random_weights=random_weights)
    rows = clip_rows(data, arch, data.train_files)
    half_rows = clip_rows(data, arch, data.train_files, halves=True) if len(rows) == 1 else None
    train_scores = knn_train_scores(rows, half_rows, k=k)
    bank, seconds = np.asarray(rows, dtype=np.float32), time.perf_counter() - start
    scores = cosine_knn(clip_rows(data, arch, data.md.split.eval_files), bank, k=k)
    return Adapted(arch, [], train_scores, len(data.train_files), seconds, scores=scores,
                   scorer={"kind": "knn", "input": CLIP_INPUT, "k": k}, head={"bank": bank},
                   sidecar={"sources": [], **sidecar})


def sound_random_knn(data: CellData) -> Adapted:
    """Nearest budget clip in the embedding of SoundNet with seeded random weights: no pretraining, no source data."""
    return _knn(data, random_weights=True)


def sound_knn(data: CellData) -> Adapted:
    """Nearest budget clip in the embedding of SoundNet pretrained on general sound (frozen): no source data."""
    return _knn(data, random_weights=False, pretrained=str(weights_path()))


FUNCTIONS = (sound_random_knn, sound_knn)  # this family's methods
