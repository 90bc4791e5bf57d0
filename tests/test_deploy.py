"""Using a transferred model on new recordings: scores match the experiment, thresholds, bad files, CLI, export."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from common.data.mimii import find_machines
from common.deploy import SCORE_FILE_COLUMNS, export_model, score_files
from common.errors import DataError, ModelError
from common.experiment.grid import run_grid
from common.data.names import row_model_path
from common.scoring.metrics import decision_metrics
from common.models.saved import read_sidecar
from common.data.dataset import check_machine
from common.experiment.pretrain import pretrain
from common.scoring.threshold import fit_threshold
from conftest import make_config, run_main

ROW = {"target_type": "fan", "target_id": "id_00", "source": "valve", "method": "transfer", "budget": "all", "seed": 0}


@pytest.fixture(scope="module")
def run(pipeline):
    """fan/id_00 and valve/id_00 of the tiny set: v1 pretrained and transferred once (budget all), shared."""
    shared = pipeline(ids=("id_00",), budgets=("all",))
    return shared.repo, shared.cfg, shared.results, shared.scores


def config_on(run, folder: Path, **overrides):
    """The shared run's config in `folder`, on its pretrained models, cache and a copy of its scratch store."""
    _, cfg, _, _ = run
    if not (folder / "scratch").exists():
        shutil.copytree(cfg.output.scratch_dir, folder / "scratch")
    output = {"model_dir": str(cfg.output.model_dir), **overrides.pop("output", {})}
    return make_config(folder, cfg.data.root, name="transfer.yaml", output=output,
                       data={"ids": ["id_00"], "cache_dir": str(cfg.data.cache_dir)},
                       experiment={"budgets": ["all"]}, **overrides)


def rows_of(table: pd.DataFrame, **key) -> pd.DataFrame:
    mask = np.ones(len(table), bool)
    for column, value in key.items():
        mask &= (table[column] == value).to_numpy()
    return table[mask]


def write_bad_files(folder: Path, good: Path) -> tuple[Path, Path]:
    """A WAV of the wrong rate (22050 Hz) and a corrupt one (not RIFF) in `folder`."""
    data, _ = sf.read(good, dtype="int16", always_2d=True)
    wrong_rate = folder / "wrong_rate.wav"
    sf.write(wrong_rate, data, 22050, subtype="PCM_16")
    corrupt = folder / "corrupt.wav"
    corrupt.write_bytes(b"\x00garbage, not a RIFF header" * 10)
    return wrong_rate, corrupt


@pytest.mark.parametrize("method, source", [("transfer", "valve"), ("scratch", "none")])
def test_scores_equal_the_experiment_score_file(run, method, source):
    _, cfg, _, scores = run
    key = {**ROW, "method": method, "source": source}
    expected = rows_of(scores, **key)
    model = row_model_path(cfg.output.result_dir, key)
    table = score_files(model, expected["path"])
    assert list(table.columns) == SCORE_FILE_COLUMNS and (table["error"] == "").all()
    assert table["path"].tolist() == expected["path"].tolist()
    np.testing.assert_allclose(table["score"], expected["score"], rtol=1e-6)


def test_zero_shot_scores_with_the_pretrained_model_equal_the_score_file(run):
    _, cfg, results, scores = run
    expected = rows_of(scores, **{**ROW, "method": "zero_shot"})
    pretrained = cfg.output.model_dir / "valve.keras"
    table = score_files(pretrained, expected["path"])
    np.testing.assert_allclose(table["score"], expected["score"], rtol=1e-6)
    # zero_shot keeps the pretrained model's own threshold (from its source clips, not the target's).
    row = rows_of(results, **{**ROW, "method": "zero_shot"}).iloc[0]
    assert row["threshold"] == read_sidecar(pretrained)["threshold"]


def test_decisions_are_score_above_threshold(run):
    _, cfg, results, scores = run
    expected = rows_of(scores, **ROW)
    model = row_model_path(cfg.output.result_dir, ROW)
    threshold = read_sidecar(model)["threshold"]
    table = score_files(model, expected["path"])
    assert table["decision"].tolist() == np.where(table["score"] > threshold, "anomalous", "normal").tolist()
    # A threshold between the scores flags exactly the clips above it, normal and abnormal alike.
    middle = float(np.median(table["score"]))
    given = score_files(model, expected["path"], threshold=middle)
    assert set(given["decision"]) == {"normal", "anomalous"}
    assert (given["decision"] == "anomalous").tolist() == (given["score"] > middle).tolist()
    # results.csv reports precision / recall / F1 of exactly these decisions on the evaluation split.
    row = rows_of(results, **ROW).iloc[0]
    assert row["threshold"] == threshold
    assert (row["precision"], row["recall"], row["f1"]) == decision_metrics(expected["label"], expected["score"],
                                                                           threshold=threshold)


