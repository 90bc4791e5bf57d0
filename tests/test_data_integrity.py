"""Clips and their caches (issue 13): replaced clips, clip names, full disks, short clips, config-vs-data
mistakes, RF64 files and synth over an existing root. Real WAVs, real caches, real subprocesses."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from common.features.cache import cached_features, feature_key
from common.config import load_config
from common.data.mimii import find_machines
from common.errors import DataError
from common.features.extract import extract
from common.data.synth import generate_dataset
from conftest import make_config, run_main, write_config

REPO = Path(__file__).resolve().parent.parent
MACHINE = Path("-6_dB_fan") / "fan" / "id_00"


@pytest.fixture
def one_machine(tiny_root, tmp_path) -> Path:
    """A writable copy of fan/id_00 of the tiny set (8 normal + 3 abnormal clips, 2 s, 2 channels)."""
    root = tmp_path / "data"
    shutil.copytree(tiny_root / MACHINE, root / MACHINE)
    return root


# --------------------------------------------------------------------------------------------
# Item 2: a clip replaced by one of the same size and mtime (cp -p, rsync -a, tar x)


def _replace_keeping_size_and_mtime(path: Path, source: Path) -> None:
    """Copy `source` over `path` as ``shutil.copy2`` / ``cp -p`` do, then put the old mtime back."""
    before = path.stat()
    shutil.copy2(source, path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)


def test_clip_replaced_with_same_size_and_mtime_gives_new_features_and_identity(one_machine, tiny_root, tmp_path):
    from common.methods.base import data_identity as _data_identity

    clips = sorted((one_machine / MACHINE / "normal").glob("*.wav"))[:4]
    cfg = make_config(tmp_path / "v", one_machine, data={"cache_dir": str(tmp_path / "cache")})
    cache = tmp_path / "features"
    old = np.array(cached_features(clips, cache_dir=cache, progress=False).clip(1))
    old_key, old_identity = feature_key(clips, channel=0, sr=16000), _data_identity(cfg, clips)

    other = tiny_root / "-6_dB_fan" / "fan" / "id_02" / "normal" / "00000001.wav"  # other content, same size
    _replace_keeping_size_and_mtime(clips[1], other)

    assert feature_key(clips, channel=0, sr=16000) != old_key
    assert _data_identity(cfg, clips) != old_identity
    new = cached_features(clips, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(new.clip(1), extract([other], progress=False)[0])
    assert not np.array_equal(new.clip(1), old)


def test_check_cache_sees_a_clip_replaced_with_same_size_and_mtime(one_machine, tmp_path):
    from common.data.check import scan_files

    files = sorted((one_machine / MACHINE).glob("*/*.wav"))
    cache = tmp_path / "cache"
    assert not any(c.problem for c in scan_files(files, cache_dir=cache, jobs=1))
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros((32000, 2), dtype=np.int16), 16000, subtype="PCM_16")
    _replace_keeping_size_and_mtime(files[3], silent)
    checks = scan_files(files, cache_dir=cache, jobs=1)
    assert [c.path for c in checks if c.problem] == [str(files[3])]


# --------------------------------------------------------------------------------------------
# Item 3: one clip rule everywhere (.WAV / .Wav are clips; ._* are reported, not used)


def _rename_clips(root: Path) -> tuple[Path, Path, Path]:
    folder = root / MACHINE
    upper = (folder / "normal" / "00000007.wav").rename(folder / "normal" / "00000007.WAV")
    mixed = (folder / "abnormal" / "00000002.wav").rename(folder / "abnormal" / "00000002.Wav")
    fork = folder / "normal" / "._00000000.wav"
    fork.write_bytes(b"\x00\x05\x16\x07" + bytes(4092))  # what macOS leaves on a FAT/exFAT stick
    return upper, mixed, fork


def test_upper_case_clips_count_and_resource_forks_are_reported_by_check_data(one_machine):
    upper, mixed, fork = _rename_clips(one_machine)
    code, text = run_main(["check-data", str(one_machine), "--no-progress"])
    assert code == 0, text
    row = next(line for line in text.splitlines() if line.strip().startswith("fan/id_00"))
    assert row.split()[1:3] == ["8", "3"]  # every clip counted, .WAV and .Wav included
    assert "note: 1 file(s) named like clips are not clips" in text and str(fork) in text


def test_experiments_use_upper_case_clips_and_warn_about_resource_forks(one_machine, tmp_path):
    from common.data.dataset import check_machine

    upper, mixed, fork = _rename_clips(one_machine)
    cfg = make_config(tmp_path / "v", one_machine, data={"cache_dir": str(tmp_path / "cache")})
    with pytest.warns(UserWarning, match=r"1 file\(s\) of fan/id_00 named like clips .*" + re.escape(str(fork))):
        checked = check_machine(cfg, find_machines(one_machine)[0])
    used = set(checked.split.train + checked.split.eval_files)
    assert upper in used and mixed in used and fork not in used and len(used) == 11

    from common.data.mimii import is_clip  # the one rule, also used by `score`

    assert is_clip(upper) and is_clip(mixed) and not is_clip(fork) and not is_clip(Path(".hidden.wav"))


# --------------------------------------------------------------------------------------------
# Item 8: feature cache on a full disk


def _unshare_works() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_full_disk_is_an_error_naming_the_cache_and_leaves_no_temp_file(tiny_root, tmp_path):
    if not _unshare_works():
        pytest.skip("unshare -rm (user + mount namespace) is not permitted here: no private tmpfs to fill")
    cache = tmp_path / "cache"
    cache.mkdir()
    # Default feature sizes: fan/id_00 needs ~0.8 MB of vectors, the 256 KiB tmpfs holds its scan cache only.
    cfg = write_config(tmp_path / "v", tiny_root, feature={"n_mels": 64, "frames": 5, "n_fft": 1024, "hop_length": 512},
                       data={"types": ["fan"], "ids": ["id_00"], "cache_dir": str(cache)})
    script = (f'mount -t tmpfs -o size=256k tmpfs "{cache}" || exit 99; '
              f'"{sys.executable}" -m common features "{cfg}"; echo "rc=$?"; ls -aR "{cache}"')
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, cwd=REPO,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    text = done.stdout + done.stderr
    if done.returncode == 99:
        pytest.skip(f"cannot mount a tmpfs in the namespace: {text[-300:]}")
    assert "rc=2" in text, text
    assert re.search(r"error: not enough disk space for the feature cache in " + re.escape(str(cache.resolve())), text)
    assert re.search(r"needs [\d.]+ MB, [\d.]+ MB available", text)
    assert ".tmp" not in text.split("rc=2", 1)[1], text
    assert "Traceback" not in text


# --------------------------------------------------------------------------------------------
# Item 14: check-data with the run's feature parameters


def _shorten(path: Path, n: int) -> None:
    data, sr = sf.read(path, dtype="int16", always_2d=True)
    sf.write(path, data[:n], sr, subtype="PCM_16")


def test_check_data_reports_clips_too_short_for_the_config(one_machine, tmp_path):
    short = one_machine / MACHINE / "normal" / "00000005.wav"
    _shorten(short, 1000)  # 2 STFT frames at n_fft=1024, hop_length=512; the v1 YAML stacks 5
    v1 = REPO / "Version1" / "make_pretrain_v1.yaml"
    assert load_config(v1).feature.frames == 5
    code, text = run_main(["check-data", str(one_machine), "--config", str(v1), "--no-progress"])
    assert code == 1, text
    assert re.search(re.escape(str(short)) + r" is too short: 2 STFT frames .*feature\.frames=5", text)
    code, text = run_main(["check-data", str(one_machine), "--frames", "5", "--no-progress"])
    assert code == 1 and "is too short" in text, text


# --------------------------------------------------------------------------------------------
# Item 15: config mistakes are named as such, not blamed on the clips


@pytest.mark.parametrize("data, key, have", [
    ({"channel": 9}, "data.channel", r"is 9, but the clips of fan/id_00 have 2 channel\(s\) \(0-1\)"),
    ({"sample_rate": 32000}, "data.sample_rate", r"is 32000, but the clips of fan/id_00 are 16000 Hz"),
])
def test_channel_or_rate_no_clip_has_is_a_config_error(one_machine, tmp_path, data, key, have):
    cfg = write_config(tmp_path / "v", one_machine, data={"cache_dir": str(tmp_path / "cache"), **data})
    code, text = run_main(["features", str(cfg)])
    assert code == 2, text
    assert re.search(re.escape(f"error: {cfg}: '{key}' ") + have, text), text
    assert "on_bad_file" not in text and "bad clip" not in text


def test_missing_data_root_names_the_yaml_and_key(tmp_path):
    from common.errors import ConfigError
    from common.data.dataset import select_machines

    cfg = write_config(tmp_path / "v", tmp_path / "nowhere", data={"cache_dir": str(tmp_path / "cache")})
    code, text = run_main(["features", str(cfg)])
    assert code == 2 and "error: " in text and str(cfg) in text and "data.root" in text, text
    with pytest.raises(ConfigError, match=re.escape(f"{cfg}: 'data.root' is {tmp_path / 'nowhere'}")):
        select_machines(load_config(cfg))  # notebooks call this without the command line


# --------------------------------------------------------------------------------------------
# Item 17: RF64 WAVs; synth over an existing root


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_rf64_clip_reads_like_the_wav(tmp_path, rng, subtype):
    from common.features.audio import check_wav, read_channel, wav_info

    samples = np.clip(0.1 * rng.standard_normal((4000, 3)), -1, 0.99)
    wav, rf64 = tmp_path / "clip.wav", tmp_path / "clip_rf64.wav"
    sf.write(wav, samples, 16000, subtype=subtype, format="WAV")
    sf.write(rf64, samples, 16000, subtype=subtype, format="RF64")
    assert rf64.read_bytes()[:4] == b"RF64"
    info = wav_info(rf64)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 3, 4000, subtype)
    for channel in range(3):
        np.testing.assert_array_equal(read_channel(rf64, channel=channel)[0], read_channel(wav, channel=channel)[0])
    check_wav(rf64, channel=2)
    np.testing.assert_array_equal(extract([rf64], progress=False)[0], extract([wav], progress=False)[0])


SMALL_SET = dict(snr=-6, n_normal=2, n_abnormal=1, seconds=0.5, channels=1, seed=0, types=("fan",), ids=("id_00",),
                 progress=False)


def test_synth_refuses_to_overwrite_existing_clips_unless_asked(tmp_path):
    root = tmp_path / "data"
    generate_dataset(root, **SMALL_SET)
    recorded = root / MACHINE / "normal" / "00000000.wav"
    recorded.write_bytes(b"a downloaded MIMII clip")
    with pytest.raises(DataError, match=re.escape(str(root)) + r" already holds 3 of the clips .*first: "
                       + re.escape(str(recorded))):
        generate_dataset(root, **SMALL_SET)
    assert recorded.read_bytes() == b"a downloaded MIMII clip"

    args = ["synth", "--root", str(root), "--normal", "2", "--abnormal", "1", "--seconds", "0.5", "--channels", "1",
            "--types", "fan", "--ids", "id_00", "--jobs", "1"]
    code, text = run_main(args)
    assert code == 2 and "error: " in text and "--overwrite" in text, text
    assert recorded.read_bytes() == b"a downloaded MIMII clip"
    code, text = run_main(args + ["--overwrite"])
    assert code == 0, text
    assert recorded.read_bytes()[:4] == b"RIFF"
