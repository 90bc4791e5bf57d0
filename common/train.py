"""Train autoencoders: from a random init (scratch, pretraining) or from given weights (fine-tuning).

Keras traces a model's training step once per compiled model (about a second on 2 cores, far more
than a small fine-tune itself), so `Trainer` keeps one compiled model per architecture and loads
new weights and a fresh optimizer state into it for every fit.

Training data is either one array in memory or a `VectorSet`: rows of several (memory-mapped)
feature arrays. A set larger than the trainer's ``in_memory_bytes`` is read one batch at a time,
so that a pretraining set of many machines is never concatenated in RAM; a smaller one is read
whole and trained in RAM, which is faster (see docs/performance.md).
"""

from __future__ import annotations

import math
import mmap
import os
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from .errors import ModelError
from .model import build_autoencoder, keras, set_seed


# Batches per compiled call: fewer Python round trips per epoch, the same updates (about 2x faster
# for the small fits of fine-tuning on 2 cores). Keras' PyTorch backend only runs one.
STEPS_PER_EXECUTION = 1 if keras.backend.backend() == "torch" else 16
IN_MEMORY_BYTES = 512 * 2**20  # default of fit.max_in_memory_mb: larger VectorSets are streamed

@dataclass
class FitResult:
    """Weights after a fit, its loss history and how long it took."""

    weights: list[np.ndarray]
    history: dict[str, list[float]]
    seconds: float
    streamed: bool = False


