"""The result store, provenance and folder locks (issue 13 items 1, 4, 7, 13, and parts of 5, 11, 15).

Every test runs real pretrain / transfer runs on two machines of the tiny data set (fan/id_00 and
valve/id_00: v1, one budget, one seed = 6 rows), then damages or narrows a copy of the result folder.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from common.errors import ConfigError, ModelError
from common.experiment.grid import run_grid
from common.data.names import row_model_path
from common.models.train import Trainer
from conftest import make_config, run_main

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
ROWS = 6  # 2 targets x (scratch + zero_shot + transfer)


@dataclass(frozen=True)
class World:
    """The shared id_00 run (read-only: its models, cache, config and rows) and this module's scratch store."""

    root: Path
    models: Path
    cache: Path
    scratch: Path
    cfg: object
    results: pd.DataFrame


@pytest.fixture(scope="module")
def world(pipeline, tmp_path_factory) -> World:
    """The id_00 machines pretrained and transferred once (the session's run), with a scratch store to extend."""
    shared = pipeline(ids=("id_00",), budgets=("all",))
    scratch = tmp_path_factory.mktemp("store") / "scratch"
    shutil.copytree(shared.scratch, scratch)
    return World(shared.cfg.data.root, shared.models, shared.cache, scratch, shared.cfg, shared.results)


def store_config(folder: Path, world: World, *, name: str = "cfg.yaml", **sections):
    """A complete v1 YAML on the id_00 machines in `folder`, on the models, scratch store and cache of `world`."""
    doc = {"experiment": {"budgets": ["all"], "seeds": [0]},
           "data": {"ids": ["id_00"], "cache_dir": str(world.cache)},
           "output": {"model_dir": str(world.models), "scratch_dir": str(world.scratch)}}
    for section, values in sections.items():
        doc[section] = {**doc.get(section, {}), **values}
    doc["transfer"] = {"init_from": str(world.models), **doc.get("transfer", {})}
    return make_config(folder, world.root, name=name, **doc)


def copy_of(world: World, tmp_path: Path, tiny_root: Path, *, legacy: bool = False, **sections):
    """The config of `world` on a copy of its result folder (without the store when `legacy`)."""
    assert tiny_root == world.root
    shutil.copytree(world.cfg.output.result_dir, tmp_path / "results")
    if legacy:  # as today's main leaves it: results.csv + scores.csv, no store
        shutil.rmtree(tmp_path / "results" / ".store", ignore_errors=True)
    return store_config(tmp_path, world, **sections)


@pytest.fixture
def count_fits(monkeypatch) -> list:
    """Every Trainer.fit call of the test (the real fit runs; only the calls are counted)."""
    calls = []
    original = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **kw: calls.append(1) or original(self, *a, **kw))
    return calls


def files(out: Path) -> dict[str, str]:
    return {n: (out / n).read_text() for n in ("results.csv", "scores.csv")}


# --------------------------------------------------------------------------------------------
# Item 1: a run with nothing to do stops before touching a file


def test_run_with_nothing_to_do_exits_2_and_keeps_earlier_results(world, tiny_root, tmp_path):
    cfg = copy_of(world, tmp_path, tiny_root, data={"types": ["fan"]})  # one type: v1 has no source set
    before = files(cfg.output.result_dir)
    code, err = run_main(["transfer", str(cfg.source)])
    assert code == 2
    assert re.search(r"error: version v1 has no source sets among the machines \['fan/id_00'\] under "
                     + re.escape(str(tiny_root)), err), err
    assert files(cfg.output.result_dir) == before


def test_changed_config_keeps_the_old_rows_beside_the_new(world, tiny_root, tmp_path, count_fits):
    cfg = copy_of(world, tmp_path, tiny_root)
    out = cfg.output.result_dir
    before = files(out)
    changed = store_config(tmp_path, world, name="changed.yaml", transfer={"epochs": 2})
    with pytest.warns(UserWarning, match=rf"{ROWS} row\(s\) of .* were computed with another config .* the old "
                                         rf"rows stay in {re.escape(str(out / '.store'))}"):
        run_grid(changed, progress=False)
    assert len(count_fits) == 2 and len(list((out / ".store").glob("*.json"))) == 2 * ROWS
    count_fits.clear()
    run_grid(cfg, progress=False)  # the first config again: its rows were kept, nothing is recomputed
    assert not count_fits and files(out) == before
    # Each row's model is its own again (the other config's models wait in the store).
    for row in pd.read_csv(out / "results.csv", dtype={"budget": str}).to_dict("records"):
        if row["method"] != "zero_shot":
            assert json.loads(row_model_path(out, row).with_suffix(".json").read_text())["config_hash"] \
                == row["config_hash"]
    assert len(list((out / ".store" / "models").glob("*/*.keras"))) == 4


