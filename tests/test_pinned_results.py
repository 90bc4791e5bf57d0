"""Pinned results: a refactor (or a speed-up) must not change a single result.

`tests/data/pinned/` holds results.csv and scores.csv of a small v1 + v2 grid (tiny synthetic data, two
seeds, two budgets, every method of the three families), computed on the default backend (JAX since issue 17; results
record their backend, and TensorFlow's differ in the last digits of every float). A run of the
same config today must give the same rows: every column but ``train_seconds`` (wall clock) and
``config_hash`` (it keys the exact files, whose path, inode and ctime differ per checkout), and the same
clip scores. Floats are compared to 1e-6 relative: a real change (another split, seed, init or method)
moves them by orders of magnitude more. Regenerate only on purpose: ``python tests/test_pinned_results.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

PINNED = Path(__file__).resolve().parent / "data" / "pinned"
VERSIONS = ("v1", "v2")
SIZES = {
    "feature": {"n_mels": 16, "frames": 2, "n_fft": 512, "hop_length": 256},
    "model": {"hidden": [16], "bottleneck": 4},
    "fit": {"epochs": 2, "batch_size": 64},
    "transfer": {"epochs": 1},
    "embedding": {"hidden": [16], "embedding_dim": 8, "window": 8, "epochs": 3, "finetune_freeze": ["dense_1"]},
    "statistics": {"source_clips": 3},
    "experiment": {"budgets": [2, "all"], "seeds": [0, 1], "methods": ["scratch", "zero_shot", "transfer",
                   "transfer_frozen", "transfer_mahalanobis", "lw_scratch", "lw_transfer", "logmel_knn",
                   "embed_zero_shot", "embed_knn", "embed_finetune"]},
}
NOT_COMPARED = ["train_seconds", "config_hash"]


def run_grid(root: Path, work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pretrain and transfer `VERSIONS` on the data under `root`; all rows and scores, paths relative to `root`."""
    from common.__main__ import main

    results, scores = [], []
    for version in VERSIONS:
        folder = work / version
        doc = {k: dict(v) for k, v in SIZES.items()}
        doc["experiment"]["version"] = version
        if version == "v2":  # the tiny set has two IDs per type: one source machine, no classifier to pretrain
            doc["experiment"]["methods"] = [m for m in doc["experiment"]["methods"] if not m.startswith("embed_")]
        doc["data"] = {"root": str(root), "cache_dir": str(work / "cache"), "jobs": 1}
        doc["output"] = {"model_dir": str(folder / "models"), "result_dir": str(folder / "results"),
                         "scratch_dir": str(work / "scratch")}
        doc["transfer"]["init_from"] = str(folder / "models")
        folder.mkdir(parents=True, exist_ok=True)
        cfg = folder / "cfg.yaml"
        cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
        for command in ("pretrain", "transfer"):
            assert main([command, str(cfg)]) == 0, f"{command} {version} failed"
        results.append(pd.read_csv(folder / "results" / "results.csv", dtype=str, keep_default_na=False))
        scores.append(pd.read_csv(folder / "results" / "scores.csv", dtype=str, keep_default_na=False))
    results = pd.concat(results, ignore_index=True).drop(columns=NOT_COMPARED)
    scores = pd.concat(scores, ignore_index=True)
    scores["path"] = [Path(p).relative_to(root).as_posix() for p in scores["path"]]
    return results, scores


def assert_same(table: pd.DataFrame, pinned: pd.DataFrame, *, name: str) -> None:
    """Equal columns and text, floats to 1e-6 relative."""
    assert list(table.columns) == list(pinned.columns), name
    assert len(table) == len(pinned), f"{name}: {len(table)} rows, pinned {len(pinned)}"
    for column in table.columns:
        got, want = table[column].to_numpy(), pinned[column].to_numpy()
        try:
            a, b = got.astype(float), want.astype(float)
        except ValueError:
            assert (got == want).all(), f"{name}.{column} differs: {got[got != want][:5]} vs {want[got != want][:5]}"
            continue
        assert np.allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=True), f"{name}.{column} differs from the pin"


def test_small_grid_equals_the_pinned_results(tiny_root, tmp_path):
    results, scores = run_grid(tiny_root, tmp_path)
    pinned_results = pd.read_csv(PINNED / "results.csv", dtype=str, keep_default_na=False)
    pinned_scores = pd.read_csv(PINNED / "scores.csv", dtype=str, keep_default_na=False)
    assert_same(results, pinned_results, name="results.csv")
    assert_same(scores, pinned_scores, name="scores.csv")


if __name__ == "__main__":  # regenerate the pin (on purpose only), with the tests' tiny data set
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import TINY_DATA  # noqa: E402
    from common.synth import generate_dataset  # noqa: E402

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "Sample_data"
        generate_dataset(root, progress=False, **TINY_DATA)
        results, scores = run_grid(root, Path(tmp) / "work")
        PINNED.mkdir(parents=True, exist_ok=True)
        results.to_csv(PINNED / "results.csv", index=False)
        scores.to_csv(PINNED / "scores.csv", index=False)
        print(f"wrote {PINNED}: {len(results)} rows, {len(scores)} scores")
