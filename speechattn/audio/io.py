"""Audio I/O through ``soundfile`` (libsndfile), with one-line, file-naming errors.

Everything is read as ``float32`` in ``[-1, 1]`` (integer PCM is scaled by libsndfile), mixed to
mono by averaging the channels, and optionally resampled with :func:`resample` (the samples of
:func:`torchaudio.functional.resample`, with a filter of bounded size for any pair of rates). Long
files can be read block by block with :func:`iter_audio_blocks`, which resamples with
:class:`StreamingResampler` and gives the same samples as :func:`load_audio` without ever holding
the whole file in memory.

``torchaudio.load`` / ``torchaudio.save`` are deliberately not used (they need TorchCodec).
"""

from __future__ import annotations

import errno
import math
import os
import stat
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Union

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

__all__ = [
    "AudioError",
    "AudioInfo",
    "MAX_RESAMPLE_TAPS",
    "MAX_SAMPLE_RATE",
    "StreamingResampler",
    "audio_info",
    "iter_audio_blocks",
    "load_audio",
    "resample",
    "resampling_ratio",
    "save_audio",
]

PathLike = Union[str, os.PathLike]


class AudioError(ValueError):
    """An audio file is missing, unreadable, empty or holds invalid samples.

    The message is a single line ``"<path>: <problem>"``.
    """


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text.rstrip(".") or type(err).__name__


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
    """
    _check_target_rate(sample_rate)
    p = _check_path(path)
    with _open(p) as f:
        rate = int(f.samplerate)
        _check_rate(p, rate)
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(f"{p}: corrupt audio data ({_one_line(err)})") from err
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


#: Largest resampling filter (phases x taps, plus the input span of one block) a resampler may
#: build, in float32 values: 16 MB. Rate pairs whose exact filter is larger (an odd rate such as
#: 352,801 Hz whose reduced pair stays large) are resampled with the nearest ratio that fits
#: (see :func:`resampling_ratio`).
MAX_RESAMPLE_TAPS = 1 << 22
#: Highest sample rate a file may have (64 x 48 kHz); higher rates are "unsupported".
MAX_SAMPLE_RATE = 3_072_000
# Output samples x taps computed per gather (bounds the temporaries of one resampling step).
_GATHER_VALUES = 1 << 20
# Up to this many values, torchaudio's dense kernel is used as it is (a strided convolution:
# faster, and bit-identical to torchaudio); every common rate pair (44.1, 22.05, 11.025, 48, 8 kHz
# to 16 kHz...) is far below it.
_DENSE_KERNEL = 1 << 20
_LOWPASS_WIDTH = 6
_ROLLOFF = 0.99


def _filter_size(orig: int, new: int) -> tuple[int, int, int]:
    """(width, span, taps per phase) of the sinc filter for the reduced pair ``orig -> new``.

    ``span = 2 * width + orig`` is torchaudio's kernel length; a phase reads only
    ``2 * lowpass_width * orig / base_freq + 3`` of those inputs (the rest are the window's zeros).
    """
    base_freq = min(orig, new) * _ROLLOFF
    half = _LOWPASS_WIDTH * orig / base_freq
    width = math.ceil(half)
    span = 2 * width + orig
    return width, span, min(span, 2 * math.ceil(half) + 3)


def _filter_cost(orig: int, new: int) -> int:
    _, span, taps = _filter_size(orig, new)
    return new * taps + 2 * span


def resampling_ratio(orig_rate: int, new_rate: int) -> tuple[int, int]:
    """The reduced ``(orig, new)`` pair a resampler from ``orig_rate`` to ``new_rate`` uses.

    Normally ``orig_rate / new_rate`` reduced by their gcd, the exact ratio. When that pair's
    polyphase filter would exceed :data:`MAX_RESAMPLE_TAPS` values (only for rates with a large
    reduced pair above a few hundred kHz), the closest fraction whose filter fits is used
    instead: the best rational approximation whose filter fits. The ratio is exact for every
    input rate up to 280 kHz (to any output rate up to 192 kHz); above, for odd rates, its relative
    error stays below 4e-6 (1.4e-6 at worst measured, up to :data:`MAX_SAMPLE_RATE` to 8 or
    16 kHz): a pitch change below 0.007 cents and a timing drift below 15 ms per hour.
    """
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    if _filter_cost(orig, new) <= MAX_RESAMPLE_TAPS:
        return orig, new
    target = Fraction(new_rate, orig_rate)
    best: tuple[int, int] | None = None
    lo, hi = 1, orig
    while lo <= hi:
        mid = (lo + hi) // 2
        f = target.limit_denominator(mid)
        if f.numerator > 0 and _filter_cost(f.denominator, f.numerator) <= MAX_RESAMPLE_TAPS:
            best, lo = (f.denominator, f.numerator), mid + 1
        else:
            hi = mid - 1
    if best is None:  # pragma: no cover - only for ratios beyond MAX_SAMPLE_RATE
        raise ValueError(f"cannot resample {orig_rate} Hz to {new_rate} Hz within the filter size limit")
    return best


def _sinc_resample_kernel(orig: int, new: int) -> Tensor:
    """torchaudio's own `(new, 1, 2 * width + orig)` kernel (``sinc_interp_hann``, default
    arguments) for a reduced pair whose kernel is small: mirrors its float32 computation operation
    by operation, so the convolution gives torchaudio's samples bit for bit."""
    dtype = torch.float32
    base_freq = min(orig, new) * _ROLLOFF
    width = math.ceil(_LOWPASS_WIDTH * orig / base_freq)
    idx = torch.arange(-width, width + orig, dtype=dtype)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=dtype)[:, None, None] / new + idx
    return _hann_sinc(t, base_freq, orig)


