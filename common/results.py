"""The results schema: columns, dtypes, key and sort order of results.csv, scores.csv and summary.csv,
and the one place they are written and read back (by the report, export and the result store).

results.csv and scores.csv only *show* the rows of the current config; every finished row is kept
in the result folder's store (`common.experiment.store.ResultStore`), from which they are rebuilt on every run.

All files are written atomically, rows in a fixed order, so a resumed run writes the same files.
Every column is a pure function of the config, the seed and the data except ``train_seconds``
(wall-clock time of the fit): two runs of one config give results.csv files equal in every other
column, bit for bit on CPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from common.config import load_config
from common.errors import DataError
from common.io import atomic_write_text
from common.data.names import transfer_yaml, versions_in
from common.methods.catalog import BASELINE, METHOD_NAMES
from common.scoring.official import formula_for, formula_year, official_total

TEXT, NUMBER = "text", "number"  # how a column is read back (`read_table`, `_read_numeric`)
NAN = float("nan")  # a blank cell, as pandas reads it


def _column(dtype: str, *, default: Any = dataclasses.MISSING, sidecar: bool = False, official: bool = False) -> Any:
    """A `ResultRow` field: its dtype on read; whether a row model's sidecar copies it; whether it is an official one."""
    return dataclasses.field(default=default, metadata={"dtype": dtype, "sidecar": sidecar, "official": official})


@dataclass(frozen=True)
class RunColumns:
    """Which run a row is: the columns results.csv and scores.csv both begin with, in file order."""

    version: str = _column(TEXT, sidecar=True)
    target_type: str = _column(TEXT, sidecar=True)
    target_id: str = _column(TEXT, sidecar=True)
    source: str = _column(TEXT, sidecar=True)
    method: str = _column(TEXT, sidecar=True)
    budget: str = _column(TEXT, sidecar=True)
    seed: int = _column(NUMBER, sidecar=True)