# --------------------------------------------------------------------------------------------
# Item 7: results.csv is output only; the store is checked


def test_hand_edited_results_csv_is_rebuilt_from_the_store(world, tiny_root, tmp_path, count_fits):
    cfg = copy_of(world, tmp_path, tiny_root)
    out = cfg.output.result_dir
    before = files(out)
    table = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    table.loc[0, "f1"] = "0.33333"
    table.to_csv(out / "results.csv", index=False)
    run_grid(cfg, progress=False)
    assert files(out) == before and not count_fits


@pytest.mark.parametrize("damage", ["value", "empty", "sha"])
def test_damaged_store_entry_is_recomputed_naming_it(world, tiny_root, tmp_path, count_fits, damage):
    cfg = copy_of(world, tmp_path, tiny_root)
    out = cfg.output.result_dir
    entry = next(p for p in sorted((out / ".store").glob("*.json")) if "__transfer__" in p.name)
    original = entry.read_text()
    content = json.loads(original)
    if damage == "value":
        content["row"]["auc"] = 0.999
        entry.write_text(json.dumps(content))
    elif damage == "sha":
        content["sha256"] = "0" * 64
        entry.write_text(json.dumps(content))
    else:
        entry.write_bytes(b"")
    with pytest.warns(UserWarning, match=rf"result store entry {re.escape(str(entry))} is damaged") as caught:
        again = run_grid(cfg, progress=False)
    assert not [w for w in caught if "another config" in str(w.message)]  # damaged, not stale
    assert len(count_fits) == 1  # that row alone is recomputed
    results = world.results
    cols = [c for c in results.columns if c != "train_seconds"]
    pd.testing.assert_frame_equal(again[cols], results[cols], check_exact=True)
    # Stored again, intact: the same AUC as before the damage (the recomputed row differs in train_seconds only).
    assert json.loads(entry.read_text())["row"]["auc"] == json.loads(original)["row"]["auc"]
    run_grid(cfg, progress=False)
    assert len(count_fits) == 1


# --------------------------------------------------------------------------------------------
# Migration and item 11: a folder of today's main, and unreadable CSVs


def test_result_folder_without_store_is_imported_once(world, tiny_root, tmp_path, count_fits):
    cfg = copy_of(world, tmp_path, tiny_root, legacy=True)
    out = cfg.output.result_dir
    before = files(out)
    run_grid(cfg, progress=False)
    assert not count_fits and files(out) == before
    assert len(list((out / ".store").glob("*.json"))) == ROWS
    # Imported once: from now on a hand edit of results.csv is not trusted.
    table = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    table.loc[0, "auc"] = "0.5"
    table.to_csv(out / "results.csv", index=False)
    run_grid(cfg, progress=False)
    assert files(out) == before


def test_result_folder_without_store_from_before_the_dcase_columns_is_imported(world, tiny_root, tmp_path,
                                                                              count_fits):
    """results.csv / scores.csv without the columns added for DCASE roots (official scores, domain) import as
    they are: no row is recomputed, and the rewritten files carry the new columns, blank."""
    from common.results import ADDED_COLUMNS

    cfg = copy_of(world, tmp_path, tiny_root, legacy=True)
    out = cfg.output.result_dir
    for name in ("results.csv", "scores.csv"):
        table = pd.read_csv(out / name, dtype=str, keep_default_na=False)
        table.drop(columns=[c for c in table.columns if c in ADDED_COLUMNS]).to_csv(out / name, index=False)
    run_grid(cfg, progress=False)
    assert not count_fits and len(list((out / ".store").glob("*.json"))) == ROWS
    results = pd.read_csv(out / "results.csv")
    assert results["official_score"].isna().all() and len(results) == ROWS


@pytest.mark.parametrize("name, content", [("results.csv", b""), ("scores.csv", b""),
                                           ("results.csv", b"\x00\xff\xfe binary \x81\n\x00")])
def test_empty_or_non_csv_result_file_is_ignored_naming_it(world, tiny_root, tmp_path, name, content):
    cfg = copy_of(world, tmp_path, tiny_root, legacy=True)
    bad = cfg.output.result_dir / name
    bad.write_bytes(content)
    with pytest.warns(UserWarning, match=rf"{re.escape(str(bad))} is empty or not a CSV table"):
        again = run_grid(cfg, progress=False)
    results = world.results
    cols = [c for c in results.columns if c != "train_seconds"]
    pd.testing.assert_frame_equal(again[cols], results[cols], check_exact=True)


