"""The cross-version report in words and files: read every version's results, write ``report/``.

Each version's results are read from the ``output.result_dir`` of its transfer YAML
(`common.results.collect`). ``write_report(repo)`` writes, into ``repo/report/`` (or `out`):

- ``methods.csv``: the method x version x budget table: means, and the paired difference to scratch, to
  the method's family control and to scratch on every target clip (`stats.method_table`);
- ``comparison.csv``: each method against scratch per version and budget (`stats.compare`);
- ``by_source.csv``: the same per source set, for versions with several sources per target;
- ``inverted.csv`` / ``chance.csv``: runs with an inverted score and methods at chance everywhere;
- ``official.csv`` (DCASE roots only): the year's official score per version, method and budget, in percent,
  beside the published scores of the same formula in report.md (`report_official`);
- PNG figures (`plots`) and ``report.md``, which embeds them with one sentence per method family
  (`family_sentence`) and one per method and version (`version_sentence`).

Every file is written atomically, under the report folder only: the result folders are read, never
written (they may be read-only archives), and not while a run writes one (`common.lock.no_writer`).
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from common.report import plots
from common.errors import DataError
from common.report.hindsight import SELECTED, hindsight_summary, hindsight_table
from common.io import atomic_write, atomic_write_text
from common.data.names import random_dir
from common.lock import no_writer
from common.methods.catalog import BASELINE, FAMILY_CONTROL, METHOD_FAMILY, SOURCE_FREE_METHODS
from common.report.official import (PUBLISHED_SENTENCE, formula_sentence, official_table, published_shown, shown_table,
                              v2_note)
from common.results import (RESULT_NEEDS, _read_numeric, budget_key, collect, result_dir, result_dirs,
                      version_key)
from common.report.worlds import read_evidence, run_differences, worlds_section
from common.report.stats import (ALL_BUDGET, auc_intervals, by_source, compare, flag_chance, flag_inverted, method_table,
                    methods_in, multi_source_methods, roc_target)

MAX_FLAG_ROWS = 40  # longer flag tables are cut in report.md; the CSV beside it has every row
SENTENCE_BUDGET = "4"  # the budget a family sentence speaks of, when it was run (else the smallest)
DPI = 110


def _save_png(fig: Figure, path: Path) -> Path:
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=DPI))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(text))


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def _p(value: float) -> str:
    if pd.isna(value):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.2g}"


def _ci(mean: float, low: float, high: float) -> str:
    if pd.isna(mean):
        return "–"
    interval = "" if pd.isna(low) else f" [{low:+.3f}, {high:+.3f}]"
    return f"{mean:+.3f}{interval}"


# Sentences: a comparison row in words

def _fmt_p(p: float) -> str:
    if np.isnan(p):
        return "no Wilcoxon p (fewer than two non-tied machines)"
    return "Wilcoxon p < 0.001" if p < 0.001 else f"Wilcoxon p = {p:.2g}"


def _context(row) -> str:
    clips = "" if pd.isna(row["n_train_clips"]) else f", {row['n_train_clips']:.0f} training clips"
    against = "scratch at " if row.get("method_train_clips") == 0 else ""  # a zero-shot method trains on none
    return f"{against}budget {row['budget']}{clips}"


def verdict_clause(row) -> str:
    """The words of one comparison row, e.g. ``"transfer beat scratch on 11 of 16 machines (budget 8, ...), ..."``.

    A direction is stated only when the bootstrap interval of the mean difference excludes 0;
    otherwise the clause says "no clear difference from scratch".
    """
    name = str(row["method"]).replace("_", "-")
    n, up, down = int(row["n_targets"]), int(row["n_improved"]), int(row["n_worsened"])
    mean, low, high = row["delta_auc_mean"], row["delta_auc_ci_low"], row["delta_auc_ci_high"]
    where = _context(row)
    if n == 0:
        return f"{name} has no machine paired with scratch ({where})"
    if np.isnan(low):
        return f"{name} has only {n} machine paired with scratch ({where}), too few for an interval: " \
               f"mean {mean:+.3f} AUC, no claim is made"
    numbers = f"mean {mean:+.3f} AUC, 95 % CI [{low:.3f}, {high:.3f}], {_fmt_p(row['wilcoxon_p'])}"
    if low > 0:
        return f"{name} beat scratch on {up} of {n} machines ({where}), {numbers}"
    if high < 0:
        return f"{name} was worse than scratch on {down} of {n} machines ({where}), {numbers}"
    return f"{name} showed no clear difference from scratch ({where}; better on {up}, worse on {down} of {n} " \
           f"machines, {numbers})"


def verdict(row) -> str:
    """One sentence stating a comparison row in words.

    Parameters
    ----------
    row : Mapping or pd.Series
        A row of `compare`.

    Returns
    -------
    sentence : str
        E.g. ``"v2: transfer beat scratch on 11 of 16 machines (budget all, 20 training clips), mean +0.040
        AUC, 95 % CI [0.010, 0.070], Wilcoxon p = 0.01."``; "no clear difference" whenever the interval
        contains 0 (see `verdict_clause`).
    """
    return f"{row['version']}: {verdict_clause(row)}."


def version_sentence(comparison: pd.DataFrame, *, version: str, method: str) -> str:
    """One sentence for one version and method: the `verdict` clauses of its budgets joined by semicolons.

    Returns
    -------
    sentence : str
        A note when the version has no such rows.
    """
    rows = comparison[(comparison["version"] == version) & (comparison["method"] == method)]
    if rows.empty:
        return f"{version}: no {method.replace('_', '-')} results."
    return f"{version}: " + "; ".join(verdict_clause(r) for _, r in rows.iterrows()) + "."


# Family sentences: the best pretrained method of a family against its control, in words

def sentence_budget(budgets: Iterable[str], *, preferred: str = SENTENCE_BUDGET) -> str:
    """The budget a family sentence speaks of: `preferred` when present, else the smallest clip count, else "all".

    Raises
    ------
    DataError
        `budgets` is empty.
    """
    found = sorted({str(b) for b in budgets}, key=budget_key)
    if not found:
        raise DataError("sentence_budget got no budget")
    return preferred if preferred in found else found[0]


def _delta_words(row, block: str) -> str:
    """``"+0.060 [+0.020, +0.100], p = 0.01"``: a block's mean AUC difference, its interval and Wilcoxon p."""
    low, high, p = row[f"{block}_delta_auc_ci_low"], row[f"{block}_delta_auc_ci_high"], row[f"{block}_wilcoxon_p"]
    interval = "" if pd.isna(low) else f" [{low:+.3f}, {high:+.3f}]"
    test = "no p" if pd.isna(p) else ("p < 0.001" if p < 0.001 else f"p = {p:.2g}")
    return f"{row[f'{block}_delta_auc_mean']:+.3f}{interval}, {test}"


