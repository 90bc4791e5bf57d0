"""A model's outputs for many rows, in batches of direct calls (what scoring and embedding run)."""

from __future__ import annotations

import keras
import numpy as np


def outputs(model: keras.Model, x: np.ndarray, *, batch_size: int = 8192) -> np.ndarray:
    """The model's output for every row of `x` [float32], `batch_size` rows per call.

    A direct call, not ``model.predict``: predict sets up a data pipeline and traces a program for each new
    last-batch size, 2.5x the time of the call itself on the small models and clip sets the grid scores.
    """
    x = np.asarray(x, dtype=np.float32)
    if len(x) == 0:
        return np.zeros((0, *model.output_shape[1:]), dtype=np.float32)
    return np.concatenate([keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False))
                           for i in range(0, len(x), batch_size)]).astype(np.float32, copy=False)
