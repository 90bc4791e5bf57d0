"""What a method gets for one cell (`CellData`) and gives back (`Adapted`), and how its model scores clips.

Shared by the method families (`common.methods.autoencoder`, `common.methods.statistics`,
`common.methods.embedding`, `common.methods.general_sound`), siblings that import only this module and the numerics, and the grid
(`common.experiment.grid`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import keras
import numpy as np

from common.features.cache import feature_key
from common.features.clipvectors import halves, logmel_stats, out_of_sample_rows
from common.config import Config
from common.data.mimii import Machine, budget_subset
from common.data.dataset import MachineData, Machines
from common.io import digest
from common.methods.catalog import MethodInfo
from common.models.saved import Sidecar
from common.models.kinds import holding
from common.scoring.scorer import knn_scores, needs_network, score_clips
from common.scoring.reconstruction import clip_scores
from common.data.versions import SourceSet
from common.scoring.threshold import fit_threshold
from common.models.train import Trainer


@dataclass(frozen=True)
class Pretrained:
    """A pretrained model as a cell uses it: its file, sidecar, weights and scorer arrays."""

    path: Path
    sidecar: Sidecar
    weights: list[np.ndarray]
    head: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class CellData:
    """What a method adapts with: the config, the cell, the target's data and the pretrained model (if any).

    `memo` is the process's cache of work shared by cells (keyed by everything it depends on).
    """

    cfg: Config
    cell: Cell
    md: MachineData
    trainer: Trainer
    eval_x: np.ndarray
    eval_offsets: np.ndarray
    train_files: tuple[Path, ...]
    pretrained: Pretrained | None = None
    machines: Machines | None = None
    memo: dict = field(default_factory=dict)
    _train: tuple | None = None

    def train(self) -> tuple:
        """The budget's (vectors, offsets), loaded when a fit first needs them."""
        if self._train is None:
            self._train = self.md.vectors(self.train_files)
        return self._train

    def source_files(self, source: SourceSet) -> list[tuple[Machine, tuple[Path, ...]]]:
        """(machine, files) of ``statistics.source_clips`` seeded training clips of each source machine."""
        n, seed = self.cfg.statistics.source_clips, self.cfg.experiment.pretrain_seed
        return [(m, budget_subset(train, min(n, len(train)), seed=seed))
                for m in source.machines for train in (self.machines.checked(m).split.train,)]

    def source_clips(self, source: SourceSet) -> list[tuple[Machine, np.ndarray, np.ndarray]]:
        """(machine, vectors, offsets) of the `source_files` clips of each source machine."""
        key = ("source_clips", source.label, self.cfg.statistics.source_clips, self.cfg.experiment.pretrain_seed)
        if key not in self.memo:
            self.memo[key] = [(m, *self.machines[m].vectors(files)) for m, files in self.source_files(source)]
        return self.memo[key]

    def inputs_memo(self, which: str) -> dict:
        """The dict where the network inputs of this cell's ``"eval"`` or ``"budget"`` clips (``"budget halves"``: a
        one-clip budget's halves) are kept for the cells of the same clips in this process
        (`common.models.classifier.embed_clips`); one set of clips of each kind is held at a time."""
        clips = tuple(self.md.split.eval_files) if which == "eval" else self.train_files
        held = self.memo.get(("inputs_memo", which))
        if held is None or held[0] != clips:
            held = self.memo[("inputs_memo", which)] = (clips, {})
        return held[1]

    def source_stats(self, source: SourceSet) -> list[np.ndarray]:
        """The log-mel statistics (`logmel_stats`) of the `source_clips` clips, one array per source machine."""
        n_mels = self.cfg.feature.n_mels
        key = ("source_stats", source.label, self.cfg.statistics.source_clips, self.cfg.experiment.pretrain_seed, n_mels)
        if key not in self.memo:
            self.memo[key] = [logmel_stats(v, o, n_mels=n_mels) for _, v, o in self.source_clips(source)]
        return self.memo[key]


