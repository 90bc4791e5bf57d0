"""The method x version x budget table on a synthetic set of a chosen size: every family, v1-v4, as the report has it.

Usage::

    python benchmarks/method_table.py --root /tmp/large --normal 60 --abnormal 20 [--seeds 0 1] [--budgets 1 2 4 all]

Generates the set under ``--root`` unless machines are there (all 16 machines, 10 s clips), copies the
four Version YAMLs into ``--work`` (default ``<root>/../method_table``) so nothing of the repository's own
runs is touched, runs pretrain + transfer of every version with every method (the demo's training sizes
unless told otherwise), writes the report and prints the table at the budgets asked for, with wall time per
version. Measured figures go into the closing notes and docs/performance.md, not into tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
REPO = Path(__file__).resolve().parents[1]


def _copy_versions(work: Path) -> None:
    for folder in sorted(REPO.glob("Version[0-9]*")):
        (work / folder.name).mkdir(parents=True, exist_ok=True)
        for yaml in folder.glob("*.yaml"):
            shutil.copy(yaml, work / folder.name / yaml.name)


def main(argv: list[str] | None = None) -> int:
    from common.methods.catalog import METHOD_NAMES
    from common.demo import DEMO_OVERRIDES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--normal", type=int, default=60)
    parser.add_argument("--abnormal", type=int, default=20)
    parser.add_argument("--channels", type=int, default=2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budgets", nargs="+", default=["1", "2", "4", "all"])
    parser.add_argument("--methods", nargs="+", default=list(METHOD_NAMES))
    parser.add_argument("--versions", nargs="+", default=["v1", "v2", "v3", "v4"])
    args = parser.parse_args(argv)
    work = args.work or args.root.parent / "method_table"
    if not any(args.root.glob("-*_dB_*")):
        from common.data.synth import generate_dataset

        start = time.perf_counter()
        generate_dataset(args.root, snr=-6, n_normal=args.normal, n_abnormal=args.abnormal, seconds=10.0,
                         channels=args.channels, seed=0, jobs=2, progress=False)
        print(f"generated {args.root} in {time.perf_counter() - start:.0f} s")
    _copy_versions(work)
    budgets = [b if b == "all" else int(b) for b in args.budgets]
    overrides = {**DEMO_OVERRIDES, "data": {"root": str(args.root.resolve()), "cache_dir": str(work / ".cache")},
                 "output": {"scratch_dir": str(work / ".cache" / "scratch")},
                 "experiment": {"budgets": budgets, "seeds": args.seeds, "methods": args.methods}}
    from common.config import load_config
    from common.data.names import pretrain_yaml, transfer_yaml

    configs = [(v, load_config(pretrain_yaml(work, v), overrides=overrides),
                load_config(transfer_yaml(work, v), overrides=overrides)) for v in args.versions]
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain
    from common.report.writer import write_report

    for version, make_cfg, transfer_cfg in configs:
        start = time.perf_counter()
        pretrain(make_cfg, progress=False)
        middle = time.perf_counter()
        run_grid(transfer_cfg, progress=False)
        print(f"{version}: pretrain {middle - start:.0f} s, transfer {time.perf_counter() - middle:.0f} s")
    report = write_report(work)
    _print_table(report.parent / "methods.csv", [str(b) for b in args.budgets])
    return 0


def _print_table(path: Path, budgets: list[str]) -> None:
    import pandas as pd

    table = pd.read_csv(path, dtype={"budget": str})
    keep = ["version", "method", "budget", "auc_mean", "pauc_mean", "scratch_delta_auc_mean", "scratch_wilcoxon_p",
            "control_delta_auc_mean", "control_delta_auc_ci_low", "control_delta_auc_ci_high", "control_wilcoxon_p",
            "scratch_all_delta_auc_mean", "scratch_all_wilcoxon_p"]
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.float_format", "{:.3f}".format):
        print(table[table["budget"].isin(budgets)][keep].to_string(index=False))
    print(f"full table: {path}")


if __name__ == "__main__":
    raise SystemExit(main())
