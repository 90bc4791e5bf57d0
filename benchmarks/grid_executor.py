"""Benchmark: the grid serial vs on a local Dask cluster (same cells, same run), projected onto 1-64 workers.

Usage::

    python benchmarks/grid_executor.py [--scale 0.01] [--root DIR] [--versions v1,v2,v3,v4] [--workers 2]
                                       [--threads 1] [--repeat 1] [--epochs 2]
                                       [--transfer-epochs 2]

On the 16-machine synthetic set at scale ``s`` (as ``bench_grid.py``), with the Version YAMLs'
budgets, seeds and methods and fewer epochs:

1. ``features``: every machine checked and its features cached once (shared, in neither time);
2. ``serial``: ``pretrain`` then ``transfer`` of each version (``experiment.executor: serial``);
   every task (a pretraining job, a cell) is timed with its fits, and the driver's own time
   (planning, checks, saving) is what the command took beyond its tasks;
3. ``local``: the same commands in a fresh work folder with ``experiment.executor: local``
   (``--workers`` processes x ``--threads`` threads). Its results must equal the serial ones in every column
   but ``train_seconds`` and ``config_hash`` (which hashes ``transfer.init_from``, another folder);
4. PROJECTION to full MIMII size: each task's cost is projected as ``bench_grid.py`` projects
   stages (its fits: fixed + samples / rate, samples scaled by the data (1 / s) and the YAML
   epochs; the rest linear in clips), and the driver's time linearly too (errs high: saving a
   row does not grow with the data). The tasks are list-scheduled on 1, 4, 16 and 64 workers
   (a free worker takes the first task in plan order whose inputs exist): cells after the
   pretrained model they start from, a later version's scratch cells after the first version's
   (they read its scratch store). Two ways: the commands in sequence, as the CLI runs them
   (``pretrain v1``, ``transfer v1``, ``pretrain v2`` ...; each waits for the one before), and
   all tasks as one graph (only the real dependencies).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import heapq
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _bench import dataset_scale, load_line, machine_line, make_dataset, subset_root
from bench_grid import VERSIONS, FitLog, copy_versions

WORKERS = (1, 4, 16, 64)


@dataclass
class Task:
    """One pretraining job or cell: its command, name, the tasks it needs, its wall time and its fits' stage."""

    command: str
    name: tuple
    deps: tuple = ()
    seconds: float = 0.0
    projected: float = 0.0


@dataclass
class Record:
    """What the serial run measured: every task in run order, and each command's wall time."""

    tasks: list[Task] = field(default_factory=list)
    commands: dict[str, float] = field(default_factory=dict)


@contextlib.contextmanager
def record_tasks(log: FitLog, record: Record, versions):
    """Time every `pretrain_job` and `run_cell` of this process in the block as a `Task` (its fits tagged with it)."""
    import common.experiment.grid as experiment
    import common.experiment.pretrain as pretrain
    from common.methods.registry import METHODS
    from common.methods.catalog import BASELINE, MODEL_PRETRAININGS

    job, cell_fn = pretrain.pretrain_job, experiment.run_cell

    def timed(command, name, deps, fn, *args):
        log.stage = str(name)
        start = time.perf_counter()
        out = fn(*args)
        record.tasks.append(Task(command, name, deps, time.perf_counter() - start))
        return out

    def timed_job(cfg, j):
        v = cfg.experiment.version
        return timed(f"pretrain {v}", ("pretrain", v, j.source.label, j.method), (), job, cfg, j)

    def timed_cell(cfg, cell):
        v, pre = cfg.experiment.version, METHODS[cell.method].pretrains
        deps = (("pretrain", v, cell.source_label, pre),) if pre in MODEL_PRETRAININGS else ()
        if cell.method == BASELINE and v != versions[0]:
            deps = (("cell", versions[0], cell.key),)  # reads the scratch store the first version fills
        return timed(f"transfer {v}", ("cell", v, cell.key), deps, cell_fn, cfg, cell)

    pretrain.pretrain_job, experiment.run_cell = timed_job, timed_cell
    try:
        yield
    finally:
        pretrain.pretrain_job, experiment.run_cell = job, cell_fn


def run_grid(root: Path, work: Path, cache: Path, *, versions, executor: str, workers: int, threads: int,
             epochs: int, transfer_epochs: int, record: Record | None = None) -> dict[str, float]:
    """Pretrain and transfer every version in `work` on `executor`; the wall seconds of each command."""
    from common.config import load_config
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain

    copy_versions(work, versions)
    overrides = {"data": {"root": str(root), "cache_dir": str(cache)}, "fit": {"epochs": epochs},
                 "transfer": {"epochs": transfer_epochs}, "output": {"scratch_dir": str(work / "scratch")},
                 "experiment": {"executor": executor, "workers": workers, "threads_per_worker": threads}}
    walls = {}
    for v in versions:
        folder = work / f"Version{v[1:]}"
        for command, name, fn in (("pretrain", "make_pretrain", pretrain), ("transfer", "transfer_pretrain", transfer)):
            start = time.perf_counter()
            fn(load_config(folder / f"{name}_{v}.yaml", overrides=overrides), progress=False)
            walls[f"{command} {v}"] = time.perf_counter() - start
            print(f"  {executor:6s} {command} {v}: {walls[f'{command} {v}']:7.1f} s  (load average {load_line()})",
                  flush=True)
    if record is not None:
        record.commands = walls
    return walls


