"""Figures of training and results. Each function returns a matplotlib Figure; saving is the caller's line.

Every method of `method_catalog.METHOD_NAMES` is drawn the same way in every figure (`method_style`): scratch
black, each family in its own palette (`FAMILY_CMAPS`), its control the darkest shade and dashed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Mapping

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from common.errors import DataError
from common.methods.catalog import BASELINE, FAMILIES, FAMILY_CONTROL, METHOD_FAMILY, METHOD_NAMES, SOURCE_FREE_METHODS
from common.results import budget_key, version_key
from common.report.stats import ALL_BUDGET, TARGET, averaged_roc, methods_in, paired_table, zero_shot_methods

FAMILY_CMAPS = ("Blues", "Greens", "Oranges", "Purples", "Reds", "Greys")  # one per family, by its place
MARKERS = ("s", "^", "D", "v", "P", "X", "*")
VERSION_LINESTYLES = ("-", "--", "-.", ":")


def _members(family: str) -> list[str]:
    """A family's pretrained methods, in results order (its control and scratch left out)."""
    return [m for m in METHOD_NAMES if METHOD_FAMILY[m] == family and m not in (BASELINE, FAMILY_CONTROL[family])]


def method_style(method: str) -> dict[str, Any]:
    """Colour, marker and line style of a method, the same in every figure.

    Scratch is black; a family's control is the darkest shade of the family's palette, dashed; its
    pretrained methods take lighter shades and one marker each. A method outside `method_catalog.METHOD_FAMILY`
    (an older run) is gray.
    """
    if method == BASELINE:
        return {"color": "black", "marker": "o", "linestyle": "-"}
    family = METHOD_FAMILY.get(method)
    if family is None:
        return {"color": "0.55", "marker": "x", "linestyle": "-"}
    cmap = matplotlib.colormaps[FAMILY_CMAPS[FAMILIES.index(family) % len(FAMILY_CMAPS)]]
    if method == FAMILY_CONTROL[family]:
        return {"color": to_hex(cmap(1.0)), "marker": "o", "linestyle": "--"}
    members = _members(family)
    top = 1.0 if FAMILY_CONTROL[family] == BASELINE else 0.75  # the darkest shade is the control's, unless black
    shades = np.linspace(top, 0.35, len(members)) if len(members) > 1 else [0.6]
    k = members.index(method)
    return {"color": to_hex(cmap(shades[k])), "marker": MARKERS[k % len(MARKERS)], "linestyle": "-"}


METHOD_COLORS = {m: method_style(m)["color"] for m in METHOD_NAMES}


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
    """Per target machine: every method run (mean over sources and seeds) at one budget, one bar each."""
    sel = results[results["budget"].astype(str) == str(budget)]
    table = sel.groupby(["target_type", "target_id", "method"])[metric].mean().unstack("method")
    table = table[methods_in(table.columns)]
    fig, ax = plt.subplots(figsize=(max(6, (0.15 * len(table.columns) + 0.25) * len(table) + 2), 4),
                           layout="constrained")
    table.index = [f"{t}/{i}" for t, i in table.index]
    table.plot.bar(ax=ax, color=[method_style(m)["color"] for m in table.columns], width=0.8)
    ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":", label="chance")
    version = ", ".join(sorted(sel["version"].unique()))
    ax.set(ylim=(0, 1), xlabel="target machine", ylabel=metric.upper(),
           title=f"{version}: {metric.upper()} per target (budget {budget}, mean over sources and seeds)")
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    plt.close(fig)
    return fig


# --- report figures: every method over versions, budgets and machines ------------------------------------

def _legend(fig: Figure, axes: Iterable[Axes]) -> None:
    """One legend for the whole figure, right of it, each label once."""
    handles = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(handles.values(), handles.keys(), loc="outside right center", fontsize="small")


