"""load_config: layering over defaults, path resolution, and one clear error per kind of mistake."""

import os
import re
from pathlib import Path

import pytest

from common.config import FeatureConfig, load_config, save_config
from common.errors import ConfigError, DataError


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / "Version9" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_and_version_templates(tmp_path):
    cfg = load_config(write(tmp_path, "experiment:\n  version: v3\n"))
    assert cfg.feature.n_mels == 64 and cfg.feature.frames == 5 and cfg.feature.power == 2.0
    assert cfg.experiment.budgets == ("all",) and cfg.experiment.seeds == (0,)
    assert cfg.output.model_dir == (tmp_path / "Version9" / "model_pretrain_v3").resolve()
    assert cfg.output.result_dir.name == "result_transfer_pretrain_v3"
    assert cfg.transfer.init_from == str(cfg.output.model_dir)
    assert cfg.eval.max_fpr == 0.1
    assert cfg.eval.threshold == "percentile" and cfg.eval.threshold_spec() == ("percentile", 0.9)


def test_relative_paths_resolve_against_the_yaml_folder_not_cwd(tmp_path, monkeypatch):
    path = write(tmp_path, "data:\n  root: ../data_here\n")
    monkeypatch.chdir("/")
    assert load_config(path).data.root == (tmp_path / "data_here").resolve()
    monkeypatch.chdir(path.parent)
    assert load_config(path.name).data.root == (tmp_path / "data_here").resolve()


def test_overrides_apply_last(tmp_path):
    path = write(tmp_path, "fit:\n  epochs: 7\n")
    cfg = load_config(path, overrides={"fit": {"epochs": 2}, "experiment": {"budgets": [4, "all"]}})
    assert cfg.fit.epochs == 2 and cfg.experiment.budgets == (4, "all")


def test_feature_names_and_defaults_have_one_owner(tmp_path):
    """FeatureConfig lists the feature parameters; the sidecar keys, the cache and the numerics follow it."""
    import inspect

    from common.features.cache import feature_key
    from common.features.extract import extract
    from common.features.logmel import logmel_frames
    from common.models.saved import FEATURE_KEYS

    names = FeatureConfig.names()
    assert names == ("n_mels", "frames", "n_fft", "hop_length", "power")
    assert FEATURE_KEYS == (*names, "channel", "sample_rate")
    assert load_config(write(tmp_path, "")).feature == FeatureConfig()  # defaults.yaml agrees
    for func in (extract, logmel_frames):
        defaults = {k: p.default for k, p in inspect.signature(func).parameters.items() if k in names}
        assert defaults == FeatureConfig().kwargs(), func.__name__
    with pytest.raises(DataError, match=r"unknown feature parameter.*expected some of \['frames', 'hop_length'"):
        feature_key([], channel=0, sr=16000, n_mel=64)


def test_save_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, "model:\n  hidden: [32, 16]\n"))
    saved = save_config(cfg, tmp_path / "out" / "config.yaml")
    again = load_config(saved)
    assert again.model == cfg.model and again.feature == cfg.feature and again.data == cfg.data


