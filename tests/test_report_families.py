"""The report per method family on hand-made results: method table, family sentences, budget figure."""

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from common.report import plots
from common.methods.catalog import FAMILY_CONTROL, METHOD_NAMES
from common.report.writer import family_sentence, sentence_budget, write_report
from common.results import RESULT_COLUMNS, SCORE_COLUMNS
from common.report.stats import METHOD_TABLE_COLUMNS, method_table

TARGETS = [("fan", "id_00"), ("pump", "id_00"), ("valve", "id_00")]
BUDGETS = {"1": 1, "2": 2, "4": 4, "all": 20}  # label -> target training clips
# Mean AUC over the targets at budgets 1, 2, 4, all; target k adds SPREAD * (k - 1), seed 0 / 1 adds +0.01 / -0.01,
# so every mean below is exact and a paired difference per target is the level difference plus the spread's.
LEVEL = {
    "scratch": (0.55, 0.58, 0.60, 0.62), "zero_shot": (0.66,) * 4, "transfer": (0.70, 0.72, 0.74, 0.76),
    "lw_scratch": (0.60, 0.63, 0.66, 0.70), "lw_transfer": (0.62, 0.64, 0.65, 0.72),
    "logmel_knn": (0.64, 0.70, 0.75, 0.78), "embed_zero_shot": (0.72,) * 4, "embed_knn": (0.70, 0.78, 0.83, 0.85),
    "embed_finetune": (0.68, 0.74, 0.80, 0.84),
}
SPREAD = {"scratch": 0.02, "zero_shot": 0.01, "transfer": 0.03, "lw_scratch": 0.02, "lw_transfer": 0.05,
          "logmel_knn": 0.01, "embed_zero_shot": 0.03, "embed_knn": 0.02, "embed_finetune": 0.0}
ZERO_SHOT = {"zero_shot", "embed_zero_shot"}
CONTROLS = set(FAMILY_CONTROL.values())
VERSION_SHIFT = {"v2": -0.05, "v4": 0.0}  # pretrained methods of v2 are 0.05 worse: v4 is always the best


def auc_of(method: str, budget: str, k: int, seed: int, version: str) -> float:
    shift = 0.0 if method in CONTROLS else VERSION_SHIFT[version]
    level = LEVEL[method][list(BUDGETS).index(budget)]
    return level + shift + SPREAD[method] * (k - 1) + (0.01 if seed == 0 else -0.01)


def sources_of(method: str, version: str, target: tuple[str, str]) -> list[str]:
    """Controls pretrain on nothing; v4's transfer on two source sets (+0.02 and -0.02: the mean is unchanged)."""
    if method in CONTROLS:
        return ["none"]
    return ["a", "b"] if (version, method) == ("v4", "transfer") else [f"{target[0]}_others"]


def results_table(methods=tuple(LEVEL), budgets=tuple(BUDGETS), versions=("v2", "v4")) -> pd.DataFrame:
    rows = []
    for version in versions:
        for method in methods:
            for budget in budgets:
                for k, target in enumerate(TARGETS):
                    sources = sources_of(method, version, target)
                    for j, source in enumerate(sources):
                        for seed in (0, 1):
                            auc = auc_of(method, budget, k, seed, version) + (0.02 - 0.04 * j) * (len(sources) > 1)
                            rows.append({"version": version, "target_type": target[0], "target_id": target[1],
                                         "source": source, "method": method, "budget": budget, "seed": seed,
                                         "auc": auc, "pauc": auc / 2, "n_eval_clips": 20,
                                         "n_train_clips": 0 if method in ZERO_SHOT else BUDGETS[budget]})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return method_table(results_table(), n_boot=4000)


def one(table: pd.DataFrame, method: str, budget: str, version: str = "v4") -> pd.Series:
    rows = table[(table["method"] == method) & (table["budget"] == budget) & (table["version"] == version)]
    assert len(rows) == 1, (method, budget, version)
    return rows.iloc[0]


