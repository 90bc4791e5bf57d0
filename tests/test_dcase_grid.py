"""The v1-v4 grid on a DCASE 2020 Task 2 root: machines, the given split and the budgets, end to end."""

from __future__ import annotations

import pandas as pd
import pytest

from common.errors import ConfigError
from conftest import make_config, run_main, write_config


@pytest.fixture(scope="module")
def dcase2020_root(tmp_path_factory):
    """Synthetic DCASE 2020 layout: fan and valve, IDs id_00 and id_02, 6 training and 3 + 3 test clips of 1 s."""
    from common.synth.dcase import generate_dcase_dataset

    root = tmp_path_factory.mktemp("dcase2020")
    generate_dcase_dataset(root, year=2020, types=("fan", "valve"), sections=(0, 1), n_source=6, n_test=3,
                           seconds=1.0, progress=False)
    return root


def test_machines_and_split_are_the_dcase_ones(dcase2020_root, tmp_path):
    """auto reads the root as DCASE 2020: type + ID machines, the given train/test folders as the split."""
    from common.dataset import check_machine, data_layout, select_machines

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


def test_a_dcase_2021_root_is_refused_with_its_layout_named(tmp_path):
    """2021-2025 roots (source/target domains) are read by dcase_layout but not run by the grid yet."""
    from common.dataset import select_machines
    from common.synth.dcase import generate_dcase_dataset

    root = tmp_path / "d23"
    generate_dcase_dataset(root, year=2023, types=("fan",), n_source=3, n_target=1, n_test=2, seconds=0.5,
                           progress=False)
    with pytest.raises(ConfigError, match=r"DCASE 2021-2025 Task 2 set \(data.layout: dcase2021\)"):
        select_machines(make_config(tmp_path / "c", root))
