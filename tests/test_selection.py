"""Version5 and `advise`: sources ranked by log-mel similarity to the target's budget clips only.

One shared set: the tiny set (fan, valve x id_00, id_02) plus ``slider/id_00``, a near twin of fan/id_00
(its clips at 0.98 of the amplitude: 0.18 dB quieter, the same sound).
"""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from common.data.dataset import Machines, select_machines
from common.errors import ConfigError
from common.data.selection import Selector, distinct_sets, draws
from conftest import make_config, run_main, write_wav

TARGET, TWIN = "fan/id_00", "slider/id_00"


def _machine_dir(root: Path, name: str) -> Path:
    kind, ident = name.split("/")
    return root / f"-6_dB_{kind}" / kind / ident


def _named(machines) -> dict:
    return {m.name: m for m in machines}


def _labels(found) -> dict:
    """The chosen labels of every draw, keyed by target name (machines of two roots compare by name)."""
    return {t.name: {d: [s.label for s in sets] for d, sets in per.items()} for t, per in found.items()}


@pytest.fixture(scope="module")
def twin_root(tiny_root, tmp_path_factory) -> Path:
    """The tiny set copied, with slider/id_00: every clip of fan/id_00 at 0.98 of its amplitude."""
    root = tmp_path_factory.mktemp("twin") / "data"
    shutil.copytree(tiny_root, root)
    for wav in sorted(_machine_dir(root, TARGET).rglob("*.wav")):
        y, sr = sf.read(wav)
        write_wav(_machine_dir(root, TWIN) / wav.relative_to(_machine_dir(root, TARGET)), 0.98 * y, sr)
    return root


def _config(folder: Path, root: Path, *, name: str = "cfg.yaml", **experiment):
    return make_config(folder, root, "v5", name=name, experiment={"version": "v5", "budgets": [1, 2, "all"], "seeds": [0, 1],
                                                      "sources_k": 1} | experiment)


def test_v5_picks_the_near_twin_at_every_budget_and_seed(twin_root, tmp_path):
    cfg = _config(tmp_path, twin_root)
    machines = select_machines(cfg)
    found = _labels(draws(cfg, Machines(cfg, progress=False), machines, machines))
    assert {label for sets in found[TARGET].values() for label in sets} == {"slider_id_00"}
    assert {label for sets in found[TWIN].values() for label in sets} == {"fan_id_00"}
    named = _named(machines)
    ranking = Selector(cfg, Machines(cfg, progress=False)).ranking(
        named[TARGET], [m for m in machines if m.name != TARGET], 2, 0)
    assert ranking[0].machine.name == TWIN and ranking[0].distance < 0.5 * ranking[1].distance
    assert TARGET not in [r.machine.name for r in ranking]


def test_random_selection_draws_k_others_with_the_seed(twin_root, tmp_path):
    cfg = _config(tmp_path, twin_root, selection="random", sources_k=2)
    machines = select_machines(cfg)
    found = draws(cfg, Machines(cfg, progress=False), machines, machines)
    for target, per in found.items():
        for sets in per.values():
            assert len(sets[0].machines) == 2 and target not in sets[0].machines
    again = draws(cfg, Machines(cfg, progress=False), machines, machines)
    assert found == again  # the same seeds draw the same machines


def test_changing_the_evaluation_clips_changes_no_choice(twin_root, tmp_path):
    """The target's evaluation clips (all abnormal + the first normal ones) replaced by another machine's sound."""
    root = tmp_path / "data"
    shutil.copytree(twin_root, root)
    k2 = {"sources_k": 2}
    cfg = _config(tmp_path / "before", twin_root, **k2)
    machines = select_machines(cfg)
    before = draws(cfg, Machines(cfg, progress=False), machines, machines)
    target = _named(machines)[TARGET]
    split = Machines(cfg, progress=False).checked(target).split
    other = sorted((_machine_dir(root, "valve/id_02") / "normal").glob("*.wav"))
    for path, donor in zip(split.eval_files, other * 3):
        shutil.copyfile(donor, root / Path(path).relative_to(twin_root))
    after_cfg = _config(tmp_path / "after", root, **k2)
    data = Machines(after_cfg, progress=False)
    after = draws(after_cfg, data, select_machines(after_cfg), select_machines(after_cfg))
    assert _labels(after) == _labels(before)
    # ... while the evaluation clips did change what the machine's features hold
    new_target = _named(select_machines(after_cfg))[TARGET]
    new_eval = [root / Path(f).relative_to(twin_root) for f in split.eval_files[:1]]
    assert not np.array_equal(data[new_target].vectors(new_eval)[0],
                              Machines(cfg, progress=False)[target].vectors(split.eval_files[:1])[0])
    # and a changed budget clip does change the distances: the ranking reads the budget clips
    budget_clip = Path(split.train[0])
    shutil.copyfile(other[0], root / budget_clip.relative_to(twin_root))
    twin = _named(select_machines(after_cfg))[TWIN]
    moved = Selector(after_cfg, Machines(after_cfg, progress=False)).ranking(new_target, [twin], "all", 0)
    kept = Selector(cfg, Machines(cfg, progress=False)).ranking(target, [_named(machines)[TWIN]], "all", 0)
    assert moved[0].distance != kept[0].distance