def test_method_table_has_one_row_per_method_version_and_budget(table):
    assert list(table.columns) == METHOD_TABLE_COLUMNS
    assert len(table) == len(LEVEL) * 2 * len(BUDGETS)
    assert list(dict.fromkeys(table["method"])) == [m for m in METHOD_NAMES if m in LEVEL]  # results order
    assert list(table["budget"][:4]) == ["1", "2", "4", "all"] and list(table["version"][:8]) == ["v2"] * 4 + ["v4"] * 4
    assert dict(zip(table["method"], table["control"]))["embed_knn"] == "logmel_knn"
    assert dict(zip(table["method"], table["family"]))["lw_transfer"] == "statistics"
    assert (table["n_targets"] == 3).all() and (table["n_seeds"] == 2).all()


def test_method_table_means_and_differences_by_hand(table):
    knn = one(table, "embed_knn", "4")
    assert (knn["auc_mean"], knn["pauc_mean"], knn["n_train_clips"]) == pytest.approx((0.83, 0.415, 4))
    assert one(table, "embed_knn", "4", "v2")["auc_mean"] == pytest.approx(0.78)
    # against logmel_knn: 0.08 + 0.01 (k - 1) = [0.07, 0.08, 0.09], all positive: exact p = 2 / 2**3
    assert knn["control_auc_mean"] == pytest.approx(0.75) and knn["control_delta_auc_mean"] == pytest.approx(0.08)
    assert 0.07 - 1e-9 <= knn["control_delta_auc_ci_low"] < 0.08 < knn["control_delta_auc_ci_high"] <= 0.09 + 1e-9
    assert knn["control_wilcoxon_p"] == pytest.approx(0.25)
    assert knn["control_delta_pauc_mean"] == pytest.approx(0.04)  # pAUC = AUC / 2 here
    assert knn["scratch_auc_mean"] == pytest.approx(0.60) and knn["scratch_delta_auc_mean"] == pytest.approx(0.23)
    assert knn["scratch_all_auc_mean"] == pytest.approx(0.62)
    assert knn["scratch_all_delta_auc_mean"] == pytest.approx(0.21)
    lw = one(table, "lw_transfer", "4")
    assert lw["control_delta_auc_mean"] == pytest.approx(-0.01)  # [-0.04, -0.01, +0.02]
    assert lw["control_delta_auc_ci_low"] < 0 < lw["control_delta_auc_ci_high"]
    assert lw["control_wilcoxon_p"] == pytest.approx(sps.wilcoxon([-0.04, -0.01, 0.02]).pvalue) == pytest.approx(0.75)
    transfer = one(table, "transfer", "4")  # two sources, +0.02 and -0.02: averaged per target first
    assert transfer["n_sources"] == 2 and transfer["auc_mean"] == pytest.approx(0.74)
    assert transfer["control_delta_auc_mean"] == transfer["scratch_delta_auc_mean"] == pytest.approx(0.14)


def test_zero_shot_rows_repeat_and_self_pairs_are_empty(table):
    for budget, level in zip(BUDGETS, LEVEL["scratch"]):
        zero = one(table, "zero_shot", budget)
        assert zero["n_train_clips"] == 0 and zero["auc_mean"] == pytest.approx(0.66)
        assert zero["scratch_delta_auc_mean"] == pytest.approx(0.66 - level)  # only the baseline changes
    scratch_1, scratch_all = one(table, "scratch", "1"), one(table, "scratch", "all")
    assert np.isnan(scratch_1["scratch_delta_auc_mean"]) and np.isnan(scratch_1["control_delta_auc_mean"])
    assert scratch_1["scratch_all_delta_auc_mean"] == pytest.approx(0.55 - 0.62)
    assert np.isnan(scratch_all["scratch_all_delta_auc_mean"])
    logmel = one(table, "logmel_knn", "4")
    assert np.isnan(logmel["control_delta_auc_mean"]) and logmel["scratch_delta_auc_mean"] == pytest.approx(0.15)


