"""Decision thresholds from training scores: known values, the gamma fit, the false-alarm rate, errors."""

import numpy as np
import pytest
import scipy.stats

from common.errors import MetricError
from common.scoring.metrics import decision_metrics
from common.scoring.threshold import THRESHOLD_METHODS, describe_threshold, fit_threshold


def test_percentile_known_values():
    scores = np.arange(1.0, 12.0)  # 1 .. 11
    assert fit_threshold(scores, method="percentile", level=0.9) == 10.0
    assert fit_threshold(scores, method="percentile", level=0.5) == 6.0
    assert fit_threshold(scores[::-1], method="percentile", level=0.9) == 10.0  # order does not matter
    assert fit_threshold([4.2], method="percentile", level=0.9) == 4.2


def test_gamma_fit_is_near_the_true_quantile(rng):
    shape, scale = 3.0, 2.0
    scores = rng.gamma(shape, scale, size=5000)
    true = scipy.stats.gamma.ppf(0.9, shape, scale=scale)
    assert fit_threshold(scores, method="gamma", level=0.9) == pytest.approx(true, rel=0.03)
    assert fit_threshold([2.5, 2.5, 2.5], method="gamma", level=0.9) == 2.5  # no spread: the point itself


@pytest.mark.parametrize("rate", [0.0, 0.05, 0.1, 0.25, 0.5])
def test_false_alarm_rate_is_met_on_the_training_clips(rng, rate):
    scores = rng.normal(10, 2, size=200)
    threshold = fit_threshold(scores, method="false_alarm", level=rate)
    above = np.mean(scores > threshold)
    assert above <= rate and above > rate - 1 / len(scores)  # as close to the rate as the clips allow
    assert threshold in scores


def test_false_alarm_known_values():
    scores = np.arange(1.0, 11.0)  # 1 .. 10
    assert fit_threshold(scores, method="false_alarm", level=0.1) == 9.0  # only 10 above: 1 in 10
    assert fit_threshold(scores, method="false_alarm", level=0.0) == 10.0
    assert fit_threshold(scores, method="false_alarm", level=0.15) == 9.0


@pytest.mark.parametrize("scores, kw, match", [
    ([1.0, 2.0], {"method": "median"}, r"method='median' must be one of: percentile, gamma, false_alarm"),
    ([1.0, 2.0], {"level": 1.0}, r"level=1\.0 must be in \(0, 1\) for method='percentile'"),
    ([1.0, 2.0], {"level": 0.0, "method": "gamma"}, r"level=0\.0 must be in \(0, 1\)"),
    ([1.0, 2.0], {"level": -0.1, "method": "false_alarm"}, r"must be in \[0, 1\) for method='false_alarm'"),
    ([], {}, r"no training scores"),
    ([1.0, np.nan], {}, r"1 non-finite training scores"),
    ([0.0, 1.0], {"method": "gamma"}, r"needs positive scores"),
])
def test_errors(scores, kw, match):
    with pytest.raises(MetricError, match=match):
        fit_threshold(scores, **kw)


def test_every_method_is_described():
    for method in THRESHOLD_METHODS:
        assert "12 training normal clips" in describe_threshold(method, 0.9, n_clips=12)
    assert describe_threshold("percentile", 0.9).startswith("90th percentile")


def test_decision_metrics_known_values():
    y = [0, 0, 0, 1, 1, 1]
    s = [0.1, 0.2, 0.7, 0.6, 0.8, 0.3]
    precision, recall, f1 = decision_metrics(y, s, threshold=0.5)  # flags 0.7, 0.6, 0.8: 2 of 3 right
    assert precision == pytest.approx(2 / 3) and recall == pytest.approx(2 / 3) and f1 == pytest.approx(2 / 3)
    assert decision_metrics(y, s, threshold=1.0) == (0.0, 0.0, 0.0)  # nothing flagged: 0, not a warning
    assert decision_metrics(y, s, threshold=0.0) == (0.5, 1.0, pytest.approx(2 / 3))
    with pytest.raises(MetricError, match="threshold=nan"):
        decision_metrics(y, s, threshold=float("nan"))
    with pytest.raises(MetricError, match="fan/id_00"):
        decision_metrics([0, 0], [0.1, 0.2], threshold=0.5, name="fan/id_00")
