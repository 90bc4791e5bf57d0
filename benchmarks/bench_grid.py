"""Benchmark: wall time of the whole v1-v4 grid at a given data scale, split by stage, projected to full size.

Usage::

    python benchmarks/bench_grid.py [--scale 0.02] [--root DIR] [--epochs 2] [--transfer-epochs 2]
                                    [--rate-vectors 100000] [--ceiling-gflops G] [--backend auto]
                                    [--rest-scale S] [--workers 2]

Runs the grid the issue projects (issue 17) on a 16-machine synthetic set at scale ``s``
(``round(1000 * s)`` normal and ``round(250 * s)`` abnormal 10 s clips per machine; 1.0 is
MIMII-sized), in a temporary copy of the Version YAMLs (so the repository's results are untouched):
every version, the autoencoder methods, budgets and seeds of ``make demo`` (`common.demo`), the
YAMLs' other settings, and fewer epochs. Stages, each timed on its own:

- ``synth``: writing the synthetic clips (real data is downloaded instead; not in the total);
- ``check``: reading and checking every clip (`check_machine`);
- ``features``: extracting and caching the log-mel features of every clip;
- ``pretrain vN``: `common.experiment.pretrain.pretrain`, split into its fits, its models (initial weights
  and saving) and the rest (scoring the training clips, thresholds, histories);
- ``transfer vN``: `common.experiment.grid.run_grid`, split into its scratch fits (run once, by the
  first version; later ones reuse them), its transfer (fine-tuning) fits, its models and the rest
  (zero-shot and all scoring, thresholds, results).

Every `Trainer.fit` call is timed with the number of samples it trained (vectors x epochs). A
straight line through all fits, seconds = fixed + samples / rate, gives the fixed cost of a fit
(loading weights, optimizer reset, tracing of new shapes, validation set-up); when a few compiles
in the largest fits tilt it below zero, the fixed cost is the mean of seconds - samples / (in-RAM
rate of the large fits) instead. Models add their initial weights and saving (the issue's per-fit
fixed cost, target < 0.1 s). The rate of the tiny fits of a small run is not the rate of the large
fits of a full-size grid, so the run ends with large fits of `--rate-vectors` vectors, in RAM and
streamed, with the grid's architecture and fit settings: their samples/s (net of the fixed cost)
are the rates of the projection.

PROJECTION to scale 1.0 with the YAMLs' epochs (``fit.epochs``, ``transfer.epochs``): the number of
fits and models stays (the grid does not grow with the data); each fit costs fixed + samples /
rate, its samples multiplied by the epoch ratio, and by the growth of the training clips (about
1 / scale) when its data grows with them (pretraining, budget ``all``; a budget of k clips stays k
clips); a set larger than ``fit.max_in_memory_mb`` at full size (every pretraining source set:
0.9-3.5 GB) trains at the streamed rate, others at the in-RAM rate. Models cost what they cost
here; every other stage (scoring, thresholds, results) is a line in the clips per machine through
this run and a second one at ``--rest-scale`` (half the scale by default), so that its per-cell part
(a row, its AUC, the store) does not grow with the data while its scoring does.

With ``--workers N`` (default 2) the grid is also projected for ``experiment.executor: local`` with N
workers of one thread each, the way to use a 2-core machine fully: N one-core processes train side
by side at nearly N times the rate of one process on all cores (JAX's threads gain little on
matrices this small). Their rates are measured with N pinned processes at once; the projection
spreads the fits and the rest evenly over the workers. The grid's effective samples/s (all training
samples of the full grid / projected seconds) is printed as a fraction of the machine's arithmetic
ceiling (`bench_ceiling.py`; target at least half).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _bench import (MIMII_ABNORMAL, MIMII_NORMAL, REPO, add_backend_option, backend_line, dataset_scale, load_line, machine_line, make_dataset,
                    scaled_counts, subset_root, use_backend)
from bench_ceiling import ceiling_gflops, ceiling_line, ceiling_samples, n_weights

VERSIONS = ("v1", "v2", "v3", "v4")
TARGET_HOURS = 3.0  # issue 17: the full-MIMII grid on one 2-core machine
TARGET_FIXED_S = 0.1  # issue 17: per-fit fixed cost
TARGET_FRACTION = 0.5  # issue 17: the grid's effective samples/s, of the ceiling
IN_RAM, STREAMED = "in RAM", "streamed"


def demo_experiment() -> dict:
    """``experiment`` overrides of the projected grid: the demo's budgets and seeds, its autoencoder methods."""
    from common.methods.catalog import METHOD_FAMILY
    from common.demo import DEMO_OVERRIDES

    demo = DEMO_OVERRIDES["experiment"]
    return {"budgets": list(demo["budgets"]), "seeds": list(demo["seeds"]),
            "methods": [m for m in demo["methods"] if METHOD_FAMILY[m] == "autoencoder"]}


