"""AUC and pAUC of clip scores, and precision / recall / F1 of thresholded decisions (scikit-learn), with the
checks scikit-learn leaves to the caller."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

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
    auc = float(roc_auc_score(y_true, y_score))
    pauc = auc if max_fpr == 1 else float(roc_auc_score(y_true, y_score, max_fpr=max_fpr))
    return auc, pauc


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
    y_pred = (y_score > threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(y_true, y_pred, average="binary", pos_label=1,
                                                               zero_division=0)
    return float(precision), float(recall), float(f1)
