"""AUC and pAUC of clip scores, and precision / recall / F1 of thresholded decisions, with the checks
scikit-learn leaves to the caller.

The arithmetic is scikit-learn's (``roc_auc_score`` with its ``max_fpr`` McClish standardisation,
``precision_recall_fscore_support`` with ``zero_division=0``), operation for operation, so the numbers are the
same to the last bit (tests/test_metrics.py compares them on random scores with ties); it is written out here
because scikit-learn's checks around each call cost 4.5 ms, 60 times the arithmetic, and a run computes them for
every row (benchmarks/bench_metrics.py).
"""

from __future__ import annotations

import numpy as np

from common.errors import MetricError


def check_scores(y_true, y_score, *, name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Validate labels (0/1, both present) and scores (finite, same length); name the machine on error."""
    where = f" for {name}" if name else ""
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.shape != y_score.shape or y_true.ndim != 1:
        raise MetricError(f"labels {y_true.shape} and scores {y_score.shape} must be 1-D of one length{where}")
    if not np.all(np.isfinite(y_score)):
        raise MetricError(f"{int(np.sum(~np.isfinite(y_score)))} non-finite scores{where}")
    classes = set(np.unique(y_true).tolist())
    if classes != {0, 1}:
        raise MetricError(f"AUC needs both normal (0) and anomalous (1) clips{where}; got labels {sorted(classes)}")
    return y_true, y_score


def auc_pauc(y_true, y_score, *, max_fpr: float = 0.1, name: str = "") -> tuple[float, float]:
    """ROC AUC and partial AUC on FPR in [0, max_fpr] (McClish-standardised: 0.5 = chance).

    Examples
    --------
    >>> auc_pauc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    (1.0, 1.0)
    """
    if not 0 < max_fpr <= 1:
        raise MetricError(f"Expected max_fpr in range (0, 1], got: {max_fpr!r}")
    y_true, y_score = check_scores(y_true, y_score, name=name)
    fpr, tpr = roc_points(y_true, y_score)
    auc = float(np.trapezoid(tpr, fpr))
    if max_fpr == 1:
        return auc, auc
    stop = np.searchsorted(fpr, max_fpr, "right")  # a point at max_fpr, by linear interpolation
    tpr = np.append(tpr[:stop], np.interp(max_fpr, [fpr[stop - 1], fpr[stop]], [tpr[stop - 1], tpr[stop]]))
    partial = np.trapezoid(tpr, np.append(fpr[:stop], max_fpr))
    min_area, max_area = 0.5 * max_fpr**2, max_fpr
    return auc, float(0.5 * (1 + (partial - min_area) / (max_area - min_area)))


def roc_points(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC curve (fpr, tpr) of checked labels and scores, as scikit-learn's ``roc_curve`` gives it.

    One point per distinct score, highest first, less the points where neither rate turns (``drop_intermediate``),
    after (0, 0).
    """
    order = np.argsort(y_score, kind="mergesort")[::-1]
    y_score, y_true = y_score[order], np.asarray(y_true[order] == 1, dtype=np.float64)
    idx = np.r_[np.flatnonzero(np.diff(y_score)), y_true.size - 1]
    tps = np.cumsum(y_true, dtype=np.float64)[idx]
    fps = 1 + idx.astype(np.float64) - tps
    if len(fps) > 2:
        keep = np.flatnonzero(np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True])
        fps, tps = fps[keep], tps[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    return fps / fps[-1], tps / tps[-1]


def decision_metrics(y_true, y_score, *, threshold: float, name: str = "") -> tuple[float, float, float]:
    """Precision, recall and F1 of flagging a clip anomalous when its score is above `threshold`.

    Anomalous (1) is the positive class. A ratio with a zero denominator (nothing flagged) is 0
    (scikit-learn's ``zero_division=0``), not a warning.

    Examples
    --------
    >>> decision_metrics([0, 0, 1, 1], [0.1, 0.6, 0.8, 0.4], threshold=0.5)
    (0.5, 0.5, 0.5)
    """
    if isinstance(threshold, bool) or not np.isfinite(threshold):
        raise MetricError(f"threshold={threshold!r} must be a finite number")
    y_true, y_score = check_scores(y_true, y_score, name=name)
    flagged, anomalous = y_score > threshold, y_true == 1
    tp, n_flagged, n_anomalous = int(np.sum(flagged & anomalous)), int(np.sum(flagged)), int(np.sum(anomalous))
    ratio = lambda num, den: float(num / den) if den else 0.0  # noqa: E731
    return ratio(tp, n_flagged), ratio(tp, n_anomalous), ratio(2.0 * tp, float(n_anomalous + n_flagged))
