"""The statistics, embedding and general-sound families and selective Mahalanobis, on hand-made examples and tiny
real data.

One module run (v1 on the tiny set, every method, budgets 1, 2 and all) is compared with a second
run on a copy of the data whose target evaluation clips were changed: every model, bank, Gaussian
and threshold comes out bit for bit the same, so no evaluation clip enters any of them.
"""

import shutil

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import make_config, run_main
from common.methods.catalog import METHOD_NAMES, ZERO_SHOT_METHODS

EMBEDDING = {"hidden": [16], "embedding_dim": 8, "epochs": 2, "vectors_per_clip": 8, "batch_size": 64,
             "finetune_epochs": 1, "finetune_freeze": ["dense_1"], "window": 8, "finetune_replay_per_clip": 4,
             "finetune_budget_per_clip": 8,
             "bank": "two_bank"}  # the option, not the default (target): its source banks go through every check here
SPECTROGRAM = {"patch_frames": 16, "channels": 2, "embedding_dim": 8, "sub_clusters": 2, "epochs": 2, "batch_size": 32,
               "patches_per_clip": 4}
FEATURE = {"frames": 3}  # vectors of 3 x 16 values, windows of 2 x 16: the classifier's input differs from the vectors


# --- hand-made examples ----------------------------------------------------------------------------


def test_nearest_neighbour_score_is_the_cosine_distance_to_the_closest_bank_clip():
    from common.scoring.knn import cosine_knn

    bank = np.array([[1.0, 0.0], [0.0, 2.0]])
    queries = np.array([[3.0, 0.0], [1.0, 1.0], [-1.0, 0.0]])
    assert cosine_knn(queries, bank) == pytest.approx([0.0, 1 - np.sqrt(0.5), 1.0])
    # k = 2 averages both distances; more neighbours than bank clips takes them all.
    assert cosine_knn(queries[:1], bank, k=2) == pytest.approx([0.5])
    assert cosine_knn(queries[:1], bank, k=5) == pytest.approx([0.5])


def test_mahalanobis_distance_and_selective_minimum_on_a_hand_made_gaussian():
    from common.scoring.mahalanobis import Gaussian, fit_gaussian, mahalanobis, selective

    g = Gaussian(np.array([1.0, 0.0]), np.diag([1 / 4, 1.0]))  # std 2 along x, 1 along y
    assert mahalanobis(g, np.array([[3.0, 0.0], [1.0, 3.0]])) == pytest.approx([1.0, 3.0])
    h = Gaussian(np.array([1.0, 3.0]), np.eye(2))
    assert selective([g, h], np.array([[1.0, 3.0]])) == pytest.approx([0.0])
    # Per clip: the mean of its rows' distances under each Gaussian, then the smaller one.
    rows = np.array([[3.0, 0.0], [1.0, 0.0], [1.0, 3.0]])
    assert selective([g, h], rows, np.array([0, 2, 3])) == pytest.approx([0.5, 0.0])
    # One row: the covariance is unknown, the distance is Euclidean from it; the centre may come from elsewhere.
    one = fit_gaussian(np.array([[2.0, 2.0]]))
    assert mahalanobis(one, np.array([[2.0, 5.0]])) == pytest.approx([3.0])
    moved = fit_gaussian(np.random.default_rng(0).normal(size=(50, 2)), mean=np.array([10.0, 0.0]))
    assert moved.mean == pytest.approx([10.0, 0.0])


@pytest.mark.parametrize("n, dim", [(2, 5), (8, 160), (60, 160), (500, 128), (2472, 320), (40, 1), (20, 1000)])
def test_ledoit_wolf_is_scikit_learns_bit_for_bit(n, dim):
    """`ledoit_wolf` makes the centred product once where scikit-learn makes it twice: the same covariance, exactly."""
    from sklearn.covariance import LedoitWolf

    from common.scoring.mahalanobis import ledoit_wolf

    rng = np.random.default_rng(n * dim)
    x = rng.normal(size=(n, dim)) * rng.uniform(0.1, 30, size=dim) + rng.normal(size=dim) * 5
    if dim > 2:
        x[:, 1] = 3.0  # a constant feature
    assert np.array_equal(ledoit_wolf(x), LedoitWolf(store_precision=False).fit(x).covariance_)


