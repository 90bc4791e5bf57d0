"""Find machines in a MIMII-layout root, list their clips, and split them into train / evaluation.

Layout: ``ROOT/-6_dB_fan/fan/id_00/{normal,abnormal}/*.wav`` (``-6dB_fan`` is accepted too).
Labels: normal = 0, anomaly = 1. Evaluation clips never enter any training or pretraining data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Collection, Iterable, Iterator, Sequence

import numpy as np

from common.data.dcase import dcase_layouts_under
from common.errors import DataError
from common.data.names import parse_snr_folder
from common.data.machines import Machine, Split, is_clip, list_folder_clips, looks_like_clip, one_layout  # noqa: F401


def mimii_folders(root: str | Path) -> list[str]:
    """The folders of `root` in the MIMII layout (``-6_dB_fan`` holding ``fan/``), sorted: how it is detected."""
    found = []
    for folder in sorted(p for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith(".")):
        parsed = parse_snr_folder(folder.name)
        if parsed and (folder / parsed[1]).is_dir():
            found.append(folder.name)
    return found


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
    """A DataError naming the layout when `root` holds a DCASE Task 2 data set (`common.data.dcase` reads it)."""
    found = dcase_layouts_under(root)
    mimii = {"mimii": names} if (names := mimii_folders(root)) else {}
    one_layout(root, {**found, **mimii})  # mixed layouts: its error, which names each layout's folders
    if found:
        layout = next(iter(found))
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


def mimii_inventory(root: str | Path, *, snr: float = -6) -> Iterator[tuple[Machine, list[Path], dict[str, int]]]:
    """Each machine at `snr` with its normal and abnormal clips (`all_clips`) and how many of each."""
    for machine in find_machines(root, snr=snr):
        normal, abnormal = all_clips(machine)
        yield machine, normal + abnormal, {"normal": len(normal), "abnormal": len(abnormal)}


def mimii_clips(machine: Machine) -> list[Path]:
    """Every clip of `machine`: its normal, then its abnormal clips."""
    normal, abnormal = all_clips(machine)
    return normal + abnormal


def ignored_under(root: str | Path, *, snr: float = -6) -> list[Path]:
    """Files of the machines at `snr` under `root` named like clips that `is_clip` leaves out."""
    return [p for machine in find_machines(root, snr=snr) for p in ignored_files(machine)]


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
