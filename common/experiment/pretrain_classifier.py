"""Pretrain the embedding family's model of a source set: a classifier of its machines, with a zero-shot bank.

The classes are the source machines (type/ID), in the source set's order; on DCASE 2021-2025 data each machine's
clips are split further by their domain and attributes (``fan/section_00/source_vel_21``), as the challenge's
classifier systems train, so even a source set of one machine has classes to tell apart. The training inputs are
``embedding.vectors_per_clip`` inputs (frame vectors, or windows of ``embedding.window`` frames) of
every training clip of each (never an evaluation clip). The saved model's head is a bank of the embeddings of ``statistics.source_clips`` clips per
source machine, and its threshold comes from those clips' out-of-sample distances: used as is, it
is ``embed_zero_shot``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from common.config import Config
from common.data.mimii import budget_subset
from common.data.machines import class_names, clip_classes
from common.data.dataset import Machines, n_channels
from common.models.classifier import classifier_architecture, embed_clips, sample_inputs, train_classifier
from common.io import atomic_write_text
from common.lock import check_still_locked
from common.models.saved import Sidecar, save_model, up_to_date, write_sidecar
from common.models.kinds import with_weights
from common.methods.base import (PretrainJob, data_fields, data_identity, feature_sidecar, fit_identity, key_of,
                                 knn_train_scores, threshold_fields)


def architecture_of(cfg: Config, input_dim: int, n_classes: int) -> dict:
    """The classifier architecture the ``embedding`` section asks for, on vectors of `input_dim` values."""
    e = cfg.embedding
    return classifier_architecture(input_dim, n_classes, hidden=e.hidden, embedding_dim=e.embedding_dim, head=e.head,
                                   scale=e.scale or None, margin=e.margin, window=e.window,
                                   n_mels=cfg.feature.n_mels if e.window else None)


def source_classes(data: Machines, machines) -> list[str]:
    """`class_names` of the checked splits of `machines` (their good training clips)."""
    return class_names([data.checked(m).split for m in machines])


def training_vectors(cfg: Config, data: Machines, job: PretrainJob, arch) -> tuple[np.ndarray, np.ndarray]:
    """Sampled network inputs of every training clip of each source machine, and each one's class."""
    index = {name: i for i, name in enumerate(source_classes(data, job.source.machines))}
    xs, ys = [], []
    for i, machine in enumerate(job.source.machines):
        md = data[machine]
        x, clips = sample_inputs(arch, *md.vectors(md.split.train), cfg.embedding.vectors_per_clip, job.seed + i)
        xs.append(x)
        ys.append(np.array([index[c] for c in clip_classes(md.split, md.split.train)], dtype=np.int64)[clips])
    return np.concatenate(xs), np.concatenate(ys)


def source_bank(cfg: Config, data: Machines, job: PretrainJob, arch, weights) -> np.ndarray:
    """Clip embeddings of ``statistics.source_clips`` training clips of each source machine, machine by machine."""
    banks = []
    for machine in job.source.machines:
        md = data[machine]
        files = budget_subset(md.split.train, min(cfg.statistics.source_clips, len(md.split.train)), seed=job.seed)
        banks.append(embed_clips(arch, weights, *md.vectors(files)))
    return np.concatenate(banks)


def _attribute_classes(data: Machines, job: PretrainJob) -> list[str] | None:
    """The classes when they are not the source machines (DCASE 2021-2025 attributes); None otherwise."""
    names = source_classes(data, job.source.machines)
    return None if names == [m.name for m in job.source.machines] else names


def _key(cfg: Config, data: Machines, job: PretrainJob) -> str:
    files = [f for m in job.source.machines for f in data.checked(m).split.train]
    d, classes = cfg.to_dict(), _attribute_classes(data, job)
    return key_of({"data": data_identity(cfg, files), "embedding": d["embedding"], "fit": fit_identity(cfg),
                   "statistics": d["statistics"], "seed": job.seed, "pretraining": job.method,
                   **({"classes": classes} if classes else {})})


def pretrain_embedding(cfg: Config, data: Machines, job: PretrainJob, path: Path) -> bool:
    """Train and save the classifier of `job` at `path` unless an up-to-date one is there; True when trained."""
    key = _key(cfg, data, job)
    train_files = [f for m in job.source.machines for f in data.checked(m).split.train]
    if (found := up_to_date(path, key)) is not None:
        if found.data_key is None:  # saved before sidecars recorded it; the key matched, so these are its clips
            check_still_locked(cfg.output.model_dir, writing=path.with_suffix(".json"))
            write_sidecar(path, found.replace(**data_fields(cfg, train_files)))
        return False
    e, start = cfg.embedding, time.perf_counter()
    first = job.source.machines[0]
    classes = _attribute_classes(data, job)
    arch = architecture_of(cfg, data[first].features.take([0])[0].shape[1],
                           len(classes or job.source.machines))
    x, y = training_vectors(cfg, data, job, arch)
    fit = train_classifier(arch, None, x, y, epochs=e.epochs, batch_size=e.batch_size,
                           learning_rate=e.learning_rate, mixup=e.mixup, seed=job.seed)
    bank = source_bank(cfg, data, job, arch, fit.weights)
    train_scores = knn_train_scores(bank, None, k=e.k)
    sidecar = Sidecar(
        key=key, **data_fields(cfg, train_files), version=cfg.experiment.version, source=job.source.label,
        method="embedding",
        sources=[m.name for m in job.source.machines], classes=classes, budget="all", n_train_clips=len(train_files),
        n_train_vectors=int(len(x)), seed=job.seed, n_channels=n_channels(train_files),
        features=feature_sidecar(cfg), architecture=arch, embedding=cfg.to_dict()["embedding"],
        scorer={"kind": "knn", "input": "embedding", "k": e.k}, final_loss=fit.history["loss"][-1],
        train_seconds=round(time.perf_counter() - start, 3), train_scores=train_scores.tolist(),
        **threshold_fields(cfg, train_scores))
    check_still_locked(cfg.output.model_dir, writing=path)  # a worker whose driver was killed writes nothing
    save_model(with_weights(arch, fit.weights), path, sidecar=sidecar, head={"bank": bank.astype(np.float32)})
    atomic_write_text(path.with_suffix(".history.csv"), pd.DataFrame(fit.history).rename_axis("epoch").to_csv())
    return True
