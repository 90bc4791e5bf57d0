"""Benchmark: the embedding family's options on one synthetic set, against the log-mel control and the AE.

Usage::

    KERAS_BACKEND=jax python benchmarks/embedding_options.py [--data /tmp/emb_data] [--cache /tmp/emb_cache]
        [--options dense_adacos,dense_arcface] [--finetune dense_adacos] [--targets fan/id_00,...] [--seeds 0,1]
        [--worlds default,slow_drive,panel_band,loose_knock,bearing_pulse --sources v2,v4 --targets all]

The data set is generated once into `--data` (60 normal + 20 abnormal 10-s clips per machine, all 16
machines, one channel) and reused: the generator may change under the repository meanwhile. Split: the
first 20 normal + 20 abnormal clips of each machine are evaluated (`common.data.mimii.split_machine`), the
other 40 normal clips are its pool. For each target machine (one per type by default) and source set:

- ``v2``: the other IDs of the target's type (3 classes); ``v4``: all other types (12 classes);
  ``all15``: the 15 other machines (15 classes);

it prints the mean AUC over targets and budget seeds of:

- ``control``: nearest neighbour (k=1, cosine) on `common.features.clipvectors.logmel_stats` of 4 budget clips
  (`common.data.mimii.budget_subset`), no pretraining; ``control_all``: the same with the whole pool;
- ``ae_scratch``: the dense AE (defaults.yaml sizes and fit) trained on the whole pool, mean reconstruction error;
- per option (a classifier of the source machines, pretrained once per source set with pretrain seed 0):
  ``knn4`` (nearest of the 4 budget clips' embeddings), ``knn_all`` (the whole pool), ``knn4_windows``
  (nearest budget window per evaluation window, averaged over the clip), and zero-shot ``zs_bank``
  (nearest source-clip embedding) and ``zs_center`` (1 - max cosine to a source class center);
- per `--finetune` option: the 4 budget clips join as one more class (centered on their mean embedding),
  a few epochs on them and replayed source vectors, then ``ft_knn`` (nearest budget clip) and
  ``ft_center`` (1 - cosine to the new class center), for each fine-tune setting in FINETUNES.

``--worlds default,slow_drive,...`` runs the same on each world's set of the worlds benchmark
(`worlds.world_data`: 16 machines, 24 normal + 8 abnormal 4-s clips, cached in ``--data-cache``; evaluation
8 + 8 clips, a pool of 16), e.g. with ``--targets all --sources v2,v4`` as that benchmark's versions, and ranks
every row by its mean AUC over the worlds and by its worst world (``--out`` writes the ranking CSV).

Options: ``vector_*`` embed each 5-frame vector with a dense network; ``window*`` embed the log-mel mean
and std over a window of frames (`common.models.classifier.clip_inputs`); the rest of each name says the head,
mixup, epochs and what else differs from BASE (the recommended settings). The default run (8 targets,
3 budget seeds, the DEFAULT_OPTIONS, two fine-tune settings) takes about 9 minutes on 2 shared cores;
``--options all --finetunes all`` measures every option.

Costs: ``pre_cpu``/``pre_wall`` are the seconds of one pretraining (mean over source sets), ``cell`` the
wall seconds of scoring one target cell (embedding its evaluation and pool clips, the neighbours), and
``ft_cell`` of one fine-tuned cell. CPU seconds are the process' user + system time.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _bench import load_line, machine_line

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from common.models import classifier as E
from common.features.clipvectors import logmel_stats
from common.features.cache import cached_features
from common.data.mimii import budget_subset, find_machines, split_machine
from common.scoring.metrics import auc_pauc

N_MELS = 64
BUDGET = 4
# The recommended settings; every option below changes some of them.
BASE = dict(window=32, hidden=(128, 128), embedding_dim=32, head="arcface", scale=16.0, margin=0.3, batch_norm=False,
            epochs=50, batch_size=128, learning_rate=1e-3, mixup=0.5, per_clip=32, normalize_vectors=False)
VECTOR = dict(window=0, epochs=10, batch_size=256, per_clip=64)
ADACOS = dict(head="adacos", scale=None, margin=0.0)
E20 = dict(epochs=20)
OPTIONS = {
    "vector_adacos": {**VECTOR, **ADACOS, "mixup": 0.0},
    "vector_arcface_mixup": {**VECTOR},
    "window32_arcface": {"mixup": 0.0},
    "window32_adacos_mixup": {**ADACOS},
    "window32_arcface_mixup_e20": {**E20},
    "window32_arcface_mixup": {},
    # A sweep around the 20-epoch setting (``--options all``).
    "window32_adacos_e20": {**ADACOS, **E20, "mixup": 0.0},
    "window32_arcface_e20": {**E20, "mixup": 0.0},
    "window32_adacos_mixup_e20": {**ADACOS, **E20},
    "window16_arcface_mixup_e20": {**E20, "window": 16},
    "window64_arcface_mixup_e20": {**E20, "window": 64},
    "window32_arcface_mixup1_e20": {**E20, "mixup": 1.0},
    "window32_arcface_mixup_dim8_e20": {**E20, "embedding_dim": 8},
    "window32_arcface_mixup_dim128_e20": {**E20, "embedding_dim": 128},
    "window32_arcface_mixup_e5": {"epochs": 5},
    "window32_arcface_mixup_pc8_e20": {**E20, "per_clip": 8},
    "window32_arcface_mixup_pc128_e20": {**E20, "per_clip": 128},
    "window32_arcface_mixup_wide_e20": {**E20, "hidden": (256, 256, 256)},
    "window32_arcface_mixup_m0.1_e20": {**E20, "margin": 0.1},
    "window32_arcface_mixup_m0.5_e20": {**E20, "margin": 0.5},
    "window32_arcface_mixup_s32_e20": {**E20, "scale": 32.0},
    "window32_arcface_mixup_bn_e20": {**E20, "batch_norm": True},
    # ... and around the 50-epoch one.
    "window64_arcface_mixup": {"window": 64},
    "window32_arcface_mixup_e100": {"epochs": 100},
    "window32_arcface_mixup_dim64": {"embedding_dim": 64},
    "window32_arcface_mixup_m0.5": {"margin": 0.5},
    "window32_arcface_mixup_lr3e-3": {"learning_rate": 3e-3},
}
DEFAULT_OPTIONS = ("vector_adacos", "vector_arcface_mixup", "window32_arcface", "window32_adacos_mixup",
                   "window32_arcface_mixup_e20", "window32_arcface_mixup")
FINETUNES = {
    "ft_all": dict(epochs=3, learning_rate=1e-4, freeze=(), replay_per_clip=8, target_per_clip=64),
    "ft_frozen": dict(epochs=3, learning_rate=1e-4, freeze=("dense_1", "dense_2"), replay_per_clip=8,
                      target_per_clip=64),
    "ft_head": dict(epochs=3, learning_rate=1e-3, freeze=("dense_1", "dense_2", "embedding"), replay_per_clip=8,
                    target_per_clip=64),
}
SOURCE_SETS = ("v2", "v4", "all15")


@dataclass
class MachineClips:
    """One machine's pool and evaluation clips: vectors, offsets (and labels of the evaluation clips)."""

    name: str
    type: str
    pool: tuple[np.ndarray, np.ndarray]
    pool_files: tuple
    eval: tuple[np.ndarray, np.ndarray]
    labels: np.ndarray