def test_v5_pretrains_each_distinct_chosen_set_and_runs_every_family(twin_root, tmp_path):
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain

    methods = ["scratch", "transfer", "lw_scratch", "lw_transfer", "logmel_knn", "embed_knn"]
    exp = {"budgets": [2, "all"], "seeds": [0], "sources_k": 2, "methods": methods}
    make = _config(tmp_path, twin_root, **exp)
    made = pretrain(make, progress=False)
    machines = select_machines(make)
    sets = distinct_sets(draws(make, Machines(make, progress=False), machines, machines))
    assert sorted({p.source.label for p in made}) == [s.label for s in sets]
    assert len(made) == 2 * len(sets)  # one autoencoder and one classifier per distinct set
    results = run_grid(_config(tmp_path, twin_root, name="t.yaml", **exp), progress=False)
    assert set(results["version"]) == {"v5"} and set(results["method"]) == set(methods)
    fan = results[(results.target_type == "fan") & (results.target_id == "id_00") & (results.method == "transfer")]
    assert all("slider_id_00" in s.split("+") for s in fan["source"])
    assert results["auc"].notna().all()


def test_sources_k_larger_than_the_candidates_is_refused_naming_the_key(tiny_root, tmp_path):
    cfg = make_config(tmp_path, tiny_root, "v5", experiment={"version": "v5", "sources_k": 9})
    from common.experiment.pretrain import pretrain

    with pytest.raises(ConfigError, match="experiment.sources_k"):
        pretrain(cfg, progress=False)


@pytest.mark.parametrize("key, value, match", [("sources_k", 0, "experiment.sources_k"),
                                               ("selection", "nearest", "experiment.selection")])
def test_bad_v5_keys_are_config_errors(tiny_root, tmp_path, key, value, match):
    with pytest.raises(ConfigError, match=match):
        make_config(tmp_path, tiny_root, "v5", experiment={"version": "v5", key: value})


# --- advise ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def new_clips(twin_root, tmp_path_factory) -> Path:
    """A new machine's folder: fan/id_00's normal training clips (not its evaluation ones), at 1.1 x amplitude."""
    folder = tmp_path_factory.mktemp("new") / "my_machine"
    for wav in sorted((_machine_dir(twin_root, TARGET) / "normal").glob("*.wav"))[-4:]:
        y, sr = sf.read(wav)
        write_wav(folder / "recordings" / wav.name, 1.1 * y, sr)
    return folder


def _advise_yaml(tmp_path: Path, root: Path) -> Path:
    from conftest import write_config

    return write_config(tmp_path, root, "v5", experiment={"version": "v5", "sources_k": 2})


def test_advise_ranks_the_twins_first_and_says_no_report_exists(twin_root, new_clips, tmp_path):
    code, out = run_main(["advise", str(new_clips), "--root", str(twin_root),
                          "--config", str(_advise_yaml(tmp_path, twin_root)), "--report", str(tmp_path / "none")])
    assert code == 0, out
    ranked = [line.split()[1] for line in out.splitlines() if line[:4].strip().rstrip(".").isdigit()]
    assert sorted(ranked[:2]) == ["fan/id_00", "slider/id_00"] and len(ranked) == 5
    assert "recommended source set (k=2): fan/id_00, slider/id_00" in out
    assert "no report exists yet" in out


def test_advise_names_the_reports_best_method_at_the_nearest_budget(twin_root, new_clips, tmp_path):
    from common.report.stats import method_table

    rows = []
    for method, shift in (("scratch", 0.0), ("lw_transfer", 0.2)):
        for i, target in enumerate(("fan", "valve", "slider")):
            for budget in ("2", "4", "all"):
                rows.append({"version": "v5", "target_type": target, "target_id": "id_00", "method": method,
                             "source": "none" if method == "scratch" else "a", "budget": budget, "seed": 0,
                             "auc": 0.6 + shift + 0.01 * i, "pauc": 0.5, "n_train_clips": 2})
    (tmp_path / "report").mkdir()
    method_table(pd.DataFrame(rows), n_boot=200).to_csv(tmp_path / "report" / "methods.csv", index=False)
    code, out = run_main(["advise", str(new_clips), "--root", str(twin_root), "--k", "1",
                          "--config", str(_advise_yaml(tmp_path, twin_root)), "--report", str(tmp_path / "report")])
    assert code == 0, out
    assert "recommended source set (k=1)" in out
    assert "at budget 4 (v5): lw_transfer, AUC 0.810, vs scratch +0.200 [+0.200, +0.200]" in out


def test_advise_bad_inputs_exit_2_with_one_line(twin_root, new_clips, tmp_path):
    yaml = str(_advise_yaml(tmp_path, twin_root))
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [([str(tmp_path / "missing"), "--root", str(twin_root)], "NEW_CLIPS"),
             ([str(empty), "--root", str(twin_root)], "holds no WAV clips"),
             ([str(new_clips), "--root", str(tmp_path / "nowhere")], "--root"),
             ([str(new_clips), "--root", str(twin_root), "--k", "9"], "--k 9"),
             ([str(new_clips), "--root", str(twin_root), "--k", "0"], "--k 0")]
    for argv, match in cases:
        code, out = run_main(["advise", *argv, "--config", yaml, "--report", str(tmp_path)])
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1 and match in errors[0], out
        assert "Traceback" not in out


def test_advise_leaves_out_a_broken_clip_with_exit_1(twin_root, new_clips, tmp_path):
    folder = tmp_path / "clips"
    shutil.copytree(new_clips, folder)
    broken = folder / "broken.wav"
    broken.write_bytes(b"RIFF0000WAVEjunk")
    code, out = run_main(["advise", str(folder), "--root", str(twin_root), "--config",
                          str(_advise_yaml(tmp_path, twin_root)), "--report", str(tmp_path)])
    assert code == 1 and "left out: " in out and str(broken) in out and "recommended source set" in out, out
