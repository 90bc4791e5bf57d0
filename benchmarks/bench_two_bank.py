"""Two-bank kNN (issue 30): target bank alone vs source + target bank, with and without SMOTE, per budget and world.

Usage::

    python benchmarks/bench_two_bank.py [--work /tmp/bench_two_bank] [--worlds default,loose_knock]
        [--normal 30] [--abnormal 10] [--seconds 4] [--seeds 0,1,2,3,4] [--smote-ratio 0.2] [--smote-k 2] [--k 1]

For each world it writes a 16-machine synthetic set under ``<work>/<world>`` unless one is there (one
channel, seed 0), splits every machine as MIMII does (`common.data.split_machine`: 10 normal + 10 abnormal
evaluation clips, 20 normal training clips) and takes one vector per clip: `common.clipvectors.logmel_stats`
of the default log-mel features. For each machine (the *target*):

- source bank: the training clips of the other three IDs of its type (60 clips);
- target bank: 1, 4 or all (20) of its own training clips (`common.data.budget_subset`, seeds ``--seeds``);
- scores of its evaluation clips by `common.scoring.two_bank`, cosine distance, ``k`` neighbours:
  ``target`` (target bank alone, plain kNN), ``2b-<normalise>`` (min over both banks) and ``+S``
  (the target bank first enlarged by SMOTE, ASDKit's way: unit rows, to ``smote_ratio`` x the source
  bank's rows, ``smote_k`` neighbours).

It prints the mean AUC over the 16 targets (and seeds) per world and budget ("n/a" where the normalisation
cannot be fitted: 1 clip has no leave-one-out distance), then paired differences (`PAIRS`) with a 95 %
bootstrap interval over targets. About 80 s on 2 shared cores with the data to write, 30 s without.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from common.data.mimii import budget_subset, find_machines, split_machine
from common.data.synth import generate_dataset
from common.errors import MetricError
from common.features.clipvectors import logmel_stats
from common.features.extract import extract
from common.features.params import FeatureConfig
from common.report.stats import bootstrap_ci
from common.scoring import two_bank

REPO = Path(__file__).resolve().parents[1]
BUDGETS = (1, 4, "all")
NORMALISATIONS = ("none", "mean", "zscore", "local")
PAIRS = (("2b-none", "target"), ("2b-none+S", "2b-none"), ("2b-zscore+S", "2b-none"))  # (method, baseline)


def clip_rows(root: Path) -> dict:
    """Per machine: (type, id) -> training rows, evaluation rows, evaluation labels, training clip paths."""
    features = FeatureConfig()
    out = {}
    for machine in find_machines(root):
        split = split_machine(machine)
        files = list(split.train) + list(split.eval_files)
        rows = logmel_stats(*extract(files, progress=False, jobs=2, **features.kwargs()), n_mels=features.n_mels)
        out[(machine.type, machine.id)] = (rows[:len(split.train)], rows[len(split.train):], split.eval_labels,
                                          list(split.train))
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def cell_aucs(tb, eval_rows, labels, source, target, *, k: int, n_smote: int, smote_k: int, seed: int) -> dict:
    """AUC of each scoring of one target machine at one budget and seed."""
    def auc(bank_s, bank_t, normalise):
        try:
            return roc_auc_score(labels, tb.two_bank_scores(eval_rows, bank_s, bank_t, k=k, normalise=normalise))
        except MetricError:
            return np.nan

    row = {"target": auc(None, target, "none")}
    smoted = tb.smote_bank(unit(target), max(len(target), n_smote), k=smote_k, seed=seed)
    for normalise in NORMALISATIONS:
        row[f"2b-{normalise}"] = auc(source, target, normalise)
        row[f"2b-{normalise}+S"] = auc(source, smoted, normalise)
    return row


def world_table(tb, data: dict, args: argparse.Namespace) -> pd.DataFrame:
    rows = []
    for (mtype, mid), (_, eval_rows, labels, files) in data.items():
        source = np.vstack([data[key][0] for key in data if key[0] == mtype and key[1] != mid])
        n_smote = int(round(args.smote_ratio * len(source)))
        for budget in BUDGETS:
            for seed in (args.seeds if budget != "all" else args.seeds[:1]):
                chosen = {str(p) for p in budget_subset(files, budget, seed=seed)}
                target = data[(mtype, mid)][0][[str(p) in chosen for p in files]]
                rows.append({"machine": f"{mtype}/{mid}", "budget": str(budget), "seed": seed,
                             **cell_aucs(tb, eval_rows, labels, source, target, k=args.k, n_smote=n_smote,
                                         smote_k=args.smote_k, seed=seed)})
    return pd.DataFrame(rows)


def paired_differences(results: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC difference of each pair in `PAIRS`, per world and budget, with a 95 % bootstrap interval over targets.

    A target's difference is first averaged over its seeds, so the unit resampled is the machine (16).
    """
    rows = []
    for (world, budget), cell in results.groupby(["world", "budget"], sort=False):
        per_target = cell.groupby("machine").mean(numeric_only=True)
        for method, baseline in PAIRS:
            diff = (per_target[method] - per_target[baseline]).dropna()
            low, high = bootstrap_ci(diff.to_numpy()) if len(diff) else (np.nan, np.nan)
            rows.append({"world": world, "budget": budget, "difference": f"{method} - {baseline}",
                         "mean": diff.mean(), "ci_low": low, "ci_high": high, "targets": len(diff)})
    return pd.DataFrame(rows).set_index(["world", "budget", "difference"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_two_bank"))
    parser.add_argument("--worlds", default="default,loose_knock")
    parser.add_argument("--normal", type=int, default=30)
    parser.add_argument("--abnormal", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--smote-ratio", type=float, default=0.2, help="SMOTE target rows per source row (ASDKit)")
    parser.add_argument("--smote-k", type=int, default=2, help="SMOTE neighbours (ASDKit)")
    parser.add_argument("--k", type=int, default=1, help="kNN neighbours of a scored clip (ASDKit)")
    args = parser.parse_args()
    args.seeds = [int(s) for s in args.seeds.split(",")]
    tb, tables, start = two_bank, [], time.perf_counter()
    for world in args.worlds.split(","):
        root = args.work / world
        if not root.is_dir():
            generate_dataset(root, n_normal=args.normal, n_abnormal=args.abnormal, seconds=args.seconds, channels=1,
                             world=world, jobs=2, progress=False)
        tables.append(world_table(tb, clip_rows(root), args).assign(world=world))
    results = pd.concat(tables)
    results.to_csv(args.work / "two_bank_results.csv", index=False)
    methods = [c for c in results.columns if c not in ("machine", "budget", "seed", "world")]
    table = results.groupby(["world", "budget"], sort=False)[methods].mean()
    print(f"mean AUC over 16 targets x seeds {args.seeds} (budget 'all': seed {args.seeds[0]}); "
          f"k={args.k}, SMOTE to {args.smote_ratio} x source rows with {args.smote_k} neighbours")
    print(table.to_string(float_format="{:.3f}".format, na_rep="n/a"))
    print("\npaired AUC differences, 95 % bootstrap interval over the 16 targets (seeds averaged per target)")
    print(paired_differences(results).to_string(float_format="{:+.3f}".format, na_rep="n/a"))
    print(f"rows in {args.work / 'two_bank_results.csv'}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
