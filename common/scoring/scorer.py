"""A model's clip scores by the scorer its sidecar records: reconstruction error, nearest neighbour or Mahalanobis.

A scorer (``Sidecar.scorer``) is a small dict; its arrays (bank, Gaussians) are the model's head
(`common.models.saved.load_head`). Kinds:

- ``reconstruction`` (also a sidecar without a scorer): the mean squared reconstruction error of
  the clip's vectors under the autoencoder (`common.scoring.reconstruction`).
- ``knn``: the cosine distance of the clip vector to its ``k`` nearest bank clips (`common.scoring.knn`); with a
  ``source_bank`` in the head, the smaller of that and its distance to the source clips (`common.scoring.two_bank`).
- ``gaussian``: the Mahalanobis distance of the clip vector to the nearest of the head's Gaussians.
- ``residual_gaussian``: the autoencoder's residual of each frame vector, its Mahalanobis distance to
  each Gaussian averaged over the clip, the smallest of them (selective Mahalanobis).
- ``fusion``: the normalised sum of its ``parts``' scores, each part a scorer of the kinds above with its head
  arrays under its prefix (`common.scoring.fusion`); at most one part reads the model's network or weights.

A clip vector (``input``) is ``logmel_stats`` (mean and std over frames, `common.features.clipvectors`),
``embedding`` (the classifier's clip embedding, `common.models.classifier`), ``spectrogram_embedding`` (the
spectrogram classifier's, `common.models.spec_classifier`), ``clip_vectors`` (the vectors
given are already one per clip: a model kind that reads the WAV itself, such as SoundNet's,
`common.models.kinds`) or ``wav`` (a fused row's part whose vectors its ``clip_model``, a kind that reads the WAV
itself, makes of the clip's samples beside the row's log-mel frames: the caller's `wav` gives them).
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional

import numpy as np

from common.features.clipvectors import check_offsets, logmel_stats
from common.models import spec_classifier
from common.models.classifier import embed_clips
from common.errors import ModelError
from common.scoring.fusion import PART_KEYS, fuse, part_head
from common.scoring.knn import cosine_knn
from common.scoring.mahalanobis import from_arrays, selective
from common.models.inference import outputs
from common.models.kinds import model_kind
from common.scoring.reconstruction import clip_scores
from common.scoring.two_bank import two_bank_scores

SCORERS = ("reconstruction", "knn", "gaussian", "residual_gaussian", "fusion")
CLIP_INPUTS = ("logmel_stats", "embedding", spec_classifier.CLIP_INPUT, "clip_vectors", "wav")
WavVectors = Optional[Callable[[Mapping[str, Any]], np.ndarray]]  # clip_model -> one vector per clip being scored
# The head arrays each scorer reads (Gaussians: at least the first one's); reconstruction reads none.
HEAD_ARRAYS = {"reconstruction": (), "knn": ("bank",), "gaussian": ("mean_0", "precision_0"),
               "residual_gaussian": ("mean_0", "precision_0"), "fusion": ()}


def kind(spec: Mapping[str, Any] | None) -> str:
    """The scorer kind of a sidecar's ``scorer`` (None: reconstruction)."""
    found = "reconstruction" if not spec else str(spec.get("kind"))
    if found not in SCORERS:
        raise ModelError(f"unknown scorer kind {found!r} (known: {', '.join(SCORERS)})")
    return found


def check_scorer(spec: Any, head: Mapping[str, np.ndarray], *, sidecar: str) -> None:
    """Refuse a scorer `spec` that is unknown or malformed, or whose `head` lacks the arrays it reads.

    Parameters
    ----------
    spec : the sidecar's ``scorer`` (None: reconstruction)
    head : mapping of str to np.ndarray
        The model's head arrays (`common.models.saved.load_head`: {} when the sidecar records no ``head_sha256``).
    sidecar : str
        The sidecar's path, named in every message.

    Raises
    ------
    ModelError
        Naming `sidecar`, the scorer and what is wrong with it.
    """
    if spec is not None and not isinstance(spec, Mapping):
        raise ModelError(f"sidecar {sidecar}: 'scorer' must be a JSON object such as {{\"kind\": \"knn\"}}, "
                         f"got {spec!r}")
    try:
        found = kind(spec)
        if found in ("knn", "gaussian") and spec.get("input") not in CLIP_INPUTS:
            raise ModelError(f"unknown scorer input {spec.get('input')!r} (known: {', '.join(CLIP_INPUTS)})")
        if found in ("knn", "gaussian") and spec.get("input") == "wav":
            clip_model = spec.get("clip_model")
            if not isinstance(clip_model, Mapping) or model_kind(clip_model).clip_vectors is None:
                raise ModelError(f"the wav scorer input needs a 'clip_model' of a kind that reads the WAV itself, "
                                 f"got {clip_model!r}")
    except ModelError as exc:
        raise ModelError(f"sidecar {sidecar}: {exc}: use the sidecar saved with the model, or export it again") from None
    k = (spec or {}).get("k", 1)
    if found == "knn" and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise ModelError(f"sidecar {sidecar}: the knn scorer's k={k!r} must be a positive integer")
    if found == "fusion":
        _check_parts(spec.get("parts"), head, sidecar=sidecar)
    missing = [name for name in HEAD_ARRAYS[found] if name not in head]
    if missing:
        why = ("it records no 'head_sha256' (an edited sidecar, or one of another export), so no head is read"
               if not head else f"the head holds only {sorted(head)}")
        raise ModelError(f"sidecar {sidecar}: the {found} scorer reads the head arrays {missing} (NAME.head.npz), but "
                         f"{why}: use the three files NAME.keras, NAME.json and NAME.head.npz saved together")


