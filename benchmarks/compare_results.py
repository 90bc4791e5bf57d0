"""Do two runs of the grid agree within the seed-to-seed spread? (e.g. TensorFlow vs JAX, same seed)

Usage::

    python benchmarks/compare_results.py A B --spread C D

A, B, C, D are folders (or results.csv files) of the same grid: A and B differ in what is being
checked (a backend, a batching change) at the same seed, C and D differ only in the seed (same
backend). For every (version, method, budget) the mean AUC over targets is compared: the change
A -> B against the change C -> D, and per target the paired absolute differences. A backend
change is harmless when its differences are no larger than those a new seed brings.

How the tables of docs/performance.md were made: the demo (``make demo``'s data and settings) run
three times, JAX seed 0, JAX seed 1 and TensorFlow seed 0, and each run's results.csv files kept.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

KEYS = ["version", "method", "budget"]
TARGET = ["target_type", "target_id", "source"]


def read(path: Path) -> pd.DataFrame:
    """Every results.csv under `path` (or the file itself), one table."""
    files = [path] if path.is_file() else sorted(path.rglob("results*.csv"))
    if not files:
        raise SystemExit(f"no results*.csv under {path}")
    return pd.concat([pd.read_csv(f, dtype={"budget": str}) for f in files], ignore_index=True)


def paired(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Rows of `a` and `b` for the same cell but the seed, with AUCs auc_a, auc_b."""
    cols = KEYS + TARGET + ["auc"]
    return a[cols].merge(b[cols], on=KEYS + TARGET, suffixes=("_a", "_b"))


def agreement(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (version, method, budget): mean AUC of each side, their difference and the mean |paired difference|."""
    pairs = pairs.assign(abs_diff=(pairs.auc_a - pairs.auc_b).abs())
    out = pairs.groupby(KEYS).agg(mean_a=("auc_a", "mean"), mean_b=("auc_b", "mean"), abs_paired=("abs_diff", "mean"),
                                  n=("auc_a", "size")).reset_index()
    return out.assign(diff_of_means=out.mean_b - out.mean_a)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--spread", type=Path, nargs=2, required=True, metavar=("C", "D"))
    args = parser.parse_args(argv)
    change = agreement(paired(read(args.a), read(args.b)))
    spread = agreement(paired(*(read(p) for p in args.spread)))
    both = change.merge(spread, on=KEYS, suffixes=("", "_seed"))
    with pd.option_context("display.width", 160, "display.max_rows", 500, "display.float_format", "{:.3f}".format):
        print(both[KEYS + ["n", "mean_a", "mean_b", "diff_of_means", "diff_of_means_seed", "abs_paired",
                           "abs_paired_seed"]].to_string(index=False))
    print(f"\nover {len(both)} (version, method, budget) rows of {int(both.n.sum())} paired cells:")
    for name, col in (("|difference of mean AUC|", "diff_of_means"), ("mean |paired AUC difference|", "abs_paired")):
        print(f"  {name:32s} change {both[col].abs().mean():.4f} (max {both[col].abs().max():.4f})   "
              f"seed to seed {both[col + '_seed'].abs().mean():.4f} (max {both[col + '_seed'].abs().max():.4f})")
    within = (both.diff_of_means.abs() <= both.diff_of_means_seed.abs().max()).mean()
    print(f"  rows whose change of mean AUC is within the largest seed-to-seed change: {100 * within:.0f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