def test_family_sentences_name_the_best_method_and_its_numbers(table):
    embedding = family_sentence(table, family="embedding")
    assert embedding == (
        "Embedding family: with 4 target clips, embed_knn (v4) reaches 0.830 mean AUC against 0.750 for its "
        "no-pretraining control logmel_knn (+0.080 [+0.070, +0.090], p = 0.25) and 0.620 for the autoencoder "
        "trained from scratch on all target clips (+0.210 [+0.210, +0.210], p = 0.25); it beats its control "
        "logmel_knn.")
    autoencoder = family_sentence(table, family="autoencoder")
    assert autoencoder.startswith("Autoencoder family: with 4 target clips, transfer (v4) reaches 0.740 mean AUC "
                                  "against 0.600 for its no-pretraining control scratch (+0.140 [")
    assert "and 0.620 for the autoencoder trained from scratch on all target clips (+0.120 [" in autoencoder
    assert autoencoder.endswith("; it beats its control scratch.")
    statistics = family_sentence(table, family="statistics")
    assert statistics.startswith("Statistics family: with 4 target clips, lw_transfer (v4) reaches 0.650 mean AUC "
                                 "against 0.660 for its no-pretraining control lw_scratch (-0.010 [")
    assert "p = 0.75" in statistics and statistics.endswith(
        "; it does not clearly beat its control lw_scratch (the interval contains 0).")


def test_a_zero_shot_best_is_named_as_such_and_a_worse_one_is_said():
    results = results_table(methods=("scratch", "logmel_knn", "embed_zero_shot"), versions=("v4",))
    sentence = family_sentence(method_table(results, n_boot=4000), family="embedding")
    assert sentence == (
        "Embedding family: at budget 4, the best pretrained method is embed_zero_shot (v4), which uses no target "
        "clip (the same result at every budget): 0.720 mean AUC against 0.750 for its no-pretraining control "
        "logmel_knn trained on 4 target clips (-0.030 [-0.050, -0.010], p = 0.25) and 0.620 for the autoencoder "
        "trained from scratch on all target clips (+0.100 [+0.090, +0.110], p = 0.25); it does not beat its "
        "control logmel_knn: it is worse.")


def test_family_sentence_falls_back_to_the_smallest_budget_and_says_what_is_missing():
    no_four = method_table(results_table(budgets=("1", "2", "all")), n_boot=500)
    assert family_sentence(no_four, family="autoencoder").startswith(
        "Autoencoder family: with 1 target clip, transfer (v4) reaches 0.700 mean AUC against 0.550 for its "
        "no-pretraining control scratch (+0.150 [")
    # At budget 1 the zero-shot embedding (0.72, every budget) beats embed_knn (0.70): its control has 1 clip.
    assert family_sentence(no_four, family="embedding").startswith(
        "Embedding family: at budget 1, the best pretrained method is embed_zero_shot (v4), which uses no target "
        "clip (the same result at every budget): 0.720 mean AUC against 0.640 for its no-pretraining control "
        "logmel_knn trained on 1 target clip (+0.080 [")
    assert sentence_budget(["all", "2", "8"]) == "2" and sentence_budget(["all"]) == "all"
    assert sentence_budget(["16", "4"], preferred="16") == "16"
    without_control = method_table(results_table(methods=("scratch", "lw_transfer"), versions=("v4",)), n_boot=500)
    sentence = family_sentence(without_control, family="statistics")
    assert sentence.startswith("Statistics family: with 4 target clips, lw_transfer (v4) reaches 0.650 mean AUC "
                               "against 0.620 for the autoencoder trained from scratch on all target clips (+0.030")
    assert sentence.endswith("; its control lw_scratch was not scored at this budget.")
    controls_only = method_table(results_table(methods=("scratch", "logmel_knn"), versions=("v4",)), n_boot=500)
    assert family_sentence(controls_only, family="embedding") == (
        "Embedding family: no pretrained method was scored, so nothing is compared with its control logmel_knn.")
    no_all = method_table(results_table(methods=("scratch", "transfer"), budgets=("1", "4")), n_boot=500)
    assert "all target clips" not in family_sentence(no_all, family="autoencoder")


