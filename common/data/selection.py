"""Version5: rank the other machines as sources of a target and pretrain on the `k` most similar.

For each target, budget and seed, each of the target's **budget clips** (never its evaluation clips)
is summarised by its log-mel statistics: the mean and std over frames of every mel band
(`common.features.clipvectors.logmel_stats`, in dB); every other machine by the same statistics of its training
clips. ``experiment.similarity`` (`DISTANCES`) measures how far a candidate is: ``nearest`` = the mean
over the budget clips of the RMS dB difference to the candidate's nearest clip; ``profile`` = the RMS dB
difference of the two mean statistics. The ``experiment.sources_k`` nearest machines are the draw's
source set (ties: by name). README, "Version5", has the measurement that chose the distance and k. With
``experiment.selection: random`` the `k` machines are drawn with the cell's seed instead (the
baseline the report compares v5 with).

The chosen set is labelled by its machines (``fan_id_02+pump_id_00``), so a set chosen for several
targets, budgets or seeds is one pretrained model, and the label is the cell's ``source`` in results.csv.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from common.features.clipvectors import logmel_stats
from common.config import Budget, Config
from common.data.mimii import Machine, budget_clips
from common.data.dataset import Machines, MachineData, select_machines
from common.errors import ConfigError, DataError
from common.data.versions import VERSIONS, SourceSet, source_sets

Draw = tuple[Budget, int]  # (budget, seed) of a target's cells
Draws = dict[Machine, dict[Draw, list[SourceSet]]]  # target -> (budget, seed) -> its source sets


@dataclass(frozen=True)
class Ranked:
    """A candidate source machine and its distance (RMS dB) to the target's clips; smaller is more similar."""

    machine: Machine
    distance: float


def clip_stats(md: MachineData, files: Sequence, *, n_mels: int) -> np.ndarray:
    """Each given clip's log-mel band means and stds, in dB [shape=(n_clips, 2 * n_mels)] (from the feature cache)."""
    if not files:
        raise DataError(f"{md.machine.name} has no clips to compare with other machines")
    vectors, offsets = md.vectors(files)
    return logmel_stats(np.asarray(vectors), np.asarray(offsets), n_mels=n_mels)


def _rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """RMS difference in dB along the last axis (broadcast)."""
    return np.sqrt(np.mean((a - b) ** 2, axis=-1))


def profile_distance(target: np.ndarray, candidate: np.ndarray) -> float:
    """RMS dB between the mean statistics of the target's clips and of the candidate's."""
    return float(_rms(target.mean(axis=0), candidate.mean(axis=0)))


def nearest_distance(target: np.ndarray, candidate: np.ndarray) -> float:
    """Mean over the target's clips of the RMS dB to the candidate's nearest clip (is its sound among the candidate's?)."""
    return float(_rms(target[:, None, :], candidate[None, :, :]).min(axis=1).mean())


# experiment.similarity -> distance between the target's clip statistics and a candidate's (README, "Version5").
DISTANCES = {"nearest": nearest_distance, "profile": profile_distance}


def rank_sources(target: np.ndarray, candidates: Mapping[Machine, np.ndarray], *,
                 similarity: str = "nearest") -> list[Ranked]:
    """The candidates from most to least similar to the `target` clip statistics (ties broken by machine name)."""
    measure = DISTANCES[similarity]
    ranked = [Ranked(m, measure(np.asarray(target, dtype=float), np.asarray(c, dtype=float)))
              for m, c in candidates.items()]
    return sorted(ranked, key=lambda r: (r.distance, r.machine.name))


def set_of(machines: Sequence[Machine]) -> SourceSet:
    """The source set of these machines, labelled by them in name order (one model per distinct set)."""
    chosen = tuple(sorted(machines))
    return SourceSet("+".join(f"{m.type}_{m.id}" for m in chosen), chosen)


