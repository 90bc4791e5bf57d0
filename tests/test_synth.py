"""The synthetic MIMII generator: layout, WAV format, SNR, determinism, faults, IDs and argument errors."""

import itertools
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import welch

from common.errors import DataError, ProjectError
from common.data.names import snr_folder
from common.data.synth import MACHINE_IDS, MACHINE_TYPES, generate_dataset, machine_clip, mix_clip
from common.data.synth import dataset as synth_dataset
from common.data.synth.machines import _MODELS

SR = 16000
SMALL = dict(
    snr=-6, n_normal=3, n_abnormal=2, seconds=0.5, channels=3, seed=7,
    types=("fan", "valve"), ids=("id_00", "id_04"), progress=False,
)


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, list[Path]]:
    """A small data set written once: 2 types x 2 IDs x (3 normal + 2 abnormal) clips of 0.5 s, 3 channels."""
    root = tmp_path_factory.mktemp("synth") / "Sample_data"
    return root, generate_dataset(root, **SMALL)


def _files(root: Path) -> dict[str, bytes]:
    """Every file under `root` (relative path -> bytes)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _log_spectrum(x: np.ndarray) -> np.ndarray:
    """Welch power spectrum in dB of one channel."""
    return 10 * np.log10(welch(x, fs=SR, nperseg=512)[1] + 1e-20)


def _distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of two log spectra, in dB."""
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _machine_spectrum(machine_type: str, machine_id: str, label: str, index: int, *, seconds: float) -> np.ndarray:
    machine, _ = machine_clip(machine_type, machine_id, label=label, index=index, seconds=seconds, channels=1)
    return _log_spectrum(machine[0])


# --- layout and format ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "snr, machine_type, expected",
    [(-6, "fan", "-6_dB_fan"), (0, "pump", "0_dB_pump"), (6.0, "valve", "6_dB_valve"),
     (-0.0, "fan", "0_dB_fan"), (2.5, "slider", "2.5_dB_slider")],
)
def test_snr_folder_names_like_the_mimii_zips(snr, machine_type, expected):
    assert snr_folder(snr, machine_type) == expected


def test_layout_and_file_names(small):
    root, machines = small
    assert machines == [
        root / "-6_dB_fan" / "fan" / "id_00",
        root / "-6_dB_fan" / "fan" / "id_04",
        root / "-6_dB_valve" / "valve" / "id_00",
        root / "-6_dB_valve" / "valve" / "id_04",
    ]
    expected = {
        (m / label / f"{i:08d}.wav").relative_to(root).as_posix()
        for m in machines
        for label, count in (("normal", 3), ("abnormal", 2))
        for i in range(count)
    }
    assert set(_files(root)) == expected  # nothing else: no temp files, no extra clips
    assert "-6_dB_fan/fan/id_00/normal/00000000.wav" in expected


def test_wav_format_reads_back(small):
    root, _ = small
    for path in root.rglob("*.wav"):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.frames) == (SR, 3, int(0.5 * SR)), path
        assert (info.format, info.subtype) == ("WAV", "PCM_16"), path


def test_written_wav_equals_mix_of_machine_clip(small):
    root, _ = small
    for machine_type, machine_id, label, index in [("fan", "id_04", "abnormal", 1), ("valve", "id_00", "normal", 2)]:
        path = root / f"-6_dB_{machine_type}" / machine_type / machine_id / label / f"{index:08d}.wav"
        written, sr = sf.read(path, dtype="int16", always_2d=True)
        machine, background = machine_clip(
            machine_type, machine_id, label=label, index=index, seed=7, seconds=0.5, channels=3, snr=-6
        )
        assert machine.dtype == background.dtype == np.float64
        assert machine.shape == background.shape == (3, int(0.5 * SR))
        np.testing.assert_array_equal(written, mix_clip(machine, background))


# --- SNR and levels -------------------------------------------------------------------------------


