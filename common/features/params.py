"""The log-mel feature parameters, owned by the feature layer: their names and defaults in one record.

The numerics (`logmel`, `features`, `cache`, `check`, the model sidecars) take their parameters from here, so
nothing below the YAML loader imports it; `common.config` builds this record from a Version YAML's ``feature:``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FeatureConfig:
    """The log-mel feature parameters: the one list of their names and defaults (the MIMII baseline's).

    `common.features.logmel` and `common.features.extract` take their keyword defaults from ``FeatureConfig()``,
    `common.features.cache` its key's parameter names, model sidecars and `common.deploy` the names they
    record and compare. ``common/defaults.yaml`` shows the same values to the user; a Version YAML
    sets them under ``feature:``, which `common.config` reads into this record.
    """

    n_mels: int = 64
    frames: int = 5  # consecutive STFT frames stacked into one vector
    n_fft: int = 1024
    hop_length: int = 512
    power: float = 2.0

    def kwargs(self) -> dict[str, Any]:
        """The parameters as keyword arguments for `common.features.logmel` and `common.features.extract` functions."""
        return dataclasses.asdict(self)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The parameter names, in their order: ``("n_mels", "frames", "n_fft", "hop_length", "power")``."""
        return tuple(f.name for f in dataclasses.fields(cls))
