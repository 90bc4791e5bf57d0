"""The end-to-end demo: a small synthetic MIMII set, then v1-v4 pretrain + transfer, then one summary."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from .config import load_config
from .data import find_machines
from .errors import DataError
from .layout import pretrain_yaml, transfer_yaml

# Small enough for a 2-core machine in about 5 minutes (JAX), large enough for AUCs to mean something.
DEMO_DATA = {"n_normal": 50, "n_abnormal": 25, "seconds": 10.0, "channels": 8, "seed": 0}
DEMO_OVERRIDES: dict[str, dict[str, Any]] = {
    # No validation pass: at these sizes Keras' per-epoch evaluation costs more than the training.
    "fit": {"epochs": 10, "batch_size": 256, "validation_split": 0.0},
    "transfer": {"epochs": 5},
    # The AE family's main methods and every method that trains nothing per cell (statistics, nearest
    # neighbour): the three families at the demo's time. Budgets down to one clip for the budget curve.
    # One seed: the cells are 16 targets x 4 budgets x (3 + 5 per source set) per version.
    "experiment": {"budgets": [1, 2, 4, "all"], "seeds": [0],
                   "methods": ["scratch", "zero_shot", "transfer", "lw_scratch", "lw_transfer", "logmel_knn",
                               "embed_zero_shot", "embed_knn"]},
}


def ensure_data(root: Path, *, snr: float = -6, progress: bool = True) -> bool:
    """Generate the demo's synthetic set under `root` unless machines exist there; True if generated."""
    try:
        find_machines(root, snr=snr)
        return False
    except DataError:
        from .synth import generate_dataset

        generate_dataset(root, snr=snr, jobs=2, progress=progress, **DEMO_DATA)
        return True


def run_versions(repo: Path, *, versions=("v1", "v2", "v3", "v4"), overrides=None, progress: bool = True) -> pd.DataFrame:
    """Pretrain and transfer each version with its own YAMLs (plus `overrides`); return all summaries."""
    # Every config first: a fit.backend in them must be set before Keras is imported.
    configs = [(load_config(pretrain_yaml(repo, v), overrides=overrides),
                load_config(transfer_yaml(repo, v), overrides=overrides)) for v in versions]
    from .experiment import transfer
    from .pretrain import pretrain
    from .results import summarize

    summaries = []
    for make_cfg, transfer_cfg in configs:
        pretrain(make_cfg, progress=progress)
        summaries.append(summarize(transfer(transfer_cfg, progress=progress)))
    return pd.concat(summaries, ignore_index=True)


def run_demo(repo: Path, *, root: Path | None = None) -> int:
    """`python -m common demo`: data (generated if missing) -> v1-v4 -> printed summary table."""
    start = time.perf_counter()
    root = (root or repo / "Sample_data").resolve()
    overrides = {**DEMO_OVERRIDES, "data": {"root": str(root)}}
    if ensure_data(root):
        print(f"generated a synthetic MIMII-layout data set under {root}")
    summary = run_versions(repo, overrides=overrides)
    with pd.option_context("display.width", 120, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print("\nMean over targets (AUC / pAUC on each target's evaluation split; minus_scratch is paired):")
        print(summary.to_string(index=False))
    from .report import write_report
    from .results import result_dirs

    report = write_report(repo)
    folders = ", ".join(str(d.relative_to(repo)) if d.is_relative_to(repo) else str(d)
                        for d in result_dirs(repo).values())
    print(f"\nresults in {folders}; statistics and plots in {report}")
    print(f"finished in {time.perf_counter() - start:.0f} s")
    return 0
