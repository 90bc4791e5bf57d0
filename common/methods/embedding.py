"""The embedding family: clips as vectors, a target clip scored by its cosine distance to the nearest normal clip.

- ``logmel_knn`` (the control, no pretraining): clip vectors are the log-mel statistics (mean and
  std over frames); the bank is the budget's clips.
- ``logmel_two_bank``: the same vectors, scored against two banks: the budget's clips and
  ``statistics.source_clips`` clips of each source machine; a clip's score is the smaller distance. Nothing is
  trained: the source machines help only by saying what else normal sound looks like (`common.scoring.two_bank`).
- ``embed_knn``: clip vectors are embeddings of the machine-ID classifier pretrained on the source
  machines (`common.models.classifier`, frozen); the bank is the budget's clips.
- ``embed_zero_shot``: no target clip. The pretrained model as is: its bank is its source machines'
  clips, so a target clip scores by how far it is from every normal sound the model has heard, and
  its threshold is the source clips' own (out-of-sample) distances.
- ``embed_finetune``: the budget joins the classifier as one more class (its centre the budget's
  mean embedding), a few epochs on that class and replayed source clips with the lower layers fixed
  (``embedding.finetune_*``), then ``embed_knn``'s scoring. Measured: it ties ``embed_knn`` at best.
- ``spec_two_bank``: clip vectors are embeddings of the spectrogram classifier pretrained on the source machines
  (`common.models.spec_classifier`: a CNN over log-mel patches and a spectrum branch, sub-cluster AdaCos; the
  ``spectrogram`` section), frozen; scored against two banks as ``logmel_two_bank``: the budget's clips
  (SMOTE-enlarged under ``embedding.smote``) and the pretraining's bank of ``statistics.source_clips`` clips of each
  source machine. Both banks always, as its name says: ``embedding.bank`` does not apply.
- ``embed_fusion``: ``embed_knn`` + ``logmel_two_bank``, each part's scores normalised by the budget clips' own
  and summed: the classifier's view of IDs and the statistics' view of the spectrum. A fused method is a catalogue
  row with its ``parts`` (`common.methods.fused`), no function here.

``embed_knn`` and ``embed_finetune`` score against the same two banks with ``embedding.bank: two_bank`` (the DCASE
2023-2024 top systems' backend), their source bank the source clips in the pretrained (or fine-tuned) embedding;
``embedding.smote`` enlarges the target bank by SMOTE. The default, ``target``, is the budget's bank alone: with
other machines as the source bank, two banks lost by mean and worst synthetic world (docs/worlds.md).

Every bank clip's own score (for the threshold) is its distance to the *other* budget clips and to the source
bank (`common.features.clipvectors.out_of_sample_rows`); a single clip: between its two halves.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np

from common.methods.base import Adapted, CellData, budget_stats, identity_architecture, knn_train_scores
from common.features.clipvectors import halves
from common.models import spec_classifier
from common.models.classifier import embed_clips, sample_inputs, train_classifier, with_new_class
from common.data.machines import clip_classes
from common.scoring.scorer import knn_scores
from common.scoring.two_bank import smote_bank


def knn_scorer(data: CellData, clip_input: str) -> dict[str, Any]:
    """The scorer of a nearest-neighbour model on `clip_input` clip vectors (``embedding.k`` neighbours)."""
    return {"kind": "knn", "input": clip_input, "k": data.cfg.embedding.k}


def _head(data: CellData, rows: np.ndarray, source: np.ndarray | None) -> dict[str, np.ndarray]:
    """The kNN head: the budget's bank (SMOTE-enlarged when ``embedding.smote`` asks) and the source bank, if any."""
    bank = np.asarray(rows, dtype=np.float32)
    if source is None:
        return {"bank": bank}
    n_total = max(len(bank), round(data.cfg.embedding.smote * len(source)))
    if n_total > len(bank):
        bank = smote_bank(bank, n_total, k=2, seed=data.cell.seed).astype(np.float32)
    return {"bank": bank, "source_bank": np.asarray(source, dtype=np.float32)}


def _bank_adapted(data: CellData, arch, weights, rows, half_rows, clip_input: str, start: float,
                  source: np.ndarray | None = None, **sidecar) -> Adapted:
    k = data.cfg.embedding.k
    train_scores = (knn_train_scores(rows, half_rows, k=k) if source is None else
                    knn_train_scores(rows, half_rows, k=k, head=lambda bank: _head(data, bank, source)))
    return Adapted(arch, weights, train_scores, len(data.train_files), time.perf_counter() - start,
                   scorer=knn_scorer(data, clip_input), head=_head(data, rows, source), sidecar=sidecar)


def _two_banks(data: CellData) -> bool:
    return data.cfg.embedding.bank == "two_bank"


def logmel_knn(data: CellData) -> Adapted:
    """Nearest budget clip in log-mel statistics: no network, no source data."""
    start = time.perf_counter()
    rows, half_rows = budget_stats(data)
    return _bank_adapted(data, identity_architecture(data.train()[0].shape[1]), [], rows, half_rows,
                         "logmel_stats", start, sources=[])


def logmel_two_bank(data: CellData) -> Adapted:
    """Nearest clip in log-mel statistics among the budget's clips and the source machines' clips (the smaller)."""
    start = time.perf_counter()
    rows, half_rows = budget_stats(data)
    source = np.concatenate(data.source_stats(data.cell.source))
    return _bank_adapted(data, identity_architecture(data.train()[0].shape[1]), [], rows, half_rows,
                         "logmel_stats", start, source=source, sources=[m.name for m in data.cell.source.machines])