@pytest.mark.parametrize("method, source", [("transfer", "valve"), ("scratch", "none")])
def test_threshold_is_fitted_on_the_models_own_training_clips(run, method, source):
    _, cfg, results, scores = run
    key = {**ROW, "method": method, "source": source}
    side = read_sidecar(row_model_path(cfg.output.result_dir, key))
    machine = next(m for m in find_machines(cfg.data.root) if m.name == "fan/id_00")
    split = check_machine(cfg, machine).split
    assert sorted(side["train_clips"]) == sorted(map(str, split.train))  # budget "all": the whole pool
    assert not set(side["train_clips"]) & set(rows_of(scores, **key)["path"])  # never evaluation clips
    train = score_files(row_model_path(cfg.output.result_dir, key), side["train_clips"])
    np.testing.assert_allclose(train["score"], side["train_scores"], rtol=1e-6)
    assert side["threshold_method"] == "percentile" and side["threshold_level"] == 0.9
    assert side["threshold"] == fit_threshold(side["train_scores"], method="percentile", level=0.9)
    assert side["threshold"] == pytest.approx(np.percentile(train["score"], 90), rel=1e-6)
    assert side["threshold"] == rows_of(results, **key).iloc[0]["threshold"]
    assert side["features"] == {"n_mels": 16, "frames": 2, "n_fft": 512, "hop_length": 256, "power": 2.0,
                                "channel": 0, "sample_rate": 16000}
    assert side["auc"] == rows_of(results, **key).iloc[0]["auc"] and side["budget"] == "all" and side["seed"] == 0


def test_pretrained_threshold_comes_from_its_source_training_clips(run):
    _, cfg, _, _ = run
    side = read_sidecar(cfg.output.model_dir / "valve.keras")
    valve = next(m for m in find_machines(cfg.data.root) if m.name == "valve/id_00")
    train = score_files(cfg.output.model_dir / "valve.keras", check_machine(cfg, valve).split.train)
    np.testing.assert_allclose(train["score"], side["train_scores"], rtol=1e-6)
    assert side["threshold"] == fit_threshold(side["train_scores"], method="percentile", level=0.9)


def test_bad_files_are_reported_by_path_and_the_others_scored(run, tmp_path):
    _, cfg, _, scores = run
    good = [Path(p) for p in rows_of(scores, **ROW)["path"][:2]]
    for i, p in enumerate(good):
        shutil.copy(p, tmp_path / f"good_{i}.wav")
    wrong_rate, corrupt = write_bad_files(tmp_path, good[0])
    missing = tmp_path / "elsewhere" / "missing.wav"
    (tmp_path / "notes.txt").write_text("not audio")  # not a WAV: a folder search skips it
    table = score_files(row_model_path(cfg.output.result_dir, ROW), [tmp_path, missing]).set_index("path")
    assert sorted(table.index) == sorted(map(str, [corrupt, tmp_path / "good_0.wav", tmp_path / "good_1.wav",
                                                   wrong_rate, missing]))
    assert re.search(re.escape(str(wrong_rate)) + r" has sample rate 22050 Hz, expected 16000 Hz",
                     table.loc[str(wrong_rate), "error"])
    assert re.search(re.escape(str(corrupt)) + r" is not a RIFF/WAVE file", table.loc[str(corrupt), "error"])
    assert str(missing) in table.loc[str(missing), "error"]
    bad = table.loc[[str(wrong_rate), str(corrupt), str(missing)]]
    assert bad["score"].isna().all() and (bad["decision"] == "error").all()
    ok = table.loc[[str(tmp_path / "good_0.wav"), str(tmp_path / "good_1.wav")]]
    expected = rows_of(scores, **ROW).set_index("path").loc[list(map(str, good)), "score"]
    np.testing.assert_allclose(ok["score"], expected, rtol=1e-6)
    assert (ok["error"] == "").all() and ok["decision"].isin(["normal", "anomalous"]).all()