@pytest.mark.parametrize("snr", [-6, 0, 6])
def test_snr_holds_per_channel_and_in_the_written_file(snr, tmp_path):
    for machine_type in MACHINE_TYPES:
        machine, background = machine_clip(
            machine_type, "id_02", label="normal", index=1, seconds=1.0, channels=4, snr=snr
        )
        measured = 10 * np.log10(np.mean(machine**2, axis=1) / np.mean(background**2, axis=1))
        assert np.all(np.abs(measured - snr) < 1.0), (machine_type, measured)

    machines = generate_dataset(
        tmp_path, snr=snr, n_normal=1, n_abnormal=1, seconds=0.5, channels=2, types=("pump",), ids=("id_06",),
        progress=False,
    )
    assert machines == [tmp_path / f"{snr}_dB_pump" / "pump" / "id_06"]
    written, _ = sf.read(machines[0] / "abnormal" / "00000000.wav", dtype="int16", always_2d=True)
    expected = mix_clip(*machine_clip("pump", "id_06", label="abnormal", index=0, seconds=0.5, channels=2, snr=snr))
    np.testing.assert_array_equal(written, expected)


@pytest.mark.parametrize("machine_type", MACHINE_TYPES)
def test_a_fault_keeps_the_background_of_the_healthy_machine(machine_type):
    """A failing machine is louder against the same factory background: its fault raises the SNR, never lowers it."""
    for index in range(3):
        machine, background = machine_clip(machine_type, "id_00", label="abnormal", index=index, seconds=1.0,
                                           channels=2, snr=-6)
        measured = 10 * np.log10(np.mean(machine**2, axis=1) / np.mean(background**2, axis=1))
        assert np.all(measured > -6 + 0.1) and np.all(measured < -6 + 6), (machine_type, index, measured)


def test_other_snr_changes_only_the_background_level():
    machine, loud_background = machine_clip("slider", "id_04", label="normal", index=3, seconds=1.0, snr=-6)
    machine_again, soft_background = machine_clip("slider", "id_04", label="normal", index=3, seconds=1.0, snr=6)
    np.testing.assert_array_equal(machine, machine_again)
    np.testing.assert_allclose(soft_background, loud_background * 10 ** (-12 / 20), rtol=1e-5, atol=1e-9)


def test_levels_leave_headroom_at_minus_6_db():
    for machine_type in MACHINE_TYPES:
        for label in ("normal", "abnormal"):
            machine, background = machine_clip(machine_type, "id_00", label=label, index=0, seconds=2.0)
            rms = np.sqrt(np.mean(machine**2, axis=1))
            assert np.all((rms > 0.015) & (rms < 0.08)), (machine_type, label, rms)
            mix = mix_clip(machine, background)
            assert np.mean(np.abs(mix.astype(int)) >= 32767) < 1e-4, (machine_type, label)


def test_channels_hear_the_same_machine_a_little_apart():
    machine, background = machine_clip("fan", "id_02", label="normal", index=0, seconds=1.0, channels=8)
    assert not np.array_equal(machine[0], machine[4])  # delays and gains differ per microphone
    assert np.corrcoef(machine[0], machine[4])[0, 1] > 0.5  # but it is one source
    assert abs(np.corrcoef(background[0], background[4])[0, 1]) < 0.95  # the background is partly independent


# --- determinism ----------------------------------------------------------------------------------


def test_same_seed_gives_identical_files_and_another_seed_different_ones(tmp_path):
    args = dict(n_normal=2, n_abnormal=1, seconds=0.5, channels=2, types=("pump", "slider"), ids=("id_02",),
                progress=False)
    generate_dataset(tmp_path / "a", seed=3, **args)
    generate_dataset(tmp_path / "b", seed=3, **args)
    generate_dataset(tmp_path / "c", seed=4, **args)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 6 and a == b
    assert set(a) == set(c) and all(a[name] != c[name] for name in a)


