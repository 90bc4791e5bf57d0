"""Download the DCASE Challenge Task 2 development data sets (2020-2025) from Zenodo, resumable and verified.

Each year's development set is one zip per machine type in one Zenodo record (:data:`DEV_SETS`).
:func:`download_dcase` fetches the zips of a year into the layout the official baselines read,
one data root per year::

    ROOT/ToyCar/train/normal_id_01_00000000.wav                         (2020)
    ROOT/ToyCar/test/{normal,anomaly}_id_01_00000000.wav
    ROOT/fan/train/section_00_{source,target}_train_normal_0000_*.wav   (2021-2025)
    ROOT/fan/test/section_00_{source,target}_test_{normal,anomaly}_0000_*.wav   (2021: source_test/, target_test/)
    ROOT/fan/attributes_00.csv                                          (2022-2025)

Nothing is renamed: a type folder holds what its zip holds, so the 2021 test clips stay in ``source_test/``
and ``target_test/`` as y-kawagu/dcase2021_task2_baseline_ae README.md shows them (`dcase_layout` reads
both). The steps are those of `download` (shared, not copied): the record's file list with size and MD5
read at download time (no checksum is stored here), a free-space check, a resumable download to
``ROOT/.downloads``, the MD5 check, and an atomic extraction that writes the completion marker last; a
machine type whose folder carries that marker for the same record and zip is skipped.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from common.data.dcase import is_labelled_name, layout_of_year, shown_names, test_folders
from common.data.download_mimii import ZENODO_URL, download_zips, extract_zip, is_complete
from common.errors import DownloadError

__all__ = ["DevSet", "DEV_SETS", "dev_set", "dev_types", "extract_dcase_zip", "download_dcase"]

_SECTION_TYPES = ("bearing", "fan", "gearbox", "slider", "ToyCar", "ToyTrain", "valve")


@dataclass(frozen=True)
class DevSet:
    """Where one year's development set is published and what its zips hold.

    Attributes
    ----------
    record : int
        Zenodo record id.
    archive : str
        Zip name in the record; ``{type}`` stands for the machine type, e.g. ``"dev_{type}.zip"``.
    types : tuple of str
        The year's machine types, spelt as the zips' folders are.
    year : int
        The DCASE year (one of `common.data.dcase.YEARS`); how its clips are named and where its test clips
        lie follow from it (`layout`, `test_folders`).
    """

    record: int
    archive: str
    types: tuple[str, ...]
    year: int

    @property
    def layout(self) -> str:
        """How clips are named: ``"dcase2020"`` or ``"dcase2021"`` (2021-2025), `common.data.dcase`'s names."""
        return layout_of_year(self.year)

    @property
    def test_folders(self) -> tuple[str, ...]:
        """Where the test clips lie in a type folder: ``("test",)``, or 2021's ``("source_test", "target_test")``."""
        return test_folders(self.year)


DEV_SETS: dict[int, DevSet] = {
    # https://github.com/y-kawagu/dcase2020_task2_baseline README.md: "Download dev_data_<Machine_Type>.zip from
    # https://zenodo.org/record/3678171"; types from nttcslab/dcase2023_task2_baseline_ae tools/data_download_2020.sh
    2020: DevSet(3678171, "dev_data_{type}.zip", ("ToyCar", "ToyConveyor", "fan", "pump", "slider", "valve"), 2020),
    # https://github.com/y-kawagu/dcase2021_task2_baseline_ae README.md (folders); nttcslab/dcase2023_task2_baseline_ae
    # README_legacy.md and tools/data_download_2021.sh ("https://zenodo.org/record/4562016/files/dev_data_${t}.zip")
    2021: DevSet(4562016, "dev_data_{type}.zip", ("fan", "gearbox", "pump", "slider", "ToyCar", "ToyTrain", "valve"),
                 2021),
    # https://github.com/Kota-Dohi/dcase2022_task2_baseline_ae README.md (https://zenodo.org/record/6355122). From
    # 2022 on the READMEs write "dev_data_<machine_type>.zip" but the scripts that fetch the zips use dev_<type>.zip:
    # nttcslab/dcase2023_task2_baseline_ae tools/data_download_2022.sh (".../record/6355122/files/dev_${t}.zip")
    2022: DevSet(6355122, "dev_{type}.zip", _SECTION_TYPES, 2022),
    # nttcslab/dcase2023_task2_baseline_ae README.md: https://zenodo.org/record/7882613 ("Updated on 2023/05/01",
    # fixed attributes; replaces 7690148 and 7690157) and tools/data_download_2023.sh (".../7882613/files/dev_${t}.zip")
    2023: DevSet(7882613, "dev_{type}.zip", _SECTION_TYPES, 2023),
    # nttcslab/dcase2023_task2_baseline_ae README.md: https://zenodo.org/records/10902294; data_download_2024dev.sh
    2024: DevSet(10902294, "dev_{type}.zip", _SECTION_TYPES, 2024),
    # nttcslab/dcase2023_task2_baseline_ae README.md: https://zenodo.org/records/15097779; data_download_2025dev.sh
    2025: DevSet(15097779, "dev_{type}.zip", _SECTION_TYPES, 2025),
}


