"""A config's data: the machines it selects, their checked clips and splits, and their cached features.

Every clip is checked first (`common.data.check.scan_files`: header, rate, channel count, finite and
non-silent samples, long enough for ``feature.frames``). A bad clip stops the run with an
`AudioError` naming it (``data.on_bad_file: error``, the default) or is left out of training and
evaluation, warned about, listed in the run's ``skipped.csv`` and counted in ``results.csv``
(``data.on_bad_file: skip``); it never gets a score.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import pandas as pd

from common.features.audio import wav_info
from common.data.check import FileCheck, scan_files, too_short
from common.config import Config
from common.data.mimii import Machine, Split
from common.errors import AudioError, ConfigError
from common.features.cache import ClipFeatures, cached_features
from common.io import atomic_write_text
from common.data.layouts import LAYOUTS, resolve_layout

SKIPPED_COLUMNS = ["target_type", "target_id", "path", "problem"]


@dataclass(frozen=True)
class CheckedMachine:
    """A machine's split of its good clips, and the bad clips left out (path -> problem)."""

    split: Split
    skipped: dict[str, str]


@dataclass(frozen=True)
class MachineData:
    """A machine's split and the log-mel vectors of all its clips (train pool and evaluation)."""

    split: Split
    features: ClipFeatures
    skipped: tuple[tuple[str, str], ...] = ()  # (path, problem) of bad clips left out (on_bad_file: skip)

    @property
    def machine(self) -> Machine:
        return self.split.machine

    def vectors(self, files) -> tuple:
        """Vectors and offsets of the given clips of this machine, in the given order."""
        return self.features.take([self._index[str(f)] for f in files])

    @cached_property
    def _index(self) -> dict[str, int]:
        return {f: i for i, f in enumerate(self.features.files)}


class Machines:
    """Each machine's checked split and features, each loaded on first use (one run's view of the data)."""

    def __init__(self, cfg: Config, *, progress: bool) -> None:
        self.cfg, self.progress = cfg, progress
        self._checked: dict[Machine, CheckedMachine] = {}
        self._data: dict[Machine, MachineData] = {}

    @cached_property
    def layout(self) -> str:
        """The data layout of ``data.root`` (`data_layout`)."""
        return data_layout(self.cfg)

    def checked(self, machine: Machine) -> CheckedMachine:
        if machine not in self._checked:
            self._checked[machine] = check_machine(self.cfg, machine, progress=self.progress, layout=self.layout)
        return self._checked[machine]

    def __getitem__(self, machine: Machine) -> MachineData:
        if machine not in self._data:
            self._data[machine] = load_machine(self.cfg, machine, progress=self.progress,
                                               checked=self.checked(machine))
        return self._data[machine]


def n_channels(files) -> int:
    """Channel count of a machine's clips (all of one machine share it), from the first clip's header."""
    return wav_info(files[0]).channels


def select_machines(cfg: Config) -> list[Machine]:
    """The machines of the data root that the config selects (types, IDs, SNR).

    Raises
    ------
    ConfigError
        ``data.root`` is not a folder (names the YAML and the key).
    DataError
        No machine at ``data.snr``, or a type / ID asked for is missing.
    """
    d = cfg.data
    if not Path(d.root).is_dir():
        raise ConfigError(
            f"{cfg.source}: 'data.root' is {d.root}, which is not a folder (or --root, when given). Set data.root "
            f"to a MIMII-layout root, or make one with `python -m common synth --root {d.root}` or `download`"
        )
    return LAYOUTS[data_layout(cfg)].machines(d.root, snr=d.snr, types=d.types, ids=d.ids)


def data_layout(cfg: Config) -> str:
    """The layout the grid reads ``data.root`` in: ``data.layout``, or when ``auto`` the one found there
    (MIMII unless the root is clearly a DCASE Task 2 set, so that a MIMII root reads as it always has: then
    `find_machines` says what it expected to find). A root of mixed layouts is `detect_layout`'s DataError."""
    return resolve_layout(cfg.data.root, cfg.data.layout)


def _split(cfg: Config, machine: Machine, layout: str, bad) -> Split:
    """The train / evaluation split of the good clips: ``data.split`` on MIMII, the given one on DCASE."""
    d = cfg.data
    return LAYOUTS[layout].split(machine, method=d.split, seed=d.split_seed, exclude=bad)


