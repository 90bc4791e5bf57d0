"""Benchmark: peak memory (RSS) of a v4 pretrain, streaming the sources (ours) vs concatenating them in RAM.

Usage::

    python benchmarks/bench_memory.py [--scales 0.025,0.05] [--root DIR] [--epochs 1] [--channels 8]

A v4 pretrain trains one model per left-out machine type on the training pools of the 12
machines of the other three types. The synthetic set has 16 machines (4 types x 4 IDs) with
``round(1000 * s)`` normal and ``round(250 * s)`` abnormal 10 s clips each at scale ``s`` (1.0 is
MIMII-sized: a v4 source set is then 12 x 750 training clips = 2.8 million vectors, 3.5 GiB of
float32). The largest scale is generated once into a temporary folder (or read from ``--root``),
smaller scales are symbolic links to its first clips. ``--channels 1`` writes one-channel clips
(an eighth of the disk; features and memory are the same, only channel 0 is ever read), which
makes scale 1.0 itself affordable to measure. For every scale, three subprocesses run one after
another, each measuring its own peak:

- ``features``: check every clip and extract + cache its log-mel features (`load_machine`);
- ``concat``: the reference: the same pretrain with the vectors of each source set concatenated
  in RAM (``np.concatenate``) and trained as one array, as the MIMII baseline does;
- ``stream``: `common.experiment.grid.pretrain` as wired: a `VectorSet` over the memory-mapped cache
  (`Trainer.fit` reads one batch at a time, or holds the set's frames up to ``fit.max_frames_mb``), training
  clips scored a few at a time.

Each reports ``ru_maxrss`` (the kernel's high-water mark of the resident set, which also counts
pages of memory-mapped files: shared page cache the kernel can drop) and the sampled peak of its
anonymous part (RssAnon: heap and arrays, what must fit in RAM). With scale 1.0 among the scales
the figure is measured; otherwise it is a PROJECTION: a straight line through the measured scales
(peak = a + b * scale), evaluated at 1.0 (with one scale, through the idle process's peak).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench import (GIB, MIB, REPO, MemorySampler, backend_line, dataset_scale, load_line, machine_line, make_dataset,
                    subset_root)

TARGET_BYTES = 4 * GIB


def v4_config(root: Path, work: Path, *, epochs: int, stream: bool = False):
    """The repository's v4 pretrain YAML with data, cache and models moved under `work`.

    `stream`: no source set read whole (``fit.max_in_memory_mb: 0``), as at full size, where every set is
    larger than the default 512 MB; at the small scales of ``make bench`` the sets would be trained in RAM. As
    wired, a set whose frames take up to ``fit.max_frames_mb`` is held as frames (at full size: v4's ~0.7 GB).
    """
    from common.config import load_config

    folder = work / "Version4"
    folder.mkdir(parents=True, exist_ok=True)
    yaml = folder / "make_pretrain_v4.yaml"
    yaml.write_text((REPO / "Version4" / "make_pretrain_v4.yaml").read_text())
    return load_config(yaml, overrides={
        "data": {"root": str(root), "cache_dir": str(work / "cache")},
        "fit": {"epochs": epochs, **({"max_in_memory_mb": 0} if stream else {})},
        "output": {"model_dir": str(work / "model_pretrain_v4"), "scratch_dir": str(work / "scratch")},
    })


def concat_pretrain(cfg) -> dict:
    """The reference v4 pretrain: every source set concatenated in RAM and trained as one array."""
    import numpy as np

    from common.models.autoencoder import architecture
    from common.models.saved import save_model
    from common.data.dataset import load_machine, select_machines
    from common.scoring.reconstruction import clip_scores
    from common.data.versions import all_source_sets
    from common.models.train import Trainer

    machines = select_machines(cfg)
    data = {}
    trainer = Trainer()
    largest = 0
    for source in all_source_sets(cfg.experiment.version, machines):
        for m in source.machines:
            if m not in data:
                data[m] = load_machine(cfg, m, progress=False)
        parts = [data[m].vectors(data[m].split.train) for m in source.machines]
        x, offsets = np.concatenate([v for v, _ in parts]), [o for _, o in parts]
        del parts
        largest = max(largest, len(x))
        arch = architecture(x.shape[1], hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                            batch_norm=cfg.model.batch_norm)
        seed = cfg.experiment.pretrain_seed
        fit = trainer.fit(arch, trainer.init_weights(arch, seed=seed), x, epochs=cfg.fit.epochs,
                          batch_size=cfg.fit.batch_size, learning_rate=cfg.fit.learning_rate,
                          validation_split=cfg.fit.validation_split, shuffle=cfg.fit.shuffle, seed=seed)
        model = trainer.with_weights(arch, fit.weights)
        starts = np.cumsum([0] + [o[-1] for o in offsets])
        scores = np.concatenate([clip_scores(model, x[a:a + o[-1]], o) for a, o in zip(starts, offsets)])
        save_model(model, cfg.output.model_dir / f"{source.label}.keras",
                   sidecar={"train_scores": scores.tolist(), "n_train_vectors": len(x)})
        del x
    return {"largest_set_vectors": largest}


def stream_pretrain(cfg) -> dict:
    """`common.experiment.grid.pretrain` as it is wired (streaming); returns the largest source set's size."""
    from common.experiment.pretrain import pretrain
    from common.models.saved import read_sidecar

    made = pretrain(cfg, progress=False)
    return {"largest_set_vectors": max(int(read_sidecar(p.path)["n_train_vectors"]) for p in made)}


def child(mode: str, root: Path, work: Path, epochs: int) -> int:
    """One measured stage in this process; prints a JSON line with its peaks."""
    import numpy as np

    from common.models.autoencoder import architecture
    from common.models.train import Trainer

    cfg = v4_config(root, work, epochs=epochs, stream=mode == "stream")
    with MemorySampler() as sampler:
        start = time.perf_counter()
        info: dict = {}
        if mode == "idle":  # everything imported, a model compiled and fitted once: the intercept
            trainer = Trainer()
            arch = architecture(320, hidden=cfg.model.hidden, bottleneck=cfg.model.bottleneck,
                                batch_norm=cfg.model.batch_norm)
            x = np.zeros((1024, 320), dtype=np.float32)
            trainer.fit(arch, trainer.init_weights(arch, seed=0), x, epochs=1, batch_size=512, learning_rate=1e-3)
        elif mode == "features":
            from common.data.dataset import load_machine, select_machines

            for m in select_machines(cfg):
                load_machine(cfg, m, progress=False)
        elif mode == "concat":
            info = concat_pretrain(cfg)
        elif mode == "stream":
            info = stream_pretrain(cfg)
        seconds = time.perf_counter() - start
    print(json.dumps({"mode": mode, "backend": backend_line(), "max_rss": MemorySampler.max_rss(),
                      "peak_anon": sampler.peak["RssAnon"],
                      "peak_file": sampler.peak["RssFile"], "seconds": seconds, **info}))
    return 0


def run_child(mode: str, root: Path, work: Path, epochs: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--root", str(root),
           "--work", str(work), "--epochs", str(epochs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        raise SystemExit(f"{mode} child failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def project(points: list[tuple[float, float]], at: float = 1.0) -> float:
    """The straight line through `points` (least squares) evaluated at `at`."""
    import numpy as np

    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    slope, intercept = np.polyfit(xs, ys, 1)
    return float(intercept + slope * at)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="0.025,0.05", help="comma list of data scales, 1.0 = MIMII-sized (default: 0.025,0.05)")
    parser.add_argument("--root", type=Path, help="a data root made at the largest scale (default: generate one)")
    parser.add_argument("--epochs", type=int, default=1, help="pretrain epochs (default: 1)")
    parser.add_argument("--channels", type=int, default=8, help="channels of the generated clips (default: 8)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child, args.root, args.work, args.epochs)

    scales = sorted(float(s) for s in args.scales.split(","))
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        tmp = Path(tmp)
        if args.root:
            root, top = args.root.resolve(), dataset_scale(args.root)
            if top + 1e-9 < scales[-1]:
                parser.error(f"{args.root} is at scale {top:g}, below the largest scale asked for ({scales[-1]:g})")
        else:
            root, top = tmp / "data", scales[-1]
            print(f"generating the synthetic set at scale {top:g} ...", flush=True)
            print(f"  {make_dataset(root, top, channels=args.channels):.0f} s", flush=True)
        results = {}
        idle = run_child("idle", root, tmp / "idle", args.epochs)
        for scale in scales:
            data = root if abs(scale - top) < 1e-9 else subset_root(root, tmp / f"data_{scale:g}", scale)
            work = tmp / f"work_{scale:g}"
            results[scale] = {mode: run_child(mode, data, work, args.epochs) for mode in ("features", "concat", "stream")}
            print(f"  scale {scale:g} measured", flush=True)

    print(machine_line())
    print(f"v4 pretrain (4 source sets of 12 machines), {args.epochs} epoch(s), peak per subprocess, "
          f"{idle['backend']}, load average {load_line()}")
    print(f"idle process (imports + one tiny fit): ru_maxrss {idle['max_rss'] / MIB:.0f} MiB, anon {idle['peak_anon'] / MIB:.0f} MiB")
    print(f"{'scale':>6s} {'set vectors':>12s} {'stage':>9s} {'ru_maxrss':>10s} {'anon peak':>10s} {'file peak':>10s} {'time':>7s}")
    for scale, r in results.items():
        n = r["stream"]["largest_set_vectors"]
        for mode in ("features", "concat", "stream"):
            m = r[mode]
            print(f"{scale:6g} {n:12,d} {mode:>9s} {m['max_rss'] / MIB:8.0f} MiB {m['peak_anon'] / MIB:6.0f} MiB "
                  f"{m['peak_file'] / MIB:6.0f} MiB {m['seconds']:6.1f} s")
    measured = any(abs(s - 1.0) < 1e-9 for s in results)
    print(("MEASURED at scale 1.0 (MIMII-sized):" if measured else
           "PROJECTION to scale 1.0 (MIMII-sized; a straight line through the measured scales"
           + (" and the idle process" if len(scales) == 1 else "") + "):"))
    full_vectors = None
    for mode in ("features", "concat", "stream"):
        out = []
        for key, label in (("max_rss", "ru_maxrss"), ("peak_anon", "anon")):
            if measured:
                out.append((label, float(next(r[mode][key] for s, r in results.items() if abs(s - 1.0) < 1e-9))))
                continue
            points = [(s, r[mode][key]) for s, r in results.items()]
            if len(points) == 1:
                points.append((0.0, idle[key]))
            out.append((label, project(points)))
        verdict = "under" if out[0][1] < TARGET_BYTES else "OVER"
        print(f"  {mode:9s} ru_maxrss {out[0][1] / GIB:6.2f} GiB, anon {out[1][1] / GIB:6.2f} GiB "
              f"({verdict} the 4 GiB target)")
    top_scale = max(results)
    full_vectors = results[top_scale]["stream"]["largest_set_vectors"] / top_scale
    print(f"  (largest source set at scale 1.0: ~{full_vectors / 1e6:.1f} million vectors, "
          f"{full_vectors * 320 * 4 / GIB:.1f} GiB as one float32 array)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
