"""The published-numbers table (`common.report.published`): every row carries year, split, system, value and a source
(repository + commit, file and row); each row's split agrees with the machine types its source lists; the
evaluator rows are the totals of the README blocks in tests/data/evaluators; the report says the split of every
published row it shows and that the classifier rows are upper bounds."""

import re

import pandas as pd
import pytest

from common.data.download_dcase import DEV_SETS
from common.scoring.official import FORMULA_NAMES
from common.report.published import PUBLISHED, SPLITS, published_for
from conftest import EVALUATORS, evaluator_blocks

ROWS = {f"{p.year}-{p.split}-{p.system[:40]}": p for p in PUBLISHED}


def test_every_row_has_year_split_system_value_and_a_source_with_its_commit():
    assert len(ROWS) == len(PUBLISHED)  # no row twice
    for p in PUBLISHED:
        assert p.year in DEV_SETS and p.split in SPLITS and p.system and 0 < p.official_score < 100
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", p.source.where) and p.source.item, p
        # a commit, or the reason there is none (the 2025 evaluator README was read as a stored copy only)
        assert re.fullmatch(r"[0-9a-f]{7,40}", p.source.commit) or (
            p.source.commit == "" and "commit was not retrieved" in p.source.item), p
    assert {p.year for p in PUBLISHED if not p.source.commit} == {2025}


@pytest.mark.parametrize("key", sorted(ROWS))
def test_each_rows_split_agrees_with_the_machine_types_its_source_lists(key):
    """A dev number covers the development set's types (the Zenodo dev zips, `DEV_SETS`). An eval number covers,
    from 2023 on, types the development set does not have (first-shot: new machines); in 2020-2022 the evaluation
    set holds other IDs / sections of the same types, so its types are the development set's."""
    row = ROWS[key]
    dev = set(DEV_SETS[row.year].types)
    types = set(row.machine_types)
    assert types, f"{key}: its source lists machine types; the row must carry them"
    if row.split == "dev" or row.year <= 2022:
        assert types == dev, f"{key}: {sorted(types)} are not the {row.year} development set's {sorted(dev)}"
    else:
        assert not types & dev and len(types) >= 7, f"{key}: an eval row of a first-shot year lists dev types"


def test_the_evaluator_rows_are_the_readme_totals_of_their_machine_types():
    """Each evaluator-sourced row: the TOTAL h-mean of its README block (x 100, 2 decimals) and the block's types."""
    blocks = {(year, system): block for year, system, block in evaluator_blocks()}
    rows = [p for p in PUBLISHED if "task2_evaluator" in p.source.where]
    assert len(rows) == len(blocks) == 6
    for p in rows:
        (system,) = [s for (y, s) in blocks if y == p.year and f"{s} TOTAL" in p.source.item]
        block = blocks[(p.year, system)]
        assert p.official_score == round(100 * block.loc["TOTAL score", "h-mean"], 2), p
        assert p.split == "eval" and set(p.machine_types) == set(block.columns) - {"System", "h-mean", "a-mean"}, p
        assert ("MAHALA" in system) == ("Mahalanobis" in p.system), p
    assert (EVALUATORS / "dcase2020_baseline_readme_result.csv").is_file()


def test_no_official_dev_baseline_is_claimed_for_the_first_shot_years():
    """The evaluators score evaluation sets only: every 2021-2025 dev row is an ASDKit re-run."""
    for p in PUBLISHED:
        if p.split == "dev" and p.year >= 2021:
            assert p.source.where == "TakuyaFujimura/dcase-asd-toolkit" and p.system.startswith("ASDKit re-run"), p


def test_classifier_rows_say_they_are_upper_bounds_with_all_target_data():
    classifier = [p for p in PUBLISHED if "classifier" in p.system]
    assert {(p.year, p.split) for p in classifier if p.year == 2020} == {(2020, "dev"), (2020, "eval")}
    for p in classifier:
        assert p.note.startswith("upper bound, not transfer") and "target's own" in p.note, p
    assert all(p.note for p in PUBLISHED)


@pytest.mark.parametrize("formula", sorted(FORMULA_NAMES.values()))
def test_the_report_table_says_each_rows_split_and_note(formula):
    from common.report.official import PUBLISHED_SENTENCE, SPLIT_WORDS, published_shown

    shown, table = published_shown(formula), published_for(formula)
    assert len(shown) == len(table) and list(shown["split"]) == list(table["split"])
    assert [SPLIT_WORDS[s] for s in table["split"]] == list(shown["beside a dev run"])
    assert SPLIT_WORDS["eval"].startswith("no:") and "evaluation set" in SPLIT_WORDS["eval"]
    assert list(shown["note"]) == list(table["note"]) and shown["source"].str.contains("@|commit").all()
    assert "**eval**" in PUBLISHED_SENTENCE and "upper bounds, not transfer results" in PUBLISHED_SENTENCE
    eval_rows = shown[shown["split"] == "eval"]
    assert not eval_rows.empty and (eval_rows["beside a dev run"] == SPLIT_WORDS["eval"]).all()


def test_published_for_is_sorted_by_year_with_dev_rows_first():
    table = published_for("2022-2025")
    order = list(zip(table["year"], table["split"]))
    assert order == sorted(order) and isinstance(table["source"].iloc[0], str)
    assert pd.Series([p.year for p in PUBLISHED]).between(2020, 2025).all()


def test_the_readme_table_lists_every_published_number_with_its_split():
    """README's "Which published numbers" table: one row per `PUBLISHED` number, same year, split and score; the
    classifier rows say upper bound."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("**Which published numbers a result compares with**")[1].split("**A DCASE demo.**")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in section.splitlines()
            if re.match(r"\| 20\d\d \|", line)]
    assert sorted((int(y), split, float(score)) for y, split, _, score, _ in rows) == sorted(
        (p.year, p.split, p.official_score) for p in PUBLISHED)
    for year, split, system, score, trained_on in rows:
        assert ("classifier" in system) == trained_on.startswith("**upper bound**"), system
    assert "never read a dev run against" in section and "upper bounds, not transfer results" in section
