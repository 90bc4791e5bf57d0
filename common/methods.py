"""The methods a target is scored with, in one table (`METHODS`): scratch, zero_shot, transfer, transfer_frozen.

A `Method` says what it pretrains (the `PretrainJob.method` it starts from, or None), how it adapts
to the target budget (``adapt``: a `CellData` in, an `Adapted` model out) and how it scores clips
(``score``: mean reconstruction error per clip). Adding a method is one function and one entry here.

- ``scratch``: random init, fitted on the target budget only. Its result is shared by every version
  through ``output.scratch_dir`` (keyed by the exact clips and settings), so it is fitted once.
- ``zero_shot``: the model pretrained on the source set, as is, with its own threshold (fitted on
  its source clips, never the target's).
- ``transfer``: the pretrained model fine-tuned on the target budget (``transfer.*``).
- ``transfer_frozen``: the same fine-tuning with the encoder frozen (layers ``enc_*`` and
  ``bottleneck``; only the decoder trains), whatever ``transfer.freeze`` says.

``experiment.methods`` picks which of them a run scores (scratch always among them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .config import Config
from .dataset import MachineData, n_channels
from .metrics import auc_pauc
from .model import Sidecar, architecture, encoder_layers
from .pretrain import AUTOENCODER
from .results import METHOD_ORDER
from .runs import Cell, ModelOut, TextOut, data_identity, feature_sidecar, fit_identity, key_of
from .scoring import clip_scores
from .train import Trainer


@dataclass(frozen=True)
class Pretrained:
    """A pretrained model as a cell uses it: its file, sidecar and weights."""

    path: Path
    sidecar: Sidecar
    weights: list[np.ndarray]


@dataclass
class CellData:
    """What a method adapts with: the config, the cell, the target's data and the pretrained model (if any)."""

    cfg: Config
    cell: Cell
    md: MachineData
    trainer: Trainer
    eval_x: np.ndarray
    eval_offsets: np.ndarray
    train_files: tuple[Path, ...]
    pretrained: Pretrained | None = None
    _train: tuple | None = None

    def train(self) -> tuple:
        """The budget's (vectors, offsets), loaded when a fit first needs them."""
        if self._train is None:
            self._train = self.md.vectors(self.train_files)
        return self._train


@dataclass(frozen=True)
class Adapted:
    """A method's model for one cell: what the row and its model file are made of.

    `train_scores` are the scores the decision threshold is fitted on (its own training clips;
    for zero_shot the pretrained model's). `scores` are the evaluation clips' scores when the
    method already has them (a scratch store hit); `scores_key` marks models shared by several
    cells (the evaluation scores are then computed once per process). `shared` files are written
    before the row model; `saved` is a file holding the model (copied as the row's model);
    `own_model` False means the row has no model file of its own.
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


def reconstruction_scores(trainer: Trainer, arch: dict[str, Any], weights, vectors, offsets) -> np.ndarray:
    """Each clip's mean reconstruction error under the model of `arch` with `weights` [shape=(n_clips,)]."""
    return clip_scores(trainer.with_weights(arch, weights), vectors, offsets)


@dataclass(frozen=True)
class Method:
    """A way to get a target's model: what it pretrains (None: nothing), how it adapts, how it scores clips."""

    name: str
    pretrains: str | None
    adapt: Callable[[CellData], Adapted]
    score: Callable[..., np.ndarray] = reconstruction_scores


def _fit_architecture(cfg: Config, input_dim: int) -> dict[str, Any]:
    return architecture(input_dim, hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                        batch_norm=cfg.model.batch_norm)


