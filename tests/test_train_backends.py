"""Streaming training from memory-mapped features (`VectorSet`), and the model tests on other Keras backends."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from common.features.cache import cached_features
from common.features.vectorset import VectorSet, clip_rows
from common.errors import DataError
from common.models.autoencoder import architecture
from common.models.batches import VectorBatches
from common.models.train import Trainer, validation_rows

import keras  # after common: the package picks the Keras backend before Keras is imported

REPO = Path(__file__).resolve().parent.parent
ARCH = architecture(16, hidden=(12, 10), bottleneck=4, batch_norm=False)
FEATURES = {"n_mels": 8, "frames": 2, "n_fft": 512, "hop_length": 256}


@pytest.fixture(scope="module")
def machine_features(tiny_root, tmp_path_factory):
    """Memory-mapped cached features of two machines of the tiny set (real WAV files)."""
    cache = tmp_path_factory.mktemp("cache")
    out = []
    for folder in sorted(tiny_root.glob("*/fan/*"))[:2]:
        files = sorted(folder.rglob("*.wav"))
        out.append(cached_features(files, cache_dir=cache, progress=False, jobs=1, **FEATURES))
    return out


@pytest.fixture
def numbered(tmp_path):
    """A memory-mapped .npy whose row i holds the value i everywhere (rows tell which row they are)."""
    n = 1000
    np.save(tmp_path / "rows.npy", np.repeat(np.arange(n, dtype=np.float32)[:, None], 16, axis=1))
    return np.load(tmp_path / "rows.npy", mmap_mode="r")


def test_vector_set_equals_the_concatenation(machine_features):
    feats = machine_features
    picks = [[3, 0, 5], [1, 2]]
    vset = VectorSet.from_clips([(f, p) for f, p in zip(feats, picks)])
    taken = [f.take(p) for f, p in zip(feats, picks)]
    expected = np.concatenate([v for v, _ in taken])
    assert len(vset) == len(expected) and vset.dim == expected.shape[1] and vset.nbytes == expected.nbytes
    np.testing.assert_array_equal(vset.read(), expected)
    # Clip offsets as ClipFeatures.take gives them, one machine after the other.
    o1, o2 = taken[0][1], taken[1][1]
    np.testing.assert_array_equal(vset.clip_offsets, np.concatenate([o1, o2[1:] + o1[-1]]))
    # Paths select the same clips as indices; any order of rows can be gathered.
    by_path = VectorSet.from_clips([(f, [f.files[i] for i in p]) for f, p in zip(feats, picks)])
    order = np.random.default_rng(0).permutation(len(vset))
    np.testing.assert_array_equal(by_path.batch(order), expected[order])
    # Cached features are memory maps: rows are read from the file, not through the map.
    assert all(pos is not None for pos in vset._files)


def test_vector_set_parts_of_any_kind(numbered):
    in_ram = np.arange(32, dtype=np.float32).reshape(2, 16)
    vset = VectorSet([(numbered[100:], range(5)), (numbered, [7, 3]), (in_ram, None)])
    got = vset.batch([6, 0, 4, 5, 1, 8])
    assert got[:, 0].tolist() == [3.0, 100.0, 104.0, 7.0, 101.0, 16.0]
    assert vset._files[0] is not None and vset._files[2] is None  # a slice of a map is read from the file too
    np.testing.assert_array_equal(clip_rows(np.array([0, 2, 5, 9]), [2, 0]), [5, 6, 7, 8, 0, 1])


def test_vector_set_errors(numbered, machine_features):
    with pytest.raises(DataError, match="at least one part"):
        VectorSet([])
    with pytest.raises(DataError, match="one width and dtype"):
        VectorSet([(numbered, None), (np.zeros((3, 8), np.float32), None)])
    with pytest.raises(DataError, match=r"must lie in \[0, 1000\)"):
        VectorSet([(numbered, [0, 1000])])
    with pytest.raises(DataError, match="not one of the"):
        VectorSet.from_clips([(machine_features[0], ["nowhere.wav"])])
    with pytest.raises(IndexError, match="out of range"):
        VectorSet([(numbered, None)]).batch([1000])


def test_batches_see_every_training_row_once_per_epoch(numbered):
    vset = VectorSet([(numbered, range(0, 600)), (numbered, range(600, 1000))])
    n_train = validation_rows(len(vset), 0.1)
    assert n_train == 900  # Keras' rule: floor(n * (1 - validation_split))
    train = VectorBatches(vset, np.arange(n_train), batch_size=64, shuffle=True, seed=3)
    val = VectorBatches(vset, np.arange(n_train, len(vset)), batch_size=64, shuffle=False, seed=3)
    orders = []
    for epoch in range(3):
        train.epoch = epoch
        rows = np.concatenate([train[i][0][:, 0] for i in range(len(train))]).astype(int)
        assert len(train) == 15 and len(rows) == n_train
        assert sorted(rows.tolist()) == list(range(n_train))  # each training row once, no validation row
        orders.append(rows)
    assert not np.array_equal(orders[0], orders[1])  # reshuffled every epoch
    again = VectorBatches(vset, np.arange(n_train), batch_size=64, shuffle=True, seed=3)
    again.epoch = 1
    np.testing.assert_array_equal(np.concatenate([again[i][0][:, 0] for i in range(len(again))]), orders[1])
    val_rows = np.concatenate([val[i][0][:, 0] for i in range(len(val))]).astype(int)
    assert val_rows.tolist() == list(range(900, 1000))  # the last tenth, in order
    x, y = train[0]
    assert x is y and x.dtype == np.float32 and x.shape == (64, 16)


def test_streaming_fit_matches_the_array_fit(rng, tmp_path):
    x = rng.normal(size=(700, 16)).astype("float32")
    np.save(tmp_path / "a.npy", x[:300])
    np.save(tmp_path / "b.npy", x[300:])
    vset = VectorSet([(np.load(tmp_path / "a.npy", mmap_mode="r"), None),
                                 (np.load(tmp_path / "b.npy", mmap_mode="r"), None)])
    trainer = Trainer(in_memory_bytes=0)  # always stream
    kw = dict(epochs=3, batch_size=64, learning_rate=1e-3, validation_split=0.1, seed=5)
    # Without shuffling both read the same batches: the same training, to float rounding.
    a = trainer.fit(ARCH, trainer.init_weights(ARCH, seed=1), x, shuffle=False, **kw)
    b = trainer.fit(ARCH, trainer.init_weights(ARCH, seed=1), vset, shuffle=False, **kw)
    for u, v in zip(a.weights, b.weights):
        np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.history["val_loss"], b.history["val_loss"], rtol=1e-5)
    # Shuffled, the orders differ but the loss is of the same size; every batch is trained once per epoch.
    c = trainer.fit(ARCH, trainer.init_weights(ARCH, seed=1), x, **kw)
    d = trainer.fit(ARCH, trainer.init_weights(ARCH, seed=1), vset, **kw)
    assert set(d.history) == {"loss", "val_loss"} and len(d.history["loss"]) == 3
    assert 0.5 < d.history["loss"][-1] / c.history["loss"][-1] < 2
    steps = int(keras.ops.convert_to_numpy(trainer.model(ARCH).optimizer.iterations))
    assert steps == 3 * int(np.ceil(validation_rows(700, 0.1) / 64))
    # Reproducible, also in a fresh Trainer.
    e = Trainer(in_memory_bytes=0).fit(ARCH, trainer.init_weights(ARCH, seed=1), vset, **kw)
    assert all(np.array_equal(u, v) for u, v in zip(d.weights, e.weights)) and d.history == e.history
    assert b.streamed and d.streamed and not a.streamed


def test_small_vector_sets_train_in_memory_like_the_array(rng, tmp_path):
    """A VectorSet within in_memory_bytes is read whole: the same fit as its array, bit for bit."""
    x = rng.normal(size=(500, 16)).astype("float32")
    np.save(tmp_path / "a.npy", x[:200])
    np.save(tmp_path / "b.npy", x[200:])
    vset = VectorSet([(np.load(tmp_path / f"{n}.npy", mmap_mode="r"), None) for n in "ab"])
    kw = dict(epochs=2, batch_size=64, learning_rate=1e-3, validation_split=0.1, seed=4)
    trainer = Trainer(in_memory_bytes=vset.nbytes)
    a = trainer.fit(ARCH, trainer.init_weights(ARCH, seed=1), x, **kw)
    b = trainer.fit(ARCH, trainer.init_weights(ARCH, seed=1), vset, **kw)
    assert not b.streamed and a.history == b.history
    assert all(np.array_equal(u, v) for u, v in zip(a.weights, b.weights))
    c = Trainer(in_memory_bytes=vset.nbytes - 1).fit(ARCH, trainer.init_weights(ARCH, seed=1), vset, **kw)
    assert c.streamed and a.history != c.history


def test_streaming_fit_reads_few_pages_of_the_files(tmp_path):
    """Rows of mapped files are read with preadv: the process's RSS does not grow by the file size."""
    if not Path("/proc/self/status").is_file():
        pytest.skip("needs /proc (Linux)")

    def rss_file() -> int:
        line = next(s for s in Path("/proc/self/status").read_text().splitlines() if s.startswith("RssFile"))
        return int(line.split()[1]) * 1024

    n = 200_000  # 12.8 MB at 16 float32 per row
    np.save(tmp_path / "big.npy", np.ones((n, 16), np.float32))
    vset = VectorSet([(np.load(tmp_path / "big.npy", mmap_mode="r"), None)])
    before = rss_file()
    order = np.random.default_rng(0).permutation(n)
    for i in range(0, n, 512):
        vset.batch(order[i:i + 512])
    assert rss_file() - before < 4 * 2**20
    vset.close()


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_model_tests_pass_on_another_backend(backend):
    """tests/test_model.py and this file's streaming tests, in a subprocess with KERAS_BACKEND set."""
    if backend == keras.backend.backend():
        pytest.skip(f"{backend} runs this process's tests already")
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = {**os.environ, "KERAS_BACKEND": backend}
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_model.py",
           "tests/test_train_backends.py", "-k", "not another_backend and not fresh_command and not start_up_lines"]
    # (not fresh_command, not start_up_lines: each drops KERAS_BACKEND for its own subprocesses, which start their
    # backends themselves, so they would only repeat themselves)
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_yaml_backend_picks_the_backend_of_a_fresh_command(tiny_root, tmp_path):
    """``fit.backend: tensorflow`` in a Version YAML makes `python -m common pretrain` train on TensorFlow (not the default JAX)."""
    import json

    from conftest import write_config

    folder = tmp_path / "Version1"
    write_config(folder, tiny_root, name="make_pretrain_v1.yaml", fit={"epochs": 1, "backend": "tensorflow"},
                 data={"types": ["fan", "valve"], "ids": ["id_00"], "cache_dir": str(tmp_path / "cache")},
                 output={"model_dir": str(tmp_path / "models")})
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, "-m", "common", "pretrain", str(folder / "make_pretrain_v1.yaml")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sidecars = sorted((tmp_path / "models").glob("*.json"))
    assert [p.stem for p in sidecars] == ["fan", "valve"]
    assert {json.loads(p.read_text())["backend"] for p in sidecars} == {"tensorflow"}


