"""The demo's driver: every version's YAMLs pretrained and transferred in turn, summaries gathered."""

import shutil
from pathlib import Path

import pandas as pd

from common.demo import DEMO_OVERRIDES, ensure_data, run_versions
from common.config import load_config
from conftest import tiny_overrides

REPO = Path(__file__).resolve().parent.parent


def test_run_versions_writes_every_version_in_its_folder(tiny_root, tmp_path):
    for v in ("v1", "v2"):
        shutil.copytree(REPO / f"Version{v[1:]}", tmp_path / f"Version{v[1:]}",
                        ignore=shutil.ignore_patterns("model_*", "result_*", "*.ipynb"))
    overrides = tiny_overrides(data={"root": str(tiny_root), "cache_dir": str(tmp_path / "cache"), "jobs": 1},
                               output={"scratch_dir": str(tmp_path / "scratch")})
    summary = run_versions(tmp_path, versions=("v1", "v2"), overrides=overrides, progress=False)
    assert sorted(summary.version.unique()) == ["v1", "v2"]
    assert set(summary.method) == {"scratch", "zero_shot", "transfer"}
    for v in ("v1", "v2"):
        results = pd.read_csv(tmp_path / f"Version{v[1:]}" / f"result_transfer_pretrain_{v}" / "results.csv")
        assert len(results) and set(results.version) == {v}
        assert list((tmp_path / f"Version{v[1:]}" / f"model_pretrain_{v}").glob("*.keras"))


def test_demo_settings_are_valid_config_and_data_is_not_regenerated(tiny_root):
    for v in ("v1", "v2", "v3", "v4"):
        for name in (f"make_pretrain_{v}.yaml", f"transfer_pretrain_{v}.yaml"):
            cfg = load_config(REPO / f"Version{v[1:]}" / name, overrides=DEMO_OVERRIDES)
            assert cfg.fit.epochs == DEMO_OVERRIDES["fit"]["epochs"]
    assert ensure_data(tiny_root, progress=False) is False  # machines exist: nothing is written
