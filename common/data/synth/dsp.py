"""Signal primitives of the simulator: tones, shaped noise, ringing impacts, gates, and how a far
source reaches a circular microphone array (delays, gains, steering)."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np
import scipy.fft as sfft
from scipy.ndimage import uniform_filter1d
from scipy.signal import lfilter

from common.data.synth.params import MIC_RADIUS_M, SPEED_OF_SOUND, Mode, Resonance


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

