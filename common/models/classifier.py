"""The machine-ID embedding: a classifier of the source machines with an angular-margin head, and clip embeddings.

A dense network maps one input to an embedding (the layer named ``embedding``); a cosine head gives
its cosine to one learned center per class (source machine). The input is either one stacked log-mel
vector (``window=0``) or the log-mel mean and std over a window of frames (``window > 0``, `clip_inputs`,
`sample_inputs`): on the synthetic set the window input embeds far better (benchmarks/embedding_options.py).
Training adds the head's margin and scale in the loss (`margin_logits`, `margin_loss`): ArcFace adds an
angular margin to the true class; AdaCos uses no margin and the fixed scale ``sqrt(2) * log(C - 1)``;
mixup mixes pairs of inputs and their labels. A clip's embedding is the L2-normalised mean of its inputs'
embeddings (`embed_clips`); a target clip is then scored by its cosine distance to the nearest budget
clip."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import keras
import numpy as np
from keras import layers

from common.models import compiled_fit
from common.models.layers import Standardize
from common.models.inference import outputs
from common.errors import DataError, ModelError
from common.models.train import freeze_layers, set_seed, steps_per_execution

HEADS = ("adacos", "arcface")
_PACKAGE = "mimii_embedding"


# --------------------------------------------------------------------------------------------
# The head and its loss


def fixed_scale(n_classes: int) -> float:
    """AdaCos' fixed scale ``sqrt(2) * log(C - 1)``, with ``C - 1`` floored at 2 (it is 0 for two classes)."""
    return math.sqrt(2.0) * math.log(max(int(n_classes) - 1, 2))


def head_scale(arch: Mapping[str, Any]) -> float:
    """The scale the loss multiplies cosines by: ``arch["scale"]``, or `fixed_scale` when it is None."""
    return fixed_scale(arch["n_classes"]) if arch["scale"] is None else float(arch["scale"])


def margin_logits(cosines, y_true, *, head: str, scale: float, margin: float):
    """Logits of the margin softmax: ``scale * cos(theta + margin * [true class])`` (ArcFace) or ``scale * cos``.

    Parameters
    ----------
    cosines : tensor [shape=(n, n_classes)]
        Cosine of each embedding to each class center.
    y_true : tensor [shape=(n, n_classes)]
        One-hot or soft (mixup) labels; with soft labels the margin is applied in proportion:
        ``cos + y * (cos(theta + margin) - cos)``.
    head : {"adacos", "arcface"}
        ``adacos`` ignores `margin`.
    scale : float > 0
    margin : float >= 0
        Angular margin in radians (ArcFace); ``theta + margin`` is capped at pi.
    """
    cosines = keras.ops.convert_to_tensor(cosines, dtype="float32")
    if head == "adacos" or margin == 0:
        return scale * cosines
    y_true = keras.ops.convert_to_tensor(y_true, dtype="float32")
    theta = keras.ops.arccos(keras.ops.clip(cosines, -1.0 + 1e-6, 1.0 - 1e-6))
    shifted = keras.ops.cos(keras.ops.minimum(theta + margin, math.pi))
    return scale * (cosines + y_true * (shifted - cosines))