def copy_versions(work: Path, versions) -> None:
    """The Version YAMLs (only) under `work`, so models and results are written there."""
    for v in versions:
        folder = work / f"Version{v[1:]}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in (f"make_pretrain_{v}.yaml", f"transfer_pretrain_{v}.yaml"):
            (folder / name).write_text((REPO / folder.name / name).read_text())


@dataclass
class Fit:
    """One timed `Trainer.fit`: its stage, kind (scratch or transfer), seconds, samples, budget, set bytes."""

    stage: str
    kind: str
    seconds: float
    samples: int
    budget: int | str | None  # None: pretraining (the whole source set)
    set_bytes: int | None  # a VectorSet's size (streamed when too large); None for an array (always in RAM)


class FitLog:
    """Times every `Trainer.fit` in this process, and the model work around it (initial weights, saving).

    A fit from `Trainer.init_weights` is ``scratch`` (pretraining, training from scratch); any
    other is ``transfer`` (fine-tuning loaded weights). The budget is that of the cell running.
    """

    def __init__(self) -> None:
        self.stage = ""
        self.budget: int | str | None = None
        self.fits: list[Fit] = []
        self.models: list[tuple[str, float]] = []  # (stage, seconds) of initial weights and saves
        self._saved: list[tuple[object, str, object]] = []
        self._fresh: set[int] = set()

    def _patch(self, owner, name: str, make) -> None:
        original = getattr(owner, name)
        self._saved.append((owner, name, original))
        setattr(owner, name, make(original))

    def _model_work(self, original):
        def timed(*args, **kw):
            start = time.perf_counter()
            out = original(*args, **kw)
            self.models.append((self.stage, time.perf_counter() - start))
            return out
        return timed

    def __enter__(self) -> FitLog:
        import common.experiment.grid as experiment
        import common.experiment.pretrain as pretrain
        from common.features.vectorset import VectorSet
        from common.models.train import Trainer, validation_rows

        def init_weights(original):
            def wrapped(trainer, arch, *, seed):
                weights = self._model_work(original)(trainer, arch, seed=seed)
                self._fresh.add(id(weights))
                return weights
            return wrapped

        def fit(original):
            def wrapped(trainer, arch, weights, x, **kw):
                start = time.perf_counter()
                out = original(trainer, arch, weights, x, **kw)
                self.fits.append(Fit(self.stage, "scratch" if id(weights) in self._fresh else "transfer",
                                     time.perf_counter() - start,
                                     validation_rows(len(x), kw.get("validation_split", 0.0)) * kw["epochs"],
                                     self.budget, x.nbytes if isinstance(x, VectorSet) else None))
                return out
            return wrapped

        def run_cell(original):
            def wrapped(cfg, cell):
                self.budget = cell.budget
                try:
                    return original(cfg, cell)
                finally:
                    self.budget = None
            return wrapped

        self._patch(Trainer, "init_weights", init_weights)
        self._patch(Trainer, "fit", fit)
        self._patch(experiment, "run_cell", run_cell)
        for owner, name in ((experiment, "save_model"), (experiment, "copy_model"), (pretrain, "save_model")):
            self._patch(owner, name, self._model_work)
        return self

    def __exit__(self, *exc) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)

    def select(self, stage: str, kind: str | None = None) -> list[Fit]:
        """The fits of `stage` (and `kind`)."""
        return [f for f in self.fits if f.stage == stage and (kind is None or f.kind == kind)]

    def model_work(self, stage: str) -> tuple[float, int]:
        """(seconds, calls) of initial weights and saves in `stage`."""
        rows = [s for st, s in self.models if st == stage]
        return sum(rows), len(rows)

    def line(self) -> tuple[float, float]:
        """(intercept seconds, seconds per sample) of the least-squares line seconds vs samples over every fit."""
        import numpy as np

        t = np.array([f.seconds for f in self.fits])
        n = np.array([f.samples for f in self.fits], dtype=float)
        if len(t) < 2 or np.ptp(n) == 0:
            return float("nan"), float("nan")
        slope, intercept = np.polyfit(n, t, 1)
        return float(intercept), float(slope)

    def fixed_cost(self, in_ram_rate: float) -> tuple[float, str]:
        """(fixed seconds per fit, how): the line's intercept, or with the large fits' rate as slope when
        the line is degenerate (a few compiles in the largest fits can tilt it below zero)."""
        intercept, slope = self.line()
        how = f"intercept of the line through {len(self.fits)} fits"
        if intercept >= 0 and slope > 0:
            return intercept, how
        known = sum(f.seconds - f.samples / in_ram_rate for f in self.fits) / max(len(self.fits), 1)
        return max(known, 0.0), (f"line degenerate ({intercept:+.3f} s, slope {slope:.2e} s/sample): mean over "
                                 f"{len(self.fits)} fits of seconds - samples / in-RAM rate")


