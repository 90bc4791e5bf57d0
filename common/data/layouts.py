"""The data-set layouts in one table: how each is detected, and how its machines, clips and splits are read.

A layout is a way a data root is organised on disk. Each row of `LAYOUTS` names the functions of the module
that reads it (`common.data.mimii` for MIMII, `common.data.dcase` for the DCASE Task 2 schemes) and its facts;
every caller (`common.data.dataset`, `common.data.check`, `common.experiment.grid`, the CLI) looks a layout up here instead
of branching on its name.

``mimii``      ``ROOT/-6_dB_fan/fan/id_00/{normal,abnormal}/*.wav``; split by ``data.split``.
``dcase2020``  ``ROOT/ToyCar/{train,test}/{normal,anomaly}_id_01_00000000.wav``; split as given.
``dcase2021``  2021-2025: ``ROOT/fan/train/section_00_source_train_normal_0000_<attributes>.wav`` and test
               clips in ``test/`` (2021: ``source_test/``, ``target_test/``); split as given.

Adding a layout: a module that reads it (machines, clips, split, detection), and one `Layout` row here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Collection, Iterator

from common.data import dcase, mimii
from common.errors import DataError
from common.data.machines import Machine, Split, one_layout

AUTO = "auto"  # data.layout: detected from the root (`detect_layout`)
Inventory = Iterator[tuple[Machine, list[Path], dict[str, int]]]  # (machine, its clips, clip counts) for check-data


@dataclass(frozen=True)
class Layout:
    """One data-set layout: how a root in it is recognised, and how its machines, clips and splits are read."""

    detect: Callable[[Path], list[str]]  # root -> the folders of it in this layout ([]: none)
    example: str  # a clip's path under a root in this layout, for messages
    machines: Callable[..., list[Machine]]  # (root, *, snr, types, ids) -> the machines found, sorted
    clips: Callable[[Machine], list[Path]]  # every clip of a machine to check, before any is left out
    ignored: Callable[[Machine], list[Path]]  # a machine's files named like clips that are not clips
    ignored_under: Callable[..., list[Path]]  # (root, *, snr) -> every such file under the root's machines
    split: Callable[..., Split]  # (machine, *, exclude, method, seed) -> train / evaluation split of good clips
    inventory: Callable[..., Inventory]  # (root, *, snr) -> check-data's view of each machine
    official_year: Callable[[Machine], int | None]  # the DCASE year whose official score fits (None: no score)


def _mimii_machines(root: str | os.PathLike, *, snr: float = -6, types=None, ids=None) -> list[Machine]:
    """MIMII machines at `snr` (`common.data.mimii.find_machines`)."""
    return mimii.find_machines(root, snr=snr, types=types, ids=ids)


def _mimii_split(machine: Machine, *, exclude: Collection[str | Path] = (), method: str = "mimii",
                 seed: int = 0) -> Split:
    """A MIMII machine's split by `method` (``data.split``) and `seed` (``data.split_seed``)."""
    return mimii.split_machine(machine, method=method, seed=seed, exclude=exclude)


def _no_official_year(machine: Machine) -> None:
    """No official score: the layout belongs to no DCASE year."""
    return None


def _dcase_machines(root: str | os.PathLike, *, layout: str, snr: float = -6, types=None, ids=None) -> list[Machine]:
    """The machines of a DCASE root in `layout`; `ids` are IDs or sections, `snr` does not apply (one level)."""
    return dcase.find_dcase_machines(root, layout, types=types, sections=ids)


def _dcase_split(machine: Machine, *, exclude: Collection[str | Path] = (), method: str = "mimii",
                 seed: int = 0) -> Split:
    """A DCASE machine's given split (`method` and `seed` do not apply: the data set fixes it)."""
    return dcase.split_dcase_machine(machine, exclude=exclude)


def _dcase_ignored_under(root: str | os.PathLike, *, layout: str, snr: float = -6) -> list[Path]:
    """Hidden clips in every split folder of a DCASE root (`snr` does not apply)."""
    return dcase.ignored_under(root, layout)


