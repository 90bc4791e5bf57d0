"""How long do README's commands take on a fresh clone? The measurement behind every duration README states.

Usage::

    python benchmarks/durations.py [--repo .] [--runs 2] [--targets venv,test,demo,demo-dcase] [--work DIR]

Clones the repository's committed HEAD into a new folder (what a new user gets), builds the venv there with
``make venv`` (pip's cache is whatever this machine has), then runs each target `--runs` times. Before every
run the clone is reset to a fresh checkout with its venv (``git clean -xdf -e .venv``), so no run reuses the
data, features, models or results of another. For each run it prints the wall time, the exit status and
the CPU seconds of all its processes (user + system: what the run costs whatever else the machine does), and the
load average (1 minute) before, at the end and sampled every 5 s during the run (the mean), then the median
per target: README quotes these medians with the machine and the load.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _bench import machine_line

REPO = Path(__file__).resolve().parent.parent


def load1() -> float:
    return os.getloadavg()[0]


def cpu_seconds() -> float:
    """User + system CPU seconds of every finished child process so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(command: list[str], cwd: Path, log: Path) -> tuple[float, float, int, list[float]]:
    """Run `command` in `cwd`, output to `log`; (wall seconds, CPU seconds, exit status, 1-minute loads every 5 s)."""
    samples: list[float] = [load1()]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5.0):
            samples.append(load1())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start, cpu = time.perf_counter(), cpu_seconds()
    with log.open("w") as out:
        status = subprocess.run(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT).returncode
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    done.set()
    sampler.join()
    samples.append(load1())
    return seconds, cpu, status, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--targets", default="venv,test,demo,demo-dcase")
    parser.add_argument("--work", type=Path, help="clone here (default: a new temporary folder, kept)")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="durations_"))
    clone = work / "clone"
    subprocess.run(["git", "clone", "-q", str(args.repo), str(clone)], check=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True).stdout
    print(machine_line())
    print(f"fresh clone of {head.strip()} in {clone}")
    medians = {}
    for target in [t.strip() for t in args.targets.split(",") if t.strip()]:
        seconds_per_run = []
        for run in range(args.runs):
            if target == "venv":
                subprocess.run(["rm", "-rf", ".venv"], cwd=clone, check=True)
            else:
                subprocess.run(["git", "clean", "-xdfq", "-e", ".venv"], cwd=clone, check=True)
            seconds, cpu, status, loads = timed(["make", target], clone, work / f"{target}-{run}.log")
            seconds_per_run.append(seconds)
            print(f"make {target:10s} run {run + 1}: {seconds:7.0f} s wall, {cpu:6.0f} s CPU, exit {status}, "
                  f"load {loads[0]:.2f} before, "
                  f"{statistics.mean(loads):.2f} mean during, {loads[-1]:.2f} at the end", flush=True)
        medians[target] = statistics.median(seconds_per_run)
    for target, seconds in medians.items():
        print(f"median make {target}: {seconds:.0f} s ({seconds / 60:.1f} min)")
    print(f"logs in {work}")


if __name__ == "__main__":
    main()
