"""What every data-set layout shares: a machine, its split, and the rule that says which files are clips.

`common.data.mimii` (MIMII) and `common.data.dcase` (DCASE Task 2) both build on these records, and
`common.data.layouts` names each layout's functions over them; nothing here knows a layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import DataError


@dataclass(frozen=True, order=True)
class Machine:
    """One machine of the data set: a type and an ID, and the folder holding its clips."""

    type: str
    id: str
    path: Path

    @property
    def name(self) -> str:
        return f"{self.type}/{self.id}"


@dataclass(frozen=True)
class Split:
    """A machine's training pool (normal clips only) and its labelled evaluation set."""

    machine: Machine
    train: tuple[Path, ...]
    eval_files: tuple[Path, ...]
    eval_labels: np.ndarray  # int [shape=(len(eval_files),)], normal = 0, anomaly = 1

    @property
    def eval_domains(self) -> tuple[str | None, ...]:
        """Each evaluation clip's domain ("source" / "target"); None where the data has no domains (MIMII)."""
        return (None,) * len(self.eval_files)

    @property
    def train_attributes(self) -> tuple[str, ...]:
        """Each training clip's condition within its machine ("" where the data names none: MIMII, DCASE 2020)."""
        return ("",) * len(self.train)

    @property
    def budget_pool(self) -> tuple[Path, ...]:
        """The clips a budget of N clips draws from: the whole training pool (a DCASE split: its target domain)."""
        return self.train


def is_clip(path: str | os.PathLike) -> bool:
    """Whether `path` names a clip: suffix ``.wav`` in any case, and not a hidden file.

    The one rule of every command (experiments, ``check-data``, ``score``): ``00000000.WAV`` is a
    clip, while ``._00000000.wav`` (a macOS resource fork) and ``.00000000.wav`` are not.
    """
    name = Path(path).name
    return name.lower().endswith(".wav") and not name.startswith(".")


def looks_like_clip(path: str | os.PathLike) -> bool:
    """Whether `path` ends in ``.wav`` (any case) but `is_clip` leaves it out (e.g. ``._00000000.wav``)."""
    return Path(path).name.lower().endswith(".wav") and not is_clip(path)


def list_folder_clips(folder: str | os.PathLike) -> tuple[list[Path], list[Path]]:
    """The clips of one folder (files passing `is_clip`), sorted by name, and the files that look like clips but are not.

    Returns
    -------
    clips : list of Path
    ignored : list of Path
        Files named ``*.wav`` that `is_clip` leaves out (hidden ones such as ``._*``), to report.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return [], []
    files = sorted(p for p in folder.iterdir() if p.name.lower().endswith(".wav") and p.is_file())
    return [p for p in files if is_clip(p)], [p for p in files if not is_clip(p)]


def one_layout(root: str | os.PathLike, found: dict[str, list[str]]) -> str | None:
    """The one layout of `found` (layout -> folders of `root` in it); None when empty; DataError when mixed."""
    if len(found) > 1:
        listed = "; ".join(f"{layout}: {', '.join(names)}" for layout, names in sorted(found.items()))
        raise DataError(f"mixed data layouts under {root} ({listed}): a data root holds one layout")
    return next(iter(found), None)


def _class_name(machine: Machine, attribute: str) -> str:
    return f"{machine.name}/{attribute}" if attribute else machine.name


def clip_classes(split: Split, files) -> list[str]:
    """The class of each of `files` (training clips of `split`'s machine): the machine, with its clip's attributes."""
    attributes = dict(zip(map(str, split.train), split.train_attributes))
    return [_class_name(split.machine, attributes[str(f)]) for f in files]


def class_names(splits) -> list[str]:
    """The classes of a classifier of the machines of `splits` (`Split`s): machine by machine, each one's attribute
    classes sorted."""
    return [name for split in splits
            for name in sorted({_class_name(split.machine, a) for a in split.train_attributes})]
