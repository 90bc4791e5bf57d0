"""The synthetic faults as the anomaly detector meets them (issue 15): a fault adds energy to the machine,
shows in the log-mel features of the -6 dB mix, and every run of abnormal clips holds every fault and
the whole severity range of its machine."""

import numpy as np
import pytest

from common.features.logmel import logmel
from common.data.synth import MACHINE_IDS, MACHINE_TYPES, machine_clip
from common.data.synth import dataset as synth_dataset
from common.data.synth.machines import _MODELS, _background

SR = 16000
N = 3 * SR
MACHINES = [(t, i) for t in MACHINE_TYPES for i in MACHINE_IDS]


def _knobs(machine_type: str, fault: str, severity: float) -> dict[str, float]:
    model = _MODELS[machine_type]
    knobs = dict(model.healthy)
    for knob, (lo, hi) in model.faults[fault].items():
        knobs[knob] = lo + severity * (hi - lo)
    return knobs


def _source(machine_type: str, machine_id: str, knobs: dict[str, float]) -> np.ndarray:
    """The machine's mono signal; the same draws whatever the knobs, so healthy and faulty differ only by the fault."""
    model = _MODELS[machine_type]
    return model.source(model.params[machine_id], np.random.default_rng(1), N, SR, knobs)


def _band_levels_at_minus_6_db(machine: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Mean mel-band power (dB) of the machine mixed with the background 6 dB above it, as the generator mixes."""
    mix = machine + background * np.sqrt(np.mean(machine**2) * 10**0.6 / np.mean(background**2))
    return 10 * np.log10(np.mean(10 ** (logmel(mix.astype(np.float32), sr=SR) / 10), axis=1))


@pytest.mark.parametrize("machine_type, machine_id", MACHINES)
def test_a_fault_adds_energy_to_the_machine(machine_type, machine_id):
    healthy = _source(machine_type, machine_id, dict(_MODELS[machine_type].healthy))
    for fault in _MODELS[machine_type].params[machine_id].faults:
        faulty = _source(machine_type, machine_id, _knobs(machine_type, fault, 1.0))
        gain_db = 10 * np.log10(np.mean(faulty**2) / np.mean(healthy**2))
        assert gain_db > 0.5, (fault, gain_db)  # not normalised away: the fault comes on top of the machine


@pytest.mark.parametrize("machine_type, machine_id", MACHINES)
def test_a_fault_shows_in_the_features_above_the_background(machine_type, machine_id):
    params = _MODELS[machine_type].params[machine_id]
    background = _background(np.random.default_rng(2), N, SR, 1)[0]
    normal = _band_levels_at_minus_6_db(_source(machine_type, machine_id, dict(_MODELS[machine_type].healthy)),
                                        background)
    for fault in params.faults:
        faulty = _source(machine_type, machine_id, _knobs(machine_type, fault, params.severity[1]))
        rise_db = _band_levels_at_minus_6_db(faulty, background) - normal
        # At the top of the machine's range the fault lifts some mel band clearly: it is not under the background.
        assert rise_db.max() > 1.5, (fault, rise_db.max())


@pytest.mark.parametrize("machine_type, machine_id", MACHINES)
def test_any_run_of_abnormal_clips_holds_every_fault_and_the_severity_range(machine_type, machine_id):
    params = _MODELS[machine_type].params[machine_id]
    low, high = params.severity
    drawn = [synth_dataset._fault_of(synth_dataset._ClipJob(None, machine_type, machine_id, "abnormal", k, 3, 1.0,
                                                            SR, 1, -6.0), params.faults, params.severity)
             for k in range(40)]
    severities = np.array([s for _, s in drawn])
    assert np.all((severities >= low) & (severities <= high))
    for start in range(0, 30):
        run = drawn[start : start + 10]
        assert {f for f, _ in run} == set(params.faults), start
        spread = max(s for _, s in run) - min(s for _, s in run)
        assert spread > 0.6 * (high - low), (start, spread)


def test_faults_follow_the_seed_and_index_only():
    def faults(seed: int) -> list[tuple[str, float]]:
        return [synth_dataset._fault_of(synth_dataset._ClipJob(None, "pump", "id_00", "abnormal", k, seed, 1.0, SR, 1,
                                                               -6.0), ("leakage", "clogging", "cavitation"), (0.2, 0.9))
                for k in range(6)]

    assert faults(0) == faults(0)
    assert faults(0) != faults(1)
    a = machine_clip("valve", "id_02", label="abnormal", index=4, seconds=1.0, channels=1, seed=5)
    b = machine_clip("valve", "id_02", label="abnormal", index=4, seconds=1.0, channels=1, seed=5)
    np.testing.assert_array_equal(a[0], b[0])


def test_every_machine_has_a_severity_range_inside_0_1():
    for machine_type in MACHINE_TYPES:
        for machine_id in MACHINE_IDS:
            low, high = _MODELS[machine_type].params[machine_id].severity
            assert 0.0 <= low < high <= 1.0, (machine_type, machine_id, low, high)