@dataclass(frozen=True)
class Adapted:
    """A method's model for one cell: what the row and its model file are made of.

    `train_scores` are the scores the decision threshold is fitted on (its own training clips,
    scored out of sample where the model holds them; for a zero-shot method the pretrained
    model's). `scores` are the evaluation clips' scores when the method already has them (a
    scratch store hit, or clip vectors it makes from the WAV files itself: general sound); `scores_key` marks models shared by several cells (the evaluation scores
    are then computed once per process). `scorer` and `head` say how the model scores a clip
    (`common.scoring.scorer`; None: reconstruction error). `shared` files are written before the row
    model; `saved` is a file holding the model (copied as the row's model); `own_model` False
    means the row has no model file of its own.
    """

    architecture: dict[str, Any]
    weights: list[np.ndarray] | None
    train_scores: Any
    n_train_clips: int
    seconds: float
    scores: np.ndarray | None = None
    scores_key: tuple | None = None
    saved: Path | None = None
    shared: tuple[ModelOut | TextOut, ...] = ()
    own_model: bool = True
    sidecar: dict[str, Any] = field(default_factory=dict)
    scorer: dict[str, Any] | None = None
    head: dict[str, np.ndarray] | None = None


def reconstruction_scores(trainer: Trainer, arch: dict[str, Any], weights, vectors, offsets) -> np.ndarray:
    """Each clip's mean reconstruction error under the model of `arch` with `weights` [shape=(n_clips,)]."""
    return clip_scores(trainer.with_weights(arch, weights), vectors, offsets)


def adapted_scores(trainer: Trainer, adapted: Adapted, vectors, offsets, *, n_mels: int,
                   inputs_memo: dict | None = None) -> np.ndarray:
    """The clip scores of an adapted model, by its scorer (reconstruction error when it has none); `inputs_memo` is
    the caller's dict for these clips (`common.scoring.scorer.clip_inputs`)."""
    if adapted.scorer is None:
        return reconstruction_scores(trainer, adapted.architecture, adapted.weights, vectors, offsets)
    model = holding(adapted.architecture, adapted.weights, trainer=trainer) if needs_network(adapted.scorer) else None
    return score_clips(model, adapted.architecture, adapted.scorer, adapted.head or {}, vectors, offsets,
                       n_mels=n_mels, weights=adapted.weights, inputs_memo=inputs_memo)


@dataclass(frozen=True)
class Method:
    """A method's catalogue row (`common.methods.catalog`) joined with its function, which adapts it to a cell."""

    info: MethodInfo
    adapt: Callable[[CellData], Adapted]

    @property
    def name(self) -> str:
        """The method's name, as ``experiment.methods`` and ``results.csv`` spell it."""
        return self.info.name

    @property
    def pretrains(self) -> str | None:
        """What it starts from: a `common.methods.catalog.MODEL_PRETRAININGS` model, ``statistics`` or None."""
        return self.info.pretrains


def identity_architecture(input_dim: int) -> dict:
    """The architecture of the no-network methods' model: the vectors as they are."""
    return {"kind": "identity", "input_dim": int(input_dim)}


def wav_clip_rows(data: CellData, key: tuple, files: Sequence[Path], cached: Callable[..., np.ndarray], *,
                  halves: bool = False) -> np.ndarray:
    """Vectors a model makes of the clips' samples [shape=(n, dim), or (2n, dim) with `halves`]: from this process's
    memo under `key`, else ``cached(missing, cache_dir=, channel=, sr=, halves=)`` (a cache under
    ``data.cache_dir``, `common.features.clip_cache`)."""
    memo = data.memo.setdefault((*key, halves), {})
    missing = [f for f in files if str(f) not in memo]
    if missing:
        per = 2 if halves else 1
        rows = cached(missing, cache_dir=data.cfg.data.cache_dir, channel=data.cfg.data.channel,
                      sr=data.cfg.data.sample_rate, halves=halves)
        for i, f in enumerate(missing):
            memo[str(f)] = rows[per * i:per * (i + 1)]
    return np.concatenate([memo[str(f)] for f in files])


