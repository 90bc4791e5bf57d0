"""Load one channel of a WAV file, fast and safely, and validate the samples.

MIMII clips are 10 s, 16 kHz, 8-channel, 16-bit PCM WAV files and the baseline keeps one channel.
``librosa.load(path, sr=None, mono=False)`` decodes all eight channels to float and then drops
seven of them. For 16-bit PCM this module parses the RIFF chunks itself, reads the raw int16
sample data from the ``data`` chunk's offset and converts only the chosen column; other
subtypes (float, 24/32-bit PCM, ...) fall back to `soundfile`. Either way the samples equal what
``librosa.load(path, sr=None, mono=False)[channel]`` gives: ``int16 / 32768`` as float32.

Every broken input (missing, empty, not RIFF/WAVE, truncated, no frames, wrong channel or rate,
non-finite samples, or float samples beyond `MAX_SAMPLE`, whose log-mel overflows) raises `AudioError`
naming the file; `check_wav` also rejects a channel count other than the expected one and a silent
(constant) channel.
"""

from __future__ import annotations

import os
import stat
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile

from common.errors import AudioError

# WAVE format tags (mmreg.h); WAVE_FORMAT_EXTENSIBLE carries the real tag in its SubFormat GUID.
_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_IEEE_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE

# (format tag, bits per sample) -> libsndfile's subtype name, as `soundfile.info(...).subtype` spells it.
_SUBTYPES = {
    (_WAVE_FORMAT_PCM, 8): "PCM_U8",
    (_WAVE_FORMAT_PCM, 16): "PCM_16",
    (_WAVE_FORMAT_PCM, 24): "PCM_24",
    (_WAVE_FORMAT_PCM, 32): "PCM_32",
    (_WAVE_FORMAT_IEEE_FLOAT, 32): "FLOAT",
    (_WAVE_FORMAT_IEEE_FLOAT, 64): "DOUBLE",
    (0x0006, 8): "ALAW",
    (0x0007, 8): "ULAW",
}

# File signatures: RIFF, and RF64 / BW64 (EBU Tech 3306 / ITU BS.2088), whose sizes over 4 GiB sit in a ds64 chunk.
_RIFF_IDS = (b"RIFF", b"RF64", b"BW64")

# The largest sample magnitude a clip may have: 2**31, the full scale of 32-bit PCM, above any PCM
# format's. Float WAVs may exceed 1.0 (some tools write int16 or int32 units), but a sample beyond
# this is a corrupt value (a flipped exponent bit makes 3e38), and its power spectrum overflows
# float32: the clip's log-mel would be inf and its score NaN.
MAX_SAMPLE = 2.0**31

# Bytes of a fmt chunk read at most (16 for PCM, 40 for WAVE_FORMAT_EXTENSIBLE).
_HEADER_READ = 4096

# Each thread keeps one int16 read buffer up to this size (a 10 s, 8-channel clip needs 2.5 MB):
# a fresh multi-megabyte array per clip costs more in page faults than the read itself.
_SCRATCH_MAX_BYTES = 32 * 2**20
_scratch_local = threading.local()


@dataclass(frozen=True)
class WavInfo:
    """What the RIFF header of a WAV file says about its samples.

    Attributes
    ----------
    samplerate : int > 0
        Frames per second.
    channels : int > 0
        Interleaved channels per frame.
    frames : int >= 0
        Sample frames in the ``data`` chunk.
    subtype : str
        libsndfile's name for the sample format: ``"PCM_16"``, ``"PCM_24"``, ``"FLOAT"``, ...
    data_offset : int or None
        Byte offset of the first sample in the file for ``PCM_16`` (the fast path); None otherwise.
    """

    samplerate: int
    channels: int
    frames: int
    subtype: str
    data_offset: int | None


