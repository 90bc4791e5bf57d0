"""Clips and data sets: one clip's seed and settings (a job), `machine_clip`, `mix_clip`, and
`generate_dataset`, which writes every clip of a MIMII-layout set (optionally in worker processes)."""

from __future__ import annotations

import contextlib
import copy
import math
import os
import signal
import threading
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np
import soundfile as sf
from tqdm import tqdm

from common.data.mimii import list_folder_clips
from common.errors import DataError, ProjectError
from common.io import atomic_write
from common.data.names import LABELS, MACHINE_IDS, MACHINE_TYPES, check_snr, snr_folder
from common.data.synth.dsp import _array_response, _jitter_db, _power, _steer
from common.data.synth.faults import FAMILIES, FaultClip
from common.data.synth.machines import _MODELS, _background
from common.data.synth.worlds import BACKGROUNDS, DEFAULT_WORLD, WORLDS, World, check_world, id_params, id_source

MIN_SR = 16000  # the sources reach ~7 kHz; lower rates would alias them
FULL_SCALE = 32768.0  # float 1.0 == int16 full scale, as soundfile reads PCM_16 back
J = TypeVar("J")  # one clip's job, as the writer passed to `_write_all` takes it


@dataclass(frozen=True)
class _ClipJob:
    """One clip: where it goes (None: not written) and everything that determines its samples."""

    path: Path | None
    machine_type: str
    machine_id: str
    label: str
    index: int
    seed: int
    seconds: float
    sr: int
    channels: int
    snr: float
    world: str = DEFAULT_WORLD  # a row of worlds.WORLDS


def _components(job: _ClipJob) -> tuple[np.ndarray, np.ndarray]:
    """Machine and background of a (validated) MIMII clip: `_rendered` with its ID's parameters and its clip seed."""
    clip_rng = np.random.default_rng(
        [job.seed, _stable_code(job.machine_type), _stable_code(job.machine_id), LABELS.index(job.label), job.index]
    )
    return _rendered(job, _MODELS[job.machine_type].params[job.machine_id], clip_rng)


