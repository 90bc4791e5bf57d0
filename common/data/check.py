"""Find bad WAV files before they reach the features: per-file checks, a cached scan, and `check-data`.

A file is *bad* when `common.features.audio.check_wav` rejects it (missing, empty, not RIFF/WAVE, corrupt or
truncated, no sample frames, another sample rate, the channel out of range, non-finite, overflowing
(`common.features.audio.MAX_SAMPLE`) or silent samples) or when it has another channel count than most files of its
machine (a mono export among 8-channel recordings still has channel 0, so only the comparison catches it).

`scan_files` checks a list of files and, given a cache folder, remembers the answer under a key of
each file's `common.io.file_fingerprint` (path, size, mtime, inode, ctime), so the samples are read
once, not on every run.
`check_data` scans a whole data root for ``python -m common check-data``: a MIMII root, or a DCASE Task 2
development root (2020, 2021-2025; `common.data.dcase`), whose machines are scanned with the clips and the given
split `common.data.dcase.split_dcase_machine` reads.
"""

from __future__ import annotations

import json
import os
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from common.features.audio import WavInfo, check_wav, wav_info
from common.features.params import FeatureConfig
from common.data.mimii import Machine
from common.errors import AudioError, DataError
from common.io import atomic_write_text, digest, file_fingerprint
from common.data.layouts import AUTO, LAYOUTS, resolve_layout
from common.features.logmel import n_frames_of

_DEFAULT = FeatureConfig()  # the feature parameters' defaults (`too_short`)

# Bump when a check is added or changed: cached scans then miss.
CHECK_VERSION = 2  # 2: samples beyond audio.MAX_SAMPLE are bad (issue 27)

# train_source, train_target: normal training clips per domain on DCASE 2021-2025 roots ("-" on others)
TABLE_COLUMNS = ["machine", "normal", "abnormal", "min_s", "max_s", "rates", "channels", "problems",
                 "train_source", "train_target"]
PROBLEM_COLUMNS = ["machine", "path", "problem"]


@dataclass(frozen=True)
class FileCheck:
    """What the scan found out about one file.

    Attributes
    ----------
    path : str
    samplerate, channels, frames : int or None
        From the RIFF header; None when the header is unreadable.
    problem : str or None
        The `AudioError` message (it names the file), or None for a good file.
    """

    path: str
    samplerate: int | None
    channels: int | None
    frames: int | None
    problem: str | None

    @property
    def seconds(self) -> float | None:
        """Duration in seconds, when the header could be read."""
        return None if self.frames is None or not self.samplerate else self.frames / self.samplerate


def scan_files(
    files: Iterable[str | os.PathLike],
    *,
    channel: int = 0,
    sample_rate: int | None = 16000,
    jobs: int = 2,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
) -> list[FileCheck]:
    """Check every file's header and the samples of `channel`; one `FileCheck` per file, in order.

    The expected channel count is the one most files have (ties: the larger count); a file with
    another count is bad. With `cache_dir`, the result is stored in ``cache_dir/checks/`` under a
    key of `channel`, `sample_rate` and each file's `common.io.file_fingerprint`: a rewritten
    (even with the same size and mtime), added or removed file gives another key and a fresh scan,
    never a stale answer.

    Parameters
    ----------
    files : iterable of str or os.PathLike
        Usually all clips of one machine.
    channel : int >= 0
        The channel the features use (checked for non-finite and silent samples).
    sample_rate : int > 0 or None
        Required rate; None accepts any.
    jobs : int >= 1
        Threads reading files.
    cache_dir : path or None
        Where to remember scans; None scans every time.
    progress : bool
        Show a tqdm bar while reading samples.

    Returns
    -------
    checks : list of FileCheck
    """
    files = [str(f) for f in files]
    cache = _cache_path(files, channel=channel, sample_rate=sample_rate, cache_dir=cache_dir)
    if cache is not None:
        cached = _read_cache(cache, files)
        if cached is not None:
            return cached
    checks = _scan(files, channel=channel, sample_rate=sample_rate, jobs=jobs, progress=progress)
    if cache is not None:
        _remember(cache, checks)
    return checks