def test_an_older_run_with_scratch_and_transfer_only():
    table = method_table(results_table(methods=("scratch", "transfer"), budgets=("4", "all"), versions=("v2",)),
                         n_boot=500)
    assert len(table) == 4 and set(table["family"]) == {"autoencoder"}
    transfer = one(table, "transfer", "4", "v2")
    assert transfer["auc_mean"] == pytest.approx(0.69) and transfer["control_delta_auc_mean"] == pytest.approx(0.09)
    assert family_sentence(table, family="autoencoder").startswith(
        "Autoencoder family: with 4 target clips, transfer (v2) reaches 0.690 mean AUC against 0.600")


def line_labels(ax) -> list[str]:
    return [line.get_label() for line in ax.get_lines() if line.get_label() != "chance"]


def test_auc_vs_budget_draws_one_line_per_method_present():
    fig = plots.auc_vs_budget(results_table())
    assert [ax.get_title() for ax in fig.axes] == ["v2", "v4"]
    for ax in fig.axes:
        assert line_labels(ax) == [m for m in METHOD_NAMES if m in LEVEL]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "4", "all (≈20)"]
    lines = {line.get_label(): line for line in fig.axes[1].get_lines()}
    np.testing.assert_allclose(lines["embed_knn"].get_ydata(), LEVEL["embed_knn"])
    np.testing.assert_allclose(lines["embed_knn"].get_xdata(), [0, 1, 2, 3])
    assert lines["embed_zero_shot"].get_linestyle() == ":"  # zero-shot: flat and dotted
    np.testing.assert_allclose(lines["embed_zero_shot"].get_ydata(), [0.72] * 4)
    older = plots.auc_vs_budget(results_table(methods=("scratch", "transfer"), budgets=("4", "all", "1"),
                                              versions=("v2",)))
    assert [line_labels(ax) for ax in older.axes] == [["scratch", "transfer"]]
    assert [t.get_text() for t in older.axes[0].get_xticklabels()] == ["1", "4", "all (≈20)"]


def test_every_method_has_its_own_style():
    styles = {m: plots.method_style(m) for m in METHOD_NAMES}
    assert len({(s["color"], s["marker"]) for s in styles.values()}) == len(METHOD_NAMES)
    assert styles["scratch"]["color"] == "black"
    assert {m for m, s in styles.items() if s["linestyle"] == "--"} == CONTROLS - {"scratch"}
    assert plots.method_style("an_old_method")["color"] == "0.55"


def scores_table(results: pd.DataFrame, rng) -> pd.DataFrame:
    """10 normal and 10 anomalous clip scores per run, anomalies shifted by the run's AUC above chance."""
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    frames = []
    for run in results.itertuples(index=False):
        frames.append(pd.DataFrame({**{c: getattr(run, c) for c in SCORE_COLUMNS[:7]},
                                    "path": [f"{k}.wav" for k in range(20)], "label": y,
                                    "score": rng.normal(size=20) + 6 * (run.auc - 0.5) * y, "domain": ""}))
    return pd.concat(frames, ignore_index=True)[SCORE_COLUMNS]


def test_machine_bars_and_roc_have_one_panel_per_family(rng):
    results = results_table(budgets=("1",))
    bars = plots.machine_bars(results, version="v4", budget="1")
    assert [[bars.get_label() for bars in ax.containers] for ax in bars.axes] == [
        ["scratch", "zero_shot", "transfer"], ["scratch", "lw_scratch", "lw_transfer"],
        ["scratch", "logmel_knn", "embed_zero_shot", "embed_knn", "embed_finetune"]]  # scratch: every panel's reference
    # embed_knn's bar per target: the two seeds (+0.01, -0.01) averaged
    np.testing.assert_allclose(bars.axes[2].containers[3].datavalues, [0.70 - 0.02, 0.70, 0.70 + 0.02])
    roc = plots.roc_curves(scores_table(results, rng), target_type="fan", target_id="id_00", budget="1")
    assert [ax.get_title() for ax in roc.axes] == ["autoencoder family", "statistics family", "embedding family"]
    labels = [line.get_label() for line in roc.axes[2].get_lines()]
    assert [label.split(" (")[0] for label in labels] == ["chance", "scratch", "logmel_knn", "embed_zero_shot v2",
                                                         "embed_zero_shot v4", "embed_knn v2", "embed_knn v4",
                                                         "embed_finetune v2", "embed_finetune v4"]
    older = plots.machine_bars(results_table(methods=("scratch", "transfer"), budgets=("4",)), version="v2", budget="4")
    assert [[bars.get_label() for bars in ax.containers] for ax in older.axes] == [["scratch", "transfer"]]


