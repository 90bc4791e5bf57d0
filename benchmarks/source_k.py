"""How many sources should v5 pretrain on? v5 at k = 1, 2, 3, 4 on the demo's data (the measurement behind the default).

Runs make_pretrain_v5 + transfer_pretrain_v5 with the demo's sizes, the methods that train no classifier per
source set (a set of one machine is one class: `transfer`, `lw_transfer` and their controls) and each k, into a
workspace of its own (``--work``, default /tmp/v5_k), and prints the mean AUC over targets per k, method and
budget. Needs the demo's data (`make demo` first). About 3 minutes per k on 2 cores.

    .venv/bin/python benchmarks/source_k.py [--ks 1,2,3,4] [--work /tmp/v5_k]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from common.config import load_config
from common.demo import DEMO_OVERRIDES
from common.data.names import pretrain_yaml, transfer_yaml

REPO = Path(__file__).resolve().parent.parent
METHODS = ["scratch", "transfer", "lw_scratch", "lw_transfer"]


def run_k(k: int, work: Path) -> pd.DataFrame:
    """The v5 results at `k` (models and results under ``work/k<k>``; the feature cache is the repository's)."""
    out = work / f"k{k}"
    overrides = {**DEMO_OVERRIDES, "data": {"root": str(REPO / "Sample_data")},
                 "experiment": {**DEMO_OVERRIDES["experiment"], "methods": METHODS, "sources_k": k},
                 "output": {"model_dir": str(out / "models"), "result_dir": str(out / "results"),
                            "scratch_dir": str(work / "scratch")},
                 "transfer": {**DEMO_OVERRIDES["transfer"], "init_from": str(out / "models")}}
    make, cfg = (load_config(y(REPO, 5), overrides=overrides) for y in (pretrain_yaml, transfer_yaml))
    from common.experiment.grid import run_grid
    from common.experiment.pretrain import pretrain

    pretrain(make, progress=False)
    return run_grid(cfg, progress=False).assign(k=k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,2,3,4")
    parser.add_argument("--work", default="/tmp/v5_k")
    args = parser.parse_args()
    results = pd.concat([run_k(int(k), Path(args.work)) for k in args.ks.split(",")])
    table = results.groupby(["method", "budget", "k"])["auc"].mean().unstack("k")
    print(table.to_string(float_format="{:.3f}".format))
    print(results[results["method"] != "scratch"].groupby("k")["auc"].mean().to_string(float_format="{:.3f}".format))


if __name__ == "__main__":
    main()
