"""score / export on bad inputs (issue 13 items 5, 6, 11, 12, 15, 16): the documented exit code, a message naming
the file or key, never a traceback; a model that cannot be used on the recordings is exit 2, not "every file bad"."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from common.deploy import export_model, score_files
from common.errors import ModelError
from common.experiment.grid import run_grid
from common.data.names import row_model_path
from common.models.autoencoder import architecture, build_autoencoder
from common.models.saved import load_model, read_sidecar, save_model
from conftest import make_config, run_main

REPO = Path(__file__).resolve().parent.parent
FEATURES = {"n_mels": 16, "frames": 2, "n_fft": 512, "hop_length": 256, "power": 2.0, "channel": 0,
            "sample_rate": 16000}
ROW = {"target_type": "fan", "target_id": "id_00", "source": "valve", "method": "transfer", "seed": 0}


def write_model(folder: Path, name: str = "m", *, hidden=(8,), **sidecar) -> Path:
    """A real tiny AE for 16 mels x 2 frames, saved with a sidecar (defaults: FEATURES, 2 channels, threshold 1)."""
    arch = architecture(32, hidden=hidden, bottleneck=4, batch_norm=False)
    meta = {"features": dict(FEATURES), "n_channels": 2, "threshold": 1.0, "architecture": arch} | sidecar
    return save_model(build_autoencoder(32, hidden=hidden, bottleneck=4), folder / f"{name}.keras",
                      sidecar={k: v for k, v in meta.items() if v is not None})


@pytest.fixture
def clips(tiny_root, tmp_path) -> Path:
    """Three 2-channel 16 kHz clips of the tiny set in a folder of their own."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for i, p in enumerate(sorted((tiny_root / "-6_dB_fan" / "fan" / "id_00" / "normal").glob("*.wav"))[:3]):
        shutil.copy(p, folder / f"clip_{i}.wav")
    return folder


def mono_copy(clip: Path, dst: Path) -> Path:
    data, sr = sf.read(clip, dtype="int16", always_2d=True)
    sf.write(dst, data[:, 0], sr, subtype="PCM_16")
    return dst


# -- item 5: channel count recorded in the sidecar and checked -------------------------------------

def test_a_file_of_another_channel_count_is_an_error_not_a_score(tmp_path, clips):
    model = write_model(tmp_path)
    mono = mono_copy(clips / "clip_0.wav", clips / "mono.wav")
    table = score_files(model, [clips]).set_index("path")
    bad = table.loc[str(mono)]
    assert bad["decision"] == "error" and np.isnan(bad["score"])
    assert f"WAV file {mono} has 1 channel(s), but the model was trained on 2-channel recordings" in bad["error"]
    assert (table.drop(str(mono))["decision"] != "error").all()
    code, text = run_main(["score", "--model", str(model), str(clips), "--no-progress"])
    assert code == 1 and f"{mono}  error: WAV file {mono} has 1 channel(s)" in text


def test_model_without_n_channels_flags_the_files_in_the_minority(tmp_path, clips):
    model = write_model(tmp_path, n_channels=None)  # a model saved before n_channels was recorded
    mono = mono_copy(clips / "clip_0.wav", clips / "mono.wav")
    table = score_files(model, [clips]).set_index("path")
    assert "has 1 channel(s) while 3 of the 4 files given have 2" in table.loc[str(mono), "error"]
    assert (table.drop(str(mono))["decision"] != "error").all()


# -- item 15: a model that cannot be used on these recordings is exit 2, naming the model and the value -----

@pytest.mark.parametrize("side, says, has", [
    ({"features": {**FEATURES, "sample_rate": 44100}}, "sample_rate=44100", "16000 Hz"),
    ({"n_channels": 8}, "n_channels=8", "2 channel(s)"),
    ({"features": {**FEATURES, "channel": 5}}, "channel=5", "2 channel(s)"),
])
def test_every_file_failing_the_same_model_check_means_the_model_cannot_be_used(tmp_path, clips, side,
                                                                                says, has):
    model = write_model(tmp_path, **side)
    with pytest.raises(ModelError, match="cannot be used on these recordings"):
        score_files(model, [clips])
    code, text = run_main(["score", "--model", str(model), str(clips), "--no-progress"])
    assert code == 2
    assert f"error: model {model} cannot be used on these recordings: its sidecar {model.with_suffix('.json')} " \
           f"says {says}, but every file given has {has}" in text


# -- item 16: damaged model files and architecture mismatches name the model file -------------------

