"""The spectrogram classifier: a small CNN over log-mel patches plus a spectrum branch, with a sub-cluster AdaCos head.

The embedding family's second network, in the shape of ASDKit's ``dis_spec_scac`` recipe (Fujimura et al.,
arXiv 2507.10264; ``asdit/losses/scadacos.py``): a network trained to tell the source machines (and, on DCASE
2021+, their attributes) apart, whose penultimate layer embeds a clip, scored by the two-bank kNN. Sized for a CPU:

- Input: a patch of ``patch_frames`` consecutive log-mel frames [shape=(patch_frames, n_mels)], cut from a clip's
  frame vectors (`clip_logmel` rebuilds a clip's spectrogram from them); a clip gives a patch every ``hop``
  frames (`clip_patches`), training draws ``per_clip`` at seeded random starts (`sample_patches`).
- Spectrogram branch: three 3x3 convolutions (``channels``, 2x, 2x; batch norm, ReLU; 2x2 max-pooling after the
  first two), then the maximum over time, flattened over (bands, channels), and a dense layer.
- Spectrum branch: the patch's mean power spectrum in dB (`patch_spectrum`: the mean over its frames of the mel
  power ``10 ** (logmel / 10)``, back to dB), standardised, a 1-D convolution over the bands and a dense layer.
- ``embedding``: a linear layer on both branches; a clip's embedding is the L2-normalised mean of its patches'.
- Head (`SubClusterHead`): the cosine of the embedding to ``n_classes * sub_clusters`` centres, fixed at their
  random initial values as ASDKit's ``SCAdaCos`` keeps them (``trainable=False``). The loss (`sub_cluster_loss`)
  is the cross-entropy of the class probabilities, each the sum of the softmax over its sub-clusters, at AdaCos'
  fixed scale ``sqrt(2) * log(C * K - 1)`` or a given one (ASDKit adapts the scale per batch; a fixed scale keeps
  a seeded fit the same on every backend).

The spectrum branch. ASDKit's takes the magnitude of the FFT of the whole waveform (tens of thousands of bins).
Here it takes the patch's mel power spectrum, which the feature cache already holds: the same long-term spectrum,
at the resolution of a mel band rather than of an FFT bin. That is the cheapest honest choice: the log-mel frames
are all a cell, the scorer and ``python -m common score`` are given (`common.scoring.scorer`, `common.deploy`);
an FFT branch would read every WAV again per cell and need a second input path through the grid, the scorer,
the saved model and the deploy code. What it cannot see is what lies within one mel band: two tones closer than
a band's width, or a tone moving by less than one (the slow_drive world's 4-12 % slower drive is partly that).

Settings (``spectrogram`` in defaults.yaml), chosen by the mean and the worst of the five worlds of
``benchmarks/worlds.py`` (two-bank AUC at 4 clips; targets id_00 of each type, v2 + v4, seeds 0 and 1;
``benchmarks/spec_options.py``), never by one world: a logit scale of 16 over AdaCos' fixed one (mean 0.704, worst
0.574 against 0.666, 0.559), batches of 32 over 128 (more updates at the same cost; 128 lost by 0.04 and 0.08 on the
two worlds measured), 20 epochs over 40 (0.702, 0.568 at twice the cost) and batches of 16 (0.707 but worst 0.540).
On those targets logmel_knn had 0.719 and 0.576. Over all 16 targets (``benchmarks/worlds.py --methods
spec_two_bank``, worlds_evidence.csv) ``spec_two_bank`` has 0.782, 0.593, 0.807, 0.729, 0.596 in default,
slow_drive, panel_band, loose_knock, bearing_pulse (mean 0.701) against logmel_knn's 0.825, 0.523, 0.851, 0.579,
0.564 (0.668): ahead where faults change rhythm or speed, behind where they change the spectrum's shape.

Cost, one core (``taskset``, single-threaded XLA, JAX), CPU seconds at the worlds benchmark's size (16 training
clips of 4 s per machine, 8 patches each, 20 epochs): about 10 s once per process and class count to compile,
then 1.7 s for a v2 source set (3 machines, 384 patches) and 7.9 s for a v4 one (12 machines, 1,536 patches);
embedding 16 clips takes about 0.1 s. (Measured before issue 32's rounds: since then the convolutions are one matrix
product each (`ColumnConv2D`), the pooling a reshape (`MaxPool2`), both with gradients written by hand (`shift_conv`,
`max_pool_2x2`: 1.47x the training step), and the fit a compiled loop of many steps
(`common.models.compiled_fit.fit_classifier`); ``benchmarks/bench_classifiers.py`` times them against the old way,
docs/performance.md sections 11b and 11g.)
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import keras
import numpy as np
from keras import layers

from common.models import compiled_fit
from common.models.layers import Standardize
from common.errors import DataError, ModelError
from common.models.train import set_seed, steps_per_execution

KIND = "spec_classifier"  # the model kind (`common.models.kinds.MODEL_KINDS`)
CLIP_INPUT = "spectrogram_embedding"  # the knn scorer's input that embeds clips with it (`common.scoring.scorer`)
_PACKAGE = "mimii_spec_classifier"
_LN10_DB = math.log(10.0) / 10.0  # dB -> natural log of power


# --------------------------------------------------------------------------------------------
# Layers and loss


def fixed_scale(n_centres: int) -> float:
    """AdaCos' fixed scale over all sub-cluster centres, ``sqrt(2) * log(n_centres - 1)`` (``n_centres - 1`` >= 2)."""
    return math.sqrt(2.0) * math.log(max(int(n_centres) - 1, 2))


