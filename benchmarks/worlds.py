"""Every method of every family in several synthetic worlds (issue 28): which conclusions hold in all of them.

Usage::

    python benchmarks/worlds.py [--work /tmp/worlds] [--data-cache /tmp/worlds_data]
        [--worlds default,slow_drive,panel_band,loose_knock,bearing_pulse] [--versions v2 v4] [--seeds 0 1]
        [--normal 24] [--abnormal 8] [--seconds 4] [--methods spec_two_bank ...] [--write-evidence [CSV]]
        [--report-only]

For each world (`common.data.synth.worlds.WORLDS`) it takes a 16-machine set from ``--data-cache`` (written there
once, keyed by world, seed, sizes and the generator's source: `world_data`; ``--normal`` + ``--abnormal`` clips
of ``--seconds`` s per machine, one channel, seed 0), copies the Version YAMLs into ``<work>/<world>/`` so
nothing of the repository's own runs is touched, and runs pretrain + transfer of each version with every method
of `common.methods.catalog.METHOD_NAMES` at budgets 1, 4 and all, seeds ``--seeds`` (the demo's training sizes,
`common.demo.DEMO_OVERRIDES`, embedding defaults). Versions: v2 (the other IDs of the target's type: what a
classifier learns about IDs matters) and v4 (every other type), the two the issue's independent set was
measured on; v1 and v3 (one or two other types) run with ``--versions v1 v2 v3 v4``. The results of every world
go to ``<work>/worlds_results.csv``, how they were made (commit, command, times, load) to
``<work>/worlds_run.json``.

It prints, from those rows:

1. a method x world table of mean AUC (over targets, seeds and versions) at 4 clips and at all clips;
2. each pretrained method's paired difference to its family's control (`method_catalog.FAMILY_CONTROL`) at 4
   clips, per world and version, with a 95 % bootstrap interval over targets (`common.report.stats.paired_table`,
   `common.report.stats.bootstrap_ci`);
3. the same at 4 clips against the AE trained from scratch on *all* clips (the report's second comparison);
4. the claims (`claims`): which hold in every world, which in none, which depend on the world;
5. the evidence table (`evidence`): per world, pretrained method and budget 4 / all, the method minus its
   family's control, both versions pooled per target. ``--write-evidence`` writes it to
   ``common/report/worlds_evidence.csv`` (or the path given), which the report cites (`common/report/worlds.py`).

``--methods`` runs a subset of the catalogue (`run_methods` adds each one's family control and the scratch
baseline, which every run needs); ``--write-evidence`` then replaces only the rows of the worlds and methods it
ran and keeps every other row of the file (`merge_evidence`), each with the commit and command that made it.

BLAS runs on one thread here (`threadpoolctl`): the Ledoit-Wolf Gaussians of lw_* and transfer_mahalanobis are
160 x 160, and OpenBLAS' two threads on two shared cores made each 10-30x slower (spinning, not computing);
results are bit-identical. With the defaults (5 worlds x v2 + v4): 12.9 CPU-minutes, 13 min 51 s wall at load 2-4
from other work (docs/worlds.md has the run and its tables). Run it niced.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shlex
import shutil
import subprocess
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
# default + the four energy-neutral families; slow_drive and bearing_pulse keep the default IDs and background, so
# a verdict that flips there flips on the fault physics alone.
DEFAULT_WORLDS = ("default", "slow_drive", "panel_band", "loose_knock", "bearing_pulse")
SHOWN_BUDGETS = ("4", "all")
COMPARED_BUDGET = "4"
ALL = "all"
N_BOOT = 2000
# Half the YAMLs' 64: the Gaussians of lw_* and transfer_mahalanobis (one per leave-one-out fold) cost the cube of
# the feature size, and were two thirds of the run at 64 (a v4 cell group: 70 of 124 s in transfer_mahalanobis).
N_MELS = 32
SNR = -6
DATA_SEED = 0
DATA_SIZE = {"normal": 24, "abnormal": 8, "seconds": 4.0}  # per machine; split 8 + 8 evaluation, a pool of 16
EVIDENCE = REPO / "common" / "report" / "worlds_evidence.csv"
EVIDENCE_COLUMNS = ["world", "family", "method", "control", "budget", "method_auc", "control_auc", "delta",
                    "ci_low", "ci_high", "n_targets", "seeds", "versions", "commit", "command"]


def generator_digest() -> str:
    """A short sha256 of the generator's source (`common.data.synth`): a cached set is stale once it changes."""
    import common.data.synth

    h = hashlib.sha256()
    for path in sorted(Path(common.data.synth.__file__).parent.rglob("*.py")):
        h.update(path.relative_to(path.parents[1]).as_posix().encode() + path.read_bytes())
    return h.hexdigest()[:10]


