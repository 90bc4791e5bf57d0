"""The v1-v4 grid on a DCASE 2020 Task 2 root: machines, the given split and the budgets, end to end."""

from __future__ import annotations

import pandas as pd
import pytest

from common.errors import ConfigError
from conftest import make_config, run_main, write_config


@pytest.fixture(scope="module")
def dcase2020_root(tmp_path_factory):
    """Synthetic DCASE 2020 layout: fan and valve, IDs id_00 and id_02, 6 training and 3 + 3 test clips of 1 s."""
    from common.data.synth.dcase import generate_dcase_dataset

    root = tmp_path_factory.mktemp("dcase2020")
    generate_dcase_dataset(root, year=2020, types=("fan", "valve"), sections=(0, 1), n_source=6, n_test=3,
                           seconds=1.0, progress=False)
    return root


def test_machines_and_split_are_the_dcase_ones(dcase2020_root, tmp_path):
    """auto reads the root as DCASE 2020: type + ID machines, the given train/test folders as the split."""
    from common.data.dataset import check_machine, data_layout, select_machines

    cfg = make_config(tmp_path, dcase2020_root)
    assert data_layout(cfg) == "dcase2020"
    machines = select_machines(cfg)
    assert [m.name for m in machines] == ["fan/id_00", "fan/id_02", "valve/id_00", "valve/id_02"]
    split = check_machine(cfg, machines[0]).split
    assert len(split.train) == 6 and all(p.parent.name == "train" for p in split.train)
    assert sorted(split.eval_labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert all(p.parent.name == "test" for p in split.eval_files)
    with pytest.raises(ConfigError, match="data.layout"):
        make_config(tmp_path / "bad", dcase2020_root, data={"layout": "dcase2019"})


def test_pretrain_and_transfer_run_on_a_dcase_2020_root(dcase2020_root, tmp_path):
    """v1 pretrain + transfer: every target is scored on its DCASE test clips, budgets drawn from its train folder."""
    cfg = write_config(tmp_path / "v1", dcase2020_root, data={"layout": "dcase2020"})
    for command in ("pretrain", "transfer"):
        code, text = run_main([command, str(cfg)])
        assert code == 0, text[-3000:]
    rows = pd.read_csv(tmp_path / "v1" / "results" / "results.csv", dtype={"budget": str})
    assert set(rows.target_type + "/" + rows.target_id) == {"fan/id_00", "fan/id_02", "valve/id_00", "valve/id_02"}
    assert set(rows.n_eval_clips) == {6}
    trained = rows[rows.method != "zero_shot"]  # zero-shot rows train on no target clip
    assert set(rows.loc[rows.method == "zero_shot", "n_train_clips"]) == {0}
    assert set(trained.loc[trained.budget == "all", "n_train_clips"]) == {6}
    assert set(trained.loc[trained.budget == "2", "n_train_clips"]) == {2}
    assert rows.auc.between(0, 1).all()


@pytest.fixture(scope="module")
def dcase2023_root(tmp_path_factory):
    """Synthetic DCASE 2023 layout: fan and valve, one section each, 6 source + 3 target training clips of 1 s,
    2 test clips per domain and label."""
    from common.data.synth.dcase import generate_dcase_dataset

    root = tmp_path_factory.mktemp("dcase2023")
    generate_dcase_dataset(root, year=2023, types=("fan", "valve"), n_source=6, n_target=3, n_test=2, seconds=1.0,
                           progress=False)
    return root


@pytest.fixture(scope="module")
def dcase2023_run(dcase2023_root, tmp_path_factory):
    """v1 pretrain + transfer on the 2023 root (budgets 2 and all): the result folder."""
    folder = tmp_path_factory.mktemp("v1_2023")
    cfg = write_config(folder, dcase2023_root, experiment={"methods": ["scratch", "zero_shot", "transfer",
                                                                        "embed_knn", "embed_finetune"]},
                       embedding={"hidden": [16], "embedding_dim": 8, "epochs": 2, "finetune_epochs": 1,
                                  "finetune_freeze": ["dense_1"]})
    for command in ("pretrain", "transfer"):
        code, text = run_main([command, str(cfg)])
        assert code == 0, text[-3000:]
    return folder / "results"


def test_budgets_of_a_2023_root_draw_from_the_target_domain(dcase2023_run):
    """N clips come from the section's target-domain training clips; 'all' is the whole given training set."""
    import json

    rows = pd.read_csv(dcase2023_run / "results.csv", dtype={"budget": str})
    assert set(rows.target_type + "/" + rows.target_id) == {"fan/section_00", "valve/section_00"}
    trained = rows[rows.method.isin(["scratch", "transfer"])]
    assert set(trained.loc[trained.budget == "2", "n_train_clips"]) == {2}
    assert set(trained.loc[trained.budget == "all", "n_train_clips"]) == {9}
    assert set(rows.n_eval_clips) == {8}
    sidecars = list((dcase2023_run / "models").rglob("*_budget-2_seed-0.json"))
    clips = {c for f in sidecars if json.loads(f.read_text()).get("budget") == "2"
             for c in json.loads(f.read_text())["train_clips"]}
    assert clips and all("_target_train_" in c for c in clips)


def test_official_scores_of_a_2023_run_are_the_evaluators(dcase2023_run):
    """Each row's official score is the 2022-2025 formula over its clips (scores.csv carries each clip's domain),
    and the summary's is the harmonic mean over every row's terms."""
    from common.scoring.official import official_mean, official_scores

    rows = pd.read_csv(dcase2023_run / "results.csv", dtype={"budget": str, "official_formula": str})
    scores = pd.read_csv(dcase2023_run / "scores.csv", dtype={"budget": str})
    assert set(rows.official_formula) == {"2022-2025"}
    assert sorted(scores.domain.unique()) == ["source", "target"]
    for _, row in rows.iterrows():
        clips = scores[(scores.target_type == row.target_type) & (scores.method == row.method)
                       & (scores.budget == row.budget) & (scores.source == row.source)]
        table = clips.rename(columns={"target_type": "machine_type", "target_id": "section"})
        expected = official_scores(table, year=2023)
        assert row.official_score == pytest.approx(expected.official, rel=1e-12)
        assert [row.auc_source, row.auc_target] == pytest.approx(expected.per_section[["auc_source", "auc_target"]]
                                                                 .iloc[0].tolist(), rel=1e-12)
        assert pd.isna(row.pauc_source)
    summary = pd.read_csv(dcase2023_run / "summary.csv", dtype={"budget": str, "official_formula": str})
    scratch_all = summary[(summary.method == "scratch") & (summary.budget == "all")].iloc[0]
    picked = rows[(rows.method == "scratch") & (rows.budget == "all")]
    terms = picked[["auc_source", "auc_target", "pauc"]].to_numpy().ravel()
    assert scratch_all.official_formula == "2022-2025"
    assert scratch_all.official_score == pytest.approx(official_mean(terms, mean="harmonic"), abs=1e-4)


def test_a_budget_over_the_target_domain_clips_is_refused(dcase2023_root, tmp_path):
    """A budget of 4 clips where each section has 3 target-domain training clips: a ConfigError naming them."""
    cfg = write_config(tmp_path, dcase2023_root, experiment={"budgets": [4], "methods": ["scratch"]})
    code, text = run_main(["transfer", str(cfg)])
    assert code != 0 and "3 target-domain training clips of fan/section_00" in text, text[-2000:]


def test_v2_on_a_first_shot_root_says_why_it_has_no_source_set(dcase2023_root, tmp_path):
    """2023-2025 sets have one section per type: v2 (other IDs of the same type) has nothing to pretrain on."""
    from common.errors import DataError
    from common.experiment.grid import run_grid

    with pytest.raises(DataError, match="one section per machine type, so v2 has none"):
        run_grid(make_config(tmp_path, dcase2023_root, "v2"), progress=False)


def test_a_2021_root_is_scored_by_the_2021_formula(tmp_path):
    """Test clips in source_test/ and target_test/: each row's official score is the harmonic mean of its own-domain
    AUC and pAUC of both domains, as the 2021 evaluator computes it from the clips in scores.csv."""
    from common.scoring.official import official_scores
    from common.data.synth.dcase import generate_dcase_dataset

    root = tmp_path / "d21"
    generate_dcase_dataset(root, year=2021, types=("fan", "valve"), n_source=6, n_target=3, n_test=3, seconds=1.0,
                           progress=False)
    cfg = write_config(tmp_path / "v1", root, experiment={"methods": ["scratch", "lw_scratch"]})
    code, text = run_main(["transfer", str(cfg)])
    assert code == 0, text[-3000:]
    rows = pd.read_csv(tmp_path / "v1" / "results" / "results.csv", dtype={"budget": str, "official_formula": str})
    scores = pd.read_csv(tmp_path / "v1" / "results" / "scores.csv", dtype={"budget": str})
    assert set(rows.official_formula) == {"2021"} and len(rows) == 8
    assert set(scores.path.map(lambda p: p.split("/")[-2])) == {"source_test", "target_test"}
    for _, row in rows.iterrows():
        clips = scores[(scores.target_type == row.target_type) & (scores.method == row.method)
                       & (scores.budget == row.budget)]
        expected = official_scores(clips.rename(columns={"target_type": "machine_type", "target_id": "section"}),
                                   year=2021)
        terms = expected.per_section.iloc[0]
        assert row.official_score == pytest.approx(expected.official, rel=1e-12)
        assert row[["auc_source", "auc_target", "pauc_source", "pauc_target"]].tolist() == pytest.approx(
            terms[["auc_source", "auc_target", "pauc_source", "pauc_target"]].tolist(), rel=1e-12)


def test_a_one_machine_source_set_classifies_its_domains_and_attributes(dcase2023_run):
    """v1 on a first-shot root: each source set is one machine, its classifier tells apart the machine's domain and
    attribute classes (as the challenge's classifier systems do), and the embedding rows are scored."""
    import json

    sidecar = json.loads((dcase2023_run.parent / "models" / "valve.embedding.json").read_text())
    assert sidecar["sources"] == ["valve/section_00"]
    assert sidecar["classes"] == ["valve/section_00/source_spd_100", "valve/section_00/target_spd_125"]
    assert sidecar["architecture"]["n_classes"] == 2
    rows = pd.read_csv(dcase2023_run / "results.csv", dtype={"budget": str})
    embedded = rows[rows.method.isin(["embed_knn", "embed_finetune"])]
    assert len(embedded) == 8 and embedded.auc.between(0, 1).all() and embedded.official_score.notna().all()
