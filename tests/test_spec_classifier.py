"""The spectrogram classifier (`common.models.spec_classifier`): patches rebuilt from real frame vectors, the spectrum
branch, the sub-cluster AdaCos loss on known values, a seeded fit that tells two real machines apart, save and load."""

import math

import keras
import numpy as np
import pytest

from common.errors import DataError, ModelError
from common.features.cache import cached_features
from common.features.logmel import logmel
from common.features.audio import read_channel
from common.models import spec_classifier as S

N_MELS, FRAMES = 8, 3
FEATURES = {"n_mels": N_MELS, "frames": FRAMES, "n_fft": 512, "hop_length": 256}


def _arch(n_classes=2, **sizes):
    return S.spec_architecture(N_MELS, n_classes, **{"input_dim": N_MELS * FRAMES, "patch_frames": 16, "channels": 2,
                                                     "embedding_dim": 8, "sub_clusters": 2, "scale": None, **sizes})


def _clips(tiny_root, tmp_path, machine_type, n=6):
    """(files, vectors, offsets) of `n` normal clips of the tiny set's `machine_type`/id_00."""
    files = sorted((tiny_root / f"-6_dB_{machine_type}" / machine_type / "id_00" / "normal").glob("*.wav"))[:n]
    feats = cached_features(files, cache_dir=tmp_path / "cache", progress=False, jobs=1, **FEATURES)
    return files, feats.vectors, feats.offsets