def grid_configs(work: Path, root: Path, versions, *, epochs: int, transfer_epochs: int):
    """(overrides of the run, the first version's own config: the YAMLs' epochs and fit settings)."""
    from common.config import load_config

    copy_versions(work, versions)
    data = {"root": str(root), "cache_dir": str(work / "cache")}
    overrides = {"data": data, "fit": {"epochs": epochs}, "transfer": {"epochs": transfer_epochs},
                 "output": {"scratch_dir": str(work / "scratch")}, "experiment": demo_experiment()}
    own = load_config(work / f"Version{versions[0][1:]}" / f"make_pretrain_{versions[0]}.yaml",
                      overrides={"data": data})
    return overrides, own


def timed_stage(stages: list, log: FitLog, name: str, call, kinds) -> None:
    """Run `call` as stage `name` of `log`; append its fits by kind, its model work and the rest to `stages`."""
    log.stage = name
    start = time.perf_counter()
    call()
    wall = time.perf_counter() - start
    for kind, label in kinds:
        stages.append((f"{name}: {label}", sum(f.seconds for f in log.select(name, kind)), (name, kind)))
    models, count = log.model_work(name)
    stages.append((f"{name}: models ({count} inits, saves)", models, "models"))
    rest = wall - sum(f.seconds for f in log.select(name)) - models
    stages.append((f"{name}: {'scoring, saving' if name.startswith('pretrain') else 'zero-shot, scoring, results'}",
                   rest, None))


def run(root: Path, work: Path, *, versions, epochs: int, transfer_epochs: int) -> tuple[list, object, FitLog]:
    """Time every stage; returns ([(stage, seconds, (fit stage, kind), "models" or None)], own config, fit log)."""
    from common.config import load_config
    from common.data.dataset import check_machine, load_machine, select_machines
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain

    overrides, own = grid_configs(work, root, versions, epochs=epochs, transfer_epochs=transfer_epochs)
    stages: list = []
    cfg = load_config(work / f"Version{versions[0][1:]}" / f"make_pretrain_{versions[0]}.yaml", overrides=overrides)
    machines = select_machines(cfg)
    start = time.perf_counter()
    checked = {m: check_machine(cfg, m) for m in machines}
    stages.append(("check", time.perf_counter() - start, None))
    start = time.perf_counter()
    for m in machines:
        load_machine(cfg, m, progress=False, checked=checked[m])
    stages.append(("features", time.perf_counter() - start, None))
    with FitLog() as log:
        for v in versions:
            folder = work / f"Version{v[1:]}"
            make = load_config(folder / f"make_pretrain_{v}.yaml", overrides=overrides)
            timed_stage(stages, log, f"pretrain {v}", lambda: pretrain(make, progress=False), [("scratch", "fits")])
            tune = load_config(folder / f"transfer_pretrain_{v}.yaml", overrides=overrides)
            timed_stage(stages, log, f"transfer {v}", lambda: run_grid(tune, progress=False),
                        [("scratch", "scratch fits"), ("transfer", "transfer fits")])
    return stages, own, log