def _control_verdict(row) -> str:
    """Whether the row beats its family control: stated only when the interval excludes 0."""
    control = row["control"]
    if pd.isna(row["control_delta_auc_mean"]):
        return f"; its control {control} was not scored at this budget"
    low, high = row["control_delta_auc_ci_low"], row["control_delta_auc_ci_high"]
    if pd.isna(low):
        return f"; too few machines for an interval, so no claim is made against {control}"
    if low > 0:
        return f"; it beats its control {control}"
    if high < 0:
        return f"; it does not beat its control {control}: it is worse"
    return f"; it does not clearly beat its control {control} (the interval contains 0)"


def family_sentence(methods: pd.DataFrame, *, family: str, budget: str = SENTENCE_BUDGET) -> str:
    """One sentence for a method family: its best pretrained method against the family's control.

    The best is the (method, version) with the highest mean AUC at `budget` (else the smallest budget
    run, `sentence_budget`), compared with its control at that budget and with scratch on every target
    clip (when the budget "all" was run). A zero-shot method (no target clip) is named as such: its
    result is the same at every budget, so no budget effect is claimed for it.

    Parameters
    ----------
    methods : pd.DataFrame [columns=stats.METHOD_TABLE_COLUMNS]
        `stats.method_table` of the results.
    family : str
        A family of `common.methods.catalog.FAMILY_CONTROL`.

    Returns
    -------
    sentence : str
        E.g. ``"<Family> family: with 4 target clips, <method> (v4) reaches 0.830 mean AUC against 0.770
        for its no-pretraining control <control> (+0.060 [+0.020, +0.100], p = 0.01) and 0.620 for the
        autoencoder trained from scratch on all target clips (+0.210 [...], p = ...); it beats its control."``
    """
    control, title = FAMILY_CONTROL[family], f"{family.replace('_', ' ').capitalize()} family"
    rows = methods[(methods["family"] == family) & (methods["method"] != control)]
    if rows.empty:
        return f"{title}: no pretrained method was scored, so nothing is compared with its control {control}."
    b = sentence_budget(rows["budget"], preferred=budget)
    at = rows[rows["budget"].astype(str) == b]
    best = at.loc[at["auc_mean"].idxmax()] if at["auc_mean"].notna().any() else at.iloc[0]
    clips = "all target clips" if b == ALL_BUDGET else f"{b} target clip{'' if b == '1' else 's'}"
    when = "the same in every version" if best["method"] in SOURCE_FREE_METHODS else best["version"]
    who, auc = f"{best['method']} ({when})", f"{best['auc_mean']:.3f} mean AUC"
    if best["n_train_clips"] == 0:
        lead = (f"{title}: at budget {b}, the best pretrained method is {who}, which uses no target clip (the same "
                f"result at every budget): {auc}")
        mine = f"its no-pretraining control {control} trained on {clips}"
    else:
        lead, mine = f"{title}: with {clips}, {who} reaches {auc}", f"its no-pretraining control {control}"
    against = []
    if pd.notna(best["control_delta_auc_mean"]):
        against.append(f"{best['control_auc_mean']:.3f} for {mine} ({_delta_words(best, 'control')})")
    if pd.notna(best["scratch_all_delta_auc_mean"]) and not (control == BASELINE and b == ALL_BUDGET):
        against.append(f"{best['scratch_all_auc_mean']:.3f} for the autoencoder trained from scratch on all "
                       f"target clips ({_delta_words(best, 'scratch_all')})")
    return lead + (" against " + " and ".join(against) if against else "") + _control_verdict(best) + "."