def _check_parts(parts: Any, head: Mapping[str, np.ndarray], *, sidecar: str) -> None:
    """Refuse a fused scorer's ``parts`` unless it is a list of two or more parts, each a valid scorer on its head."""
    if not isinstance(parts, list) or len(parts) < 2 or not all(isinstance(p, Mapping) for p in parts):
        raise ModelError(f"sidecar {sidecar}: the fusion scorer's 'parts' must be a list of two or more objects, "
                         f"got {parts!r}")
    for i, part in enumerate(parts):
        missing = [k for k in PART_KEYS if k not in part]
        scale = part.get("scale")
        if missing or not isinstance(scale, (int, float)) or isinstance(scale, bool) or not scale > 0:
            raise ModelError(f"sidecar {sidecar}: part {i} of the fusion scorer needs {list(PART_KEYS)} with a "
                             f"positive scale, got {dict(part)!r}")
        if kind(part["scorer"]) == "fusion":
            raise ModelError(f"sidecar {sidecar}: part {i} of the fusion scorer is itself a fusion")
        check_scorer(part["scorer"], part_head(head, str(part["prefix"])), sidecar=sidecar)


def needs_network(spec: Mapping[str, Any] | None) -> bool:
    """Whether the scorer `spec` runs the model on frame vectors (the others read clip vectors, or its weights)."""
    found = kind(spec)
    if found == "fusion":
        return any(needs_network(p["scorer"]) for p in spec["parts"])
    return found in ("reconstruction", "residual_gaussian")


def wav_models(spec: Mapping[str, Any] | None) -> list[Mapping[str, Any]]:
    """The ``clip_model`` of every part of `spec` whose input is ``wav``: what a caller computes from each clip's
    samples for `score_clips`' `wav`."""
    if kind(spec) == "fusion":
        return [m for p in spec["parts"] for m in wav_models(p["scorer"])]
    return [spec["clip_model"]] if spec and spec.get("input") == "wav" else []


def clip_inputs(spec: Mapping[str, Any], weights: Callable[[], list[np.ndarray]], arch: Mapping[str, Any],
                vectors: np.ndarray, offsets: np.ndarray, *, n_mels: int, wav: WavVectors = None,
                inputs_memo: dict | None = None) -> np.ndarray:
    """One vector per clip as the scorer `spec` takes them [shape=(n_clips, dim)]; `weights()` gives the model's.

    `inputs_memo`: the caller's dict for these clips, where the embedding's network inputs are kept between models
    (`common.models.classifier.embed_clips`)."""
    source = spec.get("input")
    if source == "wav":
        if wav is None:
            raise ModelError("the wav scorer input needs the clips' WAV files (a fused part that reads the samples)")
        return np.asarray(wav(spec["clip_model"]), dtype=np.float64)
    if source == "logmel_stats":
        return logmel_stats(vectors, offsets, n_mels=n_mels)
    if source == "embedding":
        return embed_clips(arch, weights(), vectors, offsets, inputs_memo=inputs_memo)
    if source == spec_classifier.CLIP_INPUT:
        return spec_classifier.embed_clips(arch, weights(), vectors, offsets)
    if source == "clip_vectors":
        if np.any(np.diff(offsets) != 1):
            raise ModelError("the clip_vectors scorer input needs exactly one vector per clip")
        return np.asarray(vectors, dtype=np.float64)
    raise ModelError(f"unknown scorer input {source!r} (known: {', '.join(CLIP_INPUTS)})")


def knn_scores(clips: np.ndarray, head: Mapping[str, np.ndarray], *, k: int) -> np.ndarray:
    """The knn scorer's clip scores: distance to the ``bank``, or the smaller of it and the ``source_bank`` distance."""
    if "source_bank" in head:
        return two_bank_scores(clips, head["source_bank"], head["bank"], k=k)
    return cosine_knn(clips, head["bank"], k=k)


def residuals(model, vectors: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
    """The autoencoder's residual ``x - model(x)`` of every vector."""
    out = outputs(model, vectors, batch_size=batch_size)
    return np.subtract(np.asarray(vectors, dtype=np.float32), out, out=out)  # in place of the outputs


def score_clips(model, arch: Mapping[str, Any], spec: Mapping[str, Any] | None, head: Mapping[str, np.ndarray],
                vectors: np.ndarray, offsets: np.ndarray, *, n_mels: int,
                weights: list[np.ndarray] | None = None, wav: WavVectors = None,
                inputs_memo: dict | None = None) -> np.ndarray:
    """The score of every clip under a model, its scorer `spec` and `head` arrays [shape=(n_clips,)].

    `model` is run only where `needs_network(spec)` (None elsewhere is fine); an embedding input reads `weights`
    (default: the model's), so a caller holding the weights builds no Keras model for it; a ``wav`` input reads
    `wav` (`wav_models`); `inputs_memo` as in `clip_inputs`.
    """
    found = kind(spec)
    if found == "fusion":
        return fuse([score_clips(model, arch, p["scorer"], part_head(head, str(p["prefix"])), vectors, offsets,
                                 n_mels=n_mels, weights=weights, wav=wav, inputs_memo=inputs_memo)
                     for p in spec["parts"]], spec["parts"])
    if found == "reconstruction":
        return clip_scores(model, vectors, offsets)
    offsets = check_offsets(vectors, offsets)
    if found == "residual_gaussian":
        return selective(from_arrays(head), residuals(model, vectors), offsets)
    clips = clip_inputs(spec, (lambda: model.get_weights()) if weights is None else (lambda: weights), arch,
                        vectors, offsets, n_mels=n_mels, wav=wav, inputs_memo=inputs_memo)
    if found == "knn":
        return knn_scores(clips, head, k=int(spec.get("k", 1)))
    return selective(from_arrays(head), clips)
