"""The cross-version report on a small fake repository: every file written, valid PNGs, sentences per version."""

import re
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from common.report import plots
from common.errors import DataError
from common.report.writer import verdict, version_sentence, write_report
from common.results import RESULT_COLUMNS, SCORE_COLUMNS, collect
from common.report.stats import COMPARE_COLUMNS, compare

MACHINES = [("fan", "id_00"), ("fan", "id_02"), ("pump", "id_00"), ("pump", "id_02"), ("valve", "id_00")]
BUDGETS = {"4": 4, "all": 20}
SEEDS = (0, 1)
SOURCES = {  # v1: several sources per target (one other type each); v2: one source, the target's other IDs
    "v1": lambda t, i: [s for s in ("fan", "pump", "valve") if s != t],
    "v2": lambda t, i: [f"{t}_others"],
}
STRENGTH = {"scratch": 0.6, "zero_shot": 1.0, "transfer": 1.5}  # anomaly shift of the scores, in noise SDs
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def one_run(rng, version, machine, source, method, budget, seed):
    """A run of 10 normal + 10 anomalous clips; fan/id_02 under scratch is inverted (anomalies score low)."""
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    sign = -3.0 if (machine == ("fan", "id_02") and method == "scratch") else STRENGTH[method]
    s = np.ones(20) if sign is None else rng.normal(size=20) + sign * y  # None: a flat score, exactly at chance
    auc = roc_auc_score(y, s)
    row = dict(zip(RESULT_COLUMNS, [version, *machine, source, method, budget, seed, auc,
                                    roc_auc_score(y, s, max_fpr=0.1), 0 if method == "zero_shot" else BUDGETS[budget],
                                    20, 1.0, "hash"]))
    clips = pd.DataFrame({"version": version, "target_type": machine[0], "target_id": machine[1], "source": source,
                          "method": method, "budget": budget, "seed": seed,
                          "path": [f"/data/{machine[0]}/{machine[1]}/{k:08d}.wav" for k in range(20)],
                          "label": y, "score": s, "domain": ""})
    return row, clips


def write_transfer_yaml(root: Path, version: str, **output: str) -> Path:
    """``VersionN/transfer_pretrain_vN.yaml``: the report finds a version's results through its output.result_dir."""
    path = root / f"Version{version[1:]}" / f"transfer_pretrain_{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"experiment:\n  version: {version}\n"] + (["output:\n"] if output else [])
    path.write_text("".join(lines + [f"  {k}: {v}\n" for k, v in output.items()]))
    return path


def fake_repo(root: Path, rng) -> Path:
    """Two versions x two budgets x two seeds, scratch shared by both versions, written as real CSV files."""
    scratch = {(m, b, s): one_run(rng, "v1", m, "none", "scratch", b, s) for m in MACHINES for b in BUDGETS
               for s in SEEDS}
    for version, sources in SOURCES.items():
        rows, scores = [], []
        for (m, b, s), (row, clips) in scratch.items():
            rows.append(row | {"version": version})
            scores.append(clips.assign(version=version))
            for source in sources(*m):
                for method in ("zero_shot", "transfer"):
                    r, c = one_run(rng, version, m, source, method, b, s)
                    rows.append(r)
                    scores.append(c)
        out = root / f"Version{version[1:]}" / f"result_transfer_pretrain_{version}"
        out.mkdir(parents=True)
        write_transfer_yaml(root, version)
        pd.DataFrame(rows, columns=RESULT_COLUMNS).to_csv(out / "results.csv", index=False)
        pd.concat(scores)[SCORE_COLUMNS].to_csv(out / "scores.csv", index=False)
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    rng = np.random.default_rng(seed=440)
    repo = fake_repo(tmp_path_factory.mktemp("repo"), rng)
    path = write_report(repo, n_boot=2000)
    return repo, path


def assert_valid_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    pixels = mpimg.imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200, path
    assert pixels[..., :3].std() > 0.05, f"{path} looks blank"


def test_write_report_writes_every_file(report):
    repo, path = report
    out = repo / "report"
    assert path == out / "report.md"
    for name in ("methods.csv", "comparison.csv", "by_source.csv", "inverted.csv", "chance.csv", "report.md",
                 "auc_vs_budget.png", "v1_heatmap_transfer_minus_scratch.png", "v1_heatmap_zero_shot_minus_scratch.png",
                 "v1_machine_bars_4.png", "v1_machine_bars_all.png", "v2_machine_bars_4.png",
                 "v2_machine_bars_all.png", "roc_fan_id_02_4.png"):
        assert (out / name).is_file(), name
    assert not (out / "v2_heatmap_transfer_minus_scratch.png").exists()  # v2 has one source per target
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temporary file
    for version in ("Version1", "Version2"):  # the result folders are read, never written (E5, issue 27)
        assert not list((repo / version).rglob("*.png")), version


