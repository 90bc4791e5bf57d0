"""Statistics of the transfer comparison, numbers only: paired differences to scratch, intervals, tests, flags.

Everything here is a pure function of the result tables (``results.csv``: one row per run;
``scores.csv``: one row per evaluation clip per run) and returns numbers or DataFrames; the
sentences that state them are `common.report.writer`'s.

Pairing rule, used by every comparison: a method's runs are first averaged over sources (v1 and
v3 pretrain several source sets per target), paired with the scratch run of the same version,
target, budget and seed, and the paired values are then averaged over seeds. The unit of every
interval, count and test is therefore the *target machine*, never the single run.

Every method of `method_catalog.METHOD_NAMES` is compared with scratch (`compare`), and `method_table` also
pairs each with its family's control (`method_catalog.FAMILY_CONTROL`) and with scratch on every target clip.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
import pandas as pd
import scipy
from scipy import stats as sps
from sklearn.metrics import roc_curve

from common.errors import DataError, MetricError
from common.methods.catalog import BASELINE, FAMILY_CONTROL, METHOD_FAMILY, METHOD_NAMES, SOURCE_FREE_METHODS
from common.scoring.metrics import check_scores
from common.results import METHOD_ORDER, budget_key, version_key

COMPARED = tuple(m for m in METHOD_NAMES if m != BASELINE)  # the methods compared with scratch, in table order
PRETRAINED = tuple(m for m in METHOD_NAMES if m not in FAMILY_CONTROL.values())  # what each family's control faces
ALL_BUDGET = "all"  # the budget label of every target training clip
TARGET = ["target_type", "target_id"]
DECIMALS = 12  # differences are rounded to this: equal AUCs computed two ways differ by float noise only
CHANCE = 0.5
# scipy 1.15 renamed wilcoxon's normal approximation "approx" -> "asymptotic" (the old name warns, then goes).
_ASYMPTOTIC = "asymptotic" if tuple(int(p) for p in scipy.__version__.split(".")[:2]) >= (1, 15) else "approx"

COMPARE_COLUMNS = [
    "version", "method", "budget", "n_train_clips", "method_train_clips", "n_targets", "n_sources", "n_seeds",
    "auc_mean", "pauc_mean", "scratch_auc_mean", "scratch_pauc_mean",
    "delta_auc_mean", "delta_auc_ci_low", "delta_auc_ci_high", "n_improved", "n_worsened", "n_tied", "wilcoxon_p",
    "delta_pauc_mean", "delta_pauc_ci_low", "delta_pauc_ci_high", "wilcoxon_p_pauc",
]
INTERVAL_COLUMNS = ["version", "method", "budget", "target_type", "target_id", "source", "seed",
                    "n_eval_clips", "auc", "auc_ci_low", "auc_ci_high"]
CHANCE_COLUMNS = ["version", "method", "budget", "n_targets", "auc_min", "auc_max"]
RUN_KEY = ["version", "target_type", "target_id", "source", "method", "budget", "seed"]


def methods_in(methods: Iterable[str]) -> list[str]:
    """The distinct methods of `methods` in results order (`method_catalog.METHOD_NAMES`), unknown ones after, sorted."""
    present = set(methods)
    return [m for m in METHOD_NAMES if m in present] + sorted(present - set(METHOD_NAMES))


def zero_shot_methods(results: pd.DataFrame) -> set[str]:
    """Methods that train on no target clip (every row has ``n_train_clips == 0``): their rows repeat per budget."""
    clips = results.groupby("method")["n_train_clips"].max()
    return set(clips[clips == 0].index)


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise MetricError(f"Expected level in range (0, 1), got: {level!r}")


def _require(df: pd.DataFrame, columns: Sequence[str], *, name: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(f"{name} lacks the columns {missing}; it has {list(df.columns)}")


def bootstrap_ci(values, *, n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean.

    Parameters
    ----------
    values : array-like [shape=(n,)]
        One value per unit (here: per target machine). NaNs are dropped.
    n_boot : int > 0
        Number of resamples (with replacement, of size ``n``).
    level : float in (0, 1)
        Coverage of the interval, e.g. 0.95.
    seed : int
        Seed of the numpy Generator: the same inputs give the same interval.

    Returns
    -------
    low, high : float
        The ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the resampled means;
        ``(nan, nan)`` when fewer than two values remain, since one value has no spread to resample.

    Raises
    ------
    MetricError
        `n_boot` < 1 or `level` outside (0, 1).

    Examples
    --------
    >>> bootstrap_ci([0.1, 0.1, 0.1])
    (0.1, 0.1)
    """
    if n_boot < 1:
        raise MetricError(f"n_boot={n_boot} must be a positive integer")
    _check_level(level)
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, len(x), size=(n_boot, len(x)))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    # Quantiles of means can leave [min, max] by float rounding only; keep the interval honest.
    return (float(max(low, x.min())), float(min(high, x.max())))


