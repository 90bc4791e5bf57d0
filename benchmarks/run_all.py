"""Run every benchmark in sequence with modest sizes (``make bench``; about 10 minutes on 2 cores).

Usage::

    python benchmarks/run_all.py [--scale 0.04] [--quick]

Writes one 16-machine synthetic set at `--scale` into a temporary folder (timed), then runs, each
in its own process so that no benchmark warms another's caches or picks its Keras backend:

1. ``bench_features.py``: feature extraction, ours vs the reference per-file librosa pipeline;
2. ``bench_training.py``: our training loop vs a plain ``model.fit``, and streaming;
3. ``bench_backends.py``: the same training on the tensorflow, jax and torch backends;
4. ``bench_memory.py``: peak RSS of a v4 pretrain at half and full `--scale`, projected to MIMII size;
5. ``bench_grid.py``: wall time of the v1-v4 grid at half `--scale`, by stage, projected to MIMII size.

Every script's own output follows its name; the lines with the targets and projections are
repeated at the end. ``--quick`` shrinks everything further (a smoke test, not a measurement).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import load_line, machine_line, make_dataset

HERE = Path(__file__).resolve().parent

KEYS = ("target", "PROJECTION", "speed-up", "/plain", "samples/s  ", "not installed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.04, help="scale of the synthetic set (default: 0.04)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    args = parser.parse_args(argv)
    scale = 0.01 if args.quick else args.scale
    size = (["--vectors", "8000", "--epochs", "1", "--repeat", "1"] if args.quick
            else ["--vectors", "60000", "--epochs", "3", "--repeat", "2"])

    print(machine_line())
    print(f"load average at start: {load_line()}", flush=True)
    summary = []
    start_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_all_") as tmp:
        root = Path(tmp) / "data"
        print(f"\n== synthetic set at scale {scale:g}", flush=True)
        print(f"written in {make_dataset(root, scale):.0f} s", flush=True)
        runs = [
            ("bench_features.py", ["--root", str(root), "--n-clips", "40" if args.quick else "100",
                                   "--repeat", "1" if args.quick else "3"]),
            ("bench_training.py", size + (["--small-vectors", "2000", "--small-fits", "2"] if args.quick else [])),
            ("bench_backends.py", size),
            ("bench_memory.py", ["--root", str(root), "--scales", f"{scale / 2:g},{scale:g}"]),
            ("bench_grid.py", ["--root", str(root), "--scale", f"{scale / 2:g}"]
             + (["--versions", "v1", "--epochs", "1", "--transfer-epochs", "1"] if args.quick else [])),
        ]
        failed = []
        for script, extra in runs:
            print(f"\n== {script} {' '.join(extra)}", flush=True)
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, str(HERE / script), *extra], capture_output=True, text=True)
            print(proc.stdout, end="")
            if proc.returncode:
                failed.append(script)
                print(proc.stderr[-4000:], end="")
            print(f"({script}: {time.perf_counter() - start:.0f} s)", flush=True)
            summary += [f"{script}: {line.strip()}" for line in proc.stdout.splitlines() if any(k in line for k in KEYS)]

    print(f"\n== summary ({time.perf_counter() - start_all:.0f} s in all, load average now {load_line()})")
    print("\n".join(summary))
    if failed:
        print(f"FAILED: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
