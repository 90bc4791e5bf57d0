"""common.features.audio: reading one channel of real WAV files, and every way a file can be broken."""

import re
import struct

import numpy as np
import pytest
import soundfile as sf

from common.features.audio import WavInfo, check_not_silent, check_wav, read_channel, validate_audio, wav_info
from common.errors import AudioError
from conftest import write_wav


def _pcm16(rng: np.random.Generator, frames: int, channels: int) -> np.ndarray:
    return rng.integers(-32768, 32768, size=(frames, channels), dtype=np.int16)


def _riff(chunks: list[tuple[bytes, bytes]]) -> bytes:
    """A RIFF/WAVE file from (id, body) chunks, each padded to an even length."""
    body = b"WAVE"
    for cid, data in chunks:
        body += cid + struct.pack("<I", len(data)) + data + (b"\0" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _fmt_pcm16(channels: int, sr: int = 16000) -> bytes:
    return struct.pack("<HHIIHH", 1, channels, sr, sr * 2 * channels, 2 * channels, 16)


def _err(path) -> str:
    return re.escape(str(path))


# --------------------------------------------------------------------------------------------
# Good files


@pytest.mark.parametrize("channels", [1, 2, 8])
def test_pcm16_channel_equals_soundfile_column(tmp_path, rng, channels):
    path = write_wav(tmp_path / "a.wav", _pcm16(rng, 3001, channels), subtype="PCM_16")
    expected, _ = sf.read(path, dtype="float32", always_2d=True)
    for ch in range(channels):
        y, sr = read_channel(path, channel=ch)
        assert sr == 16000
        assert y.dtype == np.float32 and y.shape == (3001,)
        np.testing.assert_array_equal(y, expected[:, ch])


def test_pcm16_matches_librosa_load(tmp_path, rng):
    import librosa

    path = write_wav(tmp_path / "a.wav", _pcm16(rng, 4000, 8), subtype="PCM_16")
    ref, _ = librosa.load(path, sr=None, mono=False)
    y, _ = read_channel(path, channel=5)
    np.testing.assert_array_equal(y, ref[5])


def test_extreme_int16_values_scale_to_minus_one_and_just_below_one(tmp_path):
    data = np.array([[-32768, 32767], [0, 1]], dtype=np.int16)
    path = write_wav(tmp_path / "a.wav", data, subtype="PCM_16")
    np.testing.assert_array_equal(read_channel(path, channel=0)[0], [-1.0, 0.0])
    np.testing.assert_array_equal(read_channel(path, channel=1)[0], np.float32([32767 / 32768, 1 / 32768]))


def test_wavex_header_is_parsed(tmp_path, rng):
    path = write_wav(tmp_path / "x.wav", _pcm16(rng, 1000, 8), subtype="PCM_16", format="WAVEX")
    assert sf.info(path).format == "WAVEX"
    info = wav_info(path)
    assert (info.channels, info.frames, info.subtype) == (8, 1000, "PCM_16")
    assert info.data_offset is not None
    np.testing.assert_array_equal(read_channel(path, channel=3)[0], sf.read(path, dtype="float32")[0][:, 3])


def test_odd_sized_chunk_before_data_is_skipped_with_its_pad_byte(tmp_path, rng):
    samples = _pcm16(rng, 50, 3)
    raw = _riff([(b"fmt ", _fmt_pcm16(3)), (b"LIST", b"odd"), (b"data", samples.tobytes())])
    path = tmp_path / "odd.wav"
    path.write_bytes(raw)
    info = wav_info(path)
    assert info.data_offset == 12 + (8 + 16) + (8 + 3 + 1) + 8
    np.testing.assert_array_equal(read_channel(path, channel=2)[0], samples[:, 2] / np.float32(32768))
    np.testing.assert_array_equal(read_channel(path, channel=2)[0], sf.read(path, dtype="float32")[0][:, 2])


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_24", "DOUBLE"])
def test_other_subtypes_fall_back_to_soundfile(tmp_path, rng, subtype):
    data = rng.uniform(-0.9, 0.9, size=(2000, 4))
    path = write_wav(tmp_path / "f.wav", data, subtype=subtype)
    info = wav_info(path)
    assert info.subtype == sf.info(path).subtype == subtype
    assert info.data_offset is None
    expected, _ = sf.read(path, dtype="float32")
    y, _ = read_channel(path, channel=2)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, expected[:, 2])