def paired_wilcoxon(a, b) -> float:
    """Two-sided p-value of the Wilcoxon signed-rank test of the paired differences ``a - b``.

    The test of `scipy.stats.wilcoxon` with its default options (zero differences dropped,
    ``zero_method="wilcox"``; no continuity correction), on differences rounded to 12 decimals
    first, and with the null distribution that scipy >= 1.15's ``method="auto"`` picks, named
    explicitly so every supported scipy (>= 1.11, whose "auto" differs) gives the same p-value:

    - no zero and no tied absolute difference, n <= 50: ``method="exact"``;
    - zeros or ties, n <= 13: the exact permutation distribution over all ``2**n`` sign flips,
      which ``method=PermutationMethod()`` computes by calling the statistic once per flip
      (0.8 s at n = 13); here by `scipy.stats.permutation_test` with a vectorised statistic
      (0.02 s, the same p-value; tested against scipy and a brute-force enumeration);
    - otherwise the normal approximation (``"asymptotic"``, named ``"approx"`` before scipy 1.15).

    Parameters
    ----------
    a, b : array-like [shape=(n,)]
        Paired values (e.g. transfer and scratch AUC of the same targets). Pairs with a NaN are dropped.

    Returns
    -------
    p : float
        The two-sided p-value in [0, 1]; NaN when fewer than two pairs remain or every difference is
        zero, where the test has nothing to rank.

    Raises
    ------
    MetricError
        `a` and `b` differ in length.
    """
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise MetricError(f"paired values must have one length, got {a.shape} and {b.shape}")
    d = np.round(a - b, DECIMALS)  # float noise of equal values is a zero difference, as in the counts
    d = d[~np.isnan(d)]
    if len(d) < 2 or np.all(d == 0):
        return float("nan")
    nonzero = np.abs(d[d != 0])
    if len(nonzero) == len(d) and len(np.unique(nonzero)) == len(nonzero):
        return float(sps.wilcoxon(d, method="exact" if len(d) <= 50 else _ASYMPTOTIC).pvalue)
    if len(d) > 13:
        return float(sps.wilcoxon(d, method=_ASYMPTOTIC).pvalue)
    ranks = np.zeros(len(d))
    ranks[d != 0] = sps.rankdata(nonzero)
    return float(sps.permutation_test(
        (d,), lambda x, axis: np.sum((x > 0) * ranks, axis=axis), permutation_type="samples",
        vectorized=True, alternative="two-sided").pvalue)


