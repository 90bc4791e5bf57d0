"""The worlds evidence the report cites (`common/report/worlds.py`): reading and checking the CSV, the markdown
section per family (every world / none / depends, naming the worlds), this run's agreement, and the shipped file."""

from pathlib import Path

import pandas as pd
import pytest

from common.errors import DataError
from common.methods.catalog import FAMILY_CONTROL, METHODS_CATALOG
from common.report.stats import PRETRAINED

REPO = Path(__file__).resolve().parents[1]
WORLDS = ("default", "slow_drive", "loose_knock")


from common.report import worlds as W

# (family, method, control) -> per world (delta, ci_low, ci_high) at budget 4; budget all is the same minus 0.05.
DELTAS = {
    ("statistics", "lw_transfer", "lw_scratch"): [(0.09, 0.05, 0.13), (0.13, 0.07, 0.19), (0.25, 0.19, 0.31)],
    ("embedding", "embed_knn", "logmel_knn"): [(0.03, -0.02, 0.08), (0.08, -0.02, 0.17), (0.20, 0.10, 0.31)],
    ("embedding", "embed_zero_shot", "logmel_knn"): [(-0.30, -0.40, -0.20), (-0.03, -0.13, 0.06), (0.0, -0.1, 0.1)],
    ("autoencoder", "zero_shot", "scratch"): [(-0.02, -0.06, 0.01), (-0.30, -0.40, -0.20), (0.01, -0.03, 0.05)],
}
CONTROL_AUC = 0.7


def _evidence_rows() -> list[dict]:
    rows = []
    for (family, method, control), per_world in DELTAS.items():
        for budget, shift in (("4", 0.0), ("all", -0.05)):
            for world, (delta, low, high) in zip(WORLDS, per_world):
                rows.append({"world": world, "family": family, "method": method, "control": control,
                             "budget": budget, "method_auc": CONTROL_AUC + delta + shift, "control_auc": CONTROL_AUC,
                             "delta": delta + shift, "ci_low": low + shift, "ci_high": high + shift, "n_targets": 16,
                             "seeds": "0 1", "versions": "v2 v4", "commit": "abc1234",
                             "command": "python benchmarks/worlds.py --write-evidence"})
    return rows


@pytest.fixture
def evidence_csv(tmp_path) -> Path:
    path = tmp_path / "worlds_evidence.csv"
    pd.DataFrame(_evidence_rows(), columns=W.EVIDENCE_COLUMNS).to_csv(path, index=False)
    return path


def _row(section: str, family: str, clips: str) -> str:
    """The markdown table line of `family` at `clips` ("4 clips" / "all clips")."""
    lines = [line for line in section.splitlines() if line.startswith(f"| {family} | {clips} |")]
    assert len(lines) == 1, section
    return lines[0]


def test_read_evidence_reads_a_written_csv(evidence_csv):
    table = W.read_evidence(evidence_csv)
    assert list(table.columns) == W.EVIDENCE_COLUMNS
    assert len(table) == 4 * 2 * 3
    assert set(table["budget"]) == {"4", "all"} and table["seeds"].iloc[0] == "0 1"


@pytest.mark.parametrize("change, match", [
    (lambda t: t.drop(columns=["ci_low"]), r"lacks the column\(s\) \['ci_low'\]"),
    (lambda t: t.iloc[:0], "has no rows"),
    (lambda t: t.assign(delta="big"), "'delta' must be numeric"),
])
def test_read_evidence_refuses_a_bad_file_naming_it(evidence_csv, change, match):
    change(pd.read_csv(evidence_csv)).to_csv(evidence_csv, index=False)
    with pytest.raises(DataError, match=match) as caught:
        W.read_evidence(evidence_csv)
    assert str(evidence_csv) in str(caught.value)


def test_read_evidence_names_a_missing_file(tmp_path):
    with pytest.raises(DataError, match="nowhere.csv.*--write-evidence"):
        W.read_evidence(tmp_path / "nowhere.csv")


def test_section_says_every_world_none_or_depends_naming_the_worlds(evidence_csv):
    section = W.worlds_section(W.read_evidence(evidence_csv), None)
    assert section.startswith("## Across synthetic worlds") and "commit abc1234" in section
    assert "beats it in every world (+0.090 to +0.250)" in _row(section, "statistics", "4 clips")
    # embed_knn has the best mean AUC of its family; it beats logmel_knn in loose_knock only
    embedding = _row(section, "embedding", "4 clips")
    assert "| embed_knn | logmel_knn |" in embedding
    assert "depends on the world**: beats it in loose_knock; not in default, slow_drive" in embedding
    assert "beats it in no world; worse in slow_drive" in _row(section, "autoencoder", "4 clips")
    # at all clips every interval is 0.05 lower: lw_transfer's lowest (+0.00 in default) no longer clears 0
    assert "beats it in slow_drive, loose_knock; not in default" in _row(section, "statistics", "all clips")
    assert "this run" not in section


