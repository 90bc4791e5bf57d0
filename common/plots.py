"""Figures of training and results. Each function returns a matplotlib Figure; saving is the caller's line."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

METHOD_COLORS = {"scratch": "tab:gray", "zero_shot": "tab:orange", "transfer": "tab:blue"}


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