def _scan(files: list[str], *, channel: int, sample_rate: int | None, jobs: int, progress: bool) -> list[FileCheck]:
    """Read every header, then check every file's samples on `jobs` threads (`scan_files` without its cache)."""
    infos: list[WavInfo | None] = []
    problems: list[str | None] = []
    for path in files:
        try:
            infos.append(wav_info(path))
            problems.append(None)
        except AudioError as exc:
            infos.append(None)
            problems.append(str(exc))
    expected_channels = _majority([i.channels for i in infos if i is not None])

    def check(i: int) -> str | None:
        if problems[i] is not None:
            return problems[i]
        try:
            check_wav(files[i], channel=channel, expected_sr=sample_rate, expected_channels=expected_channels,
                      info=infos[i])
        except AudioError as exc:
            return str(exc)
        return None

    with tqdm(total=len(files), unit="clip", desc="check", leave=False, disable=not progress) as bar:
        with ThreadPoolExecutor(max_workers=max(1, int(jobs))) as pool:
            found = []
            for problem in pool.map(check, range(len(files))):
                found.append(problem)
                bar.update(1)
    return [
        FileCheck(path, i.samplerate if i else None, i.channels if i else None, i.frames if i else None, problem)
        for path, i, problem in zip(files, infos, found)
    ]


def _remember(cache: Path, checks: list[FileCheck]) -> None:
    """Store a scan in `cache`; a failure is only a warning (the answer stands, the next run scans again)."""
    files = [asdict(c) for c in checks]
    try:
        atomic_write_text(cache, json.dumps({"files": files, "sha256": digest(files)}))
    except OSError as exc:
        warnings.warn(f"could not remember the scan in {cache.parent}: {exc.strerror or exc}; "
                      "free space there (data.cache_dir) to silence this warning", stacklevel=3)


def _majority(counts: Sequence[int]) -> int | None:
    if not counts:
        return None
    tally = Counter(counts)
    best = max(tally.values())
    return max(c for c, n in tally.items() if n == best)


def _cache_path(files: list[str], *, channel: int, sample_rate: int | None, cache_dir) -> Path | None:
    if cache_dir is None:
        return None
    # A missing file is a problem the scan reports; its key just says so.
    payload = {"version": CHECK_VERSION, "channel": int(channel), "sample_rate": sample_rate,
               "files": [file_fingerprint(f, missing_ok=True) for f in files]}
    key = digest(payload, sort_keys=False)
    return Path(cache_dir) / "checks" / f"{key}.json"


def _read_cache(path: Path, files: list[str]) -> list[FileCheck] | None:
    """A remembered scan of `files`, or None (scan again): missing, damaged, or not matching its sha256."""
    try:
        entry = json.loads(path.read_text())
        checks = [FileCheck(**e) for e in entry["files"]]
        intact = digest(entry["files"]) == entry["sha256"]
    except (OSError, ValueError, KeyError, TypeError):  # missing or damaged entry: scan again
        return None
    if not intact:
        warnings.warn(f"remembered scan {path} (data.cache_dir) differs from its sha256 (edited or damaged): the "
                      "clips are checked again", stacklevel=3)
        return None
    return checks if [c.path for c in checks] == files else None


def too_short(
    checks: Iterable[FileCheck], *, frames: int, n_fft: int = _DEFAULT.n_fft, hop_length: int = _DEFAULT.hop_length
) -> dict[str, tuple[int, str]]:
    """Clips too short to give one vector of `frames` STFT frames: path -> (their frames, problem).

    The rule a run applies (`common.data.dataset.check_machine`), shared with ``check-data --config``.
    Only clips with a readable header are judged.
    """
    short = {}
    for c in checks:
        if c.frames is None:
            continue
        n = n_frames_of(c.frames, n_fft=n_fft, hop_length=hop_length)
        if n < frames:
            short[c.path] = (n, f"WAV file {c.path} is too short: {n} STFT frames (n_fft={n_fft}, "
                                f"hop_length={hop_length}) but feature.frames={frames} needs at least {frames}")
    return short


def ignored_in_root(root: str | os.PathLike, *, snr: float = -6, layout: str = AUTO) -> list[Path]:
    """Files under the machines of `root` named like clips but left out by `common.data.mimii.is_clip` (e.g. ``._*``).

    On a DCASE root: every such file in the split folders of its machine types (also one naming no ID or section,
    which `common.data.dcase.ignored_dcase_files` would not place); `snr` applies to MIMII roots only.
    """
    return LAYOUTS[resolve_layout(root, layout)].ignored_under(root, snr=snr)