def check_machine(cfg: Config, machine: Machine, *, progress: bool = False,
                  layout: str | None = None) -> CheckedMachine:
    """Check every clip of `machine`, apply ``data.on_bad_file``, and split the good clips.

    `layout` is the root's `data_layout` when the caller has it (found from the root's folders otherwise).

    Raises
    ------
    AudioError
        A clip is bad and ``data.on_bad_file`` is ``error``; the message names the first one.
    ConfigError
        ``feature.frames`` needs longer clips than any of the machine's, or ``data.channel`` /
        ``data.sample_rate`` fits none of them (names the YAML and key: the config is at fault).
    DataError
        Too few good clips remain to split (no abnormal clips, or no training pool).
    """
    d = cfg.data
    layout = layout or data_layout(cfg)
    clips = LAYOUTS[layout].clips(machine)
    _warn_ignored(machine, LAYOUTS[layout].ignored(machine))
    checks = scan_files(clips, channel=d.channel, sample_rate=d.sample_rate, jobs=d.jobs,
                        cache_dir=d.cache_dir, progress=progress)
    _check_config_fits(cfg, machine, checks)
    bad = {c.path: c.problem for c in checks if c.problem}
    bad.update(_too_short(cfg, machine, [c for c in checks if not c.problem]))
    if bad and d.on_bad_file == "error":
        first = next(iter(bad.values()))
        more = f" (and {len(bad) - 1} more bad clip(s) of {machine.name})" if len(bad) > 1 else ""
        raise AudioError(
            f"{first}{more}. List every problem with `python -m common check-data {d.root} --config {cfg.source}`; "
            f"fix or remove the file(s), or set data.on_bad_file: skip in {cfg.source} to leave them out"
        )
    if bad:
        warnings.warn(
            f"data.on_bad_file: skip: left out {len(bad)} bad clip(s) of {machine.name}, first: "
            f"{next(iter(bad.values()))}. The run's skipped.csv lists them; fix or remove the files to "
            "silence this warning.",
            stacklevel=2,
        )
    return CheckedMachine(_split(cfg, machine, layout, bad), bad)


def _warn_ignored(machine: Machine, ignored: list[Path]) -> None:
    """Warn about files named like clips that are left out as not clips (e.g. macOS ``._*``)."""
    if ignored:
        warnings.warn(
            f"{len(ignored)} file(s) of {machine.name} named like clips are not clips and are left out, e.g. "
            f"{ignored[0]} (hidden files such as macOS '._' resource forks); delete them to silence this warning",
            stacklevel=3,
        )


def _check_config_fits(cfg: Config, machine: Machine, checks: list[FileCheck]) -> None:
    """Raise ConfigError when ``data.channel`` or ``data.sample_rate`` fits none of the machine's clips.

    Then every clip fails the same check: the config is at fault, and skipping bad files would
    drop them all.
    """
    d = cfg.data
    read = [c for c in checks if c.channels is not None]
    if not read:
        return
    channels = sorted({c.channels for c in read})
    if all(c.channels <= d.channel for c in read):
        counts = " or ".join(map(str, channels))
        have = f"{counts} channel(s) (0-{channels[0] - 1})" if len(channels) == 1 else f"{counts} channels"
        raise ConfigError(
            f"{cfg.source}: 'data.channel' is {d.channel}, but the clips of {machine.name} have {have}. "
            "Set data.channel to one of their channels"
        )
    rates = sorted({c.samplerate for c in read})
    if d.sample_rate is not None and d.sample_rate not in rates:
        raise ConfigError(
            f"{cfg.source}: 'data.sample_rate' is {d.sample_rate}, but the clips of {machine.name} are "
            f"{' / '.join(map(str, rates))} Hz. Set data.sample_rate to the clips' rate"
        )


def _too_short(cfg: Config, machine: Machine, good: list[FileCheck]) -> dict[str, str]:
    """Good clips too short to give one vector of ``feature.frames`` frames (path -> problem).

    When no clip of the machine is long enough the config is at fault, not the files: ConfigError.
    """
    f = cfg.feature
    short = too_short(good, frames=f.frames, n_fft=f.n_fft, hop_length=f.hop_length)
    if not short:
        return {}
    if len(short) == len(good):
        longest = max(good, key=lambda c: c.frames)
        raise ConfigError(
            f"{cfg.source}: 'feature.frames' must be at most the STFT frames of a clip, got {f.frames}: the "
            f"longest clip of {machine.name} ({longest.path}, {longest.frames} samples) has "
            f"{short[longest.path][0]} frames with n_fft={f.n_fft}, hop_length={f.hop_length}. "
            "Lower feature.frames or hop_length"
        )
    return {path: problem for path, (_, problem) in short.items()}


def load_machine(
    cfg: Config, machine: Machine, *, progress: bool = True, checked: CheckedMachine | None = None
) -> MachineData:
    """Check and split `machine`, then load (extracting once, then from cache) the features of its good clips.

    `checked` is the machine's `check_machine` result when the caller has it already.
    """
    if checked is None:
        checked = check_machine(cfg, machine, progress=progress)
    split = checked.split
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
    return MachineData(split, feats, skipped=tuple(checked.skipped.items()))


def write_skipped(folder, skipped: dict[Machine, dict[str, str]]) -> pd.DataFrame:
    """Write ``folder/skipped.csv``: one row per bad clip left out (header only when none); return it."""
    rows = [{"target_type": m.type, "target_id": m.id, "path": p, "problem": why}
            for m in sorted(skipped) for p, why in skipped[m].items()]
    table = pd.DataFrame(rows, columns=SKIPPED_COLUMNS)
    atomic_write_text(folder / "skipped.csv", table.to_csv(index=False))
    return table


def machines_table(cfg: Config) -> pd.DataFrame:
    """One row per selected machine: clip counts of its training pool and evaluation split, and bad clips skipped."""
    rows, layout = [], data_layout(cfg)
    for machine in select_machines(cfg):
        checked = check_machine(cfg, machine, layout=layout)
        split = checked.split
        n_abnormal = int(split.eval_labels.sum())
        rows.append({"machine": machine.name, "train_normal": len(split.train),
                     "eval_normal": len(split.eval_files) - n_abnormal, "eval_abnormal": n_abnormal,
                     "skipped": len(checked.skipped), "folder": str(machine.path)})
    return pd.DataFrame(rows)

