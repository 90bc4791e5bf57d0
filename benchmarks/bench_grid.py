"""Benchmark: wall time of the whole v1-v4 grid at a given data scale, split by stage, projected to full size.

Usage::

    python benchmarks/bench_grid.py [--scale 0.02] [--root DIR] [--epochs 2] [--transfer-epochs 2]

Runs what ``make demo`` runs on a 16-machine synthetic set at scale ``s`` (``round(1000 * s)``
normal and ``round(250 * s)`` abnormal 10 s clips per machine; 1.0 is MIMII-sized), in a
temporary copy of the Version YAMLs (so the repository's results are untouched), with the YAMLs'
own budgets and seeds and fewer epochs. Stages, each timed on its own:

- ``synth``: writing the synthetic clips (real data is downloaded instead; not in the total);
- ``check``: reading and checking every clip (`check_machine`);
- ``features``: extracting and caching the log-mel features of every clip;
- ``pretrain vN``: `common.experiment.pretrain`, split into its fits and the rest (scoring the
  training clips, thresholds, saving);
- ``transfer vN``: `common.experiment.transfer`, split into its scratch fits (run once, by the
  first version; later ones reuse them), its transfer (fine-tuning) fits and the rest (zero-shot
  and all scoring, thresholds, saving models and results).

Every `Trainer.fit` call is timed with the number of samples it trained (vectors x epochs). A
straight line through all fits, seconds = fixed + samples / rate, splits a fit into its fixed
cost (loading weights, retracing, validation set-up) and its per-sample cost. The PROJECTION to
scale 1.0 with the YAMLs' epochs (``fit.epochs``, ``transfer.epochs``) keeps the number of fits
(the grid does not grow with the data), multiplies their samples by (1 / scale) x (YAML epochs /
run epochs), and scales every other stage by the number of clips (1 / scale); fixed costs of
those (saving models, writing results) are scaled too, so that part errs high.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _bench import REPO, dataset_scale, load_line, machine_line, make_dataset, subset_root

VERSIONS = ("v1", "v2", "v3", "v4")


def copy_versions(work: Path, versions) -> None:
    """The Version YAMLs (only) under `work`, so models and results are written there."""
    for v in versions:
        folder = work / f"Version{v[1:]}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in (f"make_pretrain_{v}.yaml", f"transfer_pretrain_{v}.yaml"):
            (folder / name).write_text((REPO / folder.name / name).read_text())


class FitLog:
    """Times every `Trainer.fit` in this process: (stage, kind, seconds, samples) per call.

    A fit from `Trainer.init_weights` is ``scratch`` (pretraining, training from scratch); any
    other is ``transfer`` (fine-tuning loaded weights).
    """

    def __init__(self) -> None:
        self.stage = ""
        self.fits: list[tuple[str, str, float, int]] = []

    def __enter__(self) -> FitLog:
        from common.train import Trainer, validation_rows

        fit, init = self._saved = Trainer.fit, Trainer.init_weights
        fresh: set[int] = set()
        log = self

        def init_weights(trainer, arch, *, seed):
            weights = init(trainer, arch, seed=seed)
            fresh.add(id(weights))
            return weights

        def timed_fit(trainer, arch, weights, x, **kw):
            start = time.perf_counter()
            out = fit(trainer, arch, weights, x, **kw)
            samples = validation_rows(len(x), kw.get("validation_split", 0.0)) * kw["epochs"]
            kind = "scratch" if id(weights) in fresh else "transfer"
            log.fits.append((log.stage, kind, time.perf_counter() - start, samples))
            return out

        Trainer.fit, Trainer.init_weights = timed_fit, init_weights
        return self

    def __exit__(self, *exc) -> None:
        from common.train import Trainer

        Trainer.fit, Trainer.init_weights = self._saved

    def select(self, stage: str, kind: str | None = None) -> tuple[float, int, int]:
        """(seconds, samples, number) of the fits of `stage` (and `kind`)."""
        rows = [f for f in self.fits if f[0] == stage and (kind is None or f[1] == kind)]
        return sum(f[2] for f in rows), sum(f[3] for f in rows), len(rows)

    def line(self) -> tuple[float, float]:
        """(fixed seconds per fit, seconds per sample): least squares over every fit, both >= 0."""
        import numpy as np

        t = np.array([f[2] for f in self.fits])
        n = np.array([f[3] for f in self.fits], dtype=float)
        if len(t) < 2 or np.ptp(n) == 0:
            return 0.0, float(t.sum() / max(n.sum(), 1))
        slope, intercept = np.polyfit(n, t, 1)
        if intercept < 0 or slope <= 0:  # noise: fall back to a pure per-sample cost
            return 0.0, float(t.sum() / n.sum())
        return float(intercept), float(slope)


def run(root: Path, work: Path, *, versions, epochs: int, transfer_epochs: int) -> tuple[list, dict, FitLog]:
    """Time every stage; returns ([(stage, seconds, (fit stage, kind) or None)], the YAMLs' epochs, the fit log)."""
    from common.config import load_config
    from common.dataset import check_machine, load_machine, select_machines
    from common.experiment import transfer
    from common.pretrain import pretrain

    copy_versions(work, versions)
    data = {"root": str(root), "cache_dir": str(work / "cache")}
    overrides = {"data": data, "fit": {"epochs": epochs}, "transfer": {"epochs": transfer_epochs},
                 "output": {"scratch_dir": str(work / "scratch")}}
    first = work / f"Version{versions[0][1:]}" / f"make_pretrain_{versions[0]}.yaml"
    own = load_config(first, overrides={"data": data})
    full_epochs = {"scratch": own.fit.epochs, "transfer": own.transfer.epochs}

    stages: list = []
    cfg = load_config(first, overrides=overrides)
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
            log.stage = f"pretrain {v}"
            start = time.perf_counter()
            pretrain(load_config(folder / f"make_pretrain_{v}.yaml", overrides=overrides), progress=False)
            wall = time.perf_counter() - start
            fits = log.select(log.stage)[0]
            stages += [(f"pretrain {v}: fits", fits, (log.stage, "scratch")),
                       (f"pretrain {v}: scoring, saving", wall - fits, None)]
            log.stage = f"transfer {v}"
            start = time.perf_counter()
            transfer(load_config(folder / f"transfer_pretrain_{v}.yaml", overrides=overrides), progress=False)
            wall = time.perf_counter() - start
            scratch, tuned = log.select(log.stage, "scratch")[0], log.select(log.stage, "transfer")[0]
            stages += [(f"transfer {v}: scratch fits", scratch, (log.stage, "scratch")),
                       (f"transfer {v}: transfer fits", tuned, (log.stage, "transfer")),
                       (f"transfer {v}: zero-shot, scoring, saving", wall - scratch - tuned, None)]
    return stages, full_epochs, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=0.02, help="data scale, 1.0 = MIMII-sized (default: 0.02)")
    parser.add_argument("--root", type=Path, help="a data root made at this or a larger scale (default: generate one)")
    parser.add_argument("--epochs", type=int, default=2, help="fit.epochs of the run (default: 2)")
    parser.add_argument("--transfer-epochs", type=int, default=2, help="transfer.epochs of the run (default: 2)")
    parser.add_argument("--versions", default=",".join(VERSIONS), help="comma list (default: v1,v2,v3,v4)")
    args = parser.parse_args(argv)
    versions = tuple(args.versions.split(","))

    synth = None
    with tempfile.TemporaryDirectory(prefix="bench_grid_") as tmp:
        tmp = Path(tmp)
        if args.root:
            top = dataset_scale(args.root)
            if top + 1e-9 < args.scale:
                parser.error(f"{args.root} is at scale {top:g}, below --scale {args.scale:g}")
            root = args.root.resolve() if abs(top - args.scale) < 1e-9 else subset_root(args.root, tmp / "data", args.scale)
        else:
            root = tmp / "data"
            synth = make_dataset(root, args.scale)
        stages, full, log = run(root, tmp / "work", versions=versions, epochs=args.epochs,
                                transfer_epochs=args.transfer_epochs)

    from common.model import keras

    fixed, per_sample = log.line()
    epoch_factor = {"scratch": full["scratch"] / args.epochs, "transfer": full["transfer"] / args.transfer_epochs}
    print(machine_line())
    print(f"grid {','.join(versions)} at scale {args.scale:g}, fit.epochs {args.epochs}, transfer.epochs "
          f"{args.transfer_epochs}, Keras backend {keras.backend.backend()}, load average {load_line()}")
    print(f"{len(log.fits)} fits, {sum(f[3] for f in log.fits):,} samples: {fixed:.2f} s fixed per fit + "
          f"{1 / per_sample:,.0f} samples/s")
    if synth is not None:
        print(f"  {'synth (not in the total)':40s} {synth:8.1f} s")
    total = proj = 0.0
    for stage, seconds, fits in stages:
        if fits is None:
            projected, note = seconds / args.scale, ""
        else:
            _, samples, n_fits = log.select(*fits)
            projected = n_fits * fixed + samples * epoch_factor[fits[1]] / args.scale * per_sample
            note = f"  ({n_fits} fits, {samples:,} samples)"
        total, proj = total + seconds, proj + projected
        print(f"  {stage:40s} {seconds:8.1f} s   projected {projected / 3600:6.2f} h{note}")
    print(f"  {'total':40s} {total:8.1f} s")
    print(f"PROJECTION to scale 1.0 (MIMII-sized) with fit.epochs {full['scratch']} and transfer.epochs "
          f"{full['transfer']}: {proj / 3600:.1f} h (fits: fixed + samples / rate; the rest linear in clips)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