def world_data(world: str, *, cache: Path, normal: int, abnormal: int, seconds: float, seed: int = DATA_SEED) -> Path:
    """The world's 16-machine set (one channel, -6 dB) under `cache`, generated there once; its root.

    The folder's name is its key (world, seed, sizes, generator digest), so the worlds benchmark, its reruns and
    ``embedding_options.py --worlds`` read the same clips; a set is written beside and renamed into place, so a
    killed generation leaves no half set behind.
    """
    from common.data.synth import generate_dataset

    root = cache / f"{world}_seed{seed}_n{normal}a{abnormal}_{seconds:g}s_1ch_{SNR}dB_gen{generator_digest()}"
    if root.is_dir():
        return root
    partial = root.with_name(f"{root.name}.partial{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    generate_dataset(partial, snr=SNR, n_normal=normal, n_abnormal=abnormal, seconds=seconds, channels=1,
                     seed=seed, jobs=2, progress=False, world=world)
    try:
        partial.rename(root)
    except OSError:  # another run wrote it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    return root


def copy_versions(work: Path) -> None:
    """The repository's Version YAMLs, copied into `work` (their relative paths then point inside it)."""
    for folder in sorted(REPO.glob("Version[0-9]*")):
        (work / folder.name).mkdir(parents=True, exist_ok=True)
        for yaml in folder.glob("*.yaml"):
            shutil.copy(yaml, work / folder.name / yaml.name)


def run_methods(methods: list[str] | None) -> list[str]:
    """The methods a run scores: `methods` (None: the whole catalogue) with their family controls and the scratch
    baseline, in catalogue order; SystemExit naming an unknown method."""
    from common.methods.catalog import BASELINE, METHOD_NAMES, METHODS_CATALOG

    if methods is None:
        return list(METHOD_NAMES)
    unknown = [m for m in methods if m not in METHODS_CATALOG]
    if unknown:
        raise SystemExit(f"--methods: unknown method(s) {unknown}; the catalogue's: {', '.join(METHOD_NAMES)}")
    wanted = {BASELINE, *methods, *(METHODS_CATALOG[m].control for m in methods)}
    return [m for m in METHOD_NAMES if m in wanted]


def run_world(world: str, args: argparse.Namespace) -> pd.DataFrame:
    """Data (from the cache), then pretrain + transfer of every version in the world's own folder; its result rows."""
    from common.config import load_config
    from common.demo import DEMO_OVERRIDES
    from common.data.names import pretrain_yaml, transfer_yaml

    work, start = args.work / world, time.perf_counter()
    data = world_data(world, cache=args.data_cache, normal=args.normal, abnormal=args.abnormal, seconds=args.seconds)
    print(f"== {world}: data {time.perf_counter() - start:.0f} s ({data})", flush=True)
    copy_versions(work)
    overrides = {**DEMO_OVERRIDES, "data": {"root": str(data.resolve()), "cache_dir": str(work / ".cache")},
                 "feature": {"n_mels": args.n_mels},
                 "output": {"scratch_dir": str(work / ".cache" / "scratch")},
                 "experiment": {"budgets": BUDGETS, "seeds": args.seeds, "methods": run_methods(args.methods)}}
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
    from common.methods.catalog import FAMILY_CONTROL, METHOD_FAMILY
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
    from common.methods.catalog import METHOD_FAMILY

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
    from common.methods.catalog import FAMILY_CONTROL
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


