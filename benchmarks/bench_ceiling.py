"""Benchmark: the arithmetic ceiling of this machine, measured: its best float32 matmul, in autoencoder samples/s.

Usage::

    python benchmarks/bench_ceiling.py [--sizes 1024,2048,4096] [--repeat 3] [--backend auto] [--json FILE]

Times n x n float32 matmuls (2 n^3 floating-point operations each) with numpy and with the Keras
backend's own ``keras.ops.matmul`` (after a warm-up per size; the product is converted to numpy, which
waits until it is ready), best of `--repeat` per size. The ceiling is the best rate of all. One
training sample of an autoencoder costs about 6 x its weights in operations (forward 2x, backward
4x), so no training loop can beat ``ceiling FLOP/s / (6 x n_weights)`` samples/s; n_weights is
counted on the real Keras model of the defaults (320 -> 64 -> 64 -> 8 -> 64 -> 64 -> 320).
The other benchmarks print their samples/s as a fraction of it (`run_all.py` passes it on as
``--ceiling-gflops``; without it they measure it themselves with `measure`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

from _bench import add_backend_option, backend_line, load_line, machine_line, use_backend

import numpy as np

SIZES = (1024, 2048, 4096)
FLOPS_PER_WEIGHT = 6  # per training sample: forward 2 (multiply + add), backward 4 (two products per weight)


def matmul_gflops(matmul: Callable, a, b, *, n: int, repeat: int) -> float:
    """Best GFLOP/s of ``matmul(a, b)`` (n x n) over `repeat` timed calls after one warm-up call."""
    matmul(a, b)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        matmul(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def measure(sizes=SIZES, *, repeat: int = 3, seed: int = 0) -> dict:
    """GFLOP/s of numpy's and the Keras backend's matmul per size, and the best of all (the ceiling)."""
    import keras

    rng = np.random.default_rng(seed)
    rates: dict[str, dict[int, float]] = {"numpy": {}, f"keras.ops ({keras.backend.backend()})": {}}
    keras_name = list(rates)[1]
    for n in sizes:
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        rates["numpy"][n] = matmul_gflops(np.matmul, a, b, n=n, repeat=repeat)
        ta, tb = keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)
        rates[keras_name][n] = matmul_gflops(lambda x, y: keras.ops.convert_to_numpy(keras.ops.matmul(x, y)),
                                             ta, tb, n=n, repeat=repeat)
    gflops, lib, n = max((g, lib, n) for lib, by_n in rates.items() for n, g in by_n.items())
    return {"rates": rates, "gflops": gflops, "library": lib, "n": n, "backend": keras.backend.backend()}


def n_weights(input_dim: int = 320, *, hidden=(64, 64), bottleneck: int = 8, batch_norm: bool = False) -> int:
    """Parameters of the real Keras autoencoder of this architecture (`common.models.autoencoder.build_autoencoder`)."""
    from common.models.autoencoder import build_autoencoder

    return int(build_autoencoder(input_dim, hidden=tuple(hidden), bottleneck=bottleneck,
                                 batch_norm=batch_norm).count_params())


def ceiling_samples(gflops: float, weights: int) -> float:
    """Training samples/s at `gflops` if every operation were a matmul at that rate (6 x weights per sample)."""
    return gflops * 1e9 / (FLOPS_PER_WEIGHT * weights)


def ceiling_line(gflops: float, weights: int, *, measured_here: bool) -> str:
    """One line naming the ceiling a benchmark divides by, and where it came from."""
    where = "measured in this process" if measured_here else "from bench_ceiling.py in this run"
    return (f"ceiling: {gflops:,.0f} GFLOP/s ({where}) / ({FLOPS_PER_WEIGHT} x {weights:,} weights) = "
            f"{ceiling_samples(gflops, weights):,.0f} samples/s")


def ceiling_gflops(given: float | None) -> tuple[float, bool]:
    """(GFLOP/s, measured here): `given` (``--ceiling-gflops``) or a fresh `measure` when None."""
    if given is not None:
        return float(given), False
    return measure()["gflops"], True


def step_rate(*, batch_size: int = 512, steps: int = 16, calls: int = 40) -> float | None:
    """Samples/s of the compiled training step alone (`common.models.compiled_fit`, JAX only) on a chunk already on
    the device, called over and over: no data read, gathered or copied. What no fit of this model and batch
    size can beat on this backend; None off JAX."""
    from common.models import compiled_fit
    import keras
    from common.models.train import Trainer

    if keras.backend.backend() != "jax":
        return None
    import jax

    arch = {"input_dim": 320, "hidden": [64, 64], "bottleneck": 8, "batch_norm": False}
    model = Trainer().model(arch)
    programs = compiled_fit.Programs(model, batch_size)
    xs = jax.device_put(np.random.default_rng(0).normal(size=(steps, batch_size, 320)).astype(np.float32))
    mask = jax.device_put(np.ones((steps, batch_size), np.float32))
    state = jax.tree_util.tree_map(lambda v: jax.numpy.array(v.value, copy=True), (
        model.trainable_variables, model.non_trainable_variables, model.optimizer.variables))
    state = tuple(list(part) for part in state)
    state, total = programs.train_batches(state, xs, mask)
    total.block_until_ready()
    start = time.perf_counter()
    for _ in range(calls):
        state, total = programs.train_batches(state, xs, mask)
    total.block_until_ready()
    return calls * steps * batch_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma list of n (default: 1024,2048,4096)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls per size and library; the best counts")
    parser.add_argument("--json", type=Path, help="also write the result to this JSON file (run_all.py reads it)")
    add_backend_option(parser)
    args = parser.parse_args(argv)
    use_backend(args.backend)

    result = measure(tuple(int(n) for n in args.sizes.split(",")), repeat=args.repeat)
    weights = n_weights()
    print(machine_line())
    print(f"{backend_line()}, float32, best of {args.repeat} after a warm-up, load average {load_line()}")
    for lib, by_n in result["rates"].items():
        print(f"  {lib:24s} " + "  ".join(f"n={n}: {g:6,.0f} GFLOP/s" for n, g in by_n.items()))
    print(f"CEILING (measured, not assumed): {result['gflops']:,.0f} GFLOP/s, {result['library']} at "
          f"n={result['n']}; default autoencoder {weights:,} weights x {FLOPS_PER_WEIGHT} FLOP per sample = "
          f"{ceiling_samples(result['gflops'], weights):,.0f} samples/s")
    ceiling = ceiling_samples(result["gflops"], weights)
    best_step = max((step_rate() or 0.0) for _ in range(args.repeat))
    if best_step:
        print(f"compiled training step alone (batch 512, data on the device, nothing read or copied): "
              f"{best_step:,.0f} samples/s = {100 * best_step / ceiling:.1f} % of the ceiling: the most any fit of "
              f"this model can reach here")
    if args.json:
        args.json.write_text(json.dumps({**result, "weights": weights,
                                         "samples_s": ceiling_samples(result["gflops"], weights)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