def measure_rates(cfg, *, vectors: int, epochs: int, repeat: int) -> dict[str, tuple[float, int]]:
    """(best seconds, samples) of a large fit in RAM and streamed, with `cfg`'s architecture and fit settings."""
    from bench_training import make_vectors, write_parts

    from common.models.autoencoder import architecture
    from common.models.train import Trainer, validation_rows

    arch = architecture(cfg.feature.n_mels * cfg.feature.frames, hidden=cfg.model.hidden,
                        bottleneck=cfg.model.bottleneck, batch_norm=cfg.model.batch_norm)
    kw = dict(batch_size=cfg.fit.batch_size, learning_rate=cfg.fit.learning_rate,
              validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle, seed=0)
    x = make_vectors(vectors, arch["input_dim"])
    samples = validation_rows(len(x), cfg.fit.validation_split) * epochs
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench_grid_rate_") as tmp:
        vset = write_parts(x, Path(tmp), 12)  # a v4 source set has 12 machines
        for name, trainer, data in ((IN_RAM, Trainer(), x), (STREAMED, Trainer(in_memory_bytes=0), vset)):
            weights = trainer.init_weights(arch, seed=0)
            trainer.fit(arch, weights, data, epochs=1, **kw)  # compile, trace these shapes, page cache
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                trainer.fit(arch, weights, data, epochs=epochs, **kw)
                best = min(best, time.perf_counter() - start)
            out[name] = (best, samples)
        vset.close()
    return out


def worker_rates(args: argparse.Namespace, workers: int) -> dict[str, tuple[float, int]]:
    """Rates of `workers` processes of one core each, training at the same time (``executor: local``).

    Each child (``--child-rate CORE``) pins itself to one core and runs `measure_rates`; the result
    is (seconds, samples) of one worker, the slowest child's, so ``workers x`` it is the machine's rate.
    """
    import json
    import subprocess

    cmd = [sys.executable, __file__, "--rate-vectors", str(args.rate_vectors), "--rate-epochs", str(args.rate_epochs),
           "--rate-repeat", str(args.rate_repeat), "--backend", args.backend, "--child-rate"]
    procs = [subprocess.Popen(cmd + [str(core)], stdout=subprocess.PIPE, text=True) for core in range(workers)]
    results = [json.loads(proc.communicate()[0].strip().splitlines()[-1]) for proc in procs]
    if any(proc.returncode for proc in procs):
        raise SystemExit("a --child-rate process failed")
    return {k: max((tuple(r[k]) for r in results), key=lambda ts: ts[0]) for k in (IN_RAM, STREAMED)}


def child_rate(args: argparse.Namespace) -> int:
    """One worker of `worker_rates`: pinned to core ``args.child_rate``, prints its rates as JSON."""
    import json
    import os

    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[args.child_rate]})
    use_backend(args.backend)
    from common.config import load_config

    own = load_config(REPO / "Version1" / "make_pretrain_v1.yaml", overrides={"data": {"root": str(REPO)}})
    print(json.dumps(measure_rates(own, vectors=args.rate_vectors, epochs=args.rate_epochs, repeat=args.rate_repeat)))
    return 0


def net_rates(measured: dict[str, tuple[float, int]], fixed: float) -> dict[str, float]:
    """Samples/s of each measured fit net of the per-fit fixed cost (gross when the fit is not much longer)."""
    return {k: samples / (t - fixed if t > 2 * fixed else t) for k, (t, samples) in measured.items()}


def train_growth(scale: float) -> float:
    """How many times more training clips a machine has at full size than at `scale` (rounding included)."""
    n_normal, n_abnormal = scaled_counts(scale)
    return (MIMII_NORMAL - MIMII_ABNORMAL) / (n_normal - n_abnormal)  # the mimii split: eval normal = abnormal


