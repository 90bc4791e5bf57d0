"""Save and load the project's models (backend-neutral Keras 3) with their sidecars.

The kinds of model (autoencoder, classifier, identity) are in `common.models.kinds`. A saved model is
``NAME.keras`` and ``NAME.json``, the sidecar
(`Sidecar`, written by `write_sidecar` and read by `read_sidecar` only) recording the feature
parameters, sources, budget, seed, scorer and threshold it was trained with, so it is never paired
with other features; a model whose scorer holds arrays (a nearest-neighbour bank, Gaussians) has a
third file ``NAME.head.npz``, checked by the sha256 its sidecar records (`load_head`).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import tempfile
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import keras
import numpy as np

from common.features.params import FeatureConfig
from common.errors import ModelError
from common.io import atomic_write, atomic_write_text, file_sha256
from common.models.kinds import MODEL_KINDS, build_model, custom_objects, kind_of

# What must match between a model and the features it scores.
FEATURE_KEYS = (*FeatureConfig.names(), "channel", "sample_rate")


@dataclass(frozen=True)
class Sidecar:
    """What a saved model's JSON sidecar records; a field left None is not written (older sidecars lack some).

    Pretrained models record their source set and training (``key``, ``sources``, ``final_loss``
    ...); row models (scratch, transfer) and exported zero_shot models the results row they belong
    to (``config_hash``, ``auc`` ...); every model its ``features``, ``n_channels``,
    ``architecture`` and decision ``threshold``. Keys this version does not know are kept in
    `extra` and written back unchanged.
    """

    # What the clips it scores must match, and the sizes that rebuild it.
    features: dict[str, Any] | None = None
    n_channels: int | None = None
    architecture: dict[str, Any] | None = None
    # How clips are scored (`common.scoring.scorer`; None: mean reconstruction error) and its arrays' checksum.
    scorer: dict[str, Any] | None = None
    head_sha256: str | None = None
    model_sha256: str | None = None  # of the .keras file, written by `save_model` / `copy_model` (`model_problem`)
    # What it learned from and how.
    key: str | None = None
    data_key: str | None = None  # a pretrained model's training clips (`common.methods.base.data_identity`)
    data_root: str | None = None  # the data.root they were under (for messages)
    version: str | None = None
    source: str | None = None
    sources: list[str] | None = None
    classes: list[str] | None = None  # a classifier's classes where they are not its `sources` (DCASE attributes)
    target: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    method: str | None = None
    budget: str | None = None
    seed: int | None = None
    train_clips: list[str] | None = None
    n_train_clips: int | None = None
    n_train_vectors: int | None = None
    n_skipped_clips: int | None = None
    skipped_clips: list[str] | None = None
    pretrained: str | None = None
    pretrained_key: str | None = None
    fit: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None
    embedding: dict[str, Any] | None = None
    final_loss: float | None = None
    train_seconds: float | None = None
    streamed: bool | None = None
    # The decision threshold, fitted on the scores of its own training clips.
    train_scores: list[float] | None = None
    threshold: float | None = None
    threshold_method: str | None = None
    threshold_level: float | None = None
    n_threshold_clips: int | None = None
    # The results row of a row model (or an exported zero_shot model).
    config_hash: str | None = None
    auc: float | None = None
    pauc: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    n_eval_clips: int | None = None
    # Written by `save_model`.
    keras_version: str | None = None
    backend: str | None = None
    saved_at: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, meta: Mapping[str, Any]) -> Sidecar:
        """The sidecar of a JSON object (unknown keys go to `extra`)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in meta.items() if k in names},
                   extra={k: v for k, v in meta.items() if k not in names})

    @classmethod
    def read(cls, path: str | Path) -> Sidecar:
        """The sidecar of the model at `path` (see `read_sidecar`)."""
        return cls.from_dict(read_sidecar(path))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object written: every recorded field, then `extra`."""
        meta = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {k: v for k, v in meta.items() if v is not None} | self.extra

    def replace(self, **changes: Any) -> Sidecar:
        return dataclasses.replace(self, **changes)


def write_sidecar(path: str | Path, sidecar: Sidecar | Mapping[str, Any]) -> Path:
    """Write the sidecar of the model at `path` (``NAME.json``) atomically, as sorted, indented JSON."""
    meta = sidecar.to_dict() if isinstance(sidecar, Sidecar) else dict(sidecar)
    return atomic_write_text(Path(path).with_suffix(".json"), json.dumps(meta, indent=2, sort_keys=True))


def head_path(path: str | Path) -> Path:
    """Where the scorer arrays of the model at `path` are kept (``NAME.head.npz``)."""
    return Path(path).with_suffix(".head.npz")


def _head_bytes(head: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in head.items()})
    return buffer.getvalue()


def save_model(model: keras.Model, path: str | Path, *, sidecar: Sidecar | Mapping[str, Any],
               head: Mapping[str, np.ndarray] | None = None) -> Path:
    """Save ``path`` (``.keras``), its scorer arrays `head` (if any) and its JSON sidecar atomically.

    The sidecar is written last and records the head's sha256, so a head of another save is refused.
    """
    return _save(lambda tmp: _save_keras(model, tmp), path, sidecar=sidecar, head=head)


def save_weights(arch: Mapping[str, Any], weights: list[np.ndarray] | None, path: str | Path, *,
                 sidecar: Sidecar | Mapping[str, Any], head: Mapping[str, np.ndarray] | None = None,
                 model: Callable[[], keras.Model]) -> Path:
    """`save_model` of the model of `arch` holding `weights`; `model()` builds it, except for a weightless kind.

    A weightless kind (identity, soundnet: `common.models.kinds.ModelKind.weightless`) is the same archive for
    every row of its architecture, so it is built and saved once per process and its bytes written again.
    """
    if not MODEL_KINDS[kind_of(arch)].weightless:
        return save_model(model(), path, sidecar=sidecar, head=head)
    data = _weightless_archive(json.dumps(dict(arch), sort_keys=True))
    return _save(lambda tmp: tmp.write_bytes(data), path, sidecar=sidecar, head=head)


@functools.lru_cache(maxsize=8)
def _weightless_archive(arch_json: str) -> bytes:
    """The ``.keras`` bytes of the weightless model of an architecture (JSON), saved once per process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        _save_keras(build_model(json.loads(arch_json)), path)
        return path.read_bytes()


