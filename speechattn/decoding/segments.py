"""From frame posteriors to labelled segments: smoothing, hysteresis, minimum durations.

For each class, the posterior track is

1. **smoothed** with a centred moving average of ``smooth_ms`` (0: off);
2. **binarised with hysteresis**: a region starts where the posterior rises above ``onset`` and
   lasts until it falls below ``offset`` (``offset <= onset``; equal values give a plain
   threshold), so a posterior hovering around one threshold does not chatter;
3. **padded** by ``pad_onset`` / ``pad_offset`` seconds on each side;
4. cleaned of **short gaps** (``min_duration_off``: gaps shorter than this are filled) and then of
   **short regions** (``min_duration_on``: regions shorter than this are dropped).

Single-label models with several classes are decoded per class from their softmax posteriors
(each class against "not this class"), which keeps one rule for every task; with one class
(voice activity) that is exactly the usual speech/non-speech detector.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from speechattn.data.labels import FrameGrid, Segment

__all__ = ["PostprocessConfig", "binarize", "decode", "fill_short_gaps", "hysteresis", "remove_short", "smooth"]


@dataclass
class PostprocessConfig:
    """The ``postprocess`` block of a frame-labeling recipe (durations in seconds)."""

    smooth_ms: float = 0.0
    onset: float = 0.5
    offset: float | None = None
    pad_onset: float = 0.0
    pad_offset: float = 0.0
    min_duration_on: float = 0.0
    min_duration_off: float = 0.0

    def __post_init__(self) -> None:
        if self.smooth_ms < 0:
            raise ValueError(f"smooth_ms must be >= 0, got {self.smooth_ms}")
        if not 0.0 < self.onset < 1.0:
            raise ValueError(f"onset must be in (0, 1), got {self.onset}")
        if self.offset is not None and not 0.0 < self.offset <= self.onset:
            raise ValueError(f"offset must be in (0, onset={self.onset}], got {self.offset}")
        for name in ("pad_onset", "pad_offset", "min_duration_on", "min_duration_off"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)}")

    @property
    def offset_threshold(self) -> float:
        return self.onset if self.offset is None else self.offset


def smooth(posteriors: np.ndarray, frames: int) -> np.ndarray:
    """Centred moving average over ``frames`` frames (odd widths are exactly centred) of a
    (T,) or (T, K) array; the window shrinks at the edges (no zero padding)."""
    p = np.asarray(posteriors, dtype=np.float64)
    if frames <= 1 or p.shape[0] == 0:
        return p.copy()
    squeeze = p.ndim == 1
    x = p[:, None] if squeeze else p
    csum = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(x, axis=0)])
    t = np.arange(x.shape[0])
    lo = np.clip(t - frames // 2, 0, x.shape[0])
    hi = np.clip(t - frames // 2 + frames, 0, x.shape[0])
    out = (csum[hi] - csum[lo]) / (hi - lo)[:, None]
    return out[:, 0] if squeeze else out


def hysteresis(p: np.ndarray, onset: float, offset: float) -> np.ndarray:
    """(T,) bool: on when ``p > onset``, staying on while ``p >= offset`` (``offset <= onset``)."""
    p = np.asarray(p, dtype=np.float64)
    if offset > onset:
        raise ValueError(f"offset ({offset}) must be <= onset ({onset})")
    high = p > onset
    if offset == onset:
        return high
    low = p >= offset
    # On: at or above offset, with a frame above onset since the posterior last fell below offset.
    t = np.arange(p.shape[0])
    last_high = np.maximum.accumulate(np.where(high, t, -1))
    last_below = np.maximum.accumulate(np.where(~low, t, -1))
    return low & (last_high > last_below)


def _runs(active: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    padded = np.concatenate([[False], np.asarray(active, dtype=bool), [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return edges[0::2], edges[1::2]


def fill_short_gaps(active: np.ndarray, min_frames: int) -> np.ndarray:
    """Fill inner gaps (between two on-regions) shorter than ``min_frames`` frames."""
    out = np.asarray(active, dtype=bool).copy()
    if min_frames <= 0:
        return out
    starts, ends = _runs(~out)
    for a, b in zip(starts.tolist(), ends.tolist()):
        if a > 0 and b < out.shape[0] and b - a < min_frames:
            out[a:b] = True
    return out


def remove_short(active: np.ndarray, min_frames: int) -> np.ndarray:
    """Drop on-regions shorter than ``min_frames`` frames."""
    out = np.asarray(active, dtype=bool).copy()
    if min_frames <= 0:
        return out
    starts, ends = _runs(out)
    for a, b in zip(starts.tolist(), ends.tolist()):
        if b - a < min_frames:
            out[a:b] = False
    return out


def _pad(active: np.ndarray, before: int, after: int) -> np.ndarray:
    out = np.asarray(active, dtype=bool).copy()
    if before <= 0 and after <= 0:
        return out
    starts, ends = _runs(active)
    for a, b in zip(starts.tolist(), ends.tolist()):
        out[max(0, a - before) : b + after] = True
    return out


def binarize(p: np.ndarray, config: PostprocessConfig, hop: float) -> np.ndarray:
    """(T,) posteriors of one class at ``hop`` seconds per frame -> (T,) bool activity."""
    frames = lambda seconds: int(round(seconds / hop))  # noqa: E731
    p = smooth(p, frames(config.smooth_ms / 1000.0))
    active = hysteresis(p, config.onset, config.offset_threshold)
    active = _pad(active, frames(config.pad_onset), frames(config.pad_offset))
    active = fill_short_gaps(active, frames(config.min_duration_off))
    return remove_short(active, frames(config.min_duration_on))


def decode(
    posteriors: np.ndarray,
    classes: Sequence[str],
    grid: FrameGrid,
    config: PostprocessConfig,
    duration: float | None = None,
) -> list[Segment]:
    """Segments of every class from (T, K) class posteriors (the columns follow ``classes``).

    Returns:
        list[Segment]: sorted by start time; segments of different classes may overlap.
    """
    p = np.asarray(posteriors)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise ValueError(f"posteriors must be (frames, {len(classes)}), got {tuple(p.shape)}")
    out: list[Segment] = []
    for k, name in enumerate(classes):
        out += grid.to_segments(binarize(p[:, k], config, grid.hop), name, duration)
    return sorted(out)