def test_features_come_from_the_sidecar_not_a_yaml(run, tmp_path):
    _, cfg, _, scores = run
    model = row_model_path(cfg.output.result_dir, ROW)
    copy = tmp_path / "m.keras"
    shutil.copy(model, copy)
    side = read_sidecar(model)
    side["features"]["sample_rate"] = 22050  # the model now claims another rate: every 16 kHz clip is refused
    copy.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(ModelError, match=r"m\.keras cannot be used on these recordings: .*sample_rate=22050, "
                                         r"but every file given has 16000 Hz"):
        score_files(copy, rows_of(scores, **ROW)["path"][:2])
    del side["features"]["n_mels"]
    copy.with_suffix(".json").write_text(json.dumps(side))
    with pytest.raises(ModelError, match=r"lacks the feature parameters \['n_mels'\]"):
        score_files(copy, rows_of(scores, **ROW)["path"][:2])


def test_cli_score_prints_a_line_per_clip_and_the_count(run, tmp_path):
    _, cfg, _, scores = run
    expected = rows_of(scores, **ROW)
    folder = tmp_path / "recordings"
    folder.mkdir()
    for p in expected["path"]:
        shutil.copy(p, folder / f"{Path(p).parent.name}_{Path(p).name}")
    model = row_model_path(cfg.output.result_dir, ROW)
    threshold = read_sidecar(model)["threshold"]
    code, text = run_main(["score", "--model", str(model), str(folder), "--csv", str(tmp_path / "out.csv"),
                           "--no-progress"])
    assert code == 0
    lines = text.splitlines()
    clip_lines = [line for line in lines if line.startswith(str(folder))]
    assert len(clip_lines) == len(expected) == 6
    table = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert list(table.columns) == SCORE_FILE_COLUMNS and len(table) == 6
    n_flagged = int((table["decision"] == "anomalous").sum())
    assert n_flagged == int((pd.to_numeric(table["score"]) > threshold).sum())
    assert f"{n_flagged} of 6 clips flagged anomalous (score > {threshold:.6g}, the model's threshold)" in text
    for line, row in zip(clip_lines, table.itertuples()):
        assert line == f"{row.path}  {float(row.score):.6g}  {row.decision}"

    wrong_rate, corrupt = write_bad_files(folder, Path(expected["path"].iloc[0]))
    code, text = run_main(["score", "--model", str(model), str(folder), "--threshold", "0", "--no-progress"])
    assert code == 1  # some files could not be scored; the others were
    assert f"{wrong_rate}  error: " in text and f"{corrupt}  error: " in text
    assert "6 of 6 clips flagged anomalous (score > 0, given threshold)" in text
    assert "2 file(s) could not be scored" in text


def test_cli_score_without_a_model_is_an_error(tmp_path):
    code, _ = run_main(["score", "--model", str(tmp_path / "none.keras"), str(tmp_path), "--no-progress"])
    assert code == 2


def test_export_copies_model_sidecar_and_card(run, tmp_path):
    repo, cfg, results, scores = run
    out = tmp_path / "deploy"
    path = export_model(repo, version=1, target="fan/id_00", out=out)
    row = rows_of(results, **ROW).iloc[0]  # the only transfer row of fan/id_00, so the best
    assert path == out / "fan_id_00_transfer_valve_budget-all_seed-0.keras" and path.is_file()
    side = read_sidecar(path)
    assert side["threshold"] == row["threshold"] and side["auc"] == row["auc"]
    card = (out / "MODEL_CARD.md").read_text()
    for text in (f"{row['auc']:.4f}", f"{row['threshold']:.6g}", "90th percentile", "fan/id_00",
                 "valve/id_00", "n_mels 16", "16000 Hz", "python -m common score --model"):
        assert text in card, text
    table = score_files(path, rows_of(scores, **ROW)["path"])
    np.testing.assert_allclose(table["score"], rows_of(scores, **ROW)["score"], rtol=1e-6)

    code, text = run_main(["export", "--version", "v1", "--target", "fan/id_00", "--method", "scratch",
                           "--out", str(tmp_path / "cli"), "--repo", str(repo)])
    assert code == 0 and (tmp_path / "cli" / "fan_id_00_scratch_none_budget-all_seed-0.keras").is_file()
    assert "MODEL_CARD.md" in text
    zero = export_model(repo, version="1", target="fan/id_00", out=tmp_path / "zero", method="zero_shot")
    assert read_sidecar(zero)["threshold"] == rows_of(results, **{**ROW, "method": "zero_shot"}).iloc[0]["threshold"]


