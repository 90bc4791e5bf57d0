"""Figures of training and results. Each function returns a matplotlib Figure; saving is the caller's line."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .errors import DataError
from .results import budget_key, version_key
from .stats import TARGET, averaged_roc, paired_table

METHOD_COLORS = {"scratch": "tab:gray", "zero_shot": "tab:orange", "transfer": "tab:blue",
                 "transfer_frozen": "tab:green"}


def read_histories(model_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Loss histories saved beside pretrained models (``NAME.history.csv``), keyed by model name."""
    return {p.name.removesuffix(".history.csv"): pd.read_csv(p) for p in sorted(Path(model_dir).glob("*.history.csv"))}


def loss_curves(histories: Mapping[str, pd.DataFrame], *, title: str = "Pretraining loss") -> Figure:
    """Training (solid) and validation (dashed) MSE per epoch, one colour per model."""
    fig, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    for i, (name, h) in enumerate(histories.items()):
        color = f"C{i % 10}"
        epochs = range(1, len(h) + 1)
        ax.plot(epochs, h["loss"], color=color, label=name)
        if "val_loss" in h:
            ax.plot(epochs, h["val_loss"], color=color, linestyle="--")
    ax.set(xlabel="epoch", ylabel="reconstruction MSE (dB²)", title=title + " (dashed: validation)")
    ax.set_yscale("log")
    if histories:
        ax.legend(fontsize="small", ncol=2)
    plt.close(fig)
    return fig


def auc_by_target(results: pd.DataFrame, *, budget: str = "all", metric: str = "auc") -> Figure:
    """Per target machine: scratch vs zero-shot vs transfer (mean over sources and seeds) at one budget."""
    sel = results[results["budget"].astype(str) == str(budget)]
    table = sel.groupby(["target_type", "target_id", "method"])[metric].mean().unstack("method")
    table = table[[m for m in METHOD_COLORS if m in table.columns]]
    fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(table) + 2), 4), layout="constrained")
    table.index = [f"{t}/{i}" for t, i in table.index]
    table.plot.bar(ax=ax, color=[METHOD_COLORS[m] for m in table.columns], width=0.8)
    ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":", label="chance")
    version = ", ".join(sorted(sel["version"].unique()))
    ax.set(ylim=(0, 1), xlabel="target machine", ylabel=metric.upper(),
           title=f"{version}: {metric.upper()} per target (budget {budget}, mean over sources and seeds)")
    ax.legend(fontsize="small", loc="lower right")
    plt.close(fig)
    return fig


# --- report figures: transfer against scratch over versions, budgets and machines -------------------------

VERSION_COLORS = [f"C{i}" for i in (0, 2, 3, 4, 5, 6, 8, 9)]  # C1 (orange) and C7 (gray) are taken by methods


def _version_color(versions: list[str], version: str) -> str:
    return VERSION_COLORS[versions.index(version) % len(VERSION_COLORS)]


def _scratch_once(results: pd.DataFrame) -> pd.DataFrame:
    """Scratch runs are shared by all versions: keep one copy of each (target, budget, seed)."""
    scratch = results[results["method"] == "scratch"]
    return scratch.drop_duplicates(subset=["target_type", "target_id", "budget", "seed"])


def transfer_heatmap(results: pd.DataFrame, *, version: str, metric: str = "auc") -> Figure:
    """Source x target type map of transfer minus scratch `metric`, one panel per budget.

    Each cell is the paired difference averaged over the target type's IDs and seeds (blue: transfer
    better). Empty cells (a target's own type is never its source) are gray.

    Parameters
    ----------
    results : pd.DataFrame
        Rows of ``results.csv`` (any versions; `version` is selected).
    version : str
        e.g. ``"v1"`` (one source type) or ``"v3"`` (source pairs).
    metric : {"auc", "pauc"}

    Returns
    -------
    fig : Figure
    """
    pairs = paired_table(results[results["version"] == version], method="transfer", by_source=True)
    budgets = sorted(pairs["budget"].unique(), key=budget_key)
    sources = sorted(pairs["source"].unique())
    types = sorted(pairs["target_type"].unique())
    delta = f"delta_{metric}"
    limit = max(0.05, float(np.nanmax(np.abs(pairs[delta]))) if len(pairs) else 0.05)
    fig, axes = plt.subplots(1, max(1, len(budgets)), squeeze=False, layout="constrained",
                             figsize=(1.2 + (1.1 * len(types) + 1.6) * max(1, len(budgets)), 1.6 + 0.5 * len(sources)))
    image = None
    for ax, budget in zip(axes[0], budgets):
        sel = pairs[pairs["budget"] == budget]
        grid = sel.pivot_table(index="source", columns="target_type", values=delta, aggfunc="mean")
        grid = grid.reindex(index=sources, columns=types)
        ax.set_facecolor("0.85")
        image = ax.imshow(grid.to_numpy(dtype=float), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        for (i, j), value in np.ndenumerate(grid.to_numpy(dtype=float)):
            ax.text(j, i, "—" if np.isnan(value) else f"{value:+.2f}", ha="center", va="center", fontsize=10,
                    color="white" if abs(value) > 0.6 * limit else "black")
        clips = sel["n_train_clips"].mean()
        ax.set_xticks(range(len(types)), types)
        ax.set_yticks(range(len(sources)), sources)
        ax.set(xlabel="target machine type", ylabel="pretraining source",
               title=f"budget {budget} ({clips:.0f} training clips)")
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label=f"transfer − scratch {metric.upper()} (mean over IDs)")
    fig.suptitle(f"{version}: transfer minus scratch {metric.upper()} by source and target type "
                 "(blue: transfer better)")
    plt.close(fig)
    return fig