@pytest.mark.parametrize("damage, what", [
    (lambda raw: b"", "empty, 0 bytes"),
    (lambda raw: raw[: len(raw) // 2], "damaged or not a zip archive"),
    (lambda raw: bytes(np.random.default_rng(440).integers(0, 256, 4096, dtype=np.uint8)), "damaged"),
])
def test_a_damaged_keras_file_is_named_not_file_not_found(tmp_path, clips, damage, what):
    model = write_model(tmp_path)
    model.write_bytes(damage(model.read_bytes()))
    with pytest.raises(ModelError, match=f"model file {model} is not a Keras archive \\({what}"):
        load_model(model)
    code, text = run_main(["score", "--model", str(model), str(clips), "--no-progress"])
    assert code == 2 and f"model file {model} is not a Keras archive" in text and "File not found" not in text


def test_a_model_of_another_architecture_than_its_sidecar_is_named(tmp_path, clips):
    model = write_model(tmp_path, hidden=(8,))
    side = read_sidecar(model)
    side["architecture"]["hidden"] = [16]
    model.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(ModelError, match=f"model {model} does not have the architecture its sidecar"):
        score_files(model, [clips])


# -- item 11: sidecars that are not the model's, and output paths of the wrong kind ----------------

def test_a_sidecar_that_is_a_json_list_is_a_model_error(tmp_path, clips):
    model = write_model(tmp_path)
    model.with_suffix(".json").write_text("[1, 2, 3]")
    code, text = run_main(["score", "--model", str(model), str(clips), "--no-progress"])
    assert code == 2 and f"error: sidecar {model.with_suffix('.json')} of model {model} must be a JSON object" in text


def test_a_sidecar_naming_other_features_than_the_model_input_is_refused_up_front(tmp_path, clips):
    model = write_model(tmp_path, features={**FEATURES, "n_mels": 20})  # 20 x 2 = 40, the model takes 32
    code, text = run_main(["score", "--model", str(model), str(clips), "--no-progress"])
    assert code == 2
    assert f"model {model} takes vectors of 32 values, but its sidecar {model.with_suffix('.json')} names " \
           "features of n_mels * frames = 20 * 2 = 40" in text
    assert "clip_0.wav" not in text  # refused before any file is read


def test_sidecar_feature_parameters_of_the_wrong_type_are_named(tmp_path, clips):
    model = write_model(tmp_path, features={**FEATURES, "hop_length": "256"})
    code, text = run_main(["score", "--model", str(model), str(clips), "--no-progress"])
    assert code == 2 and f"error: sidecar {model.with_suffix('.json')} has invalid feature parameters " \
                         "[\"hop_length='256'\"]" in text


def test_score_takes_upper_case_clips_and_leaves_out_macos_files_with_a_warning(tmp_path, clips):
    model = write_model(tmp_path)
    (clips / "clip_0.wav").rename(clips / "CLIP_0.WAV")
    (clips / "._clip_1.wav").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    code, text = run_main(["score", "--model", str(model), str(clips), "--no-progress"])
    assert code == 0 and f"{clips / 'CLIP_0.WAV'}  " in text and "3 clips flagged" in text
    assert f"warning: left out 1 file(s) named like clips that are not (hidden, e.g. macOS ._* files): " \
           f"{clips / '._clip_1.wav'}" in text


def test_score_csv_that_is_a_folder_is_refused_before_scoring(tmp_path, clips):
    model = write_model(tmp_path)
    folder = tmp_path / "out"
    folder.mkdir()
    code, text = run_main(["score", "--model", str(model), str(clips), "--csv", str(folder), "--no-progress"])
    assert code == 2 and f"error: --csv {folder} is a folder" in text
    assert "clip_0.wav" not in text  # nothing was scored


# -- export: a real tiny experiment --------------------------------------------------------------

@pytest.fixture(scope="module")
def run(pipeline, tmp_path_factory):
    """fan/id_00 and valve/id_00: v1 pretrained and transferred with budgets 2 and all (two rows per method).

    The shared budget-all run, copied and extended by budget 2 on its pretrained models; the YAML names its
    result folder relatively, so a copy of ``Version1`` exports from its own results.
    """
    shared = pipeline(ids=("id_00",), budgets=("all",))
    repo = tmp_path_factory.mktemp("deploy_errors")
    folder = repo / "Version1"
    shutil.copytree(shared.cfg.output.result_dir, folder / "results")
    shutil.copytree(shared.scratch, folder / "scratch")
    cfg = make_config(folder, shared.cfg.data.root, name="transfer_pretrain_v1.yaml",
                      data={"ids": ["id_00"], "cache_dir": str(shared.cache)},
                      output={"model_dir": str(shared.models), "result_dir": "results", "scratch_dir": "scratch"})
    run_grid(cfg, progress=False)
    return repo, cfg


@pytest.fixture
def repo(run, tmp_path):
    """A copy of the experiment (results, models) to damage; the data and caches stay shared."""
    src, cfg = run
    dst = tmp_path / "repo"
    shutil.copytree(src / "Version1", dst / "Version1")
    return dst, cfg.output.result_dir.relative_to(src)


def set_aucs(result_dir: Path, aucs: dict[str, list[float]]) -> pd.DataFrame:
    """Give the fan/id_00 rows of each method the AUCs listed (in file order), in results.csv and row sidecars."""
    table = pd.read_csv(result_dir / "results.csv", dtype={"budget": str}, keep_default_na=False)
    for method, values in aucs.items():
        index = table.index[(table["target_type"] == "fan") & (table["target_id"] == "id_00")
                            & (table["method"] == method)]
        assert len(index) == len(values), (method, len(index))
        table.loc[index, "auc"] = values
        for i, auc in zip(index, values):
            if method != "zero_shot":
                path = row_model_path(result_dir, table.loc[i].to_dict()).with_suffix(".json")
                path.write_text(json.dumps(json.loads(path.read_text()) | {"auc": auc}))
    table.to_csv(result_dir / "results.csv", index=False)
    return table


def test_export_warns_when_the_chosen_model_is_at_or_below_chance(repo, tmp_path):
    root, rel = repo
    set_aucs(root / rel, {"transfer": [0.41, 0.35], "scratch": [0.8, 0.7], "zero_shot": [0.6, 0.6]})
    out = tmp_path / "deploy"
    code, text = run_main(["export", "--version", "1", "--target", "fan/id_00", "--out", str(out),
                              "--repo", str(root)])
    assert code == 0
    warning = "the chosen transfer model of fan/id_00 has AUC 0.410, at or below chance (0.5)"
    better = "scratch has the best mean AUC for fan/id_00"
    assert f"warning: {warning}" in text and better in text and "(0.750 over 2 row(s))" in text
    card = (out / "MODEL_CARD.md").read_text()
    assert warning in card and better in card and "--method scratch" in card
    assert "Picking the best of N = 2 row(s) by evaluation AUC overstates that AUC" in card
    # A model above chance: no warning, but the card still says the selection overstates its AUC.
    code, text = run_main(["export", "--version", "1", "--target", "fan/id_00", "--method", "scratch",
                              "--out", str(tmp_path / "scratch"), "--repo", str(root)])
    assert code == 0 and "warning" not in text
    card = (tmp_path / "scratch" / "MODEL_CARD.md").read_text()
    assert "chance" not in card and "best of N = 2 row(s) by evaluation AUC overstates" in card


def test_export_carries_the_channel_count_into_sidecar_and_card(run, repo, tmp_path):
    root, _ = repo
    for method in ("zero_shot", "transfer"):  # zero_shot builds its sidecar from the pretrained one
        dst = export_model(root, version=1, target="fan/id_00", method=method, out=tmp_path / method)
        assert read_sidecar(dst)["n_channels"] == 2, method
        card = (tmp_path / method / "MODEL_CARD.md").read_text()
        assert "| recordings | 2 channel(s) per WAV file" in card and "at 16000 Hz with 2 channels" in card


def test_export_out_that_is_a_file_is_named(repo, tmp_path):
    root, _ = repo
    target = tmp_path / "model.keras"
    target.write_text("not a folder")
    code, text = run_main(["export", "--version", "1", "--target", "fan/id_00", "--out", str(target),
                              "--repo", str(root)])
    assert code == 2 and f"error: export folder {target} (--out) is a file" in text
    assert target.read_text() == "not a folder"


def test_transfer_names_the_pretrained_file_whose_architecture_differs_from_its_sidecar(run, repo, tmp_path):
    root, rel = repo
    _, cfg = run
    models = tmp_path / "models"
    shutil.copytree(cfg.output.model_dir, models)
    side = read_sidecar(models / "valve.keras")
    other = build_autoencoder(32, hidden=[8], bottleneck=4)  # the sidecar says hidden [16]
    save_model(other, models / "valve.keras", sidecar=side)
    stale = make_config(tmp_path, cfg.data.root, data={"ids": ["id_00"], "cache_dir": str(cfg.data.cache_dir)},
                        output={"scratch_dir": str(cfg.output.scratch_dir), "result_dir": str(tmp_path / "r")},
                        transfer={"init_from": str(models)})
    with pytest.raises(ModelError, match=f"model {models / 'valve.keras'} does not have the architecture"):
        run_grid(stale, progress=False)


def test_export_zero_shot_of_a_tensorflow_result_runs_on_the_default_backend(repo, tmp_path):
    root, rel = repo
    config = root / rel / "config.yaml"
    config.write_text(config.read_text().replace("backend: auto", "backend: tensorflow"))
    assert "backend: tensorflow" in config.read_text()
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-m", "common", "export", "--version", "1", "--target", "fan/id_00",
                           "--method", "zero_shot", "--out", str(tmp_path / "zero"), "--repo", str(root)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert read_sidecar(next((tmp_path / "zero").glob("*.keras")))["method"] == "zero_shot"
