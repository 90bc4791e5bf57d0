"""Train autoencoders: from a random init (scratch, pretraining) or from given weights (fine-tuning).

Keras traces a model's training step once per compiled model (about a second on 2 cores, far more
than a small fine-tune itself), so `Trainer` keeps one compiled model per architecture and loads
new weights and a fresh optimizer state into it for every fit. On JAX (the default backend) the fit
itself runs in `common.models.compiled_fit` (many steps per compiled call, no recompiling for a new data
size); on TensorFlow and PyTorch, and for batch-norm models, through Keras' ``model.fit``.

Training data is either one array in memory or a `common.features.vectorset.VectorSet`: rows of several
(memory-mapped) feature arrays. A set larger than the trainer's ``in_memory_bytes`` is read one
batch at a time, so that a pretraining set of many machines is never concatenated in RAM; a
smaller one is read whole and trained in RAM, which is faster (see docs/performance.md).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import keras
import numpy as np

from common.models import compiled_fit
from common.models.autoencoder import build_autoencoder
from common.models.batches import VectorBatches
from common.features.vectorset import VectorSet
from common.errors import ModelError

IN_MEMORY_BYTES = 512 * 2**20  # default of fit.max_in_memory_mb: larger VectorSets are streamed
FRAMES_BYTES = 1024 * 2**20  # default of fit.max_frames_mb: a streamed set's frames up to this are held as frames


@dataclass
class FitResult:
    """Weights after a fit, its loss history and how long it took."""

    weights: list[np.ndarray]
    history: dict[str, list[float]]
    seconds: float
    streamed: bool = False


def set_seed(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend: the same config and seed give the same model."""
    keras.utils.set_random_seed(int(seed))


def steps_per_execution() -> int:
    """Batches per compiled call on the running Keras backend (read when a model is compiled, not at import).

    More than one means fewer Python round trips per epoch for the same updates (about 2x faster
    for the small fits of fine-tuning on 2 cores); Keras' PyTorch backend only runs one.
    """
    return 1 if keras.backend.backend() == "torch" else 16


class _SetEpoch(keras.callbacks.Callback):
    """Tells the training batches which epoch Keras is starting (their shuffle depends on it)."""

    def __init__(self, batches: VectorBatches) -> None:
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.epoch = int(epoch)


def validation_rows(n: int, validation_split: float) -> int:
    """How many of `n` rows the training part keeps under `validation_split` (Keras' rule: the last fraction is held out)."""
    if validation_split <= 0:
        return n
    return int(math.floor(n * (1.0 - validation_split)))


