"""Benchmark: the same training on each Keras backend (tensorflow, jax, torch), each in its own process.

Usage::

    python benchmarks/bench_backends.py [--vectors 100000] [--epochs 3] [--repeat 3] [--cpus all,1]

Keras picks its backend once, at import, from KERAS_BACKEND, so every backend runs in a fresh
subprocess of this script (``--child``): it fits the default autoencoder (no batch norm) with
`common.models.train.Trainer` on the same vectors as `bench_training.py`, once to compile and trace,
then `--repeat` times; the best fit counts (samples/s = training vectors x epochs / seconds).
A backend whose package is missing is reported as "not installed". ``--cpus 1`` pins the child
to one CPU, so the rows for ``all`` and ``1`` show what the second core gives. The device column
says where Keras placed the work: a GPU visible to the backend is used with no code change.
``--also-cpu`` runs every backend a second time with its accelerators hidden (``CUDA_VISIBLE_DEVICES=``
and ``JAX_PLATFORMS=cpu``) and prints the GPU / CPU ratio of each backend (on a machine with a GPU;
the lent GPU machines have JAX, not TensorFlow)::

    KERAS_BACKEND=jax python benchmarks/bench_backends.py --backends jax --also-cpu --batch-size 512,8192
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _bench import device_of, load_line, machine_line, usable_cpus

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # backend -> package


def child(args: argparse.Namespace) -> int:
    """Run in a subprocess with KERAS_BACKEND set: time Trainer.fit and print one JSON line."""
    if args.cpus != "all" and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[: int(args.cpus)]))
    from bench_training import make_vectors

    import keras

    from common.models.autoencoder import architecture
    from common.models.train import Trainer, validation_rows

    arch = architecture(args.dim, hidden=(64, 64), bottleneck=8, batch_norm=False)
    kw = dict(epochs=args.epochs, batch_size=int(args.batch_size), learning_rate=1e-3, validation_split=0.1, seed=0)
    x = make_vectors(args.vectors, args.dim)
    trainer = Trainer()
    start = time.perf_counter()
    trainer.fit(arch, trainer.init_weights(arch, seed=0), x[: min(len(x), 20_000)], **{**kw, "epochs": 1})
    first = time.perf_counter() - start
    times, loss = [], float("nan")
    for _ in range(args.repeat):
        start = time.perf_counter()
        fit = trainer.fit(arch, trainer.init_weights(arch, seed=0), x, **kw)
        times.append(time.perf_counter() - start)
        loss = fit.history["loss"][-1]
    samples = validation_rows(len(x), 0.1) * args.epochs
    print(json.dumps({"backend": keras.backend.backend(), "device": device_of(keras.backend.backend()),
                      "samples_s": samples / min(times), "first_fit_s": first, "final_loss": loss,
                      "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()}))
    return 0


def run_child(backend: str, cpus: str, args: argparse.Namespace, *, batch_size: int, cpu_only: bool = False) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--cpus", cpus, "--vectors", str(args.vectors),
           "--epochs", str(args.epochs), "--repeat", str(args.repeat), "--batch-size", str(batch_size),
           "--dim", str(args.dim)]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if cpu_only:
        env |= {"CUDA_VISIBLE_DEVICES": "", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"backend": backend, "error": f"failed (exit {proc.returncode}): {tail}"}
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vectors", type=int, default=100_000, help="training vectors (default: 100000)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fit (default: 3)")
    parser.add_argument("--batch-size", default="512", help="comma list of batch sizes (default: 512, fit.batch_size)")
    parser.add_argument("--also-cpu", action="store_true", help="also run each backend with accelerators hidden")
    parser.add_argument("--dim", type=int, default=320, help="vector width (default: 320)")
    parser.add_argument("--repeat", type=int, default=3, help="timed fits per backend; the best counts (default: 3)")
    parser.add_argument("--cpus", default="all", help="comma list of CPU counts to pin children to, e.g. all,1 (default: all)")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma list (default: tensorflow,jax,torch)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)

    rows = []
    for backend in args.backends.split(","):
        if importlib.util.find_spec(BACKENDS[backend]) is None:
            rows.append({"backend": backend, "error": "not installed"})
            continue
        for batch in (int(b) for b in args.batch_size.split(",")):
            for cpus in args.cpus.split(","):
                for cpu_only in ((False, True) if args.also_cpu else (False,)):
                    rows.append({**run_child(backend, cpus, args, batch_size=batch, cpu_only=cpu_only),
                                 "backend": backend, "batch": batch, "cpu_only": cpu_only})
    print(machine_line())
    print(f"{args.vectors} vectors x {args.epochs} epochs, no batch norm, best of {args.repeat} fits after a "
          f"warm-up fit, one process per backend, load average {load_line()}")
    ref = {r["batch"]: r["samples_s"] for r in rows if r["backend"] == "tensorflow" and "samples_s" in r
           and r["cpus"] == usable_cpus() and not r["cpu_only"]}
    on_cpu = {(r["backend"], r["batch"], r["cpus"]): r["samples_s"] for r in rows if r.get("cpu_only") and "samples_s" in r}
    for r in rows:
        if "error" in r:
            print(f"  {r['backend']:10s} {r['error']}")
            continue
        ratio = f"{r['samples_s'] / ref[r['batch']]:5.2f}x tensorflow" if r["batch"] in ref else ""
        if not r["cpu_only"] and (r["backend"], r["batch"], r["cpus"]) in on_cpu:
            ratio += f"  {r['samples_s'] / on_cpu[(r['backend'], r['batch'], r['cpus'])]:6.2f}x this backend on CPU"
        print(f"  {r['backend']:10s} batch {r['batch']:5d} {r['cpus']} CPU(s) {r['device']:>18s}  "
              f"{r['samples_s']:10,.0f} samples/s  {ratio}  "
              f"(first fit incl. tracing {r['first_fit_s']:.1f} s, final loss {r['final_loss']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
