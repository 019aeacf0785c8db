"""Transcriber: the streamed file path equals the offline path; any input rate."""

from __future__ import annotations

import numpy as np
import pytest

from tests.ctc_support import tiny_ctc_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, speechocean_dir):
    return tiny_ctc_run(tmp_path_factory)


def test_transcriber_streams_a_file_like_the_offline_path(run, speechocean_dir, monkeypatch):
    from speechattn.audio import load_audio
    from speechattn.inference import Transcriber

    run_dir, _ = run
    monkeypatch.setattr("speechattn.utils.device.cpu_has_native_bf16", lambda: False)  # fp32 on any CPU
    model = Transcriber.from_run(run_dir, device="cpu")
    assert model.run_precision == "fp32"
    path = speechocean_dir / "audio" / "SPEAKER0001" / "000010011.ogg"
    model.block_seconds = 0.7  # many blocks: the stream must stitch them exactly
    streamed, duration = model.log_probs_file(path)
    wave, rate = load_audio(path)
    with model.precision():
        feats, frames = model.extractor(wave[None])
        logits, lengths = model.model(feats, frames)
    offline = logits[0, : int(lengths[0])].float().log_softmax(-1).numpy()
    assert duration == pytest.approx(wave.numel() / rate)
    assert streamed.shape == offline.shape
    np.testing.assert_allclose(streamed, offline, atol=2e-4)
    result = model.transcribe_file(path)
    assert result.text == model.transcribe_waveform(wave, rate).text
    assert len(result.tokens) == len(result.text.split())
    for tok in result.tokens:
        assert 0.0 <= tok.start <= tok.end <= duration + 1e-6
    starts = [t.start for t in result.tokens]
    assert starts == sorted(starts)


def test_transcriber_resamples_other_rates(run, speechocean_dir):
    import torchaudio

    from speechattn.audio import load_audio
    from speechattn.inference import Transcriber

    model = Transcriber.from_run(run[0])
    wave, rate = load_audio(speechocean_dir / "audio" / "SPEAKER0001" / "000010035.ogg")
    at_8k = torchaudio.functional.resample(wave, rate, 8000)
    a = model.transcribe_waveform(wave, rate)
    b = model.transcribe_waveform(at_8k, 8000)
    assert b.duration == pytest.approx(a.duration, abs=1e-3)
    with pytest.raises(ValueError, match="mono"):
        model.transcribe_waveform(wave[None], rate)
