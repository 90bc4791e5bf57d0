"""Shared fixtures: one seeded RNG, and tiny synthetic data sets written as real WAV files."""

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(seed=440)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """Two types x two IDs, 8 normal + 3 abnormal clips of 2 s, 2 channels each (read-only for tests)."""
    from common.synth import generate_dataset

    root = tmp_path_factory.mktemp("tiny") / "Sample_data"
    generate_dataset(root, progress=False, **TINY_DATA)
    return root


TINY_DATA = {"snr": -6, "n_normal": 8, "n_abnormal": 3, "seconds": 2.0, "channels": 2, "seed": 0,
             "types": ("fan", "valve"), "ids": ("id_00", "id_02")}


TINY_SIZES = {
    "feature": {"n_mels": 16, "frames": 2, "n_fft": 512, "hop_length": 256},
    "model": {"hidden": [16], "bottleneck": 4},
    "fit": {"epochs": 2, "batch_size": 64},
    "transfer": {"epochs": 1},
    "experiment": {"budgets": [2, "all"], "seeds": [0]},
}


def tiny_overrides(**sections: dict) -> dict:
    """Config overrides that make a full pretrain + transfer run take seconds; `sections` update them."""
    out = {k: dict(v) for k, v in TINY_SIZES.items()}
    for name, values in sections.items():
        out.setdefault(name, {}).update(values)
    return out