def _embedded_budget(arch, weights, data: CellData) -> tuple[np.ndarray, np.ndarray | None]:
    vectors, offsets = data.train()
    rows = embed_clips(arch, weights, vectors, offsets, inputs_memo=data.inputs_memo("budget"))
    return rows, (embed_clips(arch, weights, vectors, halves(offsets), inputs_memo=data.inputs_memo("budget halves"))
                  if len(rows) == 1 else None)


def _pretrained_facts(data: CellData) -> dict[str, Any]:
    pre = data.pretrained
    return {"sources": pre.sidecar.sources, "pretrained": str(pre.path), "pretrained_key": pre.sidecar.key}


def embed_knn(data: CellData) -> Adapted:
    """Nearest budget clip in the frozen pretrained embedding."""
    start = time.perf_counter()
    arch, weights = data.pretrained.sidecar.architecture, data.pretrained.weights
    rows, half_rows = _embedded_budget(arch, weights, data)
    source = data.pretrained.head["bank"] if _two_banks(data) else None
    return _bank_adapted(data, arch, weights, rows, half_rows, "embedding", start, source=source,
                         **_pretrained_facts(data))


def embed_zero_shot(data: CellData) -> Adapted:
    """The pretrained model as is: nearest source clip, its threshold from the source clips (no target clip)."""
    pre = data.pretrained
    return Adapted(pre.sidecar.architecture, pre.weights, pre.sidecar.train_scores, 0, 0.0,
                   scores_key=("pretrained", str(pre.path)), own_model=False, scorer=pre.sidecar.scorer,
                   head=pre.head)


def _replay(data: CellData, per_clip: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame vectors of the source clips with their class (the pretraining's classes, in its order)."""

    sidecar = data.pretrained.sidecar
    classes = {name: i for i, name in enumerate(sidecar.classes or sidecar.sources)}
    xs, ys = [], []
    parts = zip(data.source_clips(data.cell.source), data.source_files(data.cell.source))
    for i, ((machine, vectors, offsets), (_, files)) in enumerate(parts):
        x, clips = sample_inputs(sidecar.architecture, vectors, offsets, per_clip, data.cell.seed + i)
        labels = [classes[c] for c in clip_classes(data.machines.checked(machine).split, files)]
        xs.append(x)
        ys.append(np.asarray(labels, dtype=np.int64)[clips])
    return np.concatenate(xs), np.concatenate(ys)


def embed_finetune(data: CellData) -> Adapted:
    """The budget as one more class of the pretrained classifier, a few epochs, then the nearest budget clip."""

    cfg, start = data.cfg.embedding, time.perf_counter()
    arch, weights = data.pretrained.sidecar.architecture, data.pretrained.weights
    before, _ = _embedded_budget(arch, weights, data)
    centre = before.mean(axis=0)
    arch, weights = with_new_class(arch, weights, centre / (np.linalg.norm(centre) or 1.0))
    x_src, y_src = _replay(data, cfg.finetune_replay_per_clip)
    x_tgt, _ = sample_inputs(arch, *data.train(), cfg.finetune_budget_per_clip, data.cell.seed)
    x = np.concatenate([x_src, x_tgt])
    y = np.concatenate([y_src, np.full(len(x_tgt), arch["n_classes"] - 1)])
    fit = train_classifier(arch, weights, x, y, epochs=cfg.finetune_epochs, batch_size=cfg.batch_size,
                           learning_rate=cfg.finetune_learning_rate, mixup=cfg.mixup, seed=data.cell.seed,
                           freeze=cfg.finetune_freeze)
    rows, half_rows = _embedded_budget(arch, fit.weights, data)
    source = (np.concatenate([embed_clips(arch, fit.weights, v, o) for _, v, o in data.source_clips(data.cell.source)])
              if _two_banks(data) else None)
    return _bank_adapted(data, arch, fit.weights, rows, half_rows, "embedding", start, source=source,
                         **_pretrained_facts(data), embedding=data.cfg.to_dict()["embedding"])


def spec_two_bank(data: CellData) -> Adapted:
    """Nearest clip in the frozen spectrogram classifier's embedding among the budget's clips and the source clips.

    The evaluation clips' embeddings depend on the pretrained model and the target only, so a process computes them
    once for all budgets and seeds (``data.memo``); they are scored here, by the scorer the row model records.
    """
    start, pre = time.perf_counter(), data.pretrained
    arch, weights = pre.sidecar.architecture, pre.weights
    vectors, offsets = data.train()
    rows = spec_classifier.embed_clips(arch, weights, vectors, offsets)
    half_rows = spec_classifier.embed_clips(arch, weights, vectors, halves(offsets)) if len(rows) == 1 else None
    adapted = _bank_adapted(data, arch, weights, rows, half_rows, spec_classifier.CLIP_INPUT, start,
                            source=pre.head["bank"], **_pretrained_facts(data))
    key = ("spec_eval", pre.sidecar.key, str(pre.path), data.md.machine)
    if key not in data.memo:
        data.memo[key] = spec_classifier.embed_clips(arch, weights, data.eval_x, data.eval_offsets)
    return dataclasses.replace(adapted, scores=knn_scores(data.memo[key], adapted.head, k=adapted.scorer["k"]))


FUNCTIONS = (logmel_knn, logmel_two_bank, embed_zero_shot, embed_knn, embed_finetune, spec_two_bank)  # its methods