def test_section_sets_this_run_beside_the_worlds(evidence_csv):
    this_run = pd.DataFrame({"family": ["statistics", "embedding", "autoencoder"],
                             "method": ["lw_transfer", "embed_finetune", "transfer"],
                             "control": ["lw_scratch", "logmel_knn", "scratch"],
                             "delta": [0.14, 0.02, 0.30], "ci_low": [0.09, -0.03, 0.2], "ci_high": [0.2, 0.07, 0.4]})
    section = W.worlds_section(W.read_evidence(evidence_csv), this_run)
    assert "| this run |" in section
    assert _row(section, "statistics", "4 clips").endswith(
        "+0.140 [+0.090, +0.200] (lw_transfer): beats it, as in every world |")
    assert "no clear difference, as in default, slow_drive |" in _row(section, "embedding", "4 clips")
    assert "beats it, unlike every world |" in _row(section, "autoencoder", "4 clips")
    # rows without a budget are this run's 4-clip comparison: nothing to set beside "all clips"
    assert _row(section, "statistics", "all clips").endswith("| not scored in this run |")
    with pytest.raises(DataError, match="ci_high"):
        W.worlds_section(W.read_evidence(evidence_csv), this_run.drop(columns=["ci_high"]))


def test_run_differences_takes_each_familys_best_row_of_the_method_table():
    methods = pd.DataFrame({
        "version": ["v4", "v2", "v4", "v4", "v4"], "family": ["statistics"] * 3 + ["embedding"] * 2,
        "method": ["lw_transfer", "lw_transfer", "lw_scratch", "embed_knn", "logmel_knn"],
        "control": ["lw_scratch"] * 3 + ["logmel_knn"] * 2, "budget": ["4"] * 5,
        "auc_mean": [0.92, 0.93, 0.78, 0.85, 0.78], "control_delta_auc_mean": [0.14, 0.15, None, 0.07, None],
        "control_delta_auc_ci_low": [0.10, 0.08, None, 0.02, None],
        "control_delta_auc_ci_high": [0.19, 0.2, None, 0.12, None]})
    run = W.run_differences(methods)
    assert run[W.RUN_COLUMNS + ["budget", "version"]].values.tolist() == [
        ["statistics", "lw_transfer", "lw_scratch", 0.15, 0.08, 0.2, "4", "v2"],
        ["embedding", "embed_knn", "logmel_knn", 0.07, 0.02, 0.12, "4", "v4"]]


def test_the_shipped_evidence_covers_the_catalogue_in_several_worlds():
    from common.data.synth import WORLDS as KNOWN_WORLDS

    table = W.read_evidence()
    assert set(table["world"]) <= set(KNOWN_WORLDS) and table["world"].nunique() >= 4
    assert set(table["family"]) == set(FAMILY_CONTROL)
    assert set(table["method"]) == set(PRETRAINED)
    for method, rows in table.groupby("method"):
        info = METHODS_CATALOG[method]
        assert set(rows["family"]) == {info.family} and set(rows["control"]) == {info.control}
    assert set(table["budget"]) == {"4", "all"}
    assert not table.duplicated(["world", "method", "budget"]).any()
    assert len(table) == table["world"].nunique() * len(PRETRAINED) * 2
    assert (table["ci_low"] <= table["delta"]).all() and (table["delta"] <= table["ci_high"]).all()
    assert ((table["method_auc"] - table["control_auc"] - table["delta"]).abs() < 1e-3).all()
    assert (table["n_targets"] >= 8).all() and table["commit"].str.len().min() >= 7
    assert table["command"].str.contains("worlds.py").all()
    section = W.worlds_section(table, None)
    assert all(f"| {family} | 4 clips |" in section for family in FAMILY_CONTROL)


def test_a_subset_run_replaces_only_its_own_rows_of_the_evidence(evidence_csv, monkeypatch):
    """``benchmarks/worlds.py --methods M --write-evidence``: M's rows of the worlds run are replaced or added; every
    other row of the file stays as it was."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import worlds as bench

    assert bench.run_methods(["spec_two_bank"]) == ["scratch", "logmel_knn", "spec_two_bank"]
    assert bench.run_methods(None)[0] == "scratch" and "sound_knn" in bench.run_methods(None)
    with pytest.raises(SystemExit, match=r"unknown method\(s\) \['spec_knn'\]"):
        bench.run_methods(["spec_knn"])
    old = W.read_evidence(evidence_csv)
    ran = old[(old["method"] == "embed_knn") & (old["world"] != "loose_knock")]
    new = pd.concat([ran.assign(delta=ran["delta"] + 0.01, commit="new4567"),
                     ran.assign(method="spec_two_bank", commit="new4567")], ignore_index=True)
    merged = bench.write_evidence(new, evidence_csv, merge=True)
    assert merged.equals(W.read_evidence(evidence_csv).astype(merged.dtypes))
    assert len(merged) == len(old) + len(ran) and not merged.duplicated(["world", "method", "budget"]).any()
    replaced = merged[merged["commit"] == "new4567"]
    assert set(zip(replaced["world"], replaced["method"])) == {(w, m) for w in ("default", "slow_drive")
                                                               for m in ("embed_knn", "spec_two_bank")}
    kept = merged[merged["commit"] != "new4567"].reset_index(drop=True)
    expected = old[~old.index.isin(ran.index)].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept.sort_values(["world", "method", "budget"]).reset_index(drop=True),
                                  expected.sort_values(["world", "method", "budget"]).reset_index(drop=True),
                                  check_dtype=False)
    # Catalogue order within a world: spec_two_bank after the embedding methods before it.
    in_default = merged.loc[merged["world"] == "default", "method"].drop_duplicates().tolist()
    assert in_default.index("spec_two_bank") > in_default.index("embed_knn")
    # A whole-catalogue run (no --methods) writes its own table only.
    assert len(bench.write_evidence(new, evidence_csv, merge=False)) == len(new) == len(W.read_evidence(evidence_csv))
