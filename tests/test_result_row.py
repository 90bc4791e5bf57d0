"""The results schema is one record (`ResultRow`): its columns, their order and dtypes; a misspelt column raises."""

import dataclasses
import math

import pandas as pd
import pytest

from common.errors import DataError
from common.results import (KEY, OFFICIAL_COLUMNS, RESULT_COLUMNS, ROW_FIELDS, SCORE_COLUMNS, ResultRow, read_table,
                            write_results)

# The files' columns as every result folder so far has them: the record must keep them, in this order.
FILE_RESULT_COLUMNS = [
    "version", "target_type", "target_id", "source", "method", "budget", "seed", "auc", "pauc", "n_train_clips",
    "n_eval_clips", "train_seconds", "config_hash", "n_skipped_clips", "threshold", "precision", "recall", "f1",
    "official_formula", "official_score", "auc_source", "auc_target", "pauc_source", "pauc_target"]
FILE_SCORE_COLUMNS = ["version", "target_type", "target_id", "source", "method", "budget", "seed", "path", "label",
                      "score", "domain"]


def _row(**changes) -> ResultRow:
    row = ResultRow(version="v1", target_type="fan", target_id="id_00", source="none", method="scratch", budget="8",
                    seed=0, auc=0.75, pauc=0.6, n_train_clips=8, n_eval_clips=2, train_seconds=1.5,
                    config_hash="abc", n_skipped_clips=0, threshold=0.3, precision=1.0, recall=0.5, f1=2 / 3)
    return dataclasses.replace(row, **changes)


def _scores(row: ResultRow) -> pd.DataFrame:
    run = {k: getattr(row, k) for k in SCORE_COLUMNS[:7]}
    return pd.DataFrame({**run, "path": ["a.wav", "b.wav"], "label": [0, 1], "score": [0.1, 0.9], "domain": ""},
                        columns=SCORE_COLUMNS)


def test_the_record_is_the_files_columns_in_order():
    assert RESULT_COLUMNS == FILE_RESULT_COLUMNS
    assert SCORE_COLUMNS == FILE_SCORE_COLUMNS
    assert KEY == ["target_type", "target_id", "source", "method", "budget", "seed"]
    assert OFFICIAL_COLUMNS == FILE_RESULT_COLUMNS[-6:]
    assert set(ROW_FIELDS) == {"version", "target_type", "target_id", "method", "source", "budget", "seed",
                               "n_train_clips", "auc", "pauc", "precision", "recall", "f1", "n_eval_clips",
                               "config_hash"}
    assert list(_row().to_dict()) == RESULT_COLUMNS
    assert all(math.isnan(getattr(_row(), c)) for c in OFFICIAL_COLUMNS)  # blank on MIMII


def test_a_misspelt_column_raises_naming_it(tmp_path):
    with pytest.raises(TypeError, match="aucc"):
        _row(aucc=0.5)
    row = _row().to_dict() | {"pacu": 0.5}
    with pytest.raises(DataError, match=r"target_type='fan'.*unknown column\(s\) \['pacu'\]"):
        write_results(tmp_path, [row], [_scores(_row())])
    assert not (tmp_path / "results.csv").exists()


def test_rows_are_written_and_read_back_with_the_records_dtypes(tmp_path):
    row = _row(target_id="00", budget="all")
    write_results(tmp_path, [row.to_dict()], [_scores(row)])
    results = read_table(tmp_path / "results.csv")
    assert list(results.columns) == RESULT_COLUMNS
    assert results.loc[0, "target_id"] == "00" and results.loc[0, "budget"] == "all"  # text stays text
    assert results.loc[0, "auc"] == 0.75 and results.loc[0, "official_formula"] == ""
    assert list(read_table(tmp_path / "scores.csv").columns) == SCORE_COLUMNS


def test_a_row_without_the_later_columns_still_writes(tmp_path):
    row = {k: v for k, v in _row().to_dict().items() if k not in OFFICIAL_COLUMNS}
    results = write_results(tmp_path, [row], [_scores(_row())])
    assert results["official_score"].isna().all()
