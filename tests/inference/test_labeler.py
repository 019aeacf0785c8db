"""Labeler: the streamed file path equals the offline path, at any input rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechattn.audio import load_audio, save_audio
from speechattn.inference import Labeler
from tests.labeling_support import tiny_label_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, speechocean_dir):
    return tiny_label_run(tmp_path_factory, speechocean_dir)


def test_streaming_labels_equal_offline_labels_on_real_audio(run, speechocean_dir, tmp_path, monkeypatch):
    run_dir, _, _ = run
    monkeypatch.setattr("speechattn.utils.device.cpu_has_native_bf16", lambda: False)  # fp32 on any CPU
    labeler = Labeler.from_run(run_dir, device="cpu")
    files = sorted((speechocean_dir / "audio").glob("SPEAKER0005/*.ogg"))[:4]
    wave = torch.cat([load_audio(f, 16000)[0] for f in files])
    for rate in (16000, 8000):
        path = tmp_path / f"long_{rate}.wav"
        if rate != 16000:
            import torchaudio

            save_audio(path, torchaudio.functional.resample(wave, 16000, rate), rate, subtype="FLOAT")
        else:
            save_audio(path, wave, rate, subtype="FLOAT")
        offline = labeler.label_waveform(load_audio(path)[0], rate)
        labeler.block_seconds = 0.37  # many blocks, cut anywhere
        streamed = labeler.label_file(path)
        assert streamed.posteriors.shape == offline.posteriors.shape and streamed.posteriors.shape[0] > 100
        assert np.abs(streamed.posteriors - offline.posteriors).max() < 1e-4
        assert streamed.segments == offline.segments
        assert streamed.duration == pytest.approx(wave.numel() / 16000, abs=1e-3)
