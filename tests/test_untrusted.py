"""Issue 27, silently wrong: a clip, cache entry, store entry or pretrained model that is not what the run
believes it is never reaches a result row (overflowing clips, stale pretrained models, mixed settings,
checksummed scratch store and feature cache, results.csv without its store, damaged row models)."""

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from common.errors import AudioError
from common.experiment.grid import run_grid
from common.data.names import row_model_path
from common.experiment.pretrain import pretrain
from conftest import make_config, run_main, write_config

ROW = {"target_type": "fan", "target_id": "id_00", "source": "none", "method": "scratch", "budget": "all", "seed": 0}


def without_seconds(path: Path) -> str:
    """A results.csv as text, less the wall-clock column."""
    return pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns="train_seconds").to_csv(index=False)


def machine_copy(tiny_root: Path, root: Path, *, ids=("id_00",), types=("fan", "valve")) -> Path:
    """A writable copy of the chosen machines of the tiny set under `root`."""
    for t in types:
        for i in ids:
            rel = Path(f"-6_dB_{t}") / t / i
            shutil.copytree(tiny_root / rel, root / rel)
    return root


def overflowing(path: Path, *, spike: float | None = 3e38, scale: float = 1.0) -> Path:
    """Rewrite `path` as a float WAV whose channel 0 has one sample `spike` (a flipped exponent bit), times `scale`."""
    data, sr = sf.read(path, dtype="float32", always_2d=True)
    data = data * np.float32(scale)
    if spike is not None:
        data[500, 0] = spike
    sf.write(path, data, sr, subtype="FLOAT")
    return path


# --------------------------------------------------------------------------------------------
# A15-A18: a float clip with an overflowing sample is a bad clip, named, everywhere


def test_check_data_names_a_clip_with_an_overflowing_sample(tiny_root, tmp_path):
    """A15: check-data passed a float WAV with one 3e38 sample."""
    root = machine_copy(tiny_root, tmp_path / "data", types=("fan",))
    spike = overflowing(root / "-6_dB_fan" / "fan" / "id_00" / "abnormal" / "00000001.wav")
    code, text = run_main(["check-data", str(root), "--no-progress"])
    assert code == 1, text
    assert re.search(re.escape(str(spike)) + r" has 1 sample\(s\) of magnitude up to 3e\+38, beyond 2\.15e\+09", text)


@pytest.fixture(scope="module")
def row_models(tiny_root, tmp_path_factory):
    """The tiny set pretrained and transferred (v1, budget all) with an autoencoder, a log-mel and an embedding kNN."""
    folder = tmp_path_factory.mktemp("row_models")
    methods = ["scratch", "logmel_knn", "embed_knn"]
    cfg = make_config(folder, tiny_root, experiment={"budgets": ["all"], "methods": methods},
                      embedding={"hidden": [16], "embedding_dim": 8, "window": 8, "epochs": 2,
                                 "finetune_freeze": ["dense_1"]})
    pretrain(cfg, progress=False)
    run_grid(cfg, progress=False)
    return cfg


@pytest.mark.parametrize("method, source", [("scratch", "none"), ("logmel_knn", "none"), ("embed_knn", "valve")])
def test_score_refuses_a_clip_with_an_overflowing_sample_naming_it(row_models, tmp_path, method, source):
    """A15 (autoencoder: was 'nan  normal', exit 0) and A16 (an embedding kNN: was a sklearn traceback)."""
    model = row_model_path(row_models.output.result_dir, ROW | {"method": method, "source": source})
    good = Path(shutil.copy(row_models.data.root / "-6_dB_fan" / "fan" / "id_00" / "abnormal" / "00000001.wav",
                            tmp_path / "good.wav"))
    spike = overflowing(Path(shutil.copy(good, tmp_path / "spike.wav")))
    code, text = run_main(["score", "--model", str(model), str(spike), str(good), "--no-progress"])
    assert code == 1, text
    assert "Traceback" not in text and "  nan  " not in text
    assert re.search(re.escape(f"{spike}  error: ") + r".*beyond 2\.15e\+09", text), text
    assert re.search(re.escape(str(good)) + r"  [0-9.e+-]+  (normal|anomalous)", text), text