@dataclass(frozen=True)
class ResultRow(RunColumns):
    """One results.csv row: its fields are the file's columns, in order, with their dtypes (one definition).

    A misspelt column is a TypeError naming it (`dataclasses.replace` too), never a silent blank column.
    """

    auc: float = _column(NUMBER, sidecar=True)
    pauc: float = _column(NUMBER, sidecar=True)
    n_train_clips: int = _column(NUMBER, sidecar=True)
    n_eval_clips: int = _column(NUMBER, sidecar=True)
    train_seconds: float = _column(NUMBER)
    config_hash: str = _column(TEXT, sidecar=True)
    n_skipped_clips: int = _column(NUMBER)  # bad clips of the target left out under data.on_bad_file: skip
    # Decision threshold fitted on the model's own training normal clips (eval.threshold), and the
    # precision / recall / F1 of "score > threshold" on the evaluation split (anomalous = positive).
    threshold: float = _column(NUMBER)
    precision: float = _column(NUMBER, sidecar=True)
    recall: float = _column(NUMBER, sidecar=True)
    f1: float = _column(NUMBER, sidecar=True)
    # DCASE roots only (blank, NaN, on MIMII): the official formula the row is scored by (`common.scoring.official`:
    # "2020", "2021", "2022-2025"), the section's official score (the year's mean of its terms) and the per-domain
    # terms of that formula: own-domain AUC and pAUC in 2021, a domain's normals + every anomaly (AUC) in 2022-2025.
    # The section terms (2020 AUC, pAUC; 2022-2025 pAUC) are the auc / pauc columns at eval.max_fpr 0.1.
    official_formula: str | float = _column(TEXT, default=NAN, official=True)
    official_score: float = _column(NUMBER, default=NAN, official=True)
    auc_source: float = _column(NUMBER, default=NAN, official=True)
    auc_target: float = _column(NUMBER, default=NAN, official=True)
    pauc_source: float = _column(NUMBER, default=NAN, official=True)
    pauc_target: float = _column(NUMBER, default=NAN, official=True)

    def to_dict(self) -> dict[str, Any]:
        """The row as results.csv's columns, in order (values as given, not copied)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


# The columns of each clip's row of scores.csv after its run's; "domain": "source" / "target" on DCASE
# 2021-2025 roots, blank elsewhere.
CLIP_COLUMNS = {"path": TEXT, "label": NUMBER, "score": NUMBER, "domain": TEXT}
RUN_COLUMNS = [f.name for f in dataclasses.fields(RunColumns)]
RESULT_COLUMNS = [f.name for f in dataclasses.fields(ResultRow)]
OFFICIAL_COLUMNS = [f.name for f in dataclasses.fields(ResultRow) if f.metadata["official"]]
SCORE_COLUMNS = [*RUN_COLUMNS, *CLIP_COLUMNS]
# The results.csv fields a row model's sidecar copies from its row (an exported zero_shot model: all but
# source and n_train_clips, which its pretrained sidecar has).
ROW_FIELDS = tuple(f.name for f in dataclasses.fields(ResultRow) if f.metadata["sidecar"])
SUMMARY_COLUMNS = [
    "version", "method", "budget", "n_targets", "n_runs", "auc_mean", "pauc_mean",
    "auc_minus_scratch", "pauc_minus_scratch",
    "official_formula", "official_score",  # the DCASE year's mean over every row's terms (blank on MIMII)
]
_RESULT_SET = frozenset(RESULT_COLUMNS)
# Columns added after result folders without a store were written; such a folder's files lack them and still import.
ADDED_COLUMNS = frozenset({"domain", *OFFICIAL_COLUMNS})
KEY = [c for c in RUN_COLUMNS if c != "version"]  # a row within its version
METHOD_ORDER = {name: i for i, name in enumerate(METHOD_NAMES)}  # the catalogue's order
_DTYPES_OF = {f.name: f.metadata["dtype"] for f in dataclasses.fields(ResultRow)} | CLIP_COLUMNS
# Text columns read as text whatever they hold (a budget "8", an ID "00"); the numbers are coerced on read.
_DTYPES = {name: str for name, dtype in _DTYPES_OF.items() if dtype == TEXT}
_NUMERIC = [name for name, dtype in _DTYPES_OF.items() if dtype == NUMBER]
# The columns the report needs of each file (older files without the later columns still read).
RESULT_NEEDS = ["version", "target_type", "target_id", "source", "method", "budget", "seed", "auc", "pauc",
                "n_train_clips"]
SCORE_NEEDS = ["version", "target_type", "target_id", "source", "method", "budget", "seed", "label", "score"]
# Floats read back exactly as written, so reused rows are rewritten bit for bit: pandas 3 parses
# round-trip by default (and deprecates the option); pandas 2's default parser may be off by an ulp.
_EXACT = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}


def budget_key(budget: str) -> float:
    """Sort key of a budget label: clip counts numerically, ``"all"`` last."""
    return float("inf") if str(budget) == "all" else float(budget)


def version_key(version: str) -> tuple[int, str]:
    """Sort key of a version label: ``"v2"`` before ``"v10"``."""
    digits = "".join(c for c in str(version) if c.isdigit())
    return (int(digits) if digits else 0, str(version))


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    order = df.assign(_m=df["method"].map(METHOD_ORDER), _b=df["budget"].map(budget_key))
    return df.loc[order.sort_values(["target_type", "target_id", "_b", "seed", "source", "_m"], kind="stable").index]


def check_row(row: Mapping[str, Any]) -> None:
    """Refuse a result row with a column results.csv does not have (a misspelt key would be dropped silently).

    Raises
    ------
    DataError
        Naming the unknown column(s) and the row's run.
    """
    unknown = [k for k in row if k not in _RESULT_SET]
    if unknown:
        run = ", ".join(f"{k}={row[k]!r}" for k in RUN_COLUMNS if k in row)
        raise DataError(f"result row ({run}) has unknown column(s) {unknown}; results.csv has {RESULT_COLUMNS}")


def write_results(out: Path, rows: Sequence[dict[str, Any]], scores: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Write results.csv and scores.csv (atomically, in a fixed row order); return the results.

    ``scores[i]`` holds the clip scores behind ``rows[i]``. scores.csv is written first, then
    results.csv. Both only show rows: every row is in the `ResultStore` before it is written here.
    A row may lack the later `ADDED_COLUMNS` (blank); a column that is not a `ResultRow` field is a
    DataError (`check_row`).
    """
    if len(rows) != len(scores):
        raise ValueError(f"{len(rows)} result rows but {len(scores)} score tables: each row needs its scores")
    for row in rows:
        check_row(row)
    results = pd.DataFrame(list(rows), columns=RESULT_COLUMNS)
    results = _sorted(results.drop_duplicates(subset=KEY, keep="last"))
    order = list(results.index)
    results = results.reset_index(drop=True)
    all_scores = (pd.concat([scores[i][SCORE_COLUMNS] for i in order], ignore_index=True) if order
                  else pd.DataFrame(columns=SCORE_COLUMNS))
    atomic_write_text(out / "scores.csv", all_scores.to_csv(index=False))
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    return results