class VectorSet:
    """Training vectors given as rows of several arrays (usually memory-mapped), never concatenated.

    Row ``i`` of the set is row ``i`` of ``np.concatenate([vectors[rows] for vectors, rows in parts])``,
    but only the rows asked for are ever copied (`batch`). Rows of a memory-mapped ``.npy`` (as
    ``ClipFeatures.vectors`` from the feature cache) are read from its file with ``os.preadv``, not
    through the map: mapped pages that a process has read count in its RSS, and a shuffled pass
    touches every page of every file (on kernels that map whole large folios, one batch of random
    rows maps hundreds of MB). Read with ``preadv`` they stay in the page cache, shared and
    reclaimable, and the RSS stays near one batch. Other arrays are indexed in memory.

    Parameters
    ----------
    parts : iterable of (vectors, rows)
        ``vectors`` : np.ndarray [shape=(n_vectors, dim)], e.g. ``ClipFeatures.vectors``;
        ``rows`` : integer array, range or slice of the rows of ``vectors`` to use, in order
        (None: all). Every part must have the same ``dim`` and dtype.

    Raises
    ------
    ModelError
        No parts, parts of different widths or dtypes, or rows out of range.

    Examples
    --------
    The training pools of several machines (`common.prepare.MachineData`), in the order
    ``np.concatenate([md.vectors(md.split.train)[0] for md in machines])`` would give:

    >>> vset = VectorSet.from_clips([(md.features, md.split.train) for md in machines])  # doctest: +SKIP
    >>> trainer.fit(arch, weights, vset, epochs=50, batch_size=512, learning_rate=1e-3)  # doctest: +SKIP
    """

    def __init__(self, parts: Iterable[tuple[np.ndarray, Any]]) -> None:
        self.parts: tuple[tuple[np.ndarray, np.ndarray], ...] = tuple(
            (vectors, _rows(vectors, rows)) for vectors, rows in parts
        )
        if not self.parts:
            raise ModelError("a VectorSet needs at least one part, got none")
        shapes = [v.shape for v, _ in self.parts]
        dtypes = {np.dtype(v.dtype) for v, _ in self.parts}
        if len({s[1:] for s in shapes}) != 1 or len(shapes[0]) != 2 or len(dtypes) != 1:
            raise ModelError(f"every part of a VectorSet must be 2-D with one width and dtype, got shapes {shapes} "
                             f"and dtypes {sorted(str(d) for d in dtypes)}")
        self.dim = int(shapes[0][1])
        self.dtype = dtypes.pop()
        self._ends = np.cumsum([len(r) for _, r in self.parts])
        self._files = [_file_position(v) for v, _ in self.parts]  # (path, byte offset of row 0) or None
        self._fds: dict[str, int] = {}
        # Clip boundaries in the set's rows (clip j is rows clip_offsets[j]:clip_offsets[j + 1]) when
        # made by `from_clips`, as `ClipFeatures.take` returns them; None otherwise.
        self.clip_offsets: np.ndarray | None = None

    @classmethod
    def from_parts(cls, parts: Iterable[tuple[np.ndarray, Any]]) -> VectorSet:
        """The set of `parts` (``(vectors, rows)`` pairs); the same as ``VectorSet(parts)``."""
        return cls(parts)

    @classmethod
    def from_clips(cls, items: Iterable[tuple[Any, Iterable[Any]]]) -> VectorSet:
        """The vectors of chosen clips of several `ClipFeatures`, clip after clip in the given order.

        Parameters
        ----------
        items : iterable of (features, clips)
            ``features`` : a `common.features.ClipFeatures` (``files``, ``vectors``, ``offsets``);
            ``clips`` : the clips to use, as paths (str or Path, as in ``features.files``) or as
            integer clip indices.

        Raises
        ------
        ModelError
            A path is not one of the clips of its features.
        IndexError
            A clip index is out of range.

        Examples
        --------
        Scoring the training clips of one machine, as ``md.vectors(md.split.train)`` would:

        >>> one = VectorSet.from_clips([(md.features, md.split.train)])  # doctest: +SKIP
        >>> scores = clip_scores(model, one.read(), one.clip_offsets)  # doctest: +SKIP
        """
        parts, counts = [], []
        for features, clips in items:
            index: dict[str, int] | None = None
            idx = []
            for c in clips:
                if isinstance(c, (int, np.integer)):
                    idx.append(int(c))
                    continue
                if index is None:
                    index = {f: i for i, f in enumerate(features.files)}
                try:
                    idx.append(index[str(c)])
                except KeyError:
                    raise ModelError(f"clip {c} is not one of the {len(features.files)} clips of these features") from None
            parts.append((features.vectors, clip_rows(features.offsets, idx)))
            offsets = np.asarray(features.offsets, dtype=np.int64)
            counts.append(offsets[np.asarray(idx, dtype=np.int64) + 1] - offsets[np.asarray(idx, dtype=np.int64)])
        vset = cls(parts)
        vset.clip_offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
        return vset

    def __len__(self) -> int:
        return int(self._ends[-1])

    @property
    def nbytes(self) -> int:
        """Bytes the set takes as one array (what concatenating it allocates)."""
        return len(self) * self.dim * self.dtype.itemsize

    def batch(self, indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows `indices` of the set, in that order [shape=(len(indices), dim)], as a new array.

        Raises
        ------
        IndexError
            An index is outside ``[0, len(self))``.
        """
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range for a VectorSet of {len(self)} rows")
        out = np.empty((len(idx), self.dim), dtype=self.dtype)
        part = np.searchsorted(self._ends, idx, side="right")
        for p in np.unique(part):
            vectors, rows = self.parts[p]
            where = np.flatnonzero(part == p)
            src = rows[idx[where] - (self._ends[p - 1] if p else 0)]
            # In file order: consecutive rows become one read, and the disk reads ahead.
            order = np.argsort(src, kind="stable")
            if self._files[p] is None:
                out[where[order]] = vectors[src[order]]
            else:
                out[where[order]] = self._pread(p, src[order])
        return out

    def read(self) -> np.ndarray:
        """All rows, in order, as one new array (the concatenation; for small sets, e.g. one machine)."""
        return self.batch(np.arange(len(self)))

    def _pread(self, p: int, rows: np.ndarray) -> np.ndarray:
        """Sorted `rows` of part `p` read from its file [shape=(len(rows), dim)]."""
        path, pos0 = self._files[p]
        fd = self._fds.get(path)
        if fd is None:
            fd = self._fds[path] = os.open(path, os.O_RDONLY)
        row_bytes = self.dim * self.dtype.itemsize
        buf = np.empty((len(rows), self.dim), dtype=self.dtype)
        view = memoryview(buf).cast("B")
        breaks = (np.flatnonzero(np.diff(rows) != 1) + 1).tolist()
        for a, b in zip([0] + breaks, breaks + [len(rows)]):
            want = (b - a) * row_bytes
            got = os.preadv(fd, [view[a * row_bytes : b * row_bytes]], pos0 + int(rows[a]) * row_bytes)
            if got != want:
                raise ModelError(f"{path} is shorter than its memory map: read {got} of {want} bytes")
        return buf

    def close(self) -> None:
        """Close the files opened for reading (reopened on the next `batch`)."""
        fds, self._fds = getattr(self, "_fds", {}), {}
        for fd in fds.values():
            os.close(fd)

    def __del__(self) -> None:
        self.close()


def clip_rows(offsets: np.ndarray, clips: Sequence[int]) -> np.ndarray:
    """Rows of clips `clips` in a concatenation with `offsets` (clip ``i`` is ``offsets[i]:offsets[i + 1]``).

    Returns
    -------
    rows : np.ndarray [shape=(sum of the clips' vector counts,), int64]
        Clip after clip, in the order of `clips`.

    Raises
    ------
    IndexError
        A clip index is out of range.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    idx = np.asarray(clips, dtype=np.int64).reshape(-1)
    if not idx.size:
        return np.zeros(0, dtype=np.int64)
    if idx.min() < 0 or idx.max() >= len(offsets) - 1:
        raise IndexError(f"clip index out of range for {len(offsets) - 1} clips")
    starts, counts = offsets[idx], offsets[idx + 1] - offsets[idx]
    # One arange per clip without a Python loop: a running index, shifted at each clip start.
    shift = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return shift + np.arange(int(counts.sum()), dtype=np.int64)


def _rows(vectors: np.ndarray, rows: Any) -> np.ndarray:
    """`rows` (array, range, slice, or None for all) as a checked int64 array of rows of `vectors`."""
    n = len(vectors)
    if rows is None:
        rows = slice(None)
    if isinstance(rows, slice):
        rows = range(*rows.indices(n))
    if isinstance(rows, range):
        rows = np.arange(rows.start, rows.stop, rows.step, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    if rows.ndim != 1:
        raise ModelError(f"rows of a VectorSet part must be 1-D, got shape={rows.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise ModelError(f"rows of a VectorSet part must lie in [0, {n}), got {rows.min()}..{rows.max()}")
    return rows


def _file_position(vectors: np.ndarray) -> tuple[str, int] | None:
    """(file, byte offset of row 0) of a memory-mapped array with contiguous rows, else None.

    Works for memory-mapped `.npy` arrays (`np.load` with `mmap_mode="r"`, `allow_pickle=False`)
    and row slices of them. Only shared maps qualify (a copy-on-write map may differ from its file).
    The position is checked by reading row 0 back, so a wrong guess falls back to indexing the array.
    """
    if not hasattr(os, "preadv"):
        return None  # Windows: index the map
    if not isinstance(vectors, np.memmap) or vectors.filename is None or vectors.mode not in ("r", "r+", "w+"):
        return None
    if len(vectors) == 0 or vectors.ndim != 2 or vectors.strides != (vectors.shape[1] * vectors.itemsize, vectors.itemsize):
        return None
    base = vectors
    while isinstance(base, np.ndarray):
        base = base.base
    if not isinstance(base, mmap.mmap):
        return None
    try:
        # np.memmap maps from the allocation-granularity boundary below its offset (views keep that offset).
        map_start = vectors.offset - vectors.offset % mmap.ALLOCATIONGRANULARITY
        pos0 = map_start + vectors.ctypes.data - np.frombuffer(base, dtype=np.uint8).ctypes.data
        row = np.empty(vectors.shape[1], dtype=vectors.dtype)
        with open(vectors.filename, "rb") as fh:
            fh.seek(pos0)
            ok = fh.readinto(memoryview(row).cast("B")) == row.nbytes and np.array_equal(row, vectors[0], equal_nan=True)
    except (OSError, ValueError, TypeError):
        return None
    return (str(vectors.filename), int(pos0)) if ok else None


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
    """

    def __init__(self, *, in_memory_bytes: int = IN_MEMORY_BYTES) -> None:
        self._models: dict[tuple, keras.Model] = {}
        self.in_memory_bytes = int(in_memory_bytes)

    def model(self, arch: Mapping[str, Any], *, freeze: Sequence[str] = ()) -> keras.Model:
        """The compiled model for `arch` (``input_dim``, ``hidden``, ``bottleneck``, ``batch_norm``)."""
        key = (int(arch["input_dim"]), tuple(arch["hidden"]), int(arch["bottleneck"]),
               bool(arch["batch_norm"]), tuple(freeze))
        if key not in self._models:
            model = build_autoencoder(key[0], hidden=key[1], bottleneck=key[2], batch_norm=key[3])
            freeze_layers(model, freeze)
            model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mean_squared_error",
                          steps_per_execution=STEPS_PER_EXECUTION)
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
            if isinstance(x, VectorSet):
                h = self._fit_streaming(model, x, epochs=epochs, batch_size=batch_size,
                                        validation_split=validation_split, shuffle=shuffle, seed=seed)
            else:
                h = model.fit(x, x, epochs=epochs, batch_size=batch_size, validation_split=validation_split,
                              shuffle=shuffle, verbose=0)
            history = {k: [float(v) for v in vals] for k, vals in h.history.items()}
        return FitResult(model.get_weights(), history, time.perf_counter() - start, streamed)

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
