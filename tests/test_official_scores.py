"""Official DCASE Task 2 scores: each year's formula against a hand-computed table, the hmean machinery
against the totals the official evaluators' READMEs publish, the 2020 total as the published one (mean of
per-type means), results.csv rows read back by a plain ``pd.read_csv``, and errors that name what is missing.

Hand arithmetic used below. AUC = the share of (anomaly, normal) pairs in which the anomaly scores higher.
pAUC (max_fpr 0.1, McClish-standardised as scikit-learn and every evaluator compute it): with at most 10
normal clips (passing the top normal takes FPR to 0.1 or beyond) and no anomaly tied with a normal, the
ROC curve is flat at TPR = a on FPR [0, 0.1], where a is the share of anomalies scored above every normal;
the area is 0.1 * a and 0.5 * (1 + (0.1 a - 0.1**2 / 2) / (0.1 - 0.1**2 / 2)) = (9 + 10 a) / 19.
So a = 1 gives 1, a = 1/2 gives 14/19 and a = 0 gives 9/19.
"""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from common.errors import DataError, MetricError
from common.scoring.official import (FORMULA_NAMES, FORMULAS, TERM_COLUMNS, official_mean, official_scores,
                                    official_total, summarize_terms)
from common.results import formula_name, official_of_rows
from conftest import EVALUATORS, evaluator_blocks


def pauc_hand(a: float) -> float:
    return (9 + 10 * a) / 19


def clip_table(spec: dict, *, domains: bool = True) -> pd.DataFrame:
    """{(type, section, domain): (normal scores, anomaly scores)} -> the clip table official_scores reads."""
    rows = []
    for (machine_type, section, domain), (normal, anomaly) in spec.items():
        for label, scores in ((0, normal), (1, anomaly)):
            rows += [{"machine_type": machine_type, "section": section, "domain": domain, "label": label, "score": s}
                     for s in scores]
    table = pd.DataFrame(rows)
    return table if domains else table.drop(columns="domain")


def term(result, machine_type, section, name) -> float:
    t = result.terms
    (value,) = t.loc[(t.machine_type == machine_type) & (t.section == section) & (t.term == name), "value"]
    return value


def test_2020_arithmetic_mean_of_auc_and_pauc_per_machine_id():
    clips = clip_table({
        ("fan", "id_00", "source"): ([1, 2, 3, 4], [5, 6]),    # AUC 8/8 = 1; a = 1 -> pAUC 1
        ("fan", "id_02", "source"): ([1, 2, 5, 6], [3, 4]),    # AUC 4/8 = 0.5; a = 0 -> pAUC 9/19
        ("pump", "id_00", "source"): ([1, 2, 3], [2.5, 4]),    # AUC (2 + 3)/6 = 5/6; a = 1/2 -> pAUC 14/19
    }, domains=False)
    result = official_scores(clips, year=2020)
    assert list(result.terms.columns) == list(TERM_COLUMNS) and set(result.terms.domain) == {"all"}
    assert term(result, "fan", "id_02", "auc") == 0.5 and term(result, "fan", "id_02", "pauc") == pytest.approx(9 / 19)
    assert term(result, "pump", "id_00", "pauc") == pytest.approx(14 / 19)
    fan, pump = result.per_type.set_index("machine_type").loc[["fan", "pump"]].to_dict("records")
    # per type, the 2020 evaluator's "Average": mean over IDs of AUC and of pAUC
    assert fan["auc"] == 0.75 and fan["pauc"] == pytest.approx((1 + 9 / 19) / 2)
    assert fan["official"] == pytest.approx((1 + 1 + 0.5 + 9 / 19) / 4)
    assert pump["official"] == pytest.approx((5 / 6 + 14 / 19) / 2)
    # the total: mean over the two types (fan has two IDs, pump one), not over the six terms
    assert result.official == pytest.approx((fan["official"] + pump["official"]) / 2)
    assert result.amean == pytest.approx((1 + 1 + 0.5 + 9 / 19 + 5 / 6 + 14 / 19) / 6)
    assert abs(result.official - result.amean) > 0.005