def write_repo(root: Path, results: pd.DataFrame, scores: pd.DataFrame) -> Path:
    """VersionN/transfer_pretrain_vN.yaml and its result folder with results.csv and scores.csv per version."""
    for version, rows in results.groupby("version"):
        folder = root / f"Version{version[1:]}"
        (folder / f"result_transfer_pretrain_{version}").mkdir(parents=True)
        (folder / f"transfer_pretrain_{version}.yaml").write_text(f"experiment:\n  version: {version}\n")
        rows.reindex(columns=RESULT_COLUMNS).to_csv(folder / f"result_transfer_pretrain_{version}" / "results.csv",
                                                    index=False)
        scores[scores["version"] == version].to_csv(
            folder / f"result_transfer_pretrain_{version}" / "scores.csv", index=False)
    return root


def test_write_report_answers_per_family(tmp_path, rng):
    results = results_table()
    repo = write_repo(tmp_path, results, scores_table(results[results["budget"] == "1"], rng))
    text = write_report(repo, n_boot=500).read_text()
    out = tmp_path / "report"
    written = pd.read_csv(out / "methods.csv", dtype={"budget": str})
    assert list(written.columns) == METHOD_TABLE_COLUMNS and len(written) == len(LEVEL) * 2 * len(BUDGETS)
    families = text.split("## Method families")[1].split("\n## ")[0]
    sentences = [line[2:] for line in families.splitlines() if line.startswith("- ")]
    assert sentences == [family_sentence(method_table(results, n_boot=500), family=f)
                         for f in ("autoencoder", "statistics", "embedding")]
    assert "| embed_knn | embedding | v4 | 4 | 4 | 3 | 0.830 | 0.415 | +0.230 [" in text
    assert "| scratch | autoencoder | v2, v4 | 1 | 1 | 3 | 0.550 |" in text  # shared by both versions: one row
    assert "### lw_transfer" in text and "### embed_finetune" in text
    # The synthetic worlds' evidence, each family's verdict with this run's own difference beside it.
    worlds = text.split("## Across synthetic worlds")[1].split("\n## ")[0]
    assert "worlds_evidence.csv" in worlds and "every world" in worlds
    for family in ("autoencoder", "statistics", "embedding"):
        assert f"| {family} | 4 clips |" in worlds, family
    assert "(embed_knn): beats it" in worlds.split("| embedding | 4 clips |")[1].splitlines()[0]  # this run, 4 clips
    pngs = {p.name for p in out.glob("*.png")}
    # ROC: the largest change at budget 1 is embed_zero_shot's on valve (0.17 and 0.12 + 0.01, over versions).
    assert {"auc_vs_budget.png", "v4_heatmap_transfer_minus_scratch.png", "roc_valve_id_00_1.png"} <= pngs
    assert len([p for p in pngs if "_machine_bars_" in p]) == 2 * len(BUDGETS)
    for png in pngs:
        assert mpimg.imread(out / png)[..., :3].std() > 0.05, png
        assert f"]({png})" in text


def test_write_report_with_scratch_only_and_no_budget_all(tmp_path):
    results = results_table(methods=("scratch",), budgets=("1", "2"), versions=("v2",))
    repo = write_repo(tmp_path, results, pd.DataFrame(columns=SCORE_COLUMNS))
    text = write_report(repo, n_boot=200).read_text()
    assert ("- Autoencoder family: no pretrained method was scored, so nothing is compared with its control "
            "scratch.") in text
    assert "roc_" not in text  # no clip scores: no ROC to draw
    assert {p.name for p in (tmp_path / "report").glob("*.png")} == {"auc_vs_budget.png"}
