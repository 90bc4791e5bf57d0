"""The end-to-end demo: a small synthetic MIMII set, then v1-v5 pretrain + transfer, then one summary.

v5 (sources chosen per target) runs a second time with its k sources drawn at random, the baseline of the
report's hindsight comparison (`common.report.hindsight`).

``demo --dcase YEAR`` does the same on a synthetic DCASE Task 2 development set of that year's layout, in a
workspace of its own (``demo_dcaseYEAR/``: the Version YAMLs copied, their models, results and report), so its
results never mix with the MIMII demo's; the summary adds the year's official score and the published numbers.
"""

from __future__ import annotations

import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import pandas as pd

from common.config import load_config
from common.data.mimii import Machine, find_machines
from common.errors import DataError
from common.data.names import pretrain_yaml, transfer_yaml
from common.methods.catalog import CLASSIFIER_PRETRAININGS, DEMO_METHODS, methods_pretraining

# Small enough for a 2-core machine in about 5 minutes (JAX), large enough for AUCs to mean something.
DEMO_DATA = {"n_normal": 50, "n_abnormal": 25, "seconds": 10.0, "channels": 8, "seed": 0}
DEMO_OVERRIDES: dict[str, dict[str, Any]] = {
    # No validation pass: at these sizes Keras' per-epoch evaluation costs more than the training.
    "fit": {"epochs": 10, "batch_size": 256, "validation_split": 0.0},
    "transfer": {"epochs": 5},
    # The catalogue's demo methods (`MethodInfo.in_demo`): every family at the demo's time. Budgets down to one
    # clip for the budget curve.
    # One seed: the cells are 16 targets x 4 budgets x (3 + 5 per source set) per version.
    "experiment": {"budgets": [1, 2, 4, "all"], "seeds": [0],
                   "methods": list(DEMO_METHODS)},
}


# The DCASE demo's data: four types, one section (the first-shot form of 2023-2025; 2021/2022 keep it too),
# 10 target-domain clips as in the real sets, fewer source and test clips.
DCASE_DEMO_DATA = {"sections": (0,), "n_source": 100, "n_target": 10, "n_test": 12, "seconds": 10.0, "seed": 0}
DCASE_DEMO_BUDGETS = [2, 5, 10, "all"]  # 2021-2025: N of the 10 target-domain clips; "all": the 110 clips given


def _layout_at(root: Path) -> str | None:
    """The data layout found under `root` (None: missing, empty or nothing recognised)."""
    from common.data.layouts import detect_layout

    try:
        return detect_layout(root) if root.is_dir() else None
    except DataError:
        return None


def ensure_data(root: Path, *, snr: float = -6, progress: bool = True) -> bool:
    """Generate the demo's synthetic set under `root` unless machines exist there; True if generated.

    Raises
    ------
    DataError
        `root` holds a DCASE Task 2 set: the MIMII demo does not write beside it (``demo --dcase YEAR`` reads it).
    """
    from common.data.dcase import dcase_layouts_under

    dcase = dcase_layouts_under(root) if root.is_dir() else {}
    if dcase:
        layout = " / ".join(dcase)
        raise DataError(f"{root} holds a DCASE Task 2 data set ({layout} layout): the demo writes a MIMII set and "
                        f"does not write beside it; run `python -m common demo --dcase YEAR --root {root}`")
    try:
        find_machines(root, snr=snr)
        return False
    except DataError:
        from common.data.synth import generate_dataset

        generate_dataset(root, snr=snr, jobs=2, progress=progress, **DEMO_DATA)
        return True


def ensure_dcase_data(root: Path, year: int, *, progress: bool = True) -> bool:
    """Generate the DCASE demo's synthetic set of `year` under `root` unless one of that layout is there."""
    from common.data.dcase import layout_of_year

    found, want = _layout_at(root), layout_of_year(year)
    if found == want:
        return False
    if found is not None:
        raise DataError(f"{root} holds a {found} data set, not the {want} layout of the DCASE {year} demo: "
                        "give another --root")
    from common.data.synth.dcase import generate_dcase_dataset

    data = dict(DCASE_DEMO_DATA, sections=(0, 1) if year == 2020 else (0,), n_target=None if year == 2020 else 10)
    generate_dcase_dataset(root, year=year, jobs=2, progress=progress, **data)
    return True


VERSIONS = ("v1", "v2", "v3", "v4")  # the DCASE demo's; the MIMII demo adds v5 (sources chosen per target)
MIMII_VERSIONS = VERSIONS + ("v5",)


RANDOM = "v5_random"  # the job that runs v5's random-sources baseline (`run_random_baseline`)
# Seconds of each job in `make demo` (a fresh clone of c726499, 2 cores, one process): the longest go first, so
# that two processes finish together. v1 is the longest because it fits the scratch rows the others reuse.
JOB_SECONDS = {"v1": 93, "v5": 67, "v3": 57, RANDOM: 45, "v2": 40, "v4": 40}
DEMO_WORKERS = 2  # processes the MIMII demo runs its versions in (2 cores)


