"""Mahalanobis scoring: a Gaussian of normal sound (mean, shrinkage covariance) and a clip's distance from it.

Two uses (`common.methods.autoencoder`, `common.methods.statistics`): the DCASE 2023+ baseline's *selective*
Mahalanobis on an autoencoder's residuals (one Gaussian from the source clips, one from the target's,
the smaller distance counts) and statistical transfer without a network (covariance from the source
machines, mean from the target's few clips). The covariance is Ledoit-Wolf shrunk (scikit-learn),
so a few clips in many dimensions still give an invertible one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.linalg.blas import dtrmm
from threadpoolctl import threadpool_limits
from sklearn.covariance import LedoitWolf

from common.errors import MetricError

LEDOIT_WOLF_BLOCK = 1000  # scikit-learn's block_size: from this width on, `ledoit_wolf` leaves the fit to it
MAHALANOBIS_ROWS = 32768  # rows scored at a time: bounds the two temporary arrays (32768 x 320 float64: 84 MB each)


@dataclass(frozen=True)
class Gaussian:
    """The mean and precision (inverse covariance) of normal sound in some feature space."""

    mean: np.ndarray
    precision: np.ndarray

    @cached_property
    def factor(self) -> np.ndarray | None:
        """The precision's lower Cholesky factor (float64, Fortran order for BLAS), or None when it is not positive
        definite (a pseudo-inverse of a singular covariance); computed once per Gaussian, on one BLAS thread (on a
        320 x 320 matrix OpenBLAS' threads wait on each other: 40 ms a call at load 3 in the grid's profile)."""
        with threadpool_limits(limits=1, user_api="blas"):
            try:
                return np.asfortranarray(np.linalg.cholesky(np.asarray(self.precision, dtype=np.float64)))
            except np.linalg.LinAlgError:
                return None


def fit_gaussian(x: np.ndarray, *, mean: np.ndarray | None = None) -> Gaussian:
    """A Ledoit-Wolf Gaussian of the rows of `x`; `mean` replaces their mean (covariance from `x`, centre elsewhere).

    With a single row the covariance is unknown: the identity is used (Euclidean distance).
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if len(x) == 0:
        raise MetricError("cannot fit a Gaussian to no vectors")
    if not np.all(np.isfinite(x)):
        raise MetricError("cannot fit a Gaussian to vectors holding NaN or inf")
    centre = x.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64)
    if len(x) < 2:
        return Gaussian(centre, np.eye(x.shape[1]))
    # One BLAS thread: on these small matrices (~160 x 160) OpenBLAS' threads wait on each other (5x slower on 2 cores).
    with threadpool_limits(limits=1, user_api="blas"):
        return Gaussian(centre, np.linalg.pinv(ledoit_wolf(x), hermitian=True))


def ledoit_wolf(x: np.ndarray) -> np.ndarray:
    """The Ledoit-Wolf shrunk covariance of the rows of `x`: ``LedoitWolf().fit(x).covariance_``, bit for bit.

    scikit-learn multiplies the centred rows by themselves twice (once for the shrinkage, once for the covariance),
    validates the rows three times and, with its default ``store_precision=True``, inverts the result and throws the
    inverse away; on the 208,000 x 320 residuals of a full-size ``transfer_mahalanobis`` budget that is a third of
    the work. This is its computation (scikit-learn 1.9, `sklearn.covariance._shrunk_covariance._ledoit_wolf`) with
    the product made once; widths of one or of 1,000 and more (its blocked form) go to scikit-learn itself.

    Parameters
    ----------
    x : np.ndarray [shape=(n_rows >= 2, n_features), float64, finite]

    Returns
    -------
    covariance : np.ndarray [shape=(n_features, n_features)]
    """
    n_samples, n_features = x.shape
    if n_features == 1 or n_features >= LEDOIT_WOLF_BLOCK:
        return LedoitWolf(assume_centered=False, store_precision=False).fit(x).covariance_
    xc = x - x.mean(0)
    x2 = xc**2
    emp_cov_trace = np.sum(x2, axis=0) / n_samples
    gram = np.dot(xc.T, xc)  # scikit-learn's delta_ and empirical covariance: the same product, the same numbers
    return _shrunk(gram, emp_cov_trace, np.sum(np.dot(x2.T, x2)), n_samples)


def _shrunk(gram: np.ndarray, emp_cov_trace: np.ndarray, beta_: float, n_samples: int) -> np.ndarray:
    """Ledoit-Wolf's shrunk covariance from the centred rows' product `gram`, its diagonal over the rows
    `emp_cov_trace` and ``beta_``, the sum over rows of their squared norm squared (scikit-learn's lines)."""
    n_features = len(gram)
    mu = np.sum(emp_cov_trace) / n_features
    delta_ = np.sum(gram**2) / n_samples**2
    beta = 1.0 / (n_features * n_samples) * (beta_ / n_samples - delta_)
    delta = (delta_ - 2.0 * mu * emp_cov_trace.sum() + n_features * mu**2) / n_features
    beta = min(beta, delta)
    shrinkage = 0 if beta == 0 else beta / delta
    emp_cov = gram / n_samples
    shrunk = (1.0 - shrinkage) * emp_cov
    shrunk.flat[:: n_features + 1] += shrinkage * (np.sum(np.trace(emp_cov)) / n_features)
    return shrunk


