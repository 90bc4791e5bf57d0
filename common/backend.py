"""Pick the Keras backend (tensorflow, jax or torch) from the config, before Keras is first imported.

Keras reads its backend once, at import, so a config can only choose it while Keras is not yet
loaded in the process (a fresh kernel or command). ``auto`` means ``KERAS_BACKEND`` when it is set,
else the fastest backend installed: JAX, then TensorFlow, then PyTorch (JAX trains this project's
models 2-2.5x faster than TensorFlow on CPU; docs/performance.md). Importing `common` applies that
default (`prefer_fastest`), so a model built without a config trains on the same backend as the grid.
"""

from __future__ import annotations

import importlib.util
import os
import sys

from common.errors import ConfigError

BACKENDS = ("auto", "tensorflow", "jax", "torch")
FASTEST_FIRST = ("jax", "tensorflow", "torch")  # measured order on CPU (benchmarks/bench_backends.py)
_PACKAGES = {"tensorflow": "tensorflow-cpu (or tensorflow)", "jax": "jax", "torch": "torch"}


def use_backend(name: str, *, key: str = "fit.backend") -> str | None:
    """Make Keras run on backend `name`; returns the backend now chosen (None: auto, Keras not loaded yet).

    Raises
    ------
    ConfigError
        `name` is unknown or not installed, or Keras is already running on another backend in
        this process (restart the kernel, or set ``KERAS_BACKEND`` before starting it).
    """
    if name not in BACKENDS:
        raise ConfigError(f"{key}: {name!r} is not a Keras backend; expected one of: {', '.join(BACKENDS)}")
    running = loaded_backend()
    if running is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of notebooks
    if name == "auto":
        return running or prefer_fastest()
    if running is not None:
        if running != name:
            raise ConfigError(
                f"{key}: {name} asked for, but Keras is already running on {running} in this process; "
                f"restart the kernel (or the command) so the config is read before Keras is imported, "
                f"or start it with KERAS_BACKEND={name}"
            )
        return running
    if importlib.util.find_spec(name) is None:
        raise ConfigError(f"{key}: {name} is not installed in this environment (pip install {_PACKAGES[name]})")
    os.environ["KERAS_BACKEND"] = name
    _quiet_tensorflow(name)
    return name


def loaded_backend() -> str | None:
    """The backend of the Keras already imported in this process, or None if Keras is not loaded."""
    if "keras" not in sys.modules:
        return None
    return sys.modules["keras"].backend.backend()


def prefer_fastest() -> str | None:
    """Set ``KERAS_BACKEND`` to the fastest installed backend unless it is set or Keras is loaded; the choice."""
    if loaded_backend() is not None:
        return None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("KERAS_BACKEND"):
        _quiet_tensorflow(os.environ["KERAS_BACKEND"])
        return os.environ["KERAS_BACKEND"]
    for name in FASTEST_FIRST:
        if importlib.util.find_spec(name) is not None:
            os.environ["KERAS_BACKEND"] = name
            _quiet_tensorflow(name)
            return name
    return None


_ONEDNN_SET_HERE = False  # whether `_quiet_tensorflow` (not the user) set TF_ENABLE_ONEDNN_OPTS


def _quiet_tensorflow(backend: str) -> None:
    """Keep TensorFlow's start-up lines out of notebooks when it does not compute (Keras imports it to save a model).

    Off TensorFlow, ``TF_ENABLE_ONEDNN_OPTS=0`` (its only INFO line at import names that variable); on TensorFlow
    the variable is removed again if this module set it, so TensorFlow computes as it does by default.
    """
    global _ONEDNN_SET_HERE
    if backend != "tensorflow" and "TF_ENABLE_ONEDNN_OPTS" not in os.environ:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
        _ONEDNN_SET_HERE = True
    elif backend == "tensorflow" and _ONEDNN_SET_HERE:
        os.environ.pop("TF_ENABLE_ONEDNN_OPTS", None)
        _ONEDNN_SET_HERE = False
