"""Tie a config to the data: the machines it selects, their splits, and their cached features."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config
from .data import Machine, Split, find_machines, split_machine
from .features import ClipFeatures, cached_features


@dataclass(frozen=True)
class MachineData:
    """A machine's split and the log-mel vectors of all its clips (train pool and evaluation)."""

    split: Split
    features: ClipFeatures

    @property
    def machine(self) -> Machine:
        return self.split.machine

    def vectors(self, files) -> "tuple":
        """Vectors and offsets of the given clips of this machine, in the given order."""
        index = self._index()
        return self.features.take([index[str(f)] for f in files])

    def _index(self) -> dict[str, int]:
        return {f: i for i, f in enumerate(self.features.files)}


def select_machines(cfg: Config) -> list[Machine]:
    """The machines of the data root that the config selects (types, IDs, SNR)."""
    d = cfg.data
    return find_machines(d.root, snr=d.snr, types=d.types, ids=d.ids)


def load_machine(cfg: Config, machine: Machine, *, progress: bool = True) -> MachineData:
    """Split `machine` and load (extracting once, then from cache) the features of all its clips."""
    split = split_machine(machine, method=cfg.data.split, seed=cfg.data.split_seed)
    files = sorted(split.train + split.eval_files)
    feats = cached_features(
        files,
        cache_dir=cfg.data.cache_dir,
        channel=cfg.data.channel,
        sr=cfg.data.sample_rate,
        jobs=cfg.data.jobs,
        progress=progress,
        **cfg.feature.kwargs(),
    )
    return MachineData(split, feats)
