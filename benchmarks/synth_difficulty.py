"""Benchmark: how hard is each machine of the synthetic MIMII set for the AE baseline trained from scratch?

Usage::

    python benchmarks/synth_difficulty.py [--root DIR] [--n-normal 50] [--n-abnormal 25] [--channels 8]
                                          [--jobs 2] [--epochs 10] [--seeds 0 1] [--types fan valve] [--ids id_00]

Writes a synthetic set with `common.data.synth.generate_dataset` (into a temporary folder, or `--root`,
where an existing set of the same sizes is reused: delete it after changing the generator), splits
every machine as the experiments do (`common.data.mimii.split_machine`, MIMII split), and for each machine
fits the dense AE from random weights on its whole training pool with `common.models.train.Trainer` (the
demo's fit settings unless overridden), scores the evaluation clips with `common.scoring.reconstruction.clip_scores`
and prints AUC / pAUC (`common.scoring.metrics.auc_pauc`, averaged over the training seeds) with a 95 %
bootstrap interval over the evaluation clips (of the seed-averaged scores), then the per-type means.
The sizes default to the demo's (`common.demo.DEMO_DATA`). MIMII at -6 dB (Purohit et al., 2019, AE
baseline) for comparison: fan ~.68, pump ~.67, slider ~.73, valve ~.56.

Diagnostics per machine say why a machine is hard: ``rms`` is the abnormal minus normal clip RMS
(channel 0, dB), ``logmel`` the mean log-mel difference (dB, over all bands and frames), ``err``
the normal evaluation clips' mean score relative to the training clips' (a trained AE should not
find held-out normal clips much harder), and ``bands`` the three mel bands (centre Hz) where
abnormal clips differ most from normal ones, with the sign of the difference (+: louder).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from _bench import load_line, machine_line

import numpy as np

from common.features.audio import read_channel
from common.models.autoencoder import architecture
from common.features.cache import cached_features
from common.data.mimii import find_machines, split_machine
from common.demo import DEMO_DATA, DEMO_OVERRIDES
from common.errors import DataError
from common.data.names import MACHINE_IDS, MACHINE_TYPES
from common.scoring.metrics import auc_pauc
from common.scoring.reconstruction import clip_scores
from common.data.synth import generate_dataset
from common.models.train import Trainer

N_MELS, FRAMES = 64, 5
MIMII_MINUS_6_DB = {"fan": 0.68, "pump": 0.67, "slider": 0.73, "valve": 0.56}


def ensure_data(root: Path, args: argparse.Namespace) -> float:
    """Generate the set under `root` unless it is there already; seconds spent generating (0 if reused)."""
    try:
        machines = find_machines(root, snr=-6, types=args.types, ids=args.ids)
        sizes = {(len(list((m.path / "normal").glob("*.wav"))), len(list((m.path / "abnormal").glob("*.wav"))))
                 for m in machines}
        if sizes == {(args.n_normal, args.n_abnormal)}:
            return 0.0
    except DataError:
        pass
    start = time.perf_counter()
    generate_dataset(root, snr=-6, n_normal=args.n_normal, n_abnormal=args.n_abnormal, seconds=args.seconds,
                     channels=args.channels, seed=args.data_seed, types=args.types, ids=args.ids, jobs=args.jobs,
                     overwrite=True, progress=False)
    return time.perf_counter() - start


def bootstrap_interval(y_true: np.ndarray, y_score: np.ndarray, *, n: int = 1000, seed: int = 0) -> tuple[float, float]:
    """2.5 and 97.5 percentiles of the AUC over clips resampled within each class."""
    rng = np.random.default_rng(seed)
    pos, neg = y_score[y_true == 1], y_score[y_true == 0]
    aucs = np.empty(n)
    for i in range(n):
        p, q = rng.choice(pos, pos.size), rng.choice(neg, neg.size)
        aucs[i] = np.mean(p[:, None] > q[None, :]) + 0.5 * np.mean(p[:, None] == q[None, :])
    return float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))


def band_centres_hz(sr: int = 16000, n_fft: int = 1024) -> np.ndarray:
    """Centre frequency of each mel band (the peak of its filter)."""
    import librosa

    basis = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=N_MELS)
    return np.argmax(basis, axis=1) * sr / n_fft


def clip_logmel(vectors: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Mean log-mel spectrum of each clip [shape=(n_clips, n_mels)] (first frame of every vector)."""
    frames = np.asarray(vectors[:, :N_MELS], dtype=np.float64)
    return np.add.reduceat(frames, offsets[:-1], axis=0) / np.diff(offsets)[:, None]


def clip_rms_db(files) -> np.ndarray:
    """RMS of channel 0 of each file, dB re full scale."""
    return np.array([10 * np.log10(np.mean(np.square(read_channel(f)[0], dtype=np.float64))) for f in files])


def diagnose(split, eval_feats, train_scores: np.ndarray, scores: np.ndarray, centres: np.ndarray) -> dict:
    """Why a machine is easy or hard: level, spectrum and score differences of abnormal vs normal clips."""
    labels = split.eval_labels
    rms = clip_rms_db(split.eval_files)
    spec = clip_logmel(eval_feats.vectors, eval_feats.offsets)
    diff = spec[labels == 1].mean(axis=0) - spec[labels == 0].mean(axis=0)
    top = np.argsort(-np.abs(diff))[:3]
    return {
        "rms": rms[labels == 1].mean() - rms[labels == 0].mean(),
        "logmel": float(diff.mean()),
        "err": scores[labels == 0].mean() / train_scores.mean(),
        "bands": " ".join(f"{centres[b]:.0f}{diff[b]:+.1f}" for b in top),
    }


