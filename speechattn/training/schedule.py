"""Learning-rate schedule: linear warm-up then cosine decay over the run's progress."""

from __future__ import annotations

import math

__all__ = ["warmup_cosine"]


def warmup_cosine(step: int, progress: float, base_lr: float, warmup_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Learning rate at ``step`` (0-based) when ``progress`` in [0, 1] of the run is done.

    Progress, not the step count, drives the cosine so that a run bounded by wall-clock time
    (``max_minutes``) decays to the end of its budget, like a run bounded by epochs.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = min(max(progress, 0.0), 1.0)
    floor = base_lr * min_lr_ratio
    return floor + (base_lr - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