def run_random_baseline(repo: Path, *, overrides: dict[str, Any], progress: bool = True) -> pd.DataFrame:
    """v5 with ``experiment.selection: random`` into the ``_random`` folders beside v5's: the report's baseline.

    Returns its results (not part of the printed summary: the report sets it beside v5 per target).
    """
    from common.data.names import random_dir

    cfgs = [load_config(y, overrides=overrides) for y in (pretrain_yaml(repo, 5), transfer_yaml(repo, 5))]
    random = {**overrides, "experiment": {**overrides.get("experiment", {}), "selection": "random"},
              "output": {"model_dir": str(random_dir(cfgs[0].output.model_dir)),
                         "result_dir": str(random_dir(cfgs[1].output.result_dir))},
              "transfer": {**overrides.get("transfer", {}), "init_from": str(random_dir(cfgs[0].output.model_dir))}}
    make_cfg, transfer_cfg = (load_config(y, overrides=random) for y in (pretrain_yaml(repo, 5), transfer_yaml(repo, 5)))
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain

    pretrain(make_cfg, progress=progress)
    return run_grid(transfer_cfg, progress=progress)


def run_versions(repo: Path, *, versions=VERSIONS, overrides=None, progress: bool = True,
                 workers: int = 1, random_baseline: bool = False) -> pd.DataFrame:
    """Pretrain and transfer each version with its own YAMLs (plus `overrides`); return all summaries.

    `random_baseline` also runs v5's random-sources baseline (`run_random_baseline`; not in the summaries).
    With `workers` > 1 the versions run in that many processes, the longest first (`JOB_SECONDS`), each
    without progress bars; a line says when each is done. The versions share only the scratch store
    (``output.scratch_dir``), whose entries are written atomically and checked when read.
    """
    # Every config first: a fit.backend in them must be set before Keras is imported (and a bad YAML is
    # refused before any work).
    for v in versions:
        load_config(pretrain_yaml(repo, v), overrides=overrides), load_config(transfer_yaml(repo, v), overrides=overrides)
    jobs = list(versions) + ([RANDOM] if random_baseline else [])
    if workers <= 1:
        done = {job: _run_job(repo, job, overrides, progress) for job in jobs}
    else:
        done = _run_jobs(repo, jobs, overrides, workers)
    return pd.concat([done[v] for v in versions], ignore_index=True)


def _run_job(repo: Path, job: str, overrides, progress: bool) -> pd.DataFrame | None:
    """One version's pretrain and transfer (its summary), or the random baseline (None)."""
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain
    from common.results import summarize

    if job == RANDOM:
        run_random_baseline(repo, overrides=overrides, progress=progress)
        return None
    pretrain(load_config(pretrain_yaml(repo, job), overrides=overrides), progress=progress)
    return summarize(run_grid(load_config(transfer_yaml(repo, job), overrides=overrides), progress=progress))


def _timed_job(repo: Path, job: str, overrides) -> tuple[pd.DataFrame | None, float]:
    start = time.perf_counter()
    return _run_job(repo, job, overrides, False), time.perf_counter() - start


def _run_jobs(repo: Path, jobs: list[str], overrides, workers: int) -> dict[str, pd.DataFrame | None]:
    """`_run_job` of every job in `workers` new processes, the longest first; a line as each one finishes."""
    order = sorted(jobs, key=lambda j: -JOB_SECONDS.get(j, 0))
    print(f"running {', '.join(order)} in {workers} processes, longest first (no progress bars; a line per version)",
          flush=True)
    done = {}
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(_timed_job, repo, job, overrides): job for job in order}
        for future in as_completed(futures):
            done[futures[future]], seconds = future.result()
            print(f"  {futures[future]}: pretrain + transfer done in {seconds:.0f} s ({len(done)}/{len(jobs)})",
                  flush=True)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return done


def run_demo(repo: Path, *, root: Path | None = None, dcase: int | None = None) -> int:
    """`python -m common demo`: data (generated if missing) -> v1-v4 -> printed summary table and report.

    With `dcase` (a DCASE Task 2 year) the data is a synthetic development set of that year's layout under
    ``Sample_data_dcaseYEAR`` and everything else goes to the workspace `dcase_workspace`.
    """
    start = time.perf_counter()
    if dcase is None:
        root, work, versions = (root or repo / "Sample_data").resolve(), repo, MIMII_VERSIONS
        if ensure_data(root):
            print(f"generated a synthetic MIMII-layout data set under {root}")
        overrides = {**DEMO_OVERRIDES, "data": {"root": str(root)}}
        summary = run_versions(work, versions=versions, overrides=overrides, workers=DEMO_WORKERS,
                               random_baseline=True)
    else:
        root, work = (root or repo / f"Sample_data_dcase{dcase}").resolve(), dcase_workspace(repo, dcase)
        if ensure_dcase_data(root, dcase):
            print(f"generated a synthetic DCASE {dcase} development set under {root}")
        from common.data.dcase import find_dcase_machines

        machines = find_dcase_machines(root)
        versions = _dcase_versions(machines)
        overrides = {**DEMO_OVERRIDES, "data": {"root": str(root)},
                     "experiment": {**DEMO_OVERRIDES["experiment"], "budgets": DCASE_DEMO_BUDGETS}}
        summary = pd.concat([run_versions(work, versions=group, overrides=o)
                             for group, o in _by_methods(versions, overrides, machines)],
                            ignore_index=True)
    _print_summary(summary)
    from common.report.writer import write_report
    from common.results import result_dirs

    report = write_report(work)
    _print_hindsight(report.parent / "hindsight_summary.csv")
    folders = ", ".join(str(d.relative_to(repo)) if d.is_relative_to(repo) else str(d)
                        for d in result_dirs(work).values())
    print(f"\nresults in {folders}; statistics and plots in {report}")
    print(f"finished in {time.perf_counter() - start:.0f} s")
    return 0