def load_data(root: Path, cache: Path) -> dict[str, MachineClips]:
    """Generate the set into `root` if it is missing, then each machine's split and cached features."""
    if not root.exists():
        from common.data.synth import generate_dataset

        generate_dataset(root, n_normal=60, n_abnormal=20, channels=1, seed=0, jobs=1, progress=False)
    out = {}
    for m in find_machines(root):
        split = split_machine(m)
        feats = cached_features(list(split.train) + list(split.eval_files), cache_dir=cache, jobs=1, progress=False)
        n = len(split.train)
        out[m.name] = MachineClips(m.name, m.type, feats.take(range(n)), split.train,
                                   feats.take(range(n, len(feats))), split.eval_labels)
    return out


def source_names(target: str, data: dict[str, MachineClips], which: str) -> list[str]:
    kind = data[target].type
    if which == "v2":
        return [n for n, m in data.items() if m.type == kind and n != target]
    if which == "v4":
        return [n for n, m in data.items() if m.type != kind]
    return [n for n in data if n != target]


def nn_scores(bank: np.ndarray, clips: np.ndarray) -> np.ndarray:
    """1 - the highest cosine of each clip to the bank (both L2-normalised here)."""
    return 1.0 - np.max(E.l2_normalize(clips) @ E.l2_normalize(bank).T, axis=1)