def markdown_table(table: pd.DataFrame) -> str:
    """A DataFrame as a GitHub markdown table (cells formatted by `_fmt`)."""
    if table.empty:
        return "_(no rows)_\n"
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def _readable(comparison: pd.DataFrame, extra: Iterable[str] = ()) -> pd.DataFrame:
    """The columns of a comparison table a reader needs, formatted for report.md."""
    c = comparison
    return pd.DataFrame({
        "version": c["version"], "method": c["method"], **{k: c[k] for k in extra}, "budget": c["budget"],
        "clips": c["n_train_clips"].map(lambda x: f"{x:.0f}"), "machines": c["n_targets"],
        "AUC": c["auc_mean"], "scratch AUC": c["scratch_auc_mean"],
        "Δ AUC [95 % CI]": [_ci(*r) for r in zip(c["delta_auc_mean"], c["delta_auc_ci_low"], c["delta_auc_ci_high"])],
        "better / worse / tied": [f"{a} / {b} / {t}" for a, b, t in zip(c["n_improved"], c["n_worsened"], c["n_tied"])],
        "p": c["wilcoxon_p"].map(_p),
        "Δ pAUC [95 % CI]": [_ci(*r) for r in zip(c["delta_pauc_mean"], c["delta_pauc_ci_low"],
                                                  c["delta_pauc_ci_high"])],
        "p (pAUC)": c["wilcoxon_p_pauc"].map(_p),
    })


def _method_rows(methods: pd.DataFrame, pct: str) -> pd.DataFrame:
    """The method table (`stats.method_table`) formatted for report.md; rows equal in every version merged."""
    m = methods

    def delta(block: str) -> list[str]:
        return [_ci(*r) for r in zip(m[f"{block}_delta_auc_mean"], m[f"{block}_delta_auc_ci_low"],
                                     m[f"{block}_delta_auc_ci_high"])]

    table = pd.DataFrame({
        "method": m["method"], "family": m["family"], "version": m["version"], "budget": m["budget"],
        "clips": m["n_train_clips"].map(lambda x: f"{x:.0f}"), "machines": m["n_targets"],
        "AUC": m["auc_mean"], "pAUC": m["pauc_mean"],
        f"Δ AUC vs scratch [{pct} CI]": delta("scratch"), "p (scratch)": m["scratch_wilcoxon_p"].map(_p),
        f"Δ AUC vs family control [{pct} CI]": delta("control"), "p (control)": m["control_wilcoxon_p"].map(_p),
        f"Δ AUC vs scratch on all clips [{pct} CI]": delta("scratch_all"),
        "p (scratch, all)": m["scratch_all_wilcoxon_p"].map(_p),
    })
    return _merge_over(table, ["version"])


