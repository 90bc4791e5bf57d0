"""The compiled JAX training loop: the same weights as Keras' own fit, one program per shape, the step plan."""

from __future__ import annotations

import numpy as np
import pytest

from common.models import compiled_fit
from common.features.cache import ClipFeatures
from common.features.vectorset import VectorSet
from common.models.train import Trainer

import keras  # after common: the package picks the Keras backend before Keras is imported

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the compiled loop runs on JAX only")

ARCH = {"input_dim": 24, "hidden": [16], "bottleneck": 4, "batch_norm": False}


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 4)) @ rng.normal(size=(4, ARCH["input_dim"])) + 0.1 * rng.normal(
        size=(n, ARCH["input_dim"]))).astype(np.float32)


def keras_fit(trainer: Trainer, monkeypatch, *args, **kwargs):
    """The same fit through Keras' own ``model.fit`` (the reference the compiled loop must match)."""
    with monkeypatch.context() as m:
        m.setattr(compiled_fit, "supported", lambda model: False)
        return trainer.fit(*args, **kwargs)


@pytest.mark.parametrize("n, epochs, validation_split", [(100, 7, 0.0), (300, 3, 0.2), (64, 2, 0.0)])
def test_compiled_fit_matches_keras_fit(monkeypatch, n, epochs, validation_split):
    """Weights and loss history as Keras' fit gives them (same batches, order, Adam), to float32 round-off."""
    trainer = Trainer()
    x, w = vectors(n), trainer.init_weights(ARCH, seed=1)
    kw = dict(epochs=epochs, batch_size=32, learning_rate=1e-2, validation_split=validation_split, seed=5)
    ours = trainer.fit(ARCH, w, x, **kw)
    ref = keras_fit(Trainer(), monkeypatch, ARCH, w, x, **kw)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(ours.weights, ref.weights)) < 1e-5
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(ours.weights, w)) > 1e-3  # it did train
    assert ours.history.keys() == ref.history.keys()
    for key in ref.history:
        np.testing.assert_allclose(ours.history[key], ref.history[key], rtol=1e-5)


def test_streamed_compiled_fit_matches_keras_streaming(monkeypatch, tmp_path):
    """A VectorSet read a chunk at a time trains like Keras' fit over `VectorBatches` (same per-epoch order)."""
    x = vectors(200, seed=2)
    np.save(tmp_path / "a.npy", x[:120])
    np.save(tmp_path / "b.npy", x[120:])

    def vset() -> VectorSet:
        return VectorSet([(np.load(tmp_path / "a.npy", mmap_mode="r"), None),
                          (np.load(tmp_path / "b.npy", mmap_mode="r"), None)])

    trainer = Trainer(in_memory_bytes=0)
    w = trainer.init_weights(ARCH, seed=3)
    kw = dict(epochs=3, batch_size=32, learning_rate=1e-2, validation_split=0.1, seed=4)
    ours = trainer.fit(ARCH, w, vset(), **kw)
    ref = keras_fit(Trainer(in_memory_bytes=0), monkeypatch, ARCH, w, vset(), **kw)
    assert ours.streamed and ref.streamed
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(ours.weights, ref.weights)) < 1e-5
    np.testing.assert_allclose(ours.history["val_loss"], ref.history["val_loss"], rtol=1e-5)


def stacked_features(tmp_path, name: str, clips, *, width: int = 6, per_row: int = 4, seed: int = 0) -> ClipFeatures:
    """Clips of `per_row` stacked frames of `width` values (as the feature cache writes them), memory-mapped."""
    rng = np.random.default_rng(seed)
    rows, offsets = [], [0]
    for n in clips:
        frames = rng.normal(size=(n + per_row - 1, width)).astype(np.float32)
        rows.append(np.stack([frames[t:t + per_row].reshape(-1) for t in range(n)]))
        offsets.append(offsets[-1] + n)
    np.save(tmp_path / f"{name}.npy", np.concatenate(rows))
    return ClipFeatures(tuple(f"{name}{i}.wav" for i in range(len(clips))),
                        np.load(tmp_path / f"{name}.npy", mmap_mode="r"), np.array(offsets, dtype=np.int64),
                        frame_width=width)


