"""Published DCASE Task 2 official scores a result can be set beside: one table, each number with its source.

Every row says the year, the split its number was scored on, the system, the score in percent, where it is
printed (`Source`: a repository at a commit, and the file and row) and, where that source lists them, the
machine types it covers; ``note`` says what the system trained on where a reader could mistake it.

Splits. A row is ``dev`` when its number was scored on the year's *development* set (the sets this project
downloads and runs on: `common.data.download_dcase.DEV_SETS`) and ``eval`` when it was scored on the *evaluation*
set, whose labels were withheld: its clips are others (2020: other machine IDs; 2021-2022: sections 03-05; 2023-2025:
other machine types). Only a dev row compares like for like with a run on that year's development set; an eval
row shows how hard the year was. The evaluators' READMEs (``*_task2_evaluator``) score evaluation sets only,
and no official challenge-baseline number on a 2021-2025 development set was found, so the dev rows of those
years are the toolkit's re-runs.

Training data. Every system here trains on all of each machine's given training clips (the challenge setting),
the target's own included: ASDKit's ``ae`` trains one autoencoder per machine type on every ID or section of
it, and its classifier (``dis_spec_scac_trainable``) one network on every machine of the year. In 2020 that is
the target ID's ~1,000 normal clips, so the classifier rows are an upper bound with all target data, not a
transfer result; a few-clip budget of this project is a different, harder setting than any row here.

2020 totals are the mean over machine types of each type's mean (ASDKit ``asdkit/bin/table.py``;
`common.scoring.official`), which is what the 2020 challenge-baseline row below is computed as.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from common.scoring.official import formula_year

PUBLISHED_COLUMNS = ["year", "split", "system", "official_score", "note", "source"]
SPLITS = ("dev", "eval")


@dataclass(frozen=True)
class Source:
    """Where a published number is printed: a repository at a commit (or a paper), and the file and row in it."""

    where: str  # "owner/name" of a GitHub repository
    commit: str  # the commit read (hex); "" where only a copy without its commit was read (`item` says so)
    item: str  # the file, and the table row / column that holds the number

    def __str__(self) -> str:
        return f"{self.where}" + (f" @ {self.commit}" if self.commit else "") + f", {self.item}"


@dataclass(frozen=True)
class Published:
    """One published official score: year, split (``"dev"`` / ``"eval"``), system, score in percent, source."""

    year: int
    split: str
    system: str
    official_score: float
    source: Source
    machine_types: tuple[str, ...] = ()  # the types the source lists for this number (empty: it lists none)
    note: str = ""  # what the system trained on, where a reader could mistake it for a transfer result


# The machine types each source lists, per year and split: ASDKit asdkit/utils/dcase_utils/machines.py
# (MACHINE_DICT) at ed27d82; the evaluators' per-type columns (see the Source of each row).
_TYPES_2020 = ("fan", "pump", "slider", "ToyCar", "ToyConveyor", "valve")
_TYPES_2021 = ("fan", "gearbox", "pump", "slider", "ToyCar", "ToyTrain", "valve")
# 2022 (both splits) and the 2023-2025 development sets
_TYPES_2022_DEV = ("bearing", "fan", "gearbox", "slider", "ToyCar", "ToyTrain", "valve")
_EVAL_TYPES = {
    2023: ("bandsaw", "grinder", "shaker", "ToyDrone", "ToyNscale", "ToyTank", "Vacuum"),
    2024: ("3DPrinter", "AirCompressor", "Scanner", "ToyCircuit", "HoveringDrone", "HairDryer", "ToothBrush",
           "RoboticArm", "BrushlessMotor"),
    2025: ("AutoTrash", "HomeCamera", "ToyPet", "ToyRCCar", "BandSealer", "CoffeeGrinder", "Polisher",
           "ScrewFeeder"),
}

_ASDKIT_REPO, _ASDKIT_COMMIT = "TakuyaFujimura/dcase-asd-toolkit", "ed27d82"
_ASDKIT_ROWS = {"ae": "ae", "scac": "dis_spec_scac_trainable", "baseline": "Challenge_Baseline",
                "top": "Challenge_Top"}


def _asdkit(row: str, year: int, split: str) -> Source:
    """A cell of ASDKit's results figure: recipe (or challenge) row, column "<yy><split>", mean of 4 trials."""
    return Source(_ASDKIT_REPO, _ASDKIT_COMMIT,
                  f"docs/results.png, row {_ASDKIT_ROWS[row]}, column {str(year)[2:]}{split}")


def _evaluator(year: int, system: str) -> Source:
    """The TOTAL score row of a first-shot evaluator README's ``_seed13711_official_score_paper.csv`` block."""
    where, commit = {2023: ("nttcslab/dcase2023_task2_evaluator", "3aa8a9f"),
                     2024: ("nttcslab/dcase2024_task2_evaluator", "b5d17f6"),
                     2025: ("nttcslab/dcase2025_task2_evaluator", "")}[year]
    unread = "" if commit else " (a stored copy of the README; its commit was not retrieved)"
    return Source(where, commit, f"README.md{unread}, _seed13711_official_score_paper.csv, {system} TOTAL score "
                                 "h-mean")


_AE = "ASDKit re-run: per-machine-type autoencoder"
_SCAC = "ASDKit re-run: classifier + sub-cluster AdaCos + kNN"
_MSE, _MAHALA = "challenge baseline (autoencoder, MSE)", "challenge baseline (autoencoder, selective Mahalanobis)"
_ALL_AE = "all target training data: one autoencoder per machine type, every ID / section of it"
_ALL_SCAC = ("upper bound, not transfer: one classifier on every machine of the year, the target's own training "
             "clips included")