def test_a_clips_log_mel_spectrogram_is_rebuilt_from_its_stacked_frame_vectors(tiny_root, tmp_path):
    files, vectors, offsets = _clips(tiny_root, tmp_path, "fan", n=2)
    for i, path in enumerate(files):
        y, _ = read_channel(path, channel=0, expected_sr=16000)
        expected = logmel(y, sr=16000, n_mels=N_MELS, n_fft=512, hop_length=256).T  # (frames, bands)
        rebuilt = S.clip_logmel(vectors[offsets[i]:offsets[i + 1]], N_MELS)
        assert rebuilt.shape == expected.shape
        np.testing.assert_allclose(rebuilt, expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(DataError, match="n_mels=5"):
        S.clip_logmel(vectors[:4], 5)


def test_patches_cover_each_clip_every_hop_and_a_short_clip_is_repeated():
    arch = _arch(patch_frames=4, hop=2)
    # One vector of 3 stacked frames per row: frames 0..5 of clip 0 (4 vectors), frames 0..2 of clip 1 (1 vector).
    frames = np.arange(6 * N_MELS, dtype=np.float32).reshape(6, N_MELS)
    clip0 = np.stack([frames[t:t + FRAMES].ravel() for t in range(4)])
    vectors = np.concatenate([clip0, frames[:FRAMES].ravel()[None]])
    x, offsets = S.clip_patches(arch, vectors, np.array([0, 4, 5]))
    assert offsets.tolist() == [0, 2, 3]
    np.testing.assert_array_equal(x[0], frames[0:4])
    np.testing.assert_array_equal(x[1], frames[2:6])  # the last patch ends at the clip's last frame
    np.testing.assert_array_equal(x[2], frames[[0, 1, 2, 0]])  # 3 frames fill a patch of 4 by repeating
    sampled, clips = S.sample_patches(arch, vectors, np.array([0, 4, 5]), 3, seed=0)
    assert sampled.shape == (6, 4, N_MELS) and clips.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(DataError, match="input_dim=24"):
        S.clip_patches(arch, vectors[:, :10], np.array([0, 4, 5]))
    with pytest.raises(DataError, match="per_clip"):
        S.sample_patches(arch, vectors, np.array([0, 4, 5]), 0, seed=0)


def test_the_spectrum_is_the_mean_power_over_the_patch_in_db():
    patch = np.zeros((1, 2, 3), dtype=np.float32)
    patch[0, 0] = [10.0, 0.0, -20.0]
    patch[0, 1] = [0.0, 0.0, -20.0]
    expected = [10 * math.log10((10 + 1) / 2), 0.0, -20.0]
    np.testing.assert_allclose(S.patch_spectrum(patch)[0], expected, atol=1e-9)
    np.testing.assert_allclose(np.asarray(S.PatchSpectrum()(patch))[0], expected, atol=1e-4)


def test_sub_cluster_loss_sums_each_class_over_its_centres():
    cosines = np.array([[0.9, 0.1, -0.5, 0.2]], dtype=np.float32)  # class 0: centres 0, 1; class 1: centres 2, 3
    scale = 4.0
    p = np.exp(scale * cosines[0]) / np.exp(scale * cosines[0]).sum()
    got = np.asarray(S.sub_cluster_loss(np.array([[0.0, 1.0]]), cosines, n_classes=2, sub_clusters=2, scale=scale))
    assert got == pytest.approx([-math.log(p[2] + p[3])], rel=1e-5)
    soft = np.asarray(S.sub_cluster_loss(np.array([[0.5, 0.5]]), cosines, n_classes=2, sub_clusters=2, scale=scale))
    assert soft == pytest.approx([-0.5 * math.log(p[0] + p[1]) - 0.5 * math.log(p[2] + p[3])], rel=1e-5)
    assert S.head_scale(_arch(n_classes=3, sub_clusters=4)) == pytest.approx(math.sqrt(2) * math.log(11))


@pytest.mark.parametrize("sizes, match", [
    ({"n_classes": 1}, "n_classes=1 must be an integer >= 2"),
    ({"patch_frames": 3}, "patch_frames=3"),
    ({"sub_clusters": 0}, "sub_clusters=0"),
    ({"input_dim": 4}, "input_dim=4"),
    ({"scale": -1.0}, "scale=-1.0"),
    ({"hop": 0}, "hop=0"),
])
def test_a_bad_size_is_a_model_error_naming_it(sizes, match):
    with pytest.raises(ModelError, match=match):
        _arch(**sizes)


def test_a_seeded_fit_tells_two_real_machines_apart_and_saves_and_loads(tiny_root, tmp_path):
    from common.models.kinds import with_weights
    from common.models.saved import load_model, save_model

    arch = _arch()
    fan, valve = _clips(tiny_root, tmp_path, "fan"), _clips(tiny_root, tmp_path, "valve")
    xs, ys = zip(*[(S.sample_patches(arch, v, o, 8, seed=i)[0], i) for i, (_, v, o) in enumerate((fan, valve))])
    x, y = np.concatenate(xs), np.repeat([0, 1], [len(xs[0]), len(xs[1])])
    kwargs = {"epochs": 8, "batch_size": 16, "learning_rate": 3e-3, "mixup": 0.0, "seed": 0}
    fit = S.train_spec_classifier(arch, x, y, **kwargs)
    assert fit.history["loss"][-1] < fit.history["loss"][0] and fit.history["class_accuracy"][-1] > 0.9
    again = S.train_spec_classifier(arch, x, y, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(fit.weights, again.weights))
    # Clip embeddings are unit vectors; each machine's clips lie nearer each other than the other machine's.
    emb = [S.embed_clips(arch, fit.weights, v, o) for _, v, o in (fan, valve)]
    assert np.allclose(np.linalg.norm(emb[0], axis=1), 1.0)
    within = min((emb[0] @ emb[0].T).mean(), (emb[1] @ emb[1].T).mean())
    assert within > (emb[0] @ emb[1].T).mean() + 0.1
    # The sub-cluster centres stay where they started (not trained, as ASDKit's SCAdaCos).
    start = S.initial_weights(arch, x, seed=0)
    centres = S.build_spec_classifier(arch).get_layer("head").centres
    i = next(k for k, w in enumerate(S.build_spec_classifier(arch).weights) if w.path == centres.path)
    np.testing.assert_array_equal(fit.weights[i], start[i])
    path = save_model(with_weights(arch, fit.weights), tmp_path / "spec", sidecar={"architecture": arch})
    model, _ = load_model(path)
    np.testing.assert_allclose(S.embed_clips(arch, model.get_weights(), *fan[1:]), emb[0], rtol=1e-6, atol=1e-6)
    with pytest.raises(ModelError, match="at least 2 classes"):
        S.train_spec_classifier(arch, x, np.zeros(len(x), dtype=np.int64), **kwargs)
    with pytest.raises(ModelError, match="use sample_patches"):
        S.train_spec_classifier(arch, fan[1], np.zeros(len(fan[1]), dtype=np.int64), **kwargs)
    assert keras.saving.get_registered_name(S.SubClusterHead).startswith("mimii_spec_classifier")


def test_a_bad_spectrogram_setting_is_a_config_error_naming_the_key(tmp_path, tiny_root):
    from common.config import load_config
    from common.errors import ConfigError
    from conftest import write_config

    path = write_config(tmp_path, tiny_root, spectrogram={"patch_frames": 2})
    with pytest.raises(ConfigError, match=r"'spectrogram\.patch_frames' must be an integer >= 4"):
        load_config(path)


def test_a_spectrogram_pretraining_of_a_single_source_machine_is_refused_before_any_work(tmp_path, tiny_root):
    from conftest import run_main, write_config

    path = write_config(tmp_path, tiny_root, "v2", experiment={"version": "v2",
                                                                 "methods": ["scratch", "spec_two_bank"]})
    code, out = run_main(["pretrain", str(path)])
    assert code == 2 and "hold one machine each" in out and "'spec_two_bank'" in out, out
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").glob("*.keras"))


@pytest.mark.parametrize("shape, filters, padding", [((16, 24, 1), 8, "same"), ((8, 10, 8), 16, "same"),
                                                     ((9, 7, 3), 4, "same"), ((9, 7, 3), 4, "valid")])
def test_the_column_convolution_and_the_reshape_pooling_compute_what_keras_layers_do(shape, filters, padding):
    """`ColumnConv2D` is `Conv2D` to float32 round-off (same weights, same config); `MaxPool2` is `MaxPooling2D(2,
    padding="same")` exactly, odd sizes included (their gradients: the two tests below)."""
    x = np.random.default_rng(sum(shape)).normal(size=(5, *shape)).astype(np.float32)
    ref = keras.layers.Conv2D(filters, 3, padding=padding, use_bias=False)
    ours = S.ColumnConv2D(filters, 3, padding=padding, use_bias=False)
    ref.build(x.shape), ours.build(x.shape)
    ours.set_weights(ref.get_weights())
    np.testing.assert_allclose(np.asarray(ours(x)), np.asarray(ref(x)), rtol=1e-5, atol=1e-5)
    assert ours.get_config()["filters"] == filters
    pooled = np.asarray(S.MaxPool2()(x))
    np.testing.assert_array_equal(pooled, np.asarray(keras.layers.MaxPooling2D(2, padding="same")(x)))


def _vjp(fn, *args, upstream):
    """``fn(*args)`` and the gradients of ``sum(fn(*args) * upstream)`` with respect to each of `args` (JAX, TF)."""
    if keras.backend.backend() == "jax":
        import jax

        out, pullback = jax.vjp(fn, *args)
        return [np.asarray(out)] + [np.asarray(g) for g in pullback(upstream)]
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        args = [tf.constant(a) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(args)
            out = fn(*args)
        return [np.asarray(out)] + [np.asarray(g) for g in tape.gradient(out, args, output_gradients=upstream)]
    pytest.skip(f"no gradient helper for {keras.backend.backend()}")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape, filters, padding", [((32, 64, 1), 8, "same"), ((16, 32, 8), 16, "same"),
                                                     ((9, 7, 1), 4, "same"), ((9, 7, 3), 4, "same"),
                                                     ((9, 7, 1), 4, "valid"), ((9, 7, 3), 4, "valid")])
