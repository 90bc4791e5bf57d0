"""Batches of a `common.features.vectorset.VectorSet` for Keras, reshuffled every epoch from a seed (no global random state).

Used by `common.models.train` (Keras' ``fit`` over a streamed set) and `common.models.compiled_fit` (the same order on JAX).
"""

from __future__ import annotations

import math

import keras
import numpy as np

from common.features.vectorset import VectorSet
from common.errors import ModelError


class VectorBatches(keras.utils.PyDataset):
    """Batches ``(x, x)`` of some rows of a `VectorSet`, reshuffled every epoch from a seed.

    The order of epoch ``e`` is ``np.random.default_rng([seed, e]).permutation(positions)``: it does
    not depend on the global random state, on the backend, or on how often Keras asks for a batch.
    `Trainer.fit` sets `epoch` at the start of each epoch.

    Parameters
    ----------
    vset : VectorSet
    positions : np.ndarray [shape=(n,), int]
        Rows of `vset` this dataset covers.
    batch_size : int > 0
    shuffle : bool
        Shuffle every epoch; False keeps `positions` in order.
    seed : int
    """

    def __init__(self, vset: VectorSet, positions: np.ndarray, *, batch_size: int, shuffle: bool, seed: int) -> None:
        super().__init__(workers=1, use_multiprocessing=False)
        if batch_size < 1:
            raise ModelError(f"batch_size={batch_size} must be a positive integer")
        self.vset, self.positions = vset, np.asarray(positions, dtype=np.int64)
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.epoch = 0
        self._order_epoch: int | None = None
        self._order = self.positions

    def __len__(self) -> int:
        return math.ceil(len(self.positions) / self.batch_size)

    def order(self, epoch: int) -> np.ndarray:
        """Rows of `vset` in the order epoch `epoch` visits them."""
        if not self.shuffle:
            return self.positions
        if self._order_epoch != epoch:
            self._order = np.random.default_rng([self.seed, epoch]).permutation(self.positions)
            self._order_epoch = epoch
        return self._order

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        rows = self.order(self.epoch)[index * self.batch_size : (index + 1) * self.batch_size]
        x = self.vset.batch(rows)
        return x, x
