"""``python -m common advise NEW_CLIPS --root DATA``: which known machines should a new one learn from?

The new machine's normal clips are compared with every machine under the data root as v5 compares a
target's budget clips with a candidate's training clips (`common.data.selection.rank_sources`, log-mel
statistics, ``experiment.similarity``), and the machines are ranked by distance (RMS dB; smaller is
more similar). The recommended source set is the
``experiment.sources_k`` nearest. The latest report (``report/methods.csv``) says which method did
best at the budget nearest to the number of new clips, with its difference to scratch and interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from common.features.audio import check_wav
from common.config import Config
from common.data.dataset import Machines, select_machines
from common.errors import AudioError, DataError
from common.features.extract import extract
from common.results import budget_key
from common.features.clipvectors import logmel_stats
from common.data.selection import Ranked, Selector, rank_sources, set_of
from common.data.versions import SourceSet


@dataclass(frozen=True)
class Advice:
    """The ranking of the known machines for a new one, the recommended set, and the clips left out (path -> why)."""

    ranked: list[Ranked]
    chosen: SourceSet
    n_clips: int
    bad: dict[str, str]


def clip_vectors(paths: Sequence[Path], cfg: Config) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Vectors and offsets of the good clips (the experiments' features), and each bad clip's problem."""
    parts, bad = [], {}
    for path in paths:
        try:
            check_wav(path, channel=cfg.data.channel, expected_sr=cfg.data.sample_rate)
            vectors, _ = extract([path], channel=cfg.data.channel, sr=cfg.data.sample_rate, jobs=1, progress=False,
                                 **cfg.feature.kwargs())
        except (AudioError, DataError) as exc:
            bad[str(path)] = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
            continue
        if len(vectors):
            parts.append(vectors)
        else:
            bad[str(path)] = f"{path}: too short for feature.frames={cfg.feature.frames}"
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return (np.concatenate(parts) if parts else np.zeros((0, 0))), offsets, bad


def advise(clips: Sequence[Path], cfg: Config, *, k: int | None = None) -> Advice:
    """Rank every machine under ``data.root`` as a source for the machine whose normal `clips` are given.

    Raises
    ------
    DataError
        No clip could be read, or `k` is larger than the number of known machines.
    """
    vectors, offsets, bad = clip_vectors(clips, cfg)
    if len(offsets) < 2:
        raise DataError(f"none of the {len(clips)} clip(s) given could be read: {next(iter(bad.values()), '')}")
    machines = select_machines(cfg)
    k = cfg.experiment.sources_k if k is None else k
    if not 1 <= k <= len(machines):
        raise DataError(f"--k {k} must be between 1 and the {len(machines)} machines under {cfg.data.root}")
    selector = Selector(cfg, Machines(cfg, progress=False))
    own = logmel_stats(vectors, offsets, n_mels=cfg.feature.n_mels)
    ranked = rank_sources(own, {m: selector.train_stats(m) for m in machines}, similarity=cfg.experiment.similarity)
    return Advice(ranked, set_of([r.machine for r in ranked[:k]]), len(offsets) - 1, bad)


def report_budget(budgets: Sequence[str], n_clips: int) -> str:
    """The report's budget nearest below `n_clips` (the smallest if all are larger; ``all`` if it is the only one)."""
    numeric = sorted((b for b in budgets if str(b).isdigit()), key=int)
    if not numeric:
        return "all"
    below = [b for b in numeric if int(b) <= n_clips]
    return below[-1] if below else numeric[0]


def best_method(methods_csv: Path, n_clips: int, *, version: str = "v5") -> dict | None:
    """The report's best method (highest mean AUC) at the budget nearest `n_clips`, preferring `version`'s rows.

    None when no report exists. Raises DataError when the file lacks the report's columns.
    """
    if not methods_csv.is_file():
        return None
    table = pd.read_csv(methods_csv, dtype={"budget": str})
    needed = {"version", "method", "budget", "auc_mean", "scratch_delta_auc_mean", "scratch_delta_auc_ci_low",
              "scratch_delta_auc_ci_high"}
    if missing := sorted(needed - set(table.columns)):
        raise DataError(f"{methods_csv} lacks the report columns {missing}: run `python -m common report` again")
    if version in set(table["version"]):
        table = table[table["version"] == version]
    budget = report_budget(sorted(set(table["budget"]), key=budget_key), n_clips)
    rows = table[table["budget"] == budget].dropna(subset=["auc_mean"])
    if rows.empty:
        return None
    row = rows.loc[rows["auc_mean"].idxmax()]
    return {k: row[k] for k in needed} | {"budget": budget}


def advice_lines(advice: Advice, best: dict | None, *, methods_csv: Path) -> list[str]:
    """What `advise` prints: the ranking, the recommended set and the report's best method at that budget."""
    lines = [f"{advice.n_clips} clip(s) of the new machine; known machines ranked as sources "
             "(distance of log-mel statistics, RMS dB; smaller is more similar):"]
    lines += [f"{i:3d}. {r.machine.name:<24} {r.distance:8.3f}" for i, r in enumerate(advice.ranked, 1)]
    lines.append(f"recommended source set (k={len(advice.chosen.machines)}): "
                 + ", ".join(m.name for m in advice.chosen.machines))
    if best is None:
        lines.append(f"no report exists yet at {methods_csv}: run the versions, then `python -m common report`, "
                     "to learn which method is best at this budget")
    else:
        versus = ("it is scratch, the baseline" if pd.isna(best["scratch_delta_auc_mean"]) else
                  f"vs scratch {best['scratch_delta_auc_mean']:+.3f} "
                  f"[{best['scratch_delta_auc_ci_low']:+.3f}, {best['scratch_delta_auc_ci_high']:+.3f}]")
        lines.append(f"best method in {methods_csv} at budget {best['budget']} ({best['version']}): {best['method']}, "
                     f"AUC {best['auc_mean']:.3f}, {versus}")
    return lines
