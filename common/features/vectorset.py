"""Training vectors as rows of several (memory-mapped) arrays, read a batch at a time and never concatenated.

The feature cache (`common.features.cache`) hands out one memory-mapped array per machine; a `VectorSet` joins
the rows a fit needs without copying them, so a v4 pretrain's RSS stays near one batch.
"""

from __future__ import annotations

import mmap
import os
from typing import Any, Iterable, Sequence

import numpy as np

from common.errors import DataError


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
    DataError
        No parts, parts of different widths or dtypes, or rows out of range.

    Examples
    --------
    The training pools of several machines (`common.data.dataset.MachineData`), in the order
    ``np.concatenate([md.vectors(md.split.train)[0] for md in machines])`` would give:

    >>> vset = VectorSet.from_clips([(md.features, md.split.train) for md in machines])  # doctest: +SKIP
    >>> trainer.fit(arch, weights, vset, epochs=50, batch_size=512, learning_rate=1e-3)  # doctest: +SKIP
    """

    def __init__(self, parts: Iterable[tuple[np.ndarray, Any]]) -> None:
        self.parts: tuple[tuple[np.ndarray, np.ndarray], ...] = tuple(
            (vectors, _rows(vectors, rows)) for vectors, rows in parts
        )
        if not self.parts:
            raise DataError("a VectorSet needs at least one part, got none")
        shapes = [v.shape for v, _ in self.parts]
        dtypes = {np.dtype(v.dtype) for v, _ in self.parts}
        if len({s[1:] for s in shapes}) != 1 or len(shapes[0]) != 2 or len(dtypes) != 1:
            raise DataError(f"every part of a VectorSet must be 2-D with one width and dtype, got shapes {shapes} "
                             f"and dtypes {sorted(str(d) for d in dtypes)}")
        self.dim = int(shapes[0][1])
        self.dtype = dtypes.pop()
        self._ends = np.cumsum([len(r) for _, r in self.parts])
        self._files = [_file_position(v) for v, _ in self.parts]  # (path, byte offset of row 0) or None
        self._fds: dict[str, int] = {}
        # Clip boundaries in the set's rows (clip j is rows clip_offsets[j]:clip_offsets[j + 1]) when
        # made by `from_clips`, as `ClipFeatures.take` returns them; None otherwise.
        self.clip_offsets: np.ndarray | None = None
        # Values per frame when each row stacks consecutive frames of its clip (`ClipFeatures.frame_width` of
        # every part, set by `from_clips`): the set can then be held as its frames (`frames`); None otherwise.
        self.frame_width: int | None = None

    @classmethod
    def from_clips(cls, items: Iterable[tuple[Any, Iterable[Any]]]) -> VectorSet:
        """The vectors of chosen clips of several `ClipFeatures`, clip after clip in the given order.

        Parameters
        ----------
        items : iterable of (features, clips)
            ``features`` : a `ClipFeatures` (``files``, ``vectors``, ``offsets``);
            ``clips`` : the clips to use, as paths (str or Path, as in ``features.files``) or as
            integer clip indices.

        Raises
        ------
        DataError
            A path is not one of the clips of its features.
        IndexError
            A clip index is out of range.

        Examples
        --------
        Scoring the training clips of one machine, as ``md.vectors(md.split.train)`` would:

        >>> one = VectorSet.from_clips([(md.features, md.split.train)])  # doctest: +SKIP
        >>> scores = clip_scores(model, one.read(), one.clip_offsets)  # doctest: +SKIP
        """
        parts, counts, widths = [], [], set()
        for features, clips in items:
            widths.add(getattr(features, "frame_width", None))
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
                    raise DataError(f"clip {c} is not one of the {len(features.files)} clips of these features") from None
            parts.append((features.vectors, clip_rows(features.offsets, idx)))
            offsets = np.asarray(features.offsets, dtype=np.int64)
            counts.append(offsets[np.asarray(idx, dtype=np.int64) + 1] - offsets[np.asarray(idx, dtype=np.int64)])
        vset = cls(parts)
        vset.clip_offsets = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
        width = widths.pop() if len(widths) == 1 else None
        if width is not None and 0 < width <= vset.dim and vset.dim % width == 0:
            vset.frame_width = int(width)
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

    def frame_count(self) -> int | None:
        """Frames the rows stack (rows + ``per_row - 1`` per clip) when `frame_width` is known, else None."""
        if self.frame_width is None or self.clip_offsets is None:
            return None
        return len(self) + (self.dim // self.frame_width - 1) * (len(self.clip_offsets) - 1)

    def frames(self, *, rows: int | None = None, clips_per_read: int = 64) -> tuple[np.ndarray, np.ndarray] | None:
        """The set as the frames its rows stack, and each row's first frame; None when the rows do not stack them.

        Row ``i`` of the set is ``frames[starts[i]:starts[i] + per_row].reshape(-1)`` with ``per_row = dim //
        frame_width``, bit for bit: a set of stacked log-mel vectors held ``per_row`` times smaller. The clips are
        read in file order, `clips_per_read` at a time, and every row is checked against the frames built from its
        neighbours, so a set whose rows do not overlap that way gives None (and is streamed as before).

        Parameters
        ----------
        rows : int >= frame_count() or None
            Rows of the frames array (zero rows after the frames: a padded device copy); None: `frame_count`.

        Returns
        -------
        frames : np.ndarray [shape=(rows, frame_width)]
        starts : np.ndarray [shape=(len(self),), int64]
        """
        n_frames = self.frame_count()
        if n_frames is None:
            return None
        width, per_row = self.frame_width, self.dim // self.frame_width
        offsets = self.clip_offsets
        out = np.zeros((max(n_frames, rows or 0), width), dtype=self.dtype)
        clip_of_row = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
        starts = np.arange(len(self), dtype=np.int64) + (per_row - 1) * clip_of_row
        for first in range(0, len(offsets) - 1, clips_per_read):
            last = min(first + clips_per_read, len(offsets) - 1)
            a, b = int(offsets[first]), int(offsets[last])
            x = self.batch(np.arange(a, b))
            # Each row but a clip's last must continue into the next: its frames 1.. are the next row's frames ..-1.
            same = np.all(x[1:, : self.dim - width] == x[:-1, width:], axis=1)
            same[offsets[first + 1:last] - a - 1] = True  # clip boundaries: nothing to continue
            if not np.all(same):
                return None
            into = starts[a:b]
            out[into] = x[:, :width]
            ends = offsets[first + 1:last + 1] - 1  # each clip's last row also holds its last per_row - 1 frames
            tails = starts[ends][:, None] + np.arange(1, per_row)
            out[tails] = x[ends - a, width:].reshape(len(ends), per_row - 1, width)
        return out, starts

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
                raise DataError(f"{path} is shorter than its memory map: read {got} of {want} bytes")
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
        raise DataError(f"rows of a VectorSet part must be 1-D, got shape={rows.shape}")
    if rows.size and (rows.min() < 0 or rows.max() >= n):
        raise DataError(f"rows of a VectorSet part must lie in [0, {n}), got {rows.min()}..{rows.max()}")
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