@pytest.mark.parametrize(
    "text, match",
    [
        ("feature:\n  n_mel: 64\n", r"feature\.n_mel.*did you mean 'n_mels'"),
        ("featur:\n  n_mels: 64\n", r"unknown config section 'featur'.*did you mean 'feature'"),
        ("feature:\n  n_mels: sixty\n", r"'feature\.n_mels' must be an integer"),
        ("feature:\n  n_mels: 0\n", r"'feature\.n_mels' must be an integer > 0"),
        ("feature:\n  frames: 0\n", r"'feature\.frames' must be an integer >= 1"),
        ("fit:\n  epochs: -3\n", r"'fit\.epochs'"),
        ("fit:\n  epochs: 2.5\n", r"'fit\.epochs' must be an integer"),
        ("fit:\n  validation_split: 1.0\n", r"'fit\.validation_split' must be a number in \[0, 1\)"),
        ("fit:\n  shuffle: yes please\n", r"'fit\.shuffle' must be true or false"),
        ("eval:\n  max_fpr: 0\n", r"'eval\.max_fpr' must be a number in \(0, 1\]"),
        ("eval:\n  max_fpr: 1.5\n", r"'eval\.max_fpr'"),
        ("eval:\n  threshold: median\n", r"'eval\.threshold' must be one of: percentile, gamma, false_alarm"),
        ("eval:\n  threshold_quantile: 1.0\n", r"'eval\.threshold_quantile' must be a number in \(0, 1\)"),
        ("eval:\n  threshold_quantile: 0\n", r"'eval\.threshold_quantile'"),
        ("eval:\n  false_alarm_rate: 1\n", r"'eval\.false_alarm_rate' must be a number in \[0, 1\)"),
        ("eval:\n  false_alarm_rate: -0.1\n", r"'eval\.false_alarm_rate'"),
        ("eval:\n  treshold: gamma\n", r"unknown config key 'eval\.treshold'.*did you mean 'threshold'"),
        ("experiment:\n  version: v6\n", r"'experiment\.version' must be one of: v1, v2, v3, v4, v5"),
        ("experiment:\n  budgets: [few]\n", r"'experiment\.budgets\[0\]' must be a positive integer or 'all'"),
        ("experiment:\n  budgets: [0, all]\n", r"'experiment\.budgets'"),
        ("experiment:\n  budgets: []\n", r"'experiment\.budgets'"),
        ("model:\n  hidden: 64\n", r"'model\.hidden' must be a list"),
        ("data:\n  split: alphabetical\n", r"'data\.split' must be one of: mimii, random"),
        ("data:\n  channel: -1\n", r"'data\.channel'"),
        ("data:\n  on_bad_file: ignore\n", r"'data\.on_bad_file' must be one of: error, skip, got 'ignore'"),
        ("data:\n  on_bad_fle: skip\n", r"unknown config key 'data\.on_bad_fle'.*did you mean 'on_bad_file'"),
        ("data:\n  jobs: 0\n", r"'data\.jobs' must be an integer >= 1"),
        ("data:\n  sample_rate: 16k\n", r"'data\.sample_rate' must be an integer"),
        ("transfer:\n  epochs: -1\n", r"'transfer\.epochs' must be an integer >= 0"),
        ("feature:\n  power: -2\n", r"'feature\.power' must be a number > 0"),
        ("experiment:\n  seeds: 0\n", r"'experiment\.seeds' must be a list"),
        ("fit:\n  backend: tensorflw\n", r"'fit\.backend' must be one of: auto, tensorflow, jax, torch"),
        ("fit:\n  max_in_memory_mb: -1\n", r"'fit\.max_in_memory_mb' must be an integer >= 0"),
        ("fit:\n  max_frames_mb: -5\n", r"'fit\.max_frames_mb' must be an integer >= 0"),
        ("fit:\n  backnd: jax\n", r"unknown config key 'fit\.backnd'.*did you mean 'backend'"),
        ("data: [1, 2]\n", r"section 'data' must be a mapping"),
        ("- just\n- a list\n", r"expected a mapping of sections"),
        ("feature: {n_mels: [\n", r"not valid YAML"),
    ],
)
def test_mistakes_name_the_file_and_the_key(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_threshold_spec_picks_the_level_of_the_method(tmp_path):
    gamma = load_config(write(tmp_path, "eval:\n  threshold: gamma\n  threshold_quantile: 0.95\n", "g.yaml"))
    assert gamma.eval.threshold_spec() == ("gamma", 0.95)
    rate = load_config(write(tmp_path, "eval:\n  threshold: false_alarm\n  false_alarm_rate: 0.05\n", "f.yaml"))
    assert rate.eval.threshold_spec() == ("false_alarm", 0.05)


def test_on_bad_file_defaults_to_error_and_accepts_skip(tmp_path):
    with pytest.warns(UserWarning, match="sets nothing"):
        assert load_config(write(tmp_path, "", "a.yaml")).data.on_bad_file == "error"
    assert load_config(write(tmp_path, "data:\n  on_bad_file: skip\n", "b.yaml")).data.on_bad_file == "skip"


def test_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml"):
        load_config(tmp_path / "nothere.yaml")


def test_unknown_override_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match=r"overrides: unknown config key 'fit\.epoch'"):
        load_config(write(tmp_path, "fit:\n  epochs: 3\n"), overrides={"fit": {"epoch": 1}})


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_every_version_yaml_loads(n):
    repo = Path(__file__).resolve().parent.parent
    for name in (f"make_pretrain_v{n}.yaml", f"transfer_pretrain_v{n}.yaml"):
        cfg = load_config(repo / f"Version{n}" / name)
        assert cfg.experiment.version == f"v{n}"
        assert cfg.output.model_dir == repo / f"Version{n}" / f"model_pretrain_v{n}"
        assert cfg.data.root == repo / "Sample_data"