def auc_interval(y_true, y_score, *, level: float = 0.95, name: str = "") -> tuple[float, float, float]:
    """ROC AUC with its DeLong confidence interval.

    DeLong et al. (1988) variance from the placement values of each class (computed from midranks,
    so ties count one half); the interval is ``auc ± z * sqrt(var)`` clipped to [0, 1]. With a
    perfect (or perfectly inverted) separation the variance is 0 and the interval is one point.

    Parameters
    ----------
    y_true : array-like [shape=(n,)]
        0 = normal, 1 = anomaly; both must be present.
    y_score : array-like [shape=(n,)]
        Finite anomaly scores (higher = more anomalous).
    level : float in (0, 1)
        Coverage of the interval.
    name : str
        Machine named in errors.

    Returns
    -------
    auc, low, high : float
        ``low``/``high`` are NaN when a class has fewer than two clips.

    Raises
    ------
    MetricError
        One class only, non-finite scores, length mismatch, or `level` outside (0, 1).

    Examples
    --------
    >>> auc_interval([0, 0, 1, 1], [0.1, 0.5, 0.3, 0.8])[0]
    0.75
    """
    _check_level(level)
    y_true, y_score = check_scores(y_true, y_score, name=name)
    pos, neg = y_score[y_true == 1], y_score[y_true == 0]
    m, n = len(pos), len(neg)
    ranks = sps.rankdata(np.concatenate([pos, neg]))
    # Placement values: share of the other class each clip outranks (Sun & Xu's fast DeLong).
    v10 = (ranks[:m] - sps.rankdata(pos)) / n
    v01 = 1 - (ranks[m:] - sps.rankdata(neg)) / m
    auc = float(v10.mean())
    if m < 2 or n < 2:
        return auc, float("nan"), float("nan")
    se = np.sqrt(v10.var(ddof=1) / m + v01.var(ddof=1) / n)
    z = sps.norm.ppf((1 + level) / 2)
    return auc, float(max(0.0, auc - z * se)), float(min(1.0, auc + z * se))


def paired_table(results: pd.DataFrame, *, method: str, baseline: str = BASELINE, baseline_budget: str | None = None,
                 by_source: bool = False) -> pd.DataFrame:
    """Per target: `method` and `baseline` AUC / pAUC and their difference, averaged as the module says.

    Parameters
    ----------
    results : pd.DataFrame
        Rows of ``results.csv`` (one or several versions).
    method, baseline : str
        Compared method and the method it is paired with (same version, target, budget, seed).
    baseline_budget : str, optional
        Pair every budget of `method` with the baseline at this one budget (e.g. ``"all"``) instead.
    by_source : bool
        Keep one row per source set instead of averaging over sources.

    Returns
    -------
    table : pd.DataFrame
        One row per version, [source,] budget and target with ``n_sources``, ``n_seeds`` (pairs
        averaged), ``n_train_clips`` (the target clips the baseline trained on), ``method_train_clips``
        (those of `method`: 0 for a zero-shot method), ``auc``, ``pauc``, ``base_auc``, ``base_pauc``,
        ``delta_auc`` and ``delta_pauc``. Targets without a baseline run of a seed lose that seed.
    """
    _require(results, ["version", *TARGET, "source", "method", "budget", "seed", "auc", "pauc", "n_train_clips"],
             name="results")
    seed_key = ["version", "budget", *TARGET, "seed"]
    keys = seed_key[:1] + (["source"] if by_source else []) + seed_key[1:]
    runs = results[results["method"] == method]
    mine = runs.groupby(keys, sort=False).agg(auc=("auc", "mean"), pauc=("pauc", "mean"),
                                             method_train_clips=("n_train_clips", "mean"),
                                             n_sources=("source", "nunique")).reset_index()
    base = results[results["method"] == baseline]
    on = seed_key
    if baseline_budget is not None:
        base = base[base["budget"].astype(str) == str(baseline_budget)]
        on = [k for k in seed_key if k != "budget"]
    # The budget's clip count comes from the baseline: zero-shot itself trains on none.
    base = base.groupby(on, sort=False).agg(base_auc=("auc", "mean"), base_pauc=("pauc", "mean"),
                                            n_train_clips=("n_train_clips", "mean")).reset_index()
    pairs = mine.merge(base, on=on, how="inner")
    pairs["delta_auc"] = pairs["auc"] - pairs["base_auc"]
    pairs["delta_pauc"] = pairs["pauc"] - pairs["base_pauc"]
    target_key = [k for k in keys if k != "seed"]
    values = ["n_train_clips", "method_train_clips", "auc", "pauc", "base_auc", "base_pauc", "delta_auc",
              "delta_pauc"]
    out = pairs.groupby(target_key, sort=False).agg(
        n_sources=("n_sources", "max"), n_seeds=("seed", "nunique"), **{v: (v, "mean") for v in values},
    ).reset_index()
    columns = target_key + ["n_sources", "n_seeds"] + values
    if out.empty:
        return pd.DataFrame(columns=columns)
    order = out.assign(_v=out["version"].map(version_key), _b=out["budget"].map(budget_key))
    return out.loc[order.sort_values(["_v", *(["source"] if by_source else []), "_b", *TARGET]).index, columns] \
        .reset_index(drop=True)


