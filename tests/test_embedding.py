"""The machine-ID embedding: margin head and loss on hand-made cosines, saving, seeded training, clip embeddings."""

import math

import keras
import numpy as np
import pytest

from common.models import classifier as E
from common.features.cache import cached_features
from common.errors import DataError, ModelError

# Three class centers in 2-d at 0, 90 and 180 degrees (any length: the head normalises them).
CENTERS = np.array([[2.0, 0.0, -0.5], [0.0, 3.0, 0.0]], dtype="float32")
# An embedding at 30 degrees: cosines cos 30, cos 60, -cos 30.
EMBEDDING = 4.0 * np.array([[math.cos(math.pi / 6), math.sin(math.pi / 6)]], dtype="float32")
COSINES = np.array([[math.cos(math.pi / 6), 0.5, -math.cos(math.pi / 6)]])


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _identity_classifier(n_classes=3):
    """A 2-d classifier with no hidden layer whose embedding is its input (identity standardize and dense)."""
    arch = E.classifier_architecture(2, n_classes, hidden=[], embedding_dim=2, head="adacos", scale=None, margin=0.0)
    model = E.build_classifier(arch)
    model.get_layer("standardize").set_weights([np.zeros(2, "float32"), np.ones(2, "float32")])
    model.get_layer("embedding").set_weights([np.eye(2, dtype="float32"), np.zeros(2, "float32")])
    model.get_layer("head").set_weights([CENTERS[:, :n_classes]])
    return arch, model


@pytest.fixture
def blobs(rng):
    """Three Gaussian classes in 12-d, 150 rows each, and a held-out draw of the same classes."""
    means = rng.normal(scale=1.5, size=(3, 12))
    labels = np.repeat(np.arange(3), 150)
    x = (means[labels] + rng.normal(size=(450, 12))).astype("float32")
    x_test = (means[labels] + rng.normal(size=(450, 12))).astype("float32")
    return x, labels, x_test


def test_head_gives_the_cosines_to_the_class_centers():
    arch, model = _identity_classifier()
    np.testing.assert_allclose(_np(model(EMBEDDING)), COSINES, atol=1e-6)
    np.testing.assert_allclose(E.class_centers(arch, model.get_weights()), [[1, 0], [0, 1], [-1, 0]], atol=1e-7)


def test_arcface_margin_goes_to_the_true_class_only_and_adacos_scale_is_fixed():
    y = np.array([[0.0, 1.0, 0.0]])
    logits = _np(E.margin_logits(COSINES, y, head="arcface", scale=10.0, margin=0.2))
    np.testing.assert_allclose(logits, 10 * np.array([[math.cos(math.pi / 6), math.cos(math.pi / 3 + 0.2),
                                                       -math.cos(math.pi / 6)]]), rtol=1e-5)
    adacos = _np(E.margin_logits(COSINES, y, head="adacos", scale=E.fixed_scale(3), margin=0.2))
    np.testing.assert_allclose(adacos, math.sqrt(2) * math.log(2) * COSINES, rtol=1e-6)
    assert E.fixed_scale(11) == pytest.approx(math.sqrt(2) * math.log(10))
    # Cross-entropy of the true class against the softmax of those logits.
    loss = _np(E.margin_loss(y, COSINES, head="arcface", scale=10.0, margin=0.2))
    assert loss == pytest.approx([-logits[0, 1] + np.log(np.exp(logits[0]).sum())], rel=1e-5)
    # A mixup label gets the margin in proportion; the margin never pushes past pi.
    half = _np(E.margin_logits(COSINES, [[0.5, 0.5, 0.0]], head="arcface", scale=1.0, margin=0.2))
    assert half[0, 1] == pytest.approx(0.5 * (0.5 + math.cos(math.pi / 3 + 0.2)), rel=1e-5)
    assert _np(E.margin_logits([[-1.0, 0.0]], [[1.0, 0.0]], head="arcface", scale=1.0, margin=0.5))[0, 0] == \
        pytest.approx(-1.0, abs=1e-5)