def test_the_column_convolutions_gradients_are_those_of_keras_conv2d(shape, filters, padding, training):
    """`shift_conv`'s hand-written gradients (kernel and input, one channel or more) are `Conv2D`'s autodiff ones to
    float32 round-off, after either forward (training: broadcast multiply-adds for one channel; else im2col)."""
    rng = np.random.default_rng(sum(shape))
    x = rng.normal(size=(4, *shape)).astype(np.float32)
    ref = keras.layers.Conv2D(filters, 3, padding=padding, use_bias=False)
    ref.build(x.shape)
    ours = S.ColumnConv2D(filters, 3, padding=padding, use_bias=False)
    ours.build(x.shape)
    ours.set_weights(ref.get_weights())
    kernel = np.asarray(ref.kernel.value)
    upstream = rng.normal(size=ref.compute_output_shape(x.shape)).astype(np.float32)
    expected = _vjp(ref.convolution_op, x, kernel, upstream=upstream)
    got = _vjp(lambda x, k: ours.convolution_op(x, k, training=training), x, kernel, upstream=upstream)
    np.testing.assert_allclose(np.asarray(ours(x, training=training)), got[0], rtol=1e-6, atol=1e-6)
    for name, a, b in zip(("output", "input gradient", "kernel gradient"), got, expected):
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(np.abs(b).max()), err_msg=name)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(16, 24, 3), (8, 10, 8), (9, 7, 3)])
def test_the_pooling_gradient_goes_to_the_first_largest_value_as_keras_max_pooling_does(shape, training):
    """`MaxPool2` and its hand-written gradient equal `MaxPooling2D(2, padding="same")` exactly, ties included
    (small integers: many windows hold their maximum twice or more), after either forward."""
    rng = np.random.default_rng(sum(shape))
    x = np.round(rng.normal(size=(3, *shape))).astype(np.float32)
    ref, ours = keras.layers.MaxPooling2D(2, padding="same"), S.MaxPool2()
    upstream = rng.normal(size=ref.compute_output_shape(x.shape)).astype(np.float32)
    got = _vjp(lambda x: ours(x, training=training), x, upstream=upstream)
    for a, b in zip(got, _vjp(ref, x, upstream=upstream)):
        np.testing.assert_array_equal(a, b)
