"""Benchmark: ``transfer_mahalanobis``'s out-of-sample threshold scores, one Ledoit-Wolf fit per fold against sums.

Usage::

    python benchmarks/bench_leave_out.py [--clips 8,162] [--dim 320] [--repeat 3]

The threshold of ``transfer_mahalanobis`` scores each budget clip by the budget's Gaussian fitted without it (ten
folds, `common.features.clipvectors.out_of_sample`). Before: one `fit_gaussian` per fold on the other nine tenths of
the residuals (two products over them each). After: `common.scoring.mahalanobis.gaussians_without`, every fold's
Gaussian from the budget's sums less the fold's (one pass). Both on the same residual-like rows (clips of 309
vectors of `--dim` correlated values with a non-zero mean), scored as the method scores them (`selective` with a
source Gaussian). Prints the seconds of each, the speed-up, and the largest relative difference of the scores and
of the folds' precisions (float64 round-off: the sums are another order of the same arithmetic).

Then the head's budget Gaussian: before, `fit_gaussian` of the budget's rows after the folds' sums (two more products
over them); after, from the same sums (``gaussians_without(..., whole=True)``). Prints both with the folds', the
speed-up and the largest relative difference of the precisions. Last, ``transfer_mahalanobis``'s source Gaussian
(the source clips' residuals): `fit_gaussian` against the same sums without a block (``whole=True``).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _bench import VECTORS_PER_CLIP, load_line, machine_line


def residuals(n_clips: int, dim: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Residual-like float32 rows of `n_clips` clips of 309 vectors, and their offsets."""
    n = n_clips * VECTORS_PER_CLIP
    mix = rng.normal(size=(dim, dim)) / np.sqrt(dim)
    x = (rng.normal(size=(n, dim)) @ mix + 0.3 * rng.normal(size=dim)).astype(np.float32)
    return x, np.arange(0, n + 1, VECTORS_PER_CLIP)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", default="8,162", help="budget clips, comma list (default: 8,162; 675: all at "
                                                         "full MIMII size, 208,575 rows)")
    parser.add_argument("--dim", type=int, default=320, help="width of the residuals (default: 320)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls; the best counts (default: 3)")
    args = parser.parse_args(argv)
    from common.features.clipvectors import folds, out_of_sample
    from common.scoring.mahalanobis import fit_gaussian, gaussians_without, selective

    print(machine_line())
    print(f"load average {load_line()}")
    rng = np.random.default_rng(0)
    source = fit_gaussian(residuals(64, args.dim, rng)[0][::8])
    score = lambda g, r, o: selective(g, r, o)  # noqa: E731

    def before(x, o):
        return out_of_sample(lambda r, _: [source, fit_gaussian(r)], score, x, o)

    def after(x, o):
        return out_of_sample(None, score, x, o, fit_without=lambda r, c, parts: [
            [source, g] for g in gaussians_without(r, [(c[p[0]], c[p[-1] + 1]) for p in parts])])

    for n_clips in (int(v) for v in args.clips.split(",")):
        x, offsets = residuals(n_clips, args.dim, rng)
        times = {}
        for name, how in (("before", before), ("after", after)):
            how(x, offsets)  # warm-up
            times[name] = min(_seconds(how, x, offsets) for _ in range(args.repeat))
        old, new = before(x, offsets), after(x, offsets)
        parts = folds(n_clips) if n_clips > 1 else [[0], [0]]
        cut = offsets if n_clips > 1 else np.array([0, len(x) // 2, len(x)])  # one clip: its halves
        blocks = [(cut[p[0]], cut[p[-1] + 1]) for p in parts] if n_clips > 1 else [(0, cut[1]), (cut[1], cut[2])]
        precision = max(float(np.max(np.abs(g.precision - fit_gaussian(np.concatenate([x[:a], x[b:]])).precision))
                              / np.max(np.abs(g.precision))) for g, (a, b) in zip(gaussians_without(x, blocks), blocks))
        print(f"  {n_clips:4d} clips ({len(x):7,d} x {args.dim}): a fit per fold {times['before']:7.3f} s, sums "
              f"{times['after']:7.3f} s: {times['before'] / times['after']:5.1f}x; max relative difference: scores "
              f"{np.max(np.abs(old - new) / np.abs(old)):.1e}, precisions {precision:.1e}")
    print("the folds' Gaussians and the budget's own (transfer_mahalanobis's head):")
    for n_clips in (int(v) for v in args.clips.split(",")):
        x, offsets = residuals(n_clips, args.dim, rng)
        blocks = [(offsets[p[0]], offsets[p[-1] + 1]) for p in folds(n_clips)]  # as out_of_sample cuts them

        def head_before(x, o):  # the folds from sums, the whole set fitted again
            return gaussians_without(x, blocks) + [fit_gaussian(x)]

        def head_after(x, o):
            return gaussians_without(x, blocks, whole=True)

        times = {}
        for name, how in (("before", head_before), ("after", head_after)):
            how(x, offsets)
            times[name] = min(_seconds(how, x, offsets) for _ in range(args.repeat))
        old, new = head_before(x, offsets)[-1].precision, head_after(x, offsets)[-1].precision
        print(f"  {n_clips:4d} clips ({len(x):7,d} x {args.dim}): sums + fit_gaussian {times['before']:7.3f} s, sums "
              f"{times['after']:7.3f} s: {times['before'] / times['after']:5.2f}x; max relative difference of the "
              f"head's precision {np.max(np.abs(old - new)) / np.max(np.abs(old)):.1e}")
    x = residuals(128, args.dim, rng)[0]  # a source set of 4 machines x 32 clips (v1), at most 20,000 x 4 rows
    times = {name: min(_seconds(how, x, None) for _ in range(args.repeat)) for name, how in (
        ("before", lambda x, _: fit_gaussian(x)), ("after", lambda x, _: gaussians_without(x, [], whole=True)))}
    old, new = fit_gaussian(x).precision, gaussians_without(x, [], whole=True)[0].precision
    print(f"the source Gaussian ({len(x):,} x {args.dim}): fit_gaussian {times['before']:6.3f} s, from sums "
          f"{times['after']:6.3f} s: {times['before'] / times['after']:4.2f}x; max relative difference of the precision "
          f"{np.max(np.abs(old - new)) / np.max(np.abs(old)):.1e}")
    print(f"load average {load_line()}")
    return 0


def _seconds(how, x, offsets) -> float:
    start = time.perf_counter()
    how(x, offsets)
    return time.perf_counter() - start


if __name__ == "__main__":
    sys.exit(main())