def _save(write: Callable[[Path], None], path: str | Path, *, sidecar: Sidecar | Mapping[str, Any],
          head: Mapping[str, np.ndarray] | None) -> Path:
    """`save_model`'s order of writes, the archive written by `write` (to a temporary path)."""
    path = Path(path).with_suffix(".keras")
    meta = sidecar.to_dict() if isinstance(sidecar, Sidecar) else dict(sidecar)
    if head is not None:
        data = _head_bytes(head)
        meta["head_sha256"] = hashlib.sha256(data).hexdigest()
    meta.setdefault("keras_version", keras.__version__)
    meta.setdefault("backend", keras.backend.backend())
    meta.setdefault("saved_at", time.strftime("%Y-%m-%dT%H:%M:%S"))
    # The old sidecar goes first: a kill between the two writes leaves a model without a sidecar
    # (refused, so retrained), never a new model paired with an old sidecar's key.
    path.with_suffix(".json").unlink(missing_ok=True)
    # Keras insists on the .keras suffix, so the temporary file keeps it.
    atomic_write(path, write)
    meta["model_sha256"] = file_sha256(path)
    if head is not None:
        atomic_write(head_path(path), lambda tmp: tmp.write_bytes(data))
    write_sidecar(path, meta)
    return path


def load_head(path: str | Path, sidecar: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The scorer arrays of the model at `path` ({} when its sidecar records none), checked by sha256.

    Raises
    ------
    ModelError
        The head file is missing or is not the one saved with this sidecar.
    """
    wanted = sidecar.get("head_sha256")
    if not wanted:
        return {}
    file = head_path(path)
    if not file.is_file():
        raise ModelError(f"model {Path(path).with_suffix('.keras')} needs its scorer arrays {file.name}, which are "
                         "missing: copy the three files NAME.keras, NAME.json and NAME.head.npz together")
    data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != wanted:
        raise ModelError(f"{file} is not the head saved with {Path(path).with_suffix('.json').name} (sha256 "
                         "differs): use the files saved together, or train the model again")
    buffer = io.BytesIO(data)
    with np.load(buffer, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def model_problem(path: str | Path) -> str | None:
    """Why the saved model at `path` is not intact (None: it is), without loading it.

    Its ``.keras`` file (and head, if any) must match the sha256 its sidecar records; a sidecar
    older than ``model_sha256`` is checked by the CRC of every member of the archive instead. A
    model that is not intact is never reused: the run that made it makes it again.
    """
    path = Path(path).with_suffix(".keras")
    try:
        meta = read_sidecar(path)
        if meta.get("model_sha256") is not None:
            if file_sha256(path) != meta["model_sha256"]:
                return f"model file {path} differs from the sha256 its sidecar records (damaged or replaced)"
        else:
            with zipfile.ZipFile(path) as archive:
                if (bad := archive.testzip()) is not None:
                    return f"model file {path} is damaged (member {bad} fails its CRC)"
        if meta.get("head_sha256") and file_sha256(head_path(path)) != meta["head_sha256"]:
            return f"{head_path(path)} differs from the sha256 the sidecar of {path.name} records"
    except (ModelError, OSError, ValueError, zipfile.BadZipFile) as exc:
        return f"model file {path} cannot be read: {exc}"
    return None


def up_to_date(path: str | Path, key: str) -> Sidecar | None:
    """The sidecar of the model at `path` when it is of `key` and intact, else None (train it; warns when damaged)."""
    path = Path(path).with_suffix(".keras")
    if not (path.is_file() and path.with_suffix(".json").is_file()) or (sidecar := Sidecar.read(path)).key != key:
        return None
    if (problem := model_problem(path)) is not None:
        warnings.warn(f"{problem}: it is trained again", stacklevel=2)
        return None
    return sidecar


def _save_keras(model: keras.Model, tmp: Path) -> None:
    keras_tmp = tmp.with_name(tmp.name + ".keras")
    try:
        model.save(keras_tmp)
        os.replace(keras_tmp, tmp)
    finally:
        keras_tmp.unlink(missing_ok=True)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The sidecar of a saved model; ModelError when the model or its sidecar is missing or not a JSON object."""
    path = Path(path).with_suffix(".keras")
    side = path.with_suffix(".json")
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if not side.is_file():
        raise ModelError(f"model {path} has no sidecar {side.name}: cannot tell which features it expects")
    try:
        meta = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"sidecar {side} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ModelError(f"sidecar {side} of model {path} must be a JSON object of the model's facts, "
                         f"got a JSON {type(meta).__name__}")
    if not isinstance(meta.get("features", {}), dict):
        raise ModelError(f"sidecar {side}: 'features' must be a JSON object, got {meta['features']!r}")
    return meta


