"""Published DCASE Task 2 official scores a result can be set beside: one table, each number with its source.

A results.csv row on a DCASE root carries the official score of its year's formula (`common.official_scores`);
these are the numbers that formula gives for published systems. Development-set (``dev``) numbers compare
directly with a run on the same development set; evaluation-set (``eval``) numbers were scored on withheld clips
and are a reference for the difficulty of the year, not a like-for-like comparison. Scores are in percent.

Sources:

- ``evaluator``: the MSE autoencoder baseline's per-type AUC-s, AUC-t and pAUC as printed in
  ``nttcslab/dcase2023_task2_evaluator`` README.md (commit 2145dc3, "baseline_MSE") and the README of the 2025
  evaluator ("DCASE2025_baseline_task2_MSE"); the totals are reproduced to 1e-12 by `common.official_scores`
  (tests/test_official_scores.py).
- ``asdkit``: ``TakuyaFujimura/dcase-asd-toolkit`` ``docs/results.png`` at commit ed27d82 (2025-07-29): the rows
  "Challenge_Baseline" and "Challenge_Top" (evaluation sets), and the toolkit's own re-runs, 4 trials each: ``ae``
  (the per-machine autoencoder) and ``dis_spec_scac_trainable`` (a machine / attribute classifier with
  sub-cluster AdaCos, scored by k-nearest neighbours; the family of this project's ``embed_*`` methods).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .official_scores import formula_year

PUBLISHED_COLUMNS = ["year", "split", "system", "official_score", "source"]


@dataclass(frozen=True)
class Published:
    """One published official score: the year's data set and split, the system, the score in percent, the source."""

    year: int
    split: str  # "dev" or "eval"
    system: str
    official_score: float
    source: str


_EVALUATOR = "official evaluator README (MSE baseline)"
_ASDKIT = "ASDKit docs/results.png"
_AE, _SCAC = "ASDKit re-run: per-machine autoencoder", "ASDKit re-run: classifier + sub-cluster AdaCos + kNN"
PUBLISHED: tuple[Published, ...] = (
    Published(2020, "dev", _AE, 65.33, _ASDKIT),
    Published(2020, "dev", _SCAC, 90.57, _ASDKIT),
    Published(2020, "eval", _AE, 67.18, _ASDKIT),
    Published(2020, "eval", _SCAC, 91.96, _ASDKIT),
    Published(2021, "eval", "challenge baseline", 56.38, _ASDKIT),
    Published(2021, "eval", "challenge top system", 66.80, _ASDKIT),
    Published(2022, "eval", "challenge baseline", 54.02, _ASDKIT),
    Published(2022, "eval", "challenge top system", 70.97, _ASDKIT),
    Published(2023, "dev", "challenge baseline (autoencoder, MSE)", 59.25, _EVALUATOR),
    Published(2023, "dev", _AE, 54.82, _ASDKIT),
    Published(2023, "dev", _SCAC, 64.40, _ASDKIT),
    Published(2023, "eval", "challenge baseline", 61.05, _ASDKIT),
    Published(2023, "eval", "challenge top system", 66.97, _ASDKIT),
    Published(2024, "dev", _AE, 55.02, _ASDKIT),
    Published(2024, "dev", _SCAC, 61.58, _ASDKIT),
    Published(2024, "eval", "challenge baseline", 56.51, _ASDKIT),
    Published(2024, "eval", "challenge top system", 66.24, _ASDKIT),
    Published(2025, "dev", "challenge baseline (autoencoder, MSE)", 54.43, _EVALUATOR),
)


def published_for(formula: str) -> pd.DataFrame:
    """The published scores a row of official formula `formula` ("2020", "2021", "2022-2025") compares with.

    Columns `PUBLISHED_COLUMNS`, by year, development sets first. The 2022-2025 formula covers four years.
    """
    formula_year(formula)  # a MetricError for a name of no formula
    first, last = int(formula.split("-")[0]), int(formula.split("-")[-1])
    rows = [p for p in PUBLISHED if first <= p.year <= last]
    table = pd.DataFrame([p.__dict__ for p in rows], columns=PUBLISHED_COLUMNS)
    return table.sort_values(["year", "split"], kind="stable").reset_index(drop=True)
