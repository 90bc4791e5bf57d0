"""Pretrain + transfer end to end on tiny real WAV data: results, scores, leakage, seeds, refusals."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from common.config import load_config
from common.data.mimii import find_machines, split_machine
from common.errors import DataError, ModelError
from common.experiment.grid import run_grid
from common.experiment.pretrain import pretrain
from common.results import RESULT_COLUMNS
from conftest import make_config


@pytest.fixture
def v1_run(pipeline):
    """The session's v1 pretrain + transfer of the tiny set (every array Trainer.fit was given recorded)."""
    return pipeline()


def shared_models(run, folder: Path, root: Path, **overrides):
    """A v1 config in `folder` on the shared run's pretrained models and feature cache."""
    return make_config(folder, root, name="transfer.yaml", data={"cache_dir": str(run.cache)},
                       output={"model_dir": str(run.models), **overrides.pop("output", {})}, **overrides)


def test_results_have_every_run_and_column(v1_run):
    cfg, made, results = v1_run.cfg, v1_run.made, v1_run.results
    assert sorted(p.source.label for p in made) == ["fan", "valve"] and all(p.trained for p in made)
    assert list(results.columns) == RESULT_COLUMNS
    on_disk = pd.read_csv(cfg.output.result_dir / "results.csv", dtype={"budget": str})
    assert len(on_disk) == len(results) == 4 * 2 * (1 + 2)  # targets x budgets x (scratch + 2 methods x 1 source)
    assert set(on_disk["method"]) == {"scratch", "zero_shot", "transfer"}
    assert set(on_disk["budget"]) == {"2", "all"}
    fan = on_disk[(on_disk.target_type == "fan") & (on_disk.method != "scratch")]
    assert set(fan["source"]) == {"valve"}
    assert on_disk.loc[on_disk.budget == "2", "n_train_clips"].eq(0).sum() == 4  # zero_shot trains on nothing
    assert (on_disk.loc[(on_disk.budget == "2") & (on_disk.method != "zero_shot"), "n_train_clips"] == 2).all()
    assert np.isfinite(on_disk[["auc", "pauc"]].values).all()
    assert (on_disk["n_skipped_clips"] == 0).all()
    for name in ("scores.csv", "summary.csv", "config.yaml", "skipped.csv"):
        assert (cfg.output.result_dir / name).is_file()
    assert (cfg.output.model_dir / "fan.keras").is_file() and (cfg.output.model_dir / "fan.json").is_file()


def test_auc_and_pauc_recompute_from_the_score_file(v1_run):
    cfg, results = v1_run.cfg, v1_run.results
    scores = pd.read_csv(cfg.output.result_dir / "scores.csv", dtype={"budget": str})
    for row in results.itertuples():
        s = scores[(scores.target_type == row.target_type) & (scores.target_id == row.target_id)
                   & (scores.source == row.source) & (scores.method == row.method)
                   & (scores.budget == row.budget) & (scores.seed == row.seed)]
        assert len(s) == row.n_eval_clips == 6
        assert roc_auc_score(s.label, s.score) == pytest.approx(row.auc, abs=1e-12)
        assert roc_auc_score(s.label, s.score, max_fpr=0.1) == pytest.approx(row.pauc, abs=1e-12)


def test_no_evaluation_clip_ever_reaches_training(v1_run, tiny_root):
    cfg, seen = v1_run.cfg, v1_run.fitted
    from common.data.dataset import load_machine

    eval_rows = set()
    for machine in find_machines(tiny_root):
        md = load_machine(cfg, machine, progress=False)
        x, _ = md.vectors(md.split.eval_files)
        eval_rows |= {r.tobytes() for r in x}
    trained_rows = {r.tobytes() for x in seen for r in x}
    assert len(seen) == 2 + 4 * 2 * 2  # pretrains + (scratch + transfer) per target and budget
    # Pretraining streams its (many-machine) set from the feature caches; the small target sets are arrays.
    assert v1_run.fitted_kinds[:2] == ["VectorSet"] * 2 and set(v1_run.fitted_kinds[2:]) == {"ndarray"}
    assert trained_rows and not trained_rows & eval_rows


def test_same_seed_same_results_and_resume(v1_run, tiny_root, tmp_path):
    cfg, results = v1_run.cfg, v1_run.results
    shutil.copytree(cfg.output.result_dir, tmp_path / "r1")  # the shared run stays as it is
    shutil.copytree(cfg.output.scratch_dir, tmp_path / "s1")
    resume = shared_models(v1_run, tmp_path, tiny_root, output={"scratch_dir": str(tmp_path / "s1"),
                                                                 "result_dir": str(tmp_path / "r1")})
    again = run_grid(resume, progress=False)  # everything reused from results.csv
    pd.testing.assert_frame_equal(again, results)
    fresh = shared_models(v1_run, tmp_path, tiny_root, output={"scratch_dir": str(tmp_path / "s2"),
                                                                "result_dir": str(tmp_path / "r2")})
    recomputed = run_grid(fresh, progress=False)
    # Bit for bit in every column but the wall-clock train_seconds.
    cols = [c for c in RESULT_COLUMNS if c != "train_seconds"]
    pd.testing.assert_frame_equal(recomputed[cols], results[cols], check_exact=True)
    scores = [pd.read_csv(d / "scores.csv") for d in (cfg.output.result_dir, tmp_path / "r2")]
    pd.testing.assert_frame_equal(scores[0], scores[1], check_exact=True)


def test_pretrained_model_is_not_retrained_when_up_to_date(v1_run):
    again = pretrain(load_config(v1_run.repo / "Version1" / "make_pretrain_v1.yaml"), progress=False)
    assert not any(p.trained for p in again)