def _dcase_inventory(root: str | os.PathLike, *, layout: str, snr: float = -6) -> Inventory:
    """check-data's view of each machine of a DCASE root (`snr` does not apply)."""
    return dcase.dcase_inventory(root, layout)


def _dcase(layout: str, example: str, official_year: Callable[[Machine], int]) -> Layout:
    """The row of DCASE naming scheme `layout`: `common.data.dcase`'s functions over its names."""
    return Layout(
        detect=partial(dcase.dcase_folders, layout=layout), example=example,
        machines=partial(_dcase_machines, layout=layout), clips=dcase.dcase_given_clips,
        ignored=dcase.ignored_dcase_files, ignored_under=partial(_dcase_ignored_under, layout=layout),
        split=_dcase_split, inventory=partial(_dcase_inventory, layout=layout), official_year=official_year,
    )


LAYOUTS: dict[str, Layout] = {
    "mimii": Layout(
        detect=mimii.mimii_folders, example="-6_dB_fan/fan/id_00/normal/00000000.wav",
        machines=_mimii_machines, clips=mimii.mimii_clips, ignored=mimii.ignored_files,
        ignored_under=mimii.ignored_under, split=_mimii_split, inventory=mimii.mimii_inventory,
        official_year=_no_official_year,
    ),
    "dcase2020": _dcase("dcase2020", "ToyCar/train/normal_id_00_00000000.wav", dcase.official_year_2020),
    # 2021-2025: one naming scheme; `official_year` tells 2021 (test clips by domain) from 2022-2025
    "dcase2021": _dcase("dcase2021", "fan/train/section_00_source_train_normal_0000_<attributes>.wav",
                        dcase.official_year_of_sections),
}
DATA_LAYOUTS: tuple[str, ...] = (AUTO, *LAYOUTS)  # the values of data.layout


def check_layout(layout: str) -> str:
    """`layout` if it is a row of `LAYOUTS` ('mimii', 'dcase2020', 'dcase2021'); DataError otherwise."""
    if layout not in LAYOUTS:
        raise DataError(f"layout={layout!r} must be one of {list(LAYOUTS)} (dcase2021 reads 2021-2025)")
    return layout


def detect_layout(root: str | os.PathLike, *, default: str | None = None) -> str:
    """The layout of data root `root` (a row of `LAYOUTS`), from its folders and clip names.

    Parameters
    ----------
    root : str or Path
    default : str or None
        Returned, instead of an error, for a missing root or one whose layout is not recognised (a
        caller that reads such a root as MIMII, whose reader then says what it expected). Mixed
        layouts are an error whatever `default` is.

    Raises
    ------
    DataError
        Layouts mixed (folders of two layouts, or one type folder with names of both DCASE schemes): the
        message lists each layout's folders. Without `default`: also a missing root, or nothing recognised.
    """
    if default is not None and not Path(root).is_dir():
        return default
    if not Path(root).is_dir():
        raise DataError(f"data root not found: {root}")
    found = {name: folders for name, layout in LAYOUTS.items() if (folders := layout.detect(Path(root)))}
    name = one_layout(root, found)
    if name is not None:
        return name
    if default is not None:
        return default
    expected = ", ".join(f"{Path(root) / layout.example} ({name})" for name, layout in LAYOUTS.items())
    raise DataError(f"no data layout recognised under {root}: expected clips like {expected}")


def resolve_layout(root: str | os.PathLike, layout: str = AUTO) -> str:
    """`layout` checked, or for ``"auto"`` the one `detect_layout` finds.

    A missing root, or one whose layout is not recognised, is read as MIMII, so `common.data.mimii.find_machines`
    names what is wrong with it as it always has; mixed layouts are `detect_layout`'s DataError.
    """
    if layout != AUTO:
        return check_layout(layout)
    return detect_layout(root, default="mimii")


def official_year(machine: Machine, layout: str) -> int | None:
    """The DCASE year whose official score formula fits `machine`'s data (`common.scoring.official.FORMULAS`).

    None on MIMII; 2020; 2021 when the type keeps its test clips in ``source_test/`` / ``target_test/``;
    otherwise 2022, whose formula 2023-2025 share (they differ in data, not in the score).
    """
    return LAYOUTS[check_layout(layout)].official_year(machine)