def wav_info(path: str | os.PathLike) -> WavInfo:
    """Parse the RIFF/WAVE (or RF64) header of `path` without reading the samples.

    RF64 files (RIFF's 64-bit form, which soundfile and some recorders write) take their data
    size from the ``ds64`` chunk. Walks the chunk list (``fmt ``, ``data`` and any others such as ``LIST``, honouring the pad
    byte after odd-sized chunks) and checks that the file holds all the sample data the ``data``
    chunk declares.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.wav`` file.

    Returns
    -------
    info : WavInfo

    Raises
    ------
    AudioError
        The file is missing, empty, not RIFF/WAVE, has no ``fmt `` or ``data`` chunk, an invalid
        ``fmt `` chunk, or is truncated (its ``data`` chunk is shorter than declared). The message
        names `path`.
    """
    path = Path(path)
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) and not stat.S_ISDIR(st.st_mode):
            # Opening a FIFO blocks until a writer comes (for ever, from a user's point of view).
            raise AudioError(f"WAV file {path} is not a regular file but a {_file_kind(st.st_mode)}: only "
                             "files can be read as clips")
        with open(path, "rb") as fh:
            return _parse_riff(fh, st.st_size, path)
    except FileNotFoundError:
        raise AudioError(f"WAV file {path} does not exist") from None
    except IsADirectoryError:
        raise AudioError(f"WAV file {path} is a directory") from None
    except OSError as exc:
        raise AudioError(f"cannot read WAV file {path}: {exc}") from exc


_FILE_KINDS = {stat.S_IFIFO: "FIFO (named pipe)", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
               stat.S_IFBLK: "block device"}


def _file_kind(mode: int) -> str:
    """What a file that is neither a regular file nor a folder is, in words."""
    return _FILE_KINDS.get(stat.S_IFMT(mode), "special file")


def _parse_riff(fh, size: int, path: Path) -> WavInfo:
    """Walk the chunks of an open RIFF/WAVE (or RF64) file of `size` bytes (see `wav_info`)."""
    if size == 0:
        raise AudioError(f"WAV file {path} is empty (0 bytes)")
    head = fh.read(12)
    if len(head) < 12 or head[:4] not in _RIFF_IDS or head[8:12] != b"WAVE":
        raise AudioError(f"{path} is not a RIFF/WAVE file (nor RF64; it starts with {head[:12]!r})")

    fmt: tuple[int, int, int, int, int] | None = None  # tag, channels, rate, block_align, bits
    data_size64: int | None = None  # RF64: the data size lives in the ds64 chunk
    pos = 12
    while pos + 8 <= size:
        fh.seek(pos)
        chunk_id, chunk_size = struct.unpack("<4sI", fh.read(8))
        body = pos + 8
        if chunk_id == b"ds64" and head[:4] != b"RIFF":
            data_size64 = _parse_ds64(fh.read(min(chunk_size, 16)), path)
        elif chunk_id == b"fmt ":
            fmt = _parse_fmt(fh.read(min(chunk_size, _HEADER_READ)), chunk_size, path)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioError(f"WAV file {path} has a data chunk before its fmt chunk")
            if chunk_size == 0xFFFFFFFF and head[:4] != b"RIFF":
                if data_size64 is None:
                    raise AudioError(f"RF64 file {path} has no ds64 chunk before its data chunk")
                chunk_size = data_size64
            return _data_info(fmt, body, chunk_size, size, path)
        # Chunks are word-aligned: an odd-sized chunk is followed by one pad byte.
        pos = body + chunk_size + (chunk_size & 1)
    if fmt is None:
        raise AudioError(f"WAV file {path} has no fmt chunk (truncated header?)")
    raise AudioError(f"WAV file {path} has no data chunk (truncated header?)")


def _parse_ds64(raw: bytes, path: Path) -> int:
    """The 64-bit data size of an RF64 ``ds64`` chunk body (riff size, data size, sample count, ...)."""
    if len(raw) < 16:
        raise AudioError(f"RF64 file {path} has a ds64 chunk of {len(raw)} bytes, need >= 16")
    _riff_size, data_size = struct.unpack("<QQ", raw[:16])
    return data_size


