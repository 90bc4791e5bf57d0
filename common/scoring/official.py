"""The official scores of DCASE Task 2, 2020-2025, from a table of clip scores: one table of formulas, one reader.

A year's score is a mean over *terms*: AUC or pAUC of one machine type's section (or ID) over the clips
that year's evaluator selects. `FORMULAS` says, per year, which clips each term uses, which mean
(arithmetic or harmonic) joins them and how the total groups them; every year is computed by the same code
from that row. Read from the official evaluators and baselines:

- 2020: ``y-kawagu/dcase2020_task2_evaluator`` ``evaluator.py`` (and ``y-kawagu/dcase2020_task2_baseline``
  ``01_test.py``): AUC and pAUC per machine ID over all its test clips, and per type the "Average" (mean over
  its IDs). The evaluator prints no single number over all types. The published 2020 totals (ASDKit,
  ``TakuyaFujimura/dcase-asd-toolkit``) are the arithmetic mean of AUC and pAUC per type
  (``asdkit/utils/asdkit_utils/evaluate.py``: ``s_auc``, ``s_pauc``, ``np.mean`` over the type's IDs), then the
  mean over types (``asdkit/bin/table.py``: ``table_df.apply(np.mean, axis=1)`` over one column per type);
  `OfficialScores.official` is that mean of per-type means. It differs from the mean over all (type, ID) terms
  (`OfficialScores.amean`) when types have different ID counts, as on the 2020 development set (ToyConveyor
  3 IDs, the other types 4).
- 2021: ``y-kawagu/dcase2021_task2_evaluator`` ``dcase2021_task2_evaluator.py``: AUC and pAUC per section
  and domain, each over that domain's own test clips (``source_test`` / ``target_test``); its ``official score``
  line is the harmonic mean of every section's and domain's AUC and pAUC (``performance_over_all[:, 0:2]``),
  as ASDKit's ``get_official_domain_auc_list("dcase2021")`` takes it.
- 2022: ``Kota-Dohi/dcase2022_evaluator`` ``dcase2022_task2_evaluator.py`` (the official 2022 evaluator,
  commit 9785ae5): AUC (source) over the section's source normals and *all* its anomalies (both domains,
  ``(y_domain == domain_idx) | (y_true_all != 0)``), AUC (target) likewise, pAUC over every clip of the
  section; its ``official score`` is the harmonic mean of every section's {AUC-s, AUC-t, pAUC} (``all_perf``).
  ASDKit's ``smix_auc``, ``tmix_auc``, ``mix_pauc`` are the same terms.
- 2023, 2024, 2025: ``nttcslab/dcase2023_task2_evaluator`` and ``nttcslab/dcase2024_task2_evaluator`` (the
  2022 selections; ``official_score = hmean(max(all_perf, eps))`` over every type's AUC-s, AUC-t and pAUC);
  the README of ``nttcslab/dcase2025_task2_evaluator`` prints the same rows. One section per type.

From 2021 on every type has as many sections (and so terms), so the harmonic mean over all terms is also
ASDKit's harmonic mean over per-type scores.

pAUC is scikit-learn's ``roc_auc_score(y_true, y_score, max_fpr=0.1)``, which every evaluator calls: the
McClish-standardised partial AUC (0.5 = chance), the same as `common.scoring.metrics.auc_pauc`, which computes
every term here. The published numbers carry it: the 2021 evaluator README's pAUC 0.5273684210526316 is
1002/1900, not a multiple of 1/1000 as the plain area / 0.1 over 100 x 100 clips would be.
Harmonic means clip each term at ``sys.float_info.epsilon`` first, as the evaluators do.

Clip table columns (`CLIP_COLUMNS`): ``machine_type``, ``section`` (the machine ID in 2020), ``domain``
(``"source"`` / ``"target"``; not needed in 2020), ``label`` (0 normal, 1 anomaly), ``score`` (higher =
more anomalous). Terms table columns: `TERM_COLUMNS`.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import hmean

from common.errors import MetricError
from common.scoring.metrics import auc_pauc

MAX_FPR = 0.1  # MAX_FPR in every official evaluator
DOMAINS = ("source", "target")
CLIP_COLUMNS = ("machine_type", "section", "domain", "label", "score")
# One row per term: its value and the clips it was computed on. ``domain`` is "all" for a term over every
# clip of the section; ``term`` is ``metric`` then ``_domain`` unless the domain is "all" (e.g. "auc_source").
TERM_COLUMNS = ("machine_type", "section", "domain", "metric", "term", "value", "n_normal", "n_anomaly")


@dataclass(frozen=True)
class Formula:
    """How one DCASE year scores a system: which clips each AUC / pAUC term uses, and how terms are averaged.

    ``auc`` and ``pauc`` are one of ``"section"`` (every clip of the section, one term), ``"own"`` (per domain:
    that domain's normals and anomalies) or ``"mixed"`` (per domain: that domain's normals and every anomaly
    of the section). ``mean`` is ``"arithmetic"`` or ``"harmonic"``. ``total`` is how the year's score joins
    its terms: ``"terms"`` (one mean over every term, as the evaluators' ``official score`` line) or ``"types"``
    (the mean over machine types of each type's mean, as the published 2020 totals).
    """

    year: int
    auc: str
    pauc: str
    mean: str
    one_section: bool  # the first-shot years: one section per machine type
    unit: str  # what a section is called in messages ("ID" in 2020)
    source: str
    total: str = "terms"

    @property
    def domains(self) -> tuple[str, ...]:
        """The domains the clip table must hold for each section (none in 2020)."""
        return () if self.auc == self.pauc == "section" else DOMAINS

    @property
    def terms(self) -> tuple[tuple[str, str, str], ...]:
        """(metric, domain, selection) of each term of one section, in the evaluators' column order."""
        out = []
        for metric, how in (("auc", self.auc), ("pauc", self.pauc)):
            out += [(metric, "all", how)] if how == "section" else [(metric, d, how) for d in DOMAINS]
        return tuple(out)


_ASDKIT = "TakuyaFujimura/dcase-asd-toolkit asdkit/utils/asdkit_utils/evaluate.py"
_FIRST_SHOT = ("nttcslab/dcase2023_task2_evaluator, nttcslab/dcase2024_task2_evaluator, "
               "nttcslab/dcase2025_task2_evaluator README")
FORMULAS: dict[int, Formula] = {
    2020: Formula(year=2020, auc="section", pauc="section", mean="arithmetic", one_section=False, unit="ID",
                  source=f"y-kawagu/dcase2020_task2_evaluator evaluator.py; {_ASDKIT}; "
                         "TakuyaFujimura/dcase-asd-toolkit asdkit/bin/table.py", total="types"),
    2021: Formula(year=2021, auc="own", pauc="own", mean="harmonic", one_section=False, unit="section",
                  source=f"y-kawagu/dcase2021_task2_evaluator dcase2021_task2_evaluator.py; {_ASDKIT}"),
    2022: Formula(year=2022, auc="mixed", pauc="section", mean="harmonic", one_section=False, unit="section",
                  source=f"Kota-Dohi/dcase2022_evaluator dcase2022_task2_evaluator.py; {_ASDKIT}"),
    **{year: Formula(year=year, auc="mixed", pauc="section", mean="harmonic", one_section=True, unit="section",
                     source=_FIRST_SHOT) for year in (2023, 2024, 2025)},
}


@dataclass(frozen=True)
class OfficialScores:
    """Every term of a year's score and the means the evaluators print.

    ``terms``: `TERM_COLUMNS`, one row per (machine type, section, domain, metric). ``per_section``:
    ``machine_type``, ``section`` and one column per term name (the evaluators' per-section rows). ``per_type``:
    ``machine_type``, one column per term name (its arithmetic mean over the type's sections, as the
    evaluators' per-type rows) and ``official`` (the year's mean over the type's terms). ``by_term``:
    ``term``, ``amean``, ``hmean`` over every type and section (the evaluators' "over all machine types,
    sections" rows). ``official``: the year's total (`official_total`: 2020 the mean over types of each type's
    mean, 2021-2025 the harmonic mean over every term); ``amean``: the arithmetic mean over every term.
    """

    year: int
    terms: pd.DataFrame
    per_section: pd.DataFrame
    per_type: pd.DataFrame
    by_term: pd.DataFrame
    official: float
    amean: float


def formula_for(year: int) -> Formula:
    """The `Formula` of a DCASE Task 2 year; `MetricError` for a year without one."""
    if isinstance(year, bool) or year not in FORMULAS:
        raise MetricError(f"year={year!r} is not a DCASE Task 2 year with an official score; known: {sorted(FORMULAS)}")
    return FORMULAS[year]


# The name of each formula as results.csv gives it: 2023-2025 score as 2022 does (one section per type aside).
FORMULA_NAMES: dict[int, str] = {2020: "2020", 2021: "2021", 2022: "2022-2025"}


def formula_year(name: str) -> int:
    """The year of a formula name of `FORMULA_NAMES` ("2022-2025" -> 2022); `MetricError` for another name."""
    years = {v: k for k, v in FORMULA_NAMES.items()}
    if str(name) not in years:
        raise MetricError(f"official formula {name!r} is not one of {list(years)}")
    return years[str(name)]


def section_score(labels, scores, domains, *, year: int, name: str = "") -> tuple[dict[str, float], float]:
    """Each term of `year`'s formula over one section's (or 2020 ID's) clips, and that section's score.

    The score is the year's mean of the section's terms. Every section has as many terms, so `official_total`
    of several sections' scores equals the year's total over all their terms (`official_scores`).
    `domains` ("source" / "target" per clip) is ignored in 2020; `name` names the section in errors.
    """
    formula = formula_for(year)
    clips = pd.DataFrame({"machine_type": name, "section": "", "label": np.asarray(labels),
                          "score": np.asarray(scores, dtype=float)})
    if formula.domains:
        clips["domain"] = list(domains)
    terms = score_terms(clips, year=year)
    values = {term: float(v) for term, v in zip(terms["term"], terms["value"])}
    return values, official_mean(list(values.values()), mean=formula.mean)


def official_scores(clips: pd.DataFrame, *, year: int) -> OfficialScores:
    """The official score of DCASE Task 2 `year` and all its terms, from one table of clip scores.

    Parameters
    ----------
    clips : pd.DataFrame with the columns of `CLIP_COLUMNS` (``domain`` may be absent for 2020)
    year : int in `FORMULAS` (2020-2025)

    Raises
    ------
    MetricError
        A column, a domain or a class is missing, a label is not 0/1, a score is not finite, or a
        first-shot year has more than one section of a machine type; the message names which.
    """
    return summarize_terms(score_terms(clips, year=year), year=year)


def score_terms(clips: pd.DataFrame, *, year: int) -> pd.DataFrame:
    """Each AUC / pAUC term of `year`'s formula, per machine type and section (columns `TERM_COLUMNS`)."""
    formula = formula_for(year)
    clips = _checked_clips(clips, formula)
    rows = []
    for (machine_type, section), sec in clips.groupby(["machine_type", "section"], sort=True):
        for metric, domain, how in formula.terms:
            picked = _picked(sec, how=how, domain=domain)
            where = f"{machine_type} {formula.unit} {section}" + ("" if domain == "all" else f" {domain}")
            auc, pauc = auc_pauc(picked["label"].to_numpy(), picked["score"].to_numpy(), max_fpr=MAX_FPR, name=where)
            n_anomaly = int((picked["label"] == 1).sum())
            rows.append({"machine_type": machine_type, "section": section, "domain": domain, "metric": metric,
                         "term": metric if domain == "all" else f"{metric}_{domain}",
                         "value": auc if metric == "auc" else pauc,
                         "n_normal": len(picked) - n_anomaly, "n_anomaly": n_anomaly})
    return pd.DataFrame(rows, columns=list(TERM_COLUMNS))


def _picked(section: pd.DataFrame, *, how: str, domain: str) -> pd.DataFrame:
    """The clips of one section that a term uses: all of them, one domain's, or one domain's normals + all anomalies."""
    if how == "section":
        return section
    if how == "own":
        return section[section["domain"] == domain]
    return section[(section["domain"] == domain) | (section["label"] == 1)]


def summarize_terms(terms: pd.DataFrame, *, year: int) -> OfficialScores:
    """The per-type, per-term and official means of `year` over a terms table (`TERM_COLUMNS`).

    Separate from `score_terms` so published per-type terms can be checked against published totals.
    """
    formula = formula_for(year)
    missing = [c for c in ("machine_type", "section", "term", "value") if c not in terms.columns]
    if missing:
        raise MetricError(f"terms table lacks the column(s) {missing}; it has {list(terms.columns)}")
    if terms.empty:
        raise MetricError(f"terms table has no rows; DCASE {year} needs at least one term")
    names = list(dict.fromkeys(terms["term"]))
    per_type = []
    for machine_type, group in terms.groupby("machine_type", sort=True):
        row = {"machine_type": machine_type, **group.groupby("term")["value"].mean().reindex(names).to_dict()}
        per_type.append({**row, "official": official_mean(group["value"], mean=formula.mean)})
    by_term = [{"term": name, "amean": float(np.mean(values)), "hmean": official_mean(values, mean="harmonic")}
               for name, values in ((n, terms.loc[terms["term"] == n, "value"]) for n in names)]
    per_section = terms.pivot_table(index=["machine_type", "section"], columns="term", values="value", sort=True)
    return OfficialScores(year=year, terms=terms.reset_index(drop=True),
                          per_section=per_section.reindex(columns=names).reset_index().rename_axis(columns=None),
                          per_type=pd.DataFrame(per_type, columns=["machine_type", *names, "official"]),
                          by_term=pd.DataFrame(by_term, columns=["term", "amean", "hmean"]),
                          official=official_total(terms["value"], machine_types=terms["machine_type"],
                                                  sections=terms["section"], year=year),
                          amean=float(np.mean(terms["value"].to_numpy(dtype=float))))


def official_total(values, *, machine_types, sections, year: int) -> float:
    """The official score of `year` over terms or section scores, each given with its machine type and section.

    2020 (``Formula.total == "types"``): per section the mean of its values (a section's terms, or a target's
    rows over sources and seeds), per type the mean of its sections, then the mean over types, as the published
    2020 totals (ASDKit ``asdkit/bin/table.py``). 2021-2025: the harmonic mean of all values, as the evaluators'
    ``official score`` line; a section's score is already the harmonic mean of its terms, and every section has
    as many, so this is the harmonic mean over every term.

    Raises
    ------
    MetricError
        A value is not finite, or the three sequences differ in length.
    """
    formula = formula_for(year)
    values = np.asarray(values, dtype=float)
    machine_types, sections = list(machine_types), list(sections)
    if not len(values) == len(machine_types) == len(sections):
        raise MetricError(f"official_total needs one machine type and section per value; got {len(values)} values, "
                          f"{len(machine_types)} machine types and {len(sections)} sections")
    if formula.total == "terms":
        return official_mean(values, mean=formula.mean)
    official_mean(values, mean="arithmetic")  # the finiteness check and its message
    table = pd.DataFrame({"machine_type": machine_types, "section": sections, "value": values})
    per_section = table.groupby(["machine_type", "section"], sort=True)["value"].mean()
    per_type = per_section.groupby(level="machine_type").mean()
    return official_mean(per_type.to_numpy(), mean=formula.mean)


def official_mean(values, *, mean: str) -> float:
    """Arithmetic or harmonic mean of terms; the harmonic one clips each at machine epsilon, as the evaluators do."""
    values = np.asarray(values, dtype=float)
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise MetricError(f"a mean of terms needs finite values; got {values.tolist()}")
    if mean == "arithmetic":
        return float(np.mean(values))
    if mean == "harmonic":
        return float(hmean(np.maximum(values, sys.float_info.epsilon)))
    raise MetricError(f"mean={mean!r} must be 'arithmetic' or 'harmonic'")


def _checked_clips(clips: pd.DataFrame, formula: Formula) -> pd.DataFrame:
    """The clip table, checked against a formula: columns, labels, domains and sections per type."""
    if not isinstance(clips, pd.DataFrame):
        raise MetricError(f"clip scores must be a pandas DataFrame with columns {CLIP_COLUMNS}; "
                          f"got {type(clips).__name__}")
    need = [c for c in CLIP_COLUMNS if c != "domain" or formula.domains]
    missing = [c for c in need if c not in clips.columns]
    if missing:
        raise MetricError(f"clip table lacks the column(s) {missing} that DCASE {formula.year} needs; "
                          f"it has {list(clips.columns)}")
    if clips.empty:
        raise MetricError(f"clip table has no rows; DCASE {formula.year} needs clip scores")
    for column in ("machine_type", "section"):
        if clips[column].isna().any():
            raise MetricError(f"clip table: {int(clips[column].isna().sum())} rows have no {column}")
    labels = set(clips["label"].tolist())
    if not labels <= {0, 1}:
        raise MetricError(f"label must be 0 (normal) or 1 (anomaly); got {sorted(map(str, labels - {0, 1}))}")
    _check_domains(clips, formula)
    if formula.one_section:
        counts = clips.groupby("machine_type")["section"].nunique()
        for machine_type, n in counts[counts > 1].items():
            sections = sorted(map(str, clips.loc[clips["machine_type"] == machine_type, "section"].unique()))
            raise MetricError(f"DCASE {formula.year} has one section per machine type; {machine_type} has {sections}")
    return clips


def _check_domains(clips: pd.DataFrame, formula: Formula) -> None:
    """Every section holds both domains (2021+); a 2020 table holds no target domain."""
    if not formula.domains:
        if "domain" in clips.columns and (clips["domain"] != "source").any():
            raise MetricError(f"DCASE {formula.year} has no domains, but the clip table has domain values "
                              f"{sorted(map(str, set(clips['domain']) - {'source'}))}")
        return
    unknown = set(clips["domain"].tolist()) - set(formula.domains)
    if unknown:
        raise MetricError(f"domain must be one of {formula.domains}; got {sorted(map(str, unknown))}")
    for (machine_type, section), sec in clips.groupby(["machine_type", "section"], sort=True):
        absent = [d for d in formula.domains if not (sec["domain"] == d).any()]
        if absent:
            raise MetricError(f"DCASE {formula.year}: {machine_type} {formula.unit} {section} has no "
                              f"{' or '.join(absent)} clips; its score needs both domains")
