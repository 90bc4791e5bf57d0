"""common.features.logmel, common.features.extract, common.features.cache: parity with the MIMII baseline pipeline, frame stacking,
extraction, and the cache."""

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from common.features import cache as feature_cache
from common.features.cache import ClipFeatures, cached_features, feature_key
from common.errors import AudioError, ConfigError, DataError
from common.features.extract import extract
from common.features.logmel import logmel, logmel_frames, reference_logmel_frames, stack_frames
from conftest import write_wav

# Max |ours - reference| in dB. Both transform in float64; what differs is float32 rounding in
# |X|**power, the mel product's summation order and log10: a few float32 ulps of the dB values
# (1.5e-5 at -156 dB). Measured worst case over noise, pure tones, silence: 3e-5 dB.
ATOL_DB = 1e-4


def _clip(rng: np.random.Generator, seconds: float, channels: int = 2, sr: int = 16000) -> np.ndarray:
    """Machine-like test signal: a few harmonics, a low-passed rumble and white noise, per channel."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0 = rng.uniform(50, 400)
    tone = sum(0.3 / k * np.sin(2 * np.pi * k * f0 * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 6))
    rumble = np.cumsum(rng.standard_normal(n)) / np.sqrt(n)
    out = np.stack([tone + 0.2 * rumble + 0.02 * rng.standard_normal(n) for _ in range(channels)], axis=1)
    return np.clip(out, -1.0, 32767 / 32768)


@pytest.fixture
def clips(tmp_path, rng) -> list[Path]:
    """Three 2 s, 2-channel clips, one of them a pure tone with digital silence around it."""
    paths = [write_wav(tmp_path / "wav" / f"{i}.wav", _clip(rng, 2.0)) for i in range(2)]
    tone = np.zeros((32000, 2))
    tone[8000:24000, 0] = 0.9 * np.sin(2 * np.pi * 3000 * np.arange(16000) / 16000)
    paths.append(write_wav(tmp_path / "wav" / "tone.wav", tone))
    return paths


# --------------------------------------------------------------------------------------------
# Shapes and layout


def test_ten_second_clip_gives_309_vectors_of_320(tmp_path, rng):
    path = write_wav(tmp_path / "ten.wav", _clip(rng, 10.0, channels=1))
    vectors, offsets = extract([path], progress=False)
    assert vectors.shape == (309, 320) and vectors.dtype == np.float32
    np.testing.assert_array_equal(offsets, [0, 309])
    y, sr = sf.read(path, dtype="float32")
    assert logmel_frames(y, sr=sr).shape == (309, 320)
    assert logmel(y, sr=sr).shape == (64, 313)


def test_stack_frames_layout_by_hand():
    lm = np.array([[0, 1, 2, 3], [10, 11, 12, 13]], dtype=np.float32)  # n_mels=2, n_frames=4
    expected = np.array(
        [
            [0, 10, 1, 11, 2, 12],
            [1, 11, 2, 12, 3, 13],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(stack_frames(lm, frames=3), expected)
    np.testing.assert_array_equal(stack_frames(lm, frames=1), lm.T)
    np.testing.assert_array_equal(stack_frames(lm, frames=4), [[0, 10, 1, 11, 2, 12, 3, 13]])


def test_stack_frames_too_many_frames_names_frames():
    with pytest.raises(DataError, match=r"frames=5 is more than the 4 STFT frames"):
        stack_frames(np.zeros((2, 4)), frames=5)
    with pytest.raises(ConfigError, match=r"frames=0 must be an integer >= 1"):
        stack_frames(np.zeros((2, 4)), frames=0)


def test_logmel_batch_equals_rows(rng):
    y = rng.uniform(-0.5, 0.5, size=(3, 8000)).astype(np.float32)
    batch = logmel(y, sr=16000, n_mels=32)
    assert batch.shape == (3, 32, 16)
    for row in range(3):
        np.testing.assert_array_equal(batch[row], logmel(y[row], sr=16000, n_mels=32))


def test_logmel_rejects_bad_audio_and_parameters(rng):
    with pytest.raises(AudioError, match="non-finite"):
        logmel(np.array([0.0, np.nan] * 1000), sr=16000)
    with pytest.raises(ConfigError, match="n_mels=0"):
        logmel(np.zeros(4000, dtype=np.float32), sr=16000, n_mels=0)
    with pytest.raises(ConfigError, match="hop_length=-1"):
        logmel_frames(np.zeros(4000, dtype=np.float32), sr=16000, hop_length=-1)


def test_logmel_warns_when_n_fft_exceeds_the_clip(rng):
    with pytest.warns(UserWarning, match="n_fft=1024 is longer than the clip of 800 samples"):
        logmel(rng.uniform(-0.1, 0.1, 800).astype(np.float32), sr=16000)


def test_logmel_frames_too_short_clip_names_frames_and_length(rng):
    y = rng.uniform(-0.1, 0.1, 1500).astype(np.float32)  # 1 + 1500 // 512 = 3 frames
    with pytest.raises(DataError, match=r"frames=5 is more than the 3 STFT frames of a clip of 1500 samples"):
        logmel_frames(y, sr=16000)


# --------------------------------------------------------------------------------------------
# Parity with the MIMII baseline pipeline


@pytest.mark.parametrize("n_mels", [32, 64, 128])
@pytest.mark.parametrize("frames", [1, 5])
@pytest.mark.parametrize("hop_length", [256, 512])
@pytest.mark.parametrize("power", [1.0, 2.0])
def test_extract_matches_reference(clips, n_mels, frames, hop_length, power):
    params = dict(n_mels=n_mels, frames=frames, hop_length=hop_length, power=power)
    vectors, offsets = extract(clips, channel=0, progress=False, **params)
    for i, path in enumerate(clips):
        ref = reference_logmel_frames(path, channel=0, **params)
        ours = vectors[offsets[i] : offsets[i + 1]]
        assert ours.shape == ref.shape
        np.testing.assert_allclose(ours, ref, rtol=0, atol=ATOL_DB)


def test_logmel_frames_matches_reference_on_synthetic_mimii_clips(tiny_root):
    paths = sorted(tiny_root.rglob("*.wav"))[:4]
    for path in paths:
        y, sr = sf.read(path, dtype="float32")
        for channel in (0, 1):
            ours = logmel_frames(y[:, channel], sr=sr)
            ref = reference_logmel_frames(path, channel=channel)
            np.testing.assert_allclose(ours, ref, rtol=0, atol=ATOL_DB)


def test_extract_equals_logmel_frames_bitwise(clips):
    vectors, offsets = extract(clips, channel=1, progress=False, n_mels=32)
    for i, path in enumerate(clips):
        y, sr = sf.read(path, dtype="float32")
        np.testing.assert_array_equal(vectors[offsets[i] : offsets[i + 1]], logmel_frames(y[:, 1], sr=sr, n_mels=32))


# --------------------------------------------------------------------------------------------
# extract


def test_extract_clips_of_different_lengths(tmp_path, rng):
    lengths = [16000, 5000, 32000, 16000, 2561, 16000]
    paths = [write_wav(tmp_path / f"{i}.wav", _clip(rng, n / 16000, channels=1)) for i, n in enumerate(lengths)]
    vectors, offsets = extract(paths, progress=False)
    counts = [1 + n // 512 - 5 + 1 for n in lengths]
    np.testing.assert_array_equal(offsets, np.concatenate([[0], np.cumsum(counts)]))
    assert offsets.dtype == np.int64 and vectors.shape == (sum(counts), 320)
    for i, path in enumerate(paths):
        np.testing.assert_allclose(vectors[offsets[i] : offsets[i + 1]], reference_logmel_frames(path), atol=ATOL_DB, rtol=0)


def test_extract_is_the_same_for_any_jobs(tmp_path, rng):
    paths = [write_wav(tmp_path / f"{i}.wav", _clip(rng, 0.5 + 0.25 * (i % 3), channels=1)) for i in range(21)]
    one, off1 = extract(paths, jobs=1, progress=False)
    two, off2 = extract(paths, jobs=2, progress=False)
    three, off3 = extract(paths, jobs=3, progress=True)
    np.testing.assert_array_equal(off1, off2)
    np.testing.assert_array_equal(off1, off3)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, three)


def test_extract_no_files():
    vectors, offsets = extract([], progress=False)
    assert vectors.shape == (0, 320)
    np.testing.assert_array_equal(offsets, [0])


def test_extract_short_clip_names_frames_and_file(tmp_path, rng):
    ok = write_wav(tmp_path / "ok.wav", _clip(rng, 1.0, channels=1))
    short = write_wav(tmp_path / "short.wav", _clip(rng, 0.1, channels=1))  # 1600 samples: 4 frames
    with pytest.raises(DataError, match=rf"frames=5 is more than the 4 STFT frames of {re.escape(str(short))} \(1600 samples\)"):
        extract([ok, short], progress=False)


def test_extract_checks_every_header_first(tmp_path, rng):
    good = write_wav(tmp_path / "good.wav", _clip(rng, 1.0))
    slow = write_wav(tmp_path / "slow.wav", _clip(rng, 1.0, sr=8000), sr=8000)
    with pytest.raises(AudioError, match=re.escape(str(slow)) + " has sample rate 8000 Hz, expected 16000 Hz"):
        extract([good, slow], progress=False)
    with pytest.raises(AudioError, match=rf"channel=2 .*{re.escape(str(good))} with 2 channel"):
        extract([good], channel=2, progress=False)
    with pytest.raises(ConfigError, match="jobs=0"):
        extract([good], jobs=0, progress=False)


# --------------------------------------------------------------------------------------------
# Cache


def _entry_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir())


def test_cache_second_call_is_a_hit(clips, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = cached_features(clips, cache_dir=cache, progress=False, n_mels=32)
    key = feature_key(clips, channel=0, sr=16000, n_mels=32)
    assert _entry_files(cache) == [f"{key}.json", f"{key}.offsets.npy", f"{key}.vectors.npy"]
    manifest = json.loads((cache / f"{key}.json").read_text())
    assert manifest["vectors_shape"] == list(first.vectors.shape)
    assert manifest["params"]["n_mels"] == 32 and [f["path"] for f in manifest["files"]] == [str(p.resolve()) for p in clips]

    def no_extract(*args, **kwargs):
        raise AssertionError("cache hit expected, but features were extracted again")

    monkeypatch.setattr(feature_cache, "extract", no_extract)
    second = cached_features(clips, cache_dir=cache, progress=False, n_mels=32)
    assert isinstance(second.vectors, np.memmap) and not second.vectors.flags.writeable
    np.testing.assert_array_equal(second.vectors, first.vectors)
    np.testing.assert_array_equal(second.offsets, first.offsets)
    assert second.files == tuple(str(p) for p in clips)

    monkeypatch.undo()
    fresh, offsets = extract(clips, progress=False, n_mels=32)
    np.testing.assert_array_equal(second.vectors, fresh)
    np.testing.assert_array_equal(second.offsets, offsets)


def test_cache_changed_parameter_gives_a_new_entry(clips, tmp_path):
    cache = tmp_path / "cache"
    a = cached_features(clips, cache_dir=cache, progress=False)
    b = cached_features(clips, cache_dir=cache, progress=False, frames=3)
    assert feature_key(clips, channel=0, sr=16000) != feature_key(clips, channel=0, sr=16000, frames=3)
    assert feature_key(clips, channel=0, sr=16000) != feature_key(clips, channel=1, sr=16000)
    assert a.vectors.shape[1] == 320 and b.vectors.shape[1] == 192
    assert len(_entry_files(cache)) == 6


def test_feature_key_fills_defaults_and_rejects_unknown_names(clips):
    base = feature_key(clips, channel=0, sr=16000)
    assert base == feature_key(clips, channel=0, sr=16000, n_mels=64, power=2)
    assert re.fullmatch(r"[0-9a-f]{64}", base)
    with pytest.raises(DataError, match="unknown feature parameter.*n_mel"):
        feature_key(clips, channel=0, sr=16000, n_mel=64)
    with pytest.raises(AudioError, match="missing.wav"):
        feature_key([clips[0].parent / "missing.wav"], channel=0, sr=16000)


def test_cache_rewritten_file_gives_new_key_and_new_values(clips, tmp_path, rng):
    cache = tmp_path / "cache"
    old = cached_features(clips, cache_dir=cache, progress=False)
    old_key = feature_key(clips, channel=0, sr=16000)
    old_clip = np.array(old.clip(1))

    stat = clips[1].stat()
    write_wav(clips[1], _clip(rng, 2.0))  # same length and size, new content
    # Make sure the rewrite is visible even on file systems with coarse timestamps.
    os.utime(clips[1], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert clips[1].stat().st_size == stat.st_size

    new_key = feature_key(clips, channel=0, sr=16000)
    assert new_key != old_key
    new = cached_features(clips, cache_dir=cache, progress=False)
    assert not np.array_equal(new.clip(1), old_clip)
    np.testing.assert_array_equal(new.clip(0), old.clip(0))
    np.testing.assert_array_equal(new.vectors, extract(clips, progress=False)[0])

    # Touching alone (same content, new mtime) also gives a new key: the cache never guesses.
    os.utime(clips[2], ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert feature_key(clips, channel=0, sr=16000) != new_key


def test_cache_incomplete_or_corrupt_entry_is_rebuilt(clips, tmp_path):
    cache = tmp_path / "cache"
    good = cached_features(clips, cache_dir=cache, progress=False)
    key = feature_key(clips, channel=0, sr=16000)
    expected = np.array(good.vectors)
    del good

    (cache / f"{key}.json").unlink()  # as if the writer died before the manifest
    again = cached_features(clips, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(again.vectors, expected)
    del again

    vectors_file = cache / f"{key}.vectors.npy"
    vectors_file.write_bytes(vectors_file.read_bytes()[:1000])  # corrupt: cut short
    rebuilt = cached_features(clips, cache_dir=cache, progress=False)
    np.testing.assert_array_equal(rebuilt.vectors, expected)
    assert not [p for p in cache.iterdir() if p.suffix == ".tmp"]


def test_cache_failed_extraction_leaves_no_entry(tmp_path, rng):
    cache = tmp_path / "cache"
    good = write_wav(tmp_path / "good.wav", _clip(rng, 1.0))
    bad = tmp_path / "bad.wav"
    bad.write_text("not audio")
    with pytest.raises(AudioError, match=re.escape(str(bad))):
        cached_features([good, bad], cache_dir=cache, progress=False)
    assert not cache.exists() or not list(cache.iterdir())
    with pytest.raises(DataError, match="at least one file"):
        cached_features([], cache_dir=cache, progress=False)


def test_clip_features_clip_and_take(clips, tmp_path):
    feats = cached_features(clips, cache_dir=tmp_path / "cache", progress=False, frames=2)
    assert len(feats) == 3
    for i in range(3):
        np.testing.assert_array_equal(feats.clip(i), feats.vectors[feats.offsets[i] : feats.offsets[i + 1]])
    vectors, offsets = feats.take([2, 0, 2])
    assert not isinstance(vectors, np.memmap) and vectors.flags.writeable
    sizes = np.diff(feats.offsets)
    np.testing.assert_array_equal(offsets, np.cumsum([0, sizes[2], sizes[0], sizes[2]]))
    np.testing.assert_array_equal(vectors, np.concatenate([feats.clip(2), feats.clip(0), feats.clip(2)]))
    np.testing.assert_array_equal(feats.take([-1])[0], feats.clip(2))
    empty, empty_offsets = feats.take([])
    assert empty.shape == (0, 128) and list(empty_offsets) == [0]
    with pytest.raises(IndexError, match="clip index 3 is out of range for 3 clips"):
        feats.take([0, 3])
    with pytest.raises(IndexError):
        feats.clip(-4)
    assert isinstance(feats, ClipFeatures)
