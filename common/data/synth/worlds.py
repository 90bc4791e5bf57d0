"""Synthetic worlds (issue 28): one table of how machines fail, what tells their IDs apart, and the factory noise.

One world is not evidence: every conclusion drawn on the default world (where every fault adds energy)
may be a property of its generator. A world here is a row of `WORLDS`: a fault family
(`common.data.synth.faults`), the ID differences, and the background. ``python -m common synth --world NAME``
writes one; ``--list-worlds`` lists them.

- IDs. ``id_band_hz=None``: each ID has its own row of the type's table (rates, blade counts, resonances,
  ...), as today, so a classifier of IDs learns from every band. Otherwise every ID of a type sounds like
  its type's id_00 (keeping its own level, direction, faults and severities) but for one resonance of its
  own inside ``id_band_hz``: a classifier of IDs learns that band and nothing else. In the fault band,
  what it learns is where the faults are; apart from it, it is not.
- Background. ``stationary``: today's factory noise (`machines._background`). ``changing``: the same,
  with level steps within a clip (doors, forklifts, machines starting) and a neighbour machine that
  runs in some clips, or part of one, and not in others.

The default world renders exactly what the generator rendered before worlds existed (the pinned
results and the DCASE sets depend on it): its rows draw nothing the old code did not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
from scipy.ndimage import uniform_filter1d

from common.errors import DataError
from common.data.names import MACHINE_IDS
from common.data.synth.dsp import _array_response, _db, _freq_grid, _harmonic_wave, _peak, _shaped_noise, _spectrum, _steer, _unit
from common.data.synth.faults import FAMILIES, Source
from common.data.synth.machines import _MODELS

DEFAULT_WORLD = "default"
FAULT_BAND_HZ = (2000.0, 3500.0)  # where the band-limited faults act (panel mode, knock mode, pulsing band)
APART_BAND_HZ = (4500.0, 6500.0)  # an ID band that shares nothing with the fault band
SIGNATURE_DB = 12.0  # an ID's own resonance over its type's shared sound
SIGNATURE_Q = 6.0
KEPT_FIELDS = ("level", "azimuth_deg", "faults", "severity")  # what an ID keeps of its own row when IDs are alike


def stationary(background: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Today's factory noise, untouched (draws nothing, so the default world stays as it was)."""
    return background


