"""The simulator's numbers: per-ID parameter tables of the four machine types, their fault recipes,
the microphone array and the factory hall. Data only; `machines` turns them into sound.

Fault levels and difficulty (issue 15). With the first tables the AE baseline found abnormal clips of
several machines *easier* to reconstruct than normal ones (demo set, 10 + 10 evaluation clips: fan/id_00
AUC 0.29, fan/id_02 0.42, valve/id_00 0.49). The causes, measured by forcing each fault at fixed
severities (50 + 50 clips, AE trained on 30-40 normal clips):

- Faults under the background. Fault levels ran from -26 to -4 dB relative to the machine, which is
  itself 6 dB under the background: the lower half of each range was inaudible in the log-mel features
  (AUC 0.40-0.56 up to severity 0.5), so about half of the abnormal clips were in effect normal, and with
  10 of them a machine's AUC was decided by how many audible ones it happened to draw (fan/id_00: 0.29 on
  the demo's clips, 0.63 on 50 + 50).
- Level normalisation. The SNR is set on each clip's whole machine signal, fault included, so a fault's
  energy lifts the background as well; and the valve's clicks were scaled to unit RMS together with the
  contamination's bounces, so a contaminated valve's real clicks came out quieter than a healthy one's.
- The fault's band. The valve leak hissed at the valve's own click resonance (id_00: 2600 Hz), filling
  the gaps between clicks: the clip became steadier and easier to reconstruct (AUC 0.43 at severity 0.75,
  below its 0.59 at severity 0). The fan's imbalance was a 1x-2x shaft tone in the lowest mel bands,
  where the background is loudest and a band's log-power varies most.

Now each recipe starts near what the features can see at -6 dB and ends well above it; the valve leak is
a narrower whistle in a high band of its own, the chatter comes on top of the clicks, imbalance is a
shaft-harmonic series; every fault adds energy. Each ID draws its severities from its own `severity`
range: that grades the machines (benchmarks/synth_difficulty.py measures them; valves, whose faults are
the least advanced, are the hardest type, as in MIMII).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MIC_RADIUS_M = 0.034  # circular 8-mic array, as MIMII's TAMAGO-03
SPEED_OF_SOUND = 343.0
MAINS_HZ = 50.0

Resonance = tuple[float, float, float]  # (centre Hz, quality factor Q, relative gain)
Mode = tuple[float, float, float]  # damped mode of a click: (frequency Hz, decay time s, amplitude)


# --------------------------------------------------------------------------------------------------
# Per-type parameter tables: one row per machine ID. `level` is the machine's RMS (1.0 = full
# scale), `azimuth_deg` its direction seen from the array, `faults` the faults its abnormal clips
# take in turn (see the *_FAULTS tables), `severity` the range their severities are spread over.
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
    severity: tuple[float, float]  # range of its faults' severities in [0, 1]: how hard this unit is


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
    severity: tuple[float, float]  # range of its faults' severities in [0, 1]: how hard this unit is


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
    severity: tuple[float, float]  # range of its faults' severities in [0, 1]: how hard this unit is


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
    severity: tuple[float, float]  # range of its faults' severities in [0, 1]: how hard this unit is


FAN_PARAMS: dict[str, FanParams] = {
    "id_00": FanParams(
        rot_hz=23.3, blades=6, bpf_harmonics=(1.0, 0.55, 0.3, 0.18, 0.1, 0.06), tonal_db=-6.0,
        airflow=((900.0, 2.5, 1.0), (2600.0, 4.0, 0.45)), tilt_db_oct=-4.0,
        bearing_order=3.57, bearing_hz=3900.0, level=0.040, azimuth_deg=0.0,
        faults=("imbalance", "bearing", "rubbing"),
        severity=(0.1, 0.85),
    ),
    "id_02": FanParams(
        rot_hz=27.8, blades=7, bpf_harmonics=(1.0, 0.7, 0.35, 0.2, 0.12), tonal_db=-3.0,
        airflow=((1200.0, 3.0, 1.0), (3400.0, 5.0, 0.35)), tilt_db_oct=-3.0,
        bearing_order=4.12, bearing_hz=4700.0, level=0.035, azimuth_deg=45.0,
        faults=("imbalance", "bearing"),
        severity=(0.6, 1.0),
    ),
    "id_04": FanParams(
        rot_hz=19.6, blades=5, bpf_harmonics=(1.0, 0.5, 0.4, 0.25, 0.15, 0.1, 0.05), tonal_db=-8.0,
        airflow=((650.0, 2.0, 1.0), (1900.0, 3.5, 0.6)), tilt_db_oct=-5.0,
        bearing_order=3.05, bearing_hz=3300.0, level=0.045, azimuth_deg=90.0,
        faults=("bearing", "rubbing"),
        severity=(0.15, 0.95),
    ),
    "id_06": FanParams(
        rot_hz=32.5, blades=9, bpf_harmonics=(1.0, 0.45, 0.2, 0.1), tonal_db=-1.0,
        airflow=((1500.0, 3.0, 1.0), (4200.0, 6.0, 0.3)), tilt_db_oct=-2.5,
        bearing_order=5.3, bearing_hz=5200.0, level=0.038, azimuth_deg=135.0,
        faults=("imbalance", "rubbing"),
        severity=(0.3, 1.0),
    ),
}

PUMP_PARAMS: dict[str, PumpParams] = {
    "id_00": PumpParams(
        rot_hz=24.6, vanes=5, pulsation=((1, 0.25), (2, 0.12), (5, 1.0), (10, 0.45), (15, 0.2)),
        pulse_db=-2.0, am_depth=0.35, flow=((420.0, 2.0, 1.0), (1350.0, 3.0, 0.5)), tilt_db_oct=-3.5,
        leak_hz=3800.0, level=0.040, azimuth_deg=180.0, faults=("leakage", "clogging", "cavitation"),
        severity=(0.35, 1.0),
    ),
    "id_02": PumpParams(
        rot_hz=29.3, vanes=6, pulsation=((1, 0.2), (2, 0.15), (6, 1.0), (12, 0.35), (18, 0.15)),
        pulse_db=-4.0, am_depth=0.25, flow=((560.0, 2.5, 1.0), (1800.0, 2.5, 0.6)), tilt_db_oct=-3.0,
        leak_hz=4500.0, level=0.035, azimuth_deg=225.0, faults=("leakage", "clogging"),
        severity=(0.3, 0.95),
    ),
    "id_04": PumpParams(
        rot_hz=48.7, vanes=5, pulsation=((1, 0.35), (2, 0.2), (5, 1.0), (10, 0.3)),
        pulse_db=0.0, am_depth=0.4, flow=((330.0, 1.5, 1.0), (1100.0, 3.5, 0.4)), tilt_db_oct=-4.0,
        leak_hz=3200.0, level=0.045, azimuth_deg=270.0, faults=("clogging", "cavitation"),
        severity=(0.5, 1.0),
    ),
    "id_06": PumpParams(
        rot_hz=36.1, vanes=7, pulsation=((1, 0.15), (2, 0.1), (7, 1.0), (14, 0.4), (21, 0.12)),
        pulse_db=-3.0, am_depth=0.3, flow=((720.0, 2.0, 1.0), (2300.0, 4.0, 0.45)), tilt_db_oct=-2.5,
        leak_hz=5000.0, level=0.038, azimuth_deg=315.0, faults=("leakage", "cavitation"),
        severity=(0.25, 1.0),
    ),
}

SLIDER_PARAMS: dict[str, SliderParams] = {
    "id_00": SliderParams(
        period_s=1.2, travel_frac=0.70, motor_hz=420.0, motor_harmonics=(1.0, 0.5, 0.3, 0.15),
        whine_db=-2.0, rolling=((1800.0, 2.0, 1.0), (3500.0, 3.0, 0.5)), click_hz=2400.0,
        click_db=-3.0, squeal_hz=2900.0, damage_pos=0.35, damage_hz=4300.0,
        level=0.040, azimuth_deg=20.0, faults=("friction", "damage"),
        severity=(0.6, 1.0),
    ),
    "id_02": SliderParams(
        period_s=1.6, travel_frac=0.60, motor_hz=560.0, motor_harmonics=(1.0, 0.35, 0.25),
        whine_db=-4.0, rolling=((1300.0, 2.5, 1.0), (4100.0, 4.0, 0.4)), click_hz=3100.0,
        click_db=-1.0, squeal_hz=3600.0, damage_pos=0.6, damage_hz=5100.0,
        level=0.035, azimuth_deg=65.0, faults=("friction", "damage"),
        severity=(0.25, 1.0),
    ),
    "id_04": SliderParams(
        period_s=1.9, travel_frac=0.75, motor_hz=330.0, motor_harmonics=(1.0, 0.6, 0.4, 0.2, 0.1),
        whine_db=0.0, rolling=((2200.0, 2.0, 1.0), (900.0, 3.0, 0.6)), click_hz=1900.0,
        click_db=-5.0, squeal_hz=2100.0, damage_pos=0.2, damage_hz=3700.0,
        level=0.045, azimuth_deg=110.0, faults=("friction", "damage"),
        severity=(0.05, 0.9),
    ),
    "id_06": SliderParams(
        period_s=1.4, travel_frac=0.55, motor_hz=710.0, motor_harmonics=(1.0, 0.3, 0.1),
        whine_db=-6.0, rolling=((1600.0, 3.0, 1.0), (2800.0, 2.0, 0.7)), click_hz=2700.0,
        click_db=-2.0, squeal_hz=4400.0, damage_pos=0.8, damage_hz=4700.0,
        level=0.038, azimuth_deg=155.0, faults=("friction", "damage"),
        severity=(0.3, 1.0),
    ),
}

VALVE_PARAMS: dict[str, ValveParams] = {
    "id_00": ValveParams(
        period_s=0.9, pattern=((0.0, 0.35),), open_hz=2600.0, close_hz=3400.0, decay_s=0.004,
        close_ratio=0.8, hiss_hz=1800.0, hiss_db=-14.0, leak_hz=5200.0,
        level=0.030, azimuth_deg=200.0, faults=("leakage", "contamination"),
        severity=(0.2, 0.8),
    ),
    "id_02": ValveParams(
        period_s=1.5, pattern=((0.0, 0.12), (0.3, 0.42)), open_hz=1900.0, close_hz=2900.0,
        decay_s=0.005, close_ratio=0.7, hiss_hz=1400.0, hiss_db=-12.0, leak_hz=4600.0,
        level=0.028, azimuth_deg=245.0, faults=("leakage", "contamination"),
        severity=(0.15, 0.75),
    ),
    "id_04": ValveParams(
        period_s=1.2, pattern=((0.0, 0.6),), open_hz=3100.0, close_hz=4300.0, decay_s=0.003,
        close_ratio=0.9, hiss_hz=2400.0, hiss_db=-10.0, leak_hz=6000.0,
        level=0.032, azimuth_deg=290.0, faults=("leakage", "contamination"),
        severity=(0.15, 0.7),
    ),
    "id_06": ValveParams(
        period_s=0.7, pattern=((0.0, 0.2), (0.45, 0.55)), open_hz=2300.0, close_hz=3700.0,
        decay_s=0.0045, close_ratio=0.75, hiss_hz=2000.0, hiss_db=-16.0, leak_hz=5600.0,
        level=0.030, azimuth_deg=335.0, faults=("leakage", "contamination"),
        severity=(0.25, 0.85),
    ),
}

# Fault tables: fault -> {knob: (value at severity 0, value at severity 1)}. A knob left out keeps
# its healthy value from the matching *_HEALTHY table; `*_db` knobs are the level of an added fault
# component relative to the healthy machine (-inf: absent).
_OFF = -math.inf

_FAN_HEALTHY = {"imbalance_db": _OFF, "wobble": 0.0, "bearing_db": _OFF, "rubbing_db": _OFF}
FAN_FAULTS: dict[str, dict[str, tuple[float, float]]] = {
    "imbalance": {"imbalance_db": (-14.0, 0.0), "wobble": (0.1, 0.5)},
    "bearing": {"bearing_db": (-18.0, -4.0)},
    "rubbing": {"rubbing_db": (-18.0, -4.0)},
}

_PUMP_HEALTHY = {"leak_db": _OFF, "speed": 0.0, "flow_db": 0.0, "pulse_gain_db": 0.0, "cavitation_db": _OFF}
PUMP_FAULTS: dict[str, dict[str, tuple[float, float]]] = {
    "leakage": {"leak_db": (-16.0, -2.0)},
    "clogging": {"speed": (-0.01, -0.06), "flow_db": (-0.5, -3.0), "pulse_gain_db": (1.5, 6.0)},
    "cavitation": {"cavitation_db": (-18.0, -2.0)},
}

_SLIDER_HEALTHY = {"friction_db": _OFF, "damage_db": _OFF}
SLIDER_FAULTS: dict[str, dict[str, tuple[float, float]]] = {
    "friction": {"friction_db": (-16.0, -2.0)},
    "damage": {"damage_db": (-18.0, -2.0)},
}

_VALVE_HEALTHY = {"leak_db": _OFF, "bounce": 0.0, "shift": 0.0, "jitter_ms": 1.5}
VALVE_FAULTS: dict[str, dict[str, tuple[float, float]]] = {
    "leakage": {"leak_db": (-16.0, -2.0)},
    "contamination": {"bounce": (0.1, 0.7), "shift": (-0.02, -0.1), "jitter_ms": (2.0, 15.0)},
}

# type -> {parameter: exponent}: the parameters that move with the machine's speed, as
# value * (speed / 100) ** exponent (`machines.at_speed`): the DCASE target domain, the slow_drive fault.
SPEED_FIELDS: dict[str, dict[str, int]] = {
    "fan": {"rot_hz": 1},
    "pump": {"rot_hz": 1},
    "slider": {"motor_hz": 1, "period_s": -1},  # a faster motor travels the rail in a shorter cycle
    "valve": {"period_s": -1},
}

FACTORY_ROOM: tuple[Resonance, ...] = ((250.0, 1.5, 0.8), (800.0, 2.0, 0.5), (2500.0, 1.5, 0.3))
"""Resonances of the factory hall, shared by every clip (each clip moves them by a few percent)."""
