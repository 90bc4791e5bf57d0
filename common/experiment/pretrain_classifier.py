"""Pretrain the embedding family's models of a source set: classifiers of its machines, each with a zero-shot bank.

Two networks (`NETWORKS`), one per pretraining of `common.methods.catalog.CLASSIFIER_PRETRAININGS`: ``embedding``,
the dense machine-ID classifier (`common.models.classifier`, sized by the ``embedding`` section), and
``spectrogram``, the CNN over log-mel patches with a spectrum branch and a sub-cluster AdaCos head
(`common.models.spec_classifier`, the ``spectrogram`` section). The classes are the source machines (type/ID), in
the source set's order; on DCASE 2021-2025 data each machine's clips are split further by their domain and
attributes (``fan/section_00/source_vel_21``), as the challenge's classifier systems train, so even a source set of
one machine has classes to tell apart. The training inputs are ``embedding.vectors_per_clip`` inputs (frame vectors,
or windows of ``embedding.window`` frames), or ``spectrogram.patches_per_clip`` patches, of every training clip of
each (never an evaluation clip). The saved model's head is a bank of the embeddings of ``statistics.source_clips``
clips per source machine, and its threshold comes from those clips' out-of-sample distances: used as is, the dense
classifier is ``embed_zero_shot``; the bank is also the source bank of the two-bank methods.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from common.config import Config
from common.data.mimii import budget_subset
from common.data.machines import class_names, clip_classes
from common.data.dataset import Machines, n_channels
from common.models import spec_classifier
from common.models.classifier import (ClassifierFit, classifier_architecture, embed_clips, sample_inputs,
                                      train_classifier)
from common.io import atomic_write_text
from common.lock import check_still_locked
from common.methods.catalog import EMBEDDING, SPECTROGRAM
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


def spec_architecture_of(cfg: Config, input_dim: int, n_classes: int) -> dict:
    """The spectrogram classifier the ``spectrogram`` section asks for, on vectors of `input_dim` values."""
    s = cfg.spectrogram
    return spec_classifier.spec_architecture(cfg.feature.n_mels, n_classes, input_dim=input_dim,
                                             patch_frames=s.patch_frames, channels=s.channels,
                                             embedding_dim=s.embedding_dim, sub_clusters=s.sub_clusters,
                                             scale=s.scale or None)


def _fit_classifier(cfg: Config, arch: dict, x: np.ndarray, y: np.ndarray, seed: int) -> ClassifierFit:
    e = cfg.embedding
    return train_classifier(arch, None, x, y, epochs=e.epochs, batch_size=e.batch_size, learning_rate=e.learning_rate,
                            mixup=e.mixup, seed=seed)


def _fit_spec(cfg: Config, arch: dict, x: np.ndarray, y: np.ndarray, seed: int) -> spec_classifier.SpecFit:
    s = cfg.spectrogram
    return spec_classifier.train_spec_classifier(arch, x, y, epochs=s.epochs, batch_size=s.batch_size,
                                                 learning_rate=s.learning_rate, mixup=s.mixup, seed=seed)


@dataclass(frozen=True)
class Network:
    """One classifier pretraining: the config sections it reads, and how it is built, fed, trained and used.

    ``sample(cfg, arch, vectors, offsets, seed) -> (inputs, clip of each)`` draws a clip set's training inputs;
    ``embed(arch, weights, vectors, offsets)`` gives clip embeddings; ``clip_input`` is the knn scorer's input
    (`common.scoring.scorer`) that embeds clips the same way.
    """

    sections: tuple[str, ...]
    architecture: Callable[[Config, int, int], dict]
    sample: Callable[..., tuple[np.ndarray, np.ndarray]]
    fit: Callable[[Config, dict, np.ndarray, np.ndarray, int], ClassifierFit | spec_classifier.SpecFit]
    embed: Callable[..., np.ndarray]
    clip_input: str


NETWORKS: dict[str, Network] = {
    EMBEDDING: Network(("embedding",), architecture_of,
                       lambda cfg, arch, v, o, seed: sample_inputs(arch, v, o, cfg.embedding.vectors_per_clip, seed),
                       _fit_classifier, embed_clips, "embedding"),
    SPECTROGRAM: Network(("embedding", "spectrogram"), spec_architecture_of,
                         lambda cfg, arch, v, o, seed: spec_classifier.sample_patches(
                             arch, v, o, cfg.spectrogram.patches_per_clip, seed),
                         _fit_spec, spec_classifier.embed_clips, spec_classifier.CLIP_INPUT),
}


def source_classes(data: Machines, machines) -> list[str]:
    """`class_names` of the checked splits of `machines` (their good training clips)."""
    return class_names([data.checked(m).split for m in machines])


def training_vectors(cfg: Config, data: Machines, job: PretrainJob, arch) -> tuple[np.ndarray, np.ndarray]:
    """Sampled network inputs of every training clip of each source machine, and each one's class."""
    index = {name: i for i, name in enumerate(source_classes(data, job.source.machines))}
    sample = NETWORKS[job.method].sample
    xs, ys = [], []
    for i, machine in enumerate(job.source.machines):
        md = data[machine]
        x, clips = sample(cfg, arch, *md.vectors(md.split.train), job.seed + i)
        xs.append(x)
        ys.append(np.array([index[c] for c in clip_classes(md.split, md.split.train)], dtype=np.int64)[clips])
    return np.concatenate(xs), np.concatenate(ys)