def _merge_over(table: pd.DataFrame, over: list[str]) -> pd.DataFrame:
    """Rows equal except in `over` (scratch shared by versions, zero-shot by budgets) as one row.

    One column at a time, so a merged row always stands for every combination of the values it lists.
    """
    for column in over:
        if table.empty:
            return table
        keys = [c for c in table.columns if c != column]
        rounded = table.assign(**{c: table[c].round(6) for c in keys if table[c].dtype.kind == "f"})
        merged = rounded.groupby(keys, sort=False, dropna=False)[column].agg(
            lambda s: ", ".join(sorted(map(str, s.unique()), key=lambda x: (len(x), x))))
        table = merged.reset_index()[list(table.columns)]
    return table


def _flags_md(inverted: pd.DataFrame, chance: pd.DataFrame, *, n_runs: int, level: float) -> list[str]:
    """The "Read this first" section: inverted scores and methods at chance on every machine."""
    pct = f"{level:.0%}".replace("%", " %")
    lines = []
    if len(inverted):
        shown = _merge_over(inverted, ["version", "budget", "seed"])
        lines += [
            f"**Inverted scores on {shown[['target_type', 'target_id']].drop_duplicates().shape[0]} machine(s).** "
            f"These runs have an AUC below 0.5 whose {pct} DeLong interval over the evaluation clips excludes 0.5: "
            "the anomaly score ranks normal clips above anomalous ones there, so the low AUC is not \"weak\" but "
            f"inverted (`inverted.csv`). Of the {n_runs} distinct runs checked (a run shared by versions, budgets "
            f"or seeds counted once), about {n_runs * (1 - level) / 2:.1f} would be flagged by chance alone if every "
            "score were at chance: a flag repeated over seeds or versions is real, a single one may not be.", "",
        ]
        table = shown.assign(machine=shown["target_type"] + "/" + shown["target_id"],
                             **{"AUC [CI]": [f"{a:.2f} [{lo:.2f}, {hi:.2f}]" for a, lo, hi in
                                             zip(shown["auc"], shown["auc_ci_low"], shown["auc_ci_high"])]})
        table = table[["machine", "method", "source", "version", "budget", "seed", "n_eval_clips", "AUC [CI]"]]
        lines.append(markdown_table(table.head(MAX_FLAG_ROWS)))
        if len(table) > MAX_FLAG_ROWS:
            lines.append(f"… and {len(table) - MAX_FLAG_ROWS} more rows in `inverted.csv`.\n")
    else:
        lines += [f"No run has an AUC below 0.5 with a {pct} interval excluding 0.5 (no inverted score).", ""]
    if len(chance):
        shown = _merge_over(chance, ["version", "budget"])
        lines += [
            "**At chance on every machine.** For these methods the interval of every machine's AUC contains 0.5 "
            "(`chance.csv`); with few evaluation clips the intervals are wide, so this means *indistinguishable "
            "from chance*, not proven useless:", "",
        ]
        lines += [f"- {r.method.replace('_', '-')} of {r.version} at budget {r.budget}: all {r.n_targets} machines, "
                  f"AUC {r.auc_min:.2f}–{r.auc_max:.2f}." for r in shown.itertuples()]
        lines.append("")
    else:
        lines += ["No method is at chance on every machine.", ""]
    return lines


def _overview(results: pd.DataFrame) -> str:
    versions = sorted(results["version"].unique(), key=version_key)
    budgets = sorted(results["budget"].unique(), key=budget_key)
    seeds = sorted(int(s) for s in results["seed"].dropna().unique())
    n = results[["target_type", "target_id"]].drop_duplicates().shape[0]
    return (f"Read {len(versions)} version(s) ({', '.join(versions)}): {n} target machines, "
            f"budgets {', '.join(budgets)} (training clips of the target), seeds {', '.join(map(str, seeds))}.")


