"""Find machines in a MIMII-layout root, list their clips, and split them into train / evaluation.

Layout: ``ROOT/-6_dB_fan/fan/id_00/{normal,abnormal}/*.wav`` (``-6dB_fan`` is accepted too).
Labels: normal = 0, anomaly = 1. Evaluation clips never enter any training or pretraining data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Iterable, Sequence

import numpy as np

from .errors import DataError
from .layout import parse_snr_folder



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


def find_machines(
    root: str | Path,
    *,
    snr: float = -6,
    types: Iterable[str] | None = None,
    ids: Iterable[str] | None = None,
) -> list[Machine]:
    """List the machines under `root` at noise level `snr`, sorted by type then ID.

    Parameters
    ----------
    root : path
        Data root holding ``{snr}_dB_{type}`` folders.
    snr : float
        Noise level in dB (-6, 0, 6 in MIMII).
    types, ids : iterables of str, optional
        Keep only these machine types / IDs; each one asked for must exist.

    Raises
    ------
    DataError
        Missing root, no machine at that SNR, or an asked-for type / ID not found.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root not found: {root} (generate one with `python -m common synth --root {root}`)")
    machines = []
    for snr_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        parsed = parse_snr_folder(snr_dir.name)
        if not parsed or parsed[0] != float(snr):
            continue
        type_dir = snr_dir / parsed[1]
        if not type_dir.is_dir():
            continue
        for id_dir in sorted(p for p in type_dir.iterdir() if p.is_dir() and (p / "normal").is_dir()):
            machines.append(Machine(parsed[1], id_dir.name, id_dir))
    if not machines:
        _refuse_dcase(root)
        raise DataError(
            f"no machines at snr={snr:g} dB under {root}: expected folders like "
            f"{root / f'{snr:g}_dB_fan' / 'fan' / 'id_00' / 'normal'}"
        )
    machines = _keep(machines, "type", types, root)
    return _keep(machines, "id", ids, root)


def _refuse_dcase(root: Path) -> None:
    """A DataError naming the layout when `root` holds a DCASE Task 2 data set (read elsewhere, or not yet)."""
    from .dcase_layout import detect_layout

    layout = detect_layout(root, default="mimii")  # mixed layouts: its error, which names each layout's folders
    if layout != "mimii":
        raise DataError(
            f"{root} holds a DCASE Task 2 data set ({layout} layout), not the MIMII layout read here: the v1-v4 "
            f"grid reads it with data.layout auto or {layout}; the demo makes its own data"
        )


def _keep(machines: list[Machine], attr: str, wanted: Iterable[str] | None, root: Path) -> list[Machine]:
    if wanted is None:
        return machines
    wanted = list(wanted)
    found = {getattr(m, attr) for m in machines}
    missing = [w for w in wanted if w not in found]
    if missing:
        raise DataError(f"machine {attr}(s) {missing} not found under {root}; found: {sorted(found)}")
    return [m for m in machines if getattr(m, attr) in wanted]


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


def ignored_files(machine: Machine) -> list[Path]:
    """Files of `machine` named like clips that `is_clip` leaves out (normal, then abnormal)."""
    return [p for label in ("normal", "abnormal") for p in list_folder_clips(machine.path / label)[1]]


def all_clips(machine: Machine) -> tuple[list[Path], list[Path]]:
    """Normal and abnormal clips of `machine` (`is_clip`: ``*.wav`` in any case), each sorted by name (either may be empty)."""
    return list_folder_clips(machine.path / "normal")[0], list_folder_clips(machine.path / "abnormal")[0]


def list_clips(machine: Machine, *, exclude: Collection[str | Path] = ()) -> tuple[list[Path], list[Path]]:
    """Normal and abnormal WAV files of `machine`, each sorted by name, without those in `exclude`.

    Parameters
    ----------
    machine : Machine
    exclude : collection of paths
        Files to leave out (e.g. the bad files skipped under ``data.on_bad_file: skip``).

    Raises
    ------
    DataError
        No normal clips, or no abnormal clips (evaluation needs both classes).
    """
    left_out = {str(p) for p in exclude}
    normal, abnormal = ([p for p in clips if str(p) not in left_out] for clips in all_clips(machine))
    why = f" ({len(left_out)} bad file(s) skipped)" if left_out else ""
    if not normal:
        raise DataError(f"no normal clips (*.wav) in {machine.path / 'normal'}{why}")
    if not abnormal:
        raise DataError(
            f"machine {machine.name} has no abnormal clips in {machine.path / 'abnormal'}{why}: "
            "evaluation needs both normal and abnormal clips"
        )
    return normal, abnormal


def split_machine(
    machine: Machine, *, method: str = "mimii", seed: int = 0, exclude: Collection[str | Path] = ()
) -> Split:
    """Split a machine into a normal training pool and an evaluation set.

    ``method="mimii"`` is the MIMII baseline's split: with N abnormal clips, the first N normal
    clips (by name) and all abnormal clips are evaluated; the other normal clips are the pool.
    ``method="random"`` draws the N evaluation normals with a seeded permutation instead.
    Files in `exclude` are left out before splitting, so the split is that of the good files.
    """
    normal, abnormal = list_clips(machine, exclude=exclude)
    n_eval = len(abnormal)
    if len(normal) <= n_eval:
        raise DataError(
            f"machine {machine.name} has {len(normal)} normal and {n_eval} abnormal clips: "
            "the split needs more normal clips than abnormal ones to leave a training pool"
        )
    if method == "mimii":
        eval_normal, train = normal[:n_eval], normal[n_eval:]
    elif method == "random":
        order = np.random.default_rng(seed).permutation(len(normal))
        eval_normal = sorted(normal[i] for i in order[:n_eval])
        train = sorted(normal[i] for i in order[n_eval:])
    else:
        raise DataError(f"split method={method!r} must be 'mimii' or 'random'")
    labels = np.concatenate([np.zeros(n_eval, dtype=int), np.ones(n_eval, dtype=int)])
    return Split(machine, tuple(train), tuple(eval_normal + abnormal), labels)


def budget_clips(split: Split, budget: int | str, *, seed: int) -> tuple[Path, ...]:
    """A cell's training clips: ``"all"`` = the whole training pool, N = `budget_subset` of the budget pool.

    On MIMII and DCASE 2020 both are the training pool. On DCASE 2021-2025 N clips come from the target
    domain's few training clips (the new condition), while ``"all"`` is the challenge's training set of the
    section (source and target), as its baselines train, so an ``"all"`` row compares with published tables.
    """
    return budget_subset(split.train if budget == "all" else split.budget_pool, budget, seed=seed)


def budget_subset(train: Sequence[Path], budget: int | str, *, seed: int) -> tuple[Path, ...]:
    """The first `budget` clips of a seeded permutation of the pool (``"all"`` keeps every clip).

    Subsets of one seed are nested: a smaller budget is a prefix of a larger one.
    """
    if budget == "all":
        return tuple(train)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise DataError(f"budget={budget!r} must be a positive clip count or 'all'")
    if budget > len(train):
        raise DataError(f"budget={budget} exceeds the {len(train)} training clips available")
    order = np.random.default_rng(seed).permutation(len(train))[:budget]
    return tuple(train[i] for i in sorted(order))
