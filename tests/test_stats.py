"""Statistics of the transfer comparison against hand-computed small examples and scipy."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from sklearn.metrics import roc_auc_score, roc_curve

from common.errors import MetricError
from common.report.stats import (COMPARE_COLUMNS, auc_interval, auc_intervals, averaged_roc, bootstrap_ci, by_source,
                          compare, flag_chance, flag_inverted, paired_table, paired_wilcoxon, roc_target)

MACHINES = [("fan", "id_00"), ("fan", "id_02"), ("pump", "id_00"), ("pump", "id_02"), ("valve", "id_00")]
SCRATCH = [0.60, 0.70, 0.55, 0.80, 0.65]
DELTAS = [0.10, 0.05, 0.00, -0.02, 0.07]  # mean 0.04; 3 improved, 1 worsened, 1 tied


def run(machine, method, *, auc, version="v1", source=None, budget="8", seed=0, pauc=None, clips=8):
    return {"version": version, "target_type": machine[0], "target_id": machine[1],
            "source": source or ("none" if method == "scratch" else "src"), "method": method, "budget": budget,
            "seed": seed, "auc": auc, "pauc": auc if pauc is None else pauc,
            "n_train_clips": 0 if method == "zero_shot" else clips, "n_eval_clips": 20}


@pytest.fixture
def five_targets() -> pd.DataFrame:
    rows = []
    for m, base, d in zip(MACHINES, SCRATCH, DELTAS):
        rows += [run(m, "scratch", auc=base), run(m, "transfer", auc=base + d), run(m, "zero_shot", auc=0.5)]
    return pd.DataFrame(rows)


def test_compare_on_hand_computed_example(five_targets):
    table = compare(five_targets, n_boot=5000)
    assert list(table.columns) == COMPARE_COLUMNS
    assert list(table["method"]) == ["zero_shot", "transfer"]
    row = table[table["method"] == "transfer"].iloc[0]
    assert row["n_targets"] == 5 and row["n_train_clips"] == 8
    assert row["delta_auc_mean"] == pytest.approx(0.04)
    assert row["auc_mean"] == pytest.approx(np.mean(SCRATCH) + 0.04)
    assert row["scratch_auc_mean"] == pytest.approx(np.mean(SCRATCH))
    assert (row["n_improved"], row["n_worsened"], row["n_tied"]) == (3, 1, 1)
    assert row["n_improved"] + row["n_worsened"] + row["n_tied"] == row["n_targets"]
    assert min(DELTAS) <= row["delta_auc_ci_low"] <= 0.04 <= row["delta_auc_ci_high"] <= max(DELTAS)
    transfer = np.add(SCRATCH, DELTAS)
    assert row["wilcoxon_p"] == sps.wilcoxon(transfer, SCRATCH).pvalue
    assert row["delta_pauc_mean"] == pytest.approx(0.04)  # pauc = auc in this example
    zero = table[table["method"] == "zero_shot"].iloc[0]
    assert zero["n_train_clips"] == 8  # the budget's clips (scratch's), not zero-shot's 0
    assert zero["delta_auc_mean"] == pytest.approx(0.5 - np.mean(SCRATCH))


def test_seeds_are_averaged_per_target_before_the_statistics():
    # One target, two seeds: +0.10 and -0.30 -> one target, worsened by 0.10 (not one better, one worse).
    m, other = MACHINES[0], MACHINES[1]
    rows = [run(m, "scratch", auc=0.6, seed=0), run(m, "transfer", auc=0.7, seed=0),
            run(m, "scratch", auc=0.8, seed=1), run(m, "transfer", auc=0.5, seed=1),
            run(other, "scratch", auc=0.6, seed=0), run(other, "transfer", auc=0.6, seed=0)]
    pairs = paired_table(pd.DataFrame(rows), method="transfer")
    first = pairs.iloc[0]
    assert len(pairs) == 2 and first["n_seeds"] == 2
    assert first["delta_auc"] == pytest.approx(-0.10) and first["auc"] == pytest.approx(0.6)
    row = compare(pd.DataFrame(rows), n_boot=200).query("method == 'transfer'").iloc[0]
    assert (row["n_targets"], row["n_improved"], row["n_worsened"], row["n_tied"], row["n_seeds"]) == (2, 0, 1, 1, 2)


def test_float_noise_counts_as_tied():
    m = MACHINES[0]
    rows = [run(m, "scratch", auc=0.73), run(m, "transfer", auc=0.7300000000000001)]
    row = compare(pd.DataFrame(rows), n_boot=100).query("method == 'transfer'").iloc[0]
    assert (row["n_improved"], row["n_worsened"], row["n_tied"]) == (0, 0, 1)


def test_sources_are_averaged_per_target_and_kept_apart_by_source():
    rows = []
    for m, base in zip(MACHINES[:3], (0.6, 0.7, 0.5)):
        rows += [run(m, "scratch", auc=base), run(m, "transfer", auc=base + 0.2, source="good"),
                 run(m, "transfer", auc=base - 0.1, source="bad")]
    results = pd.DataFrame(rows)
    row = compare(results, n_boot=200).query("method == 'transfer'").iloc[0]
    assert row["delta_auc_mean"] == pytest.approx(0.05) and row["n_sources"] == 2 and row["n_targets"] == 3
    per_source = by_source(results, n_boot=200).set_index("source")
    assert per_source.loc["good", "delta_auc_mean"] == pytest.approx(0.2)
    assert per_source.loc["bad", "delta_auc_mean"] == pytest.approx(-0.1)
    assert per_source.loc["bad", "n_worsened"] == 3
    assert by_source(results.query("source != 'bad'"), n_boot=200).empty  # one source per target: no table


def test_bootstrap_ci_known_values():
    # Means of two resampled values of [0, 1] are 0, 0.5 or 1 (p = 1/4, 1/2, 1/4): the 95 % interval is [0, 1].
    assert bootstrap_ci([0.0, 1.0], n_boot=20000) == (0.0, 1.0)
    assert bootstrap_ci([0.3, 0.3, 0.3]) == (0.3, 0.3)
    assert all(np.isnan(bootstrap_ci([0.3])))  # one value: no spread to resample
    assert all(np.isnan(bootstrap_ci([])))
    assert bootstrap_ci([0.1, 0.4, np.nan, 0.2]) == bootstrap_ci([0.1, 0.4, 0.2])


def test_bootstrap_ci_is_seeded_and_narrows_with_level(rng):
    x = rng.normal(0.05, 0.1, size=16)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(x, seed=3)
    low95, high95 = bootstrap_ci(x, level=0.95)
    low50, high50 = bootstrap_ci(x, level=0.5)
    assert low95 < low50 < x.mean() < high50 < high95


@pytest.mark.parametrize("kw, match", [({"n_boot": 0}, "n_boot=0"), ({"level": 1.0}, r"level in range \(0, 1\)")])
def test_bootstrap_ci_errors(kw, match):
    with pytest.raises(MetricError, match=match):
        bootstrap_ci([0.1, 0.2], **kw)


SCIPY = tuple(int(p) for p in __import__("scipy").__version__.split(".")[:2])
ASYMPTOTIC = "asymptotic" if SCIPY >= (1, 15) else "approx"


def test_paired_wilcoxon_equals_scipy(rng):
    a, b = rng.uniform(0.4, 0.9, 12), rng.uniform(0.4, 0.9, 12)
    assert paired_wilcoxon(a, b) == sps.wilcoxon(a, b, method="exact").pvalue
    if SCIPY >= (1, 15):  # the rule paired_wilcoxon names is scipy 1.15's "auto"
        assert paired_wilcoxon(a, b) == sps.wilcoxon(a, b).pvalue
    a[3] = np.nan  # that pair is dropped
    assert paired_wilcoxon(a, b) == sps.wilcoxon(np.delete(a, 3), np.delete(b, 3), method="exact").pvalue
    a, b = rng.uniform(0.4, 0.9, 60), rng.uniform(0.4, 0.9, 60)  # past 50 pairs: the normal approximation
    assert paired_wilcoxon(a, b) == sps.wilcoxon(a, b, method=ASYMPTOTIC).pvalue


def brute_force_wilcoxon(d: np.ndarray) -> float:
    """Two-sided p of the signed-rank sum over every one of the 2**n sign flips (zeros dropped, midranks)."""
    d = d[d != 0]
    ranks = sps.rankdata(np.abs(d))
    signs = (np.arange(2 ** len(d))[:, None] >> np.arange(len(d))) & 1
    null = signs @ ranks
    observed = ranks[d > 0].sum()
    tol = 1e-9 * max(observed, 1)
    return min(1.0, 2 * min(np.mean(null <= observed + tol), np.mean(null >= observed - tol)))


@pytest.mark.parametrize("n", [6, 13, 16])
def test_paired_wilcoxon_equals_scipy_with_ties_and_zeros(n, rng):
    # AUCs of 20 clips are multiples of 0.01: ties and zero differences are the rule, not the exception.
    a = np.round(rng.uniform(0.4, 0.9, n), 2)
    b = np.round(a + rng.choice([-0.05, -0.02, 0.0, 0.02, 0.05, 0.1], size=n), 2)
    d = np.round(a - b, 12)
    p = paired_wilcoxon(a, b)
    if n > 13:
        assert p == sps.wilcoxon(d, method=ASYMPTOTIC).pvalue
    else:  # every supported scipy: the exact sign-flip distribution, by definition and by scipy's own permutation
        assert p == pytest.approx(brute_force_wilcoxon(d), rel=1e-12)
        if SCIPY >= (1, 12):
            assert p == pytest.approx(sps.wilcoxon(d, method=sps.PermutationMethod()).pvalue, rel=1e-12)
    if SCIPY >= (1, 15):
        assert p == sps.wilcoxon(d).pvalue


def test_paired_wilcoxon_degenerate_cases():
    assert np.isnan(paired_wilcoxon([0.5], [0.6]))
    assert np.isnan(paired_wilcoxon([0.5, 0.7], [0.5, 0.7]))  # all differences zero
    assert np.isnan(paired_wilcoxon([0.73, 0.7], [0.7300000000000001, 0.7]))  # float noise is no difference
    with pytest.raises(MetricError, match="one length"):
        paired_wilcoxon([0.5, 0.6], [0.5])


def test_auc_interval_hand_computed():
    # pos = [0.3, 0.8], neg = [0.1, 0.5]: placements V10 = [0.5, 1], V01 = [1, 0.5]
    # -> AUC 0.75, var = 0.125 / 2 + 0.125 / 2 = 0.125.
    auc, low, high = auc_interval([0, 1, 0, 1], [0.1, 0.3, 0.5, 0.8])
    z = sps.norm.ppf(0.975)
    assert auc == 0.75
    assert low == pytest.approx(0.75 - z * np.sqrt(0.125)) and high == 1.0  # clipped at 1


def test_auc_interval_equals_delong_by_definition(rng):
    y = np.r_[np.zeros(15, int), np.ones(9, int)]
    s = np.round(rng.normal(size=24) + 0.7 * y, 1)  # rounded: ties count one half
    pos, neg = s[y == 1], s[y == 0]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    var = psi.mean(axis=1).var(ddof=1) / len(pos) + psi.mean(axis=0).var(ddof=1) / len(neg)
    auc, low, high = auc_interval(y, s, level=0.9)
    assert auc == pytest.approx(roc_auc_score(y, s))
    assert high - low == pytest.approx(2 * sps.norm.ppf(0.95) * np.sqrt(var))


def scores_of(name, method, y, s, *, version="v1", source="none"):
    return pd.DataFrame({"version": version, "target_type": name[0], "target_id": name[1], "source": source,
                         "method": method, "budget": "all", "seed": 0, "path": [f"{i}.wav" for i in range(len(y))],
                         "label": y, "score": s})


@pytest.fixture
def flag_scores(rng) -> pd.DataFrame:
    y = np.r_[np.zeros(30, int), np.ones(30, int)]
    inverted = -2.0 * y + rng.normal(size=60)  # anomalies score lower: AUC far below 0.5
    chance = rng.normal(size=60)
    chance_b = rng.normal(size=60)
    return pd.concat([
        scores_of(MACHINES[0], "scratch", y, inverted), scores_of(MACHINES[1], "scratch", y, chance),
        scores_of(MACHINES[0], "zero_shot", y, chance, source="src"),
        scores_of(MACHINES[1], "zero_shot", y, chance_b, source="src"),
    ], ignore_index=True)


def test_inverted_machine_is_flagged_and_chance_machine_is_not(flag_scores):
    flagged = flag_inverted(auc_intervals(flag_scores))
    assert len(flagged) == 1
    row = flagged.iloc[0]
    assert (row["target_type"], row["target_id"], row["method"]) == ("fan", "id_00", "scratch")
    assert row["auc"] < row["auc_ci_high"] < 0.5 and row["n_eval_clips"] == 60


def test_method_at_chance_everywhere_is_flagged(flag_scores):
    chance = flag_chance(auc_intervals(flag_scores))
    assert list(chance["method"]) == ["zero_shot"]  # scratch is inverted on one machine: not at chance there
    assert chance.iloc[0]["n_targets"] == 2


def test_averaged_roc_of_one_run_follows_sklearn(rng):
    y = np.r_[np.zeros(20, int), np.ones(10, int)]
    s = rng.normal(size=30) + y
    fpr, tpr, auc, n = averaged_roc(scores_of(MACHINES[0], "scratch", y, s), n_points=1001)
    ref_fpr, ref_tpr, _ = roc_curve(y, s)
    assert n == 1 and auc == pytest.approx(roc_auc_score(y, s))
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    for f, t in zip(ref_fpr, ref_tpr):  # at each corner of the ROC, the highest TPR reached
        assert tpr[np.searchsorted(fpr[1:], f) + 1] == ref_tpr[ref_fpr <= f + 1e-12].max()


def test_roc_target_is_the_largest_absolute_change(five_targets):
    assert roc_target(five_targets, method="transfer") == ("fan", "id_00", "8")  # |+0.10|
    # Any method: zero-shot's 0.5 against pump/id_02's scratch 0.80 is the largest change (|-0.30|).
    assert roc_target(five_targets) == ("pump", "id_02", "8")
    worse = five_targets.copy()
    worse.loc[(worse["target_id"] == "id_02") & (worse["target_type"] == "pump") & (worse["method"] == "transfer"),
              "auc"] = 0.4
    assert roc_target(worse, method="transfer") == ("pump", "id_02", "8")
    assert roc_target(five_targets[five_targets["method"] == "scratch"]) == ("fan", "id_00", "8")  # no pair: first


def test_errors_name_what_is_missing(five_targets, flag_scores):
    from common.errors import DataError

    with pytest.raises(DataError, match=r"results lacks the columns \['pauc'\]"):
        compare(five_targets.drop(columns="pauc"))
    with pytest.raises(DataError, match="scores lacks the columns"):
        auc_intervals(flag_scores.drop(columns="label"))
    with pytest.raises(DataError, match="no runs"):
        averaged_roc(flag_scores.iloc[:0])
    with pytest.raises(DataError, match="empty results"):
        roc_target(five_targets.iloc[:0])
    one_class = flag_scores[flag_scores["label"] == 0]
    with pytest.raises(MetricError, match=r"both normal \(0\) and anomalous \(1\).*fan/id_00 \(v1 scratch none\)"):
        auc_intervals(one_class)
    with pytest.raises(MetricError, match="level in range"):
        auc_interval([0, 1], [0.1, 0.2], level=95)