def same_results(a: Path, b: Path, versions) -> bool:
    """Whether every version's results.csv and scores.csv agree (all but train_seconds and config_hash)."""
    import pandas as pd

    for v in versions:
        out = f"Version{v[1:]}/result_transfer_pretrain_{v}"
        x, y = (pd.read_csv(w / out / "results.csv") for w in (a, b))
        drop = ["train_seconds", "config_hash"]
        if not x.drop(columns=drop).equals(y.drop(columns=drop)):
            return False
        if not pd.read_csv(a / out / "scores.csv").equals(pd.read_csv(b / out / "scores.csv")):
            return False
    return True


def project(record: Record, log: FitLog, *, scale: float, factor: dict[str, float]) -> dict[str, float]:
    """Each task's projected seconds at full size (into `Task.projected`); returns each command's driver seconds."""
    fixed, per_sample = log.line()
    for task in record.tasks:
        fits = [f for f in log.fits if f[0] == str(task.name)]
        fit_seconds = sum(f[2] for f in fits)
        task.projected = (sum(fixed + f[3] * factor[f[1]] / scale * per_sample for f in fits)
                          + max(0.0, task.seconds - fit_seconds) / scale)
    fits_h = sum(fixed + f[3] * factor[f[1]] / scale * per_sample for f in log.fits if f[0] != "") / 3600
    print(f"projected on 1 worker: fits {fits_h:.2f} h, rest of the tasks "
          f"{sum(t.projected for t in record.tasks) / 3600 - fits_h:.2f} h (fits: {fixed:.2f} s fixed + "
          f"{1 / per_sample:,.0f} samples/s)")
    driver = {}
    for command, wall in record.commands.items():
        inside = sum(t.seconds for t in record.tasks if t.command == command)
        driver[command] = max(0.0, wall - inside) / scale
    print(f"projected driver time (planning, checks, saving; linear in clips): {sum(driver.values()) / 3600:.2f} h")
    return driver


def list_schedule(tasks: list[Task], workers: int) -> float:
    """Makespan of list scheduling: a free worker takes the first task, in list order, whose dependencies are done.

    Dependencies on tasks outside `tasks` count as done from the start.
    """
    names = {t.name for t in tasks}
    done: dict[tuple, float] = {}
    pending, running, now, free = list(tasks), [], 0.0, workers
    while pending or running:
        ready = [t for t in pending if all(d not in names or done.get(d, float("inf")) <= now for d in t.deps)]
        for task in ready[:free]:
            pending.remove(task)
            heapq.heappush(running, (now + task.projected, task.name))
            free -= 1
        if not running:
            raise ValueError(f"tasks wait for tasks that never run: {[t.name for t in pending][:3]}")
        now, name = heapq.heappop(running)
        done[name], free = now, free + 1
    return now


def projections(record: Record, driver: dict[str, float]) -> list[tuple[int, float, float]]:
    """(workers, commands in sequence, one graph) in seconds, for each of `WORKERS`."""
    out = []
    for n in WORKERS:
        sequence = sum(list_schedule([t for t in record.tasks if t.command == c], n) + driver[c]
                       for c in record.commands)
        out.append((n, sequence, list_schedule(record.tasks, n) + sum(driver.values())))
    return out


def data_root(args, tmp: Path) -> Path:
    """The data root of the run: `--root` (or a subset of it at `--scale`), else a new synthetic set."""
    if not args.root:
        print(f"synthetic set at scale {args.scale:g}: {make_dataset(tmp / 'data', args.scale):.0f} s", flush=True)
        return tmp / "data"
    top = dataset_scale(args.root)
    if top + 1e-9 < args.scale:
        raise SystemExit(f"{args.root} is at scale {top:g}, below --scale {args.scale:g}")
    return args.root.resolve() if abs(top - args.scale) < 1e-9 else subset_root(args.root, tmp / "data", args.scale)


def startup_seconds(yaml: Path, root: Path, workers: int) -> float:
    """Wall seconds of a local executor that only imports the project (with Keras) in each worker, start to stop."""
    from common.config import load_config
    from common.experiment.executor import executor

    cfg = load_config(yaml, overrides={"data": {"root": str(root)}, "experiment": {"executor": "local",
                                                                                   "workers": workers}})
    start = time.perf_counter()
    with executor(cfg) as ex:
        list(ex.run(functools.partial(exec, "import common.experiment.grid"), [{} for _ in range(workers)]))
    return time.perf_counter() - start


