"""Two-bank kNN scores for few target clips: the smaller of a clip's distances to a source and a target bank.

A new machine (the *target*) has a handful of normal clips; other machines or the source domain (the
*source*) have many. A clip's anomaly score is the smaller of its k-nearest-neighbour distance to the
source bank and to the target bank, each optionally normalised by its own bank's statistics
(`two_bank_scores`). A target bank of few clips can first be enlarged by SMOTE (`smote_bank`).

What the published recipes do (read at the commits named; arXiv numbers are the papers):

- ASDKit, ``TakuyaFujimura/dcase-asd-toolkit``, ``asdkit/backends/knn.py`` class ``Knn`` (commit 5f07289)
  with ``config/score/experiments/default.yaml``: rows L2-normalised, Euclidean kNN (monotone in cosine
  distance), ``n_neighbors_so = n_neighbors_ta = 1``; score = ``min(d_source, d_target)`` with **no**
  normalisation (``/ 2`` for cosine, the same for both banks). The target bank is enlarged by
  ``imblearn`` SMOTE to ``smote_ratio = 0.2`` of the source bank (``sampling_strategy=0.2``,
  ``k_neighbors = smote_neighbors = 2``, ``random_state = 0``) and re-normalised to unit length.
  ``dis_baseline.yaml``: ratio 0.05, 5 neighbours.
- Fraunhofer FKIE DCASE 2023 submission (Wilkinghoff), ``wilkinghoff/DCASE2023_task2``, ``main.py``
  lines 447-461: cosine distance ``1 - x.y`` of unit embeddings, min over the target clips and the source
  sub-cluster means, then min of the two; no normalisation, no SMOTE.
- SMOTE itself, ``scikit-learn-contrib/imbalanced-learn``, ``imblearn/over_sampling/_smote/base.py``
  (``SMOTE._fit_resample``, ``BaseSMOTE._make_samples``): each class row's ``k_neighbors`` nearest other
  rows (Euclidean); each new row picks a (row, neighbour) pair uniformly, ``new = x + u (x_nn - x)``,
  ``u ~ U[0, 1)``; original rows first. It needs more rows than ``k_neighbors``.
- GenRep (arXiv 2409.05035), ``Phuriches/GenRepASD``, ``run_genrep_dcase2023.py`` lines 378-390:
  "standardize source and target scores": each bank's kNN distances z-scored by the mean and std of the
  **test clips'** distances to that bank, then the min. MERL ``merlresearch/anomaly-score-normalization``
  ``utils.py`` ``get_standardization_stats`` (option ``standardize``, README: "domain-wise
  standardization based on the test set") does the same. Both fit on evaluation clips; here the same
  shape is fitted on bank clips only (``normalise="zscore"``), as arXiv 2606.19269 (abstract) does with
  "training-bank self-scores".
- Local density (Wilkinghoff et al., ICASSP 2025 "Keeping the balance"): ``merlresearch/anomaly-score-
  normalization`` ``utils.py`` ``get_scores`` (``norm_type="ratio"``, K nearest references) and ASDKit
  ``KnnRescale`` (``k_ref_normalize = 16``): the distance to bank row j divided by row j's mean distance to
  its K nearest other bank rows (there over one pooled bank; here within each bank: ``"local"``).

Normalisation statistics come from bank rows only, never from evaluation clips: a bank row's
"self-distance" is its kNN distance to the *other* rows of its bank (leave-one-out, `self_distances`).
So a clip's score does not depend on which other clips are scored with it (the transductive
GenRep/MERL standardisation does).

Defaults, as measured by ``benchmarks/bench_two_bank.py`` (log-mel statistics of synthetic MIMII, source
bank = the other IDs of the type): ``normalise="none"`` and k = 1, as ASDKit. The second bank is what
helps (mean AUC +0.07 and +0.10 at 1 target clip in two worlds); no normalisation beat "none", and SMOTE
(ASDKit's ratio 0.2, 2 neighbours) moved AUC by -0.005 to +0.013, within noise, so it is the caller's option.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import pairwise_distances
from sklearn.neighbors import NearestNeighbors

from common.errors import MetricError

BANKS = ("two_bank", "target")  # the values of ``embedding.bank``: both banks (the field's) or the target's alone

METRICS = ("cosine", "euclidean")
NORMALISATIONS = {
    "none": "the raw kNN distance (ASDKit Knn, FKIE 2023)",
    "mean": "divided by the mean of the bank's self-distances",
    "zscore": "minus the mean, over the std, of the bank's self-distances (GenRep's shape, fitted on the bank)",
    "local": "each distance to a bank row over that row's mean distance to its k_ref nearest other rows",
}


@dataclass(frozen=True)
class BankFit:
    """A bank ready to score: its rows and the normalisation fitted on them.

    A clip's score is ``(knn_distance - shift) / scale``; for ``"local"``, `scale` holds one value per
    bank row and divides each distance before the k nearest are taken (and `shift` is 0).
    """

    rows: np.ndarray
    k: int
    metric: str
    normalise: str
    shift: float
    scale: float | np.ndarray


def _rows(x, name: str) -> np.ndarray:
    """`x` as a finite, non-empty 2-D float array; errors name the argument."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0 or x.shape[1] == 0:
        raise MetricError(f"{name} must be a non-empty 2-D array (clips x values), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise MetricError(f"{name} has non-finite values (NaN or inf)")
    return x


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise MetricError(f"{name}={value!r} must be a positive integer")
    return int(value)


def _check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise MetricError(f"{name}={value!r} must be one of {', '.join(map(repr, choices))}")
    return value


def self_distances(bank: np.ndarray, *, k: int = 1, metric: str = "cosine") -> np.ndarray:
    """Each bank row's mean distance to its `k` nearest *other* rows (leave-one-out) [shape=(n_rows,)].

    With `k` >= the number of other rows, all of them are the neighbours. A row is never its own
    neighbour, even when another row equals it (sklearn's ``kneighbors()`` without queries).

    Raises
    ------
    MetricError
        Fewer than two rows (one row has no other row), a bad `k`, `metric` or array.
    """
    bank = _rows(bank, "bank")
    k, metric = _positive_int(k, "k"), _check_choice(metric, "metric", METRICS)
    if len(bank) < 2:
        raise MetricError("bank has 1 row: a leave-one-out distance needs at least 2 rows")
    nn = NearestNeighbors(n_neighbors=min(k, len(bank) - 1), metric=metric, algorithm="brute").fit(bank)
    return nn.kneighbors()[0].mean(axis=1)


def fit_bank(bank: np.ndarray, *, k: int = 1, metric: str = "cosine", normalise: str = "none",
             k_ref: int = 16, name: str = "bank") -> BankFit:
    """Fit a bank's normalisation on its own rows (`NORMALISATIONS`); no evaluation clip is involved.

    Parameters
    ----------
    bank : np.ndarray [shape=(n_rows, n_values)]
    k : int > 0
        Neighbours of a scored clip (and of a bank row for its self-distance); capped at the rows there are.
    metric : "cosine" or "euclidean"
    normalise : one of `NORMALISATIONS`
    k_ref : int > 0
        Neighbours of a bank row for its local density (``"local"`` only; ASDKit's default 16).
    name : str
        The argument name used in error messages (``"source_bank"``, ``"target_bank"``).

    Raises
    ------
    MetricError
        A bad argument; a bank of one row with a normalisation (no self-distance); ``"zscore"`` on a bank
        whose self-distances are all equal (e.g. 2 rows: use ``"mean"`` or `smote_bank` first).
    """
    rows = _rows(bank, name)
    k, k_ref = _positive_int(k, "k"), _positive_int(k_ref, "k_ref")
    metric = _check_choice(metric, "metric", METRICS)
    normalise = _check_choice(normalise, "normalise", tuple(NORMALISATIONS))
    if normalise == "none":
        return BankFit(rows, k, metric, normalise, 0.0, 1.0)
    if len(rows) < 2:
        raise MetricError(f"{name} has 1 row: normalise={normalise!r} needs at least 2 rows "
                          "(their leave-one-out distances); use normalise='none'")
    own = self_distances(rows, k=k_ref if normalise == "local" else k, metric=metric)
    # identical rows are ~1e-16 apart in floating point, not 0: compare with the rows' own scale
    tiny = 1e-10 * (1.0 if metric == "cosine" else max(1.0, float(np.abs(rows).max())))
    if (normalise == "local" and np.any(own <= tiny)) or (normalise == "mean" and not own.mean() > tiny):
        raise MetricError(f"{name} has duplicate rows (self-distance 0): normalise={normalise!r} divides by it")
    if normalise == "local":
        return BankFit(rows, k, metric, normalise, 0.0, own)
    if normalise == "mean":
        return BankFit(rows, k, metric, normalise, 0.0, float(own.mean()))
    if not own.std() > 1e-9 * max(float(own.mean()), tiny):
        raise MetricError(f"{name}: normalise='zscore' needs self-distances that vary; its {len(rows)} rows' "
                          "are all equal (2 rows always are): use normalise='mean' or enlarge it with smote_bank")
    return BankFit(rows, k, metric, normalise, float(own.mean()), float(own.std()))


def bank_scores(eval_emb: np.ndarray, fit: BankFit) -> np.ndarray:
    """Each clip's normalised kNN distance to a fitted bank [shape=(n_clips,)]; clips are scored independently."""
    eval_emb = _rows(eval_emb, "eval_emb")
    if eval_emb.shape[1] != fit.rows.shape[1]:
        raise MetricError(f"eval_emb has {eval_emb.shape[1]} values per clip but the bank has {fit.rows.shape[1]}")
    k = min(fit.k, len(fit.rows))
    if fit.normalise == "local":
        ratios = pairwise_distances(eval_emb, fit.rows, metric=fit.metric) / fit.scale[None, :]
        return np.sort(ratios, axis=1)[:, :k].mean(axis=1)
    nn = NearestNeighbors(n_neighbors=k, metric=fit.metric, algorithm="brute").fit(fit.rows)
    return (nn.kneighbors(eval_emb)[0].mean(axis=1) - fit.shift) / fit.scale


def two_bank_scores(eval_emb: np.ndarray, source_bank: np.ndarray | None, target_bank: np.ndarray, *,
                    k: int = 1, metric: str = "cosine", normalise: str = "none", k_ref: int = 16) -> np.ndarray:
    """Anomaly score of each clip: the smaller of its normalised kNN distances to the source and target banks.

    Parameters
    ----------
    eval_emb : np.ndarray [shape=(n_clips, n_values)]
        Clips to score (embeddings or clip vectors).
    source_bank : np.ndarray [shape=(n_source, n_values)] or None
        Normal clips of other machines or the source domain. None scores with the target bank alone;
        with ``normalise="none"`` that is exactly the plain kNN distance to the target bank.
    target_bank : np.ndarray [shape=(n_target, n_values)]
        Normal clips of the machine itself, possibly enlarged by `smote_bank`.
    k, metric, normalise, k_ref
        As in `fit_bank`, the same for both banks. ``cosine`` is ``1 - cos``, sklearn's.

    Returns
    -------
    scores : np.ndarray [shape=(n_clips,)]
        Higher is more anomalous.

    Examples
    --------
    >>> bank = smote_bank(target_rows, 12, k=2, seed=0)                    # doctest: +SKIP
    >>> scores = two_bank_scores(test_rows, source_rows, bank, normalise="mean")  # doctest: +SKIP
    """
    target = bank_scores(eval_emb, fit_bank(target_bank, k=k, metric=metric, normalise=normalise, k_ref=k_ref,
                                            name="target_bank"))
    if source_bank is None:
        return target
    source = bank_scores(eval_emb, fit_bank(source_bank, k=k, metric=metric, normalise=normalise, k_ref=k_ref,
                                            name="source_bank"))
    return np.minimum(source, target)


def smote_bank(bank: np.ndarray, n_total: int, *, k: int, seed: int) -> np.ndarray:
    """The bank enlarged to `n_total` rows by SMOTE: points on segments between a row and one of its k neighbours.

    As ``imblearn``'s SMOTE: each row's `k` nearest other rows (Euclidean); each new row draws a (row,
    neighbour) pair uniformly and a step ``u ~ U[0, 1)``, and is ``row + u * (neighbour - row)``. With
    `k` >= the number of other rows, all of them are the neighbours (imblearn refuses instead).

    A single row is returned unchanged (shape ``(1, n_values)``, whatever `n_total`): it has no
    neighbour, so there is no segment, and copies of it would change no nearest-neighbour distance
    while making the bank's leave-one-out self-distances 0 (which the normalisations divide by).

    For cosine scoring, pass unit-length rows (ASDKit L2-normalises before SMOTE): interpolating raw rows
    of different lengths moves the new row's direction towards the longer one.

    Parameters
    ----------
    bank : np.ndarray [shape=(n_rows, n_values)]
    n_total : int >= n_rows
        Rows of the result; ``n_total == n_rows`` returns a copy.
    k : int > 0
        Neighbours a new row may be drawn towards (ASDKit: 2; imblearn's default: 5).
    seed : int >= 0
        The same seed gives the same rows.

    Returns
    -------
    bank : np.ndarray [shape=(n_total, n_values)]
        The original rows first, then the synthetic ones.
    """
    bank = _rows(bank, "bank")
    k = _positive_int(k, "k")
    if isinstance(n_total, bool) or not isinstance(n_total, (int, np.integer)) or n_total < len(bank):
        raise MetricError(f"n_total={n_total!r} must be an integer >= the bank's {len(bank)} rows")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise MetricError(f"seed={seed!r} must be a non-negative integer")
    n_new = int(n_total) - len(bank)
    if len(bank) == 1 or n_new == 0:
        return bank.copy()
    k = min(k, len(bank) - 1)
    neighbours = NearestNeighbors(n_neighbors=k).fit(bank).kneighbors(return_distance=False)
    rng = np.random.default_rng(seed)
    pair = rng.integers(0, len(bank) * k, size=n_new)
    rows, cols = pair // k, pair % k
    steps = rng.random(n_new)[:, None]
    new = bank[rows] + steps * (bank[neighbours[rows, cols]] - bank[rows])
    return np.vstack([bank, new])