def test_model_trained_on_other_features_is_refused(v1_run, tiny_root, tmp_path):
    other = shared_models(v1_run, tmp_path, tiny_root, feature={"n_mels": 24})
    with pytest.raises(ModelError, match=r"trained on other features \(n_mels: model 16 vs requested 24\)"):
        run_grid(other, progress=False)


def test_missing_pretrained_model_says_what_to_run(tiny_root, tmp_path):
    cfg = make_config(tmp_path, tiny_root, "v2", name="transfer.yaml")
    with pytest.raises(ModelError, match=r"not found: run `python -m common pretrain`"):
        run_grid(cfg, progress=False)


def test_v2_sources_hold_out_the_target_id(v1_run, tiny_root, tmp_path):
    made = pretrain(make_config(tmp_path, tiny_root, "v2", name="make.yaml", fit={"epochs": 1},
                                data={"cache_dir": str(v1_run.cache)}), progress=False)
    assert sorted(p.source.label for p in made) == ["fan_id_00", "fan_id_02", "valve_id_00", "valve_id_02"]
    import json
    side = json.loads(made[0].path.with_suffix(".json").read_text())
    assert side["sources"] == ["fan/id_00"] and side["n_train_clips"] == 5
    assert side["features"]["n_mels"] == 16 and side["architecture"]["hidden"] == [16]


def test_v3_without_enough_types_is_a_clear_error(tiny_root, tmp_path):
    with pytest.raises(DataError, match="version v3 has no source sets"):
        pretrain(make_config(tmp_path, tiny_root, "v3", name="make.yaml"), progress=False)


def test_pretrain_streams_sets_over_the_memory_limit(v1_run, tiny_root, tmp_path):
    """fit.max_in_memory_mb: 0 streams every source set; the models stay comparable and are retrained."""
    import json

    made = v1_run.made
    streamed = pretrain(make_config(tmp_path, tiny_root, name="make.yaml", fit={"max_in_memory_mb": 0},
                                    data={"cache_dir": str(v1_run.cache)}), progress=False)
    assert all(p.trained for p in streamed)  # another setting: not the in-memory models
    for mem, stream in zip(made, streamed):
        a, b = (json.loads(p.path.with_suffix(".json").read_text()) for p in (mem, stream))
        assert (a["streamed"], b["streamed"]) == (False, True)
        assert a["n_train_vectors"] == b["n_train_vectors"] and a["key"] != b["key"]
        assert 0.5 < b["final_loss"] / a["final_loss"] < 2  # other batch orders, the same training


def test_run_cell_gives_a_stored_row_again_and_writes_nothing(v1_run):
    """A cell is a function of (config, cell): it returns its row, scores and model, and writes no file."""
    from common.data.dataset import select_machines
    from common.experiment.grid import run_cell
    from common.results import KEY
    from common.methods.base import Cell
    from common.data.versions import source_sets

    cfg, results = v1_run.cfg, v1_run.results
    tmp = v1_run.repo.parent  # every shared run and the feature cache
    machines = select_machines(cfg)
    target = next(m for m in machines if m.type == "fan")
    source = source_sets(cfg.experiment.version, target, machines)[0]
    stored = results.set_index(KEY)
    before = {p: p.stat().st_mtime_ns for p in tmp.rglob("*") if p.is_file()}
    for cell in (Cell(target, None, "scratch", 2, 0), Cell(target, source, "zero_shot", "all", 0),
                 Cell(target, source, "transfer", 2, 0)):
        got = run_cell(cfg, cell)
        row = stored.loc[cell.key]
        assert got.row["config_hash"] == row["config_hash"], cell.method
        assert got.row["auc"] == pytest.approx(row["auc"], rel=1e-6) and got.row["threshold"] == pytest.approx(
            row["threshold"], rel=1e-6)
        assert len(got.scores) == row["n_eval_clips"]
        assert (got.model is None) == (cell.method == "zero_shot")
        if got.model is not None:
            assert got.model.sidecar.config_hash == row["config_hash"] and got.model.sidecar.method == cell.method
    assert {p: p.stat().st_mtime_ns for p in tmp.rglob("*") if p.is_file()} == before


def test_plan_runs_the_method_table_in_order(v1_run):
    """Per target, budget and seed: scratch once (no source), then zero_shot and transfer per source set."""
    from common.data.dataset import select_machines
    from common.methods.registry import METHODS
    from common.results import METHOD_ORDER
    from common.experiment.plan import plan
    from common.data.versions import source_sets

    cfg, results = v1_run.cfg, v1_run.results
    assert list(METHODS) == list(METHOD_ORDER)
    assert list(METHODS)[:4] == ["scratch", "zero_shot", "transfer", "transfer_frozen"]
    assert cfg.experiment.methods == ("scratch", "zero_shot", "transfer")  # the default
    machines = select_machines(cfg)
    targets = [(t, source_sets(cfg.experiment.version, t, machines)) for t in machines]
    listed = {m: M.pretrains for m, M in METHODS.items() if m in cfg.experiment.methods}
    the_plan = plan(cfg, targets, {t: "data" for t in machines}, {}, listed)
    assert len(the_plan.cells) == len(results) and len(the_plan.hashes) == len(results)
    first = [(c.source_label, c.method) for c in the_plan.cells[:3]]
    assert first == [("none", "scratch"), (targets[0][1][0].label, "zero_shot"), (targets[0][1][0].label, "transfer")]
    assert sorted(job.source.label for job in the_plan.pretrain) == ["fan", "valve"]
