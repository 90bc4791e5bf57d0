"""Statistics of a clip's samples (`common.features.sample_stats`): its rhythm and its fine spectrum, from real WAV files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from common.errors import AudioError, ModelError
from common.features.modulation import ARCHITECTURE, bins, dim, modulation_stats
from common.features.sample_stats import wav_rows

SR = 16000


def _pulsing_tone(path, *, rate_hz: float, seconds: float = 4.0, tone_hz: float = 500.0, seed: int = 0):
    """A tone whose level pulses `rate_hz` times a second, in faint noise, written as a 16-bit WAV."""
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * tone_hz * t) * (1 + 0.8 * np.sin(2 * np.pi * rate_hz * t))
    y += 0.003 * np.random.default_rng(seed).standard_normal(len(t))
    sf.write(path, y / 2, SR, subtype="PCM_16")
    return path


def _peak_hz(vector: np.ndarray) -> float:
    """The modulation frequency of the largest value of the band group where the rhythm is strongest."""
    table = vector.reshape(ARCHITECTURE["groups"], -1)
    group = int(np.argmax(table.max(axis=1)))
    step = SR / round(ARCHITECTURE["hop_s"] * SR) / ARCHITECTURE["segment_frames"]
    return (int(np.argmax(table[group])) + 1) * step


def test_a_clips_vector_peaks_at_the_rate_its_sound_pulses(tmp_path):
    assert bins(ARCHITECTURE, SR) == 51 and dim(ARCHITECTURE, SR) == 8 * 51  # 0.78 .. 39.8 Hz, 8 band groups
    files = [_pulsing_tone(tmp_path / f"{rate}.wav", rate_hz=rate) for rate in (3.0, 7.0, 12.0)]
    rows = wav_rows(files, ARCHITECTURE, channel=0, sr=SR)
    assert rows.shape == (3, 408) and rows.dtype == np.float32
    for row, rate in zip(rows, (3.0, 7.0, 12.0)):
        assert abs(_peak_hz(row) - rate) <= 0.4, (rate, _peak_hz(row))


def test_the_same_sound_at_another_rhythm_is_far_and_another_take_of_it_is_near(tmp_path):
    a = wav_rows([_pulsing_tone(tmp_path / "a.wav", rate_hz=5.0, seed=1)], ARCHITECTURE, channel=0, sr=SR)[0]
    b = wav_rows([_pulsing_tone(tmp_path / "b.wav", rate_hz=5.0, seed=2)], ARCHITECTURE, channel=0, sr=SR)[0]
    c = wav_rows([_pulsing_tone(tmp_path / "c.wav", rate_hz=5.6, seed=1)], ARCHITECTURE, channel=0, sr=SR)[0]
    assert np.linalg.norm(a - c) > 2 * np.linalg.norm(a - b)


def test_halves_are_the_two_halves_of_each_clip_and_a_short_half_keeps_the_width(tmp_path):
    path = _pulsing_tone(tmp_path / "two_s.wav", rate_hz=4.0, seconds=2.0)
    halves = wav_rows([path], ARCHITECTURE, channel=0, sr=SR, halves=True)
    y, _ = sf.read(path, dtype="float32")
    assert halves.shape == (2, 408)  # 1 s halves: one 100-frame segment zero-padded to 128 frames
    np.testing.assert_array_equal(halves[1], modulation_stats(y[len(y) // 2:], sr=SR))


def test_a_clip_too_short_or_of_another_rate_is_refused_naming_the_file(tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(4000), SR, subtype="PCM_16")  # 0.25 s < 0.32 s
    with pytest.raises(AudioError, match="short.wav.*too short for modulation statistics"):
        wav_rows([short], ARCHITECTURE, channel=0, sr=SR)
    other = _pulsing_tone(tmp_path / "other.wav", rate_hz=4.0)
    with pytest.raises(AudioError, match="other.wav"):
        wav_rows([other], ARCHITECTURE, channel=0, sr=22050)


def test_a_broken_architecture_is_refused():
    with pytest.raises(ModelError, match="lacks"):
        modulation_stats(np.zeros(SR), sr=SR, arch={"kind": "modulation"})
    with pytest.raises(ModelError, match="groups dividing n_mels"):
        modulation_stats(np.zeros(SR), sr=SR, arch=ARCHITECTURE | {"groups": 5})


# --- fine log-mel statistics ---------------------------------------------------------------------------------------


def _tone(hz: float, seconds: float = 4.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_fine_statistics_are_the_mean_and_std_of_128_bands_from_2048_sample_frames(tmp_path):
    from common.features.fine_spectrum import ARCHITECTURE as FINE, fine_stats
    from common.features.logmel import logmel

    path = _pulsing_tone(tmp_path / "tone.wav", rate_hz=4.0)
    row = wav_rows([path], FINE, channel=0, sr=SR)[0]
    y, _ = sf.read(path, dtype="float32")
    levels = logmel(y, sr=SR, n_mels=128, n_fft=2048, hop_length=512, power=2.0).astype(np.float64)
    assert row.shape == (256,)
    np.testing.assert_allclose(row, np.concatenate([levels.mean(axis=1), levels.std(axis=1)]), rtol=1e-6, atol=1e-5)
    assert np.array_equal(fine_stats(y, sr=SR), row)


def test_a_tone_four_per_cent_lower_changes_its_fine_band_where_the_caches_32_bands_do_not():
    from common.features.fine_spectrum import fine_stats
    from common.features.logmel import logmel

    for hz in (200.0, 300.0):
        fine = [int(np.argmax(fine_stats(_tone(f), sr=SR)[:128])) for f in (hz, 0.96 * hz)]
        coarse = [int(np.argmax(logmel(_tone(f), sr=SR, n_mels=32, n_fft=1024, hop_length=512).mean(axis=1)))
                  for f in (hz, 0.96 * hz)]
        assert fine[0] != fine[1] and coarse[0] == coarse[1], (hz, fine, coarse)


def test_a_clip_shorter_than_a_fine_frame_is_refused_and_a_broken_architecture_too(tmp_path):
    from common.features.fine_spectrum import ARCHITECTURE as FINE, fine_stats

    short = tmp_path / "blip.wav"
    sf.write(short, np.zeros(1000), SR, subtype="PCM_16")
    with pytest.raises(AudioError, match="blip.wav.*shorter than one frame"):
        wav_rows([short], FINE, channel=0, sr=SR)
    with pytest.raises(ModelError, match="needs"):
        fine_stats(_tone(300.0), sr=SR, arch={"kind": "fine_spectrum", "n_mels": 0, "n_fft": 2048, "hop_length": 512})
    with pytest.raises(ModelError, match="unknown clip statistic"):
        wav_rows([short], {"kind": "loudness"}, channel=0, sr=SR)


# --- the cache of the statistics under data.cache_dir ------------------------------------------------------------


def test_the_cache_serves_each_clips_vector_once_computed_and_recomputes_a_tampered_or_rewritten_one(tmp_path):
    import json
    import shutil

    from common.features import sample_stats as ss
    from common.features.fine_spectrum import ARCHITECTURE as FINE

    clips = [_pulsing_tone(tmp_path / f"c{i}.wav", rate_hz=3.0 + i, seed=i) for i in range(2)]
    kw = {"cache_dir": tmp_path / "cache", "channel": 0, "sr": SR}
    first = ss.cached_wav_rows(clips, ARCHITECTURE, halves=True, **kw)
    np.testing.assert_array_equal(first, wav_rows(clips, ARCHITECTURE, channel=0, sr=SR, halves=True))
    entries = sorted((tmp_path / "cache" / ss.CACHE_FOLDER).glob("*.npy"))
    assert len(entries) == 4  # two clips x two halves
    stamps = [e.stat().st_mtime_ns for e in entries]
    np.testing.assert_array_equal(ss.cached_wav_rows(clips, ARCHITECTURE, halves=True, **kw), first)
    assert [e.stat().st_mtime_ns for e in entries] == stamps  # read, not written again
    # Another statistic of the same clips is another entry.
    ss.cached_wav_rows(clips, FINE, **kw)
    assert len(list((tmp_path / "cache" / ss.CACHE_FOLDER).glob("*.json"))) == 6
    # An entry changed in place is computed again, with a warning, and rewritten.
    np.save(entries[0], np.zeros(first.shape[1], np.float32))
    with pytest.warns(UserWarning, match=r"clip statistics cache entry .*differs from its sha256"):
        np.testing.assert_array_equal(ss.cached_wav_rows(clips, ARCHITECTURE, halves=True, **kw), first)
    assert json.loads(entries[0].with_suffix(".json").read_text())["statistic"]["kind"] == "modulation"
    # A rewritten clip misses the cache.
    shutil.copy(clips[1], clips[0])
    again = ss.cached_wav_rows(clips[:1], ARCHITECTURE, **kw)
    np.testing.assert_array_equal(again, wav_rows(clips[1:], ARCHITECTURE, channel=0, sr=SR))