def test_2020_total_is_the_mean_of_per_type_means_on_unequal_id_counts():
    """Issue 26's repro: fan with 4 IDs (anomalies shifted by 2.0), ToyConveyor with 3 (shift 0.2), 20 + 20 clips
    per ID, seed 0. The published 2020 totals (ASDKit asdkit/bin/table.py) average per type: 0.6722, not the
    0.7036 of a mean over the seven (type, ID) sections."""
    rng = np.random.default_rng(0)
    rows = []
    for machine_type, n_ids, shift in (("fan", 4, 2.0), ("ToyConveyor", 3, 0.2)):
        for i in range(n_ids):
            for label in (0, 1):
                rows += [{"machine_type": machine_type, "section": f"id_0{i}", "label": label, "score": s}
                         for s in rng.normal(size=20) + label * shift]
    result = official_scores(pd.DataFrame(rows), year=2020)
    assert result.official == pytest.approx(0.6722, abs=5e-5) and result.amean == pytest.approx(0.7036, abs=5e-5)
    assert result.official == pytest.approx(result.per_type["official"].mean(), rel=1e-12)
    sections = result.per_section.assign(score=(result.per_section["auc"] + result.per_section["pauc"]) / 2)
    assert official_total(sections["score"], machine_types=sections["machine_type"], sections=sections["section"],
                          year=2020) == pytest.approx(result.official, rel=1e-12)


def test_2021_hmean_of_own_domain_auc_and_pauc_over_sections_and_domains():
    clips = clip_table({
        ("fan", "00", "source"): ([1, 2, 3, 4], [5, 6]),       # AUC 1, pAUC 1
        ("fan", "00", "target"): ([1, 2, 3, 4], [2.5, 3.5]),   # AUC (2 + 3)/8 = 5/8; a = 0 -> pAUC 9/19
        ("fan", "01", "source"): ([1, 2, 3, 4], [0.5, 6]),     # AUC (0 + 4)/8 = 1/2; a = 1/2 -> pAUC 14/19
        ("fan", "01", "target"): ([1, 2, 3, 4], [5, 6]),       # AUC 1, pAUC 1
    })
    result = official_scores(clips, year=2021)
    # own domain only: the target anomalies (2.5, 3.5) do not enter AUC (source) of section 00
    assert term(result, "fan", "00", "auc_source") == 1.0
    assert term(result, "fan", "00", "auc_target") == pytest.approx(5 / 8)
    assert term(result, "fan", "01", "pauc_source") == pytest.approx(14 / 19)
    assert result.terms.query("section == '00' and term == 'auc_target'")[["n_normal", "n_anomaly"]].values.tolist() \
        == [[4, 2]]
    values = [1, 5 / 8, 1, 9 / 19, 1 / 2, 1, 14 / 19, 1]  # AUC-s, AUC-t, pAUC-s, pAUC-t of 00, then of 01
    assert result.terms.value.tolist() == pytest.approx(values)
    assert result.official == pytest.approx(8 / (1 + 8 / 5 + 1 + 19 / 9 + 2 + 1 + 19 / 14 + 1))


def test_2022_mixed_domain_auc_and_section_pauc_in_a_harmonic_mean():
    clips = clip_table({
        ("fan", "00", "source"): ([1, 2, 3, 4, 5], [8]),
        ("fan", "00", "target"): ([3, 4, 5, 6, 7], [6.5]),
        ("fan", "01", "source"): ([1, 2, 3, 4, 5], [0.5]),
        ("fan", "01", "target"): ([2, 3, 4, 5, 6], [10]),
    })
    result = official_scores(clips, year=2022)
    # 00: AUC-s = source normals vs both anomalies (8, 6.5) = 10/10; AUC-t = target normals vs (8, 6.5) =
    # (5 + 4)/10 = 0.9 (own domain alone would give 4/5); pAUC over all 10 normals (top 7): a = 1/2 -> 14/19.
    # 01: AUC-s = (0 + 5)/10 = 0.5; AUC-t = (0 + 5)/10 = 0.5; pAUC: top normal 6, a = 1/2 -> 14/19.
    assert result.terms.term.tolist() == ["auc_source", "auc_target", "pauc"] * 2
    assert result.terms.value.tolist() == pytest.approx([1, 0.9, 14 / 19, 0.5, 0.5, 14 / 19])
    counts = result.terms.query("section == '00'")[["n_normal", "n_anomaly"]].values.tolist()
    assert counts == [[5, 2], [5, 2], [10, 2]]
    assert result.official == pytest.approx(6 / (1 + 1 / 0.9 + 19 / 14 + 2 + 2 + 19 / 14))
    assert result.by_term.set_index("term").loc["auc_target", "amean"] == pytest.approx((0.9 + 0.5) / 2)
    assert result.per_section.columns.tolist() == ["machine_type", "section", "auc_source", "auc_target", "pauc"]
    assert result.per_section.set_index("section").loc["00", "auc_target"] == pytest.approx(0.9)


