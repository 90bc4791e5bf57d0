"""One BLAS thread vs the default around the Ledoit-Wolf fits of lw_* and transfer_mahalanobis (issue 32).

    python benchmarks/bench_blas_threads.py [--rows 60] [--dim 160] [--repeats 50]

Prints ms per `common.scoring.mahalanobis.fit_gaussian`-sized fit (Ledoit-Wolf + pseudo-inverse of a dim x dim
covariance) with OpenBLAS' default threads and with one thread (`threadpoolctl`), and their ratio, in this run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.covariance import LedoitWolf
from threadpoolctl import threadpool_info, threadpool_limits

from _bench import load_line, machine_line


def fit(x: np.ndarray) -> np.ndarray:
    return np.linalg.pinv(LedoitWolf().fit(x).covariance_, hermitian=True)


def ms_per_fit(x: np.ndarray, repeats: int, threads: int | None) -> float:
    fit(x)
    start = time.perf_counter()
    for _ in range(repeats):
        if threads is None:
            fit(x)
        else:
            with threadpool_limits(limits=threads, user_api="blas"):
                fit(x)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=60)
    parser.add_argument("--dim", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    print(machine_line())
    print(load_line())
    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]
    print(f"BLAS libraries (api, default threads): {blas}")
    x = np.random.default_rng(0).normal(size=(args.rows, args.dim))
    default, one = ms_per_fit(x, args.repeats, None), ms_per_fit(x, args.repeats, 1)
    print(f"{args.rows} x {args.dim}: default threads {default:.1f} ms/fit, one thread {one:.1f} ms/fit "
          f"(incl. threadpoolctl), ratio default/one {default / one:.1f}x")


if __name__ == "__main__":
    main()