def evidence(results: pd.DataFrame, *, commit: str = "", command: str = "") -> pd.DataFrame:
    """Per world, pretrained method and budget 4 / all: the method minus its family's control, versions pooled.

    Each target's difference is averaged over seeds (`common.report.stats.paired_table`), then over versions, so the
    unit of the 95 % bootstrap interval (`N_BOOT` resamples, seed 0) stays the target machine.
    """
    from common.methods.catalog import FAMILY_CONTROL, METHOD_FAMILY
    from common.report.stats import PRETRAINED, TARGET, bootstrap_ci, paired_table

    rows = []
    for world, in_world in results.groupby("world", sort=False):
        seeds = " ".join(str(s) for s in sorted(set(in_world["seed"])))
        for method in [m for m in PRETRAINED if m in set(in_world["method"])]:
            family = METHOD_FAMILY[method]
            control = FAMILY_CONTROL[family]
            pairs = paired_table(in_world, method=method, baseline=control)
            for budget in SHOWN_BUDGETS:
                at = pairs[pairs["budget"].astype(str) == budget]
                per_target = at.groupby(TARGET)[["auc", "base_auc", "delta_auc"]].mean()
                low, high = bootstrap_ci(per_target["delta_auc"], n_boot=N_BOOT)
                rows.append({"world": world, "family": family, "method": method, "control": control,
                             "budget": budget, "method_auc": per_target["auc"].mean(),
                             "control_auc": per_target["base_auc"].mean(), "delta": per_target["delta_auc"].mean(),
                             "ci_low": low, "ci_high": high, "n_targets": len(per_target), "seeds": seeds,
                             "versions": " ".join(sorted(set(at["version"]))), "commit": commit,
                             "command": command})
    return pd.DataFrame(rows, columns=EVIDENCE_COLUMNS).round({c: 4 for c in EVIDENCE_COLUMNS[5:10]})


def merge_evidence(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """`new` evidence rows in place of `old` rows of the same world and method; every other row of `old` kept.

    Rows are ordered by world (`DEFAULT_WORLDS` first, then as they come), method (catalogue order) and budget.
    """
    from common.methods.catalog import METHOD_NAMES

    ran = set(zip(new["world"], new["method"]))
    kept = old[[(w, m) not in ran for w, m in zip(old["world"], old["method"])]]
    table = pd.concat([kept, new], ignore_index=True)[EVIDENCE_COLUMNS]
    worlds = list(dict.fromkeys([*DEFAULT_WORLDS, *table["world"]]))
    methods = list(dict.fromkeys([*METHOD_NAMES, *table["method"]]))
    order = [worlds.index(w) * 10**6 + methods.index(m) * 10 + list(SHOWN_BUDGETS).index(str(b))
             for w, m, b in zip(table["world"], table["method"], table["budget"])]
    return table.iloc[np.argsort(order, kind="stable")].reset_index(drop=True)


def write_evidence(table: pd.DataFrame, path: Path, *, merge: bool) -> pd.DataFrame:
    """Write the evidence `table` to `path`; with `merge`, into the rows already there (`merge_evidence`)."""
    if merge and path.is_file():
        table = merge_evidence(pd.read_csv(path, dtype={"budget": str, "seeds": str, "commit": str, "command": str}),
                               table)
    path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, index=False)
    return table


def evidence_cells(table: pd.DataFrame) -> str:
    """The evidence as a method/budget x world table of "difference [95 % CI]" cells."""
    cells = table.assign(cell=[f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]" for d, lo, hi
                               in zip(table["delta"], table["ci_low"], table["ci_high"])])
    return cells.pivot_table(index=["method", "budget"], columns="world", values="cell", aggfunc="first",
                             sort=False).reindex(columns=list(dict.fromkeys(table["world"]))).to_string()


