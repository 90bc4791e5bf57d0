"""Fault families of the synthetic worlds (issue 28): how a machine's healthy sound changes when it fails.

Today's generator (the ``additive`` family, the default world) has every fault *add* a sound on top of
the healthy machine: any detector of excess energy in some band finds it. Real faults often do not:
a slipping drive, a loosened panel, a rattling guard or a worn bearing change *how* the machine sounds,
not how loud it is. The other families here are energy-neutral: the faulty clip is scaled to the RMS of
the same clip rendered healthy (same random draws), so a change of level never gives the fault away.

A family renders the faulty mono source of one clip from a `FaultClip` (the ID's parameters, its
source function, the clip's random streams, the fault and its severity in [0, 1]). The worlds
(`common.data.synth.worlds`) say which family, which ID differences and which background go together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np
import scipy.fft as sfft

from common.data.synth.dsp import _cycles, _db, _freq_grid, _peak, _ring, _sine
from common.data.synth.machines import at_speed

Source = Callable[..., np.ndarray]  # (params, rng, n, sr, knobs) -> mono signal, RMS ~1 when healthy


@dataclass(frozen=True)
class FaultClip:
    """Everything a fault family needs to render one abnormal clip's mono machine sound."""

    machine_type: str
    params: Any  # the ID's row of its type's table (a frozen dataclass)
    source: Source  # the ID's sound (with its world's ID signature, if any)
    healthy: Mapping[str, float]  # the type's healthy knobs
    recipes: Mapping[str, Mapping[str, tuple[float, float]]]  # the type's additive fault recipes
    rng: np.random.Generator  # the machine's stream: the healthy clip draws the same from its copy
    fault_rng: np.random.Generator  # the fault's own draws (knock times, phases), absent from the healthy clip
    n: int
    sr: int
    fault: str
    severity: float  # in [0, 1]
    band_hz: tuple[float, float]  # the world's fault band
    id_index: int  # 0..3: the ID's row in MACHINE_IDS, for per-ID rates


def _lerp(lo: float, hi: float, t: float) -> float:
    """The value a fraction `t` of the way from `lo` to `hi` (a severity's knob)."""
    return lo + t * (hi - lo)


def _healthy(c: FaultClip) -> np.ndarray:
    """The clip's healthy sound, drawn from the machine's stream exactly as its healthy twin draws it."""
    return c.source(c.params, c.rng, c.n, c.sr, dict(c.healthy))


def additive(c: FaultClip) -> np.ndarray:
    """Today's faults: imbalance, bearing impacts, rubbing, leaks, cavitation, squeal, chatter, ... each *adds* a
    sound (or, clogging, a stronger pulsation) on top of the healthy machine (`common.data.synth.params` recipes)."""
    knobs = dict(c.healthy)
    for knob, (lo, hi) in c.recipes[c.fault].items():
        knobs[knob] = _lerp(lo, hi, c.severity)
    return c.source(c.params, c.rng, c.n, c.sr, knobs)


SLOWDOWN = (0.04, 0.12)  # drive speed lost at severity 0 and 1 (normal clips vary by ~0.7 %)


def slow_drive(c: FaultClip) -> np.ndarray:
    """A slipping drive: a worn belt or a motor losing torque runs the whole machine 4-12 % slow.

    Fan and pump shafts (blade- and vane-pass tones and their pulsation), the slide's motor whine and travel
    cycle, the valve's actuation cycle all slow together (`params.SPEED_FIELDS`); the structure's resonances
    stay where they are. The machine radiates the same power: only where its tones and rhythms sit changes.
    """
    percent = 100.0 * (1.0 - _lerp(*SLOWDOWN, c.severity))
    return c.source(at_speed(c.machine_type, c.params, percent), c.rng, c.n, c.sr, dict(c.healthy))


PANEL_GAIN_DB = (5.0, 12.0)  # gain of the loosened panel's band at severity 0 and 1, before the level is restored


def panel_band(c: FaultClip) -> np.ndarray:
    """A loosened housing panel: the same excitation is radiated through the panel's own mode.

    The machine's sound gains the fault band (a resonance across it) and, since the machine puts out no more
    power than before, every other band loses what that band gained: energy moves between bands.
    """
    x = _healthy(c)
    lo, hi = c.band_hz
    centre = math.sqrt(lo * hi)
    f, _ = _freq_grid(c.n, c.sr)
    gain = 1.0 + (_db(_lerp(*PANEL_GAIN_DB, c.severity)) - 1.0) * _peak(f, centre, centre / (hi - lo))
    return sfft.irfft(sfft.rfft(x) * gain, c.n)