def gaussians_without(x: np.ndarray, blocks, *, whole: bool = False) -> list[Gaussian]:
    """`fit_gaussian` of the rows of `x` without each block ``x[a:b]`` of `blocks` (pairs ``(a, b)``), from sums.

    A threshold's out-of-sample scores (`common.features.clipvectors.out_of_sample`) need one Gaussian per fold,
    each of every row but the fold's: ten Ledoit-Wolf fits, each two products over nine tenths of the rows. All
    the fit needs of a set of rows is a few sums (count, sum, the product ``yᵀy``, each row's squared norm, its
    square, and the rows weighted by it); a complement's are the whole set's less its block's, so one pass over
    the rows gives every fold. The rows are shifted by the whole set's mean first, so that no sum cancels much;
    the covariances then agree with `ledoit_wolf` of the same rows to float64 round-off (about 1e-13 relative,
    ``benchmarks/bench_leave_out.py``), not bit for bit. A complement of fewer than two rows, a width of one or
    of `LEDOIT_WOLF_BLOCK` and more go to `fit_gaussian` itself.

    ``whole=True`` appends the Gaussian of every row of `x`, from the same sums (the complement of no block):
    ``transfer_mahalanobis``'s head then costs no third and fourth product over its budget's rows.
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    blocks = [(int(a), int(b)) for a, b in blocks]
    if not np.all(np.isfinite(x)):
        raise MetricError("cannot fit a Gaussian to vectors holding NaN or inf")
    n_features = x.shape[1]
    simple = n_features == 1 or n_features >= LEDOIT_WOLF_BLOCK
    shift = x.mean(axis=0)
    sums = [_sums(x[a:b] - shift) for a, b in blocks]
    tiled = [0] + [b for _, b in sorted(blocks)] == [a for a, _ in sorted(blocks)] + [len(x)]
    total = [sum(parts) for parts in zip(*sums)] if tiled else _sums(x - shift)  # blocks that tile x: no other pass
    none = (0, 0.0, 0.0, 0.0, 0.0, 0.0)  # the sums of no row: the whole set's Gaussian
    out = []
    for (a, b), block in zip(blocks + [(0, 0)] * whole, sums + [none] * whole):
        if simple or len(x) - (b - a) < 2:
            out.append(fit_gaussian(np.concatenate([x[:a], x[b:]])))
            continue
        n, s1, s2, a1, a2, v = (t - u for t, u in zip(total, block))
        m = s1 / n
        c = m @ m
        gram = s2 - n * np.outer(m, m)
        beta_ = a2 - 4 * (m @ v) + 4 * (m @ s2 @ m) + 2 * c * a1 - 4 * c * (m @ s1) + n * c * c
        with threadpool_limits(limits=1, user_api="blas"):
            out.append(Gaussian(shift + m, np.linalg.pinv(_shrunk(gram, np.diag(gram) / n, beta_, int(n)),
                                                          hermitian=True)))
    return out


def _sums(y: np.ndarray) -> tuple:
    """The sums `gaussians_without` needs of rows `y`: count, sum, ``yᵀy``, and of the squared norms a: sum, sum of
    squares, ``aᵀy``."""
    a = np.einsum("ij,ij->i", y, y)
    return len(y), y.sum(axis=0), y.T @ y, a.sum(), a @ a, a @ y


def mahalanobis(g: Gaussian, x: np.ndarray) -> np.ndarray:
    """The Mahalanobis distance of each row of `x` from `g` [shape=(n_rows,)].

    With at least as many rows as dimensions and a positive definite precision ``P = L Lᵀ`` (Cholesky), a row's
    squared distance is ``|Lᵀ d|²``: a triangular product (BLAS ``trmm``), half the operations of ``d P`` and 1.6x
    faster on the grid's 320-wide residuals; it agrees with ``dᵀ P d`` to float64 round-off (about 1e-15 relative,
    ``benchmarks/bench_mahalanobis.py``). Otherwise, or where ``P`` has no Cholesky factor, the full product.
    """
    x = np.atleast_2d(x)
    squared = np.empty(len(x))
    factor = g.factor if len(x) >= len(g.precision) else None
    for a in range(0, len(x), MAHALANOBIS_ROWS):
        d = np.asarray(x[a:a + MAHALANOBIS_ROWS], dtype=np.float64) - g.mean
        if factor is None:
            # One matrix product, then a row-wise dot: a three-operand einsum does not use BLAS (15x slower at 320 x 320).
            squared[a:a + MAHALANOBIS_ROWS] = np.einsum("ij,ij->i", d @ g.precision, d)
        else:  # Lᵀ dᵀ in place: dᵀ of the C-ordered rows is the Fortran-ordered matrix BLAS takes without a copy
            y = dtrmm(1.0, factor, d.T, lower=1, trans_a=1, overwrite_b=1).T
            squared[a:a + MAHALANOBIS_ROWS] = np.einsum("ij,ij->i", y, y)
    return np.sqrt(np.maximum(squared, 0.0))


def selective(gaussians: list[Gaussian], x: np.ndarray, offsets: np.ndarray | None = None) -> np.ndarray:
    """The smallest distance of each row (or each clip's mean over its rows, given `offsets`) over `gaussians`."""
    per = []
    for g in gaussians:
        d = mahalanobis(g, x)
        if offsets is not None:
            d = np.add.reduceat(d, offsets[:-1]) / np.diff(offsets)
        per.append(d)
    return np.min(per, axis=0)


def to_arrays(gaussians: list[Gaussian]) -> dict[str, np.ndarray]:
    """The arrays a saved model stores for `gaussians` (`from_arrays` reads them back)."""
    return {f"{name}_{i}": getattr(g, name) for i, g in enumerate(gaussians) for name in ("mean", "precision")}


def from_arrays(arrays) -> list[Gaussian]:
    """The Gaussians of `to_arrays`."""
    n = len([k for k in arrays if k.startswith("mean_")])
    return [Gaussian(np.asarray(arrays[f"mean_{i}"]), np.asarray(arrays[f"precision_{i}"])) for i in range(n)]