def _parse_fmt(raw: bytes, chunk_size: int, path: Path) -> tuple[int, int, int, int, int]:
    """(format tag, channels, samplerate, block_align, bits) from a ``fmt `` chunk body."""
    if chunk_size < 16 or len(raw) < 16:
        raise AudioError(f"WAV file {path} has a fmt chunk of {len(raw)} bytes, need >= 16")
    tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", raw[:16])
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        # cbSize(2) validBits(2) channelMask(4) SubFormat GUID(16): the GUID starts with the tag.
        if len(raw) < 26:
            raise AudioError(f"WAV file {path} is WAVE_FORMAT_EXTENSIBLE but its fmt chunk has no SubFormat")
        (tag,) = struct.unpack("<H", raw[24:26])
    if channels < 1 or rate < 1 or block_align < 1:
        raise AudioError(
            f"WAV file {path} has an invalid fmt chunk: channels={channels}, samplerate={rate}, "
            f"block_align={block_align}"
        )
    return tag, channels, rate, block_align, bits


def _data_info(fmt: tuple[int, int, int, int, int], offset: int, declared: int, size: int, path: Path) -> WavInfo:
    """`WavInfo` for a ``data`` chunk of `declared` bytes at `offset` in a file of `size` bytes."""
    tag, channels, rate, block_align, bits = fmt
    available = size - offset
    if declared > available:
        # libsndfile reads such files without complaint and returns fewer frames than the header
        # promises; a clip cut mid-write must not silently become a shorter clip.
        raise AudioError(
            f"WAV file {path} is truncated: its data chunk declares {declared} bytes "
            f"but only {max(available, 0)} follow the header"
        )
    subtype = _SUBTYPES.get((tag, bits), f"WAVE_FORMAT_0x{tag:04X}_{bits}BIT")
    if tag in (_WAVE_FORMAT_PCM, _WAVE_FORMAT_IEEE_FLOAT):
        frames = declared // block_align
    else:  # compressed formats (ADPCM, GSM, ...): only the decoder knows the frame count
        frames = _soundfile_info(path).frames
    data_offset = offset if subtype == "PCM_16" and block_align == 2 * channels else None
    return WavInfo(samplerate=rate, channels=channels, frames=frames, subtype=subtype, data_offset=data_offset)


def _soundfile_info(path: Path):
    try:
        return soundfile.info(str(path))
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioError(f"soundfile cannot read WAV file {path}: {exc}") from exc