def test_every_png_is_valid_and_not_blank(report):
    repo, _ = report
    pngs = sorted(repo.rglob("*.png"))
    assert len(pngs) == 8
    for png in pngs:
        assert_valid_png(png)


def test_comparison_csv_has_fixed_columns_and_counts_add_up(report):
    repo, _ = report
    table = pd.read_csv(repo / "report" / "comparison.csv", dtype={"budget": str})
    assert list(table.columns) == COMPARE_COLUMNS
    assert len(table) == 2 * 2 * 2  # versions x methods x budgets
    assert (table["n_targets"] == len(MACHINES)).all() and (table["n_seeds"] == 2).all()
    assert (table["n_improved"] + table["n_worsened"] + table["n_tied"] == table["n_targets"]).all()
    assert (table["delta_auc_ci_low"] <= table["delta_auc_mean"]).all()
    assert (table["delta_auc_mean"] <= table["delta_auc_ci_high"]).all()
    assert set(table.query("version == 'v1'")["n_sources"]) == {2}
    sources = pd.read_csv(repo / "report" / "by_source.csv")
    assert set(sources["version"]) == {"v1"} and set(sources["source"]) == {"fan", "pump", "valve"}


def test_report_md_links_every_png_and_states_each_version_once(report):
    repo, path = report
    text = path.read_text()
    links = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text))
    assert links == {p.name for p in (repo / "report").glob("*.png")}
    transfer = text.split("## Each method versus scratch")[1].split("### transfer\n")[1].split("#")[0]
    sentences = [line for line in transfer.splitlines() if line.startswith("- ")]
    assert [s[:5] for s in sentences] == ["- v1:", "- v2:"]
    for s in sentences:
        assert s.count("transfer ") == 2 and s.endswith(".")  # one clause per budget, one sentence
        assert ("beat scratch" in s) or ("no clear difference" in s) or ("worse than scratch" in s)


def test_report_flags_the_inverted_machine(report):
    repo, path = report
    text = path.read_text()
    assert "Inverted scores on 1 machine(s)" in text
    flagged = pd.read_csv(repo / "report" / "inverted.csv", dtype={"budget": str})
    assert set(zip(flagged["target_type"], flagged["target_id"], flagged["method"])) == {("fan", "id_02", "scratch")}
    assert (flagged["auc_ci_high"] < 0.5).all()
    # Scratch is shared by both versions: report.md lists each scratch run once, naming both versions.
    assert "| fan/id_02 | scratch | none | v1, v2 |" in text


def test_out_folder_and_nothing_written_into_the_repo(tmp_path, rng):
    repo = fake_repo(tmp_path / "repo", rng)
    path = write_report(repo, out=tmp_path / "elsewhere", n_boot=200)
    assert path == tmp_path / "elsewhere" / "report.md" and path.is_file()
    assert not list(repo.rglob("*.png")) and not (repo / "report").exists()


def test_collect_reads_every_version_and_refuses_an_empty_repo(tmp_path, rng):
    with pytest.raises(DataError, match="results.csv"):
        collect(tmp_path)
    repo = fake_repo(tmp_path / "repo", rng)
    results, scores = collect(repo)
    assert sorted(results["version"].unique()) == ["v1", "v2"] and results["budget"].map(type).eq(str).all()
    assert len(scores) == 20 * len(results)
    bad = repo / "Version3" / "result_transfer_pretrain_v3"
    bad.mkdir(parents=True)
    write_transfer_yaml(repo, "v3")
    pd.DataFrame({"version": ["v3"], "auc": [0.5]}).to_csv(bad / "results.csv", index=False)
    with pytest.raises(DataError, match="result_transfer_pretrain_v3/results.csv lacks the columns"):
        collect(repo)

    empty = tmp_path / "empty" / "Version1" / "result_transfer_pretrain_v1"
    empty.mkdir(parents=True)
    write_transfer_yaml(tmp_path / "empty", "v1")
    (empty / "results.csv").write_text(",".join(RESULT_COLUMNS) + "\n")
    with pytest.raises(DataError, match="have no rows"):
        write_report(tmp_path / "empty")


def test_plot_functions_return_figures(tmp_path, rng):
    results, scores = collect(fake_repo(tmp_path / "repo", rng))
    figures = [plots.source_heatmap(results, version="v1", method="transfer"), plots.auc_vs_budget(results),
               plots.machine_bars(results, version="v2", budget="4"),
               plots.roc_curves(scores, target_type="pump", target_id="id_00", budget="all", seed=1),
               plots.auc_by_target(results[results["version"] == "v1"], budget="4")]
    assert all(isinstance(f, Figure) for f in figures)
    with pytest.raises(DataError, match="no scores for pump/id_09"):
        plots.roc_curves(scores, target_type="pump", target_id="id_09", budget="all")