@pytest.mark.parametrize("year", [2023, 2024, 2025])
def test_first_shot_years_one_section_per_type(year):
    clips = clip_table({
        ("ToyCar", "00", "source"): ([1, 2, 3, 4, 5], [6]),     # AUC-s: (6, 0) vs source normals = 5/10
        ("ToyCar", "00", "target"): ([1, 2, 3, 4, 5], [0]),     # AUC-t = 5/10; pAUC: a = 1/2 -> 14/19
        ("fan", "00", "source"): ([1, 2, 3, 4, 5], [9]),        # AUC-s: (9, 7.5) vs 1..5 = 10/10
        ("fan", "00", "target"): ([4, 5, 6, 7, 8], [7.5]),      # AUC-t: (5 + 4)/10 = 0.9; pAUC: a = 1/2 -> 14/19
    })
    result = official_scores(clips, year=year)
    per_type = result.per_type.set_index("machine_type")
    assert per_type.loc["ToyCar", "official"] == pytest.approx(3 / (2 + 2 + 19 / 14))
    assert per_type.loc["fan", ["auc_source", "auc_target"]].tolist() == pytest.approx([1, 0.9])
    assert result.official == pytest.approx(6 / (2 + 2 + 19 / 14 + 1 + 1 / 0.9 + 19 / 14))
    assert result.amean == pytest.approx((0.5 + 0.5 + 14 / 19 + 1 + 0.9 + 14 / 19) / 6)


TERMS = {"auc_source": "AUC (source)", "auc_target": "AUC (target)", "pauc": "pAUC (source, target)"}


@pytest.mark.parametrize("year, system, block", evaluator_blocks(), ids=lambda v: str(v)[:30])
def test_totals_equal_the_published_totals_of_the_baselines(year, system, block):
    """Per-type AUC-s, AUC-t, pAUC of the MSE and selective-Mahalanobis baselines give the README's totals."""
    types = [c for c in block.columns if c not in ("System", "h-mean", "a-mean")]
    terms = pd.DataFrame([{"machine_type": t, "section": "00", "term": name, "value": block.loc[metric, t]}
                          for t in types for name, metric in TERMS.items()])
    result = summarize_terms(terms, year=year)
    assert result.official == pytest.approx(block.loc["TOTAL score", "h-mean"], rel=1e-12)
    assert result.amean == pytest.approx(block.loc["TOTAL score", "a-mean"], rel=1e-12)
    hmeans = result.by_term.set_index("term")["hmean"]
    for name, metric in TERMS.items():
        assert hmeans[name] == pytest.approx(block.loc[metric, "h-mean"], rel=1e-12)


def test_the_2020_baseline_readme_gives_its_per_type_averages_and_the_published_dev_total():
    """y-kawagu/dcase2020_task2_baseline README.md @ ebfcc2a, result.csv (tests/data/evaluators): the per-ID AUC and
    pAUC give each type's printed "Average" (6 decimals), and the total (mean over types) is common.report.published's
    2020 dev baseline, 66.66; a mean over the 23 IDs would differ from it by 3e-6, under the rounding."""
    from common.report.published import PUBLISHED

    table = pd.read_csv(EVALUATORS / "dcase2020_baseline_readme_result.csv", dtype={"id": str})
    per_id, average = table[table["id"] != "Average"], table[table["id"] == "Average"].set_index("machine_type")
    terms = pd.DataFrame([{"machine_type": r.machine_type, "section": r.id, "term": term, "value": value}
                          for r in per_id.itertuples() for term, value in (("auc", r.AUC), ("pauc", r.pAUC))])
    result = summarize_terms(terms, year=2020)
    per_type = result.per_type.set_index("machine_type")
    assert per_type.loc[average.index, "auc"].tolist() == pytest.approx(average["AUC"].tolist(), abs=1e-6)
    assert per_type.loc[average.index, "pauc"].tolist() == pytest.approx(average["pAUC"].tolist(), abs=1e-6)
    assert result.official == pytest.approx(average[["AUC", "pAUC"]].to_numpy().mean(), abs=1e-6)
    (row,) = [p for p in PUBLISHED if p.year == 2020 and p.system.startswith("challenge baseline")]
    assert (row.split, row.official_score) == ("dev", round(100 * result.official, 2))
    assert set(row.machine_types) == set(average.index)