class Trainer:
    """Fit autoencoders of any architecture, reusing one compiled model per (architecture, frozen layers).

    Parameters
    ----------
    in_memory_bytes : int
        A `VectorSet` of at most this many bytes is read whole and trained as an array in RAM;
        a larger one is streamed a batch at a time (0: always stream).
    frames_bytes : int
        On JAX, a streamed set of stacked log-mel vectors whose frames take at most this many bytes is held as its
        frames instead of being read in every epoch (`common.models.compiled_fit.device_frames`: the same batches,
        in the same order); 0: never.
    """

    def __init__(self, *, in_memory_bytes: int = IN_MEMORY_BYTES, frames_bytes: int = FRAMES_BYTES) -> None:
        self._models: dict[tuple, keras.Model] = {}
        self._programs: dict[tuple, compiled_fit.Programs] = {}
        self.in_memory_bytes, self.frames_bytes = int(in_memory_bytes), int(frames_bytes)

    def model(self, arch: Mapping[str, Any], *, freeze: Sequence[str] = ()) -> keras.Model:
        """The compiled model for `arch` (``input_dim``, ``hidden``, ``bottleneck``, ``batch_norm``)."""
        key = (int(arch["input_dim"]), tuple(arch["hidden"]), int(arch["bottleneck"]),
               bool(arch["batch_norm"]), tuple(freeze))
        if key not in self._models:
            model = build_autoencoder(key[0], hidden=key[1], bottleneck=key[2], batch_norm=key[3])
            freeze_layers(model, freeze)
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mean_squared_error",
                          steps_per_execution=steps_per_execution())
            # Build the optimizer and loss now (a fit of no epochs). Keras does it in the first fit
            # otherwise, and on JAX and PyTorch that build draws a batch from the shuffled data, using
            # up a permutation of the seeded global RNG: the first fit of a compiled model would then
            # see other batches than every later fit with the same seed.
            dummy = np.zeros((1, key[0]), dtype="float32")
            model.fit(dummy, dummy, epochs=0, verbose=0)
            self._models[key] = model
        return self._models[key]

    def init_weights(self, arch: Mapping[str, Any], *, seed: int) -> list[np.ndarray]:
        """Random initial weights of `arch` for `seed` (Keras' default initialisers)."""
        set_seed(seed)
        return build_autoencoder(
            int(arch["input_dim"]), hidden=arch["hidden"], bottleneck=arch["bottleneck"], batch_norm=arch["batch_norm"]
        ).get_weights()

    def fit(
        self,
        arch: Mapping[str, Any],
        weights: list[np.ndarray],
        x: np.ndarray | VectorSet,
        *,
        epochs: int,
        batch_size: int,
        learning_rate: float,
        validation_split: float = 0.0,
        shuffle: bool = True,
        seed: int = 0,
        freeze: Sequence[str] = (),
    ) -> FitResult:
        """Train from `weights` to reconstruct `x` (MSE, Adam with a fresh state).

        Parameters
        ----------
        x : np.ndarray [shape=(n_vectors, input_dim)] or VectorSet
            Training vectors. With ``validation_split`` the last fraction is held out (Keras' rule).
            An array is trained on in memory (Keras shuffles it), as is a `VectorSet` of at most
            ``in_memory_bytes`` (read whole first); a larger `VectorSet` is read a batch at a time
            and shuffled per epoch from `seed` (`VectorBatches`), so it is never copied whole.
        """
        if len(x) == 0:
            raise ModelError("no training vectors: the training set is empty")
        streamed = isinstance(x, VectorSet) and x.nbytes > self.in_memory_bytes
        if isinstance(x, VectorSet) and not streamed:
            x = x.read()
        model = self.model(arch, freeze=freeze)
        self.load(model, weights)
        start = time.perf_counter()
        history: dict[str, list[float]] = {"loss": []}
        if epochs > 0:
            for v in model.optimizer.variables:
                v.assign(np.zeros(v.shape, dtype=v.dtype))
            model.optimizer.learning_rate = learning_rate
            if int(len(x) * validation_split) < 1:
                validation_split = 0.0  # too few vectors to hold any out
            set_seed(seed)
            if compiled_fit.supported(model):
                h = self._fit_compiled(model, x, epochs=epochs, batch_size=batch_size,
                                       validation_split=validation_split, shuffle=shuffle, seed=seed)
            elif isinstance(x, VectorSet):
                h = self._fit_streaming(model, x, epochs=epochs, batch_size=batch_size,
                                        validation_split=validation_split, shuffle=shuffle, seed=seed).history
            else:
                h = model.fit(x, x, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                              shuffle=shuffle, verbose=0).history
            history = {k: [float(v) for v in vals] for k, vals in h.items()}
        return FitResult(model.get_weights(), history, time.perf_counter() - start, streamed)

    def _fit_compiled(self, model: keras.Model, x: np.ndarray | VectorSet, *, epochs: int, batch_size: int,
                      validation_split: float, shuffle: bool, seed: int) -> dict[str, list[float]]:
        key = (id(model), int(batch_size))
        if key not in self._programs:
            self._programs[key] = compiled_fit.Programs(model, batch_size)
        n_train = validation_rows(len(x), validation_split)
        try:
            return compiled_fit.fit(self._programs[key], x, epochs=epochs, n_train=n_train, shuffle=shuffle, seed=seed,
                                    frames_bytes=self.frames_bytes)
        finally:
            if isinstance(x, VectorSet):
                x.close()

    @staticmethod
    def _fit_streaming(model: keras.Model, vset: VectorSet, *, epochs: int, batch_size: int,
                       validation_split: float, shuffle: bool, seed: int):
        n_train = validation_rows(len(vset), validation_split)
        train = VectorBatches(vset, np.arange(n_train), batch_size=batch_size, shuffle=shuffle, seed=seed)
        val = None
        if n_train < len(vset):
            val = VectorBatches(vset, np.arange(n_train, len(vset)), batch_size=batch_size, shuffle=False, seed=seed)
        try:
            return model.fit(train, validation_data=val, epochs=epochs, shuffle=False, verbose=0,
                             callbacks=[_SetEpoch(train)])
        finally:
            vset.close()

    def with_weights(self, arch: Mapping[str, Any], weights: list[np.ndarray]) -> keras.Model:
        """The compiled model of `arch` holding `weights` (valid until the next fit)."""
        model = self.model(arch)
        self.load(model, weights)
        return model

    @staticmethod
    def load(model: keras.Model, weights: list[np.ndarray]) -> None:
        try:
            model.set_weights(weights)
        except ValueError as exc:
            raise ModelError(f"weights do not fit the model architecture: {exc}") from None


def freeze_layers(model: keras.Model, names: Sequence[str]) -> None:
    """Mark the named layers (and their batch-norm partners) untrainable; unknown names are an error."""
    known = {layer.name for layer in model.layers}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ModelError(f"transfer.freeze names unknown layer(s) {unknown}; the model has {sorted(known)}")
    for layer in model.layers:
        base = layer.name.removesuffix("_bn").removesuffix("_relu")
        layer.trainable = base not in names
