"""Synthetic machine sounds written in the exact MIMII layout and format (the embedded default data set).

The real MIMII data set (Purohit et al., 2019) cannot be downloaded everywhere, so this package writes a
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
  Faults: leakage (a whistle while closed), contamination (chatter after each click, shifted
  resonance, timing jitter).

Every clip varies a little (rate ~1 %, phases, levels, resonances ~1-2 %). A fault adds energy on top of
the healthy machine. Abnormal clips take the machine's faults in turn, at severities spread evenly over
the ID's `severity` range (some subtle, some obvious), so even a few consecutive clips hold every fault
and the whole range; the ranges grade the IDs' difficulty for the AE baseline (`params` says why).

The machine reaches the 8 microphones of a circular array with small per-channel delays and gains;
factory background (pinkish noise with hall resonances, mains hum, distant impacts; partly
common to all channels, partly independent) is scaled per channel so that
``10 * log10(P_machine / P_background) == snr`` exactly on every channel.

Each clip is seeded from ``(seed, type, id, label, index)`` alone, so clips do not depend on the order
they are made in nor on `jobs`, and the same clip at another SNR differs only in the background level.

Worlds (issue 28). All of the above is the *default* world, where every fault adds energy. Other worlds
(`worlds.WORLDS`, ``python -m common synth --world NAME``, ``--list-worlds``) change how machines fail
(`faults.FAMILIES`: a slipping drive, a loosened panel, a rattling guard, a worn bearing; each holds the
clip at its healthy machine's RMS), what tells IDs apart (every parameter, or one resonance in or away
from the fault band) and the background (stationary or changing). The default world's clips are exactly
those of the generator before worlds existed; a world with today's IDs and background has the same normal
clips as the default world, so two such worlds differ only in their faults.

The package, one job per module: `params` (the numbers: per-ID tables, fault recipes, the hall),
`dsp` (signal primitives and the microphone array), `machines` (the four types and the background
as sound), `faults` (the fault families of the worlds), `worlds` (the table of worlds: faults, IDs,
background), `dataset` (one clip's job, `machine_clip`, `mix_clip`, `generate_dataset`).
"""

from __future__ import annotations

from common.data.names import MACHINE_IDS, MACHINE_TYPES
from common.data.synth.dataset import generate_dataset, machine_clip, mix_clip
from common.data.synth.dcase import generate_dcase_dataset
from common.data.synth.worlds import DEFAULT_WORLD, WORLDS, world_lines
from common.data.synth.params import (
    FACTORY_ROOM, FAN_FAULTS, FAN_PARAMS, PUMP_FAULTS, PUMP_PARAMS, SLIDER_FAULTS, SLIDER_PARAMS, VALVE_FAULTS,
    VALVE_PARAMS, FanParams, PumpParams, SliderParams, ValveParams,
)

__all__ = [
    "MACHINE_TYPES",
    "MACHINE_IDS",
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
    "machine_clip",
    "mix_clip",
    "generate_dataset",
    "generate_dcase_dataset",
    "DEFAULT_WORLD",
    "WORLDS",
    "world_lines",
]