def source_heatmap(results: pd.DataFrame, *, version: str, method: str, metric: str = "auc") -> Figure:
    """Source x target type map of `method` minus its family control's `metric`, one panel per budget.

    Each cell is the paired difference (`stats.paired_table` against `method_catalog.FAMILY_CONTROL`) averaged
    over the target type's IDs and seeds (blue: the pretrained method better). Empty cells (a target's
    own type is never its source) are gray.

    Parameters
    ----------
    results : pd.DataFrame
        Rows of ``results.csv`` (any versions; `version` is selected).
    version : str
        e.g. ``"v1"`` (one source type) or ``"v3"`` (source pairs).
    method : str
        A pretrained method of the catalogue (compared with its family's control).
    metric : {"auc", "pauc"}

    Returns
    -------
    fig : Figure
    """
    control = FAMILY_CONTROL.get(METHOD_FAMILY.get(method), BASELINE)
    pairs = paired_table(results[results["version"] == version], method=method, baseline=control, by_source=True)
    budgets = sorted(pairs["budget"].unique(), key=budget_key)
    sources = sorted(pairs["source"].unique())
    types = sorted(pairs["target_type"].unique())
    delta = f"delta_{metric}"
    limit = max(0.05, float(np.nanmax(np.abs(pairs[delta].to_numpy(dtype=float)))) if len(pairs) else 0.05)
    fig, axes = plt.subplots(1, max(1, len(budgets)), squeeze=False, layout="constrained",
                             figsize=(1.2 + (1.1 * len(types) + 1.6) * max(1, len(budgets)), 1.6 + 0.5 * len(sources)))
    image = None
    for ax, budget in zip(axes[0], budgets):
        sel = pairs[pairs["budget"] == budget]
        grid = sel.pivot_table(index="source", columns="target_type", values=delta, aggfunc="mean")
        grid = grid.reindex(index=sources, columns=types).to_numpy(dtype=float)
        ax.set_facecolor("0.85")
        image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, "—" if np.isnan(value) else f"{value:+.2f}", ha="center", va="center", fontsize=10,
                    color="white" if abs(value) > 0.6 * limit else "black")
        ax.set_xticks(range(len(types)), types)
        ax.set_yticks(range(len(sources)), sources)
        ax.set(xlabel="target machine type", ylabel="pretraining source",
               title=f"budget {budget} ({sel['n_train_clips'].mean():.0f} training clips)")
    if image is not None:
        fig.colorbar(image, ax=axes[0].tolist(), label=f"Δ {metric.upper()} (mean over IDs)")
    fig.suptitle(f"{version}: {method} minus {control} {metric.upper()} by source and target type "
                 f"(blue: {method} better)")
    plt.close(fig)
    return fig


def _budget_labels(results: pd.DataFrame, budgets: list[str]) -> list[str]:
    """Tick labels of the budgets: the clip count, and ``all (≈N)`` with the mean clips of the budget "all"."""
    at_all = results[(results["budget"].astype(str) == ALL_BUDGET) & (results["n_train_clips"] > 0)]
    pool = f" (≈{at_all['n_train_clips'].mean():.0f})" if len(at_all) else ""
    return [f"{b}{pool}" if b == ALL_BUDGET else b for b in budgets]


def auc_vs_budget(results: pd.DataFrame, *, metric: str = "auc") -> Figure:
    """Mean `metric` over targets versus the target budget: one panel per version, one line per method.

    Budgets are evenly spaced, sorted by clip count with ``all`` last. Each point averages sources and
    seeds per target, then targets. A zero-shot method (no target clip) repeats its rows for every
    budget, so its line is flat; it is dotted to say so. Colours and markers: `method_style`.

    Parameters
    ----------
    results : pd.DataFrame
        Rows of ``results.csv`` of one or several versions, any subset of the methods.
    metric : {"auc", "pauc"}

    Returns
    -------
    fig : Figure
        Each line is labelled with its method name.
    """
    budgets = sorted(results["budget"].astype(str).unique(), key=budget_key)
    versions = sorted(results["version"].unique(), key=version_key)
    per_target = results.groupby(["version", "method", "budget", *TARGET])[metric].mean()
    curves = per_target.groupby(["version", "method", "budget"]).agg(["mean", "size"]).reset_index()
    flat = zero_shot_methods(results)
    n_cols = min(2, max(1, len(versions)))
    n_rows = -(-max(1, len(versions)) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, squeeze=False, sharey=True, layout="constrained",
                             figsize=(4.6 * n_cols + 2.4, 3.6 * n_rows + 0.6))
    for ax, version in zip(axes.flat, versions):
        mine = curves[curves["version"] == version]
        for method in methods_in(mine["method"]):
            line = mine[mine["method"] == method].sort_values("budget", key=lambda b: b.map(budget_key))
            style = method_style(method) | ({"linestyle": ":"} if method in flat else {})
            ax.plot([budgets.index(str(b)) for b in line["budget"]], line["mean"], **style,
                    linewidth=2.2 if method == BASELINE else 1.5, markersize=5, label=method)
        ax.axhline(0.5, color="0.4", linestyle=":", linewidth=1, label="chance")
        ax.set_xticks(range(len(budgets)), _budget_labels(results, budgets))
        ax.set(title=version, xlabel="target training clips (budget)", ylabel=f"mean {metric.upper()}")
    for ax in list(axes.flat)[len(versions):]:
        ax.remove()
    _legend(fig, axes.flat[:len(versions)])
    n = int(curves["size"].max()) if len(curves) else 0
    fig.suptitle(f"{metric.upper()} versus target budget, mean over {n} target machines (dotted: zero-shot, "
                 "no target clip)")
    plt.close(fig)
    return fig


def _bars(ax: Axes, sel: pd.DataFrame, methods: list[str], machines: list[tuple[str, str]], metric: str) -> None:
    """Grouped bars of `methods` per machine (means over sources and seeds) and dots for the runs behind them."""
    width = 0.8 / len(methods)
    for j, method in enumerate(methods):
        runs = sel[sel["method"] == method]
        means = runs.groupby(TARGET)[metric].mean().reindex(machines)
        x = np.arange(len(machines)) - 0.4 + width * (j + 0.5)
        ax.bar(x, means.to_numpy(dtype=float), width=width, color=method_style(method)["color"], label=method)
        if len(runs) > means.notna().sum():
            position = {m: i for i, m in enumerate(machines)}
            at = [x[position[k]] for k in zip(runs["target_type"], runs["target_id"])]
            ax.plot(at, runs[metric], "o", color="black", markersize=2.5, label="single runs (sources, seeds)")


