"""The report's DCASE official scores on fake result CSVs with hand-chosen section scores: official.csv equals the
hand-computed harmonic means, report.md shows them beside the published table; MIMII results get neither."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from common.errors import DataError, MetricError
from common.report.writer import write_report
from common.report.official import OFFICIAL_TABLE_COLUMNS, formula_sentence, official_table, v2_note
from common.results import RESULT_COLUMNS

TARGETS = [("fan", "section_00"), ("pump", "section_00")]
METHODS = {"scratch": 0.50, "zero_shot": 0.40, "transfer": 0.70}  # section score of the fan target at budget 2
BUDGETS = {"2": 2, "all": 10}


def section_score(version: str, method: str, budget: str, k: int) -> float:
    """Hand-chosen section scores: +0.10 at budget all, +0.10 for the pump target, +0.05 in v3 (zero-shot flat)."""
    at_all = 0.10 * (budget == "all" and method != "zero_shot")
    return METHODS[method] + at_all + 0.10 * k + 0.05 * (version == "v3")


def hmean2(a: float, b: float) -> float:
    return 2 / (1 / a + 1 / b)


def rows_of(version: str, *, formula: str | None = "2022-2025") -> list[dict]:
    rows = []
    for method in METHODS:
        for budget, clips in BUDGETS.items():
            for k, (kind, ident) in enumerate(TARGETS):
                score = section_score(version, method, budget, k)
                official = {"official_formula": formula, "official_score": score, "auc_source": score + 0.04,
                            "auc_target": score - 0.02, "pauc_source": np.nan, "pauc_target": np.nan}
                rows.append({"version": version, "target_type": kind, "target_id": ident,
                             "source": "none" if method == "scratch" else ("valve" if kind == "fan" else "fan"),
                             "method": method, "budget": budget, "seed": 0, "auc": score + 0.01, "pauc": score - 0.05,
                             "n_train_clips": 0 if method == "zero_shot" else clips, "n_eval_clips": 20,
                             "train_seconds": 1.0, "config_hash": "hash",
                             **(official if formula else dict.fromkeys(official, np.nan))})
    return rows


def fake_repo(root: Path, versions=("v1", "v3"), formula: str | None = "2022-2025") -> Path:
    """Result CSVs of `versions` as the transfer command writes them (no scores.csv), found through each YAML."""
    for version in versions:
        folder = root / f"Version{version[1:]}"
        out = folder / f"result_transfer_pretrain_{version}"
        out.mkdir(parents=True)
        (folder / f"transfer_pretrain_{version}.yaml").write_text(f"experiment:\n  version: {version}\n")
        pd.DataFrame(rows_of(version, formula=formula), columns=RESULT_COLUMNS).to_csv(out / "results.csv",
                                                                                        index=False)
    return root


@pytest.fixture(scope="module")
def dcase_report(tmp_path_factory):
    repo = fake_repo(tmp_path_factory.mktemp("dcase"))
    text = write_report(repo, n_boot=200).read_text()
    return repo, text


def test_official_csv_is_the_hand_computed_harmonic_mean_in_percent(dcase_report):
    repo, _ = dcase_report
    table = pd.read_csv(repo / "report" / "official.csv", dtype={"budget": str})
    assert list(table.columns) == OFFICIAL_TABLE_COLUMNS
    assert len(table) == 2 * 3 * 2  # versions x methods x budgets
    assert list(table["method"][:3]) == ["scratch", "zero_shot", "transfer"]
    assert list(table["budget"][:6]) == ["2"] * 3 + ["all"] * 3 and list(table["version"][:6]) == ["v1"] * 6
    assert set(table["official_formula"]) == {"2022-2025"}
    assert (table["n_targets"] == 2).all() and (table["n_runs"] == 2).all()
    got = table.set_index(["version", "method", "budget"])
    # v1 scratch at budget 2: section scores 0.50 (fan) and 0.60 (pump); harmonic mean 6/11.
    assert got.loc[("v1", "scratch", "2"), "official_score_pct"] == pytest.approx(100 * 6 / 11, abs=1e-4)
    for (version, method, budget), row in got.iterrows():
        fan, pump = (section_score(version, method, budget, k) for k in range(2))
        scratch = hmean2(*(section_score(version, "scratch", budget, k) for k in range(2)))
        assert row["official_score_pct"] == pytest.approx(100 * hmean2(fan, pump), abs=1e-4)
        assert row["auc_source_pct"] == pytest.approx(100 * ((fan + pump) / 2 + 0.04), abs=1e-4)
        assert row["auc_target_pct"] == pytest.approx(100 * ((fan + pump) / 2 - 0.02), abs=1e-4)
        assert row["official_minus_scratch_pct"] == pytest.approx(100 * (hmean2(fan, pump) - scratch), abs=1e-4)
    assert (got.xs("scratch", level="method")["official_minus_scratch_pct"] == 0).all()


def test_report_md_shows_the_official_scores_beside_the_published_ones(dcase_report):
    _, text = dcase_report
    assert "## DCASE official scores (`official.csv`)" in text
    section = text.split("## DCASE official scores")[1].split("\n## ")[0]
    assert "DCASE 2022-2025 formula" in section and "harmonic mean" in section
    assert "AUC-source, AUC-target, pAUC of each section" in section
    assert "| v1 | scratch | 2 | 2 | 2 | 54.55 | +0.00 | 59.00 | 53.00 |" in section
    transfer = 100 * (hmean2(0.75, 0.85) - hmean2(0.55, 0.65))
    assert f"| v3 | transfer | 2 | 2 | 2 | {100 * hmean2(0.75, 0.85):.2f} | {transfer:+.2f} |" in section
    published = section.split("Published official scores")[1]
    # an evaluation-set number is labelled eval and says, in its own row, that a dev run is not scored on its clips
    assert ("| 2023 | eval | no: evaluation set, other clips | challenge baseline (autoencoder, MSE) | 59.25 | "
            "all target training data") in published
    assert "| 2023 | dev | same clips only for a run on this year's development set | ASDKit re-run" in published
    assert "nttcslab/dcase2023_task2_evaluator @ 3aa8a9f" in published
    assert "**eval**" in published and "not a like-for-like comparison" in published
    assert "| 2020 |" not in published and "| 2021 |" not in published
    assert "v2 has no results here" in section and "one section per machine type" in section
    assert section.index("v2 has no results") < section.index("Published official scores")


def test_v2_note_only_when_v2_is_missing_on_a_first_shot_root(tmp_path):
    repo = fake_repo(tmp_path / "with_v2", versions=("v1", "v2"))
    text = write_report(repo, n_boot=100).read_text()
    assert "## DCASE official scores" in text and "v2 has no results" not in text
    v1 = pd.DataFrame(rows_of("v1"))
    assert v2_note(v1, "2022-2025") is not None
    assert v2_note(v1, "2021") is None  # 2021 roots have several sections per type: v2 had sources
    assert v2_note(pd.DataFrame(rows_of("v2")), "2022-2025") is None
    dcase2022 = pd.concat([v1, v1.assign(target_id="section_01")])  # several sections per type: v2 had sources
    assert v2_note(dcase2022, "2022-2025") is None


def test_mimii_results_get_no_official_csv_and_no_section(tmp_path):
    repo = fake_repo(tmp_path / "mimii", formula=None)
    text = write_report(repo, n_boot=100).read_text()
    assert not (repo / "report" / "official.csv").exists()
    assert "official" not in text.lower() and "DCASE" not in text
    older = pd.DataFrame(rows_of("v1", formula=None)).drop(columns=["official_formula", "official_score"])
    assert official_table(older).empty  # a results.csv from before the official columns


def test_2020_formula_is_arithmetic_without_domain_terms():
    rows = pd.DataFrame(rows_of("v1", formula="2020")).assign(auc_source=np.nan, auc_target=np.nan)
    table = official_table(rows).set_index(["method", "budget"])
    assert table.loc[("transfer", "all"), "official_score_pct"] == pytest.approx(100 * (0.80 + 0.90) / 2)
    assert table["auc_source_pct"].isna().all() and table["auc_target_pct"].isna().all()
    assert "arithmetic mean" in formula_sentence("2020") and "AUC, pAUC of each ID" in formula_sentence("2020")
    assert "mean over machine types of each type's mean" in formula_sentence("2020")


def test_2020_official_table_averages_per_type_and_reads_a_plain_read_csv(tmp_path):
    """A second fan ID (score 0.30 below the first) at every row: the fan type's mean moves, pump's weight does not
    shrink to a third; the same rows read back by a plain pd.read_csv (formula as an integer) give the same table."""
    rows = pd.DataFrame(rows_of("v1", formula="2020")).assign(auc_source=np.nan, auc_target=np.nan)
    second = rows[rows["target_type"] == "fan"].assign(target_id="section_01",
                                                       official_score=lambda t: t["official_score"] - 0.30)
    rows = pd.concat([rows, second], ignore_index=True)
    table = official_table(rows).set_index(["method", "budget"])
    # transfer at all: fan (0.80 + 0.50) / 2 = 0.65, pump 0.90 -> 0.775 (a mean over the three IDs: 0.733)
    assert table.loc[("transfer", "all"), "official_score_pct"] == pytest.approx(77.5)
    rows.to_csv(tmp_path / "results.csv", index=False)
    plain = pd.read_csv(tmp_path / "results.csv")
    assert plain["official_formula"].dtype.kind == "i"
    again = official_table(plain.assign(budget=plain["budget"].astype(str)))
    pd.testing.assert_frame_equal(again, official_table(rows), check_dtype=False)


def test_a_2020_report_says_the_classifier_rows_are_upper_bounds(tmp_path):
    """Few-clip 2020 rows beside the ASDKit classifier's 90.57: the row itself says upper bound, all target data."""
    repo = fake_repo(tmp_path / "d2020", versions=("v1",), formula="2020")
    text = write_report(repo, n_boot=100).read_text()
    published = text.split("## DCASE official scores")[1].split("Published official scores")[1]
    (line,) = [line for line in published.splitlines() if "| 2020 | dev |" in line and "| 90.57 |" in line]
    assert "upper bound, not transfer" in line and "~1,000 training clips" in line
    assert "| 2020 | eval | no: evaluation set, other clips |" in published
    assert "| 2020 | dev | same clips only for a run on this year's development set | challenge baseline" in published


def test_rows_of_several_formulas_in_one_group_and_unknown_formulas_are_refused():
    mixed = pd.DataFrame(rows_of("v1"))
    mixed.loc[0, "official_formula"] = "2021"
    with pytest.raises(DataError, match="v1 scratch at budget 2: rows scored by several DCASE formulas"):
        official_table(mixed)
    unscored = pd.DataFrame(rows_of("v1"))
    unscored.loc[0, "official_score"] = np.nan  # a row without its section score: no official score for its group
    table = official_table(unscored).set_index(["method", "budget"])
    assert np.isnan(table.loc[("scratch", "2"), "official_score_pct"]) and table.loc[("scratch", "2"), "n_runs"] == 2
    assert table.loc[("transfer", "2"), "official_score_pct"] == pytest.approx(100 * hmean2(0.70, 0.80))
    with pytest.raises(MetricError, match="2019"):
        formula_sentence("2019")