def test_transfer_names_an_overflowing_eval_clip_or_skips_it(tiny_root, tmp_path):
    """A17: the grid said '1 non-finite scores for fan/id_00', naming no file."""
    root = machine_copy(tiny_root, tmp_path / "data")
    spike = overflowing(root / "-6_dB_fan" / "fan" / "id_00" / "abnormal" / "00000001.wav")
    cfg = make_config(tmp_path / "err", root, experiment={"budgets": ["all"]})
    pretrain(make_config(tmp_path / "err", root, experiment={"budgets": ["all"]}, data={"on_bad_file": "skip"}),
             progress=False)
    with pytest.raises(AudioError, match=re.escape(str(spike)) + r" has 1 sample\(s\) of magnitude"):
        run_grid(cfg, progress=False)
    skip = make_config(tmp_path / "err", root, name="skip.yaml", experiment={"budgets": ["all"]},
                       data={"on_bad_file": "skip"}, output={"result_dir": str(tmp_path / "skip")})
    with pytest.warns(UserWarning, match=r"left out 1 bad clip"):
        results = run_grid(skip, progress=False)
    assert np.isfinite(results["auc"]).all()
    assert (results.loc[results["target_type"] == "fan", "n_skipped_clips"] == 1).all()
    assert pd.read_csv(tmp_path / "skip" / "skipped.csv")["path"].tolist() == [str(spike)]
    scores = pd.read_csv(tmp_path / "skip" / "scores.csv")
    assert str(spike) not in set(scores["path"]) and np.isfinite(scores["score"]).all()


def test_pretrain_names_a_training_clip_scaled_beyond_any_full_scale(tiny_root, tmp_path):
    """A18: a float clip x1e25 among the training clips: '5 non-finite training scores', no file named."""
    root = machine_copy(tiny_root, tmp_path / "data")
    loud = overflowing(root / "-6_dB_valve" / "valve" / "id_00" / "normal" / "00000006.wav", spike=None, scale=1e25)
    code, text = run_main(["pretrain", str(make_config(tmp_path, root).source)])
    assert code == 2, text
    assert re.search(re.escape(str(loud)) + r" has \d+ sample\(s\) of magnitude up to [0-9.]+e\+2\d", text), text


def test_features_that_overflow_anyway_are_refused_naming_the_clip(tiny_root, tmp_path):
    """The extraction's own check: samples within range whose log-mel still overflows (a large feature.power)."""
    from common.features.extract import extract

    clip = overflowing(Path(shutil.copy(tiny_root / "-6_dB_fan" / "fan" / "id_00" / "normal" / "00000000.wav",
                                        tmp_path / "loud.wav")), spike=2e9)
    with pytest.raises(AudioError, match=re.escape(str(clip))
                       + r" gives non-finite log-mel features \(feature\.power=8"):
        extract([clip], channel=0, sr=16000, jobs=1, progress=False, n_mels=16, frames=2, n_fft=512, hop_length=256,
                power=8.0)


# --------------------------------------------------------------------------------------------
# F22, B31, B41: transfer starts only from models pretrained on this run's clips, sizes and backend


@pytest.fixture
def pretrained(tiny_root, tmp_path):
    """fan/id_00 and valve/id_00 (a copy), pretrained for v1 with budget all: (root, its config)."""
    root = machine_copy(tiny_root, tmp_path / "data")
    cfg = make_config(tmp_path / "a", root, experiment={"budgets": ["all"]})
    pretrain(cfg, progress=False)
    return root, cfg


def test_transfer_refuses_models_pretrained_on_another_root_with_the_same_machines(pretrained, tmp_path):
    """F22: a regenerated root (synth seed 11) with the same machine names used the models of the first, exit 0."""
    from common.data.synth import generate_dataset
    from conftest import TINY_DATA

    root, cfg = pretrained
    alt = tmp_path / "data_alt"
    generate_dataset(alt, progress=False, **(TINY_DATA | {"seed": 11, "ids": ("id_00",)}))
    other = make_config(tmp_path / "b", alt, experiment={"budgets": ["all"]},
                        transfer={"init_from": str(cfg.output.model_dir)})
    code, text = run_main(["transfer", str(other.source)])
    assert code == 2, text
    assert re.search(r"pretrained model \S+/models/(fan|valve)\.keras was trained on other clips than the source set "
                     r"(fan|valve) of this run: 5 clips under data\.root " + re.escape(str(root))
                     + r", while this run's are 5 clips "
                     r"under data\.root " + re.escape(str(alt)) + r": run `python -m common pretrain`", text), text
    assert not (tmp_path / "b" / "results" / "results.csv").exists()
    made = pretrain(make_config(tmp_path / "b", alt, experiment={"budgets": ["all"]},
                                output={"model_dir": str(cfg.output.model_dir)}), progress=False)
    assert all(p.trained for p in made)  # pretrain agrees: they were stale
    assert run_main(["transfer", str(other.source)])[0] == 0