def read_table(path: Path, *, needs: Sequence[str] = ()) -> pd.DataFrame:
    """A results / scores CSV read back with the schema's dtypes (text as text, numbers as numbers).

    Parameters
    ----------
    path : Path
        A ``results.csv`` or ``scores.csv``.
    needs : sequence of str
        Columns the caller needs (e.g. `RESULT_NEEDS`).

    Raises
    ------
    DataError
        The file is empty or not a CSV table, or lacks a column of `needs`; the message names it.
    """
    try:
        table = pd.read_csv(path, dtype=_DTYPES, keep_default_na=False, **_EXACT)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path} is empty or not a CSV table ({type(exc).__name__}): rerun the transfer command "
                        "of its version to rewrite it from the result store") from None
    missing = [c for c in needs if c not in table.columns]
    if missing:
        raise DataError(f"{path} lacks the columns {missing}; is it a results/scores file of this project?")
    return table


def _read_numeric(path: Path, needs: Sequence[str]) -> pd.DataFrame:
    """`read_table`, with the number columns coerced (a blank cell is NaN) and ``seed`` a nullable integer."""
    table = read_table(path, needs=needs)
    for column in _NUMERIC:
        if column in table.columns:
            table[column] = pd.to_numeric(table[column], errors="coerce")
    table["seed"] = table["seed"].astype("Int64")
    return table


def result_dir(repo: str | Path, version: int | str) -> Path:
    """The result folder of a version: ``output.result_dir`` of its ``VersionN/transfer_pretrain_vN.yaml``.

    The YAML is loaded as the transfer command loads it (`common.config.load_config`: defaults,
    ``{version}``, paths relative to the YAML), so a changed ``output.result_dir`` is followed.

    Raises
    ------
    DataError
        The version has no transfer YAML under `repo`.
    ConfigError
        The YAML is not a valid config.
    """
    path = transfer_yaml(repo, version)
    if not path.is_file():
        raise DataError(f"{path} not found: the results of a version are found through the output.result_dir "
                        "of its transfer YAML")
    # fit.backend says how the results were trained; reading them must not switch Keras.
    return load_config(path, select_backend=False).output.result_dir


def result_dirs(repo: str | Path) -> dict[str, Path]:
    """The result folders holding a ``results.csv``, keyed ``"vN"`` in version order (see `result_dir`)."""
    found = {version: result_dir(repo, version) for version in versions_in(repo)}
    return {version: folder for version, folder in found.items() if (folder / "results.csv").is_file()}


def collect(repo: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenate ``results.csv`` and ``scores.csv`` of every version present under `repo`.

    Parameters
    ----------
    repo : str or Path
        Repository root holding ``Version1/transfer_pretrain_v1.yaml`` etc.; each version's files
        are read from its YAML's ``output.result_dir`` (`result_dirs`).

    Returns
    -------
    results, scores : pd.DataFrame
        All versions' rows; `scores` is empty (with its columns) where no ``scores.csv`` exists.

    Raises
    ------
    DataError
        No result folder with a ``results.csv`` exists, or a file lacks a needed column.
    """
    dirs = result_dirs(repo)
    if not dirs:
        raise DataError(
            f"no results.csv in the output.result_dir of any VersionN/transfer_pretrain_vN.yaml under "
            f"{Path(repo).resolve()}: run `python -m common transfer VersionN/transfer_pretrain_vN.yaml` "
            "(or `python -m common demo`) first"
        )
    results = [_read_numeric(d / "results.csv", RESULT_NEEDS) for d in dirs.values()]
    scores = [_read_numeric(d / "scores.csv", SCORE_NEEDS) for d in dirs.values() if (d / "scores.csv").is_file()]
    results = pd.concat(results, ignore_index=True)
    scores = pd.concat(scores, ignore_index=True) if scores else pd.DataFrame(columns=SCORE_NEEDS)
    return results, scores


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC / pAUC per method and budget, and the paired mean difference to scratch.

    Differences pair each run with the scratch run of the same target, budget and seed.
    """
    scratch = results[results["method"] == BASELINE].set_index(["target_type", "target_id", "budget", "seed"])
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
            **official_of_rows(g),
        })
    summary = pd.DataFrame(out, columns=SUMMARY_COLUMNS)
    order = summary.assign(_m=summary["method"].map(METHOD_ORDER), _b=summary["budget"].map(budget_key))
    return summary.loc[order.sort_values(["version", "_b", "_m"]).index].reset_index(drop=True)