def git_commit() -> str:
    """The repository's commit, with ``+changes`` when tracked files under common/ or benchmarks/ differ from it."""
    def git(*words: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *words], cwd=REPO, capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "common", "benchmarks").stdout.strip()
    return head + ("+changes" if changed else "")


def run_all(args: argparse.Namespace, argv: list[str]) -> dict:
    """Every world with BLAS on one thread; writes the rows and ``worlds_run.json`` (commit, command, times, load)."""
    from threadpoolctl import threadpool_limits

    args.work.mkdir(parents=True, exist_ok=True)
    info = {"commit": git_commit(), "command": shlex.join(["python", "benchmarks/worlds.py", *argv]),
            "machine": machine_line(), "load_start": load_line()}
    start, cpu = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=1, user_api="blas"):
        results = pd.concat([run_world(w, args) for w in args.worlds.split(",")], ignore_index=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    info |= {"wall_s": round(time.perf_counter() - start, 1),
             "cpu_s": round(time.process_time() - cpu + children.ru_utime + children.ru_stime, 1),
             "load_end": load_line()}
    results.to_csv(args.work / "worlds_results.csv", index=False)
    (args.work / "worlds_run.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def main(argv: list[str] | None = None) -> int:
    from common.data.synth import WORLDS

    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--work", type=Path, default=Path("/tmp/worlds"))
    p.add_argument("--data-cache", type=Path, default=Path("/tmp/worlds_data"),
                   help="generated sets, one folder per world, seed and size (reused by every run)")
    p.add_argument("--worlds", default=",".join(DEFAULT_WORLDS), help=f"comma-separated, of {', '.join(WORLDS)}")
    p.add_argument("--versions", nargs="+", default=["v2", "v4"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--normal", type=int, default=DATA_SIZE["normal"],
                   help="normal clips per machine (first --abnormal: evaluation)")
    p.add_argument("--abnormal", type=int, default=DATA_SIZE["abnormal"])
    p.add_argument("--seconds", type=float, default=DATA_SIZE["seconds"])
    p.add_argument("--n-mels", type=int, default=N_MELS, help=f"mel bands (default: {N_MELS}; the YAMLs say 64)")
    p.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                   help="score only these catalogue methods (with their family controls and scratch); "
                        "--write-evidence then replaces only their rows (default: every method)")
    p.add_argument("--report-only", action="store_true", help="print the tables from <work>/worlds_results.csv")
    p.add_argument("--write-evidence", nargs="?", type=Path, const=EVIDENCE, default=None, metavar="CSV",
                   help=f"write the evidence table (default path: {EVIDENCE.relative_to(REPO)})")
    args = p.parse_args(argv)
    run_methods(args.methods)  # an unknown name stops here, before any data is touched
    print(machine_line())
    print(f"load: {load_line()}", flush=True)
    start = time.perf_counter()
    info = None if args.report_only else run_all(args, argv)
    if info is None:
        run_file = args.work / "worlds_run.json"
        info = json.loads(run_file.read_text()) if run_file.is_file() else {"commit": "", "command": ""}
    results = pd.read_csv(args.work / "worlds_results.csv", dtype={"budget": str})
    print_report(results)
    table = evidence(results, commit=info["commit"], command=info["command"])
    print("\n-- evidence: pretrained method minus its family's control, versions pooled per target [95 % CI]")
    print(evidence_cells(table))
    if args.write_evidence is not None:
        write_evidence(table, args.write_evidence, merge=args.methods is not None)
        print(f"evidence: {args.write_evidence}" + (" (merged: the rows of the methods run replaced)"
                                                    if args.methods is not None else ""))
    print(f"\n{time.perf_counter() - start:.0f} s in all, load now {load_line()}; run: {json.dumps(info)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