def test_transfer_refuses_models_whose_training_clips_changed_in_place(pretrained):
    """F22 on one root: a source training clip rewritten since pretrain (pretrain would retrain)."""
    root, cfg = pretrained
    clip = root / "-6_dB_valve" / "valve" / "id_00" / "normal" / "00000007.wav"
    data, sr = sf.read(clip, dtype="int16", always_2d=True)
    sf.write(clip, data[::-1], sr, subtype="PCM_16")
    with pytest.raises(Exception, match=r"valve\.keras was trained on other clips .* under the same data\.root, whose "
                                        r"clips changed since"):
        run_grid(cfg, progress=False)


def test_an_older_pretrained_model_gets_the_key_of_its_clips_without_retraining(pretrained):
    """F22: a sidecar saved before the key existed is refused by transfer until pretrain adds it (no retraining)."""
    _, cfg = pretrained
    side = cfg.output.model_dir / "fan.json"
    meta = json.loads(side.read_text())
    weights = (cfg.output.model_dir / "fan.keras").read_bytes()
    del meta["data_key"], meta["data_root"]
    side.write_text(json.dumps(meta))
    with pytest.raises(Exception, match=r"fan\.keras records no key of its training clips .* again \(it adds the key "
                                        r"without retraining"):
        run_grid(cfg, progress=False)
    assert not any(p.trained for p in pretrain(cfg, progress=False))
    assert (cfg.output.model_dir / "fan.keras").read_bytes() == weights
    assert json.loads(side.read_text())["data_key"]
    assert np.isfinite(run_grid(cfg, progress=False)["auc"]).all()


def test_transfer_refuses_model_sizes_other_than_the_pretrained_models(pretrained, tmp_path):
    """B31: model.hidden [] in the transfer YAML trained scratch with [] but fine-tuned the pretrained [16]."""
    root, cfg = pretrained
    other = make_config(tmp_path / "a", root, name="hidden.yaml", experiment={"budgets": ["all"]},
                        model={"hidden": []}, output={"result_dir": str(tmp_path / "hidden")})
    code, text = run_main(["transfer", str(other.source)])
    assert code == 2, text
    assert re.escape(str(other.source)) and re.search(
        re.escape(f"{other.source}: 'model.hidden' is [], but the pretrained model ") + r"\S+\.keras has \[16\]", text)
    assert not (tmp_path / "hidden" / "results.csv").exists()


def test_transfer_refuses_models_pretrained_on_another_backend(pretrained, tmp_path):
    """B41: fit.backend tensorflow fine-tuned JAX-pretrained models silently (here: TF-pretrained, JAX transfer)."""
    import subprocess
    import sys

    import keras

    root, cfg = pretrained
    tf_yaml = write_config(tmp_path / "tf", root, experiment={"budgets": ["all"]}, fit={"backend": "tensorflow"})
    done = subprocess.run([sys.executable, "-m", "common", "pretrain", str(tf_yaml)], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parent.parent, timeout=600)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "tf" / "models" / "fan.json").read_text())["backend"] == "tensorflow"
    running = keras.backend.backend()
    assert running != "tensorflow"
    other = make_config(tmp_path / "tf", root, name="here.yaml", experiment={"budgets": ["all"]},
                        output={"result_dir": str(tmp_path / "mixed")})
    code, text = run_main(["transfer", str(other.source)])
    assert code == 2, text
    assert re.search(re.escape(f"{other.source}: 'fit.backend' runs this transfer on {running}, but the pretrained "
                               "model ") + r"\S+\.keras was trained on tensorflow", text), text


