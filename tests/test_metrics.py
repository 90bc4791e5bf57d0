"""AUC / pAUC: known values, agreement with scikit-learn, and errors that name the machine."""

import numpy as np
import pytest
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score

from common.errors import MetricError
from common.scoring.metrics import auc_pauc, decision_metrics


def test_perfect_and_inverted_scores():
    assert auc_pauc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == (1.0, 1.0)
    auc, pauc = auc_pauc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1])
    assert auc == 0.0 and pauc < 0.5


def test_equals_scikit_learn(rng):
    y = np.r_[np.zeros(50, int), np.ones(30, int)]
    s = rng.normal(size=80) + y * 0.8
    auc, pauc = auc_pauc(y, s, max_fpr=0.2)
    assert auc == roc_auc_score(y, s) and pauc == roc_auc_score(y, s, max_fpr=0.2)
    assert auc_pauc(y, s, max_fpr=1.0) == (auc, auc)


@pytest.mark.parametrize(
    "y, s, kw, match",
    [
        ([0, 0, 0], [0.1, 0.2, 0.3], {"name": "fan/id_00"}, r"both normal \(0\) and anomalous \(1\).*fan/id_00"),
        ([0, 1], [0.1, np.nan], {"name": "pump/id_02"}, r"1 non-finite scores for pump/id_02"),
        ([0, 1, 1], [0.1, 0.2], {}, r"one length"),
        ([0, 1], [0.1, 0.2], {"max_fpr": 0.0}, r"max_fpr in range \(0, 1\], got: 0.0"),
    ],
)
def test_errors(y, s, kw, match):
    with pytest.raises(MetricError, match=match):
        auc_pauc(y, s, **kw)


@pytest.mark.parametrize("rounding", [None, 1, 0], ids=["no ties", "some ties", "many ties"])
def test_auc_pauc_and_decisions_equal_scikit_learn_to_the_last_bit(rounding):
    """The arithmetic is written out (common.scoring.metrics): every number must be scikit-learn's, bit for bit."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        n_normal, n_anomalous = rng.integers(1, 60), rng.integers(1, 40)
        y = rng.permutation(np.r_[np.zeros(n_normal, int), np.ones(n_anomalous, int)])
        s = rng.normal(size=len(y)) + y * rng.uniform(-1, 2)
        s = s if rounding is None else np.round(s, rounding)
        for max_fpr in (0.1, 0.0137, 0.5, 1.0):
            want = roc_auc_score(y, s), roc_auc_score(y, s, max_fpr=None if max_fpr == 1 else max_fpr)
            assert auc_pauc(y, s, max_fpr=max_fpr) == want
        threshold = float(rng.choice(s)) + rng.choice([0.0, -0.3, 10.0])
        want = precision_recall_fscore_support(y, (s > threshold).astype(int), average="binary", pos_label=1,
                                               zero_division=0)[:3]
        assert decision_metrics(y, s, threshold=threshold) == tuple(float(v) for v in want)