def _summarize_pairs(pairs: pd.DataFrame, *, n_boot: int, level: float, seed: int) -> dict:
    """The comparison.csv numbers of one group of per-target pairs."""
    d = np.round(pairs["delta_auc"].to_numpy(dtype=float), DECIMALS)
    d = d[~np.isnan(d)]
    low, high = bootstrap_ci(d, n_boot=n_boot, level=level, seed=seed)
    plow, phigh = bootstrap_ci(pairs["delta_pauc"], n_boot=n_boot, level=level, seed=seed)
    numbers = {
        "n_train_clips": float(pairs["n_train_clips"].mean()),
        "method_train_clips": float(pairs["method_train_clips"].mean()), "n_targets": len(d),
        "n_sources": int(pairs["n_sources"].max()), "n_seeds": int(pairs["n_seeds"].max()),
        "auc_mean": pairs["auc"].mean(), "pauc_mean": pairs["pauc"].mean(),
        "scratch_auc_mean": pairs["base_auc"].mean(), "scratch_pauc_mean": pairs["base_pauc"].mean(),
        "delta_auc_mean": float(d.mean()) if len(d) else float("nan"),
        "delta_auc_ci_low": low, "delta_auc_ci_high": high,
        "n_improved": int(np.sum(d > 0)), "n_worsened": int(np.sum(d < 0)), "n_tied": int(np.sum(d == 0)),
        "wilcoxon_p": paired_wilcoxon(pairs["auc"], pairs["base_auc"]),
        "delta_pauc_mean": pairs["delta_pauc"].mean(), "delta_pauc_ci_low": plow, "delta_pauc_ci_high": phigh,
        "wilcoxon_p_pauc": paired_wilcoxon(pairs["pauc"], pairs["base_pauc"]),
    }
    # Means of decimal AUCs carry float noise (a zero mean printed as 5e-18); p-values are left exact.
    return {k: round(v, DECIMALS) + 0.0 if isinstance(v, float) and not k.startswith("wilcoxon") else v
            for k, v in numbers.items()}


