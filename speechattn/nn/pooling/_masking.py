"""Shared input checks and masked statistics for the pooling layers (no classes here)."""

from __future__ import annotations

import torch
from torch import Tensor

from speechattn.nn.masks import frame_mask

#: Floor applied to variances before ``sqrt`` so that the standard deviation (and its
#: gradient) stays finite for constant inputs and single-frame utterances.
VAR_EPS = 1e-5


def check_positive_int(value: int, name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a positive ``int`` (``bool`` excluded)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def valid_frame_mask(x: Tensor, lengths: Tensor | None, input_dim: int) -> Tensor:
    """Check a pooling input and return its mask of valid frames.

    Args:
        x (Tensor): features, shape `(batch, frames, input_dim)`.
        lengths (Tensor or None): valid frames per utterance, shape `(batch,)`, integer
            dtype, each in `[1, frames]`; ``None`` means every frame is valid.
        input_dim (int): the feature size the layer was built for.

    Returns:
        Tensor: boolean mask, shape `(batch, frames)`, ``True`` on valid frames.
    """
    if x.dim() != 3:
        raise ValueError(f"x must have shape (batch, frames, dim), got {tuple(x.shape)}")
    batch, frames, dim = x.shape
    if dim != input_dim:
        raise ValueError(f"x has feature size {dim}, the layer expects input_dim={input_dim}")
    if frames < 1:
        raise ValueError("x has no frames")
    if lengths is None:
        return torch.ones(batch, frames, dtype=torch.bool, device=x.device)
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"lengths must have shape ({batch},), got {tuple(lengths.shape)}")
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.is_complex():
        raise ValueError(
            f"lengths must hold absolute frame counts (integer dtype), got {lengths.dtype}; "
            "relative lengths in [0, 1] are not supported"
        )
    lengths = lengths.to(x.device)
    if bool((lengths < 1).any()) or bool((lengths > frames).any()):
        raise ValueError(f"lengths must be in [1, {frames}] (frames of x), got {lengths.tolist()}")
    return frame_mask(lengths, frames)


def weighted_mean_std(x: Tensor, weights: Tensor) -> tuple[Tensor, Tensor]:
    """Weighted mean and standard deviation over frames.

    Args:
        x (Tensor): features, shape `(batch, frames, dim)`, padded frames already zeroed.
        weights (Tensor): non-negative weights summing to 1 over frames, shape
            `(batch, frames, dim)` or `(batch, frames, 1)`; exactly 0 on padded frames.

    Returns:
        (Tensor, Tensor): mean and std, each of shape `(batch, dim)`. The variance is the
        weighted second central moment (biased, so defined for a single frame), clamped
        at :data:`VAR_EPS` before the square root.
    """
    mean = (weights * x).sum(dim=1)
    var = (weights * (x - mean.unsqueeze(1)).pow(2)).sum(dim=1)
    return mean, var.clamp(min=VAR_EPS).sqrt()
