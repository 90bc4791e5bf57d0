"""Synthetic machine sounds written in the exact MIMII layout and format (the embedded default data set).

The real MIMII data set (Purohit et al., 2019) cannot be downloaded everywhere, so this module writes a
stand-in with the same folders, names and WAV format::

    ROOT/-6_dB_fan/fan/id_00/normal/00000000.wav      16 kHz, 16-bit PCM, 8 channels, 10 s
    ROOT/-6_dB_fan/fan/id_00/abnormal/00000000.wav

Each machine type is built from a few physical mechanisms, with the numbers that make one ID differ
from another (rotation rate, blade count, resonances, cycle period, ...) in a table per type:

- fan: blade-pass harmonics, a weak shaft tone, and broadband airflow noise with resonances,
  modulated at the blade-pass rate. Faults: imbalance (1x shaft tone and sidebands), bearing impacts
  ringing a high structural resonance, rubbing (contact noise once per revolution).
- pump: pressure pulsation (shaft and vane-pass harmonics) and flow noise amplitude-modulated by it.
  Faults: leakage hiss, clogging (speed drop, less flow, stronger pulsation), cavitation crackle.
- slider: a back-and-forth travel cycle (1.2-1.9 s) with motor whine that follows the speed, rolling
  noise, and end-stop clicks. Faults: friction squeal during travel, rail damage (impacts at a spot).
- valve: open/close clicks (damped resonances) on a per-ID schedule, flow hiss while open.
  Faults: leakage hiss while closed, contamination (bounce double clicks, shifted resonance, jitter).

Every clip varies a little (rate ~1 %, phases, levels, resonances ~1-2 %), and abnormal clips draw
a fault and a severity in [0, 1] per clip, so some are subtle and some obvious.

The machine reaches the 8 microphones of a circular array with small per-channel delays and gains;
factory background (pinkish noise with hall resonances, mains hum, distant impacts; partly
common to all channels, partly independent) is scaled per channel so that
``10 * log10(P_machine / P_background) == snr`` exactly on every channel.

Each clip is seeded from ``(seed, type, id, label, index)`` alone, so clips do not depend on the order
they are made in nor on `jobs`, and the same clip at another SNR differs only in the background level.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import signal
import threading
import zlib
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np
import scipy.fft as sfft
import soundfile as sf
from scipy.ndimage import uniform_filter1d
from scipy.signal import lfilter
from tqdm import tqdm

from .data import list_folder_clips
from .errors import DataError, ProjectError
from .io import atomic_write
from .layout import LABELS, MACHINE_IDS, MACHINE_TYPES, snr_folder

__all__ = [
    "MACHINE_TYPES",
    "MACHINE_IDS",
    "LABELS",
    "FanParams",
    "PumpParams",
    "SliderParams",
    "ValveParams",
    "FAN_PARAMS",
    "PUMP_PARAMS",
    "SLIDER_PARAMS",
    "VALVE_PARAMS",
    "FAN_FAULTS",
    "PUMP_FAULTS",
    "SLIDER_FAULTS",
    "VALVE_FAULTS",
    "FACTORY_ROOM",
    "snr_folder",
    "machine_clip",
    "mix_clip",
    "generate_dataset",
]


MIN_SR = 16000  # the sources reach ~7 kHz; lower rates would alias them
FULL_SCALE = 32768.0  # float 1.0 == int16 full scale, as soundfile reads PCM_16 back
MIC_RADIUS_M = 0.034  # circular 8-mic array, as MIMII's TAMAGO-03
SPEED_OF_SOUND = 343.0
MAINS_HZ = 50.0

Resonance = tuple[float, float, float]  # (centre Hz, quality factor Q, relative gain)
Mode = tuple[float, float, float]  # damped mode of a click: (frequency Hz, decay time s, amplitude)


# --------------------------------------------------------------------------------------------------
# Per-type parameter tables: one row per machine ID. `level` is the machine's RMS (1.0 = full
# scale), `azimuth_deg` its direction seen from the array, `faults` the faults its abnormal clips
# draw from (see the *_FAULTS tables).
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FanParams:
    """One fan: rotation, blades, airflow spectrum, and where its faults ring."""

    rot_hz: float  # shaft rotation rate
    blades: int  # blade-pass frequency = rot_hz * blades
    bpf_harmonics: tuple[float, ...]  # amplitudes of blade-pass harmonics 1, 2, ...
    tonal_db: float  # blade tones relative to airflow noise
    airflow: tuple[Resonance, ...]  # resonances of the broadband airflow noise
    tilt_db_oct: float  # slope of the airflow noise
    bearing_order: float  # bearing defect frequency / rot_hz (fault)
    bearing_hz: float  # structural resonance rung by bearing impacts (fault)
    level: float
    azimuth_deg: float
    faults: tuple[str, ...]


@dataclass(frozen=True)
class PumpParams:
    """One pump: shaft and vane-pass pulsation, pipe resonances of the flow noise."""

    rot_hz: float  # shaft rotation rate
    vanes: int  # impeller vanes; vane-pass frequency = rot_hz * vanes
    pulsation: tuple[tuple[int, float], ...]  # (shaft order, amplitude) of the pressure pulsation
    pulse_db: float  # pulsation relative to flow noise
    am_depth: float  # how strongly the vane-pass pulsation modulates the flow noise
    flow: tuple[Resonance, ...]  # pipe resonances of the flow noise
    tilt_db_oct: float
    leak_hz: float  # centre of the leakage hiss (fault)
    level: float
    azimuth_deg: float
    faults: tuple[str, ...]


@dataclass(frozen=True)
class SliderParams:
    """One slide rail: travel cycle, motor, rolling noise, end-stop and damage resonances."""

    period_s: float  # one cycle: travel out, dwell, travel back, dwell
    travel_frac: float  # fraction of the cycle spent moving
    motor_hz: float  # motor whine at full speed
    motor_harmonics: tuple[float, ...]
    whine_db: float  # whine relative to rolling noise
    rolling: tuple[Resonance, ...]  # resonances of the rolling noise
    click_hz: float  # end-stop click resonance
    click_db: float  # clicks relative to rolling noise
    squeal_hz: float  # friction squeal (fault)
    damage_pos: float  # position of rail damage along the travel, 0..1 (fault)
    damage_hz: float  # resonance rung by the damage (fault)
    level: float
    azimuth_deg: float
    faults: tuple[str, ...]


@dataclass(frozen=True)
class ValveParams:
    """One solenoid valve: open/close schedule, click resonances, flow hiss."""

    period_s: float  # the schedule repeats every period_s
    pattern: tuple[tuple[float, float], ...]  # (open, close) instants as fractions of the period
    open_hz: float  # resonance rung by the opening click
    close_hz: float  # resonance rung by the closing click
    decay_s: float  # decay time of the click resonances
    close_ratio: float  # closing click amplitude / opening click amplitude
    hiss_hz: float  # centre of the flow hiss while open
    hiss_db: float  # flow hiss relative to the clicks
    leak_hz: float  # centre of the leakage hiss while closed (fault)
    level: float
    azimuth_deg: float
    faults: tuple[str, ...]


FAN_PARAMS: dict[str, FanParams] = {
    "id_00": FanParams(
        rot_hz=23.3, blades=6, bpf_harmonics=(1.0, 0.55, 0.3, 0.18, 0.1, 0.06), tonal_db=-6.0,
        airflow=((900.0, 2.5, 1.0), (2600.0, 4.0, 0.45)), tilt_db_oct=-4.0,
        bearing_order=3.57, bearing_hz=3900.0, level=0.040, azimuth_deg=0.0,
        faults=("imbalance", "bearing", "rubbing"),
    ),
    "id_02": FanParams(
        rot_hz=27.8, blades=7, bpf_harmonics=(1.0, 0.7, 0.35, 0.2, 0.12), tonal_db=-3.0,
        airflow=((1200.0, 3.0, 1.0), (3400.0, 5.0, 0.35)), tilt_db_oct=-3.0,
        bearing_order=4.12, bearing_hz=4700.0, level=0.035, azimuth_deg=45.0,
        faults=("imbalance", "bearing"),
    ),
    "id_04": FanParams(
        rot_hz=19.6, blades=5, bpf_harmonics=(1.0, 0.5, 0.4, 0.25, 0.15, 0.1, 0.05), tonal_db=-8.0,
        airflow=((650.0, 2.0, 1.0), (1900.0, 3.5, 0.6)), tilt_db_oct=-5.0,
        bearing_order=3.05, bearing_hz=3300.0, level=0.045, azimuth_deg=90.0,
        faults=("bearing", "rubbing"),
    ),
    "id_06": FanParams(
        rot_hz=32.5, blades=9, bpf_harmonics=(1.0, 0.45, 0.2, 0.1), tonal_db=-1.0,
        airflow=((1500.0, 3.0, 1.0), (4200.0, 6.0, 0.3)), tilt_db_oct=-2.5,
        bearing_order=5.3, bearing_hz=5200.0, level=0.038, azimuth_deg=135.0,
        faults=("imbalance", "rubbing"),
    ),
}

PUMP_PARAMS: dict[str, PumpParams] = {
    "id_00": PumpParams(
        rot_hz=24.6, vanes=5, pulsation=((1, 0.25), (2, 0.12), (5, 1.0), (10, 0.45), (15, 0.2)),
        pulse_db=-2.0, am_depth=0.35, flow=((420.0, 2.0, 1.0), (1350.0, 3.0, 0.5)), tilt_db_oct=-3.5,
        leak_hz=3800.0, level=0.040, azimuth_deg=180.0, faults=("leakage", "clogging", "cavitation"),
    ),
    "id_02": PumpParams(
        rot_hz=29.3, vanes=6, pulsation=((1, 0.2), (2, 0.15), (6, 1.0), (12, 0.35), (18, 0.15)),
        pulse_db=-4.0, am_depth=0.25, flow=((560.0, 2.5, 1.0), (1800.0, 2.5, 0.6)), tilt_db_oct=-3.0,
        leak_hz=4500.0, level=0.035, azimuth_deg=225.0, faults=("leakage", "clogging"),
    ),
    "id_04": PumpParams(
        rot_hz=48.7, vanes=5, pulsation=((1, 0.35), (2, 0.2), (5, 1.0), (10, 0.3)),
        pulse_db=0.0, am_depth=0.4, flow=((330.0, 1.5, 1.0), (1100.0, 3.5, 0.4)), tilt_db_oct=-4.0,
        leak_hz=3200.0, level=0.045, azimuth_deg=270.0, faults=("clogging", "cavitation"),
    ),
    "id_06": PumpParams(
        rot_hz=36.1, vanes=7, pulsation=((1, 0.15), (2, 0.1), (7, 1.0), (14, 0.4), (21, 0.12)),
        pulse_db=-3.0, am_depth=0.3, flow=((720.0, 2.0, 1.0), (2300.0, 4.0, 0.45)), tilt_db_oct=-2.5,
        leak_hz=5000.0, level=0.038, azimuth_deg=315.0, faults=("leakage", "cavitation"),
    ),
}

SLIDER_PARAMS: dict[str, SliderParams] = {
    "id_00": SliderParams(
        period_s=1.2, travel_frac=0.70, motor_hz=420.0, motor_harmonics=(1.0, 0.5, 0.3, 0.15),
        whine_db=-2.0, rolling=((1800.0, 2.0, 1.0), (3500.0, 3.0, 0.5)), click_hz=2400.0,
        click_db=-3.0, squeal_hz=2900.0, damage_pos=0.35, damage_hz=4300.0,
        level=0.040, azimuth_deg=20.0, faults=("friction", "damage"),
    ),
    "id_02": SliderParams(
        period_s=1.6, travel_frac=0.60, motor_hz=560.0, motor_harmonics=(1.0, 0.35, 0.25),
        whine_db=-4.0, rolling=((1300.0, 2.5, 1.0), (4100.0, 4.0, 0.4)), click_hz=3100.0,
        click_db=-1.0, squeal_hz=3600.0, damage_pos=0.6, damage_hz=5100.0,
        level=0.035, azimuth_deg=65.0, faults=("friction", "damage"),
    ),
    "id_04": SliderParams(
        period_s=1.9, travel_frac=0.75, motor_hz=330.0, motor_harmonics=(1.0, 0.6, 0.4, 0.2, 0.1),
        whine_db=0.0, rolling=((2200.0, 2.0, 1.0), (900.0, 3.0, 0.6)), click_hz=1900.0,
        click_db=-5.0, squeal_hz=2100.0, damage_pos=0.2, damage_hz=3700.0,
        level=0.045, azimuth_deg=110.0, faults=("friction", "damage"),
    ),
    "id_06": SliderParams(
        period_s=1.4, travel_frac=0.55, motor_hz=710.0, motor_harmonics=(1.0, 0.3, 0.1),
        whine_db=-6.0, rolling=((1600.0, 3.0, 1.0), (2800.0, 2.0, 0.7)), click_hz=2700.0,
        click_db=-2.0, squeal_hz=4400.0, damage_pos=0.8, damage_hz=4700.0,
        level=0.038, azimuth_deg=155.0, faults=("friction", "damage"),
    ),
}

VALVE_PARAMS: dict[str, ValveParams] = {
    "id_00": ValveParams(
        period_s=0.9, pattern=((0.0, 0.35),), open_hz=2600.0, close_hz=3400.0, decay_s=0.004,
        close_ratio=0.8, hiss_hz=1800.0, hiss_db=-14.0, leak_hz=2600.0,
        level=0.030, azimuth_deg=200.0, faults=("leakage", "contamination"),
    ),
    "id_02": ValveParams(
        period_s=1.5, pattern=((0.0, 0.12), (0.3, 0.42)), open_hz=1900.0, close_hz=2900.0,
        decay_s=0.005, close_ratio=0.7, hiss_hz=1400.0, hiss_db=-12.0, leak_hz=3300.0,
        level=0.028, azimuth_deg=245.0, faults=("leakage", "contamination"),
    ),
    "id_04": ValveParams(
        period_s=1.2, pattern=((0.0, 0.6),), open_hz=3100.0, close_hz=4300.0, decay_s=0.003,
        close_ratio=0.9, hiss_hz=2400.0, hiss_db=-10.0, leak_hz=4100.0,
        level=0.032, azimuth_deg=290.0, faults=("leakage", "contamination"),
    ),
    "id_06": ValveParams(
        period_s=0.7, pattern=((0.0, 0.2), (0.45, 0.55)), open_hz=2300.0, close_hz=3700.0,
        decay_s=0.0045, close_ratio=0.75, hiss_hz=2000.0, hiss_db=-16.0, leak_hz=3000.0,
        level=0.030, azimuth_deg=335.0, faults=("leakage", "contamination"),
    ),
}

# Fault tables: fault -> {knob: (value at severity 0, value at severity 1)}. A knob left out keeps
# its healthy value from the matching *_HEALTHY table; `*_db` knobs are the level of an added fault
# component relative to the healthy machine (-inf: absent).
_OFF = -math.inf

_FAN_HEALTHY = {"imbalance_db": _OFF, "wobble": 0.0, "bearing_db": _OFF, "rubbing_db": _OFF}
FAN_FAULTS: dict[str, dict[str, tuple[float, float]]] = {
    "imbalance": {"imbalance_db": (-24.0, -4.0), "wobble": (0.05, 0.4)},
    "bearing": {"bearing_db": (-26.0, -4.0)},
    "rubbing": {"rubbing_db": (-24.0, -4.0)},
}

_PUMP_HEALTHY = {"leak_db": _OFF, "speed": 0.0, "flow_db": 0.0, "pulse_gain_db": 0.0, "cavitation_db": _OFF}
PUMP_FAULTS: dict[str, dict[str, tuple[float, float]]] = {
    "leakage": {"leak_db": (-24.0, -4.0)},
    "clogging": {"speed": (-0.02, -0.10), "flow_db": (-1.0, -6.0), "pulse_gain_db": (1.0, 8.0)},
    "cavitation": {"cavitation_db": (-24.0, -2.0)},
}

_SLIDER_HEALTHY = {"friction_db": _OFF, "damage_db": _OFF}
SLIDER_FAULTS: dict[str, dict[str, tuple[float, float]]] = {
    "friction": {"friction_db": (-28.0, -6.0)},
    "damage": {"damage_db": (-24.0, -2.0)},
}

_VALVE_HEALTHY = {"leak_db": _OFF, "bounce": 0.0, "shift": 0.0, "jitter_ms": 1.5}
VALVE_FAULTS: dict[str, dict[str, tuple[float, float]]] = {
    "leakage": {"leak_db": (-26.0, -4.0)},
    "contamination": {"bounce": (0.05, 0.8), "shift": (-0.01, -0.12), "jitter_ms": (2.0, 25.0)},
}


# --------------------------------------------------------------------------------------------------
# Signal primitives
# --------------------------------------------------------------------------------------------------

_TABLE_SIZE = 8192  # wavetable resolution: phase error < 1e-4 cycle, far below the background


def _db(value_db: float) -> float:
    """Amplitude ratio of a level in dB (-inf -> 0)."""
    return 10.0 ** (value_db / 20.0)


def _unit(x: np.ndarray) -> np.ndarray:
    """Scale `x` to unit RMS along the last axis (an all-zero signal stays zero)."""
    rms = np.sqrt(np.mean(np.square(x), axis=-1, keepdims=True))
    return x / np.where(rms > 0, rms, 1.0)


def _power(x: np.ndarray) -> np.ndarray:
    """Mean power per channel of `x` [shape=(channels, n)], accurate to ~1e-6 also in float32."""
    return np.array([np.dot(row, row) for row in x], dtype=np.float64) / x.shape[1]


def _jitter_db(rng: np.random.Generator, size: int | None = None, *, std_db: float) -> np.ndarray | float:
    """Random amplitude factor(s) of a few dB: the clip-to-clip variation of a healthy machine."""
    return 10.0 ** (rng.normal(0.0, std_db, size) / 20.0)


def _detune(rng: np.random.Generator, resonances: Sequence[Resonance], rel: float) -> tuple[Resonance, ...]:
    """Resonances with centres moved by a random fraction (std `rel`) and gains by ~1 dB."""
    shift = 1.0 + rel * rng.standard_normal(len(resonances))
    gain = _jitter_db(rng, len(resonances), std_db=1.0)
    return tuple((fc * s, q, g * a) for (fc, q, g), s, a in zip(resonances, shift, gain))


def _wander(rng: np.random.Generator, n: int, sr: int, *, depth: float, knot_s: float = 0.25) -> np.ndarray:
    """Slow random fluctuation around 0 (std `depth`), linear between knots every `knot_s`."""
    knots = depth * rng.standard_normal(int(math.ceil(n / sr / knot_s)) + 2)
    return np.interp(np.arange(n) / sr, np.arange(knots.size) * knot_s, knots)


def _cycles(
    rng: np.random.Generator, n: int, sr: int, rate_hz: float | np.ndarray, *, jitter: float = 0.007,
    wander: float = 0.002,
) -> np.ndarray:
    """Cumulative cycle count of a rotation or repetition at `rate_hz`, starting at a random phase.

    The rate is off by ~`jitter` (relative, per clip) and wanders slowly by ~`wander`, as a real
    motor's speed does with load and supply.
    """
    rate = rate_hz * (1.0 + jitter * rng.standard_normal()) * (1.0 + _wander(rng, n, sr, depth=wander))
    return rng.random() + np.cumsum(rate) / sr


def _harmonic_wave(
    cycles: np.ndarray, amps: Sequence[float], *, rng: np.random.Generator, f0_hz: float, sr: int
) -> np.ndarray:
    """Periodic wave with harmonics 1..K of amplitudes `amps` and random phases, following `cycles`.

    One period is tabulated and looked up by phase, so K harmonics cost one gather instead of K sines.
    Harmonics above 0.45 * sr are dropped (no aliasing).
    """
    amps = np.asarray(amps, dtype=float)
    k = np.arange(1, amps.size + 1)
    amps = np.where(k * f0_hz < 0.45 * sr, amps, 0.0)
    phases = rng.random(amps.size)
    grid = np.arange(_TABLE_SIZE) / _TABLE_SIZE
    table = amps @ np.sin(2 * np.pi * (k[:, None] * grid[None, :] + phases[:, None]))
    return table[_table_index(cycles)]


def _table_index(cycles: np.ndarray) -> np.ndarray:
    """Wavetable position of each sample (the table size is a power of two, so & wraps it)."""
    return (cycles * _TABLE_SIZE).astype(np.int64) & (_TABLE_SIZE - 1)


def _sine(cycles: np.ndarray) -> np.ndarray:
    """sin(2 pi cycles) by table look-up (a modulator; exact phase does not matter)."""
    return _sine_table()[_table_index(cycles)]


@lru_cache(maxsize=1)
def _sine_table() -> np.ndarray:
    table = np.sin(2 * np.pi * np.arange(_TABLE_SIZE) / _TABLE_SIZE)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=8)
def _freq_grid(n: int, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """rfft bin frequencies (floored at 1 Hz) and their octaves relative to 1 kHz, cached per (n, sr)."""
    f = np.maximum(sfft.rfftfreq(n, 1.0 / sr), 1.0)
    octaves = np.log2(f / 1000.0)
    f.flags.writeable = False
    octaves.flags.writeable = False
    return f, octaves


def _peak(f: np.ndarray, centre: float, q: float) -> np.ndarray:
    """Magnitude response of a second-order resonance (band-pass) at `centre` Hz."""
    x = q * (f / centre - centre / f)
    return 1.0 / np.sqrt(1.0 + x * x)


def _spectrum(
    n: int, sr: int, *, tilt_db_oct: float = 0.0, resonances: Sequence[Resonance] = (), floor: float = 0.2,
    highpass_hz: float = 30.0, lowpass_hz: float = 7000.0,
) -> np.ndarray:
    """Amplitude spectrum on the rfft grid: a slope, resonant peaks over a floor, band limits.

    Parameters
    ----------
    n, sr : int > 0
        Signal length (samples) and sample rate; the grid is ``rfftfreq(n, 1 / sr)``.
    tilt_db_oct : float
        Slope in dB per octave around 1 kHz (-3: pink, -6: brown).
    resonances : sequence of (centre Hz, Q, gain)
        Peaks added to `floor` before the slope is applied.
    floor : float >= 0
        Level between the peaks (relative to a peak of gain 1).
    highpass_hz, lowpass_hz : float > 0
        Corners of 2nd- and 4th-order band limits (the low-pass is kept below 0.45 * sr).

    Returns
    -------
    amp : np.ndarray [shape=(n // 2 + 1,)]
        Amplitude per bin, zero at DC.
    """
    f, octaves = _freq_grid(n, sr)
    amp = np.exp2(octaves * (tilt_db_oct / (20 * math.log10(2))))
    shape = np.full_like(f, floor)
    for centre, q, gain in resonances:
        shape += gain * _peak(f, centre, q)
    amp *= shape
    high = np.square(highpass_hz / f)
    low = np.square(np.square(f / min(lowpass_hz, 0.45 * sr)))
    amp /= np.sqrt((1.0 + high * high) * (1.0 + low * low))
    amp[0] = 0.0
    return amp


def _shaped_noise(
    rng: np.random.Generator, amp: np.ndarray, n: int, channels: int | None = None, *, rms: float = 1.0,
    dtype: type = np.float64,
) -> np.ndarray:
    """Noise of RMS ~`rms` with amplitude spectrum `amp`, made in the frequency domain.

    Real and imaginary parts of each bin are random bytes (uniform on -127.5..127.5), not Gaussian
    draws: every output sample sums thousands of bins, so it is Gaussian all the same, and random
    bytes are ~3x cheaper than floats. The level comes from the spectrum (Parseval), so the RMS is
    `rms` within a fraction of a percent.
    """
    shape = (amp.size,) if channels is None else (channels, amp.size)
    count = int(np.prod(shape)) * 2
    parts = np.frombuffer(rng.bytes(count), dtype=np.int8).astype(dtype).reshape(shape + (2,))
    parts += 0.5  # centre the bytes: a mean would add a fixed click at t = 0
    spec = parts.view(np.complex64 if dtype == np.float32 else np.complex128)[..., 0]
    # Expected power: both halves of the spectrum count (except the Nyquist bin), 2 parts per bin.
    power = (2.0 * np.sum(np.square(amp)) - (amp[-1] ** 2 if n % 2 == 0 else 0.0)) * 2.0 * _BYTE_VAR
    spec *= (amp * (rms * n / math.sqrt(power) if power > 0 else 0.0)).astype(dtype)
    return sfft.irfft(spec, n, axis=-1)


_BYTE_VAR = (256**2 - 1) / 12.0  # variance of a byte uniform on -127.5 .. 127.5


def _ring(n: int, index: np.ndarray, amps: np.ndarray | float, modes: Sequence[Mode], sr: int) -> np.ndarray:
    """Impulses at sample positions `index` (amplitudes `amps`), each ringing the damped `modes`.

    A mode (frequency Hz, decay time s, amplitude) rings as ``amp * exp(-t / decay) * sin(2 pi f t)``.
    Few impulses: copies of that kernel are added where they fall. Many (thousands of bearing or
    cavitation impacts): the impulse train goes through one two-pole resonator per mode, whose
    impulse response is the same kernel, in O(n).
    """
    index = np.asarray(index, dtype=np.int64)
    amps = np.broadcast_to(np.asarray(amps, dtype=float), index.shape)
    keep = (index >= 0) & (index < n) & (amps != 0)
    index, amps = index[keep], amps[keep]
    length = int(6 * max(decay for _, decay, _ in modes) * sr) + 1
    if index.size * length <= n:
        t = np.arange(length) / sr
        kernel = sum(a * np.exp(-t / decay) * np.sin(2 * np.pi * min(f, 0.45 * sr) * t) for f, decay, a in modes)
        out = np.zeros(n + length)
        for i, a in zip(index, amps):  # one slice per event, not per sample
            out[i : i + length] += a * kernel
        return out[:n]
    impulses = np.zeros(n)
    np.add.at(impulses, index, amps)
    out = np.zeros(n)
    for freq, decay, amp in modes:
        r = math.exp(-1.0 / (decay * sr))
        theta = 2 * math.pi * min(freq, 0.45 * sr) / sr
        out += lfilter([0.0, amp * r * math.sin(theta)], [1.0, -2.0 * r * math.cos(theta), r * r], impulses)
    return out


def _crossings(cycles: np.ndarray, offset: float = 0.0) -> np.ndarray:
    """Sample indices where the increasing `cycles` passes ``k + offset`` (once per cycle, at that phase)."""
    first = math.floor(cycles[0] - offset) + 1
    last = math.floor(cycles[-1] - offset)
    return np.searchsorted(cycles, np.arange(first, last + 1) + offset)


def _gate(n: int, sr: int, starts_s: np.ndarray, stops_s: np.ndarray, *, ramp_s: float) -> np.ndarray:
    """1 inside the intervals [start, stop), 0 outside, with linear ramps of `ramp_s`."""
    step = np.zeros(n + 1)
    np.add.at(step, np.clip(np.rint(np.asarray(starts_s) * sr).astype(np.int64), 0, n), 1.0)
    np.add.at(step, np.clip(np.rint(np.asarray(stops_s) * sr).astype(np.int64), 0, n), -1.0)
    inside = np.clip(np.cumsum(step[:n]), 0.0, 1.0)
    return uniform_filter1d(inside, size=max(1, int(ramp_s * sr)), mode="nearest")


def _array_response(channels: int, sr: int, azimuth_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Delays (samples, >= 0) and gains of a far source at `azimuth_deg` on a circular array."""
    mic = 2 * np.pi * np.arange(channels) / channels
    cos = np.cos(np.deg2rad(azimuth_deg) - mic)
    delay = -MIC_RADIUS_M / SPEED_OF_SOUND * cos * sr
    # Mics facing the source hear it a little louder; each capsule's sensitivity differs by ~0.3 dB.
    gain = (1.0 + 0.06 * cos) * 10.0 ** (0.3 * np.sin(2.1 * np.arange(channels) + 0.5) / 20.0)
    return delay - delay.min(), gain


def _steer(mono: np.ndarray, delay: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """Copies of `mono` per channel [float32], delayed (circularly) by fractional `delay` samples and
    scaled by `gain`. The fractional part is linear interpolation between two neighbouring samples.
    """
    whole = np.floor(delay).astype(int)
    frac = delay - whole
    lead = int(whole.max()) + 1
    padded = np.concatenate([mono[mono.size - lead :], mono]).astype(np.float32)  # padded[lead + i] == mono[i]
    n = mono.size
    out = np.empty((delay.size, n), dtype=np.float32)
    for c in range(delay.size):  # a handful of channels, each vectorised
        start = lead - whole[c]
        np.multiply(padded[start : start + n], np.float32(gain[c] * (1.0 - frac[c])), out=out[c])
        out[c] += np.float32(gain[c] * frac[c]) * padded[start - 1 : start - 1 + n]
    return out


# --------------------------------------------------------------------------------------------------
# Machine sources: each returns a mono signal whose healthy part has RMS ~1; fault components are
# added at their `*_db` knob relative to it.
# --------------------------------------------------------------------------------------------------


def _fan_source(p: FanParams, rng: np.random.Generator, n: int, sr: int, knobs: Mapping[str, float]) -> np.ndarray:
    """Fan: blade-pass harmonics + shaft tone + airflow noise chopped at the blade-pass rate."""
    rot = _cycles(rng, n, sr, p.rot_hz)
    bpf_hz = p.rot_hz * p.blades
    amps = np.asarray(p.bpf_harmonics) * _jitter_db(rng, len(p.bpf_harmonics), std_db=1.5)
    tones = _unit(_harmonic_wave(rot * p.blades, amps, rng=rng, f0_hz=bpf_hz, sr=sr))
    shaft = _unit(_harmonic_wave(rot, (1.0, 0.3), rng=rng, f0_hz=p.rot_hz, sr=sr))  # residual imbalance
    amp = _spectrum(n, sr, tilt_db_oct=p.tilt_db_oct, resonances=_detune(rng, p.airflow, 0.02))
    airflow = _unit(_shaped_noise(rng, amp, n) * (1.0 + 0.15 * _sine(rot * p.blades + rng.random())))
    w_tone, w_shaft = _db(p.tonal_db), _db(-26.0)
    x = (_jitter_db(rng, std_db=1.0) * w_tone * tones + w_shaft * shaft + airflow) / math.hypot(w_tone, w_shaft, 1.0)

    # Imbalance: the whole machine wobbles once per revolution (sidebands) and the shaft tone grows.
    x *= 1.0 + knobs["wobble"] * _sine(rot + rng.random())
    if knobs["imbalance_db"] > _OFF:
        x += _db(knobs["imbalance_db"]) * _unit(_harmonic_wave(rot, (1.0, 0.35), rng=rng, f0_hz=p.rot_hz, sr=sr))
    if knobs["bearing_db"] > _OFF:
        x += _db(knobs["bearing_db"]) * _fan_bearing(p, rot, rng, sr)
    if knobs["rubbing_db"] > _OFF:
        x += _db(knobs["rubbing_db"]) * _fan_rubbing(rot, rng, n, sr)
    return x


def _fan_bearing(p: FanParams, rot: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Bearing defect: an impact per defect passage, stronger in the load zone, ringing a high mode."""
    hits = _crossings(rot * p.bearing_order * (1.0 + 0.01 * rng.standard_normal()))
    amps = rng.lognormal(0.0, 0.4, hits.size) * (1.0 + 0.6 * _sine(rot[hits] + 0.25))
    modes = ((p.bearing_hz, 0.0008, 1.0), (p.bearing_hz * 1.37, 0.0005, 0.5))
    return _unit(_ring(rot.size, hits, amps, modes, sr))


def _fan_rubbing(rot: np.ndarray, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Rubbing: contact noise during part of each revolution, of varying strength per revolution."""
    width = rng.uniform(0.1, 0.3)
    rev = np.floor(rot).astype(np.int64)
    strength = rng.lognormal(0.0, 0.5, rev[-1] - rev[0] + 1)[rev - rev[0]]
    contact = uniform_filter1d((np.mod(rot + rng.random(), 1.0) < width).astype(float), size=int(0.003 * sr))
    amp = _spectrum(n, sr, resonances=((1800.0, 1.2, 1.0), (3600.0, 2.0, 0.6)), floor=0.1)
    return _unit(_shaped_noise(rng, amp, n) * contact * strength)


def _pump_source(p: PumpParams, rng: np.random.Generator, n: int, sr: int, knobs: Mapping[str, float]) -> np.ndarray:
    """Pump: shaft / vane-pass pulsation + flow noise amplitude-modulated by the vane-pass pulsation."""
    rot_hz = p.rot_hz * (1.0 + knobs["speed"])
    rot = _cycles(rng, n, sr, rot_hz)
    orders = max(order for order, _ in p.pulsation)
    amps = np.zeros(orders)
    for order, a in p.pulsation:
        amps[order - 1] = a
    amps *= _jitter_db(rng, orders, std_db=1.5)
    pulse = _unit(_harmonic_wave(rot, amps, rng=rng, f0_hz=rot_hz, sr=sr))
    vane = _sine(rot * p.vanes + rng.random())
    amp = _spectrum(n, sr, tilt_db_oct=p.tilt_db_oct, resonances=_detune(rng, p.flow, 0.015))
    flow = _unit(_shaped_noise(rng, amp, n) * (1.0 + p.am_depth * vane))
    w_pulse = _db(p.pulse_db)
    x = (
        w_pulse * _db(knobs["pulse_gain_db"]) * _jitter_db(rng, std_db=1.0) * pulse + _db(knobs["flow_db"]) * flow
    ) / math.hypot(w_pulse, 1.0)

    if knobs["leak_db"] > _OFF:  # jet noise through a gap: hiss that fluctuates slowly
        hiss = _shaped_noise(rng, _spectrum(n, sr, resonances=((p.leak_hz, 1.2, 1.0),), floor=0.05), n)
        x += _db(knobs["leak_db"]) * _unit(hiss * (1.0 + _wander(rng, n, sr, depth=0.25)))
    if knobs["cavitation_db"] > _OFF:
        x += _db(knobs["cavitation_db"]) * _pump_cavitation(vane, rng, n, sr)
    return x


def _pump_cavitation(vane: np.ndarray, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Cavitation: bursts of bubble collapses (crackle) in the low-pressure phase of the pulsation."""
    n_bursts = max(1, rng.poisson(0.8 * n / sr))
    starts = rng.uniform(-0.3, n / sr, n_bursts)
    bursts = _gate(n, sr, starts, starts + rng.uniform(0.15, 0.8, n_bursts), ramp_s=0.02)
    rate_hz = 1500.0 * bursts * (vane < -0.2)
    hits = np.flatnonzero(rng.random(n) < rate_hz / sr)
    modes = ((2600.0, 0.0003, 1.0), (5200.0, 0.0002, 0.6))
    return _unit(_ring(n, hits, rng.exponential(1.0, hits.size), modes, sr))


def _slider_source(
    p: SliderParams, rng: np.random.Generator, n: int, sr: int, knobs: Mapping[str, float]
) -> np.ndarray:
    """Slider: travel out and back each cycle; whine and rolling noise follow the speed; end-stop clicks."""
    cyc = _cycles(rng, n, sr, 1.0 / p.period_s, jitter=0.01, wander=0.003)
    half = p.travel_frac / 2  # each direction's travel, as a fraction of the cycle
    travel = np.mod(cyc, 0.5) / half  # 0..1 along the current travel (out or back), > 1 while dwelling
    speed = _sine(0.5 * np.minimum(travel, 1.0))  # sin(pi * travel): smooth start and stop, 0 at rest

    motor = np.cumsum(p.motor_hz * speed * (1.0 + _wander(rng, n, sr, depth=0.003))) / sr
    whine = _unit(_harmonic_wave(motor, p.motor_harmonics, rng=rng, f0_hz=p.motor_hz, sr=sr) * speed)
    amp = _spectrum(n, sr, tilt_db_oct=-1.5, resonances=_detune(rng, p.rolling, 0.02))
    rolling = _unit(_shaped_noise(rng, amp, n) * speed)
    stops = np.concatenate([_crossings(cyc, half), _crossings(cyc, 0.5 + half)])
    starts = np.concatenate([_crossings(cyc, 0.0), _crossings(cyc, 0.5)])
    amps = np.concatenate([rng.lognormal(0.0, 0.2, stops.size), 0.3 * rng.lognormal(0.0, 0.2, starts.size)])
    f_click = p.click_hz * (1.0 + 0.01 * rng.standard_normal())
    modes = ((f_click, 0.006, 1.0), (f_click * 0.43, 0.012, 0.6), (f_click * 2.1, 0.002, 0.3))
    clicks = _unit(_ring(n, np.concatenate([stops, starts]), amps, modes, sr))
    w_whine, w_click = _db(p.whine_db), _db(p.click_db)
    x = (
        _jitter_db(rng, std_db=1.0) * w_whine * whine + rolling + _jitter_db(rng, std_db=1.0) * w_click * clicks
    ) / math.hypot(w_whine, 1.0, w_click)

    if knobs["friction_db"] > _OFF:
        x += _db(knobs["friction_db"]) * _slider_friction(p, speed, rng, n, sr)
    if knobs["damage_db"] > _OFF:
        # The carriage passes the damaged spot once each way: forward at d, back at 1 - d of the travel.
        d = np.arccos(1.0 - 2.0 * p.damage_pos) / np.pi  # position (1 - cos) / 2 -> fraction of travel time
        passes = np.concatenate([_crossings(cyc, half * d), _crossings(cyc, 0.5 + half * (1.0 - d))])
        impact = np.sin(np.pi * d) * rng.lognormal(0.0, 0.15, passes.size)
        modes = ((p.damage_hz, 0.0012, 1.0), (p.damage_hz * 0.26, 0.004, 0.5))
        x += _db(knobs["damage_db"]) * _unit(_ring(n, passes, impact, modes, sr))
    return x


def _slider_friction(p: SliderParams, speed: np.ndarray, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Friction: squeal bursts (narrow-band, with harmonics) at random moments of travel."""
    moving = np.flatnonzero(speed > 0.3)
    n_bursts = max(1, rng.poisson(1.5 * n / sr))
    centres = rng.choice(moving, n_bursts) / sr if moving.size else rng.uniform(0, n / sr, n_bursts)
    lengths = rng.uniform(0.05, 0.25, n_bursts)
    gate = _gate(n, sr, centres - lengths / 2, centres + lengths / 2, ramp_s=0.01)
    f_sq = p.squeal_hz * (1.0 + 0.03 * rng.standard_normal())
    amp = _spectrum(n, sr, resonances=((f_sq, 12.0, 1.0), (2 * f_sq, 12.0, 0.4)), floor=0.02)
    return _unit(_shaped_noise(rng, amp, n) * gate * speed)


def _valve_source(p: ValveParams, rng: np.random.Generator, n: int, sr: int, knobs: Mapping[str, float]) -> np.ndarray:
    """Valve: clicks at each opening and closing, flow hiss while open, faint hiss in between."""
    period = p.period_s * (1.0 + 0.01 * rng.standard_normal())
    k = np.arange(-1, int(math.ceil(n / sr / period)) + 1)[:, None]
    start = -rng.random() * period
    jitter_s = knobs["jitter_ms"] / 1000.0
    pattern = np.asarray(p.pattern)
    opens = (start + (k + pattern[None, :, 0]) * period).ravel()
    closes = (start + (k + pattern[None, :, 1]) * period).ravel()
    opens += rng.normal(0.0, jitter_s, opens.size)
    closes += rng.normal(0.0, jitter_s, closes.size)
    is_open = _gate(n, sr, opens, closes, ramp_s=0.005)

    clicks = np.zeros(n)
    for times, ratio, f_hz in ((opens, 1.0, p.open_hz), (closes, p.close_ratio, p.close_hz)):
        amps = ratio * rng.lognormal(0.0, 0.15, times.size)
        # Contamination: the armature bounces (a second, weaker click a few ms later).
        bounces = times + rng.uniform(0.003, 0.012, times.size)
        index = np.rint(np.concatenate([times, bounces]) * sr)
        ring_hz = f_hz * (1.0 + knobs["shift"]) * (1.0 + 0.01 * rng.standard_normal())  # deposits detune it
        modes = ((ring_hz, p.decay_s, 1.0), (0.27 * ring_hz, 2.5 * p.decay_s, 0.6))
        clicks += _ring(n, index, np.concatenate([amps, knobs["bounce"] * amps]), modes, sr)
    amp = _spectrum(n, sr, resonances=_detune(rng, ((p.hiss_hz, 1.0, 1.0),), 0.02), floor=0.05)
    hiss = _unit(_shaped_noise(rng, amp, n) * (0.08 + is_open))
    w_hiss = _db(p.hiss_db)
    x = (_unit(clicks) + _jitter_db(rng, std_db=1.0) * w_hiss * hiss) / math.hypot(1.0, w_hiss)

    if knobs["leak_db"] > _OFF:  # a seat that no longer seals: hiss while closed
        leak = _shaped_noise(rng, _spectrum(n, sr, resonances=((p.leak_hz, 2.0, 1.0),), floor=0.05), n)
        x += _db(knobs["leak_db"]) * _unit(leak * (1.0 - is_open))
    return x


# --------------------------------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------------------------------


FACTORY_ROOM: tuple[Resonance, ...] = ((250.0, 1.5, 0.8), (800.0, 2.0, 0.5), (2500.0, 1.5, 0.3))
"""Resonances of the factory hall, shared by every clip (each clip moves them by a few percent)."""


def _background(rng: np.random.Generator, n: int, sr: int, channels: int) -> np.ndarray:
    """Factory background [shape=(channels, n)], RMS ~1 per channel, different in every clip.

    A diffuse part common to the array, arriving from a random direction: pinkish noise (-2.6 to
    -3.6 dB per octave) shaped by the hall's resonances, with a slowly varying level; mains hum;
    distant impacts (~0.4 per second).
    Plus noise with the same spectrum that is independent on each microphone.
    """
    amp = _spectrum(
        n, sr, tilt_db_oct=rng.uniform(-3.6, -2.6), resonances=_detune(rng, FACTORY_ROOM, 0.03),
        floor=1.0, highpass_hz=20.0,
    )
    diffuse = _shaped_noise(rng, amp, n) * (1.0 + _wander(rng, n, sr, depth=0.15, knot_s=0.5))

    mains = rng.random() + MAINS_HZ * (1.0 + 0.0005 * rng.standard_normal()) / sr * np.arange(n)  # the grid is stable
    hum_amps = np.array([1.0, 0.5, 0.7, 0.2, 0.4, 0.1, 0.2]) * _jitter_db(rng, 7, std_db=3.0)
    hum = _unit(_harmonic_wave(mains, hum_amps, rng=rng, f0_hz=MAINS_HZ, sr=sr))
    common = _unit(diffuse) + _db(rng.uniform(-22.0, -16.0)) * hum

    n_impacts = rng.poisson(0.4 * n / sr)
    if n_impacts:
        times = rng.integers(0, n, n_impacts)
        low, mid = rng.uniform(120.0, 400.0), rng.uniform(700.0, 2000.0)
        modes = ((low, rng.uniform(0.03, 0.1), 1.0), (mid, 0.01, 0.4))
        impacts = _ring(n, times, rng.lognormal(0.0, 0.5, n_impacts), modes, sr)
        common += rng.uniform(1.0, 3.0) * impacts / np.max(np.abs(impacts))  # peaks at 1-3x the noise RMS

    delay, gain = _array_response(channels, sr, rng.uniform(0.0, 360.0))
    own = rng.uniform(0.25, 0.5)  # power fraction independent per microphone
    # float32 halves the cost of the largest pieces; the int16 output cannot tell the difference.
    background = _steer(_unit(common), delay, gain * math.sqrt(1.0 - own))
    background += _shaped_noise(rng, amp, n, channels, rms=math.sqrt(own), dtype=np.float32)
    return background


# --------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _TypeModel:
    """What makes one machine type: per-ID parameters, fault knobs, and the source function."""

    params: Mapping[str, object]
    healthy: Mapping[str, float]
    faults: Mapping[str, Mapping[str, tuple[float, float]]]
    source: Callable[..., np.ndarray]


_MODELS: dict[str, _TypeModel] = {
    "fan": _TypeModel(FAN_PARAMS, _FAN_HEALTHY, FAN_FAULTS, _fan_source),
    "pump": _TypeModel(PUMP_PARAMS, _PUMP_HEALTHY, PUMP_FAULTS, _pump_source),
    "slider": _TypeModel(SLIDER_PARAMS, _SLIDER_HEALTHY, SLIDER_FAULTS, _slider_source),
    "valve": _TypeModel(VALVE_PARAMS, _VALVE_HEALTHY, VALVE_FAULTS, _valve_source),
}


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


def _components(job: _ClipJob) -> tuple[np.ndarray, np.ndarray]:
    """Machine and background of a (validated) clip, float32 [shape=(channels, n)], SNR applied."""
    n = _n_samples(job.seconds, job.sr)
    model = _MODELS[job.machine_type]
    params = model.params[job.machine_id]
    clip_rng = np.random.default_rng(
        [job.seed, _stable_code(job.machine_type), _stable_code(job.machine_id), LABELS.index(job.label), job.index]
    )
    # Separate streams: the background of a clip is the same whatever the machine draws.
    machine_rng, background_rng = clip_rng.spawn(2)

    knobs = dict(model.healthy)
    if job.label == "abnormal":
        fault = params.faults[machine_rng.integers(len(params.faults))]
        severity = machine_rng.random()
        for knob, (lo, hi) in model.faults[fault].items():
            knobs[knob] = lo + severity * (hi - lo)
    mono = model.source(params, machine_rng, n, job.sr, knobs)
    mono *= params.level * _jitter_db(machine_rng, std_db=0.7)
    machine = _steer(mono, *_array_response(job.channels, job.sr, params.azimuth_deg))

    background = _background(background_rng, n, job.sr, job.channels)
    gain = np.sqrt(_power(machine) / _power(background) / 10.0 ** (job.snr / 10.0))
    background *= gain.astype(np.float32)[:, None]
    return machine, background


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


def _check_snr(snr: object) -> float:
    if isinstance(snr, bool) or not isinstance(snr, (int, float, np.integer, np.floating)) or not math.isfinite(snr):
        raise DataError(f"snr={snr!r} must be a finite number of dB")
    return float(snr)


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


def machine_clip(
    machine_type: str,
    machine_id: str,
    *,
    label: str,
    index: int,
    seed: int = 0,
    seconds: float = 10.0,
    sr: int = 16000,
    channels: int = 8,
    snr: float = -6.0,
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
        Machine-to-background power ratio in dB, exact on every channel.

    Returns
    -------
    machine : np.ndarray [shape=(channels, n_samples), dtype=float64]
        The machine as each microphone hears it (1.0 = int16 full scale).
    background : np.ndarray [shape=(channels, n_samples), dtype=float64]
        Factory background, scaled so that per channel
        ``10 * log10(mean(machine**2) / mean(background**2)) == snr``.

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
    _check_machine(machine_type, machine_id)
    if label not in LABELS:
        raise DataError(f"label={label!r} must be one of {LABELS}")
    index = _check_int(index, "index", minimum=0)
    seed = _check_int(seed, "seed", minimum=0)
    seconds = _check_positive(seconds, "seconds")
    sr = _check_int(sr, "sr", minimum=MIN_SR)
    channels = _check_int(channels, "channels", minimum=1)
    snr = _check_snr(snr)
    _n_samples(seconds, sr)
    job = _ClipJob(None, machine_type, machine_id, label, index, seed, seconds, sr, channels, snr)
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


    machine_type: str
    machine_id: str
    label: str
    index: int
    seed: int
    seconds: float
    sr: int
    channels: int
    snr: float


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


def _init_worker() -> None:
    """Let a worker process keep freed memory instead of returning it to the OS after every clip.

    Each clip allocates and frees ~40 MB; with glibc's default (trim and re-fault the heap every
    time) that costs about a quarter of the run on some virtual machines. Only our own worker processes
    are tuned, never the caller's. Best effort: on non-glibc systems nothing changes.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 1 << 30)  # M_TRIM_THRESHOLD: keep up to 1 GiB of free heap
        libc.mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD: arrays up to 32 MiB come from the heap
    except (OSError, AttributeError):
        pass


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


def generate_dataset(
    root: str | os.PathLike,
    *,
    snr: float = -6,
    n_normal: int = 100,
    n_abnormal: int = 30,
    seconds: float = 10.0,
    channels: int = 8,
    seed: int = 0,
    types: Iterable[str] = MACHINE_TYPES,
    ids: Iterable[str] = MACHINE_IDS,
    sr: int = 16000,
    jobs: int = 1,
    progress: bool = True,
    overwrite: bool = False,
) -> list[Path]:
    """Write a synthetic data set in the MIMII layout: ``root/{snr}_dB_{type}/{type}/{id}/{label}/NNNNNNNN.wav``.

    Parameters
    ----------
    root : path
        Data root; created if missing.
    snr : float
        Machine-to-background ratio in dB (MIMII: -6, 0, 6).
    n_normal : int >= 1
    n_abnormal : int >= 0
        Clips per machine, each numbered from 0.
    seconds : float > 0
    channels : int >= 1
    seed : int >= 0
        Data set seed; different seeds give different clips.
    types, ids : iterables of str
        Subsets of `MACHINE_TYPES` and `MACHINE_IDS`.
    sr : int >= 16000
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
    snr = _check_snr(snr)
    n_normal = _check_int(n_normal, "n_normal", minimum=1)
    n_abnormal = _check_int(n_abnormal, "n_abnormal", minimum=0)
    seconds = _check_positive(seconds, "seconds")
    channels = _check_int(channels, "channels", minimum=1)
    seed = _check_int(seed, "seed", minimum=0)
    types = _check_names(types, "types", MACHINE_TYPES)
    ids = _check_names(ids, "ids", MACHINE_IDS)
    sr = _check_int(sr, "sr", minimum=MIN_SR)
    jobs = _check_int(jobs, "jobs", minimum=1)
    _n_samples(seconds, sr)
    if not isinstance(root, (str, os.PathLike)):
        raise DataError(f"root={root!r} must be a path")
    root = Path(root)

    machines: list[Path] = []
    todo: list[_ClipJob] = []
    counts = {"normal": n_normal, "abnormal": n_abnormal}
    for machine_type in types:
        for machine_id in ids:
            folder = root / snr_folder(snr, machine_type) / machine_type / machine_id
            for label, count in counts.items():
                names = [f"{i:08d}.wav" for i in range(count)]
                _check_no_strays(folder / label, set(names))
                todo += [
                    _ClipJob(folder / label / name, machine_type, machine_id, label, i, seed, seconds, sr, channels,
                             snr)
                    for i, name in enumerate(names)
                ]
            machines.append(folder)
    if not overwrite:
        _check_not_written(root, [job.path for job in todo])
    for folder in machines:
        for label in counts:
            (folder / label).mkdir(parents=True, exist_ok=True)

    with tqdm(total=len(todo), desc=f"synth {snr:g} dB", unit="clip", disable=not progress) as bar:
        if jobs == 1 or len(todo) <= 1:
            for job in todo:
                _write_clip(job)
                bar.update()
        else:
            # spawn, not fork: the caller may hold threads (a Keras session) that fork would copy mid-lock.
            workers = min(jobs, len(todo))
            context = get_context("spawn")
            try:
                with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker) as pool:
                    with _workers_ignore_ctrl_c():
                        done = pool.map(_write_clip, todo, chunksize=8)
                    try:
                        for _ in done:
                            bar.update()
                    except KeyboardInterrupt:
                        pool.shutdown(wait=True, cancel_futures=True)  # the clips being written finish whole
                        raise
            except BrokenProcessPool as exc:
                raise ProjectError(
                    f"generate_dataset(jobs={jobs}): a worker process died. Called from a script, the call "
                    "must sit under `if __name__ == '__main__':` (workers re-import the script); "
                    "otherwise memory may have run out. jobs=1 avoids worker processes."
                ) from exc
    return machines