def check_features(sidecar: Mapping[str, Any], features: Mapping[str, Any], *, path: str | Path) -> None:
    """Refuse a model whose sidecar names other feature parameters than `features`."""
    saved = sidecar.get("features", {})
    diffs = [
        f"{k}: model {saved.get(k)!r} vs requested {features.get(k)!r}"
        for k in FEATURE_KEYS
        if k in features and saved.get(k) != features[k]
    ]
    if diffs:
        raise ModelError(f"model {path} was trained on other features ({'; '.join(diffs)}); retrain it or match the config")


def load_model(path: str | Path, *, features: Mapping[str, Any] | None = None) -> tuple[keras.Model, dict[str, Any]]:
    """Load a saved model (Keras safe mode) and its sidecar, checking its features match `features`.

    The model must also fit its own sidecar (`check_model_fits_sidecar`), so a sidecar edited or
    paired with another model is refused here, naming both files, before any clip is scored.

    Raises
    ------
    ModelError
        The model or sidecar is missing or unreadable, the ``.keras`` file is not a Keras archive
        (empty, truncated, other bytes), or the model does not fit its sidecar or `features`.
    """
    path = Path(path).with_suffix(".keras")
    sidecar = read_sidecar(path)
    if features is not None:
        check_features(sidecar, features, path=path)
    _check_archive(path)
    # Every kind's classes whatever the sidecar says: a sidecar that calls a classifier an
    # autoencoder is then refused below, naming both files, not by Keras' class lookup.
    classes = custom_objects()
    try:
        model = keras.saving.load_model(path, custom_objects=classes, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises several types for a damaged archive
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ModelError(f"cannot load model {path}: {first}") from exc
    check_model_fits_sidecar(model, sidecar, path=path)
    return model, sidecar


def _check_archive(path: Path) -> None:
    """Refuse a file that is no zip archive with Keras' config inside (Keras says 'File not found' for those)."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        what = "empty, 0 bytes" if size == 0 else f"damaged or not a zip archive, {size} bytes"
        raise ModelError(f"model file {path} is not a Keras archive ({what}): {exc}; export or train it "
                         "again") from None
    if "config.json" not in names:
        raise ModelError(f"model file {path} is not a Keras archive (a zip without config.json, {size} bytes): "
                         "export or train it again")


def check_model_fits_sidecar(model: keras.Model, sidecar: Mapping[str, Any], *, path: str | Path) -> None:
    """Refuse a model whose input or layer sizes differ from what its sidecar says (features, architecture).

    Raises
    ------
    ModelError
        Naming the model file, its sidecar and both sizes.
    """
    side = Path(path).with_suffix(".json")
    arch = sidecar.get("architecture")
    kind = MODEL_KINDS.get(kind_of(arch)) if isinstance(arch, Mapping) else None  # unknown: refused below
    input_dim = kind.vector_dim(model, arch) if kind is not None else int(model.input_shape[-1])
    feats = sidecar.get("features", {})
    takes_logmel = kind is None or kind.clip_vectors is None  # a kind that reads the WAV itself takes no log-mel
    if takes_logmel and isinstance(feats.get("n_mels"), int) and isinstance(feats.get("frames"), int):
        wanted = feats["n_mels"] * feats["frames"]
        if wanted != input_dim:
            raise ModelError(f"model {path} takes vectors of {input_dim} values, but its sidecar {side} names "
                             f"features of n_mels * frames = {feats['n_mels']} * {feats['frames']} = {wanted}: "
                             "the sidecar does not belong to this model (use the sidecar saved with it)")
    if not isinstance(arch, Mapping):
        return  # older sidecars: the input check above is all there is to compare
    try:
        expected = [tuple(w.shape) for w in build_model(arch).weights]
    except (TypeError, ValueError, KeyError) as exc:
        raise ModelError(f"sidecar {side}: architecture {dict(arch)!r} cannot build a model: {exc}") from None
    got = [tuple(w.shape) for w in model.weights]
    if got != expected:
        raise ModelError(f"model {path} does not have the architecture its sidecar {side} records "
                         f"({dict(arch)}): weight shapes {got} vs {expected}")


def copy_model(src: str | Path, dst: str | Path, *, sidecar: Sidecar | Mapping[str, Any] | None = None) -> Path:
    """Copy a saved model to `dst` (``.keras``) with `sidecar` (default: the source's), atomically as `save_model`."""
    src, dst = Path(src).with_suffix(".keras"), Path(dst).with_suffix(".keras")
    meta = read_sidecar(src)  # also: ModelError when the source or its sidecar is missing
    meta = dict(meta if sidecar is None else sidecar.to_dict() if isinstance(sidecar, Sidecar) else sidecar)
    dst.with_suffix(".json").unlink(missing_ok=True)  # as in save_model: never a new model with an old sidecar
    data = src.read_bytes()
    atomic_write(dst, lambda tmp: tmp.write_bytes(data))
    meta["model_sha256"] = hashlib.sha256(data).hexdigest()
    if head_path(src).is_file():
        atomic_write(head_path(dst), lambda tmp: tmp.write_bytes(head_path(src).read_bytes()))
    write_sidecar(dst, meta)
    return dst
