"""Load and validate a Version YAML into a frozen `Config`; the only place YAML is read.

A Version YAML is layered over ``common/defaults.yaml`` (shared defaults) and may itself be
overridden by a dict (the demo's small sizes, a notebook's parameters cell). Unknown keys, wrong
types and impossible values stop with a `ConfigError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

import yaml

from common.backend import BACKENDS, use_backend
from common.errors import ConfigError
from common.features.params import FeatureConfig
from common.io import atomic_write_text
from common.data.layouts import DATA_LAYOUTS  # data.layout: auto, or a row of `common.data.layouts.LAYOUTS`
from common.methods.catalog import BASELINE, METHOD_NAMES
from common.data.versions import VERSIONS
from common.scoring.threshold import THRESHOLD_METHODS
from common.scoring.two_bank import BANKS

DEFAULTS_PATH = Path(__file__).with_name("defaults.yaml")
BAD_FILE_POLICIES = ("error", "skip")
SELECTIONS = ("similarity", "random")  # v5: how the k source machines are chosen (`common.data.selection`)
SIMILARITIES = ("nearest", "profile")  # v5: the distance of `common.data.selection.DISTANCES` (kept here: no numpy import)
EXECUTORS = ("serial", "local", "cluster")  # where cells and pretraining jobs run (`common.experiment.executor`)
# general_sound: SoundNet's layers and poolings, as `common.models.soundnet` names them (kept here: no Keras import).
SOUNDNET_LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7", "conv8", "conv8_2")
SOUNDNET_POOLS = ("mean", "max", "std")
Budget = Union[int, str]


@dataclass(frozen=True)
class DataConfig:
    root: Path
    snr: float
    types: tuple[str, ...] | None
    ids: tuple[str, ...] | None
    channel: int
    sample_rate: int
    split: str
    split_seed: int
    cache_dir: Path
    jobs: int
    on_bad_file: str
    layout: str


@dataclass(frozen=True)
class ModelConfig:
    hidden: tuple[int, ...]
    bottleneck: int
    batch_norm: bool


@dataclass(frozen=True)
class FitConfig:
    epochs: int
    batch_size: int
    validation_split: float
    learning_rate: float
    shuffle: bool
    backend: str
    max_in_memory_mb: int
    max_frames_mb: int


@dataclass(frozen=True)
class TransferConfig:
    init_from: str
    epochs: int
    learning_rate: float
    freeze: tuple[str, ...]


@dataclass(frozen=True)
class EmbeddingConfig:
    """The machine-ID classifier of the embedding family (`common.models.classifier`) and its nearest-neighbour scoring."""

    hidden: tuple[int, ...]
    embedding_dim: int
    window: int
    head: str
    scale: float
    margin: float
    epochs: int
    batch_size: int
    learning_rate: float
    mixup: float
    vectors_per_clip: int
    k: int
    finetune_epochs: int
    finetune_learning_rate: float
    finetune_freeze: tuple[str, ...]
    finetune_replay_per_clip: int
    finetune_budget_per_clip: int
    bank: str
    smote: float


@dataclass(frozen=True)
class SpectrogramConfig:
    """The spectrogram classifier of ``spec_two_bank`` (`common.models.spec_classifier`), pretrained per source set."""

    patch_frames: int
    channels: int
    embedding_dim: int
    sub_clusters: int
    scale: float
    epochs: int
    batch_size: int
    learning_rate: float
    mixup: float
    patches_per_clip: int


@dataclass(frozen=True)
class StatisticsConfig:
    """How much source data a cell reads where a method needs it (covariances, replay, the zero-shot bank)."""

    source_clips: int


@dataclass(frozen=True)
class GeneralSoundConfig:
    """The general-sound family (`common.methods.general_sound`): SoundNet clip embeddings, nearest-neighbour scores."""

    layer: str
    pooling: str
    k: int
    seed: int


@dataclass(frozen=True)
class ExperimentConfig:
    version: str
    budgets: tuple[Budget, ...]
    seeds: tuple[int, ...]
    pretrain_seed: int
    methods: tuple[str, ...]
    sources_k: int
    selection: str
    similarity: str
    executor: str
    workers: int
    threads_per_worker: int
    address: str | None


@dataclass(frozen=True)
class EvalConfig:
    max_fpr: float
    threshold: str
    threshold_quantile: float
    false_alarm_rate: float

    def threshold_spec(self) -> tuple[str, float]:
        """``(method, level)`` for `common.scoring.threshold.fit_threshold`: the level that `threshold` uses."""
        if self.threshold == "false_alarm":
            return self.threshold, self.false_alarm_rate
        return self.threshold, self.threshold_quantile


@dataclass(frozen=True)
class OutputConfig:
    model_dir: Path
    result_dir: Path
    scratch_dir: Path


@dataclass(frozen=True)
class Config:
    data: DataConfig
    feature: FeatureConfig
    model: ModelConfig
    fit: FitConfig
    transfer: TransferConfig
    embedding: EmbeddingConfig
    spectrogram: SpectrogramConfig
    statistics: StatisticsConfig
    general_sound: GeneralSoundConfig
    experiment: ExperimentConfig
    eval: EvalConfig
    output: OutputConfig
    source: Path = field(compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML/JSON-ready values (paths as strings)."""
        out = {}
        for f in dataclasses.fields(self):
            if f.name == "source":
                continue
            out[f.name] = {k: _plain(v) for k, v in dataclasses.asdict(getattr(self, f.name)).items()}
        return out

    def to_yaml(self) -> str:
        """The resolved config as YAML text (what `save_config` writes)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


SECTIONS: dict[str, type] = {k: v for k, v in typing.get_type_hints(Config).items() if k != "source"}

MAX_SEED = 2**32 - 1  # keras.utils.set_random_seed refuses larger seeds (mid-run, after rows were computed)

# Range checks, applied once after types: (predicate, what was expected).
_CHECKS: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "data.channel": (lambda v: v >= 0, "an integer >= 0"),
    "data.sample_rate": (lambda v: v > 0, "a positive integer"),
    "data.split": (lambda v: v in ("mimii", "random"), "one of: mimii, random"),
    "data.jobs": (lambda v: v >= 1, "an integer >= 1"),
    "data.on_bad_file": (lambda v: v in BAD_FILE_POLICIES, "one of: " + ", ".join(BAD_FILE_POLICIES)),
    "data.layout": (lambda v: v in DATA_LAYOUTS, "one of: " + ", ".join(DATA_LAYOUTS)),
    "feature.n_mels": (lambda v: v > 0, "an integer > 0"),
    "feature.frames": (lambda v: v >= 1, "an integer >= 1"),
    "feature.n_fft": (lambda v: v > 0, "an integer > 0"),
    "feature.hop_length": (lambda v: v > 0, "an integer > 0"),
    "feature.power": (lambda v: v > 0, "a number > 0"),
    "model.hidden": (lambda v: all(n > 0 for n in v), "a list of positive layer sizes"),
    "model.bottleneck": (lambda v: v > 0, "an integer > 0"),
    "fit.epochs": (lambda v: v >= 1, "an integer >= 1"),
    "fit.batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "fit.validation_split": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "fit.learning_rate": (lambda v: v > 0, "a number > 0"),
    "fit.backend": (lambda v: v in BACKENDS, "one of: " + ", ".join(BACKENDS)),
    "fit.max_in_memory_mb": (lambda v: v >= 0, "an integer >= 0"),
    "fit.max_frames_mb": (lambda v: v >= 0, "an integer >= 0"),
    "transfer.epochs": (lambda v: v >= 0, "an integer >= 0"),
    "transfer.learning_rate": (lambda v: v > 0, "a number > 0"),
    "embedding.hidden": (lambda v: len(v) > 0 and all(n > 0 for n in v), "a non-empty list of positive layer sizes"),
    "embedding.embedding_dim": (lambda v: v > 0, "an integer > 0"),
    "embedding.window": (lambda v: v >= 0, "an integer >= 0 (0 = one frame vector per input)"),
    "embedding.head": (lambda v: v in ("adacos", "arcface"), "one of: adacos, arcface"),
    "embedding.scale": (lambda v: v >= 0, "a number >= 0 (0 = AdaCos' fixed scale)"),
    "embedding.margin": (lambda v: 0 <= v < 1.5, "a number in [0, 1.5) (radians)"),
    "embedding.epochs": (lambda v: v >= 1, "an integer >= 1"),
    "embedding.batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "embedding.learning_rate": (lambda v: v > 0, "a number > 0"),
    "embedding.mixup": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "embedding.vectors_per_clip": (lambda v: v >= 1, "an integer >= 1"),
    "embedding.k": (lambda v: v >= 1, "an integer >= 1"),
    "embedding.finetune_epochs": (lambda v: v >= 0, "an integer >= 0"),
    "embedding.finetune_learning_rate": (lambda v: v > 0, "a number > 0"),
    "embedding.finetune_replay_per_clip": (lambda v: v >= 1, "an integer >= 1"),
    "embedding.finetune_budget_per_clip": (lambda v: v >= 1, "an integer >= 1"),
    "embedding.bank": (lambda v: v in BANKS, "one of: " + ", ".join(BANKS)),
    "embedding.smote": (lambda v: 0 <= v <= 10, "a number in [0, 10] (0 = off)"),
    "spectrogram.patch_frames": (lambda v: v >= 4, "an integer >= 4 (the convolutions halve time twice)"),
    "spectrogram.channels": (lambda v: v >= 1, "an integer >= 1"),
    "spectrogram.embedding_dim": (lambda v: v >= 1, "an integer >= 1"),
    "spectrogram.sub_clusters": (lambda v: v >= 1, "an integer >= 1"),
    "spectrogram.scale": (lambda v: v >= 0, "a number >= 0 (0 = AdaCos' fixed scale)"),
    "spectrogram.epochs": (lambda v: v >= 1, "an integer >= 1"),
    "spectrogram.batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "spectrogram.learning_rate": (lambda v: v > 0, "a number > 0"),
    "spectrogram.mixup": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "spectrogram.patches_per_clip": (lambda v: v >= 1, "an integer >= 1"),
    "statistics.source_clips": (lambda v: v >= 1, "an integer >= 1"),
    "general_sound.layer": (lambda v: v in SOUNDNET_LAYERS, "one of: " + ", ".join(SOUNDNET_LAYERS)),
    "general_sound.pooling": (lambda v: v in SOUNDNET_POOLS, "one of: " + ", ".join(SOUNDNET_POOLS)),
    "general_sound.k": (lambda v: v >= 1, "an integer >= 1"),
    "general_sound.seed": (lambda v: 0 <= v <= MAX_SEED - len(SOUNDNET_LAYERS),
                           f"an integer >= 0 and <= {MAX_SEED - len(SOUNDNET_LAYERS)} (layer i is seeded seed + i)"),
    "experiment.version": (lambda v: v in VERSIONS, "one of: " + ", ".join(VERSIONS)),
    "experiment.budgets": (
        lambda v: len(v) > 0 and all(b == "all" or (isinstance(b, int) and b >= 1) for b in v),
        "a non-empty list of positive clip counts and/or 'all'",
    ),
    "experiment.seeds": (lambda v: len(v) > 0 and min(v) >= 0 and max(v) <= MAX_SEED,
                         f"a non-empty list of integers >= 0 and <= {MAX_SEED} (2**32 - 1, the largest seed Keras takes)"),
    "experiment.pretrain_seed": (lambda v: 0 <= v <= MAX_SEED,
                                 f"an integer >= 0 and <= {MAX_SEED} (2**32 - 1, the largest seed Keras takes)"),
    "experiment.sources_k": (lambda v: v >= 1, "an integer >= 1"),
    "experiment.selection": (lambda v: v in SELECTIONS, "one of: " + ", ".join(SELECTIONS)),
    "experiment.similarity": (lambda v: v in SIMILARITIES, "one of: " + ", ".join(SIMILARITIES)),
    "experiment.executor": (lambda v: v in EXECUTORS, "one of: " + ", ".join(EXECUTORS)),
    "experiment.workers": (lambda v: v >= 1, "an integer >= 1"),
    "experiment.threads_per_worker": (lambda v: v >= 1, "an integer >= 1"),
    "experiment.address": (lambda v: v is None or re.fullmatch(r"[a-z]+://\S+", v) is not None,
                           "null or a scheduler address such as tcp://host:8786"),
    "data.split_seed": (lambda v: v >= 0, "an integer >= 0"),
    "eval.max_fpr": (lambda v: 0 < v <= 1, "a number in (0, 1]"),
    "eval.threshold": (lambda v: v in THRESHOLD_METHODS, "one of: " + ", ".join(THRESHOLD_METHODS)),
    "eval.threshold_quantile": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "eval.false_alarm_rate": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
}


def load_config(path: str | Path, *, overrides: Mapping[str, Any] | None = None,
                select_backend: bool = True) -> Config:
    """Read a Version YAML over the shared defaults, apply `overrides`, validate, resolve paths.

    Parameters
    ----------
    path : str or Path
        The Version YAML. Relative paths inside it resolve against its own folder.
    overrides : mapping, optional
        Nested ``{section: {key: value}}`` applied last (e.g. the demo's small sizes).
    select_backend : bool
        Apply ``fit.backend``; False to read a finished run's config (its folders) whatever Keras runs on.

    Raises
    ------
    ConfigError
        Missing or malformed file, unknown or misspelled key, wrong type or out-of-range value;
        the message names the file and the key; also a ``fit.backend`` that is not installed or
        differs from the backend Keras already runs on in this process.

    Notes
    -----
    ``fit.backend`` other than ``auto`` selects the Keras backend (`common.backend.use_backend`),
    so load the config before the first import of Keras (as the notebooks and commands do).
    """
    path = Path(path).resolve()
    merged = _read_yaml(DEFAULTS_PATH)
    version_yaml = _read_yaml(path)
    if not version_yaml:
        warnings.warn(f"{path} sets nothing: every setting comes from {DEFAULTS_PATH} (add the keys that "
                      "differ, e.g. experiment.version, to silence this)", UserWarning, stacklevel=2)
    _merge(merged, version_yaml, source=path)
    if overrides:
        _merge(merged, _plain_mapping(overrides), source="overrides")
    cfg = _build(merged, path)
    _check_folders(cfg)
    _check_n_mels(cfg)
    _check_executor(cfg)
    _check_finetune_freeze(cfg)
    if not select_backend:
        return cfg
    try:
        use_backend(cfg.fit.backend)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return cfg


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
            "a config file must be UTF-8: save it again as UTF-8"
        ) from None
    try:
        raw = _load_unique_keys(text, path)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections ({', '.join(SECTIONS)}), got {type(raw).__name__}")
    return raw


def _load_unique_keys(text: str, path: Path) -> Any:
    """Parse YAML like `yaml.safe_load`, but refuse a key given twice (YAML would keep the last one silently)."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_duplicate_keys(node, path)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_duplicate_keys(node: yaml.Node, path: Path, prefix: str = "") -> None:
    """Walk the parsed node tree; a repeated key in any mapping is a `ConfigError` naming key, lines and file."""
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _refuse_duplicate_keys(item, path, f"{prefix[:-1]}[{i}].")
        return
    if not isinstance(node, yaml.MappingNode):
        return
    first_line: dict[str, int] = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        if key is not None and key != "<<":
            line = key_node.start_mark.line + 1
            if key in first_line:
                raise ConfigError(f"{path}, line {line}: duplicate key '{prefix}{key}' (first set on line "
                                  f"{first_line[key]}); YAML would silently keep the last one: remove one")
            first_line[key] = line
        _refuse_duplicate_keys(value_node, path, f"{prefix}{key}.")


def _check_folders(cfg: Config) -> None:
    """A folder key whose path (or a parent of it) is an existing file cannot be written: say so now, not mid-run."""
    folders = {"data.root": cfg.data.root, "data.cache_dir": cfg.data.cache_dir,
               **{f"output.{k}": v for k, v in dataclasses.asdict(cfg.output).items()},
               "transfer.init_from": Path(cfg.transfer.init_from)}
    for key, folder in folders.items():
        existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
        if existing is not None and not existing.is_dir():
            where = "is a file" if existing == folder else f"is below {existing}, which is a file"
            raise ConfigError(f"{cfg.source}: '{key}' must be a folder, but {folder} {where}")


def _check_n_mels(cfg: Config) -> None:
    """``feature.n_mels`` at most the STFT's frequency bins: more mel bands than bins leave bands empty (all -80 dB)."""
    f = cfg.feature
    bins = f.n_fft // 2 + 1
    if f.n_mels > bins:
        raise ConfigError(f"{cfg.source}: 'feature.n_mels' must be at most n_fft // 2 + 1 = {bins} (the frequency "
                          f"bins of feature.n_fft={f.n_fft}), got {f.n_mels}: use fewer mel bands or a larger n_fft")


def _check_executor(cfg: Config) -> None:
    """``experiment.executor: cluster`` needs the scheduler's ``experiment.address``."""
    e = cfg.experiment
    if e.executor == "cluster" and e.address is None:
        raise ConfigError(f"{cfg.source}: 'experiment.address' must be the Dask scheduler's address (e.g. "
                          "tcp://host:8786) when 'experiment.executor' is cluster, got null")


def _check_finetune_freeze(cfg: Config) -> None:
    """``embedding.finetune_freeze`` may name only layers the classifier of ``embedding.hidden`` has."""
    e = cfg.embedding
    layers = ["standardize", *(f"dense_{i + 1}" for i in range(len(e.hidden))), "embedding"]
    unknown = [name for name in e.finetune_freeze if name not in layers]
    if unknown:
        raise ConfigError(f"{cfg.source}: 'embedding.finetune_freeze' names {unknown}, which the classifier of "
                          f"embedding.hidden {list(e.hidden)} does not have; its layers: {', '.join(layers)}")


def _plain_mapping(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain_mapping(v) if isinstance(v, Mapping) else v for k, v in m.items()}


def _merge(base: dict[str, Any], update: dict[str, Any], *, source: Path | str) -> None:
    """Overlay `update` on `base` section by section; unknown sections or keys are errors."""
    for section, values in update.items():
        if section not in SECTIONS:
            raise ConfigError(f"{source}: unknown config section {section!r}{_did_you_mean(section, SECTIONS)}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping of keys, got {values!r}")
        known = {f.name for f in dataclasses.fields(SECTIONS[section])}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(
                    f"{source}: unknown config key '{section}.{key}'{_did_you_mean(key, known)}"
                )
            base.setdefault(section, {})[key] = value


def _did_you_mean(name: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _build(merged: dict[str, Any], path: Path) -> Config:
    version = merged.get("experiment", {}).get("version")
    sections = {}
    for name, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        values = {}
        for f in dataclasses.fields(cls):
            key = f"{name}.{f.name}"
            if f.name not in merged.get(name, {}):
                raise ConfigError(f"{path}: missing config key '{key}'")
            raw = merged[name][f.name]
            if isinstance(raw, str):
                raw = raw.replace("{version}", str(version))
            value = _coerce(raw, hints[f.name], key=key, path=path)
            if isinstance(value, Path):
                value = (path.parent / value).resolve()
            elif key == "transfer.init_from":
                if value == BASELINE:
                    raise ConfigError(
                        f"{path}: 'transfer.init_from' must be the folder of pretrained models, got {BASELINE!r}: "
                        f"{BASELINE} rows (random init, trained on the target budget only) are always computed "
                        "beside the pretrained methods"
                    )
                value = str((path.parent / value).resolve())
            check = _CHECKS.get(key)
            if check and not check[0](value):
                raise ConfigError(f"{path}: '{key}' must be {check[1]}, got {merged[name][f.name]!r}")
            if key == "experiment.methods":
                _check_methods(value, path)
            values[f.name] = value
        sections[name] = cls(**values)
    return Config(**sections, source=path)


def _check_methods(methods: tuple[str, ...], path: Path) -> None:
    """Refuse an empty ``experiment.methods``, an unknown or repeated name, or one without the scratch baseline."""
    valid = ", ".join(METHOD_NAMES)
    if not methods:
        raise ConfigError(f"{path}: 'experiment.methods' must be a non-empty list of methods out of: {valid}")
    for name in methods:
        if name not in METHOD_NAMES:
            raise ConfigError(f"{path}: 'experiment.methods' has unknown method {name!r}"
                              f"{_did_you_mean(name, METHOD_NAMES)}; valid methods: {valid}")
    repeated = sorted({m for m in methods if methods.count(m) > 1})
    if repeated:
        raise ConfigError(f"{path}: 'experiment.methods' lists {', '.join(repeated)} more than once: list each once")
    if BASELINE not in methods:
        raise ConfigError(f"{path}: 'experiment.methods' must include {BASELINE!r}, the baseline every result and "
                          f"report compares each method with, got {list(methods)!r}")


def _coerce(value: Any, hint: Any, *, key: str, path: Path) -> Any:
    """Check `value` against the type hint, converting lists to tuples and str to Path."""
    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{path}: '{key}' must be {expected}, got {value!r} ({type(value).__name__})")

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        if hint == Budget:
            if value == "all" or (isinstance(value, int) and not isinstance(value, bool)):
                return value
            raise bad("a positive integer or 'all'")
        return _coerce(value, options[0], key=key, path=path)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad("a list")
        return tuple(_coerce(v, args[0], key=f"{key}[{i}]", path=path) for i, v in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad("a number")
        if not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise bad("a path")
        return Path(value)
    raise TypeError(f"unsupported config type {hint!r} for {key}")


def _plain(v: Any) -> Any:
    if isinstance(v, Path):
        return str(v)
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML beside a model or result (a result without it is not one)."""
    return atomic_write_text(path, cfg.to_yaml())