def test_method_at_chance_everywhere_is_flagged_and_missing_scores_are_said(tmp_path, rng, monkeypatch):
    monkeypatch.setitem(STRENGTH, "zero_shot", None)
    repo = fake_repo(tmp_path / "repo", rng)
    text = write_report(repo, n_boot=200).read_text()
    assert "**At chance on every machine.**" in text
    assert "- zero-shot of v1, v2 at budget 4, all: all 5 machines, AUC 0.50–0.50." in text
    chance = pd.read_csv(repo / "report" / "chance.csv")
    assert set(chance["method"]) == {"zero_shot"} and len(chance) == 4  # 2 versions x 2 budgets
    for scores in repo.rglob("scores.csv"):
        scores.unlink()
    text = write_report(repo, out=tmp_path / "no_scores", n_boot=200).read_text()
    assert "No `scores.csv` was found" in text and "roc_" not in text
    assert not (tmp_path / "no_scores" / "inverted.csv").exists()


def row(low, high, *, mean=0.04, method="transfer", p=0.03):
    return {"version": "v2", "method": method, "budget": "8", "n_train_clips": 8.0, "n_targets": 16,
            "n_improved": 11, "n_worsened": 4, "n_tied": 1, "delta_auc_mean": mean, "delta_auc_ci_low": low,
            "delta_auc_ci_high": high, "wilcoxon_p": p}


def test_verdict_states_the_direction_only_when_the_interval_excludes_zero():
    up = verdict(row(0.01, 0.07))
    assert up.startswith("v2: transfer beat scratch on 11 of 16 machines (budget 8, 8 training clips)")
    assert "mean +0.040 AUC, 95 % CI [0.010, 0.070], Wilcoxon p = 0.03." in up
    unclear = verdict(row(-0.01, 0.07, p=0.04))
    assert "no clear difference" in unclear and "beat" not in unclear
    down = verdict(row(-0.09, -0.01, mean=-0.05))
    assert "was worse than scratch on 4 of 16 machines" in down and "mean -0.050 AUC" in down
    few = verdict(row(np.nan, np.nan, p=np.nan) | {"n_targets": 1})
    assert "too few for an interval" in few and "no claim" in few
    assert "scratch at budget 8" in verdict(row(0.01, 0.07, method="zero_shot") | {"method_train_clips": 0})
    assert "scratch at" not in verdict(row(0.01, 0.07, method="zero_shot") | {"method_train_clips": 8})


def test_version_sentence_is_one_sentence_over_budgets():
    deltas = [0.10, 0.05, 0.00, -0.02, 0.07]
    runs = [{"version": "v1", "target_type": m[0], "target_id": m[1], "source": source, "method": method,
             "budget": budget, "seed": 0, "auc": 0.6 + d * (method == "transfer"), "pauc": 0.6,
             "n_train_clips": clips} for m, d in zip(MACHINES, deltas) for budget, clips in (("8", 8), ("all", 20))
            for method, source in (("scratch", "none"), ("transfer", "src"))]
    both = pd.DataFrame(runs)
    sentence = version_sentence(compare(both, n_boot=500), version="v1", method="transfer")
    assert sentence.startswith("v1: transfer ") and sentence.endswith(".") and ". " not in sentence
    assert sentence.count("transfer ") == 2  # one clause per budget
    assert "budget 8, 8 training clips" in sentence and "budget all, 20 training clips" in sentence
    assert version_sentence(compare(both, n_boot=500), version="v9", method="transfer") == "v9: no transfer results."


def test_report_reads_each_versions_result_dir_from_its_yaml(tmp_path, rng):
    """A version whose transfer YAML moves output.result_dir is read from there; its figures go to report/."""
    repo = fake_repo(tmp_path / "repo", rng)
    moved = tmp_path / "elsewhere" / "v2_results"
    moved.parent.mkdir()
    (repo / "Version2" / "result_transfer_pretrain_v2").rename(moved)
    write_transfer_yaml(repo, "v2", result_dir="../../elsewhere/v2_results")  # relative to the YAML's folder
    results, _ = collect(repo)
    assert sorted(results["version"].unique()) == ["v1", "v2"]
    write_report(repo, n_boot=200)
    assert not list(moved.glob("*.png"))
    assert {"v2_machine_bars_4.png", "v2_machine_bars_all.png"} <= {p.name for p in (repo / "report").glob("*.png")}
    assert not (repo / "Version2" / "result_transfer_pretrain_v2").exists()
    (repo / "Version2" / "transfer_pretrain_v2.yaml").unlink()  # no YAML: the version is not found at all
    assert sorted(collect(repo)[0]["version"].unique()) == ["v1"]