def test_package_versions_import_no_backend_and_the_feature_modules_no_keras():
    """Listing versions reads package metadata (TensorFlow, JAX, torch stay unloaded); features need no Keras."""
    code = ("import json, sys\n"
            "import common.features.cache, common.data.check, common.features.extract, common.features.logmel\n"
            "from common.environment import package_versions\n"
            "versions = package_versions()\n"
            "print(json.dumps([versions['numpy'], sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') "
            "if m in sys.modules)]))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    numpy_version, loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert numpy_version == np.__version__ and loaded == []


def test_tensorflow_start_up_lines_stay_out_of_a_jax_process_and_tensorflow_computes_as_by_default(tmp_path):
    """Saving a model imports TensorFlow (Keras does, on every backend): on JAX its INFO lines stay out of the
    output; with KERAS_BACKEND=tensorflow its oneDNN setting is left as TensorFlow's default."""
    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("tensorflow") is None:
        pytest.skip("needs jax and tensorflow")
    code = ("import os, common\n"
            "from common.models.autoencoder import build_autoencoder\n"
            f"build_autoencoder(8, hidden=[4], bottleneck=2, batch_norm=False).save(r'{tmp_path / 'm.keras'}')\n"
            "import sys; print(os.environ['KERAS_BACKEND'], os.environ.get('TF_ENABLE_ONEDNN_OPTS'), 'tensorflow' in sys.modules)")
    base = {k: v for k, v in os.environ.items() if k not in ("KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS")}
    for env, expected in ((base, "jax 0 True"), ({**base, "KERAS_BACKEND": "tensorflow"}, "tensorflow None True")):
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip().splitlines()[-1] == expected
        if expected.startswith("jax"):
            assert "oneDNN" not in proc.stderr and "absl" not in proc.stderr, proc.stderr[-2000:]
