"""Reliability: bad WAVs (error / skip), check-data, killed and resumed runs, stale rows and caches, no pickle."""

import io
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from common.data.check import check_data, scan_files
from common.data.mimii import find_machines
from common.errors import AudioError, ConfigError, ModelError
from common.data.dataset import load_machine
from common.experiment.grid import run_grid
from common.experiment.pretrain import pretrain
from common.results import RESULT_COLUMNS
from common.models.train import Trainer
from conftest import make_config, run_main

REPO = Path(__file__).resolve().parent.parent


def config(folder: Path, root: Path, cache: Path, *, name: str = "cfg.yaml", **extra):
    """`conftest.make_config` in `folder` on the feature cache `cache` (models, results, scratch in `folder`)."""
    return make_config(folder, root, name=name, **{**extra, "data": {"cache_dir": str(cache), **extra.get("data", {})}})


def without_seconds(path: Path) -> str:
    """results.csv as text, less the wall-clock column (the only one allowed to differ between runs)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns="train_seconds").to_csv(index=False)


# --------------------------------------------------------------------------------------------
# Bad inputs: one per kind, written over one clip of a one-machine copy of the tiny data set


def _samples(path: Path) -> tuple[np.ndarray, int]:
    data, sr = sf.read(path, dtype="int16", always_2d=True)
    return data, sr


def _corrupt_fmt(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    at = raw.index(b"fmt ") + 8
    raw[at + 2 : at + 4] = struct.pack("<H", 0)  # channels = 0
    path.write_bytes(bytes(raw))


def _truncate(path: Path) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])


def _rewrite(path: Path, data: np.ndarray, sr: int, **kw) -> None:
    sf.write(path, data, sr, **kw)


BAD = {
    "corrupt": (_corrupt_fmt, r"has an invalid fmt chunk: channels=0"),
    "truncated": (_truncate, r"is truncated"),
    "empty": (lambda p: p.write_bytes(b""), r"is empty \(0 bytes\)"),
    "not_wav": (lambda p: p.write_text("id,value\n1,2\n"), r"is not a RIFF/WAVE file"),
    "wrong_rate": (lambda p: _rewrite(p, *_samples(p)[:1], 22050, subtype="PCM_16"),
                   r"has sample rate 22050 Hz, expected 16000 Hz"),
    "wrong_channels": (lambda p: _rewrite(p, _samples(p)[0][:, :1], 16000, subtype="PCM_16"),
                       r"has 1 channel\(s\), expected 2"),
    "silent": (lambda p: _rewrite(p, np.zeros_like(_samples(p)[0]), 16000, subtype="PCM_16"),
               r"is silent: channel 0 is all zero over all 32000 samples"),
    "constant": (lambda p: _rewrite(p, np.full_like(_samples(p)[0], 8192), 16000, subtype="PCM_16"),
                 r"is silent: channel 0 is constant \(0\.25\)"),
    "non_finite": (lambda p: _rewrite(p, np.where(np.arange(32000)[:, None] == 7, np.nan,
                                                  _samples(p)[0] / 32768.0), 16000, subtype="FLOAT"),
                   r"has 1 non-finite sample"),
    "too_short": (lambda p: _rewrite(p, _samples(p)[0][:300], 16000, subtype="PCM_16"),
                  r"is too short: 2 STFT frames .* feature\.frames=3 needs at least 3"),
}


@pytest.fixture
def one_machine(tiny_root, tmp_path):
    """A copy of fan/id_00 of the tiny set (8 normal + 3 abnormal clips, 2 s, 2 channels)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_root / "-6_dB_fan" / "fan" / "id_00", root / "-6_dB_fan" / "fan" / "id_00")
    return root


