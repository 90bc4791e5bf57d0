"""Decision threshold of a model: fitted on the scores of its own training normal clips, never on test labels.

A clip is flagged anomalous when its score is above the threshold. Three ways to fit it, chosen by
``eval.threshold`` in the YAML:

- ``percentile``: the ``eval.threshold_quantile`` quantile of the training scores (``np.percentile``,
  linear interpolation); 0.9 is the 90th percentile of the DCASE 2021+ baselines' default level.
- ``gamma``: a gamma distribution fitted to the training scores (``scipy.stats.gamma.fit`` with
  ``floc=0``: reconstruction errors are positive), then its ``eval.threshold_quantile`` quantile,
  as the DCASE 2021-2023 baselines fit their ``decision_threshold``.
- ``false_alarm``: the lowest training score such that at most a fraction ``eval.false_alarm_rate``
  of the training normal clips lie above it, how plant engineers state it ("one false alarm in
  twenty normal recordings").
"""

from __future__ import annotations

import math

import numpy as np

from common.errors import MetricError

THRESHOLD_METHODS = ("percentile", "gamma", "false_alarm")


def _percentile(scores: np.ndarray, level: float) -> float:
    return float(np.percentile(scores, 100.0 * level))


def _gamma(scores: np.ndarray, level: float) -> float:
    import scipy.stats  # deferred: only this method needs it

    if np.any(scores <= 0):
        raise MetricError(f"method='gamma' needs positive scores, got min {float(scores.min())!r}; use 'percentile'")
    if scores.min() == scores.max():
        return float(scores[0])  # a point mass: the limit of the fit as the spread goes to zero
    shape, loc, scale = scipy.stats.gamma.fit(scores, floc=0)
    return float(scipy.stats.gamma.ppf(level, shape, loc=loc, scale=scale))


def _false_alarm(scores: np.ndarray, rate: float) -> float:
    ordered = np.sort(scores)
    # At most floor(rate * n) clips may be above; the small tolerance keeps 0.1 * 10 at 1, not 0.
    allowed = min(int(math.floor(rate * len(ordered) + 1e-9)), len(ordered) - 1)
    return float(ordered[len(ordered) - 1 - allowed])


_FIT = {"percentile": _percentile, "gamma": _gamma, "false_alarm": _false_alarm}


def fit_threshold(train_scores, *, method: str = "percentile", level: float = 0.9) -> float:
    """Decision threshold from the scores of a model's own training normal clips.

    Parameters
    ----------
    train_scores : np.ndarray [shape=(n_clips,)]
        One score per training normal clip (never evaluation clips); finite, n_clips >= 1.
    method : {'percentile', 'gamma', 'false_alarm'}
        See the module docstring.
    level : float
        ``percentile`` and ``gamma``: the quantile, in (0, 1) (0.9 = 90th percentile).
        ``false_alarm``: the largest fraction of training normal clips allowed above the
        threshold, in [0, 1) (0 = the highest training score).

    Returns
    -------
    threshold : float
        A clip is anomalous when its score is greater than this.

    Raises
    ------
    MetricError
        Unknown `method`, `level` out of range, no scores, non-finite scores, or (gamma) a score <= 0.

    Examples
    --------
    >>> fit_threshold(np.arange(1.0, 12.0), method="percentile", level=0.9)
    10.0
    >>> fit_threshold(np.arange(1.0, 11.0), method="false_alarm", level=0.2)
    8.0
    """
    if method not in _FIT:
        raise MetricError(f"threshold method={method!r} must be one of: {', '.join(THRESHOLD_METHODS)}")
    low_ok = 0 <= level if method == "false_alarm" else 0 < level
    if isinstance(level, bool) or not isinstance(level, (int, float, np.number)) or not (low_ok and level < 1):
        expected = "[0, 1)" if method == "false_alarm" else "(0, 1)"
        raise MetricError(f"threshold level={level!r} must be in {expected} for method={method!r}")
    scores = np.asarray(train_scores, dtype=np.float64).ravel()
    if scores.size == 0:
        raise MetricError("no training scores to fit a threshold on")
    if not np.all(np.isfinite(scores)):
        raise MetricError(f"{int(np.sum(~np.isfinite(scores)))} non-finite training scores: cannot fit a threshold")
    return _FIT[method](scores, float(level))


def describe_threshold(method: str, level: float, *, n_clips: int | None = None) -> str:
    """One line saying how a threshold was fitted, e.g. for a model card."""
    clips = f"{n_clips} training normal clips" if n_clips is not None else "its training normal clips"
    text = {
        "percentile": f"{100 * level:g}th percentile of the scores of {clips}",
        "gamma": f"{level:g} quantile of a gamma distribution (loc 0) fitted to the scores of {clips}",
        "false_alarm": f"at most {100 * level:g}% of {clips} above it (target false-alarm rate {level:g})",
    }
    return text.get(method, f"{method} at level {level:g} on {clips}")