def source_bank(cfg: Config, data: Machines, job: PretrainJob, arch, weights) -> np.ndarray:
    """Clip embeddings of ``statistics.source_clips`` training clips of each source machine, machine by machine."""
    embed = NETWORKS[job.method].embed
    banks = []
    for machine in job.source.machines:
        md = data[machine]
        files = budget_subset(md.split.train, min(cfg.statistics.source_clips, len(md.split.train)), seed=job.seed)
        banks.append(embed(arch, weights, *md.vectors(files)))
    return np.concatenate(banks)


def _attribute_classes(data: Machines, job: PretrainJob) -> list[str] | None:
    """The classes when they are not the source machines (DCASE 2021-2025 attributes); None otherwise."""
    names = source_classes(data, job.source.machines)
    return None if names == [m.name for m in job.source.machines] else names


def _key(cfg: Config, data: Machines, job: PretrainJob) -> str:
    files = [f for m in job.source.machines for f in data.checked(m).split.train]
    d, classes = cfg.to_dict(), _attribute_classes(data, job)
    return key_of({"data": data_identity(cfg, files), **{s: d[s] for s in NETWORKS[job.method].sections},
                   "fit": fit_identity(cfg), "statistics": d["statistics"], "seed": job.seed, "pretraining": job.method,
                   **({"classes": classes} if classes else {})})


def pretrain_classifier(cfg: Config, data: Machines, job: PretrainJob, path: Path) -> bool:
    """Train and save the classifier of `job` (its `NETWORKS` entry) at `path` unless an up-to-date one is there;
    True when trained."""
    key, net = _key(cfg, data, job), NETWORKS[job.method]
    train_files = [f for m in job.source.machines for f in data.checked(m).split.train]
    if (found := up_to_date(path, key)) is not None:
        if found.data_key is None:  # saved before sidecars recorded it; the key matched, so these are its clips
            check_still_locked(cfg.output.model_dir, writing=path.with_suffix(".json"))
            write_sidecar(path, found.replace(**data_fields(cfg, train_files)))
        return False
    start, k = time.perf_counter(), cfg.embedding.k
    first = job.source.machines[0]
    classes = _attribute_classes(data, job)
    arch = net.architecture(cfg, data[first].features.take([0])[0].shape[1], len(classes or job.source.machines))
    x, y = training_vectors(cfg, data, job, arch)
    fit = net.fit(cfg, arch, x, y, job.seed)
    bank = source_bank(cfg, data, job, arch, fit.weights)
    train_scores = knn_train_scores(bank, None, k=k)
    d = cfg.to_dict()
    sidecar = Sidecar(
        key=key, **data_fields(cfg, train_files), version=cfg.experiment.version, source=job.source.label,
        method=job.method,
        sources=[m.name for m in job.source.machines], classes=classes, budget="all", n_train_clips=len(train_files),
        n_train_vectors=int(len(x)), seed=job.seed, n_channels=n_channels(train_files),
        features=feature_sidecar(cfg), architecture=arch, embedding=d["embedding"],
        scorer={"kind": "knn", "input": net.clip_input, "k": k}, final_loss=fit.history["loss"][-1],
        train_seconds=round(time.perf_counter() - start, 3), train_scores=train_scores.tolist(),
        **threshold_fields(cfg, train_scores),
        extra={s: d[s] for s in net.sections if s != "embedding"})
    check_still_locked(cfg.output.model_dir, writing=path)  # a worker whose driver was killed writes nothing
    save_model(with_weights(arch, fit.weights), path, sidecar=sidecar, head={"bank": bank.astype(np.float32)})
    atomic_write_text(path.with_suffix(".history.csv"), pd.DataFrame(fit.history).rename_axis("epoch").to_csv())
    return True