def _damage(root: Path, kind: str, name: str = "normal/00000005.wav") -> Path:
    path = root / "-6_dB_fan" / "fan" / "id_00" / name
    BAD[kind][0](path)
    return path


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_clip_stops_the_run_naming_it(one_machine, tmp_path, kind):
    bad = _damage(one_machine, kind)
    cfg = config(tmp_path / "v", one_machine, tmp_path / "cache", feature={"frames": 3})
    machine = find_machines(one_machine)[0]
    with pytest.raises(AudioError, match=re.escape(str(bad)) + ".*" + BAD[kind][1]) as err:
        load_machine(cfg, machine, progress=False)
    assert "data.on_bad_file: skip" in str(err.value) and "check-data" in str(err.value)


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_clip_is_skipped_listed_and_never_scored(one_machine, tmp_path, kind):
    bad = _damage(one_machine, kind, "abnormal/00000001.wav")
    cfg = config(tmp_path / "v", one_machine, tmp_path / "cache", feature={"frames": 3},
                 data={"on_bad_file": "skip"})
    machine = find_machines(one_machine)[0]
    with pytest.warns(UserWarning, match=r"left out 1 bad clip\(s\) of fan/id_00, first: .*" + re.escape(str(bad))):
        md = load_machine(cfg, machine, progress=False)
    assert [p for p, _ in md.skipped] == [str(bad)] and re.search(BAD[kind][1], md.skipped[0][1])
    assert bad not in md.split.eval_files and bad not in md.split.train
    assert str(bad) not in md.features.files
    # The split is that of the good clips: 2 abnormal, so the first 2 normal clips are evaluated.
    assert len(md.split.eval_files) == 4 and len(md.split.train) == 6


def test_frames_longer_than_every_clip_is_a_config_error(tiny_root, tmp_path):
    cfg = config(tmp_path / "v", tiny_root, tmp_path / "cache", feature={"frames": 200})
    with pytest.raises(ConfigError, match=re.escape(str(cfg.source)) + r": 'feature\.frames' must be at most .*got 200"):
        load_machine(cfg, find_machines(tiny_root)[0], progress=False)


