"""Machine discovery, the MIMII evaluation split, and budget subsets on real (synthetic) folders."""

import shutil

import numpy as np
import pytest

from common.data.mimii import budget_subset, find_machines, list_clips, split_machine
from common.errors import DataError


def test_find_machines_lists_types_and_ids_sorted(tiny_root):
    machines = find_machines(tiny_root, snr=-6)
    assert [m.name for m in machines] == ["fan/id_00", "fan/id_02", "valve/id_00", "valve/id_02"]
    assert machines[0].path == tiny_root / "-6_dB_fan" / "fan" / "id_00"
    assert [m.name for m in find_machines(tiny_root, snr=-6, types=["valve"], ids=["id_02"])] == ["valve/id_02"]


def test_find_machines_accepts_the_no_underscore_spelling(tiny_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny_root / "-6_dB_fan", root / "-6dB_fan")
    assert [m.name for m in find_machines(root, snr=-6)] == ["fan/id_00", "fan/id_02"]


def test_find_machines_errors(tiny_root, tmp_path):
    with pytest.raises(DataError, match="data root not found: .*nowhere"):
        find_machines(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no machines at snr=-6 dB under .*empty"):
        find_machines(tmp_path / "empty")
    with pytest.raises(DataError, match="no machines at snr=6 dB"):
        find_machines(tiny_root, snr=6)
    with pytest.raises(DataError, match=r"type\(s\) \['pump'\] not found"):
        find_machines(tiny_root, types=["pump"])
    with pytest.raises(DataError, match=r"id\(s\) \['id_07'\] not found"):
        find_machines(tiny_root, ids=["id_07"])


def test_machine_without_abnormal_clips_is_named(tiny_root, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(tiny_root / "-6_dB_fan", root / "-6_dB_fan")
    for f in (root / "-6_dB_fan" / "fan" / "id_02" / "abnormal").glob("*.wav"):
        f.unlink()
    machine = find_machines(root, ids=["id_02"])[0]
    with pytest.raises(DataError, match=r"fan/id_02 has no abnormal clips"):
        split_machine(machine)


def test_mimii_split_matches_the_baseline_rule(tiny_root):
    machine = find_machines(tiny_root, types=["fan"], ids=["id_00"])[0]
    normal, abnormal = list_clips(machine)
    split = split_machine(machine)
    n = len(abnormal)
    assert split.eval_files == tuple(normal[:n] + abnormal)
    assert split.train == tuple(normal[n:])
    assert split.eval_labels.tolist() == [0] * n + [1] * n
    assert not set(split.train) & set(split.eval_files)
    assert all("normal" == p.parent.name for p in split.train)


def test_random_split_is_seeded_and_disjoint(tiny_root):
    machine = find_machines(tiny_root, types=["valve"], ids=["id_00"])[0]
    a = split_machine(machine, method="random", seed=1)
    b = split_machine(machine, method="random", seed=1)
    c = split_machine(machine, method="random", seed=2)
    assert a.train == b.train and a.eval_files == b.eval_files
    assert a.train != c.train or a.eval_files != c.eval_files
    assert not set(a.train) & set(a.eval_files)
    assert len(a.train) + len(a.eval_files) == 8 + 3


def test_budget_subsets_are_deterministic_nested_and_from_the_pool(tiny_root):
    machine = find_machines(tiny_root, types=["fan"], ids=["id_02"])[0]
    split = split_machine(machine)
    assert budget_subset(split.train, "all", seed=0) == split.train
    two = budget_subset(split.train, 2, seed=0)
    four = budget_subset(split.train, 4, seed=0)
    assert len(two) == 2 and set(two) <= set(four) <= set(split.train)
    assert budget_subset(split.train, 4, seed=0) == four
    assert any(budget_subset(split.train, 2, seed=s) != two for s in range(1, 6))
    assert not set(four) & set(split.eval_files)


@pytest.mark.parametrize("budget, match", [(0, "budget=0"), (99, "budget=99 exceeds the 5"), ("some", "budget='some'")])
def test_bad_budgets(tiny_root, budget, match):
    split = split_machine(find_machines(tiny_root)[0])
    with pytest.raises(DataError, match=match):
        budget_subset(split.train, budget, seed=0)


def test_labels_are_int_normal_zero(tiny_root):
    split = split_machine(find_machines(tiny_root)[0])
    assert split.eval_labels.dtype.kind == "i" and np.array_equal(np.unique(split.eval_labels), [0, 1])


def test_split_leaves_out_excluded_files_before_splitting(tiny_root):
    machine = find_machines(tiny_root)[0]
    full = split_machine(machine)
    bad = [full.eval_files[0], full.eval_files[-1]]  # the first normal and the last abnormal clip
    split = split_machine(machine, exclude=[str(p) for p in bad])
    assert not set(bad) & set(split.train + split.eval_files)
    assert list(split.eval_labels) == [0, 0, 1, 1] and len(split.train) == 5
    assert split.eval_files[:2] == full.eval_files[1:3] and split.train == full.train  # 2 abnormal: 2 normal evaluated
    with pytest.raises(DataError, match=r"no abnormal clips .*\(3 bad file\(s\) skipped\)"):
        split_machine(machine, exclude=[p for p in full.eval_files if "abnormal" in str(p)])
