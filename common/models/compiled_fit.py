"""Fit an autoencoder on JAX with many training steps per compiled call and one program per shape.

Keras' JAX ``fit`` dispatches one jitted step per batch from Python; at batch 512 that dispatch and the
batch copy cost about as much as the step itself on 2 cores, and every new size of an epoch's last
batch compiles a new program (~0.4 s). Here `CHUNK_STEPS` steps run in one ``jax.lax.scan`` (the few
left over one by one), the training rows stay on the device and each call gathers its batches by index, an epoch's last
partial batch is padded and masked, so a fit compiles nothing once its model, batch size and (rounded)
data size have been seen. The updates are Keras' own: the model's stateless call, the mean squared
error over the real rows of each batch, the compiled Adam (`optimizer.stateless_apply`), and the
batch order of Keras' ``fit`` (a NumPy permutation per epoch after `set_seed`) for data in RAM or of
`VectorBatches` for a streamed `VectorSet`. Weights agree with Keras' ``fit`` to float32 round-off
(tests/test_compiled_fit.py); docs/performance.md (section 7) has the speed.

A streamed set of stacked log-mel vectors (`VectorSet.frames`) whose frames fit the trainer's in-memory budget is
held on the device as its frames, ``feature.frames`` times smaller than its vectors, and each call gathers its
batches' rows from them: the batches of the streamed set, in its order, without reading every row from the
feature cache in every epoch (docs/performance.md, section 11).

The embedding family's classifiers (`common.models.classifier`, `common.models.spec_classifier`) train the same way
(`ClassifierPrograms`, `fit_classifier`): their own loss per sample, their epochs' rows prepared on the host as Keras'
``fit`` was given them, `CHUNK_STEPS` steps per call, one program per model and batch size. The dense classifier's
weights agree with Keras' ``fit`` to float32 round-off, the CNN's over a short fit (tests/test_compiled_fit.py);
docs/performance.md (section 11b) has the speed.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import keras
import numpy as np

from common.models.batches import VectorBatches
from common.features.vectorset import VectorSet

CHUNK_STEPS = 16  # training steps per compiled call


def supported(model: keras.Model) -> bool:
    """True on the JAX backend for models without batch norm (padding rows would enter its batch statistics)."""
    return keras.backend.backend() == "jax" and not any(
        isinstance(layer, keras.layers.BatchNormalization) for layer in model.layers)


def padded_rows(n: int) -> int:
    """`n` rounded up to at most 8 sizes per power of two: device copies of that many rows share one program."""
    step = 2 ** max(0, n.bit_length() - 3)
    return max(step, -(-n // step) * step)


class Programs:
    """The compiled training and evaluation calls of one compiled Keras model and batch size."""

    def __init__(self, model: keras.Model, batch_size: int) -> None:
        import jax
        from keras import ops

        self.model, self.batch_size = model, int(batch_size)

        def batch_loss(trainable, non_trainable, x, mask, training):
            y, non_trainable = model.stateless_call(trainable, non_trainable, x, training=training)
            rows = ops.mean(ops.square(y - x), axis=-1) * mask
            return ops.sum(rows) / ops.maximum(ops.sum(mask), 1.0), (non_trainable, ops.sum(rows))

        grad = jax.value_and_grad(batch_loss, has_aux=True)

        def step(state, batch):
            x, mask = batch
            trainable, non_trainable, optimizer = state
            (_, (non_trainable, total)), grads = grad(trainable, non_trainable, x, mask, True)
            trainable, optimizer = model.optimizer.stateless_apply(optimizer, grads, trainable)
            return (trainable, non_trainable, optimizer), total

        def evaluate(state, batch):
            x, mask = batch
            _, (_, total) = batch_loss(state[0], state[1], x, mask, False)
            return state, total

        def gathered(body):
            return lambda state, rows, idx, mask: jax.lax.scan(body, state, (rows[idx], mask))

        self._step, self._evaluate = step, evaluate
        self._frame_calls: dict[int, tuple[Callable, Callable]] = {}
        self.train_rows = jax.jit(gathered(step), donate_argnums=0)
        self.train_batches = jax.jit(lambda state, xs, mask: jax.lax.scan(step, state, (xs, mask)), donate_argnums=0)
        self.evaluate_rows = jax.jit(gathered(evaluate))
        self.evaluate_batches = jax.jit(lambda state, xs, mask: jax.lax.scan(evaluate, state, (xs, mask)))

    def frame_calls(self, per_row: int) -> tuple[Callable, Callable]:
        """(train, evaluate) calls over batches gathered from frames: ``source = (frames, starts)``, row ``i`` of the
        set being ``frames[starts[i]:starts[i] + per_row]`` flattened (`VectorSet.frames`)."""
        if per_row not in self._frame_calls:
            import jax

            def gathered(body):
                def call(state, source, idx, mask):
                    frames, starts = source
                    first = starts[idx]
                    rows = frames[first[..., None] + jax.numpy.arange(per_row)]
                    return jax.lax.scan(body, state, (rows.reshape(*idx.shape, -1), mask))
                return call

            self._frame_calls[per_row] = (jax.jit(gathered(self._step), donate_argnums=0),
                                          jax.jit(gathered(self._evaluate)))
        return self._frame_calls[per_row]


def _batches(order: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """`order` cut into batches, the last one padded: index and mask arrays [shape=(n_batches, batch_size)]."""
    n_batches = max(1, math.ceil(len(order) / batch_size))
    idx = np.zeros(n_batches * batch_size, dtype=np.int32)
    mask = np.zeros(n_batches * batch_size, dtype=np.float32)
    idx[: len(order)], mask[: len(order)] = order, 1.0
    return idx.reshape(n_batches, batch_size), mask.reshape(n_batches, batch_size)


def _calls(n_steps: int) -> list[tuple[int, int]]:
    """(first, count) of each compiled call over `n_steps` steps: CHUNK_STEPS at a time, the rest one by one.

    Two call sizes, so two programs per data size (each compiles in a few tenths of a second, more than
    the few single steps cost), and no call runs a step that would have to be skipped.
    """
    full = n_steps - n_steps % CHUNK_STEPS
    return [(first, CHUNK_STEPS) for first in range(0, full, CHUNK_STEPS)] + [(first, 1) for first in range(full, n_steps)]


def _run(call: Callable, state, source, idx: np.ndarray, mask: np.ndarray) -> tuple[Any, list]:
    """Run `call` over the batches `idx` of `source` (device rows, or a VectorSet read one call at a time)."""
    totals = []
    for first, count in _calls(len(idx)):
        i, m = idx[first:first + count], mask[first:first + count]
        if isinstance(source, VectorSet):
            real = int(m.sum())
            xs = source.batch(i.reshape(-1)[:real])  # read while the previous call computes
            if real < i.size:  # the epoch's last batch: pad it (its mask is 0 there)
                xs = np.concatenate([xs, np.zeros((i.size - real, source.dim), dtype=xs.dtype)])
            if totals:  # at most one chunk waits on the device: without this, JAX's asynchronous calls
                totals[-1].block_until_ready()  # would queue every chunk of the epoch in memory
            state, total = call(state, xs.reshape(*i.shape, -1), m)
        else:
            state, total = call(state, source, i, m)
        totals.append(total)
    return state, totals


def _mean(totals: list, n: int) -> float:
    import jax

    return float(sum(np.sum(t) for t in jax.device_get(totals))) / n


FLAT_ROWS = 2**22  # a fit without validation of at most this many rows x epochs runs as one stream of steps


def device_frames(x: VectorSet, max_bytes: int):
    """``(frames, starts)`` of `x` on the device, each padded to a `padded_rows` size, when its frames
    (`VectorSet.frames`) take at most `max_bytes`; None otherwise (the set is then read a chunk at a time)."""
    import jax

    n_frames = x.frame_count()
    if n_frames is None or n_frames * x.frame_width * x.dtype.itemsize > max_bytes:
        return None
    held = x.frames(rows=padded_rows(n_frames))
    if held is None:
        return None
    frames, starts = held
    padded = np.zeros(padded_rows(len(starts)), dtype=np.int32)
    padded[: len(starts)] = starts
    source = (jax.device_put(frames), jax.device_put(padded))
    del frames, held  # the device holds its own copy
    return source


def fit(programs: Programs, x: np.ndarray | VectorSet, *, epochs: int, n_train: int, shuffle: bool,
        seed: int, frames_bytes: int = 0) -> dict[str, list[float]]:
    """Train ``programs.model`` on rows ``[:n_train]`` of `x` (the rest validates); Keras-style history.

    The caller has set the seed (`set_seed`), the learning rate and a zeroed optimizer state; the
    model's variables hold the trained weights afterwards. A `VectorSet` whose frames take at most
    `frames_bytes` is held on the device as frames (`device_frames`; same batches), else read a chunk at a time.
    """
    import jax

    model, batch_size = programs.model, programs.batch_size
    if isinstance(x, VectorSet):
        source, train, evaluate = x, programs.train_batches, programs.evaluate_batches
        held = device_frames(x, frames_bytes) if frames_bytes > 0 else None
        if held is not None:
            source, (train, evaluate) = held, programs.frame_calls(x.dim // x.frame_width)
        batches = VectorBatches(x, np.arange(n_train), batch_size=batch_size, shuffle=shuffle, seed=seed)
        orders = (batches.order(epoch) for epoch in range(epochs))
    else:
        rows = np.zeros((padded_rows(len(x)), x.shape[1]), dtype=np.float32)
        rows[: len(x)] = x
        source, train, evaluate = jax.device_put(rows), programs.train_rows, programs.evaluate_rows
        del rows  # the device holds its own copy
        orders = (np.random.permutation(n_train) if shuffle else np.arange(n_train) for _ in range(epochs))
    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
             [v.value for v in model.optimizer.variables])
    state = jax.tree_util.tree_map(lambda a: jax.numpy.array(a, copy=True), state)
    history: dict[str, list[float]] = {"loss": []}
    if n_train == len(x) and n_train * epochs <= FLAT_ROWS:
        plans = [_batches(order, batch_size) for order in orders]
        state, totals = _run(train, state, source, np.concatenate([p[0] for p in plans]),
                             np.concatenate([p[1] for p in plans]))
        steps = np.concatenate(jax.device_get(totals)).reshape(epochs, -1)
        history["loss"] = [float(total) / n_train for total in steps.sum(axis=1)]
    else:
        for order in orders:
            state, totals = _run(train, state, source, *_batches(order, batch_size))
            history["loss"].append(_mean(totals, n_train))
            if n_train < len(x):
                _, totals = _run(evaluate, state, source, *_batches(np.arange(n_train, len(x)), batch_size))
                history.setdefault("val_loss", []).append(_mean(totals, len(x) - n_train))
    for variables, values in zip((model.trainable_variables, model.non_trainable_variables,
                                  model.optimizer.variables), state):
        for variable, value in zip(variables, values):
            variable.assign(value)
    return history


# --------------------------------------------------------------------------------------------
# Classifiers: a compiled Keras model, its own (per-sample) loss, labelled rows prepared epoch by epoch


class ClassifierPrograms:
    """The compiled training call of one compiled Keras classifier and batch size: `CHUNK_STEPS` steps a call.

    A step is Keras' own: the model's stateless call in training mode (batch norm statistics updated), the compiled
    loss (``model.loss``, a `keras.losses.Loss`) per sample averaged over the real rows of the batch, Adam's
    `stateless_apply`. Each call takes `CHUNK_STEPS` batches and a flag per batch: a batch flagged 0 (the last call's
    spare slots) is skipped by ``jax.lax.cond``, so one program serves every fit of the model (the autoencoder's
    loop compiles a second, one-step program instead; a CNN's compile costs seconds). `hits(y_true, y_pred)` gives
    each row's 0/1 accuracy, summed per step for the history.
    """

    def __init__(self, model: keras.Model, batch_size: int, hits: Callable) -> None:
        import jax
        from keras import ops

        self.model, self.batch_size = model, int(batch_size)

        def batch_loss(trainable, non_trainable, x, y, mask):
            y_pred, non_trainable = model.stateless_call(trainable, non_trainable, x, training=True)
            rows = model.loss.call(y, y_pred) * mask
            counts = (ops.sum(rows), ops.sum(ops.cast(hits(y, y_pred), "float32") * mask))
            return ops.sum(rows) / ops.maximum(ops.sum(mask), 1.0), (non_trainable, counts)

        grad = jax.value_and_grad(batch_loss, has_aux=True)

        def step(state, batch):
            x, y, mask = batch
            trainable, non_trainable, optimizer = state
            (_, (non_trainable, counts)), grads = grad(trainable, non_trainable, x, y, mask)
            trainable, optimizer = model.optimizer.stateless_apply(optimizer, grads, trainable)
            return (trainable, non_trainable, optimizer), ops.stack(counts)

        def maybe_step(state, batch):
            *batch, active = batch
            return jax.lax.cond(active, step, lambda s, b: (s, jax.numpy.zeros(2, "float32")), state, tuple(batch))

        def train(state, xs, ys, mask, active):
            return jax.lax.scan(maybe_step, state, (xs, ys, mask, active))

        self.train = jax.jit(train, donate_argnums=0)


def classifier_supported(model: keras.Model, whole_batches: bool) -> bool:
    """True on JAX when no padding row can reach a batch norm: the model has none, or every batch is whole."""
    return keras.backend.backend() == "jax" and (whole_batches or supported(model))


def _classifier_chunks(epochs, batch_size: int):
    """`CHUNK_STEPS` batches at a time from `epochs` (an iterable of each epoch's (x, y) rows, in training order).

    Yields ``(xs, ys, mask, active, n_steps)``: arrays of `CHUNK_STEPS` batches (an epoch's last batch padded,
    its mask 0 there; the last chunk's unused slots inactive) and the real steps among them, which run across
    epoch boundaries as one stream. An epoch is cut into batches by one reshape (its rows are not copied per batch).
    """
    pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # runs of whole batches not yet sent

    def take(n_steps: int):
        parts, need = [], n_steps
        while need:
            bx, by, bm = pending[0]
            parts.append((bx[:need], by[:need], bm[:need]))
            pending[0] = (bx[need:], by[need:], bm[need:])
            need -= len(parts[-1][0])
            if not len(pending[0][0]):
                pending.pop(0)
        return [p[0] if len(parts) == 1 else np.concatenate(p) for p in zip(*parts)]

    ready = 0
    for x, y in epochs:
        n_batches = -(-len(x) // batch_size)
        mask = np.zeros(n_batches * batch_size, dtype=np.float32)
        mask[: len(x)] = 1.0
        if len(x) < len(mask):
            x = np.concatenate([x, np.zeros((len(mask) - len(x), *x.shape[1:]), x.dtype)])
            y = np.concatenate([y, np.zeros((len(mask) - len(y), *y.shape[1:]), y.dtype)])
        pending.append((x.reshape(n_batches, batch_size, *x.shape[1:]), y.reshape(n_batches, batch_size, -1),
                        mask.reshape(n_batches, batch_size)))
        ready += n_batches
        while ready >= CHUNK_STEPS:
            yield (*take(CHUNK_STEPS), np.ones(CHUNK_STEPS, dtype=bool), CHUNK_STEPS)
            ready -= CHUNK_STEPS
    if ready:
        xs, ys, mask = take(ready)
        spare = CHUNK_STEPS - ready  # slots the last call skips (any rows: they are not run)
        xs, ys, mask = (np.concatenate([a, np.repeat(a[:1], spare, axis=0)]) for a in (xs, ys, mask))
        yield xs, ys, mask, np.arange(CHUNK_STEPS) < ready, ready


def fit_classifier(programs: ClassifierPrograms, epochs, *, n_rows: int) -> dict[str, list[float]]:
    """Train ``programs.model`` on `epochs` (each epoch's ``(x, y)`` rows, `n_rows` of them, in training order).

    The caller has set the weights, the learning rate and a zeroed (built) optimizer state; the model's variables
    hold the trained weights afterwards. Returns each epoch's mean loss and accuracy over its rows (``loss``,
    ``accuracy``), as Keras' history averages them.
    """
    import jax

    model, batch_size = programs.model, programs.batch_size
    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables],
             [v.value for v in model.optimizer.variables])
    state = jax.tree_util.tree_map(lambda a: jax.numpy.array(a, copy=True), state)
    counts = []
    for xs, ys, mask, active, n_steps in _classifier_chunks(epochs, batch_size):
        if counts:  # at most one chunk waits on the device (JAX's calls are asynchronous)
            counts[-1][0].block_until_ready()
        state, step_counts = programs.train(state, xs, ys, mask, active)
        counts.append((step_counts, n_steps))
    steps = np.concatenate([np.asarray(c)[:n] for c, n in counts]).astype(np.float64)
    per_epoch = steps.reshape(-1, math.ceil(n_rows / batch_size), 2).sum(axis=1) / n_rows
    for variables, values in zip((model.trainable_variables, model.non_trainable_variables,
                                  model.optimizer.variables), state):
        for variable, value in zip(variables, values):
            variable.assign(value)
    return {"loss": per_epoch[:, 0].tolist(), "accuracy": per_epoch[:, 1].tolist()}


def fit_epochs(model: keras.Model, programs: dict[int, ClassifierPrograms], epochs, *, batch_size: int, n_rows: int,
               hits: Callable, whole_batches: bool, accuracy: str) -> dict[str, list[float]]:
    """Train a compiled classifier on `epochs` (each epoch's ``(x, y)``): in `programs`' compiled loop where
    `classifier_supported`, else by Keras' ``fit`` one epoch at a time. Returns the history (``loss`` and
    `accuracy`, per epoch); `programs` keeps each batch size's compiled program for the next fit."""
    if classifier_supported(model, whole_batches=whole_batches):  # the same steps, many per compiled call
        if batch_size not in programs:
            programs[batch_size] = ClassifierPrograms(model, batch_size, hits)
        h = fit_classifier(programs[batch_size], epochs, n_rows=n_rows)
        return {"loss": h["loss"], accuracy: h["accuracy"]} if h["loss"] else {"loss": []}
    history: dict[str, list[float]] = {"loss": []}
    for xe, ye in epochs:
        h = model.fit(xe, ye, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
        for name, values in h.history.items():
            history.setdefault(name, []).append(float(values[-1]))
    return history