def auc(m: MachineClips, scores: np.ndarray) -> float:
    return auc_pauc(m.labels, scores, name=m.name)[0]


def budget_rows(m: MachineClips, seed: int) -> np.ndarray:
    chosen = set(budget_subset(m.pool_files, BUDGET, seed=seed))
    return np.array([i for i, f in enumerate(m.pool_files) if f in chosen])


@dataclass
class Table:
    """AUCs per (row, source set) and costs per row, printed as one table."""

    aucs: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    costs: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    sources: tuple[str, ...] = SOURCE_SETS  # the source sets measured (columns)

    def add(self, row: str, source: str, value: float) -> None:
        self.aucs.setdefault((row, source), []).append(value)

    def cost(self, row: str, name: str, seconds: float) -> None:
        self.costs.setdefault(row, {}).setdefault(name, []).append(seconds)

    def print(self) -> None:
        rows = list(dict.fromkeys(r for r, _ in self.aucs))
        cost_names = ["pre_cpu", "pre_wall", "cell", "ft_cell"]
        print(f"{'option':<40}" + "".join(f"{s:>8}" for s in self.sources) + "".join(f"{c:>9}" for c in cost_names))
        for row in rows:
            vals = [np.mean(self.aucs[(row, s)]) if (row, s) in self.aucs else np.nan for s in self.sources]
            costs = [np.mean(self.costs.get(row.split(" ")[0], {}).get(c, [np.nan])) for c in cost_names]
            print(f"{row:<40}" + "".join(f"{v:>8.3f}" for v in vals) + "".join(f"{c:>9.2f}" for c in costs))
        sys.stdout.flush()


def run_controls(data: dict[str, MachineClips], targets: list[str], seeds: list[int], table: Table,
                 ae: bool) -> None:
    """The log-mel control (4 clips and all) and, with `ae`, the AE trained from scratch on the whole pool."""
    for t in targets:
        m = data[t]
        pool = logmel_stats(*m.pool, n_mels=N_MELS)
        ev = logmel_stats(*m.eval, n_mels=N_MELS)
        for s in seeds:
            for src in table.sources:  # no source: the same number under every column
                table.add("control (logmel stats, 4 clips)", src, auc(m, nn_scores(pool[budget_rows(m, s)], ev)))
        for src in table.sources:
            table.add("control_all (logmel stats, all clips)", src, auc(m, nn_scores(pool, ev)))
            if ae:
                table.add("ae_scratch (all clips)", src, ae_scratch_auc(m))


_AE_CACHE: dict[str, float] = {}


def ae_scratch_auc(m: MachineClips) -> float:
    """The AE of defaults.yaml (64-64-8, 50 epochs, batch 512, lr 1e-3, val 0.1) on the whole pool, seed 0."""
    if m.name not in _AE_CACHE:
        from common.models.autoencoder import architecture
        from common.scoring.reconstruction import clip_scores
        from common.models.train import Trainer

        arch = architecture(320, hidden=(64, 64), bottleneck=8, batch_norm=False)
        trainer = Trainer()
        fit = trainer.fit(arch, trainer.init_weights(arch, seed=0), m.pool[0], epochs=50, batch_size=512,
                          learning_rate=1e-3, validation_split=0.1, seed=0)
        _AE_CACHE[m.name] = auc(m, clip_scores(trainer.with_weights(arch, fit.weights), *m.eval))
    return _AE_CACHE[m.name]