def dev_set(year: int | str) -> DevSet:
    """The :class:`DevSet` of a DCASE year; DownloadError naming the years there are for anything else."""
    text = str(year).strip() if isinstance(year, (int, str)) and not isinstance(year, bool) else ""
    if not text.isdigit() or int(text) not in DEV_SETS:
        raise DownloadError(f"year={year!r} has no DCASE Task 2 development set here; choose one of {sorted(DEV_SETS)}")
    return DEV_SETS[int(text)]


def dev_types(year: int | str, types: Iterable[str] | None = None) -> list[str]:
    """The machine types of `year` asked for, spelt as the year spells them (all of them when `types` is None).

    Names are matched ignoring case (``toycar`` -> ``ToyCar``); duplicates are dropped.

    Raises
    ------
    DownloadError
        Unknown year, no type asked for, or a type the year does not have (the message lists the year's types).
    """
    spec = dev_set(year)
    if types is None:
        return list(spec.types)
    known = {t.lower(): t for t in spec.types}
    out: list[str] = []
    for t in [types] if isinstance(types, str) else list(types):
        name = known.get(t.lower()) if isinstance(t, str) else None
        if name is None:
            raise DownloadError(f"machine type {t!r} is not in the DCASE {year} development set; "
                                f"it has {list(spec.types)}")
        if name not in out:
            out.append(name)
    if not out:
        raise DownloadError(f"types={types!r} must name at least one machine type of DCASE {year}, "
                            f"e.g. {spec.types[0]!r}")
    return out


def extract_dcase_zip(zip_path: str | os.PathLike, root: str | os.PathLike, *, year: int | str, machine_type: str,
                      marker: dict[str, Any] | None = None, progress: bool = False) -> Path:
    """Extract one development zip of `year` to ``root/{machine_type}/``, atomically.

    The zip's files must all lie under ``{machine_type}/`` (as the official zips have it) or under
    ``{zip stem}/{machine_type}/``, with at least one clip in ``train/`` and one in a test folder
    (:attr:`DevSet.test_folders`) named as the year's layout says. Every file is written where the
    zip has it under the type folder (``attributes_00.csv``, 2025's ``supplemental/``, ...).

    Parameters
    ----------
    zip_path : path
        e.g. ``.downloads/dev_fan.zip``.
    root : path
        The year's data root; created if missing.
    year : int
        2020-2025.
    machine_type : str
        One of the year's types, e.g. ``"fan"``.
    marker : dict, optional
        Extra fields for the completion marker; the year and type are added.
    progress : bool
        Show a progress bar over the files.

    Returns
    -------
    folder : pathlib.Path
        ``root/{machine_type}``.

    Raises
    ------
    DownloadError
        Unknown year or type, a zip in another layout ("unexpected contents", listing a few entries),
        an entry outside its folder, a corrupt zip, too little space, or the folder already exists.
    """
    spec = dev_set(year)
    machine_type = dev_types(year, [machine_type])[0]
    zip_path = Path(zip_path)

    def plan(files: list[zipfile.ZipInfo]) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
        return _plan(files, zip_path=zip_path, spec=spec, year=int(year), machine_type=machine_type)

    marker = {**(marker or {}), "year": int(year), "type": machine_type}
    return extract_zip(zip_path, Path(root) / machine_type, plan=plan, marker=marker, progress=progress)


