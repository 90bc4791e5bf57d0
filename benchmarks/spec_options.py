"""Benchmark: settings of the spectrogram classifier (`common.models.spec_classifier`) over the synthetic worlds.

Usage::

    python benchmarks/spec_options.py --name s16_bs32 --opts '{"scale": 16, "batch_size": 32}'
        [--worlds default,slow_drive,panel_band,loose_knock,bearing_pulse] [--targets id_00] [--out rows.jsonl]

On each world's set of the worlds benchmark (`worlds.world_data`, cached in ``--data-cache``; features at its
32 mel bands), for every target whose ID is in ``--targets`` and its v2 and v4 source sets (the other IDs of its
type; every other type), it pretrains the spectrogram classifier on the source machines' training clips (pretrain
seed 0), embeds them (the source bank: all 16 clips of each) and the target's clips, and prints the mean AUC over
targets, sets and budget seeds 0 and 1 of 4 budget clips (`common.data.mimii.budget_subset`):

- ``two_bank``: the smaller of the cosine distances to the budget's clips and to the source bank
  (`common.scoring.two_bank.two_bank_scores`, as ``spec_two_bank`` scores);
- ``target``: the budget's clips alone; ``all_target``: all 16 training clips of the target (seed 0 only);
- ``logmel_knn``: the family's control, nearest budget clip in log-mel statistics.

and the mean and worst world of each, the numbers a setting is chosen by. ``pre_s``: wall seconds of one
pretraining (compile included on the first of each class count). The settings in `common.models.spec_classifier`'s
docstring were measured with ``--targets id_00`` (4 targets; about 5 minutes per setting on 2 shared cores).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

from _bench import load_line, machine_line  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from common.data.mimii import budget_subset, find_machines, split_machine  # noqa: E402
from common.features.cache import cached_features  # noqa: E402
from common.features.clipvectors import logmel_stats  # noqa: E402
from common.models import spec_classifier as S  # noqa: E402
from common.scoring.knn import cosine_knn  # noqa: E402
from common.scoring.two_bank import two_bank_scores  # noqa: E402
from worlds import DATA_SIZE, DEFAULT_WORLDS, N_MELS, world_data  # noqa: E402

# defaults.yaml's spectrogram section; --opts changes some of them.
BASE = {"patch_frames": 32, "channels": 8, "embedding_dim": 32, "sub_clusters": 4, "scale": 16.0, "epochs": 20,
        "batch_size": 32, "learning_rate": 1e-3, "mixup": 0.5, "per_clip": 8}
BUDGET, SEEDS = 4, (0, 1)


def load(root: Path, cache: Path) -> dict[str, dict]:
    """Each machine's type, training clips (files, vectors, offsets), evaluation clips and labels."""
    out = {}
    for m in find_machines(root):
        split = split_machine(m)
        feats = cached_features(list(split.train) + list(split.eval_files), cache_dir=cache, jobs=1, progress=False,
                                n_mels=N_MELS)
        n = len(split.train)
        out[m.name] = {"type": m.type, "files": split.train, "pool": feats.take(range(n)),
                       "eval": feats.take(range(n, len(feats))), "labels": np.asarray(split.eval_labels)}
    return out


def source_names(data: dict[str, dict], target: str, version: str) -> list[str]:
    """v2: the other IDs of the target's type; v4: every machine of another type."""
    same = data[target]["type"]
    return [n for n, d in data.items() if n != target and (d["type"] == same) == (version == "v2")]


