# %% [markdown]
# # Version $n, step 2: transfer from $short
#
# $text
#
# For every target machine, budget (number of target training clips) and seed, three methods are scored
# on the target's evaluation split: **scratch** (trained on the target budget only), **zero_shot**
# (the pretrained model as is) and **transfer** (the pretrained model fine-tuned on the target budget).
# Run `make_pretrain_$version.ipynb` first. Results go to `result_transfer_pretrain_$version/`.

# %% tags=["parameters"]
config_path = "transfer_pretrain_$version.yaml"  # in this notebook's folder (the kernel's working directory)
overrides = {}  # e.g. {"experiment": {"budgets": [8, "all"]}}

# %% [markdown]
# ## Config

# %%
from common.config import load_config

cfg = load_config(config_path, overrides=overrides)
print(cfg.to_yaml())

# %% [markdown]
# ## Data

# %%
from common.data.dataset import machines_table

machines_table(cfg)

# %% [markdown]
# ## Train and score
#
# Scratch results are shared by all versions; rows already in `results.csv` for the same config are
# reused, so an interrupted run resumes.

# %%
from common.experiment.grid import run_grid

results = run_grid(cfg)
print(f"{len(results)} runs -> {cfg.output.result_dir / 'results.csv'}")

# %% [markdown]
# ## Results
#
# Mean AUC and pAUC over targets per method and budget; `*_minus_scratch` pairs each run with scratch on
# the same target, budget and seed. On a DCASE Task 2 root `official_score` is the challenge's official score
# of the year's formula over every target (blank on MIMII); compare it with the published numbers in README.md.

# %%
from common.results import summarize

summarize(results)

# %%
from common.results import per_target

per_target(results)

# %%
from common.report.plots import auc_by_target

auc_by_target(results, budget=str(cfg.experiment.budgets[-1]))

# %% [markdown]
# ## Report across versions
#
# Statistics over every version with results so far: mean transfer minus scratch with a 95 % bootstrap
# interval over targets, counts of machines improved / worsened, and a paired Wilcoxon test.
#
# **This cell writes outside this folder**: `report.md` and its plots go to the repository's `report/`
# (`../report/`, shared by all versions), and each version's figures into that version's result folder.

# %%
from pathlib import Path

from IPython.display import Markdown

from common.report.writer import write_report

repo = Path.cwd().parent  # the repository root: this notebook's folder is one of its Version folders
report = write_report(repo, out=repo / "report")
Markdown(report.read_text())