def changing(background: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Factory noise that changes within and between clips: level steps, and a neighbour machine on or off."""
    channels, n = background.shape
    out = background * _level_steps(rng, n, sr).astype(np.float32)
    if rng.random() < 0.6:  # the neighbour runs in this clip, for part of it or all of it
        rms = math.sqrt(float(np.mean(np.square(background, dtype=np.float64))))
        out += _neighbour(rng, n, sr, channels) * np.float32(rms * _db(rng.uniform(-4.0, 2.0)))
    return out


def _level_steps(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Gain [shape=(n,)] that steps every ~1.5 s to a level ~4 dB around 0 dB, with 0.1 s ramps."""
    edges = np.cumsum(rng.exponential(1.5, int(n / sr / 0.3) + 2))
    levels = 10.0 ** (rng.normal(0.0, 4.0, edges.size + 1) / 20.0)
    gain = levels[np.searchsorted(edges, np.arange(n) / sr)]
    return uniform_filter1d(gain, size=max(1, int(0.1 * sr)), mode="nearest")


def _neighbour(rng: np.random.Generator, n: int, sr: int, channels: int) -> np.ndarray:
    """A compressor nearby [shape=(channels, n)], unit RMS while on: a low harmonic series and a noise band,
    switched on and off at random instants, from its own direction."""
    f0 = rng.uniform(35.0, 90.0)
    cycles = rng.random() + f0 * np.arange(n) / sr
    hum = _unit(_harmonic_wave(cycles, 1.0 / np.arange(1, 13), rng=rng, f0_hz=f0, sr=sr))
    hiss = _shaped_noise(rng, _spectrum(n, sr, resonances=((rng.uniform(600.0, 1500.0), 2.0, 1.0),), floor=0.05), n)
    start, length = rng.uniform(-0.5, 1.0) * n, rng.uniform(0.3, 1.5) * n
    on = np.zeros(n)
    on[int(max(0, start)) : int(max(0, min(n, start + length)))] = 1.0
    on = uniform_filter1d(on, size=max(1, int(0.2 * sr)), mode="nearest")
    return _steer((hum + hiss) / math.sqrt(2.0) * on, *_array_response(channels, sr, rng.uniform(0.0, 360.0)))


BACKGROUNDS: dict[str, Callable[[np.ndarray, np.random.Generator, int], np.ndarray]] = {
    "stationary": stationary,
    "changing": changing,
}


@dataclass(frozen=True)
class World:
    """How a world's machines fail (`faults.FAMILIES`), what tells their IDs apart, and its factory noise."""

    family: str  # key of faults.FAMILIES
    id_band_hz: tuple[float, float] | None  # None: each ID its own row; else: IDs alike but a resonance here
    background: str  # key of BACKGROUNDS
    fault_band_hz: tuple[float, float] = FAULT_BAND_HZ

    def describe(self) -> str:
        """One line: energy (neutral or added), the faults, the IDs, the background."""
        family = FAMILIES[self.family]
        energy = "energy-neutral" if family.neutral else "energy-adding"
        if self.id_band_hz is None:
            ids = "IDs differ everywhere"
        else:
            where = "in the fault band" if self.id_band_hz == self.fault_band_hz else "apart from the faults"
            ids = f"IDs alike but a resonance {where} ({self.id_band_hz[0]:g}-{self.id_band_hz[1]:g} Hz)"
        return f"{energy}: {family.summary}; {ids}; {self.background} background"


WORLDS: dict[str, World] = {
    DEFAULT_WORLD: World("additive", None, "stationary"),
    "slow_drive": World("slow_drive", None, "stationary"),
    "panel_band": World("panel_band", FAULT_BAND_HZ, "stationary"),
    "loose_knock": World("loose_knock", APART_BAND_HZ, "changing"),
    "bearing_pulse": World("bearing_pulse", None, "stationary"),
    "additive_changing": World("additive", APART_BAND_HZ, "changing"),
}


def check_world(world: object) -> str:
    """`world` if it names a row of `WORLDS`; else a DataError naming the valid ones."""
    if not isinstance(world, str) or world not in WORLDS:
        raise DataError(f"world={world!r} is not a synthetic world; valid: {', '.join(WORLDS)}")
    return world


def world_lines() -> list[str]:
    """One line per world, its name first, then what it is (``synth --list-worlds``)."""
    width = max(map(len, WORLDS))
    return [f"{name:<{width}}  {world.describe()}" for name, world in WORLDS.items()]


def id_params(world: World, machine_type: str, machine_id: str, params: Any) -> Any:
    """The row an ID sounds by in `world`: its own, or (IDs alike) its type's first row with its own `KEPT_FIELDS`."""
    if world.id_band_hz is None:
        return params
    shared = _MODELS[machine_type].params[MACHINE_IDS[0]]
    return replace(shared, **{name: getattr(params, name) for name in KEPT_FIELDS})


def id_source(world: World, machine_type: str, machine_id: str) -> Source:
    """The ID's sound: its type's source, plus (IDs alike) its own resonance in the world's ID band."""
    source = _MODELS[machine_type].source
    if world.id_band_hz is None:
        return source
    lo, hi = world.id_band_hz
    centre = lo * (hi / lo) ** ((MACHINE_IDS.index(machine_id) + 0.5) / len(MACHINE_IDS))

    def signed(params: Any, rng: np.random.Generator, n: int, sr: int, knobs: dict) -> np.ndarray:
        """The type's sound through the ID's resonance, at the level it had without it."""
        x = source(params, rng, n, sr, knobs)
        f, _ = _freq_grid(n, sr)
        gain = 1.0 + (_db(SIGNATURE_DB) - 1.0) * _peak(f, centre, SIGNATURE_Q)
        y = np.fft.irfft(np.fft.rfft(x) * gain, n)
        return y * math.sqrt(float(np.mean(x * x)) / max(float(np.mean(y * y)), 1e-30))

    return signed
