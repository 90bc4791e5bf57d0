"""Benchmark: the scoring pieces of the grid's cells (Mahalanobis, the autoencoder's forward pass), before and after
issue 32's changes, in the same run.

Usage::

    python benchmarks/bench_mahalanobis.py [--rows 2472,20000] [--dim 320] [--fits 20] [--repeat 3]

Two changes in `common.scoring.mahalanobis`, each timed against the code it replaced, on the same arrays:

1. ``mahalanobis``: the squared distances as one matrix product and a row-wise dot (in chunks of
   `MAHALANOBIS_ROWS` rows), where ``np.einsum("ij,jk,ik->i", d, P, d)`` ran a three-operand loop without BLAS.
   Rows: a budget of 8 clips of 309 vectors and of 65 clips (231,750 rows: ``all`` at full MIMII size).
   Then, from as many rows as dimensions, the full product ``d P`` against the Cholesky factor's triangular product
   ``Lᵀ dᵀ`` that replaced it (half the operations).
2. ``fit_gaussian``'s covariance: `common.scoring.mahalanobis.ledoit_wolf`, scikit-learn's Ledoit-Wolf computation
   with the centred product made once, where ``LedoitWolf().fit(x)`` made it twice, validated the rows three times
   and computed a pseudo-inverse (an eigendecomposition) that was thrown away. Timed over `--fits` fits of 60 x 160
   rows (statistics family), 2,472 x 320 and 50,000 x 320 (residuals of ``transfer_mahalanobis``: 8 and 162 budget
   clips), on one BLAS thread as `fit_gaussian` runs them.

3. ``common.models.inference.outputs``, the autoencoder's forward pass of every scoring (reconstruction errors,
   residuals): one jitted program per model on JAX, where the direct call of a Keras model ran op by op. Timed on
   the evaluation clips of a full-size target (500 clips x 309 vectors of 320) with the grid's autoencoder, 8,192
   rows a call; the outputs are identical. Then the reconstruction errors from those outputs: before, ``x - out``
   and its square as new arrays; after, both in place of the outputs (`reconstruction_errors`); identical errors.

Prints the seconds of each, the speed-up, and the largest relative difference of the results (the covariances are
identical; the distances differ by float64 rounding only).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from _bench import best_seconds as best, load_line, machine_line


def einsum_distances(mean: np.ndarray, precision: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The distances as `common.scoring.mahalanobis.mahalanobis` computed them before (three-operand einsum)."""
    d = np.atleast_2d(np.asarray(x, dtype=np.float64)) - mean
    return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, precision, d), 0.0))