def margin_loss(y_true, cosines, *, head: str, scale: float, margin: float):
    """Per-sample cross-entropy of the (soft) labels against the softmax of `margin_logits` [shape=(n,)]."""
    y_true = keras.ops.convert_to_tensor(y_true, dtype="float32")
    logits = margin_logits(cosines, y_true, head=head, scale=scale, margin=margin)
    return -keras.ops.sum(y_true * keras.ops.log_softmax(logits, axis=-1), axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MarginLoss(keras.losses.Loss):
    """`margin_loss` as a Keras loss (the model outputs cosines; margin and scale live here, not in the model)."""

    def __init__(self, *, head: str = "adacos", scale: float = 1.0, margin: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.head, self.scale, self.margin = head, float(scale), float(margin)

    def call(self, y_true, y_pred):
        return margin_loss(y_true, y_pred, head=self.head, scale=self.scale, margin=self.margin)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "head": self.head, "scale": self.scale, "margin": self.margin}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CosineHead(layers.Layer):
    """Cosine of the (L2-normalised) input to each of `n_classes` learned centers [shape=(n, n_classes)]."""

    def __init__(self, n_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_classes = int(n_classes)

    def build(self, input_shape) -> None:
        self.centers = self.add_weight(name="centers", shape=(int(input_shape[-1]), self.n_classes),
                                       initializer="glorot_uniform")

    def call(self, inputs):
        x = keras.ops.normalize(inputs, axis=-1)
        return keras.ops.matmul(x, keras.ops.normalize(self.centers, axis=0))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_classes": self.n_classes}


# --------------------------------------------------------------------------------------------
# Architecture and model


def classifier_architecture(
    input_dim: int, n_classes: int, *, hidden: Sequence[int], embedding_dim: int, head: str,
    scale: float | None, margin: float, batch_norm: bool = False, window: int = 0, n_mels: int | None = None,
    hop: int | None = None,
) -> dict[str, Any]:
    """The sizes and head that rebuild a classifier, JSON-able (``"kind": "classifier"``), as a sidecar stores them.

    Parameters
    ----------
    input_dim : int > 0
        ``n_mels * frames`` of the vectors it embeds.
    n_classes : int >= 2
        Source machines (one class each).
    hidden : sequence of int > 0
        Dense ReLU layers before the embedding.
    embedding_dim : int > 0
        Size of the linear layer named ``embedding``.
    head : {"adacos", "arcface"}
    scale : float > 0 or None
        Logit scale of the loss; None: AdaCos' fixed scale for the number of classes (`fixed_scale`).
    margin : float >= 0
        ArcFace's angular margin in radians (0 for AdaCos).
    batch_norm : bool
        Batch normalisation before each hidden ReLU.
    window : int >= 0
        0: the network embeds each vector. > 0: it embeds the log-mel mean and std over `window`
        consecutive frames (`clip_inputs`), which needs `n_mels`; a clip is embedded from windows
        every `hop` frames (default ``window // 2``).
    n_mels : int > 0 or None
        Bands per frame of the vectors (their first `n_mels` values are one frame); window > 0 only.
    hop : int > 0 or None

    Raises
    ------
    ModelError
        A size, the head, the scale or the margin is out of range (the message names it).
    """
    sizes = {"input_dim": input_dim, "n_classes": n_classes, "embedding_dim": embedding_dim}
    for name, value in sizes.items():
        least = 2 if name == "n_classes" else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
            raise ModelError(f"{name}={value!r} must be an integer >= {least}"
                             + (": a classifier needs at least 2 classes" if least == 2 else ""))
    if any(int(h) < 1 for h in hidden):
        raise ModelError(f"hidden={list(hidden)} must be positive layer sizes")
    if head not in HEADS:
        raise ModelError(f"head={head!r} must be one of {list(HEADS)}")
    if scale is not None and not float(scale) > 0:
        raise ModelError(f"scale={scale!r} must be positive (or None for AdaCos' fixed scale)")
    if not 0 <= float(margin) < math.pi:
        raise ModelError(f"margin={margin!r} must be an angle in [0, pi) radians")
    return {"kind": "classifier", "input_dim": int(input_dim), "n_classes": int(n_classes),
            "hidden": [int(h) for h in hidden], "embedding_dim": int(embedding_dim), "head": head,
            "scale": None if scale is None else float(scale), "margin": float(margin), "batch_norm": bool(batch_norm),
            **_window_keys(int(input_dim), window, n_mels, hop)}


def _window_keys(input_dim: int, window: int, n_mels: int | None, hop: int | None) -> dict[str, Any]:
    """The architecture's ``window``, ``n_mels`` and ``hop``, checked (ModelError naming the bad one)."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 0:
        raise ModelError(f"window={window!r} must be 0 (one vector) or a positive number of frames")
    if window == 0:
        return {"window": 0, "n_mels": None, "hop": None}
    if n_mels is None or not 1 <= int(n_mels) <= input_dim:
        raise ModelError(f"n_mels={n_mels!r} must be a band count in [1, input_dim={input_dim}] when window={window}")
    hop = max(window // 2, 1) if hop is None else hop
    if int(hop) < 1:
        raise ModelError(f"hop={hop!r} must be a positive number of frames")
    return {"window": int(window), "n_mels": int(n_mels), "hop": int(hop)}


def model_input_dim(arch: Mapping[str, Any]) -> int:
    """Width of the network's input: ``input_dim`` (one vector) or ``2 * n_mels`` (a window's mean and std)."""
    return 2 * int(arch["n_mels"]) if arch.get("window", 0) else int(arch["input_dim"])


def build_classifier(arch: Mapping[str, Any]) -> keras.Model:
    """The classifier of `arch`: standardize -> dense layers -> ``embedding`` -> ``head`` (cosines, one per class).

    Layers are named ``standardize``, ``dense_1 .. dense_k`` (with ``_bn``/``_relu`` partners under
    batch norm), ``embedding`` and ``head``, so fine-tuning can freeze them by name.
    """
    _check_kind(arch)
    inputs = keras.Input(shape=(model_input_dim(arch),), name="logmel_frames")
    x = Standardize(name="standardize")(inputs)
    for i, size in enumerate(arch["hidden"]):
        name = f"dense_{i + 1}"
        if arch.get("batch_norm", False):
            x = layers.Dense(size, name=name)(x)
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
            x = layers.Activation("relu", name=f"{name}_relu")(x)
        else:
            x = layers.Dense(size, activation="relu", name=name)(x)
    x = layers.Dense(int(arch["embedding_dim"]), name="embedding")(x)
    outputs = CosineHead(int(arch["n_classes"]), name="head")(x)
    return keras.Model(inputs, outputs, name="classifier")


def _check_kind(arch: Mapping[str, Any]) -> None:
    if arch.get("kind") != "classifier":
        raise ModelError(f"architecture kind={arch.get('kind')!r} is not 'classifier': {dict(arch)}")


def class_centers(arch: Mapping[str, Any], weights: list[np.ndarray]) -> np.ndarray:
    """The head's class centers, L2-normalised [shape=(n_classes, embedding_dim)]."""
    centers = np.asarray(weights[_head_index(arch)], dtype=np.float64).T
    return centers / np.maximum(np.linalg.norm(centers, axis=1, keepdims=True), 1e-12)


def _head_index(arch: Mapping[str, Any]) -> int:
    """Position of the head's centers in ``get_weights()`` (the last layer's only weight)."""
    model = _compiled(arch, ()).model
    head = model.get_layer("head").centers
    return next(i for i, w in enumerate(model.weights) if w is head)


def with_new_class(arch: Mapping[str, Any], weights: list[np.ndarray], center: np.ndarray) -> tuple[dict, list]:
    """`arch` and `weights` with one more class whose center is `center` [shape=(embedding_dim,)], others kept.

    The new class is the last one (label ``n_classes``); the stored center is L2-normalised and
    scaled to the mean norm of the old centers, so it starts on the same footing.
    """
    _check_kind(arch)
    center = np.asarray(center, dtype=np.float32).reshape(-1)
    if center.shape != (int(arch["embedding_dim"]),) or not np.all(np.isfinite(center)):
        raise ModelError(f"center of shape {center.shape} must be finite, of shape ({arch['embedding_dim']},)")
    i = _head_index(arch)
    old = np.asarray(weights[i], dtype=np.float32)
    norm = float(np.mean(np.linalg.norm(old, axis=0)))
    new = center / max(float(np.linalg.norm(center)), 1e-12) * norm
    out = [np.asarray(w) for w in weights]
    out[i] = np.concatenate([old, new[:, None]], axis=1)
    return {**dict(arch), "n_classes": int(arch["n_classes"]) + 1}, out


# --------------------------------------------------------------------------------------------
# Training


@dataclass
class ClassifierFit:
    """Weights after a fit, its per-epoch history (``loss``, ``categorical_accuracy``) and its seconds."""

    weights: list[np.ndarray]
    history: dict[str, list[float]]
    seconds: float


@dataclass
class _Compiled:
    model: keras.Model  # compiled with the margin loss
    embedder: keras.Model  # the same layers, input -> ``embedding``
    programs: dict[int, compiled_fit.ClassifierPrograms] = field(default_factory=dict)  # by batch size (JAX)


_COMPILED: dict[tuple[str, tuple[str, ...]], _Compiled] = {}


def _compiled(arch: Mapping[str, Any], freeze: Sequence[str]) -> _Compiled:
    """One compiled model per (architecture, frozen layers): Keras traces a train step once per model (~1 s)."""
    key = (json.dumps(dict(arch), sort_keys=True), tuple(freeze))
    if key not in _COMPILED:
        model = build_classifier(arch)
        freeze_layers(model, freeze)
        loss = MarginLoss(head=arch["head"], scale=head_scale(arch), margin=float(arch["margin"]))
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=loss,
                      metrics=["categorical_accuracy"], steps_per_execution=steps_per_execution())
        # Build the optimizer now (see common.models.train.Trainer.model: a first fit would otherwise differ).
        model.fit(np.zeros((1, model_input_dim(arch)), "float32"), np.eye(arch["n_classes"], dtype="float32")[:1],
                  epochs=0, verbose=0)
        embedder = keras.Model(model.input, model.get_layer("embedding").output, name="embedder")
        _COMPILED[key] = _Compiled(model, embedder)
    return _COMPILED[key]