def _rendered(job: _ClipJob, params: object, clip_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Machine and background of clip `job` for a row `params` of its type's table, drawn from `clip_rng`.

    Float32 [shape=(channels, n)], SNR applied. The background level is set from the machine's *healthy*
    sound (for an abnormal clip, the same clip rendered without its fault): a factory's background does not
    grow quieter, relative to the machine, when the machine fails. Scaling it to the faulty machine's own
    power (as before) made an abnormal clip sound more like background, so a model of other machines scored
    it as more normal. `dcase` calls this with speed-shifted parameters and its own clip seed.
    `job.world` picks the faults, ID differences and background (`worlds.WORLDS`).
    """
    n = _n_samples(job.seconds, job.sr)
    world = WORLDS[job.world]
    # Separate streams: the background of a clip is the same whatever the machine draws.
    machine_rng, background_rng = clip_rng.spawn(2)
    # Two more, which only worlds that need them draw from: the default world's clips stay as they were.
    fault_rng, scene_rng = clip_rng.spawn(2)
    params = id_params(world, job.machine_type, job.machine_id, params)
    mono, healthy_mono, level = _machine_mono(job, world, params, machine_rng, fault_rng, n)
    response = _array_response(job.channels, job.sr, params.azimuth_deg)
    machine = _steer(mono * level, *response)
    healthy = machine if job.label == "normal" else _steer(healthy_mono * level, *response)

    background = _background(background_rng, n, job.sr, job.channels)
    background = BACKGROUNDS[world.background](background, scene_rng, job.sr)
    gain = np.sqrt(_power(healthy) / _power(background) / 10.0 ** (job.snr / 10.0))
    background *= gain.astype(np.float32)[:, None]
    return machine, background


def _machine_mono(
    job: _ClipJob, world: World, params: object, machine_rng: np.random.Generator, fault_rng: np.random.Generator,
    n: int,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The clip's mono machine sound, its healthy twin (the same draws without the fault) and its level.

    An energy-neutral family's faulty sound is scaled to its twin's RMS: the fault changes how the machine
    sounds, never how loud it is.
    """
    model = _MODELS[job.machine_type]
    source = id_source(world, job.machine_type, job.machine_id)
    family = FAMILIES[world.family]
    healthy_rng = copy.deepcopy(machine_rng)
    if job.label == "normal":
        mono = source(params, machine_rng, n, job.sr, dict(model.healthy))
    else:
        fault, severity = _fault_of(job, family.faults or params.faults, params.severity)
        mono = family.render(FaultClip(
            job.machine_type, params, source, model.healthy, model.faults, machine_rng, fault_rng, n, job.sr, fault,
            severity, world.fault_band_hz, MACHINE_IDS.index(job.machine_id)))
    level = params.level * _jitter_db(machine_rng, std_db=0.7)
    if job.label == "normal":
        return mono, mono, level
    healthy = source(params, healthy_rng, n, job.sr, dict(model.healthy))
    if family.neutral:
        mono = mono * math.sqrt(_mean_square(healthy) / (_mean_square(mono) or 1.0))
    return mono, healthy, level


def _mean_square(x: np.ndarray) -> float:
    """Mean power of a mono signal."""
    return float(np.dot(x, x)) / x.size


_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def _fault_of(job: _ClipJob, faults: tuple[str, ...], severity: tuple[float, float]) -> tuple[str, float]:
    """The fault and severity of abnormal clip `job.index`, spread evenly over the clips of a machine.

    The machine's faults take turns and the severities follow a golden-ratio sequence over its
    `severity` range (both from a start drawn per data set seed and machine), so any run of
    consecutive clips, e.g. the few abnormal clips of a small evaluation set, holds every fault
    and the whole range: its AUC is not by chance that of only mild or only severe faults.
    """
    start = np.random.default_rng([job.seed, _stable_code(job.machine_type), _stable_code(job.machine_id)]).random(2)
    fault = faults[(job.index + int(start[0] * len(faults))) % len(faults)]
    low, high = severity
    return fault, float(low + (high - low) * ((start[1] + job.index * _GOLDEN) % 1.0))


def _stable_code(text: str) -> int:
    """A seed component for a name that is the same in every process (unlike ``hash``)."""
    return zlib.crc32(text.encode("utf-8"))


def _check_int(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise DataError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _check_positive(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise DataError(f"{name}={value!r} must be a positive number")
    if not math.isfinite(value) or value <= 0:
        raise DataError(f"{name}={value!r} must be a positive number")
    return float(value)


def _check_machine(machine_type: object, machine_id: object) -> None:
    if not isinstance(machine_type, str) or machine_type not in _MODELS:
        raise DataError(f"machine_type={machine_type!r} must be one of {MACHINE_TYPES}")
    if not isinstance(machine_id, str) or machine_id not in _MODELS[machine_type].params:
        raise DataError(f"machine_id={machine_id!r} must be one of {MACHINE_IDS}")


_MIN_SAMPLES = 256


def _n_samples(seconds: float, sr: int) -> int:
    n = int(round(seconds * sr))
    if n < _MIN_SAMPLES:
        raise DataError(f"seconds={seconds!r} gives {n} samples at sr={sr}; a clip needs at least {_MIN_SAMPLES}")
    return n


def _clip_job(
    machine_type: object, machine_id: object, *, label: object, index: object, seed: object, seconds: object,
    sr: object, channels: object, snr: object, world: object = DEFAULT_WORLD,
) -> _ClipJob:
    """`machine_clip`'s arguments, checked in the order they are documented, as a job that writes nothing."""
    _check_machine(machine_type, machine_id)
    if label not in LABELS:
        raise DataError(f"label={label!r} must be one of {LABELS}")
    index = _check_int(index, "index", minimum=0)
    seed = _check_int(seed, "seed", minimum=0)
    seconds = _check_positive(seconds, "seconds")
    sr = _check_int(sr, "sr", minimum=MIN_SR)
    channels = _check_int(channels, "channels", minimum=1)
    snr = check_snr(snr)
    world = check_world(world)
    _n_samples(seconds, sr)
    return _ClipJob(None, machine_type, machine_id, label, index, seed, seconds, sr, channels, snr, world)


def machine_clip(
    machine_type: str, machine_id: str, *, label: str, index: int, seed: int = 0, seconds: float = 10.0,
    sr: int = 16000, channels: int = 8, snr: float = -6.0, world: str = DEFAULT_WORLD,
) -> tuple[np.ndarray, np.ndarray]:
    """The machine and background signals of one clip, before mixing.

    Parameters
    ----------
    machine_type : str
        One of `MACHINE_TYPES`.
    machine_id : str
        One of `MACHINE_IDS`.
    label : {"normal", "abnormal"}
        An abnormal clip carries one of the machine's faults, at a severity drawn per clip.
    index : int >= 0
        Clip number within the machine and label.
    seed : int >= 0
        Data set seed; the clip is seeded from ``(seed, type, id, label, index)`` only.
    seconds : float > 0
    sr : int >= 16000
    channels : int >= 1
        Microphones on the circular array.
    snr : float
        Machine-to-background power ratio in dB of the healthy machine, exact on every channel of a
        normal clip; an abnormal clip keeps the background of its machine when healthy, so its fault
        raises its ratio (by up to ~3 dB).
    world : str
        A row of `worlds.WORLDS` (``synth --list-worlds``): how machines fail, what tells IDs apart, the
        background. The default world is the generator as it always was.

    Returns
    -------
    machine : np.ndarray [shape=(channels, n_samples), dtype=float64]
        The machine as each microphone hears it (1.0 = int16 full scale).
    background : np.ndarray [shape=(channels, n_samples), dtype=float64]
        Factory background, scaled so that per channel
        ``10 * log10(mean(healthy**2) / mean(background**2)) == snr`` (``healthy``: the clip without its fault).

    Raises
    ------
    DataError
        An argument is unknown or out of range; the message names it.

    Examples
    --------
    >>> machine, background = machine_clip("fan", "id_00", label="normal", index=0, seconds=1.0)
    >>> machine.shape
    (8, 16000)
    """
    job = _clip_job(machine_type, machine_id, label=label, index=index, seed=seed, seconds=seconds, sr=sr,
                    channels=channels, snr=snr, world=world)
    machine, background = _components(job)
    return machine.astype(np.float64), background.astype(np.float64)


def mix_clip(machine: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Sum machine and background and convert to 16-bit samples ready for ``soundfile.write``.

    Parameters
    ----------
    machine, background : np.ndarray [shape=(channels, n_samples)]
        Float signals, 1.0 = int16 full scale (as `machine_clip` returns them).

    Returns
    -------
    mix : np.ndarray [shape=(n_samples, channels), dtype=int16]
        Rounded and clipped to [-32768, 32767] (the rare overshoot saturates, never wraps).

    Raises
    ------
    DataError
        Shapes differ, are not 2-D, or a value is not finite.
    """
    machine = np.asarray(machine)
    background = np.asarray(background)
    if machine.ndim != 2 or machine.shape != background.shape:
        raise DataError(
            f"machine shape {machine.shape} and background shape {background.shape} must be equal "
            "and (channels, n_samples)"
        )
    mix = np.add(machine, background, dtype=np.float64)  # float32 inputs are summed in float64 too
    if not np.isfinite(np.sum(mix)):  # a NaN or inf anywhere makes the sum non-finite
        raise DataError("machine + background contains NaN or inf")
    mix *= FULL_SCALE
    np.clip(mix, -FULL_SCALE, FULL_SCALE - 1, out=mix)
    out = np.empty(mix.shape[::-1], dtype=np.int16)
    np.rint(mix.T, out=out, casting="unsafe")  # whole numbers in range by now: the cast is exact
    return out


def _write_clip(job: _ClipJob) -> Path:
    """Make one clip and write it atomically (temp file beside it, then rename)."""
    data = mix_clip(*_components(job))  # exactly what mix_clip(*machine_clip(...)) gives
    # The temp name does not end in .wav, so give soundfile the format explicitly.
    return atomic_write(job.path, lambda tmp: sf.write(tmp, data, job.sr, subtype="PCM_16", format="WAV"))


@contextlib.contextmanager
def _workers_ignore_ctrl_c() -> Iterator[None]:
    """Start worker processes with SIGINT ignored (they inherit it), so Ctrl-C stops only the parent.

    A terminal sends Ctrl-C to every process of the group: a worker still importing would print a
    KeyboardInterrupt traceback. The parent stops handing out clips instead; workers finish theirs.
    The parent ignores Ctrl-C too while the workers are spawned (a fraction of a second): a press then is lost.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _check_names(values: object, name: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A non-empty tuple of distinct names from `allowed` (order kept)."""
    if isinstance(values, str):
        values = (values,)
    try:
        values = tuple(values)  # type: ignore[arg-type]
    except TypeError:
        raise DataError(f"{name}={values!r} must be a sequence of names from {allowed}") from None
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise DataError(f"{name}={values!r} must be a non-empty selection from {allowed}; unknown: {unknown}")
    return tuple(dict.fromkeys(values))


def _check_no_strays(folder: Path, keep: set[str]) -> None:
    """Refuse to add clips to a folder holding other WAVs (the set would become a mixture)."""
    if not folder.is_dir():
        return
    strays = [p.name for p in list_folder_clips(folder)[0] if p.name not in keep]
    if strays:
        raise DataError(
            f"{folder} already holds {len(strays)} clip(s) this run would not rewrite (e.g. {strays[0]}); "
            "delete the folder or generate into another root"
        )


def _check_not_written(root: Path, paths: list[Path]) -> None:
    """Refuse to replace existing clips unless asked: the root may hold a downloaded MIMII set."""
    existing = [p for p in paths if p.exists()]
    if existing:
        raise DataError(
            f"{root} already holds {len(existing)} of the clips this run would write (first: {existing[0]}); "
            "generate into another root, delete them, or pass overwrite=True (synth --overwrite) to replace them"
        )


@dataclass(frozen=True)
class _Request:
    """`generate_dataset`'s arguments, checked and converted."""

    root: Path
    snr: float
    counts: dict[str, int]  # label -> clips per machine
    seconds: float
    channels: int
    seed: int
    types: tuple[str, ...]
    ids: tuple[str, ...]
    sr: int
    jobs: int
    world: str


def _request(
    root: object, *, snr: object, n_normal: object, n_abnormal: object, seconds: object, channels: object,
    seed: object, types: object, ids: object, sr: object, jobs: object, world: object,
) -> _Request:
    """Check `generate_dataset`'s arguments in the order they are documented (the first bad one is named)."""
    snr = check_snr(snr)
    counts = {"normal": _check_int(n_normal, "n_normal", minimum=1),
              "abnormal": _check_int(n_abnormal, "n_abnormal", minimum=0)}
    seconds = _check_positive(seconds, "seconds")
    channels = _check_int(channels, "channels", minimum=1)
    seed = _check_int(seed, "seed", minimum=0)
    types = _check_names(types, "types", MACHINE_TYPES)
    ids = _check_names(ids, "ids", MACHINE_IDS)
    sr = _check_int(sr, "sr", minimum=MIN_SR)
    jobs = _check_int(jobs, "jobs", minimum=1)
    world = check_world(world)
    _n_samples(seconds, sr)
    if not isinstance(root, (str, os.PathLike)):
        raise DataError(f"root={root!r} must be a path")
    return _Request(Path(root), snr, counts, seconds, channels, seed, types, ids, sr, jobs, world)


def _plan(req: _Request) -> tuple[list[Path], list[_ClipJob]]:
    """The machine folders (by type, then ID) and one job per clip; refuses folders holding other WAVs."""
    machines: list[Path] = []
    todo: list[_ClipJob] = []
    for machine_type in req.types:
        for machine_id in req.ids:
            folder = req.root / snr_folder(req.snr, machine_type) / machine_type / machine_id
            for label, count in req.counts.items():
                names = [f"{i:08d}.wav" for i in range(count)]
                _check_no_strays(folder / label, set(names))
                todo += [
                    _ClipJob(folder / label / name, machine_type, machine_id, label, i, req.seed, req.seconds,
                             req.sr, req.channels, req.snr, req.world)
                    for i, name in enumerate(names)
                ]
            machines.append(folder)
    return machines, todo


def _write_all(
    todo: Sequence[J], *, jobs: int, bar: tqdm, write: Callable[[J], Path] = _write_clip,
    caller: str = "generate_dataset",
) -> None:
    """Write every clip of `todo` with `write` (a module-level function: workers unpickle it by name), in this
    process or in `jobs` worker processes, updating `bar`; `caller` names the public function in errors."""
    if jobs == 1 or len(todo) <= 1:
        for job in todo:
            write(job)
            bar.update()
        return
    # spawn, not fork: the caller may hold threads (a Keras session) that fork would copy mid-lock.
    context = get_context("spawn")
    try:
        with ProcessPoolExecutor(max_workers=min(jobs, len(todo)), mp_context=context) as pool:
            with _workers_ignore_ctrl_c():
                done = pool.map(write, todo, chunksize=8)
            try:
                for _ in done:
                    bar.update()
            except KeyboardInterrupt:
                pool.shutdown(wait=True, cancel_futures=True)  # the clips being written finish whole
                raise
    except BrokenProcessPool as exc:
        raise ProjectError(
            f"{caller}(jobs={jobs}): a worker process died. Called from a script, the call "
            "must sit under `if __name__ == '__main__':` (workers re-import the script); "
            "otherwise memory may have run out. jobs=1 avoids worker processes."
        ) from exc


def generate_dataset(
    root: str | os.PathLike, *, snr: float = -6, n_normal: int = 100, n_abnormal: int = 30, seconds: float = 10.0,
    channels: int = 8, seed: int = 0, types: Iterable[str] = MACHINE_TYPES, ids: Iterable[str] = MACHINE_IDS,
    sr: int = 16000, jobs: int = 1, progress: bool = True, overwrite: bool = False, world: str = DEFAULT_WORLD,
) -> list[Path]:
    """Write a synthetic data set in the MIMII layout: ``root/{snr}_dB_{type}/{type}/{id}/{label}/NNNNNNNN.wav``.

    Parameters
    ----------
    root : path
        Data root; created if missing.
    snr : float
        Machine-to-background ratio in dB (MIMII: -6, 0, 6).
    n_normal, n_abnormal : int >= 1, int >= 0
        Clips per machine, each numbered from 0.
    seconds, channels, seed, sr, world
        As in `machine_clip`; different seeds give different clips, `world` a row of `worlds.WORLDS`.
    types, ids : iterables of str
        Subsets of `MACHINE_TYPES` and `MACHINE_IDS`.
    jobs : int >= 1
        Worker processes; the files do not depend on it.
    progress : bool
        Show a tqdm progress bar.
    overwrite : bool
        Replace clips of the same names already in `root` (same arguments give byte-identical
        files). False refuses: the root may hold real recordings (a downloaded MIMII set).

    Returns
    -------
    machines : list of pathlib.Path
        The machine folders written, e.g. ``root/-6_dB_fan/fan/id_00``, by type then ID.

    Raises
    ------
    DataError
        An argument is out of range (the message names it), a machine folder already holds
        other WAV files than this run writes, or (without `overwrite`) any of the files it
        writes. Nothing is written then.
    ProjectError
        A worker process died (``jobs > 1``); the message says the likely cause.
    OSError
        A file could not be written; clips already written are complete, no partial file is left.

    Examples
    --------
    >>> generate_dataset("Sample_data", n_normal=10, n_abnormal=3, seconds=2.0, progress=False)[0]
    PosixPath('Sample_data/-6_dB_fan/fan/id_00')
    """
    req = _request(root, snr=snr, n_normal=n_normal, n_abnormal=n_abnormal, seconds=seconds, channels=channels,
                   seed=seed, types=types, ids=ids, sr=sr, jobs=jobs, world=world)
    machines, todo = _plan(req)
    if not overwrite:
        _check_not_written(req.root, [job.path for job in todo])
    for folder in machines:
        for label in req.counts:
            (folder / label).mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(todo), desc=f"synth {req.snr:g} dB", unit="clip", disable=not progress) as bar:
        _write_all(todo, jobs=req.jobs, bar=bar)
    return machines