def _figures(results: pd.DataFrame, scores: pd.DataFrame) -> list[tuple[str, Figure, str]]:
    """Every report figure as (file name, figure, caption)."""
    versions = sorted(results["version"].unique(), key=version_key)
    budgets = sorted(results["budget"].unique(), key=budget_key)
    figures = [("auc_vs_budget.png", plots.auc_vs_budget(results),
                "Mean AUC versus target budget, one line per method, one panel per version")]
    for v, method in multi_source_methods(results):
        control = FAMILY_CONTROL[METHOD_FAMILY[method]]
        if ((results["version"] == v) & (results["method"] == control)).any():
            figures.append((f"{v}_heatmap_{method}_minus_{control}.png",
                            plots.source_heatmap(results, version=v, method=method),
                            f"{v}: {method} minus {control} AUC by source and target type"))
    for v in versions:
        for b in budgets:
            sel = results[(results["version"] == v) & (results["budget"] == b)]
            if (sel["method"] != BASELINE).any():
                figures.append((f"{v}_machine_bars_{_safe(b)}.png", plots.machine_bars(results, version=v, budget=b),
                                f"{v}: every method per machine, budget {b}"))
    if not scores.empty:
        kind, ident, budget = roc_target(results)
        where = (scores["target_type"] == kind) & (scores["target_id"] == ident) & (scores["budget"] == budget)
        if where.any():
            figures.append((f"roc_{_safe(kind)}_{_safe(ident)}_{_safe(budget)}.png",
                            plots.roc_curves(scores, target_type=kind, target_id=ident, budget=budget),
                            f"ROC of {kind}/{ident} at budget {budget}: the machine where a method changes the AUC "
                            "most against scratch (largest |method − scratch|, averaged over versions) at the "
                            "smallest budget; curves averaged over sources and seeds"))
    return figures


def _image(name: str, caption: str) -> list[str]:
    return [f"![{caption}]({name})", ""]


def _families_section(results: pd.DataFrame, methods: pd.DataFrame) -> list[str]:
    """The report.md lines with one `family_sentence` per family that has a run."""
    families = dict.fromkeys(METHOD_FAMILY[m] for m in methods_in(results["method"]) if m in METHOD_FAMILY)
    controls = ", ".join(f"{family}: {FAMILY_CONTROL[family]}" for family in families)
    return ["## Method families", "",
            "Each family's best pretrained method against the family's own control, the same scoring without "
            f"pretraining ({controls}), paired per target, budget and seed, and against the autoencoder trained "
            "from scratch on all target clips (Δ AUC [interval], Wilcoxon p).", "",
            *[f"- {family_sentence(methods, family=family)}" for family in families], ""]


def _methods_section(methods: pd.DataFrame, pct: str) -> list[str]:
    """The method x version x budget table of report.md."""
    return ["## Methods by version and budget (`methods.csv`)", "",
            "Means over target machines (sources, then seeds averaged per target). Δ = method − baseline, paired "
            "per target with scratch at the same budget, with the method's family control at the same budget, "
            "and with scratch trained on all target clips (budget all); p = Wilcoxon signed-rank. A method with "
            "0 clips is zero-shot: its row repeats at every budget and only its baselines change. Rows equal in "
            "every version are shown once; `methods.csv` also has the pAUC differences.", "",
            markdown_table(_method_rows(methods, pct))]


def _verdicts_section(comparison: pd.DataFrame, versions: list[str]) -> list[str]:
    """One `version_sentence` per compared method and version."""
    lines = ["## Each method versus scratch, per version (`comparison.csv`)", ""]
    for method in methods_in(comparison["method"]):
        lines += [f"### {method}", "", *[f"- {version_sentence(comparison, version=v, method=method)}"
                                         for v in versions], ""]
    return lines


def _sources_section(sources: pd.DataFrame, images: dict[str, str]) -> list[str]:
    """Which source set helps: the by-source table at the sentence budget and the heatmaps."""
    heatmaps = [line for name, caption in images.items() if "_heatmap_" in name for line in _image(name, caption)]
    if sources.empty:
        return []
    budget = sentence_budget(sources["budget"])
    versions = sorted(sources["version"].unique(), key=version_key)
    which = f"Versions {', '.join(versions)} pretrain" if len(versions) > 1 else f"Version {versions[0]} pretrains"
    return ["## Which source helps (`by_source.csv`)", "",
            f"{which} each target on several source sets; here each pretrained method of "
            f"each source set is compared with scratch on the targets it serves, at budget {budget} (every budget "
            "in `by_source.csv`). The heatmaps compare each method with its family control at every budget.", "",
            markdown_table(_readable(sources[sources["budget"].astype(str) == budget], extra=["source"])), "",
            *heatmaps]


