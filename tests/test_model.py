"""The autoencoder: architecture, save/load with sidecar checks, seeded training, batched scoring."""

import json

import numpy as np
import pytest

from common.models.autoencoder import architecture, build_autoencoder
from common.errors import ModelError
from common.models.saved import load_model, read_sidecar, save_model
from common.scoring.reconstruction import clip_scores, reconstruction_errors
from common.models.train import Trainer

FEATURES = {"n_mels": 8, "frames": 2, "n_fft": 256, "hop_length": 128, "power": 2.0, "channel": 0, "sample_rate": 16000}
ARCH = architecture(16, hidden=(12, 10), bottleneck=4, batch_norm=False)


@pytest.fixture
def x(rng):
    return rng.normal(size=(300, 16)).astype("float32")


def test_architecture_names_and_sizes():
    model = build_autoencoder(320)
    dense = [(layer.name, layer.units) for layer in model.layers if hasattr(layer, "units")]
    assert dense == [("enc_1", 64), ("enc_2", 64), ("bottleneck", 8), ("dec_1", 64), ("dec_2", 64), ("output", 320)]
    assert model.output_shape == (None, 320)
    bn = build_autoencoder(40, hidden=(16,), bottleneck=4, batch_norm=True)
    assert [layer.name for layer in bn.layers if "bn" in layer.name] == ["enc_1_bn", "bottleneck_bn", "dec_1_bn"]


def test_same_seed_same_model_different_seed_different(x):
    trainer = Trainer()
    kw = dict(epochs=2, batch_size=64, learning_rate=1e-3, validation_split=0.1, seed=3)
    a = trainer.fit(ARCH, trainer.init_weights(ARCH, seed=1), x, **kw)
    trainer.fit(ARCH, trainer.init_weights(ARCH, seed=9), x[:100], **kw)  # reuse must not leak state
    b = Trainer().fit(ARCH, trainer.init_weights(ARCH, seed=1), x, **kw)
    c = trainer.fit(ARCH, trainer.init_weights(ARCH, seed=2), x, **kw)
    d = trainer.fit(ARCH, trainer.init_weights(ARCH, seed=1), x, **kw)  # a later fit of a reused model
    assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    assert all(np.array_equal(u, v) for u, v in zip(a.weights, d.weights))
    assert a.history == b.history == d.history and set(a.history) == {"loss", "val_loss"}
    assert not all(np.array_equal(u, v) for u, v in zip(a.weights, c.weights))


def test_training_reduces_reconstruction_error(x):
    trainer = Trainer()
    w0 = trainer.init_weights(ARCH, seed=0)
    before = reconstruction_errors(trainer.with_weights(ARCH, w0), x).mean()
    fit = trainer.fit(ARCH, w0, x, epochs=30, batch_size=32, learning_rate=3e-3, seed=0)
    after = reconstruction_errors(trainer.with_weights(ARCH, fit.weights), x).mean()
    assert after < 0.9 * before
    assert fit.history["loss"][-1] < fit.history["loss"][0]


def test_frozen_layers_keep_their_weights(x):
    trainer = Trainer()
    w0 = trainer.init_weights(ARCH, seed=0)
    fit = trainer.fit(ARCH, w0, x, epochs=2, batch_size=32, learning_rate=1e-2, seed=0, freeze=["enc_1"])
    model = trainer.model(ARCH, freeze=["enc_1"])
    names = [w.path for w in model.weights]
    for name, before, after in zip(names, w0, fit.weights):
        assert np.array_equal(before, after) == name.startswith("enc_1/"), name
    with pytest.raises(ModelError, match=r"unknown layer\(s\) \['encoder'\]"):
        trainer.fit(ARCH, w0, x, epochs=1, batch_size=32, learning_rate=1e-2, freeze=["encoder"])


def test_clip_scores_are_mean_errors_per_clip(x):
    trainer = Trainer()
    model = trainer.with_weights(ARCH, trainer.init_weights(ARCH, seed=0))
    offsets = np.array([0, 10, 11, 150, 300])
    scores = clip_scores(model, x, offsets)
    per_vector = np.mean((x - model.predict(x, verbose=0)) ** 2, axis=1)
    expected = [per_vector[a:b].mean() for a, b in zip(offsets[:-1], offsets[1:])]
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_save_load_round_trip_and_feature_check(tmp_path, x):
    trainer = Trainer()
    model = trainer.with_weights(ARCH, trainer.init_weights(ARCH, seed=0))
    path = save_model(model, tmp_path / "m" / "fan", sidecar={"features": FEATURES, "architecture": ARCH})
    assert path.name == "fan.keras" and path.with_suffix(".json").is_file()
    assert not list(path.parent.glob("*.tmp*"))
    loaded, side = load_model(path, features=FEATURES)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)
    assert side["architecture"] == ARCH and side["backend"]
    with pytest.raises(ModelError, match=r"other features \(n_mels: model 8 vs requested 64\)"):
        load_model(path, features={**FEATURES, "n_mels": 64})
    path.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match="has no sidecar fan.json"):
        load_model(path)
    with pytest.raises(ModelError, match="model file not found"):
        read_sidecar(tmp_path / "nothing.keras")
    (tmp_path / "bad.keras").write_text("not a zip")
    (tmp_path / "bad.json").write_text(json.dumps({"features": FEATURES}))
    with pytest.raises(ModelError, match=r"model file .*bad\.keras is not a Keras archive"):
        load_model(tmp_path / "bad.keras")