def auc_vs_budget(results: pd.DataFrame, *, metric: str = "auc") -> Figure:
    """Mean `metric` over targets versus the number of target training clips (log axis).

    Scratch (black) and each version's transfer (solid) are placed at the mean ``n_train_clips`` of
    their runs, so the budget ``all`` sits at the pool size; zero-shot trains on no target clip and is
    a dashed horizontal line per version. Sources and seeds are averaged per target first.

    Parameters
    ----------
    results : pd.DataFrame
        Rows of ``results.csv`` of one or several versions.
    metric : {"auc", "pauc"}

    Returns
    -------
    fig : Figure
    """
    def curve(runs: pd.DataFrame) -> pd.DataFrame:
        per_target = runs.groupby(["budget", *TARGET]).agg(y=(metric, "mean"), x=("n_train_clips", "mean"))
        out = per_target.groupby("budget").agg(y=("y", "mean"), x=("x", "mean"), n=("y", "size"))
        return out.loc[sorted(out.index, key=budget_key)]

    versions = sorted(results["version"].unique(), key=version_key)
    fig, ax = plt.subplots(figsize=(8, 4.8), layout="constrained")
    scratch = curve(_scratch_once(results))
    ax.plot(scratch["x"], scratch["y"], "o-", color="black", linewidth=2.2, label="scratch")
    for v in versions:
        mine = results[results["version"] == v]
        color = _version_color(versions, v)
        for method, style in (("transfer", "s-"), ("transfer_frozen", "^--")):
            tr = curve(mine[mine["method"] == method])
            if len(tr):
                ax.plot(tr["x"], tr["y"], style, color=color, linewidth=1.6, label=f"{method.replace('_', '-')} {v}")
        zs = mine[mine["method"] == "zero_shot"]
        if len(zs):
            level = zs.groupby(TARGET)[metric].mean().mean()
            ax.axhline(level, color=color, linestyle="--", linewidth=1.2, label=f"zero-shot {v}")
    ax.axhline(0.5, color="0.4", linestyle=":", linewidth=1, label="chance")
    ax.set_xscale("log")
    ticks = scratch["x"].to_numpy(dtype=float)
    if len(ticks):
        ax.set_xticks(ticks, [b if b != "all" else f"all (≈{x:.0f})" for b, x in zip(scratch.index, ticks)])
        ax.minorticks_off()
        ax.set_xlim(ticks.min() / 1.5, ticks.max() * 1.5)
    n = int(scratch["n"].max()) if len(scratch) else 0
    ax.set(xlabel="target training clips (budget; log scale)", ylabel=f"mean {metric.upper()} (0.5 = chance)",
           title=f"{metric.upper()} versus target budget, mean over {n} target machines")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    plt.close(fig)
    return fig