def _hann_sinc(t: Tensor, base_freq: float, orig: int) -> Tensor:
    """torchaudio's ``sinc_interp_hann`` taps at the offsets ``t`` (in input samples, scaled in
    place), with its float32 operations in its order, so the values are the same."""
    t *= base_freq
    t = t.clamp_(-_LOWPASS_WIDTH, _LOWPASS_WIDTH)
    window = torch.cos(t * math.pi / _LOWPASS_WIDTH / 2) ** 2
    t *= math.pi
    scale = base_freq / orig
    kernels = torch.where(t == 0, torch.tensor(1.0).to(t), t.sin() / t)
    kernels *= window * scale
    return kernels


def _polyphase_filter(orig: int, new: int) -> tuple[Tensor, Tensor, int, int]:
    """The filter of :func:`torchaudio.functional.resample` (``sinc_interp_hann``, default
    arguments) for the reduced pair ``orig -> new``, keeping only each phase's non-zero taps.

    torchaudio's kernel has shape `(new, 2 * width + orig)`, nearly all of it the window's zeros
    when ``orig`` is large (and ``new * orig`` values: 2.8 GB for 44,101 -> 16,000 Hz). Phase ``j``
    is non-zero only within ``lowpass_width`` zero crossings of its centre ``width + j * orig / new``;
    this returns those taps, computed with torchaudio's float32 operations on the same grid, so the
    values are the same.

    Returns:
        (Tensor, Tensor, int, int): taps `(new, L)`, first kernel index of each phase `(new,)`
        (int64), ``width`` and the kernel length ``2 * width + orig``.
    """
    dtype = torch.float32
    base_freq = min(orig, new) * _ROLLOFF
    width, span, taps = _filter_size(orig, new)
    half = _LOWPASS_WIDTH * orig / base_freq
    phase = torch.arange(new, dtype=torch.float64)
    centre = width + phase * orig / new
    first = torch.floor(centre - half).to(torch.int64).clamp_(0, span - taps)
    k = first[:, None] + torch.arange(taps)[None, :]  # (new, L) kernel indices
    # torchaudio: idx = arange(-width, width + orig) / orig; t = arange(0, -new, -1)[:, None] / new + idx
    idx = (k - width).to(dtype) / orig
    t = (-torch.arange(new, dtype=dtype))[:, None] / new + idx
    return _hann_sinc(t, base_freq, orig).contiguous(), first, width, span


