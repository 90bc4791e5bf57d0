"""The synthetic machines in the DCASE Task 2 layouts (2020, 2021, 2022-2025), with a target domain.

The layouts, as the official baselines describe the development sets (``y-kawagu/dcase2020_task2_baseline``
README; ``y-kawagu/dcase2021_task2_baseline_ae`` README; ``nttcslab/dcase2023_task2_baseline_ae`` README.md and
README_legacy.md, "Directory structure of downloaded dataset")::

    2020       ROOT/fan/train/normal_id_00_00000000.wav
               ROOT/fan/test/{normal,anomaly}_id_00_00000000.wav
    2021       ROOT/fan/train/section_00_{source,target}_train_normal_0000_spd_100.wav
               ROOT/fan/source_test/section_00_source_test_{normal,anomaly}_0000.wav
               ROOT/fan/target_test/section_00_target_test_{normal,anomaly}_0000.wav
    2022-2025  ROOT/fan/train/section_00_{source,target}_train_normal_0000_spd_100.wav
               ROOT/fan/test/section_00_{source,target}_test_{normal,anomaly}_0000_spd_100.wav
               ROOT/fan/attributes_00.csv      file_name,d1p,d1v   e.g. fan/train/section_00_..._spd_100.wav,spd,100

2021 is written as its development set has it: attributes in training names only (real ones read
``..._0000_strength_1_ambient``), test clips split by domain into ``source_test/`` and ``target_test/``, no
attribute CSV; `common.data.layouts.official_year` tells it from 2022+ by those folders. From 2022 every name
ends in its attributes, and one attribute CSV per section lists each clip of the section (train and test) as
``<type>/<split>/<name>`` with its attribute name (``d1p``) and value (``d1v``): the columns and path form of the
real files (read as such by ``soundata/soundata`` ``soundata/datasets/dcase23_task2.py``). From 2023
("first-shot") a machine type has a single section, section 00, so those years refuse other sections.

Units. A type's four parameter rows (`params`, in `MACHINE_IDS` order) are its four units. Unit k is
``MACHINE_IDS[k]`` in 2020 (id_00, id_02, id_04, id_06: MIMII's IDs, which DCASE 2020 kept for fan, pump, slider
and valve) and ``section_0k`` from 2021. A machine is (type, ID) or (type, section).

Domain shift. The target domain runs the same unit at another speed, an operating condition its sound model
already has (`SPEED_FIELDS`): a fan's or pump's shaft rotation (its blade- or vane-pass and pulsation harmonics
move with it), a slide rail's motor and travel cycle, a valve's open/close schedule. The attribute ``spd`` is
that speed in percent of the unit's nominal one (`SPEED_PERCENT`: source 100, target 125). Faults, levels,
background and SNR are drawn as `dataset` draws them; only the speed differs. How visible that is, measured
(unit 0, seed 0, -6 dB, 4 s clips; a Ledoit-Wolf Gaussian of per-clip log-mel mean and std, 64 mels, fitted on
40 source clips): its AUC of 15 target against 15 source normal test clips is 0.96 (fan), 1.00 (pump),
1.00 (slider), 0.45 (valve). A valve's faster cycle shows in its timing (tests/test_synth_dcase.py measures it
in every clip) but not in log-mel statistics.

Each clip is seeded from ``(seed, type, unit, domain, split, label, index)`` alone: a 2020 clip is the
source-domain clip of the same unit, split, label and index of a 2021+ set with the same seed, and a 2021 clip
is the 2022+ clip of the same unit, domain, split, label and index (only its folder and name differ).
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import soundfile as sf
from tqdm import tqdm

from common.data.dcase import (ANOMALY, DOMAINS_FROM, FIRST_SHOT_YEAR, NAMED_TEST_FROM, NORMAL, SPLIT_FOLDERS, YEARS,
                            check_year, clip_folder, index_digits)
from common.data.dcase import clip_name as dcase_clip_name
from common.errors import DataError
from common.io import atomic_write, atomic_write_text
from common.data.names import LABELS, MACHINE_IDS, MACHINE_TYPES, check_snr
from common.data.synth.dataset import (
    _check_int, _check_names, _check_no_strays, _check_not_written, _check_positive, _ClipJob, _n_samples, _rendered,
    _stable_code, _write_all, mix_clip,
)
from common.data.synth.machines import _MODELS, at_speed
from common.data.synth.params import SPEED_FIELDS

SR = 16000  # every DCASE Task 2 set is 16 kHz
ATTRIBUTE = "spd"  # d1p of every clip: the unit's speed in percent of nominal
SPEED_PERCENT: dict[str, int] = {"source": 100, "target": 125}
_FILE_LABEL: dict[str, int] = {"normal": NORMAL, "abnormal": ANOMALY}  # LABELS -> the label a DCASE name says
_DEFAULT_TARGET = 10  # target-domain training clips per section, as in the 2022-2025 development sets


@dataclass(frozen=True)
class _DcaseClip:
    """One clip of a DCASE-layout set: where it goes and everything that determines its samples."""

    path: Path
    machine_type: str
    unit: int  # row of the type's parameter table: id_00, id_02, ... (2020) or section_00, _01, ...
    domain: str  # "source" or "target"
    split: str  # "train" or "test"
    label: str  # "normal" or "abnormal" (LABELS); the file name says "anomaly"
    index: int
    seed: int
    seconds: float
    channels: int
    snr: float


def clip_name(year: int, *, unit: int, domain: str, split: str, label: str, index: int) -> str:
    """The file name DCASE `year` gives a synthetic clip, e.g. ``section_00_target_test_anomaly_0003_spd_125.wav``.

    Unit k is ``MACHINE_IDS[k]`` in 2020 and ``section_0k`` afterwards; `label` is one of `LABELS`; the
    attribute is the domain's speed. The name rule itself is `common.data.dcase.clip_name` (only
    ``domain="source"`` exists in 2020; 2021 test names end at the number).
    """
    machine_id = MACHINE_IDS[unit] if year < DOMAINS_FROM else f"section_{unit:02d}"
    return dcase_clip_name(year, machine_id=machine_id, domain=domain, split=split, label=_FILE_LABEL[label],
                           index=index, attributes=f"{ATTRIBUTE}_{SPEED_PERCENT[domain]}")


def _render(clip: _DcaseClip) -> np.ndarray:
    """16-bit samples [shape=(n, channels)] of one clip: `dataset._rendered` for a unit at its domain's speed.

    The fault and severity follow the unit's MIMII ID as in `dataset`; the clip seed is this layout's.
    """
    job = _ClipJob(None, clip.machine_type, MACHINE_IDS[clip.unit], clip.label, clip.index, clip.seed,
                   clip.seconds, SR, clip.channels, clip.snr)
    params = at_speed(clip.machine_type, _MODELS[clip.machine_type].params[job.machine_id], SPEED_PERCENT[clip.domain])
    clip_rng = np.random.default_rng([
        clip.seed, _stable_code(clip.machine_type), clip.unit, _stable_code(clip.domain), _stable_code(clip.split),
        LABELS.index(clip.label), clip.index,
    ])
    return mix_clip(*_rendered(job, params, clip_rng))


def _write_clip(clip: _DcaseClip) -> Path:
    """Make one clip and write it atomically (the temp name does not end in .wav: the format is given)."""
    data = _render(clip)
    return atomic_write(clip.path, lambda tmp: sf.write(tmp, data, SR, subtype="PCM_16", format="WAV"))


def _attributes_csv(clips: Iterable[_DcaseClip], *, root: Path) -> str:
    """The text of one section's attribute file: ``file_name,d1p,d1v`` and a row per clip, sorted by file name."""
    rows = sorted((c.path.relative_to(root).as_posix(), ATTRIBUTE, str(SPEED_PERCENT[c.domain])) for c in clips)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("file_name", "d1p", "d1v"))
    writer.writerows(rows)
    return out.getvalue()