def machine_bars(results: pd.DataFrame, *, version: str, budget: str, metric: str = "auc") -> Figure:
    """Per target machine, scratch vs transfer `metric` of one version at one budget.

    Bars are means over sources and seeds; dots are the single runs behind each transfer bar.

    Parameters
    ----------
    results : pd.DataFrame
        Rows of ``results.csv``.
    version : str
    budget : str
        A budget label as in ``results.csv`` (``"8"``, ``"all"``).
    metric : {"auc", "pauc"}

    Returns
    -------
    fig : Figure
    """
    sel = results[(results["version"] == version) & (results["budget"].astype(str) == str(budget))]
    scratch = sel[sel["method"] == "scratch"].groupby(TARGET)[metric].mean()
    transfer = sel[sel["method"] == "transfer"]
    means = transfer.groupby(TARGET)[metric].mean()
    machines = sorted(set(scratch.index) | set(means.index))
    x = np.arange(len(machines))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(machines) + 2.5), 4.2), layout="constrained")
    ax.bar(x - 0.2, scratch.reindex(machines).to_numpy(dtype=float), width=0.4, color=METHOD_COLORS["scratch"],
           label="scratch")
    ax.bar(x + 0.2, means.reindex(machines).to_numpy(dtype=float), width=0.4, color=METHOD_COLORS["transfer"],
           label="transfer (mean)")
    position = {m: i for i, m in enumerate(machines)}
    runs = transfer.assign(_x=[position[k] + 0.2 for k in zip(transfer["target_type"], transfer["target_id"])])
    if len(runs) > len(means):
        ax.plot(runs["_x"], runs[metric], "o", color="black", markersize=3, label="transfer runs (sources, seeds)")
    ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":", label="chance")
    ax.set_xticks(x, [f"{t}/{i}" for t, i in machines], rotation=45, ha="right")
    clips = sel["n_train_clips"][sel["method"] == "scratch"].mean()
    ax.set(ylim=(0, 1), xlabel="target machine", ylabel=f"{metric.upper()} (0.5 = chance)",
           title=f"{version}: scratch vs transfer {metric.upper()} per machine, budget {budget} ({clips:.0f} clips)")
    ax.legend(fontsize="small", loc="lower right")
    plt.close(fig)
    return fig


def roc_curves(scores: pd.DataFrame, *, target_type: str, target_id: str, budget: str,
               seed: int | None = None) -> Figure:
    """ROC curves of one target at one budget: scratch against each version's transfer and zero-shot.

    Curves are vertically averaged over sources (and over seeds when `seed` is None); the legend
    gives the mean AUC of the runs behind each curve. Left panel: transfer; right: zero-shot.

    Parameters
    ----------
    scores : pd.DataFrame
        Rows of ``scores.csv`` of one or several versions.
    target_type, target_id : str
        The machine, e.g. ``"fan"``, ``"id_00"``.
    budget : str
        A budget label as in ``scores.csv``.
    seed : int, optional
        One seed only; default: every seed, averaged.

    Returns
    -------
    fig : Figure

    Raises
    ------
    DataError
        `scores` has no clip of that target, budget (and seed).
    """
    sel = scores[(scores["target_type"] == target_type) & (scores["target_id"] == target_id)
                 & (scores["budget"].astype(str) == str(budget))]
    if seed is not None:
        sel = sel[sel["seed"] == seed]
    if sel.empty:
        raise DataError(f"no scores for {target_type}/{target_id} at budget {budget}"
                        + ("" if seed is None else f" and seed {seed}"))
    versions = sorted(sel["version"].unique(), key=version_key)
    scratch = sel[sel["method"] == "scratch"]
    scratch = scratch[scratch["version"] == scratch["version"].iloc[0]] if len(scratch) else scratch
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.8), sharey=True, layout="constrained")
    for ax, method in zip(axes, ("transfer", "zero_shot")):
        ax.plot([0, 1], [0, 1], ":", color="0.4", linewidth=1, label="chance")
        if len(scratch):
            fpr, tpr, auc, n = averaged_roc(scratch)
            ax.plot(fpr, tpr, color="black", linewidth=2.2, label=f"scratch (AUC {auc:.2f}, {n} runs)")
        for v in versions:
            runs = sel[(sel["version"] == v) & (sel["method"] == method)]
            if len(runs):
                fpr, tpr, auc, n = averaged_roc(runs)
                ax.plot(fpr, tpr, color=_version_color(versions, v), linewidth=1.5,
                        label=f"{method.replace('_', '-')} {v} (AUC {auc:.2f}, {n} runs)")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal", xlabel="false positive rate (share of normal clips)",
               title=f"scratch vs {method.replace('_', '-')}")
        ax.legend(fontsize="small", loc="lower right")
    axes[0].set_ylabel("true positive rate (share of anomalous clips)")
    which = "curves averaged over sources and seeds" if seed is None else f"seed {seed}, curves averaged over sources"
    fig.suptitle(f"ROC of {target_type}/{target_id}, budget {budget} ({which})")
    plt.close(fig)
    return fig