def test_a_set_of_stacked_frames_is_held_as_its_frames(tmp_path):
    """`VectorSet.frames` gives back every row bit for bit, 1/per_row the size; rows that do not overlap give None."""
    a, b = stacked_features(tmp_path, "a", (7, 1, 12, 30)), stacked_features(tmp_path, "b", (9, 5), seed=1)
    vset = VectorSet.from_clips([(a, [2, 0, 3]), (b, [1]), (a, [1])])
    frames, starts = vset.frames(rows=100, clips_per_read=2)
    rows = vset.read()
    assert frames.shape == (100, 6) and vset.frame_count() == len(rows) + 3 * 5 < 100
    assert all(np.array_equal(frames[s:s + 4].reshape(-1), row) for s, row in zip(starts, rows))
    assert VectorSet.from_clips([(a, [0])]).frame_width == 6
    shuffled = ClipFeatures(a.files, np.ascontiguousarray(a.vectors[::-1]), a.offsets, frame_width=6)
    assert VectorSet.from_clips([(shuffled, [3])]).frames() is None  # rows that do not continue each other
    assert VectorSet([(a.vectors, None)]).frames() is None  # no clips known


def test_a_streamed_set_held_as_frames_trains_as_read_from_disk(tmp_path):
    """The frames on the device give the streamed fit's batches: the same weights and history as reading every row."""
    a, b = stacked_features(tmp_path, "a", (40, 25, 61)), stacked_features(tmp_path, "b", (33, 50), seed=1)

    def vset() -> VectorSet:
        return VectorSet.from_clips([(a, [0, 2, 1]), (b, [1, 0])])

    frames_bytes = vset().frame_count() * 6 * 4
    assert frames_bytes < vset().nbytes // 3
    w = Trainer().init_weights(ARCH, seed=3)
    kw = dict(epochs=3, batch_size=32, learning_rate=1e-2, validation_split=0.1, seed=4)
    # fit.max_frames_mb is its own limit: a set streamed under fit.max_in_memory_mb is held up to it, read over it.
    held, read = Trainer(in_memory_bytes=0, frames_bytes=frames_bytes), Trainer(in_memory_bytes=0, frames_bytes=0)
    over = Trainer(in_memory_bytes=0, frames_bytes=frames_bytes - 1)
    ours, ref = held.fit(ARCH, w, vset(), **kw), read.fit(ARCH, w, vset(), **kw)
    assert ours.streamed and ref.streamed and over.fit(ARCH, w, vset(), **kw).streamed
    assert next(iter(held._programs.values()))._frame_calls and not next(iter(read._programs.values()))._frame_calls
    assert not next(iter(over._programs.values()))._frame_calls
    assert all(np.array_equal(x, y) for x, y in zip(ours.weights, ref.weights))
    assert ours.history == ref.history


def test_fits_of_nearby_sizes_share_one_compiled_program():
    """Data sizes that round to the same device size and step plans of the same sizes compile nothing new."""
    trainer = Trainer()
    w = trainer.init_weights(ARCH, seed=0)
    trainer.fit(ARCH, w, vectors(250), epochs=4, batch_size=64, learning_rate=1e-3)  # 4 x 4 steps: one call of 16
    programs = next(iter(trainer._programs.values()))
    compiled = programs.train_rows._cache_size()
    for n in (230, 241, 255):  # padded to 256 rows, 4 steps per epoch, same calls
        trainer.fit(ARCH, w, vectors(n, seed=n), epochs=4, batch_size=64, learning_rate=1e-3, seed=n)
    assert programs.train_rows._cache_size() == compiled
    trainer.fit(ARCH, w, vectors(700), epochs=4, batch_size=64, learning_rate=1e-3)  # 768 rows, 44 steps
    assert programs.train_rows._cache_size() == compiled + 2  # calls of 16 steps and of 1 on the new size


