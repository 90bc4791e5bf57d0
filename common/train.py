"""Train autoencoders: from a random init (scratch, pretraining) or from given weights (fine-tuning).

Keras traces a model's training step once per compiled model (about a second on 2 cores, far more
than a small fine-tune itself), so `Trainer` keeps one compiled model per architecture and loads
new weights and a fresh optimizer state into it for every fit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .errors import ModelError
from .model import build_autoencoder, keras, set_seed


# Batches per compiled call: fewer Python round trips per epoch, the same updates (about 2x faster
# for the small fits of fine-tuning on 2 cores).
STEPS_PER_EXECUTION = 16


@dataclass
class FitResult:
    """Weights after a fit, its loss history and how long it took."""

    weights: list[np.ndarray]
    history: dict[str, list[float]]
    seconds: float


class Trainer:
    """Fit autoencoders of any architecture, reusing one compiled model per (architecture, frozen layers)."""

    def __init__(self) -> None:
        self._models: dict[tuple, keras.Model] = {}

    def model(self, arch: Mapping[str, Any], *, freeze: Sequence[str] = ()) -> keras.Model:
        """The compiled model for `arch` (``input_dim``, ``hidden``, ``bottleneck``, ``batch_norm``)."""
        key = (int(arch["input_dim"]), tuple(arch["hidden"]), int(arch["bottleneck"]),
               bool(arch["batch_norm"]), tuple(freeze))
        if key not in self._models:
            model = build_autoencoder(key[0], hidden=key[1], bottleneck=key[2], batch_norm=key[3])
            freeze_layers(model, freeze)
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mean_squared_error",
                          steps_per_execution=STEPS_PER_EXECUTION)
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
        x: np.ndarray,
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
        x : np.ndarray [shape=(n_vectors, input_dim)]
            Training vectors. With ``validation_split`` the last fraction is held out (Keras' rule).
        """
        if len(x) == 0:
            raise ModelError("no training vectors: the training set is empty")
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
            h = model.fit(x, x, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                          shuffle=shuffle, verbose=0)
            history = {k: [float(v) for v in vals] for k, vals in h.history.items()}
        return FitResult(model.get_weights(), history, time.perf_counter() - start)

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
