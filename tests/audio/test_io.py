"""speechattn.audio.io: loading, validation errors, resampling on load, blocks, saving."""

from __future__ import annotations

import logging
import math
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from speechattn.audio import (
    AudioError,
    AudioInfo,
    audio_info,
    iter_audio_blocks,
    load_audio,
    save_audio,
)


def _tone(rate: int, seconds: float, freq: float = 440.0, channels: int = 1, seed: int = 0) -> np.ndarray:
    """(frames, channels) float32: a tone plus a little noise, different per channel."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    cols = [0.4 * np.sin(2 * np.pi * freq * (c + 1) * t) + 0.05 * rng.standard_normal(t.size) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def _assert_one_line_naming(err: pytest.ExceptionInfo, path: Path, words: str) -> None:
    msg = str(err.value)
    assert isinstance(err.value, ValueError)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: "), msg
    assert words in msg, msg


# --------------------------------------------------------------------------- loading


def test_int16_wav_is_scaled_float32(tmp_path: Path) -> None:
    path = tmp_path / "pcm16.wav"
    ints = np.array([0, 16384, -32768, 32767, -1], dtype=np.int16)
    sf.write(path, ints, 16000, subtype="PCM_16")
    wave, rate = load_audio(path)
    assert rate == 16000
    assert wave.dtype == torch.float32 and wave.shape == (5,)
    torch.testing.assert_close(wave, torch.from_numpy(ints.astype(np.float32) / 32768.0), rtol=0, atol=0)


def test_float_flac_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "x.flac"
    data = _tone(16000, 0.5)[:, 0]
    sf.write(path, data, 16000, subtype="PCM_24")
    wave, rate = load_audio(path)
    assert rate == 16000 and wave.shape == (data.size,)
    assert torch.allclose(wave, torch.from_numpy(data), atol=2.0**-22)


def test_ogg_vorbis_loads(tmp_path: Path) -> None:
    path = tmp_path / "x.ogg"
    data = _tone(16000, 1.0)[:, 0]
    sf.write(path, data, 16000, format="OGG", subtype="VORBIS")
    wave, rate = load_audio(path)
    assert rate == 16000 and wave.shape == (data.size,)
    # lossy codec: same signal, not the same samples
    corr = np.corrcoef(wave.numpy(), data)[0, 1]
    assert corr > 0.99


def test_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    data = _tone(16000, 0.25, channels=2)
    sf.write(path, data, 16000, subtype="FLOAT")
    wave, _ = load_audio(path)
    assert wave.shape == (data.shape[0],)
    torch.testing.assert_close(wave, torch.from_numpy(data.mean(axis=1)), rtol=0, atol=1e-7)
    info = audio_info(path)
    assert info.num_channels == 2


@pytest.mark.parametrize(("orig", "new"), [(8000, 16000), (44100, 16000), (16000, 16000)])
def test_resample_on_load_matches_torchaudio(tmp_path: Path, orig: int, new: int) -> None:
    path = tmp_path / f"r{orig}.wav"
    data = _tone(orig, 0.3, freq=300.0)[:, 0]
    sf.write(path, data, orig, subtype="FLOAT")
    wave, rate = load_audio(path, sample_rate=new)
    assert rate == new
    assert wave.shape == (math.ceil(data.size * new / orig),)
    expected = torchaudio.functional.resample(torch.from_numpy(data), orig, new)
    torch.testing.assert_close(wave, expected, rtol=0, atol=1e-6)


def test_audio_info(tmp_path: Path) -> None:
    path = tmp_path / "info.flac"
    sf.write(path, _tone(44100, 0.5, channels=2), 44100)
    info = audio_info(path)
    assert info == AudioInfo(str(path), 44100, 22050, 2, 0.5)
    with pytest.raises(AttributeError):
        info.sample_rate = 1  # type: ignore[misc]


def test_bad_target_rate(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _tone(16000, 0.1), 16000)
    for bad in (0, -16000, 1.5):
        with pytest.raises(ValueError, match="sample_rate"):
            load_audio(path, sample_rate=bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- errors


def _make_bad(tmp_path: Path, kind: str) -> tuple[Path, str]:
    """A broken file of the given kind and the words its error must contain."""
    good = _tone(16000, 0.5)[:, 0]
    if kind == "missing":
        return tmp_path / "nope.wav", "file not found"
    if kind == "directory":
        d = tmp_path / "dir.wav"
        d.mkdir()
        return d, "directory"
    if kind == "zero_bytes":
        p = tmp_path / "zero.wav"
        p.write_bytes(b"")
        return p, "empty file (0 bytes)"
    if kind == "no_samples":
        p = tmp_path / "nosamples.wav"
        sf.write(p, np.zeros(0, np.float32), 16000)
        return p, "empty audio (0 samples)"
    if kind == "text":
        p = tmp_path / "notes.wav"
        p.write_text("this is not audio\nat all\n")
        return p, "not a readable audio file"
    if kind == "truncated_header":
        src = tmp_path / "src.wav"
        sf.write(src, good, 16000)
        p = tmp_path / "cut.wav"
        p.write_bytes(src.read_bytes()[:10])
        return p, "not a readable audio file"
    if kind == "corrupt_flac":
        src = tmp_path / "src.flac"
        sf.write(src, good, 16000)
        raw = bytearray(src.read_bytes())
        p = tmp_path / "cut.flac"
        p.write_bytes(bytes(raw[: len(raw) // 2]))  # header promises more frames than there are
        return p, "corrupt audio data"
    if kind == "nan":
        p = tmp_path / "nan.wav"
        bad = good.copy()
        bad[100] = np.nan
        sf.write(p, bad, 16000, subtype="FLOAT")
        return p, "contains NaN or infinite samples"
    if kind == "inf":
        p = tmp_path / "inf.wav"
        bad = good.copy()
        bad[-1] = np.inf
        sf.write(p, bad, 16000, subtype="FLOAT")
        return p, "contains NaN or infinite samples"
    raise AssertionError(kind)


ALL_BAD = ["missing", "directory", "zero_bytes", "no_samples", "text", "truncated_header", "corrupt_flac", "nan", "inf"]


@pytest.mark.parametrize("kind", ALL_BAD)
def test_load_audio_errors_name_the_file(tmp_path: Path, kind: str) -> None:
    path, words = _make_bad(tmp_path, kind)
    with pytest.raises(AudioError) as err:
        load_audio(path)
    _assert_one_line_naming(err, path, words)


@pytest.mark.parametrize("kind", ["missing", "directory", "zero_bytes", "no_samples", "text", "truncated_header"])
def test_audio_info_errors_name_the_file(tmp_path: Path, kind: str) -> None:
    path, words = _make_bad(tmp_path, kind)
    with pytest.raises(AudioError) as err:
        audio_info(path)
    _assert_one_line_naming(err, path, words)


@pytest.mark.parametrize("kind", ALL_BAD)
def test_iter_audio_blocks_errors_name_the_file(tmp_path: Path, kind: str) -> None:
    path, words = _make_bad(tmp_path, kind)
    with pytest.raises(AudioError) as err:
        for _ in iter_audio_blocks(path, block_seconds=0.05):
            pass
    _assert_one_line_naming(err, path, words)


def test_unreadable_message_keeps_libsndfile_reason(tmp_path: Path) -> None:
    path, _ = _make_bad(tmp_path, "text")
    with pytest.raises(AudioError, match=r"not a readable audio file \(.*Format not recognised\)$"):
        load_audio(path)


def test_header_errors_are_raised_before_iterating(tmp_path: Path) -> None:
    path, _ = _make_bad(tmp_path, "text")
    with pytest.raises(AudioError):
        iter_audio_blocks(path)  # no next(): validation is eager


def test_nan_in_late_block_raises_after_good_blocks(tmp_path: Path) -> None:
    path = tmp_path / "late_nan.wav"
    data = _tone(16000, 1.0)[:, 0]
    data[-10] = np.nan
    sf.write(path, data, 16000, subtype="FLOAT")
    seen = 0
    with pytest.raises(AudioError, match="late_nan.wav: contains NaN"):
        for block in iter_audio_blocks(path, block_seconds=0.1):
            seen += block.numel()
    assert seen == 9 * 1600  # nine clean blocks came out before the bad one


def test_odd_rate_file_loads_and_streams_the_same(tmp_path: Path) -> None:
    path = tmp_path / "odd.wav"
    sf.write(path, _tone(44101, 1.1)[:, 0], 44101, subtype="FLOAT")
    whole, rate = load_audio(path, 16000)
    assert rate == 16000 and whole.numel() == math.ceil(int(44101 * 1.1) * 16000 / 44101)
    joined = torch.cat(list(iter_audio_blocks(path, 16000, block_seconds=0.13)))
    torch.testing.assert_close(joined, whole, rtol=0, atol=1e-5)


def test_absurd_sample_rate_is_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "fast.wav"
    sf.write(path, np.zeros(100, np.float32), 4_000_000, subtype="FLOAT")
    for call in (load_audio, audio_info, iter_audio_blocks):
        with pytest.raises(AudioError) as err:
            call(path)
        _assert_one_line_naming(err, path, "unsupported sample rate 4000000 Hz")


# --------------------------------------------------------------------------- truncated files


def _cut_wav(path: Path, seconds: float, keep: float, subtype: str = "PCM_16") -> np.ndarray:
    """A 16 kHz WAV of ``seconds`` cut after ``keep`` of its data bytes (an interrupted download);
    returns the samples written."""
    data = _tone(16000, seconds)[:, 0]
    sf.write(path, data, 16000, subtype=subtype)
    raw = path.read_bytes()
    start = raw.index(b"data") + 8
    path.write_bytes(raw[: start + int((len(raw) - start) * keep)])
    return data


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("speechattn.audio") and r.levelno >= logging.WARNING]


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])  # FLOAT: fact and PEAK chunks before the data
def test_truncated_wav_is_read_as_far_as_it_goes_with_a_warning(tmp_path: Path, caplog, subtype: str) -> None:
    path = tmp_path / "cut.wav"
    data = _cut_wav(path, 10.0, 0.64, subtype)
    expected = [f"{path}: truncated: the header declares 10.00 s, the file holds 6.40 s"]
    with caplog.at_level(logging.WARNING, logger="speechattn.audio"):
        wave, rate = load_audio(path)
    assert rate == 16000 and wave.numel() == 102400  # 6.4 s: every sample the file holds
    np.testing.assert_allclose(wave.numpy(), data[:102400], atol=1e-4)
    assert _warnings(caplog) == expected
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="speechattn.audio"):
        joined = torch.cat(list(iter_audio_blocks(path, block_seconds=1.0)))
        info = audio_info(path)  # the header alone: no warning
    assert torch.equal(joined, wave) and _warnings(caplog) == expected
    assert info.num_frames == 102400


def test_complete_and_open_ended_wavs_give_no_warning(tmp_path: Path, caplog) -> None:
    complete = tmp_path / "complete.wav"
    sf.write(complete, _tone(16000, 1.0)[:, 0], 16000)
    raw = complete.read_bytes()
    trailing = tmp_path / "trailing.wav"  # another chunk after the data
    trailing.write_bytes(raw + b"LIST" + struct.pack("<I", 4) + b"INFO")
    unknown = tmp_path / "unknown.wav"  # sizes left unknown, as when written to a pipe
    at = raw.index(b"data") + 4
    unknown.write_bytes(raw[:4] + b"\xff" * 4 + raw[8:at] + b"\xff" * 4 + raw[at + 4 :])
    with caplog.at_level(logging.WARNING, logger="speechattn.audio"):
        for path in (complete, trailing, unknown):
            assert load_audio(path)[0].numel() == 16000, path
            assert sum(b.numel() for b in iter_audio_blocks(path, block_seconds=0.3)) == 16000
    assert _warnings(caplog) == []


@pytest.mark.skipif("MP3" not in sf.available_formats(), reason="libsndfile without MPEG support")
def test_a_short_read_is_reported_as_truncated(tmp_path: Path, caplog) -> None:
    """A format whose header gives the length (an MP3's Xing header) and yields fewer samples."""
    path = tmp_path / "cut.mp3"
    sf.write(path, _tone(16000, 10.0)[:, 0], 16000)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with caplog.at_level(logging.WARNING, logger="speechattn.audio"):
        wave, _ = load_audio(path)
        blocks = sum(b.numel() for b in iter_audio_blocks(path, block_seconds=1.0))
    messages = _warnings(caplog)
    assert len(messages) == 2 and messages[0] == messages[1] and blocks == wave.numel()
    held = re.fullmatch(rf"{re.escape(str(path))}: truncated: the header declares 10.00 s, the file holds (\S+) s",
                        messages[0])
    assert held and float(held[1]) == pytest.approx(wave.numel() / 16000, abs=0.005) and 3 < float(held[1]) < 7


# --------------------------------------------------------------------------- blocks


@pytest.mark.parametrize(
    ("fmt", "rate", "channels", "target"),
    [("wav", 16000, 1, None), ("flac", 44100, 2, 16000), ("ogg", 22050, 1, 16000), ("wav", 8000, 1, 16000)],
)
def test_iter_audio_blocks_equals_load_audio(
    tmp_path: Path, fmt: str, rate: int, channels: int, target: int | None
) -> None:
    path = tmp_path / f"long.{fmt}"
    sf.write(path, _tone(rate, 1.3, channels=channels), rate)
    whole, out_rate = load_audio(path, target)
    blocks = list(iter_audio_blocks(path, target, block_seconds=0.07))
    assert len(blocks) > 10
    assert all(b.dim() == 1 and b.dtype == torch.float32 and b.numel() > 0 for b in blocks)
    joined = torch.cat(blocks)
    assert joined.shape == whole.shape
    torch.testing.assert_close(joined, whole, rtol=0, atol=1e-5)
    assert out_rate == (target or rate)


def test_iter_audio_blocks_never_reads_whole_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.flac"
    sf.write(path, _tone(16000, 2.0), 16000)
    requested: list[int] = []
    original = sf.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):  # type: ignore[no-untyped-def]
        requested.append(frames)
        return original(self, frames, *args, **kwargs)

    monkeypatch.setattr(sf.SoundFile, "read", spy)
    n = sum(b.numel() for b in iter_audio_blocks(path, block_seconds=0.25))
    assert n == 32000
    assert requested and all(0 < f <= 4000 for f in requested)