def test_step_plan_and_row_padding():
    """Every call runs CHUNK_STEPS real steps or one (two programs per size); padding stays within 1/4."""
    for n_steps in (1, 5, 16, 17, 40, 1000):
        calls = compiled_fit._calls(n_steps)
        counts = [count for _, count in calls]
        assert sum(counts) == n_steps and [first for first, _ in calls] == list(np.cumsum([0] + counts[:-1]))
        assert set(counts) <= {1, compiled_fit.CHUNK_STEPS} and counts.count(1) < compiled_fit.CHUNK_STEPS
    sizes = {compiled_fit.padded_rows(n) for n in range(1025, 2049)}
    assert len(sizes) <= 8 and all(compiled_fit.padded_rows(n) >= n for n in range(1, 5000))
    assert all(compiled_fit.padded_rows(n) <= n * 1.25 + 1 for n in range(8, 5000))
    idx, mask = compiled_fit._batches(np.arange(10)[::-1], 4)
    assert idx.shape == (3, 4) and mask.sum() == 10 and list(idx[2, :2]) == [1, 0] and list(mask[2]) == [1, 1, 0, 0]


def test_batch_norm_models_train_through_keras():
    """Padding rows would enter batch-norm statistics: such models keep Keras' own fit."""
    trainer = Trainer()
    arch = {**ARCH, "batch_norm": True}
    assert not compiled_fit.supported(trainer.model(arch))
    assert compiled_fit.supported(trainer.model(ARCH))
    result = trainer.fit(arch, trainer.init_weights(arch, seed=0), vectors(50), epochs=2, batch_size=16,
                         learning_rate=1e-3)
    assert len(result.history["loss"]) == 2 and not trainer._programs


def _keras_classifier_fit(monkeypatch, train, *args, **kwargs):
    """A classifier's fit through Keras' own ``model.fit`` (the reference `fit_classifier` must match)."""
    with monkeypatch.context() as m:
        m.setattr(compiled_fit, "classifier_supported", lambda model, whole_batches: False)
        return train(*args, **kwargs)


@pytest.mark.parametrize("freeze, n", [((), 300), (("dense_1",), 256)])
def test_the_dense_classifiers_compiled_fit_matches_keras_fit(monkeypatch, freeze, n):
    """Same batches (an epoch's last one partial at 300 rows), same Adam: weights and history to float32 round-off."""
    from common.models import classifier as E

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, n)
    x = (rng.normal(size=(n, 12)) + labels[:, None]).astype(np.float32)
    arch = E.classifier_architecture(12, 3, hidden=[16, 16], embedding_dim=4, head="arcface", scale=16.0, margin=0.3)
    w = E.initial_weights(arch, x, seed=1)
    kw = dict(epochs=3, batch_size=64, learning_rate=3e-3, mixup=0.5, seed=2, freeze=freeze)
    ours, ref = E.train_classifier(arch, w, x, labels, **kw), _keras_classifier_fit(
        monkeypatch, E.train_classifier, arch, w, x, labels, **kw)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(ours.weights, ref.weights)) < 1e-5
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(ours.weights, w)) > 1e-3  # it did train
    assert ours.history.keys() == ref.history.keys()
    for key in ref.history:
        np.testing.assert_allclose(ours.history[key], ref.history[key], rtol=1e-5)


def test_the_spectrogram_classifiers_compiled_fit_matches_keras_fit(monkeypatch):
    """Batch norm included (every batch is whole): weights, moving statistics and history to float32 round-off over
    a short fit (XLA fuses the step inside the loop otherwise; over hundreds of steps training grows the difference
    to ~1e-2 in the weights, as any change in the order of a sum would: the CNN's results are not pinned)."""
    from common.models import spec_classifier as S

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 150)
    x = (rng.normal(size=(150, 8, 8)) + labels[:, None, None]).astype(np.float32)
    arch = S.spec_architecture(8, 3, input_dim=16, patch_frames=8, channels=2, embedding_dim=4, sub_clusters=2,
                               scale=None)
    kw = dict(epochs=3, batch_size=32, learning_rate=3e-3, mixup=0.5, seed=0)
    ours, ref = S.train_spec_classifier(arch, x, labels, **kw), _keras_classifier_fit(
        monkeypatch, S.train_spec_classifier, arch, x, labels, **kw)
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(ours.weights, ref.weights)) < 1e-5
    assert ours.history.keys() == ref.history.keys()
    for key in ref.history:
        np.testing.assert_allclose(ours.history[key], ref.history[key], rtol=1e-5)
