"""The demo's driver: every version's YAMLs pretrained and transferred in turn, summaries gathered."""

import shutil
from pathlib import Path

import pandas as pd

from common.demo import DEMO_OVERRIDES, ensure_data, run_versions
from common.config import load_config
from conftest import tiny_overrides

REPO = Path(__file__).resolve().parent.parent


def _versions_copy(work, tiny_root, versions):
    """The Version folders of `versions` copied into `work` (YAMLs only), and overrides for the tiny set."""
    for v in versions:
        shutil.copytree(REPO / f"Version{v[1:]}", work / f"Version{v[1:]}",
                        ignore=shutil.ignore_patterns("model_*", "result_*", "*.ipynb"))
    return tiny_overrides(data={"root": str(tiny_root), "cache_dir": str(work / "cache"), "jobs": 1},
                          output={"scratch_dir": str(work / "scratch")})


def _results(work, v):
    return pd.read_csv(work / f"Version{v[1:]}" / f"result_transfer_pretrain_{v}" / "results.csv").drop(
        columns="train_seconds")


def test_run_versions_writes_every_version_in_its_folder_and_two_processes_give_the_same_rows(tiny_root, tmp_path,
                                                                                              capsys):
    overrides = _versions_copy(tmp_path / "serial", tiny_root, ("v1", "v2"))
    summary = run_versions(tmp_path / "serial", versions=("v1", "v2"), overrides=overrides, progress=False)
    assert sorted(summary.version.unique()) == ["v1", "v2"]
    assert set(summary.method) == {"scratch", "zero_shot", "transfer"}
    for v in ("v1", "v2"):
        results = _results(tmp_path / "serial", v)
        assert len(results) and set(results.version) == {v}
        assert list((tmp_path / "serial" / f"Version{v[1:]}" / f"model_pretrain_{v}").glob("*.keras"))
    # The demo's way: the versions in two processes at once, sharing one scratch store.
    overrides = _versions_copy(tmp_path / "two", tiny_root, ("v1", "v2"))
    both = run_versions(tmp_path / "two", versions=("v1", "v2"), overrides=overrides, workers=2)
    assert "v1: pretrain + transfer done" in capsys.readouterr().out
    pd.testing.assert_frame_equal(both.drop(columns=[c for c in both if "seconds" in c]),
                                  summary.drop(columns=[c for c in summary if "seconds" in c]))
    for v in ("v1", "v2"):
        pd.testing.assert_frame_equal(_results(tmp_path / "two", v).drop(columns="config_hash"),
                                      _results(tmp_path / "serial", v).drop(columns="config_hash"))


def test_demo_settings_are_valid_config_and_data_is_not_regenerated(tiny_root):
    for v in ("v1", "v2", "v3", "v4"):
        for name in (f"make_pretrain_{v}.yaml", f"transfer_pretrain_{v}.yaml"):
            cfg = load_config(REPO / f"Version{v[1:]}" / name, overrides=DEMO_OVERRIDES)
            assert cfg.fit.epochs == DEMO_OVERRIDES["fit"]["epochs"]
    assert ensure_data(tiny_root, progress=False) is False  # machines exist: nothing is written


def test_the_mimii_demo_does_not_write_beside_a_dcase_set(tmp_path):
    """A DCASE root given to the MIMII demo is refused, naming its layout and the demo that reads it; nothing written."""
    import pytest

    from common.errors import DataError
    from common.data.synth.dcase import generate_dcase_dataset

    root = tmp_path / "d23"
    generate_dcase_dataset(root, year=2023, types=("fan",), n_source=2, n_target=1, n_test=1, seconds=0.5,
                           progress=False)
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    with pytest.raises(DataError, match=r"dcase2021 layout.*demo --dcase YEAR"):
        ensure_data(root, progress=False)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_the_dcase_demo_runs_in_its_own_workspace_without_v2_on_a_first_shot_set(tmp_path, capsys):
    """The workspace holds copies of the Version YAMLs (its results stay apart); a one-section set drops v2."""
    from common.data.dcase import find_dcase_machines
    from common.demo import _by_methods, _dcase_versions, dcase_workspace, ensure_dcase_data
    from common.data.synth.dcase import generate_dcase_dataset

    for v in ("1", "2", "3", "4"):
        shutil.copytree(REPO / f"Version{v}", tmp_path / f"Version{v}",
                        ignore=shutil.ignore_patterns("model_*", "result_*", "*.ipynb"))
    work = dcase_workspace(tmp_path, 2023)
    assert work == tmp_path / "demo_dcase2023"
    assert (work / "Version3" / "transfer_pretrain_v3.yaml").read_text() == \
        (tmp_path / "Version3" / "transfer_pretrain_v3.yaml").read_text()
    cfg = load_config(work / "Version1" / "transfer_pretrain_v1.yaml")
    assert cfg.output.result_dir == work / "Version1" / "result_transfer_pretrain_v1"
    root = tmp_path / "d23"
    generate_dcase_dataset(root, year=2023, types=("fan", "pump", "valve"), n_source=2, n_target=1, n_test=1,
                           seconds=0.5, progress=False)
    assert ensure_dcase_data(root, 2023, progress=False) is False  # a set of that layout is there: kept
    assert _dcase_versions(find_dcase_machines(root)) == ("v1", "v3", "v4") and "one section" in capsys.readouterr().out
    # v1's source sets are one machine each, but its clips' domains make two classes: nothing is left out
    assert _by_methods(("v1", "v3", "v4"), DEMO_OVERRIDES, find_dcase_machines(root)) == [(("v1", "v3", "v4"), DEMO_OVERRIDES)]
    root2020 = tmp_path / "d20"
    generate_dcase_dataset(root2020, year=2020, types=("fan", "pump"), sections=(0, 1), n_source=2, n_test=1,
                           seconds=0.5, progress=False)
    groups = _by_methods(("v1", "v2"), DEMO_OVERRIDES, find_dcase_machines(root2020))  # v2: the other ID, one class
    assert [versions for versions, _ in groups] == [("v2",), ("v1",)]
    assert "embed_knn" not in groups[0][1]["experiment"]["methods"] and groups[1][1] == DEMO_OVERRIDES
    assert "v2 run without embed_zero_shot / embed_knn / embed_fusion: a source set of one machine" in \
        capsys.readouterr().out
    import pytest

    from common.errors import DataError

    with pytest.raises(DataError, match="not the dcase2020 layout of the DCASE 2020 demo"):
        ensure_dcase_data(root, 2020, progress=False)