def check_data(
    root: str | os.PathLike,
    *,
    snr: float = -6,
    channel: int = 0,
    sample_rate: int | None = 16000,
    jobs: int = 2,
    progress: bool = False,
    feature: dict[str, int] | None = None,
    layout: str = AUTO,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Scan every machine under a data root (MIMII or DCASE Task 2): a summary table and one row per problem.

    Parameters
    ----------
    root : path
        A MIMII-layout data root, or a DCASE Task 2 development root (2020: machines ``ToyCar/id_01``;
        2021-2025: ``fan/section_00``).
    snr : float
        Noise level of the MIMII machine folders to scan (DCASE roots have one level: ignored there).
    channel, sample_rate, jobs, progress
        As in `scan_files`.
    feature : dict or None
        ``frames``, ``n_fft``, ``hop_length`` of a run (e.g. a config's ``feature``): clips too
        short for them are problems (`too_short`). None skips that check.
    layout : {'auto', 'mimii', 'dcase2020', 'dcase2021'}
        As `common.data.layouts.resolve_layout` reads it.

    Returns
    -------
    table : pd.DataFrame [columns=TABLE_COLUMNS]
        One row per machine: ``machine``, ``normal`` and ``abnormal`` clip counts (DCASE: normal training and
        test clips; anomalous test clips), shortest and longest clip in seconds (``min_s``, ``max_s``), the
        sample ``rates`` and ``channels`` seen, the number of ``problems``, and on 2021-2025 roots the normal
        training clips of each domain, ``train_source`` and ``train_target`` (``"-"`` on other roots).
    problems : pd.DataFrame [columns=PROBLEM_COLUMNS]
        ``machine``, ``path``, ``problem`` (a message naming the file) per bad file, plus a row per machine
        whose good clips cannot be split (MIMII: no abnormal clips, too few normal ones; DCASE: no training
        or test clips, test clips of one class or without labels).

    Raises
    ------
    DataError
        The root is missing or holds no machine (at `snr` for MIMII); a DCASE clip name fits no pattern.
    """
    rows, problems = [], []
    read = LAYOUTS[resolve_layout(root, layout)]
    for machine, files, counts in read.inventory(root, snr=snr):
        checks = scan_files(files, channel=channel, sample_rate=sample_rate, jobs=jobs, progress=progress)
        found = _machine_problems(machine, checks, read.split, feature=feature)
        problems += found
        rows.append(_summary_row(machine.name, checks, counts, n_problems=len(found)))
    return pd.DataFrame(rows, columns=TABLE_COLUMNS), pd.DataFrame(problems, columns=PROBLEM_COLUMNS)


def _machine_problems(machine: Machine, checks: list[FileCheck], split: Callable[..., Any], *,
                      feature: dict[str, int] | None) -> list[dict[str, str]]:
    """One machine's problem rows: its bad (or, with `feature`, too short) files, then its split if the good
    files cannot be split."""
    bad = {c.path: c.problem for c in checks if c.problem}
    if feature is not None:
        short = too_short([c for c in checks if not c.problem], **feature)
        bad.update({path: problem for path, (_, problem) in short.items()})
    problems = [{"machine": machine.name, "path": path, "problem": why} for path, why in bad.items()]
    try:
        split(machine, exclude=list(bad))
    except DataError as exc:
        problems.append({"machine": machine.name, "path": str(machine.path), "problem": str(exc)})
    return problems


def _summary_row(machine: str, checks: list[FileCheck], counts: dict[str, int], *, n_problems: int) -> dict[str, Any]:
    """One machine's row of the `check_data` table (columns `TABLE_COLUMNS`; a count not in `counts` is "-")."""
    seconds = [c.seconds for c in checks if c.seconds is not None]
    return {
        "machine": machine, "normal": counts["normal"], "abnormal": counts["abnormal"],
        "min_s": min(seconds, default=float("nan")), "max_s": max(seconds, default=float("nan")),
        "rates": _values(c.samplerate for c in checks), "channels": _values(c.channels for c in checks),
        "problems": n_problems,
        "train_source": counts.get("train_source", "-"), "train_target": counts.get("train_target", "-"),
    }


def _values(values: Iterable[int | None]) -> str:
    """The distinct values seen, e.g. ``"16000"`` or ``"1,8"`` (``"-"`` when none could be read)."""
    seen = sorted({v for v in values if v is not None})
    return ",".join(str(v) for v in seen) or "-"
