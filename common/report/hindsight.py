"""Version5 in hindsight: per target, the chosen sources against the best and worst fixed version and random ones.

For every target, pretrained method and budget, a version's AUC is its mean over source sets, then seeds
(as every other table of the report). `hindsight_table` sets v5 beside the best and the worst of the fixed
versions v1-v4 *for that target* (known only after running them all: hindsight) and beside v5 run with
``experiment.selection: random`` (k random machines per draw, same seeds; `common.data.names.random_result_dir`).
``regret`` = best fixed - v5 (0: v5 matched the best rule for this machine). `hindsight_summary` averages
over targets with a percentile bootstrap interval over targets.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.results import budget_key

SELECTED = "v5"  # the version whose sources are chosen per draw (`common.data.versions.VERSIONS`)
FIXED = ("v1", "v2", "v3", "v4")  # the versions whose sources are fixed by rule
KEY = ["target_type", "target_id", "method", "budget"]
HINDSIGHT_COLUMNS = [*KEY, "v5_auc", "best_fixed", "best_fixed_auc", "worst_fixed", "worst_fixed_auc", "random_auc",
                     "regret", "v5_minus_worst", "v5_minus_random"]
SUMMARY_COLUMNS = ["method", "budget", "n_targets", "v5_auc", "best_fixed_auc", "worst_fixed_auc", "random_auc",
                   "regret_mean", "regret_ci_low", "regret_ci_high", "v5_minus_random_mean",
                   "v5_minus_random_ci_low", "v5_minus_random_ci_high", "n_v5_at_least_random"]


def version_aucs(results: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC per version, target, pretrained method and budget: sources averaged first, then seeds."""
    runs = results[results["source"].astype(str) != "none"]
    per_seed = runs.groupby(["version", *KEY, "seed"], as_index=False)["auc"].mean()
    return per_seed.groupby(["version", *KEY], as_index=False)["auc"].mean()


def hindsight_table(results: pd.DataFrame, random: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per target, pretrained method and budget that v5 and at least one fixed version ran.

    Parameters
    ----------
    results : pd.DataFrame
        Rows of every version's results.csv (`common.results.collect`).
    random : pd.DataFrame or None
        Rows of the v5 run with ``experiment.selection: random`` (None: not run, its columns are NaN).
    """
    aucs = version_aucs(results)
    v5 = aucs[aucs["version"] == SELECTED].drop(columns="version").rename(columns={"auc": "v5_auc"})
    fixed = aucs[aucs["version"].isin(FIXED)]
    if v5.empty or fixed.empty:
        return pd.DataFrame(columns=HINDSIGHT_COLUMNS)
    best = fixed.loc[fixed.groupby(KEY)["auc"].idxmax()].rename(columns={"version": "best_fixed", "auc": "best_fixed_auc"})
    worst = fixed.loc[fixed.groupby(KEY)["auc"].idxmin()].rename(columns={"version": "worst_fixed",
                                                                          "auc": "worst_fixed_auc"})
    table = v5.merge(best, on=KEY).merge(worst, on=KEY)
    if random is not None and not random.empty:
        rand = version_aucs(random).drop(columns="version").rename(columns={"auc": "random_auc"})
        table = table.merge(rand, on=KEY, how="left")
    else:
        table["random_auc"] = np.nan
    table["regret"] = table["best_fixed_auc"] - table["v5_auc"]
    table["v5_minus_worst"] = table["v5_auc"] - table["worst_fixed_auc"]
    table["v5_minus_random"] = table["v5_auc"] - table["random_auc"]
    order = table.assign(_b=table["budget"].astype(str).map(budget_key))
    return table.loc[order.sort_values(["method", "_b", "target_type", "target_id"]).index,
                     HINDSIGHT_COLUMNS].reset_index(drop=True)


def bootstrap_mean(values: np.ndarray, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean of `values` and its percentile bootstrap interval (NaN where there are no finite values)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return (np.nan, np.nan, np.nan)
    means = np.random.default_rng(seed).choice(values, size=(n_boot, len(values))).mean(axis=1)
    tail = (1 - level) / 2
    return float(values.mean()), float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))


def hindsight_summary(table: pd.DataFrame, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per pretrained method and budget: means over targets, mean regret and v5 - random with their intervals."""
    rows = []
    for (method, budget), part in table.groupby(["method", "budget"], sort=False):
        regret = bootstrap_mean(part["regret"].to_numpy(), n_boot=n_boot, level=level, seed=seed)
        gain = bootstrap_mean(part["v5_minus_random"].to_numpy(), n_boot=n_boot, level=level, seed=seed)
        rows.append({"method": method, "budget": budget, "n_targets": len(part), "v5_auc": part["v5_auc"].mean(),
                     "best_fixed_auc": part["best_fixed_auc"].mean(), "worst_fixed_auc": part["worst_fixed_auc"].mean(),
                     "random_auc": part["random_auc"].mean(), "regret_mean": regret[0], "regret_ci_low": regret[1],
                     "regret_ci_high": regret[2], "v5_minus_random_mean": gain[0], "v5_minus_random_ci_low": gain[1],
                     "v5_minus_random_ci_high": gain[2],
                     "n_v5_at_least_random": int((part["v5_minus_random"] >= 0).sum())})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
