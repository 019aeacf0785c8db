"""Post-processing properties (smoothing, hysteresis, minimum durations) and detection metrics."""

from __future__ import annotations

import numpy as np
import pytest

from speechattn.data.labels import FrameGrid, Segment, segments_to_frames
from speechattn.decoding.segments import (
    PostprocessConfig,
    binarize,
    decode,
    fill_short_gaps,
    hysteresis,
    remove_short,
    smooth,
)
from speechattn.metrics.detection import DetectionCounts, detection_metrics


def _runs(x: np.ndarray, value: bool) -> list[tuple[int, int]]:
    """[start, end) of the runs of ``value`` in the bool array ``x``."""
    padded = np.concatenate([[False], np.asarray(x) == value, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(0)
    clean = (np.sin(np.linspace(0, 12 * np.pi, 2000)) > 0.3).astype(float)
    return np.clip(clean * 0.8 + 0.1 + rng.normal(0, 0.25, clean.shape), 0, 1)


def test_smoothing_keeps_constants_and_means(noisy):
    assert np.allclose(smooth(np.full(50, 0.3), 7), 0.3)
    s = smooth(noisy, 5)
    assert s.shape == noisy.shape and np.isclose(s[100], noisy[98:103].mean())
    assert np.isclose(smooth(noisy[:, None], 5)[:, 0], s).all()
    assert s.std() < noisy.std()


def test_hysteresis_lies_between_the_two_thresholds(noisy):
    on = hysteresis(noisy, 0.6, 0.4)
    assert on[noisy > 0.6].all()  # above onset: always on
    assert not on[noisy < 0.4].any()  # below offset: always off
    # every region starts at a frame above onset
    assert all(noisy[a] > 0.6 for a, _ in _runs(on, True))
    assert (hysteresis(noisy, 0.5, 0.5) == (noisy > 0.5)).all()
    # hysteresis chatters less than a single threshold
    assert len(_runs(on, True)) < len(_runs(noisy > 0.5, True))
    with pytest.raises(ValueError):
        hysteresis(noisy, 0.4, 0.6)


def test_minimum_durations(noisy):
    active = noisy > 0.5
    filled = fill_short_gaps(active, 6)
    inner_gaps = [(a, b) for a, b in _runs(filled, False) if a > 0 and b < len(filled)]
    assert all(b - a >= 6 for a, b in inner_gaps) and (filled >= active).all()
    kept = remove_short(filled, 10)
    assert all(b - a >= 10 for a, b in _runs(kept, True)) and (kept <= filled).all()
    cfg = PostprocessConfig(smooth_ms=50, onset=0.6, offset=0.4, min_duration_on=0.4, min_duration_off=0.2)
    out = binarize(noisy, cfg, hop=0.04)
    assert all(b - a >= 10 for a, b in _runs(out, True))
    assert all(b - a >= 5 for a, b in _runs(out, False) if a > 0 and b < len(out))


def test_padding_and_decode_to_segments():
    grid = FrameGrid(hop=0.04, offset=0.02)
    post = np.zeros((100, 2))
    post[20:40, 0] = 0.9
    post[30:35, 1] = 0.8
    cfg = PostprocessConfig(onset=0.5, pad_onset=0.08, pad_offset=0.04)
    segs = decode(post, ["a", "b"], grid, cfg, duration=4.0)
    assert segs == [Segment(0.72, 1.64, "a"), Segment(1.12, 1.44, "b")]
    with pytest.raises(ValueError, match=r"\(frames, 2\)"):
        decode(post[:, :1], ["a", "b"], grid, cfg)


def test_postprocess_config_validation():
    with pytest.raises(ValueError, match="offset"):
        PostprocessConfig(onset=0.5, offset=0.7)
    with pytest.raises(ValueError, match="min_duration_on"):
        PostprocessConfig(min_duration_on=-1)


def test_detection_metrics_counts():
    ref = [Segment(0.0, 1.0, "speech"), Segment(2.0, 3.0, "speech")]
    hyp = [Segment(0.5, 1.0, "speech"), Segment(2.0, 3.5, "speech")]
    r, h = segments_to_frames(ref, ["speech"], 0.01, 4.0), segments_to_frames(hyp, ["speech"], 0.01, 4.0)
    m = detection_metrics([(r, h)], ["speech"])
    # tp = 150 frames, fp = 50, fn = 50
    assert m["precision"] == pytest.approx(0.75) and m["recall"] == pytest.approx(0.75) and m["f1"] == pytest.approx(0.75)
    assert m["detection_error_rate"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(300 / 400)
    perfect = DetectionCounts(["speech"]).update(r, r).metrics()
    assert perfect["f1"] == 1.0 and perfect["detection_error_rate"] == 0.0
    # a shorter hypothesis is padded with "inactive"
    assert DetectionCounts(["speech"]).update(r, r[:150]).metrics()["recall"] == pytest.approx(100 / 200)
