"""Tie a config to the data: the machines it selects, their splits, and their cached features."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from .config import Config
from .data import Machine, Split, find_machines, split_machine
from .features import ClipFeatures, cached_features
from .sources import source_sets


@dataclass(frozen=True)
class MachineData:
    """A machine's split and the log-mel vectors of all its clips (train pool and evaluation)."""

    split: Split
    features: ClipFeatures

    @property
    def machine(self) -> Machine:
        return self.split.machine

    def vectors(self, files) -> tuple:
        """Vectors and offsets of the given clips of this machine, in the given order."""
        return self.features.take([self._index[str(f)] for f in files])

    @cached_property
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


def machines_table(cfg: Config) -> pd.DataFrame:
    """One row per selected machine: clip counts of its training pool and evaluation split."""
    rows = []
    for machine in select_machines(cfg):
        split = split_machine(machine, method=cfg.data.split, seed=cfg.data.split_seed)
        n_abnormal = int(split.eval_labels.sum())
        rows.append({"machine": machine.name, "train_normal": len(split.train),
                     "eval_normal": len(split.eval_files) - n_abnormal, "eval_abnormal": n_abnormal,
                     "folder": str(machine.path)})
    return pd.DataFrame(rows)


def sources_table(cfg: Config) -> pd.DataFrame:
    """One row per target machine: the source sets that pretrain its models in the config's version."""
    machines = select_machines(cfg)
    rows = [{"target": t.name, "source": s.label, "source_machines": ", ".join(m.name for m in s.machines)}
            for t in machines for s in source_sets(cfg.experiment.version, t, machines)]
    return pd.DataFrame(rows, columns=["target", "source", "source_machines"])
