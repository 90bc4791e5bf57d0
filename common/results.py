"""Result tables: results.csv (one row per run), scores.csv (every clip's score), summary.csv.

All files are written atomically, rows in a fixed order, so a resumed run writes the same files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .io import atomic_write_text

RESULT_COLUMNS = [
    "version", "target_type", "target_id", "source", "method", "budget", "seed",
    "auc", "pauc", "n_train_clips", "n_eval_clips", "train_seconds", "config_hash",
]
SCORE_COLUMNS = ["version", "target_type", "target_id", "source", "method", "budget", "seed", "path", "label", "score"]
SUMMARY_COLUMNS = [
    "version", "method", "budget", "n_targets", "n_runs", "auc_mean", "pauc_mean",
    "auc_minus_scratch", "pauc_minus_scratch",
]
KEY = ["target_type", "target_id", "source", "method", "budget", "seed"]
_METHOD_ORDER = {"scratch": 0, "zero_shot": 1, "transfer": 2}
_DTYPES = {"budget": str, "source": str, "target_id": str, "target_type": str, "config_hash": str}


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    order = df.assign(_m=df["method"].map(_METHOD_ORDER), _b=df["budget"].map(_budget_order))
    return df.loc[order.sort_values(["target_type", "target_id", "_b", "seed", "source", "_m"], kind="stable").index]


def _budget_order(budget: str) -> float:
    return float("inf") if budget == "all" else float(budget)


def write_results(out: Path, rows: Sequence[dict[str, Any]], scores: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Write results.csv and scores.csv (atomically, in a fixed row order); return the results."""
    results = pd.DataFrame(list(rows), columns=RESULT_COLUMNS)
    results = _sorted(results.drop_duplicates(subset=KEY, keep="last")).reset_index(drop=True)
    all_scores = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=SCORE_COLUMNS)
    all_scores = all_scores.drop_duplicates(subset=KEY + ["path"], keep="last")
    if len(all_scores):
        rank = {tuple(k): i for i, k in enumerate(results[KEY].astype(str).itertuples(index=False))}
        pos = all_scores[KEY].astype(str).apply(tuple, axis=1).map(rank)
        all_scores = all_scores.assign(_r=pos.values).sort_values(["_r"], kind="stable").drop(columns="_r")
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    atomic_write_text(out / "scores.csv", all_scores[SCORE_COLUMNS].to_csv(index=False))
    return results


def read_results(out: Path) -> dict[tuple, tuple[dict[str, Any], pd.DataFrame]]:
    """Rows of an earlier run keyed by (target_type, target_id, source, method, budget, seed), with their scores."""
    res_path, score_path = out / "results.csv", out / "scores.csv"
    if not res_path.is_file() or not score_path.is_file():
        return {}
    results = pd.read_csv(res_path, dtype=_DTYPES, keep_default_na=False)
    scores = pd.read_csv(score_path, dtype=_DTYPES, keep_default_na=False)
    if list(results.columns) != RESULT_COLUMNS or list(scores.columns) != SCORE_COLUMNS:
        return {}
    grouped = {k: g for k, g in scores.groupby(KEY, sort=False)}
    found = {}
    for row in results.to_dict("records"):
        key = tuple(row[k] for k in KEY)
        if key in grouped:
            found[key] = (row, grouped[key].reset_index(drop=True))
    return found


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
