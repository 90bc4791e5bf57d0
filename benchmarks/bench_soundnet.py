"""SoundNet-8 as a frozen clip embedder (issue 30, part 3): its CPU cost, embedding sizes, and which layer separates.

Prints (1) seconds per 10 s clip on this machine after warm-up (resampling 16 -> 22.05 kHz, the forward pass
at batch 1 and 8); (2) the embedding size of each layer and pooling; (3) on a small synthetic MIMII-layout set
(one ID of each of the four types, written by the repository's generator when `--root` is missing), the AUC of
k-NN anomaly scores (cosine, k = 1) of each machine's evaluation clips against 4 (mean over `--budget-seeds`) and
all of its training normal clips, for every layer and pooling, pretrained vs the random-weights control (mean
over `--random-seeds`), with the log-mel mean + std clip vector as a reference.

    .venv/bin/python benchmarks/bench_soundnet.py [--root /tmp/sn_data] [--world default] [--normal 30 --abnormal 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd

from _bench import backend_line, load_line, machine_line, use_backend

TYPES = ("fan", "pump", "slider", "valve")
POOLINGS = {"mean": ("mean",), "mean+std": ("mean", "std"), "mean+max+std": ("mean", "max", "std")}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--root", type=Path, default=Path("/tmp/sn_data"), help="data root (written when missing)")
    p.add_argument("--world", default="default", help="the generator's world when the data are written")
    p.add_argument("--normal", type=int, default=30, help="normal clips per machine when the data are written")
    p.add_argument("--abnormal", type=int, default=10, help="abnormal clips per machine when the data are written")
    p.add_argument("--id", default="id_00", help="the machine ID of each type")
    p.add_argument("--budget-seeds", default="0,1,2,3,4", help="seeds of the 4-clip banks")
    p.add_argument("--random-seeds", default="0,1,2", help="seeds of the random-weights control")
    p.add_argument("--backend", default="auto", choices=("auto", "jax", "tensorflow", "torch"))
    return p.parse_args()


def ensure_data(args: argparse.Namespace) -> None:
    """Write the set with the repository's generator unless `args.root` holds it already."""
    if args.root.is_dir():
        print(f"data: {args.root} (already there; --world/--normal/--abnormal not applied)")
        return
    from common.data.synth import generate_dataset

    start = time.perf_counter()
    generate_dataset(args.root, n_normal=args.normal, n_abnormal=args.abnormal, channels=1, types=TYPES,
                     ids=(args.id,), world=args.world, jobs=1, progress=False)
    print(f"data: {args.root}, world {args.world}, {args.normal} normal + {args.abnormal} abnormal 10 s clips "
          f"per machine, written in {time.perf_counter() - start:.0f} s")


def median_seconds(func, *, repeats: int = 7) -> float:
    """Median wall seconds of `func()` over `repeats` calls, after one warm-up call."""
    func()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def report_speed() -> None:
    """Seconds per 10 s clip: resampling, then the forward pass (all layers) at batch 1 and batch 8."""
    from common.models import soundnet as sn

    y = (0.1 * np.random.default_rng(0).standard_normal(160000)).astype(np.float32)
    model = sn.soundnet_model()
    x = sn.soundnet_input(y)[None, :, None]
    resample = median_seconds(lambda: sn.soundnet_input(y))
    batch1 = median_seconds(lambda: model.predict_on_batch(x))
    batch8 = median_seconds(lambda: model.predict_on_batch(np.repeat(x, 8, axis=0)), repeats=3) / 8
    whole = median_seconds(lambda: sn.clip_embeddings([y] * 8, stats=("mean", "max", "std")), repeats=3) / 8
    print(f"\n(1) seconds per 10 s clip (median, after warm-up): resample {resample:.4f}, forward batch 1 "
          f"{batch1:.4f}, forward batch 8 {batch8:.4f}, clip_embeddings of 8 clips {whole:.4f}")


def report_sizes() -> None:
    """Values per clip of each layer and pooling."""
    from common.models import soundnet as sn

    channels = {spec[0]: spec[1] for spec in sn.CONV_LAYERS + sn.HEAD_LAYERS}
    table = pd.DataFrame({p: {k: c * len(s) for k, c in channels.items()} for p, s in POOLINGS.items()})
    lengths = sn.output_lengths(10 * sn.SOUNDNET_SR)
    table["time steps (10 s)"] = [lengths[k] for k in table.index]
    print("\n(2) embedding size per layer (values per clip)\n" + table.to_string())


def machine_clips(args: argparse.Namespace) -> list[tuple]:
    """Each machine's split and its clips' samples (channel 0), training pool first, then evaluation."""
    from common.features.audio import read_channel
    from common.data.mimii import find_machines, split_machine

    out = []
    for machine in find_machines(args.root, ids=(args.id,)):
        split = split_machine(machine)
        paths = list(split.train) + list(split.eval_files)
        out.append((split, [read_channel(p)[0] for p in paths]))
    return out