def architecture(opt: dict, n_classes: int) -> dict:
    return E.classifier_architecture(320, n_classes, hidden=opt["hidden"], embedding_dim=opt["embedding_dim"],
                                     head=opt["head"], scale=opt["scale"], margin=opt["margin"],
                                     batch_norm=opt["batch_norm"], window=opt["window"], n_mels=N_MELS)


def labelled_inputs(arch: dict, clips: list[tuple[np.ndarray, np.ndarray]], per_clip: int, seed: int):
    """`common.models.classifier.sample_inputs` of each (vectors, offsets) in `clips`, labelled by position."""
    xs, ys = [], []
    for label, (vectors, offsets) in enumerate(clips):
        x, _ = E.sample_inputs(arch, vectors, offsets, per_clip, seed + label)
        xs.append(x)
        ys.append(np.full(len(x), label))
    return np.concatenate(xs), np.concatenate(ys)


def pretrain(opt: dict, data: dict[str, MachineClips], sources: list[str], seed: int = 0):
    """The classifier of `sources` for option `opt`: (arch, fit, CPU seconds, wall seconds)."""
    cpu, wall = time.process_time(), time.perf_counter()
    arch = architecture(opt, len(sources))
    x, y = labelled_inputs(arch, [data[n].pool for n in sources], opt["per_clip"], seed)
    fit = E.train_classifier(arch, None, x, y, epochs=opt["epochs"], batch_size=opt["batch_size"],
                             learning_rate=opt["learning_rate"], mixup=opt["mixup"], seed=seed)
    return arch, fit, time.process_time() - cpu, time.perf_counter() - wall


def source_bank(arch, weights, data: dict[str, MachineClips], sources: list[str], opt: dict) -> np.ndarray:
    """Clip embeddings of every pool clip of the sources, for zero-shot."""
    return np.concatenate([E.embed_clips(arch, weights, *data[n].pool, normalize_vectors=opt["normalize_vectors"])
                           for n in sources])


def run_option(name: str, opt: dict, data, targets, seeds, table: Table, finetune: bool) -> None:
    """Pretrain per source set (once: v4's is every target of a type's), then score knn4, knn_all, zero-shot (and
    fine-tuned variants) per target."""
    pretrained = {}
    for t in targets:
        m = data[t]
        for src in table.sources:
            sources = source_names(t, data, src)
            if tuple(sources) not in pretrained:
                pretrained[tuple(sources)] = pretrain(opt, data, sources)
                table.cost(name, "pre_cpu", pretrained[tuple(sources)][2])
                table.cost(name, "pre_wall", pretrained[tuple(sources)][3])
            arch, fit = pretrained[tuple(sources)][:2]
            start = time.perf_counter()
            norm = opt["normalize_vectors"]
            pool = E.embed_clips(arch, fit.weights, *m.pool, normalize_vectors=norm)
            ev = E.embed_clips(arch, fit.weights, *m.eval, normalize_vectors=norm)
            for s in seeds:
                table.add(f"{name} knn4", src, auc(m, nn_scores(pool[budget_rows(m, s)], ev)))
            table.cost(name, "cell", (time.perf_counter() - start) / len(seeds))
            table.add(f"{name} knn_all", src, auc(m, nn_scores(pool, ev)))
            add_window_knn(f"{name} knn4_windows", arch, fit.weights, m, seeds, src, table)
            bank = source_bank(arch, fit.weights, data, sources, opt)
            table.add(f"{name} zs_bank", src, auc(m, nn_scores(bank, ev)))
            table.add(f"{name} zs_center", src, auc(m, nn_scores(E.class_centers(arch, fit.weights), ev)))
            if finetune:
                run_finetunes(name, opt, arch, fit.weights, data, sources, m, pool, seeds, src, table)


