"""Every method of every family in several synthetic worlds (issue 28): which conclusions hold in all of them.

Usage::

    python benchmarks/worlds.py [--work /tmp/worlds] [--worlds default,slow_drive,panel_band,loose_knock]
        [--versions v2 v4] [--seeds 0 1] [--normal 24] [--abnormal 8] [--seconds 4]

For each world (`common.data.synth.worlds.WORLDS`) it writes a 16-machine set under ``<work>/<world>/data`` unless
one is there (``--normal`` + ``--abnormal`` clips of ``--seconds`` s per machine, one channel, seed 0), copies
the Version YAMLs into ``<work>/<world>/`` so nothing of the repository's own runs is touched, and runs
pretrain + transfer of each version with every method of `common.config.METHOD_NAMES` at budgets 1, 4 and
all, seeds ``--seeds`` (the demo's training sizes, `common.demo.DEMO_OVERRIDES`, embedding defaults).
Versions: v2 (the other IDs of the target's type: what a classifier learns about IDs matters) and v4 (every
other type), the two the issue's independent set was measured on; v1 and v3 (one or two other types) run
with ``--versions v1 v2 v3 v4``. The results of every world go to ``<work>/worlds_results.csv``.

It prints, from those rows:

1. a method x world table of mean AUC (over targets, seeds and versions) at 4 clips and at all clips;
2. each pretrained method's paired difference to its family's control (`config.FAMILY_CONTROL`) at 4 clips,
   per world and version, with a 95 % bootstrap interval over targets (`common.report.stats.paired_table`,
   `common.report.stats.bootstrap_ci`);
3. the same at 4 clips against the AE trained from scratch on *all* clips (the report's second comparison);
4. the claims (`claims`): which hold in every world, which in none, which depend on the world.

With the defaults (4 worlds x v2 + v4): 47 CPU-minutes, roughly 25-30 minutes on an idle 2-core machine; 90 minutes
at load 4-14 from other work (docs/worlds.md has the run and its tables). Run it niced.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("KERAS_BACKEND", "jax")

from _bench import load_line, machine_line  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BUDGETS = [1, 4, "all"]
DEFAULT_WORLDS = ("default", "slow_drive", "panel_band", "loose_knock")
SHOWN_BUDGETS = ("4", "all")
COMPARED_BUDGET = "4"
ALL = "all"
N_BOOT = 2000
# Half the YAMLs' 64: the Gaussians of lw_* and transfer_mahalanobis (one per leave-one-out fold) cost the cube of
# the feature size, and were two thirds of the run at 64 (a v4 cell group: 70 of 124 s in transfer_mahalanobis).
N_MELS = 32


def make_data(root: Path, world: str, args: argparse.Namespace) -> float:
    """Write the world's 16-machine set under `root` unless machines are there; the seconds it took."""
    from common.data.synth import generate_dataset

    if any(root.glob("-*_dB_*")):
        return 0.0
    start = time.perf_counter()
    generate_dataset(root, snr=-6, n_normal=args.normal, n_abnormal=args.abnormal, seconds=args.seconds,
                     channels=1, seed=0, jobs=2, progress=False, world=world)
    return time.perf_counter() - start


def copy_versions(work: Path) -> None:
    """The repository's Version YAMLs, copied into `work` (their relative paths then point inside it)."""
    for folder in sorted(REPO.glob("Version[0-9]*")):
        (work / folder.name).mkdir(parents=True, exist_ok=True)
        for yaml in folder.glob("*.yaml"):
            shutil.copy(yaml, work / folder.name / yaml.name)