def test_mahalanobis_in_chunks_equals_the_three_operand_product(monkeypatch):
    """Distances a chunk of rows at a time (one matrix product each) are those of ``d P d`` per row, to rounding."""
    import common.scoring.mahalanobis as mahalanobis_module
    from common.scoring.mahalanobis import fit_gaussian, mahalanobis

    rng = np.random.default_rng(3)
    g = fit_gaussian(rng.normal(size=(400, 12)))
    x = rng.normal(size=(1001, 12)).astype(np.float32)
    d = np.asarray(x, dtype=np.float64) - g.mean
    expected = np.sqrt(np.einsum("ij,jk,ik->i", d, g.precision, d))
    monkeypatch.setattr(mahalanobis_module, "MAHALANOBIS_ROWS", 100)
    np.testing.assert_allclose(mahalanobis(g, x), expected, rtol=1e-12)
    assert mahalanobis(g, x[:0]).shape == (0,)


@pytest.mark.parametrize("rows", [5, 320, 2000])
def test_mahalanobis_by_the_cholesky_factor_equals_the_full_product(rows):
    """From as many rows as dimensions the distances go through the precision's Cholesky factor (a triangular
    product): those of ``dᵀ P d`` to float64 round-off; fewer rows, or a precision with no factor, take the full
    product, as before."""
    from common.scoring.mahalanobis import Gaussian, fit_gaussian, mahalanobis

    rng = np.random.default_rng(rows)
    x = (rng.normal(size=(rows, 320)) * rng.uniform(0.1, 3, size=320) + 2).astype(np.float32)
    g = fit_gaussian(rng.normal(size=(700, 320)) * rng.uniform(0.1, 3, size=320))
    d = np.asarray(x, dtype=np.float64) - g.mean
    full = np.sqrt(np.einsum("ij,ij->i", d @ g.precision, d))
    got = mahalanobis(g, x)
    np.testing.assert_allclose(got, full, rtol=1e-13)
    if rows < 320:  # the full product, as before: the same numbers
        assert np.array_equal(got, full)
    singular = Gaussian(g.mean, np.diag(np.r_[np.ones(319), 0.0]))  # a pseudo-inverse of a singular covariance
    assert singular.factor is None and g.factor is g.factor  # once per Gaussian
    np.testing.assert_allclose(mahalanobis(singular, x), np.sqrt(np.sum(d[:, :319] ** 2, axis=1)), rtol=1e-12)


def test_logmel_statistics_are_mean_and_std_over_each_clips_first_frames():
    from common.features.clipvectors import logmel_stats

    vectors = np.array([[1.0, 10.0, 99.0], [3.0, 10.0, 99.0], [5.0, 0.0, 99.0]])  # n_mels 2, frame-major
    got = logmel_stats(vectors, np.array([0, 2, 3]), n_mels=2)
    assert got == pytest.approx(np.array([[2.0, 10.0, 1.0, 0.0], [5.0, 0.0, 0.0, 0.0]]))


@pytest.mark.parametrize("n, dim, blocks", [(3090, 64, "folds"), (9, 16, "folds"), (20, 1, "folds"),
                                             (40, 12, [(10, 39), (0, 1)]), (12, 1000, [(0, 6), (6, 12)]),
                                             (500, 64, [])])  # no block: the whole set's only (the source's)
