# %% [markdown]
# # Version $n, step 1: pretrain on $short
#
# $text
#
# This notebook trains one autoencoder per distinct source set and saves it to `model_pretrain_$version/`
# (`.keras` + a JSON sidecar with its features, sources and seed). Models that are already up to date are
# not retrained. Next: `transfer_pretrain_$version.ipynb`. Hyperparameters: edit `make_pretrain_$version.yaml`
# (shared defaults in `../common/defaults.yaml`).

# %% tags=["parameters"]
config_path = "make_pretrain_$version.yaml"  # in this notebook's folder (the kernel's working directory)
overrides = {}  # e.g. {"fit": {"epochs": 100}}

# %% [markdown]
# ## Config

# %%
from common.config import load_config

cfg = load_config(config_path, overrides=overrides)
print(cfg.to_yaml())

# %% [markdown]
# ## Data
#
# Machines found under the data root, with the MIMII baseline split: all abnormal clips and as many
# normal clips form the evaluation set; the other normal clips are the training pool.

# %%
from common.data.dataset import machines_table
from common.data.selection import sources_table

machines_table(cfg)

# %% [markdown]
# ## Sources
#
# Which machines pretrain the models of each target in this version.

# %%
sources = sources_table(cfg)
print(f"{sources.source.nunique()} pretrained models serve {sources.target.nunique()} targets")
sources

# %% [markdown]
# ## Train
#
# Features are extracted once and cached; each model trains on the training pools of its sources.

# %%
from common.experiment.pretrain import pretrain

made = pretrain(cfg)
for p in made:
    print("trained   " if p.trained else "up to date", p.path.name)

# %%
from common.report.plots import loss_curves, read_histories

loss_curves(read_histories(cfg.output.model_dir))