def test_wav_info_matches_soundfile(tmp_path, rng):
    path = write_wav(tmp_path / "a.wav", _pcm16(rng, 1234, 8), sr=16000, subtype="PCM_16")
    info = wav_info(path)
    ref = sf.info(path)
    assert info == WavInfo(samplerate=16000, channels=8, frames=1234, subtype="PCM_16", data_offset=info.data_offset)
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (ref.samplerate, ref.channels, ref.frames, ref.subtype)


def test_out_float64_holds_the_same_values(tmp_path, rng):
    path = write_wav(tmp_path / "a.wav", _pcm16(rng, 500, 2), subtype="PCM_16")
    out = np.empty(500, dtype=np.float64)
    y, _ = read_channel(path, channel=1, out=out)
    assert y is out
    np.testing.assert_array_equal(out, read_channel(path, channel=1)[0].astype(np.float64))


def test_expected_sr_none_accepts_any_rate(tmp_path, rng):
    path = write_wav(tmp_path / "a.wav", _pcm16(rng, 100, 1), sr=22050, subtype="PCM_16")
    assert read_channel(path, expected_sr=None)[1] == 22050


# --------------------------------------------------------------------------------------------
# Bad files: every one raises AudioError naming the path


def test_missing_file(tmp_path):
    path = tmp_path / "nope.wav"
    with pytest.raises(AudioError, match=_err(path) + ".*does not exist"):
        read_channel(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=_err(path) + ".*empty"):
        read_channel(path)


def test_text_file_renamed_wav(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("these are not samples\n" * 10)
    with pytest.raises(AudioError, match=_err(path) + " is not a RIFF/WAVE file"):
        read_channel(path)


def test_riff_but_not_wave(tmp_path):
    path = tmp_path / "movie.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", 4) + b"AVI ")
    with pytest.raises(AudioError, match=_err(path) + " is not a RIFF/WAVE file"):
        read_channel(path)


def test_header_only(tmp_path):
    path = tmp_path / "header.wav"
    path.write_bytes(_riff([(b"fmt ", _fmt_pcm16(1))]))
    with pytest.raises(AudioError, match=_err(path) + " has no data chunk"):
        read_channel(path)


def test_data_before_fmt(tmp_path):
    path = tmp_path / "order.wav"
    path.write_bytes(_riff([(b"data", b"\0\0"), (b"fmt ", _fmt_pcm16(1))]))
    with pytest.raises(AudioError, match=_err(path) + " has a data chunk before its fmt chunk"):
        read_channel(path)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_file_cut_mid_data_is_truncated(tmp_path, rng, subtype):
    path = write_wav(tmp_path / "cut.wav", rng.uniform(-0.5, 0.5, size=(4000, 8)), subtype=subtype)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size - 1000)
    # libsndfile itself reads such a file without complaint (fewer frames than declared) ...
    assert sf.read(path)[0].shape[0] < 4000
    # ... here it is an error.
    with pytest.raises(AudioError, match=_err(path) + " is truncated"):
        read_channel(path)


