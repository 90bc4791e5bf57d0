"""Benchmark: our training loop (`common.models.train.Trainer`) vs a plain Keras ``model.fit`` on the same arrays.

Usage::

    python benchmarks/bench_training.py [--vectors 100000] [--epochs 5] [--batch-size 512] [--repeat 3]

Every variant trains the same autoencoder (320 -> 64 -> 64 -> 8 -> 64 -> 64 -> 320, the defaults) from
the same seeded initial weights, with the same batch size, epochs, Adam learning rate and
``validation_split``, on the same vectors (low-rank plus noise, like stacked log-mel frames):

- ``plain``: ``build_autoencoder`` + ``compile`` + ``model.fit(x, x)`` on an in-memory array, what
  a user would write (the reference);
- ``trainer``: ``Trainer().fit`` in a fresh `Trainer` (compiles and traces, like plain);
- ``trainer, reused``: a second fit in the same `Trainer` (what the experiments do for every
  model after the first);
- ``stream``: ``Trainer(in_memory_bytes=0, frames_bytes=0).fit`` (a fresh `Trainer`, like ``trainer``) on a
  `VectorSet` over 12 memory-mapped ``.npy`` parts (one per machine of a v4 pretrain), read a
  batch at a time instead of concatenated (what pretraining does above ``fit.max_in_memory_mb``).

Then the small-fit case of fine-tuning: `--small-fits` fits of `--small-vectors` vectors, each a
fresh plain model vs one `Trainer` for all. Variants run interleaved, `--repeat` times, and the
best time counts (the machine is shared; slower runs measure the neighbours). samples/s =
training vectors x epochs / wall seconds of the whole call (build, compile, fit, validation), and
is printed as a fraction of the machine's arithmetic ceiling (`bench_ceiling.py`: the best float32
matmul / (6 x the model's weights); ``--ceiling-gflops`` passes it in, else it is measured here).

Last, the per-fit fixed cost of a warm `Trainer` (model compiled): fits of 1, 2, 4, 8 and 16 clips'
worth of vectors (309 per 10 s clip), 20 epochs (``transfer.epochs``), each size fitted twice and
the second timing used (the first traces the new last-batch size); the intercept of a straight
line seconds = fixed + samples / rate through them is the fixed cost (target < 0.1 s). Drawing
initial weights (scratch fits) and saving a model with its sidecar are timed beside it.
The Keras backend is the project's default (`common.backend`) unless ``--backend`` names one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _bench import VECTORS_PER_CLIP, add_backend_option, backend_line, load_line, machine_line, use_backend
from bench_ceiling import ceiling_gflops, ceiling_line, ceiling_samples, n_weights

import numpy as np

from common.features.vectorset import VectorSet

TARGET_RATIO = 1.0
LOSS_TOLERANCE = 0.05  # final losses within 5 % count as equal (the shuffles differ)
TARGET_FIXED_S = 0.1  # issue 17: per-fit fixed cost below 0.1 s
FIXED_CLIPS = (1, 2, 4, 8, 16)  # fit sizes of the fixed-cost line, in clips' worth of vectors
FIXED_EPOCHS = 20  # transfer.epochs of the defaults


def make_vectors(n: int, dim: int = 320, *, seed: int = 0, signal: float = 0.2) -> np.ndarray:
    """`n` float32 vectors: `signal` x a rank-8 pattern plus unit noise (the loss floor is 1.0).

    A weak pattern makes the loss after a few epochs nearly independent of the shuffle order
    (which differs between variants), so final losses can be compared; with a strong one the
    order alone moves the loss after 3 epochs by up to 30 %.
    """
    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(8, dim)).astype(np.float32)
    x = rng.normal(size=(n, 8)).astype(np.float32) @ basis
    x *= signal
    x += rng.normal(size=(n, dim)).astype(np.float32)
    return x


def write_parts(x: np.ndarray, folder: Path, n_parts: int) -> VectorSet:
    """`x` saved as `n_parts` ``.npy`` files and opened memory-mapped as one `VectorSet`."""
    parts = []
    for i, chunk in enumerate(np.array_split(x, n_parts)):
        np.save(folder / f"part{i}.npy", chunk)
        parts.append((np.load(folder / f"part{i}.npy", mmap_mode="r"), None))
    return VectorSet(parts)


def plain_fit(arch: dict, x: np.ndarray, *, seed: int, **kw) -> dict:
    """A fresh model built, compiled and fitted with ``model.fit``, as a user would write it; its history."""
    import keras

    from common.models.autoencoder import build_autoencoder
    from common.models.train import set_seed

    set_seed(seed)
    model = build_autoencoder(arch["input_dim"], hidden=arch["hidden"], bottleneck=arch["bottleneck"],
                              batch_norm=arch["batch_norm"])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=kw["learning_rate"]), loss="mean_squared_error")
    set_seed(seed)
    h = model.fit(x, x, epochs=kw["epochs"], batch_size=kw["batch_size"], validation_split=kw["validation_split"],
                  shuffle=True, verbose=0)
    return h.history


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def variants(arch: dict, x: np.ndarray, vset: VectorSet, small: np.ndarray, reused, args: argparse.Namespace,
             kw: dict) -> dict:
    """The timed variants by name, each a call returning its history (or the small fits' histories)."""
    from common.models.train import Trainer

    small_kw = {**kw, "epochs": args.small_epochs}

    def trainer_fit(data, trainer=None):
        t = trainer or Trainer()
        return t.fit(arch, t.init_weights(arch, seed=0), data, seed=0, **kw).history

    def plain_small():
        return [plain_fit(arch, small, seed=s, **small_kw) for s in range(args.small_fits)]

    def trainer_small():
        t = Trainer()
        return [t.fit(arch, t.init_weights(arch, seed=s), small, seed=s, **small_kw).history
                for s in range(args.small_fits)]

    return {
        "plain": lambda: plain_fit(arch, x, seed=0, **kw),
        "trainer": lambda: trainer_fit(x),
        "trainer, reused": lambda: trainer_fit(x, reused),
        "stream": lambda: trainer_fit(vset, Trainer(in_memory_bytes=0, frames_bytes=0)),
        "small plain": plain_small,
        "small trainer": trainer_small,
    }


def run(args: argparse.Namespace) -> dict:
    """Every variant `--repeat` times, interleaved; best seconds, samples/s and final loss of each."""
    from common.models.autoencoder import architecture
    from common.models.train import Trainer, validation_rows

    arch = architecture(args.dim, hidden=(64, 64), bottleneck=8, batch_norm=args.batch_norm)
    kw = dict(epochs=args.epochs, batch_size=args.batch_size, learning_rate=1e-3, validation_split=0.1)
    x = make_vectors(args.vectors, args.dim)
    small = make_vectors(args.small_vectors, args.dim, seed=1)
    n_big = validation_rows(len(x), kw["validation_split"]) * args.epochs
    n_small = validation_rows(len(small), kw["validation_split"]) * args.small_epochs * args.small_fits

    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        vset = write_parts(x, Path(tmp), 12)
        # Warm-up: imports, the backend's first compile, page cache of the parts.
        plain_fit(arch, x[:2000], seed=0, **{**kw, "epochs": 1})
        Trainer(in_memory_bytes=0, frames_bytes=0).fit(arch, Trainer().init_weights(arch, seed=0), vset, **{**kw, "epochs": 1})
        reused = Trainer()
        reused.fit(arch, reused.init_weights(arch, seed=0), x[:2000], **{**kw, "epochs": 1})

        calls = variants(arch, x, vset, small, reused, args, kw)
        times: dict[str, list[float]] = {k: [] for k in calls}
        histories: dict[str, object] = {}
        for _ in range(args.repeat):  # interleaved: every variant sees the same neighbours
            for name, fn in calls.items():
                seconds, histories[name] = timed(fn)
                times[name].append(seconds)
        vset.close()

    best = {k: min(v) for k, v in times.items()}
    rate = {k: (n_small if k.startswith("small") else n_big) / t for k, t in best.items()}
    final = {k: (h[-1]["loss"][-1] if isinstance(h, list) else h["loss"][-1]) for k, h in histories.items()}
    return {"rate": rate, "best": best, "final": final, "n_big": n_big, "n_small": n_small}


def fixed_cost(args: argparse.Namespace, *, clips=FIXED_CLIPS, epochs: int = FIXED_EPOCHS) -> dict:
    """Per-fit fixed cost of a warm `Trainer`: the intercept of seconds vs samples over fits of `clips` sizes.

    Each size is fitted twice from the same initial weights; the first fit of a size traces its new
    last-batch shapes, the second is the warm timing the line goes through.
    """
    from common.models.autoencoder import architecture
    from common.models.train import Trainer, validation_rows

    arch = architecture(args.dim, hidden=(64, 64), bottleneck=8, batch_norm=args.batch_norm)
    kw = dict(epochs=epochs, batch_size=args.batch_size, learning_rate=5e-4, validation_split=0.1, seed=0)
    x = make_vectors(max(clips) * VECTORS_PER_CLIP, args.dim, seed=2)
    trainer = Trainer()
    weights = trainer.init_weights(arch, seed=0)
    trainer.fit(arch, weights, x[:2000], **{**kw, "epochs": 1})  # compile
    rows = []
    for c in clips:
        part = x[: c * VECTORS_PER_CLIP]
        first, _ = timed(lambda: trainer.fit(arch, weights, part, **kw))
        second, _ = timed(lambda: trainer.fit(arch, weights, part, **kw))
        rows.append((c, validation_rows(len(part), 0.1) * epochs, first, second))
    samples, seconds = np.array([r[1] for r in rows], float), np.array([r[3] for r in rows])
    slope, intercept = np.polyfit(samples, seconds, 1)
    return {"rows": rows, "fixed": float(intercept), "rate": float(1 / slope) if slope > 0 else float("nan"),
            "retrace": float(np.mean([r[2] - r[3] for r in rows])), "side": side_costs(trainer, arch, weights)}


def side_costs(trainer, arch: dict, weights: list, *, repeat: int = 5) -> dict:
    """Best seconds of drawing initial weights (every scratch fit) and of saving a model with its sidecar."""
    from common.models.saved import save_model

    init = min(timed(lambda: trainer.init_weights(arch, seed=1))[0] for _ in range(repeat))
    sidecar = {"method": "scratch", "budget": "all", "seed": 0, "train_scores": [0.0] * 100, "threshold": 1.0}
    with tempfile.TemporaryDirectory(prefix="bench_save_") as tmp:
        save = min(timed(lambda: save_model(trainer.with_weights(arch, weights), Path(tmp) / "model",
                                            sidecar=sidecar))[0] for _ in range(repeat))
    return {"init": init, "save": save}


def path_line(name: str, rate: float, seconds: float, ratio: float, loss: float, ceiling: float) -> str:
    return (f"  {name:16s} {rate:10,.0f} samples/s  {100 * rate / ceiling:5.1f} % of ceiling  {seconds:6.2f} s  "
            f"{ratio:5.2f}x plain  final loss {loss:.4f}")


def report(args: argparse.Namespace, r: dict, fc: dict, gflops: float, measured_here: bool) -> None:
    """Print the comparison, each path's fraction of the ceiling and the fixed cost with their targets."""
    rate, final, best = r["rate"], r["final"], r["best"]
    weights = n_weights(args.dim, batch_norm=args.batch_norm)
    ceiling = ceiling_samples(gflops, weights)
    print(machine_line())
    print(f"{backend_line()}, batch {args.batch_size}, validation_split 0.1, best of {args.repeat} interleaved "
          f"runs, load average {load_line()}")
    print(ceiling_line(gflops, weights, measured_here=measured_here))
    print(f"large fit: {args.vectors} vectors x {args.epochs} epochs ({r['n_big']} training samples)")
    for name in ("plain", "trainer", "trainer, reused", "stream"):
        print(path_line(name, rate[name], best[name], rate[name] / rate["plain"], final[name], ceiling))
    print(f"small fits: {args.small_fits} x ({args.small_vectors} vectors x {args.small_epochs} epochs)")
    for name in ("small plain", "small trainer"):
        print(path_line(name, rate[name], best[name], rate[name] / rate["small plain"], final[name], ceiling))
    worst = min(rate[k] / rate["plain"] for k in ("trainer", "trainer, reused"))
    loss_gap = max(abs(final[k] / final["plain"] - 1) for k in ("trainer", "trainer, reused", "stream"))
    verdict = "met" if worst >= TARGET_RATIO and loss_gap <= LOSS_TOLERANCE else "NOT met (a busy machine? see the load average)"
    print(f"trainer/plain: {worst:.2f}x at final losses within {100 * loss_gap:.1f} % "
          f"(target >= {TARGET_RATIO:.0f}x at equal loss, i.e. within {100 * LOSS_TOLERANCE:.0f} %: {verdict})")
    print(f"stream/plain: {rate['stream'] / rate['plain']:.2f}x; small fits trainer/plain: "
          f"{rate['small trainer'] / rate['small plain']:.2f}x")
    report_fixed(fc, ceiling)


def report_fixed(fc: dict, ceiling: float) -> None:
    """The fixed-cost fits, the line through them and the fixed cost against its target."""
    print(f"fixed cost: warm Trainer.fit of {FIXED_EPOCHS} epochs per size (clips x {VECTORS_PER_CLIP} vectors), "
          "second fit timed")
    for clips, samples, first, second in fc["rows"]:
        print(f"  {clips:3d} clips {samples:9,d} samples  {second:6.3f} s  (first fit of this size {first:6.3f} s)")
    verdict = "met" if fc["fixed"] < TARGET_FIXED_S else "NOT met"
    print(f"  line: {fc['fixed']:.3f} s + samples / {fc['rate']:,.0f} samples/s ({100 * fc['rate'] / ceiling:.1f} % "
          f"of ceiling); a new last-batch size adds {fc['retrace']:.3f} s (trace)")
    print(f"  beside the fit: initial weights {fc['side']['init']:.3f} s (scratch fits), saving a model with its "
          f"sidecar {fc['side']['save']:.3f} s")
    print(f"target per-fit fixed cost < {TARGET_FIXED_S} s: Trainer.fit {fc['fixed']:.3f} s (intercept): {verdict}; "
          f"with initial weights and saving {fc['fixed'] + fc['side']['init'] + fc['side']['save']:.3f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=100_000, help="vectors of the large fit (default: 100000)")
    parser.add_argument("--dim", type=int, default=320, help="vector width, n_mels * frames (default: 320)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of the large fit (default: 5)")
    parser.add_argument("--batch-size", type=int, default=512, help="batch size (default: 512, fit.batch_size)")
    parser.add_argument("--batch-norm", action="store_true", help="the DCASE 2020 variant with batch norm")
    parser.add_argument("--small-vectors", type=int, default=6000, help="vectors per small fit (default: 6000)")
    parser.add_argument("--small-epochs", type=int, default=5, help="epochs per small fit (default: 5)")
    parser.add_argument("--small-fits", type=int, default=5, help="small fits per run (default: 5)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs; the best counts (default: 3)")
    add_backend_option(parser)
    args = parser.parse_args(argv)
    use_backend(args.backend)

    gflops, measured_here = ceiling_gflops(args.ceiling_gflops)
    r = run(args)
    fc = fixed_cost(args)
    report(args, r, fc, gflops, measured_here)
    return 0


if __name__ == "__main__":
    sys.exit(main())