def test_jobs_do_not_change_the_files(tmp_path):
    args = dict(n_normal=2, n_abnormal=1, seconds=0.5, channels=2, seed=5, types=("fan", "valve"),
                ids=("id_00", "id_06"), progress=False)
    one = generate_dataset(tmp_path / "one", jobs=1, **args)
    two = generate_dataset(tmp_path / "two", jobs=2, **args)
    assert [p.relative_to(tmp_path / "one") for p in one] == [p.relative_to(tmp_path / "two") for p in two]
    files = _files(tmp_path / "one")
    assert len(files) == 12 and files == _files(tmp_path / "two")


def test_rewriting_the_same_set_is_allowed_but_mixing_sets_is_not(tmp_path):
    args = dict(seconds=0.5, channels=1, types=("valve",), ids=("id_02",), progress=False)
    generate_dataset(tmp_path, n_normal=3, n_abnormal=1, **args)
    before = _files(tmp_path)
    generate_dataset(tmp_path, n_normal=3, n_abnormal=1, overwrite=True, **args)  # refused unless asked
    assert _files(tmp_path) == before
    with pytest.raises(DataError, match=r"normal already holds 1 clip\(s\) this run would not rewrite"):
        generate_dataset(tmp_path, n_normal=2, n_abnormal=1, **args)


def test_an_interrupted_write_leaves_no_partial_wav(tmp_path, monkeypatch):
    real_write = sf.write
    calls = []

    def write_then_fail(file, data, samplerate, **kwargs):
        calls.append(file)
        if len(calls) == 1:
            return real_write(file, data, samplerate, **kwargs)
        Path(file).write_bytes(b"RIFF" + bytes(100))  # half a file, then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(sf, "write", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        generate_dataset(tmp_path, n_normal=3, n_abnormal=0, seconds=0.5, channels=1, types=("fan",),
                         ids=("id_00",), progress=False)
    assert len(calls) == 2 and not Path(calls[0]).name.endswith(".wav")  # written under a temp name
    normal = tmp_path / "-6_dB_fan" / "fan" / "id_00" / "normal"
    assert sorted(p.name for p in normal.iterdir()) == ["00000000.wav"]  # no temp file, no partial clip
    assert sf.info(normal / "00000000.wav").frames == int(0.5 * SR)


def test_progress_bar_counts_clips(tmp_path, capsys):
    generate_dataset(tmp_path, n_normal=1, n_abnormal=1, seconds=0.25, channels=1, types=("fan",), ids=("id_00",))
    assert "2/2" in capsys.readouterr().err


# --- the sounds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("machine_type", MACHINE_TYPES)
def test_abnormal_clips_differ_from_normal_in_the_spectrum(machine_type):
    reference = np.mean([_machine_spectrum(machine_type, "id_00", "normal", i, seconds=3.0) for i in range(6)], axis=0)
    normal = [_distance(_machine_spectrum(machine_type, "id_00", "normal", i, seconds=3.0), reference)
              for i in range(6, 12)]
    abnormal = [_distance(_machine_spectrum(machine_type, "id_00", "abnormal", i, seconds=3.0), reference)
                for i in range(8)]
    assert min(normal) > 0  # normal clips vary a little
    assert np.mean(abnormal) > 1.5 * np.mean(normal), (np.mean(abnormal), np.mean(normal))


@pytest.mark.parametrize("machine_type", MACHINE_TYPES)
def test_ids_of_a_type_sound_different(machine_type):
    spectra = {i: [_machine_spectrum(machine_type, i, "normal", k, seconds=2.0) for k in range(4)] for i in MACHINE_IDS}
    centre = {i: np.mean(s, axis=0) for i, s in spectra.items()}
    within = max(np.mean([_distance(s, centre[i]) for s in spectra[i]]) for i in MACHINE_IDS)
    between = min(_distance(centre[a], centre[b]) for a, b in itertools.combinations(MACHINE_IDS, 2))
    assert between > 1.5 * within, (between, within)