def dcase_workspace(repo: Path, year: int) -> Path:
    """``repo/demo_dcaseYEAR``: the repository's Version YAMLs copied (rewritten on every run), so that the DCASE
    demo's models, results, caches and report stay in it and never mix with the MIMII demo's."""
    from common.io import atomic_write_text

    work = repo / f"demo_dcase{year}"
    for version in VERSIONS:
        for yaml in (pretrain_yaml(repo, version), transfer_yaml(repo, version)):
            atomic_write_text(work / yaml.relative_to(repo), yaml.read_text())
    return work


def _dcase_versions(machines: list[Machine]) -> tuple[str, ...]:
    """v1-v4, without v2 where each machine type has one section (2023-2025: v2 has no source set)."""
    if len({m.id for m in machines}) == 1:
        print("v2 (the other sections of the same type) is left out: each machine type of this set has one "
              "section, as in the first-shot years 2023-2025, so v2 has no source set")
        return tuple(v for v in VERSIONS if v != "v2")
    return VERSIONS


def _by_methods(versions: tuple[str, ...], overrides: dict[str, Any],
                machines: list[Machine]) -> list[tuple[tuple[str, ...], dict[str, Any]]]:
    """(versions, overrides) to run: a version with a source set of one class (`embedding_pretrain.class_names`:
    one machine whose clips name no domain, as in DCASE 2020) cannot train the machine-ID classifier, so it runs
    without the classifier methods."""
    from common.data.dcase import split_dcase_machine
    from common.data.machines import class_names
    from common.data.versions import source_sets

    splits = {m: split_dcase_machine(m) for m in machines}
    small = tuple(v for v in versions if any(len(class_names([splits[m] for m in s.machines])) < 2
                                             for t in machines for s in source_sets(v, t, machines)))
    if not small:
        return [(versions, overrides)]
    listed = overrides["experiment"]["methods"]
    classifier = [m for p in CLASSIFIER_PRETRAININGS for m in methods_pretraining(listed, p)]
    methods = [m for m in listed if m not in classifier]
    print(f"{', '.join(small)} run without {' / '.join(classifier)}: a source set of one machine without "
          "domains or attributes is one class, too few for the machine-ID classifier")
    fewer = {**overrides, "experiment": {**overrides["experiment"], "methods": methods}}
    return [(small, fewer)] + ([(rest, overrides)] if (rest := tuple(v for v in versions if v not in small)) else [])


def _print_summary(summary: pd.DataFrame) -> None:
    """The demo's summary table; on DCASE data also its official scores and the published numbers they compare with."""
    from common.report.published import published_for
    from common.results import version_key

    formulas = sorted({f for f in summary.get("official_formula", ()) if isinstance(f, str) and f})
    columns = [c for c in summary.columns if formulas or c not in ("official_formula", "official_score")]
    with pd.option_context("display.width", 140, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print("\nMean over targets (AUC / pAUC on each target's evaluation split; minus_scratch is paired):")
        print(summary[columns].sort_values("version", key=lambda v: v.map(version_key), kind="stable")
              .to_string(index=False))
        for formula in formulas:
            print(f"\nofficial_score: the DCASE {formula} formula over every target (0-1). Published official "
                  "scores (percent; each row's source in common.report.published): dev rows were scored on that year's "
                  "real development set, eval rows on its withheld evaluation set; the synthetic machines here "
                  "compare with neither:")
            print(published_for(formula).drop(columns="source").to_string(index=False))


def _print_hindsight(path: Path) -> None:
    """v5 against the best / worst fixed version per target and k random sources (means over targets), if run."""
    if not path.is_file():
        return
    table = pd.read_csv(path, dtype={"budget": str})
    columns = ["method", "budget", "v5_auc", "best_fixed_auc", "worst_fixed_auc", "random_auc", "regret_mean",
               "v5_minus_random_mean"]
    print("\nVersion5 in hindsight (mean AUC over targets; regret = best fixed version for the target - v5):")
    with pd.option_context("display.width", 140, "display.float_format", "{:.3f}".format):
        print(table[columns].to_string(index=False))
