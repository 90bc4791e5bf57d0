"""Result tables: results.csv (one row per run), scores.csv (every clip's score), summary.csv.

All files are written atomically, rows in a fixed order, so a resumed run writes the same files.
Each finished row is also persisted on its own the moment it is done (`save_row`: one JSON file
in ``.rows/`` beside results.csv, written to a temporary file and renamed), so a run killed
between two rewrites of results.csv loses no finished row; `read_results` reads both, and
`write_results` removes the row files once results.csv holds their rows.

Every column is a pure function of the config, the seed and the data except ``train_seconds``
(wall-clock time of the fit): two runs of one config give results.csv files equal in every other
column, bit for bit on CPU.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .io import atomic_write_text

RESULT_COLUMNS = [
    "version", "target_type", "target_id", "source", "method", "budget", "seed",
    "auc", "pauc", "n_train_clips", "n_eval_clips", "train_seconds", "config_hash",
    "n_skipped_clips",  # bad clips of the target left out under data.on_bad_file: skip
    # Decision threshold fitted on the model's own training normal clips (eval.threshold), and the
    # precision / recall / F1 of "score > threshold" on the evaluation split (anomalous = positive).
    "threshold", "precision", "recall", "f1",
]
ROWS_DIR = ".rows"
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
    results.csv; the row files of `save_row` for the rows written are removed last, so a kill at
    any point leaves every finished row in one place or the other.
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
    clear_rows(out, keys=[_key(r) for r in results.to_dict("records")])
    return results


def _key(row: Mapping[str, Any]) -> tuple:
    return tuple(row[k] for k in KEY)


def _row_path(out: Path, row: Mapping[str, Any]) -> Path:
    return out / ROWS_DIR / ("__".join(str(row[k]) for k in KEY) + ".json")


def _native(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in a row file")


def save_row(out: Path, row: Mapping[str, Any], scores: pd.DataFrame) -> Path:
    """Persist one finished row and its clip scores at once: ``out/.rows/<key>.json`` (temp file + rename)."""
    payload = {"row": dict(row), "scores": {c: scores[c].tolist() for c in SCORE_COLUMNS}}
    return atomic_write_text(_row_path(out, row), json.dumps(payload, default=_native))


def clear_rows(out: Path, *, keys: Sequence[tuple] | None = None) -> None:
    """Remove the row files of `keys` (all of them, and the folder, when None)."""
    folder = out / ROWS_DIR
    if not folder.is_dir():
        return
    if keys is None:
        for p in folder.iterdir():
            p.unlink(missing_ok=True)
        folder.rmdir()
        return
    for key in keys:
        _row_path(out, dict(zip(KEY, key))).unlink(missing_ok=True)


def read_results(out: Path) -> dict[tuple, tuple[dict[str, Any], pd.DataFrame]]:
    """Rows of an earlier run keyed by (target_type, target_id, source, method, budget, seed), with their scores.

    Reads results.csv and scores.csv, then the row files of `save_row` (newer, so they win).
    Floats are parsed round-trip exact, so reused rows are written back bit for bit. A row whose
    scores are missing or incomplete is left out (it is recomputed).

    Warns
    -----
    UserWarning
        results.csv has other columns than `RESULT_COLUMNS` (an older format: its rows are
        recomputed), or a row file is unreadable.
    """
    found: dict[tuple, tuple[dict[str, Any], pd.DataFrame]] = {}
    res_path, score_path = out / "results.csv", out / "scores.csv"
    if res_path.is_file() and score_path.is_file():
        results = pd.read_csv(res_path, dtype=_DTYPES, keep_default_na=False, **_EXACT)
        scores = pd.read_csv(score_path, dtype=_DTYPES, keep_default_na=False, **_EXACT)
        if list(results.columns) != RESULT_COLUMNS or list(scores.columns) != SCORE_COLUMNS:
            warnings.warn(
                f"{res_path} has the columns of another format ({', '.join(results.columns)}); its "
                f"{len(results)} row(s) are recomputed. Delete the file to silence this warning.",
                stacklevel=2,
            )
        else:
            grouped = {k: g for k, g in scores.groupby(KEY, sort=False)}
            for row in results.to_dict("records"):
                key = _key(row)
                if key in grouped and len(grouped[key]) == row["n_eval_clips"]:
                    found[key] = (row, grouped[key].reset_index(drop=True))
    folder = out / ROWS_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            payload = json.loads(path.read_text())
            row, table = payload["row"], pd.DataFrame(payload["scores"], columns=SCORE_COLUMNS)
            key = _key(row)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            warnings.warn(f"row file {path} is unreadable ({exc}); its row is recomputed", stacklevel=2)
            continue
        found[key] = (row, table)
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