# --------------------------------------------------------------------------------------------
# H12, H13: the scratch store is checksummed like the result store


def scratch_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The scratch rows of a results table, less the wall-clock column, indexed by target."""
    rows = results[results["method"] == "scratch"].drop(columns="train_seconds")
    return rows.set_index(["target_type", "target_id", "budget", "seed"]).sort_index()


def entries(scratch: Path) -> list[Path]:
    return sorted(p for p in scratch.glob("*.json") if not p.name.endswith(".model.json"))


@pytest.mark.parametrize("damage", ["edited", "truncated", "no_checksum", "other_model", "other_model_and_sidecar"])
def test_a_damaged_scratch_store_entry_is_recomputed_with_a_warning(pretrained, tmp_path, damage):
    """H13: an edited entry became the scratch row (AUC 1.0) of every version; H12: a truncated one a traceback."""
    root, cfg = pretrained
    first = run_grid(cfg, progress=False)
    entry = entries(cfg.output.scratch_dir)[0]
    doc = json.loads(entry.read_text())
    if damage == "edited":
        doc["scores"] = [0.0] * 3 + [9.0] * (len(doc["scores"]) - 3)
        doc["auc"] = 1.0
        entry.write_text(json.dumps(doc))
    elif damage == "truncated":
        entry.write_text(entry.read_text()[:50])
    elif damage == "no_checksum":
        del doc["sha256"]
        entry.write_text(json.dumps(doc))
    else:  # the model of another entry; with its sidecar, the file matches the sidecar but not this entry's weights
        other = entries(cfg.output.scratch_dir)[1].with_suffix(".model.keras")
        shutil.copy(other, entry.with_suffix(".model.keras"))
        if damage == "other_model_and_sidecar":
            shutil.copy(other.with_suffix(".json"), entry.with_suffix(".model.json"))
    again = make_config(tmp_path / "a", root, name="again.yaml", experiment={"budgets": ["all"]},
                        output={"result_dir": str(tmp_path / "again")})
    code, text = run_main(["transfer", str(again.source)])
    assert code == 0, text
    assert f"scratch store entry {entry} (output.scratch_dir) is damaged" in text and "Traceback" not in text
    second = pd.read_csv(tmp_path / "again" / "results.csv", dtype={"budget": str})
    pd.testing.assert_frame_equal(scratch_rows(second).drop(columns="config_hash"),
                                  scratch_rows(first.astype({"budget": str})).drop(columns="config_hash"),
                                  check_exact=True, check_dtype=False)
    assert json.loads(entry.read_text())["sha256"]  # rewritten, intact
    code, text = run_main(["transfer", str(again.source)])
    assert code == 0 and "is damaged" not in text


# --------------------------------------------------------------------------------------------
# H14: the feature cache (and the remembered check-data scans) serve only what their checksums match


def test_a_feature_cache_entry_changed_in_place_is_extracted_again_with_a_warning(tiny_root, tmp_path):
    """H14: an entry whose content changed but whose size did not was served (only its shapes were checked)."""
    from common.features.cache import cached_features, feature_key
    from common.features.extract import extract

    clips = sorted((tiny_root / "-6_dB_fan" / "fan" / "id_00" / "normal").glob("*.wav"))[:3]
    cache = tmp_path / "cache"
    first = np.array(cached_features(clips, cache_dir=cache, progress=False, jobs=1).vectors)
    entry = cache / f"{feature_key(clips, channel=0, sr=16000)}.vectors.npy"
    size = entry.stat().st_size
    changed = np.load(entry, mmap_mode="r+")
    changed[:] = 1.0
    changed.flush()
    del changed
    assert entry.stat().st_size == size
    with pytest.warns(UserWarning, match=re.escape(str(entry.with_name(entry.name.replace(".vectors.npy", ".json"))))
                      + r" \(data\.cache_dir\) has a vectors\.npy file that differs from its sha256"):
        served = cached_features(clips, cache_dir=cache, progress=False, jobs=1)
    np.testing.assert_array_equal(served.vectors, first)
    np.testing.assert_array_equal(served.vectors, extract(clips, progress=False, jobs=1)[0])


def test_a_changed_feature_cache_entry_never_reaches_a_result_row(pretrained, tmp_path):
    """H14 end to end: the repro's 27 of 108 AUCs moved without a warning."""
    root, cfg = pretrained
    first = run_grid(cfg, progress=False)
    for entry in cfg.data.cache_dir.glob("*.vectors.npy"):
        changed = np.load(entry, mmap_mode="r+")
        changed[:] = 1.0
        changed.flush()
        del changed
    again = make_config(tmp_path / "a", root, name="again.yaml", experiment={"budgets": ["all"]},
                        output={"result_dir": str(tmp_path / "again"), "scratch_dir": str(tmp_path / "scratch2")})
    code, text = run_main(["transfer", str(again.source)])
    assert code == 0, text
    assert "differs from its sha256 (changed since it was written)" in text
    second = pd.read_csv(tmp_path / "again" / "results.csv", dtype={"budget": str})
    cols = ["target_type", "target_id", "source", "method", "auc", "pauc", "threshold"]
    pd.testing.assert_frame_equal(second[cols], first.astype({"budget": str})[cols], check_exact=True)


