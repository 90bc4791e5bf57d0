"""How far do the pinned results move on another CPU? The measurement behind tests/test_pinned_results.py's tolerances.

Usage::

    python benchmarks/pin_spread.py [--variants native,haswell,...] [--keep DIR]

Runs the pinned test's grid (`tests/test_pinned_results.run_grid`, the tests' tiny data set) once per
*variant*, each in a fresh process whose environment makes this machine compute as another CPU would:

- ``OPENBLAS_CORETYPE`` picks the BLAS kernels numpy, scipy and scikit-learn use (Haswell = an AVX2
  machine, Sandybridge = AVX, Prescott = SSE3) instead of the best kernel for this CPU;
- ``XLA_FLAGS=--xla_cpu_max_isa=...`` caps the vector instructions the JAX backend compiles to;
- ``taskset -c 0`` runs on one core (thread counts change how XLA and BLAS split a sum).

For every float column it prints the largest relative difference to the committed pin and to the native
run, against the test's tolerance (`TOLERANCE`): the ratio tolerance / spread is the margin the test has.
It also prints the pin's *margins*: the smallest relative gap between a normal and an abnormal clip's score
in any row (an AUC, pAUC or official score can move only when a score order flips) and between an
evaluation score and its row's threshold (precision, recall and F1 move only when a clip crosses it).
Both must stay above the score tolerance, which the test checks too.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _bench import load_line, machine_line

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"


def _pinned_test():
    """tests/test_pinned_results.py as a module (its grid, tolerances and margins are what this measures)."""
    spec = importlib.util.spec_from_file_location("test_pinned_results", TESTS / "test_pinned_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PINNED_TEST = _pinned_test()
PINNED, TOLERANCE, pin_margins = PINNED_TEST.PINNED, PINNED_TEST.TOLERANCE, PINNED_TEST.pin_margins

VARIANTS = {
    "native": ({}, False),
    "native-again": ({}, False),
    "one-core": ({}, True),
    "haswell-avx2": ({"OPENBLAS_CORETYPE": "Haswell", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}, False),
    "zen-avx2": ({"OPENBLAS_CORETYPE": "Zen", "XLA_FLAGS": "--xla_cpu_max_isa=AVX2"}, False),
    "sandybridge-avx": ({"OPENBLAS_CORETYPE": "Sandybridge", "XLA_FLAGS": "--xla_cpu_max_isa=AVX"}, False),
    "prescott-sse": ({"OPENBLAS_CORETYPE": "Prescott", "XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2"}, False),
}

RUN_ONE = """
import sys, tempfile
from pathlib import Path
from conftest import TINY_DATA
from common.data.synth import generate_dataset
from test_pinned_results import run_grid
out = Path(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp) / "Sample_data"
    generate_dataset(root, progress=False, **TINY_DATA)
    results, scores = run_grid(root, Path(tmp) / "work")
results.to_csv(out / "results.csv", index=False)
scores.to_csv(out / "scores.csv", index=False)
"""


def run_variant(name: str, out: Path) -> float:
    """Run the pinned grid under variant `name` into `out`; the seconds it took."""
    env_extra, one_core = VARIANTS[name]
    env = {**os.environ, **env_extra, "PYTHONPATH": os.pathsep.join([str(TESTS), str(REPO)])}
    command = [sys.executable, "-c", RUN_ONE, str(out)]
    if one_core:
        command = ["taskset", "-c", "0", *command]
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def float_columns(table: pd.DataFrame) -> list[str]:
    """The columns of `table` that hold numbers (blank cells allowed)."""
    out = []
    for column in table.columns:
        try:
            table[column].replace("", "nan").astype(float)
            out.append(column)
        except ValueError:
            pass
    return out


def largest_relative(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, float]:
    """Per float column, the largest |a - b| / |b| over rows (0 where both are blank)."""
    out = {}
    for column in float_columns(b):
        x = a[column].replace("", "nan").astype(float).to_numpy()
        y = b[column].replace("", "nan").astype(float).to_numpy()
        both_nan = np.isnan(x) & np.isnan(y)
        rel = np.abs(x - y) / np.maximum(np.abs(y), 1e-300)
        out[column] = float(np.max(np.where(both_nan, 0.0, rel), initial=0.0))
    return out


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, from: " + ", ".join(VARIANTS))
    parser.add_argument("--keep", type=Path, help="keep each variant's tables under this folder")
    args = parser.parse_args()
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    print(machine_line())
    print(f"load before: {load_line()}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="pin_spread_"))
    spread: dict[str, dict[str, float]] = {}
    for name in names:
        seconds = run_variant(name, work / name)
        for table in ("results.csv", "scores.csv"):
            got = read(work / name, table)
            for column, rel in largest_relative(got, read(PINNED, table)).items():
                spread.setdefault(f"{table}:{column}", {})[f"{name} vs pin"] = rel
            if name != "native" and "native" in names:
                for column, rel in largest_relative(got, read(work / "native", table)).items():
                    spread[f"{table}:{column}"][f"{name} vs native"] = rel
        print(f"ran {name} in {seconds:.0f} s (load {load_line()})")
    table = pd.DataFrame(spread).T
    table["largest"] = table.max(axis=1)
    table["tolerance"] = [TOLERANCE.get(key.split(":", 1)[1], TOLERANCE["exact"]) for key in table.index]
    table["tolerance / largest"] = table["tolerance"] / table["largest"].where(table["largest"] > 0)
    with pd.option_context("display.width", 250, "display.max_columns", 30, "display.float_format", "{:.2g}".format):
        print(table.to_string())
    margins = pin_margins(read(PINNED, "results.csv"), read(PINNED, "scores.csv"))
    print(f"pin margins: smallest normal/abnormal score gap {margins['order']:.3g} relative, "
          f"smallest score-threshold gap {margins['threshold']:.3g} relative; score tolerance {TOLERANCE['score']:.3g}")
    print(f"load after: {load_line()}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
