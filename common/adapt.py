"""What a method gets for one cell (`CellData`) and gives back (`Adapted`), and how its model scores clips.

Shared by the three method families (`common.methods`, `common.statistical_methods`,
`common.embedding_methods`), siblings that import only this module and the numerics, and the grid
(`common.experiment`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .clipvectors import halves, logmel_stats
from .config import Config
from .data import Machine, budget_subset
from .dataset import MachineData, Machines
from .method_catalog import MethodInfo
from .model import Sidecar
from .model_kinds import holding
from .runs import Cell, ModelOut, TextOut
from .scorer import score_clips
from .scoring import clip_scores
from .sources import SourceSet
from .train import Trainer


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


@dataclass(frozen=True)
class Adapted:
    """A method's model for one cell: what the row and its model file are made of.

    `train_scores` are the scores the decision threshold is fitted on (its own training clips,
    scored out of sample where the model holds them; for a zero-shot method the pretrained
    model's). `scores` are the evaluation clips' scores when the method already has them (a
    scratch store hit); `scores_key` marks models shared by several cells (the evaluation scores
    are then computed once per process). `scorer` and `head` say how the model scores a clip
    (`common.scorer`; None: reconstruction error). `shared` files are written before the row
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


def adapted_scores(trainer: Trainer, adapted: Adapted, vectors, offsets, *, n_mels: int) -> np.ndarray:
    """The clip scores of an adapted model, by its scorer (reconstruction error when it has none)."""
    if adapted.scorer is None:
        return reconstruction_scores(trainer, adapted.architecture, adapted.weights, vectors, offsets)
    model = holding(adapted.architecture, adapted.weights, trainer=trainer)
    return score_clips(model, adapted.architecture, adapted.scorer, adapted.head or {}, vectors, offsets,
                       n_mels=n_mels)


@dataclass(frozen=True)
class Method:
    """A method's catalogue row (`common.method_catalog`) joined with its function, which adapts it to a cell."""

    info: MethodInfo
    adapt: Callable[[CellData], Adapted]

    @property
    def name(self) -> str:
        """The method's name, as ``experiment.methods`` and ``results.csv`` spell it."""
        return self.info.name

    @property
    def pretrains(self) -> str | None:
        """What it starts from: a `common.method_catalog.MODEL_PRETRAININGS` model, ``statistics`` or None."""
        return self.info.pretrains


def identity_architecture(input_dim: int) -> dict:
    """The architecture of the no-network methods' model: the vectors as they are."""
    return {"kind": "identity", "input_dim": int(input_dim)}


def budget_stats(data: CellData) -> tuple[np.ndarray, np.ndarray | None]:
    """The budget clips' log-mel statistics, and with a single clip those of its two halves."""
    vectors, offsets = data.train()
    n_mels = data.cfg.feature.n_mels
    rows = logmel_stats(vectors, offsets, n_mels=n_mels)
    return rows, (logmel_stats(vectors, halves(offsets), n_mels=n_mels) if len(rows) == 1 else None)