@dataclass(frozen=True)
class _Request:
    """`generate_dcase_dataset`'s arguments, checked and converted."""

    root: Path
    year: int
    types: tuple[str, ...]
    sections: tuple[int, ...]
    counts: dict[tuple[str, str, str], int]  # (domain, split, label) -> clips per machine
    seconds: float
    channels: int
    seed: int
    snr: float
    jobs: int


def _check_sections(sections: object, year: int) -> tuple[int, ...]:
    """Distinct unit numbers 0-3, in the order given; only section 0 for the first-shot years."""
    if isinstance(sections, (int, np.integer)) and not isinstance(sections, bool):
        sections = (sections,)
    try:
        values = tuple(sections)  # type: ignore[arg-type]
    except TypeError:
        raise DataError(f"sections={sections!r} must be a sequence of integers 0-{len(MACHINE_IDS) - 1}") from None
    units = range(len(MACHINE_IDS))
    if not values or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v not in units for v in values):
        raise DataError(f"sections={sections!r} must be a non-empty selection of the integers 0-{len(MACHINE_IDS) - 1}")
    if year >= FIRST_SHOT_YEAR and tuple(values) != (0,):
        raise DataError(f"sections={sections!r}: DCASE {year} (first-shot) has one section per machine type, (0,)")
    return tuple(dict.fromkeys(int(v) for v in values))