KNOCK_HZ = (4.0, 9.0)  # mean knock rate of id_00 .. id_06 (each ID's loose part has its own)
KNOCK_DIP_MS = (12.0, 35.0)  # how long the radiating panel is decoupled per knock, severity 0 and 1
KNOCK_DEPTH = (0.6, 0.95)  # how much of the machine's sound it loses meanwhile


def loose_knock(c: FaultClip) -> np.ndarray:
    """A loose guard rattles: each time it lifts, it decouples the panel that radiates the machine's sound
    (the sound drops out for tens of ms), and when it lands it knocks, ringing its own mode in the fault band.

    The knocks carry the energy the muted stretches lose on average: the impacts replace energy rather than add
    it (and the clip is held at its healthy RMS).
    """
    x = _healthy(c)
    rate = _lerp(*KNOCK_HZ, c.id_index / 3.0)
    times = _knock_times(c.fault_rng, c.n / c.sr, rate)
    dip = np.zeros(c.n)
    width = int(_lerp(*KNOCK_DIP_MS, c.severity) * c.sr / 1000.0)
    for start in (times * c.sr).astype(np.int64):
        dip[start : start + width] = np.hanning(width)[: max(0, min(width, c.n - start))]
    gain = 1.0 - _lerp(*KNOCK_DEPTH, c.severity) * dip
    muted = x * gain
    # What the muted stretches radiate on average (not what happened to fall in them: a valve's dips mostly
    # fall between its clicks), so a sparse machine's knocks are as strong as a steady one's.
    lost = float(np.sum(x * x)) * float(np.mean(1.0 - gain * gain))
    lo, hi = c.band_hz
    modes = ((math.sqrt(lo * hi), 0.004, 1.0), (0.62 * hi, 0.002, 0.5))
    knocks = _ring(c.n, (times * c.sr).astype(np.int64) + width, c.fault_rng.lognormal(0.0, 0.3, times.size),
                   modes, c.sr)
    energy = float(np.sum(knocks * knocks))
    return muted + (knocks * math.sqrt(lost / energy) if energy > 0 else 0.0)


def _knock_times(rng: np.random.Generator, seconds: float, rate_hz: float) -> np.ndarray:
    """Knock instants (s): about `rate_hz` per second, each interval 50-150 % of the mean (a rattle, not a clock)."""
    gaps = rng.uniform(0.5, 1.5, int(seconds * rate_hz * 2) + 4) / rate_hz
    times = rng.uniform(0.0, 1.0 / rate_hz) + np.cumsum(gaps)
    return times[times < seconds]


PULSE_HZ = (3.0, 7.0)  # cage rate of id_00 .. id_06's worn bearing
PULSE_DEPTH = (0.4, 0.9)  # modulation depth at severity 0 and 1


def bearing_pulse(c: FaultClip) -> np.ndarray:
    """A worn rolling bearing: the damaged element passes the load zone once per cage revolution, and each time
    the load path stiffens, so all the machine radiates pulses at the cage rate.

    No new source is added (the pattern envelope analysis looks for), and the level is held: the sound
    pulses around its healthy power.
    """
    cage = _cycles(c.fault_rng, c.n, c.sr, _lerp(*PULSE_HZ, c.id_index / 3.0), jitter=0.01, wander=0.01)
    return _healthy(c) * (1.0 + _lerp(*PULSE_DEPTH, c.severity) * _sine(cage))


@dataclass(frozen=True)
class FaultFamily:
    """One way machines fail: its faults, whether the faulty clip keeps its healthy RMS, and how it sounds."""

    faults: tuple[str, ...] | None  # None: each ID's own `faults` (the additive recipes)
    neutral: bool  # True: the faulty mono is scaled to the RMS of its healthy twin
    render: Callable[[FaultClip], np.ndarray]
    summary: str  # one line for `--list-worlds`


FAMILIES: dict[str, FaultFamily] = {
    "additive": FaultFamily(None, False, additive,
                            "faults add energy (imbalance, bearing impacts, leaks, squeal, ...)"),
    "slow_drive": FaultFamily(("slow_drive",), True, slow_drive, "the drive runs 4-12 % slow (tones and cycles move)"),
    "panel_band": FaultFamily(("panel_band",), True, panel_band, "energy moves into a loosened panel's band"),
    "loose_knock": FaultFamily(("loose_knock",), True, loose_knock,
                               "knocks replace the sound they interrupt (dropouts + impacts)"),
    "bearing_pulse": FaultFamily(("bearing_pulse",), True, bearing_pulse,
                                 "the sound pulses at a worn bearing's cage rate (3-7 Hz)"),
}
