"""Does a log-mel distance predict which source set transfers best? (the measurement behind v5's similarity)

Reads the demo's v1-v4 results (run `make demo` first). Per target there are 8 source sets (v1: 3 single types,
v2: the other IDs, v3: 3 pairs, v4: all other types). For every distance of `common.data.selection.DISTANCES`, each set
is scored by its distance between the target's budget clips (the cell's draw) and the pooled training clips of
the set's machines; the Spearman correlation between -distance and the set's AUC is taken per target, then
averaged over targets, per method and budget. Higher is better; 0 = the distance says nothing.

    .venv/bin/python benchmarks/source_similarity.py [--repo .]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from common.config import load_config
from common.data.mimii import budget_clips
from common.data.dataset import Machines, select_machines
from common.demo import DEMO_OVERRIDES
from common.data.names import transfer_yaml
from common.results import collect
from common.data.selection import DISTANCES, clip_stats

METHODS = ("transfer", "lw_transfer", "embed_knn")


def set_stats(selector_cache: dict, data: Machines, machines, n_mels: int) -> np.ndarray:
    """The pooled training-clip statistics of the machines of one source set (cached per machine)."""
    parts = []
    for m in machines:
        if m not in selector_cache:
            selector_cache[m] = clip_stats(data[m], data[m].split.train, n_mels=n_mels)
        parts.append(selector_cache[m])
    return np.concatenate(parts)


def measure(repo: Path) -> pd.DataFrame:
    """Mean over targets of Spearman(-distance, AUC) across each target's v1-v4 source sets, per distance."""
    from common.data.versions import source_sets

    results, _ = collect(repo)
    results = results[results["version"].isin(["v1", "v2", "v3", "v4"]) & results["method"].isin(METHODS)]
    cfg = load_config(transfer_yaml(repo, 1), overrides={**DEMO_OVERRIDES, "data": {"root": str(repo / "Sample_data")}})
    machines, data, cache = select_machines(cfg), Machines(cfg, progress=False), {}
    by_name = {m.name: m for m in machines}
    rows = []
    for (method, budget), part in results.groupby(["method", "budget"]):
        for name in DISTANCES:
            rhos = []
            for (ttype, tid), runs in part.groupby(["target_type", "target_id"]):
                target = by_name[f"{ttype}/{tid}"]
                sets = {s.label: s for v in ("v1", "v2", "v3", "v4") for s in source_sets(v, target, machines)}
                own = clip_stats(data[target], budget_clips(data[target].split, budget if budget == "all" else
                                                            int(budget), seed=0), n_mels=cfg.feature.n_mels)
                auc = runs[runs["seed"] == 0].groupby("source")["auc"].mean()
                dist = {label: DISTANCES[name](own, set_stats(cache, data, s.machines, cfg.feature.n_mels))
                        for label, s in sets.items() if label in auc.index}
                labels = sorted(dist)
                if len(labels) > 2:
                    rhos.append(spearmanr([-dist[k] for k in labels], [auc[k] for k in labels]).statistic)
            rows.append({"method": method, "budget": budget, "distance": name, "n_targets": len(rhos),
                         "spearman_mean": float(np.nanmean(rhos))})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    table = measure(Path(parser.parse_args().repo))
    print(table.pivot_table(index=["method", "budget"], columns="distance", values="spearman_mean")
          .to_string(float_format="{:+.3f}".format))
    print(table.groupby("distance")["spearman_mean"].mean().to_string(float_format="{:+.3f}".format))


if __name__ == "__main__":
    main()
