"""Resampling between any two rates: the samples of :func:`torchaudio.functional.resample`, with a
filter of bounded size, offline (:func:`resample`) and block by block (:class:`StreamingResampler`).

Common rate pairs use torchaudio's own kernel, bit for bit; pairs whose exact polyphase filter
would exceed :data:`MAX_RESAMPLE_TAPS` values use the nearest ratio that fits
(:func:`resampling_ratio`), so an odd rate never costs gigabytes.
"""

from __future__ import annotations

import math
from fractions import Fraction

import torch
from torch import Tensor

__all__ = ["MAX_RESAMPLE_TAPS", "StreamingResampler", "resample", "resampling_ratio"]


#: Largest resampling filter (phases x taps, plus the input span of one block) a resampler may
#: build, in float32 values: 16 MB. Rate pairs whose exact filter is larger (an odd rate such as
#: 352,801 Hz whose reduced pair stays large) are resampled with the nearest ratio that fits
#: (see :func:`resampling_ratio`).
MAX_RESAMPLE_TAPS = 1 << 22


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