def test_saved_classifier_loads_in_safe_mode_with_the_same_embeddings(tmp_path, blobs):
    x, labels, _ = blobs
    arch = E.classifier_architecture(12, 3, hidden=[16], embedding_dim=4, head="arcface", scale=8.0, margin=0.2)
    fit = E.train_classifier(arch, None, x, labels, epochs=1, batch_size=64, learning_rate=1e-3, mixup=0.0, seed=0)
    model = E.build_classifier(arch)
    model.set_weights(fit.weights)
    model.save(tmp_path / "clf.keras")
    loaded = keras.saving.load_model(tmp_path / "clf.keras", safe_mode=True)
    embedder = keras.Model(loaded.input, loaded.get_layer("embedding").output)
    np.testing.assert_allclose(_np(embedder(x[:20])), E.embed_vectors(arch, fit.weights, x[:20]), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(_np(loaded(x[:20])), _np(model(x[:20])), atol=1e-6)


def test_one_seed_gives_the_same_weights_twice(blobs):
    x, labels, _ = blobs
    arch = E.classifier_architecture(12, 3, hidden=[16], embedding_dim=4, head="adacos", scale=None, margin=0.0)
    kw = dict(epochs=2, batch_size=32, learning_rate=1e-3, mixup=0.5)
    a = E.train_classifier(arch, None, x, labels, seed=5, **kw)
    E.train_classifier(arch, None, x[::2], labels[::2], seed=6, **kw)  # a reused compiled model leaks nothing
    b = E.train_classifier(arch, None, x, labels, seed=5, **kw)
    c = E.train_classifier(arch, None, x, labels, seed=6, **kw)
    assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    assert not all(np.array_equal(u, v) for u, v in zip(a.weights, c.weights))
    assert len(a.history["loss"]) == 2 and a.seconds > 0


def test_classifier_tells_three_gaussian_classes_apart(blobs):
    x, labels, x_test = blobs
    arch = E.classifier_architecture(12, 3, hidden=[32], embedding_dim=8, head="arcface", scale=16.0, margin=0.3)
    fit = E.train_classifier(arch, None, x, labels, epochs=8, batch_size=32, learning_rate=3e-3, mixup=0.0, seed=0)
    model = E.build_classifier(arch)
    model.set_weights(fit.weights)
    assert np.mean(np.argmax(_np(model(x_test)), axis=1) == labels) > 0.9
    assert fit.history["loss"][-1] < fit.history["loss"][0]
    # Clips of 10 rows of one class: each clip's nearest clip is of its class.
    emb = E.embed_clips(arch, fit.weights, x_test, np.arange(0, 451, 10))
    sims = emb @ emb.T - 2 * np.eye(len(emb))
    assert np.array_equal(np.argmax(sims, axis=1) // 15, np.arange(45) // 15)


def test_fewer_than_two_classes_is_a_model_error(blobs):
    x, labels, _ = blobs
    arch = E.classifier_architecture(12, 3, hidden=[8], embedding_dim=4, head="adacos", scale=None, margin=0.0)
    with pytest.raises(ModelError, match="at least 2 classes"):
        E.train_classifier(arch, None, x[:150], labels[:150], epochs=1, batch_size=32, learning_rate=1e-3,
                           mixup=0.0, seed=0)
    with pytest.raises(ModelError, match="n_classes=1"):
        E.classifier_architecture(12, 1, hidden=[8], embedding_dim=4, head="adacos", scale=None, margin=0.0)
    with pytest.raises(ModelError, match=r"labels \[0, 1, 2\] must lie in \[0, n_classes=2\)"):
        E.train_classifier({**arch, "n_classes": 2}, None, x, labels, epochs=1, batch_size=32,
                           learning_rate=1e-3, mixup=0.0, seed=0)
    with pytest.raises(ModelError, match="head='softmax'"):
        E.classifier_architecture(12, 3, hidden=[8], embedding_dim=4, head="softmax", scale=None, margin=0.0)


def test_embed_clips_is_the_normalised_mean_of_vector_embeddings():
    arch, model = _identity_classifier()
    vectors = np.array([[1, 0], [0, 1], [3, 4], [-2, 0], [-2, 0.0]], dtype="float32")
    emb = E.embed_clips(arch, model.get_weights(), vectors, np.array([0, 2, 3, 5]))
    np.testing.assert_allclose(emb, [[2**-0.5, 2**-0.5], [0.6, 0.8], [-1, 0]], atol=1e-6)
    unit = E.embed_clips(arch, model.get_weights(), vectors[:3], np.array([0, 3]), normalize_vectors=True)
    np.testing.assert_allclose(unit, E.l2_normalize([[1.6, 1.8]]), atol=1e-6)
    with pytest.raises(DataError, match="offsets"):
        E.embed_clips(arch, model.get_weights(), vectors, np.array([0, 2, 2, 5]))


def test_with_new_class_keeps_the_old_centers_and_adds_the_given_one():
    arch, model = _identity_classifier(n_classes=2)
    new_arch, new_weights = E.with_new_class(arch, model.get_weights(), np.array([0.0, -5.0]))
    assert new_arch["n_classes"] == 3 and arch["n_classes"] == 2
    np.testing.assert_allclose(E.class_centers(new_arch, new_weights), [[1, 0], [0, 1], [0, -1]], atol=1e-7)
    rebuilt = E.build_classifier(new_arch)
    rebuilt.set_weights(new_weights)
    np.testing.assert_allclose(_np(rebuilt(EMBEDDING)), [[math.cos(math.pi / 6), 0.5, -0.5]], atol=1e-6)
    with pytest.raises(ModelError, match="center of shape"):
        E.with_new_class(arch, model.get_weights(), np.zeros(3))


def test_sample_vectors_draws_within_each_clip():
    vectors = np.arange(20, dtype="float32")[:, None] * np.ones((1, 3), "float32")
    offsets = np.array([0, 3, 13, 20])
    x, clips = E.sample_vectors(vectors, offsets, per_clip=4, seed=1)
    assert clips.tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    rows = x[:, 0].astype(int)
    assert rows[:3].tolist() == [0, 1, 2] and len(set(rows)) == 11
    assert all(offsets[c] <= r < offsets[c + 1] for r, c in zip(rows, clips))
    assert np.array_equal(E.sample_vectors(vectors, offsets, per_clip=4, seed=1)[0], x)
    with pytest.raises(DataError, match="per_clip"):
        E.sample_vectors(vectors, offsets, per_clip=0, seed=1)


def test_logmel_clip_stats_of_real_cached_clips(tiny_root, tmp_path):
    from common.features.clipvectors import logmel_stats
    from common.errors import MetricError

    files = sorted((tiny_root / "-6_dB_fan" / "fan" / "id_00" / "normal").glob("*.wav"))[:3]
    feats = cached_features(files, cache_dir=tmp_path, progress=False, jobs=1, n_mels=8, frames=2, n_fft=512,
                            hop_length=256)
    stats = logmel_stats(feats.vectors, feats.offsets, n_mels=8)
    assert stats.shape == (3, 16)
    for i in range(3):
        frames = feats.clip(i)[:, :8].astype(np.float64)
        np.testing.assert_allclose(stats[i], np.concatenate([frames.mean(0), frames.std(0)]), rtol=1e-6, atol=1e-8)
    with pytest.raises(MetricError, match="n_mels=17"):
        logmel_stats(feats.vectors, feats.offsets, n_mels=17)


def test_window_inputs_kept_in_the_callers_memo_give_the_same_embeddings_and_are_computed_once(rng, monkeypatch):
    """Two models embedding the same clips (the cells of one target) share their window statistics, bit for bit."""
    arch = E.classifier_architecture(6, 2, hidden=[4], embedding_dim=3, head="adacos", scale=None, margin=0.0,
                                     window=4, n_mels=2, hop=2)
    vectors, offsets = rng.normal(size=(60, 6)).astype("float32"), np.array([0, 9, 20, 33, 41, 60])
    x, _ = E.clip_inputs(arch, vectors, offsets)
    first, second = E.initial_weights(arch, x, seed=0), E.initial_weights(arch, x, seed=1)
    plain = [E.embed_clips(arch, w, vectors, offsets) for w in (first, second)]
    calls = []
    windows = E._clip_windows
    monkeypatch.setattr(E, "_clip_windows", lambda *a: calls.append(1) or windows(*a))
    memo: dict = {}
    kept = [E.embed_clips(arch, w, vectors, offsets, inputs_memo=memo) for w in (first, second)]
    assert len(calls) == 1 and all(np.array_equal(a, b) for a, b in zip(plain, kept))
    assert not np.allclose(kept[0], kept[1])  # the models differ; only their inputs are shared
    E.embed_clips(arch, first, vectors[:33], offsets[:4], inputs_memo={})  # another dict: computed again
    assert len(calls) == 2

def test_window_inputs_are_the_log_mel_mean_and_std_over_windows():
    arch = E.classifier_architecture(6, 2, hidden=[4], embedding_dim=2, head="arcface", scale=8.0, margin=0.2,
                                     window=2, n_mels=2, hop=1)
    assert E.model_input_dim(arch) == 4 and E.build_classifier(arch).input_shape == (None, 4)
    # Two clips of 3 and 1 vectors; only each vector's first 2 values (its first frame) count.
    vectors = np.array([[0, 2, 9, 9, 9, 9], [2, 2, 9, 9, 9, 9], [4, 8, 9, 9, 9, 9], [5, 7, 9, 9, 9, 9]], "float32")
    x, offsets = E.clip_inputs(arch, vectors, np.array([0, 3, 4]))
    np.testing.assert_allclose(x, [[1, 2, 1, 0], [3, 5, 1, 3], [5, 7, 0, 0]])  # the 1-vector clip: one window of 1
    assert offsets.tolist() == [0, 2, 3]
    sampled, clips = E.sample_inputs(arch, vectors, np.array([0, 3, 4]), 5, seed=0)
    assert sampled.shape == (10, 4) and clips.tolist() == [0] * 5 + [1] * 5
    assert all(any(np.allclose(row, r) for r in x) for row in sampled)
    with pytest.raises(ModelError, match="use sample_inputs"):
        E.train_classifier(arch, None, vectors, np.array([0, 1, 0, 1]), epochs=1, batch_size=2, learning_rate=1e-3,
                           mixup=0.0, seed=0)
    with pytest.raises(ModelError, match="n_mels=None"):
        E.classifier_architecture(6, 2, hidden=[4], embedding_dim=2, head="adacos", scale=None, margin=0.0, window=2)
