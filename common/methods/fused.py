"""A fused method's model for one cell: its parts' models, their scores normalised on the budget clips, summed.

A fused method is a catalogue row with ``parts`` (`common.methods.catalog`) and no function of its own: the
registry makes its function (`fused_method`), which runs each part's own function on the same cell and sums the
parts' scores, each brought to one scale by its training clips' scores only
(`common.scoring.fusion`), so no evaluation clip sets a weight. The row model is the one part's network that has
one (else the first part's identity model) with every part's head under its prefix, and the scorer ``fusion``
(`common.scoring.scorer`), so ``score`` and ``export`` score a new clip as the run did; a part whose model reads
the clip's samples itself (sample statistics, SoundNet) keeps that model in its scorer (a ``wav`` input).

The fusions of the catalogue, chosen over the synthetic worlds (docs/worlds.md):

- ``embed_fusion`` (embedding family): ``embed_knn`` + ``logmel_two_bank``, the classifier's view of IDs and the
  statistics' view of the spectrum;
- ``fusion_transfer`` (fusion family): ``transfer_mahalanobis`` + ``lw_transfer`` + ``mod_transfer`` +
  ``fine_transfer``: the log-mel statistics lead where faults reshape the spectrum, the autoencoder's residuals
  where faults come and go in time, the modulation statistics where they change a rhythm (a pulse, a knock, a
  slower cycle), the fine spectrum where tones move by less than a mel band (a slower drive);
- ``fusion_scratch`` (its control): ``scratch`` + ``lw_scratch`` + ``mod_scratch`` + ``fine_scratch``, the same
  recipe on the target's clips only.
  Scratch's training clips are scored in sample (out of sample would cost a fit per clip), so their spread is small
  and its part weighs more than ``transfer_mahalanobis``'s, whose clips are scored out of sample.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from common.errors import ModelError
from common.methods.base import Adapted, Cell, CellData, adapted_scores
from common.methods.catalog import METHODS_CATALOG
from common.models.kinds import model_kind
from common.models.saved import load_model
from common.scoring.fusion import fuse, fused_head, normaliser


PART_METHODS = frozenset(p for info in METHODS_CATALOG.values() for p in info.parts)  # methods a fused row sums
_KEPT = "part_result"  # the memo's key of a part's cell result


def _group(cell: Cell) -> tuple:
    """The key of a cell's group: its key less the method (target, source, budget and seed)."""
    return dataclasses.replace(cell, method="").key


def remember(memo: dict, cell: Cell, adapted: Adapted, scores: np.ndarray) -> None:
    """Keep a part method's result for the fused rows of its cell group (same target, source, budget and seed).

    The grid calls it for every cell it computes; the cells of a group run one after the other in catalogue order,
    fused rows last, so a fused row reuses its parts' results instead of computing them again. Only the last
    group's are kept.
    """
    if cell.method not in PART_METHODS:
        return
    group = _group(cell)
    for old in [k for k in memo if k[0] == _KEPT and k[1] != group]:
        del memo[old]
    memo[(_KEPT, group, cell.method)] = (adapted, np.asarray(scores, dtype=np.float64))


def _part(data: CellData, name: str, adapt: Callable[[CellData], Adapted]) -> tuple[Adapted, np.ndarray]:
    """A part adapted to the cell, and its evaluation clips' scores: as the grid kept them, else computed."""
    kept = data.memo.get((_KEPT, _group(data.cell), name))
    if kept is not None:
        return kept
    adapted = adapt(data)
    scores = adapted.scores
    if scores is None:
        scores = adapted_scores(data.trainer, adapted, data.eval_x, data.eval_offsets, n_mels=data.cfg.feature.n_mels)
    return adapted, np.asarray(scores, dtype=np.float64)


def _reads_wav(adapted: Adapted) -> bool:
    """Whether the part's model makes its clip vectors from the samples itself (SoundNet, the sample statistics)."""
    return model_kind(adapted.architecture).clip_vectors is not None


def _part_scorer(adapted: Adapted) -> dict[str, Any]:
    """The part's scorer in the fused scorer: as it is, or (a part reading the samples) with its model as the
    ``clip_model`` of a ``wav`` input, since the row model is another part's."""
    if _reads_wav(adapted):
        return {**adapted.scorer, "input": "wav", "clip_model": dict(adapted.architecture)}
    return adapted.scorer


def _network(parts: list[tuple[str, Adapted]]) -> tuple[dict[str, Any], list[np.ndarray]]:
    """The architecture and weights of the row model: the one part with a network, else the first part on log-mel
    frames (the parts that read the samples themselves are in the scorer, `_part_scorer`)."""
    framed = [(n, a) for n, a in parts if not _reads_wav(a)]
    if not framed:
        raise ModelError(f"a fused model needs a part on log-mel frames, but the parts {[n for n, _ in parts]} all "
                         "read the samples themselves")
    networks = [(n, a) for n, a in framed if a.architecture.get("kind") != "identity"]
    if len(networks) > 1:
        raise ModelError(f"a fused model holds one network, but the parts {[n for n, _ in networks]} each have one")
    _, chosen = (networks or framed)[0]
    weights = chosen.weights
    if weights is None:  # a scratch store hit: its model file holds the weights
        weights = load_model(chosen.saved)[0].get_weights()
    return chosen.architecture, weights


def fuse_methods(data: CellData, parts: Mapping[str, Callable[[CellData], Adapted]]) -> Adapted:
    """The `parts` (name: function) adapted to the cell, each normalised by its training clips' scores, summed."""
    got = [(name, *_part(data, name, adapt)) for name, adapt in parts.items()]
    prefixes, head = fused_head([a.head for _, a, _ in got])
    specs = [{"method": name, "scorer": _part_scorer(adapted), "prefix": prefix,
              **dict(zip(("mean", "scale"), normaliser(adapted.train_scores)))}
             for prefix, (name, adapted, _) in zip(prefixes, got)]
    arch, weights = _network([(n, a) for n, a, _ in got])
    sidecar = {k: v for _, a, _ in got for k, v in a.sidecar.items()}
    return Adapted(arch, weights, fuse([a.train_scores for _, a, _ in got], specs), got[0][1].n_train_clips,
                   sum(a.seconds for _, a, _ in got), scores=fuse([s for _, _, s in got], specs),
                   scorer={"kind": "fusion", "parts": specs}, head=head, sidecar=sidecar)


def fused_method(name: str, parts: Mapping[str, Callable[[CellData], Adapted]]) -> Callable[[CellData], Adapted]:
    """The function of the fused method `name`: `fuse_methods` of its `parts` (name: function, in the row's order)."""
    parts = dict(parts)

    def adapt(data: CellData) -> Adapted:
        return fuse_methods(data, parts)

    adapt.__name__ = adapt.__qualname__ = name
    adapt.__doc__ = f"{' + '.join(parts)}, each normalised on the budget clips, summed (`fuse_methods`)."
    return adapt