def test_backend_cannot_change_once_keras_runs(tmp_path):
    """Keras is loaded in this test process: another backend must be refused, naming the key."""
    import keras

    running = keras.backend.backend()
    other = "jax" if running != "jax" else "tensorflow"
    path = write(tmp_path, f"fit:\n  backend: {other}\n")
    with pytest.raises(ConfigError, match=rf"fit\.backend: {other} asked for, but Keras is already running on {running}"):
        load_config(path)
    assert load_config(write(tmp_path, f"fit:\n  backend: {running}\n")).fit.backend == running
    assert load_config(write(tmp_path, "fit:\n  backend: auto\n")).fit.backend == "auto"


# --------------------------------------------------------------------------------------------
# Issue 13: values and files that used to pass validation or end in a traceback


@pytest.mark.parametrize(
    "text, match",
    [
        ("experiment:\n  seeds: [0, -1]\n", r"'experiment\.seeds' must be a non-empty list of integers >= 0"),
        ("experiment:\n  pretrain_seed: -2\n", r"'experiment\.pretrain_seed' must be an integer >= 0"),
        ("data:\n  split_seed: -1\n", r"'data\.split_seed' must be an integer >= 0"),
        ("fit:\n  learning_rate: .inf\n", r"'fit\.learning_rate' must be a finite number, got inf"),
        ("fit:\n  learning_rate: .nan\n", r"'fit\.learning_rate' must be a finite number, got nan"),
        ("transfer:\n  learning_rate: -.inf\n", r"'transfer\.learning_rate' must be a finite number"),
        ("data:\n  snr: .nan\n", r"'data\.snr' must be a finite number"),
        ("eval:\n  max_fpr: .nan\n", r"'eval\.max_fpr' must be a finite number"),
        ("transfer:\n  init_from: scratch\n",
         r"'transfer\.init_from' must be the folder of pretrained models, got 'scratch': scratch rows .* always"),
        ("embedding:\n  bank: both\n", r"'embedding\.bank' must be one of: two_bank, target"),
        ("embedding:\n  smote: -0.2\n", r"'embedding\.smote' must be a number in \[0, 10\]"),
        ("fit:\n  epochs: 3\n  epochs: 4\n", r"line 3: duplicate key 'fit\.epochs' \(first set on line 2\)"),
        ("fit:\n  epochs: 3\nfit:\n  batch_size: 8\n", r"line 3: duplicate key 'fit' \(first set on line 1\)"),
    ],
)
def test_issue13_values_are_refused_naming_file_and_key(tmp_path, text, match):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=match) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_latin1_yaml_is_a_config_error_asking_for_utf8(tmp_path):
    path = write(tmp_path, "")
    path.write_bytes("# Prüfstand\nfit:\n  epochs: 3\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 0xfc at offset 4\).*must be UTF-8") as err:
        load_config(path)
    assert str(path) in str(err.value)
    path.write_bytes("# Prüfstand\nfit:\n  epochs: 3\n".encode("utf-8"))
    assert load_config(path).fit.epochs == 3


@pytest.mark.parametrize("key", ["output.result_dir", "output.model_dir", "output.scratch_dir", "data.cache_dir",
                                 "data.root"])
def test_a_folder_key_that_is_a_file_is_refused(tmp_path, key):
    section, name = key.split(".")
    taken = tmp_path / "taken.txt"
    taken.write_text("not a folder")
    path = write(tmp_path, f"{section}:\n  {name}: {taken}\n")
    with pytest.raises(ConfigError, match=rf"'{re.escape(key)}' must be a folder, but {re.escape(str(taken))} is a file"):
        load_config(path)
    below = write(tmp_path, f"{section}:\n  {name}: {taken}/sub\n", "below.yaml")
    with pytest.raises(ConfigError, match=rf"'{re.escape(key)}' must be a folder.* is below {re.escape(str(taken))}"):
        load_config(below)


def test_an_empty_yaml_says_every_setting_is_a_default(tmp_path):
    path = write(tmp_path, "# nothing set yet\n")
    with pytest.warns(UserWarning, match=re.escape(str(path)) + r" sets nothing: every setting comes from .*defaults"):
        cfg = load_config(path)
    assert cfg.fit.epochs == 50


def test_defaults_no_longer_document_init_from_scratch():
    text = (Path(__file__).resolve().parent.parent / "common" / "defaults.yaml").read_text()
    init_line = next(line for line in text.splitlines() if line.strip().startswith("init_from:"))
    assert '"scratch"' not in init_line and "folder of pretrained models" in init_line