def full_product(mean: np.ndarray, precision: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The distances as `common.scoring.mahalanobis.mahalanobis` computed them before the Cholesky factor: ``d P``,
    then a row-wise dot, in chunks of 32,768 rows."""
    x = np.atleast_2d(x)
    squared = np.empty(len(x))
    for a in range(0, len(x), 32768):
        d = np.asarray(x[a:a + 32768], dtype=np.float64) - mean
        squared[a:a + 32768] = np.einsum("ij,ij->i", d @ precision, d)
    return np.sqrt(np.maximum(squared, 0.0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="2472,20000",
                        help="rows of the distance calls, comma list (default: 2472,20000; 154500: a full-size "
                             "target's evaluation clips; 231750: budget all at full size)")
    parser.add_argument("--dim", type=int, default=320, help="width of the rows (default: 320, the residuals)")
    parser.add_argument("--fits", type=int, default=20, help="Ledoit-Wolf fits per timing (default: 20)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls; the best counts (default: 3)")
    args = parser.parse_args(argv)
    from sklearn.covariance import LedoitWolf
    from threadpoolctl import threadpool_limits

    from common.scoring.mahalanobis import fit_gaussian, ledoit_wolf, mahalanobis

    print(machine_line())
    print(f"load average {load_line()}")
    rng = np.random.default_rng(0)
    g = fit_gaussian(rng.normal(size=(4000, args.dim)).astype(np.float32))
    print("1. distances of n rows from one Gaussian (float32 rows, as residuals are)")
    for n in (int(v) for v in args.rows.split(",")):
        x = rng.normal(size=(n, args.dim)).astype(np.float32)
        before = best(lambda: einsum_distances(g.mean, g.precision, x), args.repeat)
        after = best(lambda: mahalanobis(g, x), args.repeat)
        old, new = einsum_distances(g.mean, g.precision, x), mahalanobis(g, x)
        full = best(lambda: full_product(g.mean, g.precision, x), args.repeat)
        with threadpool_limits(limits=1, user_api="blas"):  # as each of two one-core workers runs it
            one = best(lambda: full_product(g.mean, g.precision, x), args.repeat) / best(lambda: mahalanobis(g, x),
                                                                                           args.repeat)
        print(f"  n={n:7,d}: einsum {1e3 * before:9.1f} ms, full matrix product {1e3 * full:8.1f} ms, now "
              f"{1e3 * after:8.1f} ms: {before / after:5.1f}x, {full / after:4.2f}x (one BLAS thread: {one:4.2f}x); "
              f"max relative difference "
              f"{np.max(np.abs(old - new) / old):.1e}, to the full product "
              f"{np.max(np.abs(full_product(g.mean, g.precision, x) - new) / new):.1e}")
    print(f"2. Ledoit-Wolf covariances (one BLAS thread), {args.fits} fits per timing")
    for n, dim in ((60, 160), (2472, args.dim), (50000, args.dim)):
        xs = [rng.normal(size=(n, dim)) for _ in range(max(1, args.fits * 2472 // max(n, 2472)))]

        def fits(how) -> list[np.ndarray]:
            with threadpool_limits(limits=1, user_api="blas"):
                return [how(x) for x in xs]

        def before(x: np.ndarray) -> np.ndarray:
            return LedoitWolf().fit(x).covariance_

        old, new = best(lambda: fits(before), args.repeat), best(lambda: fits(ledoit_wolf), args.repeat)
        same = all(np.array_equal(a, b) for a, b in zip(fits(before), fits(ledoit_wolf)))
        print(f"  {n:6d} x {dim}: LedoitWolf().fit {1e3 * old / len(xs):8.1f} ms per fit, ledoit_wolf "
              f"{1e3 * new / len(xs):7.1f} ms: {old / new:4.2f}x; covariances identical: {same}")
    forward_pass(args.repeat)
    print(f"load average {load_line()}")
    return 0


def forward_pass(repeat: int, *, clips: int = 500, per_clip: int = 309) -> None:
    """3.: the grid's autoencoder on a full-size target's evaluation vectors, op by op and compiled."""
    import keras

    from common.models.autoencoder import architecture
    from common.models.inference import compiled, forward, outputs
    from common.models.train import Trainer

    arch = architecture(320, hidden=(64, 64), bottleneck=8, batch_norm=False)
    trainer = Trainer()
    model = trainer.with_weights(arch, trainer.init_weights(arch, seed=0))
    x = np.random.default_rng(1).normal(size=(clips * per_clip, 320)).astype(np.float32)

    def direct() -> np.ndarray:  # what outputs did before: the Keras model called directly
        return np.concatenate([keras.ops.convert_to_numpy(model(x[i:i + 8192], training=False))
                               for i in range(0, len(x), 8192)])

    before, after = best(direct, repeat), best(lambda: outputs(model, x), repeat)
    same = np.array_equal(direct(), outputs(model, x))
    print(f"3. the autoencoder's forward pass, {len(x):,} rows ({keras.backend.backend()}; compiled: "
          f"{compiled(model)}): "
          f"direct call {1e3 * before:7.1f} ms, outputs {1e3 * after:7.1f} ms: {before / after:4.2f}x; "
          f"outputs identical: {same}")
    def concatenated() -> np.ndarray:  # the compiled call's batches concatenated (before the array was filled in place)
        call = forward(model)
        return np.concatenate([call(x[i:i + 8192]) for i in range(0, len(x), 8192)])

    before, after = best(concatenated, repeat), best(lambda: outputs(model, x), repeat)
    print(f"   compiled, batches concatenated {1e3 * before:7.1f} ms, filled in place {1e3 * after:7.1f} ms: "
          f"{before / after:4.2f}x; identical: {np.array_equal(concatenated(), outputs(model, x))}")
    out = outputs(model, x)

    def errors_before() -> np.ndarray:
        return np.mean(np.square(x - out.copy()), axis=1)

    def errors_after() -> np.ndarray:
        new = out.copy()  # (both copy the outputs, which the call consumes)
        np.subtract(x, new, out=new)
        return np.mean(np.square(new, out=new), axis=1)

    before, after = best(errors_before, repeat), best(errors_after, repeat)
    print(f"   reconstruction errors from the outputs: new arrays {1e3 * before:6.1f} ms, in place "
          f"{1e3 * after:6.1f} ms (each with a 200 MB copy of the outputs): {before / after:4.2f}x; identical: "
          f"{np.array_equal(errors_before(), errors_after())}")
    from common.scoring.reconstruction import residual_clip_scores

    res, offsets = x - out, np.arange(0, len(x) + 1, per_clip)

    def shared_before() -> np.ndarray:  # the first version: the square of the shared residuals as a new array
        errors = np.mean(np.square(res), axis=1)
        return np.add.reduceat(errors.astype(np.float64), offsets[:-1]) / np.diff(offsets)

    before, after = best(shared_before, repeat), best(lambda: residual_clip_scores(res, offsets), repeat)
    print(f"   clip scores from shared residuals: a new square {1e3 * before:6.1f} ms, in chunks {1e3 * after:6.1f} ms: "
          f"{before / after:4.2f}x; identical: {np.array_equal(shared_before(), residual_clip_scores(res, offsets))}")


if __name__ == "__main__":
    sys.exit(main())