def test_every_id_has_parameters_and_every_fault_a_recipe():
    for machine_type in MACHINE_TYPES:
        model = _MODELS[machine_type]
        assert set(model.params) == set(MACHINE_IDS)
        for params in model.params.values():
            assert params.faults and set(params.faults) <= set(model.faults)
        for knobs in model.faults.values():
            assert set(knobs) <= set(model.healthy)


def test_mix_clip_rounds_saturates_and_puts_channels_last():
    machine = np.array([[0.5, 2.0, -2.0, 0.25], [0.0, 0.0, 0.0, -0.5]])
    mix = mix_clip(machine, np.zeros_like(machine))
    assert mix.dtype == np.int16 and mix.shape == (4, 2)
    assert mix[:, 0].tolist() == [16384, 32767, -32768, 8192]
    assert mix[:, 1].tolist() == [0, 0, 0, -16384]


# --- argument errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_normal": 0}, "n_normal"),
        ({"n_normal": 2.5}, "n_normal"),
        ({"n_abnormal": -1}, "n_abnormal"),
        ({"seconds": 0}, "seconds"),
        ({"seconds": -1.0}, "seconds"),
        ({"seconds": 0.001}, "seconds"),
        ({"channels": 0}, "channels"),
        ({"types": ("fan", "drill")}, "types"),
        ({"types": ()}, "types"),
        ({"ids": ("id_01",)}, "ids"),
        ({"jobs": 0}, "jobs"),
        ({"seed": -1}, "seed"),
        ({"snr": float("nan")}, "snr"),
        ({"sr": 8000}, "sr"),
    ],
)
def test_generate_dataset_rejects_bad_arguments_before_writing(kwargs, name, tmp_path):
    with pytest.raises(DataError, match=rf"^{name}="):
        generate_dataset(tmp_path / "root", progress=False, **kwargs)
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"machine_type": "drill"}, "machine_type"),
        ({"machine_id": "id_01"}, "machine_id"),
        ({"label": "broken"}, "label"),
        ({"index": -1}, "index"),
        ({"seconds": 0.0}, "seconds"),
        ({"channels": 0}, "channels"),
        ({"snr": float("inf")}, "snr"),
        ({"seed": -3}, "seed"),
        ({"sr": 8000}, "sr"),
    ],
)
def test_machine_clip_rejects_bad_arguments(kwargs, name):
    args = {"machine_type": "fan", "machine_id": "id_00", "label": "normal", "index": 0, **kwargs}
    with pytest.raises(DataError, match=rf"^{name}="):
        machine_clip(args.pop("machine_type"), args.pop("machine_id"), **args)


def test_other_bad_input_is_named(tmp_path):
    with pytest.raises(DataError, match="^root="):
        generate_dataset(123, progress=False)
    with pytest.raises(DataError, match="shape"):
        mix_clip(np.zeros((2, 10)), np.zeros((3, 10)))
    with pytest.raises(DataError, match="NaN"):
        mix_clip(np.full((1, 4), np.nan), np.zeros((1, 4)))
    with pytest.raises(DataError, match="^snr="):
        snr_folder(float("nan"), "fan")
    with pytest.raises(DataError, match="^machine_type="):
        snr_folder(-6, "")


def test_a_dead_worker_is_explained(tmp_path, monkeypatch):
    class DeadPool:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, *args, **kwargs):
            raise BrokenProcessPool("a worker died")

    monkeypatch.setattr(synth_dataset, "ProcessPoolExecutor", DeadPool)
    with pytest.raises(ProjectError, match="__name__ == '__main__'"):
        generate_dataset(tmp_path, n_normal=2, n_abnormal=0, seconds=0.25, channels=1, types=("fan",),
                         ids=("id_00",), jobs=2, progress=False)