def test_sidecar_round_trip_keeps_unknown_keys_and_writes_only_recorded_fields(tmp_path):
    from common.models.saved import Sidecar, write_sidecar

    meta = {"features": FEATURES, "n_channels": 8, "threshold": 0.25, "method": "transfer", "from_the_future": [1]}
    side = Sidecar.from_dict(meta)
    assert side.threshold == 0.25 and side.auc is None and side.extra == {"from_the_future": [1]}
    assert side.to_dict() == meta  # unset fields are not written; unknown keys come back unchanged
    path = tmp_path / "m.keras"
    path.write_bytes(b"")  # read_sidecar wants the model file beside its sidecar
    write_sidecar(path, side.replace(auc=0.75))
    assert json.loads(path.with_suffix(".json").read_text()) == meta | {"auc": 0.75}
    assert Sidecar.read(path) == side.replace(auc=0.75)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_compiled_outputs_equal_the_direct_call(rng, batch_norm):
    """`outputs` runs a model as one compiled program on JAX: the direct (op-by-op) call's outputs, bit for bit, at
    the grid's size and at every kind of last batch; batch-norm models keep the direct call."""
    import keras

    from common.models import inference

    arch = architecture(320, hidden=(64, 64), bottleneck=8, batch_norm=batch_norm)
    trainer = Trainer()
    weights = [w + rng.normal(scale=0.1, size=w.shape).astype(w.dtype) for w in trainer.init_weights(arch, seed=0)]
    model = trainer.with_weights(arch, weights)
    assert inference.compiled(model) == (keras.backend.backend() == "jax" and not batch_norm)
    for n in (1, 7, 309, 1000, 1000):
        x = rng.normal(size=(n, 320)).astype("float32")
        direct = np.concatenate([keras.ops.convert_to_numpy(model(x[i:i + 256], training=False))
                                 for i in range(0, n, 256)])
        out = inference.outputs(model, x, batch_size=256)
        assert out.dtype == np.float32 and np.array_equal(out, direct), n
    trainer.load(model, trainer.init_weights(arch, seed=1))  # new weights in the same model: read at every call
    assert np.array_equal(inference.outputs(model, x), keras.ops.convert_to_numpy(model(x, training=False)))


def test_compiled_outputs_of_the_classifier_embedder_equal_the_direct_call(rng):
    import keras

    from common.models.classifier import _compiled, build_classifier, classifier_architecture, embed_vectors

    arch = classifier_architecture(16, 3, hidden=(12,), embedding_dim=4, head="arcface", scale=None, margin=0.1)
    weights = [w + rng.normal(scale=0.1, size=w.shape).astype(w.dtype) for w in build_classifier(arch).get_weights()]
    x = rng.normal(size=(1000, 16)).astype("float32")
    out = embed_vectors(arch, weights, x, batch_size=300)
    embedder = _compiled(arch, ()).embedder
    direct = np.concatenate([keras.ops.convert_to_numpy(embedder(x[i:i + 300], training=False))
                             for i in range(0, len(x), 300)])
    assert np.array_equal(out, direct)


def test_clip_scores_from_residuals_in_chunks_equal_clip_scores(x, monkeypatch):
    """`residual_clip_scores` (transfer's scores from the residuals it shares) squares a chunk of rows at a time:
    `clip_scores` bit for bit, whatever the chunk; the residuals are left as they were."""
    from common.scoring import reconstruction
    from common.scoring.scorer import residuals

    trainer = Trainer()
    model = trainer.with_weights(ARCH, trainer.init_weights(ARCH, seed=0))
    offsets = np.array([0, 10, 11, 150, 300])
    res = residuals(model, x)
    kept = res.copy()
    for rows in (7, 64, 16384):
        monkeypatch.setattr(reconstruction, "ROWS", rows)
        assert np.array_equal(reconstruction.residual_clip_scores(res, offsets), clip_scores(model, x, offsets))
    assert np.array_equal(res, kept)