def read_channel(
    path: str | os.PathLike, *, channel: int = 0, expected_sr: int | None = 16000, info: WavInfo | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Read one channel of a WAV file as float32 samples in [-1, 1).

    For 16-bit PCM only the chosen channel is converted: the int16 sample data are read in one
    call and the column ``int16 / 32768`` is returned, exactly what
    ``librosa.load(path, sr=None, mono=False)[channel]`` gives. Other subtypes are decoded with
    `soundfile` (float32), which librosa uses too.

    Parameters
    ----------
    path : str or os.PathLike
        A RIFF/WAVE file.
    channel : int >= 0
        Which channel to keep (0-based; MIMII has 8).
    expected_sr : int > 0 or None
        Required sample rate; None accepts any rate. No resampling is done.
    info : WavInfo or None
        The file's header from `wav_info`, when the caller has parsed it already.
    out : np.ndarray [shape=(frames,), float32 or float64] or None
        Where to write the samples (e.g. a row of a batch); None allocates a float32 array.
        Both dtypes hold ``int16 / 32768`` exactly.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        The samples of `channel` (`out` when given).
    sr : int
        The file's sample rate.

    Raises
    ------
    AudioError
        Anything `wav_info` rejects; no frames; `channel` out of range; a rate other than
        `expected_sr`; non-finite samples or samples beyond `MAX_SAMPLE` (`check_sample_range`). The message
        names `path`.

    Examples
    --------
    >>> y, sr = read_channel("00000000.wav", channel=0)  # doctest: +SKIP
    >>> y.shape, y.dtype, sr
    ((160000,), dtype('float32'), 16000)
    """
    if info is None:
        info = wav_info(path)
    check_info(info, path, channel=channel, expected_sr=expected_sr)
    if out is None:
        out = np.empty(info.frames, dtype=np.float32)
    elif out.shape != (info.frames,) or out.dtype not in (np.float32, np.float64):
        raise AudioError(
            f"out has shape={out.shape} dtype={out.dtype}, but WAV file {path} needs ({info.frames},) float32 or float64"
        )
    if info.data_offset is not None:
        _read_pcm16_column(path, info, channel, out)
    else:
        _read_soundfile_column(path, info, channel, out)
    validate_audio(out, path)
    return out, info.samplerate


def check_sample_range(y: np.ndarray, path: str | os.PathLike) -> None:
    """Raise `AudioError` naming `path` when a sample of `y` is beyond `MAX_SAMPLE` in magnitude.

    Such a clip is finite, so `validate_audio` passes it, but its power spectrum overflows float32:
    its features would be inf and its score NaN, which no threshold can judge.
    """
    peak = max(float(y.max()), -float(y.min())) if y.size else 0.0
    if MAX_SAMPLE < peak < np.inf:  # NaN and inf: `validate_audio` names those
        big = np.abs(y) > MAX_SAMPLE
        raise AudioError(
            f"WAV file {path} has {int(np.count_nonzero(big))} sample(s) of magnitude up to "
            f"{float(np.abs(y).max()):.3g}, beyond {MAX_SAMPLE:.3g} (the full scale of 32-bit PCM): a corrupt "
            "float sample (e.g. a flipped exponent bit); its log-mel features would overflow"
        )


def check_info(
    info: WavInfo,
    path: str | os.PathLike,
    *,
    channel: int = 0,
    expected_sr: int | None = None,
    expected_channels: int | None = None,
) -> None:
    """Raise `AudioError` naming `path` unless `info` has frames, `channel`, `expected_sr` and `expected_channels`."""
    if info.frames == 0:
        raise AudioError(f"WAV file {path} has no sample frames")
    if not (isinstance(channel, (int, np.integer)) and 0 <= channel < info.channels):
        raise AudioError(f"channel={channel} is out of range for WAV file {path} with {info.channels} channel(s)")
    if expected_sr is not None and info.samplerate != expected_sr:
        raise AudioError(f"WAV file {path} has sample rate {info.samplerate} Hz, expected {expected_sr} Hz")
    if expected_channels is not None and info.channels != expected_channels:
        raise AudioError(f"WAV file {path} has {info.channels} channel(s), expected {expected_channels}")


def check_not_silent(y: np.ndarray, path: str | os.PathLike | None = None, *, channel: int | None = None) -> None:
    """Raise `AudioError` when every sample of `y` has one value (digital silence or a stuck converter).

    Such a clip is valid audio to `validate_audio` (and to librosa), but its log-mel is a constant
    floor: scored, it would say nothing about the machine. The message names `path`.
    """
    if y.size and y.min() == y.max():
        where = f"WAV file {path}" if path is not None else "audio"
        which = f"channel {channel}" if channel is not None else "every sample"
        what = "all zero" if y[0] == 0 else f"constant ({float(y[0]):.6g})"
        raise AudioError(f"{where} is silent: {which} is {what} over all {y.size} samples")


def check_wav(
    path: str | os.PathLike,
    *,
    channel: int = 0,
    expected_sr: int | None = 16000,
    expected_channels: int | None = None,
    info: WavInfo | None = None,
) -> WavInfo:
    """Check a WAV file fully: its header, then the samples of `channel` (finite, not silent).

    Parameters
    ----------
    path : str or os.PathLike
        A RIFF/WAVE file.
    channel : int >= 0
        The channel whose samples are checked (the one the features use).
    expected_sr : int > 0 or None
        Required sample rate; None accepts any.
    expected_channels : int > 0 or None
        Required channel count (e.g. that of the machine's other files); None accepts any.
    info : WavInfo or None
        The header from `wav_info`, when already parsed.

    Returns
    -------
    info : WavInfo

    Raises
    ------
    AudioError
        Anything `read_channel` rejects, a channel count other than `expected_channels`, or a
        silent channel (`check_not_silent`). The message names `path`.
    """
    if info is None:
        info = wav_info(path)
    check_info(info, path, channel=channel, expected_sr=expected_sr, expected_channels=expected_channels)
    y, _ = read_channel(path, channel=channel, expected_sr=expected_sr, info=info)
    check_not_silent(y, path, channel=channel)
    return info


def _read_pcm16_column(path: str | os.PathLike, info: WavInfo, channel: int, out: np.ndarray) -> None:
    """Scale one channel of interleaved little-endian int16 data into `out` (float32 or float64)."""
    # One read of the data chunk into a fresh buffer is faster here than np.memmap, whose page
    # faults cost more than copying 2.5 MB from the page cache; the column gather is then cheap.
    data = _scratch((info.frames, info.channels))
    try:
        with open(path, "rb", buffering=0) as fh:
            fh.seek(info.data_offset)
            got = fh.readinto(data)
    except OSError as exc:
        raise AudioError(f"cannot read WAV file {path}: {exc}") from exc
    if got != data.nbytes:
        raise AudioError(f"WAV file {path} is truncated: read {got} of {data.nbytes} bytes of sample data")
    # Multiplying by 2**-15 is exact in float32 and float64: this equals libsndfile's int16 / 32768.
    np.multiply(data[:, channel], out.dtype.type(1.0 / 32768.0), out=out)


def _scratch(shape: tuple[int, int]) -> np.ndarray:
    """An int16 array of `shape`, reused by the calling thread when it is small enough."""
    nbytes = 2 * shape[0] * shape[1]
    if nbytes > _SCRATCH_MAX_BYTES:
        return np.empty(shape, dtype="<i2")
    buf = getattr(_scratch_local, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _scratch_local.buf = np.empty(max(nbytes, 2**20) // 2, dtype="<i2")
    return buf[: nbytes // 2].reshape(shape)


def _read_soundfile_column(path: str | os.PathLike, info: WavInfo, channel: int, out: np.ndarray) -> None:
    """One channel decoded by soundfile (float32) into `out`, for subtypes other than 16-bit PCM."""
    try:
        data, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioError(f"soundfile cannot read WAV file {path}: {exc}") from exc
    if data.shape[0] < info.frames:
        raise AudioError(f"WAV file {path} is truncated: {data.shape[0]} of {info.frames} frames decoded")
    out[...] = data[:, channel]
    check_sample_range(out, path)  # float samples may be anything; 16-bit PCM lies in [-1, 1) by construction


def validate_audio(y: np.ndarray, path: str | os.PathLike | None = None) -> None:
    """Check that `y` is a usable mono signal (librosa ``util.valid_audio``), naming `path` if not.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Samples; must be floating point, one-dimensional, non-empty and finite.
    path : str or os.PathLike or None
        The file the samples came from, for the message.

    Raises
    ------
    AudioError
        `y` is not an ndarray, not floating point, not 1-D, empty, or has NaN/inf samples.
    """
    where = f" from {path}" if path is not None else ""
    if not isinstance(y, np.ndarray):
        raise AudioError(f"audio{where} must be a np.ndarray, got {type(y).__name__}")
    if not np.issubdtype(y.dtype, np.floating):
        raise AudioError(f"audio{where} must be floating point, got dtype={y.dtype}")
    if y.ndim != 1:
        raise AudioError(f"audio{where} must be one-dimensional (one channel), got shape={y.shape}")
    if y.size == 0:
        raise AudioError(f"audio{where} is empty")
    # A sum of finite values in [-1, 1] cannot overflow, and any NaN/inf makes it non-finite, so
    # one reduction clears almost every clip; only a non-finite sum needs the elementwise check.
    with np.errstate(over="ignore", invalid="ignore"):
        total = y.sum()
    if not np.isfinite(total) and not np.isfinite(y).all():
        bad = int(np.count_nonzero(~np.isfinite(y)))
        raise AudioError(f"audio{where} has {bad} non-finite sample(s) (NaN or inf)")
