"""The report's DCASE official-score tables beside the published ones: numbers and words, no markdown.

On a DCASE Task 2 root every results.csv row carries its year's official formula and section score
(`common.results.OFFICIAL_COLUMNS`); ``official.csv`` gives the year's official score per version x method
x budget in percent, as the DCASE tables print it, to be read beside `common.report.published.published_for`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.errors import DataError
from common.methods.catalog import BASELINE
from common.scoring.official import FORMULA_NAMES, formula_for, formula_year
from common.report.published import published_for
from common.results import METHOD_ORDER, budget_key, formula_name, official_of_rows, version_key

# official.csv: scores in percent (100 x the 0-1 value); the per-domain AUCs are means over the targets that
# have the term (none in 2020); ``official_minus_scratch_pct`` = this row's official score - scratch's at the
# same version and budget, in percentage points.
OFFICIAL_TABLE_COLUMNS = ["version", "method", "budget", "official_formula", "official_score_pct", "auc_source_pct",
                          "auc_target_pct", "official_minus_scratch_pct", "n_targets", "n_runs"]
FIRST_SHOT = FORMULA_NAMES[2022]  # "2022-2025", the formula of the first-shot years 2023-2025 (one section per machine type)
_TERM_WORDS = {"auc": "AUC", "pauc": "pAUC"}
PUBLISHED_SENTENCE = (
    "Published official scores of the same formula (`common.report.published`), in percent, each with its split and "
    "source. The runs above score a development set's test clips: only a **dev** row of the run's own year was "
    "scored on the same clips. An **eval** row was scored on that year's evaluation set (withheld clips; in "
    "2023-2025 other machine types): it shows how hard the year was and is not a like-for-like comparison with "
    "any run here. Every published system trained on all of the target's training clips (the note says how), so "
    "a few-clip budget compares with none of them; the classifier rows (one network trained on every machine of "
    "the year, the target's own clips included; in 2020 its ~1,000) are upper bounds, not transfer results.")
# What the "beside a dev run" column says of a published row, by split.
SPLIT_WORDS = {"dev": "same clips only for a run on this year's development set",
               "eval": "no: evaluation set, other clips"}


def official_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The rows of `results` scored by a DCASE formula, ``official_formula`` as text (`results.formula_name`).

    None on MIMII roots or in files older than the column; a plain ``pd.read_csv`` (2020, 2021 read as numbers)
    gives the same rows as `common.results`' reader.
    """
    if "official_formula" not in results.columns:
        return results.iloc[0:0]
    names = results["official_formula"].map(formula_name)
    return results.assign(official_formula=names)[names != ""]


def _target_mean(rows: pd.DataFrame, column: str) -> float:
    """`column` averaged over sources and seeds per target, then over the targets that have it."""
    if column not in rows.columns:
        return float("nan")
    per_target = rows.groupby(["target_type", "target_id"])[column].mean().dropna()
    return float(per_target.mean()) if len(per_target) else float("nan")


def official_table(results: pd.DataFrame) -> pd.DataFrame:
    """The official score of every version x method x budget with a DCASE formula (official.csv), in percent.

    Parameters
    ----------
    results : pd.DataFrame [columns=results.RESULT_COLUMNS]
        Every version's rows (`common.results.collect`); rows without an official formula are left out.

    Returns
    -------
    table : pd.DataFrame [columns=OFFICIAL_TABLE_COLUMNS]
        Sorted by version, budget and method (`results.METHOD_ORDER`); empty when no row has a formula.

    Raises
    ------
    DataError
        The rows of one version, method and budget were scored by several formulas.
    """
    out = []
    for (version, method, budget), g in official_rows(results).groupby(["version", "method", "budget"], sort=False):
        names = sorted(set(g["official_formula"]))
        if len(names) > 1:
            raise DataError(f"{version} {method} at budget {budget}: rows scored by several DCASE formulas {names} "
                            "cannot be averaged into one official score; were two data roots mixed in one version?")
        out.append({"version": version, "method": method, "budget": budget, "official_formula": names[0],
                    # NaN (shown "–") when a row lacks its section score: never a mean over fewer rows
                    "official_score_pct": 100 * official_of_rows(g)["official_score"],
                    "auc_source_pct": 100 * _target_mean(g, "auc_source"),
                    "auc_target_pct": 100 * _target_mean(g, "auc_target"),
                    "n_targets": g[["target_type", "target_id"]].drop_duplicates().shape[0], "n_runs": len(g)})
    table = pd.DataFrame(out, columns=OFFICIAL_TABLE_COLUMNS)
    scratch = table[table["method"] == BASELINE].set_index(["version", "budget"])["official_score_pct"]
    base = scratch.reindex(pd.MultiIndex.from_frame(table[["version", "budget"]])).to_numpy(dtype=float)
    table["official_minus_scratch_pct"] = table["official_score_pct"].to_numpy(dtype=float) - base
    order = table.assign(_v=table["version"].map(version_key), _b=table["budget"].map(budget_key),
                         _m=table["method"].map(METHOD_ORDER).fillna(len(METHOD_ORDER)))
    return table.loc[order.sort_values(["_v", "_b", "_m"], kind="stable").index].reset_index(drop=True)