def run_machine(machine, trainer: Trainer, args: argparse.Namespace, cache_dir: Path, centres: np.ndarray) -> dict:
    """Fit the AE from scratch on the machine's whole pool (each seed), score its evaluation set, diagnose."""
    split = split_machine(machine, method="mimii")
    feats = dict(cache_dir=cache_dir, jobs=args.jobs, progress=False, n_mels=N_MELS, frames=FRAMES)
    train = cached_features(split.train, **feats)
    evals = cached_features(split.eval_files, **feats)
    arch = architecture(train.vectors.shape[1], hidden=(64, 64), bottleneck=8, batch_norm=False)
    aucs, paucs, all_scores, train_scores = [], [], [], []
    for seed in args.seeds:
        fit = trainer.fit(arch, trainer.init_weights(arch, seed=seed), np.asarray(train.vectors), epochs=args.epochs,
                          batch_size=args.batch_size, learning_rate=args.learning_rate, seed=seed)
        model = trainer.with_weights(arch, fit.weights)
        scores = clip_scores(model, np.asarray(evals.vectors), evals.offsets)
        train_scores.append(clip_scores(model, np.asarray(train.vectors), train.offsets))
        auc, pauc = auc_pauc(split.eval_labels, scores, max_fpr=0.1, name=machine.name)
        aucs.append(auc)
        paucs.append(pauc)
        all_scores.append(scores)
    mean_scores = np.mean(all_scores, axis=0)
    lo, hi = bootstrap_interval(split.eval_labels, mean_scores)
    row = {"machine": machine.name, "type": machine.type, "auc": float(np.mean(aucs)), "pauc": float(np.mean(paucs)),
           "lo": lo, "hi": hi, "n_train": len(split.train), "n_eval": len(split.eval_files)}
    return row | diagnose(split, evals, np.mean(train_scores, axis=0), mean_scores, centres)


def print_rows(rows: list[dict]) -> None:
    print(f"{'machine':14} {'AUC':>5} {'95% boot':>13} {'pAUC':>5}  {'rms':>5} {'logmel':>6} {'err':>5}  bands (Hz dB)")
    for r in rows:
        print(f"{r['machine']:14} {r['auc']:5.2f} [{r['lo']:.2f}, {r['hi']:.2f}] {r['pauc']:5.2f}  "
              f"{r['rms']:+5.1f} {r['logmel']:+6.2f} {r['err']:5.2f}  {r['bands']}")
    print("\nper type (mean AUC; MIMII -6 dB AE for comparison):")
    for machine_type in dict.fromkeys(r["type"] for r in rows):
        aucs = [r["auc"] for r in rows if r["type"] == machine_type]
        print(f"  {machine_type:7} {np.mean(aucs):.3f}  (min {min(aucs):.2f}, max {max(aucs):.2f}; "
              f"MIMII {MIMII_MINUS_6_DB.get(machine_type, float('nan')):.2f})")
    aucs = [r["auc"] for r in rows]
    print(f"  {'all':7} {np.mean(aucs):.3f}  (min {min(aucs):.2f}); machines below 0.5: {sum(a <= 0.5 for a in aucs)}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    fit = DEMO_OVERRIDES["fit"]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, help="data root (default: a temporary folder, deleted afterwards)")
    parser.add_argument("--n-normal", type=int, default=DEMO_DATA["n_normal"])
    parser.add_argument("--n-abnormal", type=int, default=DEMO_DATA["n_abnormal"])
    parser.add_argument("--seconds", type=float, default=DEMO_DATA["seconds"])
    parser.add_argument("--channels", type=int, default=DEMO_DATA["channels"],
                        help="microphones written (the features use channel 0; 1 is faster)")
    parser.add_argument("--data-seed", type=int, default=DEMO_DATA["seed"])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--types", nargs="+", default=list(MACHINE_TYPES))
    parser.add_argument("--ids", nargs="+", default=list(MACHINE_IDS))
    parser.add_argument("--epochs", type=int, default=fit["epochs"])
    parser.add_argument("--batch-size", type=int, default=fit["batch_size"])
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds, AUCs averaged")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(machine_line())
    print(f"load before: {load_line()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = (args.root or Path(tmp) / "data").resolve()
        seconds = ensure_data(root, args)
        print(f"data: {root}, {args.n_normal} normal + {args.n_abnormal} abnormal per machine, "
              + (f"generated in {seconds:.1f} s (jobs={args.jobs})" if seconds else "reused"))
        trainer, centres = Trainer(), band_centres_hz()
        rows = [run_machine(m, trainer, args, root / ".features", centres)
                for m in find_machines(root, snr=-6, types=args.types, ids=args.ids)]
    print(f"AE from scratch: {args.epochs} epochs, batch {args.batch_size}, seeds {args.seeds}\n")
    print_rows(rows)
    print(f"load after: {load_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
