"""Voice-activity simulation on real speech and noise: labels against the clean signal's energy."""

from __future__ import annotations

import numpy as np
import pytest

from speechattn.audio import load_audio
from speechattn.data.labelled import load_labelled
from speechattn.data.labels import segments_to_frames
from speechattn.data.splits import resolve_manifest
from speechattn.data.vad_sim import (
    EndpointConfig,
    VadSimConfig,
    endpoint,
    frame_energy_db,
    simulate_recording,
    simulate_split,
)

RATE = 16000


@pytest.fixture(scope="module")
def utterances(speechocean_dir):
    manifest = resolve_manifest("speechocean762/train", speechocean_dir.parent)
    picks = [manifest[i] for i in (0, 480, 1300, 2100, 700, 1900)]
    return [load_audio(u.path, RATE)[0].numpy() for u in picks]


@pytest.fixture(scope="module")
def noises(noise_dir):
    return [load_audio(p, RATE)[0].numpy()[: 10 * RATE] for p in sorted(noise_dir.glob("*.flac"))]


def _inside(times: np.ndarray, regions) -> np.ndarray:
    out = np.zeros(times.shape, dtype=bool)
    for a, b in regions:
        out |= (times >= a) & (times < b)
    return out


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(int), [0]])))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def test_endpoint_follows_the_clean_energy(utterances):
    cfg = EndpointConfig()
    for wave in utterances:
        regions = endpoint(wave, RATE, cfg)
        assert regions and all(0 <= a < b <= len(wave) / RATE for a, b in regions)
        energy = frame_energy_db(wave, RATE)
        centres = np.arange(len(energy)) * 0.01 + 0.0125
        inside = _inside(centres, regions)
        peak = np.percentile(energy, 99)
        threshold = max(peak + cfg.threshold_db, np.percentile(energy, cfg.floor_percentile) + cfg.floor_margin_db)
        runs = _runs(energy > threshold)
        min_frames = cfg.min_speech_ms / 10
        # Every run above the threshold lasting min_speech_ms or more is speech ...
        assert any(b - a >= min_frames for a, b in runs)
        assert all(inside[a:b].all() for a, b in runs if b - a >= min_frames)
        # ... and away from every region (beyond pre-roll / hangover + a frame) only shorter runs
        # (clicks, dropped on purpose) rise above it.
        far = ~_inside(centres, [(a - 0.07, b + 0.17) for a, b in regions])
        assert far.any() and all(b - a < min_frames for a, b in runs if far[a:b].any())
        # Speech covers the utterance's active part, not the leading/trailing silence.
        assert 0.2 < inside.mean() < 0.95


def test_simulated_labels_match_where_the_speech_is(utterances, noises):
    cfg = VadSimConfig(burst_prob=0.5)
    quiet = VadSimConfig(burst_prob=0.5, snr_db=(40.0, 40.0), clean_prob=0.0, burst_db=(-40.0, -40.0))
    loud = VadSimConfig(burst_prob=0.5, snr_db=(-5.0, -5.0), clean_prob=0.0)
    wave_q, segs_q = simulate_recording(utterances, noises, quiet, np.random.default_rng(3))
    wave_l, segs_l = simulate_recording(utterances, noises, loud, np.random.default_rng(3))
    # Labels come from the clean utterances: identical whatever the noise level.
    assert segs_q == segs_l and len(segs_q) >= len(utterances)
    assert wave_q.shape == wave_l.shape and wave_q.dtype == np.float32
    total_speech = sum(len(u) for u in utterances) / RATE
    assert total_speech + 0.1 * (len(utterances) + 1) <= len(wave_q) / RATE <= total_speech + 4.0 * (len(utterances) + 1)
    assert -35.5 <= 20 * np.log10(np.abs(wave_l).max()) <= -0.9  # peak level within peak_dbfs
    # In the nearly clean mix, labelled frames are far louder than the rest.
    energy = frame_energy_db(wave_q, RATE)
    ref = segments_to_frames(segs_q, ["speech"], 0.01, len(wave_q) / RATE)[: len(energy), 0]
    assert np.median(energy[ref]) > np.median(energy[~ref]) + 25
    # At -5 dB SNR the gap between speech and the rest mostly disappears.
    energy_l = frame_energy_db(wave_l, RATE)
    assert np.median(energy_l[ref]) - np.median(energy_l[~ref]) < 10
    # The seed decides everything.
    again, segs_again = simulate_recording(utterances, noises, cfg, np.random.default_rng(3))
    other, _ = simulate_recording(utterances, noises, cfg, np.random.default_rng(4))
    assert np.array_equal(again, simulate_recording(utterances, noises, cfg, np.random.default_rng(3))[0])
    assert again.shape != other.shape or not np.array_equal(again, other)


def test_simulated_split_is_audio_plus_rttm_and_cached(tmp_path, speechocean_dir, noise_dir):
    cfg = VadSimConfig(max_dev_utterances=10, utterances_per_recording=(3, 4))
    folder = simulate_split(cfg, "dev", speechocean_dir.parent, tmp_path, progress=False)
    data = load_labelled(folder)
    assert 3 <= len(data.items) <= 4 and not data.skipped
    assert all(item.segments and item.path.suffix == ".flac" for item in data.items)
    wave, rate = load_audio(data.items[0].path)
    assert rate == RATE and data.items[0].segments[-1].end <= len(wave) / rate + 1e-3
    stamp = (folder / "dev.rttm").stat().st_mtime_ns
    assert simulate_split(cfg, "dev", speechocean_dir.parent, tmp_path) == folder  # reused, not rewritten
    assert (folder / "dev.rttm").stat().st_mtime_ns == stamp
    # Training settings do not change the dev set; dev settings do.
    assert simulate_split(VadSimConfig(max_dev_utterances=10, utterances_per_recording=(3, 4), seed=7, train_passes=3),
                          "dev", speechocean_dir.parent, tmp_path) == folder
    with pytest.raises(ValueError, match="utterances_per_recording"):
        VadSimConfig(utterances_per_recording=(4, 3))