def formula_sentence(formula: str) -> str:
    """What the official score of a row is, in words, for a formula name ("2020", "2021", "2022-2025")."""
    spec = formula_for(formula_year(formula))
    terms = [_TERM_WORDS[metric] + ("" if domain == "all" else f"-{domain}") for metric, domain, _ in spec.terms]
    if spec.total == "types":
        how = (f"the {spec.mean} mean over machine types of each type's mean of its terms ({', '.join(terms)} of "
               f"each {spec.unit}; a target's sources and seeds averaged first), as the published {formula} totals "
               "average types")
    else:
        how = (f"the {spec.mean} mean of every term ({', '.join(terms)} of each {spec.unit}) over every target, "
               "source and seed of the row")
    return (f"The official score is the DCASE {formula} formula (`common.scoring.official`): {how}, in percent as "
            "the DCASE tables print it; Δ scratch is its plain difference to scratch's official score at the same "
            "version and budget (percentage points).")


def v2_note(results: pd.DataFrame, formula: str) -> str | None:
    """Why v2 is missing on a first-shot root (2023-2025): one section per type, so no other ID to pretrain on.

    None unless `formula` is the first-shot formula, its rows have one section per machine type (a 2022 root has
    several), no v2 row exists and another version's rows do.
    """
    versions = set(results["version"].astype(str))
    if formula != FIRST_SHOT or "v2" in versions or not versions & {"v1", "v3", "v4"}:
        return None
    rows = official_rows(results)
    if (rows[rows["official_formula"] == formula].groupby("target_type")["target_id"].nunique() > 1).any():
        return None
    return ("v2 has no results here: it pretrains on the other sections of the target's machine type, and a "
            "first-shot (DCASE 2023-2025) root has one section per machine type, so v2 has no source set there.")


def shown_table(official: pd.DataFrame) -> pd.DataFrame:
    """The rows of `official` formatted for report.md: percent with two decimals, as DCASE tables print them."""
    def pct(values: pd.Series, sign: str = "") -> list[str]:
        return ["–" if np.isnan(v) else f"{v:{sign}.2f}" for v in values.to_numpy(dtype=float)]

    return pd.DataFrame({
        "version": official["version"], "method": official["method"], "budget": official["budget"],
        "machines": official["n_targets"], "runs": official["n_runs"],
        "official score (%)": pct(official["official_score_pct"]),
        "Δ scratch (points)": pct(official["official_minus_scratch_pct"], "+"),
        "AUC source (%)": pct(official["auc_source_pct"]), "AUC target (%)": pct(official["auc_target_pct"]),
    })


def published_shown(formula: str) -> pd.DataFrame:
    """`published.published_for(formula)` formatted for report.md: every row says its split and whether it is
    scored on the clips of a development-set run ("beside a dev run"), its training-data note and its source."""
    table = published_for(formula)
    return pd.DataFrame({
        "year": table["year"], "split": table["split"], "beside a dev run": table["split"].map(SPLIT_WORDS),
        "system": table["system"], "official score (%)": [f"{v:.2f}" for v in table["official_score"]],
        "note": table["note"], "source": table["source"],
    })