def _counts(year: int, n_source: object, n_target: object, n_test: object) -> dict[tuple[str, str, str], int]:
    """Clips per machine for each (domain, split, label) the layout of `year` has."""
    digits = index_digits(year)  # clips are numbered from 0 in names with this many digits
    n_source = _check_int(n_source, "n_source", minimum=1)
    if n_target is None:
        n_target = 0 if year < DOMAINS_FROM else _DEFAULT_TARGET
    n_target = _check_int(n_target, "n_target", minimum=0 if year < DOMAINS_FROM else 1)
    if year < DOMAINS_FROM and n_target:
        raise DataError(f"n_target={n_target!r}: DCASE 2020 has no target domain; pass 0 or None")
    n_test = _check_int(n_test, "n_test", minimum=1)
    for name, value in (("n_source", n_source), ("n_target", n_target), ("n_test", n_test)):
        if value > 10**digits:
            raise DataError(f"{name}={value}: more clips than the {digits}-digit numbers of DCASE {year} names hold")
    domains = ("source",) if year < DOMAINS_FROM else ("source", "target")
    counts = {("source", "train", "normal"): n_source}
    if n_target:
        counts[("target", "train", "normal")] = n_target
    counts.update({(domain, "test", label): n_test for domain in domains for label in LABELS})
    return counts


def _request(
    root: object, *, year: object, types: object, sections: object, n_source: object, n_target: object,
    n_test: object, seconds: object, channels: object, seed: object, snr: object, jobs: object,
) -> _Request:
    """Check `generate_dcase_dataset`'s arguments in the order they are documented (the first bad one is named)."""
    year = check_year(year)
    types = _check_names(types, "types", MACHINE_TYPES)
    sections = _check_sections(sections, year)
    counts = _counts(year, n_source, n_target, n_test)
    seconds = _check_positive(seconds, "seconds")
    channels = _check_int(channels, "channels", minimum=1)
    seed = _check_int(seed, "seed", minimum=0)
    snr = check_snr(snr)
    jobs = _check_int(jobs, "jobs", minimum=1)
    _n_samples(seconds, SR)
    if not isinstance(root, (str, os.PathLike)):
        raise DataError(f"root={root!r} must be a path")
    return _Request(Path(root), year, types, sections, counts, seconds, channels, seed, snr, jobs)