class StreamingResampler:
    """Band-limited (windowed-sinc) resampling, chunk by chunk, in bounded memory.

    It computes what :func:`torchaudio.functional.resample` (default arguments) computes, up to
    float rounding: torchaudio zero-pads the signal by ``width`` on the left and ``width + orig``
    on the right (``orig``/``new`` the rates reduced by their gcd) and runs a strided convolution
    with a `(new, 2 * width + orig)` kernel: output block ``b`` (``new`` samples) reads padded
    input ``[b * orig, b * orig + 2 * width + orig)``. That kernel grows with ``new * orig``, which
    for an odd rate is huge (44,101 -> 16,000 Hz: 706 million values, 2.8 GB). Small kernels (every
    common rate pair) are used as they are, with the same convolution; for larger ones this class
    keeps only each phase's non-zero taps (``new`` x about ``12 * max(1, orig / new)`` values, e.g.
    0.56 M for 44,101 Hz) and gathers their inputs, a bounded number of outputs at a time; rate
    pairs whose filter would still exceed :data:`MAX_RESAMPLE_TAPS` use the nearest ratio that
    fits (:func:`resampling_ratio`, relative error below 4e-6, only above 280 kHz).

    It keeps only the not-yet-consumed tail of the padded input, emits every block whose
    support is complete, and on :meth:`flush` appends the right zero padding and trims the output
    to ``ceil(new * total / orig)`` samples, exactly like the offline call. The internal buffer
    holds less than ``2 * width + 2 * orig`` samples between calls.

    Args:
        orig_rate (int): Input sample rate.
        new_rate (int): Output sample rate.

    Example
        >>> rs = StreamingResampler(44100, 16000)
        >>> out = torch.cat([rs.push(chunk) for chunk in chunks] + [rs.flush()])
    """

    def __init__(self, orig_rate: int, new_rate: int) -> None:
        for name, value in (("orig_rate", orig_rate), ("new_rate", new_rate)):
            if int(value) != value or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.orig_rate = int(orig_rate)
        self.new_rate = int(new_rate)
        self._identity = self.orig_rate == self.new_rate
        if not self._identity:
            self._orig, self._new = resampling_ratio(self.orig_rate, self.new_rate)
            self._width, self._span, _ = _filter_size(self._orig, self._new)
            if self._new * self._span <= _DENSE_KERNEL:
                self._kernel: Tensor | None = _sinc_resample_kernel(self._orig, self._new)
                self._taps, self._first = torch.empty(0, 0), torch.empty(0, dtype=torch.int64)
            else:
                self._kernel = None
                self._taps, self._first, _, _ = _polyphase_filter(self._orig, self._new)
        else:
            self._orig = self._new = 1
            self._kernel, self._width, self._span = None, 0, 0
            self._taps, self._first = torch.empty(0, 0), torch.empty(0, dtype=torch.int64)
        self.reset()

    @property
    def ratio(self) -> tuple[int, int]:
        """The reduced ``(orig, new)`` rate pair in use (see :func:`resampling_ratio`)."""
        return self._orig, self._new

    def reset(self) -> None:
        """Forget all input; the next :meth:`push` starts a new signal."""
        self._buffer = torch.zeros(self._width, dtype=torch.float32)
        self._num_in = 0
        self._num_out = 0

    def _run(self, final: bool) -> Tensor:
        orig, new, span = self._orig, self._new, self._span
        n = self._buffer.numel()
        if n < span:
            return torch.empty(0, dtype=torch.float32)
        blocks = (n - span) // orig + 1
        if self._kernel is not None:
            used = self._buffer[: (blocks - 1) * orig + span]
            out = torch.nn.functional.conv1d(used[None, None], self._kernel, stride=orig)
            out = out.transpose(1, 2).reshape(-1)
        else:
            out = self._gather(blocks)
        self._buffer = self._buffer[blocks * orig :].clone()
        if final:
            target = math.ceil(new * self._num_in / orig)
            out = out[: max(0, target - self._num_out)]
        self._num_out += out.numel()
        return out

    def _gather(self, blocks: int) -> Tensor:
        """The outputs of ``blocks`` complete blocks with the sparse filter."""
        orig, new, taps = self._orig, self._new, self._taps
        length = taps.shape[1]
        windows = self._buffer.unfold(0, length, 1)  # (n - L + 1, L) view: the inputs of every start
        rows = max(1, _GATHER_VALUES // (new * length))
        out = torch.empty(blocks * new, dtype=torch.float32)
        for b0 in range(0, blocks, rows):
            b1 = min(blocks, b0 + rows)
            starts = torch.arange(b0 * orig, b1 * orig, orig)[:, None] + self._first[None, :]
            gathered = windows[starts.reshape(-1)].view(b1 - b0, new, length)
            out[b0 * new : b1 * new] = (gathered * taps).sum(-1).reshape(-1)
        return out

    def push(self, samples: Tensor) -> Tensor:
        """Feed the next chunk.

        Args:
            samples (Tensor): `(samples,)`, any length (also 0).

        Returns:
            Tensor: `(out_samples,)` float32, the outputs that are now final.
        """
        if samples.dim() != 1:
            raise ValueError(f"samples must be 1-D (samples,), got shape {tuple(samples.shape)}")
        samples = samples.detach().to(torch.float32)
        self._num_in += samples.numel()
        if self._identity:
            self._num_out += samples.numel()
            return samples.clone()
        self._buffer = torch.cat([self._buffer, samples])
        return self._run(final=False)

    def flush(self) -> Tensor:
        """End the signal: emit the remaining outputs and :meth:`reset`.

        Returns:
            Tensor: `(out_samples,)` float32.
        """
        if self._identity:
            self.reset()
            return torch.empty(0, dtype=torch.float32)
        self._buffer = torch.cat([self._buffer, torch.zeros(self._width + self._orig)])
        out = self._run(final=True)
        self.reset()
        return out


def resample(waveform: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    """Resample a whole `(samples,)` waveform from ``orig_rate`` to ``new_rate``.

    The offline counterpart of :class:`StreamingResampler`: the samples of
    :func:`torchaudio.functional.resample` for any pair of rates (its own call, when its kernel is
    small: every common pair), with a filter of bounded size (torchaudio's call alone allocates
    gigabytes for odd rates such as 44,101 Hz). Equal rates return ``waveform`` unchanged.

    Raises:
        ValueError: ``waveform`` is not 1-D or a rate is not a positive integer.
    """
    if waveform.dim() != 1:
        raise ValueError(f"expected a mono (samples,) waveform, got shape {tuple(waveform.shape)}")
    if orig_rate == new_rate and int(orig_rate) == orig_rate and orig_rate > 0:
        return waveform
    rs = StreamingResampler(orig_rate, new_rate)
    if rs._kernel is not None and rs.ratio == _reduced(rs.orig_rate, rs.new_rate):
        import torchaudio  # small kernel: torchaudio's own call, bit for bit

        return torchaudio.functional.resample(waveform, rs.orig_rate, rs.new_rate)
    head = rs.push(waveform)
    return torch.cat([head, rs.flush()])


def _reduced(a: int, b: int) -> tuple[int, int]:
    g = math.gcd(a, b)
    return a // g, b // g


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
    if total == 0:
        raise AudioError(f"{p}: empty audio (0 samples)")
    if resampler is not None:
        tail = resampler.flush()
        if tail.numel() > 0:
            yield tail