def test_2022_terms_select_the_clips_the_evaluator_selects(rng):
    # the evaluators' lines: y_pred[(y_domain == idx) | (y_true != 0)] for AUC per domain, every clip for pAUC
    n = 60
    clips = pd.DataFrame({"machine_type": "valve", "section": "02", "domain": rng.choice(["source", "target"], n),
                          "label": rng.integers(0, 2, n), "score": rng.normal(size=n)})
    clips["score"] += clips["label"] * 0.7
    result = official_scores(clips, year=2022)
    y, s, target = clips["label"].to_numpy(), clips["score"].to_numpy(), (clips["domain"] == "target").to_numpy()
    expect = [roc_auc_score(y[~target | (y != 0)], s[~target | (y != 0)]),
              roc_auc_score(y[target | (y != 0)], s[target | (y != 0)]), roc_auc_score(y, s, max_fpr=0.1)]
    assert result.terms.value.tolist() == expect


def test_harmonic_mean_clips_a_zero_term_at_machine_epsilon():
    assert 0 < official_mean([0.0, 1.0], mean="harmonic") < 1e-15
    assert official_mean([0.5, 1.0], mean="harmonic") == pytest.approx(2 / (2 + 1))
    with pytest.raises(MetricError, match="mean='geometric'"):
        official_mean([0.5], mean="geometric")


def test_every_year_has_a_formula_read_from_a_named_source():
    assert sorted(FORMULAS) == [2020, 2021, 2022, 2023, 2024, 2025]
    assert all(f.source and f.year == year for year, f in FORMULAS.items())


GOOD = {("fan", "00", "source"): ([1, 2, 3, 4], [5, 6]), ("fan", "00", "target"): ([1, 2, 3, 4], [5, 6])}


@pytest.mark.parametrize("year, spec, edit, match", [
    (2019, GOOD, None, r"year=2019 is not a DCASE Task 2 year"),
    (2021, GOOD, lambda t: t.drop(columns="score"), r"lacks the column\(s\) \['score'\]"),
    (2021, GOOD, lambda t: t.drop(columns="domain"), r"lacks the column\(s\) \['domain'\] that DCASE 2021"),
    (2022, {("fan", "00", "source"): ([1, 2], [3])}, None, r"fan section 00 has no target clips"),
    (2021, {**GOOD, ("fan", "00", "target"): ([1, 2, 3], [])}, None,
     r"both normal \(0\) and anomalous \(1\) clips for fan section 00 target"),
    (2022, {**GOOD, ("fan", "00", "source"): ([], [7])}, None, r"anomalous \(1\) clips for fan section 00 source"),
    (2020, {("fan", "id_00", "source"): ([1, 2], [])}, None, r"anomalous \(1\) clips for fan ID id_00"),
    (2021, GOOD, lambda t: t.assign(label=t.label * 2), r"label must be 0 \(normal\) or 1 \(anomaly\); got \['2'\]"),
    (2021, GOOD, lambda t: t.replace({"domain": {"target": "tgt"}}), r"domain must be one of .*got \['tgt'\]"),
    (2021, GOOD, lambda t: t.assign(score=t.score.where(t.index != 0)),
     r"1 non-finite scores for fan section 00 source"),
    (2023, {**GOOD, ("fan", "01", "source"): ([1], [2]), ("fan", "01", "target"): ([1], [2])}, None,
     r"one section per machine type; fan has \['00', '01'\]"),
    (2020, GOOD, None, r"DCASE 2020 has no domains.*\['target'\]"),
    (2022, GOOD, lambda t: t.assign(section=t.section.where(t.index != 0)), r"1 rows have no section"),
])
def test_bad_input_names_what_is_missing(year, spec, edit, match):
    clips = clip_table(spec)
    with pytest.raises(MetricError, match=match):
        official_scores(edit(clips) if edit else clips, year=year)


