"""A model's outputs for many rows, in batches of direct calls (what scoring and embedding run)."""

from __future__ import annotations

import weakref
from typing import Callable

import keras
import numpy as np

# One compiled forward pass per Keras model (on JAX, `compiled`): the model is held weakly, so a model dropped by its
# owner takes its program with it.
_PROGRAMS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def outputs(model: keras.Model, x: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
    """The model's output for every row of `x` [float32], `batch_size` rows per call.

    A direct call, not ``model.predict``: predict sets up a data pipeline and traces a program for each new
    last-batch size, 2.5x the time of the call itself on the small models and clip sets the grid scores. On JAX the
    call is one compiled program (`compiled`): called directly, a Keras model runs op by op.
    """
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    call = forward(model)
    first = np.asarray(call(x[:batch_size]), dtype=np.float32)
    out = np.empty((len(x), *first.shape[1:]), dtype=np.float32)  # filled batch by batch: no list to concatenate
    out[:len(first)] = first
    for i in range(batch_size, len(x), batch_size):
        out[i:i + batch_size] = call(x[i:i + batch_size])
    return out


def compiled(model: keras.Model) -> bool:
    """Whether `outputs` runs `model` as one compiled program: on JAX, for models without batch norm.

    Compiled whole, XLA fuses a batch norm's inference arithmetic into its neighbours and rounds it otherwise (up to
    2e-6 apart); the dense layers alone give the op-by-op call's outputs bit for bit (``tests/test_model.py``).
    """
    return keras.backend.backend() == "jax" and not any(
        isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def forward(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """The model's inference call on a batch (NumPy in, NumPy out), with the weights it holds now.

    On JAX (`compiled`) one jitted ``stateless_call`` per model, traced once per batch shape (the same shapes the
    op-by-op call compiled each of its operations for); elsewhere the direct call.
    """
    if not compiled(model):
        return lambda xb: keras.ops.convert_to_numpy(model(xb, training=False))
    if model not in _PROGRAMS:
        import jax

        ref = weakref.ref(model)  # the program must not keep its model (the key) alive
        _PROGRAMS[model] = jax.jit(lambda t, n, xb: ref().stateless_call(t, n, xb, training=False)[0])
    program = _PROGRAMS[model]
    trainable = [v.value for v in model.trainable_variables]
    fixed = [v.value for v in model.non_trainable_variables]
    return lambda xb: np.asarray(program(trainable, fixed, xb))
