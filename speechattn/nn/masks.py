"""Masks of the valid (not padded) frames of a batch, from per-sequence lengths."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["frame_mask"]


def frame_mask(lengths: Tensor, time: int, device: torch.device | None = None) -> Tensor:
    """Which frames of a padded batch lie inside their sequence.

    Args:
        lengths: (batch,) valid frame counts (integer dtype).
        time: the padded length.
        device: where to build the mask (default: ``lengths``' device).

    Returns:
        (batch, time) bool, ``True`` at frame ``t`` of sequence ``b`` when ``t < lengths[b]``.
    """
    device = lengths.device if device is None else device
    return torch.arange(time, device=device)[None, :] < lengths.to(device)[:, None]
