"""A row's AUC, pAUC, precision, recall and F1: `common.scoring.metrics` against scikit-learn's calls (issue 32).

    python benchmarks/bench_metrics.py [--normal 50] [--anomalous 25] [--repeats 500]

The grid computes these for every row (the demo: about 5,000). Prints ms per row for the scikit-learn calls the
project made before (``roc_auc_score`` twice, ``precision_recall_fscore_support``) and for ours, their ratio, and
whether every number agrees to the last bit, in this run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from _bench import load_line, machine_line
from common.scoring.metrics import auc_pauc, decision_metrics


def sklearn_row(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple:
    prf = precision_recall_fscore_support(y, (s > threshold).astype(int), average="binary", pos_label=1,
                                          zero_division=0)[:3]
    return (roc_auc_score(y, s), roc_auc_score(y, s, max_fpr=0.1), *map(float, prf))


def ours_row(y: np.ndarray, s: np.ndarray, threshold: float) -> tuple:
    return (*auc_pauc(y, s, max_fpr=0.1), *decision_metrics(y, s, threshold=threshold))


def ms_per_row(row, cases, repeats: int) -> float:
    row(*cases[0])
    start = time.perf_counter()
    for i in range(repeats):
        row(*cases[i % len(cases)])
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--normal", type=int, default=50)
    parser.add_argument("--anomalous", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=500)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(args.normal, int), np.ones(args.anomalous, int)]
    cases = [(y, rng.normal(size=len(y)) + y, 0.5) for _ in range(50)]
    print(machine_line())
    print(f"load before: {load_line()}")
    agree = all(sklearn_row(*c) == ours_row(*c) for c in cases)
    theirs, ours = ms_per_row(sklearn_row, cases, args.repeats), ms_per_row(ours_row, cases, args.repeats)
    print(f"{args.normal} normal + {args.anomalous} anomalous clips per row, {args.repeats} rows")
    print(f"scikit-learn: {theirs:.3f} ms per row; common.scoring.metrics: {ours:.3f} ms per row; "
          f"ratio {theirs / ours:.1f}x; every number equal: {agree}")
    print(f"load after: {load_line()}")


if __name__ == "__main__":
    main()