def test_file_cut_inside_header(tmp_path, rng):
    path = write_wav(tmp_path / "cut.wav", _pcm16(rng, 100, 2), subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(AudioError, match=_err(path)):
        read_channel(path)


def test_zero_frames(tmp_path):
    path = write_wav(tmp_path / "zero.wav", np.zeros((0, 8), dtype=np.int16), subtype="PCM_16")
    with pytest.raises(AudioError, match=_err(path) + " has no sample frames"):
        read_channel(path)


@pytest.mark.parametrize("channel", [8, -1])
def test_channel_out_of_range(tmp_path, rng, channel):
    path = write_wav(tmp_path / "a.wav", _pcm16(rng, 100, 8), subtype="PCM_16")
    with pytest.raises(AudioError, match=rf"channel={channel} .*{_err(path)} with 8 channel"):
        read_channel(path, channel=channel)


def test_wrong_sample_rate(tmp_path, rng):
    path = write_wav(tmp_path / "a.wav", _pcm16(rng, 100, 1), sr=44100, subtype="PCM_16")
    with pytest.raises(AudioError, match=_err(path) + " has sample rate 44100 Hz, expected 16000 Hz"):
        read_channel(path, expected_sr=16000)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_float_samples(tmp_path, rng, bad):
    data = rng.uniform(-0.5, 0.5, size=(100, 2)).astype(np.float32)
    data[37, 1] = bad
    path = write_wav(tmp_path / "nan.wav", data, subtype="FLOAT")
    read_channel(path, channel=0)  # the other channel is fine
    with pytest.raises(AudioError, match=_err(path) + " has 1 non-finite sample"):
        read_channel(path, channel=1)


def test_directory(tmp_path):
    with pytest.raises(AudioError, match=_err(tmp_path)):
        read_channel(tmp_path)


# --------------------------------------------------------------------------------------------
# validate_audio


@pytest.mark.parametrize(
    "y, message",
    [
        ([0.0, 0.1], "must be a np.ndarray"),
        (np.zeros(4, dtype=np.int16), "must be floating point"),
        (np.zeros((2, 4), dtype=np.float32), "must be one-dimensional"),
        (np.zeros(0, dtype=np.float32), "is empty"),
        (np.array([0.0, np.nan, 0.0]), "non-finite"),
        (np.array([3e38, 3e38, np.inf], dtype=np.float32), "non-finite"),
    ],
)
def test_validate_audio_rejects(y, message):
    with pytest.raises(AudioError, match=r"from clip\.wav.*" + message):
        validate_audio(y, "clip.wav")


def test_validate_audio_accepts_huge_finite_values_whose_sum_overflows():
    validate_audio(np.array([3e38, 3e38], dtype=np.float32), "loud.wav")


# --------------------------------------------------------------------------------------------
# check_wav: the header and the samples, including silence and the channel count


def test_check_wav_accepts_a_good_file(tmp_path, rng):
    path = write_wav(tmp_path / "a.wav", _pcm16(rng, 2000, 8), subtype="PCM_16")
    assert check_wav(path, channel=3, expected_channels=8).channels == 8


@pytest.mark.parametrize("value, what", [(0, "all zero"), (8192, r"constant \(0\.25\)")])
def test_silent_channel(tmp_path, rng, value, what):
    data = _pcm16(rng, 2000, 2)
    data[:, 1] = value
    path = write_wav(tmp_path / "quiet.wav", data, subtype="PCM_16")
    check_wav(path, channel=0)  # the other channel is fine
    with pytest.raises(AudioError, match=_err(path) + f" is silent: channel 1 is {what} over all 2000 samples"):
        check_wav(path, channel=1)


def test_wrong_channel_count(tmp_path, rng):
    path = write_wav(tmp_path / "mono.wav", _pcm16(rng, 100, 1), subtype="PCM_16")
    with pytest.raises(AudioError, match=_err(path) + r" has 1 channel\(s\), expected 8"):
        check_wav(path, expected_channels=8)


def test_check_not_silent_on_arrays():
    check_not_silent(np.array([0.0, 1e-9], dtype=np.float32))
    with pytest.raises(AudioError, match=r"audio is silent: every sample is all zero"):
        check_not_silent(np.zeros(10, dtype=np.float32))
