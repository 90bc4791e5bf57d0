"""The result store, provenance and folder locks (issue 13 items 1, 4, 7, 13, and parts of 5, 11, 15).

Every test runs real pretrain / transfer runs on two machines of the tiny data set (fan/id_00 and
valve/id_00: v1, one budget, one seed = 6 rows), then damages or narrows a copy of the result folder.
"""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from common.__main__ import main
from common.config import load_config
from common.errors import ConfigError, ModelError
from common.experiment import transfer
from common.layout import row_model_path
from common.pretrain import pretrain
from common.train import Trainer
from conftest import tiny_overrides

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
ROWS = 6  # 2 targets x (scratch + zero_shot + transfer)


def write_yaml(path: Path, root: Path, world: Path, **sections) -> Path:
    """A complete v1 YAML on the id_00 machines of `root`, its models, scratch store and cache in `world`."""
    doc = tiny_overrides(experiment={"version": "v1", "budgets": ["all"], "seeds": [0]})
    doc["data"] = {"root": str(root), "cache_dir": str(world / "cache"), "jobs": 1, "ids": ["id_00"]}
    doc["output"] = {"model_dir": str(world / "models"), "result_dir": str(path.parent / "results"),
                     "scratch_dir": str(world / "scratch")}
    doc["transfer"] = {**doc["transfer"], "init_from": str(world / "models")}
    for section, values in sections.items():
        doc.setdefault(section, {}).update(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def world(tiny_root, tmp_path_factory):
    """The id_00 machines pretrained and transferred once: (folder, YAML, config, results)."""
    tmp = tmp_path_factory.mktemp("store")
    path = write_yaml(tmp / "run" / "cfg.yaml", tiny_root, tmp)
    cfg = load_config(path)
    pretrain(cfg, progress=False)
    return tmp, path, cfg, transfer(cfg, progress=False)


def copy_of(world, tmp_path: Path, tiny_root: Path, *, legacy: bool = False, **sections):
    """The config of `world` on a copy of its result folder (without the store when `legacy`)."""
    tmp, _, cfg, _ = world
    shutil.copytree(cfg.output.result_dir, tmp_path / "results")
    if legacy:  # as today's main leaves it: results.csv + scores.csv, no store
        shutil.rmtree(tmp_path / "results" / ".store", ignore_errors=True)
    return load_config(write_yaml(tmp_path / "cfg.yaml", tiny_root, tmp, **sections))


def run_main(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


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
    changed = load_config(write_yaml(tmp_path / "changed.yaml", tiny_root, world[0], transfer={"epochs": 2}))
    with pytest.warns(UserWarning, match=rf"{ROWS} row\(s\) of .* were computed with another config .* the old "
                                         rf"rows stay in {re.escape(str(out / '.store'))}"):
        transfer(changed, progress=False)
    assert len(count_fits) == 2 and len(list((out / ".store").glob("*.json"))) == 2 * ROWS
    count_fits.clear()
    transfer(cfg, progress=False)  # the first config again: its rows were kept, nothing is recomputed
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
    transfer(cfg, progress=False)
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
        again = transfer(cfg, progress=False)
    assert not [w for w in caught if "another config" in str(w.message)]  # damaged, not stale
    assert len(count_fits) == 1  # that row alone is recomputed
    _, _, _, results = world
    cols = [c for c in results.columns if c != "train_seconds"]
    pd.testing.assert_frame_equal(again[cols], results[cols], check_exact=True)
    # Stored again, intact: the same AUC as before the damage (the recomputed row differs in train_seconds only).
    assert json.loads(entry.read_text())["row"]["auc"] == json.loads(original)["row"]["auc"]
    transfer(cfg, progress=False)
    assert len(count_fits) == 1


# --------------------------------------------------------------------------------------------
# Migration and item 11: a folder of today's main, and unreadable CSVs


def test_result_folder_without_store_is_imported_once(world, tiny_root, tmp_path, count_fits):
    cfg = copy_of(world, tmp_path, tiny_root, legacy=True)
    out = cfg.output.result_dir
    before = files(out)
    transfer(cfg, progress=False)
    assert not count_fits and files(out) == before
    assert len(list((out / ".store").glob("*.json"))) == ROWS
    # Imported once: from now on a hand edit of results.csv is not trusted.
    table = pd.read_csv(out / "results.csv", dtype=str, keep_default_na=False)
    table.loc[0, "auc"] = "0.5"
    table.to_csv(out / "results.csv", index=False)
    transfer(cfg, progress=False)
    assert files(out) == before


@pytest.mark.parametrize("name, content", [("results.csv", b""), ("scores.csv", b""),
                                           ("results.csv", b"\x00\xff\xfe binary \x81\n\x00")])
def test_empty_or_non_csv_result_file_is_ignored_naming_it(world, tiny_root, tmp_path, name, content):
    cfg = copy_of(world, tmp_path, tiny_root, legacy=True)
    bad = cfg.output.result_dir / name
    bad.write_bytes(content)
    with pytest.warns(UserWarning, match=rf"{re.escape(str(bad))} is empty or not a CSV table"):
        again = transfer(cfg, progress=False)
    _, _, _, results = world
    cols = [c for c in results.columns if c != "train_seconds"]
    pd.testing.assert_frame_equal(again[cols], results[cols], check_exact=True)


# --------------------------------------------------------------------------------------------
# Item 4: provenance of pretrained models; item 15: budgets; item 5: channel count in sidecars


def test_pretrained_model_of_other_machines_is_refused_up_front(world, tiny_root, tmp_path):
    tmp, *_ = world
    # Every ID now, from the models pretrained on id_00 only.
    cfg = load_config(write_yaml(tmp_path / "cfg.yaml", tiny_root, tmp, data={"ids": None}))
    models = re.escape(str(tmp / "models"))
    with pytest.raises(ModelError, match=rf"{models}/(fan|valve)\.keras was trained on the machines "
                                         r"\['(fan|valve)/id_00'\].*\['(fan|valve)/id_00', '(fan|valve)/id_02'\]"):
        transfer(cfg, progress=False)
    assert not (cfg.output.result_dir / "results.csv").exists()
    assert not (cfg.output.result_dir / ".store").exists()


def test_budget_larger_than_the_pool_is_a_config_error_up_front(world, tiny_root, tmp_path, count_fits):
    tmp, *_ = world
    cfg = load_config(write_yaml(tmp_path / "cfg.yaml", tiny_root, tmp, experiment={"budgets": [2, 50]}))
    with pytest.raises(ConfigError, match=re.escape(str(cfg.source)) + r": 'experiment\.budgets' has 50, more "
                                          r"than the 5 training clips of fan/id_00"):
        transfer(cfg, progress=False)
    assert not count_fits and not (cfg.output.result_dir / ".store").exists()


def test_every_sidecar_records_the_channel_count(world):
    _, _, cfg, _ = world
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
    tmp, *_ = world
    models = tmp_path / "models"
    # A real pretrain with many epochs, so it still holds its model folder while the others start.
    long = write_yaml(tmp_path / "long" / "cfg.yaml", tiny_root, tmp, output={"model_dir": str(models)},
                      fit={"epochs": 5000})
    other = write_yaml(tmp_path / "other" / "cfg.yaml", tiny_root, tmp, output={"model_dir": str(models)},
                       transfer={"init_from": str(models)})
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
            transfer(cfg, progress=False)
    finally:
        proc.kill()
        proc.wait()
    assert files(out) == before
    transfer(cfg, progress=False)  # the holder is gone: the folder is free