def _official_section(results: pd.DataFrame, official: pd.DataFrame) -> list[str]:
    """The DCASE official scores (`official.csv`) and, per formula, the published scores of the same formula."""
    if official.empty:
        return []
    lines = ["## DCASE official scores (`official.csv`)", ""]
    formulas = list(dict.fromkeys(official["official_formula"]))
    for formula in formulas:
        rows = official[official["official_formula"] == formula]
        note = v2_note(results, formula)
        lines += [*([f"### Formula {formula}", ""] if len(formulas) > 1 else []), formula_sentence(formula), "",
                  markdown_table(shown_table(rows)), *([note, ""] if note else []),
                  PUBLISHED_SENTENCE, "", markdown_table(published_shown(formula))]
    return lines


def _hindsight_section(summary: pd.DataFrame) -> list[str]:
    """Version5 against the best and worst fixed version per target, and against k random sources."""
    if summary.empty:
        return []
    shown = summary.assign(
        regret=[_ci(m, lo, hi) for m, lo, hi in summary[["regret_mean", "regret_ci_low", "regret_ci_high"]].to_numpy()],
        v5_minus_random=[_ci(m, lo, hi) for m, lo, hi in
                         summary[["v5_minus_random_mean", "v5_minus_random_ci_low", "v5_minus_random_ci_high"]].to_numpy()])
    shown = shown[["method", "budget", "n_targets", "v5_auc", "best_fixed_auc", "worst_fixed_auc", "random_auc",
                   "regret", "v5_minus_random", "n_v5_at_least_random"]]
    return ["## Version5 in hindsight (`hindsight.csv`, `hindsight_summary.csv`)", "",
            "v5 pretrains on the `experiment.sources_k` machines most similar to each target's budget clips. Per "
            "target, its AUC is set beside the best and the worst fixed version (v1-v4) *for that target*, known "
            "only after running them all, and beside k random machines drawn with the same seeds "
            "(`experiment.selection: random`; `random_auc` is blank when that run is missing). regret = best fixed "
            "- v5 (0: v5 matched the best rule); means over targets with bootstrap intervals.", "",
            markdown_table(shown), ""]