def test_gaussians_without_each_block_are_the_fits_of_the_other_rows(n, dim, blocks):
    """From sums, as `fit_gaussian` of each complement: to float64 round-off (a fold of all but one row, a width of
    one or of 1,000 go to `fit_gaussian`); out-of-sample scores through them are the per-fold fits' scores."""
    from common.features.clipvectors import out_of_sample
    from common.scoring.mahalanobis import fit_gaussian, gaussians_without, selective

    rng = np.random.default_rng(n + dim)
    x = (rng.normal(size=(n, dim)) * rng.uniform(0.1, 3, size=dim) + rng.normal(size=dim) * 5).astype(np.float32)
    offsets = np.linspace(0, n, min(n, 10) + 1).astype(int)
    blocks = list(zip(offsets[:-1], offsets[1:])) if blocks == "folds" else blocks
    found = gaussians_without(x, blocks, whole=True)  # the last: of every row (transfer_mahalanobis's head)
    assert len(found) == len(blocks) + 1
    for g, (a, b) in zip(found, blocks + [(0, 0)]):
        ref = fit_gaussian(np.concatenate([x[:a], x[b:]]))
        np.testing.assert_allclose(g.mean, ref.mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(g.precision, ref.precision, rtol=0, atol=1e-10 * np.max(np.abs(ref.precision)))
    assert all(np.array_equal(g.precision, h.precision) for g, h in zip(found, gaussians_without(x, blocks)))
    source = fit_gaussian(x[::2] + 1)
    score = lambda gs, r, o: selective(gs, r, o)  # noqa: E731
    without = lambda r, o, parts: [[source, g] for g in gaussians_without(r, [(o[p[0]], o[p[-1] + 1]) for p in parts])]  # noqa: E731
    for cut in (offsets, np.array([0, n])):  # folds of clips; one clip (its halves)
        ref = out_of_sample(lambda r, o: [source, fit_gaussian(r)], score, x, cut)
        np.testing.assert_allclose(out_of_sample(None, score, x, cut, fit_without=without), ref, rtol=1e-12)


def test_training_clip_scores_never_come_from_a_model_holding_the_clip():
    from common.features.clipvectors import out_of_sample_rows
    from common.scoring.knn import cosine_knn

    rows = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    got = out_of_sample_rows(lambda b: b, lambda b, r: cosine_knn(r, b), rows)
    assert got == pytest.approx([cosine_knn(rows[:1], rows[1:2])[0]] * 2 + [cosine_knn(rows[2:], rows[1:2])[0]])
    assert np.all(got > 0)  # in sample every clip would be at distance 0 from itself
    halves = np.array([[1.0, 0.0], [1.0, 1.0]])  # one clip: each half against the other
    assert out_of_sample_rows(lambda b: b, lambda b, r: cosine_knn(r, b), rows[:1], halves) == \
        pytest.approx([1 - np.sqrt(0.5)])


# --- every method on tiny real data ----------------------------------------------------------------


def _run(folder, root):
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain

    cfg = make_config(folder / "Version1", root, name="transfer_pretrain_v1.yaml", embedding=EMBEDDING, feature=FEATURE,
                      spectrogram=SPECTROGRAM, statistics={"source_clips": 3},
                      experiment={"methods": list(METHOD_NAMES), "budgets": [1, 2, "all"], "seeds": [0]})
    pretrain(cfg, progress=False)
    return cfg, run_grid(cfg, progress=False)


def _change_evaluation_clips(root, machine_dir, n_abnormal):
    """Rewrite the evaluation clips of one machine (first n_abnormal normal clips, all abnormal) with other sound."""
    clips = sorted((machine_dir / "normal").glob("*.wav"))[:n_abnormal] + sorted((machine_dir / "abnormal").glob("*.wav"))
    for path in clips:
        data, sr = sf.read(path)
        sf.write(path, 0.5 * data[::-1] + 0.01, sr, subtype="PCM_16")
    return clips


@pytest.fixture(scope="module")
def families(tiny_root, tmp_path_factory):
    base = tmp_path_factory.mktemp("families")
    first = _run(base / "a", tiny_root)
    root = base / "changed" / "Sample_data"
    shutil.copytree(tiny_root, root)
    target = next(root.glob("-6_dB_fan/fan/id_00"))
    changed = _change_evaluation_clips(root, target, 3)
    second = _run(base / "b", root)
    return first, second, changed


def test_every_method_scores_every_budget_and_zero_shot_uses_no_target_clip(families):
    (cfg, results), _, _ = families
    assert set(results["method"]) == set(METHOD_NAMES)
    assert results["auc"].between(0, 1).all() and results["threshold"].notna().all()
    zero = results[results["method"].isin(ZERO_SHOT_METHODS)]
    assert (zero["n_train_clips"] == 0).all()
    # The same model, no target clip: one AUC per target and source whatever the budget.
    assert (zero.groupby(["target_type", "target_id", "source", "method"])["auc"].nunique() == 1).all()
    budgeted = results[~results["method"].isin(ZERO_SHOT_METHODS)]
    assert set(budgeted.loc[budgeted["budget"] == "1", "n_train_clips"]) == {1}


def test_no_evaluation_clip_enters_any_classifier_bank_or_covariance(families):
    from common.data.names import pretrained_model_path, row_model_path
    from common.models.saved import Sidecar, head_path, load_head, load_model

    (cfg_a, res_a), (cfg_b, res_b), changed = families
    # The target's evaluation scores moved (its clips changed) ...
    scores_a = pd.read_csv(cfg_a.output.result_dir / "scores.csv")
    scores_b = pd.read_csv(cfg_b.output.result_dir / "scores.csv")
    fan = (scores_a["target_type"] == "fan") & (scores_a["target_id"] == "id_00")
    assert not np.allclose(scores_a.loc[fan, "score"], scores_b.loc[fan, "score"])
    # ... but every model, head and threshold is the same: no evaluation clip entered any of them.
    for (_, a), (_, b) in zip(res_a.iterrows(), res_b.iterrows()):
        assert a["threshold"] == b["threshold"], (a["method"], a["target_id"])
        if a["method"] in ZERO_SHOT_METHODS:
            continue
        path_a, path_b = row_model_path(cfg_a.output.result_dir, a), row_model_path(cfg_b.output.result_dir, b)
        side_a, side_b = Sidecar.read(path_a), Sidecar.read(path_b)
        assert not set(side_a.train_clips) & {str(p) for p in changed}
        assert side_a.train_scores == side_b.train_scores
        for x, y in zip(load_model(path_a)[0].get_weights(), load_model(path_b)[0].get_weights()):
            np.testing.assert_array_equal(x, y)
        head_a, head_b = load_head(path_a, side_a.to_dict()), load_head(path_b, side_b.to_dict())
        assert head_a.keys() == head_b.keys()
        for k in head_a:
            np.testing.assert_array_equal(head_a[k], head_b[k])
        if a["method"] in ("logmel_knn", "logmel_two_bank", "embed_knn", "embed_finetune", "spec_two_bank",
                           "sound_random_knn", "sound_knn"):
            assert len(head_a["bank"]) == a["n_train_clips"]
        # embed_knn, embed_finetune: embedding.bank two_bank (EMBEDDING); spec_two_bank always.
        if a["method"] in ("logmel_two_bank", "embed_knn", "embed_finetune", "spec_two_bank"):
            assert len(head_a["source_bank"]) == 3 * len(side_a.sources)  # source_clips of each source machine
    for label in ("fan", "valve"):
        for pretraining in ("embedding", "spectrogram"):
            pre_a = pretrained_model_path(cfg_a.output.model_dir, label, pretraining)
            pre_b = pretrained_model_path(cfg_b.output.model_dir, label, pretraining)
            bank = np.asarray(load_head(pre_a, Sidecar.read(pre_a).to_dict())["bank"])
            assert len(bank) == 2 * 3  # source_clips (3) of each of the two source machines, never the target's
            assert head_path(pre_a).is_file()
            # The target's evaluation clips changed; the pretrained classifiers of its source machines did not.
            np.testing.assert_array_equal(bank, load_head(pre_b, Sidecar.read(pre_b).to_dict())["bank"])
            for x, y in zip(load_model(pre_a)[0].get_weights(), load_model(pre_b)[0].get_weights()):
                np.testing.assert_array_equal(x, y)


def test_every_methods_model_scores_new_files_as_the_run_did(families, tmp_path):
    from common.data.names import row_model_path

    (cfg, results), _, _ = families
    scores = pd.read_csv(cfg.output.result_dir / "scores.csv")
    for method in ("transfer_mahalanobis", "lw_scratch", "lw_transfer", "logmel_knn", "logmel_two_bank", "embed_knn",
                   "embed_finetune", "spec_two_bank", "sound_random_knn", "sound_knn", "mod_scratch", "mod_transfer",
                   "fine_scratch", "fine_transfer",
                   "fusion_scratch", "fusion_transfer", "embed_fusion"):
        row = results[(results["method"] == method) & (results["budget"] == "2")].iloc[0]
        mine = scores[(scores[["target_type", "target_id", "source", "method", "budget"]].astype(str)
                       == [row["target_type"], row["target_id"], row["source"], method, "2"]).all(axis=1)]
        out = tmp_path / f"{method}.csv"
        code, text = run_main(["score", "--model", str(row_model_path(cfg.output.result_dir, row)), *mine["path"],
                               "--csv", str(out)])
        assert code == 0, text
        got = pd.read_csv(out).set_index("path").loc[mine["path"], "score"].to_numpy()
        np.testing.assert_allclose(got, mine["score"].to_numpy(), rtol=1e-4, err_msg=method)


def test_a_fused_rows_scores_are_its_parts_rows_scores_normalised_on_their_training_clips_and_summed(families):
    from common.data.names import row_model_path
    from common.methods.catalog import METHODS_CATALOG
    from common.models.saved import Sidecar
    from common.scoring.fusion import normaliser

    (cfg, results), _, _ = families
    scores = pd.read_csv(cfg.output.result_dir / "scores.csv", dtype={"budget": str})
    key = ["target_type", "target_id", "budget", "seed"]
    fused = [n for n, info in METHODS_CATALOG.items() if info.parts]
    assert fused == ["embed_fusion", "fusion_scratch", "fusion_transfer"]
    checked = 0
    for _, row in results[results["method"].isin(fused)].iterrows():
        same = (results[key].astype(str) == row[key].astype(str)).all(axis=1)
        total, parts = 0.0, Sidecar.read(row_model_path(cfg.output.result_dir, row)).scorer["parts"]
        for name, part in zip(METHODS_CATALOG[row["method"]].parts, parts):
            part_row = results[same & (results["method"] == name)
                               & results["source"].isin([row["source"], "none"])].iloc[0]
            train = Sidecar.read(row_model_path(cfg.output.result_dir, part_row)).train_scores
            assert (part["method"], part["mean"], part["scale"]) == (name, *normaliser(train))
            mine = scores[(scores[key + ["source", "method"]].astype(str)
                           == [*part_row[key].astype(str), part_row["source"], name]).all(axis=1)]
            total = total + (mine["score"].to_numpy() - part["mean"]) / part["scale"]
        mine = scores[(scores[key + ["source", "method"]].astype(str)
                       == [*row[key].astype(str), row["source"], row["method"]]).all(axis=1)]
        np.testing.assert_allclose(mine["score"].to_numpy(), total, rtol=1e-9, atol=1e-9, err_msg=row["method"])
        checked += 1
    assert checked == len(results[results["method"].isin(fused)]) > 0


def test_embed_zero_shot_exports_the_pretrained_classifier_with_its_source_bank(families, tmp_path):
    (cfg, results), _, _ = families
    repo = cfg.source.parent.parent
    code, text = run_main(["export", "--repo", str(repo), "--version", "1", "--target", "fan/id_00",
                           "--method", "embed_zero_shot", "--out", str(tmp_path / "out")])
    assert code == 0, text
    exported = sorted((tmp_path / "out").glob("*.keras"))
    assert len(exported) == 1 and exported[0].with_suffix(".head.npz").is_file()
    assert "distance to the nearest source clip" in (tmp_path / "out" / "MODEL_CARD.md").read_text()


@pytest.mark.parametrize("method, words", [
    ("spec_two_bank", ("spectrogram classifier", "sub-cluster AdaCos")),
    ("fusion_transfer", ("sum of transfer_mahalanobis", "fine_transfer (log-mel, modulation and fine log-mel")),
    ("mod_transfer", ("covariance of modulation statistics", "modulation statistics from its samples")),
    ("fine_transfer", ("covariance of fine log-mel statistics", "fine_spectrum statistics from its samples")),
    ("embed_fusion", ("sum of embed_knn (machine-ID classifier", "logmel_two_bank")),
])
def test_a_new_methods_exported_row_model_scores_as_the_run_did(families, tmp_path, method, words):
    (cfg, results), _, _ = families
    repo = cfg.source.parent.parent
    code, text = run_main(["export", "--repo", str(repo), "--version", "1", "--target", "valve/id_02",
                           "--method", method, "--budget", "2", "--out", str(tmp_path / "out")])
    assert code == 0, text
    exported = sorted((tmp_path / "out").glob("*.keras"))
    assert len(exported) == 1 and exported[0].with_suffix(".head.npz").is_file()
    card = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert all(w in card for w in words), card
    row = results[(results["method"] == method) & (results["budget"] == "2")
                  & (results["target_type"] == "valve") & (results["target_id"] == "id_02")].iloc[0]
    scores = pd.read_csv(cfg.output.result_dir / "scores.csv")
    mine = scores[(scores[["target_type", "target_id", "source", "method", "budget"]].astype(str)
                   == ["valve", "id_02", row["source"], method, "2"]).all(axis=1)]
    out = tmp_path / "scores.csv"
    code, text = run_main(["score", "--model", str(exported[0]), *mine["path"], "--csv", str(out)])
    assert code == 0, text
    got = pd.read_csv(out).set_index("path").loc[mine["path"], "score"].to_numpy()
    np.testing.assert_allclose(got, mine["score"].to_numpy(), rtol=1e-4)
    # scores.csv recomputes the row's AUC.
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(mine["label"], mine["score"]) == pytest.approx(row["auc"])


def test_finetune_freeze_of_a_layer_the_classifier_lacks_is_a_config_error(tmp_path, tiny_root):
    from common.config import load_config
    from common.errors import ConfigError
    from conftest import write_config

    path = write_config(tmp_path, tiny_root, embedding={"hidden": [16], "finetune_freeze": ["dense_2"]})
    with pytest.raises(ConfigError, match=r"'embedding\.finetune_freeze' names \['dense_2'\].*standardize, dense_1, "
                                          r"embedding"):
        load_config(path)


def test_embedding_pretraining_of_a_single_source_machine_is_refused_before_any_work(tmp_path, tiny_root):
    from conftest import write_config

    path = write_config(tmp_path, tiny_root, "v2", experiment={"version": "v2",
                                                                 "methods": ["scratch", "embed_knn"]})
    code, out = run_main(["pretrain", str(path)])
    assert code == 2 and "hold one machine each" in out and "'embed_knn'" in out, out
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").glob("*.keras"))


def test_a_fresh_process_scores_with_a_saved_classifier(families, tmp_path):
    """The classifier's own layers load in a process that never imported the embedding module."""
    import subprocess
    import sys
    from pathlib import Path

    from common.data.names import row_model_path

    (cfg, results), _, _ = families
    row = results[(results["method"] == "embed_knn") & (results["budget"] == "1")].iloc[0]
    clips = sorted(Path(cfg.data.root).glob(f"*/{row['target_type']}/{row['target_id']}/abnormal/*.wav"))[:2]
    out = tmp_path / "scores.csv"
    done = subprocess.run([sys.executable, "-m", "common", "score", "--model",
                           str(row_model_path(cfg.output.result_dir, row)), *map(str, clips), "--csv", str(out)],
                          capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert pd.read_csv(out)["score"].notna().all()


@pytest.mark.parametrize("budget", [1, "all"])
def test_transfer_and_transfer_mahalanobis_share_residuals_bit_for_bit(families, budget):
    """transfer_mahalanobis reads transfer's residuals (budget and evaluation clips) instead of running the model again:
    transfer's scores and thresholds are those of a run without transfer_mahalanobis, and transfer_mahalanobis's
    scores those of its saved scorer run on the evaluation clips, bit for bit."""
    import dataclasses

    from common.data.dataset import select_machines
    from common.data.versions import source_sets
    from common.experiment import grid
    from common.methods.base import Cell, reconstruction_scores
    from common.scoring.scorer import score_clips

    (cfg, _), _, _ = families
    alone = dataclasses.replace(cfg, experiment=dataclasses.replace(
        cfg.experiment, methods=tuple(m for m in cfg.experiment.methods if m != "transfer_mahalanobis")))
    target = next(m for m in select_machines(cfg) if m.type == "fan")
    source = source_sets(cfg.experiment.version, target, select_machines(cfg))[0]
    try:
        got = {m: grid.run_cell(cfg, Cell(target, source, m, budget, 0)) for m in ("transfer", "transfer_mahalanobis")}
        ctx = grid._context(cfg)
        assert {k[-1] for k in ctx.memo if k[-2:-1] == ("residuals",)} == {"train", "eval"}  # shared, not recomputed
        eval_x, eval_offsets = ctx.eval_vectors(ctx.machines[target])
        before = grid.run_cell(alone, Cell(target, source, "transfer", budget, 0))
    finally:
        grid._CONTEXT.clear()
    assert np.array_equal(got["transfer"].scores["score"], before.scores["score"])
    assert got["transfer"].model.sidecar.train_scores == before.model.sidecar.train_scores
    assert got["transfer"].row["threshold"] == before.row["threshold"]
    model = got["transfer_mahalanobis"].model
    trainer = grid._context(cfg).trainer
    net = trainer.with_weights(model.architecture, model.weights)
    assert np.array_equal(got["transfer_mahalanobis"].scores["score"],
                          score_clips(net, model.architecture, model.sidecar.scorer, model.head, eval_x, eval_offsets,
                                      n_mels=cfg.feature.n_mels))
    assert np.array_equal(got["transfer"].scores["score"],
                          reconstruction_scores(trainer, model.architecture, model.weights, eval_x, eval_offsets))
    grid._CONTEXT.clear()
