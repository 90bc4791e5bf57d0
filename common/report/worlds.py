"""The report's section on synthetic worlds: which family conclusions held in every world, and whether this run agrees.

`benchmarks/worlds.py --write-evidence` writes ``worlds_evidence.csv`` beside this module: per world, pretrained
method and budget (4 and all), the method's mean AUC minus its family control's, paired per target (seeds,
then versions averaged), with a 95 % bootstrap interval over targets, and the commit and command that made it.
`read_evidence` reads and checks it; `worlds_section` states it per family in markdown and sets this run's own
difference (`run_differences` of `stats.method_table`) beside it. pandas only: no Keras, no result folders.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from common.errors import DataError

EVIDENCE_PATH = Path(__file__).with_name("worlds_evidence.csv")
EVIDENCE_COLUMNS = ["world", "family", "method", "control", "budget", "method_auc", "control_auc", "delta",
                    "ci_low", "ci_high", "n_targets", "seeds", "versions", "commit", "command"]
NUMERIC = ["method_auc", "control_auc", "delta", "ci_low", "ci_high", "n_targets"]
RUN_COLUMNS = ["family", "method", "control", "delta", "ci_low", "ci_high"]  # `worlds_section`'s this_run
RUN_BUDGET = "4"  # the budget of this_run rows without a ``budget`` column (the report's SENTENCE_BUDGET)
BUDGET_WORDS = {"4": "4 clips", "all": "all clips"}


def read_evidence(path: str | Path | None = None) -> pd.DataFrame:
    """The evidence table at `path` (default: the shipped ``worlds_evidence.csv``), checked.

    Raises
    ------
    DataError
        The file is missing or unreadable, lacks a column of `EVIDENCE_COLUMNS`, has no rows, or a numeric
        column holds text; the message names the file.
    """
    path = EVIDENCE_PATH if path is None else Path(path)
    try:
        table = pd.read_csv(path, dtype={"budget": str, "seeds": str, "commit": str, "command": str})
    except (OSError, ValueError) as exc:
        raise DataError(f"worlds evidence {path} cannot be read ({exc}); benchmarks/worlds.py --write-evidence "
                        "writes it") from exc
    missing = [c for c in EVIDENCE_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"worlds evidence {path} lacks the column(s) {missing}; it needs {EVIDENCE_COLUMNS}")
    if table.empty:
        raise DataError(f"worlds evidence {path} has no rows")
    for column in NUMERIC:
        if not pd.api.types.is_numeric_dtype(table[column]):
            raise DataError(f"worlds evidence {path}: column {column!r} must be numeric, got {table[column].dtype}")
    return table


def run_differences(methods: pd.DataFrame) -> pd.DataFrame:
    """This run's family comparisons from `stats.method_table`: per family and budget, its best pretrained row.

    The best is the (method, version) of highest mean AUC, as `report.family_sentence` picks it; columns
    `RUN_COLUMNS` plus ``budget`` and ``version``.
    """
    rows = methods[(methods["method"] != methods["control"]) & methods["control_delta_auc_mean"].notna()]
    rows = rows.assign(budget=rows["budget"].astype(str))
    best = rows.loc[rows.groupby(["family", "budget"], sort=False)["auc_mean"].idxmax()]
    return pd.DataFrame({"family": best["family"], "method": best["method"], "control": best["control"],
                         "budget": best["budget"], "version": best["version"],
                         "delta": best["control_delta_auc_mean"], "ci_low": best["control_delta_auc_ci_low"],
                         "ci_high": best["control_delta_auc_ci_high"]}).reset_index(drop=True)


def _best_method(at: pd.DataFrame) -> str:
    """The pretrained method of highest mean AUC over the worlds (first in the file's order on a tie)."""
    means = at.groupby("method", sort=False)["method_auc"].mean()
    return str(means.idxmax())


def _outcome(low: float, high: float) -> str:
    """``beats``, ``worse`` or ``unclear``: where a 95 % interval of a difference lies against 0."""
    return "beats" if low > 0 else "worse" if high < 0 else "unclear"


def _verdict(rows: pd.DataFrame) -> tuple[str, str]:
    """(``every`` / ``none`` / ``depends``, its words) for one method's rows, one per world."""
    outcomes = [_outcome(lo, hi) for lo, hi in zip(rows["ci_low"], rows["ci_high"])]
    beats = [w for w, o in zip(rows["world"], outcomes) if o == "beats"]
    others = [w for w, o in zip(rows["world"], outcomes) if o != "beats"]
    worse = [w for w, o in zip(rows["world"], outcomes) if o == "worse"]
    if not others:
        return "every", f"beats it in every world ({rows['delta'].min():+.3f} to {rows['delta'].max():+.3f})"
    worse_words = f"; worse in {', '.join(worse)}" if worse else ""
    if not beats:
        return "none", f"beats it in no world{worse_words}"
    return "depends", f"**depends on the world**: beats it in {', '.join(beats)}; not in {', '.join(others)}" \
                      f"{worse_words}"


def _agreement(kind: str, rows: pd.DataFrame, run: pd.Series | None) -> str:
    """This run's difference and whether it agrees with the worlds' verdict `kind` for the same family and budget."""
    if run is None:
        return "not scored in this run"
    numbers = f"{run['delta']:+.3f} [{run['ci_low']:+.3f}, {run['ci_high']:+.3f}] ({run['method']})"
    if pd.isna(run["ci_low"]) or pd.isna(run["ci_high"]):
        return f"{numbers}: too few machines for an interval"
    mine = _outcome(run["ci_low"], run["ci_high"])
    outcomes = {w: _outcome(lo, hi) for w, lo, hi in zip(rows["world"], rows["ci_low"], rows["ci_high"])}
    like = [w for w, o in outcomes.items() if (o == "beats") == (mine == "beats")]
    words = {"beats": "beats it", "worse": "worse than it", "unclear": "no clear difference"}[mine]
    if kind == "every":
        return f"{numbers}: {words}, " + ("as in every world" if mine == "beats" else "where every world gained")
    if kind == "none":
        return f"{numbers}: {words}, " + ("unlike every world" if mine == "beats" else "as in every world")
    return f"{numbers}: {words}, as in {', '.join(like)}"


def _run_row(this_run: pd.DataFrame | None, family: str, budget: str) -> pd.Series | None:
    """This run's row for `family` at `budget` (rows without a budget count as `RUN_BUDGET`), else None."""
    if this_run is None:
        return None
    budgets = this_run["budget"].astype(str) if "budget" in this_run.columns else RUN_BUDGET
    rows = this_run[(this_run["family"] == family) & (budgets == budget)]
    return None if rows.empty else rows.iloc[0]


def _family_rows(evidence: pd.DataFrame, this_run: pd.DataFrame | None) -> list[list[str]]:
    """One table row per family and budget: its best method, control, verdict over worlds and this run's agreement."""
    out = []
    for family in dict.fromkeys(evidence["family"]):
        for budget in [b for b in BUDGET_WORDS if b in set(evidence["budget"].astype(str))]:
            at = evidence[(evidence["family"] == family) & (evidence["budget"].astype(str) == budget)]
            if at.empty:
                continue
            method = _best_method(at)
            rows = at[at["method"] == method]
            kind, words = _verdict(rows)
            row = [family, BUDGET_WORDS[budget], method, str(rows["control"].iloc[0]), words]
            if this_run is not None:
                row.append(_agreement(kind, rows, _run_row(this_run, family, budget)))
            out.append(row)
    return out


def worlds_section(evidence: pd.DataFrame, this_run: pd.DataFrame | None) -> str:
    """The report's markdown on the worlds: per family and budget, beats its control in every world, none, or depends.

    `this_run`: columns `RUN_COLUMNS` (optionally ``budget``; without it, rows are of `RUN_BUDGET` clips), e.g.
    `run_differences`; None leaves this run's column out.
    """
    if this_run is not None:
        missing = [c for c in RUN_COLUMNS if c not in this_run.columns]
        if missing:
            raise DataError(f"this_run lacks the column(s) {missing}; it needs {RUN_COLUMNS} (see run_differences)")
    worlds = ", ".join(f"`{w}`" for w in dict.fromkeys(evidence["world"]))
    first = evidence.iloc[0]
    header = ["family", "target clips", "best pretrained method (mean over worlds)", "control", "across worlds"]
    header += ["this run"] if this_run is not None else []
    lines = ["## Across synthetic worlds", "",
             f"Does each family's best pretrained method beat its no-pretraining control in every synthetic world? "
             f"Worlds: {worlds} (`common/report/worlds_evidence.csv`: commit {first['commit']}, "
             f"{int(first['n_targets'])} targets, seeds {first['seeds']}, versions {first['versions']} pooled per "
             "target; \"beats\" = the 95 % bootstrap interval of the paired difference is above 0). The worlds "
             "are synthetic fault physics: a conclusion that depends on the world may go either way on real data.",
             "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in _family_rows(evidence, this_run)]
    return "\n".join(lines) + "\n"