def test_an_edited_remembered_scan_is_checked_again(tiny_root, tmp_path):
    """The check-data scan cache is a cache entry too: a bad clip marked good by hand is found again."""
    root = machine_copy(tiny_root, tmp_path / "data", types=("fan",))
    spike = overflowing(root / "-6_dB_fan" / "fan" / "id_00" / "abnormal" / "00000001.wav")
    cfg = make_config(tmp_path, root, data={"on_bad_file": "skip"})
    from common.data.dataset import check_machine
    from common.data.mimii import find_machines

    machine = find_machines(root)[0]
    with pytest.warns(UserWarning, match="left out 1 bad clip"):
        assert list(check_machine(cfg, machine).skipped) == [str(spike)]
    (remembered,) = (cfg.data.cache_dir / "checks").glob("*.json")
    doc = json.loads(remembered.read_text())
    doc["files"] = [f | {"problem": None} for f in doc["files"]]
    remembered.write_text(json.dumps(doc))
    with pytest.warns(UserWarning, match=re.escape(str(remembered)) + r" \(data\.cache_dir\) differs from its sha256"):
        assert list(check_machine(cfg, machine).skipped) == [str(spike)]


# --------------------------------------------------------------------------------------------
# H7: a result folder without its store imports only the rows it can verify, and keeps the files as they were


@pytest.mark.parametrize("method, column", [("scratch", "auc"), ("zero_shot", "pauc"), ("transfer", "f1")])
def test_without_its_store_a_hand_edited_row_is_recomputed_and_the_old_files_kept(pretrained, method, column):
    """H7: with .store/ deleted, the next run re-imported results.csv as trusted, hand edits included."""
    _, cfg = pretrained
    run_grid(cfg, progress=False)
    out = cfg.output.result_dir
    before = without_seconds(out / "results.csv")
    shutil.rmtree(out / ".store")
    table = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    edited = table.index[table["method"] == method][0]
    table.loc[edited, column] = "0.9"
    table.to_csv(out / "results.csv", index=False)
    edited_text = (out / "results.csv").read_text()
    code, text = run_main(["transfer", str(cfg.source)])
    assert code == 0, text
    assert re.search(rf"{re.escape(str(out))} has no result store .* 1 of its 6 row\(s\) in results\.csv cannot be "
                     rf"verified \(e\.g\. fan/id_00/\w+/{method}/all/0: its {column} differ", text), text
    assert without_seconds(out / "results.csv") == before
    (kept,) = (out / ".store" / "legacy").iterdir()
    assert (kept / "results.csv").read_text() == edited_text  # nothing the user had is lost
    assert run_main(["transfer", str(cfg.source)])[0] == 0 and (out / "results.csv").read_text() != edited_text