def project_fit(f: Fit, *, scale: float, epoch_factor: dict, fixed: float, rates: dict, max_bytes: int):
    """(full-size samples, projected seconds, streamed at full size) of one fit of the run."""
    grows = train_growth(scale) if f.budget in (None, "all") else 1.0
    samples = f.samples * epoch_factor[f.kind] * grows
    streamed = f.set_bytes is not None and f.set_bytes * grows > max_bytes
    return samples, fixed + samples / rates[STREAMED if streamed else IN_RAM], streamed


def clips_per_machine(scale: float) -> int:
    """Clips of one machine (normal + abnormal) at `scale`."""
    return sum(scaled_counts(scale))


def project_rest(seconds: float, scale: float, second: tuple[float, float] | None) -> tuple[float, str]:
    """(full-size seconds, note) of a stage that is neither fits nor models: linear in the clips per machine.

    With a `second` run (its seconds, its scale) the line goes through both runs, so a per-cell cost that
    does not grow with the data stays fixed; without one, the stage is scaled by the clips (errs high).
    """
    full = clips_per_machine(1.0)
    if second is None:
        return seconds * full / clips_per_machine(scale), "  (x clips)"
    other, other_scale = second
    c1, c2 = clips_per_machine(other_scale), clips_per_machine(scale)
    slope = max((seconds - other) / (c2 - c1), 0.0)
    return seconds + slope * (full - c2), f"  (line through {other:.1f} s at {c1} and this at {c2} clips per machine)"


def project(stages: list, log: FitLog, *, scale: float, epoch_factor: dict, fixed: float, rates: dict,
            max_bytes: int, second: dict | None = None) -> tuple[list, dict]:
    """[(stage, seconds, projected seconds, note)] and the projected totals: seconds, fit seconds, samples, rest.

    `second`: the rest stages' seconds of a run at another scale, {"scale": s, stage: seconds}.
    """
    rows, totals = [], {"seconds": 0.0, "fits": 0.0, "samples": 0.0, "rest": 0.0}
    for stage, seconds, what in stages:
        if what is None:
            other = (second[stage], second["scale"]) if second and stage in second else None
            projected, note = project_rest(seconds, scale, other)
            totals["rest"] += projected
        elif what == "models":
            projected, note = seconds, "  (as measured: the number of models does not grow)"
            totals["rest"] += projected
        else:
            fits = [project_fit(f, scale=scale, epoch_factor=epoch_factor, fixed=fixed, rates=rates,
                                max_bytes=max_bytes) for f in log.select(*what)]
            projected, samples = sum(p[1] for p in fits), sum(p[0] for p in fits)
            totals["fits"] += projected
            totals["samples"] += samples
            note = (f"  ({len(fits)} fits, {samples:,.0f} samples at full size, "
                    f"{sum(p[2] for p in fits)} streamed)")
        rows.append((stage, seconds, projected, note))
        totals["seconds"] += projected
    return rows, totals