def formula_name(value: Any) -> str:
    """A results.csv ``official_formula`` cell as text: ``""`` when blank, else the formula's name ("2020").

    A reader that did not ask for text (a plain ``pd.read_csv``) gets the 2020 and 2021 names as integers, or as
    floats when MIMII rows leave the column blank; they name the same formulas. Anything else raises.

    Raises
    ------
    DataError
        The cell is neither blank, text nor a whole number (e.g. ``2020.5`` or ``True``).
    """
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    raise DataError(f"official_formula={value!r} ({type(value).__name__}) is not a formula name such as "
                    "'2020', '2021' or '2022-2025'; read results.csv with common.results (official_formula as text)")


def official_of_rows(rows: pd.DataFrame) -> dict[str, Any]:
    """``official_formula`` and ``official_score`` of a group of rows; blank for MIMII rows.

    The score is `official_scores.official_total` of the rows' section scores: from 2021 the harmonic mean over
    every row (i.e. over every term of every target, source and seed); in 2020 per target the mean over its
    sources and seeds, per machine type the mean over its targets, then the mean over types, as the published
    2020 totals. Blank (NaN) when a row lacks its section score. ``official_formula`` may be text or, from a
    plain ``pd.read_csv``, a number (`formula_name`).

    Raises
    ------
    DataError
        The rows were scored by several formulas, a formula cell is not a name (`formula_name`), or 2020 rows
        lack ``target_type`` / ``target_id``.
    MetricError
        A formula name that is no formula (`official_scores.formula_year`).
    """
    if "official_formula" not in rows.columns:
        return {"official_formula": "", "official_score": float("nan")}
    names = sorted({name for name in map(formula_name, rows["official_formula"]) if name})
    scores = pd.to_numeric(rows["official_score"], errors="coerce")
    if not names or scores.isna().any():
        return {"official_formula": "", "official_score": float("nan")}
    if len(names) > 1:
        raise DataError(f"rows scored by several DCASE formulas {names} cannot be averaged into one official score")
    year = formula_year(names[0])
    missing = [c for c in ("target_type", "target_id") if c not in rows.columns]
    if missing and formula_for(year).total == "types":
        raise DataError(f"the DCASE {names[0]} official score averages per machine type; the rows lack {missing}")
    machine_types = rows["target_type"] if not missing else [""] * len(rows)
    sections = rows["target_id"] if not missing else [""] * len(rows)
    score = official_total(scores, machine_types=machine_types, sections=sections, year=year)
    return {"official_formula": names[0], "official_score": score}


def write_summary(out: Path, results: pd.DataFrame) -> pd.DataFrame:
    """Write summary.csv beside results.csv; return it."""
    summary = summarize(results)
    atomic_write_text(out / "summary.csv", summary.to_csv(index=False, float_format="%.4f"))
    return summary


def per_target(results: pd.DataFrame, *, metric: str = "auc") -> pd.DataFrame:
    """`metric` per target machine (rows) and method x budget (columns), averaged over sources and seeds."""
    table = results.pivot_table(index=["target_type", "target_id"], columns=["method", "budget"], values=metric,
                                aggfunc="mean")
    methods = [m for m in METHOD_ORDER if m in table.columns.get_level_values(0)]
    budgets = sorted(table.columns.get_level_values(1).unique(), key=budget_key)
    return table.reindex(columns=pd.MultiIndex.from_product([methods, budgets], names=["method", "budget"]))