def warm_features(root: Path, cache: Path, version: str) -> float:
    """Check every machine and cache its features once (the seconds it took)."""
    from common.config import load_config
    from common.data.dataset import load_machine, select_machines

    start = time.perf_counter()
    cfg = load_config(Path(__file__).resolve().parent.parent / f"Version{version[1:]}" / f"make_pretrain_{version}.yaml",
                      overrides={"data": {"root": str(root), "cache_dir": str(cache)}})
    for m in select_machines(cfg):
        load_machine(cfg, m, progress=False)
    return time.perf_counter() - start


def report(args, versions, serial: dict, local: dict, same: bool, rows, record: Record, full: dict) -> None:
    import keras

    print(machine_line())
    print(f"grid {','.join(versions)} at scale {args.scale:g}, fit.epochs {args.epochs}, transfer.epochs "
          f"{args.transfer_epochs}, Keras backend {keras.backend.backend()}, {len(record.tasks)} tasks "
          f"({sum(t.name[0] == 'pretrain' for t in record.tasks)} pretraining jobs), load average {load_line()}")
    for command in serial:
        print(f"  {command:14s} serial {serial[command]:7.1f} s   local x{args.workers} {local[command]:7.1f} s")
    s, lo = sum(serial.values()), sum(local.values())
    print(f"  {'total':14s} serial {s:7.1f} s   local x{args.workers} {lo:7.1f} s   speed-up {s / lo:.2f}x; "
          f"results {'identical' if same else 'DIFFER'} (all columns but train_seconds, config_hash)")
    print(f"PROJECTION to full MIMII size (fit.epochs {full['scratch']}, transfer.epochs {full['transfer']}), "
          "list-scheduled tasks + the driver's own time:")
    for n, sequence, graph in rows:
        print(f"  {n:3d} workers: commands in sequence {sequence / 3600:7.2f} h   one graph {graph / 3600:7.2f} h")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.01, help="data scale, 1.0 = MIMII-sized (default: 0.01)")
    parser.add_argument("--root", type=Path, help="a data root made at this or a larger scale (default: generate one)")
    parser.add_argument("--versions", default=",".join(VERSIONS), help="comma list (default: v1,v2,v3,v4)")
    parser.add_argument("--workers", type=int, default=2, help="local workers (default: 2)")
    parser.add_argument("--threads", type=int, default=1, help="threads_per_worker of the local run (default: 1)")
    parser.add_argument("--repeat", type=int, default=1, help="interleaved runs of each; the best counts (default: 1)")
    parser.add_argument("--epochs", type=int, default=2, help="fit.epochs of the run (default: 2)")
    parser.add_argument("--transfer-epochs", type=int, default=2, help="transfer.epochs of the run (default: 2)")
    args = parser.parse_args(argv)
    versions = tuple(args.versions.split(","))
    from common.config import load_config

    with tempfile.TemporaryDirectory(prefix="grid_executor_") as tmp:
        tmp = Path(tmp)
        root, cache = data_root(args, tmp), tmp / "cache"
        print(f"check + features of every machine: {warm_features(root, cache, versions[0]):.1f} s", flush=True)
        sizes = {"versions": versions, "workers": args.workers, "threads": args.threads, "epochs": args.epochs,
                 "transfer_epochs": args.transfer_epochs}
        record, log, serials, locals_ = Record(), FitLog(), [], []
        for r in range(args.repeat):  # interleaved: serial, local, serial, local ... (the first serial one measured)
            first = r == 0
            with log if first else contextlib.nullcontext(), \
                    record_tasks(log, record, versions) if first else contextlib.nullcontext():
                serials.append(run_grid(root, tmp / f"serial{r}", cache, executor="serial", **sizes,
                                        record=record if r == 0 else None))
            locals_.append(run_grid(root, tmp / f"local{r}", cache, executor="local", **sizes))
        same = all(same_results(tmp / "serial0", tmp / f"local{r}", versions) for r in range(args.repeat))
        serial, local = ({c: min(run[c] for run in runs) for c in runs[0]} for runs in (serials, locals_))
        startup = startup_seconds(tmp / "serial0" / f"Version{versions[0][1:]}" / f"make_pretrain_{versions[0]}.yaml",
                                  root, args.workers)
        own = load_config(tmp / "serial0" / f"Version{versions[0][1:]}" / f"make_pretrain_{versions[0]}.yaml",
                          overrides={"data": {"root": str(root)}})
    full = {"scratch": own.fit.epochs, "transfer": own.transfer.epochs}
    factor = {"scratch": full["scratch"] / args.epochs, "transfer": full["transfer"] / args.transfer_epochs}
    driver = project(record, log, scale=args.scale, factor=factor)
    report(args, versions, serial, local, same, projections(record, driver), record, full)
    print(f"  (a local executor's start-up per command: cluster, Keras imported in each worker, shut down: "
          f"{startup:.1f} s)")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
