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
- ``pretrain vN``: `common.experiment.pretrain`;
- ``transfer vN``: `common.experiment.transfer`, split into the training time of its scratch and
  transfer rows (``train_seconds`` in results.csv) and the rest (zero-shot and all scoring,
  thresholds, saving models and results).

The PROJECTION to scale 1.0 with the YAMLs' epochs (``fit.epochs``, ``transfer.epochs``) scales
each stage linearly: check, features and scoring by the number of clips (1 / scale), training by
clips x epochs. Fixed costs (tracing, saving) are scaled too, so it errs high.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import REPO, dataset_scale, load_line, machine_line, make_dataset, subset_root  # noqa: E402

VERSIONS = ("v1", "v2", "v3", "v4")


def copy_versions(work: Path, versions) -> None:
    """The Version YAMLs (only) under `work`, so models and results are written there."""
    for v in versions:
        folder = work / f"Version{v[1:]}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in (f"make_pretrain_{v}.yaml", f"transfer_pretrain_{v}.yaml"):
            (folder / name).write_text((REPO / folder.name / name).read_text())


def run(root: Path, work: Path, *, versions, epochs: int, transfer_epochs: int) -> tuple[dict, dict]:
    """Time every stage; returns (seconds per stage, the YAMLs' own epochs)."""
    from common.config import load_config
    from common.experiment import pretrain, transfer
    from common.prepare import check_machine, load_machine, select_machines

    copy_versions(work, versions)
    data = {"root": str(root), "cache_dir": str(work / "cache")}
    overrides = {"data": data, "fit": {"epochs": epochs}, "transfer": {"epochs": transfer_epochs},
                 "output": {"scratch_dir": str(work / "scratch")}}
    first = work / f"Version{versions[0][1:]}" / f"make_pretrain_{versions[0]}.yaml"
    own = load_config(first, overrides={"data": data})
    full_epochs = {"fit": own.fit.epochs, "transfer": own.transfer.epochs}

    t: dict[str, float] = {}
    cfg = load_config(first, overrides=overrides)
    machines = select_machines(cfg)
    start = time.perf_counter()
    checked = {m: check_machine(cfg, m) for m in machines}
    t["check"] = time.perf_counter() - start
    start = time.perf_counter()
    for m in machines:
        load_machine(cfg, m, progress=False, checked=checked[m])
    t["features"] = time.perf_counter() - start
    for v in versions:
        folder = work / f"Version{v[1:]}"
        start = time.perf_counter()
        pretrain(load_config(folder / f"make_pretrain_{v}.yaml", overrides=overrides), progress=False)
        t[f"pretrain {v}"] = time.perf_counter() - start
        start = time.perf_counter()
        results = transfer(load_config(folder / f"transfer_pretrain_{v}.yaml", overrides=overrides), progress=False)
        wall = time.perf_counter() - start
        train = results.groupby("method")["train_seconds"].sum()
        t[f"transfer {v}: scratch fits"] = float(train.get("scratch", 0.0))
        t[f"transfer {v}: transfer fits"] = float(train.get("transfer", 0.0))
        t[f"transfer {v}: zero-shot, scoring, saving"] = wall - t[f"transfer {v}: scratch fits"] - t[f"transfer {v}: transfer fits"]
    return t, full_epochs


def factor(stage: str, scale: float, epochs: int, transfer_epochs: int, full: dict) -> float:
    """How much longer `stage` takes at scale 1.0 with the YAMLs' epochs (linear model)."""
    if stage.startswith("pretrain") or stage.endswith("scratch fits"):
        return full["fit"] / epochs / scale
    if stage.endswith("transfer fits"):
        return full["transfer"] / transfer_epochs / scale
    return 1.0 / scale


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
        times, full = run(root, tmp / "work", versions=versions, epochs=args.epochs,
                          transfer_epochs=args.transfer_epochs)

    from common.model import keras

    print(machine_line())
    print(f"grid {','.join(versions)} at scale {args.scale:g}, fit.epochs {args.epochs}, transfer.epochs "
          f"{args.transfer_epochs}, Keras backend {keras.backend.backend()}, load average {load_line()}")
    if synth is not None:
        print(f"  {'synth (not in the total)':42s} {synth:8.1f} s")
    total = proj = 0.0
    for stage, seconds in times.items():
        f = factor(stage, args.scale, args.epochs, args.transfer_epochs, full)
        total, proj = total + seconds, proj + seconds * f
        print(f"  {stage:42s} {seconds:8.1f} s   projected {seconds * f / 3600:7.2f} h")
    print(f"  {'total':42s} {total:8.1f} s")
    print(f"PROJECTION to scale 1.0 (MIMII-sized) with fit.epochs {full['fit']} and transfer.epochs "
          f"{full['transfer']}: {proj / 3600:.1f} h (linear in clips and epochs; fixed costs scaled too, so high)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
