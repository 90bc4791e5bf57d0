"""The experiment versions, in one table: what each pretrains on (the only place versions differ),
in a few words and in a paragraph, and which machines pretrain which target.

- v1: each *other machine type* alone (all its IDs);
- v2: the *other IDs of the target's type*;
- v3: each pair of *two other types*;
- v4: *all other types* together;
- v5: the `experiment.sources_k` *machines most similar* to the target's budget clips, chosen per target, budget
  and seed (`common.data.selection`); its table entry gives the candidates (every other machine).
A target's own type never appears in v1/v3/v4 sources, its own ID never in v2, the target itself never in v5.
`common.config` accepts exactly these versions; `common.notebooks` titles and introduces each
version's notebooks with their words.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Callable, Sequence

from common.data.mimii import Machine
from common.errors import ConfigError


@dataclass(frozen=True)
class SourceSet:
    """The machines one pretrained model learns from, with a readable label used as its file name."""

    label: str
    machines: tuple[Machine, ...]


def _by_type(machines: Sequence[Machine]) -> dict[str, tuple[Machine, ...]]:
    types: dict[str, list[Machine]] = {}
    for m in sorted(machines):
        types.setdefault(m.type, []).append(m)
    return {t: tuple(ms) for t, ms in types.items()}


def _type_combinations(size: int | None) -> Callable[[Machine, Sequence[Machine]], list[SourceSet]]:
    """Sources = every combination of `size` other types (None: all other types at once)."""
    def sources(target: Machine, machines: Sequence[Machine]) -> list[SourceSet]:
        others = {t: ms for t, ms in _by_type(machines).items() if t != target.type}
        k = len(others) if size is None else size
        if k == 0 or len(others) < k:
            return []
        return [
            SourceSet("+".join(combo), tuple(m for t in combo for m in others[t]))
            for combo in itertools.combinations(sorted(others), k)
        ]
    return sources


def _all_others(target: Machine, machines: Sequence[Machine]) -> list[SourceSet]:
    """v5's candidates: every other machine, as one set (`common.data.selection` picks the k it pretrains on)."""
    others = tuple(m for m in sorted(machines) if m != target)
    return [SourceSet("candidates", others)] if others else []


def _other_ids(target: Machine, machines: Sequence[Machine]) -> list[SourceSet]:
    same = [m for m in _by_type(machines).get(target.type, ()) if m.id != target.id]
    if not same:
        return []
    return [SourceSet(f"{target.type}_" + "+".join(m.id for m in same), tuple(same))]


@dataclass(frozen=True)
class Version:
    """One experiment version: its pretraining sources in a few words and in a paragraph, and the rule."""

    short: str  # e.g. "one other machine type": notebook titles ("pretrain on ...", "transfer from ...")
    text: str  # the Markdown paragraph that opens the version's notebooks
    sources: Callable[[Machine, Sequence[Machine]], list[SourceSet]]  # (target, machines) -> source sets
    per_draw: bool = False  # True: `sources` gives the candidates; `common.data.selection` picks per budget and seed


VERSIONS: dict[str, Version] = {
    "v1": Version(
        "one other machine type",
        "For every target machine (type + ID), a model is pretrained on **one other machine type** "
        "(all its IDs' training clips), one model per type: a fan target gets models pretrained on "
        "pump, on slider and on valve.",
        _type_combinations(1)),
    "v2": Version(
        "the other IDs of the same type",
        "For every target machine, a model is pretrained on the **other IDs of the same type**: "
        "fan/id_00 gets a model pretrained on fan/id_02, id_04 and id_06. The target's own ID never "
        "enters pretraining.",
        _other_ids),
    "v3": Version(
        "two other machine types",
        "For every target machine, models are pretrained on **each pair of two other machine types**: "
        "a fan target gets pump+slider, pump+valve and slider+valve.",
        _type_combinations(2)),
    "v4": Version(
        "all three other machine types",
        "For every target machine, one model is pretrained on **all three other machine types together** "
        "(12 machines on full MIMII): a fan target gets pump+slider+valve.",
        _type_combinations(None)),
    "v5": Version(
        "the machines most similar to the target",
        "For every target machine, budget and seed, every other machine is ranked as a source by how close "
        "its training clips' log-mel statistics are to those of the target's **budget clips** (never its "
        "evaluation clips), and a model is pretrained on the **`experiment.sources_k` most similar machines**: "
        "the source set is chosen from data, not by rule, one pretrained model per distinct chosen set.",
        _all_others, per_draw=True),
}


def source_sets(version: str, target: Machine, machines: Sequence[Machine]) -> list[SourceSet]:
    """The source sets that pretrain models for `target` in `version` (empty if the data has none)."""
    if version not in VERSIONS:
        raise ConfigError(f"experiment version={version!r} must be one of {sorted(VERSIONS)}")
    return VERSIONS[version].sources(target, machines)


def all_source_sets(version: str, machines: Sequence[Machine]) -> list[SourceSet]:
    """Every distinct source set of `version` over all targets (one pretrained model each; v5: its candidates)."""
    seen: dict[str, SourceSet] = {}
    for target in machines:
        for s in source_sets(version, target, machines):
            seen.setdefault(s.label, s)
    return [seen[k] for k in sorted(seen)]
