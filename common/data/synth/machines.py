"""The four machine types (fan, pump, slider, valve) and the factory background, as sound.

Each source returns a mono signal whose healthy part has RMS ~1. `_MODELS` maps a type to its
parameter table, healthy knobs, fault recipes and source function.

A fault comes on top of the healthy sound and never scales it down: normalising a healthy part
together with its fault (as the valve's clicks with the contamination's bounces once were) makes an
abnormal clip quieter where the detector looks, i.e. easier to reconstruct (see `params`). Fault
components sit where the -6 dB background leaves room for them: the valve leak whistles in a high
band of its own, not at the click resonance, where it filled the gaps between clicks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable, Mapping, TypeVar

import numpy as np
from scipy.ndimage import uniform_filter1d

from common.data.synth.dsp import (
    _array_response, _crossings, _cycles, _db, _detune, _gate, _harmonic_wave, _jitter_db, _ring, _shaped_noise,
    _sine, _spectrum, _steer, _unit, _wander,
)
from common.data.synth.params import (
    _FAN_HEALTHY, _OFF, _PUMP_HEALTHY, _SLIDER_HEALTHY, _VALVE_HEALTHY, FACTORY_ROOM, FAN_FAULTS, FAN_PARAMS,
    MAINS_HZ, PUMP_FAULTS, PUMP_PARAMS, SLIDER_FAULTS, SLIDER_PARAMS, SPEED_FIELDS, VALVE_FAULTS, VALVE_PARAMS,
    FanParams, PumpParams, SliderParams, ValveParams,
)

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

    # Imbalance: the whole machine wobbles once per revolution (sidebands) and the shaft harmonics grow
    # (a series up to 5x: a 1x tone alone sits in the lowest mel bands, under the background's rumble).
    x *= 1.0 + knobs["wobble"] * _sine(rot + rng.random())
    if knobs["imbalance_db"] > _OFF:
        harmonics = _harmonic_wave(rot, (1.0, 0.5, 0.3, 0.2, 0.12), rng=rng, f0_hz=p.rot_hz, sr=sr)
        x += _db(knobs["imbalance_db"]) * _unit(harmonics)
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
    amp = _spectrum(n, sr, resonances=((1800.0, 2.5, 1.0), (3600.0, 3.0, 0.6)), floor=0.1)
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

    clicks, chatter = np.zeros(n), np.zeros(n)
    for times, ratio, f_hz in ((opens, 1.0, p.open_hz), (closes, p.close_ratio, p.close_hz)):
        amps = ratio * rng.lognormal(0.0, 0.15, times.size)
        bounce_times, bounce_amps = _valve_chatter(times, amps, knobs["bounce"], rng)
        ring_hz = f_hz * (1.0 + knobs["shift"]) * (1.0 + 0.01 * rng.standard_normal())  # deposits detune it
        modes = ((ring_hz, p.decay_s, 1.0), (0.27 * ring_hz, 2.5 * p.decay_s, 0.6))
        clicks += _ring(n, np.rint(times * sr), amps, modes, sr)
        chatter += _ring(n, np.rint(bounce_times * sr), bounce_amps, modes, sr)
    amp = _spectrum(n, sr, resonances=_detune(rng, ((p.hiss_hz, 1.0, 1.0),), 0.02), floor=0.05)
    hiss = _unit(_shaped_noise(rng, amp, n) * (0.08 + is_open))
    w_hiss = _db(p.hiss_db)
    # The chatter comes on top of the healthy clicks: scaled with them, not normalised away with them
    # (normalising their sum made a contaminated valve's real clicks quieter than a healthy one's).
    scale = 1.0 / (math.sqrt(np.mean(np.square(clicks))) or 1.0)  # a clip too short for a click has none
    x = (scale * (clicks + chatter) + _jitter_db(rng, std_db=1.0) * w_hiss * hiss) / math.hypot(1.0, w_hiss)

    if knobs["leak_db"] > _OFF:  # a seat that no longer seals: hiss while closed
        leak = _shaped_noise(rng, _spectrum(n, sr, resonances=((p.leak_hz, 4.0, 1.0),), floor=0.02), n)
        x += _db(knobs["leak_db"]) * _unit(leak * (1.0 - is_open))
    return x


def _valve_chatter(
    times: np.ndarray, amps: np.ndarray, bounce: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Contamination: debris keeps the armature from seating, so each click is followed by a rattle of
    up to four weaker clicks over the next ~15-80 ms (amplitude `bounce` x the click, 0: none)."""
    gaps = rng.uniform(0.004, 0.02, (_CHATTER, times.size))
    decay = 0.6 ** np.arange(_CHATTER)[:, None]
    return (times + np.cumsum(gaps, axis=0)).ravel(), (bounce * decay * amps).ravel()


_CHATTER = 4


# --------------------------------------------------------------------------------------------------
# Background
# --------------------------------------------------------------------------------------------------


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



P = TypeVar("P")  # a row of a type's parameter table (a frozen dataclass)


def at_speed(machine_type: str, params: P, percent: float) -> P:
    """A unit's parameters (a row of its type's table) run at `percent` of its nominal speed (`SPEED_FIELDS`)."""
    factor = percent / 100.0
    return replace(params, **{name: getattr(params, name) * factor**exponent
                              for name, exponent in SPEED_FIELDS[machine_type].items()})