def embeddings(waveforms: list, *, random_weights: bool, seed: int) -> dict[str, np.ndarray]:
    """Every layer's mean + max + std pooled vector of each clip."""
    from common.models import soundnet as sn

    return sn.layer_embeddings(waveforms, layers=sn.LAYER_NAMES, stats=("mean", "max", "std"),
                               random_weights=random_weights, seed=seed)


def pooled(vectors: np.ndarray, pooling: str) -> np.ndarray:
    """The columns of one pooling out of a mean + max + std vector."""
    c = vectors.shape[1] // 3
    blocks = {"mean": vectors[:, :c], "max": vectors[:, c:2 * c], "std": vectors[:, 2 * c:]}
    return np.concatenate([blocks[s] for s in POOLINGS[pooling]], axis=1)


def aucs(split, vectors: np.ndarray, budget_seeds: list[int]) -> dict[str, float]:
    """AUC of cosine 1-NN scores against 4 training clips (mean over seeds) and against all of them."""
    from common.data.mimii import budget_subset
    from common.scoring.knn import cosine_knn
    from common.scoring.metrics import auc_pauc

    n_train = len(split.train)
    train, evals = vectors[:n_train], vectors[n_train:]
    index = {p: i for i, p in enumerate(split.train)}
    four = [auc_pauc(split.eval_labels, cosine_knn(evals, train[[index[p] for p in budget_subset(
        split.train, 4, seed=s)]]), name=split.machine.name)[0] for s in budget_seeds]
    return {"4": float(np.mean(four)), "all": auc_pauc(split.eval_labels, cosine_knn(evals, train))[0]}


def logmel_reference(waveforms: list) -> np.ndarray:
    """The log-mel mean + std clip vector (64 mel bands, the project's default log-mel), for comparison."""
    from common.features.logmel import logmel

    return np.stack([np.concatenate([m.mean(axis=1), m.std(axis=1)]) for m in (logmel(y, sr=16000)
                                                                               for y in waveforms)])


def separability(args: argparse.Namespace) -> pd.DataFrame:
    """One row per machine, net, layer and pooling: the AUC with 4 and with all training clips as the bank."""
    budget_seeds = [int(s) for s in args.budget_seeds.split(",")]
    nets = [("pretrained", False, 0)] + [(f"random{s}", True, int(s)) for s in args.random_seeds.split(",")]
    rows = []
    for split, waveforms in machine_clips(args):
        rows.append({"machine": split.machine.name, "net": "logmel", "layer": "-", "pooling": "mean+std",
                     **aucs(split, logmel_reference(waveforms), budget_seeds)})
        for net, random_weights, seed in nets:
            for layer, vectors in embeddings(waveforms, random_weights=random_weights, seed=seed).items():
                for pooling in POOLINGS:
                    rows.append({"machine": split.machine.name, "net": net, "layer": layer, "pooling": pooling,
                                 **aucs(split, pooled(vectors, pooling), budget_seeds)})
    return pd.DataFrame(rows)


def report_separability(rows: pd.DataFrame) -> None:
    """Mean AUC over machines per layer and pooling, pretrained vs random (mean over random seeds), then the best."""
    rows = rows.assign(net=rows["net"].str.replace(r"random\d+", "random", regex=True))
    ref = rows[rows["net"] == "logmel"][["4", "all"]].mean()
    nets = rows[rows["net"] != "logmel"]
    table = nets.groupby(["pooling", "layer", "net"])[["4", "all"]].mean().unstack("net")
    table.columns = [f"{budget} clips {net}" for budget, net in table.columns]
    print("\n(3) AUC, mean over the 4 machines (4 clips: mean over bank seeds; random: mean over weight seeds)")
    print(f"reference, log-mel mean + std: 4 clips {ref['4']:.3f}, all clips {ref['all']:.3f}")
    print(table.round(3).to_string())
    per_machine = nets[nets["pooling"] == "mean"].groupby(["layer", "net", "machine"])["all"].mean()
    print("\nAUC with all training clips, mean pooling, per machine")
    print(per_machine.unstack("machine").round(3).to_string())
    best = nets.assign(both=(nets["4"] + nets["all"]) / 2).groupby(["net", "pooling", "layer"])["both"].mean()
    for net in ("pretrained", "random"):
        (pooling, layer), value = best[net].idxmax(), best[net].max()
        print(f"best {net}: {layer} ({pooling} pooling), mean AUC over budgets 4 and all: {value:.3f}")


def main() -> None:
    args = parse_args()
    backend = use_backend(args.backend)
    print(machine_line())
    print(f"load: {load_line()}; {backend_line()} ({backend})")
    ensure_data(args)
    report_speed()
    report_sizes()
    start = time.perf_counter()
    rows = separability(args)
    report_separability(rows)
    print(f"\nseparability: {time.perf_counter() - start:.0f} s; load: {load_line()}")


if __name__ == "__main__":
    main()