def run_world(world: str, args: argparse.Namespace) -> pd.DataFrame:
    """Data, then pretrain + transfer of every version in the world's own folder; its result rows."""
    from common.config import METHOD_NAMES, load_config
    from common.demo import DEMO_OVERRIDES
    from common.data.names import pretrain_yaml, transfer_yaml

    work = args.work / world
    print(f"== {world}: data {make_data(work / 'data', world, args):.0f} s", flush=True)
    copy_versions(work)
    overrides = {**DEMO_OVERRIDES, "data": {"root": str((work / "data").resolve()), "cache_dir": str(work / ".cache")},
                 "feature": {"n_mels": args.n_mels},
                 "output": {"scratch_dir": str(work / ".cache" / "scratch")},
                 "experiment": {"budgets": BUDGETS, "seeds": args.seeds, "methods": list(METHOD_NAMES)}}
    configs = [(v, load_config(pretrain_yaml(work, v), overrides=overrides),
                load_config(transfer_yaml(work, v), overrides=overrides)) for v in args.versions]
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain

    rows = []
    for version, make_cfg, transfer_cfg in configs:
        start = time.perf_counter()
        pretrain(make_cfg, progress=False)
        middle = time.perf_counter()
        rows.append(run_grid(transfer_cfg, progress=False))
        print(f"   {version}: pretrain {middle - start:.0f} s, transfer {time.perf_counter() - middle:.0f} s, "
              f"load {load_line()}", flush=True)
    return pd.concat(rows, ignore_index=True).assign(world=world)


def auc_table(results: pd.DataFrame) -> pd.DataFrame:
    """Mean AUC per method (rows) and world @ budget (columns): over targets, seeds, sources and versions."""
    from common.report.stats import methods_in

    shown = results[results["budget"].astype(str).isin(SHOWN_BUDGETS)]
    table = shown.groupby(["method", "world", "budget"])["auc"].mean().unstack(["world", "budget"])
    worlds = list(dict.fromkeys(results["world"]))
    columns = [(w, b) for b in SHOWN_BUDGETS for w in worlds if (w, b) in table.columns]
    return table.reindex(index=methods_in(table.index), columns=pd.MultiIndex.from_tuples(columns))


