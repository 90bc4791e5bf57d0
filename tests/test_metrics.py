"""AUC / pAUC: known values, agreement with scikit-learn, and errors that name the machine."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from common.errors import MetricError
from common.scoring.metrics import auc_pauc


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
