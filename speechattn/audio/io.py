"""Audio I/O through ``soundfile`` (libsndfile), with one-line, file-naming errors.

Everything is read as ``float32`` in ``[-1, 1]`` (integer PCM is scaled by libsndfile), mixed to
mono by averaging the channels, and optionally resampled with
:func:`speechattn.audio.resampling.resample` (the samples of :func:`torchaudio.functional.resample`,
with a filter of bounded size for any pair of rates). Long
files can be read block by block with :func:`iter_audio_blocks`, which resamples with
:class:`StreamingResampler` and gives the same samples as :func:`load_audio` without ever holding
the whole file in memory.

A truncated file (a WAV whose data chunk declares more bytes than the file holds, as after an
interrupted download, or any file that yields fewer samples than its header declares) is read as
far as it goes, with a WARNING on the ``speechattn.audio.io`` logger that names the file and what
is missing: ``x.wav: truncated: the header declares 10.00 s, the file holds 6.40 s``.

``torchaudio.load`` / ``torchaudio.save`` are deliberately not used (they need TorchCodec).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Union

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from speechattn.audio.resampling import StreamingResampler, resample
from speechattn.utils.messages import one_line

__all__ = ["AudioError", "AudioInfo", "MAX_SAMPLE_RATE", "audio_info", "iter_audio_blocks", "load_audio", "save_audio"]

PathLike = Union[str, os.PathLike]

log = logging.getLogger(__name__)


class AudioError(ValueError):
    """An audio file is missing, unreadable, empty or holds invalid samples.

    The message is a single line ``"<path>: <problem>"``.
    """


def _one_line(err: BaseException) -> str:
    return one_line(err).rstrip(".") or type(err).__name__


def _check_path(path: PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        if p.is_symlink():
            try:
                os.stat(p)
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise AudioError(f"{p}: symbolic link loop") from None
            raise AudioError(f"{p}: broken symbolic link (its target {os.readlink(p)} does not exist)")
        raise AudioError(f"{p}: file not found")
    if p.is_dir():
        raise AudioError(f"{p}: is a directory, not an audio file")
    try:
        st = p.stat()
    except OSError as err:  # pragma: no cover - permission races etc.
        raise AudioError(f"{p}: cannot access file ({_one_line(err)})") from err
    if not stat.S_ISREG(st.st_mode) and not stat.S_ISFIFO(st.st_mode):
        raise AudioError(f"{p}: not a regular file")
    if st.st_size == 0:
        raise AudioError(f"{p}: empty file (0 bytes)")
    if not os.access(p, os.R_OK):
        raise AudioError(f"{p}: permission denied")
    return p


def _check_rate(p: Path, rate: int) -> None:
    if rate <= 0 or rate > MAX_SAMPLE_RATE:
        raise AudioError(f"{p}: unsupported sample rate {rate} Hz (expected 1 to {MAX_SAMPLE_RATE} Hz)")


def _check_target_rate(sample_rate: int | None) -> None:
    if sample_rate is not None and (int(sample_rate) != sample_rate or sample_rate <= 0):
        raise ValueError(f"sample_rate must be a positive integer or None, got {sample_rate!r}")


def _open(p: Path) -> sf.SoundFile:
    try:
        return sf.SoundFile(str(p))
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        raise AudioError(f"{p}: not a readable audio file ({_one_line(err)})") from err


def _wav_declared_seconds(p: Path) -> float | None:
    """The seconds of audio a RIFF WAV's data chunk declares when the file holds fewer bytes of it
    (a truncated file: libsndfile then counts only the frames present); None for a complete WAV,
    another format, a data size left unknown (0 or 0xFFFFFFFF, as written to a pipe) or not a
    regular file (a pipe is never read here)."""
    try:
        if not stat.S_ISREG(p.stat().st_mode):
            return None
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:] != b"WAVE":
                return None
            pos, byte_rate = 12, 0
            for _ in range(1000):  # the chunks before "data"
                f.seek(pos)
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                name, length = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if name == b"fmt ":
                    fmt = f.read(12)
                    if len(fmt) < 12:
                        return None
                    byte_rate = struct.unpack("<I", fmt[8:12])[0]  # average bytes per second
                elif name == b"data":
                    if length in (0, 0xFFFFFFFF) or length <= size - (pos + 8) or byte_rate <= 0:
                        return None
                    return length / byte_rate
                pos += 8 + length + (length & 1)  # chunks are padded to an even size
    except OSError:
        return None
    return None


def _warn_truncated(p: Path, declared: float, held: float) -> None:
    log.warning("%s: truncated: the header declares %.2f s, the file holds %.2f s", p, declared, held)


def _check_wav_length(p: Path, f: sf.SoundFile) -> None:
    """Warn when ``f`` (just opened) is a WAV whose header declares more audio than it holds."""
    declared = _wav_declared_seconds(p)
    if declared is not None and f.frames > 0:  # no sample at all is an error of its own
        _warn_truncated(p, declared, f.frames / f.samplerate)


def _check_read_length(p: Path, f: sf.SoundFile, frames: int) -> None:
    """Warn when reading ``f`` to its end gave fewer than the ``f.frames`` its header declares."""
    if 0 < frames < f.frames:
        _warn_truncated(p, f.frames / f.samplerate, frames / f.samplerate)


def _to_mono(data: np.ndarray) -> np.ndarray:
    """(frames, channels) float32 -> (frames,) float32, averaging channels.

    Elementwise (no reductions whose order depends on the array shape), so mixing a file block by
    block gives bit-identical samples to mixing it whole.
    """
    channels = data.shape[1]
    if channels == 1:
        return np.ascontiguousarray(data[:, 0])
    mono = data[:, 0].copy()
    for c in range(1, channels):
        mono += data[:, c]
    mono *= np.float32(1.0 / channels)
    return mono


@dataclass(frozen=True)
class AudioInfo:
    """Header information of an audio file (nothing is decoded).

    Attributes:
        path (str): The file, as given.
        sample_rate (int): Samples per second per channel.
        num_frames (int): Samples per channel.
        num_channels (int): Number of channels.
        duration (float): ``num_frames / sample_rate`` in seconds.
    """

    path: str
    sample_rate: int
    num_frames: int
    num_channels: int
    duration: float


def audio_info(path: PathLike) -> AudioInfo:
    """Read the header of an audio file.

    Args:
        path: WAV, FLAC, OGG or anything else libsndfile reads.

    Returns:
        AudioInfo: rate, length, channels and duration.

    Raises:
        AudioError: The file is missing, not audio, has a bad sample rate or holds no samples.
    """
    p = _check_path(path)
    with _open(p) as f:
        rate, frames, channels = int(f.samplerate), int(f.frames), int(f.channels)
    _check_rate(p, rate)
    if frames <= 0:
        raise AudioError(f"{p}: empty audio (0 samples)")
    return AudioInfo(str(path), rate, frames, channels, frames / rate)


def load_audio(path: PathLike, sample_rate: int | None = None) -> tuple[Tensor, int]:
    """Load a whole audio file as a mono float32 waveform.

    Args:
        path: WAV, FLAC, OGG or anything else libsndfile reads; integer or float samples.
        sample_rate: If given, resample to this rate (:func:`resample`).

    Returns:
        (Tensor, int): Waveform of shape `(samples,)` (float32) and its sample rate.

    Raises:
        AudioError: The file is missing, unreadable or corrupt, empty, or holds NaN/Inf samples.
        ValueError: ``sample_rate`` is not a positive integer.

    A truncated file gives the samples it holds, with a warning (see the module docstring).
    """
    _check_target_rate(sample_rate)
    p = _check_path(path)
    with _open(p) as f:
        rate = int(f.samplerate)
        _check_rate(p, rate)
        _check_wav_length(p, f)
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(f"{p}: corrupt audio data ({_one_line(err)})") from err
        _check_read_length(p, f, data.shape[0])
    if data.shape[0] == 0:
        raise AudioError(f"{p}: empty audio (0 samples)")
    wave = torch.from_numpy(_to_mono(data))
    if not bool(torch.isfinite(wave).all()):
        raise AudioError(f"{p}: contains NaN or infinite samples")
    if sample_rate is not None and int(sample_rate) != rate:
        wave = resample(wave, rate, int(sample_rate))
        rate = int(sample_rate)
    return wave.contiguous(), rate


def save_audio(
    path: PathLike,
    waveform: Tensor | np.ndarray,
    sample_rate: int,
    subtype: str | None = None,
) -> None:
    """Write a waveform with ``soundfile`` (format from the file extension).

    Args:
        path: Destination (``.wav``, ``.flac``, ``.ogg``, ...).
        waveform: `(samples,)` or `(channels, samples)` float samples in ``[-1, 1]``; values
            outside are clipped when written as integer PCM.
        sample_rate: Samples per second.
        subtype: libsndfile subtype such as ``"PCM_16"`` or ``"FLOAT"`` (format default if None).

    Raises:
        ValueError: Bad shape, non-finite samples or non-positive sample rate.
    """
    if int(sample_rate) != sample_rate or sample_rate <= 0:
        raise ValueError(f"sample_rate must be a positive integer, got {sample_rate!r}")
    if isinstance(waveform, Tensor):
        data = waveform.detach().cpu().to(torch.float32).numpy()
    else:
        data = np.asarray(waveform, dtype=np.float32)
    if data.ndim == 1:
        data = data[:, None]
    elif data.ndim == 2:
        data = data.T
    else:
        raise ValueError(f"waveform must be (samples,) or (channels, samples), got shape {tuple(data.shape)}")
    if not np.isfinite(data).all():
        raise ValueError(f"{path}: refusing to write NaN or infinite samples")
    sf.write(str(path), np.ascontiguousarray(data), int(sample_rate), subtype=subtype)


#: Highest sample rate a file may have (64 x 48 kHz); higher rates are "unsupported".
MAX_SAMPLE_RATE = 3_072_000


def iter_audio_blocks(
    path: PathLike, sample_rate: int | None = None, block_seconds: float = 10.0
) -> Iterator[Tensor]:
    """Read an audio file of any length block by block, as mono float32.

    The file is opened and validated immediately (missing, unreadable, empty, bad rate); samples
    are decoded lazily ``block_seconds`` at a time and checked for NaN/Inf per block. Concatenated,
    the blocks equal ``load_audio(path, sample_rate)[0]``.

    Args:
        path: Any file libsndfile reads.
        sample_rate: Resample to this rate (with :class:`StreamingResampler`) if given.
        block_seconds: Input duration read per block.

    Returns:
        Iterator[Tensor]: Non-empty blocks of shape `(samples,)`.

    Raises:
        AudioError: As :func:`load_audio` (decode errors and NaN/Inf while iterating).
        ValueError: Bad ``sample_rate`` or ``block_seconds``.
    """
    _check_target_rate(sample_rate)
    if not block_seconds > 0 or not math.isfinite(block_seconds):
        raise ValueError(f"block_seconds must be positive, got {block_seconds!r}")
    info = audio_info(path)
    p = Path(path)
    blocksize = max(1, int(round(block_seconds * info.sample_rate)))
    target = info.sample_rate if sample_rate is None else int(sample_rate)
    return _blocks(p, blocksize, info.sample_rate, target)


def _blocks(p: Path, blocksize: int, rate: int, target: int) -> Iterator[Tensor]:
    resampler = StreamingResampler(rate, target) if target != rate else None
    total = 0
    with _open(p) as f:
        _check_wav_length(p, f)
        while True:
            try:
                data = f.read(blocksize, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as err:
                raise AudioError(f"{p}: corrupt audio data ({_one_line(err)})") from err
            if data.shape[0] == 0:
                break
            total += data.shape[0]
            block = torch.from_numpy(_to_mono(data))
            if not bool(torch.isfinite(block).all()):
                raise AudioError(f"{p}: contains NaN or infinite samples")
            if resampler is not None:
                block = resampler.push(block)
            if block.numel() > 0:
                yield block
        _check_read_length(p, f, total)
    if total == 0:
        raise AudioError(f"{p}: empty audio (0 samples)")
    if resampler is not None:
        tail = resampler.flush()
        if tail.numel() > 0:
            yield tail