@pytest.mark.parametrize("kw, match", [
    ({"target": "fan/id_09"}, r"no results for target fan/id_09"),
    ({"target": "fan"}, r"must be a machine type and ID"),
    ({"target": "fan/id_00", "budget": 3}, r"no results row of fan/id_00 with method=transfer, budget=3"),
    ({"target": "fan/id_00", "version": 2}, r"Version2/transfer_pretrain_v2\.yaml not found"),
    ({"target": "fan/id_00", "version": "two"}, r"version='two' must be a version number"),
])
def test_export_errors_say_what_is_wrong(run, tmp_path, kw, match):
    repo, *_ = run
    with pytest.raises(DataError, match=match):
        export_model(repo, **{"version": 1, **kw}, out=tmp_path)


def test_export_follows_the_result_dir_of_the_transfer_yaml(run, tmp_path):
    """A version whose transfer YAML names another output.result_dir is exported from there."""
    repo, cfg, results, _ = run
    other = tmp_path / "repo"
    (other / "Version1").mkdir(parents=True)
    shutil.copytree(cfg.output.result_dir, tmp_path / "moved")
    (other / "Version1" / "transfer_pretrain_v1.yaml").write_text(
        "experiment:\n  version: v1\noutput:\n  result_dir: ../../moved\n")
    path = export_model(other, version=1, target="fan/id_00", out=tmp_path / "deploy")
    assert read_sidecar(path)["auc"] == rows_of(results, **ROW).iloc[0]["auc"]
    assert f"`{tmp_path / 'moved' / 'results.csv'}`" in (tmp_path / "deploy" / "MODEL_CARD.md").read_text()
    (other / "Version1" / "transfer_pretrain_v1.yaml").write_text("experiment:\n  version: v1\n")
    with pytest.raises(DataError, match=r"Version1/result_transfer_pretrain_v1/results\.csv not found: run "
                                        r"`python -m common transfer Version1/transfer_pretrain_v1\.yaml`"):
        export_model(other, version=1, target="fan/id_00", out=tmp_path / "deploy")


def test_row_without_its_model_is_recomputed_on_resume(run, tmp_path):
    _, cfg, results, _ = run
    out = tmp_path / "results"
    shutil.copytree(cfg.output.result_dir, out)
    row_model_path(out, ROW).unlink()
    again_cfg = config_on(run, tmp_path, output={"result_dir": str(out)})
    with pytest.warns(UserWarning, match=r"1 row\(s\) of .* have no model file"):
        again = run_grid(again_cfg, progress=False)
    assert row_model_path(out, ROW).is_file()
    cols = [c for c in results.columns if c != "train_seconds"]
    pd.testing.assert_frame_equal(again[cols], results[cols], check_exact=True)


def test_old_pretrained_model_gets_its_threshold_without_retraining(run, tmp_path):
    _, cfg, _, _ = run
    models = tmp_path / "models"
    shutil.copytree(cfg.output.model_dir, models)
    side_path = models / "valve.json"
    side = json.loads(side_path.read_text())
    old = {k: side.pop(k) for k in ("train_scores", "threshold", "threshold_method", "threshold_level")}
    side_path.write_text(json.dumps(side))
    stale = config_on(run, tmp_path, output={"result_dir": str(tmp_path / "r")}, transfer={"init_from": str(models)})
    with pytest.raises(ModelError, match=r"valve\.keras has no scores of its training clips.*common pretrain"):
        run_grid(stale, progress=False)
    made = pretrain(config_on(run, tmp_path, output={"model_dir": str(models)}, eval={"threshold": "gamma"}),
                    progress=False)
    assert not any(p.trained for p in made)
    side = read_sidecar(models / "valve.keras")
    np.testing.assert_allclose(side["train_scores"], old["train_scores"], rtol=1e-6)
    assert side["threshold_method"] == "gamma"
    assert side["threshold"] == fit_threshold(side["train_scores"], method="gamma", level=0.9)