_ALL_2020 = ("upper bound, not transfer: one classifier on every machine ID, the target's own ~1,000 training clips "
             "included")
_ALL_BASELINE = "all target training data (the challenge setting)"
_TOP = "the best submitted system of the year (any training data the rules allowed)"

PUBLISHED: tuple[Published, ...] = (
    Published(2020, "dev", "challenge baseline (autoencoder)", 66.66,
              Source("y-kawagu/dcase2020_task2_baseline", "ebfcc2a",
                     "README.md, result.csv: per-ID AUC and pAUC; the total (mean over types of mean(AUC, pAUC), "
                     "the README prints none) computed here"),
              _TYPES_2020, _ALL_AE),
    Published(2020, "dev", _AE, 65.33, _asdkit("ae", 2020, "dev"), _TYPES_2020, _ALL_AE),
    Published(2020, "dev", _SCAC, 90.57, _asdkit("scac", 2020, "dev"), _TYPES_2020, _ALL_2020),
    Published(2020, "eval", _AE, 67.18, _asdkit("ae", 2020, "eval"), _TYPES_2020, _ALL_AE),
    Published(2020, "eval", _SCAC, 91.96, _asdkit("scac", 2020, "eval"), _TYPES_2020, _ALL_2020),
    Published(2021, "dev", _AE, 56.46, _asdkit("ae", 2021, "dev"), _TYPES_2021, _ALL_AE),
    Published(2021, "dev", _SCAC, 69.14, _asdkit("scac", 2021, "dev"), _TYPES_2021, _ALL_SCAC),
    Published(2021, "eval", "challenge baseline", 56.38, _asdkit("baseline", 2021, "eval"), _TYPES_2021,
              _ALL_BASELINE),
    Published(2021, "eval", "challenge top system", 66.80, _asdkit("top", 2021, "eval"), _TYPES_2021, _TOP),
    Published(2022, "dev", _AE, 53.84, _asdkit("ae", 2022, "dev"), _TYPES_2022_DEV, _ALL_AE),
    Published(2022, "dev", _SCAC, 71.62, _asdkit("scac", 2022, "dev"), _TYPES_2022_DEV, _ALL_SCAC),
    Published(2022, "eval", "challenge baseline", 54.02, _asdkit("baseline", 2022, "eval"), _TYPES_2022_DEV,
              _ALL_BASELINE),
    Published(2022, "eval", "challenge top system", 70.97, _asdkit("top", 2022, "eval"), _TYPES_2022_DEV, _TOP),
    Published(2023, "dev", _AE, 54.82, _asdkit("ae", 2023, "dev"), _TYPES_2022_DEV, _ALL_AE),
    Published(2023, "dev", _SCAC, 64.40, _asdkit("scac", 2023, "dev"), _TYPES_2022_DEV, _ALL_SCAC),
    Published(2023, "eval", _MSE, 59.25, _evaluator(2023, "baseline_MSE"), _EVAL_TYPES[2023], _ALL_BASELINE),
    Published(2023, "eval", _MAHALA, 61.05, _evaluator(2023, "baseline_MAHALA"), _EVAL_TYPES[2023], _ALL_BASELINE),
    Published(2023, "eval", "challenge top system", 66.97, _asdkit("top", 2023, "eval"), _EVAL_TYPES[2023], _TOP),
    Published(2024, "dev", _AE, 55.02, _asdkit("ae", 2024, "dev"), _TYPES_2022_DEV, _ALL_AE),
    Published(2024, "dev", _SCAC, 61.58, _asdkit("scac", 2024, "dev"), _TYPES_2022_DEV, _ALL_SCAC),
    Published(2024, "eval", _MSE, 56.51, _evaluator(2024, "DCASE2024_baseline_task2_MSE"), _EVAL_TYPES[2024],
              _ALL_BASELINE),
    Published(2024, "eval", _MAHALA, 56.49, _evaluator(2024, "DCASE2024_baseline_task2_MAHALA"), _EVAL_TYPES[2024],
              _ALL_BASELINE),
    Published(2024, "eval", "challenge top system", 66.24, _asdkit("top", 2024, "eval"), _EVAL_TYPES[2024], _TOP),
    Published(2025, "eval", _MSE, 54.43, _evaluator(2025, "DCASE2025_baseline_task2_MSE"), _EVAL_TYPES[2025],
              _ALL_BASELINE),
    Published(2025, "eval", _MAHALA, 56.51, _evaluator(2025, "DCASE2025_baseline_task2_MAHALA"), _EVAL_TYPES[2025],
              _ALL_BASELINE),
)


def published_for(formula: str) -> pd.DataFrame:
    """The published scores a row of official formula `formula` ("2020", "2021", "2022-2025") compares with.

    Columns `PUBLISHED_COLUMNS` (``source`` as text), by year, development sets first. The 2022-2025 formula
    covers four years.
    """
    formula_year(formula)  # a MetricError for a name of no formula
    first, last = int(formula.split("-")[0]), int(formula.split("-")[-1])
    rows = [{**p.__dict__, "source": str(p.source)} for p in PUBLISHED if first <= p.year <= last]
    table = pd.DataFrame(rows, columns=PUBLISHED_COLUMNS)
    return table.sort_values(["year", "split"], kind="stable").reset_index(drop=True)