def compare(results: pd.DataFrame, *, n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The comparison table: each method against scratch, per version and budget, over targets.

    Parameters
    ----------
    results : pd.DataFrame
        Rows of ``results.csv`` (one or several versions).
    n_boot : int > 0
        Bootstrap resamples of the per-target differences.
    level : float in (0, 1)
        Coverage of the intervals.
    seed : int
        Seed of every bootstrap (each row is resampled with the same seed, so rows are reproducible).

    Returns
    -------
    comparison : pd.DataFrame [columns=COMPARE_COLUMNS]
        One row per version, method (those of `COMPARED` in `results`) and budget: means over targets,
        the mean paired difference to scratch (``delta_*``) with its bootstrap interval,
        how many targets improved / worsened / tied (``n_improved + n_worsened + n_tied ==
        n_targets``) and the Wilcoxon signed-rank p-value of the pairs.
    """
    rows = []
    for method in COMPARED:
        pairs = paired_table(results, method=method)
        for (version, budget), g in pairs.groupby(["version", "budget"], sort=False):
            rows.append({"version": version, "method": method, "budget": budget,
                         **_summarize_pairs(g, n_boot=n_boot, level=level, seed=seed)})
    return _ordered(pd.DataFrame(rows, columns=COMPARE_COLUMNS), [])


def multi_source_versions(results: pd.DataFrame) -> list[str]:
    """Versions in which some target is transferred from more than one source set (v1 and v3)."""
    return sorted({version for version, _ in multi_source_methods(results)}, key=version_key)


def multi_source_methods(results: pd.DataFrame) -> list[tuple[str, str]]:
    """(version, method) pairs where the method scores some target from more than one source set.

    Only pretrained methods (`PRETRAINED`) count, in version then results order.
    """
    runs = results[results["method"].isin(PRETRAINED)]
    counts = runs.groupby(["version", "method", *TARGET])["source"].nunique()
    found = counts[counts > 1].reset_index()[["version", "method"]].drop_duplicates()
    return sorted(map(tuple, found.to_numpy()), key=lambda vm: (version_key(vm[0]), METHOD_ORDER.get(vm[1], 99)))


def by_source(results: pd.DataFrame, *, n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The comparison table split by source set, for the versions with several sources per target.

    Parameters and numbers are those of `compare`, computed per source set instead of averaging
    over sources, so a reader sees which source helps. Versions with one source per target (v2, v4)
    are left out: there the source is the target's only one and `compare` already says it all; so
    are the methods without a source set (the family controls, sound_knn).

    Returns
    -------
    table : pd.DataFrame [columns=COMPARE_COLUMNS with ``source`` after ``method``]
    """
    columns = COMPARE_COLUMNS[:2] + ["source"] + COMPARE_COLUMNS[2:]
    keep = results[results["version"].isin(multi_source_versions(results))]
    rows = []
    for method in (m for m in COMPARED if m in PRETRAINED and m not in SOURCE_FREE_METHODS):
        pairs = paired_table(keep, method=method, by_source=True)
        for (version, source, budget), g in pairs.groupby(["version", "source", "budget"], sort=False):
            rows.append({"version": version, "method": method, "source": source, "budget": budget,
                         **_summarize_pairs(g, n_boot=n_boot, level=level, seed=seed)})
    return _ordered(pd.DataFrame(rows, columns=columns), ["source"])


# The method table: every method's means, and its paired difference to three baselines.

# Block -> (baseline, its budget): scratch at the same budget, the family's own control at the same budget,
# scratch trained on every target clip. None as baseline: the method's family control.
BLOCKS = {"scratch": (BASELINE, None), "control": (None, None), "scratch_all": (BASELINE, ALL_BUDGET)}
BLOCK_FIELDS = ["n_targets", "auc_mean", "pauc_mean", "delta_auc_mean", "delta_auc_ci_low", "delta_auc_ci_high",
                "wilcoxon_p", "delta_pauc_mean", "delta_pauc_ci_low", "delta_pauc_ci_high", "wilcoxon_p_pauc"]
_BASELINE_MEANS = {"auc_mean": "scratch_auc_mean", "pauc_mean": "scratch_pauc_mean"}  # `_summarize_pairs` names
METHOD_TABLE_COLUMNS = ["version", "family", "method", "control", "budget", "n_train_clips", "n_targets",
                        "n_sources", "n_seeds", "auc_mean", "pauc_mean",
                        *[f"{block}_{field}" for block in BLOCKS for field in BLOCK_FIELDS]]


def _own_means(results: pd.DataFrame) -> pd.DataFrame:
    """Per version, method and budget: the method's own means over targets (sources, then seeds averaged)."""
    key = ["version", "method", "budget", *TARGET]
    runs = results[results["method"].isin(METHOD_NAMES)]
    per_seed = runs.groupby(key + ["seed"], sort=False).agg(
        auc=("auc", "mean"), pauc=("pauc", "mean"), clips=("n_train_clips", "mean"),
        n_sources=("source", "nunique")).reset_index()
    per_target = per_seed.groupby(key, sort=False).agg(
        auc=("auc", "mean"), pauc=("pauc", "mean"), clips=("clips", "mean"), n_sources=("n_sources", "max"),
        n_seeds=("seed", "nunique")).reset_index()
    out = per_target.groupby(key[:3], sort=False).agg(
        n_train_clips=("clips", "mean"), n_targets=("auc", "size"), n_sources=("n_sources", "max"),
        n_seeds=("n_seeds", "max"), auc_mean=("auc", "mean"), pauc_mean=("pauc", "mean")).reset_index()
    return out.round({c: DECIMALS for c in ("n_train_clips", "auc_mean", "pauc_mean")})


def _block(results: pd.DataFrame, block: str, *, n_boot: int, level: float, seed: int) -> pd.DataFrame:
    """One baseline block of `method_table`: per version, method and budget, the `BLOCK_FIELDS` numbers."""
    columns = [f"{block}_{field}" for field in BLOCK_FIELDS]
    baseline, baseline_budget = BLOCKS[block]
    rows = []
    for method in (m for m in METHOD_NAMES if (results["method"] == m).any()):
        base = baseline or FAMILY_CONTROL[METHOD_FAMILY[method]]
        pairs = paired_table(results, method=method, baseline=base, baseline_budget=baseline_budget)
        for (version, budget), g in pairs.groupby(["version", "budget"], sort=False):
            if method == base and baseline_budget in (None, str(budget)):
                continue  # a run against itself
            numbers = _summarize_pairs(g, n_boot=n_boot, level=level, seed=seed)
            rows.append([version, method, budget, *[numbers[_BASELINE_MEANS.get(f, f)] for f in BLOCK_FIELDS]])
    return pd.DataFrame(rows, columns=["version", "method", "budget", *columns])


def method_table(results: pd.DataFrame, *, n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """The method x version x budget table: means, and paired differences to scratch and to the family control.

    Parameters
    ----------
    results : pd.DataFrame
        Rows of ``results.csv`` (one or several versions, any subset of `METHOD_NAMES`).
    n_boot, level, seed
        As in `compare`.

    Returns
    -------
    table : pd.DataFrame [columns=METHOD_TABLE_COLUMNS]
        One row per version, method and budget, in results order of the methods, then versions and budgets.
        ``auc_mean`` / ``pauc_mean`` are the method's own means over its targets and ``n_train_clips`` its
        own clips (0 for a zero-shot method, whose rows repeat for every budget). Each block of `BLOCKS`
        (``scratch_*``, ``control_*``, ``scratch_all_*``) pairs the method per target as `compare` does
        with: scratch at the same budget, the family's control (`method_catalog.FAMILY_CONTROL`) at the same
        budget, and scratch on every target clip (budget ``"all"``). A block is NaN where its baseline
        was not run, or is the row itself.
    """
    _require(results, ["version", *TARGET, "source", "method", "budget", "seed", "auc", "pauc", "n_train_clips"],
             name="results")
    table = _own_means(results)
    if table.empty:
        return pd.DataFrame(columns=METHOD_TABLE_COLUMNS)
    for block in BLOCKS:
        numbers = _block(results, block, n_boot=n_boot, level=level, seed=seed)
        table = table.merge(numbers, on=["version", "method", "budget"], how="left")
    table["family"] = table["method"].map(METHOD_FAMILY)
    table["control"] = table["family"].map(FAMILY_CONTROL)
    order = table.assign(_m=table["method"].map(METHOD_ORDER), _v=table["version"].map(version_key),
                         _b=table["budget"].map(budget_key))
    return table.loc[order.sort_values(["_m", "_v", "_b"]).index, METHOD_TABLE_COLUMNS].reset_index(drop=True)


def _ordered(table: pd.DataFrame, extra: list[str]) -> pd.DataFrame:
    if table.empty:
        return table
    order = table.assign(_v=table["version"].map(version_key), _m=table["method"].map(METHOD_ORDER),
                         _b=table["budget"].map(budget_key))
    return table.loc[order.sort_values(["_v", "_m", *extra, "_b"]).index].reset_index(drop=True)


def auc_intervals(scores: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """AUC and DeLong interval of every run in ``scores.csv`` (see `auc_interval`).

    Returns
    -------
    intervals : pd.DataFrame [columns=INTERVAL_COLUMNS]
        One row per run (version, target, source, method, budget, seed).
    """
    _require(scores, RUN_KEY + ["label", "score"], name="scores")
    rows = []
    for key, g in scores.groupby(RUN_KEY, sort=False):
        run = dict(zip(RUN_KEY, key))
        name = f"{run['target_type']}/{run['target_id']} ({run['version']} {run['method']} {run['source']})"
        auc, low, high = auc_interval(g["label"].to_numpy(), g["score"].to_numpy(), level=level, name=name)
        rows.append({**run, "n_eval_clips": len(g), "auc": auc, "auc_ci_low": low, "auc_ci_high": high})
    return pd.DataFrame(rows, columns=INTERVAL_COLUMNS)


def flag_inverted(intervals: pd.DataFrame) -> pd.DataFrame:
    """Runs whose AUC is below chance with an interval that excludes 0.5: the score is inverted there.

    Parameters
    ----------
    intervals : pd.DataFrame [columns=INTERVAL_COLUMNS]
        `auc_intervals` of ``scores.csv`` (DeLong intervals over each run's evaluation clips).

    Returns
    -------
    flagged : pd.DataFrame [columns=INTERVAL_COLUMNS]
        The runs with ``auc_ci_high < 0.5``.
    """
    return intervals[intervals["auc_ci_high"] < CHANCE].reset_index(drop=True)


def flag_chance(intervals: pd.DataFrame) -> pd.DataFrame:
    """Methods (per version and budget) indistinguishable from chance on every target machine.

    A target counts as at chance when the DeLong interval of each of its runs (sources, seeds)
    contains 0.5; a run without an interval (a class with fewer than two clips) never does, so
    missing information is not mistaken for chance.

    Parameters
    ----------
    intervals : pd.DataFrame [columns=INTERVAL_COLUMNS]
        `auc_intervals` of ``scores.csv``.

    Returns
    -------
    flagged : pd.DataFrame [columns=CHANCE_COLUMNS]
        One row per flagged (version, method, budget) with its number of targets and AUC range.
    """
    iv = intervals.assign(_chance=(intervals["auc_ci_low"] <= CHANCE) & (intervals["auc_ci_high"] >= CHANCE))
    rows = []
    for (version, method, budget), g in iv.groupby(["version", "method", "budget"], sort=False):
        per_target = g.groupby(TARGET)["_chance"].all()
        if per_target.all():
            rows.append({"version": version, "method": method, "budget": budget, "n_targets": len(per_target),
                         "auc_min": g["auc"].min(), "auc_max": g["auc"].max()})
    return _ordered(pd.DataFrame(rows, columns=CHANCE_COLUMNS), [])


def averaged_roc(scores: pd.DataFrame, *, n_points: int = 201) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Vertically averaged ROC curve of the runs in `scores` (Fawcett 2006, section 8.1).

    Each run's true positive rate is read at a common grid of false positive rates (the highest
    TPR reached at or below each FPR) and averaged over runs, e.g. over sources and seeds.

    Returns
    -------
    fpr, tpr : np.ndarray [shape=(n_points + 1,)]
        The curve, starting at (0, 0).
    auc_mean : float
        Mean AUC of the runs.
    n_runs : int
    """
    _require(scores, RUN_KEY + ["label", "score"], name="scores")
    grid = np.linspace(0, 1, n_points)
    tprs, aucs = [], []
    for _, g in scores.groupby(RUN_KEY, sort=False):
        y_true, y_score = check_scores(g["label"].to_numpy(), g["score"].to_numpy())
        fpr, tpr, _ = roc_curve(y_true, y_score)
        tprs.append(tpr[np.searchsorted(fpr, grid, side="right") - 1])
        aucs.append(auc_interval(y_true, y_score)[0])
    if not tprs:
        raise DataError("averaged_roc got no runs: the scores selection is empty")
    return np.r_[0.0, grid], np.r_[0.0, np.mean(tprs, axis=0)], float(np.mean(aucs)), len(tprs)


def roc_target(results: pd.DataFrame, *, method: str | None = None) -> tuple[str, str, str]:
    """The target whose ROC the report shows: largest |method - scratch| AUC at the smallest budget.

    The per-target difference is averaged over versions, so the chosen machine is where a method
    changes most, in either direction; with `method` None, the largest change of any method compared
    with scratch. Without such runs, the first scratch target is used.

    Returns
    -------
    target_type, target_id, budget : str
    """
    if results.empty:
        raise DataError("roc_target got an empty results table")
    budget = min(results["budget"].astype(str).unique(), key=budget_key)
    at = results[results["budget"].astype(str) == budget]
    changes = []
    for m in [method] if method else COMPARED:
        pairs = paired_table(at, method=m)
        if len(pairs):
            changes.append(pairs.groupby(TARGET)["delta_auc"].mean().abs())
    if not changes:
        first = at.sort_values(TARGET).iloc[0]
        return str(first["target_type"]), str(first["target_id"]), budget
    target_type, target_id = pd.concat(changes, axis=1).max(axis=1).sort_index().idxmax()
    return str(target_type), str(target_id), budget
