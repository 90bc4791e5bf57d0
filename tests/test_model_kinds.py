"""The model-kinds table: every kind builds, is described, scores vectors of its input_dim and loads back."""

import numpy as np
import pytest

from common.models.autoencoder import architecture
from common.models.classifier import classifier_architecture
from common.models.spec_classifier import spec_architecture
from common.errors import ModelError
from common.models.saved import load_model, model_problem, save_model, save_weights
from common.models.kinds import MODEL_KINDS, build_model, describe, holding, kind_of, with_weights
from common.models.train import Trainer

ARCHS = {
    "autoencoder": architecture(12, hidden=[6], bottleneck=3, batch_norm=False),
    "classifier": classifier_architecture(12, 3, hidden=[6], embedding_dim=4, head="adacos", scale=None, margin=0.0,
                                          window=4, n_mels=4),
    "identity": {"kind": "identity", "input_dim": 12},
    # The saved model is the identity on SoundNet's clip vectors; the network is rebuilt from the architecture.
    "soundnet": {"kind": "soundnet", "input_dim": 12, "layer": "conv5", "pooling": "mean", "weights": "random",
                 "seed": 0},
    # The identity on statistics the kind computes from a clip's samples (`common.features.sample_stats`).
    "modulation": {"kind": "modulation", "input_dim": 12, "hop_s": 0.01, "n_mels": 32, "n_fft": 1024,
                   "segment_frames": 128, "max_hz": 40.0, "groups": 8},
    "fine_spectrum": {"kind": "fine_spectrum", "input_dim": 12, "n_mels": 128, "n_fft": 2048, "hop_length": 512},
    # Patches of 4 frames x 4 bands cut from the frame vectors (3 stacked frames of 4 bands).
    "spec_classifier": spec_architecture(4, 3, input_dim=12, patch_frames=4, channels=2, embedding_dim=4,
                                         sub_clusters=2, scale=None),
}


def test_every_kind_has_an_example_here():
    assert set(ARCHS) == set(MODEL_KINDS)


@pytest.mark.parametrize("kind", sorted(ARCHS))
def test_each_kind_builds_describes_and_takes_vectors_of_its_input_dim(kind):
    arch = ARCHS[kind]
    model = build_model(arch)
    assert kind_of(arch) == kind
    assert f"input {arch['input_dim']}" in describe(arch)
    assert MODEL_KINDS[kind].vector_dim(model, arch) == 12  # the classifier's input is 2 * n_mels = 8


@pytest.mark.parametrize("kind", sorted(ARCHS))
def test_each_kind_saves_and_loads_with_its_sidecar(tmp_path, kind):
    arch = ARCHS[kind]
    weights = build_model(arch).get_weights()
    path = save_model(with_weights(arch, weights), tmp_path / kind, sidecar={"architecture": arch})
    model, sidecar = load_model(path)
    assert sidecar["architecture"] == arch
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))


def test_a_sidecar_without_a_kind_is_an_autoencoder_and_an_unknown_kind_is_refused():
    arch = {k: v for k, v in ARCHS["autoencoder"].items() if k != "kind"}
    assert kind_of(arch) == "autoencoder" and build_model(arch).name == "autoencoder"
    with pytest.raises(ModelError, match="unknown model kind 'transformer'.*autoencoder, classifier, identity"):
        build_model({"kind": "transformer", "input_dim": 12})


def test_only_the_autoencoder_is_held_by_the_trainer():
    trainer = Trainer()
    arch = ARCHS["autoencoder"]
    weights = trainer.init_weights(arch, seed=0)
    assert holding(arch, weights, trainer=trainer) is trainer.model(arch)
    assert holding(ARCHS["identity"], [], trainer=trainer).name == "identity"
    assert len(trainer._models) == 1  # the identity model was built on its own


@pytest.mark.parametrize("kind", sorted(ARCHS))
def test_save_weights_builds_a_model_only_for_kinds_with_weights(tmp_path, kind):
    arch, built = ARCHS[kind], []
    weights = build_model(arch).get_weights()

    def model():
        built.append(kind)
        return with_weights(arch, weights)

    paths = [save_weights(arch, weights, tmp_path / f"row{i}", sidecar={"architecture": arch, "row": i},
                          head={"bank": np.eye(2)}, model=model) for i in range(2)]
    assert len(built) == (0 if MODEL_KINDS[kind].weightless else 2)
    for i, path in enumerate(paths):
        loaded, sidecar = load_model(path)
        assert sidecar["row"] == i and model_problem(path) is None
        assert all(np.array_equal(a, b) for a, b in zip(loaded.get_weights(), weights))
        x = np.random.default_rng(0).normal(size=(3, MODEL_KINDS[kind].vector_dim(loaded, arch))).astype("float32")
        if kind in ("identity", "soundnet"):
            np.testing.assert_array_equal(loaded.predict(x, verbose=0), x)