def test_iter_audio_blocks_bad_block_seconds(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    sf.write(path, _tone(16000, 0.1), 16000)
    with pytest.raises(ValueError, match="block_seconds"):
        iter_audio_blocks(path, block_seconds=0)


# --------------------------------------------------------------------------- saving


def test_save_audio_roundtrip_and_validation(tmp_path: Path) -> None:
    stereo = torch.from_numpy(_tone(16000, 0.2, channels=2).T.copy())  # (channels, samples)
    path = tmp_path / "out.wav"
    save_audio(path, stereo, 16000, subtype="FLOAT")
    data, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == 16000 and data.shape == (stereo.shape[1], 2)
    np.testing.assert_array_equal(data.T, stereo.numpy())

    mono = tmp_path / "mono.flac"
    save_audio(mono, stereo[0], 8000)
    assert audio_info(mono).sample_rate == 8000 and audio_info(mono).num_channels == 1

    with pytest.raises(ValueError, match="NaN"):
        save_audio(tmp_path / "n.wav", torch.tensor([0.0, float("nan")]), 16000)
    with pytest.raises(ValueError, match="sample_rate"):
        save_audio(tmp_path / "r.wav", torch.zeros(10), 0)
    with pytest.raises(ValueError, match="shape"):
        save_audio(tmp_path / "s.wav", torch.zeros(1, 2, 3), 16000)
