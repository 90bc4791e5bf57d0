"""The autoencoder family: a dense autoencoder fitted from scratch, used pretrained as is, or fine-tuned.

A method's facts (family, control, what it pretrains, the config it reads, its words) are its row
in `common.methods.catalog`; its function here adapts it to the target budget (a `CellData` in, an
`Adapted` model out, which says how it scores clips); `common.methods.registry` joins the two.

- ``scratch``: random init, fitted on the target budget only. Its result is shared by every version
  through ``output.scratch_dir`` (keyed by the exact clips and settings), so it is fitted once.
- ``zero_shot``: the model pretrained on the source set, as is, with its own threshold (fitted on
  its source clips, never the target's).
- ``transfer``: the pretrained model fine-tuned on the target budget (``transfer.*``).
- ``transfer_frozen``: the same fine-tuning with the encoder frozen (layers ``enc_*`` and
  ``bottleneck``; only the decoder trains), whatever ``transfer.freeze`` says.
- ``transfer_mahalanobis``: ``transfer``'s model, scored by selective Mahalanobis on its residuals.

``experiment.methods`` picks which of them a run scores (scratch always among them).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from common.methods.base import Adapted, CellData, reconstruction_scores
from common.models.autoencoder import architecture, encoder_layers
from common.features.clipvectors import check_offsets, out_of_sample
from common.config import Config
from common.data.dataset import n_channels
from common.errors import ModelError
from common.scoring.mahalanobis import gaussians_without, selective, to_arrays
from common.scoring.metrics import auc_pauc
from common.io import digest
from common.models.saved import Sidecar, load_model, model_problem, read_sidecar
from common.methods.base import ModelOut, TextOut, data_identity, feature_sidecar, fit_identity, key_of
from common.scoring.reconstruction import residual_clip_scores
from common.scoring.scorer import residuals


def _fit_architecture(cfg: Config, input_dim: int) -> dict[str, Any]:
    return architecture(input_dim, hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                        batch_norm=cfg.model.batch_norm)


def scratch(data: CellData) -> Adapted:
    """Random init fitted on the budget; read from the shared scratch store when an intact entry is there.

    The store holds ``<name>.json`` (eval scores, AUC, the training clips' scores, the sha256 of its
    model's weights and of the entry itself) and the model ``<name>.model.keras`` (+ sidecar). An entry
    that is damaged, edited, of an older run (no checksum) or whose model is not the one it names is
    computed again, with a warning (`scratch_entry`).
    """
    cfg, cell, md, train = data.cfg, data.cell, data.md, data.train()
    arch = _fit_architecture(cfg, train[0].shape[1])
    key = key_of({"train": data_identity(cfg, data.train_files), "eval": data_identity(cfg, md.split.eval_files),
                  "model": cfg.to_dict()["model"], "fit": fit_identity(cfg), "seed": cell.seed,
                  "max_fpr": cfg.eval.max_fpr})
    store = cfg.output.scratch_dir / f"{md.machine.type}_{md.machine.id}_{cell.budget}_{cell.seed}_{key}.json"
    model_file = store.with_suffix(".model.keras")
    extra = {"sources": [], "fit": cfg.to_dict()["fit"]}
    found = scratch_entry(store, key, n_eval=len(md.split.eval_files), n_train=len(data.train_files))
    if found is not None:
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
                      features=feature_sidecar(cfg), architecture=arch, fit=cfg.to_dict()["fit"],
                      extra={"weights_sha256": weights_digest(fit.weights)})
    entry = {"key": key, "auc": float(auc), "pauc": float(pauc), "scores": [float(v) for v in scores],
             "train_seconds": float(fit.seconds), "train_scores": [float(v) for v in train_scores],
             "weights_sha256": sidecar.extra["weights_sha256"]}
    shared = (ModelOut(model_file, sidecar, arch, fit.weights),
              TextOut(store, json.dumps(entry | {"sha256": digest(entry)})))
    return Adapted(arch, fit.weights, train_scores, len(data.train_files), fit.seconds, scores=scores,
                   saved=model_file, shared=shared, sidecar=extra)


def weights_digest(weights: list[np.ndarray]) -> str:
    """The sha256 of a model's weights (each array's dtype, shape and bytes, in order)."""
    h = hashlib.sha256()
    for w in weights:
        w = np.ascontiguousarray(w)
        h.update(f"{w.dtype.str}{w.shape}".encode() + w.tobytes())
    return h.hexdigest()


def scratch_entry(store: Path, key: str, *, n_eval: int, n_train: int) -> dict[str, Any] | None:
    """The scratch store entry at `store` when it is intact, else None (with a warning when one is there).

    Intact: valid JSON whose sha256 matches, of `key`, with `n_eval` evaluation and `n_train` training
    scores, and whose model holds the weights the entry names: its sidecar records them and the model file is
    the one that sidecar was saved with (`model_problem`), or, for a sidecar of an older run, the file loads and
    holds them. Anything else (a truncated or edited file, an older run's entry without checksum, another
    model) is recomputed and overwritten, never trusted.
    """
    model_file = store.with_suffix(".model.keras")
    if not store.is_file():
        return None
    try:
        entry = json.loads(store.read_text())
        wanted = entry.pop("sha256", None)
        if wanted is None:
            why = "it has no checksum (written by an older version)"
        elif digest(entry) != wanted:
            why = "its content does not match its sha256 (edited or damaged)"
        elif entry["key"] != key or len(entry["scores"]) != n_eval or len(entry["train_scores"]) != n_train:
            why = "it belongs to another key or other clips"
        elif _model_weights_digest(model_file) != entry["weights_sha256"]:
            why = f"its model {model_file.name} is not the one it was saved with (weights differ)"
        else:
            return entry
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ModelError) as exc:
        why = f"it is unreadable ({exc})"
    warnings.warn(f"scratch store entry {store} (output.scratch_dir) is damaged: {why}; its scratch row is "
                  "computed again and the entry rewritten", stacklevel=2)
    return None


def _model_weights_digest(model_file: Path) -> str | None:
    """The `weights_digest` of a saved model: as its sidecar records it for an intact file, else of its weights."""
    recorded = read_sidecar(model_file).get("weights_sha256")
    if recorded is None:  # a sidecar of an older run: the weights are read from the file
        return weights_digest(load_model(model_file)[0].get_weights())
    return recorded if model_problem(model_file) is None else None


def zero_shot(data: CellData) -> Adapted:
    """The pretrained model as is, with its own threshold: from its source clips, never the target's."""
    side = data.pretrained.sidecar
    return Adapted(side.architecture, data.pretrained.weights, side.train_scores, 0, 0.0,
                   scores_key=("pretrained", str(data.pretrained.path)), own_model=False)