def head_scale(arch: Mapping[str, Any]) -> float:
    """The scale the loss multiplies cosines by: ``arch["scale"]``, or `fixed_scale` of all centres when None."""
    if arch["scale"] is None:
        return fixed_scale(int(arch["n_classes"]) * int(arch["sub_clusters"]))
    return float(arch["scale"])


def sub_cluster_loss(y_true, cosines, *, n_classes: int, sub_clusters: int, scale: float):
    """Per-sample cross-entropy of (soft) class labels against the sub-cluster softmax [shape=(n,)].

    Parameters
    ----------
    y_true : tensor [shape=(n, n_classes)]
        One-hot or mixed (mixup) labels.
    cosines : tensor [shape=(n, n_classes * sub_clusters)]
        Cosine to each centre, class-major (centre ``c * sub_clusters + k`` is class c's k-th).
    scale : float > 0
        The logits are ``scale * cosines``; a class's probability is the sum of its centres' softmax.
    """
    y_true = keras.ops.convert_to_tensor(y_true, dtype="float32")
    log_probs = keras.ops.log_softmax(scale * keras.ops.convert_to_tensor(cosines, dtype="float32"), axis=-1)
    per_class = keras.ops.logsumexp(keras.ops.reshape(log_probs, (-1, n_classes, sub_clusters)), axis=-1)
    return -keras.ops.sum(y_true * per_class, axis=-1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SubClusterLoss(keras.losses.Loss):
    """`sub_cluster_loss` as a Keras loss (the model outputs cosines; classes, sub-clusters and scale live here)."""

    def __init__(self, *, n_classes: int = 2, sub_clusters: int = 1, scale: float = 1.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_classes, self.sub_clusters, self.scale = int(n_classes), int(sub_clusters), float(scale)

    def call(self, y_true, y_pred):
        return sub_cluster_loss(y_true, y_pred, n_classes=self.n_classes, sub_clusters=self.sub_clusters,
                                scale=self.scale)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_classes": self.n_classes, "sub_clusters": self.sub_clusters,
                "scale": self.scale}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SubClusterHead(layers.Layer):
    """Cosine of the (L2-normalised) input to each of `n_centres` fixed random centres [shape=(n, n_centres)]."""

    def __init__(self, n_centres: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_centres = int(n_centres)

    def build(self, input_shape) -> None:
        # Not trained, as ASDKit's SCAdaCos (trainable=False): the embedding learns to fall near its class's centres.
        self.centres = self.add_weight(name="centres", shape=(int(input_shape[-1]), self.n_centres),
                                       initializer="glorot_uniform", trainable=False)

    def call(self, inputs):
        x = keras.ops.normalize(inputs, axis=-1)
        return keras.ops.matmul(x, keras.ops.normalize(self.centres, axis=0))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "n_centres": self.n_centres}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PatchSpectrum(layers.Layer):
    """A patch's mean power spectrum in dB, ``10 log10(mean_t 10 ** (x_t / 10))`` over its frames [shape=(n, bands)]."""

    def call(self, inputs):
        frames = keras.ops.shape(inputs)[1]
        mean_log = keras.ops.logsumexp(inputs * _LN10_DB, axis=1) - keras.ops.log(keras.ops.cast(frames, "float32"))
        return mean_log / _LN10_DB


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaxOverTime(layers.Layer):
    """The maximum over the time axis (axis 1) of a feature map: where in the patch a pattern occurs does not matter."""

    def call(self, inputs):
        return keras.ops.max(inputs, axis=1)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ColumnConv2D(layers.Conv2D):
    """`layers.Conv2D` (same weights, same config) whose convolution is one matrix product over the stacked shifts.

    XLA's CPU convolutions are slow at this network's few channels (1 -> 8 filters: about 1.5 GFLOP/s, and its
    gradients slower still); the input's ``kh * kw`` shifted copies side by side (im2col) times the kernel as a
    ``(kh * kw * channels_in, filters)`` matrix is the same sum in another order: float32 round-off apart.
    Only stride 1, no dilation, one group, channels last; anything else is `layers.Conv2D`'s own convolution.
    """

    def call(self, inputs, training=None):
        outputs = self.convolution_op(inputs, self.kernel, training=bool(training))
        if self.use_bias:
            outputs = keras.ops.add(outputs, keras.ops.reshape(self.bias, (1,) * (self.rank + 1) + (self.filters,)))
        return outputs if self.activation is None else self.activation(outputs)

    def convolution_op(self, inputs, kernel, training: bool = False):
        h, w = inputs.shape[1], inputs.shape[2]
        plain = (self.strides == (1, 1) and self.dilation_rate == (1, 1) and self.groups == 1
                 and self.data_format == "channels_last" and h is not None and w is not None)
        if not plain:
            return super().convolution_op(inputs, kernel)
        # The kernel's value as a tensor: given the variable, TensorFlow's custom_gradient wants its gradient apart.
        return shift_conv(inputs, keras.ops.reshape(kernel, tuple(kernel.shape)), same=self.padding == "same",
                          broadcast=training)


def _shifts(padded, kh: int, kw: int, h: int, w: int) -> list:
    """The ``kh * kw`` shifted windows [shape=(n, h, w, c)] of a (padded) image, tap ``i * kw + j`` at (i, j)."""
    return [padded[:, i:i + h, j:j + w, :] for i in range(kh) for j in range(kw)]


def shift_conv(inputs, kernel, *, same: bool, broadcast: bool = False):
    """`ColumnConv2D`'s convolution (stride 1, channels last, no bias), its gradient written by hand.

    Forward: the image's ``kh * kw`` shifted windows side by side (im2col) times the kernel as a
    ``(kh * kw * c_in, c_out)`` matrix; for one input channel and `broadcast` (training), broadcast multiply-adds
    of each window by its tap's kernel row instead (no stacked copy: 5x faster at 1 -> 8 filters, 1.1x the training
    step; in inference, where XLA fuses them into the batch norm and pooling after them, a third slower; so
    `ColumnConv2D` asks for them in training only). Gradient: the kernel's, the stacked windows
    times the output's gradient (one matrix product); the image's, each tap's share (the output's gradient times the
    kernel, one product) added back where that tap read it (col2im: one pass over the shares, where autodiff of the
    slices wrote a padded copy of the image per tap), computed only where asked (XLA drops it when the image is no
    variable's function, as the first convolution's is). "same" pads as XLA does (the odd one at the end). Equal to
    `layers.Conv2D` and its gradients to float32 round-off (tests/test_spec_classifier.py).
    """
    kh, kw, c_in, c_out = (int(k) for k in kernel.shape)
    top, left = ((kh - 1) // 2, (kw - 1) // 2) if same else (0, 0)
    h_in, w_in = int(inputs.shape[1]), int(inputs.shape[2])
    h, w = (h_in, w_in) if same else (h_in - kh + 1, w_in - kw + 1)
    taps = kh * kw

    @keras.ops.custom_gradient
    def conv(x, k):
        padded = keras.ops.pad(x, [[0, 0], [top, kh - 1 - top], [left, kw - 1 - left], [0, 0]]) if same else x
        shifts, matrix = _shifts(padded, kh, kw, h, w), keras.ops.reshape(k, (taps * c_in, c_out))
        if c_in == 1 and broadcast:
            out = shifts[0] * matrix[0]
            for t in range(1, taps):
                out = out + shifts[t] * matrix[t]
            columns = keras.ops.reshape(keras.ops.stack(shifts, axis=0), (taps, -1))  # transposed: (taps, n h w)
        else:
            columns = keras.ops.concatenate(shifts, axis=-1)
            out = keras.ops.matmul(columns, matrix)
            columns = keras.ops.transpose(keras.ops.reshape(columns, (-1, taps * c_in)))

        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            dy = keras.ops.reshape(upstream, (-1, c_out))
            dk = keras.ops.reshape(keras.ops.matmul(columns, dy), (kh, kw, c_in, c_out))
            shares = keras.ops.reshape(keras.ops.matmul(dy, keras.ops.transpose(matrix)), (-1, h, w, taps * c_in))
            dx = None
            for t in range(taps):  # dx[y, x] += shares[y + di, x + dj, tap t], where that lies inside the output
                di, dj = top - t // kw, left - t % kw
                r0, r1, c0, c1 = max(di, 0), min(h_in + di, h), max(dj, 0), min(w_in + dj, w)
                part = keras.ops.pad(shares[:, r0:r1, c0:c1, t * c_in:(t + 1) * c_in],
                                     [[0, 0], [r0 - di, h_in + di - r1], [c0 - dj, w_in + dj - c1], [0, 0]])
                dx = part if dx is None else dx + part
            return dx, dk
        return out, grad
    return conv(inputs, kernel)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaxPool2(layers.Layer):
    """2 x 2 max-pooling with stride 2 (``MaxPooling2D(2, padding="same")``): the maximum of the windows' four corners.

    The same values as `layers.MaxPooling2D` and the same gradient: all of it to the first largest value of a
    window in row-major order, as XLA's select-and-scatter gives it (`max_pool_2x2`). An odd height or width goes
    to ``keras.ops.max_pool`` itself.
    """

    def call(self, inputs, training=None):
        h, w = inputs.shape[1], inputs.shape[2]
        if h is None or w is None or h % 2 or w % 2:
            return keras.ops.max_pool(inputs, 2, 2, padding="same")
        return max_pool_2x2(inputs, corners=bool(training))


def max_pool_2x2(inputs, *, corners: bool = False):
    """2 x 2 max-pooling of an even-sized feature map [shape=(n, h, w, c)], its gradient written by hand.

    Select-and-scatter, XLA's own gradient of a max-pool, took more than a third of a CPU training step; so did
    autodiff of a maximum over a reshape (its tie count is a reduction over the whole map) and of pairwise maxima
    (the slices' transposes are pads). Here the gradient is a select per corner, the first corner equal to the
    window's maximum taking it all, put back in place by stacking the corners. The forward is the maximum of the
    four corners with `corners` (training: XLA fuses it with the batch norm before it), else a maximum over the
    reshape (inference: the corners' maxima ran a quarter slower there).
    """
    h, w, c = (int(d) for d in inputs.shape[1:])

    @keras.ops.custom_gradient
    def pool(x):
        windows = keras.ops.reshape(x, (-1, h // 2, 2, w // 2, 2, c))
        points = [windows[:, :, i, :, j] for i in (0, 1) for j in (0, 1)]
        if corners:
            out = keras.ops.maximum(keras.ops.maximum(points[0], points[1]), keras.ops.maximum(points[2], points[3]))
        else:
            out = keras.ops.max(windows, axis=(2, 4))

        def grad(*args, upstream=None):
            upstream = args[0] if upstream is None else upstream
            zero, taken, parts = keras.ops.zeros_like(upstream), None, []
            for point in points:
                hit = keras.ops.equal(point, out)
                if taken is not None:
                    hit = keras.ops.logical_and(hit, keras.ops.logical_not(taken))
                parts.append(keras.ops.where(hit, upstream, zero))
                taken = hit if taken is None else keras.ops.logical_or(taken, hit)
            rows = [keras.ops.stack(parts[i:i + 2], axis=-2) for i in (0, 2)]
            return keras.ops.reshape(keras.ops.stack(rows, axis=2), (-1, h, w, c))
        return out, grad
    return pool(inputs)


def patch_spectrum(patches: np.ndarray) -> np.ndarray:
    """`PatchSpectrum` in NumPy [shape=(n, n_mels)], float64: the spectra the branch's standardisation is fitted on."""
    x = np.asarray(patches, dtype=np.float64) * _LN10_DB
    top = x.max(axis=1, keepdims=True)
    return (np.log(np.mean(np.exp(x - top), axis=1)) + top[:, 0]) / _LN10_DB


# --------------------------------------------------------------------------------------------
# Architecture and model


def spec_architecture(n_mels: int, n_classes: int, *, input_dim: int, patch_frames: int, hop: int | None = None,
                      channels: int, embedding_dim: int, sub_clusters: int, scale: float | None) -> dict[str, Any]:
    """The sizes that rebuild a spectrogram classifier, JSON-able (``"kind": "spec_classifier"``), as sidecars keep them.

    Parameters
    ----------
    n_mels : int > 0
        Bands per frame: the first `n_mels` values of each frame vector are one frame.
    n_classes : int >= 2
        Source machines (or their attribute classes).
    input_dim : int >= n_mels
        Width of the frame vectors it scores (``n_mels * frames``).
    patch_frames : int >= 4
        Frames per patch (the convolutions pool time twice by 2).
    hop : int > 0 or None
        Frames between a clip's patches when it is embedded (default ``patch_frames // 2``).
    channels : int > 0
        Filters of the first convolution (the next two have twice as many).
    embedding_dim : int > 0
    sub_clusters : int > 0
        Centres per class.
    scale : float > 0 or None
        Logit scale of the loss; None: AdaCos' fixed scale for all centres (`fixed_scale`).

    Raises
    ------
    ModelError
        A size out of range (the message names it).
    """
    least = {"n_mels": 1, "n_classes": 2, "input_dim": int(n_mels) if isinstance(n_mels, (int, np.integer)) else 1,
             "patch_frames": 4, "channels": 1, "embedding_dim": 1, "sub_clusters": 1}
    sizes = {"n_mels": n_mels, "n_classes": n_classes, "input_dim": input_dim, "patch_frames": patch_frames,
             "channels": channels, "embedding_dim": embedding_dim, "sub_clusters": sub_clusters}
    for name, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least[name]:
            raise ModelError(f"{name}={value!r} must be an integer >= {least[name]}"
                             + (": a classifier needs at least 2 classes" if name == "n_classes" else ""))
    hop = max(int(patch_frames) // 2, 1) if hop is None else hop
    if isinstance(hop, bool) or not isinstance(hop, (int, np.integer)) or hop < 1:
        raise ModelError(f"hop={hop!r} must be a positive number of frames")
    if scale is not None and not float(scale) > 0:
        raise ModelError(f"scale={scale!r} must be positive (or None for AdaCos' fixed scale)")
    return {"kind": KIND, **{k: int(v) for k, v in sizes.items()}, "hop": int(hop),
            "scale": None if scale is None else float(scale)}


def _check_kind(arch: Mapping[str, Any]) -> None:
    if arch.get("kind") != KIND:
        raise ModelError(f"architecture kind={arch.get('kind')!r} is not {KIND!r}: {dict(arch)}")


def build_spec_classifier(arch: Mapping[str, Any]) -> keras.Model:
    """The network of `arch`: a log-mel patch -> both branches -> ``embedding`` -> ``head`` (one cosine per centre)."""
    _check_kind(arch)
    frames, n_mels, c = int(arch["patch_frames"]), int(arch["n_mels"]), int(arch["channels"])
    inputs = keras.Input(shape=(frames, n_mels), name="logmel_patch")
    x = layers.Reshape((frames, n_mels, 1), name="as_image")(Standardize(name="standardize")(inputs))
    for i, (width, pool) in enumerate(((c, True), (2 * c, True), (2 * c, False))):
        x = ColumnConv2D(width, 3, padding="same", use_bias=False, name=f"conv_{i + 1}")(x)
        x = layers.BatchNormalization(name=f"conv_{i + 1}_bn")(x)
        x = layers.Activation("relu", name=f"conv_{i + 1}_relu")(x)
        if pool:
            x = MaxPool2(name=f"pool_{i + 1}")(x)
    x = MaxOverTime(name="max_over_time")(x)
    x = layers.Dense(4 * c, activation="relu", name="spec_dense")(layers.Flatten(name="flatten")(x))
    s = Standardize(name="spectrum_standardize")(PatchSpectrum(name="spectrum")(inputs))
    s = layers.Conv1D(c, 5, padding="same", activation="relu", name="spectrum_conv")(
        layers.Reshape((n_mels, 1), name="spectrum_bands")(s))
    s = layers.Dense(4 * c, activation="relu", name="spectrum_dense")(layers.Flatten(name="spectrum_flatten")(s))
    x = layers.Dense(int(arch["embedding_dim"]), name="embedding")(layers.Concatenate(name="branches")([x, s]))
    outputs = SubClusterHead(int(arch["n_classes"]) * int(arch["sub_clusters"]), name="head")(x)
    return keras.Model(inputs, outputs, name="spec_classifier")


# --------------------------------------------------------------------------------------------
# Clips -> patches


def clip_logmel(vectors: np.ndarray, n_mels: int) -> np.ndarray:
    """One clip's log-mel spectrogram [shape=(n_frames, n_mels)] rebuilt from its stacked frame vectors.

    Vector t holds frames t, t+1, ... of the clip; the first band block of every vector, then the later blocks of
    the last one, are the clip's frames in order (`common.features.extract`).
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) == 0 or vectors.shape[1] % n_mels:
        raise DataError(f"frame vectors of shape {vectors.shape} are not stacked frames of n_mels={n_mels} bands")
    return np.concatenate([vectors[:, :n_mels], vectors[-1, n_mels:].reshape(-1, n_mels)])


def _patches(frames: np.ndarray, starts: np.ndarray, patch_frames: int) -> np.ndarray:
    """The patches of `frames` at `starts` [shape=(len(starts), patch_frames, n_mels)]; a clip shorter than a patch
    is repeated to fill it."""
    rows = (np.asarray(starts)[:, None] + np.arange(patch_frames)[None, :]) % len(frames)
    return frames[rows]


def _clips(arch: Mapping[str, Any], vectors: np.ndarray, offsets: np.ndarray):
    """Each clip's log-mel spectrogram, after checking `vectors` and `offsets` against `arch`."""
    _check_kind(arch)
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[1] != int(arch["input_dim"]):
        raise DataError(f"frame vectors of shape {vectors.shape} do not fit the spectrogram classifier's "
                        f"input_dim={arch['input_dim']} (n_mels={arch['n_mels']} x frames)")
    offsets = np.asarray(offsets)
    if (offsets.ndim != 1 or len(offsets) < 2 or not np.issubdtype(offsets.dtype, np.integer) or offsets[0] != 0
            or offsets[-1] != len(vectors) or np.any(np.diff(offsets) < 1)):
        raise DataError(f"offsets must be increasing integers from 0 to the {len(vectors)} vectors, one clip of at "
                        f"least one vector between each pair; got {offsets[:5].tolist()}... (length {offsets.size})")
    n_mels = int(arch["n_mels"])
    return [clip_logmel(vectors[a:b], n_mels).astype(np.float32) for a, b in zip(offsets[:-1], offsets[1:])]


def clip_patches(arch: Mapping[str, Any], vectors: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every clip's patches, one every ``hop`` frames (the last one ending at the clip's last frame).

    Returns
    -------
    x : np.ndarray [shape=(n, patch_frames, n_mels), float32]
    offsets : np.ndarray [shape=(n_clips + 1,), int64]
        Clip ``i`` owns ``x[offsets[i]:offsets[i + 1]]``.
    """
    width, hop = int(arch["patch_frames"]), int(arch["hop"])
    out = []
    for frames in _clips(arch, vectors, offsets):
        last = max(len(frames) - width, 0)
        out.append(_patches(frames, np.unique(np.append(np.arange(0, last + 1, hop), last)), width))
    return np.concatenate(out), np.concatenate([[0], np.cumsum([len(p) for p in out])]).astype(np.int64)


def sample_patches(arch: Mapping[str, Any], vectors: np.ndarray, offsets: np.ndarray, per_clip: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`per_clip` patches of each clip at seeded random starts, and the clip each comes from.

    Returns
    -------
    x : np.ndarray [shape=(n_clips * per_clip, patch_frames, n_mels), float32]
    clips : np.ndarray [shape=(n_clips * per_clip,), int64]
    """
    if isinstance(per_clip, bool) or not isinstance(per_clip, (int, np.integer)) or per_clip < 1:
        raise DataError(f"per_clip={per_clip!r} must be a positive integer")
    width, rng = int(arch["patch_frames"]), np.random.default_rng(seed)
    clips = _clips(arch, vectors, offsets)
    x = [_patches(f, rng.integers(0, max(len(f) - width, 0) + 1, per_clip), width) for f in clips]
    return np.concatenate(x), np.repeat(np.arange(len(clips), dtype=np.int64), per_clip)


# --------------------------------------------------------------------------------------------
# Training and embeddings


@dataclass
class SpecFit:
    """Weights after a fit, its per-epoch history (``loss``, ``class_accuracy``) and its seconds."""

    weights: list[np.ndarray]
    history: dict[str, list[float]]
    seconds: float


@dataclass
class _Compiled:
    model: keras.Model  # compiled with the sub-cluster loss
    embedder: keras.Model  # the same layers, patch -> ``embedding``
    programs: dict[int, compiled_fit.ClassifierPrograms] = field(default_factory=dict)  # by batch size (JAX)
    embed: Any = None  # the embedder's compiled call on JAX (`_embed_call`)


_COMPILED: dict[str, _Compiled] = {}
# Patches per inference call: every call has this shape, so JAX traces the embedder once. 32 (a training batch): the
# convolutions' stacked shifts stay in cache; at 256 the compiled embedder ran at a third of the speed.
PREDICT_BATCH = 32


def _compiled(arch: Mapping[str, Any]) -> _Compiled:
    """One compiled model per architecture: Keras traces a train step once per model (seconds for a CNN)."""
    key = json.dumps(dict(arch), sort_keys=True)
    if key not in _COMPILED:
        model = build_spec_classifier(arch)
        loss = SubClusterLoss(n_classes=int(arch["n_classes"]), sub_clusters=int(arch["sub_clusters"]),
                              scale=head_scale(arch))
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss=loss,
                      metrics=[_class_accuracy(int(arch["n_classes"]), int(arch["sub_clusters"]))],
                      steps_per_execution=steps_per_execution())
        model.optimizer.build(model.trainable_variables)  # its state is zeroed before every fit
        _COMPILED[key] = _Compiled(model, keras.Model(model.input, model.get_layer("embedding").output))
    return _COMPILED[key]


def _class_hits(n_classes: int, sub_clusters: int):
    """Each patch's 0/1 accuracy: its class is that of its nearest centre."""

    def hits(y_true, y_pred):
        nearest = keras.ops.max(keras.ops.reshape(y_pred, (-1, n_classes, sub_clusters)), axis=-1)
        return keras.ops.argmax(nearest, axis=-1) == keras.ops.argmax(y_true, axis=-1)
    return hits


def _class_accuracy(n_classes: int, sub_clusters: int):
    """The training metric ``class_accuracy``: the share of `_class_hits` in a batch."""
    hits = _class_hits(n_classes, sub_clusters)

    def class_accuracy(y_true, y_pred):
        return keras.ops.mean(keras.ops.cast(hits(y_true, y_pred), "float32"))
    return class_accuracy


def _load(model: keras.Model, weights: list[np.ndarray]) -> None:
    try:
        model.set_weights(weights)
    except ValueError as exc:
        raise ModelError(f"weights do not fit the spectrogram classifier architecture: {exc}") from None


def initial_weights(arch: Mapping[str, Any], x: np.ndarray, *, seed: int) -> list[np.ndarray]:
    """Random weights of `arch` for `seed`, both standardisations set to the mean and std of the patches `x`."""
    set_seed(seed)
    model = build_spec_classifier(arch)
    bands = np.asarray(x, dtype=np.float64).reshape(-1, x.shape[-1])
    spectra = patch_spectrum(x)
    for name, values in (("standardize", bands), ("spectrum_standardize", spectra)):
        std = np.maximum(values.std(axis=0), 1e-3)  # a constant band (e.g. silent) stays finite
        model.get_layer(name).set_weights([values.mean(axis=0).astype("float32"), (1.0 / std).astype("float32")])
    return model.get_weights()


def _check_training(arch: Mapping[str, Any], x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """`labels` as int64 after checking them and `x` against `arch` (ModelError naming the problem)."""
    _check_kind(arch)
    shape = (int(arch["patch_frames"]), int(arch["n_mels"]))
    if x.ndim != 3 or x.shape[1:] != shape:
        raise ModelError(f"training patches of shape {x.shape} must be (n, {shape[0]}, {shape[1]}): use sample_patches")
    labels = np.asarray(labels)
    if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
        raise ModelError(f"labels of shape {labels.shape} and dtype {labels.dtype} must be {len(x)} integers")
    present = np.unique(labels)
    if len(present) < 2:
        raise ModelError(f"the classifier needs at least 2 classes to tell apart; the labels hold {present.tolist()}")
    if present[0] < 0 or present[-1] >= arch["n_classes"]:
        raise ModelError(f"labels {present.tolist()} must lie in [0, n_classes={arch['n_classes']})")
    if not np.all(np.isfinite(x)):
        raise ModelError("training patches hold NaN or infinite values")
    return labels.astype(np.int64)


def _epoch_rows(n: int, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """A shuffle of the `n` rows, topped up from a second shuffle to whole batches (one traced batch shape)."""
    whole = -(-n // batch_size) * batch_size
    return np.concatenate([rng.permutation(n), rng.permutation(n)[: whole - n]]) if whole > n else rng.permutation(n)


def train_spec_classifier(arch: Mapping[str, Any], x: np.ndarray, labels: np.ndarray, *, epochs: int,
                          batch_size: int, learning_rate: float, mixup: float, seed: int) -> SpecFit:
    """Train the spectrogram classifier of `arch` from a seeded init to tell `labels` apart.

    Adam with a fresh state; each epoch is a seeded shuffle of the rows, topped up to whole batches, a
    `mixup` fraction of them mixed with another row (labels alike, ``lam ~ U(0, 1)``), so a seed gives the same
    weights on CPU whatever ran before.

    Parameters
    ----------
    x : np.ndarray [shape=(n, patch_frames, n_mels)]
        Training patches (`sample_patches` of the source clips).
    labels : np.ndarray [shape=(n,), int]
        Class of each patch, in ``[0, n_classes)``; at least two classes present.
    mixup : float in [0, 1]

    Raises
    ------
    ModelError
        Fewer than two classes, labels out of range, patches of the wrong shape, or a bad mixup.
    """
    x = np.asarray(x, dtype=np.float32)
    labels = _check_training(arch, x, labels)
    if not 0 <= mixup <= 1:
        raise ModelError(f"mixup={mixup!r} must be a fraction in [0, 1]")
    compiled = _compiled(arch)
    model = compiled.model
    _load(model, initial_weights(arch, x, seed=seed))
    for v in model.optimizer.variables:
        v.assign(np.zeros(v.shape, dtype=v.dtype))
    model.optimizer.learning_rate = learning_rate
    set_seed(seed)
    batch_size = min(int(batch_size), len(x))
    onehot = np.eye(int(arch["n_classes"]), dtype=np.float32)[labels]
    start = time.perf_counter()
    epoch_data = (_epoch_patches(x, onehot, batch_size, mixup=mixup, seed=seed, epoch=e) for e in range(epochs))
    whole = -(-len(x) // batch_size) * batch_size  # rows per epoch (`_epoch_rows`)
    history = compiled_fit.fit_epochs(model, compiled.programs, epoch_data, batch_size=batch_size, n_rows=whole,
                                      hits=_class_hits(int(arch["n_classes"]), int(arch["sub_clusters"])),
                                      whole_batches=True, accuracy="class_accuracy")
    return SpecFit(model.get_weights(), history, time.perf_counter() - start)


def _epoch_patches(x: np.ndarray, onehot: np.ndarray, batch_size: int, *, mixup: float, seed: int, epoch: int):
    """Epoch `epoch`'s patches and labels: `_epoch_rows` of a seeded generator, a `mixup` fraction of them mixed."""
    rng = np.random.default_rng([seed, epoch])
    rows = _epoch_rows(len(x), batch_size, rng)
    xe, ye = x[rows], onehot[rows]
    mixed = np.flatnonzero(rng.random(len(rows)) < mixup)
    partner = rng.integers(0, len(rows), size=len(mixed))
    lam = rng.random(len(mixed)).astype(np.float32)
    xe[mixed] = lam[:, None, None] * xe[mixed] + (1 - lam[:, None, None]) * xe[partner]
    ye[mixed] = lam[:, None] * ye[mixed] + (1 - lam[:, None]) * ye[partner]
    return xe, ye


def embed_patches(arch: Mapping[str, Any], weights: list[np.ndarray], patches: np.ndarray) -> np.ndarray:
    """The ``embedding`` layer's output for each patch [shape=(n, embedding_dim), float32]."""
    compiled = _compiled(arch)
    _load(compiled.model, weights)
    n = len(patches)
    padded = np.zeros((-(-n // PREDICT_BATCH) * PREDICT_BATCH, *patches.shape[1:]), dtype=np.float32)
    padded[:n] = patches
    call = _embed_call(compiled)
    out = [np.asarray(call(padded[i:i + PREDICT_BATCH])) for i in range(0, len(padded), PREDICT_BATCH)]
    return np.concatenate(out)[:n].astype(np.float32) if out else np.zeros((0, int(arch["embedding_dim"])), "float32")


def _embed_call(compiled: _Compiled):
    """The embedder as one compiled program on JAX (its weights passed in: the model's current ones); a direct call
    elsewhere. Called directly on JAX, a Keras model runs op by op: the CNN's embeddings took as long as training."""
    if keras.backend.backend() != "jax":
        return lambda x: compiled.embedder(x, training=False)
    if compiled.embed is None:
        import jax

        embedder = compiled.embedder
        compiled.embed = jax.jit(lambda t, n, x: embedder.stateless_call(t, n, x, training=False)[0])
    variables = ([v.value for v in compiled.embedder.trainable_variables],
                 [v.value for v in compiled.embedder.non_trainable_variables])
    return lambda x: compiled.embed(*variables, x)


def embed_clips(arch: Mapping[str, Any], weights: list[np.ndarray], vectors: np.ndarray,
                offsets: np.ndarray) -> np.ndarray:
    """Clip embeddings: the L2-normalised mean of the embeddings of a clip's `clip_patches` [shape=(n_clips, dim)]."""
    x, patch_offsets = clip_patches(arch, vectors, offsets)
    emb = embed_patches(arch, weights, x).astype(np.float64)
    means = np.add.reduceat(emb, patch_offsets[:-1], axis=0) / np.diff(patch_offsets)[:, None]
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


def describe(arch: Mapping[str, Any]) -> str:
    """The model card's words for a spectrogram classifier (`common.models.kinds`)."""
    return (f"spectrogram classifier, input {arch.get('input_dim')}: a CNN over {arch.get('patch_frames')}-frame "
            f"log-mel patches of {arch.get('n_mels')} bands ({arch.get('channels')} filters first) plus a spectrum "
            "branch, embedding "
            f"{arch.get('embedding_dim')}, {arch.get('n_classes')} classes x {arch.get('sub_clusters')} sub-cluster "
            "centres (sub-cluster AdaCos head)")


# what a saved model holds
CUSTOM_OBJECTS = (Standardize, PatchSpectrum, MaxOverTime, ColumnConv2D, MaxPool2, SubClusterHead, SubClusterLoss)