def download_dcase(root: str | os.PathLike, *, year: int | str, types: Iterable[str] | None = None,
                   record_id: int | str | None = None, base_url: str = ZENODO_URL, keep_zip: bool = False,
                   progress: bool = True, timeout: float = 60.0) -> list[Path]:
    """Download, verify and extract the DCASE Task 2 development set of `year` into `root`.

    A machine type whose folder carries the completion marker of the same record and zip is
    skipped without touching the network. Sizes and MD5s come from the Zenodo record's metadata at
    download time; the free disk space for everything left is checked before anything is fetched.

    Parameters
    ----------
    root : path
        The year's data root (one root per year: 2020 and 2021 have types of the same name), e.g.
        ``data/dcase2023t2_dev``; ends up holding ``{type}/train/...`` and ``{type}/test/...``.
    year : int
        2020-2025 (:data:`DEV_SETS`).
    types : iterable of str, optional
        Machine types, e.g. ``("fan", "ToyCar")``; default: all of the year's.
    record_id : int or str, optional
        Another Zenodo record with the same zips (default: the year's, from :data:`DEV_SETS`).
    base_url, keep_zip, progress, timeout
        As for :func:`common.data.download_mimii.download_mimii` (`keep_zip` keeps ``root/.downloads/*.zip``).

    Returns
    -------
    folders : list of pathlib.Path
        ``root/{type}`` for every type asked for, downloaded now or before.

    Raises
    ------
    DownloadError
        Unknown year or type, network failure (running again resumes), a zip missing from the record
        or without an MD5, a checksum mismatch (the file is moved to ``.bad``), a zip with unexpected
        contents, too little disk space, or a type folder that exists without this tool's marker.

    Examples
    --------
    >>> download_dcase("data/dcase2023t2_dev", year=2023, types=("fan",))  # doctest: +SKIP
    [PosixPath('data/dcase2023t2_dev/fan')]
    """
    spec, root, types = dev_set(year), Path(root), dev_types(year, types)
    record = spec.record if record_id is None else record_id
    keys = {t: spec.archive.format(type=t) for t in types}
    pending = {t: key for t, key in keys.items()
               if not is_complete(root / t, record_id=record, key=key, command="download-dcase")}

    def extract(t: str, zip_path: Path, marker: dict[str, Any]) -> Path:
        return extract_dcase_zip(zip_path, root, year=year, machine_type=t, marker=marker, progress=progress)

    if pending:
        download_zips(root, pending, extract=extract, record_id=record, asked=f"DCASE year={int(year)}",
                      base_url=base_url, keep_zip=keep_zip, progress=progress, timeout=timeout)
    return [root / t for t in types]


def _plan(files: list[zipfile.ZipInfo], *, zip_path: Path, spec: DevSet, year: int,
          machine_type: str) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    """Each zip file with its path under ``root/{machine_type}``; raise unless the zip is in the year's layout."""
    stem = zip_path.name.removesuffix(".zip")
    prefixes = (f"{machine_type}/", f"{stem}/{machine_type}/")
    strip = next((len(p) for p in prefixes
                  if files and all(i.filename.lower().startswith(p.lower()) for i in files)), None)
    if strip is None:
        odd = [i.filename for i in files if not i.filename.lower().startswith(prefixes[0].lower())]
        raise DownloadError(f"{zip_path} has unexpected contents: expected every file under {machine_type}/ "
                            f"(or {stem}/{machine_type}/), found e.g. {odd[:5]} among {len(files)} files")
    members = [(info, PurePosixPath(info.filename[strip:])) for info in files]
    folders = {"train": ("train",), "test": spec.test_folders}
    # at least one labelled training and test clip named as the year's layout says (`common.data.dcase`)
    missing = [f"{machine_type}/{'|'.join(folders[split])}/{shown_names(spec.layout, split)}"
               for split in folders
               if not any(len(rel.parts) == 2 and rel.parts[0] in folders[split]
                          and is_labelled_name(rel.name, spec.layout, split) for _, rel in members)]
    if missing:
        raise DownloadError(f"{zip_path} has unexpected contents for the DCASE {year} layout: no "
                            f"{' and no '.join(missing)}; found e.g. {sorted(i.filename for i in files)[:5]} "
                            f"among {len(files)} files")
    return members
