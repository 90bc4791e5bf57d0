"""The dense autoencoder of the MIMII baseline, and the identity model of the methods without a network.

An architecture is a JSON-able dict (`architecture`), stored in a model's sidecar and read back by transfer;
`common.models.kinds` builds the model of any kind from it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import keras
from keras import layers

from common.errors import ModelError


def build_autoencoder(
    input_dim: int,
    *,
    hidden: Sequence[int] = (64, 64),
    bottleneck: int = 8,
    batch_norm: bool = False,
) -> keras.Model:
    """The MIMII baseline autoencoder: Dense-ReLU encoder, bottleneck, mirrored decoder, linear output.

    Parameters
    ----------
    input_dim : int > 0
        ``n_mels * frames``.
    hidden : sequence of int > 0
        Encoder layer sizes; the decoder uses them in reverse.
    bottleneck : int > 0
    batch_norm : bool
        Insert BatchNormalization before each ReLU (the DCASE 2020 variant).

    Layers are named ``enc_1 .. enc_k``, ``bottleneck``, ``dec_1 .. dec_k``, ``output`` so a
    transfer config can freeze them by name.
    """
    if input_dim < 1:
        raise ModelError(f"input_dim={input_dim} must be a positive integer")
    names = [f"enc_{i + 1}" for i in range(len(hidden))] + ["bottleneck"]
    names += [f"dec_{i + 1}" for i in range(len(hidden))]
    sizes = list(hidden) + [bottleneck] + list(reversed(hidden))
    inputs = keras.Input(shape=(input_dim,), name="logmel_frames")
    x = inputs
    for name, size in zip(names, sizes):
        if batch_norm:
            x = layers.Dense(size, name=name)(x)
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
            x = layers.Activation("relu", name=f"{name}_relu")(x)
        else:
            x = layers.Dense(size, activation="relu", name=name)(x)
    outputs = layers.Dense(input_dim, name="output")(x)
    return keras.Model(inputs, outputs, name="autoencoder")


def encoder_layers(arch: Mapping[str, Any]) -> tuple[str, ...]:
    """The encoder's layer names of the model of `arch`: ``enc_1 .. enc_k`` and ``bottleneck``."""
    return tuple(f"enc_{i + 1}" for i in range(len(arch["hidden"]))) + ("bottleneck",)


def build_identity(input_dim: int) -> keras.Model:
    """The model of the methods without a network: the log-mel vectors as they are (no weights)."""
    inputs = keras.Input(shape=(int(input_dim),), name="logmel_frames")
    return keras.Model(inputs, layers.Identity(name="frames")(inputs), name="identity")


def architecture(input_dim: int, *, hidden: Sequence[int], bottleneck: int, batch_norm: bool) -> dict[str, Any]:
    """The sizes that rebuild a model, as stored in its sidecar and read back by transfer."""
    return {"input_dim": int(input_dim), "hidden": [int(h) for h in hidden],
            "bottleneck": int(bottleneck), "batch_norm": bool(batch_norm)}