def control_deltas(results: pd.DataFrame, *, budget: str = COMPARED_BUDGET, scratch_all: bool = False) -> pd.DataFrame:
    """Each pretrained method minus its family's control at `budget` (`scratch_all`: minus the AE trained from scratch
    on all clips, as the report's second comparison), per world and version: mean and 95 % bootstrap CI."""
    from common.config import FAMILY_CONTROL, METHOD_FAMILY
    from common.report.stats import PRETRAINED, bootstrap_ci, paired_table

    rows = []
    for world, in_world in results.groupby("world", sort=False):
        for method in [m for m in PRETRAINED if m in set(in_world["method"])]:
            control = "scratch" if scratch_all else FAMILY_CONTROL[METHOD_FAMILY[method]]
            pairs = paired_table(in_world, method=method, baseline=control,
                                 baseline_budget=ALL if scratch_all else None)
            for version, g in pairs[pairs["budget"].astype(str) == budget].groupby("version", sort=False):
                low, high = bootstrap_ci(g["delta_auc"], n_boot=N_BOOT)
                rows.append({"world": world, "version": version, "method": method, "control": control,
                             "n_targets": len(g), "delta": g["delta_auc"].mean(), "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def _beats(deltas: pd.DataFrame, method: str) -> Callable[[str], bool]:
    """Per world: `method` beats its control at 4 clips in every version (interval above 0)."""
    return lambda world: bool(len(d := deltas[(deltas["world"] == world) & (deltas["method"] == method)])
                              and (d["ci_low"] > 0).all())


def _family_best(deltas: pd.DataFrame, family: str) -> Callable[[str], bool]:
    """Per world: the family's best pretrained method at 4 clips beats its control in every version."""
    from common.config import METHOD_FAMILY

    def holds(world: str) -> bool:
        d = deltas[(deltas["world"] == world) & (deltas["method"].map(METHOD_FAMILY) == family)]
        return bool(len(d)) and bool((d.groupby("version")["ci_low"].max() > 0).all())
    return holds


def _ranks_first(results: pd.DataFrame, method: str, budget: str) -> Callable[[str], bool]:
    """Per world: `method` has the highest mean AUC of all methods at `budget`."""
    def holds(world: str) -> bool:
        r = results[(results["world"] == world) & (results["budget"].astype(str) == budget)]
        means = r.groupby("method")["auc"].mean()
        return bool(len(means)) and means.idxmax() == method
    return holds


def claims(results: pd.DataFrame, deltas: pd.DataFrame,
           scratch_all: pd.DataFrame) -> list[tuple[str, Callable[[str], bool]]]:
    """The conclusions the report draws on the default world, each as a test of one world's rows."""
    from common.config import FAMILY_CONTROL
    from common.report.stats import PRETRAINED

    out = [(f"best pretrained {family} method beats {control} at 4 clips (every version)",
            _family_best(deltas, family)) for family, control in FAMILY_CONTROL.items()]
    out += [(f"best pretrained {family} method at 4 clips beats the AE scratch on all clips (every version)",
             _family_best(scratch_all, family)) for family in FAMILY_CONTROL]
    out += [(f"{m} beats its control at 4 clips (every version)", _beats(deltas, m))
            for m in PRETRAINED if m in set(deltas.get("method", []))]
    out += [("lw_transfer has the best mean AUC at 4 clips", _ranks_first(results, "lw_transfer", "4")),
            ("lw_scratch has the best mean AUC at all clips", _ranks_first(results, "lw_scratch", "all"))]
    return out


def delta_cells(deltas: pd.DataFrame, worlds: list[str]) -> str:
    """A method/version x world table of "difference [95 % CI]" cells."""
    cells = deltas.assign(cell=[f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi
                                in zip(deltas["delta"], deltas["ci_low"], deltas["ci_high"])])
    return cells.pivot_table(index=["method", "version"], columns="world", values="cell", aggfunc="first") \
        .reindex(columns=worlds).to_string()


def print_report(results: pd.DataFrame) -> None:
    """The tables: AUC per method and world, differences to the controls and to scratch on all clips, the claims."""
    worlds = list(dict.fromkeys(results["world"]))
    deltas, scratch_all = control_deltas(results), control_deltas(results, scratch_all=True)
    with pd.option_context("display.width", 250, "display.max_rows", 500, "display.max_columns", 50,
                           "display.float_format", "{:.3f}".format):
        print("\n-- mean AUC (targets, seeds, versions) per method; columns: world @ budget")
        print(auc_table(results).to_string())
    print(f"\n-- pretrained method minus its family's control at {COMPARED_BUDGET} clips "
          "(paired per target, 95 % bootstrap CI)")
    print(delta_cells(deltas, worlds))
    print(f"\n-- pretrained method at {COMPARED_BUDGET} clips minus the AE trained from scratch on all clips")
    print(delta_cells(scratch_all, worlds))
    print("\n-- claims: per world (+ holds, - does not)")
    for text, holds in claims(results, deltas, scratch_all):
        marks = [holds(w) for w in worlds]
        verdict = "HOLDS IN EVERY WORLD" if all(marks) else "never" if not any(marks) else "depends on the world"
        print(f"{'  '.join('+' if m else '-' for m in marks)}  {verdict:<22} {text}")
    print(f"(worlds, in order: {', '.join(worlds)})")


def main(argv: list[str] | None = None) -> int:
    from common.data.synth import WORLDS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/worlds"))
    p.add_argument("--worlds", default=",".join(DEFAULT_WORLDS), help=f"comma-separated, of {', '.join(WORLDS)}")
    p.add_argument("--versions", nargs="+", default=["v2", "v4"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--normal", type=int, default=24, help="normal clips per machine (first --abnormal: evaluation)")
    p.add_argument("--abnormal", type=int, default=8)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--n-mels", type=int, default=N_MELS, help=f"mel bands (default: {N_MELS}; the YAMLs say 64)")
    p.add_argument("--report-only", action="store_true", help="print the tables from <work>/worlds_results.csv")
    args = p.parse_args(argv)
    out = args.work / "worlds_results.csv"
    print(machine_line())
    print(f"load: {load_line()}", flush=True)
    start = time.perf_counter()
    if not args.report_only:
        args.work.mkdir(parents=True, exist_ok=True)
        results = pd.concat([run_world(w, args) for w in args.worlds.split(",")], ignore_index=True)
        results.to_csv(out, index=False)
    results = pd.read_csv(out, dtype={"budget": str})
    print_report(results)
    print(f"\n{time.perf_counter() - start:.0f} s in all, load now {load_line()}; rows: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