def machine_bars(results: pd.DataFrame, *, version: str, budget: str, metric: str = "auc") -> Figure:
    """Per target machine, every method's `metric` of one version at one budget: one panel per family.

    Bars are means over sources and seeds, dots the single runs behind a bar (when there are several);
    scratch is drawn in every panel, the reference of all families.

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
    machines = sorted(set(zip(sel["target_type"], sel["target_id"])))
    present = methods_in(sel["method"])
    panels = [[m for m in present if METHOD_FAMILY.get(m) == f] for f in FAMILIES]
    panels = [p for p in panels if p] + [[m for m in present if m not in METHOD_FAMILY]]
    panels = [([BASELINE] if BASELINE in present and BASELINE not in p else []) + p for p in panels if p]
    width = max(len(p) for p in panels) if panels else 1
    fig, axes = plt.subplots(max(1, len(panels)), 1, squeeze=False, sharex=True, layout="constrained",
                             figsize=(max(6, (0.14 * width + 0.3) * len(machines) + 3.5), 1.2 + 2.6 * len(panels)))
    for ax, methods in zip(axes[:, 0], panels):
        _bars(ax, sel, methods, machines, metric)
        ax.axhline(0.5, color="black", linewidth=0.8, linestyle=":", label="chance")
        ax.set(ylim=(0, 1), ylabel=f"{metric.upper()} (0.5 = chance)")
    axes[-1, 0].set_xticks(range(len(machines)), [f"{t}/{i}" for t, i in machines], rotation=45, ha="right")
    axes[-1, 0].set_xlabel("target machine")
    _legend(fig, axes[:, 0])
    clips = sel["n_train_clips"][sel["method"] == BASELINE].mean()
    fig.suptitle(f"{version}: {metric.upper()} per machine and method, budget {budget} ({clips:.0f} clips)")
    plt.close(fig)
    return fig


def _roc_panel(ax: Axes, sel: pd.DataFrame, methods: list[str], versions: list[str]) -> None:
    """ROC curves of `methods` in one panel: the methods without a source set once, the others per version."""
    ax.plot([0, 1], [0, 1], ":", color="0.4", linewidth=1, label="chance")
    for method in methods:
        runs = sel[sel["method"] == method]
        if runs.empty:
            continue
        shared = method in SOURCE_FREE_METHODS  # no source set (scratch, controls, sound_knn): alike in every version
        for k, version in enumerate(versions[:1] if shared else versions):
            mine = runs[runs["version"] == (runs["version"].iloc[0] if shared else version)]
            if mine.empty:
                continue
            fpr, tpr, auc, n = averaged_roc(mine)
            style = method_style(method)
            ax.plot(fpr, tpr, color=style["color"], linewidth=2.2 if shared else 1.5,
                    linestyle=style["linestyle"] if shared else VERSION_LINESTYLES[k % len(VERSION_LINESTYLES)],
                    label=f"{method}{'' if shared else ' ' + version} (AUC {auc:.2f}, {n} runs)")
    ax.set(xlim=(0, 1), ylim=(0, 1.01), aspect="equal", xlabel="false positive rate (share of normal clips)")
    ax.legend(fontsize="x-small", loc="lower right")


def roc_curves(scores: pd.DataFrame, *, target_type: str, target_id: str, budget: str,
               seed: int | None = None) -> Figure:
    """ROC curves of one target at one budget: one panel per method family, scratch in each.

    Curves are vertically averaged over sources (and over seeds when `seed` is None); the legend
    gives the mean AUC of the runs behind each curve. Scratch and the family controls, which do not
    pretrain, are drawn once; a pretrained method once per version (line style by version).

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
    present = methods_in(sel["method"])
    families = [f for f in FAMILIES if any(METHOD_FAMILY.get(m) == f for m in present)]
    families += [None] if any(m not in METHOD_FAMILY for m in present) else []
    fig, axes = plt.subplots(1, len(families), squeeze=False, sharey=True, layout="constrained",
                             figsize=(1 + 4.6 * len(families), 6.0))
    for ax, family in zip(axes[0], families):
        methods = [m for m in present if METHOD_FAMILY.get(m) == family]
        _roc_panel(ax, sel, ([BASELINE] if BASELINE in present and BASELINE not in methods else []) + methods,
                   versions)
        ax.set_title(f"{family or 'other'} family")
    axes[0, 0].set_ylabel("true positive rate (share of anomalous clips)")
    which = "curves averaged over sources and seeds" if seed is None else f"seed {seed}, curves averaged over sources"
    fig.suptitle(f"ROC of {target_type}/{target_id}, budget {budget} ({which})")
    plt.close(fig)
    return fig