def random_machines(target: Machine, candidates: Sequence[Machine], *, k: int, seed: int) -> list[Machine]:
    """`k` candidates drawn with the cell's seed and the target's name (the same draw on every run)."""
    rng = np.random.default_rng([seed, zlib.crc32(target.name.encode())])
    pool = sorted(candidates)
    return [pool[i] for i in sorted(rng.choice(len(pool), size=k, replace=False))]


class Selector:
    """The profiles of one run's machines (each computed once) and the v5 choice of each draw."""

    def __init__(self, cfg: Config, data: Machines) -> None:
        self.cfg, self.data = cfg, data
        self._train: dict[Machine, np.ndarray] = {}

    def train_stats(self, machine: Machine) -> np.ndarray:
        """A candidate's clip statistics over its training clips."""
        if machine not in self._train:
            md = self.data[machine]
            self._train[machine] = clip_stats(md, md.split.train, n_mels=self.cfg.feature.n_mels)
        return self._train[machine]

    def ranking(self, target: Machine, candidates: Sequence[Machine], budget: Budget, seed: int) -> list[Ranked]:
        """The candidates ranked by similarity to the target's budget clips of this budget and seed."""
        md = self.data[target]
        files = budget_clips(md.split, budget, seed=seed)
        own = clip_stats(md, files, n_mels=self.cfg.feature.n_mels)
        return rank_sources(own, {m: self.train_stats(m) for m in candidates},
                            similarity=self.cfg.experiment.similarity)

    def choose(self, target: Machine, candidates: Sequence[Machine], budget: Budget, seed: int) -> SourceSet:
        """The source set of one draw: the k most similar candidates (or k random ones)."""
        k = check_k(self.cfg, target, candidates)
        if self.cfg.experiment.selection == "random":
            return set_of(random_machines(target, candidates, k=k, seed=seed))
        return set_of([r.machine for r in self.ranking(target, candidates, budget, seed)[:k]])


def check_k(cfg: Config, target: Machine, candidates: Sequence[Machine]) -> int:
    """``experiment.sources_k``, refused when the target has fewer candidate machines."""
    k = cfg.experiment.sources_k
    if k > len(candidates):
        raise ConfigError(f"{cfg.source}: 'experiment.sources_k' is {k}, but {target.name} has only "
                          f"{len(candidates)} other machine(s) under {cfg.data.root} to choose from: "
                          f"use a k of at most {len(candidates)}")
    return k


def draws(cfg: Config, data: Machines, targets: Sequence[Machine], machines: Sequence[Machine]) -> Draws:
    """Every target's source sets per (budget, seed): the version's fixed sets, or v5's choice of each draw.

    Targets without a source set are left out.
    """
    version = cfg.experiment.version
    cells = [(b, s) for b in cfg.experiment.budgets for s in cfg.experiment.seeds]
    selector = Selector(cfg, data) if VERSIONS[version].per_draw else None
    out: Draws = {}
    for target in targets:
        sets = source_sets(version, target, machines)
        if not sets:
            continue
        if selector is None:
            out[target] = {cell: sets for cell in cells}
        else:
            out[target] = {(b, s): [selector.choose(target, sets[0].machines, b, s)] for b, s in cells}
    return out


def distinct_sets(found: Draws, target: Machine | None = None) -> list[SourceSet]:
    """The distinct source sets of all draws (of one `target`), in label order: one pretrained model each."""
    seen = {s.label: s for t, per in found.items() if target in (None, t) for sets in per.values() for s in sets}
    return [seen[k] for k in sorted(seen)]


def sources_table(cfg: Config) -> pd.DataFrame:
    """One row per target machine and source set that pretrains its models (v5: each set its budget draws choose)."""
    machines = select_machines(cfg)
    found = draws(cfg, Machines(cfg, progress=False), machines, machines)
    rows = [{"target": t.name, "source": s.label, "source_machines": ", ".join(m.name for m in s.machines)}
            for t in found for s in distinct_sets(found, t)]
    return pd.DataFrame(rows, columns=["target", "source", "source_machines"])