def report(args: argparse.Namespace, versions, stages: list, own, log: FitLog, measured: dict, synth,
           gflops: float, measured_here: bool, *, second: dict | None = None, workers: dict | None = None) -> None:
    """Print the run, the per-stage table with its projection, and the target lines."""
    intercept, per_sample = log.line()
    fixed, how = log.fixed_cost(measured[IN_RAM][1] / measured[IN_RAM][0])
    rates = net_rates(measured, fixed)
    cfg = own
    weights = n_weights(cfg.feature.n_mels * cfg.feature.frames, hidden=cfg.model.hidden,
                        bottleneck=cfg.model.bottleneck, batch_norm=cfg.model.batch_norm)
    ceiling = ceiling_samples(gflops, weights)
    epoch_factor = {"scratch": cfg.fit.epochs / args.epochs, "transfer": cfg.transfer.epochs / args.transfer_epochs}
    rows, totals = project(stages, log, scale=args.scale, epoch_factor=epoch_factor, fixed=fixed,
                           rates=rates, max_bytes=cfg.fit.max_in_memory_mb * 2**20, second=second)
    exp = demo_experiment()
    print(machine_line())
    print(f"grid {','.join(versions)} at scale {args.scale:g}, methods {','.join(exp['methods'])}, budgets "
          f"{exp['budgets']}, seeds {exp['seeds']}, fit.epochs {args.epochs}, transfer.epochs {args.transfer_epochs}; "
          f"{backend_line()}; load average {load_line()}")
    print(ceiling_line(gflops, weights, measured_here=measured_here))
    print(f"{len(log.fits)} fits, {sum(f.samples for f in log.fits):,} samples: line {intercept:.3f} s per fit + "
          f"{per_sample * 1e6:.2f} us per sample (the small fits of this run); fixed cost {fixed:.3f} s ({how})")
    print(f"rates of large fits ({args.rate_vectors:,} vectors x {args.rate_epochs} epochs, net of the fixed cost): "
          + ", ".join(f"{k} {r:,.0f} samples/s  ({100 * r / ceiling:.1f} % of ceiling)" for k, r in rates.items()))
    if synth is not None:
        print(f"  {'synth (not in the total)':48s} {synth:8.1f} s")
    for stage, seconds, projected, note in rows:
        print(f"  {stage:48s} {seconds:8.1f} s   projected {projected / 3600:6.2f} h{note}")
    print(f"  {'total':48s} {sum(r[1] for r in rows):8.1f} s")
    report_targets(log, totals, fixed=fixed, how=how, ceiling=ceiling, own=own, label="serial")
    if workers:
        per_worker = net_rates(workers, fixed)
        n = args.workers
        print(f"rates of {n} one-core workers side by side (each; the machine does {n} x): "
              + ", ".join(f"{k} {r:,.0f} samples/s" for k, r in per_worker.items()))
        _, local = project(stages, log, scale=args.scale, epoch_factor=epoch_factor, fixed=fixed, rates=per_worker,
                           max_bytes=cfg.fit.max_in_memory_mb * 2**20, second=second)
        slower = rates[IN_RAM] / per_worker[IN_RAM]  # the rest on one core instead of all, like the fits
        local["seconds"] = (local["fits"] + local["rest"] * slower) / n
        local["fits"] /= n
        report_targets(log, local, fixed=fixed, how=how, ceiling=ceiling, own=own,
                       label=f"executor local, {n} workers x 1 thread (work spread evenly; the rest {slower:.2f}x slower "
                             "on one core)")


def report_targets(log: FitLog, totals: dict, *, fixed: float, how: str, ceiling: float, own, label: str) -> None:
    """The three target lines of issue 17 (per-fit fixed cost, effective samples/s of the ceiling, total hours)
    for the grid run as `label` says."""
    proj, all_samples, fit_seconds = totals["seconds"], totals["samples"], totals["fits"]
    models = sum(s for _, s in log.models) / max(len(log.fits), 1)
    per_fit = fixed + models
    met = {True: "met", False: "NOT met"}
    if label == "serial":
        print(f"target per-fit fixed cost < {TARGET_FIXED_S} s: {per_fit:.3f} s = fit {fixed:.3f} s ({how}) + "
              f"initial weights and saving {models:.3f} s per fit: {met[per_fit < TARGET_FIXED_S]}")
    effective = all_samples / proj
    print(f"{label}:")
    print(f"target effective samples/s >= {100 * TARGET_FRACTION:.0f} % of ceiling: the full grid trains "
          f"{all_samples:,.0f} samples in {proj / 3600:.2f} h = {effective:,.0f} samples/s  = "
          f"{100 * effective / ceiling:.1f} % of {ceiling:,.0f}: {met[effective >= TARGET_FRACTION * ceiling]}")
    print(f"  (fits alone: {fit_seconds / 3600:.2f} h, {all_samples / max(fit_seconds, 1e-9):,.0f} samples/s = "
          f"{100 * all_samples / max(fit_seconds, 1e-9) / ceiling:.1f} % of ceiling)")
    print(f"PROJECTION [{label.split(' (')[0]}] to scale 1.0 (MIMII-sized) with fit.epochs {own.fit.epochs} and transfer.epochs "
          f"{own.transfer.epochs}: {proj / 3600:.2f} h (target <= {TARGET_HOURS:g} h on one 2-core machine: "
          f"{met[proj <= TARGET_HOURS * 3600]}; fits: fixed + samples / rate of large fits; models as measured; "
          "the rest linear in clips)")


