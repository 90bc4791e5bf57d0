"""Synthetic worlds (issue 28): energy-neutral faults keep the level, every fault is detectable in principle,
worlds are deterministic per seed, the default world is today's generator, and the CLI lists and checks them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
from scipy.ndimage import median_filter, uniform_filter1d
from scipy.signal import butter, find_peaks, sosfiltfilt
from sklearn.metrics import roc_auc_score

from common.data.names import MACHINE_IDS, MACHINE_TYPES
from common.data.synth import WORLDS, generate_dataset, machine_clip, world_lines
from common.data.synth.faults import FAMILIES, PULSE_HZ
from common.data.synth.worlds import FAULT_BAND_HZ
from conftest import run_main

SR = 16000
NEUTRAL = [w for w, world in WORLDS.items() if FAMILIES[world.family].neutral]
ORACLE_SNR = 6.0  # MIMII's quietest factory: "in principle" = the fault is there to be found, not hidden by noise
ORACLE_DATA = {"snr": ORACLE_SNR, "n_normal": 16, "n_abnormal": 8, "seconds": 3.0, "channels": 1, "seed": 0,
               "ids": ("id_04",), "progress": False}
N_EVAL = 8  # the first 8 normal clips and the 8 abnormal ones are scored; the other 8 normal clips train


# --------------------------------------------------------------------------------------------------
# The level: an energy-neutral fault changes how a machine sounds, not how loud it is


@pytest.mark.parametrize("world", NEUTRAL)
def test_an_energy_neutral_fault_keeps_the_healthy_machines_rms(world):
    for machine_type in MACHINE_TYPES:
        for machine_id in MACHINE_IDS:
            machine, background = machine_clip(machine_type, machine_id, label="abnormal", index=1, seconds=1.0,
                                               channels=2, world=world)
            # The background is scaled to the *healthy* twin at exactly -6 dB: its power gives the twin's.
            healthy = np.mean(background**2, axis=1) * 10 ** (-6.0 / 10)
            change_db = 10 * np.log10(np.mean(machine**2, axis=1) / healthy)
            mix_db = 10 * np.log10(np.mean((machine + background) ** 2, axis=1)
                                   / (healthy + np.mean(background**2, axis=1)))
            assert np.all(np.abs(change_db) < 0.5), (machine_type, machine_id, change_db)
            assert np.all(np.abs(mix_db) < 0.5), (machine_type, machine_id, mix_db)


def test_the_default_worlds_faults_still_add_energy():
    gains = []
    for machine_type in MACHINE_TYPES:
        machine, background = machine_clip(machine_type, "id_02", label="abnormal", index=1, seconds=1.0, channels=1)
        gains.append(10 * np.log10(np.mean(machine**2) / (np.mean(background**2) * 10 ** (-0.6))))
    assert min(gains) > 0.1, gains


# --------------------------------------------------------------------------------------------------
# Oracles: one feature per fault family that knows what the fault does


def _bandpass(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return sosfiltfilt(butter(4, [lo, hi], btype="band", fs=SR, output="sos"), x)


def _envelope_spectrum(x: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    """Log power spectrum (zero-padded 8x) of the clip's power envelope at 1 kHz, between `lo` and `hi` Hz."""
    env = np.square(x[: x.size // 16 * 16]).reshape(-1, 16).mean(axis=1)
    env -= env.mean()
    n = 8 * env.size
    f = np.fft.rfftfreq(n, 1 / 1000)
    keep = (f >= lo) & (f <= hi)
    return f[keep], np.log(np.abs(np.fft.rfft(env * np.hanning(env.size), n))[keep] ** 2 + 1e-20)


def _spectral_lines(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The tonal lines of the clip, 40-2500 Hz: log power spectrum above its running median (20 Hz wide)."""
    f = np.fft.rfftfreq(x.size, 1 / SR)
    keep = (f > 40) & (f < 2500)
    s = np.log(np.abs(np.fft.rfft(x * np.hanning(x.size)))[keep] ** 2 + 1e-20)
    return f[keep], np.maximum(s - median_filter(s, int(20 * x.size / SR) | 1), 0.0)


STRETCH = np.arange(0.80, 1.06, 0.0025)


def _stretch(rep: Callable) -> Callable:
    """Speed oracle on representation `rep`: the log of the frequency stretch that best matches the normal mean."""
    def scores(train: list, clips: list) -> np.ndarray:
        f = rep(train[0])[0]
        ref = np.mean([rep(x)[1] for x in train], axis=0)

        def speed(x: np.ndarray) -> float:
            y = rep(x)[1]
            return float(np.log(max(STRETCH, key=lambda s: np.corrcoef(np.interp(f * s, f, y), ref)[0, 1])))
        return _distance([speed(x) for x in train], [speed(x) for x in clips])
    return scores


def _distance(train: list, clips: list) -> np.ndarray:
    """How far each clip's feature lies from the normal training clips' (in their standard deviations)."""
    train = np.asarray(train)
    return np.abs(np.asarray(clips) - np.median(train)) / (train.std() + 1e-3)


def _feature(feature: Callable[[np.ndarray], float]) -> Callable:
    """An oracle from a scalar feature: its distance from the normal training clips."""
    return lambda train, clips: _distance([feature(x) for x in train], [feature(x) for x in clips])


def _mel_excess(train: list, clips: list) -> np.ndarray:
    """Additive faults: the largest rise of any mel band's mean level over the normal clips', in their std."""
    from common.features.logmel import logmel

    means = lambda xs: np.array([logmel(x.astype(np.float32), sr=SR).mean(axis=1) for x in xs])  # noqa: E731
    ref = means(train)
    return np.max((means(clips) - ref.mean(axis=0)) / ref.std(axis=0), axis=1)


def _band_share(x: np.ndarray) -> float:
    """Panel band: the fault band's share of the clip's power (dB)."""
    return 10 * np.log10(np.mean(_bandpass(x, *FAULT_BAND_HZ) ** 2) / np.mean(x**2))


def _knock_rate(x: np.ndarray) -> float:
    """Loose knock: events per second ringing the knock's mode (peaks of the 2.3-3 kHz band's power)."""
    power = uniform_filter1d(np.square(_bandpass(x, 2300.0, 3000.0)), 32)
    peaks, _ = find_peaks(power, height=6 * np.median(power), distance=int(0.03 * SR))
    return peaks.size / (x.size / SR)


def _pulse_line(x: np.ndarray) -> float:
    """Bearing pulse: the power envelope's line at id_04's cage rate over its neighbourhood (log)."""
    rate = PULSE_HZ[0] + (PULSE_HZ[1] - PULSE_HZ[0]) * MACHINE_IDS.index(ORACLE_DATA["ids"][0]) / 3
    f, s = _envelope_spectrum(x, 0.5, 20.0)
    near = np.abs(f - rate)
    return float(np.log(np.exp(s[near < 0.3]).mean() / np.exp(s[(near > 0.8) & (near < 2.0)]).mean()))


_SPEED = {"fan": _stretch(_spectral_lines), "pump": _stretch(_spectral_lines),
          "slider": _stretch(lambda x: _envelope_spectrum(x, 0.5, 300.0)),
          "valve": _stretch(lambda x: _envelope_spectrum(x, 0.5, 300.0))}
ORACLES: dict[str, Callable[[str], Callable]] = {  # family -> machine type -> oracle(train clips, clips) -> scores
    "additive": lambda machine_type: _mel_excess,
    "slow_drive": _SPEED.__getitem__,
    "panel_band": lambda machine_type: _feature(_band_share),
    "loose_knock": lambda machine_type: _feature(_knock_rate),
    "bearing_pulse": lambda machine_type: _feature(_pulse_line),
}
FAMILY_WORLD = {family: next(w for w, world in WORLDS.items() if world.family == family) for family in FAMILIES}


def _clips(folder: Path) -> list[np.ndarray]:
    return [sf.read(p)[0] for p in sorted(folder.glob("*.wav"))]


@pytest.fixture(scope="module")
def oracle_roots(tmp_path_factory) -> dict[str, Path]:
    """One small set (4 types, 1 ID, 3 s clips at +6 dB) per fault family, written as WAV files."""
    roots = {}
    for family, world in FAMILY_WORLD.items():
        roots[family] = tmp_path_factory.mktemp(world)
        generate_dataset(roots[family], world=world, **ORACLE_DATA)
    return roots


def test_every_fault_family_has_an_oracle_and_a_world():
    assert set(ORACLES) == set(FAMILIES) == set(FAMILY_WORLD)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_fault_is_detectable_in_principle(family, oracle_roots):
    """At full budget (8 normal training clips), the family's oracle separates 8 normal from 8 abnormal clips of
    id_04 of every type (id_04: its severities span the range; an oracle is blind to the rest of what it hears)."""
    aucs = {}
    for machine_type in MACHINE_TYPES:
        machine = next(oracle_roots[family].glob(f"*_{machine_type}/{machine_type}/id_04"))
        normal, abnormal = _clips(machine / "normal"), _clips(machine / "abnormal")
        scores = ORACLES[family](machine_type)(normal[N_EVAL:], normal[:N_EVAL] + abnormal)
        aucs[machine_type] = roc_auc_score([0] * N_EVAL + [1] * len(abnormal), scores)
    assert min(aucs.values()) >= 0.75 and np.mean(list(aucs.values())) >= 0.85, aucs


# --------------------------------------------------------------------------------------------------
# Determinism, and what a world changes


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.wav"))}


TINY = {"n_normal": 2, "n_abnormal": 2, "seconds": 0.5, "channels": 2, "types": ("fan", "pump"),
        "ids": ("id_02",), "progress": False}


@pytest.mark.parametrize("world", [w for w in WORLDS if w != "default"])
def test_a_world_is_deterministic_per_seed(world, tmp_path):
    # Worker processes once (they cost a second to start): the world drawing from every stream of a clip.
    jobs = 2 if world == "loose_knock" else 1
    generate_dataset(tmp_path / "a", world=world, seed=3, **TINY)
    generate_dataset(tmp_path / "b", world=world, seed=3, jobs=jobs, **TINY)
    generate_dataset(tmp_path / "c", world=world, seed=4, **TINY)
    a, b, c = _digests(tmp_path / "a"), _digests(tmp_path / "b"), _digests(tmp_path / "c")
    assert a == b
    assert all(a[name] != c[name] for name in a)


def test_worlds_change_the_abnormal_clips_and_only_what_they_say(tmp_path):
    for world in ("default", "slow_drive", "loose_knock"):
        generate_dataset(tmp_path / world, world=world, **TINY)
    default, slow, knock = (_digests(tmp_path / w) for w in ("default", "slow_drive", "loose_knock"))
    for name in default:
        # slow_drive keeps today's IDs and background: its normal clips are the default world's.
        assert (slow[name] == default[name]) == ("/normal/" in name), name
        assert knock[name] != default[name], name  # other IDs and background: every clip differs


def test_a_world_is_given_by_name_in_machine_clip_too():
    a = machine_clip("fan", "id_00", label="abnormal", index=0, seconds=0.5, channels=1, world="panel_band")
    b = machine_clip("fan", "id_00", label="abnormal", index=0, seconds=0.5, channels=1, world="panel_band")
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


# --------------------------------------------------------------------------------------------------
# The CLI


def test_list_worlds_shows_five_or_more_with_two_energy_neutral():
    status, out = run_main(["synth", "--list-worlds"])
    lines = out.splitlines()
    assert status == 0 and lines == world_lines()
    assert [line.split()[0] for line in lines] == list(WORLDS) and lines[0].split()[0] == "default"
    assert len(lines) >= 5 and sum("energy-neutral" in line for line in lines) >= 2
    assert len({world.family for world in WORLDS.values()}) >= 5


def test_synth_writes_the_world_it_is_given(tmp_path):
    argv = ["synth", "--root", str(tmp_path / "cli"), "--normal", "2", "--abnormal", "2", "--seconds", "0.5",
            "--channels", "2", "--types", "fan,pump", "--ids", "id_02", "--jobs", "1", "--world", "bearing_pulse"]
    status, out = run_main(argv)
    assert status == 0 and "bearing_pulse" in out
    generate_dataset(tmp_path / "api", world="bearing_pulse", seed=0, **TINY)
    assert _digests(tmp_path / "cli") == _digests(tmp_path / "api")


def test_a_bad_world_is_one_line_naming_the_valid_ones(tmp_path):
    status, out = run_main(["synth", "--root", str(tmp_path / "x"), "--world", "marsquake"])
    assert status == 2 and out.count("\n") == 1 and out.startswith("error: world='marsquake'")
    assert all(name in out for name in WORLDS)
    assert not (tmp_path / "x").exists()  # refused before anything was written
