"""What the running kernel has: package versions, the Keras backend and the accelerators it sees."""

from __future__ import annotations

import importlib.metadata
import platform

PACKAGES = ("numpy", "scipy", "soundfile", "librosa", "keras", "tensorflow", "jax", "torch",
            "sklearn", "yaml", "pandas", "matplotlib", "tqdm", "nbclient")


def package_versions(names=PACKAGES) -> dict[str, str]:
    """Installed version of each package (by import name), or 'not installed'; imports none of them.

    The version is read from the installed distribution's metadata, found through the import name
    (``sklearn`` is scikit-learn, ``yaml`` PyYAML, ``tensorflow`` may be tensorflow-cpu), so that
    listing versions does not start TensorFlow, JAX or PyTorch.
    """
    providers = importlib.metadata.packages_distributions()
    out = {"python": platform.python_version()}
    for name in names:
        out[name] = "not installed"
        for dist in (*providers.get(name, ()), name):
            try:
                out[name] = importlib.metadata.version(dist)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
    return out


def accelerators() -> tuple[str, list[str]]:
    """The Keras backend in use and the GPUs it can see (empty list: CPU only)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return backend, [d.name for d in tf.config.list_physical_devices("GPU")]
    if backend == "jax":
        import jax

        return backend, [str(d) for d in jax.devices() if d.platform == "gpu"]
    if backend == "torch":
        import torch

        return backend, [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return backend, []