def data_root(args: argparse.Namespace, parser: argparse.ArgumentParser, tmp: Path) -> tuple[Path, float | None]:
    """(the data root at `--scale`, seconds it took to write or None when `--root` was given)."""
    if args.root is None:
        return tmp / "data", make_dataset(tmp / "data", args.scale)
    top = dataset_scale(args.root)
    if top + 1e-9 < args.scale:
        parser.error(f"{args.root} is at scale {top:g}, below --scale {args.scale:g}")
    if abs(top - args.scale) < 1e-9:
        return args.root.resolve(), None
    return subset_root(args.root, tmp / "data", args.scale), None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.02, help="data scale, 1.0 = MIMII-sized (default: 0.02)")
    parser.add_argument("--root", type=Path, help="a data root made at this or a larger scale (default: generate one)")
    parser.add_argument("--epochs", type=int, default=2, help="fit.epochs of the run (default: 2)")
    parser.add_argument("--transfer-epochs", type=int, default=2, help="transfer.epochs of the run (default: 2)")
    parser.add_argument("--versions", default=",".join(VERSIONS), help="comma list (default: v1,v2,v3,v4)")
    parser.add_argument("--rate-vectors", type=int, default=100_000, help="vectors of the rate fits (default: 100000)")
    parser.add_argument("--rate-epochs", type=int, default=3, help="epochs of the rate fits (default: 3)")
    parser.add_argument("--rate-repeat", type=int, default=2, help="timed rate fits each; the best counts (default: 2)")
    parser.add_argument("--rest-scale", type=float, default=None,
                        help="a second, smaller run for the stages other than fits and models, so that their "
                             "per-cell cost is not scaled with the data (default: half of --scale; 0: none)")
    parser.add_argument("--workers", type=int, default=2,
                        help="also project `executor: local` with this many one-core workers, from their rates "
                             "measured side by side (default: 2; 0: no)")
    parser.add_argument("--child-rate", type=int, default=None, help=argparse.SUPPRESS)
    add_backend_option(parser)
    args = parser.parse_args(argv)
    if args.child_rate is not None:
        return child_rate(args)
    if args.rest_scale is None:
        args.rest_scale = args.scale / 2
    versions = tuple(args.versions.split(","))
    budgets = [b for b in demo_experiment()["budgets"] if b != "all"]
    for name, scale in (("--scale", args.scale), ("--rest-scale", args.rest_scale)):
        if not scale:
            continue
        n_normal, n_abnormal = scaled_counts(scale)
        if budgets and max(budgets) > n_normal - n_abnormal:
            parser.error(f"{name} {scale:g} leaves {n_normal - n_abnormal} training clips per machine, fewer "
                         f"than the demo's budget {max(budgets)}: use a larger {name}")
    use_backend(args.backend)

    gflops, measured_here = ceiling_gflops(args.ceiling_gflops)
    second = None
    with tempfile.TemporaryDirectory(prefix="bench_grid_") as tmp:
        root, synth = data_root(args, parser, Path(tmp))
        if args.rest_scale:
            small = subset_root(root, Path(tmp) / "data_small", args.rest_scale)
            small_stages, _, _ = run(small, Path(tmp) / "work_small", versions=versions, epochs=args.epochs,
                                     transfer_epochs=args.transfer_epochs)
            second = {"scale": args.rest_scale, **{name: sec for name, sec, what in small_stages if what is None}}
        stages, own, log = run(root, Path(tmp) / "work", versions=versions, epochs=args.epochs,
                               transfer_epochs=args.transfer_epochs)
    measured = measure_rates(own, vectors=args.rate_vectors, epochs=args.rate_epochs, repeat=args.rate_repeat)
    workers = worker_rates(args, args.workers) if args.workers > 1 else None
    report(args, versions, stages, own, log, measured, synth, gflops, measured_here, second=second,
           workers=workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