def _fine_tune(data: CellData, freeze: tuple[str, ...]) -> Adapted:
    """The pretrained model fine-tuned on the budget with the `freeze` layers fixed (``transfer.*`` settings).

    Kept in the process's memo, keyed by the freeze too: transfer and transfer_mahalanobis of one cell share the
    fit even with transfer_frozen's between them (the catalogue's order).
    """
    this_cell = _cell_key(data)
    key = (*this_cell, tuple(freeze))
    if key not in data.memo:
        for old in [k for k in data.memo if k[0] == "fine_tune" and k[:len(this_cell)] != this_cell]:
            del data.memo[old]  # only this cell's fine-tuned models (one per freeze): a cell's methods run together
        data.memo[key] = _fit_fine_tune(data, freeze)
    return data.memo[key]


def _cell_key(data: CellData) -> tuple:
    """The memo's key of a cell's fine-tuning (its fitted models and their residuals are kept under it)."""
    cell = data.cell
    return ("fine_tune", cell.target, cell.source_label, str(cell.budget), cell.seed, str(data.pretrained.path),
            data.pretrained.sidecar.key)


def _shares_residuals(data: CellData, freeze: tuple[str, ...]) -> bool:
    """Whether ``transfer_mahalanobis`` will read this fine-tuned model's residuals (its own run's methods)."""
    return "transfer_mahalanobis" in data.cfg.experiment.methods and tuple(freeze) == tuple(data.cfg.transfer.freeze)


def _residuals_key(data: CellData, which: str) -> tuple:
    return (*_cell_key(data), tuple(data.cfg.transfer.freeze), "residuals", which)


def _eval_residuals(data: CellData, tuned: Adapted) -> np.ndarray:
    """The evaluation vectors' residuals under ``transfer``'s model, computed once for the cell's two methods."""
    key = _residuals_key(data, "eval")
    if key not in data.memo:
        data.memo[key] = residuals(data.trainer.with_weights(tuned.architecture, tuned.weights), data.eval_x)
    return data.memo[key]