def test_scan_cache_never_serves_a_stale_answer(one_machine, tmp_path):
    files = sorted((one_machine / "-6_dB_fan" / "fan" / "id_00").glob("*/*.wav"))
    cache = tmp_path / "cache"
    assert not any(c.problem for c in scan_files(files, cache_dir=cache, jobs=1))
    assert len(list((cache / "checks").glob("*.json"))) == 1
    assert not any(c.problem for c in scan_files(files, cache_dir=cache, jobs=1))  # a hit
    stat = files[3].stat()
    BAD["silent"][0](files[3])
    os.utime(files[3], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    checks = scan_files(files, cache_dir=cache, jobs=1)
    assert [c.path for c in checks if c.problem] == [str(files[3])]
    assert len(list((cache / "checks").glob("*.json"))) == 2


def test_changed_feature_parameters_never_serve_old_features(tiny_root, tmp_path):
    machine = find_machines(tiny_root)[0]
    a = load_machine(config(tmp_path / "a", tiny_root, tmp_path / "cache"), machine, progress=False)
    b = load_machine(config(tmp_path / "b", tiny_root, tmp_path / "cache", feature={"n_mels": 8}), machine,
                     progress=False)
    assert a.features.vectors.shape[1] == 32 and b.features.vectors.shape[1] == 16


# --------------------------------------------------------------------------------------------
# check-data


def test_check_data_on_a_clean_root(tiny_root):
    code, text = run_main(["check-data", str(tiny_root), "--no-progress"])
    assert code == 0 and "no problems in 4 machine(s)" in text
    table, problems = check_data(tiny_root)
    assert problems.empty
    assert table["machine"].tolist() == ["fan/id_00", "fan/id_02", "valve/id_00", "valve/id_02"]
    assert (table["normal"] == 8).all() and (table["abnormal"] == 3).all()
    assert (table["min_s"] == 2.0).all() and (table["rates"] == "16000").all() and (table["channels"] == "2").all()


def test_check_data_lists_every_problem_and_exits_1(one_machine):
    bad = [_damage(one_machine, "truncated", "normal/00000002.wav"),
           _damage(one_machine, "wrong_channels", "normal/00000006.wav")]
    for p in (one_machine / "-6_dB_fan" / "fan" / "id_00" / "abnormal").glob("*.wav"):
        BAD["silent"][0](p)
    code, text = run_main(["check-data", str(one_machine), "--no-progress"])
    assert code == 1
    for path in bad:
        assert str(path) in text
    table, problems = check_data(one_machine)
    assert table.loc[0, "channels"] == "1,2" and table.loc[0, "problems"] == 6
    assert len(problems) == 6  # 2 normal + 3 silent abnormal clips + the machine left without abnormal clips
    assert "has no abnormal clips" in problems["problem"].iloc[-1]


# --------------------------------------------------------------------------------------------
# Skip end to end: the bad clips are listed and counted, other targets' results are untouched


@pytest.fixture(scope="module")
def small_world(tmp_path_factory):
    """fan/id_00 + valve/id_00 of 1 s clips, pretrained and transferred once with no bad files."""
    from common.data.synth import generate_dataset

    tmp = tmp_path_factory.mktemp("skip")
    root = tmp / "data"
    generate_dataset(root, snr=-6, n_normal=8, n_abnormal=3, seconds=1.0, channels=2, seed=1,
                     types=("fan", "valve"), ids=("id_00",), progress=False)
    cfg = config(tmp / "v", root, tmp / "cache")
    pretrain(cfg, progress=False)
    run_grid(cfg, progress=False)
    return tmp, root, cfg


def test_skip_end_to_end_lists_counts_and_keeps_other_rows(small_world):
    tmp, root, cfg = small_world
    before = (cfg.output.result_dir / "results.csv").read_text()
    bad = [_damage(root, "truncated", "normal/00000005.wav"), _damage(root, "silent", "normal/00000000.wav"),
           _damage(root, "wrong_channels", "abnormal/00000001.wav")]

    # on_bad_file: error stops before any work, naming the first bad clip; nothing is lost.
    with pytest.raises(AudioError, match=re.escape(str(bad[1])) + r" is silent.*and 2 more bad clip"):
        run_grid(cfg, progress=False)
    assert (cfg.output.result_dir / "results.csv").read_text() == before

    skip = config(tmp / "v", root, tmp / "cache", name="skip.yaml", data={"on_bad_file": "skip"})
    # The fan model learned from a clip that is bad now: transfer refuses it until pretrain, which calls it
    # stale, trains it again on the good clips (issue 27, F22); the valve model stays.
    with pytest.warns(UserWarning, match=r"left out 3 bad clip"), \
            pytest.raises(ModelError, match=r"fan\.keras was trained on other clips than the source set fan"):
        run_grid(skip, progress=False)
    with pytest.warns(UserWarning, match=r"left out 3 bad clip"):
        assert {p.path.stem: p.trained for p in pretrain(skip, progress=False)} == {"fan": True, "valve": False}
    with pytest.warns(UserWarning) as caught:
        results = run_grid(skip, progress=False)
    messages = [str(w.message) for w in caught]
    assert any("left out 3 bad clip(s) of fan/id_00" in m for m in messages)
    # fan's 6 rows (its clips) and valve's 4 zero_shot and transfer rows (their source model) are recomputed
    assert any(re.match(r"10 row\(s\) of .*results\.csv were computed with another config", m) for m in messages)

    out = skip.output.result_dir
    skipped = pd.read_csv(out / "skipped.csv")
    assert sorted(skipped["path"]) == sorted(map(str, bad)) and (skipped["target_type"] == "fan").all()
    assert skipped["problem"].str.contains("truncated").sum() == 1
    fan = results[results.target_type == "fan"]
    valve = results[results.target_type == "valve"]
    assert (fan["n_skipped_clips"] == 3).all() and (valve["n_skipped_clips"] == 0).all()
    assert (fan["n_eval_clips"] == 4).all() and len(results) == 12
    scores = pd.read_csv(out / "scores.csv")
    assert not set(map(str, bad)) & set(scores["path"])
    # The valve scratch row was reused as it was (train_seconds included), not recomputed.
    old = pd.read_csv(io.StringIO(before), dtype={"budget": str})
    scratch = (valve.method == "scratch").to_numpy()
    pd.testing.assert_frame_equal(valve[scratch].reset_index(drop=True),
                                  old[(old.target_type == "valve") & (old.method == "scratch")].reset_index(drop=True)
                                  .assign(n_skipped_clips=0), check_exact=True, check_dtype=False)


# --------------------------------------------------------------------------------------------
# Killed runs resume; changed configs recompute


ONE_BUDGET = {"budgets": ["all"], "seeds": [0]}  # 4 targets x (scratch + zero_shot + transfer) = 12 rows


@pytest.fixture(scope="module")
def clean_run(pipeline, tiny_root, tmp_path_factory):
    """One uninterrupted transfer run in its own folder, on the session's v1 models (and a copy of its scratch
    store): (folder, models, config, results)."""
    shared = pipeline()
    tmp = tmp_path_factory.mktemp("resume")
    shutil.copytree(shared.scratch, tmp / "clean" / "scratch")
    cfg = config(tmp / "clean", tiny_root, shared.cache, output={"model_dir": str(shared.models)},
                 experiment=ONE_BUDGET)
    results = run_grid(cfg, progress=False)
    return tmp, shared.models, cfg, results


def test_sigkill_mid_run_then_resume_equals_an_uninterrupted_run(tiny_root, clean_run):
    tmp, models, clean, results = clean_run
    # Its own result folder and scratch store, so nothing is borrowed from the clean run.
    folder = tmp / "killed"
    cfg = config(folder, tiny_root, clean.data.cache_dir, output={"model_dir": str(models)}, experiment=ONE_BUDGET)
    out = cfg.output.result_dir
    cmd = [sys.executable, "-m", "common", "transfer", str(cfg.source)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    with open(folder / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        # Kill once results.csv holds the first target (3 rows) and a row of the next one is stored.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / ".store").glob("*.json"))) > 3:
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"the run ended before it could be killed: {(folder / 'log.txt').read_text()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    partial = pd.read_csv(out / "results.csv", dtype={"budget": str})
    row_files = [json.loads(p.read_text())["row"] for p in (out / ".store").glob("*.json")]
    # The store holds every finished row, those results.csv shows too; a kill after a rewrite may find no more.
    assert 0 < len(partial) <= len(row_files) < len(results)

    resumed = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    final = pd.read_csv(out / "results.csv", dtype={"budget": str})
    assert not final.duplicated(["target_type", "target_id", "source", "method", "budget", "seed"]).any()
    assert list(final.columns) == RESULT_COLUMNS and len(final) == len(results)
    assert without_seconds(out / "results.csv") == without_seconds(clean.output.result_dir / "results.csv")
    assert (out / "scores.csv").read_text() == (clean.output.result_dir / "scores.csv").read_text()
    assert not (out / ".rows").exists() and len(list((out / ".store").glob("*.json"))) == len(results)
    # Rows finished before the kill were reused, not recomputed: their wall-clock times are kept.
    kept = pd.DataFrame(row_files)
    merged = kept.merge(final, on=["target_type", "target_id", "source", "method", "budget", "seed"])
    assert len(merged) == len(kept) and (merged["train_seconds_x"] == merged["train_seconds_y"]).all()


def test_changed_config_recomputes_stale_rows_and_says_so(tiny_root, clean_run, tmp_path):
    tmp, models, clean, results = clean_run
    shutil.copytree(clean.output.result_dir, tmp_path / "results")
    shutil.copytree(clean.output.scratch_dir, tmp_path / "scratch")
    changed = config(tmp_path, tiny_root, clean.data.cache_dir, output={"model_dir": str(models)}, experiment=ONE_BUDGET,
                     transfer={"epochs": 2})
    with pytest.warns(UserWarning, match=rf"{len(results)} row\(s\) of .*results\.csv were computed with another config"):
        new = run_grid(changed, progress=False)
    assert len(new) == len(results) and not set(new["config_hash"]) & set(results["config_hash"])
    assert new["config_hash"].nunique() == results["config_hash"].nunique()
    scores = [pd.read_csv(d / "scores.csv") for d in (clean.output.result_dir, changed.output.result_dir)]
    moved = scores[0]["method"] == "transfer"
    assert not np.array_equal(scores[0].loc[moved, "score"], scores[1].loc[moved, "score"])
    # scratch and zero_shot do not depend on transfer.epochs: recomputed to the same scores.
    np.testing.assert_array_equal(scores[0].loc[~moved, "score"], scores[1].loc[~moved, "score"])


def test_a_narrower_rerun_keeps_every_row_in_the_store(tiny_root, clean_run, tmp_path, monkeypatch):
    tmp, models, clean, results = clean_run
    out = tmp_path / "results"
    shutil.copytree(clean.output.result_dir, out)
    wide = config(tmp_path, tiny_root, clean.data.cache_dir, name="wide.yaml", output={"model_dir": str(models)},
                  experiment={"budgets": [2, "all"], "seeds": [0]})
    run_grid(wide, progress=False)  # adds the 12 rows of budget 2
    wide_csv = {n: (out / n).read_text() for n in ("results.csv", "scores.csv")}
    fits = []
    original = Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self, *a, **kw: fits.append(1) or original(self, *a, **kw))

    narrow = config(tmp_path, tiny_root, clean.data.cache_dir, output={"model_dir": str(models)}, experiment=ONE_BUDGET)
    with pytest.warns(UserWarning, match=rf"12 other row\(s\) .* are kept in {re.escape(str(out / '.store'))}; "
                                         rf".*results\.csv shows the {len(results)} row\(s\) of this config"):
        again = run_grid(narrow, progress=False)
    pd.testing.assert_frame_equal(again, results, check_exact=True)  # every row reused as it was
    assert set(pd.read_csv(out / "scores.csv", dtype={"budget": str})["budget"]) == {"all"}
    assert len(list((out / ".store").glob("*.json"))) == 2 * len(results)
    # The wide config again: nothing is recomputed, and its files come back byte for byte.
    run_grid(wide, progress=False)
    assert not fits and {n: (out / n).read_text() for n in wide_csv} == wide_csv


def test_killed_pretrain_keeps_finished_models(tiny_root, tmp_path, monkeypatch):
    cfg = config(tmp_path, tiny_root, tmp_path / "cache", fit={"epochs": 1})
    calls = []
    original = Trainer.fit

    def dies_on_second(self, *args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kw)

    monkeypatch.setattr(Trainer, "fit", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, progress=False)
    assert sorted(p.name for p in cfg.output.model_dir.glob("*.keras")) == ["fan.keras"]
    assert not list(cfg.output.model_dir.glob(".*tmp"))
    calls.clear()
    made = pretrain(cfg, progress=False)
    assert [(p.source.label, p.trained) for p in made] == [("fan", False), ("valve", True)] and len(calls) == 1


# --------------------------------------------------------------------------------------------
# No pickle anywhere


def test_no_pickle_and_safe_model_loading():
    sources = {p: p.read_text() for p in (REPO / "common").glob("*.py")}
    for path, text in sources.items():
        assert not re.search(r"^\s*(import|from)\s+(pickle|cPickle|dill|joblib|cloudpickle)\b", text, re.M), path
        assert "allow_pickle=True" not in text and "safe_mode=False" not in text, path
        for call in re.findall(r"np\.load\([^)]*\)", text):
            assert "allow_pickle=False" in call, (path, call)
        for call in re.findall(r"keras\.saving\.load_model\([^)]*\)|keras\.models\.load_model\([^)]*\)", text):
            assert "safe_mode=True" in call, (path, call)
        assert "pd.read_pickle" not in text and ".to_pickle(" not in text, path