def add_window_knn(row: str, arch, weights, m: MachineClips, seeds, src: str, table: Table) -> None:
    """Nearest-neighbour per network input (window) instead of per clip: a clip scores its inputs' mean distance."""
    x_pool, o_pool = E.clip_inputs(arch, *m.pool)
    x_eval, o_eval = E.clip_inputs(arch, *m.eval)
    pool = E.l2_normalize(E.embed_vectors(arch, weights, x_pool))
    ev = E.l2_normalize(E.embed_vectors(arch, weights, x_eval))
    for s in seeds:
        bank = np.concatenate([pool[o_pool[i]:o_pool[i + 1]] for i in budget_rows(m, s)])
        distances = 1.0 - np.max(ev @ bank.T, axis=1)
        table.add(row, src, auc(m, E.clip_means(distances[:, None], o_eval)[:, 0]))


def run_finetunes(name, opt, arch, weights, data, sources, m: MachineClips, pool, seeds, src, table: Table) -> None:
    """Each FINETUNES setting: the budget clips as one more class, then ft_knn and ft_center."""
    for ft_name, ft in FINETUNES.items():
        for s in seeds:
            start = time.perf_counter()
            rows = budget_rows(m, s)
            arch2, w2 = E.with_new_class(arch, weights, E.l2_normalize(pool[rows]).mean(axis=0))
            budget_v, budget_o = _take(m.pool, rows)
            x, y = labelled_inputs(arch2, [data[n].pool for n in sources], ft["replay_per_clip"], 100 * (s + 1))
            xb, _ = E.sample_inputs(arch2, budget_v, budget_o, ft["target_per_clip"], s)
            x, y = np.concatenate([x, xb]), np.concatenate([y, np.full(len(xb), len(sources))])
            fit = E.train_classifier(arch2, w2, x, y, epochs=ft["epochs"], batch_size=opt["batch_size"],
                                     learning_rate=ft["learning_rate"], mixup=opt["mixup"], seed=s,
                                     freeze=ft["freeze"])
            norm = opt["normalize_vectors"]
            ev = E.embed_clips(arch2, fit.weights, *m.eval, normalize_vectors=norm)
            bank = E.embed_clips(arch2, fit.weights, budget_v, budget_o, normalize_vectors=norm)
            table.add(f"{name} {ft_name} ft_knn", src, auc(m, nn_scores(bank, ev)))
            center = E.class_centers(arch2, fit.weights)[-1:]
            table.add(f"{name} {ft_name} ft_center", src, auc(m, nn_scores(center, ev)))
            table.cost(name, "ft_cell", time.perf_counter() - start)