def _plan(req: _Request) -> dict[tuple[str, int], list[_DcaseClip]]:
    """Every clip, grouped by machine (type, unit); refuses split folders holding WAVs this run would not write.

    Every split folder a DCASE year has is checked, also those `req.year` leaves empty: a 2021 set beside a
    2022+ one (``source_test/`` beside ``test/``) would be read as one set with each test clip twice.
    """
    machines: dict[tuple[str, int], list[_DcaseClip]] = {}
    for machine_type in req.types:
        for unit in req.sections:
            machines[(machine_type, unit)] = [
                _DcaseClip(req.root / machine_type / clip_folder(req.year, domain=domain, split=split)
                           / clip_name(req.year, unit=unit, domain=domain, split=split, label=label, index=i),
                           machine_type, unit, domain, split, label, i, req.seed, req.seconds, req.channels, req.snr)
                for (domain, split, label), count in req.counts.items() for i in range(count)
            ]
        clips = [c for (t, _), group in machines.items() if t == machine_type for c in group]
        for folder in SPLIT_FOLDERS:
            names = {c.path.name for c in clips if c.path.parent.name == folder}
            _check_no_strays(req.root / machine_type / folder, names)
    return machines


def generate_dcase_dataset(
    root: str | os.PathLike, *, year: int, types: Iterable[str] = MACHINE_TYPES, sections: Iterable[int] = (0,),
    n_source: int = 990, n_target: int | None = None, n_test: int = 50, seconds: float = 10.0, channels: int = 1,
    seed: int = 0, snr: float = -6.0, jobs: int = 1, progress: bool = True, overwrite: bool = False,
) -> list[Path]:
    """Write a synthetic development set in the DCASE Task 2 layout of `year` (16 kHz, 16-bit PCM WAV).

    Parameters
    ----------
    root : path
        Data root; created if missing.
    year : int in `YEARS`
        2020: ``<type>/{train,test}/`` with IDs; 2021: sections, source and target domains, attributes in
        training names, ``<type>/{train,source_test,target_test}/``; 2022-2025: attributes in every name,
        ``<type>/{train,test}/`` and attribute CSVs.
    types : iterable of str
        Subset of `MACHINE_TYPES`.
    sections : iterable of int in 0-3
        Units per type: ``id_00, id_02, id_04, id_06`` in 2020, ``section_00`` ... ``section_03`` afterwards;
        2023-2025 have section 0 only.
    n_source, n_target : int >= 1, int or None
        Normal training clips per machine in the source and target domain (the target's few clips are its
        budget). None: 0 in 2020 (no target domain; any other value is refused), else 10 (2022-2025 sets).
    n_test : int >= 1
        Test clips per machine, domain and label (normal, anomaly); the real 2022-2025 sets have 50.
    seconds, channels, seed, snr
        As in `machine_clip` (DCASE clips are single-channel: ``channels=1``).
    jobs, progress, overwrite
        As in `generate_dataset`; the files depend on none of them.

    Returns
    -------
    types : list of pathlib.Path
        The type folders written, e.g. ``root/fan`` (each holds ``train/`` and ``test/``, in 2021 ``train/``,
        ``source_test/`` and ``target_test/``; from 2022 also the ``attributes_XX.csv`` of its sections).

    Raises
    ------
    DataError
        An argument is out of range (the message names it); a split folder (``train/``, ``test/``,
        ``source_test/``, ``target_test/``) holds WAVs this run would not write; or (without `overwrite`) a clip
        or attribute file exists. Nothing is written then.
    ProjectError
        A worker process died (``jobs > 1``).
    """
    req = _request(root, year=year, types=types, sections=sections, n_source=n_source, n_target=n_target,
                   n_test=n_test, seconds=seconds, channels=channels, seed=seed, snr=snr, jobs=jobs)
    machines = _plan(req)
    todo = [clip for group in machines.values() for clip in group]
    tables = {} if req.year < NAMED_TEST_FROM else {
        req.root / machine_type / f"attributes_{unit:02d}.csv": _attributes_csv(group, root=req.root)
        for (machine_type, unit), group in machines.items()
    }
    if not overwrite:
        _check_not_written(req.root, [clip.path for clip in todo] + list(tables))
    with tqdm(total=len(todo), desc=f"synth DCASE {req.year}", unit="clip", disable=not progress) as bar:
        _write_all(todo, jobs=req.jobs, bar=bar, write=_write_clip, caller="generate_dcase_dataset")
    for path, text in tables.items():
        atomic_write_text(path, text)
    return [req.root / machine_type for machine_type in req.types]
