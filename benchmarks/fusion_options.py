"""Which pairs to fuse, and how to normalise each part (issue 30): from a finished worlds run, no refit.

Usage::

    python benchmarks/fusion_options.py WORK [WORK ...] [--budget 4] [--pairs lw_transfer+transfer_mahalanobis ...]

Each WORK is a ``benchmarks/worlds.py --work`` folder whose run scored some of the parts (the full catalogue run
scores all; runs of a few methods on the same data can be given together, their rows joined per world and version:
the budget clips and evaluation clips of a target and seed are the same in every run). For every
world, version, target, source and seed at ``--budget`` clips, each pair's fused AUC is recomputed from the rows'
evaluation scores (``scores.csv``) and the parts' training clip scores (their row models' sidecars), under four
normalisations of a part's scores fitted on its training clips only:

- ``z``: ``(s - mean) / std`` (the toolkits' recipe; `common.scoring.fusion.normaliser`, with its floor);
- ``ratio``: ``s / mean``;  ``median``: ``s / median``;  ``logratio``: ``log(s / median)``.

It prints mean AUC per world, the mean over worlds and the worst world, so pairs and normalisation are chosen over
every world, never one (docs/worlds.md, "Score fusion").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from common.methods.catalog import SOURCE_FREE_METHODS
from common.scoring.fusion import normaliser

PAIRS = ("lw_transfer+transfer_mahalanobis", "lw_scratch+scratch", "embed_knn+logmel_two_bank",
         "embed_knn+lw_transfer", "embed_knn+logmel_knn")


def _scale(train: np.ndarray, kind: str) -> tuple[float, float]:
    if kind == "z":
        return normaliser(train)
    return 0.0, float(np.median(train) if kind in ("median", "logratio") else np.mean(train))


def _fused(parts: list[tuple[pd.Series, np.ndarray]], kind: str) -> np.ndarray:
    if kind == "logratio":
        return sum(np.log(np.maximum(s, 1e-12) / _scale(t, kind)[1]) for s, t in parts)
    return sum((s - m) / sc for s, t in parts for m, sc in (_scale(t, kind),))


def _train_scores(result_dir: Path, key: dict, method: str, budget: str) -> np.ndarray:
    source = "none" if method in SOURCE_FREE_METHODS else key["source"]
    path = (result_dir / "models" / f"{key['target_type']}_{key['target_id']}"
            / f"{method}_{source}_budget-{budget}_seed-{key['seed']}.json")
    return np.asarray(json.loads(path.read_text())["train_scores"], dtype=float)


def _runs(works: list[Path]) -> dict[tuple[str, str], pd.DataFrame]:
    """Every (world, version)'s rows of scores.csv over the WORK folders, each row with its result folder."""
    runs: dict[tuple[str, str], list[pd.DataFrame]] = {}
    for work in works:
        for path in sorted(work.glob("*/Version*/result_transfer_pretrain_v*/scores.csv")):
            world, version = path.relative_to(work).parts[:2]
            runs.setdefault((world, version), []).append(
                pd.read_csv(path, dtype={"budget": str}).assign(result_dir=str(path.parent)))
    return {k: pd.concat(v, ignore_index=True).drop_duplicates(["path", "method", "budget", "seed", "target_type",
                                                                  "target_id"]) for k, v in runs.items()}


def table(works: list[Path], budget: str, pairs: list[str]) -> pd.DataFrame:
    """Mean AUC per (pair, normalisation) and world, with the mean over worlds and the worst world."""
    key = ["version", "target_type", "target_id", "source", "seed"]
    out = []
    for (world, _), scores in _runs(works).items():
        scores = scores[scores["budget"] == budget]
        dirs = scores.groupby("method")["result_dir"].first()
        for k, group in scores[scores["source"] != "none"].groupby(key):
            row = dict(zip(key, k))
            same = (scores[["version", "target_type", "target_id", "seed"]] == [row[c] for c in
                    ("version", "target_type", "target_id", "seed")]).all(axis=1)
            wide = scores[same].pivot_table(index=["path", "label"], columns="method", values="score").reset_index()
            for pair in pairs:
                names = pair.split("+")
                if not all(n in wide for n in names):
                    continue
                parts = [(wide[n].to_numpy(), _train_scores(Path(dirs[n]), row, n, budget)) for n in names]
                for kind in ("z", "ratio", "median", "logratio"):
                    out.append({"world": world, "pair": pair, "normalise": kind,
                                "auc": roc_auc_score(wide["label"], _fused(parts, kind))})
    t = pd.DataFrame(out).groupby(["pair", "normalise", "world"])["auc"].mean().unstack()
    return t.assign(mean=t.mean(axis=1), worst=t.min(axis=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("work", type=Path, nargs="+")
    p.add_argument("--budget", default="4")
    p.add_argument("--pairs", nargs="+", default=list(PAIRS))
    p.add_argument("--normalise", nargs="+", default=None, help="only these normalisations (default: all four)")
    args = p.parse_args()
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    t = table(args.work, args.budget, args.pairs)
    if args.normalise:
        t = t[t.index.get_level_values("normalise").isin(args.normalise)]
    print(t.sort_values("mean", ascending=False).round(3).to_string())


if __name__ == "__main__":
    main()