def _load(model: keras.Model, weights: list[np.ndarray]) -> None:
    try:
        model.set_weights(weights)
    except ValueError as exc:
        raise ModelError(f"weights do not fit the classifier architecture: {exc}") from None


def initial_weights(arch: Mapping[str, Any], x: np.ndarray, *, seed: int) -> list[np.ndarray]:
    """Random weights of `arch` for `seed`, with the ``standardize`` layer set to the mean and std of `x`."""
    set_seed(seed)
    model = build_classifier(arch)
    x64 = np.asarray(x, dtype=np.float64)
    std = np.maximum(x64.std(axis=0), 1e-3)  # a constant feature (e.g. a silent band) stays finite
    model.get_layer("standardize").set_weights([x64.mean(axis=0).astype("float32"), (1.0 / std).astype("float32")])
    return model.get_weights()


def _check_training(arch: Mapping[str, Any], x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`labels` as int64 after checking them and `x` against `arch` (ModelError naming the problem)."""
    _check_kind(arch)
    labels = np.asarray(labels)
    if x.ndim != 2 or x.shape[1] != model_input_dim(arch):
        raise ModelError(f"training inputs of shape {x.shape} do not fit the network's input width "
                         f"{model_input_dim(arch)} (window={arch.get('window', 0)}: use sample_inputs)")
    if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
        raise ModelError(f"labels of shape {labels.shape} and dtype {labels.dtype} must be {len(x)} integers")
    present = np.unique(labels)
    if len(present) < 2:
        raise ModelError(f"the classifier needs at least 2 classes to tell apart; the labels hold {present.tolist()}")
    if present[0] < 0 or present[-1] >= arch["n_classes"]:
        raise ModelError(f"labels {present.tolist()} must lie in [0, n_classes={arch['n_classes']})")
    if not np.all(np.isfinite(x)):
        raise ModelError("training vectors hold NaN or infinite values")
    return labels.astype(np.int64)


def _epoch_data(x: np.ndarray, onehot: np.ndarray, *, mixup: float, seed: int, epoch: int):
    """Epoch `epoch`'s shuffled (x, onehot); a `mixup` fraction of rows mixed with another, lambda ~ U(0, 1)."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(x))
    xe, ye = np.asarray(x[order], dtype=np.float32), onehot[order]
    if mixup > 0:
        rows = np.flatnonzero(rng.random(len(x)) < mixup)
        partner = rng.integers(0, len(x), size=len(rows))
        lam = rng.random(len(rows)).astype(np.float32)[:, None]
        xe[rows] = lam * xe[rows] + (1 - lam) * xe[partner]
        ye[rows] = lam * ye[rows] + (1 - lam) * ye[partner]
    return xe, ye


def train_classifier(
    arch: Mapping[str, Any], weights: list[np.ndarray] | None, x: np.ndarray, labels: np.ndarray, *,
    epochs: int, batch_size: int, learning_rate: float, mixup: float, seed: int, freeze: Sequence[str] = (),
) -> ClassifierFit:
    """Train the classifier of `arch` from `weights` (None: `initial_weights` on `x`) to tell `labels` apart.

    Adam with a fresh state; every epoch is a seeded shuffle of the rows (`_epoch_data`), so a seed
    gives the same weights on CPU whatever ran before.

    Parameters
    ----------
    x : np.ndarray [shape=(n, model_input_dim(arch))]
        Training inputs (`sample_inputs` of the source clips); copied once per epoch.
    labels : np.ndarray [shape=(n,), int]
        Class of each row, in ``[0, n_classes)``; at least two classes present.
    mixup : float in [0, 1]
        Fraction of rows per epoch replaced by ``lam * a + (1 - lam) * b`` of themselves and another
        row (labels mixed alike), ``lam ~ U(0, 1)``; 0 disables mixup.
    freeze : sequence of str
        Layer names kept fixed (e.g. ``("dense_1",)``).

    Raises
    ------
    ModelError
        Fewer than two classes, labels out of range, `x` of the wrong width, or weights of another architecture.
    """
    labels = _check_training(arch, np.asarray(x), labels)
    if not 0 <= mixup <= 1:
        raise ModelError(f"mixup={mixup!r} must be a fraction in [0, 1]")
    compiled = _compiled(arch, tuple(freeze))
    model = compiled.model
    _load(model, initial_weights(arch, x, seed=seed) if weights is None else weights)
    for v in model.optimizer.variables:
        v.assign(np.zeros(v.shape, dtype=v.dtype))
    model.optimizer.learning_rate = learning_rate
    set_seed(seed)
    onehot = np.eye(int(arch["n_classes"]), dtype=np.float32)[labels]
    start = time.perf_counter()
    epoch_data = (_epoch_data(x, onehot, mixup=mixup, seed=seed, epoch=epoch) for epoch in range(epochs))
    history = compiled_fit.fit_epochs(model, compiled.programs, epoch_data, batch_size=batch_size, n_rows=len(x),
                                      hits=_hits, whole_batches=False, accuracy="categorical_accuracy")
    return ClassifierFit(model.get_weights(), history, time.perf_counter() - start)


def _hits(y_true, y_pred):
    """Keras' ``categorical_accuracy`` of each row: the largest output is the (largest) true class."""
    return keras.ops.argmax(y_pred, axis=-1) == keras.ops.argmax(y_true, axis=-1)


# --------------------------------------------------------------------------------------------
# Clips: sampling, embeddings, log-mel statistics


def _check_offsets(offsets: np.ndarray, n_vectors: int) -> np.ndarray:
    """`offsets` as int64 after checking they split `n_vectors` rows into non-empty clips (DataError otherwise)."""
    offsets = np.asarray(offsets)
    if (offsets.ndim != 1 or len(offsets) < 2 or not np.issubdtype(offsets.dtype, np.integer)
            or offsets[0] != 0 or offsets[-1] != n_vectors or np.any(np.diff(offsets) < 1)):
        raise DataError(f"offsets must be increasing integers from 0 to the {n_vectors} vectors, one clip of at "
                        f"least one vector between each pair; got {offsets[:5].tolist()}... (length {offsets.size})")
    return offsets.astype(np.int64)


def clip_means(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Mean of the rows of each clip [shape=(n_clips, dim)], float64."""
    offsets = _check_offsets(offsets, len(values))
    sums = np.add.reduceat(np.asarray(values, dtype=np.float64), offsets[:-1], axis=0)
    return sums / np.diff(offsets)[:, None]


def sample_vectors(vectors: np.ndarray, offsets: np.ndarray, per_clip: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to `per_clip` vectors of each clip, drawn without replacement from `seed`, and each one's clip index.

    A clip with at most `per_clip` vectors gives all of them. Rows keep their order within a clip.

    Returns
    -------
    x : np.ndarray [shape=(n, dim), float32]
    clips : np.ndarray [shape=(n,), int64]
        Index of the clip (into ``offsets[:-1]``) each row comes from.
    """
    offsets = _check_offsets(offsets, len(vectors))
    if isinstance(per_clip, bool) or not isinstance(per_clip, (int, np.integer)) or per_clip < 1:
        raise DataError(f"per_clip={per_clip!r} must be a positive integer")
    rng = np.random.default_rng(seed)
    rows = []
    for a, b in zip(offsets[:-1], offsets[1:]):
        n = int(b - a)
        rows.append(np.arange(a, b) if n <= per_clip else a + np.sort(rng.choice(n, per_clip, replace=False)))
    counts = np.array([len(r) for r in rows])
    return np.asarray(vectors[np.concatenate(rows)], dtype=np.float32), np.repeat(np.arange(len(rows)), counts)


def _window_stats(frames: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """Mean and std over `width` frames from each of `starts`, by cumulative sums over time (axis -2).

    `frames` [shape=(..., n_frames, n_bands)] and `starts` [shape=(..., n_starts)] share their leading axes (clips);
    returns [shape=(..., n_starts, 2 * n_bands)]. A stack of clips gives each clip what it gives alone: a cumulative
    sum adds in order along its axis.
    """
    zero = np.zeros((*frames.shape[:-2], 1, frames.shape[-1]))
    total = np.concatenate([zero, np.cumsum(frames, axis=-2)], axis=-2)
    squares = np.concatenate([zero, np.cumsum(frames**2, axis=-2)], axis=-2)
    at = lambda table, rows: np.take_along_axis(table, rows[..., None], axis=-2)  # noqa: E731
    mean = (at(total, starts + width) - at(total, starts)) / width
    var = (at(squares, starts + width) - at(squares, starts)) / width - mean**2
    return np.concatenate([mean, np.sqrt(np.maximum(var, 0.0))], axis=-1)


def _clip_windows(arch: Mapping[str, Any], vectors: np.ndarray, offsets: np.ndarray, starts_of) -> tuple:
    """Window statistics of each clip at ``starts_of(n_frames, width)`` (width capped at the clip), and their clip.

    The starts are drawn clip by clip in order; clips of one length with as many starts are computed as one stack.
    """
    lengths = np.diff(offsets)
    widths = np.minimum(int(arch["window"]), lengths)
    starts = [np.asarray(starts_of(int(n), int(w))) for n, w in zip(lengths, widths)]
    out: list[np.ndarray] = [np.empty(0)] * len(starts)
    groups: dict[tuple[int, int], list[int]] = {}
    for i, (n, s) in enumerate(zip(lengths, starts)):
        groups.setdefault((int(n), len(s)), []).append(i)
    for (n, _), clips in groups.items():
        frames = np.stack([vectors[offsets[i]:offsets[i] + n, : arch["n_mels"]] for i in clips]).astype(np.float64)
        stats = _window_stats(frames, np.stack([starts[i] for i in clips]), int(widths[clips[0]]))
        for i, clip_stats in zip(clips, stats):
            out[i] = clip_stats
    return (np.concatenate(out).astype(np.float32),
            np.concatenate([np.full(len(s), i) for i, s in enumerate(starts)]))


def clip_inputs(arch: Mapping[str, Any], vectors: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The network's inputs for whole clips and their offsets: the vectors, or window statistics every ``hop`` frames.

    Returns
    -------
    x : np.ndarray [shape=(n, model_input_dim(arch)), float32]
    offsets : np.ndarray [shape=(n_clips + 1,), int64]
        Clip ``i`` owns ``x[offsets[i]:offsets[i + 1]]``.
    """
    _check_kind(arch)
    offsets = _check_offsets(offsets, len(vectors))
    if not arch.get("window", 0):
        return np.asarray(vectors, dtype=np.float32), offsets
    x, clips = _clip_windows(arch, vectors, offsets, lambda n, w: np.arange(0, n - w + 1, arch["hop"]))
    return x, np.concatenate([[0], np.cumsum(np.bincount(clips, minlength=len(offsets) - 1))])


def sample_inputs(arch: Mapping[str, Any], vectors: np.ndarray, offsets: np.ndarray, per_clip: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training inputs of the network for `arch`: `sample_vectors`, or `per_clip` windows at seeded random starts.

    Returns
    -------
    x : np.ndarray [shape=(n, model_input_dim(arch)), float32]
    clips : np.ndarray [shape=(n,), int64]
        Index of the clip each row comes from.
    """
    _check_kind(arch)
    if not arch.get("window", 0):
        return sample_vectors(vectors, offsets, per_clip, seed)
    offsets = _check_offsets(offsets, len(vectors))
    if isinstance(per_clip, bool) or not isinstance(per_clip, (int, np.integer)) or per_clip < 1:
        raise DataError(f"per_clip={per_clip!r} must be a positive integer")
    rng = np.random.default_rng(seed)
    return _clip_windows(arch, vectors, offsets, lambda n, w: rng.integers(0, n - w + 1, per_clip))


def embed_vectors(arch: Mapping[str, Any], weights: list[np.ndarray], vectors: np.ndarray,
                  *, batch_size: int = 4096) -> np.ndarray:
    """The ``embedding`` layer's output for each network input [shape=(n, embedding_dim), float32]."""
    compiled = _compiled(arch, ())
    _load(compiled.model, weights)
    return outputs(compiled.embedder, vectors, batch_size=batch_size)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows of `x` scaled to unit length (a zero row stays zero)."""
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def embed_clips(arch: Mapping[str, Any], weights: list[np.ndarray], vectors: np.ndarray, offsets: np.ndarray,
                *, normalize_vectors: bool = False, inputs_memo: dict | None = None) -> np.ndarray:
    """Clip embeddings: the L2-normalised mean of the embeddings of each clip's `clip_inputs` [shape=(n_clips, dim)].

    ``normalize_vectors=True`` normalises each input's embedding before the mean (the mean direction).
    `inputs_memo`: a dict the caller keeps for these very `vectors` and `offsets` (one dict per set of clips); their
    `clip_inputs` are kept there by the settings that make them, so the models of other cells embedding the same clips
    do not compute the window statistics again (the same arrays: the same embeddings, bit for bit).
    """
    if inputs_memo is None:
        x, offsets = clip_inputs(arch, vectors, offsets)
    else:
        key = ("clip_inputs", arch.get("window"), arch.get("hop"), arch.get("n_mels"), len(vectors), len(offsets))
        if key not in inputs_memo:
            inputs_memo[key] = clip_inputs(arch, vectors, offsets)
        x, offsets = inputs_memo[key]
    emb = embed_vectors(arch, weights, x)
    return l2_normalize(clip_means(l2_normalize(emb) if normalize_vectors else emb, offsets))