def run_world(data: dict[str, dict], opts: dict, ids: list[str] | None) -> dict[str, float]:
    """Mean AUC per scoring over the chosen targets, their v2 and v4 sets and the budget seeds; mean pretraining s."""
    sets: dict[tuple, list[str]] = {}
    for target in data:
        if ids is None or target.split("/")[-1] in ids:
            for version in ("v2", "v4"):
                sets.setdefault((version, tuple(source_names(data, target, version))), []).append(target)
    aucs: dict[str, list[float]] = {}
    seconds = []
    for (_, sources), targets in sets.items():
        arch = S.spec_architecture(N_MELS, len(sources), input_dim=data[sources[0]]["pool"][0].shape[1],
                                   patch_frames=opts["patch_frames"], channels=opts["channels"],
                                   embedding_dim=opts["embedding_dim"], sub_clusters=opts["sub_clusters"],
                                   scale=opts["scale"])
        xs = [S.sample_patches(arch, *data[s]["pool"], opts["per_clip"], i)[0] for i, s in enumerate(sources)]
        start = time.perf_counter()
        fit = S.train_spec_classifier(arch, np.concatenate(xs), np.repeat(np.arange(len(xs)), [len(x) for x in xs]),
                                      epochs=opts["epochs"], batch_size=opts["batch_size"],
                                      learning_rate=opts["learning_rate"], mixup=opts["mixup"], seed=0)
        seconds.append(time.perf_counter() - start)
        source_bank = np.concatenate([S.embed_clips(arch, fit.weights, *data[s]["pool"]) for s in sources])
        for target in targets:
            d = data[target]
            pool, ev = (S.embed_clips(arch, fit.weights, *d[k]) for k in ("pool", "eval"))
            stats_pool, stats_eval = (logmel_stats(*d[k], n_mels=N_MELS) for k in ("pool", "eval"))
            aucs.setdefault("all_target", []).append(roc_auc_score(d["labels"], cosine_knn(ev, pool)))
            for seed in SEEDS:
                chosen = set(budget_subset(d["files"], BUDGET, seed=seed))
                rows = [i for i, f in enumerate(d["files"]) if f in chosen]
                for name, scores in (("two_bank", two_bank_scores(ev, source_bank, pool[rows], k=1)),
                                     ("target", cosine_knn(ev, pool[rows])),
                                     ("logmel_knn", cosine_knn(stats_eval, stats_pool[rows]))):
                    aucs.setdefault(name, []).append(roc_auc_score(d["labels"], scores))
    return {**{k: float(np.mean(v)) for k, v in aucs.items()}, "pre_s": float(np.mean(seconds))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--name", required=True, help="the setting's name in the output")
    p.add_argument("--opts", default="{}", help=f"JSON changes to {BASE}")
    p.add_argument("--worlds", default=",".join(DEFAULT_WORLDS))
    p.add_argument("--targets", default="id_00", help="target IDs (comma-separated), or 'all'")
    p.add_argument("--data-cache", type=Path, default=Path("/tmp/worlds_data"))
    p.add_argument("--cache", type=Path, default=Path("/tmp/spec_options_cache"), help="feature cache")
    p.add_argument("--out", type=Path, default=None, help="append the summary as one JSON line here")
    args = p.parse_args()
    opts = {**BASE, **json.loads(args.opts)}
    unknown = set(opts) - set(BASE)
    if unknown:
        raise SystemExit(f"--opts: unknown setting(s) {sorted(unknown)}; known: {', '.join(BASE)}")
    ids = None if args.targets == "all" else args.targets.split(",")
    print(machine_line())
    print(f"load: {load_line()}", flush=True)
    rows, start = {}, time.perf_counter()
    with threadpool_limits(limits=1, user_api="blas"):
        for world in args.worlds.split(","):
            root = world_data(world, cache=args.data_cache, **DATA_SIZE)
            rows[world] = run_world(load(root, args.cache / world), opts, ids)
            print(args.name, world, json.dumps({k: round(v, 3) for k, v in rows[world].items()}), flush=True)
    summary = {"name": args.name, "opts": opts, "wall_s": round(time.perf_counter() - start, 1)}
    for scoring in ("two_bank", "target", "logmel_knn"):
        values = [rows[w][scoring] for w in rows]
        summary |= {f"{scoring}_mean": round(float(np.mean(values)), 4), f"{scoring}_worst": round(min(values), 4)}
    print("SUMMARY", json.dumps(summary), f"load {load_line()}", flush=True)
    if args.out is not None:
        with args.out.open("a") as fh:
            fh.write(json.dumps(summary) + "\n")


if __name__ == "__main__":
    main()