def scratch(data: CellData) -> Adapted:
    """Random init fitted on the budget; read from the shared scratch store when an entry is there.

    The store holds ``<name>.json`` (eval scores, AUC, the training clips' scores) and the model
    ``<name>.model.keras`` (+ sidecar); an entry without its model or training scores (an older
    run's) is computed again.
    """
    cfg, cell, md, train = data.cfg, data.cell, data.md, data.train()
    arch = _fit_architecture(cfg, train[0].shape[1])
    key = key_of({"train": data_identity(cfg, data.train_files), "eval": data_identity(cfg, md.split.eval_files),
                  "model": cfg.to_dict()["model"], "fit": fit_identity(cfg), "seed": cell.seed,
                  "max_fpr": cfg.eval.max_fpr})
    store = cfg.output.scratch_dir / f"{md.machine.type}_{md.machine.id}_{cell.budget}_{cell.seed}_{key}.json"
    model_file = store.with_suffix(".model.keras")
    extra = {"sources": [], "fit": cfg.to_dict()["fit"]}
    if store.is_file() and model_file.is_file() and model_file.with_suffix(".json").is_file():
        found = json.loads(store.read_text())
        if "train_scores" in found:
            return Adapted(arch, None, found["train_scores"], len(data.train_files), found["train_seconds"],
                           scores=np.asarray(found["scores"], dtype=float), saved=model_file, sidecar=extra)
    fit = data.trainer.fit(arch, data.trainer.init_weights(arch, seed=cell.seed), train[0], epochs=cfg.fit.epochs,
                           batch_size=cfg.fit.batch_size, learning_rate=cfg.fit.learning_rate,
                           validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle, seed=cell.seed)
    train_scores = reconstruction_scores(data.trainer, arch, fit.weights, *train)
    scores = reconstruction_scores(data.trainer, arch, fit.weights, data.eval_x, data.eval_offsets)
    auc, pauc = auc_pauc(md.split.eval_labels, scores, max_fpr=cfg.eval.max_fpr, name=md.machine.name)
    sidecar = Sidecar(key=key, target=md.machine.name, method="scratch", budget=str(cell.budget), seed=cell.seed,
                      train_clips=[str(f) for f in data.train_files], n_channels=n_channels(md.split.train),
                      features=feature_sidecar(cfg), architecture=arch, fit=cfg.to_dict()["fit"])
    entry = {"key": key, "auc": auc, "pauc": pauc, "scores": scores.tolist(), "train_seconds": fit.seconds,
             "train_scores": train_scores.tolist()}
    shared = (ModelOut(model_file, sidecar, arch, fit.weights), TextOut(store, json.dumps(entry)))
    return Adapted(arch, fit.weights, train_scores, len(data.train_files), fit.seconds, scores=scores,
                   saved=model_file, shared=shared, sidecar=extra)


def zero_shot(data: CellData) -> Adapted:
    """The pretrained model as is, with its own threshold: from its source clips, never the target's."""
    side = data.pretrained.sidecar
    return Adapted(side.architecture, data.pretrained.weights, side.train_scores, 0, 0.0,
                   scores_key=("pretrained", str(data.pretrained.path)), own_model=False)


def _fine_tune(data: CellData, freeze: tuple[str, ...]) -> Adapted:
    """The pretrained model fine-tuned on the budget with the `freeze` layers fixed (``transfer.*`` settings)."""
    cfg, pre, train = data.cfg, data.pretrained, data.train()
    arch = pre.sidecar.architecture
    fit = data.trainer.fit(arch, pre.weights, train[0], epochs=cfg.transfer.epochs,
                           batch_size=cfg.fit.batch_size, learning_rate=cfg.transfer.learning_rate,
                           validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle,
                           seed=data.cell.seed, freeze=freeze)
    train_scores = reconstruction_scores(data.trainer, arch, fit.weights, *train)
    extra = {"sources": pre.sidecar.sources, "pretrained": str(pre.path), "pretrained_key": pre.sidecar.key,
             "transfer": cfg.to_dict()["transfer"] | {"freeze": list(freeze)}}
    return Adapted(arch, fit.weights, train_scores, len(data.train_files), fit.seconds, sidecar=extra)


def transfer(data: CellData) -> Adapted:
    """The pretrained model fine-tuned on the budget (``transfer.epochs``, ``learning_rate``, ``freeze``)."""
    return _fine_tune(data, data.cfg.transfer.freeze)


def transfer_frozen(data: CellData) -> Adapted:
    """The pretrained model fine-tuned on the budget with its encoder frozen: only the decoder trains."""
    return _fine_tune(data, encoder_layers(data.pretrained.sidecar.architecture))


_TABLE = {
    "scratch": Method("scratch", None, scratch),
    "zero_shot": Method("zero_shot", AUTOENCODER, zero_shot),
    "transfer": Method("transfer", AUTOENCODER, transfer),
    "transfer_frozen": Method("transfer_frozen", AUTOENCODER, transfer_frozen),
}
# In the results' method order (`common.results`), which is also the order cells run in.
METHODS: dict[str, Method] = {name: _TABLE[name] for name in sorted(_TABLE, key=METHOD_ORDER.__getitem__)}