def knn_train_scores(rows: np.ndarray, half_rows: np.ndarray | None, *, k: int,
                     head: Callable[[np.ndarray], dict] = lambda bank: {"bank": bank}) -> np.ndarray:
    """Each bank clip's kNN score out of sample: against the head `head` makes of the other clips (the knn scorer)."""
    return out_of_sample_rows(head, lambda fitted, r: knn_scores(r, fitted, k=k), rows, half_rows)


def budget_stats(data: CellData) -> tuple[np.ndarray, np.ndarray | None]:
    """The budget clips' log-mel statistics, and with a single clip those of its two halves."""
    vectors, offsets = data.train()
    n_mels = data.cfg.feature.n_mels
    rows = logmel_stats(vectors, offsets, n_mels=n_mels)
    return rows, (logmel_stats(vectors, halves(offsets), n_mels=n_mels) if len(rows) == 1 else None)


@dataclass(frozen=True)
class Cell:
    """One row of the grid: a method scored on a target at a budget and seed (source None: no pretraining)."""

    target: Machine
    source: SourceSet | None
    method: str
    budget: int | str
    seed: int

    @property
    def source_label(self) -> str:
        return "none" if self.source is None else self.source.label

    @property
    def key(self) -> tuple:
        """The cell's key in results.csv and the store, ordered like `common.results.KEY`."""
        return (self.target.type, self.target.id, self.source_label, self.method, str(self.budget), self.seed)


@dataclass(frozen=True)
class PretrainJob:
    """One pretrained model: a source set, the pretraining that makes it and its seed."""

    source: SourceSet
    method: str
    seed: int


@dataclass(frozen=True)
class ModelOut:
    """A model a cell asks the driver to write at `path`: from `weights` (of `architecture`) or a copy of `copy_from`.

    `head` holds its scorer's arrays (`common.models.saved.save_model`), if any.
    """

    path: Path
    sidecar: Sidecar
    architecture: dict[str, Any] | None = None
    weights: list[np.ndarray] | None = None
    copy_from: Path | None = None
    head: dict[str, np.ndarray] | None = None


@dataclass(frozen=True)
class TextOut:
    """A text file a cell asks the driver to write (atomically)."""

    path: Path
    text: str


def key_of(obj: Any) -> str:
    """The 16-digit key of `obj` that config hashes and scratch store names use."""
    return digest(obj, length=16, compact=False)


def fit_identity(cfg: Config) -> dict[str, Any]:
    """The fit settings with the backend Keras actually runs on (``auto`` resolved): part of every key.

    ``max_frames_mb`` is left out: holding a streamed set as frames gives the same batches and weights bit for bit
    (`common.models.compiled_fit.device_frames`), so it changes no result and must not make one stale."""
    fit = {k: v for k, v in cfg.to_dict()["fit"].items() if k != "max_frames_mb"}
    return fit | {"backend": keras.backend.backend()}


def data_identity(cfg: Config, files: Iterable[Path]) -> str:
    """Key of the exact clips (path, size, mtime) and feature parameters a result is computed from."""
    return feature_key(sorted(str(f) for f in files), channel=cfg.data.channel, sr=cfg.data.sample_rate,
                       **cfg.feature.kwargs())


def data_fields(cfg: Config, train_files: Iterable[Path]) -> dict[str, str]:
    """The sidecar fields that say which clips a pretrained model learned from (`common.experiment.pretrain.check_pretrained`)."""
    return {"data_key": data_identity(cfg, train_files), "data_root": str(cfg.data.root)}


def feature_sidecar(cfg: Config) -> dict[str, Any]:
    """The feature parameters a model records in its sidecar (`common.models.saved.FEATURE_KEYS`)."""
    return {**cfg.feature.kwargs(), "channel": cfg.data.channel, "sample_rate": cfg.data.sample_rate}


def threshold_fields(cfg: Config, train_scores) -> dict[str, Any]:
    """The decision threshold of a model from its training clips' scores, as stored in sidecars."""
    method, level = cfg.eval.threshold_spec()
    return {"threshold": fit_threshold(train_scores, method=method, level=level), "threshold_method": method,
            "threshold_level": level, "n_threshold_clips": len(train_scores)}
