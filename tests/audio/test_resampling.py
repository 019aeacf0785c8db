"""speechattn.audio.resampling: offline and streaming resampling, bounded filters for any rates."""

from __future__ import annotations

import math

import pytest
import torch
import torchaudio

from speechattn.audio import (
    MAX_RESAMPLE_TAPS,
    StreamingResampler,
    resample,
    resampling_ratio,
)


@pytest.mark.parametrize(
    ("orig", "new"), [(8000, 16000), (44100, 16000), (22050, 16000), (16000, 16000), (48000, 16000), (16000, 8000)]
)
def test_streaming_resampler_matches_offline(orig: int, new: int) -> None:
    gen = torch.Generator().manual_seed(orig + new)
    for length in (1, 7, 333, 4410, 20011):
        x = torch.randn(length, generator=gen)
        ref = torchaudio.functional.resample(x, orig, new)
        rs = StreamingResampler(orig, new)
        outs, pos, peak = [], 0, 0
        while pos < length:
            size = int(torch.randint(1, 1200, (1,), generator=gen))
            outs.append(rs.push(x[pos : pos + size]))
            pos += size
            peak = max(peak, rs._buffer.numel())
        outs.append(rs.flush())
        y = torch.cat(outs)
        assert y.shape == ref.shape, (orig, new, length)
        torch.testing.assert_close(y, ref, rtol=0, atol=1e-5)
        # bounded: never more than one kernel span + one push + one phase block
        kernel = rs._span if orig != new else 0
        assert peak < kernel + 2 * orig // math.gcd(orig, new) + 1


def test_streaming_resampler_sample_by_sample_and_reuse() -> None:
    x = torch.randn(2000, generator=torch.Generator().manual_seed(3))
    ref = torchaudio.functional.resample(x, 22050, 16000)
    rs = StreamingResampler(22050, 16000)
    for _ in range(2):  # flush resets, so the second pass must give the same result
        y = torch.cat([rs.push(s) for s in x.split(1)] + [rs.flush()])
        torch.testing.assert_close(y, ref, rtol=0, atol=1e-5)


def test_streaming_resampler_buffer_does_not_grow() -> None:
    rs = StreamingResampler(44100, 16000)
    sizes = []
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):
        rs.push(torch.randn(1000, generator=gen))
        sizes.append(rs._buffer.numel())
    assert max(sizes[200:]) <= max(sizes[:200])
    assert max(sizes) < 1000 + rs._span


@pytest.mark.parametrize(("orig", "new"), [(997, 1601), (1601, 997), (7, 16000)])
def test_coprime_rates_match_torchaudio(orig: int, new: int) -> None:
    """Rates whose reduced pair stays large (as 44,101 -> 16,000 Hz, where torchaudio's own kernel
    takes 2.8 GB) use only the non-zero taps of the same filter: same samples."""
    x = torch.randn(5 * orig + 13, generator=torch.Generator().manual_seed(orig))
    ref = torchaudio.functional.resample(x, orig, new)
    y = resample(x, orig, new)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-5)
    rs = StreamingResampler(orig, new)
    z = torch.cat([rs.push(c) for c in x.split(333)] + [rs.flush()])
    torch.testing.assert_close(z, ref, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("orig", "new"), [(44101, 16000), (7999, 16000), (192000, 16000), (16000, 44101),
                                           (352801, 16000), (3071999, 8000)])
def test_odd_rates_are_bounded_and_correct(orig: int, new: int) -> None:
    """Any rate: the filter stays under MAX_RESAMPLE_TAPS (torchaudio's kernel for 44,101 Hz has
    706 M values) and a tone comes out as the same tone at the new rate."""
    rs = StreamingResampler(orig, new)
    assert rs._taps.numel() + 2 * rs._span <= MAX_RESAMPLE_TAPS
    p, q = resampling_ratio(orig, new)
    assert abs(q / p - new / orig) <= 4e-6 * new / orig
    if (p, q) == (orig // math.gcd(orig, new), new // math.gcd(orig, new)):
        assert orig <= 280_000  # exact below 280 kHz
    freq = 440.0
    y = resample(_sine(orig, 0.5, freq), orig, new)
    assert y.numel() == math.ceil(int(orig * 0.5) * q / p)
    expected = _sine(new, 0.5, freq)[: y.numel()]
    middle = slice(y.numel() // 10, y.numel() * 9 // 10)  # away from the zero-padded edges
    torch.testing.assert_close(y[middle], expected[middle], rtol=0, atol=2e-3)


def test_streaming_resampler_bad_args() -> None:
    for orig, new in ((0, 16000), (16000, -1), (16000.5, 16000)):
        with pytest.raises(ValueError):
            StreamingResampler(orig, new)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        StreamingResampler(8000, 16000).push(torch.zeros(2, 10))


def _sine(rate: int, seconds: float, freq: float) -> torch.Tensor:
    t = torch.arange(int(rate * seconds), dtype=torch.float64) / rate
    return (0.5 * torch.sin(2 * math.pi * freq * t)).float()