# --------------------------------------------------------------------------------------------
# Item 4: provenance of pretrained models; item 15: budgets; item 5: channel count in sidecars


def test_pretrained_model_of_other_machines_is_refused_up_front(world, tiny_root, tmp_path):
    # Every ID now, from the models pretrained on id_00 only.
    cfg = store_config(tmp_path, world, data={"ids": None})
    models = re.escape(str(world.models))
    with pytest.raises(ModelError, match=rf"{models}/(fan|valve)\.keras was trained on the machines "
                                         r"\['(fan|valve)/id_00'\].*\['(fan|valve)/id_00', '(fan|valve)/id_02'\]"):
        run_grid(cfg, progress=False)
    assert not (cfg.output.result_dir / "results.csv").exists()
    assert not (cfg.output.result_dir / ".store").exists()


def test_budget_larger_than_the_pool_is_a_config_error_up_front(world, tiny_root, tmp_path, count_fits):
    cfg = store_config(tmp_path, world, experiment={"budgets": [2, 50]})
    with pytest.raises(ConfigError, match=re.escape(str(cfg.source)) + r": 'experiment\.budgets' has 50, more "
                                          r"than the 5 training clips of fan/id_00"):
        run_grid(cfg, progress=False)
    assert not count_fits and not (cfg.output.result_dir / ".store").exists()


def test_every_sidecar_records_the_channel_count(world):
    cfg = world.cfg
    pretrained = list(cfg.output.model_dir.glob("*.json"))
    rows = list(cfg.output.result_dir.glob("models/*/*.json"))  # scratch + transfer of each target
    scratch = list(cfg.output.scratch_dir.glob("*.model.json"))
    assert (len(pretrained), len(rows)) == (2, 4) and len(scratch) >= 2
    for path in pretrained + rows + scratch:
        side = json.loads(path.read_text())
        assert side["n_channels"] == 2 and "n_channels" not in side["features"], path


# --------------------------------------------------------------------------------------------
# Item 13: one run per folder; a second one is told which process holds it


def _wait_for_lock(path: Path, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if path.is_file() and path.read_text().startswith(f"{proc.pid}\t"):
            return
        time.sleep(0.05)
    raise AssertionError(f"the run never took its lock: {log.read_text()[-2000:]}")


def test_a_second_run_on_a_held_folder_exits_2_naming_the_holder(world, tiny_root, tmp_path):
    models = tmp_path / "models"
    # A real pretrain with many epochs, so it still holds its model folder while the others start.
    long = store_config(tmp_path / "long", world, output={"model_dir": str(models)}, fit={"epochs": 5000}).source
    other = store_config(tmp_path / "other", world, output={"model_dir": str(models)},
                         transfer={"init_from": str(models)}).source
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "common", "pretrain", str(long)], cwd=REPO, env=ENV,
                                stdout=fh, stderr=subprocess.STDOUT)
    try:
        _wait_for_lock(models / ".lock", proc, log)
        for command in ("pretrain", "transfer"):
            code, err = run_main([command, str(other)])
            assert code == 2, err
            assert re.search(rf"error: {re.escape(str(models))} is in use by process {proc.pid} \(pretrain "
                             rf"{re.escape(str(long))} .*\) since .*; wait for it or stop it", err), err
            assert "sidecar" not in err
        assert proc.poll() is None  # the first run held the folder all along
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    from common.lock import folder_lock  # here, so the other tests run on a checkout without locks

    # The lock file of the dead run is still there, naming it; it blocks nothing.
    assert (models / ".lock").read_text().startswith(f"{proc.pid}\t")
    with folder_lock(models, what="test"):
        pass


def test_a_transfer_on_a_held_result_folder_exits_2(world, tiny_root, tmp_path):
    from common.errors import LockError

    cfg = copy_of(world, tmp_path, tiny_root)
    out = cfg.output.result_dir
    before = files(out)
    holder = ("import sys, time; from common.lock import folder_lock\n"
              "with folder_lock(sys.argv[1], what='holder'):\n    print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", holder, str(out)], cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        code, err = run_main(["transfer", str(cfg.source)])
        assert code == 2 and f"{out} is in use by process {proc.pid} (holder" in err, err
        with pytest.raises(LockError, match=rf"in use by process {proc.pid}"):
            run_grid(cfg, progress=False)
    finally:
        proc.kill()
        proc.wait()
    assert files(out) == before
    run_grid(cfg, progress=False)  # the holder is gone: the folder is free