def _take(clips: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vectors, offsets = clips
    parts = [vectors[offsets[i]:offsets[i + 1]] for i in rows]
    return np.concatenate(parts), np.concatenate([[0], np.cumsum([len(p) for p in parts])])


def run_set(data: dict[str, MachineClips], args: argparse.Namespace, names: list[str]) -> Table:
    """The controls, then every option in `names`, on one data set; the table printed after each."""
    targets = list(data) if args.targets == "all" else args.targets.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    finetune = set(filter(None, args.finetune.split(",")))
    table = Table(sources=tuple(args.sources.split(",")))
    run_controls(data, targets, seeds, table, ae=not args.no_ae)
    table.print()
    for name in names:
        start = time.perf_counter()
        run_option(name, {**BASE, **OPTIONS[name]}, data, targets, seeds, table, finetune=name in finetune)
        print(f"-- {name}: {time.perf_counter() - start:.0f} s, load {load_line()}")
        table.print()
    return table


def world_tables(args: argparse.Namespace, names: list[str]) -> dict[str, Table]:
    """`run_set` on each world of ``--worlds``, on the worlds benchmark's cached sets (`worlds.world_data`)."""
    from worlds import DATA_SIZE, world_data

    tables = {}
    for world in args.worlds.split(","):
        root = world_data(world, cache=args.data_cache, **DATA_SIZE)
        print(f"\n== {world}: {root}", flush=True)
        _AE_CACHE.clear()  # keyed by machine name, which every world shares
        tables[world] = run_set(load_data(root, args.cache / world), args, names)
    return tables


def rank_over_worlds(tables: dict[str, Table]) -> pd.DataFrame:
    """Per row of the tables: mean AUC per world (over the source sets), the mean over worlds, the worst world, ranks.

    A row's world value is the mean over targets, budget seeds and then source sets, so v2 and v4 weigh alike.
    """
    long = pd.DataFrame([(world, row, source, np.mean(values)) for world, table in tables.items()
                         for (row, source), values in table.aucs.items()], columns=["world", "row", "source", "auc"])
    per_world = long.groupby(["row", "world"], sort=False)["auc"].mean().unstack("world")[list(tables)]
    out = per_world.assign(mean=per_world.mean(axis=1), worst=per_world.min(axis=1),
                           worst_world=per_world.idxmin(axis=1))
    out["rank_mean"] = out["mean"].rank(ascending=False, method="min").astype(int)
    out["rank_worst"] = out["worst"].rank(ascending=False, method="min").astype(int)
    return out.sort_values("mean", ascending=False)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=Path("/tmp/emb_data"))
    p.add_argument("--cache", type=Path, default=Path("/tmp/emb_cache"))
    p.add_argument("--worlds", default="", help="comma-separated worlds: run on the worlds benchmark's sets instead")
    p.add_argument("--data-cache", type=Path, default=Path("/tmp/worlds_data"), help="with --worlds: their sets")
    p.add_argument("--out", type=Path, default=None, help="with --worlds: write the ranking CSV here")
    p.add_argument("--options", default=",".join(DEFAULT_OPTIONS), help="option names, or 'all'")
    p.add_argument("--finetune", default="window32_arcface_mixup",
                   help="options whose fine-tuned variants (FINETUNES) to measure too")
    p.add_argument("--finetunes", default="ft_all,ft_frozen", help="FINETUNES settings, or 'all'")
    p.add_argument("--targets", default=",".join(f"{t}/{i}" for t in ("fan", "pump", "slider", "valve")
                                                   for i in ("id_00", "id_04")), help="machines, or 'all'")
    p.add_argument("--sources", default=",".join(SOURCE_SETS), help=f"source sets, of {', '.join(SOURCE_SETS)}")
    p.add_argument("--seeds", default="0,1,2", help="budget seeds (the 4 target clips)")
    p.add_argument("--no-ae", action="store_true", help="skip the AE trained from scratch")
    args = p.parse_args()
    print(machine_line())
    print(f"load: {load_line()}")
    names = list(OPTIONS) if args.options == "all" else list(filter(None, args.options.split(",")))
    if args.finetunes != "all":
        for name in set(FINETUNES) - set(args.finetunes.split(",")):
            del FINETUNES[name]
    if not args.worlds:
        run_set(load_data(args.data, args.cache), args, names)
        return
    start, cpu = time.perf_counter(), time.process_time()
    with threadpool_limits(limits=1, user_api="blas"):
        ranking = rank_over_worlds(world_tables(args, names))
    print(f"\n-- mean AUC per world (targets, budget seeds, then {args.sources} averaged); ranked by the mean over "
          f"worlds and by the worst world; {time.perf_counter() - start:.0f} s wall, "
          f"{time.process_time() - cpu:.0f} s CPU, load {load_line()}")
    with pd.option_context("display.width", 250, "display.max_rows", 500, "display.float_format", "{:.3f}".format):
        print(ranking.to_string())
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        ranking.to_csv(args.out)


if __name__ == "__main__":
    main()