@pytest.mark.parametrize("year", [2020, 2021, 2022])
def test_section_scores_average_to_the_official_score_over_all_terms(year, rng):
    """A row's `section_score` is its terms' mean; the summary's mean of rows equals the year's mean of all terms."""
    from common.scoring.official import section_score

    sections = []
    for i in range(3):
        n = 40
        labels, domains = np.repeat([0, 1], n // 2), np.tile(["source", "target"], n // 2)
        sections.append((labels, rng.normal(size=n) + labels * (0.3 + 0.3 * i), domains))
    scored = [section_score(*s, year=year, name=f"fan/section_0{i}") for i, s in enumerate(sections)]
    clips = pd.concat([pd.DataFrame({"machine_type": "fan", "section": f"0{i}", "label": labels, "score": scores,
                                     "domain": domains}) for i, (labels, scores, domains) in enumerate(sections)])
    expected = official_scores(clips.drop(columns="domain") if year == 2020 else clips, year=year)
    assert [terms for terms, _ in scored] == [row.drop(["machine_type", "section"]).to_dict()
                                              for _, row in expected.per_section.iterrows()]
    rows = pd.DataFrame({"official_formula": FORMULA_NAMES[year], "official_score": [s for _, s in scored],
                         "target_type": "fan", "target_id": [f"0{i}" for i in range(3)]})
    assert official_of_rows(rows) == {"official_formula": FORMULA_NAMES[year],
                                      "official_score": pytest.approx(expected.official, rel=1e-12)}
    assert np.isnan(official_of_rows(rows.assign(official_formula=""))["official_score"])


def test_2020_rows_average_sources_and_seeds_per_target_then_targets_per_type_then_types():
    """Section scores of 2020 rows (hand-chosen): fan has two IDs, one of them with two seeds; pump one ID."""
    rows = pd.DataFrame({"official_formula": "2020", "target_type": ["fan", "fan", "fan", "pump"],
                         "target_id": ["id_00", "id_00", "id_02", "id_00"], "official_score": [0.5, 0.7, 0.9, 0.4]})
    # fan: id_00 (0.5 + 0.7) / 2 = 0.6, id_02 0.9 -> 0.75; pump 0.4; total (0.75 + 0.4) / 2 = 0.575
    assert official_of_rows(rows)["official_score"] == pytest.approx(0.575)
    with pytest.raises(DataError, match=r"DCASE 2020 official score averages per machine type; .*\['target_id'\]"):
        official_of_rows(rows.drop(columns="target_id"))


@pytest.mark.parametrize("formula, blank_rows", [("2020", False), ("2021", False), ("2020", True),
                                                 ("2022-2025", False)])
def test_official_of_rows_reads_a_results_csv_read_by_plain_pandas(formula, blank_rows, tmp_path):
    """pd.read_csv reads the formula "2020" / "2021" as an integer (a float beside blank MIMII rows): the same
    official score as the project's reader, which reads the column as text."""
    rows = pd.DataFrame({"official_formula": formula, "target_type": ["fan", "fan", "pump"],
                         "target_id": ["00", "01", "00"], "official_score": [0.6, 0.8, 0.5]})
    if blank_rows:  # a MIMII row with a blank formula and no score is left out, as by the text reader
        rows = pd.concat([rows, pd.DataFrame({"official_formula": [None], "target_type": ["valve"],
                                              "target_id": ["00"], "official_score": [np.nan]})])
    rows.to_csv(tmp_path / "results.csv", index=False)
    plain = pd.read_csv(tmp_path / "results.csv")
    as_text = pd.read_csv(tmp_path / "results.csv", dtype={"official_formula": str, "target_id": str})
    named = lambda t: t[t["official_formula"].map(formula_name) != ""]  # noqa: E731
    got, expected = official_of_rows(named(plain)), official_of_rows(named(as_text))
    assert got["official_formula"] == expected["official_formula"] == formula
    assert got["official_score"] == pytest.approx(expected["official_score"], rel=1e-15)
    assert not np.isnan(got["official_score"])


@pytest.mark.parametrize("value, name", [("2020", "2020"), (" 2021 ", "2021"), (2020, "2020"), (np.int64(2021), "2021"),
                                         (2020.0, "2020"), (np.nan, ""), (None, ""), ("", "")])
def test_formula_name_of_a_cell(value, name):
    assert formula_name(value) == name


@pytest.mark.parametrize("value", [2020.5, True])
def test_a_formula_cell_that_is_no_name_is_refused(value):
    with pytest.raises(DataError, match=rf"official_formula={value!r} .* is not a formula name"):
        formula_name(value)
    with pytest.raises(DataError, match="is not a formula name"):
        official_of_rows(pd.DataFrame({"official_formula": [value], "official_score": [0.5],
                                       "target_type": ["fan"], "target_id": ["00"]}))


def test_published_scores_are_listed_per_formula_with_their_source():
    """Each formula's published numbers: 2022-2025 covers four years; the evaluators' MSE baselines are eval rows."""
    from common.report.published import published_for

    first_shot = published_for("2022-2025")
    assert sorted(set(first_shot.year)) == [2022, 2023, 2024, 2025]
    baseline = first_shot[(first_shot.year == 2023) & first_shot.system.str.contains("MSE")]
    assert baseline[["split", "official_score"]].values.tolist() == [["eval", 59.25]]
    assert baseline.source.str.contains("nttcslab/dcase2023_task2_evaluator @ 3aa8a9f").all()
    assert set(published_for("2020").year) == {2020} and published_for("2021").source.str.len().min() > 0
    with pytest.raises(MetricError, match="official formula '2019'"):
        published_for("2019")
