"""Result tables: results.csv (one row per run), scores.csv (every clip's score), summary.csv.

results.csv and scores.csv only *show* the rows of the current config; every finished row is kept
in the result folder's store (`common.store.ResultStore`), from which they are rebuilt on every run.

All files are written atomically, rows in a fixed order, so a resumed run writes the same files.
Every column is a pure function of the config, the seed and the data except ``train_seconds``
(wall-clock time of the fit): two runs of one config give results.csv files equal in every other
column, bit for bit on CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import DataError
from .io import atomic_write_text

RESULT_COLUMNS = [
    "version", "target_type", "target_id", "source", "method", "budget", "seed",
    "auc", "pauc", "n_train_clips", "n_eval_clips", "train_seconds", "config_hash",
    "n_skipped_clips",  # bad clips of the target left out under data.on_bad_file: skip
    # Decision threshold fitted on the model's own training normal clips (eval.threshold), and the
    # precision / recall / F1 of "score > threshold" on the evaluation split (anomalous = positive).
    "threshold", "precision", "recall", "f1",
]
SCORE_COLUMNS = ["version", "target_type", "target_id", "source", "method", "budget", "seed", "path", "label", "score"]
SUMMARY_COLUMNS = [
    "version", "method", "budget", "n_targets", "n_runs", "auc_mean", "pauc_mean",
    "auc_minus_scratch", "pauc_minus_scratch",
]
KEY = ["target_type", "target_id", "source", "method", "budget", "seed"]
_METHOD_ORDER = {"scratch": 0, "zero_shot": 1, "transfer": 2}
_DTYPES = {"budget": str, "source": str, "target_id": str, "target_type": str, "config_hash": str}
# Floats read back exactly as written, so reused rows are rewritten bit for bit: pandas 3 parses
# round-trip by default (and deprecates the option); pandas 2's default parser may be off by an ulp.
_EXACT = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    order = df.assign(_m=df["method"].map(_METHOD_ORDER), _b=df["budget"].map(_budget_order))
    return df.loc[order.sort_values(["target_type", "target_id", "_b", "seed", "source", "_m"], kind="stable").index]


def _budget_order(budget: str) -> float:
    return float("inf") if budget == "all" else float(budget)


def write_results(out: Path, rows: Sequence[dict[str, Any]], scores: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Write results.csv and scores.csv (atomically, in a fixed row order); return the results.

    ``scores[i]`` holds the clip scores behind ``rows[i]``. scores.csv is written first, then
    results.csv. Both only show rows: every row is in the `ResultStore` before it is written here.
    """
    if len(rows) != len(scores):
        raise ValueError(f"{len(rows)} result rows but {len(scores)} score tables: each row needs its scores")
    results = pd.DataFrame(list(rows), columns=RESULT_COLUMNS)
    results = _sorted(results.drop_duplicates(subset=KEY, keep="last"))
    order = list(results.index)
    results = results.reset_index(drop=True)
    all_scores = (pd.concat([scores[i][SCORE_COLUMNS] for i in order], ignore_index=True) if order
                  else pd.DataFrame(columns=SCORE_COLUMNS))
    atomic_write_text(out / "scores.csv", all_scores.to_csv(index=False))
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    return results


def read_table(path: Path, *, dtype: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A results / scores CSV for reading (report, export); DataError naming it when it is empty or not a table."""
    try:
        return pd.read_csv(path, dtype=dict(dtype or _DTYPES), keep_default_na=False, **_EXACT)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path} is empty or not a CSV table ({type(exc).__name__}): rerun the transfer command "
                        "of its version to rewrite it from the result store") from None


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC / pAUC per method and budget, and the paired mean difference to scratch.

    Differences pair each run with the scratch run of the same target, budget and seed.
    """
    scratch = results[results["method"] == "scratch"].set_index(["target_type", "target_id", "budget", "seed"])
    out = []
    for (version, method, budget), g in results.groupby(["version", "method", "budget"], sort=False):
        idx = pd.MultiIndex.from_frame(g[["target_type", "target_id", "budget", "seed"]])
        base = scratch.reindex(idx)
        out.append({
            "version": version, "method": method, "budget": budget,
            "n_targets": g[["target_type", "target_id"]].drop_duplicates().shape[0], "n_runs": len(g),
            "auc_mean": g["auc"].mean(), "pauc_mean": g["pauc"].mean(),
            "auc_minus_scratch": float(np.nanmean(g["auc"].values - base["auc"].values)),
            "pauc_minus_scratch": float(np.nanmean(g["pauc"].values - base["pauc"].values)),
        })
    summary = pd.DataFrame(out, columns=SUMMARY_COLUMNS)
    order = summary.assign(_m=summary["method"].map(_METHOD_ORDER), _b=summary["budget"].map(_budget_order))
    return summary.loc[order.sort_values(["version", "_b", "_m"]).index].reset_index(drop=True)


def write_summary(out: Path, results: pd.DataFrame) -> pd.DataFrame:
    """Write summary.csv beside results.csv; return it."""
    summary = summarize(results)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False, float_format="%.4f"))
    return summary


def per_target(results: pd.DataFrame, *, metric: str = "auc") -> pd.DataFrame:
    """`metric` per target machine (rows) and method x budget (columns), averaged over sources and seeds."""
    table = results.pivot_table(index=["target_type", "target_id"], columns=["method", "budget"], values=metric,
                                aggfunc="mean")
    methods = [m for m in _METHOD_ORDER if m in table.columns.get_level_values(0)]
    budgets = sorted(table.columns.get_level_values(1).unique(), key=_budget_order)
    return table.reindex(columns=pd.MultiIndex.from_product([methods, budgets], names=["method", "budget"]))