def _fit_fine_tune(data: CellData, freeze: tuple[str, ...]) -> Adapted:
    cfg, pre, train = data.cfg, data.pretrained, data.train()
    arch = pre.sidecar.architecture
    fit = data.trainer.fit(arch, pre.weights, train[0], epochs=cfg.transfer.epochs,
                           batch_size=cfg.fit.batch_size, learning_rate=cfg.transfer.learning_rate,
                           validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle,
                           seed=data.cell.seed, freeze=freeze)
    budget = residuals(data.trainer.with_weights(arch, fit.weights), train[0])
    if _shares_residuals(data, freeze):  # transfer_mahalanobis's budget residuals: the model is not run again
        data.memo[_residuals_key(data, "train")] = budget
    train_scores = residual_clip_scores(budget, train[1])  # `reconstruction_scores`, bit for bit
    extra = {"sources": pre.sidecar.sources, "pretrained": str(pre.path), "pretrained_key": pre.sidecar.key,
             "transfer": cfg.to_dict()["transfer"] | {"freeze": list(freeze)}}
    return Adapted(arch, fit.weights, train_scores, len(data.train_files), fit.seconds, sidecar=extra)


def transfer(data: CellData) -> Adapted:
    """The pretrained model fine-tuned on the budget (``transfer.epochs``, ``learning_rate``, ``freeze``).

    Its evaluation scores come from the residuals ``transfer_mahalanobis`` reads too, when that method runs."""
    tuned = _fine_tune(data, data.cfg.transfer.freeze)
    if not _shares_residuals(data, data.cfg.transfer.freeze):
        return tuned
    return dataclasses.replace(tuned, scores=residual_clip_scores(_eval_residuals(data, tuned), data.eval_offsets))


def transfer_frozen(data: CellData) -> Adapted:
    """The pretrained model fine-tuned on the budget with its encoder frozen: only the decoder trains."""
    return _fine_tune(data, encoder_layers(data.pretrained.sidecar.architecture))


MAX_SOURCE_RESIDUALS = 20000  # rows of the source Gaussian of transfer_mahalanobis (evenly strided)


def transfer_mahalanobis(data: CellData) -> Adapted:
    """``transfer``'s model, its residuals scored by selective Mahalanobis (DCASE 2023+ baseline).

    One Gaussian of the residuals of ``statistics.source_clips`` clips per source machine, one of
    the budget's; a clip's score is the smaller of its mean distances to the two.
    """
    tuned = _fine_tune(data, data.cfg.transfer.freeze)
    model = data.trainer.with_weights(tuned.architecture, tuned.weights)
    source = np.concatenate([residuals(model, v) for _, v, _ in data.source_clips(data.cell.source)])
    # The source Gaussian from sums (one product over the rows where `fit_gaussian` makes two), as the budget's below.
    source = gaussians_without(source[::max(1, len(source) // MAX_SOURCE_RESIDUALS)], [], whole=True)[0]
    vectors, offsets = data.train()
    budget = data.memo.get(_residuals_key(data, "train"))  # `transfer`'s fit left them
    if budget is None:
        budget = residuals(model, vectors)
    target = []  # the budget's own Gaussian (the head's), from the sums of the folds' fit

    def fit_without(rows, clips, parts):  # each fold's Gaussian from the budget's sums less the fold's (one pass)
        *each, whole = gaussians_without(rows, [(clips[p[0]], clips[p[-1] + 1]) for p in parts], whole=True)
        target.append(whole)
        return [[source, g] for g in each]

    train_scores = out_of_sample(None, lambda g, r, o: selective(g, r, o), budget, offsets, fit_without=fit_without)
    gaussians = [source, target[0]]
    # The scorer's evaluation scores (`common.scoring.scorer.score_clips`), from the residuals transfer's scores
    # came from.
    scores = selective(gaussians, _eval_residuals(data, tuned), check_offsets(data.eval_x, data.eval_offsets))
    return Adapted(tuned.architecture, tuned.weights, train_scores, tuned.n_train_clips, tuned.seconds, scores=scores,
                   scorer={"kind": "residual_gaussian"}, head=to_arrays(gaussians), sidecar=tuned.sidecar)


FREEZE_METHODS = ("transfer", "transfer_mahalanobis")  # the methods that fine-tune with ``transfer.freeze``


FUNCTIONS = (scratch, zero_shot, transfer, transfer_frozen, transfer_mahalanobis)  # this family's methods
