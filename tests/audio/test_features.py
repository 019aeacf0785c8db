"""speechattn.audio.features: Kaldi compatibility, batching/padding, streaming, real corpora."""

from __future__ import annotations

import math
import random
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
import torchaudio
from torchaudio.compliance import kaldi

from speechattn.audio import (
    FeatureConfig,
    FeatureExtractor,
    StreamingFeatureExtractor,
    audio_info,
    iter_audio_blocks,
    load_audio,
)


def _speechlike(samples: int, rate: int = 16000, seed: int = 0) -> torch.Tensor:
    """Harmonics with a moving pitch, amplitude modulation and a noise floor (float32)."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples, dtype=torch.float64) / rate
    f0 = 120 + 40 * torch.sin(2 * math.pi * 1.5 * t)
    phase = 2 * math.pi * torch.cumsum(f0, 0) / rate
    voiced = sum(torch.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 * (1 + torch.sin(2 * math.pi * 3 * t))
    noise = torch.randn(samples, generator=gen, dtype=torch.float64)
    return (0.2 * env * voiced + 0.01 * noise).to(torch.float32)


def _kaldi(x: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """Reference features for one utterance, through torchaudio.compliance.kaldi (+ compute_deltas)."""
    common = dict(
        sample_frequency=float(cfg.sample_rate),
        num_mel_bins=cfg.num_mel_bins,
        frame_length=cfg.frame_length_ms,
        frame_shift=cfg.frame_shift_ms,
        low_freq=cfg.low_freq,
        high_freq=cfg.high_freq,
        preemphasis_coefficient=cfg.preemphasis,
        dither=0.0,
    )
    if cfg.kind == "fbank":
        base = kaldi.fbank(x[None], **common)
    else:
        base = kaldi.mfcc(x[None], num_ceps=cfg.num_ceps, **common)
    parts = [base.T]
    for _ in range(cfg.deltas):
        parts.append(torchaudio.functional.compute_deltas(parts[-1], win_length=5))
    return torch.cat(parts).T


# --------------------------------------------------------------------------- config


def test_config_derived_sizes() -> None:
    cfg = FeatureConfig()
    assert (cfg.frame_length, cfg.frame_shift, cfg.fft_length, cfg.feature_dim) == (400, 160, 512, 80)
    assert FeatureConfig(kind="mfcc", num_ceps=20, deltas=2).feature_dim == 60
    assert FeatureConfig(num_mel_bins=40, deltas=1).feature_dim == 80
    c8 = FeatureConfig(sample_rate=8000, frame_length_ms=32, frame_shift_ms=12.5)
    assert (c8.frame_length, c8.frame_shift, c8.fft_length) == (256, 100, 256)
    assert [cfg.num_frames(n) for n in (0, 399, 400, 559, 560, 16000)] == [0, 0, 1, 1, 2, 98]


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "spectrogram"},
        {"sample_rate": 0},
        {"sample_rate": 16000.5},
        {"num_mel_bins": 3},
        {"kind": "mfcc", "num_mel_bins": 23, "num_ceps": 24},
        {"kind": "mfcc", "num_ceps": 0},
        {"deltas": 3},
        {"deltas": -1},
        {"deltas": True},
        {"frame_length_ms": 0.0},
        {"frame_shift_ms": -10.0},
        {"frame_shift_ms": 0.01},
        {"low_freq": -1.0},
        {"low_freq": 8000.0},
        {"high_freq": 8001.0},
        {"high_freq": -8000.0},
        {"low_freq": 3000.0, "high_freq": 2000.0},
        {"preemphasis": 1.1},
        {"dither": -0.1},
        {"dither": float("nan")},
        {"num_mel_bins": "80"},
    ],
)
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ValueError):
        FeatureConfig(**bad)


def test_extractor_overrides_and_bad_args() -> None:
    fe = FeatureExtractor(FeatureConfig(num_mel_bins=40), kind="mfcc", deltas=1)
    assert fe.config.kind == "mfcc" and fe.config.num_mel_bins == 40 and fe.feature_dim == 26
    with pytest.raises(ValueError, match="unknown"):
        FeatureExtractor(n_mels=40)
    with pytest.raises(ValueError):
        FeatureExtractor(num_mel_bins=2)
    with pytest.raises(ValueError, match="batch, samples"):
        fe(torch.zeros(400))
    with pytest.raises(ValueError, match="lengths"):
        fe(torch.zeros(2, 400), torch.tensor([400, 401]))
    with pytest.raises(ValueError, match="lengths"):
        fe(torch.zeros(2, 400), torch.tensor([400]))


# --------------------------------------------------------------------------- Kaldi / librosa


KALDI_CONFIGS = [
    FeatureConfig(),
    FeatureConfig(num_mel_bins=23, low_freq=64.0, high_freq=-400.0),
    FeatureConfig(num_mel_bins=40, preemphasis=0.0, frame_length_ms=20.0, frame_shift_ms=5.0),
    FeatureConfig(sample_rate=8000, num_mel_bins=40, high_freq=3800.0),
    FeatureConfig(kind="mfcc", num_mel_bins=23),
    FeatureConfig(kind="mfcc", num_mel_bins=40, num_ceps=40, deltas=2),
    FeatureConfig(kind="mfcc", sample_rate=8000, num_mel_bins=30, num_ceps=20, deltas=1),
    FeatureConfig(num_mel_bins=80, deltas=2),
]


@pytest.mark.parametrize("cfg", KALDI_CONFIGS, ids=lambda c: f"{c.kind}-{c.sample_rate}-{c.num_mel_bins}-d{c.deltas}")
def test_matches_torchaudio_kaldi(cfg: FeatureConfig) -> None:
    fe = FeatureExtractor(cfg).eval()
    lengths = [cfg.sample_rate, cfg.sample_rate // 2 + 37, cfg.frame_length]
    batch = torch.zeros(len(lengths), max(lengths))
    for i, n in enumerate(lengths):
        batch[i, :n] = _speechlike(n, cfg.sample_rate, seed=i)
    feats, frames = fe(batch, torch.tensor(lengths))
    assert feats.shape == (3, cfg.num_frames(max(lengths)), cfg.feature_dim)
    assert frames.tolist() == [cfg.num_frames(n) for n in lengths]
    for i, n in enumerate(lengths):
        ref = _kaldi(batch[i, :n], cfg)
        assert ref.shape == (frames[i], cfg.feature_dim)
        torch.testing.assert_close(feats[i, : frames[i]], ref, rtol=0, atol=1e-3)


def test_deltas_match_compute_deltas_tightly() -> None:
    x = _speechlike(9000, seed=5)
    base = FeatureExtractor(num_mel_bins=40)(x[None])[0][0]
    both = FeatureExtractor(num_mel_bins=40, deltas=2)(x[None])[0][0]
    d1 = torchaudio.functional.compute_deltas(base.T).T
    d2 = torchaudio.functional.compute_deltas(d1.T).T
    torch.testing.assert_close(both, torch.cat([base, d1, d2], dim=1), rtol=0, atol=1e-5)


def test_mel_bands_agree_with_librosa() -> None:
    """Honest cross-check against an independent implementation.

    Kaldi's triangles are linear in mel, librosa's (htk=True) linear in Hz, and the windows differ
    (Povey vs Hann), so values are not equal. What must agree: the band centre frequencies, the band
    where a tone's energy lands, and the overall shape of the log-mel spectrum.
    """
    sr, bins = 16000, 40
    _, centres = kaldi.get_mel_banks(bins, 512, float(sr), 20.0, 0.0, 100.0, -500.0, 1.0)
    lib_centres = librosa.mel_frequencies(bins + 2, fmin=20.0, fmax=sr / 2, htk=True)[1:-1]
    np.testing.assert_allclose(centres.flatten().numpy(), lib_centres, atol=0.05)

    t = np.arange(2 * sr) / sr
    rng = np.random.default_rng(0)
    x = (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 3100 * t)).astype(np.float32)
    x += 0.01 * rng.standard_normal(t.size).astype(np.float32)
    ours = FeatureExtractor(num_mel_bins=bins, preemphasis=0.0)(torch.from_numpy(x)[None])[0][0].numpy()
    power = librosa.feature.melspectrogram(
        y=x, sr=sr, n_fft=512, win_length=400, hop_length=160, center=False, power=2.0,
        n_mels=bins, fmin=20.0, fmax=sr / 2, htk=True, norm=None,
    )
    theirs = np.log(np.maximum(power.T, np.finfo(np.float32).eps))
    a, b = ours.mean(axis=0), theirs.mean(axis=0)
    assert set(np.argsort(a)[-2:]) == set(np.argsort(b)[-2:])  # the 1 kHz tone's two bands
    assert np.argmin(np.abs(lib_centres - 3100)) in np.argsort(a)[-4:]
    assert np.corrcoef(a, b)[0, 1] > 0.99
    n = min(len(ours), len(theirs))
    assert np.corrcoef(ours[:n].ravel(), theirs[:n].ravel())[0, 1] > 0.97


# --------------------------------------------------------------------------- batching


def test_frame_counts_and_short_clips() -> None:
    fe = FeatureExtractor()
    lengths = torch.tensor([0, 399, 400, 559, 560, 1000])
    feats, frames = fe(torch.randn(6, 1000), lengths)
    assert frames.tolist() == [0, 0, 1, 1, 2, 4]
    assert feats.shape == (6, 4, 80)
    for i, n in enumerate(frames.tolist()):
        assert torch.all(feats[i, n:] == 0)
        assert torch.all(feats[i, :n] != 0)
    empty, none = fe(torch.randn(2, 100))
    assert empty.shape == (2, 0, 80) and none.tolist() == [0, 0]


@pytest.mark.parametrize("deltas", [0, 2])
def test_padding_invariance(deltas: int) -> None:
    fe = FeatureExtractor(kind="mfcc", num_mel_bins=40, deltas=deltas)
    lengths = [12000, 4321, 401, 9000]
    gen = torch.Generator().manual_seed(0)
    batch = torch.randn(len(lengths), max(lengths), generator=gen)  # junk in the padding on purpose
    feats, frames = fe(batch, torch.tensor(lengths))
    for i, n in enumerate(lengths):
        alone, k = fe(batch[i : i + 1, :n])
        assert int(k) == int(frames[i])
        torch.testing.assert_close(feats[i, : frames[i]], alone[0], rtol=0, atol=1e-6)
        assert torch.all(feats[i, frames[i] :] == 0)


def test_dither_only_in_training() -> None:
    x = _speechlike(4000)[None]
    fe = FeatureExtractor(dither=1e-3)
    fe.train()
    a, b = fe(x)[0], fe(x)[0]
    assert not torch.equal(a, b)
    fe.eval()
    c, d = fe(x)[0], fe(x)[0]
    assert torch.equal(c, d)
    torch.testing.assert_close(c, FeatureExtractor()(x)[0], rtol=0, atol=0)


def test_digital_silence_is_finite() -> None:
    feats, _ = FeatureExtractor(kind="mfcc", deltas=1)(torch.zeros(1, 4000))
    assert torch.isfinite(feats).all()
    assert torch.allclose(feats[0, :, 0], feats[0, 0, 0].expand(feats.shape[1]))


# --------------------------------------------------------------------------- streaming


def _stream(fe: FeatureExtractor, x: torch.Tensor, sizes: list[int]) -> tuple[torch.Tensor, int]:
    stream = StreamingFeatureExtractor(fe)
    outs, pos, held = [], 0, 0
    for size in sizes:
        outs.append(stream.push(x[pos : pos + size]))
        pos += size
        held = max(held, stream._samples.numel(), *(q.shape[0] for q in stream._queues))
    assert pos >= x.numel()
    outs.append(stream.flush())
    for out in outs:
        assert out.dim() == 2 and out.shape[1] == fe.feature_dim
    return torch.cat(outs), held


def _random_sizes(total: int, rng: random.Random, high: int) -> list[int]:
    sizes, pos = [], 0
    while pos < total:
        size = rng.choice([1, 2, rng.randint(1, high), rng.randint(1, 3 * high)])
        sizes.append(size)
        pos += size
    return sizes


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
@pytest.mark.parametrize("deltas", [0, 1, 2])
def test_streaming_equals_offline(kind: str, deltas: int) -> None:
    fe = FeatureExtractor(kind=kind, num_mel_bins=40, deltas=deltas).eval()
    rng = random.Random(1000 * deltas + len(kind))
    for n in (0, 399, 400, 560, 1041, 2000, 24000):
        x = _speechlike(n, seed=n) if n else torch.zeros(0)
        ref, frames = fe(x[None])
        for high in (50, 700):
            got, held = _stream(fe, x, _random_sizes(n, rng, high))
            assert got.shape == (int(frames), fe.feature_dim)
            torch.testing.assert_close(got, ref[0], rtol=0, atol=1e-5)
            assert held < 3 * high + 400  # bounded by one chunk plus one frame, not by n


def test_streaming_sample_by_sample_with_deltas_and_reset() -> None:
    fe = FeatureExtractor(num_mel_bins=23, deltas=2)
    x = _speechlike(1600, seed=9)
    ref = fe(x[None])[0][0]
    stream = StreamingFeatureExtractor(fe)
    emitted_before_flush = 0
    outs = []
    for s in x.split(1):
        out = stream.push(s)
        emitted_before_flush += out.shape[0]
        outs.append(out)
    outs.append(stream.flush())
    torch.testing.assert_close(torch.cat(outs), ref, rtol=0, atol=1e-5)
    # delta-deltas look 4 frames ahead: all but the last 4 frames came out before flush
    assert emitted_before_flush == ref.shape[0] - 4
    # flush resets: a second utterance through the same object is independent of the first
    y = _speechlike(3000, seed=10)
    again = torch.cat([stream.push(y[:1234]), stream.push(y[1234:]), stream.flush()])
    torch.testing.assert_close(again, fe(y[None])[0][0], rtol=0, atol=1e-5)
    stream.push(y[:999])
    stream.reset()
    torch.testing.assert_close(torch.cat([stream.push(x), stream.flush()]), ref, rtol=0, atol=1e-5)


def test_streaming_memory_stays_bounded_over_a_long_stream() -> None:
    fe = FeatureExtractor(num_mel_bins=40, deltas=2)
    stream = StreamingFeatureExtractor(fe)
    gen = torch.Generator().manual_seed(0)
    held = []
    frames = 0
    for _ in range(300):
        frames += stream.push(torch.randn(777, generator=gen)).shape[0]
        held.append((stream._samples.numel(), max(q.shape[0] for q in stream._queues)))
    frames += stream.flush().shape[0]
    assert frames == FeatureConfig().num_frames(300 * 777)
    assert max(s for s, _ in held) < 400
    assert max(q for _, q in held) <= 4 + 777 // 160 + 1


def test_streaming_rejects_bad_input() -> None:
    stream = StreamingFeatureExtractor(FeatureExtractor())
    with pytest.raises(ValueError, match="1-D"):
        stream.push(torch.zeros(1, 400))
    with pytest.raises(ValueError):
        StreamingFeatureExtractor(object())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- real corpora


def _first_speechocean(root: Path) -> Path:
    line = (root / "train" / "wav.scp").read_text().splitlines()[0]
    return root / line.split(maxsplit=1)[1]


@pytest.mark.corpus
def test_real_speechocean_file(speechocean_dir: Path) -> None:
    path = _first_speechocean(speechocean_dir)
    info = audio_info(path)
    assert info.sample_rate == 16000 and info.num_channels == 1 and 0.5 < info.duration < 30
    wave, rate = load_audio(path, sample_rate=16000)
    assert rate == 16000 and wave.shape == (info.num_frames,)
    assert 1e-3 < wave.abs().max() <= 1.0
    blocks = torch.cat(list(iter_audio_blocks(path, 16000, block_seconds=0.5)))
    torch.testing.assert_close(blocks, wave, rtol=0, atol=1e-5)
    fe = FeatureExtractor(deltas=1)
    feats, frames = fe(wave[None])
    assert int(frames) == 1 + (info.num_frames - 400) // 160
    assert feats.shape == (1, int(frames), 160) and torch.isfinite(feats).all()
    torch.testing.assert_close(feats[0, :, :80], kaldi.fbank(wave[None], num_mel_bins=80), rtol=0, atol=1e-3)
    # speech has a dynamic range over time: loud frames well above quiet ones
    energy = feats[0, :, :80].logsumexp(dim=1)
    assert energy.max() - energy.min() > 3.0


@pytest.mark.corpus
def test_real_fsdd_8k_file(fsdd_dir: Path) -> None:
    path = fsdd_dir / "recordings" / "0_george_0.wav"
    if not path.exists():
        path = sorted((fsdd_dir / "recordings").glob("*.wav"))[0]
    info = audio_info(path)
    assert info.sample_rate == 8000 and info.num_channels == 1
    native, rate = load_audio(path)
    assert rate == 8000 and native.shape == (info.num_frames,)
    wave, rate = load_audio(path, sample_rate=16000)
    assert rate == 16000 and wave.shape == (math.ceil(info.num_frames * 2),)
    blocks = torch.cat(list(iter_audio_blocks(path, 16000, block_seconds=0.1)))
    torch.testing.assert_close(blocks, wave, rtol=0, atol=1e-5)
    feats, frames = FeatureExtractor()(wave[None])
    assert int(frames) == 1 + (wave.numel() - 400) // 160
    assert torch.isfinite(feats).all()
    # 8 kHz content upsampled: bands above 4 kHz carry (almost) nothing compared with speech bands
    centres = kaldi.get_mel_banks(80, 512, 16000.0, 20.0, 0.0, 100.0, -500.0, 1.0)[1].flatten()
    high, low = feats[0][:, centres > 4300].mean(), feats[0][:, (centres > 300) & (centres < 3000)].mean()
    assert low - high > 5.0
    feats8, frames8 = FeatureExtractor(sample_rate=8000, num_mel_bins=40)(native[None])
    assert int(frames8) == 1 + (native.numel() - 200) // 80 and torch.isfinite(feats8).all()
