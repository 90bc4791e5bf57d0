"""Keras layers more than one network of the project holds (one class each, so a saved model names one)."""

from __future__ import annotations

import keras
from keras import layers

# The registered package of the machine-ID classifier, where this layer was first saved from: models saved before it
# moved here name it so, and still load.
_PACKAGE = "mimii_embedding"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Standardize(layers.Layer):
    """``(x - mean) * inv_std`` with fixed per-feature statistics (set from the pretraining data, not trained)."""

    def build(self, input_shape) -> None:
        dim = int(input_shape[-1])
        self.mean = self.add_weight(name="mean", shape=(dim,), initializer="zeros", trainable=False)
        self.inv_std = self.add_weight(name="inv_std", shape=(dim,), initializer="ones", trainable=False)

    def call(self, inputs):
        return (inputs - self.mean) * self.inv_std