def test_without_its_store_rows_their_model_sidecars_disagree_with_are_not_trusted(pretrained):
    """H7: a row is imported only when the sidecar of its model, written by the run beside it, vouches for it."""
    _, cfg = pretrained
    run_grid(cfg, progress=False)
    out = cfg.output.result_dir
    before = without_seconds(out / "results.csv")
    shutil.rmtree(out / ".store")
    for side in (out / "models").glob("*/*.json"):
        meta = json.loads(side.read_text())
        meta["auc"] = 0.25  # a sidecar that disagrees with the row
        side.write_text(json.dumps(meta))
    with pytest.warns(UserWarning, match=r"4 of its 6 row\(s\) in results\.csv cannot be verified .*differ from those "
                                         r"the sidecar of its model"):
        run_grid(cfg, progress=False)
    assert without_seconds(out / "results.csv") == before


# --------------------------------------------------------------------------------------------
# F21: a damaged model is made again by a rerun (export's advice), never kept


@pytest.mark.parametrize("damage", ["garbage", "other_model"])
def test_a_damaged_row_model_is_recomputed_by_a_rerun(pretrained, damage):
    """F21: the rerun kept a damaged row model (only a missing one was recomputed); export said 'train it again'."""
    from common.models.saved import load_model

    _, cfg = pretrained
    run_grid(cfg, progress=False)
    out = cfg.output.result_dir
    before = without_seconds(out / "results.csv")
    model = row_model_path(out, ROW | {"method": "transfer", "source": "valve"})
    if damage == "garbage":
        model.write_bytes(b"\0" * model.stat().st_size)
    else:
        shutil.copy(row_model_path(out, ROW), model)  # another row's (valid) model under this row's sidecar
    code, text = run_main(["transfer", str(cfg.source)])
    assert code == 0, text
    assert re.search(r"1 row\(s\) of \S+ have no model file of their run under \S+ \(or a damaged one\) and are "
                     r"recomputed", text), text
    assert load_model(model)[1]["target"] == "fan/id_00" and without_seconds(out / "results.csv") == before
    code, text = run_main(["score", "--model", str(model), str(next((cfg.data.root).rglob("*.wav"))), "--no-progress"])
    assert code == 0, text


def test_a_damaged_pretrained_model_is_trained_again(pretrained):
    """F21 for pretrained models: pretrain kept a damaged model whose key matched, so transfer could never load it."""
    _, cfg = pretrained
    model = cfg.output.model_dir / "fan.keras"
    model.write_bytes(model.read_bytes()[:-100] + b"\0" * 100)
    with pytest.warns(UserWarning, match=re.escape(str(model)) + r" differs from the sha256 its sidecar records .*: "
                                         r"it is trained again"):
        made = pretrain(cfg, progress=False)
    assert [p.trained for p in made if p.path.name == "fan.keras"] == [True]
    assert np.isfinite(run_grid(cfg, progress=False)["auc"]).all()


# --------------------------------------------------------------------------------------------
# C12: executor local gives the serial run's bits (every worker computes with the driver's pool of threads)

BASELINE_SIZES = {"feature": {"n_mels": 64, "frames": 5, "n_fft": 1024, "hop_length": 512},
                  "model": {"hidden": [64, 64], "bottleneck": 8}, "fit": {"epochs": 4, "batch_size": 512},
                  "transfer": {"epochs": 2}}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="one CPU: serial and one-core workers share a pool size")
def test_one_core_local_workers_give_the_serial_models_and_rows_bit_for_bit(tiny_root, tmp_path):
    """C12: local (2 workers x 1 thread) differed from serial at 1e-8..1e-5 on 2 cores (XLA's pool size)."""
    from common.models.saved import load_model

    def run(name: str, **experiment) -> tuple[str, list]:
        sizes = BASELINE_SIZES | {"transfer": {"epochs": 2, "init_from": str(tmp_path / "serial" / "models")}}
        cfg = make_config(tmp_path / name, tiny_root, **sizes, data={"cache_dir": str(tmp_path / "cache")},
                          experiment={"budgets": ["all"], "seeds": [0], **experiment})
        made = pretrain(cfg, progress=False)
        run_grid(cfg, progress=False)
        weights = [w for p in made for w in load_model(p.path)[0].get_weights()]
        return without_seconds(cfg.output.result_dir / "results.csv"), weights

    serial_rows, serial_weights = run("serial")
    local_rows, local_weights = run("local", executor="local", workers=2, threads_per_worker=1)
    assert all(np.array_equal(a, b) for a, b in zip(serial_weights, local_weights, strict=True))
    assert local_rows == serial_rows