def hindsight_tables(repo: Path, results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``hindsight.csv`` and ``hindsight_summary.csv`` where v5 and a fixed version have results (else none)."""
    if SELECTED not in set(results["version"]):
        return {}
    random_csv = random_dir(result_dir(repo, SELECTED)) / "results.csv"
    random = _read_numeric(random_csv, RESULT_NEEDS) if random_csv.is_file() else None
    table = hindsight_table(results, random)
    return {"hindsight.csv": table, "hindsight_summary.csv": hindsight_summary(table)} if not table.empty else {}


def _notes(*, n_boot: int, level: float, seed: int) -> list[str]:
    """The "How the numbers are computed" section."""
    pct = f"{level:.0%}".replace("%", " %")
    return ["## How the numbers are computed", "",
            "- Per target: runs averaged over source sets, paired with the baseline (scratch, the family control or "
            "scratch on all clips) per seed, then averaged over seeds (the unit of every interval, count and test "
            "is one target machine).",
            f"- Interval of the mean difference: percentile bootstrap over targets, {n_boot} resamples, seed {seed}; "
            "none with fewer than two targets.",
            "- Tied: Δ AUC = 0 after rounding to 12 decimals. Wilcoxon: `scipy.stats.wilcoxon` on the paired "
            "per-target values (none when fewer than two pairs or all differences are 0).",
            f"- Family sentences: the (method, version) of highest mean AUC at budget {SENTENCE_BUDGET} (else the "
            "smallest budget run); a zero-shot method uses no target clip, so no budget effect is claimed for it.",
            f"- Inverted / chance flags: DeLong {pct} interval of each run's AUC over its evaluation clips "
            "(`scores.csv`).", ""]


def _markdown(results: pd.DataFrame, tables: dict[str, pd.DataFrame], flags: list[str],
              figures: list[tuple[str, Figure, str]], *, n_boot: int, level: float, seed: int) -> str:
    """The text of report.md: overview, flags, family sentences, tables, sentences per version, figures, methods."""
    versions = sorted(results["version"].unique(), key=version_key)
    pct = f"{level:.0%}".replace("%", " %")
    images = {name: caption for name, _, caption in figures}
    md = [
        "# Transfer report: does pretraining on other machines help a new one?", "",
        _overview(results) + " Each comparison pairs a method with a baseline on the same target machine, "
        f"averaging over sources and then seeds per target; intervals are {pct} percentile bootstrap intervals "
        f"over target machines ({n_boot} resamples) and p-values are from the paired Wilcoxon signed-rank test. "
        "A direction is stated only when the interval excludes 0.", "",
        "## Read this first", "", *flags,
        *_families_section(results, tables["methods.csv"]),
        worlds_section(read_evidence(), run_differences(tables["methods.csv"])),
        *_image("auc_vs_budget.png", images["auc_vs_budget.png"]),
        *_methods_section(tables["methods.csv"], pct),
        *_verdicts_section(tables["comparison.csv"], versions),
        *_sources_section(tables["by_source.csv"], images),
        *_official_section(results, tables.get("official.csv", pd.DataFrame())),
        *_hindsight_section(tables.get("hindsight_summary.csv", pd.DataFrame())),
        "## Per machine", "",
    ]
    md += [line for name, caption in images.items() if "_machine_bars_" in name for line in _image(name, caption)]
    roc = [name for name in images if name.startswith("roc_")]
    if roc:
        md += ["## ROC of one target", "", images[roc[0]] + ".", "", *_image(roc[0], "ROC curves")]
    return "\n".join(md + _notes(n_boot=n_boot, level=level, seed=seed))


def write_report(repo: str | Path, *, out: str | Path | None = None,
                 n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> Path:
    """Read every version's results under `repo` and write the comparison report.

    Parameters
    ----------
    repo : str or Path
        Repository root holding ``VersionN/transfer_pretrain_vN.yaml``; each version's results are
        read from its ``output.result_dir``.
    out : str or Path, optional
        Report folder; default ``repo / "report"``.
    n_boot : int > 0
        Bootstrap resamples of every interval over targets.
    level : float in (0, 1)
        Coverage of every interval (bootstrap over targets, DeLong over clips).
    seed : int
        Seed of the bootstrap: the same inputs give the same report.

    Returns
    -------
    path : Path
        The written ``report.md``.

    Raises
    ------
    DataError
        No version's results exist under `repo`, or a result file lacks a needed column.
    LockError
        A run (transfer) is writing a version's result folder: its results are not finished.
    """
    repo = Path(repo)
    out = Path(out) if out is not None else repo / "report"
    with contextlib.ExitStack() as reading:
        for folder in result_dirs(repo).values():
            reading.enter_context(no_writer(folder, what="run `python -m common report` again"))
        results, scores = collect(repo)
    if results.empty:
        raise DataError(f"the results.csv files under {repo.resolve()} have no rows")
    tables = {"methods.csv": method_table(results, n_boot=n_boot, level=level, seed=seed),
              "comparison.csv": compare(results, n_boot=n_boot, level=level, seed=seed),
              "by_source.csv": by_source(results, n_boot=n_boot, level=level, seed=seed)}
    tables |= hindsight_tables(repo, results)
    official = official_table(results)
    if not official.empty:  # a DCASE root: the year's official scores (none on MIMII)
        tables["official.csv"] = official
    if scores.empty:
        flags = ["No `scores.csv` was found, so inverted scores and chance-level methods could not be checked.", ""]
    else:
        intervals = auc_intervals(scores, level=level)
        tables |= {"inverted.csv": flag_inverted(intervals), "chance.csv": flag_chance(intervals)}
        n_runs = len(_merge_over(intervals, ["version", "budget", "seed"]))
        flags = _flags_md(tables["inverted.csv"], tables["chance.csv"], n_runs=n_runs, level=level)
    for name, table in tables.items():
        atomic_write_text(out / name, table.to_csv(index=False, float_format="%.6g"))
    figures = _figures(results, scores)
    for name, fig, _ in figures:
        _save_png(fig, out / name)
    text = _markdown(results, tables, flags, figures, n_boot=n_boot, level=level, seed=seed)
    return atomic_write_text(out / "report.md", text)
