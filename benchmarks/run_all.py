"""Run every benchmark in sequence with modest sizes (``make bench``; about 16 minutes on 2 cores).

Usage::

    python benchmarks/run_all.py [--scale 0.04] [--quick] [--backend auto]

Runs each benchmark in its own process, so that none warms another's caches: first the ceiling
(0), then, after writing one 16-machine synthetic set at `--scale` into a temporary folder (timed),
the others (1-6):

0. ``bench_ceiling.py``: the arithmetic ceiling, measured: the best float32 matmul (numpy and the
   Keras backend), in samples/s of the default autoencoder; passed on to 2 and 5 (``--ceiling-gflops``);
1. ``bench_features.py``: feature extraction, ours vs the reference per-file librosa pipeline;
2. ``bench_training.py``: our training loop vs a plain ``model.fit``, and streaming, each as a fraction
   of the ceiling; the per-fit fixed cost of warm fits;
3. ``bench_backends.py``: the same training on the tensorflow, jax and torch backends;
4. ``bench_memory.py``: peak RSS of a v4 pretrain at half and full `--scale`, projected to MIMII size;
5. ``bench_grid.py``: wall time of the v1-v4 grid with every method of the catalogue (the demo's budgets and
   seeds) at half `--scale` (and a quarter, for the per-cell costs), by stage, projected to MIMII size with the
   YAMLs' epochs, serial and on 2 one-core workers: the per-fit fixed cost, the grid's effective training as a
   fraction of the ceiling and its hours, with their targets (the longest part: about 10 minutes on 2 cores);
6. ``bench_mahalanobis.py``: the Mahalanobis distances and Ledoit-Wolf fits of the cells and the autoencoder's
   forward pass of their scoring, against the code before issue 32.

Benchmarks 0, 2 and 5 run on `--backend` (default: the project's default backend, `common.backend`)
and print it. Every script's own output follows its name; the ceiling, the fractions of it, the
targets and the projections are repeated at the end. ``--quick`` shrinks everything further (a smoke
test, not a measurement).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import load_line, machine_line, make_dataset

HERE = Path(__file__).resolve().parent

KEYS = ("CEILING", "step alone", "ceiling:", "target", "PROJECTION", "BEFORE", "speed-up", "/plain", "samples/s  ",
        "not installed", "matrix product", "discarded precision")


def run_script(script: str, extra: list[str]) -> tuple[bool, list[str]]:
    """Run one benchmark in its own process, echoing its output; (succeeded, its summary lines)."""
    print(f"\n== {script} {' '.join(extra)}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, str(HERE / script), *extra], capture_output=True, text=True)
    print(proc.stdout, end="")
    if proc.returncode:
        print(proc.stderr[-4000:], end="")
    print(f"({script}: {time.perf_counter() - start:.0f} s)", flush=True)
    return not proc.returncode, [f"{script}: {line.strip()}" for line in proc.stdout.splitlines()
                                 if any(k in line for k in KEYS)]


def ceiling_args(path: Path) -> list[str]:
    """``--ceiling-gflops`` from bench_ceiling.py's JSON, or nothing (each benchmark then measures its own)."""
    try:
        return ["--ceiling-gflops", f"{json.loads(path.read_text())['gflops']:.3f}"]
    except (OSError, ValueError, KeyError):
        return []


def plan(args: argparse.Namespace, root: Path, scale: float, ceiling: list[str]) -> list[tuple[str, list[str]]]:
    """The benchmarks after the ceiling, each with its arguments."""
    size = (["--vectors", "8000", "--epochs", "1", "--repeat", "1"] if args.quick
            else ["--vectors", "60000", "--epochs", "3", "--repeat", "2"])
    backend = ["--backend", args.backend]
    return [
        ("bench_features.py", ["--root", str(root), "--n-clips", "40" if args.quick else "100",
                               "--repeat", "1" if args.quick else "3"]),
        ("bench_training.py", size + backend + ceiling
         + (["--small-vectors", "2000", "--small-fits", "2"] if args.quick else [])),
        ("bench_backends.py", size),
        ("bench_memory.py", ["--root", str(root), "--scales", f"{scale / 2:g},{scale:g}"]),
        ("bench_grid.py", ["--root", str(root), "--scale", f"{scale / 2:g}"] + backend + ceiling
         + (["--versions", "v2", "--methods", "scratch,transfer,lw_transfer,embed_knn,spec_two_bank,sound_knn",
             "--rest-scale", "0",
             "--epochs", "1", "--transfer-epochs", "1", "--classifier-epochs", "1", "--rate-vectors", "20000",
             "--classifier-rows", "5000", "--spec-rows", "300", "--soundnet-clips", "4", "--rate-epochs", "1",
             "--rate-repeat", "1"]
            if args.quick else [])),
        ("bench_mahalanobis.py", ["--rows", "2472", "--fits", "4", "--repeat", "1"] if args.quick else []),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.04, help="scale of the synthetic set (default: 0.04)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    parser.add_argument("--backend", default="auto", choices=("auto", "jax", "tensorflow", "torch"),
                        help="Keras backend of the ceiling, training and grid benchmarks (default: auto)")
    args = parser.parse_args(argv)
    scale = 0.01 if args.quick else args.scale

    print(machine_line())
    print(f"load average at start: {load_line()}", flush=True)
    start_all = time.perf_counter()
    failed = []
    with tempfile.TemporaryDirectory(prefix="bench_all_") as tmp:
        result = Path(tmp) / "ceiling.json"
        ok, summary = run_script("bench_ceiling.py", ["--backend", args.backend, "--json", str(result)]
                                 + (["--repeat", "2"] if args.quick else []))
        failed += [] if ok else ["bench_ceiling.py"]
        root = Path(tmp) / "data"
        print(f"\n== synthetic set at scale {scale:g}", flush=True)
        print(f"written in {make_dataset(root, scale):.0f} s", flush=True)
        for script, extra in plan(args, root, scale, ceiling_args(result)):
            ok, lines = run_script(script, extra)
            failed += [] if ok else [script]
            summary += lines

    print(f"\n== summary ({time.perf_counter() - start_all:.0f} s in all, load average now {load_line()})")
    print("\n".join(summary))
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
